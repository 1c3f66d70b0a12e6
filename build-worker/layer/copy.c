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
    if (!is_link)
        fchmodat(dirfd, name, o->set_mode ? (o->mode & 07777) : (src->st_mode & 07777), 0);
}

static int copy_file_fd(int srcfd, int dirfd, const char *name, lc_err *err, const char *what)
{
    int out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: create %s: %s", what, name,
                          strerror(errno));
    static __thread char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(srcfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: read: %s", what,
                                strerror(errno));
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: write: %s", what,
                                strerror(errno));
                goto done;
            }
            off += w;
        }
    }
done:
    close(out);
    return rc;
}

/* Copies host entry src (already lstat'ed) to dirfd/name. */
static int copy_entry(const char *src, const struct stat *st, int dirfd, const char *name,
                      const lc_copy_opts *o, lc_err *err)
{
    struct stat cur;
    int exists = fstatat(dirfd, name, &cur, AT_SYMLINK_NOFOLLOW) == 0;
    if (S_ISDIR(st->st_mode)) {
        if (exists && !S_ISDIR(cur.st_mode))
            unlinkat(dirfd, name, 0);
        if ((!exists || !S_ISDIR(cur.st_mode)) && mkdirat(dirfd, name, 0755) < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: mkdir: %s", src,
                              strerror(errno));
        int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = opendir(src);
        int rc = 0;
        if (sub < 0 || d == NULL) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
        } else {
            struct dirent *de;
            while (rc == 0 && (de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char *child = lc_fs_join(src, de->d_name);
                struct stat cst;
                if (child == NULL)
                    rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                else if (lstat(child, &cst) < 0)
                    rc = lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", child,
                                    strerror(errno));
                else
                    rc = copy_entry(child, &cst, sub, de->d_name, o, err);
                free(child);
            }
        }
        if (d)
            closedir(d);
        if (sub >= 0)
            close(sub);
        if (rc == 0)
            apply_meta(dirfd, name, st, 0, o);
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
        int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
        int rc = copy_file_fd(in, dirfd, name, err, src);
        close(in);
        if (rc == 0)
            apply_meta(dirfd, name, st, 0, o);
        return rc;
    }
    if (S_ISFIFO(st->st_mode)) {
        if (mkfifoat(dirfd, name, 0600) < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
        apply_meta(dirfd, name, st, 0, o);
    }
    return 0; /* sockets and devices are not copied */
}

static int open_root(const char *root, lc_err *err)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open root %s: %s", root,
                          strerror(errno));
    return fd;
}

/* Copies the contents of host directory src into the open directory dirfd. */
static int merge_dir(const char *src, int dirfd, const lc_copy_opts *o, lc_err *err)
{
    DIR *d = opendir(src);
    if (d == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "COPY %s: %s", src, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *child = lc_fs_join(src, de->d_name);
        struct stat cst;
        if (child != NULL && lstat(child, &cst) == 0)
            rc = copy_entry(child, &cst, dirfd, de->d_name, o, err);
        free(child);
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
    if ((d.rootfd = open_root(root, err)) < 0) {
        rc = d.rootfd;
        goto out;
    }
    if (d.base[0] == '\0') { /* dest is "/": merge a directory into the root */
        if (!S_ISDIR(st.st_mode)) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "COPY %s: destination / needs a name", src);
            goto out;
        }
        d.pfd = open_in_root(d.rootfd, "");
        if (d.pfd >= 0)
            rc = merge_dir(src, d.pfd, o, err);
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
            char *clean = strdup(dest);
            if (clean != NULL && lc_fs_clean_relpath(clean, 1) == 0) {
                int dfd = open_in_root(d.rootfd, clean);
                if (dfd >= 0) {
                    close(d.pfd);
                    d.pfd = dfd;
                    rc = merge_dir(src, d.pfd, o, err);
                    free(clean);
                    goto out;
                }
            }
            free(clean);
        }
    }
    rc = copy_entry(src, &st, d.pfd, d.base, o, err);
out:
    dest_close(&d);
    return rc;
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
    /* Docker: a user or UID without a group uses the same number as GID. */
    if (strchr(spec, ':') == NULL)
        gid = uid;
    o->set_owner = 1;
    o->uid = uid;
    o->gid = gid;
    return 0;
}

int lc_copy_parse_chmod(const char *spec, lc_copy_opts *o, lc_err *err)
{
    char *end;
    unsigned long v = spec ? strtoul(spec, &end, 8) : 0;
    if (spec == NULL || *spec == '\0' || *end != '\0' || v > 07777)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--chmod=%s: need an octal mode like 0755",
                          spec ? spec : "");
    o->set_mode = 1;
    o->mode = (mode_t)v;
    return 0;
}
