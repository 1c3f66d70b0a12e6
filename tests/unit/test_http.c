/* test_http.c - the HTTP side's pure parts: the request-head reader
 * (complete, incomplete, malformed, flags, the headers access control
 * reads), login sessions and who a request is (http_auth.h), the loopback
 * Host check, the Prometheus rendering of
 * request counts and latency buckets with label escaping, and the
 * dashboard's bounded key tracking (space-saving top hits, miss ring). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache-server/auth.h"
#include "cache-server/dashboard.h"
#include "cache-server/http_auth.h"
#include "cache-server/http_request.h"
#include "cache-server/metrics.h"
#include "err.h"

static int parse(const char *s, lc_http_request *r)
{
    return lc_http_request_parse(s, strlen(s), r);
}

static void test_request_complete(void **state)
{
    (void)state;
    lc_http_request r;
    const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    assert_int_equal(parse(s, &r), (int)strlen(s) - 4);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(r.minor, 1);
    assert_true(r.keep_alive);
    assert_false(r.has_body);

    assert_true(parse("HEAD / HTTP/1.0\n\n", &r) > 0); /* bare LF lines */
    assert_string_equal(r.method, "HEAD");
    assert_false(r.keep_alive);
    assert_true(parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", &r) > 0);
    assert_false(r.keep_alive);
    assert_true(parse("POST /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n", &r) > 0);
    assert_true(r.has_body);
    assert_true(parse("\r\nGET / HTTP/1.1\r\n\r\n", &r) > 0); /* leading empty line */
}

static void test_request_incomplete(void **state)
{
    (void)state;
    lc_http_request r;
    const char *full = "GET /status HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t n = 0; n < strlen(full); n++)
        assert_int_equal(lc_http_request_parse(full, n, &r), 0);
    assert_int_equal(parse(full, &r), (int)strlen(full));
}

