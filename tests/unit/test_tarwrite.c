/* test_tarwrite.c - deterministic layer tars: order, normalization,
 * whiteouts, hard links, both digests, gzip/zstd headers, byte-string
 * names, sparse files, file capabilities. Needs root (mknod, trusted.* and
 * security.* xattrs, chown), as the build worker does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/tarwrite.h"
#include "build-worker/layer/untar.h"

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/lc-tarwrite.XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return lc_fs_rm_rf(tmp);
}

static void put(const char *root, const char *rel, const char *content, mode_t mode)
{
    char *p = lc_fs_join(root, rel);
    assert_int_equal(lc_fs_write_file(p, content, strlen(content), NULL), 0);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void mkd(const char *root, const char *rel)
{
    char *p = lc_fs_join(root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

/* A tree like an overlay upper dir after a RUN step. `variant` changes
 * creation order and mtimes only, which must not change the layer. */
static void make_tree(const char *root, int variant)
{
    assert_int_equal(lc_fs_mkdir_p(root), 0);
    if (variant) {
        put(root, "zeta", "last\n", 0600);
        mkd(root, "dir");
        put(root, "dir/b", "bee\n", 0644);
        put(root, "dir/a", "aye\n", 0755);
    } else {
        mkd(root, "dir");
        put(root, "dir/a", "aye\n", 0755);
        put(root, "dir/b", "bee\n", 0644);
        put(root, "zeta", "last\n", 0600);
    }
    char *p = lc_fs_join(root, "dir/a");
    assert_int_equal(chown(p, 1234, 5678), 0);
    char *q = lc_fs_join(root, "hardlink-to-a");
    assert_int_equal(link(p, q), 0);
    free(q);
    free(p);
    p = lc_fs_join(root, "sym");
    assert_int_equal(symlink("/dir/b", p), 0);
    free(p);
    p = lc_fs_join(root, "gone"); /* overlay whiteout */
    assert_int_equal(mknod(p, S_IFCHR | 0, makedev(0, 0)), 0);
    free(p);
    mkd(root, "opq");
    p = lc_fs_join(root, "opq");
    assert_int_equal(setxattr(p, "trusted.overlay.opaque", "y", 1, 0), 0);
    free(p);
    put(root, "opq/new", "n\n", 0644);
    p = lc_fs_join(root, "dir/b");
    assert_int_equal(setxattr(p, "user.note", "hello", 5, 0), 0);
    free(p);
    p = lc_fs_join(root, "fifo");
    assert_int_equal(mkfifo(p, 0644), 0);
    free(p);
    if (variant) { /* different times everywhere */
        struct timespec ts[2] = {{12345, 678}, {99999, 1}};
        const char *names[] = {"dir", "dir/a", "dir/b", "zeta", "opq", "opq/new"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            p = lc_fs_join(root, names[i]);
            assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
            free(p);
        }
    }
}

struct listed {
    char name[256];
    int type;
    int mode;
    int64_t uid, gid, size;
    time_t mtime;
    int has_atime, has_ctime;
    char link[256];
    char hardlink[256];
    int has_uname;
    int xattrs;
};

static size_t list_tar(const char *path, struct listed *out, size_t max)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
    struct archive_entry *e;
    size_t n = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_true(n < max);
        struct listed *l = &out[n++];
        memset(l, 0, sizeof(*l));
        snprintf(l->name, sizeof(l->name), "%s", archive_entry_pathname(e));
        l->type = (int)archive_entry_filetype(e);
        l->mode = (int)archive_entry_perm(e);
        l->uid = archive_entry_uid(e);
        l->gid = archive_entry_gid(e);
        l->size = archive_entry_size(e);
        l->mtime = archive_entry_mtime(e);
        l->has_atime = archive_entry_atime_is_set(e);
        l->has_ctime = archive_entry_ctime_is_set(e);
        const char *un = archive_entry_uname(e), *gn = archive_entry_gname(e);
        l->has_uname = (un != NULL && un[0] != '\0') || (gn != NULL && gn[0] != '\0');
        l->xattrs = archive_entry_xattr_count(e);
        if (archive_entry_symlink(e))
            snprintf(l->link, sizeof(l->link), "%s", archive_entry_symlink(e));
        if (archive_entry_hardlink(e))
            snprintf(l->hardlink, sizeof(l->hardlink), "%s", archive_entry_hardlink(e));
    }
    archive_read_free(a);
    return n;
}

