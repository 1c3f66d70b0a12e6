/* tarwrite.c - deterministic layer tars (see tarwrite.h).
 *
 * Two libarchive writers are chained: A writes the pax tar into a callback
 * that hashes it (diff_id) and feeds it to B, a "raw" format writer whose
 * only job is the gzip/zstd filter; B's callback hashes the compressed
 * bytes (blob digest) and writes them to the file. One pass, no temp file.
 */
#include "build-worker/layer/tarwrite.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"

enum ent_kind { K_NORMAL, K_WHITEOUT, K_OPAQUE };

struct ent {
    char *name; /* tar path, without trailing '/' */
    char *src;  /* path relative to the layer dir ("" never: root is skipped) */
    struct stat st;
    int kind;
    const char *hardlink; /* borrowed from another ent's name */
};

struct walk {
    const char *root;
    int no_whiteouts;
    struct ent *v;
    size_t n, cap;
};

struct writer {
    int fd;
    const char *path;
    lc_hasher *h_blob;
    lc_hasher *h_diff;
    struct archive *b; /* compressor, NULL when uncompressed */
    int io_errno;
    const lc_layer_opts *o; /* for its progress callback */
    uint64_t tar_bytes, file_bytes;
};

int64_t lc_layer_default_epoch(void)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return 0;
    return (int64_t)v;
}

const char *lc_layer_media_type(int compression)
{
    switch (compression) {
    case LC_LAYER_GZIP:
        return LC_MEDIA_LAYER_GZIP;
    case LC_LAYER_ZSTD:
        return LC_MEDIA_LAYER_ZSTD;
    case LC_LAYER_NONE:
        return LC_MEDIA_LAYER_TAR;
    default:
        return NULL;
    }
}

int lc_layer_compression_of(const char *mt)
{
    if (mt == NULL)
        return -1;
    if (strcmp(mt, LC_MEDIA_LAYER_GZIP) == 0 ||
        strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.gzip") == 0)
        return LC_LAYER_GZIP;
    if (strcmp(mt, LC_MEDIA_LAYER_ZSTD) == 0)
        return LC_LAYER_ZSTD;
    if (strcmp(mt, LC_MEDIA_LAYER_TAR) == 0 ||
        strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar") == 0)
        return LC_LAYER_NONE;
    return -1;
}

static int push_ent(struct walk *w, char *name, char *src, const struct stat *st, int kind)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct ent *v = realloc(w->v, cap * sizeof(*v));
        if (v == NULL) {
            free(name);
            free(src);
            return -ENOMEM;
        }
        w->v = v;
        w->cap = cap;
    }
    struct ent *e = &w->v[w->n++];
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->src = src;
    e->st = *st;
    e->kind = kind;
    return 0;
}

static char *join_rel(const char *dir, const char *name)
{
    return dir[0] == '\0' ? strdup(name) : lc_fs_join(dir, name);
}

static int is_opaque(const char *full)
{
    char v[4];
    ssize_t n = lgetxattr(full, "trusted.overlay.opaque", v, sizeof(v));
    return n == 1 && v[0] == 'y';
}

/* Collects the entries below root/rel (rel "" = root). */
static int walk_dir(struct walk *w, const char *rel, lc_err *err)
{
    char *full = join_rel(w->root, rel);
    if (full == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    DIR *d = opendir(full);
    if (d == NULL) {
        int e = errno;
        int rc = lc_err_set(err, lc_code_from_errno(e), "open directory %s: %s", full, strerror(e));
        free(full);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "stat %s/%s: %s", full, de->d_name,
                            strerror(errno));
            break;
        }
        if (S_ISSOCK(st.st_mode))
            continue; /* sockets have no tar form */
        char *src = join_rel(rel, de->d_name);
        if (src == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        if (!w->no_whiteouts && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
            size_t len = strlen(de->d_name) + 5;
            char *wname = malloc(len);
            char *name = NULL;
            if (wname != NULL) {
                snprintf(wname, len, ".wh.%s", de->d_name);
                name = join_rel(rel, wname);
                free(wname);
            }
            if (name == NULL || push_ent(w, name, src, &st, K_WHITEOUT) < 0) {
                if (name == NULL)
                    free(src);
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                break;
            }
            continue;
        }
        char *name = strdup(src);
        if (name == NULL || push_ent(w, name, src, &st, K_NORMAL) < 0) {
            if (name == NULL)
                free(src);
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            /* src is owned by the entry list now; w->v may move, so copy. */
            char *sub = strdup(src);
            if (sub == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                break;
            }
            char *subfull = lc_fs_join(w->root, sub);
            if (!w->no_whiteouts && subfull != NULL && is_opaque(subfull)) {
                char *oname = lc_fs_join(sub, ".wh..wh..opq");
                if (oname == NULL || push_ent(w, oname, NULL, &st, K_OPAQUE) < 0)
                    rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            }
            free(subfull);
            if (rc == 0)
                rc = walk_dir(w, sub, err);
            free(sub);
            if (rc < 0)
                break;
        }
    }
    closedir(d);
    free(full);
    return rc;
}

