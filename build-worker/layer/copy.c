/* copy.c - COPY/ADD into a container root (see copy.h). */
#include "build-worker/layer/copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/untar.h"
#include "build-worker/runtime/runc.h"

static int open_in_root(int rootfd, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

/* Opens (creating as needed) directory rel inside root, resolving like
 * the container. */
static int mkdir_in_root(int rootfd, const char *rel, const lc_copy_opts *o)
{
    int fd = open_in_root(rootfd, rel);
    if (fd != -ENOENT)
        return fd;
    char *p = strdup(rel);
    if (p == NULL)
        return -ENOMEM;
    int cur = open_in_root(rootfd, "");
    for (char *c = p; cur >= 0 && *c;) {
        char *slash = strchr(c, '/');
        if (slash)
            *slash = '\0';
        int next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        struct stat lst;
        if (next < 0 && (errno == ELOOP || errno == ENOTDIR) &&
            fstatat(cur, c, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode)) {
            /* A symlink (O_NOFOLLOW|O_DIRECTORY says ENOTDIR): resolve the
             * prefix in root, as the container would. */
            next = open_in_root(rootfd, p);
        } else if (next < 0 && errno == ENOENT) {
            if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST) {
                next = -errno;
            } else {
                if (o && o->set_owner)
                    fchownat(cur, c, o->uid, o->gid, AT_SYMLINK_NOFOLLOW);
                next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (next < 0)
                    next = -errno;
            }
        } else if (next < 0) {
            next = -errno;
        }
        close(cur);
        cur = next;
        if (!slash)
            break;
        *slash = '/';
        c = slash + 1;
    }
    free(p);
    return cur;
}

/* Splits a container path into cleaned parent and base name. */
static int split_dest(const char *dest, char **parent, char **base)
{
    char *d = strdup(dest ? dest : "");
    if (d == NULL)
        return -ENOMEM;
    if (lc_fs_clean_relpath(d, 1) < 0) {
        /* ".." in a container path: resolve lexically against / like Docker. */
        free(d);
        return -EINVAL;
    }
    char *slash = strrchr(d, '/');
    if (slash) {
        *slash = '\0';
        *parent = d;
        *base = strdup(slash + 1);
    } else {
        *base = strdup(d);
        d[0] = '\0';
        *parent = d;
    }
    if (*base == NULL) {
        free(d);
        *parent = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* ---- hard links ---------------------------------------------------------- */

struct link_ent {
    dev_t dev;
    ino_t ino;
    char *dest; /* root-relative path of the first copy */
};

struct lc_copy_links {
    struct link_ent *v;
    size_t n, cap;
};

lc_copy_links *lc_copy_links_new(void)
{
    return calloc(1, sizeof(lc_copy_links));
}

void lc_copy_links_free(lc_copy_links **l)
{
    if (l == NULL || *l == NULL)
        return;
    for (size_t i = 0; i < (*l)->n; i++)
        free((*l)->v[i].dest);
    free((*l)->v);
    free(*l);
    *l = NULL;
}

static const char *links_find(const lc_copy_links *l, const struct stat *st)
{
    for (size_t i = 0; l != NULL && i < l->n; i++)
        if (l->v[i].dev == st->st_dev && l->v[i].ino == st->st_ino)
            return l->v[i].dest;
    return NULL;
}

static void links_add(lc_copy_links *l, const struct stat *st, const char *dest)
{
    if (l == NULL || st->st_nlink < 2)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct link_ent *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return; /* only costs a copy instead of a link */
        l->v = v;
        l->cap = cap;
    }
    struct link_ent *e = &l->v[l->n];
    if ((e->dest = strdup(dest)) == NULL)
        return;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    l->n++;
}

/* ---- metadata ------------------------------------------------------------ */

/* One clause of a symbolic mode: who (ugo bits), op, perms ("rwxXst"). */
static mode_t sym_clause(const char *c, size_t n, mode_t mode, int is_dir, int *ok)
{
    size_t i = 0;
    mode_t who = 0;
    for (; i < n && strchr("ugoa", c[i]); i++)
        who |= c[i] == 'u' ? 04700 : c[i] == 'g' ? 02070 : c[i] == 'o' ? 01007 : 07777;
    if (who == 0)
        who = 07777; /* no umask: BuildKit parses with umask 0 */
    if (i >= n || !strchr("+-=", c[i])) {
        *ok = 0;
        return mode;
    }
    while (i < n && strchr("+-=", c[i])) {
        char op = c[i++];
        mode_t bits = 0;
        for (; i < n && !strchr("+-=", c[i]); i++) {
            switch (c[i]) {
            case 'r':
                bits |= 0444;
                break;
            case 'w':
                bits |= 0222;
                break;
            case 'x':
                bits |= 0111;
                break;
            case 'X':
                if (is_dir || (mode & 0111))
                    bits |= 0111;
                break;
            case 's':
                bits |= 06000;
                break;
            case 't':
                bits |= 01000;
                break;
            default:
                *ok = 0;
                return mode;
            }
        }
        bits &= who;
        if (op == '+')
            mode |= bits;
        else if (op == '-')
            mode &= ~bits;
        else
            mode = (mode & ~(who & 07777)) | bits;
    }
    return mode;
}

/* Applies sym to mode; *ok = 0 when sym does not parse. */
static mode_t sym_apply(const char *sym, mode_t mode, int is_dir, int *ok)
{
    *ok = 1;
    mode &= 07777;
    for (const char *c = sym; *ok && *c;) {
        const char *end = strchr(c, ',');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 0) {
            *ok = 0;
            break;
        }
        mode = sym_clause(c, n, mode, is_dir, ok);
        c += n + (end ? 1 : 0);
    }
    return mode;
}

