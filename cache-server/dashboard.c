/* dashboard.c - see dashboard.h. */
#include "dashboard.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Generated from dashboard.html by the Makefile (xxd -i). */
extern unsigned char cache_server_dashboard_html[];
extern unsigned int cache_server_dashboard_html_len;

typedef struct key {
    char instance[LC_DASH_INSTANCE_MAX + 1];
    lc_digest action;
    uint64_t hits;
    double when; /* last hit, or the miss */
    char *text;  /* NULL until described */
} key;

typedef struct point {
    double t;
    uint64_t hits, misses, stored_bytes, entries, bytes_in, bytes_out;
} point;

struct lc_dash {
    lc_stats *stats;
    lc_store *store;
    lc_dash_describe_fn describe;
    pthread_mutex_t mu; /* guards everything below */
    key top[LC_DASH_TRACKED];
    size_t n_top;
    key misses[LC_DASH_MISSES]; /* ring */
    size_t miss_next, n_misses;
    point history[LC_DASH_HISTORY]; /* ring */
    size_t hist_next, n_hist;
};

static double now_seconds(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

lc_dash *lc_dash_new(lc_stats *stats, lc_store *store, lc_dash_describe_fn describe)
{
    lc_dash *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->stats = stats;
    d->store = store;
    d->describe = describe;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

void lc_dash_free(lc_dash **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    lc_dash *d = *dp;
    for (size_t i = 0; i < d->n_top; i++)
        free(d->top[i].text);
    for (size_t i = 0; i < d->n_misses; i++)
        free(d->misses[i].text);
    pthread_mutex_destroy(&d->mu);
    free(d);
    *dp = NULL;
}

static void key_set(key *k, const char *instance, const lc_digest *action, double when)
{
    free(k->text);
    memset(k, 0, sizeof(*k));
    snprintf(k->instance, sizeof(k->instance), "%s", instance ? instance : "");
    k->action = *action;
    k->when = when;
}

static bool key_is(const key *k, const char *instance, const lc_digest *action)
{
    return lc_digest_equal(&k->action, action) &&
           strncmp(k->instance, instance ? instance : "", LC_DASH_INSTANCE_MAX) == 0;
}

void lc_dash_ac_lookup(lc_dash *d, const char *instance, const lc_digest *action, bool hit)
{
    if (d == NULL || action == NULL)
        return;
    double now = now_seconds();
    pthread_mutex_lock(&d->mu);
    if (!hit) {
        key *k = &d->misses[d->miss_next];
        key_set(k, instance, action, now);
        d->miss_next = (d->miss_next + 1) % LC_DASH_MISSES;
        if (d->n_misses < LC_DASH_MISSES)
            d->n_misses++;
        pthread_mutex_unlock(&d->mu);
        return;
    }
    key *min = NULL;
    for (size_t i = 0; i < d->n_top; i++) {
        key *k = &d->top[i];
        if (key_is(k, instance, action)) {
            k->hits++;
            k->when = now;
            pthread_mutex_unlock(&d->mu);
            return;
        }
        if (min == NULL || k->hits < min->hits)
            min = k;
    }
    if (d->n_top < LC_DASH_TRACKED) {
        key *k = &d->top[d->n_top++];
        key_set(k, instance, action, now);
        k->hits = 1;
    } else { /* space-saving: take over the least-hit slot and its count */
        uint64_t inherited = min->hits;
        key_set(min, instance, action, now);
        min->hits = inherited + 1;
    }
    pthread_mutex_unlock(&d->mu);
}

static void totals_now(lc_dash *d, point *p)
{
    memset(p, 0, sizeof(*p));
    p->t = now_seconds();
    lc_stats_snapshot snap;
    if (d->stats != NULL && lc_stats_snapshot_take(d->stats, &snap) == 0) {
        p->hits = snap.total.ac_hits;
        p->misses = snap.total.ac_misses;
        p->bytes_in = snap.total.bytes_written;
        p->bytes_out = snap.total.bytes_read;
        lc_stats_snapshot_free(&snap);
    }
    if (d->store != NULL) {
        lc_store_totals t;
        lc_store_get_totals(d->store, &t);
        p->stored_bytes = t.blob_bytes;
        p->entries = t.ac_entries;
    }
}

void lc_dash_snapshot(lc_dash *d)
{
    if (d == NULL)
        return;
    point p;
    totals_now(d, &p);
    pthread_mutex_lock(&d->mu);
    d->history[d->hist_next] = p;
    d->hist_next = (d->hist_next + 1) % LC_DASH_HISTORY;
    if (d->n_hist < LC_DASH_HISTORY)
        d->n_hist++;
    pthread_mutex_unlock(&d->mu);
}

static json_t *point_json(const point *p)
{
    return json_pack("{s:f,s:I,s:I,s:I,s:I,s:I,s:I}", "t", p->t, "hits", (json_int_t)p->hits,
                     "misses", (json_int_t)p->misses, "stored_bytes", (json_int_t)p->stored_bytes,
                     "entries", (json_int_t)p->entries, "bytes_in", (json_int_t)p->bytes_in,
                     "bytes_out", (json_int_t)p->bytes_out);
}

/* json_dumps of root (stolen), or NULL. */
static char *dump(json_t *root)
{
    if (root == NULL)
        return NULL;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

char *lc_dash_history_json(lc_dash *d, int interval_seconds)
{
    point *pts = malloc(sizeof(point) * (LC_DASH_HISTORY + 1));
    if (pts == NULL)
        return NULL;
    pthread_mutex_lock(&d->mu);
    size_t n = d->n_hist;
    size_t first = (d->hist_next + LC_DASH_HISTORY - n) % LC_DASH_HISTORY;
    for (size_t i = 0; i < n; i++)
        pts[i] = d->history[(first + i) % LC_DASH_HISTORY];
    pthread_mutex_unlock(&d->mu);
    totals_now(d, &pts[n++]);

    json_t *arr = json_array();
    json_t *root = json_pack("{s:i,s:o}", "interval_seconds", interval_seconds, "points", arr);
    for (size_t i = 0; root != NULL && i < n; i++)
        if (json_array_append_new(arr, point_json(&pts[i])) != 0) {
            json_decref(root);
            root = NULL;
        }
    free(pts);
    return dump(root);
}

/* Copies of the tracked keys (texts not copied) under the lock. */
typedef struct key_copy {
    key k;
    bool has_text;
} key_copy;

static int by_hits_desc(const void *a, const void *b)
{
    const key_copy *x = a, *y = b;
    if (x->k.hits != y->k.hits)
        return x->k.hits < y->k.hits ? 1 : -1;
    return x->k.when < y->k.when ? 1 : (x->k.when > y->k.when ? -1 : 0);
}

/* The text of k: the cached one, else describe() (outside the lock: it
 * reads the store); the result is cached in the live slot if still there. */
static char *text_of(lc_dash *d, key *live, size_t nlive, const key *k)
{
    char *text = NULL;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < nlive; i++)
        if (key_is(&live[i], k->instance, &k->action) && live[i].text != NULL) {
            text = strdup(live[i].text);
            break;
        }
    pthread_mutex_unlock(&d->mu);
    if (text != NULL || d->describe == NULL || d->store == NULL)
        return text;
    text = d->describe(d->store, &k->action);
    if (text == NULL)
        return NULL;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < nlive; i++)
        if (key_is(&live[i], k->instance, &k->action) && live[i].text == NULL) {
            live[i].text = strdup(text);
            break;
        }
    pthread_mutex_unlock(&d->mu);
    return text;
}

static json_t *key_json(lc_dash *d, key *live, size_t nlive, const key *k, bool hit)
{
    char hex[LC_HASH_HEX_LEN + 1], id[LC_HASH_HEX_LEN + 32];
    lc_digest_hex(&k->action, hex);
    snprintf(id, sizeof(id), "%s/%lld", hex, (long long)k->action.size);
    char *text = text_of(d, live, nlive, k);
    json_t *o = hit ? json_pack("{s:s,s:s,s:I,s:f,s:s}", "instance", k->instance, "key", id, "hits",
                                (json_int_t)k->hits, "last", k->when, "text", text ? text : "")
                    : json_pack("{s:s,s:s,s:f,s:s}", "instance", k->instance, "key", id, "time",
                                k->when, "text", text ? text : "");
    free(text);
    return o;
}

char *lc_dash_keys_json(lc_dash *d)
{
    key_copy *top = calloc(LC_DASH_TRACKED, sizeof(*top));
    key_copy *miss = calloc(LC_DASH_MISSES, sizeof(*miss));
    json_t *root = NULL;
    if (top == NULL || miss == NULL)
        goto out;
    pthread_mutex_lock(&d->mu);
    size_t nt = d->n_top, nm = d->n_misses;
    for (size_t i = 0; i < nt; i++) {
        top[i].k = d->top[i];
        top[i].k.text = NULL;
    }
    for (size_t i = 0; i < nm; i++) { /* newest first */
        miss[i].k = d->misses[(d->miss_next + LC_DASH_MISSES - 1 - i) % LC_DASH_MISSES];
        miss[i].k.text = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    qsort(top, nt, sizeof(*top), by_hits_desc);
    if (nt > LC_DASH_TOP)
        nt = LC_DASH_TOP;

    json_t *hits = json_array(), *misses = json_array();
    root = json_pack("{s:o,s:o}", "top_hits", hits, "recent_misses", misses);
    if (root == NULL)
        goto out;
    for (size_t i = 0; i < nt; i++)
        json_array_append_new(hits, key_json(d, d->top, LC_DASH_TRACKED, &top[i].k, true));
    for (size_t i = 0; i < nm; i++)
        json_array_append_new(misses, key_json(d, d->misses, LC_DASH_MISSES, &miss[i].k, false));
out:
    free(top);
    free(miss);
    return dump(root);
}

const unsigned char *lc_dash_page(size_t *len)
{
    *len = cache_server_dashboard_html_len;
    return cache_server_dashboard_html;
}
