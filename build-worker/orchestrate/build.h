/* build.h - `layercache build`: the orchestrator.
 *
 * 1. parse the Dockerfile and compute every step key (keys/), before
 *    anything runs;
 * 2. look every key up at once: the local state directory, then the cache
 *    server (one concurrent batch);
 * 3. per needed stage, start from the last step that hit (a hit yields the
 *    whole image state after the step, so nothing before it is fetched);
 *    run the rest: RUN with runc on an overlayfs over the parent's layers,
 *    COPY/ADD into the overlay, metadata steps on the config;
 * 4. every executed step's state and layer are recorded locally and
 *    uploaded in the background while the next step runs;
 * 5. write the result: local image store (-t) and --output (OCI layout,
 *    docker archive, filesystem).
 *
 * Several platforms (--platform a,b) are several builders sharing the state
 * directory, the cache and the progress display: every builder computes its
 * keys and looks them up before any of them runs a step, so a platform that
 * cannot run here (no emulator, a base image of another platform) is
 * refused before anything runs.
 */
#ifndef LC_BUILD_H
#define LC_BUILD_H

#include <stdbool.h>
#include <stddef.h>

#include "build-worker/dockerfile/expand.h"
#include "digest.h"
#include "build-worker/orchestrate/output.h"
#include "build-worker/registry/pull.h"
#include "err.h"
#include "strlist.h"

typedef struct lc_build_opts {
    const char *context;      /* build context directory */
    const char *dockerfile;   /* NULL = <context>/Dockerfile */
    const char *dockerfile_text; /* the Dockerfile itself (-f -), named "-" in
                                  * messages; overrides dockerfile */
    size_t dockerfile_len;
    const lc_strlist *tags;   /* -t name:tag, may be NULL */
    const lc_strlist *labels; /* --label KEY=VALUE on the final image, may be NULL */
    const lc_df_var *build_args;
    size_t nbuild_args;
    const char *target;       /* --target stage, NULL = last */
    const lc_strlist *platforms; /* normalized "os/arch[/variant]"; NULL or empty = the
                                  * host's; several: each is built, outputs get an
                                  * image index */
    const char *cache;        /* grpc://host:port or NULL */
    const char *cache_peers;  /* cluster peer list or NULL (lc_remote_opts.peers) */
    const char *instance;     /* --cache-instance */
    const char *token;        /* bearer token or NULL */
    const char *cacert;       /* grpcs://: CA PEM file, NULL = system roots */
    const char *tls_cert;     /* grpcs://: client certificate and key (mutual TLS) or NULL */
    const char *tls_key;
    int cache_mode;           /* enum lc_cache_mode (remote.h) */
    bool cache_required;      /* --cache-required: a cache that is not usable fails the build */
    bool no_cache;            /* skip lookups, still upload */
    const char *state_dir;    /* NULL = default */
    const lc_output *outputs; /* --output, checked already (lc_output_check) */
    size_t noutputs;
    int compression;          /* enum lc_layer_compression */
    const char *summary_json; /* path or NULL */
    const char *worker_id;    /* recorded in ExecutedActionMetadata; NULL = hostname */
    int progress_mode;        /* enum lc_progress_mode; output goes to stderr */
    /* registry: FROM pulls (policy, credentials, TLS) and --push; NULL = defaults */
    const lc_registry_opts *registry;
    /* RUN: --network default|none|host (enum lc_df_network, 0 = default),
     * --add-host NAME:IP, --allow network.host (the entitlement RUN
     * --network=host needs), --secret and --ssh specs (secrets.h); lists
     * may be NULL. */
    int network;
    const lc_strlist *add_hosts;
    bool allow_network_host;
    const lc_strlist *secrets;
    const lc_strlist *ssh;
} lc_build_opts;

/* What a finished build made (docker buildx's metadata). */
typedef struct lc_build_result {
    /* The manifest of the image, or with several platforms the image index. */
    char digest[LC_DIGEST_OCI_LEN + 1];
    char media_type[96];
    int64_t size;
    /* The image ID (the config's digest); "" with several platforms. */
    char config_digest[LC_DIGEST_OCI_LEN + 1];
} lc_build_result;

/* Runs a build. Returns 0 and fills result (may be NULL), or a negative
 * code with the reason in err (a RUN that failed: ABORTED with its exit
 * code and last output lines). */
int lc_build_run(const lc_build_opts *opts, lc_build_result *result, lc_err *err);

#endif