mode_t lc_copy_apply_symbolic(const char *sym, mode_t mode, int is_dir)
{
    int ok;
    mode_t m = sym_apply(sym, mode, is_dir, &ok);
    return ok ? m : (mode & 07777);
}

static void apply_meta(int dirfd, const char *name, const struct stat *src, int is_link,
                       const lc_copy_opts *o)
{
    uid_t uid = 0;
    gid_t gid = 0;
    if (o->set_owner) {
        uid = o->uid;
        gid = o->gid;
    } else if (o->keep_owner) {
        uid = src->st_uid;
        gid = src->st_gid;
    }
    fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
    if (is_link)
        return;
    mode_t m = src->st_mode & 07777;
    if (o->set_mode)
        m = o->mode & 07777;
    else if (o->mode_sym[0])
        m = lc_copy_apply_symbolic(o->mode_sym, m, S_ISDIR(src->st_mode));
    fchmodat(dirfd, name, m, 0);
}

/* user.* and security.* xattrs (not the host's SELinux label). */
static void copy_xattrs(const char *src, int dirfd, const char *name)
{
    char list[4096];
    ssize_t n = llistxattr(src, list, sizeof(list));
    if (n <= 0)
        return;
    char fdpath[64];
    int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
        const char *nm = list + off;
        if ((strncmp(nm, "user.", 5) != 0 && strncmp(nm, "security.", 9) != 0) ||
            strcmp(nm, "security.selinux") == 0)
            continue;
        char val[4096];
        ssize_t vl = lgetxattr(src, nm, val, sizeof(val));
        if (vl >= 0)
            setxattr(fdpath, nm, val, (size_t)vl, 0); /* through the fd: the file */
    }
    close(fd);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies the data of srcfd (size bytes) into a new file: only the data
 * regions of a file with holes (SEEK_DATA/SEEK_HOLE), so sparse files stay
 * sparse. */
static int copy_file_fd(int srcfd, off_t size, int dirfd, const char *name, lc_err *err,
                        const char *what)
{
    int out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: create %s: %s", what, name,
                          strerror(errno));
    static __thread char buf[65536];
    int rc = 0;
    off_t pos = 0;
    while (rc == 0 && pos < size) {
        off_t d = lseek(srcfd, pos, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            break; /* a hole to the end */
        if (d < 0)
            d = pos; /* no SEEK_DATA: everything is data */
        off_t h = lseek(srcfd, d, SEEK_HOLE);
        if (h < 0 || h > size)
            h = size;
        for (off_t at = d; rc == 0 && at < h;) {
            size_t want = h - at < (off_t)sizeof(buf) ? (size_t)(h - at) : sizeof(buf);
            ssize_t r = pread(srcfd, buf, want, at);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                if (r < 0)
                    rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: read: %s", what,
                                    strerror(errno));
                h = at; /* shrank while we read */
                break;
            }
            int e = lseek(out, at, SEEK_SET) < 0 ? -errno : write_all(out, buf, (size_t)r);
            if (e < 0)
                rc = lc_err_set(err, lc_code_from_errno(-e), "COPY %s: write: %s", what,
                                strerror(-e));
            at += r;
        }
        pos = h > d ? h : d + 1;
    }
    if (rc == 0 && ftruncate(out, size) < 0)
        rc =
            lc_err_set(err, lc_code_from_errno(errno), "COPY %s: write: %s", what, strerror(errno));
    close(out);
    return rc;
}

