/* cmd.c - `layercache pull REF` and `layercache push NAME[:TAG] [DEST]`:
 * the registry commands outside builds (builds pull FROM images and push
 * with --push themselves). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/orchestrate/progress.h"
#include "build-worker/orchestrate/remote.h"
#include "build-worker/orchestrate/statedir.h"
#include "build-worker/oci/image.h"
#include "build-worker/registry/pull.h"
#include "build-worker/registry/push.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_pull(int argc, char **argv);
int lc_cmd_push(int argc, char **argv);

static char *opt_state_dir, *opt_platform, *opt_cache, *opt_instance, *opt_token, *opt_cacert,
    *opt_auth, *opt_reg_cacert;
static lc_strlist opt_insecure;
static int64_t opt_chunk;

static const lc_flag flags[] = {
    {"state-dir", 0, LC_FLAG_STRING, &opt_state_dir, NULL, "DIR",
     "local state directory (default: ~/.cache/layercache)"},
    {"platform", 0, LC_FLAG_STRING, &opt_platform, NULL, "OS/ARCH[/VARIANT]",
     "pull: the platform to select from a multi-platform image (default: the host's)", true},
    {"cache", 0, LC_FLAG_STRING, &opt_cache, NULL, "grpc[s]://HOST:PORT",
     "cache server: pulled blobs are taken from and shared through its CAS"},
    {"cache-instance", 0, LC_FLAG_STRING, &opt_instance, "", "NAME", "REAPI instance name"},
    {"token", 0, LC_FLAG_STRING, &opt_token, NULL, "TOKEN", "bearer token for the cache server"},
    {"cacert", 0, LC_FLAG_STRING, &opt_cacert, NULL, "FILE",
     "grpcs://: CA of the cache server (default: system roots)"},
    {"registry-auth", 0, LC_FLAG_STRING, &opt_auth, NULL, "FILE",
     "registry credentials in Docker's config.json format (default: $DOCKER_CONFIG/config.json, "
     "else ~/.docker/config.json)"},
    {"registry-cacert", 0, LC_FLAG_STRING, &opt_reg_cacert, NULL, "FILE",
     "PEM CA bundle for registries with a private CA (default: the system store)"},
    {"insecure-registry", 0, LC_FLAG_LIST, &opt_insecure, NULL, "HOST:PORT",
     "talk plain HTTP to this registry (repeatable)"},
    {"registry-chunk-size", 0, LC_FLAG_SIZE, &opt_chunk, "0", "BYTES",
     "push: upload blobs larger than this in chunks of this size (0: one request)"},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

typedef struct session {
    lc_statedir *sd;
    lc_progress *progress;
    lc_remote *remote;
    lc_registry *reg;
    lc_registry_opts ro;
} session;

static int open_session(session *s, int policy, lc_err *err)
{
    char path[PATH_MAX];
    int rc;
    if (opt_state_dir != NULL)
        snprintf(path, sizeof(path), "%s", opt_state_dir);
    else if ((rc = lc_statedir_default(path, sizeof(path), err)) < 0)
        return rc;
    if ((rc = lc_statedir_open(path, &s->sd, err)) < 0)
        return rc;
    if ((s->progress = lc_progress_new(stdout)) == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    lc_remote_opts o = {.target = opt_cache,
                        .instance = opt_instance,
                        .token = opt_token,
                        .cacert = opt_cacert,
                        .mode = LC_CACHE_RW,
                        .worker = "layercache-pull"};
    if ((rc = lc_remote_open(&o, s->progress, &s->remote, err)) < 0)
        return rc;
    s->ro = (lc_registry_opts){.client = {.auth_file = opt_auth,
                                          .cacert = opt_reg_cacert,
                                          .insecure = &opt_insecure,
                                          .chunk_size = (uint64_t)opt_chunk},
                               .pull = policy};
    /* Notes to stderr: stdout carries only the digest. */
    return lc_registry_open(&s->ro, s->sd, s->remote, NULL, &s->reg, err);
}

