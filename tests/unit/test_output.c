/* test_output.c - --output values as buildx spells them, and the checks
 * made before a build starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/orchestrate/output.h"

static void ok(const char *spec, int type, const char *dest, bool tar)
{
    lc_output o;
    lc_err err = {0};
    if (lc_output_parse(spec, &o, &err) != 0)
        fail_msg("%s: %s", spec, err.msg);
    assert_int_equal(o.type, type);
    assert_string_equal(o.dest, dest);
    assert_int_equal(o.tar, tar);
    lc_output_clear(&o);
}

static void bad(const char *spec, const char *why)
{
    lc_output o;
    lc_err err = {0};
    assert_int_equal(lc_output_parse(spec, &o, &err), -LC_INVALID_ARGUMENT);
    if (strstr(err.msg, why) == NULL)
        fail_msg("%s: '%s' does not say '%s'", spec, err.msg, why);
    assert_null(o.dest);
}

static void test_parse(void **state)
{
    (void)state;
    ok("type=oci,dest=out", LC_OUTPUT_OCI, "out", false);
    ok("type=oci,dest=out.tar", LC_OUTPUT_OCI, "out.tar", true);
    ok("type=oci,dest=out,tar=true", LC_OUTPUT_OCI, "out", true);
    ok("type=oci,dest=out.tar,tar=false", LC_OUTPUT_OCI, "out.tar", false);
    ok("type=oci,dest=-", LC_OUTPUT_OCI, "-", true);
    ok("dest=x.tar,type=docker", LC_OUTPUT_DOCKER, "x.tar", false);
    ok("type=local,dest=dir", LC_OUTPUT_LOCAL, "dir", false);
    ok("type=tar,dest=-", LC_OUTPUT_TAR, "-", false);
    ok("some/dir", LC_OUTPUT_LOCAL, "some/dir", false);
    ok("-", LC_OUTPUT_TAR, "-", false);
    lc_output o;
    assert_int_equal(lc_output_parse("type=docker,dest=a.tar,name=app:1,name=app:2", &o, NULL), 0);
    assert_int_equal(o.names.len, 2);
    assert_string_equal(o.names.items[1], "app:2");
    lc_output_clear(&o);
    bad("type=registry,dest=x", "type registry is not supported");
    bad("type=oci", "dest= is required");
    bad("type=oci,dest=", "dest= is required");
    bad("dest=x", "no type=");
    bad("type=oci,dest=x,push=true", "unknown key 'push'");
    bad("type=oci,dest=x,tar=maybe", "true or false");
    bad("type=local,dest=x,tar=true", "tar= is for type=oci");
    bad("type=local,dest=-", "a local output is a directory");
    bad("", "empty");
    bad("type=oci,junk", "is not KEY=VALUE");
}

static void test_check(void **state)
{
    (void)state;
    char dir[] = "/tmp/lc-output.XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    lc_output o;
    lc_err err = {0};
    snprintf(path, sizeof(path), "type=local,dest=%s/new", dir);
    assert_int_equal(lc_output_parse(path, &o, NULL), 0);
    assert_int_equal(lc_output_check(&o, 1, &err), 0);
    lc_output_clear(&o);
    /* A non-empty directory would have the image's deletions applied to it. */
    snprintf(path, sizeof(path), "type=local,dest=%s", dir);
    assert_int_equal(lc_output_parse(path, &o, NULL), 0);
    assert_int_equal(lc_output_check(&o, 1, &err), 0); /* empty: fine */
    char f[128];
    snprintf(f, sizeof(f), "%s/file", dir);
    assert_int_equal(lc_fs_write_file(f, "x", 1, NULL), 0);
    assert_int_equal(lc_output_check(&o, 1, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "new or empty directory"));
    lc_output_clear(&o);
    snprintf(path, sizeof(path), "type=docker,dest=%s/no/such/x.tar", dir);
    assert_int_equal(lc_output_parse(path, &o, NULL), 0);
    assert_int_equal(lc_output_check(&o, 1, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "does not exist"));
    lc_output_clear(&o);
    snprintf(path, sizeof(path), "type=docker,dest=%s/x.tar", dir);
    assert_int_equal(lc_output_parse(path, &o, NULL), 0);
    assert_int_equal(lc_output_check(&o, 1, &err), 0);
    assert_int_equal(lc_output_check(&o, 2, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "one platform"));
    lc_output_clear(&o);
    snprintf(path, sizeof(path), "type=tar,dest=%s", dir);
    assert_int_equal(lc_output_parse(path, &o, NULL), 0);
    assert_int_equal(lc_output_check(&o, 1, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "is a directory"));
    lc_output_clear(&o);
    lc_fs_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