/* One copy operation: the image root and the options. */
typedef struct cctx {
    int rootfd;
    const lc_copy_opts *o;
    lc_err *err;
} cctx;

static int open_in_root_parent(int rootfd, const char *rel, char **base);

/* Makes dirfd/name a hard link to the copy at root-relative path first. */
static int link_to(cctx *c, const char *first, int dirfd, const char *name)
{
    char *base = NULL;
    int pfd = open_in_root_parent(c->rootfd, first, &base);
    int rc = pfd < 0 ? pfd : linkat(pfd, base, dirfd, name, 0) < 0 ? -errno : 0;
    if (pfd >= 0)
        close(pfd);
    free(base);
    return rc;
}

/* Copies host entry src (already lstat'ed) to dirfd/name; dest is that
 * target's root-relative path (for hard links). */
static int copy_entry(cctx *c, const char *src, const struct stat *st, int dirfd, const char *name,
                      const char *dest)
{
    const lc_copy_opts *o = c->o;
    lc_err *err = c->err;
    struct stat cur;
    int exists = fstatat(dirfd, name, &cur, AT_SYMLINK_NOFOLLOW) == 0;
    if (S_ISDIR(st->st_mode)) {
        if (exists && !S_ISDIR(cur.st_mode))
            unlinkat(dirfd, name, 0);
        int created = !exists || !S_ISDIR(cur.st_mode);
        if (created && mkdirat(dirfd, name, 0755) < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: mkdir: %s", src,
                              strerror(errno));
        int sub = -1, rc = 0;
        DIR *d = NULL;
        if (o->shallow)
            goto dir_done;
        sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        d = opendir(src);
        if (sub < 0 || d == NULL) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
        } else {
            struct dirent *de;
            while (rc == 0 && (de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char *child = lc_fs_join(src, de->d_name);
                char *cdest = dest[0] ? lc_fs_join(dest, de->d_name) : strdup(de->d_name);
                struct stat cst;
                if (child == NULL || cdest == NULL)
                    rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                else if (lstat(child, &cst) < 0)
                    rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", child,
                                    strerror(errno));
                else
                    rc = copy_entry(c, child, &cst, sub, de->d_name, cdest);
                free(child);
                free(cdest);
            }
        }
    dir_done:
        if (d)
            closedir(d);
        if (sub >= 0)
            close(sub);
        /* An existing directory keeps its owner and mode, as in BuildKit. */
        if (rc == 0 && created) {
            apply_meta(dirfd, name, st, 0, o);
            copy_xattrs(src, dirfd, name);
        }
        return rc;
    }
    if (exists && S_ISDIR(cur.st_mode))
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "COPY %s: cannot replace directory %s with a file", src, name);
    if (exists)
        unlinkat(dirfd, name, 0);
    if (S_ISLNK(st->st_mode)) {
        char target[4096];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: readlink: %s", src,
                              strerror(errno));
        target[n] = '\0';
        if (symlinkat(target, dirfd, name) < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: symlink: %s", src,
                              strerror(errno));
        apply_meta(dirfd, name, st, 1, o);
        return 0;
    }
    if (S_ISREG(st->st_mode)) {
        const char *first = st->st_nlink > 1 ? links_find(o->links, st) : NULL;
        if (first != NULL && link_to(c, first, dirfd, name) == 0)
            return 0; /* the first copy already has the metadata */
        int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
        int rc = copy_file_fd(in, st->st_size, dirfd, name, err, src);
        close(in);
        if (rc == 0) {
            apply_meta(dirfd, name, st, 0, o);
            copy_xattrs(src, dirfd, name);
            links_add(o->links, st, dest);
        }
        return rc;
    }
    if (S_ISFIFO(st->st_mode) || S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
        if (mknodat(dirfd, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
        apply_meta(dirfd, name, st, 0, o);
    }
    return 0; /* sockets are not copied */
}

static int open_root(const char *root, lc_err *err)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open root %s: %s", root,
                          strerror(errno));
    return fd;
}

/* Copies the contents of host directory src into the open directory dirfd
 * (root-relative path dest). */
static int merge_dir(cctx *c, const char *src, int dirfd, const char *dest)
{
    DIR *d = opendir(src);
    if (d == NULL)
        return lc_err_set(c->err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *child = lc_fs_join(src, de->d_name);
        char *cdest = dest[0] ? lc_fs_join(dest, de->d_name) : strdup(de->d_name);
        struct stat cst;
        if (child != NULL && cdest != NULL && lstat(child, &cst) == 0)
            rc = copy_entry(c, child, &cst, dirfd, de->d_name, cdest);
        free(child);
        free(cdest);
    }
    closedir(d);
    return rc;
}

