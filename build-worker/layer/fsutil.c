/* fsutil.c - see fsutil.h. */
#include "build-worker/layer/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lc_fs_clean_relpath(char *path, int allow_abs)
{
    if (path[0] == '/' && !allow_abs)
        return -1;
    char *out = path;
    const char *p = path;
    while (*p != '\0') {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 1 && p[0] == '.') {
            p += n;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (out != path)
            *out++ = '/';
        memmove(out, p, n);
        out += n;
        p += n;
    }
    *out = '\0';
    return 0;
}

int lc_fs_open_dir_beneath(int dirfd, const char *rel, int create)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    const char *p = rel;
    char name[256];
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) {
            p++;
            continue;
        }
        if (n >= sizeof(name)) {
            close(fd);
            return -ENAMETOOLONG;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        if (strcmp(name, "..") == 0) {
            close(fd);
            return -EPERM;
        }
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(fd);
                return -e;
            }
            next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        close(fd);
        fd = next;
        p += n;
    }
    return fd;
}

static int rm_tree_fd(int dfd)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        close(dfd);
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int r = lc_fs_rm_rf_at(dirfd(d), de->d_name);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    return rc;
}

int lc_fs_rm_rf_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        /* A directory we may not read (mode 000, e.g. overlay's work/work). */
        if (errno == EACCES && fchmodat(dirfd, name, 0700, 0) == 0)
            fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -errno;
    }
    int rc = rm_tree_fd(fd);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return rc ? rc : -errno;
    return rc;
}

int lc_fs_rm_rf(const char *path)
{
    return lc_fs_rm_rf_at(AT_FDCWD, path);
}

int lc_fs_mkdir_p(const char *path)
{
    char *buf = strdup(path);
    if (buf == NULL)
        return -ENOMEM;
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    free(buf);
    return rc;
}

char *lc_fs_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    size_t n = la;
    if (n > 0 && s[n - 1] != '/' && lb > 0)
        s[n++] = '/';
    memcpy(s + n, b, lb + 1);
    return s;
}

int lc_fs_write_file(const char *path, const void *data, size_t len, lc_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "create %s: %s", path, strerror(errno));
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            return lc_err_set(err, lc_code_from_errno(e), "write %s: %s", path, strerror(e));
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "close %s: %s", path, strerror(errno));
    return 0;
}

int lc_fs_read_file(const char *path, size_t max, char **out, size_t *len, lc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    if (buf == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "%s is larger than %zu bytes", path,
                                max);
                goto out;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
                goto out;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "%s is larger than %zu bytes", path, max);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}