static void test_request_malformed(void **state)
{
    (void)state;
    lc_http_request r;
    const char *bad[] = {
        "GET metrics HTTP/1.1\r\n\r\n",              /* target not absolute */
        "GET  / HTTP/1.1\r\n\r\n",                   /* empty target */
        "GET / HTTP/2.0\r\n\r\n",                    /* not HTTP/1.x */
        "GET / HTTP/1.1 \r\n\r\n",                   /* trailing space */
        "G(T / HTTP/1.1\r\n\r\n",                    /* method not a token */
        "GET / HTTP/1.1\rX: 1\r\n\r\n",              /* bare CR */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",         /* header without ':' */
        "GET / HTTP/1.1\r\n: v\r\n\r\n",             /* empty header name */
        "GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", /* obsolete folding */
        "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n", /* control byte in target */
        "VERYVERYLONGMETHODNAME / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &r), -1);
    char nul[] = "GET / HTTP/1.1\r\nA\0B: 1\r\n\r\n";
    assert_int_equal(lc_http_request_parse(nul, sizeof(nul) - 1, &r), -1);
    char early[] = "GE\0";
    assert_int_equal(lc_http_request_parse(early, 3, &r), -1); /* fails before the line ends */
}

static void test_metrics_render(void **state)
{
    (void)state;
    lc_metrics *m = lc_metrics_new();
    assert_non_null(m);
    int id = lc_metrics_add_method(m, "/pkg.Svc/Get");
    assert_int_equal(lc_metrics_add_method(m, "/pkg.Svc/Get"), id);
    lc_metrics_observe(m, id, LC_OK, 0.0002);     /* first bucket */
    lc_metrics_observe(m, id, LC_OK, 0.003);      /* le=0.005 */
    lc_metrics_observe(m, id, LC_NOT_FOUND, 100); /* +Inf only */
    lc_metrics_observe(m, id, 99, 0.001);         /* unknown code */
    lc_metrics_observe(m, 7, LC_OK, 1);           /* unregistered: ignored */

    lc_stats *st = lc_stats_new();
    lc_stats_ac(st, "we\"ird\\na\nme", true);
    lc_metrics_source src = {.stats = st, .max_bytes = 1234};
    size_t len = 0;
    char *text = lc_metrics_render(m, &src, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
#define HAS(s) assert_non_null(strstr(text, s))
    HAS("# TYPE layercache_grpc_requests_total counter\n");
    HAS("layercache_grpc_requests_total{service=\"pkg.Svc\",method=\"Get\",code=\"OK\"} 2\n");
    HAS("layercache_grpc_requests_total{service=\"pkg.Svc\",method=\"Get\",code=\"NOT_FOUND\"} "
        "1\n");
    HAS("layercache_grpc_requests_total{service=\"pkg.Svc\",method=\"Get\",code=\"UNKNOWN\"} 1\n");
    HAS("_bucket{service=\"pkg.Svc\",method=\"Get\",le=\"0.0005\"} 1\n");
    HAS("_bucket{service=\"pkg.Svc\",method=\"Get\",le=\"0.001\"} 2\n");
    HAS("_bucket{service=\"pkg.Svc\",method=\"Get\",le=\"0.005\"} 3\n");
    HAS("_bucket{service=\"pkg.Svc\",method=\"Get\",le=\"60\"} 3\n");
    HAS("_bucket{service=\"pkg.Svc\",method=\"Get\",le=\"+Inf\"} 4\n");
    HAS("layercache_grpc_request_duration_seconds_count{service=\"pkg.Svc\",method=\"Get\"} 4\n");
    HAS("layercache_ac_hits_total{instance_name=\"we\\\"ird\\\\na\\nme\"} 1\n");
    HAS("layercache_max_size_bytes 1234\n");
#undef HAS
    free(text);
    lc_stats_free(&st);
    lc_metrics_free(&m);
    assert_null(m);
}

static lc_digest key_n(int n)
{
    lc_digest d;
    char s[32];
    snprintf(s, sizeof(s), "key %d", n);
    lc_digest_of(s, strlen(s), &d);
    return d;
}

static void test_dash_keys(void **state)
{
    (void)state;
    lc_dash *d = lc_dash_new(NULL, NULL, NULL);
    assert_non_null(d);
    /* One key hit often among many hit once: it stays on top. */
    lc_digest hot = key_n(-1);
    for (int i = 0; i < 3 * LC_DASH_TRACKED; i++) {
        lc_digest k = key_n(i);
        lc_dash_ac_lookup(d, "i", &k, true);
        if (i % 4 == 0)
            lc_dash_ac_lookup(d, "i", &hot, true);
    }
    for (int i = 0; i < LC_DASH_MISSES + 5; i++) {
        lc_digest k = key_n(1000 + i);
        lc_dash_ac_lookup(d, "m", &k, false);
    }
    char *json = lc_dash_keys_json(d);
    assert_non_null(json);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&hot, hex);
    char *first = strstr(json, "\"key\"");
    assert_non_null(first);
    assert_non_null(strstr(first, hex));
    assert_true(strstr(json, hex) < strstr(json, "\"recent_misses\""));
    /* Only the newest LC_DASH_MISSES misses, newest first. */
    lc_digest newest = key_n(1000 + LC_DASH_MISSES + 4), dropped = key_n(1000);
    lc_digest_hex(&newest, hex);
    char *misses = strstr(json, "\"recent_misses\"");
    assert_non_null(strstr(misses, hex));
    lc_digest_hex(&dropped, hex);
    assert_null(strstr(misses, hex));
    size_t n = 0;
    for (char *p = misses; (p = strstr(p, "\"time\"")) != NULL; p++)
        n++;
    assert_int_equal(n, LC_DASH_MISSES);
    free(json);
    lc_dash_snapshot(d);
    json = lc_dash_history_json(d, 5);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"interval_seconds\":5"));
    free(json);
    lc_dash_free(&d);
    assert_null(d);
}

/* The headers access control reads: Authorization, the lc_session cookie
 * among others, Host, Origin, Sec-Fetch-Site; the query string. */
