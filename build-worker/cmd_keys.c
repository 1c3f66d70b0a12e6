/* cmd_keys.c - `layercache keys`: print the cache key of every step of a
 * build without building anything (docs/CACHE_KEYS.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "build-worker/cli_flags.h"
#include "build-worker/orchestrate/statedir.h"
#include "build-worker/context/statcache.h"
#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/keys/keys.h"
#include "build-worker/oci/image.h"
#include "build-worker/registry/pull.h"
#include "build-worker/oci/platform.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_keys(int argc, char **argv);

static char *opt_format;
static lc_strlist opt_base_digests;
static bool opt_no_stat_cache;

static const lc_flag flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_build_group),
    {"format", 0, LC_FLAG_STRING, &opt_format, "text", "text|json", "output format", true},
    LC_FLAG_INCLUDE_GROUP(lc_cli_state_dir_group),
    {"base-digest", 0, LC_FLAG_LIST, &opt_base_digests, NULL, "IMAGE=sha256:...",
     "digest to use for a base image named in FROM or COPY --from", true},
    {"no-stat-cache", 0, LC_FLAG_BOOL, &opt_no_stat_cache, NULL, NULL,
     "read every file instead of trusting the stat cache", true},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static const char usage_text[] =
    "usage: layercache keys [options] CONTEXT\n\n"
    "Computes the cache key of every step the build of CONTEXT would run, in build\n"
    "order (FROM first in each stage; only stages the target needs), hashing the\n"
    "files each COPY/ADD reads. Nothing is built or uploaded.\n\n"
    "JSON output: {\"steps\": [{\"stage\": \"name-or-index\", \"index\": N,\n"
    "  \"instruction\": \"...\", \"key\": \"sha256:...\", \"files\": N, \"bytes\": N}, ...]}";

/* lc_keys_image_env_fn over the local state directory, as builds see it:
 * a pulled or local image's config Env (ENV PATH=/x:$PATH expands it). */
static int local_image_env(void *ctx, const char *image, const char *platform, lc_strlist *env)
{
    lc_statedir *sd = ctx;
    lc_digest manifest, state;
    char *json = NULL;
    size_t len = 0;
    lc_image *img = NULL;
    if ((lc_pull_recorded(sd, image, platform, &manifest, &state) != 0 &&
         lc_statedir_image_get(sd, image, &state, NULL) != 0) ||
        lc_statedir_read_blob(sd, &state, &json, &len, NULL) != 0)
        return -LC_NOT_FOUND;
    int rc = lc_image_parse(json, len, &img, NULL);
    free(json);
    if (rc == 0)
        rc = lc_image_env_list(img, env);
    lc_image_free(&img);
    return rc;
}

static void print_text(const lc_keys *k)
{
    for (size_t i = 0; i < k->nsteps; i++) {
        const lc_key_step *s = &k->steps[i];
        char stage[32];
        if (s->stage_name == NULL)
            snprintf(stage, sizeof(stage), "%d", s->stage);
        printf("%-12s %3d  %s  %s", s->stage_name ? s->stage_name : stage, s->index, s->key_str,
               s->instruction);
        if (s->kind == LC_DF_COPY || s->kind == LC_DF_ADD)
            printf("  [%llu files, %llu bytes]", (unsigned long long)s->files,
                   (unsigned long long)s->bytes);
        putchar('\n');
    }
}

static int print_json(const lc_keys *k)
{
    json_t *root = json_object(), *steps = json_array();
    int rc = -1;
    if (root == NULL || steps == NULL)
        goto out;
    for (size_t i = 0; i < k->nsteps; i++) {
        const lc_key_step *s = &k->steps[i];
        char stage[32];
        snprintf(stage, sizeof(stage), "%d", s->stage);
        json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:I, s:I}", "stage",
                              s->stage_name ? s->stage_name : stage, "index", s->index,
                              "instruction", s->instruction, "key", s->key_str, "files",
                              (json_int_t)s->files, "bytes", (json_int_t)s->bytes);
        if (o == NULL || json_array_append_new(steps, o) != 0)
            goto out;
    }
    if (json_object_set(root, "steps", steps) != 0)
        goto out;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL)
        goto out;
    puts(text);
    free(text);
    rc = 0;
out:
    json_decref(steps);
    json_decref(root);
    return rc;
}

/* Splits "NAME=VALUE" items into vars (pointing into the strings). */
static int split_vars(const lc_strlist *l, lc_df_var *vars, size_t *n, bool from_env)
{
    *n = 0;
    for (size_t i = 0; i < l->len; i++) {
        char *eq = strchr(l->items[i], '=');
        if (eq == NULL) {
            if (!from_env)
                return -1;
            const char *v = getenv(l->items[i]);
            if (v == NULL)
                continue; /* Docker: unset in the environment means not given */
            vars[*n].name = l->items[i];
            vars[*n].value = v;
        } else {
            *eq = '\0';
            vars[*n].name = l->items[i];
            vars[*n].value = eq + 1;
        }
        (*n)++;
    }
    return 0;
}

