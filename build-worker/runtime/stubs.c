/* stubs.c - mount stubs in an overlay rootfs (see stubs.h). */
#include "build-worker/runtime/stubs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"

#define MAX_LINKS 40

typedef struct ancestor {
    char *rel;
    mode_t mode;
    uid_t uid;
    gid_t gid;
} ancestor;

struct lc_stubs {
    char **made; /* rootfs-relative real paths, parents before children */
    size_t nmade, capmade;
    ancestor *anc; /* existing directories a stub was made in, and their parents */
    size_t nanc, capanc;
};

size_t lc_stubs_count(const lc_stubs *s)
{
    return s ? s->nmade : 0;
}

/* O_PATH fd of rel resolved inside the root (as runc's securejoin does). */
static int open_in_root(int rootfd, const char *rel)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

/* The rootfs-relative real path of an fd inside the root ("" = the root). */
static char *rel_of_fd(int fd, const char *rootreal)
{
    char link[64], buf[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    size_t rl = strlen(rootreal);
    if (strncmp(buf, rootreal, rl) != 0 || (buf[rl] != '\0' && buf[rl] != '/'))
        return NULL;
    return strdup(buf[rl] == '/' ? buf + rl + 1 : "");
}

/* Cleans an absolute path in place: no "", "." or ".." components (".."
 * stops at the root, as it does inside the rootfs). */
static void clean_abs(char *p)
{
    char *out = p, *s = p;
    *out++ = '/';
    while (*s) {
        while (*s == '/')
            s++;
        char *e = s;
        while (*e && *e != '/')
            e++;
        size_t l = (size_t)(e - s);
        if (l == 0 || (l == 1 && s[0] == '.')) {
            /* skip */
        } else if (l == 2 && s[0] == '.' && s[1] == '.') {
            while (out > p + 1 && out[-1] != '/')
                out--;
            if (out > p + 1)
                out--;
        } else {
            if (out > p + 1)
                *out++ = '/';
            memmove(out, s, l);
            out += l;
        }
        s = e;
    }
    *out = '\0';
}

static int push_made(lc_stubs *s, char *rel)
{
    if (s->nmade == s->capmade) {
        size_t cap = s->capmade ? 2 * s->capmade : 8;
        char **g = realloc(s->made, cap * sizeof(*g));
        if (g == NULL)
            return -1;
        s->made = g;
        s->capmade = cap;
    }
    s->made[s->nmade++] = rel;
    return 0;
}

/* Records rel and its parents (not the root) with their metadata. */
static int push_ancestors(lc_stubs *s, int rootfd, const char *rel)
{
    char *r = strdup(rel);
    if (r == NULL)
        return -1;
    while (r[0] != '\0') {
        bool seen = false;
        for (size_t i = 0; i < s->nanc && !seen; i++)
            seen = strcmp(s->anc[i].rel, r) == 0;
        struct stat st;
        if (!seen && fstatat(rootfd, r, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (s->nanc == s->capanc) {
                size_t cap = s->capanc ? 2 * s->capanc : 8;
                ancestor *g = realloc(s->anc, cap * sizeof(*g));
                if (g == NULL) {
                    free(r);
                    return -1;
                }
                s->anc = g;
                s->capanc = cap;
            }
            ancestor *a = &s->anc[s->nanc];
            if ((a->rel = strdup(r)) == NULL) {
                free(r);
                return -1;
            }
            a->mode = st.st_mode;
            a->uid = st.st_uid;
            a->gid = st.st_gid;
            s->nanc++;
        }
        char *slash = strrchr(r, '/');
        if (slash == NULL)
            r[0] = '\0';
        else
            *slash = '\0';
    }
    free(r);
    return 0;
}

/* Makes what is missing of target (absolute, cleaned). */
static int make_one(lc_stubs *s, int rootfd, const char *rootreal, const char *target, bool is_file,
                    lc_err *err)
{
    char *path = strdup(target);
    int rc = 0, parent = -1;
    if (path == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (int hops = 0;; hops++) {
        if (hops > MAX_LINKS) {
            rc = lc_err_set(err, LC_FAILED_PRECONDITION,
                            "mount target %s: too many levels of symbolic links", target);
            goto out;
        }
        clean_abs(path);
        /* Find the first component that does not exist. */
        size_t len = strlen(path), i = 1;
        bool restarted = false;
        while (i <= len && !restarted) {
            size_t e = i;
            while (e < len && path[e] != '/')
                e++;
            char saved = path[e];
            path[e] = '\0';
            int fd = open_in_root(rootfd, path + 1);
            path[e] = saved;
            if (fd >= 0) {
                close(fd);
                i = e + 1;
                continue;
            }
            if (fd == -ENOTDIR) {
                rc = lc_err_set(err, LC_FAILED_PRECONDITION,
                                "mount target %s: a component of %.*s is not a directory", target,
                                (int)e, path);
                goto out;
            }
            if (fd != -ENOENT) {
                rc = lc_err_set(err, lc_code_from_errno(-fd), "mount target %s: %s", target,
                                strerror(-fd));
                goto out;
            }
            /* Missing from here on, unless it is a dangling symlink. */
            char prefix[PATH_MAX];
            snprintf(prefix, sizeof(prefix), "%.*s", (int)(i > 1 ? i - 2 : 0), path + 1);
            parent = open_in_root(rootfd, prefix);
            if (parent < 0) {
                rc = lc_err_set(err, lc_code_from_errno(-parent), "mount target %s: %s", target,
                                strerror(-parent));
                goto out;
            }
            char name[NAME_MAX + 1], link[PATH_MAX];
            snprintf(name, sizeof(name), "%.*s", (int)(e - i), path + i);
            ssize_t ln = readlinkat(parent, name, link, sizeof(link) - 1);
            if (ln >= 0) {
                link[ln] = '\0';
                char *prel = rel_of_fd(parent, rootreal);
                size_t cap = strlen(prel ? prel : "") + (size_t)ln + (len - e) + 4;
                char *np = prel ? malloc(cap) : NULL;
                if (np == NULL) {
                    free(prel);
                    rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                    goto out;
                }
                if (link[0] == '/')
                    snprintf(np, cap, "%s%s", link, path + e);
                else
                    snprintf(np, cap, "/%s/%s%s", prel, link, path + e);
                free(prel);
                free(path);
                path = np;
                close(parent);
                parent = -1;
                restarted = true;
                continue;
            }
            /* Make the rest. */
            char *prel = rel_of_fd(parent, rootreal);
            if (prel == NULL || push_ancestors(s, rootfd, prel) < 0) {
                free(prel);
                rc = lc_err_set(err, LC_INTERNAL, "mount target %s: cannot resolve its parent",
                                target);
                goto out;
            }
            size_t j = i;
            while (j <= len && rc == 0) {
                size_t k = j;
                while (k < len && path[k] != '/')
                    k++;
                snprintf(name, sizeof(name), "%.*s", (int)(k - j), path + j);
                bool last = k >= len;
                int made;
                if (last && is_file) {
                    made = openat(parent, name,
                                  O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                    if (made >= 0)
                        close(made);
                } else {
                    made = mkdirat(parent, name, 0755);
                    if (made == 0)
                        fchmodat(parent, name, 0755, 0); /* whatever the umask */
                }
                if (made < 0) {
                    rc = lc_err_set(err, lc_code_from_errno(errno), "create mount point %s: %s",
                                    target, strerror(errno));
                    break;
                }
                char *rel = malloc(strlen(prel) + (k - i) + 2);
                if (rel == NULL || push_made(s, rel) < 0) {
                    free(rel);
                    rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                    break;
                }
                sprintf(rel, "%s%s%.*s", prel, prel[0] ? "/" : "", (int)(k - i), path + i);
                if (!last) {
                    int next = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    close(parent);
                    parent = next;
                    if (parent < 0) {
                        rc = lc_err_set(err, lc_code_from_errno(errno), "mount point %s: %s",
                                        target, strerror(errno));
                        break;
                    }
                }
                j = k + 1;
            }
            free(prel);
            goto out;
        }
        if (!restarted)
            goto out; /* everything exists */
    }
out:
    if (parent >= 0)
        close(parent);
    free(path);
    return rc;
}

int lc_stubs_make(const char *rootfs, const char *const *targets, const bool *is_file, size_t n,
                  lc_stubs **out, lc_err *err)
{
    *out = NULL;
    lc_stubs *s = calloc(1, sizeof(*s));
    char *rootreal = realpath(rootfs, NULL);
    int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (s == NULL || rootreal == NULL || rootfd < 0) {
        rc = lc_err_set(err, s == NULL ? LC_RESOURCE_EXHAUSTED : lc_code_from_errno(errno),
                        "open rootfs %s: %s", rootfs, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = make_one(s, rootfd, rootreal, targets[i], is_file ? is_file[i] : false, err);
out:
    if (rootfd >= 0)
        close(rootfd);
    free(rootreal);
    *out = s; /* also on failure: what was made must still be removed */
    return rc;
}

/* Opens the parent directory of rel in the upper dir without following
 * symlinks; *base points at the last component. */
static int open_parent(int ufd, const char *rel, char *buf, size_t cap, const char **base)
{
    snprintf(buf, cap, "%s", rel);
    char *slash = strrchr(buf, '/');
    if (slash == NULL) {
        *base = buf;
        return dup(ufd);
    }
    *slash = '\0';
    *base = slash + 1;
    return lc_fs_open_dir_beneath(ufd, buf, 0);
}

static size_t depth(const char *rel)
{
    size_t d = 1;
    for (; *rel; rel++)
        d += *rel == '/';
    return d;
}

static int by_depth_desc(const void *a, const void *b)
{
    size_t da = depth(((const ancestor *)a)->rel), db = depth(((const ancestor *)b)->rel);
    return da < db ? 1 : da > db ? -1 : 0;
}

void lc_stubs_remove(lc_stubs **sp, const char *upper)
{
    if (sp == NULL || *sp == NULL)
        return;
    lc_stubs *s = *sp;
    int ufd = upper ? open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    char buf[PATH_MAX];
    const char *base;
    for (size_t i = s->nmade; ufd >= 0 && i-- > 0;) {
        int d = open_parent(ufd, s->made[i], buf, sizeof(buf), &base);
        struct stat st;
        if (d >= 0 && fstatat(d, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode))
                unlinkat(d, base, AT_REMOVEDIR); /* only when still empty */
            else if (S_ISREG(st.st_mode) && st.st_size == 0)
                unlinkat(d, base, 0);
        }
        if (d >= 0)
            close(d);
    }
    if (s->nanc > 1)
        qsort(s->anc, s->nanc, sizeof(*s->anc), by_depth_desc);
    for (size_t i = 0; ufd >= 0 && i < s->nanc; i++) {
        const ancestor *a = &s->anc[i];
        int d = open_parent(ufd, a->rel, buf, sizeof(buf), &base);
        struct stat st;
        if (d >= 0 && fstatat(d, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            st.st_mode == a->mode && st.st_uid == a->uid && st.st_gid == a->gid) {
            int fd = openat(d, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            char v[4];
            bool opaque = fd < 0 || fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)) >= 0;
            if (fd >= 0)
                close(fd);
            if (!opaque)
                unlinkat(d, base, AT_REMOVEDIR); /* a copy-up that holds nothing now */
        }
        if (d >= 0)
            close(d);
    }
    if (ufd >= 0)
        close(ufd);
    for (size_t i = 0; i < s->nmade; i++)
        free(s->made[i]);
    for (size_t i = 0; i < s->nanc; i++)
        free(s->anc[i].rel);
    free(s->made);
    free(s->anc);
    free(s);
    *sp = NULL;
}
