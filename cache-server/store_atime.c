/* store_atime.c - access times: reads recorded in memory, flushed in batches
 * into blob records and the access-time index (blob_atime), and LRU
 * eviction that walks that index from its oldest end.
 *
 * Every blob has exactly one index entry, atime(8) hash(32) size(8), with
 * the atime of its blob_meta record; both change in one batch under the
 * blob's stripe lock. Index entries are written once and removed with
 * SingleDelete, so an entry and its tombstone cancel out in the next
 * compaction that meets both instead of travelling to the last level: the
 * index is a queue, and queues of plain tombstones make every scan slower.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

_Static_assert(LC_STORE__LOCKS <= 64, "stripe sets are kept in a uint64_t");

void lc_store__atime_key(int64_t atime, const lc_digest *d, uint8_t key[LC_STORE__ATIME_KEY_LEN])
{
    lc_store__put_be64(key, (uint64_t)(atime < 0 ? 0 : atime));
    lc_store__meta_key(d, key + 8);
}

static void atomic_min64(_Atomic int64_t *p, int64_t v)
{
    int64_t cur = atomic_load(p);
    while (v < cur && !atomic_compare_exchange_weak(p, &cur, v))
        ;
}

void lc_store__note_atime(lc_store *s, int64_t atime)
{
    atomic_min64(&s->atime_new_min, atime); /* first: see lc_store_evict_lru */
    atomic_min64(&s->atime_floor, atime);
}

/* ---- the access table ----------------------------------------------------- */

static size_t acc_slot(const lc_digest *d)
{
    uint64_t h;
    memcpy(&h, d->hash, sizeof(h)); /* SHA-256 bytes are uniform already */
    return (size_t)(h ^ (uint64_t)d->size) & (LC_STORE__ACC_CAP - 1);
}

/* The slot holding d, or the free slot where it would go. Caller holds mu. */
static lc_digest *acc_find(lc_digest *table, const lc_digest *d)
{
    for (size_t i = acc_slot(d);; i = (i + 1) & (LC_STORE__ACC_CAP - 1))
        if (table[i].size < 0 || lc_digest_equal(&table[i], d))
            return &table[i];
}

void lc_store__acc_clear(lc_digest *table)
{
    memset(table, 0xff, LC_STORE__ACC_CAP * sizeof(*table)); /* size -1: free */
}

void lc_store__record(lc_store *s, const lc_digest *d)
{
    if (lc_digest_is_empty(d) || d->size < 0)
        return;
    pthread_mutex_lock(&s->acc.mu);
    lc_digest *slot = acc_find(s->acc.cur, d);
    if (slot->size < 0) {
        if (s->acc.n < LC_STORE__ACC_CAP / 4 * 3) {
            *slot = *d;
            s->acc.n++;
        } else {
            atomic_fetch_add(&s->acc.dropped, 1);
        }
    }
    pthread_mutex_unlock(&s->acc.mu);
}

bool lc_store__acc_pending(lc_store *s, const lc_digest *d)
{
    pthread_mutex_lock(&s->acc.mu);
    bool found = acc_find(s->acc.cur, d)->size >= 0;
    pthread_mutex_unlock(&s->acc.mu);
    return found;
}

int lc_store_access_flush(lc_store *s, int64_t when, uint64_t *flushed, lc_err *err)
{
    if (flushed != NULL)
        *flushed = 0;
    pthread_mutex_lock(&s->acc.flush_mu);
    pthread_mutex_lock(&s->acc.mu);
    lc_digest *table = s->acc.cur;
    size_t n = s->acc.n;
    s->acc.cur = s->acc.spare;
    s->acc.spare = table;
    s->acc.n = 0;
    pthread_mutex_unlock(&s->acc.mu);

    int rc = 0;
    enum { BATCH = 1024 };
    lc_digest batch[BATCH];
    size_t k = 0, done = 0;
    for (size_t i = 0; i < LC_STORE__ACC_CAP && done < n && rc == 0; i++) {
        if (table[i].size < 0)
            continue;
        batch[k++] = table[i];
        done++;
        if (k == BATCH || done == n) {
            rc = lc_store_blob_touch(s, batch, k, when, err);
            k = 0;
        }
    }
    lc_store__acc_clear(table);
    pthread_mutex_unlock(&s->acc.flush_mu);
    if (flushed != NULL)
        *flushed = done;
    return rc;
}

