/* test_health.c - which service names grpc.health.v1.Health knows (health.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache-server/auth.h"
#include "cache-server/health.h"

static void test_known_services(void **state)
{
    (void)state;
    static const char *const known[] = {
        "",
        "grpc.health.v1.Health",
        "build.bazel.remote.execution.v2.Capabilities",
        "build.bazel.remote.execution.v2.ActionCache",
        "build.bazel.remote.execution.v2.ContentAddressableStorage",
        "google.bytestream.ByteStream",
        "layercache.v1.Admin",
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        assert_int_equal(lc_health_known(known[i]), 1);
    assert_int_equal(lc_health_known(NULL), 1);
}

static void test_unknown_services(void **state)
{
    (void)state;
    static const char *const unknown[] = {
        "no.such.Service",
        "build.bazel.remote.execution.v2",              /* a package, not a service */
        "build.bazel.remote.execution.v2.ActionCach",   /* a prefix */
        "build.bazel.remote.execution.v2.ActionCacheX", /* longer */
        "google.bytestream.ByteStream/Read",            /* a method path */
        "/google.bytestream.ByteStream",
        "build.bazel.remote.execution.v2.Execution", /* REAPI, but not served */
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_int_equal(lc_health_known(unknown[i]), 0);
}

static void test_method_table(void **state)
{
    (void)state;
    assert_int_equal(lc_health_n_methods, 3);
    for (size_t i = 0; i < lc_health_n_methods; i++)
        assert_int_equal(
            strncmp(lc_health_methods[i].path, LC_HEALTH_PREFIX, strlen(LC_HEALTH_PREFIX)), 0);
    /* Probes carry no token: access control must not ask for one. */
    for (size_t i = 0; i < lc_health_n_methods; i++)
        assert_int_equal(lc_auth_method_role(lc_health_methods[i].path), LC_ROLE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_services),
        cmocka_unit_test(test_unknown_services),
        cmocka_unit_test(test_method_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
