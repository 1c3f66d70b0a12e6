/* runmounts.h - RUN --mount as a build runs it: each parsed mount
 * (dockerfile/runflags.h) becomes something on the worker to mount
 * (exec.h lc_exec_mount), and everything is undone after the step.
 *
 *   bind    the build context: only what the key saw (the selection after
 *           .dockerignore), hard-linked (or copied) into the step's
 *           scratch; a stage or image: a read-only view of its layers.
 *           source= picks a path inside (resolved within it). Read-only
 *           unless rw; rw gets a throw-away overlay: writes are discarded.
 *   cache   a directory in STATE_DIR/cache-mounts that outlives builds,
 *           chosen by id and what it starts from (from=/source=, uid, gid,
 *           mode: BuildKit's rule), created with mode (0755) and uid:gid
 *           (0:0), filled from from=/source= when new. sharing=shared lets
 *           concurrent builds use it together, locked makes them wait
 *           (flock), private gives a second user a directory of its own.
 *   tmpfs   a fresh tmpfs (size=).
 *   secret  the value of --secret id (secrets.h), mode 0400 0:0 unless
 *           said otherwise, at target and/or as env=; missing: an error
 *           naming the line, unless required=false (then not mounted).
 *   ssh     the agent of --ssh id, relayed (agentfwd.h); missing: as
 *           secrets.
 *
 * None of it enters the layer: the mounts live outside the rootfs and
 * their mount points are removed (runtime/stubs.h).
 */
#ifndef LC_RUNMOUNTS_H
#define LC_RUNMOUNTS_H

#include <stddef.h>

#include "build-worker/context/walk.h"
#include "build-worker/dockerfile/runflags.h"
#include "err.h"
#include "exec.h"
#include "secrets.h"

/* The unpacked layers (top first, *dirs and each string malloc'd) of what
 * a from= names: stage (its index) when >= 0, else the image ref, and a
 * text that identifies that content (a state or image digest, for the
 * cache directory's name; malloc'd). */
typedef int (*lc_runmounts_layers_fn)(void *ctx, int stage, const char *image, char ***dirs,
                                      size_t *n, char **ident, lc_err *err);

typedef struct lc_runmounts_env {
    const char *state_dir;     /* cache mounts: STATE_DIR/cache-mounts */
    const char *context_dir;   /* bind mounts of the build context */
    const char *scratch;       /* the step's scratch directory (views, copies) */
    const lc_secrets *secrets; /* --secret, --ssh; may be NULL */
    lc_runmounts_layers_fn layers;
    void *ctx;
} lc_runmounts_env;

typedef struct lc_runmounts lc_runmounts;

/* Prepares every mount of run. ctx_sel and stage are lc_key_step's mounts
 * and mount_stage (parallel to run->mounts). On failure everything done so
 * far is undone; errors name FILE:LINE:COL of the --mount. */
int lc_runmounts_prepare(const lc_runmounts_env *env, const lc_df_run *run,
                         lc_selection *const *ctx_sel, const int *stage, lc_runmounts **out,
                         lc_err *err);

/* The mounts for lc_exec_run_opts (borrowed from m). */
const lc_exec_mount *lc_runmounts_list(const lc_runmounts *m, size_t *n);

/* Unmounts views and overlays, releases cache locks, wipes secret values,
 * removes what was made in scratch; frees *m and NULLs it. */
void lc_runmounts_release(lc_runmounts **m);

#endif
