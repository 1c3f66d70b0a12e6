/* copy.h - COPY/ADD into a container root (the merged overlay mount of the
 * step, see runtime/overlay.h; after unmounting, the upper dir holds the
 * change).
 *
 * Destinations are container paths resolved inside root the way the
 * container would see them (openat2 RESOLVE_IN_ROOT): a symlink in the
 * destination path is followed but can never lead outside root. Sources
 * are host paths read without following symlinks (a symlink is copied as a
 * symlink).
 *
 * Ownership follows Docker: new files and directories are 0:0 unless
 * --chown (set_owner) or keep_owner (COPY --from keeps the source's);
 * --chmod (set_mode) replaces the permission bits of every copied file and
 * directory; otherwise the source's bits are kept. Parent directories that
 * must be created are 0755 and get the --chown owner. A directory that
 * exists already keeps its own owner and mode (BuildKit's copier only sets
 * them on directories it creates). Regular files keep their holes, device
 * nodes and fifos are recreated, user.* and security.* xattrs copied.
 */
#ifndef LC_COPY_H
#define LC_COPY_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Hard links seen during one COPY: a file whose inode was copied already
 * becomes a hard link to that copy, as BuildKit's copier does. */
typedef struct lc_copy_links lc_copy_links;
lc_copy_links *lc_copy_links_new(void); /* NULL on OOM */
void lc_copy_links_free(lc_copy_links **l);

typedef struct lc_copy_opts {
    int set_owner; /* --chown given: uid/gid below */
    uid_t uid;
    gid_t gid;
    int set_mode; /* --chmod given, octal: mode below (07777 bits) */
    mode_t mode;
    char mode_sym[64];    /* --chmod given, symbolic ("u+x,g-w"): applied to each
                           * file's own bits; "" when none */
    int keep_owner;       /* keep the source's uid/gid (COPY --from without --chown) */
    int shallow;          /* a directory source makes only the directory (its
                           * contents are copied entry by entry) */
    lc_copy_links *links; /* may be NULL: every file is copied */
} lc_copy_opts;

/* "--chown" value: "uid", "uid:gid", "name", "name:group" (names through
 * root's /etc/passwd and /etc/group; root may be NULL for numeric only).
 * As BuildKit: a name alone takes its primary group from passwd, a number
 * alone uses the same number as gid. */
int lc_copy_parse_chown(const char *root, const char *spec, lc_copy_opts *o, lc_err *err);
/* "--chmod" value: octal ("755", "0644") or symbolic like chmod(1)
 * ("u+x,go-w", "a=rX"). */
int lc_copy_parse_chmod(const char *spec, lc_copy_opts *o, lc_err *err);
/* The permission bits mode gets from a symbolic --chmod (X: x only for
 * directories or when some x bit is set). */
mode_t lc_copy_apply_symbolic(const char *sym, mode_t mode, int is_dir);

/* 1 if container path dest is a directory inside root (symlinks resolved
 * in root), 0 otherwise. */
int lc_copy_is_dir(const char *root, const char *dest);

/* mkdir -p of container path dest inside root: new directories are 0755
 * and owned by o's owner when set (WORKDIR as the USER). */
int lc_copy_mkdir(const char *root, const char *dest, const lc_copy_opts *o, lc_err *err);

/* Copies host path src into root at container path dest ("/app/x"):
 * a directory's *contents* are merged into dest (created); a file or
 * symlink becomes dest itself (callers append the base name when the
 * Dockerfile destination ends in '/'). An existing non-directory at dest is
 * replaced; a directory where a file must go is an error. */
int lc_copy_path(const char *src, const char *root, const char *dest, const lc_copy_opts *o,
                 lc_err *err);

/* Creates file dest inside root with data (heredocs); mode unless
 * o->set_mode. */
int lc_copy_write_file(const char *root, const char *dest, const void *data, size_t len,
                       mode_t mode, const lc_copy_opts *o, lc_err *err);

/* 1 if src is a tar archive libarchive can read (plain, gzip, bzip2, xz,
 * zstd), 0 otherwise. */
int lc_copy_is_archive(const char *src);

/* ADD of a local archive: extracts src into the directory dest inside root
 * (created) through the safe extractor (lc_untar, PLAIN mode), applying
 * --chown when set. */
int lc_copy_add_archive(const char *src, const char *root, const char *dest, const lc_copy_opts *o,
                        lc_err *err);

#endif