static void close_session(session *s)
{
    lc_registry_close(&s->reg);
    lc_remote_close(&s->remote); /* drains the uploads of pulled blobs */
    lc_progress_free(&s->progress);
    lc_statedir_close(&s->sd);
}

/* Parses flags; 1 = help printed, 0 = go on, <0 = error in err. */
static int parse(int argc, char **argv, const char *usage, lc_strlist *pos, lc_err *err)
{
    int rc = lc_flags_parse(flags, N_FLAGS, "LAYERCACHE_", argc, argv, 1, pos, err);
    if (rc == LC_FLAGS_HELP) {
        lc_flags_usage(stdout, usage, flags, N_FLAGS, "LAYERCACHE_");
        return 1;
    }
    return rc;
}

int lc_cmd_pull(int argc, char **argv)
{
    static const char usage[] =
        "usage: layercache pull [options] [REGISTRY/]REPOSITORY[:TAG|@DIGEST]\n\n"
        "Pulls an image from its registry into the local image store (under its full\n"
        "name, e.g. docker.io/library/ubuntu:latest) and prints its manifest digest.\n"
        "With --cache, layers come from the cache server when it has them, and layers\n"
        "fetched from the registry are shared through it.";
    lc_strlist pos = {0};
    lc_err err = {0};
    session s = {0};
    int status = 1, rc = parse(argc, argv, usage, &pos, &err);
    if (rc == 1) {
        status = 0;
        goto out;
    }
    if (rc < 0)
        goto fail;
    if (pos.len != 1) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "expected one image reference (see --help)");
        goto fail;
    }
    lc_digest manifest;
    char hex[LC_DIGEST_OCI_LEN + 1];
    if (open_session(&s, LC_PULL_ALWAYS, &err) < 0 ||
        lc_pull_image(s.reg, pos.items[0], opt_platform, &manifest, NULL, &err) < 0)
        goto fail;
    lc_digest_oci(&manifest, hex);
    printf("%s\n", hex);
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache pull: %s\n", err.msg);
out:
    close_session(&s);
    lc_strlist_clear(&pos);
    lc_flags_free(flags, N_FLAGS);
    return status;
}

int lc_cmd_push(int argc, char **argv)
{
    static const char usage[] =
        "usage: layercache push [options] NAME[:TAG] [DESTINATION]\n\n"
        "Pushes an image of the local image store to a registry: to NAME[:TAG] itself\n"
        "(which then names the registry, e.g. registry.example:5000/app:1), or to\n"
        "DESTINATION. Prints the pushed manifest digest. With --cache, layers the\n"
        "state directory lacks are taken from the cache server.";
    lc_strlist pos = {0};
    lc_err err = {0};
    session s = {0};
    lc_image *img = NULL;
    char *json = NULL;
    size_t len = 0;
    int status = 1, rc = parse(argc, argv, usage, &pos, &err);
    if (rc == 1) {
        status = 0;
        goto out;
    }
    if (rc < 0)
        goto fail;
    if (pos.len != 1 && pos.len != 2) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "expected NAME[:TAG] [DESTINATION] (see --help)");
        goto fail;
    }
    lc_digest state, manifest;
    char hex[LC_DIGEST_OCI_LEN + 1];
    if (open_session(&s, LC_PULL_NEVER, &err) < 0 ||
        lc_statedir_image_get(s.sd, pos.items[0], &state, &err) < 0 ||
        lc_statedir_read_blob(s.sd, &state, &json, &len, &err) < 0 ||
        lc_image_parse(json, len, &img, &err) < 0 ||
        lc_push_image(s.reg, img, pos.items[pos.len - 1], &manifest, &err) < 0)
        goto fail;
    lc_digest_oci(&manifest, hex);
    printf("%s\n", hex);
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache push: %s\n", err.msg);
out:
    lc_image_free(&img);
    free(json);
    close_session(&s);
    lc_strlist_clear(&pos);
    lc_flags_free(flags, N_FLAGS);
    return status;
}
