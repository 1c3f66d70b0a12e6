/* fsutil.h - small filesystem helpers shared by the layer, oci and runtime
 * modules: walking paths without following symlinks, recursive removal,
 * joining paths. All paths are plain C strings; nothing here follows a
 * symlink unless it says so.
 */
#ifndef LC_FSUTIL_H
#define LC_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Normalizes a relative archive/image path in place: strips leading "./"
 * and "/" (when allow_abs), collapses "//" and "." components and a trailing
 * "/". Returns 0, or -1 if the path is absolute (and !allow_abs) or has a
 * ".." component. An empty result means "the root". */
int lc_fs_clean_relpath(char *path, int allow_abs);

/* Opens the directory `rel` (a cleaned relative path, "" = dirfd itself)
 * below dirfd, one component at a time with O_NOFOLLOW, so no symlink is
 * ever followed. With create, missing components are made (mode 0755).
 * Returns an O_DIRECTORY fd (caller closes) or -errno (ELOOP/ENOTDIR when a
 * component is a symlink or not a directory). */
int lc_fs_open_dir_beneath(int dirfd, const char *rel, int create);

/* Removes name (file, symlink or whole tree) below dirfd without following
 * symlinks. Missing is not an error. Returns 0 or -errno. */
int lc_fs_rm_rf_at(int dirfd, const char *name);

/* Removes path recursively (no symlink following); missing is fine. */
int lc_fs_rm_rf(const char *path);

/* mkdir -p path (mode 0755 for new dirs). 0 or -errno. */
int lc_fs_mkdir_p(const char *path);

/* Returns malloc'd "a/b" (caller frees), NULL on OOM. */
char *lc_fs_join(const char *a, const char *b);

/* Writes len bytes of data to path (O_TRUNC, mode 0644). */
int lc_fs_write_file(const char *path, const void *data, size_t len, lc_err *err);

/* Reads all of path into a malloc'd, NUL-terminated buffer (*out, *len).
 * Fails with RESOURCE_EXHAUSTED above max bytes. */
int lc_fs_read_file(const char *path, size_t max, char **out, size_t *len, lc_err *err);

#endif
