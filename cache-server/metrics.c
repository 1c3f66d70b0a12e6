/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define N_CODES 17

/* Spans a cache hit served from memory (~100 us) to a large blob stream
 * over a slow link (tens of seconds). */
const double lc_metrics_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
const size_t lc_metrics_n_buckets = sizeof(lc_metrics_buckets) / sizeof(lc_metrics_buckets[0]);
#define N_BUCKETS (sizeof(lc_metrics_buckets) / sizeof(lc_metrics_buckets[0]))

struct method {
    const char *path;
    _Atomic uint64_t codes[N_CODES];
    _Atomic uint64_t buckets[N_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t sum_ns;
};

struct lc_metrics {
    struct method methods[LC_METRICS_MAX_METHODS];
    int n_methods;
};

lc_metrics *lc_metrics_new(void)
{
    return calloc(1, sizeof(lc_metrics));
}

void lc_metrics_free(lc_metrics **m)
{
    if (m == NULL || *m == NULL)
        return;
    free(*m);
    *m = NULL;
}

int lc_metrics_add_method(lc_metrics *m, const char *path)
{
    for (int i = 0; i < m->n_methods; i++)
        if (strcmp(m->methods[i].path, path) == 0)
            return i;
    if (m->n_methods >= LC_METRICS_MAX_METHODS)
        return -1;
    m->methods[m->n_methods].path = path;
    return m->n_methods++;
}

void lc_metrics_observe(lc_metrics *m, int id, int code, double seconds)
{
    if (m == NULL || id < 0 || id >= m->n_methods)
        return;
    struct method *e = &m->methods[id];
    if (code < 0 || code >= N_CODES)
        code = LC_UNKNOWN;
    if (!(seconds >= 0))
        seconds = 0;
    size_t b = 0;
    while (b < N_BUCKETS && seconds > lc_metrics_buckets[b])
        b++;
    atomic_fetch_add_explicit(&e->codes[code], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

/* ---- output buffer -------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_vadd(sbuf *b, const char *fmt, va_list ap)
{
    if (b->oom)
        return;
    for (;;) {
        va_list cp;
        va_copy(cp, ap);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, cp);
        va_end(cp);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

__attribute__((format(printf, 2, 3))) static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(b, fmt, ap);
    va_end(ap);
}

/* A label value with \, " and newline escaped (exposition format 0.0.4). */
static void sb_label(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_add(b, "\\\\");
        else if (*s == '"')
            sb_add(b, "\\\"");
        else if (*s == '\n')
            sb_add(b, "\\n");
        else
            sb_add(b, "%c", *s);
    }
}

static void family(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_add(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* "/pkg.Service/Method" -> service and method labels. */
static void method_labels(sbuf *b, const char *path)
{
    const char *p = path[0] == '/' ? path + 1 : path;
    const char *slash = strrchr(p, '/');
    sb_add(b, "service=\"");
    if (slash != NULL) {
        sb_add(b, "%.*s", (int)(slash - p), p);
        p = slash + 1;
    }
    sb_add(b, "\",method=\"");
    sb_label(b, p);
    sb_add(b, "\"");
}

static void render_grpc(sbuf *b, lc_metrics *m)
{
    family(b, "layercache_grpc_requests_total", "counter",
           "gRPC calls handled, by service, method and status code.");
    for (int i = 0; i < m->n_methods; i++) {
        struct method *e = &m->methods[i];
        for (int c = 0; c < N_CODES; c++) {
            uint64_t n = atomic_load_explicit(&e->codes[c], memory_order_relaxed);
            if (n == 0)
                continue;
            sb_add(b, "layercache_grpc_requests_total{");
            method_labels(b, e->path);
            sb_add(b, ",code=\"%s\"} %llu\n", lc_code_name(c), (unsigned long long)n);
        }
    }
    family(b, "layercache_grpc_request_duration_seconds", "histogram",
           "Time from a call's arrival at its handler to its status, by service and method.");
    for (int i = 0; i < m->n_methods; i++) {
        struct method *e = &m->methods[i];
        uint64_t cum = 0;
        for (size_t k = 0; k <= N_BUCKETS; k++) {
            cum += atomic_load_explicit(&e->buckets[k], memory_order_relaxed);
            sb_add(b, "layercache_grpc_request_duration_seconds_bucket{");
            method_labels(b, e->path);
            if (k < N_BUCKETS)
                sb_add(b, ",le=\"%g\"} %llu\n", lc_metrics_buckets[k], (unsigned long long)cum);
            else
                sb_add(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        uint64_t ns = atomic_load_explicit(&e->sum_ns, memory_order_relaxed);
        sb_add(b, "layercache_grpc_request_duration_seconds_sum{");
        method_labels(b, e->path);
        sb_add(b, "} %.9f\n", (double)ns / 1e9);
        sb_add(b, "layercache_grpc_request_duration_seconds_count{");
        method_labels(b, e->path);
        sb_add(b, "} %llu\n", (unsigned long long)cum);
    }
}

/* One counter family with an instance label, from a field of each instance. */
typedef double (*inst_field_fn)(const lc_stats_instance *in);
static double f_hits(const lc_stats_instance *in)
{
    return (double)in->ac_hits;
}
static double f_misses(const lc_stats_instance *in)
{
    return (double)in->ac_misses;
}
static double f_updates(const lc_stats_instance *in)
{
    return (double)in->ac_updates;
}
static double f_read(const lc_stats_instance *in)
{
    return (double)in->bytes_read;
}
static double f_written(const lc_stats_instance *in)
{
    return (double)in->bytes_written;
}
static double f_saved(const lc_stats_instance *in)
{
    return in->build_seconds_saved;
}
static double f_evicted(const lc_stats_instance *in)
{
    return (double)in->evictions;
}

static void render_instances(sbuf *b, const lc_stats_snapshot *snap)
{
    static const struct {
        const char *name, *help;
        inst_field_fn fn;
    } fams[] = {
        {"layercache_ac_hits_total", "GetActionResult calls that found a complete result.", f_hits},
        {"layercache_ac_misses_total",
         "GetActionResult calls that found no result, or one whose blobs are gone.", f_misses},
        {"layercache_ac_updates_total", "UpdateActionResult calls that stored a result.",
         f_updates},
        {"layercache_sent_bytes_total", "Blob bytes sent to clients (bytes out).", f_read},
        {"layercache_received_bytes_total", "Blob bytes received from clients (bytes in).",
         f_written},
        {"layercache_build_seconds_saved_total",
         "Sum over hits of the original execution time of the cached step.", f_saved},
        {"layercache_ac_evictions_total", "Action results evicted (size or age limit).", f_evicted},
    };
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        family(b, fams[f].name, "counter", fams[f].help);
        for (size_t i = 0; snap != NULL && i < snap->n_instances; i++) {
            sb_add(b, "%s{instance_name=\"", fams[f].name);
            sb_label(b, snap->instances[i].name);
            sb_add(b, "\"} %.17g\n", fams[f].fn(&snap->instances[i]));
        }
    }
}

char *lc_metrics_render(lc_metrics *m, const lc_metrics_source *src, size_t *len)
{
    sbuf b = {0};
    lc_stats_snapshot snap;
    bool have_snap = src->stats != NULL && lc_stats_snapshot_take(src->stats, &snap) == 0;

    family(&b, "layercache_build_info", "gauge", "Always 1; the version is in the label.");
    sb_add(&b, "layercache_build_info{version=\"%s\"} 1\n", LC_VERSION);
    if (src->stats != NULL) {
        family(&b, "layercache_uptime_seconds", "gauge", "Seconds since the server started.");
        sb_add(&b, "layercache_uptime_seconds %lld\n", (long long)lc_stats_uptime(src->stats));
    }
    if (m != NULL)
        render_grpc(&b, m);
    render_instances(&b, have_snap ? &snap : NULL);

    family(&b, "layercache_blobs_evicted_total", "counter",
           "Blobs evicted from the CAS (size or age limit).");
    if (have_snap)
        sb_add(&b, "layercache_blobs_evicted_total %llu\n", (unsigned long long)snap.blobs_evicted);
    family(&b, "layercache_evicted_bytes_total", "counter", "Bytes of the blobs evicted.");
    if (have_snap)
        sb_add(&b, "layercache_evicted_bytes_total %llu\n",
               (unsigned long long)snap.blob_bytes_evicted);
    if (src->store != NULL) {
        lc_store_totals t;
        lc_store_get_totals(src->store, &t);
        family(&b, "layercache_stored_bytes", "gauge", "Bytes of blob data stored in the CAS.");
        sb_add(&b, "layercache_stored_bytes %llu\n", (unsigned long long)t.blob_bytes);
        family(&b, "layercache_stored_blobs", "gauge", "Blobs stored in the CAS.");
        sb_add(&b, "layercache_stored_blobs %llu\n", (unsigned long long)t.blobs);
        family(&b, "layercache_ac_entries", "gauge", "Action results stored, all instances.");
        sb_add(&b, "layercache_ac_entries %llu\n", (unsigned long long)t.ac_entries);
    }
    /* trust.h: untrusted writers. Counted by each replica that stores the
     * key (cluster mode: once per owner). */
    lc_trust_counts tc;
    lc_trust_counts_get(src->trust, &tc);
    family(&b, "layercache_ac_promotions_total", "counter",
           "Action cache keys whose untrusted results became visible to every caller, by what "
           "promoted them: a trusted writer storing the identical result, or --promote-quorum.");
    sb_add(&b, "layercache_ac_promotions_total{reason=\"trusted\"} %llu\n",
           (unsigned long long)tc.promoted_trusted);
    sb_add(&b, "layercache_ac_promotions_total{reason=\"quorum\"} %llu\n",
           (unsigned long long)tc.promoted_quorum);
    family(&b, "layercache_ac_untrusted_rejections_total", "counter",
           "UpdateActionResult calls of untrusted tokens whose result differs from the key's "
           "trusted entry: the trusted entry stays; the result is kept for its writer only.");
    sb_add(&b, "layercache_ac_untrusted_rejections_total %llu\n", (unsigned long long)tc.rejected);
    family(&b, "layercache_ac_untrusted_updates_total", "counter",
           "UpdateActionResult calls of untrusted tokens kept for their writer (rejections "
           "included).");
    sb_add(&b, "layercache_ac_untrusted_updates_total %llu\n",
           (unsigned long long)tc.untrusted_updates);
    family(&b, "layercache_max_size_bytes", "gauge",
           "The --max-size limit on stored blob bytes; 0 = unlimited.");
    sb_add(&b, "layercache_max_size_bytes %lld\n", (long long)src->max_bytes);
    family(&b, "layercache_max_age_seconds", "gauge",
           "The --max-age limit on unused entries; 0 = none.");
    sb_add(&b, "layercache_max_age_seconds %lld\n", (long long)src->max_age);

    if (have_snap)
        lc_stats_snapshot_free(&snap);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (b.p == NULL)
        sb_add(&b, "%s", "");
    *len = b.len;
    return b.p;
}
