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

#include "build-worker/context/path.h"
#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/untar.h"
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
} run_ctx;

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
    uv_close((uv_handle_t *)p, on_close);
}

int lc_exec_run(const lc_exec_fs *fs, const lc_exec_run_opts *o, int *exit_code, lc_err *err)
{
    char bundle[PATH_MAX], work[PATH_MAX], id[64];
    snprintf(bundle, sizeof(bundle), "%s/bundle", fs->scratch);
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
                         .env = o->env,
                         .n_env = o->nenv,
                         .cwd = o->cwd,
                         .user = o->user,
                         .network_host = o->host_network};
    lc_runc *rc_handle = NULL;
    int rc = lc_runc_prepare(&step, &rc_handle, err);
    if (rc < 0)
        return rc;

    uv_loop_t loop;
    run_ctx r = {.o = o};
    if (uv_loop_init(&loop) != 0) {
        lc_runc_cleanup(&rc_handle, NULL);
        return lc_err_set(err, LC_INTERNAL, "cannot create an event loop");
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
    int e = uv_spawn(&loop, &r.proc, &po);
    if (e != 0) {
        rc = lc_err_set(err, LC_FAILED_PRECONDITION, "cannot start %s: %s (is runc installed?)",
                        argv[0], uv_strerror(e));
        uv_close((uv_handle_t *)&r.out.pipe, on_close);
        uv_close((uv_handle_t *)&r.err.pipe, on_close);
    } else {
        r.open_handles++;
        uv_read_start((uv_stream_t *)&r.out.pipe, on_alloc, on_read);
        uv_read_start((uv_stream_t *)&r.err.pipe, on_alloc, on_read);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (e == 0)
        *exit_code = r.term_signal ? 128 + r.term_signal : (int)r.exit_status;
    lc_err cleanup_err = {0};
    if (lc_runc_cleanup(&rc_handle, &cleanup_err) < 0 && rc == 0)
        rc = lc_err_set(err, cleanup_err.code, "%s", cleanup_err.msg);
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

typedef struct copy_ctx {
    const lc_exec_copy_opts *o;
    const char *merged;   /* the overlay mount: the image's root */
    bool own;             /* --chown given */
    unsigned uid, gid;
    bool chmod_set;
    mode_t chmod_mode;
    lc_err *err;
} copy_ctx;

/* Creates every missing directory of the absolute in-image path dir. */
static int mkdirs_in(copy_ctx *c, const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s%s", c->merged, dir) >= (int)sizeof(path))
        return lc_err_set(c->err, LC_INVALID_ARGUMENT, "destination too long: %s", dir);
    size_t base = strlen(c->merged);
    for (char *p = path + base + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (lstat(path, &st) != 0) {
            if (mkdir(path, 0755) != 0)
                return lc_err_set(c->err, lc_code_from_errno(errno), "cannot create %s: %s",
                                  path + base, strerror(errno));
            if (c->own && lchown(path, c->uid, c->gid) != 0)
                return lc_err_set(c->err, lc_code_from_errno(errno), "cannot chown %s",
                                  path + base);
        } else if (!S_ISDIR(st.st_mode)) {
            return lc_err_set(c->err, LC_FAILED_PRECONDITION,
                              "cannot copy to %s: %s is not a directory in the image", dir,
                              path + base);
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    return 0;
}

static int copy_file_data(copy_ctx *c, const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return lc_err_set(c->err, lc_code_from_errno(errno), "cannot read %s: %s", src,
                          strerror(errno));
    unlink(dst); /* replace whatever the image had there */
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
    int rc = 0;
    if (out < 0) {
        rc = lc_err_set(c->err, lc_code_from_errno(errno), "cannot create %s: %s", dst,
                        strerror(errno));
        goto out;
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = lc_err_set(c->err, lc_code_from_errno(errno), "read %s: %s", src, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = lc_err_set(c->err, lc_code_from_errno(errno), "write %s: %s", dst,
                                strerror(errno));
                goto out;
            }
            off += w;
        }
    }
out:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

static bool is_archive(const char *path)
{
    unsigned char h[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, h, sizeof(h));
    close(fd);
    if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
        return true; /* gzip */
    if (n >= 3 && memcmp(h, "BZh", 3) == 0)
        return true;
    if (n >= 6 && memcmp(h, "\xfd" "7zXZ\0", 6) == 0)
        return true;
    if (n >= 4 && memcmp(h, "\x28\xb5\x2f\xfd", 4) == 0)
        return true; /* zstd */
    return n >= 262 && memcmp(h + 257, "ustar", 5) == 0;
}

/* Copies one selected entry to the in-image path dst. */
static int copy_entry(copy_ctx *c, const char *src_root, const lc_ctx_entry *e, const char *dst)
{
    char src[PATH_MAX], target[PATH_MAX];
    snprintf(src, sizeof(src), "%s/%s", src_root, e->path);
    if (snprintf(target, sizeof(target), "%s%s", c->merged, dst) >= (int)sizeof(target))
        return lc_err_set(c->err, LC_INVALID_ARGUMENT, "destination too long: %s", dst);
    char *parent = strdup(dst);
    if (parent == NULL)
        return lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    char *slash = strrchr(parent, '/');
    if (slash != NULL)
        *slash = '\0';
    int rc = mkdirs_in(c, parent[0] ? parent : "/");
    free(parent);
    if (rc < 0)
        return rc;
    mode_t perm = c->chmod_set ? c->chmod_mode : (e->mode & 07777);
    if (S_ISDIR(e->mode)) {
        struct stat st;
        if (lstat(target, &st) == 0 && !S_ISDIR(st.st_mode))
            unlink(target);
        if (mkdir(target, perm) != 0 && errno != EEXIST)
            return lc_err_set(c->err, lc_code_from_errno(errno), "cannot create %s: %s", dst,
                              strerror(errno));
        if (strcmp(e->dest, ".") != 0 || c->chmod_set)
            chmod(target, perm);
    } else if (S_ISLNK(e->mode)) {
        unlink(target);
        if (symlink(e->link ? e->link : "", target) != 0)
            return lc_err_set(c->err, lc_code_from_errno(errno), "cannot create link %s: %s", dst,
                              strerror(errno));
    } else if (S_ISREG(e->mode)) {
        if (c->o->is_add && strcmp(e->dest, ".") != 0 && is_archive(src)) {
            /* ADD extracts local archives into the destination directory. */
            char *dir = strdup(target);
            if (dir == NULL)
                return lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
            char *cut = strrchr(dir, '/');
            if (cut)
                *cut = '\0';
            lc_untar_opts uo = {.mode = LC_UNTAR_PLAIN,
                                .force_owner = c->own,
                                .uid = c->uid,
                                .gid = c->gid};
            rc = lc_untar_file(src, dir, &uo, NULL, c->err);
            free(dir);
            return rc;
        }
        if ((rc = copy_file_data(c, src, target, perm)) < 0)
            return rc;
        chmod(target, perm);
    } else {
        return 0; /* sockets, fifos, devices: never copied */
    }
    /* Docker's COPY makes files root-owned unless --chown says otherwise. */
    if (lchown(target, c->own ? c->uid : 0, c->own ? c->gid : 0) != 0)
        return lc_err_set(c->err, lc_code_from_errno(errno), "cannot chown %s: %s", dst,
                          strerror(errno));
    return 0;
}

/* The in-image path of an entry: dest dir + entry dest, or dest itself. */
static char *entry_target(const char *dest, bool dest_is_dir, const lc_ctx_entry *e)
{
    if (!dest_is_dir)
        return strdup(dest);
    if (strcmp(e->dest, ".") == 0)
        return strdup(dest);
    return lc_path_join(dest, e->dest);
}

static int copy_all(copy_ctx *c, const char *src_root, const lc_ctx_entry *entries, size_t n,
                    const char *dest, bool dest_is_dir)
{
    for (size_t i = 0; i < n; i++) {
        char *dst = entry_target(dest, dest_is_dir, &entries[i]);
        if (dst == NULL)
            return lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        int rc = copy_entry(c, src_root, &entries[i], dst);
        free(dst);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_chmod(copy_ctx *c, const char *v)
{
    char *end = NULL;
    long m = strtol(v, &end, 8);
    if (end == v || *end != '\0' || m < 0 || m > 07777)
        return lc_err_set(c->err, LC_INVALID_ARGUMENT, "--chmod=%s: expected an octal mode", v);
    c->chmod_set = true;
    c->chmod_mode = (mode_t)m;
    return 0;
}

static int do_copy(copy_ctx *c)
{
    const lc_exec_copy_opts *o = c->o;
    int rc = 0;
    if (o->chmod != NULL && (rc = parse_chmod(c, o->chmod)) < 0)
        return rc;
    if (o->chown != NULL) {
        unsigned groups[1];
        size_t ng = 0;
        char *home = NULL;
        rc = lc_runc_resolve_user(c->merged, o->chown, &c->uid, &c->gid, groups, &ng, &home, c->err);
        free(home);
        if (rc < 0)
            return rc;
        c->own = true;
    }
    /* The destination, absolute. */
    char *dest = o->dest[0] == '/' ? lc_path_clean(o->dest) : lc_path_join(o->workdir, o->dest);
    if (dest == NULL)
        return lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    size_t dl = strlen(o->dest);
    bool trailing = dl > 0 && o->dest[dl - 1] == '/';
    char merged_dest[PATH_MAX];
    snprintf(merged_dest, sizeof(merged_dest), "%s%s", c->merged, dest);
    struct stat st;
    bool exists_dir = stat(merged_dest, &st) == 0 && S_ISDIR(st.st_mode);

    if (o->nheredocs > 0) {
        bool into_dir = trailing || exists_dir;
        for (size_t i = 0; i < o->nheredocs && rc == 0; i++) {
            char *path = into_dir ? lc_path_join(dest, o->heredoc_names[i]) : strdup(dest);
            char full[PATH_MAX];
            if (path == NULL) {
                rc = lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
                break;
            }
            char *parent = strdup(path);
            char *cut = parent ? strrchr(parent, '/') : NULL;
            if (cut)
                *cut = '\0';
            rc = parent ? mkdirs_in(c, parent[0] ? parent : "/") : -LC_RESOURCE_EXHAUSTED;
            free(parent);
            snprintf(full, sizeof(full), "%s%s", c->merged, path);
            if (rc == 0)
                rc = lc_fs_write_file(full, o->heredoc_bodies[i], strlen(o->heredoc_bodies[i]), c->err);
            if (rc == 0) {
                chmod(full, c->chmod_set ? c->chmod_mode : 0644);
                if (lchown(full, c->own ? c->uid : 0, c->own ? c->gid : 0) != 0)
                    rc = lc_err_set(c->err, LC_INTERNAL, "cannot chown %s", path);
            }
            free(path);
        }
        free(dest);
        return rc;
    }

    lc_selection *from_sel = NULL;
    const lc_ctx_entry *entries = o->entries;
    size_t n = o->nentries;
    if (o->nsrc_paths > 0) {
        if ((rc = lc_walk_select(o->src_root, NULL, o->src_paths, o->nsrc_paths, NULL, &from_sel,
                                 c->err)) < 0) {
            free(dest);
            return rc;
        }
        entries = from_sel->entries;
        n = from_sel->n;
    }
    /* One file copied to a path without a trailing slash is that path,
     * unless a directory is there already. */
    bool single_file = n == 1 && !S_ISDIR(entries[0].mode) &&
                       (o->nsrc_paths ? o->nsrc_paths : 1) == 1 && !trailing && !exists_dir;
    bool multiple_sources = false;
    for (size_t i = 1; i < n; i++)
        if (entries[i].src != entries[0].src)
            multiple_sources = true;
    if (multiple_sources && !trailing && !exists_dir) {
        rc = lc_err_set(c->err, LC_INVALID_ARGUMENT,
                        "when copying several sources the destination '%s' must be a directory "
                        "and end with a /", o->dest);
    } else {
        if (!single_file)
            rc = mkdirs_in(c, dest);
        if (rc == 0)
            rc = copy_all(c, o->src_root, entries, n, dest, !single_file);
    }
    lc_selection_free(&from_sel);
    free(dest);
    return rc;
}

int lc_exec_copy(const lc_exec_fs *fs, const lc_exec_copy_opts *o, lc_err *err)
{
    char merged[PATH_MAX], work[PATH_MAX], empty[PATH_MAX];
    snprintf(merged, sizeof(merged), "%s/merged", fs->scratch);
    snprintf(work, sizeof(work), "%s/work", fs->scratch);
    snprintf(empty, sizeof(empty), "%s/empty", fs->scratch);
    if ((mkdir(merged, 0755) != 0 && errno != EEXIST) || (mkdir(empty, 0755) != 0 && errno != EEXIST))
        return lc_err_set(err, lc_code_from_errno(errno), "cannot prepare %s: %s", fs->scratch,
                          strerror(errno));
    const char *const only_empty[1] = {empty};
    int rc = lc_overlay_mount(fs->nlowers ? fs->lowers : only_empty, fs->nlowers ? fs->nlowers : 1,
                              fs->upper, work, merged, err);
    if (rc < 0)
        return rc;
    copy_ctx c = {.o = o, .merged = merged, .err = err};
    rc = do_copy(&c);
    lc_err unmount_err = {0};
    if (lc_overlay_unmount(merged, &unmount_err) < 0 && rc == 0)
        rc = lc_err_set(err, unmount_err.code, "%s", unmount_err.msg);
    return rc;
}