uint64_t lc_store_access_dropped(lc_store *s)
{
    return atomic_load(&s->acc.dropped);
}

/* ---- writing access times --------------------------------------------------- */

static void lock_stripes(lc_store *s, uint64_t stripes)
{
    for (int i = 0; i < LC_STORE__LOCKS; i++)
        if (stripes & 1ull << i)
            pthread_mutex_lock(&s->locks[i]);
}

static void unlock_stripes(lc_store *s, uint64_t stripes)
{
    for (int i = LC_STORE__LOCKS - 1; i >= 0; i--)
        if (stripes & 1ull << i)
            pthread_mutex_unlock(&s->locks[i]);
}

int lc_store_blob_touch(lc_store *s, const lc_digest *d, size_t n, int64_t when, lc_err *err)
{
    /* Lock every stripe involved, in index order (no deadlock), so a
     * concurrent delete cannot be undone by re-writing its record. */
    uint64_t stripes = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = lc_store__check_digest(&d[i], err);
        if (rc != 0)
            return rc;
        stripes |= 1ull << lc_store__stripe(d[i].hash);
    }
    lock_stripes(s, stripes);
    int64_t when_ms = LC_STORE__MS_OF(when);
    int rc = 0;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (size_t i = 0; i < n && rc == 0; i++) {
        lc_store__meta m;
        if (lc_digest_is_empty(&d[i]))
            continue;
        int found = lc_store__meta_get(s, NULL, &d[i], &m, err);
        if (found < 0)
            rc = found;
        if (found <= 0 || m.atime >= when_ms)
            continue;
        uint8_t old[LC_STORE__ATIME_KEY_LEN];
        lc_store__atime_key(m.atime, &d[i], old);
        rocksdb_writebatch_singledelete_cf(b, s->cf[CF_ATIME], (const char *)old, sizeof(old));
        m.atime = when_ms;
        lc_store__batch_put_blob(s, b, &d[i], &m);
    }
    if (rc == 0 && rocksdb_writebatch_count(b) > 0 &&
        (rc = lc_store__write(s, b, err, "updating access times")) == 0)
        lc_store__note_atime(s, when_ms);
    rocksdb_writebatch_destroy(b);
    unlock_stripes(s, stripes);
    return rc;
}

/* ---- eviction ------------------------------------------------------------------ */

int lc_store_blob_evict(lc_store *s, const lc_digest *d, int64_t idle_before, bool *evicted,
                        lc_err *err)
{
    *evicted = false;
    int rc = lc_store__check_digest(d, err);
    if (rc != 0 || lc_digest_is_empty(d))
        return rc;
    int stripe = lc_store__stripe(d->hash);
    pthread_mutex_lock(&s->locks[stripe]);
    lc_store__meta m;
    /* Read since the last flush, or touched since the caller chose it: keep. */
    if (lc_store__acc_pending(s, d) || (rc = lc_store__meta_get(s, NULL, d, &m, err)) <= 0 ||
        m.atime >= idle_before * 1000)
        goto out;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    lc_store__counts delta = {0};
    lc_store__batch_drop_blob(s, b, d, &m, &delta);
    lc_store__counts_stage(s, stripe, &delta, b);
    if ((rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__FREEING, 0, err,
                                      "evicting blob")) == 0) {
        lc_store__counts_apply(s, stripe, &delta);
        lc_store__note_garbage(s, m.storage_id, m.size);
        *evicted = true;
    }
    rocksdb_writebatch_destroy(b);
out:
    pthread_mutex_unlock(&s->locks[stripe]);
    if (*evicted)
        lc_store__space_freed(s);
    return rc < 0 ? rc : 0;
}

typedef struct candidate {
    lc_digest d;
    int64_t atime;
} candidate;

/* 1 if the index key exists in the latest state, 0 if not, <0 error. */
static int index_has(lc_store *s, const uint8_t *key, lc_err *err)
{
    char *e = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(
        s->db, s->ropts, s->cf[CF_ATIME], (const char *)key, LC_STORE__ATIME_KEY_LEN, &e);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading the access-time index");
    rocksdb_pinnableslice_destroy(ps);
    return ps != NULL;
}

typedef struct evict_tally {
    uint64_t blobs, bytes, charged;
} evict_tally;

/* Deletes the candidates c[0..n) that are still what the index said (same
 * atime, not read since), in one batch; stale index entries go too. */
