/* test_resource.c - ByteStream resource names: accepted forms, canonical
 * formatting, and every rejection with its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resource.h"

#define H "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int parse(const char *s, lc_resource_kind kind, lc_resource *r, lc_err *err)
{
    lc_err_clear(err);
    return lc_resource_parse(s, strlen(s), kind, r, err);
}

/* Expects a rejection whose message contains want. */
static void expect_bad(const char *s, lc_resource_kind kind, const char *want)
{
    lc_resource r;
    lc_err err;
    int rc = parse(s, kind, &r, &err);
    if (rc != -LC_INVALID_ARGUMENT || strstr(err.msg, want) == NULL)
        fail_msg("'%s': rc %d, message '%s', wanted INVALID_ARGUMENT with '%s'", s, rc, err.msg,
                 want);
}

static void test_read_forms(void **state)
{
    (void)state;
    lc_resource r;
    lc_err err;
    assert_int_equal(parse("blobs/" H2 "/123", LC_RESOURCE_READ, &r, &err), 0);
    assert_string_equal(r.instance, "");
    assert_int_equal(r.digest.size, 123);
    assert_int_equal(r.digest.hash[0], 0x01);
    assert_int_equal(r.digest.hash[31], 0xef);
    assert_int_equal(parse("team/a/b/blobs/" H "/0", LC_RESOURCE_READ, &r, &err), 0);
    assert_string_equal(r.instance, "team/a/b");
    assert_true(lc_digest_is_empty(&r.digest));
    assert_int_equal(parse("x/blobs/" H "/9223372036854775807", LC_RESOURCE_READ, &r, &err), 0);
    assert_int_equal(r.digest.size, INT64_MAX);
}

static void test_upload_forms(void **state)
{
    (void)state;
    lc_resource r;
    lc_err err;
    assert_int_equal(parse("uploads/5f1c-aa/blobs/" H2 "/7", LC_RESOURCE_UPLOAD, &r, &err), 0);
    assert_string_equal(r.instance, "");
    assert_string_equal(r.uuid, "5f1c-aa");
    assert_int_equal(r.digest.size, 7);
    assert_int_equal(
        parse("ci/main/uploads/u1/blobs/" H2 "/7/some/meta", LC_RESOURCE_UPLOAD, &r, &err), 0);
    assert_string_equal(r.instance, "ci/main");
    assert_string_equal(r.uuid, "u1");
    char out[LC_RESOURCE_MAX + 1];
    int n = lc_resource_format(&r, out, sizeof(out));
    assert_int_equal(n, (int)strlen(out));
    assert_string_equal(out, "ci/main/uploads/u1/blobs/" H2 "/7");
    /* Round trip of a read name. */
    assert_int_equal(parse("i/blobs/" H "/0", LC_RESOURCE_READ, &r, &err), 0);
    assert_int_equal(lc_resource_format(&r, out, sizeof(out)), (int)strlen("i/blobs/" H "/0"));
    assert_string_equal(out, "i/blobs/" H "/0");
    assert_int_equal(lc_resource_format(&r, out, 10), -LC_INVALID_ARGUMENT);
}

static void test_rejections(void **state)
{
    (void)state;
    expect_bad("", LC_RESOURCE_READ, "empty");
    expect_bad("blobs", LC_RESOURCE_READ, "incomplete");
    expect_bad("blobs/" H, LC_RESOURCE_READ, "incomplete");
    expect_bad("blobs/" H "/", LC_RESOURCE_READ, "size ''");
    expect_bad("blobs/" H "/-1", LC_RESOURCE_READ, "size '-1'");
    expect_bad("blobs/" H "/+1", LC_RESOURCE_READ, "size '+1'");
    expect_bad("blobs/" H "/01", LC_RESOURCE_READ, "leading zeros");
    expect_bad("blobs/" H "/9223372036854775808", LC_RESOURCE_READ, "size");
    expect_bad("blobs/" H "/12x", LC_RESOURCE_READ, "size '12x'");
    expect_bad("blobs/" H "/1/extra", LC_RESOURCE_READ, "extra segments");
    expect_bad("blobs/E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855/0",
               LC_RESOURCE_READ, "lowercase hex");
    expect_bad("blobs/abc/0", LC_RESOURCE_READ, "64 lowercase hex");
    expect_bad("/blobs/" H "/0", LC_RESOURCE_READ, "starts with '/'");
    expect_bad("a//blobs/" H "/0", LC_RESOURCE_READ, "empty path segment");
    expect_bad("actions/x/blobs/" H "/0", LC_RESOURCE_READ, "reserved segment 'actions'");
    expect_bad("inst/" H "/0", LC_RESOURCE_READ, "no 'blobs' segment");
    expect_bad("compressed-blobs/zstd/" H "/0", LC_RESOURCE_READ, "compressed-blobs");
    expect_bad("uploads/u/blobs/" H "/0", LC_RESOURCE_READ, "uploads/ names are for Write");
    expect_bad("blobs/" H "/0", LC_RESOURCE_UPLOAD, "Write needs an uploads/{uuid}/ name");
    expect_bad("uploads//blobs/" H "/0", LC_RESOURCE_UPLOAD, "upload id");
    expect_bad("uploads/u/blob/" H "/0", LC_RESOURCE_UPLOAD, "expected 'blobs' after");
    expect_bad("uploads/u/blobs/" H, LC_RESOURCE_UPLOAD, "incomplete");
    /* The expected form is always named. */
    expect_bad("nonsense", LC_RESOURCE_UPLOAD, "uploads/{uuid}/blobs/{hash}/{size}");
    expect_bad("nonsense", LC_RESOURCE_READ, "expected [{instance}/]blobs/{hash}/{size}");
    /* Control bytes are escaped in messages; NUL bytes are refused. */
    expect_bad("\x01\x7f/blobs/x/0", LC_RESOURCE_READ, "\\x01\\x7f");
    lc_resource r;
    lc_err err;
    assert_int_equal(lc_resource_parse("blobs/\0/0", 9, LC_RESOURCE_READ, &r, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "NUL"));
    /* Over-long names are refused, and messages stay bounded. */
    size_t big = LC_RESOURCE_MAX + 10;
    char *s = malloc(big + 1);
    assert_non_null(s);
    memset(s, 'a', big);
    s[big] = '\0';
    expect_bad(s, LC_RESOURCE_READ, "limit");
    memset(s, 'a', 1500);
    strcpy(s + 1500, "/x");
    expect_bad(s, LC_RESOURCE_READ, "...");
    free(s);
}

static void test_instance(void **state)
{
    (void)state;
    lc_err err = {0};
    assert_int_equal(lc_resource_check_instance("", 0, &err), 0);
    assert_int_equal(lc_resource_check_instance("a/b-c/d_e", 9, &err), 0);
    assert_int_equal(lc_resource_check_instance("a/", 2, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "empty path segment"));
    assert_int_equal(lc_resource_check_instance("x/uploads", 9, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "'uploads'"));
    assert_int_equal(lc_resource_check_instance("capabilities", 12, &err), -LC_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_forms),
        cmocka_unit_test(test_upload_forms),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_instance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
