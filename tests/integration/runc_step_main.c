/* runc_step_main.c - the C half of tests/integration/test_runc_step (built
 * as $LC_TESTS/itest_runc_step): a busybox rootfs becomes a base layer,
 * unpacked as an overlay lower dir; a RUN step runs through runc twice;
 * each upper dir becomes a layer whose digest must match; then an OCI
 * layout is written for the shell half to check with skopeo and umoci.
 *
 * usage: itest_runc_step WORKDIR ROOTFS   (prints the manifest digest)
 * Exit 0 = pass. Mounts are always undone by lc_runc_run/lc_runc_cleanup.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/tarwrite.h"
#include "build-worker/layer/untar.h"
#include "build-worker/oci/image.h"
#include "build-worker/oci/layout.h"
#include "build-worker/runtime/runc.h"

static const char *work;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static char *wpath(const char *fmt, const char *arg)
{
    static char bufs[16][512];
    static int next;
    char *b = bufs[next++ % 16];
    char rel[256];
    snprintf(rel, sizeof(rel), fmt, arg);
    snprintf(b, 512, "%s/%s", work, rel);
    return b;
}

/* Runs argv in a fresh bundle over lower; output goes to WORK/<name>.out. */
static int run_step(const char *name, const char *lower, const char *const *argv, size_t argc,
                    const char *user, int *exit_code)
{
    char id[64];
    snprintf(id, sizeof(id), "lc-itest-%d-%s", (int)getpid(), name);
    const char *lowers[] = {lower};
    const char *env[] = {"LC_TEST=1"};
    lc_runc_step s = {.id = id,
                      .bundle_dir = wpath("%s/bundle", name),
                      .lower_dirs = lowers,
                      .n_lower = 1,
                      .upper_dir = wpath("%s/upper", name),
                      .argv = argv,
                      .argc = argc,
                      .env = env,
                      .n_env = 1,
                      .user = user};
    char *outp = wpath("%s.out", name);
    int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "open %s", outp);
    lc_err err = {0};
    int rc = lc_runc_run(&s, fd, fd, exit_code, &err);
    close(fd);
    struct stat st;
    CHECK(stat(s.bundle_dir, &st) < 0, "bundle %s left behind", s.bundle_dir);
    if (rc != 0) {
        fprintf(stderr, "%s run %s: %s\n", strcmp(name, "nouser") ? "FAIL" : "(expected)", name,
                err.msg);
        return 1;
    }
    CHECK(stat(s.bundle_dir, &st) < 0, "bundle %s left behind", s.bundle_dir);
    return 0;
}

