/* build.c - the build orchestrator (see build.h). */
#include "build.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build-worker/keys/action.h"
#include "apply.h"
#include "build-worker/context/hash.h"
#include "build-worker/context/statcache.h"
#include "build-worker/context/url.h"
#include "build-worker/context/walk.h"
#include "build-worker/keys/keys.h"
#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/tarwrite.h"
#include "build-worker/layer/untar.h"
#include "build-worker/oci/image.h"
#include "build-worker/oci/layout.h"
#include "build-worker/oci/platform.h"
#include "exec.h"
#include "build-worker/registry/pull.h"
#include "build-worker/registry/push.h"
#include "output.h"
#include "progress.h"
#include "remote.h"
#include "runmounts.h"
#include "secrets.h"
#include "statedir.h"
#include "build-worker/runtime/network.h"

/* How many lines of a failed RUN's output the error repeats. */
#define TAIL_LINES 10

typedef struct node {
    lc_key_step *ks;
    lc_step_action alt;    /* after a content re-key: the definition-based
                              action, under which the result is recorded too */
    int slot;              /* progress slot, -1 for FROM */
    bool hit_local, hit_remote;
    lc_digest state;       /* state document after this step, when known */
    bool have_state;
    double start, end;     /* execution times (Unix seconds) */
} node;

/* Transfers shorter than this are not worth a progress line. */
#define SHOW_BYTES_FROM (1u << 20)

/* One platform's build; several share the state directory, the cache, the
 * registry and the progress display (lc_build_run). */
typedef struct builder {
    const lc_build_opts *o;
    const char *platform;       /* normalized "os/arch[/variant]" */
    const char *dockerfile;     /* path, or "-" (read from stdin) */
    lc_statedir *sd;
    lc_remote *remote;
    lc_registry *registry;      /* FROM images from registries, --push */
    lc_progress *progress;
    lc_df_file *file;
    lc_statcache *statcache;
    lc_keys *keys;
    node *nodes;
    lc_keys_opts ko;            /* what the keys were computed with */
    bool *stage_rebuilt;        /* a stage executed at least one step */
    lc_image **stage_final;     /* final state of each stage, once built */
    lc_digest *stage_digest;    /* its state document digest */
    char worker[256];
    /* ring of the running step's last output lines, for error messages */
    char tail[TAIL_LINES][160];
    int tail_next, tail_count;
    int running_slot;
    lc_secrets *secrets;        /* --secret, --ssh */
    bool fetch_failed;          /* a blob could not be had from the cache */
    uint64_t down_unattributed; /* layer bytes fetched for no step (--output) */
    int hash_xfer;              /* progress of context hashing, -1 none */
    lc_image *final;            /* the target stage's image, with --label */
    lc_digest final_state;      /* its state document */
    int64_t epoch;              /* SOURCE_DATE_EPOCH (else 0): layer times, created */
    bool has_epoch;
    char created[32];           /* epoch as RFC 3339 */
    char downloads[PATH_MAX];   /* ADD <url> sources fetched while keying */
} builder;

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- base images -------------------------------------------------------- */

/* ---- state documents and layers ---------------------------------------- */

static int load_state(builder *b, const lc_digest *d, lc_image **out, lc_err *err)
{
    char *json = NULL;
    size_t len = 0;
    int rc;
    if (!lc_statedir_has_blob(b->sd, d)) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s/tmp/state.%d", lc_statedir_path(b->sd), getpid());
        if ((rc = lc_remote_fetch(b->remote, d, tmp, -1, err)) < 0) {
            b->fetch_failed = true;
            lc_err_prefix(err, "cannot get image state document");
            return rc;
        }
        if ((rc = lc_statedir_adopt_blob(b->sd, tmp, d, err)) < 0)
            return rc;
    }
    if ((rc = lc_statedir_read_blob(b->sd, d, &json, &len, err)) < 0)
        return rc;
    rc = lc_image_parse(json, len, out, err);
    free(json);
    return rc;
}

static int save_state(builder *b, const lc_image *img, lc_digest *out, lc_err *err)
{
    char *json = NULL;
    size_t len = 0;
    int rc = lc_image_serialize(img, &json, &len, err);
    if (rc == 0)
        rc = lc_statedir_put_blob(b->sd, json, len, out, err);
    free(json);
    return rc;
}

