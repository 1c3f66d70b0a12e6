/* untar.c - safe layer extraction (see untar.h).
 *
 * Two libarchive readers are chained: `outer` (raw format, every filter)
 * reads the blob through a callback that hashes the compressed bytes;
 * `tar` (tar formats only, no filter) reads outer's decompressed data
 * through a callback that hashes it (the diff_id). Entries are checked by
 * us, then written with archive_write_disk.
 */
#include "build-worker/layer/untar.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"

#define BUF_SIZE 65536

/* ---- a small string set: paths this layer created (APPLY mode) ---- */
struct strset {
    char **slot;
    size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int strset_has(const struct strset *s, const char *k)
{
    if (s->cap == 0)
        return 0;
    for (size_t i = hash_str(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == NULL)
            return 0;
        if (strcmp(s->slot[i], k) == 0)
            return 1;
    }
}

static int strset_add(struct strset *s, const char *k)
{
    if (strset_has(s, k))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **slot = calloc(cap, sizeof(*slot));
        if (slot == NULL)
            return -ENOMEM;
        for (size_t j = 0; j < s->cap; j++) {
            if (s->slot[j] == NULL)
                continue;
            size_t i = hash_str(s->slot[j]) & (cap - 1);
            while (slot[i] != NULL)
                i = (i + 1) & (cap - 1);
            slot[i] = s->slot[j];
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    char *d = strdup(k);
    if (d == NULL)
        return -ENOMEM;
    size_t i = hash_str(k) & (s->cap - 1);
    while (s->slot[i] != NULL)
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = d;
    s->n++;
    return 0;
}

static void strset_free(struct strset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

/* Adds path and all its parents. */
static int strset_add_path(struct strset *s, const char *path)
{
    char *p = strdup(path);
    if (p == NULL)
        return -ENOMEM;
    int rc = strset_add(s, p);
    for (char *q = p + strlen(p); rc == 0 && q > p; q--) {
        if (*q == '/') {
            *q = '\0';
            rc = strset_add(s, p);
        }
    }
    free(p);
    return rc;
}

/* ---- reading ---- */
struct reader {
    int fd;
    lc_hasher *h_blob;
    lc_hasher *h_diff;
    struct archive *outer;
    char buf[BUF_SIZE];
    char tbuf[BUF_SIZE];
    int io_errno;
};

static la_ssize_t fd_read_cb(struct archive *a, void *ud, const void **out)
{
    struct reader *r = ud;
    for (;;) {
        ssize_t n = read(r->fd, r->buf, sizeof(r->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->io_errno = errno;
            archive_set_error(a, errno, "read layer: %s", strerror(errno));
            return -1;
        }
        lc_hasher_update(r->h_blob, r->buf, (size_t)n);
        *out = r->buf;
        return n;
    }
}

static la_ssize_t tar_read_cb(struct archive *a, void *ud, const void **out)
{
    struct reader *r = ud;
    la_ssize_t n = archive_read_data(r->outer, r->tbuf, sizeof(r->tbuf));
    if (n < 0) {
        archive_set_error(a, EIO, "decompress layer: %s", archive_error_string(r->outer));
        return -1;
    }
    lc_hasher_update(r->h_diff, r->tbuf, (size_t)n);
    *out = r->tbuf;
    return n;
}

/* ---- extraction ---- */
struct ctx {
    const lc_untar_opts *o;
    int destfd;
    char *destreal;
    struct archive *disk;
    struct strset created;
    lc_untar_result res;
};

static int unsafe(struct ctx *c, lc_err *err, const char *what, const char *path)
{
    if (c->o->skip_unsafe) {
        c->res.unsafe++;
        return 0;
    }
    return lc_err_set(err, LC_PERMISSION_DENIED,
                      "unsafe layer entry \"%s\": %s; refusing the layer", path, what);
}

static void split(char *clean, const char **parent, const char **base)
{
    char *slash = strrchr(clean, '/');
    if (slash == NULL) {
        *parent = "";
        *base = clean;
    } else {
        *slash = '\0';
        *parent = clean;
        *base = slash + 1;
    }
}

/* Removes from dirfd (path rel) everything this layer did not create. */
static int opaque_clear(struct ctx *c, int dfd, const char *rel)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = rel[0] ? lc_fs_join(rel, de->d_name) : strdup(de->d_name);
        if (p == NULL) {
            rc = -ENOMEM;
            break;
        }
        if (!strset_has(&c->created, p)) {
            rc = lc_fs_rm_rf_at(dirfd(d), de->d_name);
        } else {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                rc = opaque_clear(c, sub, p);
                close(sub);
            }
        }
        free(p);
    }
    closedir(d);
    return rc;
}

static int do_whiteout(struct ctx *c, const char *clean, const char *parent, const char *base,
                       lc_err *err)
{
    int pfd = lc_fs_open_dir_beneath(c->destfd, parent, 1);
    if (pfd < 0)
        return unsafe(c, err, "its directory is a symlink or not a directory", clean);
    int rc = 0;
    if (strcmp(base, ".wh..wh..opq") == 0) {
        if (c->o->mode == LC_UNTAR_APPLY) {
            rc = opaque_clear(c, pfd, parent);
            if (rc < 0)
                rc =
                    lc_err_set(err, lc_code_from_errno(-rc), "opaque %s: %s", clean, strerror(-rc));
        } else if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "mark %s opaque: %s",
                            parent[0] ? parent : "/", strerror(errno));
        }
        goto out;
    }
    const char *victim = base + 4;
    if (victim[0] == '\0' || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0 ||
        strchr(victim, '/') != NULL) {
        rc = unsafe(c, err, "bad whiteout name", clean);
        goto out;
    }
    char *vpath = parent[0] ? lc_fs_join(parent, victim) : strdup(victim);
    if (vpath == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (c->o->mode == LC_UNTAR_APPLY) {
        if (!strset_has(&c->created, vpath))
            rc = lc_fs_rm_rf_at(pfd, victim);
    } else {
        rc = lc_fs_rm_rf_at(pfd, victim);
        if (rc == 0 && mknodat(pfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0)
            rc = -errno;
        if (rc == 0)
            strset_add_path(&c->created, vpath);
    }
    if (rc < 0)
        rc = lc_err_set(err, lc_code_from_errno(-rc), "whiteout %s: %s", vpath, strerror(-rc));
    free(vpath);
out:
    close(pfd);
    if (rc == 0)
        c->res.entries++;
    return rc;
}

/* Keeps only user.* / security.* xattrs on the entry (or none). */
static void filter_xattrs(struct archive_entry *e, int keep)
{
    if (archive_entry_xattr_count(e) == 0)
        return;
    if (!keep) {
        archive_entry_xattr_clear(e);
        return;
    }
    size_t n = (size_t)archive_entry_xattr_count(e);
    const char **names = calloc(n, sizeof(*names));
    const void **vals = calloc(n, sizeof(*vals));
    size_t *lens = calloc(n, sizeof(*lens));
    char **copies = calloc(n, sizeof(*copies));
    size_t k = 0;
    if (names && vals && lens && copies) {
        const char *nm;
        const void *v;
        size_t l;
        archive_entry_xattr_reset(e);
        while (k < n && archive_entry_xattr_next(e, &nm, &v, &l) == ARCHIVE_OK) {
            if ((strncmp(nm, "user.", 5) != 0 && strncmp(nm, "security.", 9) != 0) ||
                strcmp(nm, "security.selinux") == 0) /* another host's label */
                continue;
            copies[k] = malloc(strlen(nm) + 1 + l);
            if (copies[k] == NULL)
                break;
            strcpy(copies[k], nm);
            memcpy(copies[k] + strlen(nm) + 1, v, l);
            names[k] = copies[k];
            vals[k] = copies[k] + strlen(nm) + 1;
            lens[k] = l;
            k++;
        }
    }
    archive_entry_xattr_clear(e);
    for (size_t i = 0; i < k; i++)
        archive_entry_xattr_add_entry(e, names[i], vals[i], lens[i]);
    for (size_t i = 0; i < k; i++)
        free(copies[i]);
    free(copies);
    free(lens);
    free(vals);
    free(names);
}

static int copy_data(struct ctx *c, struct archive *tar, const char *clean, lc_err *err)
{
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(tar, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK)
            return lc_err_set(err, LC_DATA_LOSS, "read %s from layer: %s", clean,
                              archive_error_string(tar));
        if (archive_write_data_block(c->disk, buf, len, off) != ARCHIVE_OK)
            return lc_err_set(err, LC_INTERNAL, "write %s: %s", clean,
                              archive_error_string(c->disk));
    }
}