static int evict_batch(lc_store *s, const candidate *c, size_t n, evict_tally *t, lc_err *err)
{
    uint64_t stripes = 0;
    for (size_t i = 0; i < n; i++)
        stripes |= 1ull << lc_store__stripe(c[i].d.hash);
    lock_stripes(s, stripes);
    lc_store__counts delta[LC_STORE__LOCKS];
    memset(delta, 0, sizeof(delta));
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    int rc = 0;
    typedef struct gone {
        uint8_t id[LC_STORE__ID_LEN];
        int64_t size;
    } gone;
    gone *went = malloc(n * sizeof(*went));
    size_t n_went = 0;
    /* The records of all candidates in one multi-get, under their locks. */
    uint8_t(*keys)[LC_STORE__META_KEY_LEN] = malloc(n * sizeof(*keys));
    const char **kp = malloc(n * sizeof(*kp));
    size_t *klen = malloc(n * sizeof(*klen)), *vlen = malloc(n * sizeof(*vlen));
    const rocksdb_column_family_handle_t **cfs = malloc(n * sizeof(*cfs));
    char **vals = calloc(n, sizeof(*vals)), **errs = calloc(n, sizeof(*errs));
    if (went == NULL || keys == NULL || kp == NULL || klen == NULL || vlen == NULL || cfs == NULL ||
        vals == NULL || errs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        lc_store__meta_key(&c[i].d, keys[i]);
        kp[i] = (const char *)keys[i];
        klen[i] = LC_STORE__META_KEY_LEN;
        cfs[i] = s->cf[CF_BLOB_META];
    }
    rocksdb_multi_get_cf(s->db, s->ropts, cfs, n, kp, klen, vals, vlen, errs);
    for (size_t i = 0; i < n && rc == 0; i++) {
        lc_store__meta m;
        if (errs[i] != NULL) {
            rc = lc_store__rdb_err(err, errs[i], "reading blob records");
            errs[i] = NULL;
            break;
        }
        int found = vals[i] != NULL;
        if (found && (lc_store__meta_decode(vals[i], vlen[i], &m) != 0 || m.size != c[i].d.size))
            found = 0; /* unreadable: its index entry goes, the record stays for a delete */
        if (found == 0 || m.atime != c[i].atime) {
            /* The index said otherwise: drop the entry if it is still there
             * (a record written by an older build, or lost). */
            uint8_t key[LC_STORE__ATIME_KEY_LEN];
            lc_store__atime_key(c[i].atime, &c[i].d, key);
            int has = index_has(s, key, err);
            if (has < 0)
                rc = has;
            else if (has)
                rocksdb_writebatch_singledelete_cf(b, s->cf[CF_ATIME], (const char *)key,
                                                   sizeof(key));
            continue;
        }
        if (lc_store__acc_pending(s, &c[i].d))
            continue; /* read since the flush: it stays */
        lc_store__batch_drop_blob(s, b, &c[i].d, &m, &delta[lc_store__stripe(c[i].d.hash)]);
        memcpy(went[n_went].id, m.storage_id, LC_STORE__ID_LEN);
        went[n_went++].size = m.size;
    }
    if (rc != 0 || rocksdb_writebatch_count(b) == 0)
        goto out;
    for (int k = 0; k < LC_STORE__LOCKS; k++)
        if (delta[k].blobs != 0)
            lc_store__counts_stage(s, k, &delta[k], b);
    if ((rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__FREEING, 0, err,
                                      "evicting blobs")) != 0)
        goto out;
    for (int k = 0; k < LC_STORE__LOCKS; k++) {
        if (delta[k].blobs == 0)
            continue;
        lc_store__counts_apply(s, k, &delta[k]);
        t->blobs += (uint64_t)-delta[k].blobs;
        t->bytes += (uint64_t)-delta[k].blob_bytes;
        t->charged += (uint64_t)(-delta[k].blob_bytes - delta[k].blobs * LC_STORE__BLOB_OVERHEAD);
    }
    for (size_t i = 0; i < n_went; i++)
        lc_store__note_garbage(s, went[i].id, went[i].size);
out:
    for (size_t i = 0; vals != NULL && i < n; i++) {
        rocksdb_free(vals[i]);
        rocksdb_free(errs[i]);
    }
    free(errs);
    free(vals);
    free(cfs);
    free(vlen);
    free(klen);
    free(kp);
    free(keys);
    free(went);
    rocksdb_writebatch_destroy(b);
    unlock_stripes(s, stripes);
    return rc;
}

