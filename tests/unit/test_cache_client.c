/* test_cache_client.c - the cache client without a cache server: resource
 * names, UUIDs, target parsing, capability checks, and the failure modes of
 * an unreachable server (closed port, a peer that never speaks HTTP/2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cache_client.h"
#include "resource.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loopback TCP socket bound to a free port; listening if listen_it. */
static int loopback_socket(int listen_it, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    if (listen_it)
        assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static void test_uuid(void **state)
{
    (void)state;
    char a[LC_CACHE_UUID_LEN + 1], b[LC_CACHE_UUID_LEN + 1];
    lc_cache_uuid(a);
    lc_cache_uuid(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
}

static void test_resource_names(void **state)
{
    (void)state;
    lc_digest d;
    lc_digest_of("abc", 3, &d);
    char buf[512];
    const char *hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char want[512];

    assert_int_equal(lc_cache_resource_read("", &d, buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "blobs/%s/3", hex);
    assert_string_equal(buf, want);
    assert_int_equal(lc_cache_resource_read(NULL, &d, buf, sizeof(buf)), 0);
    assert_string_equal(buf, want);
    assert_int_equal(lc_cache_resource_read("team/a", &d, buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "team/a/blobs/%s/3", hex);
    assert_string_equal(buf, want);

    /* The server's parser (common/resource.h) accepts what the client writes. */
    lc_resource r;
    lc_err err = {0};
    assert_int_equal(lc_resource_parse(buf, strlen(buf), LC_RESOURCE_READ, &r, &err), 0);
    assert_string_equal(r.instance, "team/a");
    assert_true(lc_digest_equal(&r.digest, &d));

    char uuid[LC_CACHE_UUID_LEN + 1];
    lc_cache_uuid(uuid);
    assert_int_equal(lc_cache_resource_upload("team/a", uuid, &d, buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "team/a/uploads/%s/blobs/%s/3", uuid, hex);
    assert_string_equal(buf, want);
    assert_int_equal(lc_resource_parse(buf, strlen(buf), LC_RESOURCE_UPLOAD, &r, &err), 0);
    assert_string_equal(r.uuid, uuid);
    assert_int_equal(lc_cache_resource_upload("", uuid, &d, buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "uploads/", 8), 0);
    assert_int_equal(lc_resource_parse(buf, strlen(buf), LC_RESOURCE_UPLOAD, &r, &err), 0);

    /* Too small a buffer is an error, not a truncated name. */
    assert_int_equal(lc_cache_resource_read("", &d, buf, 20), -LC_INVALID_ARGUMENT);
}

static void test_parse_target(void **state)
{
    (void)state;
    char buf[128];
    lc_err err = {0};
    assert_int_equal(lc_cache_parse_target("grpc://127.0.0.1:9092", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "127.0.0.1:9092");
    assert_int_equal(lc_cache_parse_target("localhost:1", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "localhost:1");
    assert_int_equal(lc_cache_parse_target("grpc://[::1]:80/", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "[::1]:80");

    /* TLS targets parse like plain ones; the scheme picks the credentials. */
    assert_int_equal(lc_cache_parse_target("grpcs://h:1", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "h:1");
    assert_int_equal(lc_cache_target_is_tls("grpcs://h:1"), 1);
    assert_int_equal(lc_cache_target_is_tls("grpc://h:1"), 0);
    assert_int_equal(lc_cache_target_is_tls("h:1"), 0);
    const char *bad[] = {"",         "http://h:1",      "h",    "grpc://h", "grpc://:1", "h:x1",
                         "h:123456", "grpc://h:1/path", "[::1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lc_err_clear(&err);
        assert_int_equal(lc_cache_parse_target(bad[i], buf, sizeof(buf), &err),
                         -LC_INVALID_ARGUMENT);
        assert_true(err.msg[0] != '\0');
    }
    lc_cache_client *c = (lc_cache_client *)&err; /* must be reset to NULL */
    assert_int_equal(lc_cache_client_open("ftp://h:1", NULL, &c, &err), -LC_INVALID_ARGUMENT);
    assert_null(c);
    /* TLS files with a plaintext target, and unreadable TLS files, are
     * refused at open, naming the flag. */
    lc_cache_client_options o = {.ca_file = "/nonexistent/ca.pem"};
    lc_err_clear(&err);
    c = (lc_cache_client *)&err;
    assert_int_equal(lc_cache_client_open("grpc://h:1", &o, &c, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "grpcs://"));
    assert_null(c);
    lc_err_clear(&err);
    assert_int_equal(lc_cache_client_open("grpcs://h:1", &o, &c, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "--cacert"));
    assert_null(c);
    lc_cache_client_options half = {.cert_file = "/etc/hostname"};
    lc_err_clear(&err);
    assert_int_equal(lc_cache_client_open("grpcs://h:1", &half, &c, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "--tls-key"));
    assert_null(c);
    /* Without files, grpcs:// uses the system roots: opening succeeds. */
    assert_int_equal(lc_cache_client_open("grpcs://127.0.0.1:1", NULL, &c, &err), 0);
    lc_cache_client_close(&c);
    assert_null(c);
}

static void test_capabilities_check(void **state)
{
    (void)state;
    lc_err err = {0};
    lc_cache_capabilities caps = {
        .sha256 = 1, .update_enabled = 1, .low_major = 2, .high_major = 2, .high_minor = 3};
    assert_int_equal(lc_cache_capabilities_check(&caps, 1, &err), 0);
    caps.update_enabled = 0;
    assert_int_equal(lc_cache_capabilities_check(&caps, 0, &err), 0);
    assert_int_equal(lc_cache_capabilities_check(&caps, 1, &err), -LC_FAILED_PRECONDITION);
    caps.update_enabled = 1;
    caps.sha256 = 0;
    assert_int_equal(lc_cache_capabilities_check(&caps, 0, &err), -LC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "SHA-256"));
    caps.sha256 = 1;
    caps.low_major = caps.high_major = 3;
    assert_int_equal(lc_cache_capabilities_check(&caps, 0, &err), -LC_FAILED_PRECONDITION);
    memset(&caps, 0, sizeof(caps)); /* a server that sends no versions */
    caps.sha256 = 1;
    assert_int_equal(lc_cache_capabilities_check(&caps, 0, &err), -LC_FAILED_PRECONDITION);
}

/* Every kind of call against target must fail with UNAVAILABLE, naming the
 * server, within limit_s seconds each. */
static void expect_unreachable(const char *target, int64_t deadline_ms, double limit_s)
{
    lc_cache_client_options o = {
        .deadline_ms = deadline_ms, .connect_timeout_ms = 1000, .token = "secret"};
    lc_cache_client *c = NULL;
    lc_err err = {0};
    assert_int_equal(lc_cache_client_open(target, &o, &c, &err), 0);
    const char *hp = lc_cache_client_target(c);
    char want[160];
    snprintf(want, sizeof(want), "cache server %s unreachable", hp);

    lc_digest d;
    lc_digest_of("x", 1, &d);
    for (int kind = 0; kind < 6; kind++) {
        lc_err_clear(&err);
        double t0 = now_s();
        int rc = 0;
        lc_cache_capabilities caps;
        lc_action_result *r = NULL;
        unsigned char missing;
        lc_cache_lookup look[3];
        lc_digest keys[3] = {d, d, d};
        void *buf = NULL;
        switch (kind) {
        case 0:
            rc = lc_cache_client_get_capabilities(c, &caps, &err);
            break;
        case 1:
            rc = lc_cache_client_get_action_result(c, &d, &r, &err);
            break;
        case 2:
            rc = lc_cache_client_find_missing(c, &d, 1, &missing, &err);
            break;
        case 3:
            rc = lc_cache_client_get_action_results(c, keys, 3, look, &err);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(look[i].status, -LC_UNAVAILABLE);
                assert_null(look[i].result);
            }
            break;
        case 4:
            rc = lc_cache_client_write_buffer(c, &d, "x", &err);
            break;
        case 5:
            rc = lc_cache_client_read_buffer(c, &d, &buf, &err);
            break;
        }
        double secs = now_s() - t0;
        if (rc != -LC_UNAVAILABLE || strstr(err.msg, want) == NULL || secs > limit_s)
            fail_msg("call %d: rc %d after %.2fs, message: %s", kind, rc, secs, err.msg);
        assert_null(r);
        assert_null(buf);
    }
    lc_cache_client_close(&c);
    assert_null(c);
}

static void test_unreachable_closed_port(void **state)
{
    (void)state;
    int port;
    int fd = loopback_socket(0, &port); /* bound, not listening: connections are refused */
    char target[64];
    snprintf(target, sizeof(target), "grpc://127.0.0.1:%d", port);
    expect_unreachable(target, 10000, 3.0);
    close(fd);
}

static void test_unreachable_silent_peer(void **state)
{
    (void)state;
    /* The kernel completes the TCP handshake but nobody speaks HTTP/2: the
     * call must end at its deadline instead of hanging. */
    int port;
    int fd = loopback_socket(1, &port);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    expect_unreachable(target, 700, 3.0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_resource_names),
        cmocka_unit_test(test_parse_target),
        cmocka_unit_test(test_capabilities_check),
        cmocka_unit_test(test_unreachable_closed_port),
        cmocka_unit_test(test_unreachable_silent_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
