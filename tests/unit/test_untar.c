/* test_untar.c - safe layer extraction: round trip with tarwrite, the three
 * whiteout modes, digest verification, and crafted hostile tars (made here
 * with libarchive) that must not write anything outside the target. */
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
#include <dirent.h>
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
    snprintf(tmp, sizeof(tmp), "/tmp/lc-untar.XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return lc_fs_rm_rf(tmp);
}

static char *path_of(const char *rel)
{
    char *p = lc_fs_join(tmp, rel);
    assert_non_null(p);
    return p;
}

static void put(const char *rel, const char *content)
{
    char *p = path_of(rel);
    assert_int_equal(lc_fs_write_file(p, content, strlen(content), NULL), 0);
    free(p);
}

static void mkd(const char *rel)
{
    char *p = path_of(rel);
    assert_int_equal(lc_fs_mkdir_p(p), 0);
    free(p);
}

static int exists(const char *rel)
{
    struct stat st;
    char *p = path_of(rel);
    int r = lstat(p, &st) == 0;
    free(p);
    return r;
}

static char *slurp(const char *rel)
{
    char *p = path_of(rel), *buf = NULL;
    size_t len;
    if (lc_fs_read_file(p, 1 << 20, &buf, &len, NULL) < 0)
        buf = NULL;
    free(p);
    return buf;
}

/* ---- crafted tars ---- */
struct craft {
    const char *name;
    int type;         /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, or 'h' for a hard link */
    const char *data; /* file content, or link target */
};

static void write_tar(const char *rel, const struct craft *c, size_t n, int gzip)
{
    char *p = path_of(rel);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip)
        archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, p), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, c[i].name);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1000, 0);
        if (c[i].type == 'h') {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, c[i].data);
        } else {
            archive_entry_set_filetype(e, (unsigned)c[i].type);
            if (c[i].type == AE_IFLNK)
                archive_entry_set_symlink(e, c[i].data);
            if (c[i].type == AE_IFDIR)
                archive_entry_set_perm(e, 0755);
            if (c[i].type == AE_IFCHR) {
                archive_entry_set_rdevmajor(e, 1);
                archive_entry_set_rdevminor(e, 3);
            }
            if (c[i].type == AE_IFREG)
                archive_entry_set_size(e, (la_int64_t)strlen(c[i].data));
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (c[i].type == AE_IFREG)
            archive_write_data(a, c[i].data, strlen(c[i].data));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    free(p);
}

/* Everything in tmp/outside is ours; nothing else may appear beside dest. */
static void assert_nothing_outside(void)
{
    DIR *d = opendir(tmp);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, "dest") == 0 ||
            strcmp(n, "outside") == 0 || strstr(n, ".tar") != NULL)
            continue;
        fail_msg("unexpected %s/%s", tmp, n);
    }
    closedir(d);
    d = opendir(tmp);
    closedir(d);
    char *o = path_of("outside");
    d = opendir(o);
    assert_non_null(d);
    int count = 0;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            strcmp(de->d_name, "victim") != 0)
            count++;
    closedir(d);
    free(o);
    assert_int_equal(count, 0);
    char *v = slurp("outside/victim");
    assert_non_null(v);
    assert_string_equal(v, "precious\n"); /* not overwritten through a link */
    free(v);
}

static int extract(const char *tarrel, const lc_untar_opts *o, lc_untar_result *res, lc_err *err)
{
    char *t = path_of(tarrel), *d = path_of("dest");
    int rc = lc_untar_file(t, d, o, res, err);
    free(t);
    free(d);
    return rc;
}

static void hostile_case(const struct craft *c, size_t n, const char *expect_in_msg)
{
    mkd("dest");
    mkd("outside");
    put("outside/victim", "precious\n");
    write_tar("h.tar", c, n, 1);
    lc_err err = {0};
    lc_untar_opts strict = {.mode = LC_UNTAR_APPLY};
    int rc = extract("h.tar", &strict, NULL, &err);
    assert_int_equal(rc, -LC_PERMISSION_DENIED);
    if (expect_in_msg != NULL && strstr(err.msg, expect_in_msg) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, expect_in_msg);
    assert_nothing_outside();

    /* Skipping mode extracts the rest and counts the refusals. */
    char *d = path_of("dest");
    assert_int_equal(lc_fs_rm_rf(d), 0);
    free(d);
    mkd("dest");
    lc_untar_opts skip = {.mode = LC_UNTAR_APPLY, .skip_unsafe = 1};
    lc_untar_result res;
    assert_int_equal(extract("h.tar", &skip, &res, &err), 0);
    assert_true(res.unsafe >= 1);
    assert_true(exists("dest/ok"));
    assert_nothing_outside();
}

