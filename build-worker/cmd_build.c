/* cmd_build.c - `layercache build`: build a Dockerfile, reusing and sharing
 * every step through the local state directory and the cache server. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/orchestrate/build.h"
#include "build-worker/orchestrate/remote.h"
#include "build-worker/layer/tarwrite.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_build(int argc, char **argv);

static char *opt_file, *opt_target, *opt_platform, *opt_cache, *opt_instance, *opt_token,
    *opt_cache_mode, *opt_state_dir, *opt_output, *opt_progress, *opt_summary, *opt_compression,
    *opt_worker, *opt_cacert, *opt_tls_cert, *opt_tls_key;
static lc_strlist opt_tags, opt_build_args;
static bool opt_no_cache, opt_quiet;
/* registry (build-worker/registry/): pulls of FROM images and --push */
static char *opt_pull, *opt_registry_auth, *opt_registry_cacert;
static lc_strlist opt_insecure_registry;
static bool opt_push;
static int64_t opt_registry_chunk;

static const lc_flag flags[] = {
    {"file", 'f', LC_FLAG_STRING, &opt_file, NULL, "FILE",
     "Dockerfile to build (default: CONTEXT/Dockerfile)", true},
    {"tag", 't', LC_FLAG_LIST, &opt_tags, NULL, "NAME[:TAG]",
     "store the image in the local image store under this name", true},
    {"build-arg", 0, LC_FLAG_LIST, &opt_build_args, NULL, "NAME=VALUE",
     "set a build argument; NAME alone takes the value from the environment", true},
    {"target", 0, LC_FLAG_STRING, &opt_target, NULL, "STAGE",
     "build up to this stage (name or index; default: the last stage)", true},
    {"platform", 0, LC_FLAG_STRING, &opt_platform, NULL, "OS/ARCH",
     "target platform (default: the host's)", true},
    {"cache", 0, LC_FLAG_STRING, &opt_cache, NULL, "grpc[s]://HOST:PORT",
     "cache server to share steps through (none: local cache only); grpcs:// for TLS"},
    {"cache-instance", 0, LC_FLAG_STRING, &opt_instance, "", "NAME",
     "REAPI instance name on the cache server (one per team or project)"},
    {"token", 0, LC_FLAG_STRING, &opt_token, NULL, "TOKEN",
     "bearer token for the cache server (prefer the environment variable)"},
    {"cacert", 0, LC_FLAG_STRING, &opt_cacert, NULL, "FILE",
     "grpcs://: PEM file of the CA that signed the server's certificate (default: system roots)"},
    {"tls-cert", 0, LC_FLAG_STRING, &opt_tls_cert, NULL, "FILE",
     "grpcs://: client certificate (PEM) for servers that require mutual TLS; needs --tls-key"},
    {"tls-key", 0, LC_FLAG_STRING, &opt_tls_key, NULL, "FILE",
     "grpcs://: private key (PEM) of --tls-cert"},
    {"cache-mode", 0, LC_FLAG_STRING, &opt_cache_mode, "rw", "rw|ro|off",
     "rw: look up and upload; ro: look up only (laptops); off: no cache server"},
    {"no-cache", 0, LC_FLAG_BOOL, &opt_no_cache, NULL, NULL,
     "do not reuse any cached step (results are still uploaded)", true},
    {"state-dir", 0, LC_FLAG_STRING, &opt_state_dir, NULL, "DIR",
     "local state directory: layers, blobs, images (default: ~/.cache/layercache)"},
    {"output", 'o', LC_FLAG_STRING, &opt_output, NULL, "type=oci,dest=PATH[.tar]",
     "also write the image as an OCI image layout (directory, or tar if PATH ends in .tar)", true},
    {"compression", 0, LC_FLAG_STRING, &opt_compression, "gzip", "gzip|zstd",
     "layer compression", true},
    {"progress", 0, LC_FLAG_STRING, &opt_progress, "plain", "plain|tty", "progress output style",
     true},
    {"summary-json", 0, LC_FLAG_STRING, &opt_summary, NULL, "FILE",
     "write a per-step JSON summary of the build to FILE", true},
    {"worker-id", 0, LC_FLAG_STRING, &opt_worker, NULL, "NAME",
     "name recorded with uploaded results (default: the host name)"},
    {"quiet", 'q', LC_FLAG_BOOL, &opt_quiet, NULL, NULL, "print only errors", true},
    /* registry */
    {"pull", 0, LC_FLAG_STRING, &opt_pull, "missing", "missing|always|never",
     "FROM images from registries: missing pulls those not pulled before, always checks the "
     "registry (a moved tag changes the keys), never uses local copies only"},
    {"push", 0, LC_FLAG_BOOL, &opt_push, NULL, NULL,
     "push the image to the registry of every -t NAME (host[:port]/repo:tag)", true},
    {"registry-auth", 0, LC_FLAG_STRING, &opt_registry_auth, NULL, "FILE",
     "registry credentials in Docker's config.json format (default: $DOCKER_CONFIG/config.json, "
     "else ~/.docker/config.json)"},
    {"registry-cacert", 0, LC_FLAG_STRING, &opt_registry_cacert, NULL, "FILE",
     "PEM CA bundle for registries with a private CA (default: the system store)"},
    {"insecure-registry", 0, LC_FLAG_LIST, &opt_insecure_registry, NULL, "HOST:PORT",
     "talk plain HTTP to this registry (repeatable)"},
    {"registry-chunk-size", 0, LC_FLAG_SIZE, &opt_registry_chunk, "0", "BYTES",
     "--push: upload blobs larger than this in chunks of this size (0: one request)"},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static const char usage_text[] =
    "usage: layercache build [options] CONTEXT\n\n"
    "Builds the Dockerfile in CONTEXT. Every step's cache key is computed first and\n"
    "looked up (local state directory, then the cache server); steps that hit are\n"
    "reused without running, the others run with runc and their results are\n"
    "uploaded so that any other build, on any machine, reuses them.\n\n"
    "The cache server and token can also come from LAYERCACHE_CACHE and\n"
    "LAYERCACHE_TOKEN.";

/* --build-arg NAME=VALUE, or NAME alone: the value from the environment. */
static int split_build_args(lc_df_var *vars, lc_err *err)
{
    for (size_t i = 0; i < opt_build_args.len; i++) {
        char *item = opt_build_args.items[i];
        char *eq = strchr(item, '=');
        if (eq == item)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "--build-arg '%s': missing NAME", item);
        if (eq != NULL) {
            *eq = '\0';
            vars[i].name = item;
            vars[i].value = eq + 1;
        } else {
            vars[i].name = item;
            vars[i].value = getenv(item); /* unset: the ARG keeps its default */
        }
    }
    return 0;
}