static int extract_entry(struct ctx *c, struct archive *tar, struct archive_entry *e, lc_err *err)
{
    const char *raw = archive_entry_pathname(e);
    if (raw == NULL)
        return unsafe(c, err, "no usable path", "?");
    char *clean = strdup(raw);
    char *abs = NULL, *habs = NULL, *hclean = NULL;
    int pfd = -1, rc = 0;
    if (clean == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (lc_fs_clean_relpath(clean, 0) < 0) {
        rc = unsafe(c, err, "absolute or has a \"..\" component", raw);
        goto out;
    }
    if (clean[0] == '\0') /* the root itself: dest keeps its own metadata */
        goto out;
    abs = lc_fs_join(c->destreal, clean);
    if (abs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    char *tmp = strdup(clean);
    if (tmp == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    const char *parent, *base;
    split(tmp, &parent, &base);
    mode_t type = archive_entry_filetype(e);

    if (c->o->mode != LC_UNTAR_PLAIN && strncmp(base, ".wh.", 4) == 0) {
        rc = do_whiteout(c, clean, parent, base, err);
        free(tmp);
        goto out;
    }
    if ((type == AE_IFCHR || type == AE_IFBLK) && !c->o->allow_devices) {
        c->res.skipped++;
        free(tmp);
        goto out;
    }
    pfd = lc_fs_open_dir_beneath(c->destfd, parent, 1);
    if (pfd < 0) {
        rc = unsafe(c, err, "a parent directory is a symlink or not a directory", raw);
        free(tmp);
        goto out;
    }
    const char *hl = archive_entry_hardlink(e);
    if (hl != NULL) {
        hclean = strdup(hl);
        if (hclean == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            free(tmp);
            goto out;
        }
        struct stat hst;
        const char *hp, *hb;
        int hfd = -1;
        char *htmp = NULL;
        int ok = lc_fs_clean_relpath(hclean, 0) == 0 && hclean[0] != '\0' &&
                 (htmp = strdup(hclean)) != NULL;
        if (ok) {
            split(htmp, &hp, &hb);
            hfd = lc_fs_open_dir_beneath(c->destfd, hp, 0);
            ok = hfd >= 0 && fstatat(hfd, hb, &hst, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISREG(hst.st_mode);
        }
        if (hfd >= 0)
            close(hfd);
        free(htmp);
        if (!ok) {
            rc = unsafe(c, err, "hard link target outside the layer or not a regular file", raw);
            free(tmp);
            goto out;
        }
        habs = lc_fs_join(c->destreal, hclean);
        if (habs == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            free(tmp);
            goto out;
        }
        if (strcmp(hclean, clean) == 0) { /* a link to itself: nothing to do */
            free(tmp);
            goto out;
        }
    }
    /* Replace whatever is there (a lower layer's file, dir or symlink),
     * except a directory over a directory, which merges. */
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !(type == AE_IFDIR && S_ISDIR(st.st_mode))) {
        int r = lc_fs_rm_rf_at(pfd, base);
        if (r < 0) {
            rc = lc_err_set(err, lc_code_from_errno(-r), "replace %s: %s", clean, strerror(-r));
            free(tmp);
            goto out;
        }
    }
    free(tmp);

    archive_entry_set_pathname(e, abs);
    if (habs != NULL)
        archive_entry_set_hardlink(e, habs);
    if (c->o->force_owner) {
        archive_entry_set_uid(e, c->o->uid);
        archive_entry_set_gid(e, c->o->gid);
    }
    archive_entry_set_uname(e, NULL);
    archive_entry_set_gname(e, NULL);
    filter_xattrs(e, c->o->xattrs);
    if (archive_write_header(c->disk, e) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_PERMISSION_DENIED, "extract %s: %s", clean,
                        archive_error_string(c->disk));
        goto out;
    }
    if (archive_entry_size(e) > 0 && (type == AE_IFREG || habs != NULL)) {
        rc = copy_data(c, tar, clean, err);
        if (rc < 0)
            goto out;
    }
    int fr = archive_write_finish_entry(c->disk);
    /* A file system that takes no xattrs (tmpfs before Linux 6.6 and
     * user.*) costs them, not the layer. */
    if (fr != ARCHIVE_OK &&
        !(fr == ARCHIVE_WARN && archive_error_string(c->disk) != NULL &&
          strstr(archive_error_string(c->disk), "extended attributes") != NULL)) {
        rc = lc_err_set(err, LC_INTERNAL, "finish %s: %s", clean, archive_error_string(c->disk));
        goto out;
    }
    if (c->o->mode == LC_UNTAR_APPLY && strset_add_path(&c->created, clean) < 0) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    c->res.entries++;
out:
    if (pfd >= 0)
        close(pfd);
    free(habs);
    free(hclean);
    free(abs);
    free(clean);
    return rc;
}

static int check_digest(const lc_digest *want, const lc_digest *got, const char *what, lc_err *err)
{
    if (want == NULL)
        return 0;
    if (memcmp(want->hash, got->hash, LC_HASH_LEN) == 0 &&
        (want->size <= 0 || want->size == got->size))
        return 0;
    char w[LC_DIGEST_OCI_LEN + 1], g[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(want, w);
    lc_digest_oci(got, g);
    return lc_err_set(err, LC_DATA_LOSS,
                      "layer %s mismatch: expected %s (%lld bytes), read %s (%lld bytes); the "
                      "blob is corrupt or not the one asked for",
                      what, w, (long long)want->size, g, (long long)got->size);
}

int lc_untar_fd(int fd, const char *dest, const lc_untar_opts *opts, lc_untar_result *result,
                lc_err *err)
{
    lc_untar_opts defaults = {0};
    struct ctx c = {.o = opts ? opts : &defaults, .destfd = -1};
    struct reader *r = calloc(1, sizeof(*r));
    struct archive *tar = NULL;
    int rc = 0;
    if (r == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    r->fd = fd;
    c.destreal = realpath(dest, NULL);
    if (c.destreal == NULL) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "extract into %s: %s", dest,
                        strerror(errno));
        goto out;
    }
    c.destfd = open(c.destreal, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c.destfd < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "open %s: %s", dest, strerror(errno));
        goto out;
    }
    r->h_blob = lc_hasher_new();
    r->h_diff = lc_hasher_new();
    r->outer = archive_read_new();
    tar = archive_read_new();
    c.disk = archive_write_disk_new();
    if (!r->h_blob || !r->h_diff || !r->outer || !tar || !c.disk) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                ARCHIVE_EXTRACT_SECURE_NODOTDOT;
    if (!c.o->no_same_owner)
        flags |= ARCHIVE_EXTRACT_OWNER;
    if (c.o->xattrs)
        flags |= ARCHIVE_EXTRACT_XATTR;
    archive_write_disk_set_options(c.disk, flags);

    archive_read_support_filter_all(r->outer);
    archive_read_support_format_raw(r->outer);
    struct archive_entry *e;
    if (archive_read_open2(r->outer, r, NULL, fd_read_cb, NULL, NULL) != ARCHIVE_OK ||
        archive_read_next_header(r->outer, &e) != ARCHIVE_OK) {
        rc = lc_err_set(err, r->io_errno ? lc_code_from_errno(r->io_errno) : LC_DATA_LOSS,
                        "open layer: %s", archive_error_string(r->outer));
        goto out;
    }
    archive_read_support_format_tar(tar);
    if (archive_read_open2(tar, r, NULL, tar_read_cb, NULL, NULL) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_DATA_LOSS, "open layer tar: %s", archive_error_string(tar));
        goto out;
    }
    for (;;) {
        int h = archive_read_next_header(tar, &e);
        if (h == ARCHIVE_EOF)
            break;
        if (h != ARCHIVE_OK && h != ARCHIVE_WARN) {
            rc = lc_err_set(err, LC_DATA_LOSS, "read layer entry: %s", archive_error_string(tar));
            goto out;
        }
        rc = extract_entry(&c, tar, e, err);
        if (rc < 0)
            goto out;
    }
    /* Directory times and modes are set at close. */
    if (archive_write_close(c.disk) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "finish extraction: %s", archive_error_string(c.disk));
        goto out;
    }
    /* Hash what the readers did not consume (tar padding, trailing bytes). */
    for (;;) {
        const void *p;
        la_ssize_t n = tar_read_cb(tar, r, &p);
        if (n <= 0)
            break;
    }
    for (;;) {
        const void *p;
        la_ssize_t n = fd_read_cb(r->outer, r, &p);
        if (n <= 0)
            break;
    }
    lc_hasher_final(r->h_blob, &c.res.blob);
    lc_hasher_final(r->h_diff, &c.res.diff_id);
    rc = check_digest(c.o->expect_blob, &c.res.blob, "blob digest", err);
    if (rc == 0)
        rc = check_digest(c.o->expect_diff_id, &c.res.diff_id, "diff_id", err);
out:
    if (result != NULL)
        *result = c.res;
    if (c.disk != NULL)
        archive_write_free(c.disk);
    if (tar != NULL)
        archive_read_free(tar);
    if (r->outer != NULL)
        archive_read_free(r->outer);
    lc_hasher_free(&r->h_blob);
    lc_hasher_free(&r->h_diff);
    free(r);
    strset_free(&c.created);
    if (c.destfd >= 0)
        close(c.destfd);
    free(c.destreal);
    return rc;
}

int lc_untar_file(const char *path, const char *dest, const lc_untar_opts *opts,
                  lc_untar_result *result, lc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open layer %s: %s", path,
                          strerror(errno));
    int rc = lc_untar_fd(fd, dest, opts, result, err);
    close(fd);
    return rc;
}