static void test_hostile_dotdot(void **state)
{
    (void)state;
    const struct craft c[] = {{"ok", AE_IFREG, "fine\n"},
                              {"../escape", AE_IFREG, "bad\n"},
                              {"a/../../outside/x", AE_IFREG, "bad\n"}};
    hostile_case(c, 3, "../escape");
}

static void test_hostile_absolute(void **state)
{
    (void)state;
    char abs[300];
    snprintf(abs, sizeof(abs), "%s/outside/abs", tmp);
    const struct craft c[] = {{"ok", AE_IFREG, "fine\n"}, {abs, AE_IFREG, "bad\n"}};
    hostile_case(c, 2, "absolute");
    assert_false(exists("outside/abs"));
    assert_false(exists("dest/outside/abs") && 0);
}

static void test_hostile_symlink_escape(void **state)
{
    (void)state;
    char target[300];
    snprintf(target, sizeof(target), "%s/outside", tmp);
    const struct craft c[] = {{"ok", AE_IFREG, "fine\n"},
                              {"link", AE_IFLNK, target},
                              {"link/file", AE_IFREG, "bad\n"},
                              {"link/victim", AE_IFREG, "overwritten\n"}};
    hostile_case(c, 4, "symlink");
    assert_true(exists("dest/link")); /* the symlink itself is fine to have */
}

static void test_hostile_relative_symlink_escape(void **state)
{
    (void)state;
    const struct craft c[] = {{"ok", AE_IFREG, "fine\n"},
                              {"up", AE_IFLNK, "../outside"},
                              {"up/victim", AE_IFREG, "overwritten\n"}};
    hostile_case(c, 3, NULL);
}

static void test_hostile_hardlink_escape(void **state)
{
    (void)state;
    const struct craft c[] = {
        {"ok", AE_IFREG, "fine\n"}, {"hl", 'h', "../../x"}, {"hl2", 'h', "../outside/victim"}};
    hostile_case(c, 3, "hard link");
}

static void test_hostile_hardlink_via_symlink(void **state)
{
    (void)state;
    char target[300];
    snprintf(target, sizeof(target), "%s/outside/victim", tmp);
    /* A symlink inside pointing out, then a hard link to that symlink's
     * name: writing through the link would reach the victim. */
    const struct craft c[] = {{"ok", AE_IFREG, "fine\n"},
                              {"s", AE_IFLNK, target},
                              {"hl", 'h', "s"},
                              {"hl", AE_IFREG, "overwritten\n"}};
    hostile_case(c, 4, "hard link");
}

static void test_devices_skipped_unless_allowed(void **state)
{
    (void)state;
    mkd("dest");
    const struct craft c[] = {{"ok", AE_IFREG, "fine\n"}, {"null", AE_IFCHR, ""}};
    write_tar("d.tar", c, 2, 0);
    lc_untar_result res;
    assert_int_equal(extract("d.tar", NULL, &res, NULL), 0);
    assert_int_equal(res.skipped, 1);
    assert_false(exists("dest/null"));
    lc_untar_opts o = {.allow_devices = 1};
    assert_int_equal(extract("d.tar", &o, &res, NULL), 0);
    struct stat st;
    char *p = path_of("dest/null");
    assert_int_equal(lstat(p, &st), 0);
    free(p);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(major(st.st_rdev), 1);
}

/* ---- round trip and whiteout modes ---- */
static void make_layer(lc_layer_info *info)
{
    mkd("src/dir");
    put("src/dir/a", "aye\n");
    put("src/top", "top\n");
    mkd("src/opq");
    put("src/opq/new", "new\n");
    char *p = path_of("src/dir/a");
    assert_int_equal(chown(p, 1000, 2000), 0);
    assert_int_equal(chmod(p, 04751), 0);
    char *q = path_of("src/hl");
    assert_int_equal(link(p, q), 0);
    free(q);
    free(p);
    p = path_of("src/sym");
    assert_int_equal(symlink("/etc/passwd", p), 0); /* absolute targets are just values */
    free(p);
    p = path_of("src/gone");
    assert_int_equal(mknod(p, S_IFCHR, makedev(0, 0)), 0);
    free(p);
    p = path_of("src/opq");
    assert_int_equal(setxattr(p, "trusted.overlay.opaque", "y", 1, 0), 0);
    free(p);
    char *src = path_of("src"), *out = path_of("layer.tar.gz");
    assert_int_equal(lc_layer_write(src, out, NULL, info, NULL), 0);
    free(src);
    free(out);
}

