/* test_copy.c - COPY/ADD into a container root: in-root resolution of
 * destination symlinks (never escaping), --chown/--chmod, symlinks kept,
 * ADD of a tar through the safe extractor. Needs root (chown). */
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
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/layer/copy.h"
#include "build-worker/layer/fsutil.h"

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/lc-copy.XXXXXX");
    if (mkdtemp(tmp) == NULL)
        return -1;
    char p[400];
    snprintf(p, sizeof(p), "%s/root/usr/lib", tmp);
    lc_fs_mkdir_p(p);
    snprintf(p, sizeof(p), "%s/root/etc", tmp);
    lc_fs_mkdir_p(p);
    snprintf(p, sizeof(p), "%s/root/etc/passwd", tmp);
    const char *pw = "root:x:0:0:root:/root:/bin/sh\nweb:x:33:34:web:/var/www:/bin/sh\n";
    lc_fs_write_file(p, pw, strlen(pw), NULL);
    snprintf(p, sizeof(p), "%s/root/etc/group", tmp);
    lc_fs_write_file(p, "root:x:0:\nwww:x:34:\n", 20, NULL);
    snprintf(p, sizeof(p), "%s/root/lib", tmp);
    symlink("usr/lib", p);
    snprintf(p, sizeof(p), "%s/root/escape", tmp);
    symlink("/../../..", p); /* would reach the host's / if followed naively */
    snprintf(p, sizeof(p), "%s/src/sub", tmp);
    lc_fs_mkdir_p(p);
    snprintf(p, sizeof(p), "%s/src/a.txt", tmp);
    lc_fs_write_file(p, "A\n", 2, NULL);
    snprintf(p, sizeof(p), "%s/src/sub/b.txt", tmp);
    lc_fs_write_file(p, "B\n", 2, NULL);
    snprintf(p, sizeof(p), "%s/src/link", tmp);
    symlink("a.txt", p);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return lc_fs_rm_rf(tmp);
}

static char *P(const char *rel)
{
    static char b[4][512];
    static int i;
    char *s = b[i++ % 4];
    snprintf(s, 512, "%s/%s", tmp, rel);
    return s;
}

static void test_copy_dir_chown_chmod(void **state)
{
    (void)state;
    lc_copy_opts o = {0};
    lc_err err = {0};
    assert_int_equal(lc_copy_parse_chown(P("root"), "web:www", &o, &err), 0);
    assert_int_equal(o.uid, 33);
    assert_int_equal(o.gid, 34);
    assert_int_equal(lc_copy_parse_chmod("0640", &o, &err), 0);
    assert_int_equal(lc_copy_path(P("src"), P("root"), "/app/", &o, &err), 0);
    struct stat st;
    assert_int_equal(lstat(P("root/app/a.txt"), &st), 0);
    assert_int_equal(st.st_uid, 33);
    assert_int_equal(st.st_gid, 34);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(lstat(P("root/app/sub/b.txt"), &st), 0);
    assert_int_equal(lstat(P("root/app/link"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(st.st_uid, 33);
    assert_int_equal(lstat(P("root/app"), &st), 0); /* created dest dir gets --chown */
    assert_int_equal(st.st_uid, 33);

    lc_copy_opts bad = {0};
    assert_int_equal(lc_copy_parse_chown(P("root"), "nobody", &bad, &err), -LC_NOT_FOUND);
    assert_int_equal(lc_copy_parse_chmod("rwx", &bad, &err), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_copy_parse_chown(NULL, "1000", &bad, &err), 0);
    assert_int_equal(bad.gid, 1000); /* Docker: the UID doubles as GID */
}

static void test_dest_symlinks_resolve_in_root(void **state)
{
    (void)state;
    lc_err err = {0};
    /* /lib -> usr/lib: the file lands in /usr/lib, the link stays. */
    assert_int_equal(lc_copy_path(P("src/a.txt"), P("root"), "/lib/a.txt", NULL, &err), 0);
    struct stat st;
    assert_int_equal(lstat(P("root/usr/lib/a.txt"), &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(lstat(P("root/lib"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* /escape -> /../../..: resolves to the root itself, not the host. */
    char hostname[64];
    snprintf(hostname, sizeof(hostname), "lc-copy-escape-%d", (int)getpid());
    char dest[128];
    snprintf(dest, sizeof(dest), "/escape/tmp/%s", hostname);
    int crc = lc_copy_path(P("src/a.txt"), P("root"), dest, NULL, &err);
    if (crc != 0)
        fail_msg("%s", err.msg);
    char host[128];
    snprintf(host, sizeof(host), "/tmp/%s", hostname);
    assert_int_equal(access(host, F_OK), -1);
    char inroot[128];
    snprintf(inroot, sizeof(inroot), "root/tmp/%s", hostname);
    assert_int_equal(access(P(inroot), F_OK), 0);
    /* A file onto a directory is an error. */
    assert_int_equal(lc_copy_path(P("src/a.txt"), P("root"), "/usr", NULL, &err),
                     -LC_FAILED_PRECONDITION);
    /* Heredoc-style file. */
    assert_int_equal(lc_copy_write_file(P("root"), "/etc/motd", "hi\n", 3, 0644, NULL, &err), 0);
    assert_int_equal(lstat(P("root/etc/motd"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
}

static void test_add_archive(void **state)
{
    (void)state;
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, P("in.tgz")), ARCHIVE_OK);
    const char *names[] = {"x/one", "../evil"};
    for (int i = 0; i < 2; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0600);
        archive_entry_set_size(e, 4);
        archive_write_header(a, e);
        archive_write_data(a, "one\n", 4);
        archive_entry_free(e);
        if (i == 0) { /* first archive: only the benign entry */
            break;
        }
    }
    archive_write_close(a);
    archive_write_free(a);
    assert_true(lc_copy_is_archive(P("in.tgz")));
    assert_false(lc_copy_is_archive(P("src/a.txt")));
    lc_copy_opts o = {.set_owner = 1, .uid = 7, .gid = 8};
    lc_err err = {0};
    assert_int_equal(lc_copy_add_archive(P("in.tgz"), P("root"), "/opt", &o, &err), 0);
    struct stat st;
    assert_int_equal(lstat(P("root/opt/x/one"), &st), 0);
    assert_int_equal(st.st_uid, 7);

    /* A hostile archive is refused through the safe extractor. */
    a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, P("evil.tar")), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "../../evil");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_size(e, 0);
    archive_write_header(a, e);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    assert_int_equal(lc_copy_add_archive(P("evil.tar"), P("root"), "/opt", NULL, &err),
                     -LC_PERMISSION_DENIED);
    assert_int_equal(access(P("evil"), F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_dir_chown_chmod, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_symlinks_resolve_in_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_archive, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