static const struct listed *find(const struct listed *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static void test_entries_sorted_normalized_whiteouts(void **state)
{
    (void)state;
    char root[300], out[300];
    snprintf(root, sizeof(root), "%s/t", tmp);
    snprintf(out, sizeof(out), "%s/layer.tar.gz", tmp);
    make_tree(root, 1);
    lc_layer_opts o = {.compression = LC_LAYER_GZIP, .epoch = 1700000000};
    lc_layer_info info;
    lc_err err = {0};
    assert_int_equal(lc_layer_write(root, out, &o, &info, &err), 0);
    assert_string_equal(info.media_type, LC_MEDIA_LAYER_GZIP);

    struct listed v[64];
    size_t n = list_tar(out, v, 64);
    assert_int_equal((int64_t)n, info.entries);
    for (size_t i = 1; i < n; i++) /* bytewise order */
        assert_true(strcmp(v[i - 1].name, v[i].name) < 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].mtime, 1700000000);
        assert_false(v[i].has_atime);
        assert_false(v[i].has_ctime);
        assert_false(v[i].has_uname);
        assert_int_equal(v[i].xattrs, 0); /* not asked for */
        assert_null(strstr(v[i].name, "PaxHeader"));
    }
    const struct listed *e = find(v, n, "dir/a");
    assert_non_null(e);
    assert_int_equal(e->uid, 1234);
    assert_int_equal(e->gid, 5678);
    assert_int_equal(e->mode, 0755);
    assert_int_equal(e->size, 4);
    e = find(v, n, "hardlink-to-a");
    assert_non_null(e);
    assert_string_equal(e->hardlink, "dir/a"); /* first in sort order is the file */
    e = find(v, n, "zeta");
    assert_non_null(e);
    assert_int_equal(e->mode, 0600);
    e = find(v, n, "sym");
    assert_non_null(e);
    assert_int_equal(e->type, AE_IFLNK);
    assert_string_equal(e->link, "/dir/b");
    e = find(v, n, ".wh.gone");
    assert_non_null(e);
    assert_int_equal(e->type, AE_IFREG);
    assert_int_equal(e->size, 0);
    assert_null(find(v, n, "gone"));
    assert_non_null(find(v, n, "opq/"));
    assert_non_null(find(v, n, "opq/.wh..wh..opq"));
    assert_non_null(find(v, n, "opq/new"));
    e = find(v, n, "fifo");
    assert_non_null(e);
    assert_int_equal(e->type, AE_IFIFO);
    assert_non_null(find(v, n, "dir/"));
}

static void file_digest(const char *path, lc_digest *d)
{
    char *buf;
    size_t len;
    assert_int_equal(lc_fs_read_file(path, 1 << 26, &buf, &len, NULL), 0);
    lc_digest_of(buf, len, d);
    free(buf);
}

/* Decompresses with libarchive's raw reader and digests the tar. */
static void tar_digest(const char *path, lc_digest *d)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
    struct archive_entry *e;
    assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
    lc_hasher *h = lc_hasher_new();
    char buf[8192];
    la_ssize_t r;
    while ((r = archive_read_data(a, buf, sizeof(buf))) > 0)
        lc_hasher_update(h, buf, (size_t)r);
    assert_true(r == 0);
    lc_hasher_final(h, d);
    lc_hasher_free(&h);
    archive_read_free(a);
}