static void test_roundtrip_apply_mode(void **state)
{
    (void)state;
    lc_layer_info info;
    make_layer(&info);
    /* dest plays the parent's flattened tree. */
    mkd("dest/opq/sub");
    put("dest/opq/old", "old\n");
    put("dest/opq/sub/older", "older\n");
    put("dest/gone", "to be deleted\n");
    put("dest/keep", "kept\n");
    mkd("dest/top"); /* a directory replaced by this layer's file */
    put("dest/top/inner", "x\n");

    lc_untar_opts o = {
        .mode = LC_UNTAR_APPLY, .expect_blob = &info.blob, .expect_diff_id = &info.diff_id};
    lc_untar_result res;
    lc_err err = {0};
    assert_int_equal(extract("layer.tar.gz", &o, &res, &err), 0);
    assert_true(lc_digest_equal(&res.blob, &info.blob));
    assert_true(lc_digest_equal(&res.diff_id, &info.diff_id));
    assert_false(exists("dest/gone"));
    assert_false(exists("dest/.wh.gone"));
    assert_false(exists("dest/opq/old"));
    assert_false(exists("dest/opq/sub"));
    assert_false(exists("dest/opq/.wh..wh..opq"));
    char *s = slurp("dest/opq/new");
    assert_string_equal(s, "new\n"); /* this layer's own file survives its opaque marker */
    free(s);
    s = slurp("dest/keep");
    assert_string_equal(s, "kept\n");
    free(s);
    s = slurp("dest/top");
    assert_string_equal(s, "top\n");
    free(s);

    struct stat a, h;
    char *pa = path_of("dest/dir/a"), *ph = path_of("dest/hl"), *ps = path_of("dest/sym");
    assert_int_equal(lstat(pa, &a), 0);
    assert_int_equal(lstat(ph, &h), 0);
    assert_int_equal(a.st_ino, h.st_ino);
    assert_int_equal(a.st_uid, 1000);
    assert_int_equal(a.st_gid, 2000);
    assert_int_equal(a.st_mode & 07777, 04751);
    char lnk[64] = {0};
    assert_int_equal(readlink(ps, lnk, sizeof(lnk) - 1), 11);
    assert_string_equal(lnk, "/etc/passwd");
    free(pa);
    free(ph);
    free(ps);
}

static void test_overlay_mode(void **state)
{
    (void)state;
    lc_layer_info info;
    make_layer(&info);
    mkd("dest");
    lc_untar_opts o = {.mode = LC_UNTAR_OVERLAY};
    assert_int_equal(extract("layer.tar.gz", &o, NULL, NULL), 0);
    struct stat st;
    char *p = path_of("dest/gone");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
    free(p);
    p = path_of("dest/opq");
    char v[4] = {0};
    assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
    assert_int_equal(v[0], 'y');
    free(p);
    assert_false(exists("dest/opq/.wh..wh..opq"));
    assert_true(exists("dest/opq/new"));
}

static void test_plain_mode_and_owner(void **state)
{
    (void)state;
    mkd("dest");
    const struct craft c[] = {{".wh.file", AE_IFREG, "just a name\n"}, {"d/f", AE_IFREG, "f\n"}};
    write_tar("p.tar", c, 2, 1);
    lc_untar_opts o = {.mode = LC_UNTAR_PLAIN, .force_owner = 1, .uid = 42, .gid = 43};
    assert_int_equal(extract("p.tar", &o, NULL, NULL), 0);
    assert_true(exists("dest/.wh.file"));
    struct stat st;
    char *p = path_of("dest/d/f");
    assert_int_equal(lstat(p, &st), 0);
    free(p);
    assert_int_equal(st.st_uid, 42);
    assert_int_equal(st.st_gid, 43);
}

static void test_digest_mismatch(void **state)
{
    (void)state;
    lc_layer_info info;
    make_layer(&info);
    mkd("dest");
    lc_digest wrong = info.blob;
    wrong.hash[0] ^= 1;
    lc_untar_opts o = {.mode = LC_UNTAR_OVERLAY, .expect_blob = &wrong};
    lc_err err = {0};
    assert_int_equal(extract("layer.tar.gz", &o, NULL, &err), -LC_DATA_LOSS);
    assert_non_null(strstr(err.msg, "mismatch"));
    lc_digest wrong_diff = info.diff_id;
    wrong_diff.hash[5] ^= 1;
    lc_untar_opts o2 = {.mode = LC_UNTAR_OVERLAY, .expect_diff_id = &wrong_diff};
    assert_int_equal(extract("layer.tar.gz", &o2, NULL, &err), -LC_DATA_LOSS);
    assert_non_null(strstr(err.msg, "diff_id"));

    /* Garbage is an error, not a crash. */
    put("junk.tar", "this is not a tar file at all, not even close...........");
    int rc = extract("junk.tar", NULL, NULL, &err);
    assert_true(rc < 0);
}

