/* evict.c - see evict.h. */
#include "evict.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "completeness.h"
#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "store_ac.h"

#define MOD "evict"

typedef Build__Bazel__Remote__Execution__V2__ActionResult action_result;

/* ---- victim selection: the oldest blobs covering `need` bytes ----------- */

typedef struct victim {
    lc_digest d;
    int64_t atime;
} victim;

typedef struct scan_ctx {
    /* max-heap on atime of the current choice; heap_bytes is its total */
    victim *heap;
    size_t n, cap;
    uint64_t heap_bytes, need;
    /* blobs idle since before age_cutoff (0 = no age limit) */
    victim *old;
    size_t n_old, cap_old;
    int64_t age_cutoff;
    uint64_t scanned;
    bool oom;
} scan_ctx;

static bool newer(const victim *a, const victim *b)
{
    return a->atime > b->atime;
}

static void heap_up(victim *h, size_t i)
{
    while (i > 0 && newer(&h[i], &h[(i - 1) / 2])) {
        victim t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void heap_down(victim *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && newer(&h[l], &h[m]))
            m = l;
        if (r < n && newer(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        victim t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int push(victim **v, size_t *n, size_t *cap, const victim *x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        victim *p = realloc(*v, c * sizeof(*p));
        if (p == NULL)
            return -1;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = *x;
    return 0;
}

static int visit_blob(void *arg, const lc_store_blob_info *info)
{
    scan_ctx *c = arg;
    victim x = {.d = info->digest, .atime = info->atime};
    c->scanned++;
    if (c->age_cutoff > 0 && info->atime < c->age_cutoff) {
        if (push(&c->old, &c->n_old, &c->cap_old, &x) != 0)
            goto oom;
        return 0;
    }
    if (c->need == 0)
        return 0;
    /* Keep the smallest set of oldest blobs whose sizes reach need: add this
     * one, then drop the newest while the rest still reach it. */
    if (c->heap_bytes >= c->need && !newer(&c->heap[0], &x))
        return 0;
    if (push(&c->heap, &c->n, &c->cap, &x) != 0)
        goto oom;
    heap_up(c->heap, c->n - 1);
    c->heap_bytes += (uint64_t)x.d.size;
    while (c->n > 0 && c->heap_bytes - (uint64_t)c->heap[0].d.size >= c->need) {
        c->heap_bytes -= (uint64_t)c->heap[0].d.size;
        c->heap[0] = c->heap[--c->n];
        heap_down(c->heap, c->n, 0);
    }
    return 0;
oom:
    c->oom = true;
    return 1;
}

static int by_atime(const void *a, const void *b)
{
    const victim *x = a, *y = b;
    return x->atime < y->atime ? -1 : x->atime > y->atime;
}

/* Deletes v[0..n) (each only if still idle since before its atime + 1 or
 * cutoff); with low_water, stops once the store is at or under it. */
static int delete_blobs(lc_store *store, victim *v, size_t n, int64_t cutoff, uint64_t low_water,
                        lc_evict_report *rep, lc_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (low_water > 0) {
            lc_store_totals t;
            lc_store_get_totals(store, &t);
            if (t.blob_bytes <= low_water)
                break;
        }
        bool gone = false;
        int64_t idle_before = cutoff > 0 ? cutoff : v[i].atime + 1;
        int rc = lc_store_blob_evict(store, &v[i].d, idle_before, &gone, err);
        if (rc < 0)
            return rc;
        if (gone) {
            rep->blobs++;
            rep->blob_bytes += (uint64_t)v[i].d.size;
        }
    }
    return 0;
}

/* ---- action results ------------------------------------------------------ */

typedef struct ac_ctx {
    lc_store *store;
    lc_stats *stats;
    int64_t age_cutoff; /* 0 = no age limit */
    lc_evict_report *rep;
    lc_err *err;
    int rc;
} ac_ctx;

/* Should this entry go? Unreadable ones, incomplete ones (a blob it needs
 * is gone, completeness.h: GetActionResult answers NOT_FOUND), and with an
 * age limit ones unused since before the cutoff. */
static bool ac_victim(ac_ctx *c, const uint8_t *value, size_t len)
{
    Layercache__V1__StoredActionResult *st =
        layercache__v1__stored_action_result__unpack(NULL, len, value);
    action_result *ar = NULL;
    bool gone = true;
    if (st != NULL)
        ar = build__bazel__remote__execution__v2__action_result__unpack(NULL, st->action_result.len,
                                                                        st->action_result.data);
    if (ar == NULL)
        goto out;
    int64_t newest = INT64_MIN;
    lc_err cerr = {0};
    /* Quiet: checking an entry must not keep its blobs (or Trees) alive. */
    int rc = lc_complete_check_quiet(c->store, ar, NULL, &newest, &cerr);
    if (rc < 0 && rc != -LC_INVALID_ARGUMENT) {
        c->rc = rc;
        *c->err = cerr;
    }
    if (rc != 1)
        goto out; /* incomplete or malformed */
    if (st->created_unix > newest)
        newest = st->created_unix;
    if (st->last_hit_unix > newest)
        newest = st->last_hit_unix;
    gone = c->age_cutoff > 0 && newest < c->age_cutoff;
out:
    if (ar != NULL)
        build__bazel__remote__execution__v2__action_result__free_unpacked(ar, NULL);
    if (st != NULL)
        layercache__v1__stored_action_result__free_unpacked(st, NULL);
    return gone && c->rc == 0;
}

static int visit_ac(void *arg, const char *instance, const lc_digest *action, const uint8_t *value,
                    size_t len)
{
    ac_ctx *c = arg;
    c->rep->ac_scanned++;
    if (!ac_victim(c, value, len))
        return c->rc != 0;
    bool gone = false;
    /* Deleting during the scan is safe: the iterator reads a fixed view. */
    if ((c->rc = lc_store_ac_evict(c->store, instance, action, value, len, &gone, c->err)) != 0)
        return 1;
    if (gone) {
        c->rep->ac_entries++;
        lc_stats_evict_ac(c->stats, instance, 1);
    }
    return 0;
}

/* trust.h: untrusted writers' entries (store_ac.h) follow the same rule. */
static int visit_untrusted(void *arg, const char *instance, const lc_digest *action,
                           const char *writer, const uint8_t *value, size_t len)
{
    ac_ctx *c = arg;
    c->rep->ac_scanned++;
    if (!ac_victim(c, value, len))
        return c->rc != 0;
    bool gone = false;
    if ((c->rc = lc_store_ac_untrusted_evict(c->store, instance, action, writer, value, len, &gone,
                                             c->err)) != 0)
        return 1;
    if (gone) {
        c->rep->ac_entries++;
        lc_stats_evict_ac(c->stats, instance, 1);
    }
    return 0;
}

static int sweep_ac(lc_store *store, lc_stats *stats, int64_t age_cutoff, lc_evict_report *rep,
                    lc_err *err)
{
    ac_ctx c = {.store = store, .stats = stats, .age_cutoff = age_cutoff, .rep = rep, .err = err};
    int rc = lc_store_ac_scan(store, NULL, visit_ac, &c, err);
    if (rc == 0 && c.rc == 0)
        rc = lc_store_ac_untrusted_scan(store, NULL, visit_untrusted, &c, err);
    return c.rc != 0 ? c.rc : rc;
}

/* ---- one pass ------------------------------------------------------------ */

int lc_evict_pass(lc_store *store, lc_stats *stats, const lc_evict_options *o, int64_t now,
                  lc_evict_report *rep, lc_err *err)
{
    memset(rep, 0, sizeof(*rep));
    int rc = lc_store_access_flush(store, now, &rep->touched, err);
    if (rc != 0)
        return rc;
    lc_store_totals t;
    lc_store_get_totals(store, &t);
    int pct = o->low_water_pct > 0 && o->low_water_pct <= 100 ? o->low_water_pct : 90;
    uint64_t max = o->max_bytes > 0 ? (uint64_t)o->max_bytes : 0;
    uint64_t low_water = max / 100 * (uint64_t)pct + max % 100 * (uint64_t)pct / 100;
    bool over = o->max_bytes > 0 && t.blob_bytes > (uint64_t)o->max_bytes;
    int64_t cutoff = o->max_age > 0 ? now - o->max_age : 0;
    if (!over && cutoff == 0)
        return 0;

    scan_ctx c = {.need = over ? t.blob_bytes - low_water : 0, .age_cutoff = cutoff};
    rc = lc_store_blob_scan(store, visit_blob, &c, err);
    if (rc == 0 && c.oom)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory choosing blobs to evict");
    rep->blobs_scanned = c.scanned;
    if (rc == 0)
        rc = delete_blobs(store, c.old, c.n_old, cutoff, 0, rep, err);
    if (rc == 0 && c.n > 0) {
        qsort(c.heap, c.n, sizeof(*c.heap), by_atime);
        rc = delete_blobs(store, c.heap, c.n, 0, low_water, rep, err);
    }
    free(c.heap);
    free(c.old);
    lc_stats_evict_blobs(stats, rep->blobs, rep->blob_bytes);
    if (rc == 0 && (rep->blobs > 0 || cutoff > 0))
        rc = sweep_ac(store, stats, cutoff, rep, err);
    return rc;
}

/* ---- background thread --------------------------------------------------- */

struct lc_evict {
    lc_store *store;
    lc_stats *stats;
    lc_evict_options o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
};

static void *run(void *arg)
{
    lc_evict *e = arg;
    /* An age check scans everything: often enough for the TTL, at most once
     * a minute; size checks are cheap until the limit is crossed. */
    int64_t age_every = e->o.max_age / 4 < 60 ? e->o.max_age / 4 : 60, last_age = 0;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += e->o.interval_ms / 1000;
        until.tv_nsec += (e->o.interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!e->stop && !e->kicked && pthread_cond_timedwait(&e->cv, &e->mu, &until) == 0)
            ;
        if (e->stop)
            break;
        e->kicked = false;
        pthread_mutex_unlock(&e->mu);

        int64_t now = (int64_t)time(NULL);
        lc_evict_options o = e->o;
        if (o.max_age > 0 && now - last_age >= age_every)
            last_age = now;
        else
            o.max_age = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        lc_evict_report rep;
        lc_err err = {0};
        int rc = lc_evict_pass(e->store, e->stats, &o, now, &rep, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (rc != 0)
            LC_WARN(MOD, "eviction pass failed (will retry): %s", err.msg);
        lc_err rerr = {0};
        bool reclaimed = false;
        if (lc_store_reclaim(e->store, false, &reclaimed, &rerr) != 0)
            LC_WARN(MOD, "reclaiming deleted blobs' space failed: %s", rerr.msg);
        else if (reclaimed)
            LC_INFO(MOD, "compacted blob files to reclaim deleted blobs' space");
        if (rep.blobs > 0 || rep.ac_entries > 0) {
            lc_store_totals t;
            lc_store_get_totals(e->store, &t);
            LC_INFO(MOD,
                    "evicted %" PRIu64 " blobs (%" PRIu64 " bytes) and %" PRIu64
                    " action results in %.0f ms (scanned %" PRIu64 " blobs, %" PRIu64
                    " entries); %" PRIu64 " bytes stored, limit %" PRId64,
                    rep.blobs, rep.blob_bytes, rep.ac_entries, ms, rep.blobs_scanned,
                    rep.ac_scanned, t.blob_bytes, e->o.max_bytes);
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int lc_evict_start(lc_store *store, lc_stats *stats, const lc_evict_options *o, lc_evict **out,
                   lc_err *err)
{
    *out = NULL;
    if (o->max_bytes < 0 || o->max_age < 0 || o->interval_ms < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "eviction limits must not be negative");
    lc_evict *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    e->store = store;
    e->stats = stats;
    e->o = *o;
    if (e->o.interval_ms == 0)
        e->o.interval_ms = 2000;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    int prc = pthread_create(&e->thread, NULL, run, e);
    if (prc != 0) {
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        free(e);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot start the eviction thread: %s",
                          strerror(prc));
    }
    *out = e;
    return 0;
}

void lc_evict_kick(lc_evict *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->kicked = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void lc_evict_stop(lc_evict **ep)
{
    lc_evict *e = ep != NULL ? *ep : NULL;
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    lc_err err = {0};
    if (lc_store_access_flush(e->store, (int64_t)time(NULL), NULL, &err) != 0)
        LC_WARN(MOD, "writing access times at shutdown: %s", err.msg);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
    *ep = NULL;
}
