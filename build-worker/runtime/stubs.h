/* stubs.h - mount points a container needs in an overlay rootfs, made
 * before it starts and taken out of the layer after it ran.
 *
 * A bind or tmpfs target missing from the image (/etc/resolv.conf in a
 * FROM scratch image, /run/secrets/token, a cache mount's /root/.cache)
 * must exist for the mount, but the step did not create it: BuildKit
 * removes such stubs after a step (executor/stubs.go), and so do we:
 *
 *   lc_stubs_make(rootfs, targets, is_file, n, &s, &err);  // overlay mounted
 *   ... run the container ...
 *   unmount the overlay
 *   lc_stubs_remove(&s, upper_dir);
 *
 * Targets resolve inside the rootfs the way runc resolves mount
 * destinations (symlinks followed, never out of the root: openat2
 * RESOLVE_IN_ROOT). Each missing component is made (directories 0755, an
 * empty file for the last component of a file mount) and recorded.
 * lc_stubs_remove deletes from the upper dir every recorded stub that is
 * still an empty directory or an empty file, deepest first, then every
 * parent directory overlayfs copied up only to hold a stub: empty, not
 * opaque and with the mode and owner it had below. Nothing else of the
 * upper dir is touched and no symlink in it is followed.
 */
#ifndef LC_STUBS_H
#define LC_STUBS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct lc_stubs lc_stubs;

/* targets: absolute, cleaned container paths. is_file may be NULL (all
 * directories). FAILED_PRECONDITION when a component that must be a
 * directory is a file. *out is set also when nothing was made. */
int lc_stubs_make(const char *rootfs, const char *const *targets, const bool *is_file, size_t n,
                  lc_stubs **out, lc_err *err);

/* How many stubs were made (tests). */
size_t lc_stubs_count(const lc_stubs *s);

/* See above; frees *s and NULLs it (accepts NULL). */
void lc_stubs_remove(lc_stubs **s, const char *upper);

#endif
