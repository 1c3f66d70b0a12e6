/* exec.c - see exec.h. RUN steps run runc as a child of a libuv loop that
 * streams its output line by line; COPY/ADD write through an overlay mount. */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "build-worker/context/dockerignore.h"
#include "build-worker/context/path.h"
#include "build-worker/layer/copy.h"
#include "agentfwd.h"
#include "build-worker/runtime/mounts.h"
#include "build-worker/runtime/network.h"
#include "build-worker/runtime/overlay.h"
#include "build-worker/runtime/runc.h"

/* ---- RUN ------------------------------------------------------------------ */

typedef struct line_pipe {
    uv_pipe_t pipe;
    char buf[8192];
    size_t len;
    struct run_ctx *run;
} line_pipe;

typedef struct run_ctx {
    const lc_exec_run_opts *o;
    uv_process_t proc;
    line_pipe out, err;
    int64_t exit_status;
    int term_signal;
    int open_handles;
    lc_agentfwd **agents; /* ssh agent relays, closed when the step exits */
    size_t nagents;
} run_ctx;

static void close_agents(run_ctx *r)
{
    for (size_t i = 0; i < r->nagents; i++) {
        lc_agentfwd_close(r->agents[i]);
        r->agents[i] = NULL;
    }
}

static void on_close(uv_handle_t *h)
{
    run_ctx *r = h->data;
    r->open_handles--;
}

