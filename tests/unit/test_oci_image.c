/* test_oci_image.c - image state document (canonical bytes, config edits,
 * layers/history) and OCI layouts (dir, tar, read back, blob checks). */
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
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/tarwrite.h"
#include "build-worker/oci/image.h"
#include "build-worker/oci/layout.h"

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/lc-oci.XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return lc_fs_rm_rf(tmp);
}

static char *ser(const lc_image *img)
{
    char *s;
    size_t len;
    assert_int_equal(lc_image_serialize(img, &s, &len, NULL), 0);
    assert_int_equal(strlen(s), len);
    return s;
}

static void fake_layer(lc_image_layer *l, const char *seed)
{
    memset(l, 0, sizeof(*l));
    lc_digest_of(seed, strlen(seed), &l->blob);
    l->blob.size = 1234;
    lc_digest_of(seed, 1, &l->diff_id);
    l->diff_id.size = 0;
    strcpy(l->media_type, LC_MEDIA_LAYER_GZIP);
}

static void test_canonical_and_roundtrip(void **state)
{
    (void)state;
    lc_image *a = lc_image_new("linux", "amd64");
    lc_image *b = lc_image_new("linux", "amd64");
    assert_non_null(a);
    /* Same content, different edit order -> same bytes. */
    assert_int_equal(lc_image_set_env(a, "PATH", "/bin"), 0);
    assert_int_equal(lc_image_set_string(a, "WorkingDir", "/app"), 0);
    assert_int_equal(lc_image_set_label(a, "b", "2"), 0);
    assert_int_equal(lc_image_set_label(a, "a", "1"), 0);
    assert_int_equal(lc_image_set_label(b, "a", "1"), 0);
    assert_int_equal(lc_image_set_string(b, "WorkingDir", "/app"), 0);
    assert_int_equal(lc_image_set_label(b, "b", "2"), 0);
    assert_int_equal(lc_image_set_env(b, "PATH", "/bin"), 0);
    char *sa = ser(a), *sb = ser(b);
    assert_string_equal(sa, sb);
    assert_null(strchr(sa, ' '));
    assert_null(strchr(sa, '\n'));
    assert_true(strstr(sa, "\"config\":{\"architecture\":\"amd64\",\"config\":{") != NULL);

    lc_image *c = NULL;
    lc_err err = {0};
    assert_int_equal(lc_image_parse(sa, strlen(sa), &c, &err), 0);
    char *sc = ser(c);
    assert_string_equal(sa, sc);
    free(sa);
    free(sb);
    free(sc);
    lc_image_free(&a);
    lc_image_free(&b);
    lc_image_free(&c);
    assert_null(a);
    lc_image_free(&a); /* NULL is fine */

    assert_int_equal(lc_image_parse("{", 1, &c, &err), -LC_INVALID_ARGUMENT);
    const char *bad = "{\"layers\":[{\"digest\":\"sha256:00\"}],\"config\":{}}";
    assert_true(lc_image_parse(bad, strlen(bad), &c, &err) < 0);
    const char *mismatch = "{\"layers\":[],\"config\":{\"rootfs\":{\"diff_ids\":[\"x\"]}}}";
    assert_int_equal(lc_image_parse(mismatch, strlen(mismatch), &c, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "diff_ids"));
}

