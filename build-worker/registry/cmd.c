/* cmd.c - `layercache pull REF` and `layercache push NAME[:TAG] [DEST]`:
 * the registry commands outside builds (builds pull FROM images and push
 * with --push themselves). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/cli_flags.h"
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

static char *opt_platform;

static const lc_flag flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_state_dir_group),
    {"platform", 0, LC_FLAG_STRING, &opt_platform, NULL, "OS/ARCH[/VARIANT]",
     "pull: the platform to select from a multi-platform image (default: the host's)", true},
    /* pulled blobs are taken from and shared through the cache server's CAS */
    LC_FLAG_INCLUDE_GROUP(lc_cli_cache_group),
    LC_FLAG_INCLUDE_GROUP(lc_cli_instance_group),
    LC_FLAG_INCLUDE_GROUP(lc_cli_registry_group),
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
    int rc;
    if ((rc = lc_cli_statedir_open(&s->sd, err)) < 0)
        return rc;
    if ((s->progress = lc_progress_new(stderr, LC_PROGRESS_PLAIN)) == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    lc_remote_opts o = {.mode = LC_CACHE_RW, .worker = "layercache-pull"};
    lc_cli_remote_opts(&o);
    if ((rc = lc_remote_open(&o, s->progress, &s->remote, err)) < 0)
        return rc;
    s->ro = (lc_registry_opts){.client = lc_cli_regclient_opts(), .pull = policy};
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

typedef struct command {
    const char *name; /* for messages: "pull" */
    const char *usage;
    size_t min_args, max_args; /* positional arguments */
    const char *args_error;    /* when their number is wrong */
    int policy;                /* enum lc_pull_policy */
    /* Does the work once the session is open; prints the digest. */
    int (*run)(session *s, const lc_strlist *args, lc_err *err);
} command;

/* The part every registry command shares: flags, arguments, the session,
 * errors to stderr. Returns the exit status. */
static int run_command(const command *c, int argc, char **argv)
{
    lc_strlist pos = {0};
    lc_err err = {0};
    session s = {0};
    int status = 1;
    int rc = lc_cli_parse(flags, N_FLAGS, c->usage, argc, argv, &pos, &err);
    if (rc == LC_FLAGS_HELP) {
        status = 0;
        goto out;
    }
    if (rc < 0)
        goto fail;
    if (pos.len < c->min_args || pos.len > c->max_args) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "%s (see --help)", c->args_error);
        goto fail;
    }
    if (open_session(&s, c->policy, &err) < 0 || c->run(&s, &pos, &err) < 0)
        goto fail;
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache %s: %s\n", c->name, err.msg);
out:
    close_session(&s);
    lc_strlist_clear(&pos);
    lc_flags_free(flags, N_FLAGS);
    return status;
}

static void print_digest(const lc_digest *d)
{
    char hex[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(d, hex);
    printf("%s\n", hex);
}

static int pull(session *s, const lc_strlist *args, lc_err *err)
{
    lc_digest manifest;
    int rc = lc_pull_image(s->reg, args->items[0], opt_platform, &manifest, NULL, err);
    if (rc == 0)
        print_digest(&manifest);
    return rc;
}

int lc_cmd_pull(int argc, char **argv)
{
    static const command c = {
        .name = "pull",
        .usage = "usage: layercache pull [options] [REGISTRY/]REPOSITORY[:TAG|@DIGEST]\n\n"
                 "Pulls an image from its registry into the local image store (under its full\n"
                 "name, e.g. docker.io/library/ubuntu:latest) and prints its manifest digest.\n"
                 "With --cache, layers come from the cache server when it has them, and layers\n"
                 "fetched from the registry are shared through it.",
        .min_args = 1,
        .max_args = 1,
        .args_error = "expected one image reference",
        .policy = LC_PULL_ALWAYS,
        .run = pull,
    };
    return run_command(&c, argc, argv);
}

static int push(session *s, const lc_strlist *args, lc_err *err)
{
    lc_image *img = NULL;
    char *json = NULL;
    size_t len = 0;
    lc_digest state, manifest;
    int rc;
    if ((rc = lc_statedir_image_get(s->sd, args->items[0], &state, err)) < 0 ||
        (rc = lc_statedir_read_blob(s->sd, &state, &json, &len, err)) < 0 ||
        (rc = lc_image_parse(json, len, &img, err)) < 0 ||
        (rc = lc_push_image(s->reg, img, args->items[args->len - 1], &manifest, err)) < 0)
        goto out;
    print_digest(&manifest);
out:
    lc_image_free(&img);
    free(json);
    return rc;
}

int lc_cmd_push(int argc, char **argv)
{
    static const command c = {
        .name = "push",
        .usage = "usage: layercache push [options] NAME[:TAG] [DESTINATION]\n\n"
                 "Pushes an image of the local image store to a registry: to NAME[:TAG] itself\n"
                 "(which then names the registry, e.g. registry.example:5000/app:1), or to\n"
                 "DESTINATION. Prints the pushed manifest digest. With --cache, layers the\n"
                 "state directory lacks are taken from the cache server.",
        .min_args = 1,
        .max_args = 2,
        .args_error = "expected NAME[:TAG] [DESTINATION]",
        .policy = LC_PULL_NEVER,
        .run = push,
    };
    return run_command(&c, argc, argv);
}