static void emit(line_pipe *lp, bool flush_all)
{
    size_t start = 0;
    for (size_t i = 0; i < lp->len; i++) {
        if (lp->buf[i] == '\n') {
            lp->run->o->output(lp->run->o->ctx, lp->buf + start, i - start);
            start = i + 1;
        }
    }
    if (flush_all || (start == 0 && lp->len == sizeof(lp->buf))) {
        /* A final partial line, or one longer than the buffer. */
        if (lp->len > start)
            lp->run->o->output(lp->run->o->ctx, lp->buf + start, lp->len - start);
        start = lp->len;
    }
    memmove(lp->buf, lp->buf + start, lp->len - start);
    lp->len -= start;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    line_pipe *lp = (line_pipe *)h;
    *buf = uv_buf_init(lp->buf + lp->len, (unsigned)(sizeof(lp->buf) - lp->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    line_pipe *lp = (line_pipe *)s;
    if (n > 0) {
        lp->len += (size_t)n;
        emit(lp, false);
    } else if (n < 0) {
        emit(lp, true);
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    run_ctx *r = p->data;
    r->exit_status = status;
    r->term_signal = term_signal;
    close_agents(r);
    uv_close((uv_handle_t *)p, on_close);
}

/* The process environment: the step's, then each variable of add replacing
 * one of the same name (a secret's env= wins over ENV, as in BuildKit). */
static int merge_env(const lc_exec_run_opts *o, const lc_strlist *add, lc_strlist *env)
{
    for (size_t i = 0; i < o->nenv; i++) {
        size_t nl = strcspn(o->env[i], "=");
        bool replaced = false;
        for (size_t k = 0; k < add->len && !replaced; k++)
            replaced = strncmp(add->items[k], o->env[i], nl) == 0 && add->items[k][nl] == '=';
        if (!replaced && lc_strlist_push(env, o->env[i]) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    }
    for (size_t k = 0; k < add->len; k++)
        if (lc_strlist_push(env, add->items[k]) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    return 0;
}

/* Frees a list that may hold secret values, wiping them first. */
static void wipe_strlist(lc_strlist *l)
{
    for (size_t i = 0; i < l->len; i++)
        explicit_bzero(l->items[i], strlen(l->items[i]));
    lc_strlist_clear(l);
}

/* A secret as a file on the private tmpfs (never on disk). */
static int write_secret(const char *path, const lc_exec_mount *m, lc_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "secret file: %s", strerror(errno));
    size_t off = 0;
    int rc = 0;
    while (off < m->len && rc == 0) {
        ssize_t w = write(fd, (const char *)m->data + off, m->len - off);
        if (w < 0 && errno != EINTR)
            rc = lc_err_set(err, lc_code_from_errno(errno), "secret file: %s", strerror(errno));
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && (fchown(fd, m->uid, m->gid) < 0 || fchmod(fd, m->mode) < 0))
        rc = lc_err_set(err, lc_code_from_errno(errno), "secret file: %s", strerror(errno));
    close(fd);
    return rc;
}

/* Everything a step needs besides runc itself; undone by run_env_free. */
typedef struct run_env {
    char priv[PATH_MAX]; /* the private tmpfs ("" when not mounted) */
    lc_net *net;
    lc_runc_mount *mounts;
    size_t nmounts;
    char **paths; /* host paths made on the tmpfs, one per extra mount */
    lc_strlist add_env, env;
    size_t nagents;
    size_t *agent_of;        /* index into o->mounts of each agent */
    const char **agent_path; /* its relay socket (in paths) */
} run_env;

static void run_env_free(run_env *e)
{
    lc_net_close(&e->net);
    for (size_t i = 0; e->paths && i < e->nmounts; i++)
        free(e->paths[i]);
    free(e->paths);
    free(e->mounts);
    free(e->agent_of);
    free(e->agent_path);
    wipe_strlist(&e->add_env);
    wipe_strlist(&e->env);
    if (e->priv[0])
        lc_mount_private_dir_remove(e->priv, NULL);
}

static int run_env_make(const lc_exec_fs *fs, const lc_exec_run_opts *o, run_env *e, lc_err *err)
{
    snprintf(e->priv, sizeof(e->priv), "%s/private", fs->scratch);
    int rc = lc_mount_private_dir(e->priv, err);
    if (rc < 0) {
        e->priv[0] = '\0';
        return rc;
    }
    lc_net_opts no = {.mode = (lc_net_mode)o->network,
                      .dir = e->priv,
                      .extra_hosts = o->extra_hosts,
                      .n_extra_hosts = o->n_extra_hosts};
    if ((rc = lc_net_open(&no, &e->net, err)) < 0)
        return rc;
    size_t cap = LC_NET_NFILES + o->nmounts;
    e->mounts = calloc(cap, sizeof(*e->mounts));
    e->paths = calloc(cap, sizeof(*e->paths));
    e->agent_of = calloc(o->nmounts + 1, sizeof(*e->agent_of));
    e->agent_path = calloc(o->nmounts + 1, sizeof(*e->agent_path));
    if (!e->mounts || !e->paths || !e->agent_of || !e->agent_path)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < LC_NET_NFILES; i++)
        e->mounts[e->nmounts++] = (lc_runc_mount){.kind = LC_RUNC_BIND,
                                                  .target = lc_net_file_target(i),
                                                  .source = lc_net_file_source(e->net, i),
                                                  .readonly = 1};
    for (size_t i = 0; i < o->nmounts; i++) {
        const lc_exec_mount *m = &o->mounts[i];
        lc_runc_mount *rm = &e->mounts[e->nmounts];
        char *path = NULL;
        *rm = (lc_runc_mount){.kind = LC_RUNC_BIND, .target = m->target, .readonly = m->readonly};
        switch (m->kind) {
        case LC_EXEC_MOUNT_PATH:
            rm->source = m->source;
            break;
        case LC_EXEC_MOUNT_TMPFS:
            rm->kind = LC_RUNC_TMPFS;
            rm->size = m->size;
            break;
        case LC_EXEC_MOUNT_SECRET:
            if (m->env != NULL) {
                char *kv = malloc(strlen(m->env) + m->len + 2);
                if (kv == NULL || lc_strlist_push_owned(&e->add_env, kv) < 0)
                    return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                sprintf(kv, "%s=", m->env);
                memcpy(kv + strlen(m->env) + 1, m->data, m->len);
                kv[strlen(m->env) + 1 + m->len] = '\0';
            }
            if (m->target == NULL)
                continue;
            if (asprintf(&path, "%s/secret.%zu", e->priv, i) < 0)
                return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            e->paths[e->nmounts] = path;
            if ((rc = write_secret(path, m, err)) < 0)
                return rc;
            rm->source = path;
            rm->readonly = 1;
            break;
        case LC_EXEC_MOUNT_AGENT:
            if (asprintf(&path, "%s/agent.%zu", e->priv, i) < 0)
                return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            e->paths[e->nmounts] = path;
            rm->source = path;
            rm->readonly = 0;
            e->agent_path[e->nagents] = path;
            e->agent_of[e->nagents++] = i;
            if (e->nagents == 1) {
                bool has = false;
                for (size_t k = 0; k < o->nenv && !has; k++)
                    has = strncmp(o->env[k], "SSH_AUTH_SOCK=", 14) == 0;
                char *kv = NULL;
                if (!has && (asprintf(&kv, "SSH_AUTH_SOCK=%s", m->target) < 0 ||
                             lc_strlist_push_owned(&e->add_env, kv) < 0))
                    return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            }
            break;
        }
        e->nmounts++;
    }
    if (merge_env(o, &e->add_env, &e->env) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

int lc_exec_run(const lc_exec_fs *fs, const lc_exec_run_opts *o, int *exit_code, lc_err *err)
{
    char bundle[PATH_MAX + 16], work[PATH_MAX], id[64];
    run_env re = {0};
    lc_agentfwd **agents = NULL;
    int rc = run_env_make(fs, o, &re, err);
    if (rc < 0) {
        run_env_free(&re);
        return rc;
    }
    snprintf(bundle, sizeof(bundle), "%s/bundle", re.priv);
    snprintf(work, sizeof(work), "%s/work", fs->scratch);
    snprintf(id, sizeof(id), "layercache-%d-%lx", getpid(), (unsigned long)random());
    lc_runc_step step = {.id = id,
                         .bundle_dir = bundle,
                         .lower_dirs = fs->lowers,
                         .n_lower = fs->nlowers,
                         .upper_dir = fs->upper,
                         .work_dir = work,
                         .argv = o->argv,
                         .argc = o->argc,
                         .env = (const char *const *)re.env.items,
                         .n_env = re.env.len,
                         .cwd = o->cwd,
                         .user = o->user,
                         .network_host = o->network == LC_NET_HOST,
                         .netns_path = lc_net_netns_path(re.net),
                         .mounts = re.mounts,
                         .n_mounts = re.nmounts};
    /* The agent sockets first: runc's config needs them to exist (a socket
     * is bound on a file). */
    uv_loop_t loop;
    run_ctx r = {.o = o};
    agents = calloc(re.nagents + 1, sizeof(*agents));
    if (agents == NULL || uv_loop_init(&loop) != 0) {
        free(agents);
        run_env_free(&re);
        return lc_err_set(err, LC_INTERNAL, "cannot create an event loop");
    }
    r.agents = agents;
    for (size_t i = 0; i < re.nagents && rc == 0; i++) {
        const lc_exec_mount *m = &o->mounts[re.agent_of[i]];
        rc = lc_agentfwd_start(&loop, re.agent_path[i], m->source, m->uid, m->gid, m->mode,
                               &agents[i], err);
        if (rc == 0)
            r.nagents++;
    }
    lc_runc *rc_handle = NULL;
    if (rc == 0)
        rc = lc_runc_prepare(&step, &rc_handle, err);
    if (rc < 0) {
        close_agents(&r);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        free(agents);
        run_env_free(&re);
        return rc;
    }
    r.out.run = r.err.run = &r;
    uv_pipe_init(&loop, &r.out.pipe, 0);
    uv_pipe_init(&loop, &r.err.pipe, 0);
    r.out.pipe.data = r.err.pipe.data = &r;
    r.open_handles = 2;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r.out.pipe},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r.err.pipe},
    };
    const char *const *argv = lc_runc_argv(rc_handle);
    uv_process_options_t po = {.file = argv[0],
                               .args = (char **)argv,
                               .exit_cb = on_exit_cb,
                               .stdio_count = 3,
                               .stdio = stdio};
    r.proc.data = &r;
    int e = rc == 0 ? uv_spawn(&loop, &r.proc, &po) : UV_ECANCELED;
    if (e != 0) {
        if (rc == 0)
            rc = lc_err_set(err, LC_FAILED_PRECONDITION, "cannot start %s: %s (is runc installed?)",
                            argv[0], uv_strerror(e));
        uv_close((uv_handle_t *)&r.out.pipe, on_close);
        uv_close((uv_handle_t *)&r.err.pipe, on_close);
        close_agents(&r);
    } else {
        r.open_handles++;
        uv_read_start((uv_stream_t *)&r.out.pipe, on_alloc, on_read);
        uv_read_start((uv_stream_t *)&r.err.pipe, on_alloc, on_read);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(agents);
    if (e == 0)
        *exit_code = r.term_signal ? 128 + r.term_signal : (int)r.exit_status;
    lc_err cleanup_err = {0};
    if (lc_runc_cleanup(&rc_handle, &cleanup_err) < 0 && rc == 0)
        rc = lc_err_set(err, cleanup_err.code, "%s", cleanup_err.msg);
    run_env_free(&re);
    return rc;
}

/* ---- views and COPY ---------------------------------------------------------- */

int lc_exec_view(const char *const *lowers, size_t nlowers, const char *mnt, char *view,
                 size_t cap, bool *mounted, lc_err *err)
{
    *mounted = false;
    if (nlowers == 1) {
        snprintf(view, cap, "%s", lowers[0]);
        return 0;
    }
    if (nlowers == 0) {
        snprintf(view, cap, "%s", mnt); /* an empty directory: scratch */
        return 0;
    }
    /* Lower-only overlay mounts are read-only. */
    char opts[8192];
    size_t used = (size_t)snprintf(opts, sizeof(opts), "lowerdir=");
    for (size_t i = 0; i < nlowers; i++) {
        int n = snprintf(opts + used, sizeof(opts) - used, "%s%s", i ? ":" : "", lowers[i]);
        if (n < 0 || (size_t)n >= sizeof(opts) - used)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "too many layers to mount");
        used += (size_t)n;
    }
    if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) != 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot mount a view of %zu layers: %s",
                          nlowers, strerror(errno));
    *mounted = true;
    snprintf(view, cap, "%s", mnt);
    return 0;
}