static void test_config_fields(void **state)
{
    (void)state;
    lc_image *img = lc_image_new(NULL, NULL);
    assert_int_equal(lc_image_set_env(img, "A", "1"), 0);
    assert_int_equal(lc_image_set_env(img, "B", "2"), 0);
    assert_int_equal(lc_image_set_env(img, "A", "3"), 0); /* replaced in place */
    assert_string_equal(lc_image_get_env(img, "A"), "3");
    assert_null(lc_image_get_env(img, "C"));
    assert_int_equal(lc_image_set_env(img, "A=B", "x"), -LC_INVALID_ARGUMENT);
    lc_strlist env = {0};
    assert_int_equal(lc_image_env_list(img, &env), 0);
    assert_int_equal(env.len, 2);
    assert_string_equal(env.items[0], "A=3");
    assert_string_equal(env.items[1], "B=2");
    lc_strlist_clear(&env);

    const char *cmd[] = {"/bin/sh", "-c", "echo hi"};
    assert_int_equal(lc_image_set_strv(img, "Cmd", cmd, 3), 0);
    const char *shell[] = {"/bin/bash", "-c"};
    assert_int_equal(lc_image_set_strv(img, "Shell", shell, 2), 0);
    assert_int_equal(lc_image_set_strv(img, "Nope", shell, 2), -LC_INVALID_ARGUMENT);
    lc_strlist got = {0};
    assert_int_equal(lc_image_get_strv(img, "Cmd", &got), 0);
    assert_int_equal(got.len, 3);
    assert_string_equal(got.items[2], "echo hi");
    lc_strlist_clear(&got);
    assert_int_equal(lc_image_get_strv(img, "Entrypoint", &got), -LC_NOT_FOUND);
    assert_int_equal(lc_image_set_strv(img, "Cmd", NULL, 0), 0);
    assert_int_equal(lc_image_get_strv(img, "Cmd", &got), -LC_NOT_FOUND);

    assert_int_equal(lc_image_set_string(img, "User", "app:app"), 0);
    assert_string_equal(lc_image_get_string(img, "User"), "app:app");
    assert_int_equal(lc_image_set_string(img, "StopSignal", "SIGTERM"), 0);
    assert_int_equal(lc_image_add_exposed_port(img, "8080"), 0);
    assert_int_equal(lc_image_add_exposed_port(img, "53/udp"), 0);
    assert_int_equal(lc_image_add_volume(img, "/data"), 0);
    assert_int_equal(lc_image_add_onbuild(img, "RUN echo child"), 0);
    const char *test[] = {"CMD-SHELL", "true"};
    lc_image_healthcheck hc = {
        .test = test, .ntest = 2, .interval_ns = 30000000000LL, .retries = 3};
    assert_int_equal(lc_image_set_healthcheck(img, &hc), 0);

    char *cfg;
    size_t len;
    assert_int_equal(lc_image_config_blob(img, &cfg, &len, NULL), 0);
    json_t *j = json_loads(cfg, 0, NULL);
    assert_non_null(j);
    json_t *c = json_object_get(j, "config");
    assert_non_null(json_object_get(json_object_get(c, "ExposedPorts"), "8080/tcp"));
    assert_non_null(json_object_get(json_object_get(c, "ExposedPorts"), "53/udp"));
    assert_non_null(json_object_get(json_object_get(c, "Volumes"), "/data"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "OnBuild"), 0)),
                        "RUN echo child");
    json_t *h = json_object_get(c, "Healthcheck");
    assert_int_equal(json_integer_value(json_object_get(h, "Interval")), 30000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "Retries")), 3);
    assert_null(json_object_get(h, "Timeout"));
    assert_string_equal(json_string_value(json_object_get(j, "os")), "linux");
    assert_non_null(json_string_value(json_object_get(j, "architecture")));
    assert_null(json_object_get(j, "created")); /* no wall clock unless asked */
    json_decref(j);
    free(cfg);
    lc_image_free(&img);
}

static void test_layers_and_history(void **state)
{
    (void)state;
    lc_image *img = lc_image_new("linux", "amd64");
    lc_image_layer l1, l2, got;
    fake_layer(&l1, "one");
    fake_layer(&l2, "two");
    assert_int_equal(lc_image_add_layer(img, &l1, "RUN one", NULL), 0);
    assert_int_equal(lc_image_add_history(img, "ENV X=1", 1, NULL), 0);
    lc_image *child = lc_image_clone(img);
    assert_int_equal(lc_image_add_layer(child, &l2, "RUN two", NULL), 0);
    assert_int_equal(lc_image_layer_count(img), 1); /* clone is independent */
    assert_int_equal(lc_image_layer_count(child), 2);
    assert_int_equal(lc_image_history_count(child), 3);
    assert_int_equal(lc_image_layer_at(child, 1, &got), 0);
    assert_true(lc_digest_equal(&got.blob, &l2.blob));
    assert_true(lc_digest_equal(&got.diff_id, &l2.diff_id));
    assert_string_equal(got.media_type, LC_MEDIA_LAYER_GZIP);
    assert_int_equal(lc_image_layer_at(child, 2, &got), -LC_OUT_OF_RANGE);

    char *cfg;
    size_t len;
    assert_int_equal(lc_image_config_blob(child, &cfg, &len, NULL), 0);
    json_t *j = json_loads(cfg, 0, NULL);
    json_t *ids = json_object_get(json_object_get(j, "rootfs"), "diff_ids");
    assert_int_equal(json_array_size(ids), 2);
    char id[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&l2.diff_id, id);
    assert_string_equal(json_string_value(json_array_get(ids, 1)), id);
    json_t *hist = json_object_get(j, "history");
    assert_true(json_is_true(json_object_get(json_array_get(hist, 1), "empty_layer")));
    assert_null(json_object_get(json_array_get(hist, 0), "empty_layer"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 2), "created_by")),
                        "RUN two");
    json_decref(j);

    /* From a config + manifest layers (import). */
    lc_image *imp = NULL;
    lc_image_layer ml[2] = {l1, l2};
    memset(&ml[0].diff_id, 0, sizeof(ml[0].diff_id));
    assert_int_equal(lc_image_from_config(cfg, len, ml, 2, &imp, NULL), 0);
    char *s1 = ser(imp), *s2 = ser(child);
    assert_string_equal(s1, s2);
    free(s1);
    free(s2);
    lc_err err = {0};
    assert_int_equal(lc_image_from_config(cfg, len, ml, 1, &imp, &err), -LC_INVALID_ARGUMENT);
    free(cfg);
    lc_image_free(&imp);
    lc_image_free(&child);
    lc_image_free(&img);
}

