/* http.h - the HTTP side of layercache-server: one libuv loop on a thread
 * of its own serving
 *   GET /metrics       Prometheus text exposition (metrics.h, docs/METRICS.md)
 *   GET /healthz       "ok"
 *   GET /              the dashboard page (dashboard.h), self-contained; it
 *                      holds no data and shows a login form when needed
 *   GET /status        JSON: version, uptime, store totals, limits, counters
 *                      (per instance: admin only)
 *   GET /api/history   JSON: periodic counter snapshots (hit rate over time)
 *   GET /api/keys      JSON: most-hit and most recently missed action keys
 *                      with their instruction texts (admin only)
 *   GET /api/actions   JSON: the newest action cache entries with writer and
 *                      trust state (admin only; admin.h)
 *   GET /api/session   JSON: who the request is (role, name)
 *   POST /login        a Bearer token in, the login cookie out (http_auth.h)
 *   POST /logout       the login cookie cleared
 * and a timer that takes the dashboard's snapshots.
 *
 * Access (docs/SECURITY.md): with --tokens, everything but /metrics,
 * /healthz, the page and the login needs a token (Bearer header or login
 * cookie, http_auth.h): instruction texts can carry secrets. Listening on
 * loopback (the default), requests whose Host names another machine are
 * refused (DNS rebinding).
 *
 * Limits, since the port may face a whole network: GET and HEAD (POST only
 * for /login and /logout, without a body; 405 otherwise), a request head of
 * at most LC_HTTP_MAX_REQUEST bytes (431), LC_HTTP_HEADER_TIMEOUT_MS to
 * send it (408), at most LC_HTTP_MAX_CONNS connections (more are closed at
 * once), one request per connection (Connection: close). Responses are
 * built in memory on the loop thread from the counters (stats.h reads take
 * its mutex only to copy); /api/actions scans the store on libuv's thread
 * pool.
 */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "dashboard.h"
#include "err.h"
#include "hits.h"
#include "server.h"
#include "stats.h"
#include "store.h"
#include "trust.h"

#define LC_HTTP_MAX_REQUEST 8192
#define LC_HTTP_HEADER_TIMEOUT_MS 5000
#define LC_HTTP_LINGER_MS 2000
#define LC_HTTP_MAX_CONNS 128
#define LC_HTTP_SNAPSHOT_MS 5000

typedef struct lc_http lc_http;

/* What the pages read; copied by lc_http_start. store and stats are
 * borrowed and must outlive the lc_http. */
typedef struct lc_http_ctx {
    lc_store *store;
    lc_stats *stats;
    int64_t max_bytes;            /* --max-size, 0 = unlimited */
    int64_t max_age;              /* --max-age in seconds, 0 = none */
    int snapshot_ms;              /* dashboard history interval; 0 = LC_HTTP_SNAPSHOT_MS */
    lc_dash_describe_fn describe; /* instruction text of a key (dashboard); NULL = none */
    lc_auth *auth;                /* --tokens; NULL = every page open (auth.h) */
    lc_trust *trust;              /* promotions and rejections (trust.h); may be NULL */
    lc_hits *hits;                /* flushed before listing entries (hits.h); may be NULL */
    /* The newest entries as JSON (admin.h: lc_admin_entries_json), run on
     * libuv's thread pool; NULL = /api/actions answers 404. */
    char *(*entries)(lc_store *store, lc_hits *hits, size_t limit);
} lc_http_ctx;

/* Binds addr ("HOST:PORT" with a numeric IPv4 host or "[IPv6]"; port 0
 * picks a free port) and starts the loop thread. bound (cap bytes) gets
 * "HOST:PORT" with the host as written and the real port. On failure
 * nothing is left running. */
int lc_http_start(const char *addr, const lc_http_ctx *ctx, lc_http **out, char *bound, size_t cap,
                  lc_err *err);

/* Wraps a service's method table so its calls are counted and timed for
 * /metrics and the dashboard (observe.h). Call before lc_srv_start; the
 * returned table lives until lc_http_stop, so free the gRPC server first.
 * With h == NULL returns methods unchanged. */
const lc_method *lc_http_observe(lc_http *h, const lc_method *methods, size_t n);

/* Stops the loop (from any thread), closes every connection, joins the
 * thread and frees everything; NULLs *h. Accepts NULL. */
void lc_http_stop(lc_http **h);

#endif
