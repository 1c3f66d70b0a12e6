/* test_http.c - the HTTP side's pure parts: the request-head reader
 * (complete, incomplete, malformed, flags), the Prometheus rendering of
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

#include "cache-server/dashboard.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_complete),  cmocka_unit_test(test_request_incomplete),
        cmocka_unit_test(test_request_malformed), cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_dash_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