void lc_exec_unmount(const char *mnt) { lc_overlay_unmount(mnt, NULL); }

/* --parents: the directory a source's paths are kept relative to (the part
 * before "/./", else the root). Returns a malloc'd cleaned path, "." for
 * the root. */
static char *parents_pivot(const char *src)
{
    const char *cut = strstr(src, "/./");
    if (cut == NULL)
        return strdup(".");
    char *pre = strndup(src, (size_t)(cut - src));
    char *clean = pre ? lc_path_rel_clean(pre) : NULL;
    free(pre);
    return clean;
}

/* The in-image path of an entry. */
static char *entry_target(const lc_exec_copy_opts *o, const char *dest, bool into_dir,
                          const lc_ctx_entry *e)
{
    if (o->parents) {
        const char *src = e->src < o->nsources ? o->sources[e->src] : "";
        char *pivot = parents_pivot(src);
        if (pivot == NULL)
            return NULL;
        const char *rel = e->path;
        size_t pl = strlen(pivot);
        if (strcmp(pivot, ".") != 0 && strncmp(rel, pivot, pl) == 0 && rel[pl] == '/')
            rel += pl + 1;
        else if (strcmp(pivot, ".") != 0 && strcmp(rel, pivot) == 0)
            rel = ".";
        char *t = lc_path_join(dest, rel);
        free(pivot);
        return t;
    }
    if (e->match && !S_ISDIR(e->mode) && !into_dir)
        return strdup(dest);
    if (strcmp(e->dest, ".") == 0)
        return strdup(dest);
    return lc_path_join(dest, e->dest);
}