/* Makes sure the compressed blob of a layer is in the state directory. */
static int ensure_blob(builder *b, const lc_digest *blob, int slot, lc_err *err)
{
    if (lc_statedir_has_blob(b->sd, blob))
        return 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/tmp/blob.%d", lc_statedir_path(b->sd), getpid());
    int rc = lc_remote_fetch(b->remote, blob, tmp, slot, err);
    if (rc < 0) {
        b->fetch_failed = true;
        char hex[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(blob, hex);
        lc_err_prefix(err, "layer %s is neither local nor obtainable from the cache", hex);
        return rc;
    }
    if (slot >= 0)
        lc_progress_bytes(b->progress, slot, (uint64_t)blob->size, 0);
    else
        b->down_unattributed += (uint64_t)blob->size;
    return lc_statedir_adopt_blob(b->sd, tmp, blob, err);
}

/* Makes sure a layer is unpacked (overlay form) under layers/<diff_id>. */
static int ensure_unpacked(builder *b, const lc_image_layer *layer, char *dir, size_t cap,
                           int slot, lc_err *err)
{
    if (lc_statedir_layer_dir(b->sd, &layer->diff_id, dir, cap))
        return 0;
    int rc = ensure_blob(b, &layer->blob, slot, err);
    if (rc < 0)
        return rc;
    char blob_path[PATH_MAX], tmp[PATH_MAX];
    lc_statedir_blob_path(b->sd, &layer->blob, blob_path, sizeof(blob_path));
    if ((rc = lc_statedir_mktemp(b->sd, "unpack", tmp, sizeof(tmp), err)) < 0)
        return rc;
    lc_untar_opts uo = {.mode = LC_UNTAR_OVERLAY,
                        .allow_devices = 0,
                        .xattrs = 1, /* security.capability and friends */
                        .expect_blob = &layer->blob,
                        .expect_diff_id = &layer->diff_id};
    rc = lc_untar_file(blob_path, tmp, &uo, NULL, err);
    if (rc == 0 && rename(tmp, dir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
        rc = lc_err_set(err, lc_code_from_errno(errno), "cannot move layer into %s: %s", dir,
                        strerror(errno));
    if (access(tmp, F_OK) == 0) /* failed, or another build unpacked it first */
        lc_fs_rm_rf(tmp);
    return rc;
}

/* Unpacks every layer of img and returns their directories top first
 * (dirs[i] malloc'd, the array too). */
static int lower_dirs(builder *b, const lc_image *img, int slot, char ***out, size_t *n,
                      lc_err *err)
{
    size_t count = lc_image_layer_count(img);
    char **dirs = calloc(count ? count : 1, sizeof(*dirs));
    if (dirs == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        lc_image_layer layer;
        char dir[PATH_MAX];
        if ((rc = lc_image_layer_at(img, i, &layer)) < 0)
            break;
        if ((rc = ensure_unpacked(b, &layer, dir, sizeof(dir), slot, err)) < 0)
            break;
        if ((dirs[count - 1 - i] = strdup(dir)) == NULL)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (rc < 0) {
        for (size_t i = 0; i < count; i++)
            free(dirs[i]);
        free(dirs);
        return rc;
    }
    /* Identical layers (two empty ones, say) share one unpacked directory,
     * which overlayfs refuses twice (ELOOP). The topmost copy is enough:
     * it provides everything the lower one did, above it. */
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        bool dup = false;
        for (size_t j = 0; j < kept && !dup; j++)
            dup = strcmp(dirs[j], dirs[i]) == 0;
        if (dup)
            free(dirs[i]);
        else
            dirs[kept++] = dirs[i];
    }
    *out = dirs;
    *n = kept;
    return 0;
}

static void free_dirs(char **dirs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
}

/* Byte progress of packing a layer: shown once the files add up to 1 MB. */
typedef struct pack_show {
    lc_progress *progress;
    int slot, xfer;
} pack_show;

static void on_pack(void *ctx, uint64_t tar_bytes, uint64_t file_bytes)
{
    pack_show *p = ctx;
    if (p->xfer < 0 && file_bytes >= SHOW_BYTES_FROM)
        p->xfer = lc_progress_transfer_begin(p->progress, p->slot, "packing layer", file_bytes);
    lc_progress_transfer_update(p->progress, p->xfer,
                                tar_bytes < file_bytes ? tar_bytes : file_bytes);
}

/* Turns the upper dir of an executed step into a layer of img: the blob
 * goes to the state directory and the upper dir becomes the unpacked layer. */
static int commit_layer(builder *b, const char *upper, lc_image *img, const char *created_by,
                        int slot, lc_err *err)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/tmp/layer.%d", lc_statedir_path(b->sd), getpid());
    pack_show show = {.progress = b->progress, .slot = slot, .xfer = -1};
    lc_layer_opts lo = {.compression = b->o->compression,
                        .epoch = b->epoch,
                        .xattrs = 1,
                        .progress = on_pack,
                        .progress_ctx = &show};
    lc_layer_info info;
    int rc = lc_layer_write(upper, tmp, &lo, &info, err);
    lc_progress_transfer_end(b->progress, show.xfer);
    if (rc < 0)
        return rc;
    if ((rc = lc_statedir_adopt_blob(b->sd, tmp, &info.blob, err)) < 0)
        return rc;
    if (!lc_statedir_layer_dir(b->sd, &info.diff_id, dir, sizeof(dir)) && rename(upper, dir) != 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot keep layer %s: %s", dir,
                          strerror(errno));
    lc_image_layer layer = {.blob = info.blob, .diff_id = info.diff_id};
    snprintf(layer.media_type, sizeof(layer.media_type), "%s", info.media_type);
    return lc_image_add_layer(img, &layer, created_by, err);
}

/* ---- executing steps ---------------------------------------------------- */

static void on_output(void *ctx, const char *line, size_t len)
{
    builder *b = ctx;
    lc_progress_output(b->progress, b->running_slot, line, len);
    snprintf(b->tail[b->tail_next], sizeof(b->tail[0]), "%.*s", (int)len, line);
    b->tail_next = (b->tail_next + 1) % TAIL_LINES;
    if (b->tail_count < TAIL_LINES)
        b->tail_count++;
}

static int run_failed(builder *b, const lc_key_step *ks, int code, lc_err *err)
{
    char msg[LC_ERR_MSG_MAX] = "";
    size_t used = 0;
    for (int i = 0; i < b->tail_count; i++) {
        int idx = (b->tail_next - b->tail_count + i + TAIL_LINES) % TAIL_LINES;
        int n = snprintf(msg + used, sizeof(msg) - used, "\n  %s", b->tail[idx]);
        if (n < 0 || (size_t)n >= sizeof(msg) - used)
            break;
        used += (size_t)n;
    }
    return lc_err_set(err, LC_ABORTED, "%s:%d: %s: exit code %d%s", ks->instr->pos.file,
                      ks->instr->pos.line, ks->instruction, code, msg);
}

/* The environment a RUN sees: image Env, then ARGs in scope, PATH default. */
static int run_env(const lc_image *img, const lc_df_step *step, lc_strlist *env)
{
    if (lc_image_env_list(img, env) < 0)
        return -LC_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < step->nargs; i++) {
        bool shadowed = false;
        size_t nl = strlen(step->args[i].name);
        for (size_t k = 0; k < env->len; k++)
            if (strncmp(env->items[k], step->args[i].name, nl) == 0 && env->items[k][nl] == '=')
                shadowed = true; /* ENV wins over ARG, as in Docker */
        if (shadowed)
            continue;
        char *kv = NULL;
        if (asprintf(&kv, "%s=%s", step->args[i].name, step->args[i].value ? step->args[i].value : "") < 0 ||
            lc_strlist_push_owned(env, kv) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    }
    if (lc_image_get_env(img, "PATH") == NULL &&
        lc_strlist_push(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0)
        return -LC_RESOURCE_EXHAUSTED;
    return 0;
}

/* RUN --mount from=: the layers of a stage's result (built before this
 * step) or of an image (local store, else pulled). */
static int mount_layers(void *ctx, int stage, const char *image, char ***dirs, size_t *n,
                        char **ident, lc_err *err)
{
    builder *b = ctx;
    lc_image *img = NULL;
    lc_digest d = {0};
    int rc;
    if (stage >= 0) {
        if (b->stage_final[stage] == NULL)
            return lc_err_set(err, LC_FAILED_PRECONDITION, "stage %d is not built yet", stage);
        d = b->stage_digest[stage];
        rc = lower_dirs(b, b->stage_final[stage], -1, dirs, n, err);
    } else if ((rc = lc_pull_state(b->registry, image, b->platform, &d, err)) == 0 &&
               (rc = load_state(b, &d, &img, err)) == 0) {
        rc = lower_dirs(b, img, -1, dirs, n, err);
        lc_image_free(&img);
    }
    char hex[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&d, hex);
    if (rc == 0 && (*ident = strdup(hex)) == NULL) {
        free_dirs(*dirs, *n);
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return rc;
}

static int exec_run(builder *b, node *n, const lc_exec_fs *fs, const lc_image *img, lc_err *err)
{
    const lc_df_step *step = n->ks->step;
    lc_strlist env = {0}, argv = {0};
    lc_runmounts *mounts = NULL;
    int rc = run_env(img, step, &env);
    if (rc < 0) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (lc_df_run_argv(step, &argv) < 0) { /* exec form, shell form, heredocs */
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* RUN --mount (runmounts.h) and the network (runtime/network.h) */
    lc_runmounts_env me = {.state_dir = lc_statedir_path(b->sd),
                           .context_dir = b->o->context,
                           .scratch = fs->scratch,
                           .secrets = b->secrets,
                           .layers = mount_layers,
                           .ctx = b};
    if ((rc = lc_runmounts_prepare(&me, &n->ks->run, n->ks->mounts, n->ks->mount_stage, &mounts,
                                   err)) < 0)
        goto out;
    size_t nmounts = 0;
    const lc_exec_mount *ml = lc_runmounts_list(mounts, &nmounts);
    lc_exec_run_opts ro = {.argv = (const char *const *)argv.items,
                           .argc = argv.len,
                           .env = (const char *const *)env.items,
                           .nenv = env.len,
                           .cwd = step->workdir ? step->workdir : "/",
                           .user = step->user,
                           .network = n->ks->network == LC_DF_NET_NONE   ? LC_NET_NONE
                                      : n->ks->network == LC_DF_NET_HOST ? LC_NET_HOST
                                                                         : LC_NET_DEFAULT,
                           .extra_hosts = b->o->add_hosts
                                              ? (const char *const *)b->o->add_hosts->items
                                              : NULL,
                           .n_extra_hosts = b->o->add_hosts ? b->o->add_hosts->len : 0,
                           .mounts = ml,
                           .nmounts = nmounts,
                           .output = on_output,
                           .ctx = b};
    int code = 0;
    b->tail_count = b->tail_next = 0;
    b->running_slot = n->slot;
    if ((rc = lc_exec_run(fs, &ro, &code, err)) < 0)
        goto out;
    if (code != 0)
        rc = run_failed(b, n->ks, code, err);
out:
    lc_runmounts_release(&mounts);
    lc_strlist_clear(&env);
    lc_strlist_clear(&argv);
    return rc;
}

static int exec_copy(builder *b, node *n, const lc_exec_fs *fs, lc_err *err)
{
    const lc_key_step *ks = n->ks;
    const lc_df_step *step = ks->step;
    const lc_df_instr *in = step->instr;
    lc_exec_copy_opts co = {.dest = step->nwords ? step->words[step->nwords - 1] : ".",
                            .workdir = step->workdir ? step->workdir : "/",
                            .nargs = step->nwords ? step->nwords - 1 : 0,
                            .is_add = in->kind == LC_DF_ADD};
    const lc_df_flag *f;
    const char *excludes[64];
    for (size_t i = 0; i < step->nflags; i++) {
        f = &step->flags[i];
        if (strcmp(f->name, "chown") == 0)
            co.chown = f->value;
        else if (strcmp(f->name, "chmod") == 0)
            co.chmod = f->value;
        else if (strcmp(f->name, "parents") == 0)
            co.parents = f->value == NULL || strcmp(f->value, "false") != 0;
        else if (strcmp(f->name, "exclude") == 0 && f->value != NULL && co.nexcludes < 64)
            excludes[co.nexcludes++] = f->value;
    }
    co.excludes = excludes;
    const char *names[16], *bodies[16];
    if (in->nheredocs > 16)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%d: more than 16 heredocs in one %s",
                          in->pos.file, in->pos.line, lc_df_kind_name(in->kind));
    if (in->nheredocs > 0) {
        for (size_t i = 0; i < in->nheredocs; i++) {
            names[i] = in->heredocs[i].name;
            bodies[i] = step->heredocs ? step->heredocs[i] : in->heredocs[i].content;
        }
        co.heredoc_names = names;
        co.heredoc_bodies = bodies;
        co.nheredocs = in->nheredocs;
    }
    for (size_t i = 0; i + 1 < step->nwords; i++)
        if (strstr(step->words[i], "://") != NULL && !lc_url_is_http(step->words[i]))
            return lc_err_set(err, LC_UNIMPLEMENTED,
                              "%s:%d: %s from %s is not supported: only http(s) URLs are; fetch "
                              "it in a RUN step or into the build context",
                              in->pos.file, in->pos.line, lc_df_kind_name(in->kind), step->words[i]);
    int rc = 0;
    char **src_dirs = NULL;
    size_t nsrc = 0, nlocal = 0;
    const char *local[64];
    char mnt[PATH_MAX], view[PATH_MAX];
    bool mounted = false;
    /* ADD <url>: downloaded while keying, or now (--checksum) and checked. */
    lc_url_file fetched[16];
    const char *url_files[16], *url_names[16];
    int64_t url_mtimes[16];
    size_t nfetched = 0;
    if (ks->nurls > 16) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%d: more than 16 URLs in one ADD",
                        in->pos.file, in->pos.line);
        goto out;
    }
    for (size_t i = 0; i < ks->nurls; i++) {
        const lc_url_file *u = &ks->urls[i];
        if (u->path == NULL) {
            if ((rc = lc_url_fetch(u->url, fs->scratch, &u->digest, &fetched[nfetched], err)) < 0) {
                lc_err_prefix(err, "%s:%d", in->pos.file, in->pos.line);
                goto out;
            }
            u = &fetched[nfetched++];
        }
        url_files[i] = u->path;
        url_names[i] = ks->urls[i].name;
        url_mtimes[i] = u->mtime;
    }
    co.url_files = url_files;
    co.url_names = url_names;
    co.url_mtimes = url_mtimes;
    co.nurls = ks->nurls;
    if (ks->from_stage >= 0 || ks->from_image != NULL) {
        const lc_image *src = NULL;
        lc_image *loaded = NULL;
        if (ks->from_stage >= 0) {
            src = b->stage_final[ks->from_stage];
        } else {
            lc_digest d;
            /* registry: the local store, or the image pulled for the keys */
            if ((rc = lc_pull_state(b->registry, ks->from_image, ks->platform, &d, err)) < 0 ||
                (rc = load_state(b, &d, &loaded, err)) < 0)
                goto out;
            src = loaded;
        }
        rc = src ? lower_dirs(b, src, n->slot, &src_dirs, &nsrc, err)
                 : lc_err_set(err, LC_INTERNAL, "source stage of %s was not built", ks->instruction);
        lc_image_free(&loaded);
        if (rc < 0)
            goto out;
        snprintf(mnt, sizeof(mnt), "%s/from", fs->scratch);
        if (mkdir(mnt, 0755) != 0 && errno != EEXIST) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "cannot create %s", mnt);
            goto out;
        }
        if ((rc = lc_exec_view((const char *const *)src_dirs, nsrc, mnt, view, sizeof(view),
                               &mounted, err)) < 0)
            goto out;
        co.src_root = view;
        co.src_paths = (const char *const *)ks->from_paths.items;
        co.nsrc_paths = ks->from_paths.len;
        co.sources = co.src_paths;
        co.nsources = co.nsrc_paths;
    } else {
        co.src_root = b->o->context;
        if (ks->selection != NULL) {
            co.entries = ks->selection->entries;
            co.nentries = ks->selection->n;
        }
        /* The sources the selection was made of (keys.c skips heredoc
         * words and URLs the same way). */
        for (size_t i = 0; i + 1 < step->nwords && nlocal < 64; i++) {
            const char *w = step->words[i];
            size_t digits = strspn(w, "0123456789");
            if (strncmp(w + digits, "<<", 2) != 0 && strstr(w, "://") == NULL &&
                strncmp(w, "git@", 4) != 0)
                local[nlocal++] = w;
        }
        co.sources = local;
        co.nsources = nlocal;
    }
    rc = lc_exec_copy(fs, &co, err);
out:
    if (mounted)
        lc_exec_unmount(mnt);
    free_dirs(src_dirs, nsrc);
    for (size_t i = 0; i < nfetched; i++)
        lc_url_file_clear(&fetched[i]);
    return rc;
}