int lc_cmd_keys(int argc, char **argv)
{
    lc_err err = {0};
    lc_strlist pos = {0};
    lc_df_file *file = NULL;
    lc_keys *keys = NULL;
    lc_statcache *sc = NULL;
    lc_statedir *sd = NULL;
    lc_df_var *vars = NULL, *bvars = NULL;
    lc_keys_base *bases = NULL;
    char *dockerfile = NULL, *state_dir = NULL;
    int status = 1;

    int rc = lc_cli_parse(flags, N_FLAGS, usage_text, argc, argv, &pos, &err);
    if (rc == LC_FLAGS_HELP) {
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "layercache keys: %s\n", err.msg);
        goto out;
    }
    if (pos.len != 1) {
        fprintf(stderr, "layercache keys: expected exactly one CONTEXT directory (see --help)\n");
        goto out;
    }
    const char *context = pos.items[0];
    if (strcmp(opt_format, "text") != 0 && strcmp(opt_format, "json") != 0) {
        fprintf(stderr, "layercache keys: --format must be text or json, not '%s'\n", opt_format);
        goto out;
    }
    struct stat st;
    if (stat(context, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "layercache keys: build context '%s' is not a directory\n", context);
        goto out;
    }
    if (lc_cli_build_opts.file != NULL) {
        dockerfile = strdup(lc_cli_build_opts.file);
    } else if ((dockerfile = malloc(strlen(context) + sizeof("/Dockerfile"))) != NULL) {
        sprintf(dockerfile, "%s/Dockerfile", context);
    }
    vars = calloc(lc_cli_build_opts.build_args.len + 1, sizeof(*vars));
    bvars = calloc(opt_base_digests.len + 1, sizeof(*bvars));
    bases = calloc(opt_base_digests.len + 1, sizeof(*bases));
    if (dockerfile == NULL || vars == NULL || bvars == NULL || bases == NULL) {
        fprintf(stderr, "layercache keys: out of memory\n");
        goto out;
    }
    size_t nvars = 0, nbases = 0;
    split_vars(&lc_cli_build_opts.build_args, vars, &nvars, true);
    if (split_vars(&opt_base_digests, bvars, &nbases, false) != 0) {
        fprintf(stderr, "layercache keys: --base-digest wants IMAGE=sha256:<64 hex digits>\n");
        goto out;
    }
    for (size_t i = 0; i < nbases; i++) {
        bases[i].image = bvars[i].name;
        if (lc_digest_parse_oci(bvars[i].value, &bases[i].digest, &err) != 0) {
            fprintf(stderr, "layercache keys: --base-digest %s: %s\n", bvars[i].name, err.msg);
            goto out;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (lc_df_parse_path(dockerfile, &file, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    state_dir = lc_cli_state_dir ? strdup(lc_cli_state_dir) : lc_statcache_default_dir();
    /* FROM images resolve through the local image store, as in builds. */
    if (state_dir != NULL && lc_statedir_open(state_dir, &sd, NULL) != 0)
        sd = NULL;
    if (!opt_no_stat_cache) {
        if (state_dir == NULL || lc_statcache_open(state_dir, &sc, &err) != 0) {
            fprintf(stderr, "layercache keys: warning: no stat cache (%s); reading every file\n",
                    state_dir ? err.msg : "out of memory");
            lc_err_clear(&err);
        }
    }
    /* The platform as builds normalize it, so both compute the same keys. */
    char platform[64] = "";
    if (lc_cli_build_opts.platform != NULL) {
        lc_platform p;
        if (strchr(lc_cli_build_opts.platform, ',') != NULL) {
            fprintf(stderr, "layercache keys: --platform: one platform at a time\n");
            goto out;
        }
        if (lc_platform_parse(lc_cli_build_opts.platform, &p, &err) < 0) {
            fprintf(stderr, "layercache keys: --platform: %s\n", err.msg);
            goto out;
        }
        lc_platform_format(&p, platform, sizeof(platform));
    }
    lc_keys_opts ko = {.context_dir = context,
                       .dockerfile_path = dockerfile,
                       .target = lc_cli_build_opts.target,
                       .build_args = vars,
                       .nbuild_args = nvars,
                       .platform = platform[0] ? platform : NULL,
                       .bases = bases,
                       .nbases = nbases,
                       .resolve = sd ? lc_statedir_resolve : NULL,
                       .resolve_ctx = sd,
                       .image_env = sd ? local_image_env : NULL,
                       .image_env_ctx = sd,
                       .statcache = sc,
                       .extra_hosts = (const char *const *)lc_cli_build_opts.add_hosts.items,
                       .n_extra_hosts = lc_cli_build_opts.add_hosts.len};
    int network = 0;
    if (lc_cli_build_network(&network, &err) != 0) {
        fprintf(stderr, "layercache keys: %s\n", err.msg);
        goto out;
    }
    ko.network = (enum lc_df_network)network;
    lc_keys_epoch(vars, nvars, &ko.has_epoch, &ko.epoch);
    if (lc_keys_compute(file, &ko, &keys, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (strcmp(opt_format, "json") == 0) {
        if (print_json(keys) != 0) {
            fprintf(stderr, "layercache keys: out of memory\n");
            goto out;
        }
    } else {
        print_text(keys);
    }
    fflush(stdout);
    fprintf(stderr,
            "context: %llu files, %llu bytes; read %llu files (%llu bytes), %llu from the stat "
            "cache; %.3f s; %zu steps keyed in %.3f s\n",
            (unsigned long long)keys->hash.files, (unsigned long long)keys->hash.bytes,
            (unsigned long long)keys->hash.files_read, (unsigned long long)keys->hash.bytes_read,
            (unsigned long long)keys->hash.cache_hits, keys->context_seconds, keys->nsteps,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (sc != NULL && lc_statcache_save(sc, &err) != 0)
        fprintf(stderr, "layercache keys: warning: %s\n", err.msg);
    status = 0;
out:
    lc_keys_free(&keys);
    lc_df_file_free(&file);
    lc_statcache_free(&sc);
    lc_statedir_close(&sd);
    free(vars);
    free(bvars);
    free(bases);
    free(dockerfile);
    free(state_dir);
    lc_strlist_clear(&pos);
    lc_flags_free(flags, N_FLAGS);
    return status;
}