int lc_store_evict_lru(lc_store *s, uint64_t want_bytes, int64_t idle_before, uint64_t *blobs,
                       uint64_t *bytes, uint64_t *charged, lc_err *err)
{
    evict_tally t = {0};
    int rc = 0;
    pthread_mutex_lock(&s->evict_lock);
    atomic_store(&s->atime_new_min, INT64_MAX);
    int64_t floor = atomic_load(&s->atime_floor);
    /* The walk starts at the floor: entries below it were deleted, and
     * their tombstones need not be read again. */
    uint8_t lower[LC_STORE__ATIME_KEY_LEN];
    memset(lower, 0, sizeof(lower));
    lc_store__put_be64(lower, (uint64_t)(floor < 0 ? 0 : floor));
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lower, sizeof(lower));
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_ATIME]);
    candidate *c = malloc(LC_STORE__EVICT_BATCH * sizeof(*c));
    if (c == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* Where the oldest entry that stays is: the new floor. */
    int64_t kept = INT64_MAX;
    bool done = false;
    rocksdb_iter_seek_to_first(it);
    while (!done && rc == 0) {
        size_t n = 0;
        uint64_t planned = t.charged;
        for (; n < LC_STORE__EVICT_BATCH && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen;
            const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
            if (klen != LC_STORE__ATIME_KEY_LEN)
                continue;
            int64_t at = (int64_t)lc_store__get_be64(k);
            if (planned >= want_bytes && (idle_before <= 0 || at >= idle_before * 1000)) {
                done = true;
                if (at < kept)
                    kept = at;
                break;
            }
            memcpy(c[n].d.hash, k + 8, LC_HASH_LEN);
            c[n].d.size = (int64_t)lc_store__get_be64(k + 8 + LC_HASH_LEN);
            c[n].atime = at;
            if (lc_store__acc_pending(s, &c[n].d)) {
                if (at < kept)
                    kept = at; /* stays: read since the last flush */
                continue;
            }
            planned += (uint64_t)c[n].d.size + LC_STORE__BLOB_OVERHEAD;
            n++;
        }
        if (n == 0) {
            if ((rc = lc_store__iter_err(it, err, "reading the access-time index")) == 0 &&
                !rocksdb_iter_valid(it))
                done = true;
            continue;
        }
        uint64_t before = t.blobs;
        rc = evict_batch(s, c, n, &t, err);
        if (rc == 0) {
            lc_store__space_freed(s);
            /* Candidates that stayed (read meanwhile) hold the floor down. */
            if (t.blobs - before < n && c[0].atime < kept)
                kept = c[0].atime;
        }
    }
    if (rc == 0 && kept == INT64_MAX && rocksdb_iter_valid(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen == LC_STORE__ATIME_KEY_LEN)
            kept = (int64_t)lc_store__get_be64(k);
    }
    if (rc == 0 && t.blobs > 0 && kept != INT64_MAX) {
        /* Below the oldest entry left there are only the tombstones of what
         * went (and the entries they delete, in lower levels): compacting
         * that range drops both (1 M blobs, 120 k evicted: ~0.3 s of a 3 s
         * pass), so the next walk, also in a restarted server, which starts
         * at the bottom, does not read them again. */
        uint8_t upper[8];
        lc_store__put_be64(upper, (uint64_t)kept);
        rocksdb_compact_range_cf(s->db, s->cf[CF_ATIME], NULL, 0, (const char *)upper,
                                 sizeof(upper));
    }
    if (rc == 0 && kept != INT64_MAX) {
        /* Raise the floor to the oldest entry left, unless something older
         * was written meanwhile (lc_store__note_atime lowers both). */
        int64_t cur = atomic_load(&s->atime_floor);
        for (;;) {
            int64_t target =
                kept < atomic_load(&s->atime_new_min) ? kept : atomic_load(&s->atime_new_min);
            if (target <= cur || atomic_compare_exchange_weak(&s->atime_floor, &cur, target))
                break;
        }
    }
out:
    free(c);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    pthread_mutex_unlock(&s->evict_lock);
    if (blobs != NULL)
        *blobs = t.blobs;
    if (bytes != NULL)
        *bytes = t.bytes;
    if (charged != NULL)
        *charged = t.charged;
    return rc;
}
