/* walk.c - see walk.h. */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "path.h"
#include "strlist.h"

typedef struct walker {
    const char *root;
    char *root_real;
    const lc_ignore *ig;
    const lc_ignore *ex;
    bool descend_ignored; /* an exception could re-include something below */
    lc_selection *sel;
    lc_err *err;
} walker;

bool lc_walk_has_wildcards(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' && s[1] != '\0')
            s++;
        else if (*s == '*' || *s == '?' || *s == '[')
            return true;
    }
    return false;
}

static char *full_path(const walker *w, const char *rel)
{
    return strcmp(rel, ".") == 0 ? strdup(w->root) : lc_path_join(w->root, rel);
}

static void entry_clear(lc_ctx_entry *e)
{
    free(e->path);
    free(e->dest);
    free(e->link);
    memset(e, 0, sizeof(*e));
}

static int add_entry(walker *w, const char *path, const char *dest, uint32_t src,
                     const struct stat *st, int dfd, const char *name)
{
    lc_selection *s = w->sel;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        lc_ctx_entry *g = realloc(s->entries, cap * sizeof(*g));
        if (g == NULL)
            return lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        s->entries = g;
        s->cap = cap;
    }
    lc_ctx_entry *e = &s->entries[s->n];
    memset(e, 0, sizeof(*e));
    e->path = strdup(path);
    e->dest = strdup(dest);
    if (e->path == NULL || e->dest == NULL) {
        entry_clear(e);
        return lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    e->src = src;
    e->mode = (uint32_t)st->st_mode;
    e->st.dev = (uint64_t)st->st_dev;
    e->st.ino = (uint64_t)st->st_ino;
    e->st.size = (int64_t)st->st_size;
    e->st.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    e->st.ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    if (S_ISREG(st->st_mode)) {
        e->size = (int64_t)st->st_size;
        s->files++;
        s->bytes += (uint64_t)st->st_size;
    } else if (S_ISLNK(st->st_mode)) {
        char buf[PATH_MAX + 1];
        ssize_t n = readlinkat(dfd, name, buf, PATH_MAX);
        if (n < 0) {
            int e2 = errno;
            entry_clear(e);
            return lc_err_set(w->err, lc_code_from_errno(e2), "cannot read link %s: %s", path,
                              strerror(e2));
        }
        buf[n] = '\0';
        e->link = strdup(buf);
        if (e->link == NULL) {
            entry_clear(e);
            return lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    s->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Reads the names in the directory open as dfd (or at full when dfd < 0),
 * sorted. *names is a NULL-terminated malloc'd array of malloc'd strings. */
static int list_dir(walker *w, int dfd, const char *full, const char *rel, char ***names,
                    size_t *count)
{
    *names = NULL;
    *count = 0;
    int fd2 = dfd >= 0 ? dup(dfd) : -1;
    DIR *d = dfd >= 0 ? (fd2 >= 0 ? fdopendir(fd2) : NULL) : opendir(full);
    if (d == NULL) {
        int e = errno;
        if (fd2 >= 0)
            close(fd2);
        return lc_err_set(w->err, lc_code_from_errno(e), "cannot read directory %s: %s", rel,
                          strerror(e));
    }
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof(*v));
    struct dirent *de = NULL;
    int rc = 0, oom = v == NULL;
    while (!oom && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n + 1 >= cap) {
            char **g = realloc(v, cap * 2 * sizeof(*v));
            if (g == NULL) {
                oom = 1;
                break;
            }
            v = g;
            cap *= 2;
        }
        if ((v[n] = strdup(de->d_name)) == NULL) {
            oom = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (oom) {
        if (v != NULL)
            free_names(v, n);
        return lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    qsort(v, n, sizeof(*v), cmp_str);
    v[n] = NULL;
    *names = v;
    *count = n;
    return rc;
}

static bool is_excluded(const walker *w, const char *rel, const char *dest)
{
    if (w->ex == NULL)
        return false;
    return lc_ignore_match(w->ex, dest) || lc_ignore_match(w->ex, rel);
}

/* Adds the contents of directory rel (dest prefix dest) depth-first. Names
 * are resolved relative to the directory's descriptor: one lookup each. */
static int walk_dir(walker *w, const char *rel, const char *dest, uint32_t src, int depth)
{
    if (depth > 4096)
        return lc_err_set(w->err, LC_OUT_OF_RANGE, "directory tree too deep at %s", rel);
    char *full = full_path(w, rel);
    char **names = NULL;
    size_t n = 0;
    int dfd = -1, rc = 0;
    if (full == NULL) {
        rc = lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    } else if ((dfd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = lc_err_set(w->err, lc_code_from_errno(errno), "cannot read directory %s: %s", rel,
                        strerror(errno));
    } else {
        rc = list_dir(w, dfd, NULL, rel, &names, &n);
    }
    free(full);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *crel = lc_path_join(rel, names[i]);
        char *cdest = lc_path_join(dest, names[i]);
        struct stat st;
        if (crel == NULL || cdest == NULL) {
            rc = lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        } else if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) /* vanished while walking: as if never there */
                rc = lc_err_set(w->err, lc_code_from_errno(errno), "cannot stat %s: %s", crel,
                                strerror(errno));
        } else {
            bool ignored = lc_ignore_match(w->ig, crel) || is_excluded(w, crel, cdest);
            if (S_ISDIR(st.st_mode)) {
                if (!ignored || w->descend_ignored) {
                    size_t mark = w->sel->n;
                    rc = add_entry(w, crel, cdest, src, &st, dfd, names[i]);
                    if (rc == 0)
                        rc = walk_dir(w, crel, cdest, src, depth + 1);
                    if (rc == 0 && ignored && w->sel->n == mark + 1) {
                        /* Nothing below was re-included: drop the directory. */
                        entry_clear(&w->sel->entries[--w->sel->n]);
                    }
                }
            } else if (!ignored) {
                rc = add_entry(w, crel, cdest, src, &st, dfd, names[i]);
            }
        }
        free(crel);
        free(cdest);
    }
    if (dfd >= 0)
        close(dfd);
    free_names(names, n);
    return rc;
}

/* Expands a wildcard source element by element into matches (sorted). */
static int expand_glob(walker *w, const char *clean, lc_strlist *out)
{
    lc_strlist cur = {0}, next = {0};
    int rc = lc_strlist_push(&cur, ".");
    char *copy = strdup(clean);
    if (copy == NULL || rc != 0) {
        rc = lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    char *save = NULL;
    for (char *comp = strtok_r(copy, "/", &save); comp != NULL && rc == 0;
         comp = strtok_r(NULL, "/", &save)) {
        for (size_t i = 0; i < cur.len && rc == 0; i++) {
            if (!lc_walk_has_wildcards(comp)) {
                char *j = lc_path_join(cur.items[i], comp);
                rc = j ? lc_strlist_push_owned(&next, j) : -LC_RESOURCE_EXHAUSTED;
                continue;
            }
            char *full = full_path(w, cur.items[i]);
            struct stat st;
            if (full == NULL) {
                rc = -LC_RESOURCE_EXHAUSTED;
            } else if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
                char **names = NULL;
                size_t n = 0;
                rc = list_dir(w, -1, full, cur.items[i], &names, &n);
                for (size_t k = 0; rc == 0 && k < n; k++) {
                    if (fnmatch(comp, names[k], 0) != 0)
                        continue;
                    char *j = lc_path_join(cur.items[i], names[k]);
                    rc = j ? lc_strlist_push_owned(&next, j) : -LC_RESOURCE_EXHAUSTED;
                }
                free_names(names, n);
            }
            free(full);
        }
        lc_strlist_clear(&cur);
        cur = next;
        memset(&next, 0, sizeof(next));
    }
    if (rc == -LC_RESOURCE_EXHAUSTED)
        rc = lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; rc == 0 && i < cur.len; i++)
        rc = lc_strlist_push(out, cur.items[i]);
out:
    free(copy);
    lc_strlist_clear(&cur);
    lc_strlist_clear(&next);
    return rc;
}

/* Resolves the symlink rel the way the image or context root would see it
 * (absolute targets and ".." stay inside root, as BuildKit scopes them):
 * *resolved (malloc'd) is the root-relative path it leads to, st its stat. */
static int resolve_in_root(walker *w, const char *rel, char **resolved, struct stat *st)
{
    int rfd = open(w->root_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return lc_err_set(w->err, lc_code_from_errno(errno), "cannot open %s: %s", w->root,
                          strerror(errno));
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, rfd, rel, &how, sizeof(how));
    int e = errno;
    close(rfd);
    if (fd < 0)
        return lc_err_set(w->err, LC_NOT_FOUND, "'%s' is a symlink to a missing file (%s)", rel,
                          strerror(e));
    char proc[64], real[PATH_MAX];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%ld", fd);
    ssize_t n = readlink(proc, real, sizeof(real) - 1);
    int ok = n > 0 && fstat((int)fd, st) == 0;
    close((int)fd);
    size_t lr = strlen(w->root_real);
    if (!ok || (size_t)n < lr || strncmp(real, w->root_real, lr) != 0)
        return lc_err_set(w->err, LC_INTERNAL, "cannot resolve symlink '%s'", rel);
    real[n] = '\0';
    const char *tail = real + lr;
    while (*tail == '/')
        tail++;
    *resolved = lc_path_rel_clean(tail);
    return *resolved ? 0 : lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

/* Adds one matched path of source src. *found is set when it selected
 * something (or was an existing but ignored path: *ignored). */
static int add_match(walker *w, const char *rel, uint32_t src, bool *found, bool *ignored)
{
    char *full = full_path(w, rel);
    char *real = NULL;
    int rc = 0;
    struct stat st;
    if (full == NULL) {
        rc = lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (lstat(full, &st) != 0)
        goto out;         /* not there */
    const char *at = rel; /* where the content is read from */
    if (S_ISLNK(st.st_mode)) {
        /* The source itself is followed, inside the root. */
        if ((rc = resolve_in_root(w, rel, &real, &st)) != 0)
            goto out;
        at = real;
        free(full);
        if ((full = full_path(w, at)) == NULL) {
            rc = lc_err_set(w->err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    bool ign = strcmp(rel, ".") != 0 && lc_ignore_match(w->ig, rel);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    size_t mark = w->sel->n;
    if (S_ISDIR(st.st_mode)) {
        if (ign && !w->descend_ignored) {
            *ignored = true;
            goto out;
        }
        rc = add_entry(w, at, ".", src, &st, AT_FDCWD, full);
        if (rc == 0)
            rc = walk_dir(w, at, ".", src, 0);
        if (rc == 0 && ign && w->sel->n == mark + 1) {
            entry_clear(&w->sel->entries[--w->sel->n]);
            *ignored = true;
            goto out;
        }
        *found = true;
    } else {
        if (ign || is_excluded(w, rel, base)) {
            *ignored = true;
            goto out;
        }
        rc = add_entry(w, at, base, src, &st, AT_FDCWD, full);
        *found = rc == 0;
    }
    if (rc == 0 && w->sel->n > mark)
        w->sel->entries[mark].match = true;
out:
    free(real);
    free(full);
    return rc;
}

int lc_walk_select(const char *root, const lc_ignore *ig, const char *const *sources, size_t nsrc,
                   const lc_ignore *exclude, lc_selection **out, lc_err *err)
{
    *out = NULL;
    walker w = {.root = root, .ig = ig, .ex = exclude, .err = err};
    w.descend_ignored = lc_ignore_has_exceptions(ig) || lc_ignore_has_exceptions(exclude);
    w.sel = calloc(1, sizeof(*w.sel));
    w.root_real = realpath(root, NULL);
    int rc = 0;
    if (w.sel == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    struct stat st;
    if (w.root_real == NULL || stat(w.root_real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = lc_err_set(err, LC_NOT_FOUND, "build context %s is not a directory", root);
        goto out;
    }
    for (size_t i = 0; i < nsrc && rc == 0; i++) {
        char *clean = lc_path_rel_clean(sources[i]);
        lc_strlist matches = {0};
        bool found = false, ignored = false;
        if (clean == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        } else if (lc_walk_has_wildcards(clean)) {
            rc = expand_glob(&w, clean, &matches);
            for (size_t k = 0; rc == 0 && k < matches.len; k++)
                rc = add_match(&w, matches.items[k], (uint32_t)i, &found, &ignored);
        } else {
            rc = add_match(&w, clean, (uint32_t)i, &found, &ignored);
            if (rc == 0 && !found) {
                rc = lc_err_set(err, LC_NOT_FOUND, "source '%s' %s", sources[i],
                                ignored ? "is excluded by .dockerignore"
                                        : "was not found in the build context");
            }
        }
        lc_strlist_clear(&matches);
        free(clean);
    }
out:
    free(w.root_real);
    if (rc != 0)
        lc_selection_free(&w.sel);
    *out = w.sel;
    return rc;
}

void lc_selection_free(lc_selection **s)
{
    if (s == NULL || *s == NULL)
        return;
    for (size_t i = 0; i < (*s)->n; i++)
        entry_clear(&(*s)->entries[i]);
    free((*s)->entries);
    free(*s);
    *s = NULL;
}
