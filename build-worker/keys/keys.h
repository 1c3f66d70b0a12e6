/* keys.h - the step key engine: the cache key of every step of a build,
 * computed from inputs only, before anything runs (docs/CACHE_KEYS.md has
 * the rule for each instruction and the encoding).
 *
 *   lc_keys_opts o = {.context_dir = ".", .platform = NULL, ...};
 *   lc_keys *k;
 *   if (lc_keys_compute(file, &o, &k, &err) == 0) {
 *       for (size_t i = 0; i < k->nsteps; i++) use(k->steps[i].key_str);
 *       lc_keys_free(&k);
 *   }
 */
#ifndef LC_KEYS_H
#define LC_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build-worker/context/hash.h"
#include "build-worker/context/statcache.h"
#include "build-worker/context/url.h"
#include "build-worker/context/walk.h"
#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/dockerfile/runflags.h"
#include "build-worker/keys/action.h"
#include "digest.h"
#include "err.h"
#include "strlist.h"

/* Resolves a base image reference (expanded, as in FROM or COPY --from) for
 * a platform ("linux/amd64") to its manifest digest (the digest is all that
 * enters keys, so a moved tag invalidates). Return 0 and fill *out, or
 * -LC_NOT_FOUND when the image is unknown (the engine then reports that the
 * image needs --base-digest or an import), or another negative code. A
 * build's resolver would look in the local image store, later a registry. */
typedef int (*lc_keys_resolve_fn)(void *ctx, const char *image, const char *platform,
                                  lc_digest *out, lc_err *err);

/* The config Env of a base image ("K=V" strings appended to env) for a
 * platform, so the planner expands `ENV PATH=/x:$PATH` with the base's
 * PATH. 0, or negative when unknown (the stage then starts without it; the
 * resolver reports the image's real problem). */
typedef int (*lc_keys_image_env_fn)(void *ctx, const char *image, const char *platform,
                                    lc_strlist *env);

typedef struct lc_keys_base {
    const char *image; /* reference exactly as FROM names it after expansion */
    lc_digest digest;
} lc_keys_base;

typedef struct lc_keys_opts {
    const char *context_dir;     /* required */
    const char *dockerfile_path; /* for "<Dockerfile>.dockerignore"; may be NULL */
    const char *target;          /* stage name/index; NULL = last stage */
    const lc_df_var *build_args; /* --build-arg NAME=VALUE */
    size_t nbuild_args;
    const char *platform;      /* "os/arch[/variant]"; NULL = the host's */
    const lc_keys_base *bases; /* --base-digest overrides, checked first */
    size_t nbases;
    lc_keys_resolve_fn resolve; /* may be NULL */
    void *resolve_ctx;
    lc_keys_image_env_fn image_env; /* may be NULL: base images add no Env */
    void *image_env_ctx;
    bool has_epoch; /* SOURCE_DATE_EPOCH given: it stamps every result */
    int64_t epoch;
    lc_statcache *statcache; /* may be NULL (everything is read) */
    /* Context bytes hashed so far (hash.h); may be NULL. */
    lc_hash_progress_fn hash_progress;
    void *hash_progress_ctx;
    /* RUN: the build's --network (what RUN without --network, or with
     * --network=default, gets; UNSET = default) and --add-host entries
     * ("name:ip"; only the names enter keys, as in BuildKit). */
    enum lc_df_network network;
    const char *const *extra_hosts;
    size_t n_extra_hosts;
    const char *download_dir; /* ADD <url> without --checksum is fetched here
                               * to be keyed by its content; NULL = /tmp */
} lc_keys_opts;

