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

/* ---- action results ------------------------------------------------------ */

/* Entries the sweep deletes per write. */
#define AC_BATCH 128

typedef struct ac_ctx {
    lc_store *store;
    lc_stats *stats;
    int64_t age_cutoff; /* 0 = no age limit */
    lc_evict_report *rep;
    lc_evict_cursor *cursor; /* NULL: sweep everything */
    uint64_t limit;          /* entries to visit with a cursor */
    bool stopped;            /* the limit was reached */
    /* victims waiting for one write; instance and expect are owned copies */
    lc_store_ac_victim pending[AC_BATCH];
    size_t n_pending;
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

/* Remembers where the sweep is; 1 (stop) at the limit or out of memory. */
static int move_cursor(ac_ctx *c, const char *instance, const lc_digest *action)
{
    if (c->cursor == NULL)
        return 0;
    size_t n = strlen(instance);
    if (c->cursor->instance == NULL || strlen(c->cursor->instance) < n) {
        char *p = realloc(c->cursor->instance, n + 1);
        if (p == NULL) {
            c->rc = lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
            return 1;
        }
        c->cursor->instance = p;
    }
    memcpy(c->cursor->instance, instance, n + 1);
    c->cursor->action = *action;
    if (c->rep->ac_scanned >= c->limit) {
        c->stopped = true;
        return 1;
    }
    return 0;
}

/* Deletes the pending victims (each only if unchanged) in one write. */
static void flush_victims(ac_ctx *c)
{
    if (c->n_pending > 0 && c->rc == 0) {
        c->rc = lc_store_ac_evict_many(c->store, c->pending, c->n_pending, c->err);
        for (size_t i = 0; c->rc == 0 && i < c->n_pending; i++) {
            if (c->pending[i].evicted) {
                c->rep->ac_entries++;
                lc_stats_evict_ac(c->stats, c->pending[i].instance, 1);
            }
        }
    }
    for (size_t i = 0; i < c->n_pending; i++) {
        free((char *)c->pending[i].instance);
        free((uint8_t *)c->pending[i].expect);
    }
    c->n_pending = 0;
}

static int visit_ac(void *arg, const char *instance, const lc_digest *action, const uint8_t *value,
                    size_t len)
{
    ac_ctx *c = arg;
    c->rep->ac_scanned++;
    if (!ac_victim(c, value, len))
        return c->rc != 0 || move_cursor(c, instance, action);
    /* Deleting during the scan is safe: the iterator reads a fixed view. */
    char *name = strdup(instance);
    uint8_t *expect = malloc(len + 1);
    if (name == NULL || expect == NULL) {
        free(name);
        free(expect);
        c->rc = lc_err_set(c->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        return 1;
    }
    if (len > 0)
        memcpy(expect, value, len);
    c->pending[c->n_pending++] = (lc_store_ac_victim){
        .instance = name, .action = *action, .expect = expect, .expect_len = len};
    if (c->n_pending == AC_BATCH) {
        flush_victims(c);
        if (c->rc != 0)
            return 1;
    }
    return move_cursor(c, instance, action);
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

void lc_evict_cursor_clear(lc_evict_cursor *c)
{
    free(c->instance);
    c->instance = NULL;
}

/* Checks up to limit entries after the cursor (wrapping around once), or
 * every entry without a cursor. */
static int sweep_ac(lc_store *store, lc_stats *stats, int64_t age_cutoff, lc_evict_cursor *cursor,
                    uint64_t limit, lc_evict_report *rep, lc_err *err)
{
    ac_ctx c = {.store = store,
                .stats = stats,
                .age_cutoff = age_cutoff,
                .rep = rep,
                .cursor = cursor,
                .limit = limit,
                .err = err};
    int rc;
    if (cursor == NULL) {
        rc = lc_store_ac_scan(store, NULL, visit_ac, &c, err);
    } else {
        bool from_start = cursor->instance == NULL;
        rc = lc_store_ac_scan_after(store, cursor->instance, &cursor->action, visit_ac, &c, err);
        if (rc == 0 && c.rc == 0 && !c.stopped) { /* reached the end */
            lc_evict_cursor_clear(cursor);
            if (!from_start)
                rc = lc_store_ac_scan_after(store, NULL, NULL, visit_ac, &c, err);
        }
    }
    flush_victims(&c);
    /* Untrusted writers' entries (store_ac.h): few, so always all of them. */
    if (rc == 0 && c.rc == 0)
        rc = lc_store_ac_untrusted_scan(store, NULL, visit_untrusted, &c, err);
    return c.rc != 0 ? c.rc : rc;
}

/* ---- one pass ------------------------------------------------------------ */

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t pct_of(uint64_t max, int pct)
{
    return max / 100 * (uint64_t)pct + max % 100 * (uint64_t)pct / 100;
}

int lc_evict_pass(lc_store *store, lc_stats *stats, const lc_evict_options *o, int64_t now,
                  lc_evict_cursor *cursor, lc_evict_report *rep, lc_err *err)
{
    memset(rep, 0, sizeof(*rep));
    int rc = lc_store_access_flush(store, now, &rep->touched, err);
    if (rc != 0)
        return rc;
    lc_store_totals t;
    lc_store_get_totals(store, &t);
    uint64_t max = o->max_bytes > 0 ? (uint64_t)o->max_bytes : 0;
    int hi = o->high_water_pct > 0 && o->high_water_pct <= 100 ? o->high_water_pct : 90;
    int lo = o->low_water_pct > 0 && o->low_water_pct <= hi ? o->low_water_pct : 80;
    if (lo > hi)
        lo = hi;
    uint64_t wanted = lc_store_space_wanted(store), need = 0;
    if (max > 0 && t.used_bytes + wanted > pct_of(max, hi)) {
        uint64_t low = pct_of(max, lo);
        need = t.used_bytes + wanted > low ? t.used_bytes + wanted - low : 0;
    }
    int64_t cutoff = o->max_age > 0 ? now - o->max_age : 0;
    if (need == 0 && cutoff == 0)
        return 0;
    uint64_t charged = 0;
    double t0 = mono_ms();
    rc = lc_store_evict_lru(store, need, cutoff, &rep->blobs, &rep->blob_bytes, &charged, err);
    double t1 = mono_ms();
    rep->blob_ms = t1 - t0;
    lc_stats_evict_blobs(stats, rep->blobs, rep->blob_bytes);
    if (rc == 0 && (rep->blobs > 0 || cutoff > 0)) {
        /* A slice in proportion to what went; age checks look further. */
        uint64_t limit = rep->blobs * 4 > 1024 ? rep->blobs * 4 : 1024;
        if (cutoff > 0 && limit < 65536)
            limit = 65536;
        rc = sweep_ac(store, stats, cutoff, cursor, limit, rep, err);
        rep->sweep_ms = mono_ms() - t1;
    }
    return rc;
}

/* ---- background thread --------------------------------------------------- */

struct lc_evict {
    lc_store *store;
    lc_stats *stats;
    lc_evict_options o;
    lc_evict_cursor cursor;
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

        lc_store_maintain(e->store); /* a fresh look at the disk first */
        int64_t now = (int64_t)time(NULL);
        lc_evict_options o = e->o;
        if (o.max_age > 0 && now - last_age >= age_every)
            last_age = now;
        else
            o.max_age = 0;
        lc_evict_report rep;
        lc_err err = {0};
        int rc = lc_evict_pass(e->store, e->stats, &o, now, &e->cursor, &rep, &err);
        if (rc != 0)
            LC_WARN(MOD, "eviction pass failed (will retry): %s", err.msg);
        lc_err rerr = {0};
        bool reclaimed = false;
        lc_store_totals before;
        lc_store_get_totals(e->store, &before);
        /* The data directory beyond its target: compact all deleted chunks now. */
        if (lc_store_reclaim(e->store, before.disk_over > 0, &reclaimed, &rerr) != 0)
            LC_WARN(MOD, "reclaiming deleted blobs' space failed: %s", rerr.msg);
        else if (reclaimed)
            LC_DEBUG(MOD, "compacted blob files to reclaim deleted blobs' space");
        if (rep.blobs > 0 || rep.ac_entries > 0) {
            lc_store_totals t;
            lc_store_get_totals(e->store, &t);
            LC_INFO(MOD,
                    "evicted %" PRIu64 " blobs (%" PRIu64 " bytes) in %.0f ms, then %" PRIu64
                    " action results that lost one in %.0f ms (checked %" PRIu64
                    " entries); %" PRIu64 " bytes used, limit %" PRId64,
                    rep.blobs, rep.blob_bytes, rep.blob_ms, rep.ac_entries, rep.sweep_ms,
                    rep.ac_scanned, t.used_bytes, e->o.max_bytes);
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void kick_hook(void *ctx)
{
    lc_evict_kick(ctx);
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
    if (e->o.max_bytes > 0) {
        int hi = e->o.high_water_pct > 0 && e->o.high_water_pct <= 100 ? e->o.high_water_pct : 90;
        lc_store_set_evict_hook(store, kick_hook, e, pct_of((uint64_t)e->o.max_bytes, hi));
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    int prc = pthread_create(&e->thread, NULL, run, e);
    if (prc != 0) {
        lc_store_set_evict_hook(store, NULL, NULL, 0);
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
    lc_store_set_evict_hook(e->store, NULL, NULL, 0);
    lc_evict_cursor_clear(&e->cursor);
    lc_err err = {0};
    if (lc_store_access_flush(e->store, (int64_t)time(NULL), NULL, &err) != 0)
        LC_WARN(MOD, "writing access times at shutdown: %s", err.msg);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
    *ep = NULL;
}