/* Runs a RUN/COPY/ADD step on img (the parent state), adding its layer. */
static int exec_fs_step(builder *b, node *n, lc_image *img, lc_err *err)
{
    char **lowers = NULL;
    size_t nlowers = 0;
    char upper[PATH_MAX], scratch[PATH_MAX];
    int rc = lower_dirs(b, img, n->slot, &lowers, &nlowers, err);
    if (rc < 0)
        return rc;
    upper[0] = scratch[0] = '\0';
    char *created_by = NULL;
    if ((rc = lc_statedir_mktemp(b->sd, "upper", upper, sizeof(upper), err)) < 0 ||
        (rc = lc_statedir_mktemp(b->sd, "step", scratch, sizeof(scratch), err)) < 0)
        goto out;
    /* The upper dir is the container's "/": mkdtemp made it 0700, which
     * would lock out every user but root. */
    if (chmod(upper, 0755) < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "chmod %s: %s", upper, strerror(errno));
        goto out;
    }
    lc_exec_fs fs = {.lowers = (const char *const *)lowers,
                     .nlowers = nlowers,
                     .upper = upper,
                     .scratch = scratch};
    if (n->ks->kind == LC_DF_RUN)
        rc = exec_run(b, n, &fs, img, err);
    else if (n->ks->kind == LC_DF_WORKDIR)
        rc = lc_exec_mkdir(&fs, n->ks->step->workdir, n->ks->step->user, err);
    else
        rc = exec_copy(b, n, &fs, err);
    if (rc == 0 && (created_by = lc_apply_created_by(n->ks->step)) == NULL)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (rc == 0)
        rc = commit_layer(b, upper, img, created_by, n->slot, err);
out:
    free(created_by);
    if (scratch[0])
        lc_fs_rm_rf(scratch);
    if (upper[0] && access(upper, F_OK) == 0)
        lc_fs_rm_rf(upper);
    free_dirs(lowers, nlowers);
    return rc;
}