int lc_cmd_build(int argc, char **argv)
{
    lc_strlist positional = {0};
    lc_err err = {0};
    lc_df_var *vars = NULL;
    int status = 1;
    int rc = lc_flags_parse(flags, N_FLAGS, "LAYERCACHE_", argc, argv, 1, &positional, &err);
    if (rc == LC_FLAGS_HELP) {
        lc_flags_usage(stdout, usage_text, flags, N_FLAGS, "LAYERCACHE_");
        status = 0;
        goto out;
    }
    if (rc < 0)
        goto fail;
    if (positional.len != 1) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "expected exactly one CONTEXT directory (see --help)");
        goto fail;
    }
    int mode = strcmp(opt_cache_mode, "rw") == 0   ? LC_CACHE_RW
               : strcmp(opt_cache_mode, "ro") == 0 ? LC_CACHE_RO
               : strcmp(opt_cache_mode, "off") == 0 ? LC_CACHE_OFF
                                                   : -1;
    if (mode < 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--cache-mode must be rw, ro or off, not '%s'",
                   opt_cache_mode);
        goto fail;
    }
    int compression = lc_layer_compression_of(strcmp(opt_compression, "zstd") == 0
                                                  ? LC_MEDIA_LAYER_ZSTD
                                                  : LC_MEDIA_LAYER_GZIP);
    if (strcmp(opt_compression, "gzip") != 0 && strcmp(opt_compression, "zstd") != 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--compression must be gzip or zstd");
        goto fail;
    }
    if (strcmp(opt_progress, "plain") != 0 && strcmp(opt_progress, "tty") != 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--progress must be plain or tty");
        goto fail;
    }
    lc_registry_opts reg = {.client = {.auth_file = opt_registry_auth,
                                       .cacert = opt_registry_cacert,
                                       .insecure = &opt_insecure_registry,
                                       .chunk_size = (uint64_t)opt_registry_chunk},
                            .push = opt_push};
    if (lc_pull_policy_parse(opt_pull, &reg.pull, &err) < 0)
        goto fail;
    if (opt_push && opt_tags.len == 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--push needs -t REGISTRY/REPOSITORY:TAG");
        goto fail;
    }
    vars = calloc(opt_build_args.len + 1, sizeof(*vars));
    if (vars == NULL || split_build_args(vars, &err) < 0)
        goto fail;
    lc_build_opts o = {.context = positional.items[0],
                       .dockerfile = opt_file,
                       .tags = &opt_tags,
                       .build_args = vars,
                       .nbuild_args = opt_build_args.len,
                       .target = opt_target,
                       .platform = opt_platform,
                       .cache = opt_cache,
                       .instance = opt_instance,
                       .token = opt_token,
                       .cacert = opt_cacert,
                       .tls_cert = opt_tls_cert,
                       .tls_key = opt_tls_key,
                       .cache_mode = mode,
                       .no_cache = opt_no_cache,
                       .state_dir = opt_state_dir,
                       .output = opt_output,
                       .compression = compression,
                       .summary_json = opt_summary,
                       .worker_id = opt_worker,
                       .quiet = opt_quiet,
                       .registry = &reg};
    if (lc_build_run(&o, &err) < 0)
        goto fail;
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache build: %s\n", err.msg[0] ? err.msg : "failed");
out:
    free(vars);
    lc_strlist_clear(&positional);
    lc_flags_free(flags, N_FLAGS);
    return status;
}
