/* cmd_build.c - `layercache build`: build a Dockerfile, reusing and sharing
 * every step through the local state directory and the cache server. The
 * flags are `docker buildx build`'s where both have one; every flag, tag
 * and output is checked before anything is built. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/cli_flags.h"
#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/tarwrite.h"
#include "build-worker/layer/untar.h"
#include "build-worker/oci/platform.h"
#include "build-worker/orchestrate/build.h"
#include "build-worker/orchestrate/output.h"
#include "build-worker/orchestrate/progress.h"
#include "build-worker/orchestrate/remote.h"
#include "build-worker/registry/ref.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_build(int argc, char **argv);

/* What to build, the cache server, registry and state directory flags are
 * cli_flags.h's. */
static char *opt_cache_mode, *opt_progress, *opt_summary, *opt_compression, *opt_worker,
    *opt_iidfile, *opt_metadata;
static lc_strlist opt_tags, opt_labels, opt_outputs;
static bool opt_no_cache, opt_quiet, opt_cache_required;
/* registry (build-worker/registry/): pulls of FROM images and --push */
static char *opt_pull;
static bool opt_push;

static const lc_flag flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_build_group),
    {"tag", 't', LC_FLAG_LIST, &opt_tags, NULL, "NAME[:TAG]",
     "name the image (Docker's reference format): stored in the local image store under this "
     "name, and pushed there with --push",
     true},
    {"label", 0, LC_FLAG_LIST, &opt_labels, NULL, "KEY=VALUE",
     "set a label on the image (its config, not a step: no cache key changes)", true},
    LC_FLAG_INCLUDE_GROUP(lc_cli_cache_group),
    LC_FLAG_INCLUDE_GROUP(lc_cli_instance_group),
    {"cache-mode", 0, LC_FLAG_STRING, &opt_cache_mode, "rw", "rw|ro|off",
     "rw: look up and upload; ro: look up only (laptops); off: no cache server"},
    {"cache-required", 0, LC_FLAG_BOOL, &opt_cache_required, NULL, NULL,
     "fail instead of building uncached when the cache server cannot be used (unreachable, auth "
     "failure, TLS, read-only token)"},
    {"no-cache", 0, LC_FLAG_BOOL, &opt_no_cache, NULL, NULL,
     "do not reuse any cached step (results are still uploaded)", true},
    LC_FLAG_INCLUDE_GROUP(lc_cli_state_dir_group),
    {"output", 'o', LC_FLAG_LIST, &opt_outputs, NULL, "type=oci|docker|local|tar,dest=PATH",
     "also write the image: oci (an OCI layout: a directory, or a tar when PATH ends in .tar), "
     "docker (an archive for docker load), local (the filesystem into a directory), tar (the "
     "filesystem as a tar); dest=- writes to stdout; a PATH alone is type=local, - is type=tar",
     true},
    {"compression", 0, LC_FLAG_STRING, &opt_compression, "gzip", "gzip|zstd", "layer compression",
     true},
    {"progress", 0, LC_FLAG_STRING, &opt_progress, "auto", "auto|tty|plain|quiet|rawjson",
     "progress on stderr: tty redraws a view in place, plain prints BuildKit's lines, rawjson "
     "one JSON object per event; auto is tty on a terminal, else plain",
     true},
    {"summary-json", 0, LC_FLAG_STRING, &opt_summary, NULL, "FILE",
     "write a per-step JSON summary of the build to FILE", true},
    {"iidfile", 0, LC_FLAG_STRING, &opt_iidfile, NULL, "FILE",
     "write the image ID (its config digest; with several platforms, the index digest) to FILE",
     true},
    {"metadata-file", 0, LC_FLAG_STRING, &opt_metadata, NULL, "FILE",
     "write the build result as buildx does (containerimage.digest, "
     "containerimage.config.digest, containerimage.descriptor, image.name) to FILE",
     true},
    {"worker-id", 0, LC_FLAG_STRING, &opt_worker, NULL, "NAME",
     "name recorded with uploaded results (default: the host name)"},
    {"quiet", 'q', LC_FLAG_BOOL, &opt_quiet, NULL, NULL,
     "no progress; print the image ID on stdout (warnings and errors still go to stderr)", true},
    /* registry */
    {"pull", 0, LC_FLAG_STRING, &opt_pull, "missing", "missing|always|never|true|false",
     "FROM images from registries: missing pulls those not pulled before, always (or a bare "
     "--pull, as Docker's) checks the registry (a moved tag changes the keys), never uses local "
     "copies only",
     false, "always"},
    {"push", 0, LC_FLAG_BOOL, &opt_push, NULL, NULL,
     "push the image to the registry of every -t NAME (host[:port]/repo:tag)", true},
    LC_FLAG_INCLUDE_GROUP(lc_cli_registry_group),
    LC_FLAG_INCLUDE_GROUP(lc_cli_run_group),
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static const char usage_text[] =
    "usage: layercache build [options] CONTEXT|-\n\n"
    "Builds the Dockerfile in CONTEXT. Every step's cache key is computed first and\n"
    "looked up (local state directory, then the cache server); steps that hit are\n"
    "reused without running, the others run with runc and their results are\n"
    "uploaded so that any other build, on any machine, reuses them. Without\n"
    "--cache, only the local state directory is used.\n\n"
    "CONTEXT - reads the context from stdin as a tar (any compression), or a\n"
    "Dockerfile alone with an empty context; -f - reads the Dockerfile from stdin.\n"
    "Progress and warnings go to stderr; stdout carries only what is asked for\n"
    "(-q: the image ID; an output with dest=-).\n\n"
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