static void test_request_access_headers(void **state)
{
    (void)state;
    lc_http_request r;
    assert_true(parse("POST /login?limit=5&x=1 HTTP/1.1\r\nHost: 127.0.0.1:9090\r\n"
                      "Authorization: Bearer abc\r\nCookie: a=b; lc_session=0123abcd ; c=d\r\n"
                      "Origin: http://127.0.0.1:9090\r\nSec-Fetch-Site: same-origin\r\n\r\n",
                      &r) > 0);
    assert_string_equal(r.path, "/login");
    assert_string_equal(r.query, "limit=5&x=1");
    assert_string_equal(r.authorization, "Bearer abc");
    assert_string_equal(r.session, "0123abcd");
    assert_string_equal(r.host, "127.0.0.1:9090");
    assert_string_equal(r.origin, "http://127.0.0.1:9090");
    assert_string_equal(r.fetch_site, "same-origin");
    assert_false(r.authorization_bad || r.session_bad || r.host_bad || r.origin_bad);
    /* Two Authorization or Host headers: ambiguous, flagged. */
    assert_true(parse("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n"
                      "Host: a\r\nHost: b\r\n\r\n",
                      &r) > 0);
    assert_true(r.authorization_bad);
    assert_true(r.host_bad);
    /* A cookie named like ours but longer, or another cookie: not a session. */
    assert_true(parse("GET / HTTP/1.1\r\nCookie: lc_sessionx=1; xlc_session=2\r\n\r\n", &r) > 0);
    assert_string_equal(r.session, "");
    /* Too long to keep: flagged, never cut. */
    char big[6000];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nAuthorization: Bearer ");
    memset(big + n, 'a', 4300);
    strcpy(big + n + 4300, "\r\n\r\n");
    assert_true(lc_http_request_parse(big, strlen(big), &r) > 0);
    assert_true(r.authorization_bad);
    assert_string_equal(r.authorization, "");
}

static void identify_req(lc_http_request *r, const char *authz, const char *session)
{
    memset(r, 0, sizeof(*r));
    strcpy(r->method, "GET");
    strcpy(r->path, "/status");
    strcpy(r->host, "127.0.0.1:9090");
    if (authz != NULL)
        snprintf(r->authorization, sizeof(r->authorization), "%s", authz);
    if (session != NULL)
        snprintf(r->session, sizeof(r->session), "%s", session);
}

