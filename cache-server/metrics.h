/* metrics.h - the Prometheus exposition of layercache-server (GET /metrics,
 * text format 0.0.4): gRPC request counts per method and status code and
 * latency histograms per method (recorded here, fed by observe.h), plus the
 * counters kept by stats.h and the store's totals, read at scrape time.
 *
 * Metric names and labels are a stable interface (Grafana dashboards are
 * built on them): every one is listed in docs/METRICS.md. Change them only
 * together with that page.
 *
 * Thread safety: lc_metrics_add_method is for set-up (before serving);
 * lc_metrics_observe is lock-free and may be called from any thread;
 * lc_metrics_render may run concurrently with observers (counters are read
 * one by one, so a scrape may see a call in its count but not yet in its
 * histogram; Prometheus tolerates that).
 */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "store.h"
#include "trust.h"

#ifndef LC_VERSION
#define LC_VERSION "0.1.0"
#endif

#define LC_METRICS_MAX_METHODS 64

typedef struct lc_metrics lc_metrics;

/* NULL when out of memory. Free with lc_metrics_free (NULLs the pointer). */
lc_metrics *lc_metrics_new(void);
void lc_metrics_free(lc_metrics **m);

/* Registers a gRPC method path ("/pkg.Service/Method", must outlive m) and
 * returns its id for lc_metrics_observe; the same path gives the same id;
 * -1 when the table is full. Not thread-safe: call before serving. */
int lc_metrics_add_method(lc_metrics *m, const char *path);

/* Counts one finished call of method id with gRPC status code (0..16;
 * others count as UNKNOWN) that took `seconds`. */
void lc_metrics_observe(lc_metrics *m, int id, int code, double seconds);

/* What a scrape reads besides m; every pointer may be NULL (the families it
 * feeds are then empty). */
typedef struct lc_metrics_source {
    lc_stats *stats;
    lc_store *store;
    int64_t max_bytes; /* --max-size, 0 = unlimited */
    int64_t max_age;   /* --max-age in seconds, 0 = none */
    lc_trust *trust;   /* trust.h: promotions and rejections of untrusted results */
} lc_metrics_source;

/* Renders the whole exposition into a malloc'd NUL-terminated string the
 * caller frees (*len = its length), or NULL when out of memory. */
char *lc_metrics_render(lc_metrics *m, const lc_metrics_source *src, size_t *len);

/* The latency histogram's upper bounds in seconds (for docs and tests). */
extern const double lc_metrics_buckets[];
extern const size_t lc_metrics_n_buckets;

#endif
