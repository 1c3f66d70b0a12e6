/* test_statedir.c - the worker's local state directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/orchestrate/statedir.h"
#include "build-worker/layer/fsutil.h"

typedef struct fixture {
    char dir[64];
    lc_statedir *sd;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/lc-statedir.XXXXXX");
    if (mkdtemp(f->dir) == NULL || lc_statedir_open(f->dir, &f->sd, NULL) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lc_statedir_close(&f->sd);
    lc_fs_rm_rf(f->dir);
    free(f);
    return 0;
}

static void test_blobs_verified(void **state)
{
    fixture *f = *state;
    lc_digest d;
    assert_int_equal(lc_statedir_put_blob(f->sd, "hello", 5, &d, NULL), 0);
    assert_true(lc_statedir_has_blob(f->sd, &d));
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lc_statedir_read_blob(f->sd, &d, &data, &len, NULL), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);

    /* A corrupted blob is reported, never returned. */
    char path[4096];
    lc_statedir_blob_path(f->sd, &d, path, sizeof(path));
    FILE *fp = fopen(path, "w");
    fputs("jello", fp);
    fclose(fp);
    lc_err err = {0};
    assert_int_equal(lc_statedir_read_blob(f->sd, &d, &data, &len, &err), -LC_DATA_LOSS);
    lc_digest missing;
    lc_digest_of("nope", 4, &missing);
    assert_int_equal(lc_statedir_read_blob(f->sd, &missing, &data, &len, &err), -LC_NOT_FOUND);
}

static void test_action_cache(void **state)
{
    fixture *f = *state;
    lc_digest key, st, got;
    lc_digest_of("key", 3, &key);
    lc_digest_of("state", 5, &st);
    assert_int_equal(lc_statedir_ac_get(f->sd, &key, &got, NULL), -LC_NOT_FOUND);
    assert_int_equal(lc_statedir_ac_put(f->sd, &key, &st, NULL), 0);
    assert_int_equal(lc_statedir_ac_get(f->sd, &key, &got, NULL), 0);
    assert_memory_equal(got.hash, st.hash, LC_HASH_LEN);
}

static int collect(void *ctx, const char *ref, const lc_digest *state)
{
    (void)state;
    char *buf = ctx;
    strcat(buf, ref);
    strcat(buf, ";");
    return 0;
}

static void test_images(void **state)
{
    fixture *f = *state;
    lc_digest a, b, got;
    lc_digest_of("a", 1, &a);
    lc_digest_of("b", 1, &b);
    char norm[256];
    lc_err err = {0};
    assert_int_equal(lc_statedir_normalize_ref("app", norm, sizeof(norm), NULL), 0);
    assert_string_equal(norm, "app:latest");
    assert_int_equal(lc_statedir_normalize_ref("reg:5000/team/app", norm, sizeof(norm), NULL), 0);
    assert_string_equal(norm, "reg:5000/team/app:latest");
    assert_int_equal(lc_statedir_normalize_ref("../etc/passwd", norm, sizeof(norm), &err),
                     -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_statedir_normalize_ref("a b", norm, sizeof(norm), &err),
                     -LC_INVALID_ARGUMENT);

    assert_int_equal(lc_statedir_image_put(f->sd, "team/app:1", &a, NULL), 0);
    assert_int_equal(lc_statedir_image_put(f->sd, "base", &b, NULL), 0);
    assert_int_equal(lc_statedir_image_get(f->sd, "base:latest", &got, NULL), 0);
    assert_memory_equal(got.hash, b.hash, LC_HASH_LEN);
    assert_int_equal(lc_statedir_image_get(f->sd, "team/app:2", &got, &err), -LC_NOT_FOUND);
    assert_non_null(strstr(err.msg, "team/app:2"));
    /* Re-tagging moves the name. */
    assert_int_equal(lc_statedir_image_put(f->sd, "team/app:1", &b, NULL), 0);
    assert_int_equal(lc_statedir_image_get(f->sd, "team/app:1", &got, NULL), 0);
    assert_memory_equal(got.hash, b.hash, LC_HASH_LEN);
    char listed[256] = "";
    assert_int_equal(lc_statedir_image_list(f->sd, collect, listed, NULL), 0);
    assert_string_equal(listed, "base:latest;team/app:1;");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blobs_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
