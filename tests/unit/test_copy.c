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
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
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
    assert_int_equal(bad.gid, 1000); /* BuildKit: a UID alone doubles as GID */
    /* A name alone takes its primary group from the image's passwd. */
    lc_copy_opts byname = {0};
    assert_int_equal(lc_copy_parse_chown(P("root"), "web", &byname, &err), 0);
    assert_int_equal(byname.uid, 33);
    assert_int_equal(byname.gid, 34);
    assert_int_equal(lc_copy_parse_chown(P("root"), "web:0", &byname, &err), 0);
    assert_int_equal(byname.gid, 0);
}

static void test_symbolic_chmod(void **state)
{
    (void)state;
    assert_int_equal(lc_copy_apply_symbolic("u+x", 0644, 0), 0744);
    assert_int_equal(lc_copy_apply_symbolic("+x", 0644, 0), 0755); /* no who: all */
    assert_int_equal(lc_copy_apply_symbolic("go-w", 0666, 0), 0644);
    assert_int_equal(lc_copy_apply_symbolic("a=r,u+w", 0777, 0), 0644);
    assert_int_equal(lc_copy_apply_symbolic("a+X", 0644, 0), 0644); /* X: no x anywhere */
    assert_int_equal(lc_copy_apply_symbolic("a+X", 0644, 1), 0755); /* X: a directory */
    assert_int_equal(lc_copy_apply_symbolic("a+X", 0744, 0), 0755); /* X: some x */
    assert_int_equal(lc_copy_apply_symbolic("u+s,+t", 0755, 0), 05755);
    assert_int_equal(lc_copy_apply_symbolic("o=", 0757, 0), 0750);
    lc_copy_opts o = {0};
    lc_err err = {0};
    assert_int_equal(lc_copy_parse_chmod("u+x,go-w", &o, &err), 0);
    assert_false(o.set_mode);
    assert_string_equal(o.mode_sym, "u+x,go-w");
    assert_int_equal(lc_copy_parse_chmod("u+q", &o, &err), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_copy_parse_chmod("99", &o, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "octal"));
    assert_int_equal(lc_copy_parse_chmod("u,x", &o, &err), -LC_INVALID_ARGUMENT);
    /* Applied to each file's own bits. */
    lc_copy_opts sym = {0};
    assert_int_equal(lc_copy_parse_chmod("g+w,o-r", &sym, &err), 0);
    assert_int_equal(chmod(P("src/a.txt"), 0640), 0);
    assert_int_equal(lc_copy_path(P("src"), P("root"), "/sym", &sym, &err), 0);
    struct stat st;
    assert_int_equal(lstat(P("root/sym/a.txt"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0660);
    assert_int_equal(lstat(P("root/sym/sub/b.txt"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0660); /* 0644 before */
}

/* Existing directories keep their owner and mode (BuildKit's copier sets
 * them only on directories it creates); hard links among the sources stay
 * hard links; holes stay holes; fifos and devices are made again. */
static void test_copy_keeps_dirs_links_holes(void **state)
{
    (void)state;
    lc_err err = {0};
    assert_int_equal(mkdir(P("root/opt"), 0700), 0);
    assert_int_equal(chown(P("root/opt"), 7, 7), 0);
    assert_int_equal(lc_copy_path(P("src"), P("root"), "/opt", NULL, &err), 0);
    struct stat st;
    assert_int_equal(lstat(P("root/opt"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, 7);
    assert_int_equal(lstat(P("root/opt/sub"), &st), 0); /* created: the source's mode, 0:0 */
    assert_int_equal(st.st_uid, 0);

    lc_fs_mkdir_p(P("src2"));
    lc_fs_write_file(P("src2/one"), "same inode\n", 11, NULL);
    assert_int_equal(link(P("src2/one"), P("src2/two")), 0);
    assert_int_equal(setxattr(P("src2/one"), "user.note", "hi", 2, 0), 0);
    int fd = open(P("src2/holes"), O_WRONLY | O_CREAT, 0644);
    assert_int_equal(ftruncate(fd, 64 << 20), 0);
    assert_int_equal(pwrite(fd, "x", 1, 32 << 20), 1);
    close(fd);
    assert_int_equal(mkfifo(P("src2/fifo"), 0640), 0);
    assert_int_equal(mknod(P("src2/null"), S_IFCHR | 0666, makedev(1, 3)), 0);
    lc_copy_opts o = {.links = lc_copy_links_new()};
    assert_non_null(o.links);
    assert_int_equal(lc_copy_path(P("src2/one"), P("root"), "/l/one", &o, &err), 0);
    assert_int_equal(lc_copy_path(P("src2/two"), P("root"), "/l/two", &o, &err), 0);
    assert_int_equal(lc_copy_path(P("src2/holes"), P("root"), "/l/holes", &o, &err), 0);
    assert_int_equal(lc_copy_path(P("src2/fifo"), P("root"), "/l/fifo", &o, &err), 0);
    assert_int_equal(lc_copy_path(P("src2/null"), P("root"), "/l/null", &o, &err), 0);
    lc_copy_links_free(&o.links);
    assert_null(o.links);
    struct stat a, b;
    assert_int_equal(lstat(P("root/l/one"), &a), 0);
    assert_int_equal(lstat(P("root/l/two"), &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(a.st_nlink, 2);
    char note[8];
    assert_int_equal(getxattr(P("root/l/one"), "user.note", note, sizeof(note)), 2);
    assert_memory_equal(note, "hi", 2);
    assert_int_equal(lstat(P("root/l/holes"), &st), 0);
    assert_int_equal(st.st_size, 64 << 20);
    assert_true(st.st_blocks * 512 < (1 << 20));
    char c = 0;
    fd = open(P("root/l/holes"), O_RDONLY);
    assert_int_equal(pread(fd, &c, 1, 32 << 20), 1);
    close(fd);
    assert_int_equal(c, 'x');
    assert_int_equal(lstat(P("root/l/fifo"), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(lstat(P("root/l/null"), &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(1, 3));
}

static void test_is_dir_and_mkdir(void **state)
{
    (void)state;
    lc_err err = {0};
    assert_true(lc_copy_is_dir(P("root"), "/lib")); /* a symlink to a directory, in root */
    assert_true(lc_copy_is_dir(P("root"), "/"));
    assert_false(lc_copy_is_dir(P("root"), "/etc/passwd"));
    assert_false(lc_copy_is_dir(P("root"), "/missing"));
    lc_copy_opts o = {.set_owner = 1, .uid = 33, .gid = 34};
    assert_int_equal(lc_copy_mkdir(P("root"), "/srv/www/app", &o, &err), 0);
    struct stat st;
    assert_int_equal(lstat(P("root/srv/www/app"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_uid, 33);
    assert_int_equal(lstat(P("root/srv"), &st), 0); /* parents made too, same owner */
    assert_int_equal(st.st_uid, 33);
    /* An existing directory is left alone. */
    assert_int_equal(lc_copy_mkdir(P("root"), "/etc", &o, &err), 0);
    assert_int_equal(lstat(P("root/etc"), &st), 0);
    assert_int_equal(st.st_uid, 0);
    /* Through /lib -> usr/lib, inside the root. */
    assert_int_equal(lc_copy_mkdir(P("root"), "/lib/x", NULL, &err), 0);
    assert_int_equal(lstat(P("root/usr/lib/x"), &st), 0);
    /* A file in the way is an error naming the path. */
    assert_true(lc_copy_mkdir(P("root"), "/etc/passwd/x", NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "/etc/passwd/x"));
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
        cmocka_unit_test_setup_teardown(test_symbolic_chmod, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_keeps_dirs_links_holes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_is_dir_and_mkdir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