static void test_deterministic_and_digests(void **state)
{
    (void)state;
    char r1[300], r2[300], o1[300], o2[300], oz[300];
    snprintf(r1, sizeof(r1), "%s/one", tmp);
    snprintf(r2, sizeof(r2), "%s/two", tmp);
    snprintf(o1, sizeof(o1), "%s/one.tgz", tmp);
    snprintf(o2, sizeof(o2), "%s/two.tgz", tmp);
    snprintf(oz, sizeof(oz), "%s/one.tzst", tmp);
    make_tree(r1, 0);
    make_tree(r2, 1);
    lc_layer_info i1, i2, iz;
    lc_err err = {0};
    setenv("SOURCE_DATE_EPOCH", "86400", 1);
    assert_int_equal(lc_layer_write(r1, o1, NULL, &i1, &err), 0);
    assert_int_equal(lc_layer_write(r2, o2, NULL, &i2, &err), 0);
    unsetenv("SOURCE_DATE_EPOCH");
    assert_true(lc_digest_equal(&i1.blob, &i2.blob));
    assert_true(lc_digest_equal(&i1.diff_id, &i2.diff_id));

    lc_digest d;
    file_digest(o1, &d);
    assert_true(lc_digest_equal(&d, &i1.blob));
    tar_digest(o1, &d);
    assert_true(lc_digest_equal(&d, &i1.diff_id));
    assert_int_equal(i1.diff_id.size % 512, 0);

    struct listed v[64];
    size_t n = list_tar(o1, v, 64);
    assert_true(n > 0);
    assert_int_equal(v[0].mtime, 86400); /* from SOURCE_DATE_EPOCH */

    /* gzip header: magic, deflate, no FNAME flag, MTIME zero. */
    unsigned char hdr[10];
    int fd = open(o1, O_RDONLY);
    assert_int_equal(read(fd, hdr, 10), 10);
    close(fd);
    assert_int_equal(hdr[0], 0x1f);
    assert_int_equal(hdr[1], 0x8b);
    assert_int_equal(hdr[3] & 0x08, 0);
    assert_int_equal(hdr[4] | hdr[5] | hdr[6] | hdr[7], 0);

    /* zstd: same tar inside, different blob. */
    lc_layer_opts oz_opts = {.compression = LC_LAYER_ZSTD, .epoch = 86400};
    assert_int_equal(lc_layer_write(r1, oz, &oz_opts, &iz, &err), 0);
    assert_string_equal(iz.media_type, LC_MEDIA_LAYER_ZSTD);
    assert_true(lc_digest_equal(&iz.diff_id, &i1.diff_id));
    assert_false(lc_digest_equal(&iz.blob, &i1.blob));
    fd = open(oz, O_RDONLY);
    assert_int_equal(read(fd, hdr, 4), 4);
    close(fd);
    assert_int_equal(hdr[0], 0x28);
    assert_int_equal(hdr[1], 0xb5);
    assert_int_equal(hdr[2], 0x2f);
    assert_int_equal(hdr[3], 0xfd);

    /* A content change changes both digests. */
    put(r2, "zeta", "LAST\n", 0600);
    assert_int_equal(lc_layer_write(r2, o2, &(lc_layer_opts){.epoch = 86400}, &i2, &err), 0);
    assert_false(lc_digest_equal(&i1.diff_id, &i2.diff_id));
    assert_false(lc_digest_equal(&i1.blob, &i2.blob));
}

static void test_xattrs_when_asked(void **state)
{
    (void)state;
    char root[300], out[300];
    snprintf(root, sizeof(root), "%s/x", tmp);
    snprintf(out, sizeof(out), "%s/x.tar", tmp);
    make_tree(root, 0);
    lc_layer_opts o = {.compression = LC_LAYER_NONE, .xattrs = 1};
    lc_layer_info info;
    assert_int_equal(lc_layer_write(root, out, &o, &info, NULL), 0);
    assert_true(lc_digest_equal(&info.blob, &info.diff_id));
    struct listed v[64];
    size_t n = list_tar(out, v, 64);
    const struct listed *e = find(v, n, "dir/b");
    assert_non_null(e);
    assert_true(e->xattrs >= 1); /* libarchive reads both its own and the SCHILY record */
    e = find(v, n, "opq/");      /* trusted.overlay.opaque is never written */
    assert_non_null(e);
    assert_int_equal(e->xattrs, 0);
}