static void test_http_auth_sessions(void **state)
{
    (void)state;
    static const char text[] = "adm-secret admin boss\nrd-secret read viewer\n";
    lc_auth *a = NULL;
    lc_err err = {0};
    assert_int_equal(lc_auth_open_text(text, strlen(text), "t", false, &a, &err), 0);
    lc_http_auth *h = lc_http_auth_new(a);
    assert_non_null(h);
    assert_true(lc_http_auth_required(h));
    lc_http_request r;
    lc_auth_id id;
    int64_t now = 1000000;

    identify_req(&r, NULL, NULL);
    assert_int_equal(lc_http_auth_identify(h, &r, now, &id, &err), 0);
    assert_int_equal(id.role, LC_ROLE_NONE);
    identify_req(&r, "Bearer rd-secret", NULL);
    assert_int_equal(lc_http_auth_identify(h, &r, now, &id, &err), 1);
    assert_int_equal(id.role, LC_ROLE_READ);
    assert_string_equal(id.name, "viewer");
    identify_req(&r, "Bearer nope", NULL);
    assert_int_equal(lc_http_auth_identify(h, &r, now, &id, &err), -LC_UNAUTHENTICATED);
    assert_null(strstr(err.msg, "nope"));
    identify_req(&r, "Basic abc", NULL);
    assert_int_equal(lc_http_auth_identify(h, &r, now, &id, &err), -LC_UNAUTHENTICATED);

    /* Login: a cookie for the token's session. */
    char cookie[256];
    identify_req(&r, "Bearer adm-secret", NULL);
    strcpy(r.method, "POST");
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err), 0);
    assert_int_equal(id.role, LC_ROLE_ADMIN);
    assert_non_null(strstr(cookie, "HttpOnly"));
    assert_non_null(strstr(cookie, "SameSite=Strict"));
    assert_null(strstr(cookie, "adm-secret"));
    char sid[LC_HTTP_SESSION_MAX + 1];
    assert_int_equal(sscanf(cookie, "Set-Cookie: lc_session=%128[0-9a-f];", sid), 1);
    assert_int_equal(strlen(sid), 64);
    assert_int_equal(lc_http_auth_sessions(h), 1);
    identify_req(&r, NULL, sid);
    assert_int_equal(lc_http_auth_identify(h, &r, now + 10, &id, &err), 1);
    assert_int_equal(id.role, LC_ROLE_ADMIN);
    assert_string_equal(id.name, "boss");
    /* A wrong or expired session is anonymous. */
    char other[65];
    memcpy(other, sid, 65);
    other[0] = other[0] == 'a' ? 'b' : 'a';
    identify_req(&r, NULL, other);
    assert_int_equal(lc_http_auth_identify(h, &r, now + 10, &id, &err), 0);
    identify_req(&r, NULL, sid);
    assert_int_equal(lc_http_auth_identify(h, &r, now + LC_HTTP_SESSION_TTL + 1, &id, &err), 0);
    assert_int_equal(lc_http_auth_sessions(h), 0);

    /* A token removed by a reload ends its sessions. */
    identify_req(&r, "Bearer adm-secret", NULL);
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err), 0);
    assert_int_equal(sscanf(cookie, "Set-Cookie: lc_session=%128[0-9a-f];", sid), 1);
    static const char fewer[] = "rd-secret read viewer\n";
    assert_int_equal(lc_auth_load_text(a, fewer, strlen(fewer), "t", &err), 0);
    identify_req(&r, NULL, sid);
    assert_int_equal(lc_http_auth_identify(h, &r, now + 1, &id, &err), 0);
    assert_int_equal(lc_http_auth_sessions(h), 0);

    /* Logins from another site's page are refused; so is one without a token. */
    identify_req(&r, "Bearer rd-secret", NULL);
    strcpy(r.origin, "http://evil.example");
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err),
                     -LC_PERMISSION_DENIED);
    identify_req(&r, "Bearer rd-secret", NULL);
    strcpy(r.fetch_site, "cross-site");
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err),
                     -LC_PERMISSION_DENIED);
    identify_req(&r, "Bearer rd-secret", NULL);
    strcpy(r.origin, "http://127.0.0.1:9090");
    strcpy(r.fetch_site, "same-origin");
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err), 0);
    identify_req(&r, NULL, NULL);
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err),
                     -LC_UNAUTHENTICATED);
    /* Logout ends the session and clears the cookie. */
    identify_req(&r, "Bearer rd-secret", NULL);
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err), 0);
    assert_int_equal(sscanf(cookie, "Set-Cookie: lc_session=%128[0-9a-f];", sid), 1);
    identify_req(&r, NULL, sid);
    assert_int_equal(lc_http_auth_logout(h, &r, cookie, sizeof(cookie), &err), 0);
    assert_non_null(strstr(cookie, "Max-Age=0"));
    assert_int_equal(lc_http_auth_identify(h, &r, now + 1, &id, &err), 0);
    lc_http_auth_free(&h);
    assert_null(h);
    lc_auth_free(&a);

    /* Anonymous read; no tokens at all. */
    assert_int_equal(lc_auth_open_text(text, strlen(text), "t", true, &a, &err), 0);
    h = lc_http_auth_new(a);
    identify_req(&r, NULL, NULL);
    assert_int_equal(lc_http_auth_identify(h, &r, now, &id, &err), 0);
    assert_int_equal(id.role, LC_ROLE_READ);
    lc_http_auth_free(&h);
    lc_auth_free(&a);
    h = lc_http_auth_new(NULL);
    assert_false(lc_http_auth_required(h));
    assert_int_equal(lc_http_auth_identify(h, &r, now, &id, &err), 1);
    assert_int_equal(id.role, LC_ROLE_ADMIN);
    assert_int_equal(lc_http_auth_login(h, &r, now, &id, cookie, sizeof(cookie), &err),
                     -LC_FAILED_PRECONDITION);
    lc_http_auth_free(&h);
}

static void test_loopback_hosts(void **state)
{
    (void)state;
    const char *yes[] = {"localhost", "localhost:9090", "LOCALHOST:1", "127.0.0.1",
                         "127.0.0.1:9090", "127.1.2.3:80", "[::1]", "[::1]:9090"};
    const char *no[] = {"evil.example", "evil.example:9090", "127.0.0.1.evil.example",
                        "10.0.0.1:9090", "[::2]:9090", "localhost.evil", "127.0.0.256", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!lc_http_auth_loopback_host(yes[i]))
            fail_msg("%s should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (lc_http_auth_loopback_host(no[i]))
            fail_msg("%s should not be loopback", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_access_headers),
        cmocka_unit_test(test_http_auth_sessions),
        cmocka_unit_test(test_loopback_hosts),
        cmocka_unit_test(test_request_complete),  cmocka_unit_test(test_request_incomplete),
        cmocka_unit_test(test_request_malformed), cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_dash_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