typedef struct lc_key_step {
    int stage;              /* stage index in the file */
    const char *stage_name; /* "AS" name or NULL */
    int index;              /* 0 = the stage's FROM, then 1.. per instruction */
    enum lc_df_kind kind;
    const lc_df_instr *instr; /* in the file (FROM for index 0) */
    const lc_df_step *step;   /* the plan's evaluated step; NULL for FROM */
    const char *instruction;  /* one line as written */
    char *normalized;         /* the normalized instruction (hashed, shown to people) */
    /* The cache key: the digest of a REAPI Action whose salt is `input` (the
     * digest of everything the step depends on) and whose Command names the
     * normalized instruction (action.h). This is what builds look up and
     * what `layercache keys` prints; the next step chains from it. */
    lc_digest key;
    char key_str[LC_DIGEST_OCI_LEN + 1]; /* "sha256:..." */
    lc_digest input;
    lc_step_action action;      /* owned: serialized Action and Command */

    /* COPY/ADD from the context: what was selected and hashed. */
    lc_selection *selection; /* owned; NULL otherwise */
    /* ADD <http(s) URL>: one per URL source, in order. With --checksum the
     * digest is the checksum and nothing is fetched yet (path NULL);
     * otherwise the file was downloaded to be keyed by its content. */
    lc_url_file *urls; /* owned */
    size_t nurls;
    lc_digest sources;       /* content digest of the selected sources */
    uint64_t files, bytes;
    /* COPY/ADD --from: the stage (index, -1 if none) or image, and the source
     * paths, expanded (for the build's content-based second lookup). */
    int from_stage;
    const char *from_image;
    lc_digest from_digest; /* the stage's last key or the image's digest */
    lc_strlist from_paths;
    bool from_content; /* keyed by the copied content (lc_keys_rekey_content) */
    /* RUN: its flags (mounts with BuildKit's defaults filled in, network),
     * and per mount (parallel to run.mounts): the selection of a bind mount
     * of the build context (owned, else NULL) and the stage a from= names
     * (its index, else -1: the build context, an image or nothing). */
    lc_df_run run;
    lc_selection **mounts;
    int *mount_stage;
    size_t nmounts;
    /* After lc_keys_rekey_mounts: per mount, whether from= is keyed by the
     * content it mounts (mount_content) instead of the stage's key. */
    bool *mount_by_content;
    lc_digest *mount_content;
    enum lc_df_network network; /* in effect: the RUN's, else the build's */

    /* A Command-like description for the REAPI Action uploaded beside the
     * result: argv (RUN: shell + command or the exec form; others:
     * {"layercache-step", KIND, normalized}), env "K=V" sorted by name,
     * working directory, user (may be ""), platform. */
    lc_strlist argv;
    lc_strlist env;
    const char *workdir;
    const char *user;
    const char *platform;
} lc_key_step;

typedef struct lc_key_stage {
    int index;
    const char *name;
    bool needed;
    const char *base;          /* expanded base reference ("scratch", image, stage name) */
    int base_stage;            /* -1 unless FROM <stage> */
    lc_digest base_digest;     /* image digest, the fixed scratch value, or the stage's last key */
    char *platform;            /* platform the stage builds for */
    size_t first_step, nsteps; /* slice of lc_keys.steps; nsteps 0 when not needed */
} lc_key_stage;

typedef struct lc_keys {
    const lc_df_file *file; /* borrowed */
    lc_df_plan *plan;       /* owned */
    lc_key_step *steps;     /* build order: needed stages in file order, FROM first */
    size_t nsteps;
    lc_key_stage *stages; /* one per stage of the file */
    size_t nstages;
    int target;
    lc_hash_stats hash;     /* context hashing totals */
    double context_seconds; /* wall time spent selecting and hashing context files */
} lc_keys;

/* Evaluates file (caller keeps it alive until lc_keys_free) for opts,
 * selects and hashes the context files every needed COPY/ADD reads (in
 * parallel, through the stat cache) and computes every key. Errors: parse
 * and evaluation errors with file:line:col, missing sources, unresolvable
 * base images, context problems. *out is owned by the caller. */
int lc_keys_compute(const lc_df_file *file, const lc_keys_opts *opts, lc_keys **out, lc_err *err);
void lc_keys_free(lc_keys **k);

/* BuildKit's second lookup for COPY --from=<stage>: when the source stage
 * was rebuilt, the copy is keyed by the content it copies instead of the
 * source stage's key, so an unchanged output still hits. Re-keys step
 * `step` (a COPY/ADD --from) with the selection `content` (hashed, paths
 * relative to the source root) and every later step of its stage from it.
 * opts must be those given to lc_keys_compute. */
int lc_keys_rekey_content(lc_keys *k, const lc_keys_opts *opts, size_t step,
                          const lc_selection *content, lc_err *err);

/* The same second lookup for a RUN whose --mount from= names a stage that
 * was rebuilt (BuildKit keys such a mount by the content it selects):
 * content[i] is the digest (lc_keys_content_digest) of what mount i of
 * step `step` mounts, or NULL to keep mount i keyed as it is. Re-keys the
 * step and every later step of its stage. */
int lc_keys_rekey_mounts(lc_keys *k, const lc_keys_opts *opts, size_t step,
                         const lc_digest *const *content, lc_err *err);

/* The content digest of a hashed selection, as the keys encode it
 * (layercache-sources-v1). */
void lc_keys_content_digest(const lc_selection *sel, lc_digest *out);
/* SOURCE_DATE_EPOCH for a build: the --build-arg of that name (as in
 * BuildKit), else the environment variable; *has = false when neither is a
 * non-negative integer (then *epoch = 0). */
void lc_keys_epoch(const lc_df_var *build_args, size_t n, bool *has, int64_t *epoch);

/* The key that stands for `FROM scratch`. */
void lc_keys_scratch_digest(lc_digest *out);

/* "linux/amd64", "linux/arm64", ... for the running machine (static string). */
const char *lc_keys_host_platform(void);

#endif
