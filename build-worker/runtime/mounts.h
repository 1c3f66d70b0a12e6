/* mounts.h - host-side mounts a RUN step needs besides its rootfs (root
 * only): a private tmpfs for what must never reach the disk, read-only
 * views of layers, and throw-away writable overlays for `rw` binds.
 * Each mount is undone by lc_mount_undo (lazily when busy).
 */
#ifndef LC_MOUNTS_H
#define LC_MOUNTS_H

#include <stddef.h>

#include "err.h"

/* Makes dir (mode 0700, must not exist) and mounts a tmpfs on it (nodev,
 * nosuid, at most 64 MiB): the step's bundle, config.json (the process
 * environment), secrets, generated /etc files and agent sockets live
 * there and vanish with lc_mount_private_dir_remove. */
int lc_mount_private_dir(const char *dir, lc_err *err);
/* Unmounts and removes dir (what is in it goes with the tmpfs). Missing is
 * fine. */
int lc_mount_private_dir_remove(const char *dir, lc_err *err);

/* A read-only view of layers (top first, overlay form) at mnt (an existing
 * empty directory). With one layer that directory itself is the view and
 * nothing is mounted. *view gets the path to use (malloc'd). */
int lc_mount_layers_ro(const char *const *layers, size_t n, const char *mnt, char **view,
                       int *mounted, lc_err *err);

/* A writable overlay of lower (a directory) at mnt, with its changes in
 * upper/work (empty directories on one filesystem): what the step writes
 * there is thrown away with them. */
int lc_mount_overlay_rw(const char *lower, const char *upper, const char *work, const char *mnt,
                        lc_err *err);

/* Unmounts mnt (not mounted is fine). */
int lc_mount_undo(const char *mnt, lc_err *err);

#endif