/* Queues the upload of an executed step's result under one action key. */
static void upload_step(builder *b, node *n, const lc_step_action *action, const lc_image *img)
{
    lc_err err = {0};
    size_t nl = lc_image_layer_count(img);
    lc_remote_blob *blobs = calloc(nl + 3, sizeof(*blobs));
    lc_digest *layers = calloc(nl ? nl : 1, sizeof(*layers));
    char(*paths)[PATH_MAX] = calloc(nl + 1, sizeof(*paths));
    char *json = NULL;
    size_t len = 0;
    if (!blobs || !layers || !paths || lc_image_serialize(img, &json, &len, &err) < 0)
        goto out;
    blobs[0].digest = action->action_digest;
    blobs[0].data = action->action;
    blobs[1].digest = action->command_digest;
    blobs[1].data = action->command;
    lc_digest_of(json, len, &blobs[2].digest);
    blobs[2].data = json;
    for (size_t i = 0; i < nl; i++) {
        lc_image_layer layer;
        lc_image_layer_at(img, i, &layer);
        layers[i] = layer.blob;
        lc_statedir_blob_path(b->sd, &layer.blob, paths[i], sizeof(paths[i]));
        blobs[3 + i].digest = layer.blob;
        blobs[3 + i].path = paths[i];
    }
    /* The state as serialized here: a local hit knows its digest without the size. */
    lc_step_result result = {.state = blobs[2].digest, .layers = layers, .nlayers = nl};
    lc_remote_upload(b->remote, &action->action_digest, &result, n->start, n->end, blobs, nl + 3,
                     n->slot, NULL, NULL);
out:
    free(json);
    free(blobs);
    free(layers);
    free(paths);
}

/* Records an executed step locally and queues its upload, under its key and,
 * after a content re-key, under its definition-based key too (so a build
 * whose source stage did not change finds it). */
static void record_step(builder *b, node *n, const lc_image *img)
{
    lc_statedir_ac_put(b->sd, &n->ks->key, &n->state, NULL);
    if (n->alt.action != NULL)
        lc_statedir_ac_put(b->sd, &n->alt.action_digest, &n->state, NULL);
    if (!lc_remote_writable(b->remote))
        return;
    upload_step(b, n, &n->ks->action, img);
    if (n->alt.action != NULL)
        upload_step(b, n, &n->alt, img);
}

/* A RUN runs the platform's own binaries: natively or under an emulator. */
static int check_runnable(const lc_key_step *ks, lc_err *err)
{
    lc_platform p;
    int rc = lc_platform_parse(ks->platform, &p, err);
    if (rc == 0)
        rc = lc_platform_check_runnable(&p, NULL, err);
    if (rc < 0)
        lc_err_prefix(err, "%s:%d:%d: RUN", ks->instr->pos.file, ks->instr->pos.line,
                      ks->instr->pos.col);
    return rc;
}

/* A step that hit through its content key (COPY --from a rebuilt stage
 * whose output did not change, and the steps after it) is recorded under
 * its definition key too, so the next build, here or on another worker,
 * hits without rebuilding the source stage. */
static void record_alt_hit(builder *b, node *n)
{
    if (n->alt.action == NULL || !n->have_state)
        return;
    lc_statedir_ac_put(b->sd, &n->alt.action_digest, &n->state, NULL);
    if (!lc_remote_writable(b->remote))
        return;
    lc_image *img = NULL;
    lc_err err = {0};
    if (load_state(b, &n->state, &img, &err) == 0)
        upload_step(b, n, &n->alt, img);
    lc_image_free(&img);
}

static int exec_step(builder *b, node *n, lc_image *img, bool *cmd_set, lc_err *err)
{
    double t0 = mono_now();
    n->start = wall_now();
    lc_progress_begin(b->progress, n->slot);
    /* Every entry this step adds to the history carries the build's epoch. */
    lc_image_set_created(img, b->created);
    const lc_df_step *st = n->ks->step;
    bool workdir_layer = n->ks->kind == LC_DF_WORKDIR &&
                         strcmp(st->workdir ? st->workdir : "/", "/") != 0;
    int rc = n->ks->kind == LC_DF_RUN ? check_runnable(n->ks, err) : 0;
    if (rc == 0 && workdir_layer) /* WORKDIR makes its directory in a layer (BuildKit) */
        rc = lc_apply_config(img, st, cmd_set, err);
    if (rc == 0)
        rc = lc_apply_has_layer(n->ks->kind) || workdir_layer
                 ? exec_fs_step(b, n, img, err)
                 : lc_apply_metadata(img, st, cmd_set, err);
    n->end = wall_now();
    if (rc == 0)
        rc = save_state(b, img, &n->state, err);
    if (rc < 0) {
        lc_progress_error(b->progress, n->slot, err->msg);
        return rc;
    }
    n->have_state = true;
    lc_progress_done(b->progress, n->slot, mono_now() - t0);
    record_step(b, n, img);
    return 0;
}

/* ---- the build ------------------------------------------------------------ */

static int stage_base_image(builder *b, const lc_key_stage *st, lc_image **out, lc_err *err);

/* The stage's starting state: its base, with a PATH when the base has none
 * (BuildKit gives every Linux stage one). */
static int stage_base(builder *b, const lc_key_stage *st, lc_image **out, lc_err *err)
{
    int rc = stage_base_image(b, st, out, err);
    if (rc == 0 && lc_image_get_env(*out, "PATH") == NULL &&
        lc_image_set_env(*out, "PATH", LC_DF_DEFAULT_PATH) < 0)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return rc;
}

