/* runmounts.c - RUN --mount on the worker (see runmounts.h). */
#include "runmounts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "build-worker/layer/copy.h"
#include "build-worker/layer/fsutil.h"
#include "build-worker/runtime/mounts.h"
#include "digest.h"

/* private sharing: how many directories one cache id may grow to */
#define MAX_PRIVATE 64

struct lc_runmounts {
    lc_exec_mount *list;
    size_t n;
    lc_strlist owned;     /* strings the list points at */
    lc_strlist mounted;   /* mount points to undo, in order made */
    int *locks;           /* cache lock fds */
    lc_strlist lockpaths; /* what they lock */
    size_t nlocks;
    char **secrets; /* values to wipe */
    size_t *secret_len;
    size_t nsecrets;
};

#define MERR(m, code, ...) mount_err(err, code, m, __VA_ARGS__)

static int mount_err(lc_err *err, int code, const lc_df_mount *m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int mount_err(lc_err *err, int code, const lc_df_mount *m, const char *fmt, ...)
{
    char msg[LC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lc_err_set(err, code, "%s:%d:%d: RUN --mount=type=%s: %s",
                      m->pos.file ? m->pos.file : "Dockerfile", m->pos.line, m->pos.col,
                      lc_df_mount_type_name(m->type), msg);
}

/* A string owned by rm (NULL when out of memory). */
static const char *own(lc_runmounts *rm, char *s)
{
    if (s == NULL || lc_strlist_push_owned(&rm->owned, s) < 0)
        return NULL;
    return s;
}

static const char *ownf(lc_runmounts *rm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *ownf(lc_runmounts *rm, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : own(rm, s);
}

/* ---- the build context ---- */

/* One context entry into dir (hard link when possible, else a copy with the
 * same mode and owner). */
static int place_entry(const char *ctx, const lc_ctx_entry *e, const char *dst, bool link_ok)
{
    char src[PATH_MAX];
    snprintf(src, sizeof(src), "%s/%s", ctx, e->path);
    if (S_ISDIR(e->mode)) {
        if (mkdir(dst, 0700) < 0 && errno != EEXIST)
            return -errno;
    } else if (S_ISLNK(e->mode)) {
        if (symlink(e->link ? e->link : "", dst) < 0)
            return -errno;
        return 0;
    } else if (S_ISREG(e->mode)) {
        if (link_ok && linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        int in = open(src, O_RDONLY | O_CLOEXEC);
        int out = in >= 0 ? open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
        int rc = in < 0 || out < 0 ? -errno : 0;
        char buf[65536];
        ssize_t r;
        while (rc == 0 && (r = read(in, buf, sizeof(buf))) != 0) {
            if (r < 0 || write(out, buf, (size_t)r) != r)
                rc = -(errno ? errno : EIO);
        }
        if (in >= 0)
            close(in);
        if (out >= 0)
            close(out);
        if (rc < 0)
            return rc;
    } else {
        return 0; /* the selection holds no other kinds */
    }
    struct stat st;
    if (stat(src, &st) == 0)
        lchown(dst, st.st_uid, st.st_gid);
    chmod(dst, e->mode & 07777);
    return 0;
}

/* Only what the key saw: the selection, outside the context. *path is the
 * directory, or the file when the source is one file. */
static int materialize(lc_runmounts *rm, const lc_runmounts_env *env, const lc_df_mount *m,
                       const lc_selection *sel, size_t i, bool link_ok, const char **path,
                       lc_err *err)
{
    const char *root = ownf(rm, "%s/ctx.%zu", env->scratch, i);
    if (root == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (mkdir(root, 0755) < 0)
        return MERR(m, lc_code_from_errno(errno), "%s: %s", root, strerror(errno));
    bool one_file = sel->n == 1 && !S_ISDIR(sel->entries[0].mode);
    for (size_t k = 0; k < sel->n; k++) {
        const lc_ctx_entry *e = &sel->entries[k];
        char dst[PATH_MAX];
        if (strcmp(e->dest, ".") == 0 && S_ISDIR(e->mode)) {
            chmod(root, e->mode & 07777);
            continue;
        }
        snprintf(dst, sizeof(dst), "%s/%s", root, e->dest);
        int rc = place_entry(env->context_dir, e, dst, link_ok);
        if (rc < 0)
            return MERR(m, lc_code_from_errno(-rc), "%s: %s", e->path, strerror(-rc));
        if (one_file && (*path = ownf(rm, "%s", dst)) == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (!one_file)
        *path = root;
    return 0;
}

/* ---- stages and images ---- */

/* path inside view (resolved within it, as the container would), or an
 * error when missing. */
static int resolve_in(const char *view, const char *rel, const lc_df_mount *m, const char **out,
                      lc_runmounts *rm, lc_err *err)
{
    int vfd = open(view, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (vfd < 0)
        return MERR(m, lc_code_from_errno(errno), "%s: %s", view, strerror(errno));
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, vfd, rel[0] ? rel : ".", &how, sizeof(how));
    int e = errno;
    close(vfd);
    if (fd < 0)
        return MERR(m, e == ENOENT ? LC_NOT_FOUND : lc_code_from_errno(e),
                    "source /%s not found in %s: %s", rel, m->from ? m->from : "the context",
                    strerror(e));
    char link[64], buf[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%ld", fd);
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    close((int)fd);
    if (n < 0)
        return MERR(m, LC_INTERNAL, "source /%s: %s", rel, strerror(errno));
    buf[n] = '\0';
    *out = ownf(rm, "%s", buf);
    return *out ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

static void free_dirs(char **dirs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
}

/* A read-only view of what from= names; *view borrowed from rm. */
static int from_view(lc_runmounts *rm, const lc_runmounts_env *env, const lc_df_mount *m, int stage,
                     size_t i, const char **view, char **ident, lc_err *err)
{
    char **dirs = NULL;
    size_t nd = 0;
    int rc = env->layers(env->ctx, stage, m->from, &dirs, &nd, ident, err);
    if (rc < 0) {
        char msg[LC_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
        return MERR(m, -rc, "from=%s: %s", m->from, msg);
    }
    const char *mnt = ownf(rm, "%s/from.%zu", env->scratch, i);
    char *v = NULL;
    int mounted = 0;
    if (mnt == NULL)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    else if (mkdir(mnt, 0755) < 0)
        rc = MERR(m, lc_code_from_errno(errno), "%s: %s", mnt, strerror(errno));
    else
        rc = lc_mount_layers_ro((const char *const *)dirs, nd, mnt, &v, &mounted, err);
    free_dirs(dirs, nd);
    if (mounted && lc_strlist_push(&rm->mounted, mnt) < 0) {
        lc_mount_undo(mnt, NULL);
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (rc == 0 && (*view = own(rm, v)) == NULL)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    else if (rc < 0)
        free(v);
    return rc;
}

/* rw: the step may write, and what it writes is thrown away. */
static int writable(lc_runmounts *rm, const lc_runmounts_env *env, const lc_df_mount *m, size_t i,
                    const char **path, lc_err *err)
{
    struct stat st;
    if (stat(*path, &st) < 0)
        return MERR(m, lc_code_from_errno(errno), "%s: %s", *path, strerror(errno));
    const char *base = ownf(rm, "%s/rw.%zu", env->scratch, i);
    if (base == NULL || mkdir(base, 0700) < 0)
        return lc_err_set(err, LC_INTERNAL, "cannot prepare a writable mount");
    if (!S_ISDIR(st.st_mode)) {
        /* one file: a private copy (never a hard link to the context's) */
        const char *copy = ownf(rm, "%s/file", base);
        lc_ctx_entry e = {.path = (char *)*path, .mode = st.st_mode};
        int rc = copy ? place_entry("", &e, copy, false) : -ENOMEM;
        if (rc < 0)
            return MERR(m, lc_code_from_errno(-rc), "%s: %s", *path, strerror(-rc));
        *path = copy;
        return 0;
    }
    const char *up = ownf(rm, "%s/upper", base), *wk = ownf(rm, "%s/work", base),
               *mnt = ownf(rm, "%s/mnt", base);
    if (up == NULL || wk == NULL || mnt == NULL || mkdir(mnt, 0755) < 0)
        return lc_err_set(err, LC_INTERNAL, "cannot prepare a writable mount");
    int rc = lc_mount_overlay_rw(*path, up, wk, mnt, err);
    if (rc < 0)
        return rc;
    if (lc_strlist_push(&rm->mounted, mnt) < 0) {
        lc_mount_undo(mnt, NULL);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    *path = mnt;
    return 0;
}

static int prepare_bind(lc_runmounts *rm, const lc_runmounts_env *env, const lc_df_mount *m,
                        const lc_selection *sel, int stage, size_t i, lc_exec_mount *out,
                        lc_err *err)
{
    const char *path = NULL;
    int rc;
    if (m->from == NULL) {
        if (sel == NULL)
            return MERR(m, LC_INTERNAL, "the build context was not selected");
        rc = materialize(rm, env, m, sel, i, true, &path, err);
    } else {
        const char *view = NULL;
        char *ident = NULL;
        rc = from_view(rm, env, m, stage, i, &view, &ident, err);
        free(ident);
        if (rc == 0)
            rc = resolve_in(view, m->source, m, &path, rm, err);
    }
    if (rc == 0 && !m->readonly)
        rc = writable(rm, env, m, i, &path, err);
    out->kind = LC_EXEC_MOUNT_PATH;
    out->source = path;
    return rc;
}

/* ---- cache mounts ---- */

/* flock on lockpath, held until release. A lock this step already holds
 * (two mounts of one cache) is not taken twice, which would wait forever:
 * shared and locked share it, private (LOCK_NB) looks for another. */
static int lock_cache(lc_runmounts *rm, const char *lockpath, int how)
{
    for (size_t i = 0; i < rm->lockpaths.len; i++)
        if (strcmp(rm->lockpaths.items[i], lockpath) == 0)
            return (how & LOCK_NB) ? -EWOULDBLOCK : 0;
    int fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    while (flock(fd, how) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        return -e;
    }
    if (lc_strlist_push(&rm->lockpaths, lockpath) < 0) {
        close(fd);
        return -ENOMEM;
    }
    rm->locks[rm->nlocks++] = fd;
    return 0;
}

static int prepare_cache(lc_runmounts *rm, const lc_runmounts_env *env, const lc_df_mount *m,
                         int stage, size_t i, lc_exec_mount *out, lc_err *err)
{
    char *root = lc_fs_join(env->state_dir, "cache-mounts");
    char *ident = NULL;
    const char *view = NULL;
    int rc = 0;
    if (root == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (lc_fs_mkdir_p(root) < 0) {
        rc = MERR(m, LC_INTERNAL, "cannot create %s", root);
        goto out;
    }
    if (m->from != NULL && (rc = from_view(rm, env, m, stage, i, &view, &ident, err)) < 0)
        goto out;
    /* BuildKit's rule: one directory per id and base (the from= content, or
     * the empty directory made with mode/uid/gid). */
    char desc[1024];
    int dl =
        snprintf(desc, sizeof(desc), "id=%s\nfrom=%s\nsource=%s\nmode=%lld\nuid=%lld\ngid=%lld",
                 m->id, ident ? ident : "", m->from ? m->source : "", (long long)m->mode,
                 (long long)m->uid, (long long)m->gid);
    lc_digest d;
    lc_digest_of(desc, (size_t)(dl < (int)sizeof(desc) ? dl : (int)sizeof(desc) - 1), &d);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&d, hex);
    const char *dir = NULL;
    if (m->sharing == LC_DF_SHARING_PRIVATE) {
        for (int k = 0; k < MAX_PRIVATE && dir == NULL; k++) {
            char lockpath[PATH_MAX];
            snprintf(lockpath, sizeof(lockpath), "%s/%s%s%.0d.lock", root, hex, k ? "." : "", k);
            rc = lock_cache(rm, lockpath, LOCK_EX | LOCK_NB);
            if (rc == 0)
                dir = k ? ownf(rm, "%s/%s.%d", root, hex, k) : ownf(rm, "%s/%s", root, hex);
            else if (rc != -EWOULDBLOCK)
                break;
        }
        if (dir == NULL) {
            rc = MERR(m, LC_RESOURCE_EXHAUSTED, "no free private cache directory for id %s", m->id);
            goto out;
        }
    } else {
        char lockpath[PATH_MAX];
        snprintf(lockpath, sizeof(lockpath), "%s/%s.lock", root, hex);
        rc = lock_cache(rm, lockpath, m->sharing == LC_DF_SHARING_LOCKED ? LOCK_EX : LOCK_SH);
        if (rc < 0) {
            rc = MERR(m, lc_code_from_errno(-rc), "lock %s: %s", lockpath, strerror(-rc));
            goto out;
        }
        dir = ownf(rm, "%s/%s", root, hex);
    }
    if (dir == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    struct stat st;
    if (stat(dir, &st) < 0) {
        /* New: made aside and renamed, so a half-filled cache never shows. */
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s.new.%d", dir, (int)getpid());
        lc_fs_rm_rf(tmp);
        if (mkdir(tmp, 0755) < 0) {
            rc = MERR(m, lc_code_from_errno(errno), "create %s: %s", tmp, strerror(errno));
            goto out;
        }
        if (view != NULL) {
            const char *src = NULL;
            lc_copy_opts co = {.keep_owner = 1};
            rc = resolve_in(view, m->source, m, &src, rm, err);
            if (rc == 0)
                rc = lc_copy_path(src, tmp, "/", &co, err);
        }
        if (rc == 0 &&
            (chown(tmp, m->uid >= 0 ? (uid_t)m->uid : 0, m->gid >= 0 ? (gid_t)m->gid : 0) < 0 ||
             chmod(tmp, m->mode >= 0 ? (mode_t)m->mode : 0755) < 0))
            rc = MERR(m, lc_code_from_errno(errno), "%s: %s", tmp, strerror(errno));
        if (rc == 0 && rename(tmp, dir) < 0 && errno != EEXIST && errno != ENOTEMPTY)
            rc = MERR(m, lc_code_from_errno(errno), "create %s: %s", dir, strerror(errno));
        if (access(tmp, F_OK) == 0)
            lc_fs_rm_rf(tmp); /* failed, or another build made it first */
        if (rc < 0)
            goto out;
    }
    const char *path = dir;
    if (m->from == NULL && m->source[0] != '\0') {
        /* source= without from=: a directory inside the cache */
        path = ownf(rm, "%s/%s", dir, m->source);
        if (path == NULL || lc_fs_mkdir_p(path) < 0) {
            rc = MERR(m, LC_INTERNAL, "cannot create source %s in the cache", m->source);
            goto out;
        }
    }
    out->kind = LC_EXEC_MOUNT_PATH;
    out->source = path;
out:
    free(ident);
    free(root);
    return rc;
}

/* ---- the whole step ---- */

int lc_runmounts_prepare(const lc_runmounts_env *env, const lc_df_run *run,
                         lc_selection *const *ctx_sel, const int *stage, lc_runmounts **out,
                         lc_err *err)
{
    *out = NULL;
    size_t n = run->nmounts;
    lc_runmounts *rm = calloc(1, sizeof(*rm));
    if (rm == NULL || (rm->list = calloc(n + 1, sizeof(*rm->list))) == NULL ||
        (rm->locks = calloc(n + 1, sizeof(*rm->locks))) == NULL ||
        (rm->secrets = calloc(n + 1, sizeof(*rm->secrets))) == NULL ||
        (rm->secret_len = calloc(n + 1, sizeof(*rm->secret_len))) == NULL) {
        lc_runmounts_release(&rm);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lc_df_mount *m = &run->mounts[i];
        lc_exec_mount *em = &rm->list[rm->n];
        *em = (lc_exec_mount){.target = m->target, .readonly = m->readonly};
        switch (m->type) {
        case LC_DF_MOUNT_BIND:
            rc = prepare_bind(rm, env, m, ctx_sel ? ctx_sel[i] : NULL, stage ? stage[i] : -1, i, em,
                              err);
            break;
        case LC_DF_MOUNT_CACHE:
            rc = prepare_cache(rm, env, m, stage ? stage[i] : -1, i, em, err);
            break;
        case LC_DF_MOUNT_TMPFS:
            em->kind = LC_EXEC_MOUNT_TMPFS;
            em->size = m->size;
            break;
        case LC_DF_MOUNT_SECRET: {
            char *data = NULL;
            size_t len = 0;
            bool found = false;
            rc = lc_secrets_get(env->secrets, m->id, &data, &len, &found, err);
            if (rc < 0) {
                char msg[LC_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
                rc = MERR(m, -rc, "%s", msg);
                break;
            }
            if (!found && m->required) {
                rc = MERR(m, LC_FAILED_PRECONDITION,
                          "secret %s was not given: pass --secret id=%s,src=FILE (or env=VAR)",
                          m->id, m->id);
                break;
            }
            if (!found)
                continue; /* optional and absent: not mounted */
            rm->secrets[rm->nsecrets] = data;
            rm->secret_len[rm->nsecrets++] = len;
            em->kind = LC_EXEC_MOUNT_SECRET;
            em->data = data;
            em->len = len;
            em->env = m->env;
            em->mode = m->mode >= 0 ? (unsigned)m->mode : 0400;
            em->uid = m->uid >= 0 ? (unsigned)m->uid : 0;
            em->gid = m->gid >= 0 ? (unsigned)m->gid : 0;
            break;
        }
        case LC_DF_MOUNT_SSH: {
            const char *sock = lc_secrets_ssh(env->secrets, m->id);
            if (sock == NULL && m->required) {
                rc = MERR(m, LC_FAILED_PRECONDITION,
                          "no ssh agent was given for id %s: pass --ssh %s (or --ssh %s=SOCKET)",
                          m->id, m->id, m->id);
                break;
            }
            if (sock == NULL)
                continue;
            em->kind = LC_EXEC_MOUNT_AGENT;
            em->source = sock;
            em->mode = m->mode >= 0 ? (unsigned)m->mode : 0600;
            em->uid = m->uid >= 0 ? (unsigned)m->uid : 0;
            em->gid = m->gid >= 0 ? (unsigned)m->gid : 0;
            break;
        }
        }
        if (rc == 0)
            rm->n++;
    }
    if (rc < 0) {
        lc_runmounts_release(&rm);
        return rc;
    }
    *out = rm;
    return 0;
}

const lc_exec_mount *lc_runmounts_list(const lc_runmounts *m, size_t *n)
{
    *n = m->n;
    return m->list;
}

void lc_runmounts_release(lc_runmounts **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    lc_runmounts *rm = *mp;
    for (size_t i = rm->mounted.len; i-- > 0;)
        lc_mount_undo(rm->mounted.items[i], NULL);
    for (size_t i = 0; i < rm->nlocks; i++)
        close(rm->locks[i]); /* releases the flock */
    for (size_t i = 0; i < rm->nsecrets; i++)
        lc_secrets_wipe(&rm->secrets[i], rm->secret_len[i]);
    lc_strlist_clear(&rm->mounted);
    lc_strlist_clear(&rm->lockpaths);
    lc_strlist_clear(&rm->owned);
    free(rm->list);
    free(rm->locks);
    free(rm->secrets);
    free(rm->secret_len);
    free(rm);
    *mp = NULL;
}
