/* mounts.c - host-side mounts of a RUN step (see mounts.h). */
#include "build-worker/runtime/mounts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/runtime/overlay.h"

int lc_mount_private_dir(const char *dir, lc_err *err)
{
    if (mkdir(dir, 0700) < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "create %s: %s", dir, strerror(errno));
    if (mount("tmpfs", dir, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0700,size=64m") < 0) {
        int e = errno;
        rmdir(dir);
        return lc_err_set(err, e == EPERM ? LC_PERMISSION_DENIED : lc_code_from_errno(e),
                          "mount a tmpfs on %s: %s (needs root)", dir, strerror(e));
    }
    return 0;
}

int lc_mount_private_dir_remove(const char *dir, lc_err *err)
{
    int rc = lc_mount_undo(dir, err);
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT)
        rc = lc_err_set(err, lc_code_from_errno(errno), "remove %s: %s", dir, strerror(errno));
    return rc;
}

int lc_mount_layers_ro(const char *const *layers, size_t n, const char *mnt, char **view,
                       int *mounted, lc_err *err)
{
    *mounted = 0;
    *view = NULL;
    if (n <= 1) {
        /* One layer is its own view; none is the empty directory mnt. */
        *view = strdup(n == 1 ? layers[0] : mnt);
        return *view ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    size_t len = 16;
    for (size_t i = 0; i < n; i++)
        len += strlen(layers[i]) + 1;
    char *opts = malloc(len);
    if (opts == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    size_t used = (size_t)sprintf(opts, "lowerdir=");
    for (size_t i = 0; i < n; i++)
        used += (size_t)sprintf(opts + used, "%s%s", i ? ":" : "", layers[i]);
    int rc = 0;
    if (used >= 4000) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                        "a view of %zu layers does not fit one mount's options", n);
    } else if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "mount a view of %zu layers on %s: %s", n,
                        mnt, strerror(errno));
    } else {
        *mounted = 1;
        if ((*view = strdup(mnt)) == NULL)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(opts);
    return rc;
}

int lc_mount_overlay_rw(const char *lower, const char *upper, const char *work, const char *mnt,
                        lc_err *err)
{
    const char *lowers[] = {lower};
    return lc_overlay_mount(lowers, 1, upper, work, mnt, err);
}

int lc_mount_undo(const char *mnt, lc_err *err)
{
    return lc_overlay_unmount(mnt, err); /* works for any mount point */
}
