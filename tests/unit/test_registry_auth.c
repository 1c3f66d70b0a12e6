/* test_registry_auth.c - WWW-Authenticate challenges and Docker config.json
 * credentials (build-worker/registry/auth.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/registry/auth.h"

static void test_bearer(void **state)
{
    (void)state;
    lc_regauth_challenge c;
    assert_int_equal(
        lc_regauth_parse_challenge(
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
            "scope=\"repository:library/ubuntu:pull\"",
            &c, NULL),
        0);
    assert_string_equal(c.scheme, "Bearer");
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    assert_string_equal(c.scope, "repository:library/ubuntu:pull");
    assert_string_equal(c.error, "");
    /* Spaces after commas, unquoted tokens, escapes, unknown params, case. */
    assert_int_equal(
        lc_regauth_parse_challenge("bearer  REALM=\"http://127.0.0.1:1/t?x=1\", service=reg, "
                                   "scope=\"repository:a:pull,push repository:b:pull\", "
                                   "error=\"insufficient_scope\", foo=\"a\\\"b\"",
                                   &c, NULL),
        0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "http://127.0.0.1:1/t?x=1");
    assert_string_equal(c.service, "reg");
    assert_string_equal(c.scope, "repository:a:pull,push repository:b:pull");
    assert_string_equal(c.error, "insufficient_scope");
}

static void test_basic_and_bad(void **state)
{
    (void)state;
    lc_regauth_challenge c;
    lc_err err = {0};
    assert_int_equal(lc_regauth_parse_challenge("Basic realm=\"Registry Realm\"", &c, NULL), 0);
    assert_string_equal(c.scheme, "Basic");
    assert_string_equal(c.realm, "Registry Realm");
    assert_int_equal(lc_regauth_parse_challenge("Basic", &c, NULL), 0);
    assert_int_equal(lc_regauth_parse_challenge("", &c, &err), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_regauth_parse_challenge("Bearer service=\"x\"", &c, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "without realm"));
    assert_int_equal(lc_regauth_parse_challenge("Bearer realm=\"unterminated", &c, &err),
                     -LC_INVALID_ARGUMENT);
    char big[3000] = "Bearer realm=\"";
    memset(big + strlen(big), 'a', 2000);
    strcat(big, "\"");
    assert_int_equal(lc_regauth_parse_challenge(big, &c, &err), -LC_INVALID_ARGUMENT);
    /* Two challenges in one header: the first is taken. */
    assert_int_equal(lc_regauth_parse_challenge("Basic realm=\"r\", Bearer realm=\"x\"", &c, NULL),
                     0);
    assert_string_equal(c.scheme, "Basic");
    assert_string_equal(c.realm, "r");
}

static void test_config_json(void **state)
{
    (void)state;
    char dir[] = "/tmp/lc-regauth.XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* "alice:pa:ss" and "bob:x" base64; a URL key for the Hub; username/password. */
    fputs("{\"auths\": {\"127.0.0.1:5000\": {\"auth\": \"YWxpY2U6cGE6c3M=\"},"
          " \"https://index.docker.io/v1/\": {\"auth\": \"Ym9iOng=\"},"
          " \"https://ghcr.io\": {\"username\": \"carol\", \"password\": \"pw\"},"
          " \"bad.io\": {\"auth\": \"bm9jb2xvbg==\"}}, \"credsStore\": \"desktop\"}",
          f);
    fclose(f);
    lc_regauth *a = NULL;
    assert_int_equal(lc_regauth_load(path, &a, NULL), 0);
    assert_string_equal(lc_regauth_source(a), path);
    char *u = NULL, *p = NULL;
    assert_true(lc_regauth_lookup(a, "127.0.0.1:5000", &u, &p));
    assert_string_equal(u, "alice");
    assert_string_equal(p, "pa:ss"); /* the first ':' splits */
    free(u);
    free(p);
    assert_true(lc_regauth_lookup(a, "docker.io", &u, &p));
    assert_string_equal(u, "bob");
    assert_string_equal(p, "x");
    free(u);
    free(p);
    assert_true(lc_regauth_lookup(a, "ghcr.io", &u, &p));
    assert_string_equal(u, "carol");
    free(u);
    free(p);
    assert_false(lc_regauth_lookup(a, "bad.io", &u, &p)); /* "nocolon" */
    assert_false(lc_regauth_lookup(a, "127.0.0.1:5001", &u, &p));
    lc_regauth_free(&a);
    assert_null(a);

    char *h = lc_regauth_basic_header("alice", "pa:ss");
    assert_string_equal(h, "Basic YWxpY2U6cGE6c3M=");
    free(h);

    /* DOCKER_CONFIG without a file: anonymous; an explicit missing file or bad JSON: errors. */
    setenv("DOCKER_CONFIG", "/nonexistent-lc-dir", 1);
    assert_int_equal(lc_regauth_load(NULL, &a, NULL), 0);
    assert_false(lc_regauth_lookup(a, "127.0.0.1:5000", &u, &p));
    assert_string_equal(lc_regauth_source(a), "/nonexistent-lc-dir/config.json");
    lc_regauth_free(&a);
    lc_err err = {0};
    assert_int_equal(lc_regauth_load("/nonexistent-lc-dir/x.json", &a, &err), -LC_NOT_FOUND);
    f = fopen(path, "w");
    fputs("{\"auths\": ", f);
    fclose(f);
    assert_int_equal(lc_regauth_load(path, &a, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_basic_and_bad),
        cmocka_unit_test(test_config_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
