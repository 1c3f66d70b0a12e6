/* hits.c - see hits.h. */
#include "hits.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "store_ac.h"

#define MOD "hits"
#define N_BUCKETS 1024 /* power of two */
#define N_STRIPES 64   /* power of two */

typedef struct pending {
    struct pending *next;
    char *instance;
    char *writer; /* "" for the trusted entry, else an untrusted writer's (store_ac.h) */
    lc_digest action;
    uint64_t count;
    int64_t last;
} pending;

struct lc_hits {
    lc_store *store;
    pthread_mutex_t mu; /* guards buckets, n_pending, oldest */
    pending *buckets[N_BUCKETS];
    size_t n_pending;
    int64_t oldest;           /* when the oldest pending hit was recorded, 0 = none */
    pthread_mutex_t flush_mu; /* one flush at a time */
    pthread_mutex_t stripes[N_STRIPES];
};

/* The digest is a SHA-256: its first bytes are already uniformly spread. */
static size_t word_of(const lc_digest *d)
{
    size_t w;
    memcpy(&w, d->hash, sizeof(w));
    return w;
}

static size_t bucket_of(const char *instance, const char *writer, const lc_digest *d)
{
    size_t h = word_of(d);
    for (const char *p = instance; *p; p++)
        h = h * 31 + (unsigned char)*p;
    for (const char *p = writer; *p; p++)
        h = h * 37 + (unsigned char)*p;
    return h & (N_BUCKETS - 1);
}

static bool pending_is(const pending *p, const char *instance, const char *writer,
                       const lc_digest *action)
{
    return lc_digest_equal(&p->action, action) && strcmp(p->instance, instance) == 0 &&
           strcmp(p->writer, writer) == 0;
}

static pthread_mutex_t *stripe_of(lc_hits *h, const lc_digest *d)
{
    return &h->stripes[(word_of(d) >> 8) & (N_STRIPES - 1)];
}

lc_hits *lc_hits_new(lc_store *store)
{
    lc_hits *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->store = store;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->flush_mu, NULL);
    for (int i = 0; i < N_STRIPES; i++)
        pthread_mutex_init(&h->stripes[i], NULL);
    return h;
}

static void pending_free(pending *p)
{
    while (p != NULL) {
        pending *next = p->next;
        free(p->instance);
        free(p->writer);
        free(p);
        p = next;
    }
}

void lc_hits_free(lc_hits **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    lc_hits *h = *hp;
    lc_err err = {0};
    if (lc_hits_flush(h, &err) < 0)
        LC_WARN(MOD, "hit counts not saved at shutdown: %s", err.msg);
    for (int i = 0; i < N_BUCKETS; i++)
        pending_free(h->buckets[i]);
    for (int i = 0; i < N_STRIPES; i++)
        pthread_mutex_destroy(&h->stripes[i]);
    pthread_mutex_destroy(&h->flush_mu);
    pthread_mutex_destroy(&h->mu);
    free(h);
    *hp = NULL;
}

void lc_hits_lock(lc_hits *h, const lc_digest *action)
{
    if (h != NULL)
        pthread_mutex_lock(stripe_of(h, action));
}

void lc_hits_unlock(lc_hits *h, const lc_digest *action)
{
    if (h != NULL)
        pthread_mutex_unlock(stripe_of(h, action));
}

void lc_hits_record(lc_hits *h, const char *instance, const lc_digest *action, const char *writer,
                    int64_t when)
{
    if (h == NULL)
        return;
    instance = instance ? instance : "";
    writer = writer ? writer : "";
    size_t b = bucket_of(instance, writer, action);
    bool due = false;
    pthread_mutex_lock(&h->mu);
    pending *p = h->buckets[b];
    while (p != NULL && !pending_is(p, instance, writer, action))
        p = p->next;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        char *copy = p ? strdup(instance) : NULL;
        char *wcopy = copy ? strdup(writer) : NULL;
        if (wcopy == NULL) {
            free(copy);
            free(p); /* out of memory: this hit goes uncounted */
            pthread_mutex_unlock(&h->mu);
            return;
        }
        p->instance = copy;
        p->writer = wcopy;
        p->action = *action;
        p->next = h->buckets[b];
        h->buckets[b] = p;
        h->n_pending++;
    }
    p->count++;
    if (when > p->last)
        p->last = when;
    if (h->oldest == 0)
        h->oldest = when;
    due = h->n_pending >= LC_HITS_FLUSH_ENTRIES || when - h->oldest >= LC_HITS_FLUSH_SECONDS;
    pthread_mutex_unlock(&h->mu);
    if (due && pthread_mutex_trylock(&h->flush_mu) == 0) {
        /* This caller pays for the batch; others carry on counting. */
        pthread_mutex_unlock(&h->flush_mu);
        lc_err err = {0};
        if (lc_hits_flush(h, &err) < 0)
            LC_WARN(MOD, "cannot save hit counts: %s", err.msg);
    }
}