/* A destination inside the root: the root and (once made) the parent
 * directory open, and the last component. */
typedef struct dest_at {
    int rootfd, pfd;
    char *parent, *base;
} dest_at;

static void dest_close(dest_at *d)
{
    if (d->pfd >= 0)
        close(d->pfd);
    if (d->rootfd >= 0)
        close(d->rootfd);
    free(d->parent);
    free(d->base);
}

/* Opens the parent of root-relative rel inside the root (resolving like
 * the container); *base gets the last component. */
static int open_in_root_parent(int rootfd, const char *rel, char **base)
{
    char *parent = NULL;
    *base = NULL;
    if (split_dest(rel, &parent, base) < 0)
        return -EINVAL;
    int fd = open_in_root(rootfd, parent);
    free(parent);
    if (fd < 0) {
        free(*base);
        *base = NULL;
    }
    return fd;
}

int lc_copy_path(const char *src, const char *root, const char *dest, const lc_copy_opts *o,
                 lc_err *err)
{
    lc_copy_opts none = {0};
    o = o ? o : &none;
    struct stat st;
    if (lstat(src, &st) < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
    dest_at d = {.rootfd = -1, .pfd = -1};
    if (split_dest(dest, &d.parent, &d.base) < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "COPY destination \"%s\" is invalid", dest);
    int rc = 0;
    char *rel = NULL;
    if ((d.rootfd = open_root(root, err)) < 0) {
        rc = d.rootfd;
        goto out;
    }
    cctx c = {.rootfd = d.rootfd, .o = o, .err = err};
    rel = d.parent[0] ? lc_fs_join(d.parent, d.base) : strdup(d.base);
    if (rel == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (d.base[0] == '\0') { /* dest is "/": merge a directory into the root */
        if (!S_ISDIR(st.st_mode)) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "COPY %s: destination / needs a name", src);
            goto out;
        }
        d.pfd = open_in_root(d.rootfd, "");
        if (d.pfd >= 0 && !o->shallow)
            rc = merge_dir(&c, src, d.pfd, "");
        goto out;
    }
    d.pfd = mkdir_in_root(d.rootfd, d.parent, o);
    if (d.pfd < 0) {
        rc = lc_err_set(err, lc_code_from_errno(-d.pfd), "COPY %s: destination %s: %s", src, dest,
                        strerror(-d.pfd));
        goto out;
    }
    /* A directory destination that is a symlink (e.g. /lib -> usr/lib) is
     * followed inside root, as the container would. */
    if (S_ISDIR(st.st_mode)) {
        struct stat cur;
        if (fstatat(d.pfd, d.base, &cur, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(cur.st_mode)) {
            int dfd = open_in_root(d.rootfd, rel);
            if (dfd >= 0) {
                close(d.pfd);
                d.pfd = dfd;
                if (!o->shallow)
                    rc = merge_dir(&c, src, d.pfd, rel);
                goto out;
            }
        }
    }
    rc = copy_entry(&c, src, &st, d.pfd, d.base, rel);
out:
    free(rel);
    dest_close(&d);
    return rc;
}

int lc_copy_is_dir(const char *root, const char *dest)
{
    char *clean = strdup(dest ? dest : "/");
    int rootfd = clean ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int fd = -1;
    if (rootfd >= 0 && lc_fs_clean_relpath(clean, 1) == 0)
        fd = open_in_root(rootfd, clean);
    if (fd >= 0)
        close(fd);
    if (rootfd >= 0)
        close(rootfd);
    free(clean);
    return fd >= 0;
}

int lc_copy_mkdir(const char *root, const char *dest, const lc_copy_opts *o, lc_err *err)
{
    char *clean = strdup(dest ? dest : "/");
    if (clean == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (lc_fs_clean_relpath(clean, 1) < 0) {
        free(clean);
        return lc_err_set(err, LC_INVALID_ARGUMENT, "directory \"%s\" is invalid", dest);
    }
    int rootfd = open_root(root, err);
    int fd = rootfd < 0 ? rootfd : mkdir_in_root(rootfd, clean, o);
    if (rootfd >= 0)
        close(rootfd);
    free(clean);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (rootfd < 0)
        return fd;
    return lc_err_set(err, lc_code_from_errno(-fd), "mkdir %s: %s", dest, strerror(-fd));
}

int lc_copy_write_file(const char *root, const char *dest, const void *data, size_t len,
                       mode_t mode, const lc_copy_opts *o, lc_err *err)
{
    lc_copy_opts none = {0};
    o = o ? o : &none;
    dest_at d = {.rootfd = -1, .pfd = -1};
    int fd = -1, rc = 0;
    if (split_dest(dest, &d.parent, &d.base) < 0 || d.base[0] == '\0') {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "destination \"%s\" is invalid", dest);
        goto out;
    }
    if ((d.rootfd = open_root(root, err)) < 0) {
        rc = d.rootfd;
        goto out;
    }
    d.pfd = mkdir_in_root(d.rootfd, d.parent, o);
    if (d.pfd < 0) {
        rc = lc_err_set(err, lc_code_from_errno(-d.pfd), "destination %s: %s", dest,
                        strerror(-d.pfd));
        goto out;
    }
    unlinkat(d.pfd, d.base, 0);
    fd = openat(d.pfd, d.base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len)) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", dest, strerror(errno));
        goto out;
    }
    struct stat st = {.st_mode = mode};
    apply_meta(d.pfd, d.base, &st, 0, o);