/* The raw bytes of a file, for looking at pax records. */
static int file_has(const char *path, const char *needle)
{
    char *buf;
    size_t len;
    assert_int_equal(lc_fs_read_file(path, 1 << 26, &buf, &len, NULL), 0);
    int found = memmem(buf, len, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* Any byte string is a name or a link target (ca-certificates installs
 * "NetLock_Arany_=Class_Gold=_F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.pem" links),
 * also bytes that are not UTF-8; an all-ASCII layer has no charset record. */
static void test_byte_string_names(void **state)
{
    (void)state;
    char root[300], out[300], ascii[300], aout[300];
    snprintf(root, sizeof(root), "%s/names", tmp);
    snprintf(out, sizeof(out), "%s/names.tar", tmp);
    snprintf(ascii, sizeof(ascii), "%s/ascii", tmp);
    snprintf(aout, sizeof(aout), "%s/ascii.tar", tmp);
    assert_int_equal(lc_fs_mkdir_p(root), 0);
    assert_int_equal(lc_fs_mkdir_p(ascii), 0);
    put(ascii, "plain", "p\n", 0644);
    const char *utf8 = "F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.pem";
    const char *latin1 = "caf\xe9";
    put(root, utf8, "cert\n", 0644);
    put(root, latin1, "x\n", 0644);
    char *p = lc_fs_join(root, "to-utf8");
    assert_int_equal(symlink(utf8, p), 0);
    free(p);
    p = lc_fs_join(root, "to-latin1");
    assert_int_equal(symlink("/x/\xe9t\xe9", p), 0);
    free(p);
    lc_layer_opts o = {.compression = LC_LAYER_NONE};
    lc_layer_info info;
    lc_err err = {0};
    assert_int_equal(lc_layer_write(root, out, &o, &info, &err), 0);
    struct listed v[16];
    size_t n = list_tar(out, v, 16);
    assert_int_equal(n, 4);
    assert_non_null(find(v, n, utf8));
    assert_non_null(find(v, n, latin1));
    assert_string_equal(find(v, n, "to-utf8")->link, utf8);
    assert_string_equal(find(v, n, "to-latin1")->link, "/x/\xe9t\xe9");
    assert_true(file_has(out, "hdrcharset=BINARY"));
    assert_int_equal(lc_layer_write(ascii, aout, &o, &info, &err), 0);
    assert_false(file_has(aout, "hdrcharset"));
}

/* A file with holes is a GNU 1.0 sparse entry: the layer does not carry
 * the holes, and extraction gives back the same bytes. */
static void test_sparse_file(void **state)
{
    (void)state;
    char root[300], out[300], back[300];
    snprintf(root, sizeof(root), "%s/sparse", tmp);
    snprintf(out, sizeof(out), "%s/sparse.tar", tmp);
    snprintf(back, sizeof(back), "%s/back", tmp);
    assert_int_equal(lc_fs_mkdir_p(root), 0);
    assert_int_equal(lc_fs_mkdir_p(back), 0);
    char *p = lc_fs_join(root, "disk.img");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 256 << 20), 0);
    assert_int_equal(pwrite(fd, "middle", 6, 100 << 20), 6);
    assert_int_equal(pwrite(fd, "end", 3, (256 << 20) - 3), 3);
    close(fd);
    free(p);
    p = lc_fs_join(root, "empty.img"); /* all hole */
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 8 << 20), 0);
    close(fd);
    free(p);
    lc_layer_opts o = {.compression = LC_LAYER_NONE};
    lc_layer_info info;
    lc_err err = {0};
    assert_int_equal(lc_layer_write(root, out, &o, &info, &err), 0);
    assert_true(info.diff_id.size < 64 * 1024); /* not 264 MiB of zeros */
    struct listed v[8];
    size_t n = list_tar(out, v, 8);
    assert_int_equal(n, 2);
    assert_int_equal(find(v, n, "disk.img")->size, 256 << 20);
    assert_int_equal(find(v, n, "empty.img")->size, 8 << 20);
    /* The same tree written again: the same bytes (the map is by content). */
    lc_layer_info again;
    char out2[300];
    snprintf(out2, sizeof(out2), "%s/sparse2.tar", tmp);
    assert_int_equal(lc_layer_write(root, out2, &o, &again, &err), 0);
    assert_true(lc_digest_equal(&info.diff_id, &again.diff_id));

    /* Back through the extractor: same size, same bytes, still sparse. */
    lc_untar_opts uo = {.mode = LC_UNTAR_PLAIN};
    assert_int_equal(lc_untar_file(out, back, &uo, NULL, &err), 0);
    char *q = lc_fs_join(back, "disk.img");
    struct stat st;
    assert_int_equal(stat(q, &st), 0);
    assert_int_equal(st.st_size, 256 << 20);
    assert_true(st.st_blocks * 512 < (4 << 20));
    char buf[8];
    fd = open(q, O_RDONLY);
    assert_int_equal(pread(fd, buf, 6, 100 << 20), 6);
    assert_memory_equal(buf, "middle", 6);
    assert_int_equal(pread(fd, buf, 3, (256 << 20) - 3), 3);
    assert_memory_equal(buf, "end", 3);
    assert_int_equal(pread(fd, buf, 4, 4096), 4);
    assert_memory_equal(buf, "\0\0\0\0", 4);
    close(fd);
    free(q);
    q = lc_fs_join(back, "empty.img");
    assert_int_equal(stat(q, &st), 0);
    assert_int_equal(st.st_size, 8 << 20);
    free(q);
}