/* -t as Docker takes it: its reference grammar, and no digest. */
static int check_tags(lc_err *err)
{
    for (size_t i = 0; i < opt_tags.len; i++) {
        lc_ref r;
        const char *t = opt_tags.items[i];
        if (lc_ref_parse(t, &r, err) < 0) {
            lc_err_prefix(err, "-t %s: invalid reference format", t);
            return -LC_INVALID_ARGUMENT;
        }
        if (r.digest[0])
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "-t %s: invalid reference format: a tag cannot name a digest", t);
    }
    return 0;
}

static int check_labels(lc_err *err)
{
    for (size_t i = 0; i < opt_labels.len; i++) {
        const char *eq = strchr(opt_labels.items[i], '=');
        if (eq == NULL || eq == opt_labels.items[i])
            return lc_err_set(err, LC_INVALID_ARGUMENT, "--label %s: expected KEY=VALUE",
                              opt_labels.items[i]);
    }
    return 0;
}

/* A FILE flag's directory must exist before the build, not after it. */
static int check_file_flag(const char *flag, const char *path, lc_err *err)
{
    if (path == NULL)
        return 0;
    char *copy = strdup(path);
    if (copy == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    struct stat st;
    const char *dir = dirname(copy);
    int rc = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s %s: directory %s does not exist", flag, path,
                        dir);
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s %s: is a directory", flag, path);
    free(copy);
    return rc;
}

/* --platform a,b: normalized, duplicates dropped; empty = the host's. */
static int parse_platforms(lc_strlist *out, lc_err *err)
{
    const char *spec = lc_cli_build_opts.platform;
    if (spec == NULL || spec[0] == '\0')
        return 0;
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        lc_platform p;
        char name[64];
        if ((rc = lc_platform_parse(tok, &p, err)) < 0) {
            lc_err_prefix(err, "--platform");
            break;
        }
        lc_platform_format(&p, name, sizeof(name));
        bool dup = false;
        for (size_t i = 0; i < out->len; i++)
            dup = dup || strcmp(out->items[i], name) == 0;
        if (!dup && lc_strlist_push(out, name) < 0)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(copy);
    return rc;
}

/* ---- stdin ---------------------------------------------------------------- */