/* Copies selected entries into the image root (layer/copy.c resolves every
 * destination inside root). A directory entry only creates the directory:
 * its contents are entries of their own, already filtered by .dockerignore
 * and --exclude. */
static int copy_entries(const lc_exec_copy_opts *o, const char *merged, const lc_ctx_entry *entries,
                        size_t n, const char *dest, bool into_dir, const lc_copy_opts *co,
                        lc_err *err)
{
    lc_copy_opts shallow = *co;
    shallow.shallow = 1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lc_ctx_entry *e = &entries[i];
        char *dst = entry_target(o, dest, into_dir, e);
        char *src = lc_path_join(o->src_root, e->path);
        if (dst == NULL || src == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        } else if (S_ISDIR(e->mode)) {
            rc = lc_copy_path(src, merged, dst, &shallow, err);
        } else if (e->match && S_ISREG(e->mode) && o->is_add && lc_copy_is_archive(src) == 1) {
            /* ADD extracts a local archive (a source itself, not a file
             * inside a copied directory) into the destination directory. */
            rc = lc_copy_add_archive(src, merged, dest, co, err);
        } else {
            rc = lc_copy_path(src, merged, dst, co, err);
        }
        free(dst);
        free(src);
    }
    return rc;
}

/* ADD <url>: the downloaded files, named after the URL path. */
static int copy_urls(const lc_exec_copy_opts *o, const char *merged, const char *dest,
                     bool into_dir, const lc_copy_opts *co, lc_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < o->nurls && rc == 0; i++) {
        char *dst = into_dir ? lc_path_join(dest, o->url_names[i]) : strdup(dest);
        if (dst == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        rc = lc_copy_path(o->url_files[i], merged, dst, co, err);
        if (rc == 0 && o->url_mtimes != NULL && o->url_mtimes[i] >= 0) {
            /* Last-Modified becomes the file's mtime, as in Docker. */
            char *host = NULL;
            if (asprintf(&host, "%s%s", merged, dst) >= 0) {
                struct timespec ts[2] = {{o->url_mtimes[i], 0}, {o->url_mtimes[i], 0}};
                utimensat(AT_FDCWD, host, ts, AT_SYMLINK_NOFOLLOW);
            }
            free(host);
        }
        free(dst);
    }
    return rc;
}

