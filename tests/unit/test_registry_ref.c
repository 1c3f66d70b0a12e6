/* test_registry_ref.c - image reference parsing and Docker normalization
 * (build-worker/registry/ref.h). Offline: nothing here contacts a registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "build-worker/registry/ref.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void expect_norm(const char *in, const char *want, const char *api_host)
{
    lc_ref r;
    lc_err err = {0};
    char buf[1024];
    int rc = lc_ref_parse(in, &r, &err);
    if (rc != 0)
        fail_msg("%s: %s", in, err.msg);
    lc_ref_string(&r, buf, sizeof(buf));
    assert_string_equal(buf, want);
    assert_string_equal(lc_ref_api_host(&r), api_host);
}

static void test_docker_hub_normalization(void **state)
{
    (void)state;
    expect_norm("ubuntu", "docker.io/library/ubuntu:latest", "registry-1.docker.io");
    expect_norm("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "registry-1.docker.io");
    expect_norm("user/app", "docker.io/user/app:latest", "registry-1.docker.io");
    expect_norm("docker.io/ubuntu", "docker.io/library/ubuntu:latest", "registry-1.docker.io");
    expect_norm("index.docker.io/library/busybox:1", "docker.io/library/busybox:1",
                "registry-1.docker.io");
    expect_norm("a/b/c:x", "docker.io/a/b/c:x", "registry-1.docker.io");
}

static void test_registry_hosts(void **state)
{
    (void)state;
    expect_norm("127.0.0.1:5000/demo/base", "127.0.0.1:5000/demo/base:latest", "127.0.0.1:5000");
    expect_norm("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1", "127.0.0.1:5000");
    expect_norm("localhost/app", "localhost/app:latest", "localhost");
    expect_norm("ghcr.io/org/tool:v1.2-rc_3", "ghcr.io/org/tool:v1.2-rc_3", "ghcr.io");
    expect_norm("Registry/app", "Registry/app:latest", "Registry"); /* upper case: a host */
    expect_norm("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000");
    /* No '.' or ':' and not localhost: a Hub namespace, not a host. */
    expect_norm("myhost/app", "docker.io/myhost/app:latest", "registry-1.docker.io");
    assert_true(lc_ref_has_domain("127.0.0.1:5000/app"));
    assert_true(lc_ref_has_domain("localhost/app"));
    assert_false(lc_ref_has_domain("demo/base:1"));
    assert_false(lc_ref_has_domain("ubuntu"));
}

static void test_digests(void **state)
{
    (void)state;
    lc_ref r;
    assert_int_equal(lc_ref_parse("127.0.0.1:5000/app@sha256:" HEX64, &r, NULL), 0);
    assert_string_equal(r.tag, "");
    assert_string_equal(r.digest, "sha256:" HEX64);
    assert_string_equal(lc_ref_reference(&r), "sha256:" HEX64);
    expect_norm("busybox@sha256:" HEX64, "docker.io/library/busybox@sha256:" HEX64,
                "registry-1.docker.io");
    expect_norm("busybox:1@sha256:" HEX64, "docker.io/library/busybox:1@sha256:" HEX64,
                "registry-1.docker.io");
    assert_int_equal(lc_ref_parse("busybox:1", &r, NULL), 0);
    assert_string_equal(lc_ref_reference(&r), "1");
    char repo[600];
    lc_ref_repository(&r, repo, sizeof(repo));
    assert_string_equal(repo, "docker.io/library/busybox");
}

static void expect_bad(const char *in, const char *msg_part)
{
    lc_ref r;
    lc_err err = {0};
    assert_int_equal(lc_ref_parse(in, &r, &err), -LC_INVALID_ARGUMENT);
    if (strstr(err.msg, msg_part) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", in, err.msg, msg_part);
}

static void test_invalid(void **state)
{
    (void)state;
    expect_bad("", "empty");
    expect_bad("Ubuntu", "lower-case");
    expect_bad("docker.io/Library/x", "lower-case");
    expect_bad("app:", "tag");
    expect_bad("app:-x", "tag");
    expect_bad("app:a/b", "port"); /* "app:a" is a host with a bad port */
    expect_bad("app@sha256:1234", "64");
    expect_bad("app@md5:" HEX64, "sha256");
    expect_bad("app@sha256:" HEX64 "00", "64");
    expect_bad("-app", "start and end");
    expect_bad("app-", "start and end");
    expect_bad("a..b", "separator");
    expect_bad("a/_b", "start and end");
    expect_bad("a//b", "empty path component");
    expect_bad("host:x/app", "port");
    expect_bad("host:123456/app", "port");
    expect_bad("ho st.io/app", "not allowed");
    char longname[600];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_bad(longname, "too long");
    memset(longname, 'a', 300);
    longname[300] = '\0';
    expect_bad(longname, "longer than 255");
    /* Separators Docker allows. */
    lc_ref r;
    assert_int_equal(lc_ref_parse("a__b/c---d/e.f_g", &r, NULL), 0);
    assert_string_equal(r.path, "a__b/c---d/e.f_g");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_hub_normalization),
        cmocka_unit_test(test_registry_hosts),
        cmocka_unit_test(test_digests),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