/* File capabilities travel (setcap'd binaries like ping), as SCHILY.xattr
 * records only (what Go's archive/tar reads). */
static void test_capability_xattr(void **state)
{
    (void)state;
    char root[300], out[300], back[300];
    snprintf(root, sizeof(root), "%s/caps", tmp);
    snprintf(out, sizeof(out), "%s/caps.tar", tmp);
    snprintf(back, sizeof(back), "%s/caps-back", tmp);
    assert_int_equal(lc_fs_mkdir_p(root), 0);
    assert_int_equal(lc_fs_mkdir_p(back), 0);
    put(root, "ping", "ELF\n", 0755);
    char *p = lc_fs_join(root, "ping");
    /* VFS_CAP_REVISION_2, cap_net_raw (bit 13) permitted and effective. */
    static const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20};
    assert_int_equal(setxattr(p, "security.capability", cap, sizeof(cap), 0), 0);
    free(p);
    lc_layer_opts o = {.compression = LC_LAYER_NONE, .xattrs = 1};
    lc_err err = {0};
    assert_int_equal(lc_layer_write(root, out, &o, NULL, &err), 0);
    assert_true(file_has(out, "SCHILY.xattr.security.capability"));
    assert_false(file_has(out, "LIBARCHIVE.xattr"));
    lc_untar_opts uo = {.mode = LC_UNTAR_OVERLAY, .xattrs = 1};
    assert_int_equal(lc_untar_file(out, back, &uo, NULL, &err), 0);
    p = lc_fs_join(back, "ping");
    unsigned char got[32];
    assert_int_equal(getxattr(p, "security.capability", got, sizeof(got)), (ssize_t)sizeof(cap));
    assert_memory_equal(got, cap, sizeof(cap));
    free(p);
}

static void test_errors(void **state)
{
    (void)state;
    lc_err err = {0};
    char out[300];
    snprintf(out, sizeof(out), "%s/nope.tar", tmp);
    assert_int_equal(lc_layer_write("/nonexistent/dir", out, NULL, NULL, &err), -LC_NOT_FOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(lc_layer_write(tmp, out, &(lc_layer_opts){.compression = 9}, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_layer_compression_of(LC_MEDIA_LAYER_ZSTD), LC_LAYER_ZSTD);
    assert_int_equal(lc_layer_compression_of("application/vnd.docker.image.rootfs.diff.tar.gzip"),
                     LC_LAYER_GZIP);
    assert_int_equal(lc_layer_compression_of("text/plain"), -1);
}

static void test_empty_dir(void **state)
{
    (void)state;
    char root[300], out[300];
    snprintf(root, sizeof(root), "%s/empty", tmp);
    snprintf(out, sizeof(out), "%s/empty.tgz", tmp);
    assert_int_equal(mkdir(root, 0755), 0);
    lc_layer_info info;
    assert_int_equal(lc_layer_write(root, out, NULL, &info, NULL), 0);
    assert_int_equal(info.entries, 0);
    assert_int_equal(info.diff_id.size, 10240); /* one tar record of zeros */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_entries_sorted_normalized_whiteouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic_and_digests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xattrs_when_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_string_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capability_xattr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