static int do_copy(const lc_exec_copy_opts *o, const char *merged, lc_err *err)
{
    lc_copy_opts co = {0};
    int rc = 0;
    if (o->chmod != NULL && (rc = lc_copy_parse_chmod(o->chmod, &co, err)) < 0)
        return rc;
    if (o->chown != NULL && (rc = lc_copy_parse_chown(merged, o->chown, &co, err)) < 0)
        return rc;
    /* COPY --from keeps the source's owners unless --chown says otherwise. */
    co.keep_owner = o->nsrc_paths > 0 && o->chown == NULL;

    /* "", ".", "x/", "x/." name a directory (BuildKit keeps the slash). */
    const char *raw = o->dest;
    size_t dl = strlen(raw);
    bool dir_syntax = dl == 0 || raw[dl - 1] == '/' || strcmp(raw, ".") == 0 ||
                      (dl >= 2 && strcmp(raw + dl - 2, "/.") == 0);
    /* path.Join of WORKDIR and the destination, as BuildKit: ".." is
     * lexical and stops at "/". */
    char *joined = NULL;
    if (asprintf(&joined, "/%s/%s", raw[0] == '/' ? "" : o->workdir, raw) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    char *dest = lc_path_clean(joined);
    free(joined);
    if (dest == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    bool into_dir = dir_syntax || o->nargs > 1 || o->parents || lc_copy_is_dir(merged, dest);

    lc_selection *from_sel = NULL;
    lc_ignore *exclude = NULL;
    const lc_ctx_entry *entries = o->entries;
    size_t n = o->nentries;
    if (o->nsrc_paths > 0) {
        if ((o->nexcludes > 0 &&
             (rc = lc_ignore_from_patterns(o->excludes, o->nexcludes, &exclude, err)) < 0) ||
            (rc = lc_walk_select(o->src_root, NULL, o->src_paths, o->nsrc_paths, exclude, &from_sel,
                                 err)) < 0)
            goto out;
        entries = from_sel->entries;
        n = from_sel->n;
    }
    /* A wildcard that matched several sources makes the destination a
     * directory too. */
    size_t matches = o->nheredocs + o->nurls;
    for (size_t i = 0; i < n; i++)
        matches += entries[i].match;
    if (matches > 1)
        into_dir = true;

    if ((co.links = lc_copy_links_new()) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < o->nheredocs && rc == 0; i++) {
        char *path = into_dir ? lc_path_join(dest, o->heredoc_names[i]) : strdup(dest);
        rc = path ? lc_copy_write_file(merged, path, o->heredoc_bodies[i],
                                       strlen(o->heredoc_bodies[i]), 0644, &co, err)
                  : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        free(path);
    }
    if (rc == 0)
        rc = copy_urls(o, merged, dest, into_dir, &co, err);
    if (rc == 0)
        rc = copy_entries(o, merged, entries, n, dest, into_dir, &co, err);
out:
    lc_copy_links_free(&co.links);
    lc_ignore_free(&exclude);
    lc_selection_free(&from_sel);
    free(dest);
    return rc;
}

/* Mounts the step's overlay at scratch/merged, runs fn on it, unmounts. */
static int with_overlay(const lc_exec_fs *fs, int (*fn)(void *ctx, const char *merged, lc_err *err),
                        void *ctx, lc_err *err)
{
    char merged[PATH_MAX], work[PATH_MAX], lower0[PATH_MAX];
    snprintf(merged, sizeof(merged), "%s/merged", fs->scratch);
    snprintf(work, sizeof(work), "%s/work", fs->scratch);
    snprintf(lower0, sizeof(lower0), "%s/lower0", fs->scratch);
    if ((mkdir(merged, 0755) != 0 && errno != EEXIST) ||
        (mkdir(lower0, 0755) != 0 && errno != EEXIST))
        return lc_err_set(err, lc_code_from_errno(errno), "cannot prepare %s: %s", fs->scratch,
                          strerror(errno));
    const char *const only_empty[1] = {lower0}; /* FROM scratch */
    int rc = lc_overlay_mount(fs->nlowers ? fs->lowers : only_empty, fs->nlowers ? fs->nlowers : 1,
                              fs->upper, work, merged, err);
    if (rc < 0)
        return rc;
    rc = fn(ctx, merged, err);
    lc_err unmount_err = {0};
    if (lc_overlay_unmount(merged, &unmount_err) < 0 && rc == 0)
        rc = lc_err_set(err, unmount_err.code, "%s", unmount_err.msg);
    return rc;
}

static int copy_fn(void *ctx, const char *merged, lc_err *err)
{
    return do_copy(ctx, merged, err);
}

int lc_exec_copy(const lc_exec_fs *fs, const lc_exec_copy_opts *o, lc_err *err)
{
    return with_overlay(fs, copy_fn, (void *)o, err);
}

typedef struct mkdir_req {
    const char *dir, *user;
} mkdir_req;

static int mkdir_fn(void *ctx, const char *merged, lc_err *err)
{
    const mkdir_req *m = ctx;
    lc_copy_opts co = {0};
    lc_err ignored = {0};
    /* BuildKit: new directories belong to the USER (a name alone with its
     * primary group); a user the image does not know is root. */
    if (m->user != NULL && *m->user && lc_copy_parse_chown(merged, m->user, &co, &ignored) < 0)
        co = (lc_copy_opts){0};
    return lc_copy_mkdir(merged, m->dir, &co, err);
}

int lc_exec_mkdir(const lc_exec_fs *fs, const char *dir, const char *user, lc_err *err)
{
    mkdir_req m = {dir, user};
    return with_overlay(fs, mkdir_fn, &m, err);
}