/* ---- a tar as Go's archive/tar writes it (docker, buildah, umoci) ---- */

/* One 512-byte ustar header block. */
static void ustar_header(unsigned char *b, const char *name, char type, size_t size,
                         const char *link)
{
    memset(b, 0, 512);
    snprintf((char *)b, 100, "%s", name);
    snprintf((char *)b + 100, 8, "%07o", 0644);
    snprintf((char *)b + 108, 8, "%07o", 0);
    snprintf((char *)b + 116, 8, "%07o", 0);
    snprintf((char *)b + 124, 12, "%011zo", size);
    snprintf((char *)b + 136, 12, "%011o", 0);
    b[156] = (unsigned char)type;
    if (link != NULL)
        snprintf((char *)b + 157, 100, "%s", link);
    memcpy(b + 257, "ustar\0" "00", 8);
    memset(b + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += b[i];
    snprintf((char *)b + 148, 8, "%06o", sum);
}

/* A pax record "LEN key=value\n" (LEN counts itself). */
static size_t pax_record(char *out, const char *key, const char *value)
{
    size_t body = strlen(key) + strlen(value) + 3; /* ' ' '=' '\n' */
    size_t len = body + 1;
    while (snprintf(NULL, 0, "%zu", len) + body != len)
        len++;
    return (size_t)sprintf(out, "%zu %s=%s\n", len, key, value);
}

/* A file named name and a symlink to target, each name in a pax "path" /
 * "linkpath" record holding the raw bytes (UTF-8 as Go writes it, or not
 * UTF-8 at all), no hdrcharset record. */
static void write_go_tar(const char *rel, const char *name, const char *target)
{
    unsigned char blk[512];
    char pax[512];
    char *p = path_of(rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    size_t n = pax_record(pax, "path", name);
    ustar_header(blk, "PaxHeaders/f", 'x', n, NULL);
    fwrite(blk, 1, 512, f);
    memset(blk, 0, 512);
    memcpy(blk, pax, n);
    fwrite(blk, 1, 512, f);
    ustar_header(blk, "f", '0', 5, NULL);
    fwrite(blk, 1, 512, f);
    memset(blk, 0, 512);
    memcpy(blk, "data\n", 5);
    fwrite(blk, 1, 512, f);
    n = pax_record(pax, "linkpath", target);
    ustar_header(blk, "PaxHeaders/l", 'x', n, NULL);
    fwrite(blk, 1, 512, f);
    memset(blk, 0, 512);
    memcpy(blk, pax, n);
    fwrite(blk, 1, 512, f);
    ustar_header(blk, "link", '2', 0, "x");
    fwrite(blk, 1, 512, f);
    memset(blk, 0, 512);
    fwrite(blk, 1, 512, f);
    fwrite(blk, 1, 512, f);
    fclose(f);
    free(p);
}

/* Base layers from registries name files in UTF-8 pax records; in the
 * worker's POSIX locale libarchive cannot convert them but must still give
 * the bytes, which become the names on disk unchanged. */
static void test_non_ascii_names_from_other_tools(void **state)
{
    (void)state;
    const char *utf8 = "NetLock_Arany_=Class_Gold=_F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.pem";
    write_go_tar("go.tar", utf8, "/usr/share/ca-certificates/mozilla/F\xc5\x91.crt");
    write_go_tar("latin1.tar", "caf\xe9", "/x/\xe9t\xe9");
    mkd("out");
    mkd("out2");
    char *tar = path_of("go.tar"), *out = path_of("out");
    lc_err err = {0};
    lc_untar_opts o = {.mode = LC_UNTAR_OVERLAY};
    assert_int_equal(lc_untar_file(tar, out, &o, NULL, &err), 0);
    free(tar);
    free(out);
    char rel[300], target[300];
    snprintf(rel, sizeof(rel), "out/%s", utf8);
    char *body = slurp(rel);
    assert_non_null(body);
    assert_string_equal(body, "data\n");
    free(body);
    char *l = path_of("out/link");
    ssize_t n = readlink(l, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "/usr/share/ca-certificates/mozilla/F\xc5\x91.crt");
    free(l);

    tar = path_of("latin1.tar");
    out = path_of("out2");
    assert_int_equal(lc_untar_file(tar, out, &o, NULL, &err), 0);
    free(tar);
    free(out);
    assert_true(exists("out2/caf\xe9"));
    l = path_of("out2/link");
    n = readlink(l, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "/x/\xe9t\xe9");
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_dotdot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_symlink_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_relative_symlink_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_hardlink_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_hardlink_via_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_skipped_unless_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_apply_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlay_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_mode_and_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digest_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_ascii_names_from_other_tools, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
