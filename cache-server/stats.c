/* stats.c - see stats.h. */
#include "stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

struct inst {
    char *name;
    uint64_t ac_hits, ac_misses, ac_updates, bytes_read, bytes_written;
    double saved;       /* admin: build seconds saved by hits */
    uint64_t evictions; /* evict: action cache entries */
};

struct lc_stats {
    time_t started;
    const char *method_names[LC_STATS_MAX_METHODS];
    _Atomic uint64_t calls[LC_STATS_MAX_METHODS], errors[LC_STATS_MAX_METHODS];
    int n_methods;
    pthread_mutex_t mu;                            /* guards insts */
    struct inst insts[LC_STATS_MAX_INSTANCES + 1]; /* the last one is LC_STATS_OTHER */
    size_t n_insts;
    _Atomic uint64_t blobs_evicted, blob_bytes_evicted; /* evict */
};

lc_stats *lc_stats_new(void)
{
    lc_stats *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->started = time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void lc_stats_free(lc_stats **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    lc_stats *s = *sp;
    for (size_t i = 0; i < s->n_insts; i++)
        free(s->insts[i].name);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *sp = NULL;
}

int lc_stats_add_method(lc_stats *s, const char *path)
{
    if (s->n_methods >= LC_STATS_MAX_METHODS)
        return -1;
    s->method_names[s->n_methods] = path;
    return s->n_methods++;
}

void lc_stats_call(lc_stats *s, int id, int code)
{
    if (s == NULL || id < 0 || id >= s->n_methods)
        return;
    atomic_fetch_add_explicit(&s->calls[id], 1, memory_order_relaxed);
    if (code != LC_OK)
        atomic_fetch_add_explicit(&s->errors[id], 1, memory_order_relaxed);
}

/* The entry for instance; the caller holds mu. Never NULL. */
static struct inst *find_inst(lc_stats *s, const char *instance)
{
    for (size_t i = 0; i < s->n_insts; i++)
        if (strcmp(s->insts[i].name, instance) == 0)
            return &s->insts[i];
    bool full = s->n_insts >= LC_STATS_MAX_INSTANCES;
    const char *name = full ? LC_STATS_OTHER : instance;
    if (full) {
        for (size_t i = LC_STATS_MAX_INSTANCES; i < s->n_insts; i++)
            if (strcmp(s->insts[i].name, name) == 0)
                return &s->insts[i];
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return &s->insts[LC_STATS_MAX_INSTANCES]; /* uncounted scratch if even that failed */
    struct inst *e =
        &s->insts[s->n_insts < LC_STATS_MAX_INSTANCES ? s->n_insts : LC_STATS_MAX_INSTANCES];
    memset(e, 0, sizeof(*e));
    e->name = copy;
    s->n_insts++;
    return e;
}

void lc_stats_ac(lc_stats *s, const char *instance, bool hit)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    struct inst *e = find_inst(s, instance ? instance : "");
    if (hit)
        e->ac_hits++;
    else
        e->ac_misses++;
    pthread_mutex_unlock(&s->mu);
}

void lc_stats_ac_update(lc_stats *s, const char *instance)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    find_inst(s, instance ? instance : "")->ac_updates++;
    pthread_mutex_unlock(&s->mu);
}

void lc_stats_bytes(lc_stats *s, const char *instance, uint64_t read, uint64_t written)
{
    if (s == NULL || (read == 0 && written == 0))
        return;
    pthread_mutex_lock(&s->mu);
    struct inst *e = find_inst(s, instance ? instance : "");
    e->bytes_read += read;
    e->bytes_written += written;
    pthread_mutex_unlock(&s->mu);
}

/* admin: build seconds saved (see stats.h). */
void lc_stats_saved(lc_stats *s, const char *instance, double seconds)
{
    if (s == NULL || !(seconds > 0))
        return;
    pthread_mutex_lock(&s->mu);
    find_inst(s, instance ? instance : "")->saved += seconds;
    pthread_mutex_unlock(&s->mu);
}

void lc_stats_evict_ac(lc_stats *s, const char *instance, uint64_t entries)
{
    if (s == NULL || entries == 0)
        return;
    pthread_mutex_lock(&s->mu);
    find_inst(s, instance ? instance : "")->evictions += entries;
    pthread_mutex_unlock(&s->mu);
}

void lc_stats_evict_blobs(lc_stats *s, uint64_t blobs, uint64_t bytes)
{
    if (s == NULL)
        return;
    atomic_fetch_add_explicit(&s->blobs_evicted, blobs, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->blob_bytes_evicted, bytes, memory_order_relaxed);
}

int64_t lc_stats_uptime(const lc_stats *s)
{
    return (int64_t)(time(NULL) - s->started);
}

int lc_stats_snapshot_take(lc_stats *s, lc_stats_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    out->total.name = "";
    out->methods = calloc((size_t)s->n_methods + 1, sizeof(*out->methods));
    if (out->methods == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    for (int i = 0; i < s->n_methods; i++) {
        out->methods[i].name = s->method_names[i];
        out->methods[i].calls = atomic_load_explicit(&s->calls[i], memory_order_relaxed);
        out->methods[i].errors = atomic_load_explicit(&s->errors[i], memory_order_relaxed);
    }
    out->n_methods = (size_t)s->n_methods;
    pthread_mutex_lock(&s->mu);
    out->instances = calloc(s->n_insts + 1, sizeof(*out->instances));
    if (out->instances == NULL) {
        pthread_mutex_unlock(&s->mu);
        lc_stats_snapshot_free(out);
        return -LC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < s->n_insts; i++) {
        const struct inst *e = &s->insts[i];
        lc_stats_instance *o = &out->instances[i];
        o->name = strdup(e->name);
        if (o->name == NULL) {
            pthread_mutex_unlock(&s->mu);
            out->n_instances = i;
            lc_stats_snapshot_free(out);
            return -LC_RESOURCE_EXHAUSTED;
        }
        o->ac_hits = e->ac_hits;
        o->ac_misses = e->ac_misses;
        o->ac_updates = e->ac_updates;
        o->bytes_read = e->bytes_read;
        o->bytes_written = e->bytes_written;
        o->evictions = e->evictions;
        out->total.evictions += e->evictions;
        o->build_seconds_saved = e->saved; /* admin */
        out->total.build_seconds_saved += e->saved;
        out->total.ac_hits += e->ac_hits;
        out->total.ac_misses += e->ac_misses;
        out->total.ac_updates += e->ac_updates;
        out->total.bytes_read += e->bytes_read;
        out->total.bytes_written += e->bytes_written;
    }
    out->n_instances = s->n_insts;
    pthread_mutex_unlock(&s->mu);
    out->blobs_evicted = atomic_load_explicit(&s->blobs_evicted, memory_order_relaxed);
    out->blob_bytes_evicted = atomic_load_explicit(&s->blob_bytes_evicted, memory_order_relaxed);
    return 0;
}

void lc_stats_snapshot_free(lc_stats_snapshot *snap)
{
    if (snap == NULL)
        return;
    for (size_t i = 0; i < snap->n_instances; i++)
        free((char *)snap->instances[i].name);
    free(snap->instances);
    free(snap->methods);
    memset(snap, 0, sizeof(*snap));
}