void lc_hits_forget(lc_hits *h, const char *instance, const lc_digest *action,
                    const char *writer)
{
    if (h == NULL)
        return;
    instance = instance ? instance : "";
    writer = writer ? writer : "";
    size_t b = bucket_of(instance, writer, action);
    pthread_mutex_lock(&h->mu);
    for (pending **pp = &h->buckets[b]; *pp != NULL; pp = &(*pp)->next) {
        pending *p = *pp;
        if (pending_is(p, instance, writer, action)) {
            *pp = p->next;
            p->next = NULL;
            pending_free(p);
            h->n_pending--;
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
}

/* Adds p's counts to its stored entry; the caller holds p's stripe lock. */
static int apply(lc_hits *h, const pending *p, lc_err *err)
{
    uint8_t *value = NULL, *out = NULL;
    size_t len = 0;
    bool untrusted = p->writer[0] != '\0';
    int rc = untrusted ? lc_store_ac_untrusted_get(h->store, p->instance, &p->action, p->writer,
                                                   &value, &len, err)
                       : lc_store_ac_get(h->store, p->instance, &p->action, &value, &len, err);
    if (rc == -LC_NOT_FOUND) {
        lc_err_clear(err); /* purged or evicted meanwhile: nothing to count */
        return 0;
    }
    if (rc < 0)
        return rc;
    Layercache__V1__StoredActionResult *s =
        layercache__v1__stored_action_result__unpack(NULL, len, value);
    if (s == NULL) {
        rc = 0; /* unreadable: GetActionResult treats it as a miss anyway */
        goto out;
    }
    s->hit_count += p->count;
    if (p->last > s->last_hit_unix)
        s->last_hit_unix = p->last;
    size_t n = layercache__v1__stored_action_result__get_packed_size(s);
    out = malloc(n ? n : 1);
    if (out == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    layercache__v1__stored_action_result__pack(s, out);
    rc = untrusted
             ? lc_store_ac_untrusted_put(h->store, p->instance, &p->action, p->writer, out, n, err)
             : lc_store_ac_put(h->store, p->instance, &p->action, out, n, err);
out:
    free(out);
    if (s != NULL)
        layercache__v1__stored_action_result__free_unpacked(s, NULL);
    free(value);
    return rc;
}

int lc_hits_flush(lc_hits *h, lc_err *err)
{
    if (h == NULL)
        return 0;
    pthread_mutex_lock(&h->flush_mu);
    /* Take the whole table; hits arriving meanwhile start a new one. */
    pending *all = NULL;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < N_BUCKETS; i++) {
        pending *p = h->buckets[i];
        while (p != NULL) {
            pending *next = p->next;
            p->next = all;
            all = p;
            p = next;
        }
        h->buckets[i] = NULL;
    }
    h->n_pending = 0;
    h->oldest = 0;
    pthread_mutex_unlock(&h->mu);

    int first = 0;
    for (pending *p = all; p != NULL; p = p->next) {
        lc_err e = {0};
        pthread_mutex_lock(stripe_of(h, &p->action));
        int rc = apply(h, p, &e);
        pthread_mutex_unlock(stripe_of(h, &p->action));
        if (rc < 0 && first == 0) {
            first = rc;
            lc_err_set(err, -rc, "%s", e.msg);
        }
    }
    pending_free(all);
    pthread_mutex_unlock(&h->flush_mu);
    return first;
}