out:
    if (fd >= 0)
        close(fd);
    dest_close(&d);
    return rc;
}

int lc_copy_is_archive(const char *src)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return 0;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    struct archive_entry *e;
    int ok = archive_read_open_filename(a, src, 10240) == ARCHIVE_OK &&
             archive_read_next_header(a, &e) == ARCHIVE_OK;
    archive_read_free(a);
    return ok;
}

int lc_copy_add_archive(const char *src, const char *root, const char *dest, const lc_copy_opts *o,
                        lc_err *err)
{
    char *clean = strdup(dest ? dest : "/");
    if (clean == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (lc_fs_clean_relpath(clean, 1) < 0) {
        free(clean);
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ADD destination \"%s\" is invalid", dest);
    }
    int rootfd = open_root(root, err);
    if (rootfd < 0) {
        free(clean);
        return rootfd;
    }
    int dfd = mkdir_in_root(rootfd, clean, o);
    close(rootfd);
    free(clean);
    if (dfd < 0)
        return lc_err_set(err, lc_code_from_errno(-dfd), "ADD %s: destination %s: %s", src, dest,
                          strerror(-dfd));
    char fdpath[64];
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", dfd);
    char *real = realpath(fdpath, NULL);
    close(dfd);
    if (real == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "ADD %s: %s", src, strerror(errno));
    lc_untar_opts uo = {.mode = LC_UNTAR_PLAIN};
    if (o && o->set_owner) {
        uo.force_owner = 1;
        uo.uid = o->uid;
        uo.gid = o->gid;
    }
    int rc = lc_untar_file(src, real, &uo, NULL, err);
    if (rc < 0)
        lc_err_prefix(err, "ADD %s", src);
    free(real);
    return rc;
}

int lc_copy_parse_chown(const char *root, const char *spec, lc_copy_opts *o, lc_err *err)
{
    if (spec == NULL || *spec == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--chown needs a value");
    unsigned uid, gid;
    char *home = NULL;
    int rc = lc_runc_resolve_user(root ? root : "/nonexistent", spec, &uid, &gid, NULL, NULL, &home,
                                  err);
    free(home);
    if (rc < 0) {
        lc_err_prefix(err, "--chown");
        return rc;
    }
    /* BuildKit: a UID alone is also the GID; a name alone takes its
     * primary group from passwd (as resolved). */
    const char *c;
    for (c = spec; *c >= '0' && *c <= '9'; c++)
        ;
    if (*c == '\0')
        gid = uid;
    o->set_owner = 1;
    o->uid = uid;
    o->gid = gid;
    return 0;
}

int lc_copy_parse_chmod(const char *spec, lc_copy_opts *o, lc_err *err)
{
    if (spec == NULL || *spec == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--chmod needs a value");
    if (*spec >= '0' && *spec <= '9') {
        char *end;
        unsigned long v = strtoul(spec, &end, 8);
        if (*end != '\0' || v > 07777)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "invalid chmod parameter: '%s'. it should be octal string and "
                              "between 0 and 07777",
                              spec);
        o->set_mode = 1;
        o->mode = (mode_t)v;
        return 0;
    }
    int ok;
    sym_apply(spec, 0, 0, &ok);
    if (!ok || strlen(spec) >= sizeof(o->mode_sym))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--chmod=%s: need an octal mode (0755) or a symbolic one (u+x,go-w)",
                          spec);
    snprintf(o->mode_sym, sizeof(o->mode_sym), "%s", spec);
    return 0;
}
