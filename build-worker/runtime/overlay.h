/* overlay.h - overlayfs mounts for build steps (root only).
 *
 * The merged view is lowerdir=<parents, top first>, upperdir=<the step's
 * layer>, workdir=<scratch on the upper's filesystem>. After unmounting,
 * the upper dir holds exactly the step's changes (deletions as char
 * devices 0/0, opaque dirs as trusted.overlay.opaque=y), ready for
 * lc_layer_write. Options pin index/redirect_dir/metacopy off so the upper
 * dir never holds metadata-only copies or redirects that a tar cannot say.
 * COPY/ADD use the same mount: write into the merged dir, unmount, tar the
 * upper dir.
 */
#ifndef LC_OVERLAY_H
#define LC_OVERLAY_H

#include <stddef.h>

#include "err.h"

/* Mounts at target (an existing empty directory). upper and work are
 * created if missing. n_lower must be >= 1 (for scratch pass one empty
 * directory). Paths may not contain ',' ':' or '\\'; the option string must
 * fit in a page (about 4000 bytes of paths). */
int lc_overlay_mount(const char *const *lowers, size_t n_lower, const char *upper, const char *work,
                     const char *target, lc_err *err);

/* Unmounts target; falls back to a lazy detach when busy. Not mounted is
 * not an error. */
int lc_overlay_unmount(const char *target, lc_err *err);

#endif