static int tar_has(const char *tar, const char *want, const char *content, int64_t *uid)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int found = 0;
    if (archive_read_open_filename(a, tar, 16384) == ARCHIVE_OK) {
        struct archive_entry *e;
        while (!found && archive_read_next_header(a, &e) == ARCHIVE_OK) {
            if (strcmp(archive_entry_pathname(e), want) != 0)
                continue;
            found = 1;
            if (uid)
                *uid = archive_entry_uid(e);
            if (content != NULL) {
                char buf[256] = {0};
                la_ssize_t n = archive_read_data(a, buf, sizeof(buf) - 1);
                found = n >= 0 && strcmp(buf, content) == 0;
            }
        }
    }
    archive_read_free(a);
    return found;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s WORKDIR ROOTFS\n", argv[0]);
        return 2;
    }
    work = argv[1];
    const char *rootfs = argv[2];
    lc_err err = {0};
    lc_layer_opts lo = {.compression = LC_LAYER_GZIP, .epoch = 0};

    /* Base image layer from the busybox tree, unpacked as a lower dir. */
    lc_layer_info base;
    CHECK(lc_layer_write(rootfs, wpath("base.tgz%s", ""), &lo, &base, &err) == 0, "%s", err.msg);
    char lower[512];
    snprintf(lower, sizeof(lower), "%s", wpath("lower%s", ""));
    CHECK(mkdir(lower, 0755) == 0, "mkdir lower");
    lc_untar_opts uo = {
        .mode = LC_UNTAR_OVERLAY, .expect_blob = &base.blob, .expect_diff_id = &base.diff_id};
    CHECK(lc_untar_file(wpath("base.tgz%s", ""), lower, &uo, NULL, &err) == 0, "%s", err.msg);

    /* The RUN step, twice, on fresh upper dirs. */
    lc_strlist args = {0};
    lc_runc_shell_argv(NULL, 0, "echo hi > /hello && rm /bin/ls && mkdir -p /app", &args);
    lc_layer_info l1, l2;
    int code = -1;
    for (int i = 1; i <= 2; i++) {
        const char *name = i == 1 ? "run1" : "run2";
        if (run_step(name, lower, (const char *const *)args.items, args.len, NULL, &code) != 0)
            return 1;
        CHECK(code == 0, "%s exited %d (see %s.out)", name, code, name);
        CHECK(lc_layer_write(wpath("%s/upper", name), wpath("%s.tgz", name), &lo,
                             i == 1 ? &l1 : &l2, &err) == 0,
              "%s", err.msg);
    }
    lc_strlist_clear(&args);
    CHECK(lc_digest_equal(&l1.blob, &l2.blob), "two runs gave different layer blobs");
    CHECK(lc_digest_equal(&l1.diff_id, &l2.diff_id), "two runs gave different diff_ids");
    const char *t1 = wpath("run1.tgz%s", "");
    int64_t uid = -1;
    CHECK(tar_has(t1, "hello", "hi\n", &uid), "layer lacks hello with \"hi\"");
    CHECK(uid == 0, "hello owned by %lld", (long long)uid);
    CHECK(tar_has(t1, "bin/.wh.ls", NULL, NULL), "layer lacks bin/.wh.ls");
    CHECK(tar_has(t1, "app/", NULL, NULL), "layer lacks app/");
    CHECK(!tar_has(t1, "proc/", NULL, NULL) && !tar_has(t1, "dev/", NULL, NULL) &&
              !tar_has(t1, "sys/", NULL, NULL),
          "runc mount stubs leaked into the layer");
    CHECK(!tar_has(t1, "bin/ls", NULL, NULL), "bin/ls still in the layer");

    /* Exit codes come through; USER resolves through the image's passwd. */
    const char *fail_argv[] = {"/bin/sh", "-c", "echo oops >&2; exit 3"};
    if (run_step("fail", lower, fail_argv, 3, NULL, &code) != 0)
        return 1;
    CHECK(code == 3, "exit code %d, want 3", code);
    const char *id_argv[] = {"/bin/sh", "-c", "id -u; id -g; echo $HOME; pwd"};
    if (run_step("user", lower, id_argv, 3, "app", &code) != 0)
        return 1;
    CHECK(code == 0, "USER app step exited %d", code);
    char *out = NULL;
    size_t len;
    CHECK(lc_fs_read_file(wpath("user.out%s", ""), 4096, &out, &len, &err) == 0, "%s", err.msg);
    int ok = strcmp(out, "1000\n1001\n/home/app\n/\n") == 0;
    if (!ok)
        fprintf(stderr, "USER app output: %s", out);
    free(out);
    CHECK(ok, "USER app: wrong ids/home");
    CHECK(run_step("nouser", lower, id_argv, 3, "nobody-here", &code) == 1, "unknown user ran");

    /* OCI image: base + step layer. */
    lc_image *img = lc_image_new("linux", NULL);
    lc_image_layer bl = {.blob = base.blob, .diff_id = base.diff_id};
    lc_image_layer sl = {.blob = l1.blob, .diff_id = l1.diff_id};
    strcpy(bl.media_type, base.media_type);
    strcpy(sl.media_type, l1.media_type);
    lc_image_add_layer(img, &bl, "busybox base", NULL);
    lc_image_add_layer(img, &sl, "RUN echo hi > /hello && rm /bin/ls && mkdir -p /app", NULL);
    const char *cmd[] = {"/bin/sh"};
    lc_image_set_strv(img, "Cmd", cmd, 1);
    lc_image_set_env(img, "PATH", "/bin");
    const char *paths[] = {wpath("base.tgz%s", ""), t1};
    lc_digest md, md2;
    int rc = lc_layout_write_dir(wpath("oci%s", ""), img, paths, "test", &md, &err);
    if (rc == 0)
        rc = lc_layout_write_tar(wpath("oci.tar%s", ""), img, paths, "test", &md2, &err);
    lc_image_free(&img);
    CHECK(rc == 0, "layout: %s", err.msg);
    CHECK(lc_digest_equal(&md, &md2), "dir and tar layouts differ");
    char s[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&md, s);
    printf("%s\n", s);
    return 0;
}