static int stage_base_image(builder *b, const lc_key_stage *st, lc_image **out, lc_err *err)
{
    if (st->base_stage >= 0) {
        if (b->stage_final[st->base_stage] == NULL)
            return lc_err_set(err, LC_INTERNAL, "stage %d was not built", st->base_stage);
        *out = lc_image_clone(b->stage_final[st->base_stage]);
        return *out ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (strcasecmp(st->base, "scratch") == 0) {
        /* The config says what the stage builds for, variant included. */
        lc_platform p;
        int rc = lc_platform_parse(st->platform, &p, err);
        if (rc < 0)
            return rc;
        *out = lc_image_new(p.os, p.arch);
        if (*out == NULL || lc_image_set_platform(*out, p.os, p.arch, p.variant) < 0)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
    }
    /* registry: the image the keys resolved (local store or pulled) */
    lc_digest d;
    int rc = lc_pull_state(b->registry, st->base, st->platform, &d, err);
    if (rc < 0)
        return rc;
    return load_state(b, &d, out, err);
}

static void lookup_range(builder *b, size_t first, size_t n);

/* BuildKit's second lookup: a COPY --from whose source stage was rebuilt in
 * this build is keyed again by the content of the paths it copies (and the
 * steps after it from that key), so an unchanged output still hits. */
static int content_rekey(builder *b, const lc_key_stage *st, size_t *last_hit, lc_err *err)
{
    node *nodes = b->nodes + st->first_step;
    size_t i = *last_hit + 1;
    while (i < st->nsteps && !(nodes[i].ks->from_stage >= 0 && b->stage_rebuilt[nodes[i].ks->from_stage]))
        i++;
    if (i >= st->nsteps || b->stage_final[nodes[i].ks->from_stage] == NULL)
        return 0;
    node *n = &nodes[i];
    char **dirs = NULL, scratch[PATH_MAX] = "", mnt[PATH_MAX], view[PATH_MAX];
    size_t ndirs = 0;
    bool mounted = false;
    lc_selection *sel = NULL;
    int rc = lower_dirs(b, b->stage_final[n->ks->from_stage], -1, &dirs, &ndirs, err);
    if (rc < 0 || (rc = lc_statedir_mktemp(b->sd, "content", scratch, sizeof(scratch), err)) < 0)
        goto out;
    snprintf(mnt, sizeof(mnt), "%s", scratch);
    if ((rc = lc_exec_view((const char *const *)dirs, ndirs, mnt, view, sizeof(view), &mounted,
                           err)) < 0 ||
        (rc = lc_walk_select(view, NULL, (const char *const *)n->ks->from_paths.items,
                             n->ks->from_paths.len, NULL, &sel, err)) < 0 ||
        (rc = lc_hash_selections(view, &sel, 1, NULL, NULL, err)) < 0)
        goto out;
    /* The definition-based actions stay with the nodes: results are recorded
     * under them too. */
    for (size_t j = i; j < st->nsteps; j++) {
        lc_step_action_clear(&nodes[j].alt);
        nodes[j].alt = nodes[j].ks->action;
        memset(&nodes[j].ks->action, 0, sizeof(nodes[j].ks->action));
    }
    if ((rc = lc_keys_rekey_content(b->keys, &b->ko, st->first_step + i, sel, err)) < 0)
        goto out;
    for (size_t j = i; j < st->nsteps; j++) {
        node *m = &nodes[j];
        char key[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(&m->ks->key, key);
        lc_progress_set_key(b->progress, m->slot, key);
    }
    lookup_range(b, st->first_step + i, st->nsteps - i);
    for (size_t j = i; j < st->nsteps; j++)
        if (nodes[j].hit_local || nodes[j].hit_remote)
            *last_hit = j;
out:
    if (mounted)
        lc_exec_unmount(mnt);
    if (scratch[0])
        lc_fs_rm_rf(scratch);
    lc_selection_free(&sel);
    free_dirs(dirs, ndirs);
    return rc;
}

/* The same second lookup for RUN --mount from=<stage> (bind, or cache with
 * a from= base) when that stage ran steps in this build: BuildKit keys such
 * a mount by the content it selects, so an unchanged output still hits.
 * Re-keys the first such RUN after the last hit (and the steps after it)
 * by the content of each such mount, then looks them up again. */
static int mount_rekey(builder *b, const lc_key_stage *st, size_t *last_hit, lc_err *err)
{
    node *nodes = b->nodes + st->first_step;
    size_t i = *last_hit + 1;
    for (; i < st->nsteps; i++) {
        const lc_key_step *ks = nodes[i].ks;
        bool found = false;
        for (size_t m = 0; ks->kind == LC_DF_RUN && m < ks->nmounts && !found; m++) {
            int from = ks->mount_stage[m];
            found = from >= 0 && b->stage_rebuilt[from] && b->stage_final[from] != NULL &&
                    (ks->run.mounts[m].type == LC_DF_MOUNT_BIND ||
                     ks->run.mounts[m].type == LC_DF_MOUNT_CACHE);
        }
        if (found)
            break;
    }
    if (i >= st->nsteps)
        return 0;
    lc_key_step *ks = nodes[i].ks;
    lc_digest *digests = calloc(ks->nmounts + 1, sizeof(*digests));
    const lc_digest **content = calloc(ks->nmounts + 1, sizeof(*content));
    int rc = digests && content ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t m = 0; m < ks->nmounts && rc == 0; m++) {
        int from = ks->mount_stage[m];
        const lc_df_mount *mt = &ks->run.mounts[m];
        if (from < 0 || !b->stage_rebuilt[from] || b->stage_final[from] == NULL ||
            (mt->type != LC_DF_MOUNT_BIND && mt->type != LC_DF_MOUNT_CACHE))
            continue;
        char **dirs = NULL, scratch[PATH_MAX] = "", view[PATH_MAX];
        size_t ndirs = 0;
        bool mounted = false;
        lc_selection *sel = NULL;
        const char *src[] = {mt->source[0] ? mt->source : "."};
        if ((rc = lower_dirs(b, b->stage_final[from], -1, &dirs, &ndirs, err)) == 0 &&
            (rc = lc_statedir_mktemp(b->sd, "content", scratch, sizeof(scratch), err)) == 0 &&
            (rc = lc_exec_view((const char *const *)dirs, ndirs, scratch, view, sizeof(view),
                               &mounted, err)) == 0 &&
            (rc = lc_walk_select(view, NULL, src, 1, NULL, &sel, err)) == 0 &&
            (rc = lc_hash_selections(view, &sel, 1, NULL, NULL, err)) == 0) {
            lc_keys_content_digest(sel, &digests[m]);
            content[m] = &digests[m];
        }
        if (mounted)
            lc_exec_unmount(scratch);
        if (scratch[0])
            lc_fs_rm_rf(scratch);
        lc_selection_free(&sel);
        free_dirs(dirs, ndirs);
    }
    /* Results are recorded under the definition-based keys too. */
    for (size_t j = i; j < st->nsteps && rc == 0; j++) {
        if (nodes[j].alt.action == NULL) {
            nodes[j].alt = nodes[j].ks->action;
            memset(&nodes[j].ks->action, 0, sizeof(nodes[j].ks->action));
        }
    }
    if (rc == 0)
        rc = lc_keys_rekey_mounts(b->keys, &b->ko, st->first_step + i, content, err);
    if (rc == 0) {
        for (size_t j = i; j < st->nsteps; j++) {
            char key[LC_DIGEST_OCI_LEN + 1];
            lc_digest_oci(&nodes[j].ks->key, key);
            lc_progress_set_key(b->progress, nodes[j].slot, key);
        }
        lookup_range(b, st->first_step + i, st->nsteps - i);
        for (size_t j = i; j < st->nsteps; j++)
            if (nodes[j].hit_local || nodes[j].hit_remote)
                *last_hit = j;
    }
    free(digests);
    free(content);
    return rc;
}

/* Builds a stage on the state after step start (0 = its base), running the
 * steps after it. */
static int run_stage_from(builder *b, const lc_key_stage *st, size_t start, lc_err *err)
{
    node *nodes = b->nodes + st->first_step;
    size_t count = st->nsteps;
    lc_image *img = NULL;
    bool cmd_set = false;
    int rc = 0;
    if (start > 0) {
        if ((rc = load_state(b, &nodes[start].state, &img, err)) < 0)
            goto out;
        for (size_t i = 1; i <= start; i++)
            if (nodes[i].hit_remote && !nodes[i].hit_local)
                lc_statedir_ac_put(b->sd, &nodes[i].ks->key, &nodes[i].state, NULL);
        for (size_t i = 1; i <= start; i++)
            record_alt_hit(b, &nodes[i]);
        /* CMD set by the stage itself matters for a later ENTRYPOINT. */
        for (size_t i = 1; i <= start; i++)
            if (nodes[i].ks->kind == LC_DF_CMD)
                cmd_set = true;
    } else if ((rc = stage_base(b, st, &img, err)) < 0) {
        goto out;
    }
    for (size_t i = start + 1; i < count; i++) {
        if ((rc = exec_step(b, &nodes[i], img, &cmd_set, err)) < 0)
            goto out;
        b->stage_rebuilt[st->index] = true;
    }
    b->stage_final[st->index] = img;
    if (count > 1 && (nodes[count - 1].have_state))
        b->stage_digest[st->index] = nodes[count - 1].state;
    else
        rc = save_state(b, img, &b->stage_digest[st->index], err);
    img = NULL;
out:
    lc_image_free(&img);
    return rc;
}

static int build_stage(builder *b, const lc_key_stage *st, lc_err *err)
{
    node *nodes = b->nodes + st->first_step;
    size_t count = st->nsteps;
    int rc = 0;

    lc_progress_begin(b->progress, nodes[0].slot); /* FROM */

    /* The last step that hit: everything up to it is reused as is. */
    size_t last_hit = 0;
    for (size_t i = 1; i < count; i++)
        if (nodes[i].hit_local || nodes[i].hit_remote)
            last_hit = i;
    if (!b->o->no_cache && (rc = content_rekey(b, st, &last_hit, err)) < 0)
        return rc;
    if (!b->o->no_cache && (rc = mount_rekey(b, st, &last_hit, err)) < 0)
        return rc;
    for (size_t i = 1; i <= last_hit; i++)
        lc_progress_cached(b->progress, nodes[i].slot,
                           nodes[i].hit_local || !nodes[last_hit].hit_remote
                               ? LC_STEP_CACHED_LOCAL
                               : LC_STEP_CACHED_REMOTE);
    b->fetch_failed = false;
    rc = run_stage_from(b, st, last_hit, err);
    if (rc < 0 && b->fetch_failed && last_hit > 0 && !lc_remote_readable(b->remote)) {
        /* The cache went away while we fetched what a hit needs: a build that
         * can succeed without the cache must, so run the stage from its base. */
        lc_progress_note(b->progress, "rebuilding stage %s from its base: %s",
                         st->name ? st->name : "(unnamed)", err->msg);
        lc_err_clear(err);
        for (size_t i = 1; i < count; i++)
            lc_progress_reset(b->progress, nodes[i].slot);
        rc = run_stage_from(b, st, 0, err);
    }
    return rc;
}

/* Looks nodes [first, first+n) up: local action cache, then the server. */
static void lookup_range(builder *b, size_t first, size_t n)
{
    lc_digest *remote_keys = calloc(n ? n : 1, sizeof(*remote_keys));
    size_t *remote_idx = calloc(n ? n : 1, sizeof(*remote_idx));
    bool *hit = calloc(n ? n : 1, sizeof(*hit));
    lc_step_result *results = calloc(n ? n : 1, sizeof(*results));
    size_t nr = 0;
    if (!remote_keys || !remote_idx || !hit || !results)
        goto out;
    for (size_t i = first; i < first + n; i++) {
        node *nd = &b->nodes[i];
        nd->hit_local = nd->hit_remote = nd->have_state = false;
        if (nd->ks->index == 0 || b->o->no_cache)
            continue;
        if (lc_statedir_ac_get(b->sd, &nd->ks->key, &nd->state, NULL) == 0 &&
            lc_statedir_has_blob(b->sd, &nd->state)) {
            nd->hit_local = nd->have_state = true;
            continue;
        }
        remote_keys[nr] = nd->ks->key;
        remote_idx[nr++] = i;
    }
    lc_remote_lookup(b->remote, remote_keys, nr, hit, results);
    for (size_t k = 0; k < nr; k++) {
        if (!hit[k])
            continue;
        node *nd = &b->nodes[remote_idx[k]];
        nd->hit_remote = nd->have_state = true;
        nd->state = results[k].state;
        lc_step_result_clear(&results[k]);
    }
out:
    free(remote_keys);
    free(remote_idx);
    free(hit);
    free(results);
}

static void lookup_all(builder *b) { lookup_range(b, 0, b->keys->nsteps); }

/* Context hashing shows its bytes once there is 1 MB to read. */
static void on_hash(void *ctx, uint64_t done, uint64_t total)
{
    builder *b = ctx;
    if (b->hash_xfer < 0 && total >= SHOW_BYTES_FROM)
        b->hash_xfer = lc_progress_transfer_begin(b->progress, -1, "hashing context", total);
    lc_progress_transfer_update(b->progress, b->hash_xfer, done);
}

/* lc_keys_image_env_fn: the Env of a base image (local store or pulled). */
static int base_image_env(void *ctx, const char *image, const char *platform, lc_strlist *env)
{
    builder *b = ctx;
    lc_digest d;
    lc_image *img = NULL;
    lc_err e = {0};
    if (lc_pull_state(b->registry, image, platform, &d, &e) < 0 ||
        load_state(b, &d, &img, &e) < 0)
        return -LC_NOT_FOUND; /* the key engine reports the image's problem */
    int rc = lc_image_env_list(img, env);
    lc_image_free(&img);
    return rc;
}

/* SOURCE_DATE_EPOCH, from --build-arg as in BuildKit, else the
 * environment: the time of every layer entry and of the config. Without it,
 * 0: the same inputs give the same image, bit for bit. */
static void build_epoch(builder *b)
{
    lc_keys_epoch(b->o->build_args, b->o->nbuild_args, &b->has_epoch, &b->epoch);
    time_t t = (time_t)b->epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(b->created, sizeof(b->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* RUN --network=host needs the network.host entitlement (BuildKit's
 * rule): refused before anything runs, hit or not. */
static int check_entitlements(builder *b, lc_err *err)
{
    for (size_t i = 0; i < b->keys->nsteps; i++) {
        const lc_key_step *ks = &b->keys->steps[i];
        if (ks->kind != LC_DF_RUN || ks->network != LC_DF_NET_HOST || b->o->allow_network_host)
            continue;
        const lc_df_pos *pos = ks->run.network == LC_DF_NET_HOST ? &ks->run.network_pos
                                                                  : &ks->instr->pos;
        return lc_err_set(err, LC_PERMISSION_DENIED,
                          "%s:%d:%d: RUN --network=host needs the network.host entitlement: "
                          "build with --allow network.host",
                          pos->file, pos->line, pos->col);
    }
    return 0;
}

/* Keys, progress slots and lookups of one platform: nothing runs yet. */
static int plan_platform(builder *b, int nplatforms, lc_err *err)
{
    const lc_build_opts *o = b->o;
    build_epoch(b);
    /* ADD <url> sources are downloaded while keying, into the state dir. */
    snprintf(b->downloads, sizeof(b->downloads), "%s/tmp", lc_statedir_path(b->sd));
    b->ko = (lc_keys_opts){.context_dir = o->context,
                           .dockerfile_path = o->dockerfile_text ? NULL : b->dockerfile,
                           .target = o->target,
                           .build_args = o->build_args,
                           .nbuild_args = o->nbuild_args,
                           .platform = b->platform,
                           .resolve = lc_pull_resolve, /* registry: local store, else pull */
                           .resolve_ctx = b->registry,
                           .image_env = base_image_env,
                           .image_env_ctx = b,
                           .has_epoch = b->has_epoch,
                           .epoch = b->epoch,
                           .download_dir = b->downloads,
                           .statcache = b->statcache,
                           .hash_progress = on_hash,
                           .hash_progress_ctx = b,
                           .network = (enum lc_df_network)o->network,
                           .extra_hosts = o->add_hosts
                                              ? (const char *const *)o->add_hosts->items
                                              : NULL,
                           .n_extra_hosts = o->add_hosts ? o->add_hosts->len : 0};
    b->hash_xfer = -1;
    int rc = lc_keys_compute(b->file, &b->ko, &b->keys, err);
    lc_progress_transfer_end(b->progress, b->hash_xfer);
    if (rc < 0)
        return rc;
    if ((rc = check_entitlements(b, err)) < 0)
        return rc;
    if (b->statcache != NULL)
        lc_statcache_save(b->statcache, NULL);

    size_t n = b->keys->nsteps;
    size_t ns = b->keys->nstages ? b->keys->nstages : 1;
    b->nodes = calloc(n ? n : 1, sizeof(*b->nodes));
    b->stage_final = calloc(ns, sizeof(*b->stage_final));
    b->stage_digest = calloc(ns, sizeof(*b->stage_digest));
    b->stage_rebuilt = calloc(ns, sizeof(*b->stage_rebuilt));
    if (!b->nodes || !b->stage_final || !b->stage_digest || !b->stage_rebuilt)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        node *nd = &b->nodes[i];
        nd->ks = &b->keys->steps[i];
        nd->slot = -1;
        const lc_key_stage *st = &b->keys->stages[nd->ks->stage];
        char stage[96], label[160], key[LC_DIGEST_OCI_LEN + 1];
        /* BuildKit names a step's platform when a build has several. */
        const char *plat = nplatforms > 1 ? b->platform : "";
        if (st->name)
            snprintf(stage, sizeof(stage), "%s%s%s", plat, *plat ? " " : "", st->name);
        else
            snprintf(stage, sizeof(stage), "%s%sstage-%d", plat, *plat ? " " : "", st->index);
        snprintf(label, sizeof(label), "%s %d/%zu", stage, nd->ks->index + 1, st->nsteps);
        lc_digest_oci(&nd->ks->key, key);
        nd->slot = lc_progress_add(b->progress, stage, label, nd->ks->instruction, key,
                                   nd->ks->index != 0);
        if (nd->slot < 0)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    lookup_all(b);
    return 0;
}

/* Before anything runs: every base image is of the platform its stage builds
 * for (the config must say what the image is), and a RUN that will run can
 * run here (natively or under an emulator). */
static int preflight(builder *b, lc_err *err)
{
    for (size_t s = 0; s < b->keys->nstages; s++) {
        const lc_key_stage *st = &b->keys->stages[s];
        if (!st->needed || st->nsteps == 0)
            continue;
        const node *nodes = b->nodes + st->first_step;
        const lc_df_instr *from = nodes[0].ks->instr;
        lc_platform want;
        int rc = lc_platform_parse(st->platform, &want, err);
        if (rc < 0)
            return rc;
        /* FROM a stage of this file that declares ONBUILD: the same rule. */
        if (st->base_stage >= 0) {
            const lc_key_stage *bs = &b->keys->stages[st->base_stage];
            for (size_t i = 0; i < bs->nsteps; i++) {
                const lc_df_instr *in = b->nodes[bs->first_step + i].ks->instr;
                if (in->kind == LC_DF_ONBUILD)
                    return lc_err_set(err, LC_UNIMPLEMENTED,
                                      "%s:%d:%d: FROM %s: that stage declares ONBUILD (line %d), "
                                      "which layercache does not run: write the instructions "
                                      "into this stage",
                                      from->pos.file, from->pos.line, from->pos.col, st->base,
                                      in->pos.line);
            }
        }
        if (st->base_stage < 0 && strcasecmp(st->base, "scratch") != 0) {
            lc_digest d;
            lc_image *base = NULL;
            if ((rc = lc_pull_state(b->registry, st->base, st->platform, &d, err)) < 0 ||
                (rc = load_state(b, &d, &base, err)) < 0)
                return rc;
            char have[96];
            lc_image_get_platform(base, have, sizeof(have));
            /* BuildKit runs a base image's ONBUILD triggers first in the
             * stage; building without them would make another image. */
            const char *trigger = NULL;
            size_t ntriggers = lc_image_onbuild_count(base, &trigger);
            if (ntriggers > 0) {
                rc = lc_err_set(err, LC_UNIMPLEMENTED,
                                "%s:%d:%d: FROM %s: the image has %zu ONBUILD trigger%s (\"%s\"%s), "
                                "which layercache does not run: build FROM an image without "
                                "them, or write the instructions into this stage",
                                from->pos.file, from->pos.line, from->pos.col, st->base,
                                ntriggers, ntriggers > 1 ? "s" : "", trigger ? trigger : "",
                                ntriggers > 1 ? ", ..." : "");
                lc_image_free(&base);
                return rc;
            }
            lc_image_free(&base);
            lc_platform hp;
            if (have[0] != '/' && lc_platform_parse(have, &hp, NULL) == 0 &&
                !lc_platform_equal(&hp, &want))
                return lc_err_set(err, LC_FAILED_PRECONDITION,
                                  "%s:%d:%d: FROM %s is an image for %s, but the stage builds for %s: "
                                  "build or pull %s for %s (an image of another platform would "
                                  "make the result lie about what it is)",
                                  from->pos.file, from->pos.line, from->pos.col, st->base, have,
                                  st->platform,
                                  st->base, st->platform);
        }
        size_t last_hit = 0;
        for (size_t i = 1; i < st->nsteps; i++)
            if (nodes[i].hit_local || nodes[i].hit_remote)
                last_hit = i;
        for (size_t i = last_hit + 1; i < st->nsteps; i++) {
            if (nodes[i].ks->kind != LC_DF_RUN)
                continue;
            if ((rc = check_runnable(nodes[i].ks, err)) < 0)
                return rc;
            break; /* one RUN of the stage tells for all: the platform is the stage's */
        }
    }
    return 0;
}

/* Runs one platform's needed stages; b->final is then the target image
 * with the build's labels, saved as b->final_state. */
static int run_platform(builder *b, lc_err *err)
{
    int rc;
    for (size_t s = 0; s < b->keys->nstages; s++) {
        const lc_key_stage *st = &b->keys->stages[s];
        if (!st->needed || st->nsteps == 0)
            continue;
        if ((rc = build_stage(b, st, err)) < 0)
            return rc;
        if ((rc = lc_remote_check_required(b->remote, err)) < 0)
            return rc;
    }
    const lc_image *target = b->stage_final[b->keys->target];
    b->final_state = b->stage_digest[b->keys->target];
    if (target == NULL)
        return lc_err_set(err, LC_INTERNAL, "the target stage was not built");
    if ((b->final = lc_image_clone(target)) == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    const lc_strlist *labels = b->o->labels;
    for (size_t i = 0; labels != NULL && i < labels->len; i++) {
        /* --label sets the image's labels, as buildx does: not a step, no key. */
        char *kv = strdup(labels->items[i]);
        char *eq = kv ? strchr(kv, '=') : NULL;
        if (eq == NULL) {
            free(kv);
            return lc_err_set(err, LC_INVALID_ARGUMENT, "--label %s: expected KEY=VALUE",
                              labels->items[i]);
        }
        *eq = '\0';
        rc = lc_image_set_label(b->final, kv, eq + 1);
        free(kv);
        if (rc < 0)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (labels != NULL && labels->len > 0 && (rc = save_state(b, b->final, &b->final_state, err)) < 0)
        return rc;
    return 0;
}

/* Blob files of every layer of img, fetched from the cache when not local. */
static int layer_paths(builder *b, const lc_image *img, lc_strlist *out, lc_err *err)
{
    for (size_t i = 0; i < lc_image_layer_count(img); i++) {
        lc_image_layer layer;
        char path[PATH_MAX];
        lc_image_layer_at(img, i, &layer);
        int rc = ensure_blob(b, &layer.blob, -1, err);
        if (rc < 0)
            return rc;
        lc_statedir_blob_path(b->sd, &layer.blob, path, sizeof(path));
        if (lc_strlist_push(out, path) < 0)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

/* Tags, --output, --push, the result and the summary, after every platform
 * was built. */
static int finish(builder *bs, size_t n, double t0, lc_build_result *res, lc_err *err)
{
    const lc_build_opts *o = bs[0].o;
    lc_layout_image *imgs = calloc(n, sizeof(*imgs));
    lc_strlist *paths = calloc(n, sizeof(*paths));
    char *index = NULL, *config = NULL, *manifest = NULL;
    char top_hex[LC_DIGEST_OCI_LEN + 1], state_hex[LC_DIGEST_OCI_LEN + 1];
    int rc = imgs && paths ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        imgs[i] = (lc_layout_image){.img = bs[i].final, .platform = bs[i].platform};
        if (o->noutputs > 0) {
            rc = layer_paths(&bs[i], bs[i].final, &paths[i], err);
            imgs[i].layer_paths = (const char *const *)paths[i].items;
        }
    }
    if (rc < 0)
        goto out;

    /* What was built: one manifest, or an index of the platforms. */
    lc_digest top, config_digest = {0};
    size_t clen = 0, mlen = 0;
    lc_build_result r = {0};
    if (n == 1) {
        if ((rc = lc_layout_manifest(bs[0].final, &config, &clen, &config_digest, &manifest,
                                     &mlen, &top, err)) < 0)
            goto out;
        snprintf(r.media_type, sizeof(r.media_type), "%s", LC_MEDIA_OCI_MANIFEST);
        r.size = (int64_t)mlen;
        lc_digest_oci(&config_digest, r.config_digest);
    } else {
        size_t ilen = 0;
        if ((rc = lc_layout_index(imgs, n, &index, &ilen, &top, err)) < 0)
            goto out;
        snprintf(r.media_type, sizeof(r.media_type), "%s", LC_MEDIA_OCI_INDEX);
        r.size = (int64_t)ilen;
    }
    lc_digest_oci(&top, top_hex);
    snprintf(r.digest, sizeof(r.digest), "%s", top_hex);
    lc_digest_oci(&bs[0].final_state, state_hex);

    /* The local image store holds one image per name. */
    for (size_t i = 0; o->tags && i < o->tags->len; i++) {
        if (n > 1) {
            lc_progress_note(bs[0].progress,
                             "not storing %s in the local image store: it holds one platform per "
                             "name (--output type=oci writes the multi-platform image)",
                             o->tags->items[i]);
            continue;
        }
        if ((rc = lc_statedir_image_put(bs[0].sd, o->tags->items[i], &bs[0].final_state, err)) < 0)
            goto out;
    }
    char tmp[PATH_MAX] = "";
    if (o->noutputs > 0 && (rc = lc_statedir_mktemp(bs[0].sd, "output", tmp, sizeof(tmp), err)) < 0)
        goto out;
    for (size_t i = 0; i < o->noutputs && rc == 0; i++)
        rc = lc_output_write(&o->outputs[i], imgs, n, o->tags, tmp, err);
    if (tmp[0])
        lc_fs_rm_rf(tmp);
    if (rc < 0)
        goto out;
    /* registry: --push every -t tag (registry/push.c prints the digest). */
    for (size_t i = 0; n == 1 && o->registry && o->registry->push && o->tags && i < o->tags->len;
         i++)
        if ((rc = lc_push_image(bs[0].registry, bs[0].final, o->tags->items[i], NULL, err)) < 0)
            goto out;

    /* Bytes moved, per step for the summary: downloads were attributed as
     * they happened; layers fetched for no step (--output) and the uploads,
     * which run in the background, go to the last step. Bytes are layer
     * bytes: the small state documents a hit reads are not counted. */
    uint64_t unattributed = 0;
    for (size_t i = 0; i < n; i++)
        unattributed += bs[i].down_unattributed;
    const builder *last = &bs[n - 1];
    size_t nsteps = last->keys->nsteps;
    if (nsteps > 0 && (unattributed > 0 || lc_remote_bytes_up(last->remote) > 0))
        lc_progress_bytes(last->progress, last->nodes[nsteps - 1].slot, unattributed,
                          lc_remote_bytes_up(last->remote));
    lc_remote_status cs;
    lc_remote_get_status(last->remote, &cs);
    lc_progress_set_cache(last->progress, lc_remote_state_name(cs.state),
                          cs.reason[0] ? cs.reason : NULL);
    double wall = mono_now() - t0;
    lc_progress_summary(last->progress, wall, top_hex);
    if (o->summary_json != NULL &&
        (rc = lc_progress_write_json(last->progress, o->summary_json, wall, top_hex,
                                     n == 1 ? state_hex : NULL, err)) < 0)
        goto out;
    if (res != NULL)
        *res = r;
out:
    for (size_t i = 0; paths && i < n; i++)
        lc_strlist_clear(&paths[i]);
    free(paths);
    free(imgs);
    free(index);
    free(config);
    free(manifest);
    return rc;
}

static void builder_clear(builder *b)
{
    if (b->keys != NULL) {
        for (size_t i = 0; i < b->keys->nsteps && b->nodes; i++)
            lc_step_action_clear(&b->nodes[i].alt);
        for (size_t s = 0; s < b->keys->nstages && b->stage_final; s++)
            lc_image_free(&b->stage_final[s]);
    }
    lc_image_free(&b->final);
    free(b->nodes);
    free(b->stage_final);
    free(b->stage_digest);
    free(b->stage_rebuilt);
    lc_keys_free(&b->keys);
}

int lc_build_run(const lc_build_opts *o, lc_build_result *result, lc_err *err)
{
    static const lc_strlist no_platforms = {0};
    const lc_strlist *platforms = o->platforms ? o->platforms : &no_platforms;
    size_t n = platforms->len ? platforms->len : 1;
    builder *bs = calloc(n, sizeof(*bs));
    char state_dir[PATH_MAX], dockerfile[PATH_MAX], host[64];
    lc_statedir *sd = NULL;
    lc_progress *progress = NULL;
    lc_remote *remote = NULL;
    lc_registry *registry = NULL;
    lc_df_file *file = NULL;
    lc_statcache *statcache = NULL;
    lc_secrets *secrets = NULL; /* --secret, --ssh: shared by every platform */
    char worker[256];
    double t0 = mono_now();
    int rc = 0;
    if (bs == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    lc_platform hp;
    lc_platform_host(&hp);
    lc_platform_format(&hp, host, sizeof(host));
    if (o->worker_id != NULL)
        snprintf(worker, sizeof(worker), "%s", o->worker_id);
    else if (gethostname(worker, sizeof(worker) - 1) != 0)
        snprintf(worker, sizeof(worker), "unknown");
    if (o->state_dir != NULL)
        snprintf(state_dir, sizeof(state_dir), "%s", o->state_dir);
    else if ((rc = lc_statedir_default(state_dir, sizeof(state_dir), err)) < 0)
        goto out;
    if ((rc = lc_statedir_open(state_dir, &sd, err)) < 0)
        goto out;
    if ((progress = lc_progress_new(stderr, o->progress_mode)) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    lc_remote_opts ro = {.target = o->cache,
                         .peers = o->cache_peers,
                         .instance = o->instance,
                         .token = o->token,
                         .cacert = o->cacert,
                         .tls_cert = o->tls_cert,
                         .tls_key = o->tls_key,
                         .mode = o->cache_mode,
                         .worker = worker,
                         .required = o->cache_required};
    if ((rc = lc_remote_open(&ro, progress, &remote, err)) < 0)
        goto out;
    if ((rc = lc_registry_open(o->registry, sd, remote, progress, &registry, err)) < 0)
        goto out;
    if (o->dockerfile_text != NULL)
        snprintf(dockerfile, sizeof(dockerfile), "-");
    else if (o->dockerfile != NULL)
        snprintf(dockerfile, sizeof(dockerfile), "%s", o->dockerfile);
    else
        snprintf(dockerfile, sizeof(dockerfile), "%s/Dockerfile", o->context);
    rc = o->dockerfile_text != NULL
             ? lc_df_parse(o->dockerfile_text, o->dockerfile_len, dockerfile, &file, err)
             : lc_df_parse_path(dockerfile, &file, err);
    if (rc < 0)
        goto out;
    if (lc_statcache_open(lc_statedir_path(sd), &statcache, NULL) < 0)
        statcache = NULL; /* hashing still works, only slower */
    if ((rc = lc_secrets_open(o->secrets, o->ssh, &secrets, err)) < 0)
        goto out;

    /* Every platform's keys and lookups, then the checks, before any step
     * runs. */
    for (size_t i = 0; i < n; i++) {
        builder *b = &bs[i];
        *b = (builder){.o = o,
                       .platform = platforms->len ? platforms->items[i] : host,
                       .dockerfile = dockerfile,
                       .sd = sd,
                       .remote = remote,
                       .registry = registry,
                       .progress = progress,
                       .file = file,
                       .statcache = statcache,
                       .secrets = secrets};
        snprintf(b->worker, sizeof(b->worker), "%s", worker);
        if ((rc = plan_platform(b, (int)n, err)) < 0)
            goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = preflight(&bs[i], err)) < 0)
            goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = run_platform(&bs[i], err)) < 0)
            goto out;
    lc_remote_drain(remote);
    if ((rc = lc_remote_check_required(remote, err)) < 0)
        goto out;
    rc = finish(bs, n, t0, result, err);
out:
    for (size_t i = 0; i < n; i++)
        builder_clear(&bs[i]);
    free(bs);
    lc_registry_close(&registry);
    lc_remote_close(&remote);
    lc_df_file_free(&file);
    lc_statcache_free(&statcache);
    lc_secrets_free(&secrets);
    lc_progress_free(&progress);
    lc_statedir_close(&sd);
    return rc;
}
