/* untar.h - safe extraction of a (possibly hostile) layer blob.
 *
 * Nothing is ever written outside dest: every entry path is cleaned and
 * refused when absolute or containing "..", parent directories are opened
 * one component at a time without following symlinks (an entry below a
 * symlink is refused), hard links must name an existing regular file inside
 * dest, and libarchive's ARCHIVE_EXTRACT_SECURE_NODOTDOT and
 * ARCHIVE_EXTRACT_SECURE_SYMLINKS checks run as a second line of defence.
 * (Entries are handed to libarchive as absolute paths under realpath(dest),
 * built by us after the checks, which is why SECURE_NOABSOLUTEPATHS is not
 * used: no process-wide chdir in a threaded program.)
 *
 * The blob may be gzip, zstd, xz, bzip2 or plain tar. While reading, the
 * compressed stream and the uncompressed tar are both hashed; a mismatch
 * with an expected digest is DATA_LOSS, reported after the last entry, so
 * dest then holds unverified content: extract into a fresh directory and
 * rename it into place only on success.
 */
#ifndef LC_UNTAR_H
#define LC_UNTAR_H

#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "err.h"

enum lc_untar_mode {
    /* No whiteout meaning: `.wh.*` names are ordinary files (ADD of a tar). */
    LC_UNTAR_PLAIN = 0,
    /* Flattening onto the parent's tree in dest: `.wh.x` removes x and
     * `.wh..wh..opq` empties its directory (only what lower layers put there,
     * never what this layer itself adds). */
    LC_UNTAR_APPLY = 1,
    /* A layer unpacked alone, for use as an overlayfs lowerdir: `.wh.x`
     * becomes a char device 0/0 named x, `.wh..wh..opq` sets
     * trusted.overlay.opaque=y on its directory. */
    LC_UNTAR_OVERLAY = 2,
};

typedef struct lc_untar_opts {
    int mode;          /* enum lc_untar_mode */
    int allow_devices; /* create char/block devices; otherwise they are skipped */
    int skip_unsafe;   /* 0: an unsafe entry fails the extraction (PERMISSION_DENIED);
                          1: it is skipped and counted in result.unsafe */
    int no_same_owner; /* 1: leave files owned by the caller */
    int force_owner;   /* 1: every entry gets uid/gid below (ADD --chown) */
    uid_t uid;
    gid_t gid;
    int xattrs;                      /* restore user.* / security.* xattrs (never
                                        trusted.*, nor another host's security.selinux;
                                        a file system without xattrs loses them) */
    const lc_digest *expect_blob;    /* optional: sha256 (+size if > 0) of the blob */
    const lc_digest *expect_diff_id; /* optional: sha256 of the uncompressed tar */
} lc_untar_opts;

typedef struct lc_untar_result {
    lc_digest blob;    /* digest + size of the bytes read */
    lc_digest diff_id; /* digest + size of the uncompressed tar */
    int64_t entries;   /* entries extracted (whiteouts included) */
    int64_t skipped;   /* devices skipped (allow_devices == 0) */
    int64_t unsafe;    /* unsafe entries skipped (skip_unsafe == 1) */
} lc_untar_result;

/* Extracts the blob file at path into the existing directory dest. opts
 * may be NULL (PLAIN, strict, same owner). result may be NULL. */
int lc_untar_file(const char *path, const char *dest, const lc_untar_opts *opts,
                  lc_untar_result *result, lc_err *err);

/* The same, reading from fd (not closed; read to EOF). */
int lc_untar_fd(int fd, const char *dest, const lc_untar_opts *opts, lc_untar_result *result,
                lc_err *err);

#endif