static int cmp_ent(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

struct ino_ref {
    dev_t dev;
    ino_t ino;
    size_t idx;
};

static int cmp_ino(const void *a, const void *b)
{
    const struct ino_ref *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Hard links: the first path in sort order is written as the file, later
 * ones as links to it. */
static int link_hardlinks(struct walk *w)
{
    struct ino_ref *refs = malloc((w->n ? w->n : 1) * sizeof(*refs));
    if (refs == NULL)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct ent *e = &w->v[i];
        if (e->kind == K_NORMAL && !S_ISDIR(e->st.st_mode) && e->st.st_nlink > 1)
            refs[m++] = (struct ino_ref){e->st.st_dev, e->st.st_ino, i};
    }
    qsort(refs, m, sizeof(*refs), cmp_ino);
    for (size_t i = 1; i < m; i++) {
        size_t first = i - 1;
        while (i < m && refs[i].dev == refs[first].dev && refs[i].ino == refs[first].ino) {
            w->v[refs[i].idx].hardlink = w->v[refs[first].idx].name;
            i++;
        }
    }
    free(refs);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the entry's xattrs, sorted by name (listxattr order is fs-specific),
 * never trusted.* (overlay bookkeeping, not image content). */
static int add_xattrs(struct archive_entry *ae, const char *full)
{
    ssize_t n = llistxattr(full, NULL, 0);
    if (n <= 0)
        return 0;
    char *list = malloc((size_t)n);
    if (list == NULL)
        return -ENOMEM;
    n = llistxattr(full, list, (size_t)n);
    int rc = 0;
    char *names[256] = {0};
    size_t cnt = 0;
    for (ssize_t off = 0; n > 0 && off < n && cnt < 256; off += (ssize_t)strlen(list + off) + 1) {
        const char *nm = list + off;
        /* security.selinux is the host's label, not image content. */
        if ((strncmp(nm, "user.", 5) == 0 || strncmp(nm, "security.", 9) == 0) &&
            strcmp(nm, "security.selinux") != 0)
            names[cnt++] = list + off;
    }
    qsort(names, cnt, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i < cnt; i++) {
        char val[65536];
        ssize_t vl = lgetxattr(full, names[i], val, sizeof(val));
        if (vl >= 0)
            archive_entry_xattr_add_entry(ae, names[i], val, (size_t)vl);
    }
    free(list);
    return rc;
}

static la_ssize_t b_write_cb(struct archive *a, void *ud, const void *buf, size_t len)
{
    (void)a;
    struct writer *wr = ud;
    lc_hasher_update(wr->h_blob, buf, len);
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t r = write(wr->fd, p, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            wr->io_errno = errno;
            archive_set_error(a, errno, "write %s: %s", wr->path, strerror(errno));
            return -1;
        }
        p += r;
        left -= (size_t)r;
    }
    return (la_ssize_t)len;
}

static la_ssize_t a_write_cb(struct archive *a, void *ud, const void *buf, size_t len)
{
    struct writer *wr = ud;
    lc_hasher_update(wr->h_diff, buf, len);
    wr->tar_bytes += len;
    if (wr->o->progress != NULL)
        wr->o->progress(wr->o->progress_ctx, wr->tar_bytes, wr->file_bytes);
    if (wr->b == NULL)
        return b_write_cb(a, ud, buf, len);
    la_ssize_t r = archive_write_data(wr->b, buf, len);
    if (r < 0 || (size_t)r != len) {
        archive_set_error(a, EIO, "compress: %s", archive_error_string(wr->b));
        return -1;
    }
    return (la_ssize_t)len;
}

/* A data region of a sparse file. */
struct region {
    int64_t off, len;
};

struct regions {
    struct region *v;
    size_t n, cap;
};

static int region_add(struct regions *r, int64_t off, int64_t len)
{
    if (r->n > 0 && r->v[r->n - 1].off + r->v[r->n - 1].len == off) {
        r->v[r->n - 1].len += len;
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct region *v = realloc(r->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (struct region){off, len};
    return 0;
}

static int all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* The data regions of a file with holes, by content: maximal runs of
 * 4 KiB blocks (aligned to the file offset) that are not all zeros, so the
 * map does not depend on how a file system happened to allocate it. Returns
 * 1 with *r filled when the file has a hole, 0 when it has none (written
 * as a plain file), or -errno. */
#define SPARSE_BLOCK 4096
static int sparse_regions(int fd, int64_t size, struct regions *r)
{
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    if (hole < 0 || hole >= size)
        return 0; /* no hole, or SEEK_HOLE unsupported: a plain file */
    static __thread char blk[SPARSE_BLOCK];
    off_t pos = 0;
    while (pos < size) {
        off_t d = lseek(fd, pos, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            break; /* a hole up to the end */
        if (d < 0)
            return -errno;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            return -errno;
        if (h > size)
            h = size;
        for (off_t b = d - d % SPARSE_BLOCK; b < h; b += SPARSE_BLOCK) {
            size_t want = (size_t)(size - b < SPARSE_BLOCK ? size - b : SPARSE_BLOCK);
            ssize_t got = pread(fd, blk, want, b);
            if (got < 0)
                return -errno;
            if (!all_zero(blk, (size_t)got) && region_add(r, b, (int64_t)want) < 0)
                return -ENOMEM;
        }
        pos = h > d ? h : d + 1;
    }
    return 1;
}

/* Streams size bytes of the file; with regions (a sparse entry), the gaps
 * are fed as zeros, which the pax writer skips. */
static int write_data(struct archive *a, int fd, const char *full, int64_t size,
                      const struct regions *sp, lc_err *err)
{
    static __thread char buf[65536];
    static const char zeros[65536];
    int64_t pos = 0;
    size_t next = 0;
    int rc = 0;
    while (pos < size && rc == 0) {
        /* In a hole until the next region starts (or the end). */
        int64_t hole_end = size;
        if (sp != NULL && next < sp->n)
            hole_end = sp->v[next].off;
        int in_hole = sp != NULL && pos < hole_end;
        int64_t limit =
            in_hole ? hole_end : (sp != NULL ? sp->v[next].off + sp->v[next].len : size);
        size_t want = limit - pos < (int64_t)sizeof(buf) ? (size_t)(limit - pos) : sizeof(buf);
        const char *p = zeros;
        ssize_t r = (ssize_t)want;
        if (!in_hole) {
            r = pread(fd, buf, want, pos);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = lc_err_set(err, lc_code_from_errno(errno), "read %s: %s", full,
                                strerror(errno));
                break;
            }
            if (r == 0) { /* shrank while we read: pad so the header stays true */
                memset(buf, 0, want);
                r = (ssize_t)want;
            }
            p = buf;
        }
        if (archive_write_data(a, p, (size_t)r) != r) {
            rc = lc_err_set(err, LC_INTERNAL, "tar %s: %s", full, archive_error_string(a));
            break;
        }
        pos += r;
        if (sp != NULL && !in_hole && next < sp->n && pos >= sp->v[next].off + sp->v[next].len)
            next++;
    }
    return rc;
}

static int write_entry(struct archive *a, const char *root, const struct ent *e, int64_t epoch,
                       int xattrs, lc_err *err)
{
    struct archive_entry *ae = archive_entry_new();
    char *full = NULL;
    char *path = NULL;
    int rc = 0, fd = -1;
    struct regions sp = {0};
    int sparse = 0;
    if (ae == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int64_t size = 0;
    if (e->kind == K_WHITEOUT || e->kind == K_OPAQUE) {
        archive_entry_set_pathname(ae, e->name);
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, 0600);
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        archive_entry_set_size(ae, 0);
    } else {
        full = lc_fs_join(root, e->src);
        if (full == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        mode_t fmt = e->st.st_mode & S_IFMT;
        if (fmt == S_IFDIR) {
            size_t l = strlen(e->name);
            path = malloc(l + 2);
            if (path == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            memcpy(path, e->name, l);
            memcpy(path + l, "/", 2);
            archive_entry_set_pathname(ae, path);
        } else {
            archive_entry_set_pathname(ae, e->name);
        }
        archive_entry_set_perm(ae, e->st.st_mode & 07777);
        archive_entry_set_uid(ae, e->st.st_uid);
        archive_entry_set_gid(ae, e->st.st_gid);
        if (e->hardlink != NULL) {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e->hardlink);
            archive_entry_set_size(ae, 0);
        } else if (fmt == S_IFREG) {
            archive_entry_set_filetype(ae, AE_IFREG);
            size = e->st.st_size;
            archive_entry_set_size(ae, size);
            if (size > 0 && (fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                rc = lc_err_set(err, lc_code_from_errno(errno), "open %s: %s", full,
                                strerror(errno));
                goto out;
            }
            /* Fewer blocks than bytes: maybe holes, written as a sparse
             * entry (GNU 1.0 pax) so they cost nothing in the layer. */
            if (fd >= 0 && (int64_t)e->st.st_blocks * 512 < size &&
                (sparse = sparse_regions(fd, size, &sp)) < 0) {
                rc = lc_err_set(err, lc_code_from_errno(-sparse), "read %s: %s", full,
                                strerror(-sparse));
                goto out;
            }
            for (size_t i = 0; sparse && i < sp.n; i++)
                archive_entry_sparse_add_entry(ae, sp.v[i].off, sp.v[i].len);
            if (sparse && sp.n == 0) /* all holes: one empty region at the end */
                archive_entry_sparse_add_entry(ae, size, 0);
        } else if (fmt == S_IFDIR) {
            archive_entry_set_filetype(ae, AE_IFDIR);
        } else if (fmt == S_IFLNK) {
            char target[4096];
            ssize_t n = readlink(full, target, sizeof(target) - 1);
            if (n < 0) {
                rc = lc_err_set(err, lc_code_from_errno(errno), "readlink %s: %s", full,
                                strerror(errno));
                goto out;
            }
            target[n] = '\0';
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, target);
        } else if (fmt == S_IFCHR || fmt == S_IFBLK) {
            archive_entry_set_filetype(ae, fmt == S_IFCHR ? AE_IFCHR : AE_IFBLK);
            archive_entry_set_rdevmajor(ae, major(e->st.st_rdev));
            archive_entry_set_rdevminor(ae, minor(e->st.st_rdev));
        } else if (fmt == S_IFIFO) {
            archive_entry_set_filetype(ae, AE_IFIFO);
        }
        if (xattrs && add_xattrs(ae, full) < 0) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    archive_entry_set_mtime(ae, (time_t)epoch, 0);
    if (archive_write_header(a, ae) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "tar header %s: %s", e->name, archive_error_string(a));
        goto out;
    }
    if (size > 0)
        rc = write_data(a, fd, full, size, sparse ? &sp : NULL, err);
out:
    if (fd >= 0)
        close(fd);
    free(sp.v);
    free(path);
    free(full);
    archive_entry_free(ae);
    return rc;
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* Whether any name or symlink target is not ASCII: then the layer is
 * written with binary pax names (hdrcharset=BINARY: no charset conversion,
 * any byte string is a valid name). Only then, because libarchive marks
 * every entry of such an archive with that record. */
static int needs_binary_names(const struct walk *w, const char *root)
{
    for (size_t i = 0; i < w->n; i++) {
        const struct ent *e = &w->v[i];
        if (!is_ascii(e->name))
            return 1;
        if (e->kind != K_NORMAL || !S_ISLNK(e->st.st_mode))
            continue;
        char *full = lc_fs_join(root, e->src);
        char target[4096];
        ssize_t n = full ? readlink(full, target, sizeof(target) - 1) : -1;
        free(full);
        if (n > 0) {
            target[n] = '\0';
            if (!is_ascii(target))
                return 1;
        }
    }
    return 0;
}

static int open_compressor(struct writer *wr, const lc_layer_opts *o, lc_err *err)
{
    if (o->compression == LC_LAYER_NONE)
        return 0;
    struct archive *b = archive_write_new();
    if (b == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    wr->b = b;
    const char *fname = o->compression == LC_LAYER_ZSTD ? "zstd" : "gzip";
    int r = archive_write_set_format_raw(b);
    if (r == ARCHIVE_OK)
        r = o->compression == LC_LAYER_ZSTD ? archive_write_add_filter_zstd(b)
                                            : archive_write_add_filter_gzip(b);
    /* No mtime and no name in the gzip header: the bytes depend on content only. */
    if (r == ARCHIVE_OK && o->compression == LC_LAYER_GZIP)
        r = archive_write_set_filter_option(b, "gzip", "timestamp", NULL);
    if (r == ARCHIVE_OK && o->level > 0) {
        char lv[16];
        snprintf(lv, sizeof(lv), "%d", o->level);
        r = archive_write_set_filter_option(b, fname, "compression-level", lv);
    }
    if (r == ARCHIVE_OK)
        r = archive_write_set_bytes_in_last_block(b, 1);
    if (r == ARCHIVE_OK)
        r = archive_write_open2(b, wr, NULL, b_write_cb, NULL, NULL);
    if (r != ARCHIVE_OK)
        return lc_err_set(err, LC_INTERNAL, "%s compressor: %s", fname, archive_error_string(b));
    struct archive_entry *ae = archive_entry_new();
    if (ae == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    archive_entry_set_pathname(ae, "layer.tar");
    archive_entry_set_filetype(ae, AE_IFREG);
    r = archive_write_header(b, ae);
    archive_entry_free(ae);
    if (r != ARCHIVE_OK)
        return lc_err_set(err, LC_INTERNAL, "%s compressor: %s", fname, archive_error_string(b));
    return 0;
}

int lc_layer_write(const char *dir, const char *out_path, const lc_layer_opts *opts,
                   lc_layer_info *info, lc_err *err)
{
    lc_layer_opts defaults = {.compression = LC_LAYER_GZIP, .epoch = -1};
    const lc_layer_opts *o = opts ? opts : &defaults;
    const char *media = lc_layer_media_type(o->compression);
    if (media == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "unknown layer compression %d", o->compression);
    int64_t epoch = o->epoch >= 0 ? o->epoch : lc_layer_default_epoch();
    struct walk w = {.root = dir, .no_whiteouts = o->no_whiteouts};
    struct writer wr = {.fd = -1, .path = out_path, .o = o};
    struct archive *a = NULL;
    int rc = walk_dir(&w, "", err);
    if (rc < 0)
        goto out;
    if (w.n > 0)
        qsort(w.v, w.n, sizeof(w.v[0]), cmp_ent);
    for (size_t i = 0; i < w.n; i++)
        if (S_ISREG(w.v[i].st.st_mode))
            wr.file_bytes += (uint64_t)w.v[i].st.st_size;
    if (link_hardlinks(&w) < 0) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    wr.h_blob = lc_hasher_new();
    wr.h_diff = lc_hasher_new();
    if (wr.h_blob == NULL || wr.h_diff == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    wr.fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (wr.fd < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "create %s: %s", out_path, strerror(errno));
        goto out;
    }
    rc = open_compressor(&wr, o, err);
    if (rc < 0)
        goto out;
    a = archive_write_new();
    if (a == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* Names and link targets are byte strings: no charset conversion when
     * one is not ASCII (the POSIX locale cannot translate it). xattrs as
     * SCHILY.xattr records only, the form Go's archive/tar (umoci, buildah)
     * reads. */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        (needs_binary_names(&w, dir) &&
         archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK) ||
        archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_open2(a, &wr, NULL, a_write_cb, NULL, NULL) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "tar writer: %s", archive_error_string(a));
        goto out;
    }
    for (size_t i = 0; i < w.n; i++) {
        rc = write_entry(a, dir, &w.v[i], epoch, o->xattrs, err);
        if (rc < 0)
            goto out;
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        rc = lc_err_set(err, wr.io_errno ? lc_code_from_errno(wr.io_errno) : LC_INTERNAL,
                        "finish tar %s: %s", out_path, archive_error_string(a));
        goto out;
    }
    if (wr.b != NULL && archive_write_close(wr.b) != ARCHIVE_OK) {
        rc = lc_err_set(err, wr.io_errno ? lc_code_from_errno(wr.io_errno) : LC_INTERNAL,
                        "finish compression %s: %s", out_path, archive_error_string(wr.b));
        goto out;
    }
    if (close(wr.fd) < 0) {
        wr.fd = -1;
        rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", out_path, strerror(errno));
        goto out;
    }
    wr.fd = -1;
    if (info != NULL) {
        lc_hasher_final(wr.h_blob, &info->blob);
        lc_hasher_final(wr.h_diff, &info->diff_id);
        info->media_type = media;
        info->entries = (int64_t)w.n;
    }
out:
    if (a != NULL)
        archive_write_free(a);
    if (wr.b != NULL)
        archive_write_free(wr.b);
    if (wr.fd >= 0)
        close(wr.fd);
    if (rc < 0 && wr.h_blob != NULL)
        unlink(out_path);
    lc_hasher_free(&wr.h_blob);
    lc_hasher_free(&wr.h_diff);
    for (size_t i = 0; i < w.n; i++) {
        free(w.v[i].name);
        free(w.v[i].src);
    }
    free(w.v);
    return rc;
}