static lc_image *image_with_real_layer(char *layer_path, size_t cap)
{
    char src[300];
    snprintf(src, sizeof(src), "%s/src", tmp);
    assert_int_equal(mkdir(src, 0755), 0);
    char *f = lc_fs_join(src, "hello");
    assert_int_equal(lc_fs_write_file(f, "hi\n", 3, NULL), 0);
    free(f);
    snprintf(layer_path, cap, "%s/layer.tgz", tmp);
    lc_layer_info info;
    assert_int_equal(lc_layer_write(src, layer_path, NULL, &info, NULL), 0);
    lc_image *img = lc_image_new("linux", "amd64");
    lc_image_layer l = {.blob = info.blob, .diff_id = info.diff_id};
    strcpy(l.media_type, info.media_type);
    assert_int_equal(lc_image_add_layer(img, &l, "COPY hello /", NULL), 0);
    const char *cmd[] = {"/hello"};
    lc_image_set_strv(img, "Cmd", cmd, 1);
    return img;
}

static void test_layout_dir_tar_and_read(void **state)
{
    (void)state;
    char layer[300], dir[300], tarp[300];
    lc_image *img = image_with_real_layer(layer, sizeof(layer));
    snprintf(dir, sizeof(dir), "%s/layout", tmp);
    snprintf(tarp, sizeof(tarp), "%s/layout.tar", tmp);
    const char *paths[] = {layer};
    lc_digest md1, md2, md3;
    lc_err err = {0};
    assert_int_equal(lc_layout_write_dir(dir, img, paths, "v1", &md1, &err), 0);
    assert_int_equal(lc_layout_write_dir(dir, img, paths, "v2", &md2, &err), 0);
    assert_true(lc_digest_equal(&md1, &md2));

    /* The manifest blob is where its digest says, with those bytes. */
    char hex[LC_HASH_HEX_LEN + 1], mp[400];
    lc_digest_hex(&md1, hex);
    snprintf(mp, sizeof(mp), "%s/blobs/sha256/%s", dir, hex);
    char *buf;
    size_t len;
    assert_int_equal(lc_fs_read_file(mp, 1 << 20, &buf, &len, NULL), 0);
    lc_digest check;
    lc_digest_of(buf, len, &check);
    assert_true(lc_digest_equal(&check, &md1));
    free(buf);

    snprintf(mp, sizeof(mp), "%s/index.json", dir);
    json_t *idx = json_load_file(mp, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(idx, "manifests")), 2);
    json_decref(idx);
    snprintf(mp, sizeof(mp), "%s/oci-layout", dir);
    assert_int_equal(access(mp, F_OK), 0);

    /* Read back. */
    lc_image *back = NULL;
    lc_strlist blobs = {0};
    assert_int_equal(lc_layout_read_dir(dir, "v2", &back, &blobs, &err), 0);
    assert_int_equal(blobs.len, 1);
    char *s1 = ser(back), *s2 = ser(img);
    assert_string_equal(s1, s2);
    free(s1);
    free(s2);
    lc_image_free(&back);
    lc_strlist_clear(&blobs);
    assert_int_equal(lc_layout_read_dir(dir, "nope", &back, &blobs, &err), -LC_NOT_FOUND);
    assert_int_equal(lc_layout_read_dir(dir, NULL, &back, &blobs, &err), -LC_INVALID_ARGUMENT);

    /* The tar form holds the same files, sorted. */
    assert_int_equal(lc_layout_write_tar(tarp, img, paths, "v1", &md3, &err), 0);
    assert_true(lc_digest_equal(&md1, &md3));
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, tarp, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    char prev[256] = "";
    int count = 0, saw_index = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *n = archive_entry_pathname(e);
        assert_true(strcmp(prev, n) < 0);
        snprintf(prev, sizeof(prev), "%s", n);
        saw_index |= strcmp(n, "index.json") == 0;
        count++;
    }
    archive_read_free(a);
    assert_true(saw_index);
    assert_int_equal(count, 2 + 3 + 2); /* 2 dirs, 3 blobs, index, oci-layout */

    /* A blob that is not what the state says is refused. */
    assert_int_equal(lc_fs_write_file(layer, "tampered", 8, NULL), 0);
    char dir2[300];
    snprintf(dir2, sizeof(dir2), "%s/layout2", tmp);
    assert_int_equal(lc_layout_write_dir(dir2, img, paths, "v1", NULL, &err), -LC_DATA_LOSS);
    lc_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_and_roundtrip),
        cmocka_unit_test(test_config_fields),
        cmocka_unit_test(test_layers_and_history),
        cmocka_unit_test_setup_teardown(test_layout_dir_tar_and_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
