/* overlay.c - overlayfs mount helpers (see overlay.h). */
#include "build-worker/runtime/overlay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"

#define OPT_MAX 4000

static int bad_path(const char *p)
{
    return p == NULL || p[0] == '\0' || strpbrk(p, ",:\\") != NULL;
}

int lc_overlay_mount(const char *const *lowers, size_t n_lower, const char *upper, const char *work,
                     const char *target, lc_err *err)
{
    if (n_lower == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "overlay needs at least one lower dir");
    if (bad_path(upper) || bad_path(work) || target == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "overlay upper/work paths must be non-empty without ',' ':' '\\'");
    char *opts = malloc(OPT_MAX + 1);
    if (opts == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    size_t n = 0;
    int rc = 0;
    n += (size_t)snprintf(opts + n, OPT_MAX + 1 - n, "lowerdir=");
    for (size_t i = 0; i < n_lower && n < OPT_MAX; i++) {
        if (bad_path(lowers[i])) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                            "overlay lower dir \"%s\" is empty or has "
                            "',' ':' '\\'",
                            lowers[i] ? lowers[i] : "");
            goto out;
        }
        n += (size_t)snprintf(opts + n, OPT_MAX + 1 - n, "%s%s", i ? ":" : "", lowers[i]);
    }
    if (n < OPT_MAX)
        n += (size_t)snprintf(opts + n, OPT_MAX + 1 - n,
                              ",upperdir=%s,workdir=%s,index=off,redirect_dir=off,metacopy=off",
                              upper, work);
    if (n >= OPT_MAX) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                        "overlay options for %zu lower dirs exceed a page; use shorter paths",
                        n_lower);
        goto out;
    }
    int r = lc_fs_mkdir_p(upper);
    if (r == 0)
        r = lc_fs_mkdir_p(work);
    if (r < 0) {
        rc = lc_err_set(err, lc_code_from_errno(-r), "create %s / %s: %s", upper, work,
                        strerror(-r));
        goto out;
    }
    if (mount("overlay", target, "overlay", 0, opts) < 0) {
        int e = errno;
        rc = lc_err_set(err, e == EPERM ? LC_PERMISSION_DENIED : lc_code_from_errno(e),
                        "mount overlay on %s: %s (needs root; upper and work on one "
                        "filesystem)",
                        target, strerror(e));
    }
out:
    free(opts);
    return rc;
}

int lc_overlay_unmount(const char *target, lc_err *err)
{
    for (int i = 0; i < 20; i++) {
        if (umount2(target, 0) == 0)
            return 0;
        if (errno == EINVAL || errno == ENOENT)
            return 0; /* not a mount point (any more) */
        if (errno != EBUSY)
            break;
        usleep(50 * 1000);
    }
    if (errno == EBUSY && umount2(target, MNT_DETACH) == 0)
        return 0;
    return lc_err_set(err, lc_code_from_errno(errno), "unmount %s: %s", target, strerror(errno));
}