static int read_all(int fd, char **out, size_t *len, lc_err *err)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (;;) {
        if (n == cap) {
            char *g = realloc(buf, 2 * cap + 1);
            if (g == NULL) {
                free(buf);
                return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            }
            buf = g;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return lc_err_set(err, lc_code_from_errno(errno), "read stdin: %s", strerror(errno));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* An archive libarchive reads (tar, or gzip/zstd/xz/bzip2 around one),
 * rather than a Dockerfile: what `docker build -` tells apart too. */
static bool looks_like_archive(const unsigned char *p, size_t n)
{
    return (n >= 262 && memcmp(p + 257, "ustar", 5) == 0) ||
           (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) ||
           (n >= 4 && memcmp(p, "\x28\xb5\x2f\xfd", 4) == 0) ||
           (n >= 6 && memcmp(p,
                             "\xfd"
                             "7zXZ",
                             5) == 0) ||
           (n >= 3 && memcmp(p, "BZh", 3) == 0);
}

/* Reads up to cap bytes (fewer only at the end of input). */
static ssize_t read_full(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    return (ssize_t)n;
}

/* CONTEXT -: stdin is the context as a tar, copied to a file next to dir
 * (memory stays bounded whatever its size) and extracted into dir (made
 * here); or a Dockerfile alone (*text), with dir an empty context. */
static int context_from_stdin(char *dir, size_t cap, char **text, size_t *len, lc_err *err)
{
    const char *tmpdir = getenv("TMPDIR");
    snprintf(dir, cap, "%s/layercache-context.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (mkdtemp(dir) == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "mkdtemp %s: %s", dir, strerror(errno));
    char head[65536];
    ssize_t n = read_full(STDIN_FILENO, head, sizeof(head));
    if (n < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "read stdin: %s", strerror(errno));
    if (!looks_like_archive((const unsigned char *)head, (size_t)n)) {
        char *rest = NULL;
        size_t rlen = 0;
        int rc = read_all(STDIN_FILENO, &rest, &rlen, err);
        if (rc < 0)
            return rc;
        if ((*text = malloc((size_t)n + rlen + 1)) == NULL) {
            free(rest);
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        }
        memcpy(*text, head, (size_t)n);
        memcpy(*text + n, rest, rlen + 1);
        *len = (size_t)n + rlen;
        free(rest);
        return 0;
    }
    char file[PATH_MAX + 16];
    snprintf(file, sizeof(file), "%s.tar", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "create %s: %s", file, strerror(errno));
    int rc = 0;
    while (n > 0 && rc == 0) {
        for (ssize_t off = 0; off < n && rc == 0;) {
            ssize_t w = write(fd, head + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR)
                rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", file,
                                strerror(errno));
            off += w > 0 ? w : 0;
        }
        if (rc == 0 && (n = read_full(STDIN_FILENO, head, sizeof(head))) < 0)
            rc = lc_err_set(err, lc_code_from_errno(errno), "read stdin: %s", strerror(errno));
    }
    if (close(fd) != 0 && rc == 0)
        rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", file, strerror(errno));
    lc_untar_opts uo = {.mode = LC_UNTAR_PLAIN, .no_same_owner = 1};
    if (rc == 0 && (rc = lc_untar_file(file, dir, &uo, NULL, err)) < 0)
        lc_err_prefix(err, "the context on stdin");
    unlink(file);
    return rc;
}

/* ---- results --------------------------------------------------------------- */

static int write_text(const char *flag, const char *path, const char *text, lc_err *err)
{
    int rc = lc_fs_write_file(path, text, strlen(text), err);
    if (rc < 0)
        lc_err_prefix(err, "%s", flag);
    return rc;
}

/* --metadata-file, with buildx's keys. */
static int write_metadata(const lc_build_result *r, lc_err *err)
{
    json_t *m = json_object();
    if (r->config_digest[0])
        json_object_set_new(m, "containerimage.config.digest", json_string(r->config_digest));
    json_object_set_new(m, "containerimage.descriptor",
                        json_pack("{s:s, s:s, s:I}", "mediaType", r->media_type, "digest",
                                  r->digest, "size", (json_int_t)r->size));
    json_object_set_new(m, "containerimage.digest", json_string(r->digest));
    if (opt_tags.len > 0) {
        size_t cap = 1;
        for (size_t i = 0; i < opt_tags.len; i++)
            cap += strlen(opt_tags.items[i]) + 1;
        char *names = calloc(1, cap);
        for (size_t i = 0; names && i < opt_tags.len; i++) {
            if (i > 0)
                strcat(names, ",");
            strcat(names, opt_tags.items[i]);
        }
        json_object_set_new(m, "image.name", json_string(names ? names : ""));
        free(names);
    }
    char *s = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(m);
    if (s == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = write_text("--metadata-file", opt_metadata, s, err);
    free(s);
    return rc;
}

int lc_cmd_build(int argc, char **argv)
{
    lc_strlist positional = {0}, platforms = {0};
    lc_err err = {0};
    lc_df_var *vars = NULL;
    lc_output *outputs = NULL;
    size_t noutputs = 0;
    char *df_text = NULL, stdin_ctx[PATH_MAX] = "";
    size_t df_len = 0;
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
                   "expected exactly one CONTEXT directory, or - (see --help)");
        goto fail;
    }
    /* Everything is checked before anything is built. */
    int mode = strcmp(opt_cache_mode, "rw") == 0    ? LC_CACHE_RW
               : strcmp(opt_cache_mode, "ro") == 0  ? LC_CACHE_RO
               : strcmp(opt_cache_mode, "off") == 0 ? LC_CACHE_OFF
                                                    : -1;
    if (mode < 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--cache-mode must be rw, ro or off, not '%s'",
                   opt_cache_mode);
        goto fail;
    }
    if (opt_cache_required && mode == LC_CACHE_OFF) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--cache-required contradicts --cache-mode off");
        goto fail;
    }
    const char *cache = lc_cli_cache_target();
    if (opt_cache_required && (cache == NULL || cache[0] == '\0')) {
        lc_err_set(&err, LC_INVALID_ARGUMENT,
                   "--cache-required: no cache server given (--cache or LAYERCACHE_CACHE)");
        goto fail;
    }
    if (strcmp(opt_compression, "gzip") != 0 && strcmp(opt_compression, "zstd") != 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--compression must be gzip or zstd");
        goto fail;
    }
    int compression = lc_layer_compression_of(
        strcmp(opt_compression, "zstd") == 0 ? LC_MEDIA_LAYER_ZSTD : LC_MEDIA_LAYER_GZIP);
    int progress_mode;
    if (lc_progress_mode_parse(opt_progress, STDERR_FILENO, &progress_mode, &err) < 0)
        goto fail;
    if (opt_quiet)
        progress_mode = LC_PROGRESS_QUIET;
    lc_registry_opts reg = {.client = lc_cli_regclient_opts(), .push = opt_push};
    if (lc_pull_policy_parse(opt_pull, &reg.pull, &err) < 0 || check_tags(&err) < 0 ||
        check_labels(&err) < 0 || parse_platforms(&platforms, &err) < 0)
        goto fail;
    if (opt_push && opt_tags.len == 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "--push needs -t REGISTRY/REPOSITORY:TAG");
        goto fail;
    }
    if (opt_push && platforms.len > 1) {
        lc_err_set(&err, LC_UNIMPLEMENTED,
                   "--push of several platforms (an image index) is not supported yet: push "
                   "each platform under its own tag, or write --output type=oci");
        goto fail;
    }
    outputs = calloc(opt_outputs.len + 1, sizeof(*outputs));
    if (outputs == NULL) {
        lc_err_set(&err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    int to_stdout = opt_quiet ? 1 : 0;
    for (size_t i = 0; i < opt_outputs.len; i++) {
        if (lc_output_parse(opt_outputs.items[i], &outputs[i], &err) < 0)
            goto fail;
        noutputs++;
        if (lc_output_check(&outputs[i], platforms.len ? platforms.len : 1, &err) < 0)
            goto fail;
        if (strcmp(outputs[i].dest, "-") == 0 && to_stdout++ > 0) {
            lc_err_set(&err, LC_INVALID_ARGUMENT, "--output %s: stdout already carries %s",
                       opt_outputs.items[i], opt_quiet ? "the image ID (-q)" : "another output");
            goto fail;
        }
    }
    if (check_file_flag("--iidfile", opt_iidfile, &err) < 0 ||
        check_file_flag("--metadata-file", opt_metadata, &err) < 0 ||
        check_file_flag("--summary-json", opt_summary, &err) < 0)
        goto fail;
    const char *context = positional.items[0];
    bool df_stdin = lc_cli_build_opts.file != NULL && strcmp(lc_cli_build_opts.file, "-") == 0;
    if (strcmp(context, "-") == 0) {
        if (df_stdin) {
            lc_err_set(&err, LC_INVALID_ARGUMENT,
                       "the Dockerfile (-f -) and the context (-) cannot both come from stdin");
            goto fail;
        }
        if (context_from_stdin(stdin_ctx, sizeof(stdin_ctx), &df_text, &df_len, &err) < 0)
            goto fail;
        context = stdin_ctx;
    } else if (df_stdin && read_all(STDIN_FILENO, &df_text, &df_len, &err) < 0) {
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
    lc_build_opts o = {.context = context,
                       .dockerfile = df_text ? NULL : lc_cli_build_opts.file,
                       .dockerfile_text = df_text,
                       .dockerfile_len = df_len,
                       .tags = &opt_tags,
                       .labels = &opt_labels,
                       .build_args = vars,
                       .nbuild_args = lc_cli_build_opts.build_args.len,
                       .target = lc_cli_build_opts.target,
                       .platforms = &platforms,
                       .cache = cache,
                       .cache_peers = lc_cli_cache_opts.peers,
                       .instance = lc_cli_cache_opts.instance,
                       .token = lc_cli_cache_opts.token,
                       .cacert = lc_cli_cache_opts.cacert,
                       .tls_cert = lc_cli_cache_opts.tls_cert,
                       .tls_key = lc_cli_cache_opts.tls_key,
                       .cache_mode = mode,
                       .cache_required = opt_cache_required,
                       .no_cache = opt_no_cache,
                       .state_dir = lc_cli_state_dir,
                       .outputs = outputs,
                       .noutputs = noutputs,
                       .compression = compression,
                       .summary_json = opt_summary,
                       .worker_id = opt_worker,
                       .progress_mode = progress_mode,
                       .registry = &reg,
                       .network = network,
                       .add_hosts = &lc_cli_build_opts.add_hosts,
                       .allow_network_host = allow_host,
                       .secrets = &lc_cli_run_opts.secrets,
                       .ssh = &lc_cli_run_opts.ssh};
    lc_build_result result;
    if (lc_build_run(&o, &result, &err) < 0)
        goto fail;
    /* The image ID as docker shows it: the config digest of one image, the
     * index digest of several. */
    const char *id = result.config_digest[0] ? result.config_digest : result.digest;
    if (opt_iidfile != NULL && write_text("--iidfile", opt_iidfile, id, &err) < 0)
        goto fail;
    if (opt_metadata != NULL && write_metadata(&result, &err) < 0)
        goto fail;
    if (opt_quiet) {
        printf("%s\n", id);
        fflush(stdout);
    }
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache build: %s\n", err.msg[0] ? err.msg : "failed");
out:
    if (stdin_ctx[0])
        lc_fs_rm_rf(stdin_ctx);
    for (size_t i = 0; i < noutputs; i++)
        lc_output_clear(&outputs[i]);
    free(outputs);
    free(df_text);
    free(vars);
    lc_strlist_clear(&platforms);
    lc_strlist_clear(&positional);
    lc_flags_free(flags, N_FLAGS);
    return status;
}
