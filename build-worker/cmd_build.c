/* cmd_build.c - `layercache build`: build a Dockerfile, reusing and sharing
 * every step through the local state directory and the cache server. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/cli_flags.h"
#include "build-worker/orchestrate/build.h"
#include "build-worker/orchestrate/remote.h"
#include "build-worker/layer/tarwrite.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_build(int argc, char **argv);

/* What to build, the cache server, registry and state directory flags are
 * cli_flags.h's. */
static char *opt_cache_mode, *opt_output, *opt_progress, *opt_summary, *opt_compression,
    *opt_worker;
static lc_strlist opt_tags;
static bool opt_no_cache, opt_quiet;
/* registry (build-worker/registry/): pulls of FROM images and --push */
static char *opt_pull;
static bool opt_push;

static const lc_flag flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_build_group),
    {"tag", 't', LC_FLAG_LIST, &opt_tags, NULL, "NAME[:TAG]",
     "store the image in the local image store under this name", true},
    LC_FLAG_INCLUDE_GROUP(lc_cli_cache_group),
    LC_FLAG_INCLUDE_GROUP(lc_cli_instance_group),
    {"cache-mode", 0, LC_FLAG_STRING, &opt_cache_mode, "rw", "rw|ro|off",
     "rw: look up and upload; ro: look up only (laptops); off: no cache server"},
    {"no-cache", 0, LC_FLAG_BOOL, &opt_no_cache, NULL, NULL,
     "do not reuse any cached step (results are still uploaded)", true},
    LC_FLAG_INCLUDE_GROUP(lc_cli_state_dir_group),
    {"output", 'o', LC_FLAG_STRING, &opt_output, NULL, "type=oci,dest=PATH[.tar]",
     "also write the image as an OCI image layout (directory, or tar if PATH ends in .tar)", true},
    {"compression", 0, LC_FLAG_STRING, &opt_compression, "gzip", "gzip|zstd", "layer compression",
     true},
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
    LC_FLAG_INCLUDE_GROUP(lc_cli_registry_group),
    LC_FLAG_INCLUDE_GROUP(lc_cli_run_group),
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static const char usage_text[] =
    "usage: layercache build [options] CONTEXT\n\n"
    "Builds the Dockerfile in CONTEXT. Every step's cache key is computed first and\n"
    "looked up (local state directory, then the cache server); steps that hit are\n"
    "reused without running, the others run with runc and their results are\n"
    "uploaded so that any other build, on any machine, reuses them. Without\n"
    "--cache, only the local state directory is used.\n\n"
    "The cache server and token can also come from LAYERCACHE_CACHE and\n"
    "LAYERCACHE_TOKEN.";

/* --build-arg NAME=VALUE, or NAME alone: the value from the environment. */
static int split_build_args(lc_df_var *vars, lc_err *err)
{
    for (size_t i = 0; i < lc_cli_build_opts.build_args.len; i++) {
        char *item = lc_cli_build_opts.build_args.items[i];
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
    int rc = lc_cli_parse(flags, N_FLAGS, usage_text, argc, argv, &positional, &err);
    if (rc == LC_FLAGS_HELP) {
        status = 0;
        goto out;
    }
    if (rc < 0)
        goto fail;
    if (positional.len != 1) {
        lc_err_set(&err, LC_INVALID_ARGUMENT,
                   "expected exactly one CONTEXT directory (see --help)");
        goto fail;
    }
    int mode = strcmp(opt_cache_mode, "rw") == 0    ? LC_CACHE_RW
               : strcmp(opt_cache_mode, "ro") == 0  ? LC_CACHE_RO
               : strcmp(opt_cache_mode, "off") == 0 ? LC_CACHE_OFF
                                                    : -1;
    if (mode < 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--cache-mode must be rw, ro or off, not '%s'",
                   opt_cache_mode);
        goto fail;
    }
    int compression = lc_layer_compression_of(
        strcmp(opt_compression, "zstd") == 0 ? LC_MEDIA_LAYER_ZSTD : LC_MEDIA_LAYER_GZIP);
    if (strcmp(opt_compression, "gzip") != 0 && strcmp(opt_compression, "zstd") != 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--compression must be gzip or zstd");
        goto fail;
    }
    if (strcmp(opt_progress, "plain") != 0 && strcmp(opt_progress, "tty") != 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--progress must be plain or tty");
        goto fail;
    }
    lc_registry_opts reg = {.client = lc_cli_regclient_opts(), .push = opt_push};
    if (lc_pull_policy_parse(opt_pull, &reg.pull, &err) < 0)
        goto fail;
    if (opt_push && opt_tags.len == 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--push needs -t REGISTRY/REPOSITORY:TAG");
        goto fail;
    }
    vars = calloc(lc_cli_build_opts.build_args.len + 1, sizeof(*vars));
    if (vars == NULL || split_build_args(vars, &err) < 0)
        goto fail;
    int network = 0;
    bool allow_host = false;
    if (lc_cli_build_network(&network, &err) < 0 ||
        lc_cli_run_allow(network, &allow_host, &err) < 0)
        goto fail;
    lc_build_opts o = {.context = positional.items[0],
                       .dockerfile = lc_cli_build_opts.file,
                       .tags = &opt_tags,
                       .build_args = vars,
                       .nbuild_args = lc_cli_build_opts.build_args.len,
                       .target = lc_cli_build_opts.target,
                       .platform = lc_cli_build_opts.platform,
                       .cache = lc_cli_cache_target(),
                       .cache_peers = lc_cli_cache_opts.peers,
                       .instance = lc_cli_cache_opts.instance,
                       .token = lc_cli_cache_opts.token,
                       .cacert = lc_cli_cache_opts.cacert,
                       .tls_cert = lc_cli_cache_opts.tls_cert,
                       .tls_key = lc_cli_cache_opts.tls_key,
                       .cache_mode = mode,
                       .no_cache = opt_no_cache,
                       .state_dir = lc_cli_state_dir,
                       .output = opt_output,
                       .compression = compression,
                       .summary_json = opt_summary,
                       .worker_id = opt_worker,
                       .quiet = opt_quiet,
                       .registry = &reg,
                       .network = network,
                       .add_hosts = &lc_cli_build_opts.add_hosts,
                       .allow_network_host = allow_host,
                       .secrets = &lc_cli_run_opts.secrets,
                       .ssh = &lc_cli_run_opts.ssh};
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
