/* store.c - RocksDB storage: open/close, format, persistent counts, CAS
 * blobs, action cache, totals. Uploads (resumable ByteStream writes) live in
 * store_upload.c, access times and LRU eviction in store_atime.c, disk space
 * and --max-size in store_space.c. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "store_internal.h"

#define MOD "store"

static const char *const cf_names[CF_COUNT] = {"default",     "ac",      "blob_meta",
                                               "blob_chunks", "uploads", "blob_atime"};

#define FORMAT_KEY "format_version"
/* 1: no counts, no access-time index (migrated at open). */
#define FORMAT_VERSION "2"
#define COUNT_KEY "count"
#define COUNT_KEY_LEN (sizeof(COUNT_KEY) - 1 + 1)
#define COUNT_VAL_LEN 32

/* ---- small helpers shared with store_upload.c ----------------------------- */

void lc_store__put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t lc_store__get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void lc_store__meta_key(const lc_digest *d, uint8_t key[LC_STORE__META_KEY_LEN])
{
    memcpy(key, d->hash, LC_HASH_LEN);
    lc_store__put_be64(key + LC_HASH_LEN, (uint64_t)d->size);
}

void lc_store__meta_encode(const lc_store__meta *m, uint8_t out[LC_STORE__META_VAL_LEN])
{
    out[0] = m->one_chunk ? 4 : 3;
    lc_store__put_be64(out + 1, (uint64_t)m->size);
    memcpy(out + 9, m->storage_id, LC_STORE__ID_LEN);
    lc_store__put_be64(out + 9 + LC_STORE__ID_LEN, (uint64_t)m->created);
    lc_store__put_be64(out + 17 + LC_STORE__ID_LEN, (uint64_t)m->atime);
}

int lc_store__meta_decode(const char *v, size_t len, lc_store__meta *m)
{
    const uint8_t *p = (const uint8_t *)v;
    if (len != LC_STORE__META_VAL_LEN || (p[0] != 1 && p[0] != 3 && p[0] != 4))
        return -1;
    m->one_chunk = p[0] == 4;
    m->size = (int64_t)lc_store__get_be64(p + 1);
    memcpy(m->storage_id, p + 9, LC_STORE__ID_LEN);
    m->created = (int64_t)lc_store__get_be64(p + 9 + LC_STORE__ID_LEN);
    m->atime = (int64_t)lc_store__get_be64(p + 17 + LC_STORE__ID_LEN);
    if (p[0] == 1) { /* format 1: seconds */
        m->created *= 1000;
        m->atime = LC_STORE__MS_OF(m->atime);
    }
    return m->size < 0 ? -1 : 0;
}

void lc_store__chunk_key(const uint8_t *id, uint64_t offset, uint8_t key[LC_STORE__CHUNK_KEY_LEN])
{
    memcpy(key, id, LC_STORE__ID_LEN);
    lc_store__put_be64(key + LC_STORE__ID_LEN, offset);
}

void lc_store__mark_key(const uint8_t *id, uint8_t key[LC_STORE__CHUNK_KEY_LEN])
{
    lc_store__chunk_key(id, UINT64_MAX, key);
}

void lc_store__uprec_encode(const lc_store__uprec *u, uint8_t out[LC_STORE__UPLOAD_VAL_LEN])
{
    uint8_t *p = out;
    *p++ = 1;
    memcpy(p, u->storage_id, LC_STORE__ID_LEN);
    p += LC_STORE__ID_LEN;
    memcpy(p, u->digest.hash, LC_HASH_LEN);
    p += LC_HASH_LEN;
    lc_store__put_be64(p, (uint64_t)u->digest.size);
    lc_store__put_be64(p + 8, (uint64_t)u->committed);
    lc_store__put_be64(p + 16, (uint64_t)u->started);
    lc_store__put_be64(p + 24, (uint64_t)u->updated);
}

int lc_store__uprec_decode(const char *v, size_t len, lc_store__uprec *u)
{
    const uint8_t *p = (const uint8_t *)v;
    if (len != LC_STORE__UPLOAD_VAL_LEN || p[0] != 1)
        return -1;
    p++;
    memcpy(u->storage_id, p, LC_STORE__ID_LEN);
    p += LC_STORE__ID_LEN;
    memcpy(u->digest.hash, p, LC_HASH_LEN);
    p += LC_HASH_LEN;
    u->digest.size = (int64_t)lc_store__get_be64(p);
    u->committed = (int64_t)lc_store__get_be64(p + 8);
    u->started = (int64_t)lc_store__get_be64(p + 16);
    u->updated = (int64_t)lc_store__get_be64(p + 24);
    if (u->digest.size < 0 || u->committed < 0 || u->committed > u->digest.size)
        return -1;
    return 0;
}

/* Storage ids start with the time (big endian, nanoseconds) so that new
 * chunks sort after old ones: RocksDB then appends instead of merging, and
 * compaction is cheap. The random rest keeps ids unique across writers. */
int lc_store__new_id(uint8_t id[LC_STORE__ID_LEN], lc_err *err)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    for (int i = 0; i < 8; i++)
        id[i] = (uint8_t)(ns >> (56 - 8 * i));
    ssize_t n = getrandom(id + 8, LC_STORE__ID_LEN - 8, 0);
    if (n != LC_STORE__ID_LEN - 8)
        return lc_err_set(err, LC_INTERNAL, "getrandom for a storage id: %s",
                          n < 0 ? strerror(errno) : "short read");
    return 0;
}

int64_t lc_store__now(void)
{
    return (int64_t)time(NULL);
}

int64_t lc_store__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lc_store__rdb_err(lc_err *err, char *errptr, const char *what)
{
    const char *msg = errptr != NULL ? errptr : "unknown RocksDB error";
    int rc;
    if (strstr(msg, "No space left") != NULL)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                        "cache storage is full (%s: %s); free disk space or lower --max-size", what,
                        msg);
    else
        rc = lc_err_set(err, LC_INTERNAL, "%s: %s", what, msg);
    rocksdb_free(errptr);
    return rc;
}

int lc_store__iter_err(rocksdb_iterator_t *it, lc_err *err, const char *what)
{
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    return e != NULL ? lc_store__rdb_err(err, e, what) : 0;
}

char *lc_store__flush_cfs(lc_store *s, int from, int to, bool wait)
{
    char *first = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, wait);
    for (int i = from; i < to; i++) {
        char *e = NULL;
        rocksdb_flush_cf(s->db, fo, s->cf[i], &e);
        if (first == NULL)
            first = e;
        else
            rocksdb_free(e);
    }
    rocksdb_flushoptions_destroy(fo);
    return first;
}

/* Batch bytes beyond a claim that are written without a check of their own
 * (record keys, the progress mark): the headroom covers them. */
#define UNCHECKED_EXTRA 4096

int lc_store__write_claimed(lc_store *s, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *b,
                            int cls, int64_t claimed, lc_err *err, const char *what)
{
    size_t size = 0;
    rocksdb_writebatch_data(b, &size);
    int64_t extra = (int64_t)size - claimed;
    if (extra > UNCHECKED_EXTRA || (claimed == 0 && extra > 0)) {
        int rc = lc_store__claim(s, extra, cls == LC_STORE__DATA ? LC_STORE__META : cls, err);
        if (rc != 0)
            return rc;
    } else {
        extra = 0;
    }
    char *e = NULL;
    rocksdb_write(s->db, wo, b, &e);
    /* Written or not, the bytes count as written until the next look at
     * the disk: a failed write may have reached the WAL. */
    lc_store__wrote(s, (int64_t)size, extra, cls == LC_STORE__DATA ? LC_STORE__META : cls);
    return e != NULL ? lc_store__rdb_err(err, e, what) : 0;
}

int lc_store__write_opts(lc_store *s, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *b,
                         lc_err *err, const char *what)
{
    return lc_store__write_claimed(s, wo, b, LC_STORE__META, 0, err, what);
}

int lc_store__write(lc_store *s, rocksdb_writebatch_t *b, lc_err *err, const char *what)
{
    return lc_store__write_opts(s, s->wopts, b, err, what);
}

rocksdb_writebatch_t *lc_store__batch_take(lc_store *s)
{
    rocksdb_writebatch_t *b = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->n_pooled > 0)
        b = s->batch_pool[--s->n_pooled];
    pthread_mutex_unlock(&s->pool_lock);
    return b != NULL ? b : rocksdb_writebatch_create();
}

void lc_store__batch_release(lc_store *s, rocksdb_writebatch_t *b)
{
    rocksdb_writebatch_clear(b); /* keeps its buffer */
    pthread_mutex_lock(&s->pool_lock);
    if (s->n_pooled < LC_STORE__BATCH_POOL) {
        s->batch_pool[s->n_pooled++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (b != NULL)
        rocksdb_writebatch_destroy(b);
}

uint64_t lc_store__flush_epoch(lc_store *s)
{
    return atomic_load(&s->flush_epoch);
}

int lc_store__flush_chunks(lc_store *s, uint64_t epoch, lc_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&s->flush_lock);
    if (s->durable_epoch <= epoch) {
        /* Writes that returned before this increment are in the memtables
         * the flush below switches out. */
        uint64_t e = atomic_fetch_add(&s->flush_epoch, 1) + 1;
        char *msg = lc_store__flush_cfs(s, CF_BLOB_CHUNKS, CF_BLOB_CHUNKS + 1, true);
        if (msg != NULL)
            rc = lc_store__rdb_err(err, msg, "flushing blob chunks");
        else
            s->durable_epoch = e;
    }
    pthread_mutex_unlock(&s->flush_lock);
    return rc;
}

/* [id||0, id||FF*8||FF): every 24-byte chunk key of id (and its progress
 * mark, id||FF*8) sorts inside. */
static void chunk_range(const uint8_t *id, uint8_t lo[LC_STORE__CHUNK_KEY_LEN],
                        uint8_t hi[LC_STORE__CHUNK_KEY_LEN + 1])
{
    lc_store__chunk_key(id, 0, lo);
    memcpy(hi, id, LC_STORE__ID_LEN);
    memset(hi + LC_STORE__ID_LEN, 0xff, 9);
}

void lc_store__batch_drop_chunks(lc_store *s, rocksdb_writebatch_t *b, const uint8_t *id)
{
    uint8_t lo[LC_STORE__CHUNK_KEY_LEN], hi[LC_STORE__CHUNK_KEY_LEN + 1];
    chunk_range(id, lo, hi);
    rocksdb_writebatch_delete_range_cf(b, s->cf[CF_BLOB_CHUNKS], (const char *)lo, sizeof(lo),
                                       (const char *)hi, sizeof(hi));
}

void lc_store__batch_drop_blob(lc_store *s, rocksdb_writebatch_t *b, const lc_digest *d,
                               const lc_store__meta *m, lc_store__counts *delta)
{
    uint8_t key[LC_STORE__META_KEY_LEN], akey[LC_STORE__ATIME_KEY_LEN];
    lc_store__meta_key(d, key);
    rocksdb_writebatch_delete_cf(b, s->cf[CF_BLOB_META], (const char *)key, sizeof(key));
    lc_store__atime_key(m->atime, d, akey);
    rocksdb_writebatch_singledelete_cf(b, s->cf[CF_ATIME], (const char *)akey, sizeof(akey));
    if (m->one_chunk) { /* a point delete: cheaper to read past than a range */
        uint8_t ckey[LC_STORE__CHUNK_KEY_LEN];
        lc_store__chunk_key(m->storage_id, 0, ckey);
        rocksdb_writebatch_delete_cf(b, s->cf[CF_BLOB_CHUNKS], (const char *)ckey, sizeof(ckey));
    } else {
        lc_store__batch_drop_chunks(s, b, m->storage_id);
    }
    delta->blobs -= 1;
    delta->blob_bytes -= m->size;
}

void lc_store__batch_put_blob(lc_store *s, rocksdb_writebatch_t *b, const lc_digest *d,
                              const lc_store__meta *m)
{
    uint8_t key[LC_STORE__META_KEY_LEN], val[LC_STORE__META_VAL_LEN];
    uint8_t akey[LC_STORE__ATIME_KEY_LEN];
    lc_store__meta_key(d, key);
    lc_store__meta_encode(m, val);
    rocksdb_writebatch_put_cf(b, s->cf[CF_BLOB_META], (const char *)key, sizeof(key),
                              (const char *)val, sizeof(val));
    lc_store__atime_key(m->atime, d, akey);
    rocksdb_writebatch_put_cf(b, s->cf[CF_ATIME], (const char *)akey, sizeof(akey), "", 0);
}

int lc_store__meta_get(lc_store *s, const rocksdb_readoptions_t *ro, const lc_digest *d,
                       lc_store__meta *m, lc_err *err)
{
    uint8_t key[LC_STORE__META_KEY_LEN];
    lc_store__meta_key(d, key);
    char *e = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(
        s->db, ro != NULL ? ro : s->ropts, s->cf[CF_BLOB_META], (const char *)key, sizeof(key), &e);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading blob record");
    if (ps == NULL)
        return 0;
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    int bad = lc_store__meta_decode(v, vlen, m);
    rocksdb_pinnableslice_destroy(ps);
    if (bad || m->size != d->size) {
        char hex[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(d, hex);
        return lc_err_set(err, LC_DATA_LOSS, "blob record of %s/%" PRId64 " is corrupt", hex,
                          d->size);
    }
    return 1;
}

int lc_store__stripe(const uint8_t *hash)
{
    return hash[0] % LC_STORE__LOCKS;
}

pthread_mutex_t *lc_store__lock_for(lc_store *s, const uint8_t *hash)
{
    return &s->locks[lc_store__stripe(hash)];
}

/* ---- persistent counts ------------------------------------------------------ */

static void count_key(int stripe, char key[COUNT_KEY_LEN])
{
    memcpy(key, COUNT_KEY, COUNT_KEY_LEN - 1);
    key[COUNT_KEY_LEN - 1] = (char)stripe;
}

static void counts_encode(const lc_store__counts *c, uint8_t out[COUNT_VAL_LEN])
{
    lc_store__put_be64(out, (uint64_t)c->blobs);
    lc_store__put_be64(out + 8, (uint64_t)c->blob_bytes);
    lc_store__put_be64(out + 16, (uint64_t)c->ac_entries);
    lc_store__put_be64(out + 24, (uint64_t)c->ac_bytes);
}

static void counts_add(lc_store__counts *to, const lc_store__counts *d)
{
    to->blobs += d->blobs;
    to->blob_bytes += d->blob_bytes;
    to->ac_entries += d->ac_entries;
    to->ac_bytes += d->ac_bytes;
}

void lc_store__counts_stage(lc_store *s, int stripe, const lc_store__counts *delta,
                            rocksdb_writebatch_t *b)
{
    lc_store__counts c = s->counts[stripe];
    counts_add(&c, delta);
    char key[COUNT_KEY_LEN];
    uint8_t val[COUNT_VAL_LEN];
    count_key(stripe, key);
    counts_encode(&c, val);
    rocksdb_writebatch_put_cf(b, s->cf[CF_DEFAULT], key, sizeof(key), (const char *)val,
                              sizeof(val));
}

void lc_store__counts_apply(lc_store *s, int stripe, const lc_store__counts *delta)
{
    counts_add(&s->counts[stripe], delta);
    atomic_fetch_add(&s->blobs, (uint64_t)delta->blobs);
    atomic_fetch_add(&s->blob_bytes, (uint64_t)delta->blob_bytes);
    atomic_fetch_add(&s->ac_entries, (uint64_t)delta->ac_entries);
    atomic_fetch_add(&s->ac_bytes, (uint64_t)delta->ac_bytes);
}

static int load_counts(lc_store *s, lc_err *err)
{
    for (int i = 0; i < LC_STORE__LOCKS; i++) {
        char key[COUNT_KEY_LEN];
        count_key(i, key);
        char *e = NULL;
        size_t vlen = 0;
        char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[CF_DEFAULT], key, sizeof(key), &vlen, &e);
        if (e != NULL)
            return lc_store__rdb_err(err, e, "reading the store's counts");
        lc_store__counts c = {0};
        if (v != NULL && vlen == COUNT_VAL_LEN) {
            const uint8_t *p = (const uint8_t *)v;
            c.blobs = (int64_t)lc_store__get_be64(p);
            c.blob_bytes = (int64_t)lc_store__get_be64(p + 8);
            c.ac_entries = (int64_t)lc_store__get_be64(p + 16);
            c.ac_bytes = (int64_t)lc_store__get_be64(p + 24);
        }
        rocksdb_free(v);
        lc_store__counts_apply(s, i, &c);
    }
    return 0;
}

void lc_store__note_garbage(lc_store *s, const uint8_t *id, int64_t bytes)
{
    atomic_fetch_add(&s->garbage_bytes, (uint64_t)bytes);
    pthread_mutex_lock(&s->pool_lock);
    if (!s->gc_any || memcmp(id, s->gc_lo, LC_STORE__ID_LEN) < 0)
        memcpy(s->gc_lo, id, LC_STORE__ID_LEN);
    if (!s->gc_any || memcmp(id, s->gc_hi, LC_STORE__ID_LEN) > 0)
        memcpy(s->gc_hi, id, LC_STORE__ID_LEN);
    s->gc_any = true;
    pthread_mutex_unlock(&s->pool_lock);
}

/* Blob garbage collection on (relocating the live blobs of the oldest
 * `cutoff` of the blob files, "0.25" or "1.0" for all) or off. */
static int set_blob_gc(lc_store *s, bool on, const char *cutoff, lc_err *err)
{
    const char *keys[] = {"enable_blob_garbage_collection", "blob_garbage_collection_age_cutoff"};
    const char *vals[] = {on ? "true" : "false", cutoff};
    char *e = NULL;
    rocksdb_set_options_cf(s->db, s->cf[CF_BLOB_CHUNKS], 2, keys, vals, &e);
    return e != NULL ? lc_store__rdb_err(err, e, "setting blob garbage collection") : 0;
}

int lc_store_reclaim(lc_store *s, bool force, bool *ran, lc_err *err)
{
    if (ran != NULL)
        *ran = false;
    uint64_t garbage = atomic_load(&s->garbage_bytes);
    uint64_t live = atomic_load(&s->blob_bytes);
    int64_t max = s->space.max_bytes;
    bool due = max > 0 ? garbage >= LC_STORE__RECLAIM_MIN_LIMITED && garbage >= (uint64_t)max / 32
                       : garbage >= LC_STORE__RECLAIM_MIN && garbage >= live / 8;
    if (!force && !due)
        return 0;
    /* Only the chunk keys of the blobs deleted since the last reclaim: ids
     * start with their creation time and LRU deletes the old ones, so this
     * is the oldest part of the column family, not all of it. */
    uint8_t lo[LC_STORE__CHUNK_KEY_LEN], hi[LC_STORE__CHUNK_KEY_LEN + 1];
    pthread_mutex_lock(&s->pool_lock);
    bool any = s->gc_any;
    if (any) {
        chunk_range(s->gc_lo, lo, hi);
        uint8_t hi_lo[LC_STORE__CHUNK_KEY_LEN];
        chunk_range(s->gc_hi, hi_lo, hi);
    }
    s->gc_any = false;
    pthread_mutex_unlock(&s->pool_lock);
    atomic_fetch_sub(&s->garbage_bytes, garbage);
    /* Garbage collection rewrites the live blobs of the oldest blob files,
     * which LRU eviction left mostly empty: of the oldest quarter, but
     * under --max-size of no more than max/20 worth of files (the rewrite
     * sits on the disk beside the old files until the compaction ends), and
     * only when the disk has room for it besides. */
    uint64_t blob_files = 0, n_files = 0;
    rocksdb_property_int_cf(s->db, s->cf[CF_BLOB_CHUNKS], "rocksdb.live-blob-file-size",
                            &blob_files);
    rocksdb_property_int_cf(s->db, s->cf[CF_BLOB_CHUNKS], "rocksdb.num-blob-files", &n_files);
    double cutoff = 0.25;
    if (max > 0 && blob_files > 0 && (double)max / 20 / (double)blob_files < cutoff)
        cutoff = (double)max / 20 / (double)blob_files;
    if (n_files > 0 && cutoff < 1.5 / (double)n_files) /* at least the oldest file */
        cutoff = 1.5 / (double)n_files;
    if (cutoff > 1)
        cutoff = 1;
    char cutoff_s[32];
    snprintf(cutoff_s, sizeof(cutoff_s), "%.4f", cutoff);
    int64_t relocate = (int64_t)((double)blob_files * cutoff);
    lc_err cerr = {0};
    bool gc = lc_store__claim(s, relocate, LC_STORE__FREEING, &cerr) == 0;
    int rc = gc ? set_blob_gc(s, true, cutoff_s, err) : 0;
    if (rc == 0) {
        if (any && !force)
            rocksdb_compact_range_cf(s->db, s->cf[CF_BLOB_CHUNKS], (const char *)lo, sizeof(lo),
                                     (const char *)hi, sizeof(hi));
        else
            rocksdb_compact_range_cf(s->db, s->cf[CF_BLOB_CHUNKS], NULL, 0, NULL, 0);
        if (gc)
            rc = set_blob_gc(s, false, "0.25", err);
    }
    if (gc)
        lc_store__unclaim(s, relocate, LC_STORE__FREEING);
    if (ran != NULL)
        *ran = rc == 0;
    return rc;
}

int lc_store__check_digest(const lc_digest *d, lc_err *err)
{
    if (d == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "missing digest");
    if (d->size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "negative blob size %" PRId64, d->size);
    return 0;
}

/* ---- open / close ------------------------------------------------------- */

static int mkdir_p(const char *dir, lc_err *err)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (p == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = lc_err_set(err, lc_code_from_errno(e), "creating %s: %s", p, strerror(e));
            free(p);
            return rc;
        }
        p[i] = c;
    }
    free(p);
    return 0;
}

/* Options RocksDB's C API in Debian (7.8) has no setter for. */
#define STRING_OPTIONS                                                                             \
    /* Preallocated WAL and table file blocks would count as used disk we                          \
     * cannot account for; our claims keep the room instead. */                                    \
    "allow_fallocate=false;" /* Opening and closing on a full disk must not write memtables:       \
                              * recovery keeps the WAL, and close flushes only when lc_store_close \
                              * sees room. */                                                      \
    "avoid_flush_during_recovery=true;avoid_flush_during_shutdown=true"

static int set_options(lc_store *s, lc_err *err)
{
    char *e = NULL;
    rocksdb_options_t *base = rocksdb_options_create();
    rocksdb_get_options_from_string(base, STRING_OPTIONS, s->db_opts, &e);
    rocksdb_options_destroy(base);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "setting RocksDB options");
    rocksdb_options_t *o = s->db_opts;
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_increase_parallelism(o, 2);
    /* Flushes of the chunk memtables run side by side (their CRC32C is the
     * costly part): one flush thread fell behind a single 256 MiB upload and
     * left its tail to flush after the last byte (150-190 ms of 500). */
    rocksdb_options_set_max_background_jobs(o, 4);
    rocksdb_options_set_max_background_flushes(o, 3);
    /* Tiny CFs (uploads, ac) would otherwise pin old WAL files while blob
     * chunks stream through; this makes RocksDB flush them. Small, as the
     * WAL counts against the disk (data directory bound, docs). */
    rocksdb_options_set_max_total_wal_size(o, 16u << 20);
    rocksdb_options_set_db_write_buffer_size(o, 96u << 20);
    /* RocksDB's own files stay small and bounded: the info LOG (warnings
     * only, two 1 MiB files), the MANIFEST (rewritten at 4 MiB), no
     * periodic statistics dumps (an idle server writes nothing). */
    rocksdb_options_set_info_log_level(o, 2 /* WARN */);
    rocksdb_options_set_keep_log_file_num(o, 2);
    rocksdb_options_set_max_log_file_size(o, 1u << 20);
    /* A bounded table cache: RocksDB then opens at most 16 table files at
     * open and the rest on first use, instead of all of them (the restart
     * time would follow the number of files); within the descriptors the
     * process may hold. */
    struct rlimit nofile;
    int max_open = 4096;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
        max_open = nofile.rlim_cur > 512 + 256
                       ? (int)(nofile.rlim_cur - 512 > 65536 ? 65536 : nofile.rlim_cur - 512)
                       : 256;
    rocksdb_options_set_max_open_files(o, max_open);
    rocksdb_options_set_max_manifest_file_size(o, 4u << 20);
    rocksdb_options_set_stats_dump_period_sec(o, 0);
    /* Small files and levels: a compaction writes at most about
     * LC_STORE__COMPACT_RESERVE before it deletes its inputs, and leveled
     * compaction with dynamic level sizes keeps space amplification ~1.1. */
    rocksdb_options_set_write_buffer_size(o, 16u << 20);
    rocksdb_options_set_target_file_size_base(o, 8u << 20);
    rocksdb_options_set_max_bytes_for_level_base(o, 64u << 20);
    rocksdb_options_set_max_compaction_bytes(o, 64u << 20);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    /* Table blocks hold keys, blob references and small records; blob
     * values bypass the block cache. RocksDB's default cache (32 MiB) only
     * added resident memory here. */
    s->block_cache = rocksdb_cache_create_lru(LC_STORE__BLOCK_CACHE);
    s->table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table_opts, s->block_cache);
    rocksdb_options_set_block_based_table_factory(o, s->table_opts);
    /* Point lookups (blob records, action results) skip the levels that do
     * not hold the key: a bloom filter per table, ~1.2 bytes a key. */
    s->meta_table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->meta_table_opts, s->block_cache);
    rocksdb_block_based_options_set_filter_policy(s->meta_table_opts,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    for (int i = 0; i < CF_COUNT; i++)
        s->cf_opts[i] = rocksdb_options_create_copy(o);
    rocksdb_options_set_block_based_table_factory(s->cf_opts[CF_BLOB_META], s->meta_table_opts);
    rocksdb_options_set_block_based_table_factory(s->cf_opts[CF_AC], s->meta_table_opts);
    rocksdb_options_t *c = s->cf_opts[CF_BLOB_CHUNKS];
    /* Layer blobs are compressed already; big values go to blob files so
     * compaction moves keys, not megabytes. */
    rocksdb_options_set_compression(c, rocksdb_no_compression);
    rocksdb_options_set_enable_blob_files(c, 1);
    rocksdb_options_set_min_blob_size(c, 64u << 10);
    rocksdb_options_set_blob_compression_type(c, rocksdb_no_compression);
    /* Blob garbage collection relocates the live blobs of old blob files on
     * every compaction: while uploads stream in that rewrote data for
     * nothing (64 concurrent uploads: 137 -> 259 MB/s without it). It runs
     * only in lc_store_reclaim, after deletions made garbage. */
    rocksdb_options_set_enable_blob_gc(c, 0);
    /* Many small memtables rather than two big ones: parallel flushes keep
     * up, and a finishing upload waits for at most a few MiB (same 64 MiB
     * bound in all). */
    rocksdb_options_set_write_buffer_size(c, 8u << 20);
    rocksdb_options_set_max_write_buffer_number(c, 8);
    return 0;
}

static int open_db(lc_store *s, const char *dir, lc_err *err)
{
    char *e = NULL;
    size_t n_disk = 0;
    char **disk = rocksdb_list_column_families(s->db_opts, dir, &n_disk, &e);
    if (e != NULL) { /* no database yet: create_if_missing makes one */
        rocksdb_free(e);
        e = NULL;
        /* even on error it returns a (zero-length) malloc'd array */
        rocksdb_list_column_families_destroy(disk, 0);
        disk = NULL;
        n_disk = 0;
    }
    int rc = 0;
    size_t cap = CF_COUNT + n_disk;
    const char **names = calloc(cap, sizeof(*names));
    const rocksdb_options_t **opts = calloc(cap, sizeof(*opts));
    rocksdb_column_family_handle_t **handles = calloc(cap, sizeof(*handles));
    if (names == NULL || opts == NULL || handles == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t n = 0;
    for (int i = 0; i < CF_COUNT; i++) {
        names[n] = cf_names[i];
        opts[n++] = s->cf_opts[i];
    }
    for (size_t j = 0; j < n_disk; j++) {
        int ours = 0;
        for (int i = 0; i < CF_COUNT; i++)
            ours |= strcmp(disk[j], cf_names[i]) == 0;
        if (!ours) {
            if (s->extra_opts == NULL)
                s->extra_opts = rocksdb_options_create();
            names[n] = disk[j];
            opts[n++] = s->extra_opts;
        }
    }
    s->db = rocksdb_open_column_families(s->db_opts, dir, (int)n, names, opts, handles, &e);
    if (e != NULL) {
        rc = lc_store__rdb_err(err, e, "opening RocksDB");
        lc_err_prefix(err, "%s", dir);
        goto out;
    }
    for (int i = 0; i < CF_COUNT; i++)
        s->cf[i] = handles[i];
    s->n_extra = n - CF_COUNT;
    if (s->n_extra > 0) {
        s->extra_cf = calloc(s->n_extra, sizeof(*s->extra_cf));
        if (s->extra_cf == NULL) {
            for (size_t j = CF_COUNT; j < n; j++)
                rocksdb_column_family_handle_destroy(handles[j]);
            s->n_extra = 0;
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        memcpy(s->extra_cf, handles + CF_COUNT, s->n_extra * sizeof(*handles));
    }
out:
    free(handles);
    free(opts);
    free(names);
    if (disk != NULL)
        rocksdb_list_column_families_destroy(disk, n_disk);
    return rc;
}

/* Format 1 -> 2: builds the access-time index and the counts with one scan
 * of the blob records and the action cache (once; a crash midway leaves
 * format 1, and the next open starts over). */
static int migrate_v1(lc_store *s, lc_err *err)
{
    LC_INFO(MOD,
            "upgrading the store in %s to format 2 (counts, access-time index): one "
            "scan of every record",
            s->dir);
    lc_store__counts c[LC_STORE__LOCKS];
    memset(c, 0, sizeof(c));
    int rc = 0;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    static const uint8_t top[LC_STORE__ATIME_KEY_LEN + 1] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    rocksdb_writebatch_delete_range_cf(b, s->cf[CF_ATIME], "", 0, (const char *)top, sizeof(top));
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_BLOB_META]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && rc == 0; rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        lc_store__meta m;
        lc_digest d;
        if (klen != LC_STORE__META_KEY_LEN || lc_store__meta_decode(v, vlen, &m) != 0 ||
            (int64_t)lc_store__get_be64((const uint8_t *)k + LC_HASH_LEN) != m.size) {
            rocksdb_writebatch_delete_cf(b, s->cf[CF_BLOB_META], k, klen); /* unreadable */
            continue;
        }
        memcpy(d.hash, k, LC_HASH_LEN);
        d.size = m.size;
        /* Rewritten in milliseconds (decoding converted it; a rerun after a
         * crash finds it converted already), with its index entry. */
        lc_store__batch_put_blob(s, b, &d, &m);
        c[lc_store__stripe(d.hash)].blobs++;
        c[lc_store__stripe(d.hash)].blob_bytes += m.size;
        if (rocksdb_writebatch_count(b) >= 4096) {
            rc = lc_store__write(s, b, err, "building the access-time index");
            rocksdb_writebatch_clear(b);
        }
    }
    if (rc == 0)
        rc = lc_store__iter_err(it, err, "scanning blob records");
    rocksdb_iter_destroy(it);
    it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_AC]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && rc == 0; rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        rocksdb_iter_value(it, &vlen);
        const char *nul = memchr(k, '\0', klen);
        if (nul == NULL || (size_t)(k + klen - (nul + 1)) != LC_STORE__META_KEY_LEN)
            continue; /* not an AC key we wrote */
        int stripe = lc_store__stripe((const uint8_t *)nul + 1);
        c[stripe].ac_entries++;
        c[stripe].ac_bytes += (int64_t)(klen + vlen);
    }
    if (rc == 0)
        rc = lc_store__iter_err(it, err, "scanning the action cache");
    rocksdb_iter_destroy(it);
    if (rc == 0) {
        for (int i = 0; i < LC_STORE__LOCKS; i++)
            lc_store__counts_stage(s, i, &c[i], b);
        rocksdb_writebatch_put_cf(b, s->cf[CF_DEFAULT], FORMAT_KEY, strlen(FORMAT_KEY),
                                  FORMAT_VERSION, strlen(FORMAT_VERSION));
        rc = lc_store__write(s, b, err, "writing the store's counts");
    }
    rocksdb_writebatch_destroy(b);
    return rc;
}

/* Checks (or writes, in a new store) the format; upgrades format 1. */
static int check_format(lc_store *s, lc_err *err)
{
    char *e = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[CF_DEFAULT], FORMAT_KEY, strlen(FORMAT_KEY),
                             &vlen, &e);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading the store format");
    int rc = 0;
    if (v == NULL) {
        rocksdb_put_cf(s->db, s->wopts, s->cf[CF_DEFAULT], FORMAT_KEY, strlen(FORMAT_KEY),
                       FORMAT_VERSION, strlen(FORMAT_VERSION), &e);
        rc = e != NULL ? lc_store__rdb_err(err, e, "writing the store format") : 0;
    } else if (vlen == 1 && v[0] == '1') {
        rc = migrate_v1(s, err);
    } else if (vlen != strlen(FORMAT_VERSION) || memcmp(v, FORMAT_VERSION, vlen) != 0) {
        rc = lc_err_set(err, LC_FAILED_PRECONDITION,
                        "store format %.*s is not supported (this build reads %s)",
                        (int)(vlen > 16 ? 16 : vlen), v, FORMAT_VERSION);
    }
    rocksdb_free(v);
    return rc;
}

int lc_store_open(const char *dir, const lc_store_options *opts, lc_store **out, lc_err *err)
{
    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "store directory is empty");
    int rc = mkdir_p(dir, err);
    if (rc != 0)
        return rc;
    lc_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (int i = 0; i < LC_STORE__LOCKS; i++)
        pthread_mutex_init(&s->locks[i], NULL);
    pthread_mutex_init(&s->active_lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->flush_lock, NULL);
    pthread_mutex_init(&s->evict_lock, NULL);
    pthread_mutex_init(&s->acc.mu, NULL);
    pthread_mutex_init(&s->acc.flush_mu, NULL);
    pthread_mutex_init(&s->space.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->space.freed, &ca);
    pthread_condattr_destroy(&ca);
    atomic_store(&s->atime_new_min, INT64_MAX);
    s->dir = strdup(dir);
    s->acc.cur = malloc(LC_STORE__ACC_CAP * sizeof(lc_digest));
    s->acc.spare = malloc(LC_STORE__ACC_CAP * sizeof(lc_digest));
    if (s->dir == NULL || s->acc.cur == NULL || s->acc.spare == NULL) {
        lc_store_close(&s);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    lc_store__acc_clear(s->acc.cur);
    lc_store__acc_clear(s->acc.spare);
    s->db_opts = rocksdb_options_create();
    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, opts != NULL && opts->sync_writes);
    s->wopts_nowal = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(s->wopts_nowal, 1);
    s->ropts = rocksdb_readoptions_create();
    lc_store__space_preopen(dir);
    /* Before anything is written: the first disk snapshot (the database
     * handle is not there yet, so no memtables). */
    if ((rc = set_options(s, err)) != 0 || (rc = lc_store__space_init(s, opts, err)) != 0 ||
        (rc = open_db(s, dir, err)) != 0 || (rc = check_format(s, err)) != 0 ||
        (rc = load_counts(s, err)) != 0) {
        lc_store_close(&s);
        return rc;
    }
    lc_store_maintain(s); /* now with the database's memtables and the reserve file */
    /* Unfinished uploads: stale ones go (not fatal on a full disk: they
     * go at the next open), the rest are counted. Bounded by the uploads
     * in flight, not by the store. */
    lc_err gerr = {0};
    if (lc_store__gc_uploads(s, LC_STORE__UPLOAD_TTL, NULL, &gerr) != 0)
        LC_WARN(MOD, "dropping stale uploads: %s", gerr.msg);
    if ((rc = lc_store__count_uploads(s, err)) != 0) {
        lc_store_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void lc_store_close(lc_store **sp)
{
    lc_store *s = sp != NULL ? *sp : NULL;
    if (s == NULL)
        return;
    if (s->db != NULL) {
        /* Flushing makes the next open skip WAL replay; the WAL alone is
         * already enough for durability, so errors here only cost time. On
         * a full disk it is skipped (RocksDB must not meet ENOSPC): the WAL
         * is replayed at the next open, chunks of unfinished WAL-less
         * uploads are lost and those uploads resume from what was flushed. */
        if (lc_store__space_can_flush(s))
            rocksdb_free(lc_store__flush_cfs(s, 0, CF_COUNT, true));
        rocksdb_cancel_all_background_work(s->db, 1);
    }
    for (size_t i = 0; i < s->n_extra; i++)
        rocksdb_column_family_handle_destroy(s->extra_cf[i]);
    free(s->extra_cf);
    for (int i = 0; i < CF_COUNT; i++)
        if (s->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(s->cf[i]);
    if (s->db != NULL)
        rocksdb_close(s->db);
    if (s->ropts != NULL)
        rocksdb_readoptions_destroy(s->ropts);
    if (s->wopts != NULL)
        rocksdb_writeoptions_destroy(s->wopts);
    if (s->wopts_nowal != NULL)
        rocksdb_writeoptions_destroy(s->wopts_nowal);
    for (int i = 0; i < CF_COUNT; i++)
        if (s->cf_opts[i] != NULL)
            rocksdb_options_destroy(s->cf_opts[i]);
    if (s->extra_opts != NULL)
        rocksdb_options_destroy(s->extra_opts);
    if (s->db_opts != NULL)
        rocksdb_options_destroy(s->db_opts);
    if (s->table_opts != NULL)
        rocksdb_block_based_options_destroy(s->table_opts);
    if (s->meta_table_opts != NULL)
        rocksdb_block_based_options_destroy(s->meta_table_opts);
    if (s->block_cache != NULL)
        rocksdb_cache_destroy(s->block_cache);
    while (s->active != NULL) { /* handles still open: a caller bug, but don't leak */
        lc_store__active *a = s->active;
        s->active = a->next;
        free(a);
    }
    pthread_mutex_destroy(&s->active_lock);
    while (s->n_pooled > 0)
        rocksdb_writebatch_destroy(s->batch_pool[--s->n_pooled]);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->flush_lock);
    pthread_mutex_destroy(&s->evict_lock);
    for (int i = 0; i < LC_STORE__LOCKS; i++)
        pthread_mutex_destroy(&s->locks[i]);
    pthread_mutex_destroy(&s->acc.flush_mu);
    pthread_mutex_destroy(&s->acc.mu);
    lc_store__space_destroy(s);
    free(s->acc.spare);
    free(s->acc.cur);
    free(s->dir);
    free(s);
    *sp = NULL;
}

/* ---- CAS ---------------------------------------------------------------- */

int lc_store_blob_exists(lc_store *s, const lc_digest *d, lc_err *err)
{
    int rc = lc_store__check_digest(d, err);
    if (rc != 0)
        return rc;
    if (lc_digest_is_empty(d))
        return 1;
    lc_store__meta m;
    rc = lc_store__meta_get(s, NULL, d, &m, err);
    if (rc > 0)
        lc_store__record(s, d);
    return rc;
}

/* One multi-get of the blob records of digests. Either missing[i] (and, with
 * record, the present ones count as accessed) or atime[i] (-1 = absent). */
static int multi_meta(lc_store *s, const lc_digest *digests, size_t n, bool *missing,
                      int64_t *atime, bool record, lc_err *err)
{
    if (n == 0)
        return 0;
    int rc = 0;
    uint8_t(*keys)[LC_STORE__META_KEY_LEN] = malloc(n * sizeof(*keys));
    const char **kp = calloc(n, sizeof(*kp));
    size_t *klen = calloc(n, sizeof(*klen));
    const rocksdb_column_family_handle_t **cfs = calloc(n, sizeof(*cfs));
    char **vals = calloc(n, sizeof(*vals));
    size_t *vlen = calloc(n, sizeof(*vlen));
    char **errs = calloc(n, sizeof(*errs));
    if (!keys || !kp || !klen || !cfs || !vals || !vlen || !errs) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = lc_store__check_digest(&digests[i], err)) != 0)
            goto out;
        lc_store__meta_key(&digests[i], keys[i]);
        kp[i] = (const char *)keys[i];
        klen[i] = LC_STORE__META_KEY_LEN;
        cfs[i] = s->cf[CF_BLOB_META];
    }
    rocksdb_multi_get_cf(s->db, s->ropts, cfs, n, kp, klen, vals, vlen, errs);
    for (size_t i = 0; i < n; i++) {
        if (errs[i] != NULL) {
            if (rc == 0)
                rc = lc_store__rdb_err(err, errs[i], "looking up blobs");
            else
                rocksdb_free(errs[i]);
        }
        bool empty = lc_digest_is_empty(&digests[i]);
        if (missing != NULL)
            missing[i] = vals[i] == NULL && !empty;
        if (record && vals[i] != NULL)
            lc_store__record(s, &digests[i]);
        if (atime != NULL) {
            lc_store__meta m;
            atime[i] = -1;
            if (vals[i] != NULL && lc_store__meta_decode(vals[i], vlen[i], &m) == 0)
                atime[i] = m.atime / 1000;
            else if (empty)
                atime[i] = INT64_MAX; /* always there, never evicted */
        }
        rocksdb_free(vals[i]);
    }
out:
    free(errs);
    free(vlen);
    free(vals);
    free(cfs);
    free(klen);
    free(kp);
    free(keys);
    return rc;
}

int lc_store_find_missing(lc_store *s, const lc_digest *digests, size_t n, bool *missing,
                          lc_err *err)
{
    return multi_meta(s, digests, n, missing, NULL, true, err);
}

int lc_store_blob_atimes(lc_store *s, const lc_digest *digests, size_t n, int64_t *atime,
                         lc_err *err)
{
    return multi_meta(s, digests, n, NULL, atime, false, err);
}

int lc_store_blob_put(lc_store *s, const lc_digest *d, const void *data, size_t len, lc_err *err)
{
    int rc = lc_store__check_digest(d, err);
    if (rc != 0)
        return rc;
    lc_digest got;
    lc_digest_of(data, len, &got);
    if (!lc_digest_equal(&got, d)) {
        char want_hex[LC_HASH_HEX_LEN + 1], got_hex[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(d, want_hex);
        lc_digest_hex(&got, got_hex);
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "digest mismatch: expected %s/%" PRId64 ", received %s/%" PRId64,
                          want_hex, d->size, got_hex, got.size);
    }
    if (len == 0)
        return 0;
    /* Claimed before the stripe lock: the claim may wait for eviction,
     * which takes stripe locks. */
    int64_t claim = (int64_t)len + LC_STORE__BLOB_OVERHEAD;
    if ((rc = lc_store__claim(s, claim, LC_STORE__DATA, err)) != 0)
        return rc;
    int stripe = lc_store__stripe(d->hash);
    pthread_mutex_lock(&s->locks[stripe]);
    lc_store__meta m;
    rocksdb_writebatch_t *b = NULL;
    rc = lc_store__meta_get(s, NULL, d, &m, err);
    if (rc != 0) {  /* present (1) or failed (<0) */
        if (rc > 0) /* the writer relies on it from now on: an access for LRU */
            lc_store__record(s, d);
        rc = rc > 0 ? 0 : rc;
        goto out;
    }
    if ((rc = lc_store__new_id(m.storage_id, err)) != 0)
        goto out;
    m.size = d->size;
    m.created = m.atime = lc_store__now_ms();
    m.one_chunk = len <= LC_STORE_CHUNK;
    b = rocksdb_writebatch_create();
    for (size_t off = 0; off < len; off += LC_STORE_CHUNK) {
        uint8_t key[LC_STORE__CHUNK_KEY_LEN];
        size_t n = len - off < LC_STORE_CHUNK ? len - off : LC_STORE_CHUNK;
        lc_store__chunk_key(m.storage_id, off, key);
        rocksdb_writebatch_put_cf(b, s->cf[CF_BLOB_CHUNKS], (const char *)key, sizeof(key),
                                  (const char *)data + off, n);
    }
    lc_store__batch_put_blob(s, b, d, &m);
    lc_store__counts delta = {.blobs = 1, .blob_bytes = d->size};
    lc_store__counts_stage(s, stripe, &delta, b);
    if ((rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__DATA, claim, err,
                                      "storing blob")) == 0) {
        lc_store__counts_apply(s, stripe, &delta);
        lc_store__note_atime(s, m.atime);
    }
out:
    if (b != NULL)
        rocksdb_writebatch_destroy(b);
    pthread_mutex_unlock(&s->locks[stripe]);
    lc_store__unclaim(s, claim, LC_STORE__DATA);
    return rc;
}

struct lc_blob_reader {
    lc_store *s;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    lc_digest d;
    uint8_t id[LC_STORE__ID_LEN];
    /* The iterator's bounds point here, so they live as long as it does. */
    uint8_t lower[LC_STORE__CHUNK_KEY_LEN], upper[LC_STORE__CHUNK_KEY_LEN];
    int64_t pos, end;
    bool started;
};

void lc_blob_reader_free(lc_blob_reader **rp)
{
    lc_blob_reader *r = rp != NULL ? *rp : NULL;
    if (r == NULL)
        return;
    if (r->it != NULL)
        rocksdb_iter_destroy(r->it);
    if (r->ro != NULL)
        rocksdb_readoptions_destroy(r->ro);
    if (r->snap != NULL)
        rocksdb_release_snapshot(r->s->db, r->snap);
    free(r);
    *rp = NULL;
}

int lc_blob_reader_open(lc_store *s, const lc_digest *d, int64_t offset, int64_t limit,
                        lc_blob_reader **out, lc_err *err)
{
    *out = NULL;
    int rc = lc_store__check_digest(d, err);
    if (rc != 0)
        return rc;
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(d, hex);
    if (offset < 0)
        return lc_err_set(err, LC_OUT_OF_RANGE, "negative read offset %" PRId64, offset);
    if (limit < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "negative read limit %" PRId64, limit);
    lc_blob_reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    r->s = s;
    r->d = *d;
    lc_store__meta m = {.size = 0};
    if (!lc_digest_is_empty(d)) {
        /* One snapshot for record and chunks: a concurrent delete cannot
         * pull chunks out from under a read in progress. */
        r->snap = rocksdb_create_snapshot(s->db);
        r->ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_snapshot(r->ro, r->snap);
        /* Blob content was SHA-256 verified before it became visible;
         * RocksDB's own per-read CRC (a table loop in Debian's build) would
         * cost more than half the read path. */
        rocksdb_readoptions_set_verify_checksums(r->ro, 0);
        rc = lc_store__meta_get(s, r->ro, d, &m, err);
        if (rc == 0)
            rc = lc_err_set(err, LC_NOT_FOUND, "blob %s/%" PRId64 " not found", hex, d->size);
        if (rc < 0)
            goto fail;
        lc_store__record(s, d);
    }
    if (offset > m.size) {
        rc = lc_err_set(err, LC_OUT_OF_RANGE,
                        "read offset %" PRId64 " is past the end of blob %s/%" PRId64, offset, hex,
                        m.size);
        goto fail;
    }
    r->pos = offset;
    r->end = limit == 0 || limit > m.size - offset ? m.size : offset + limit;
    if (r->pos < r->end) {
        memcpy(r->id, m.storage_id, LC_STORE__ID_LEN);
        lc_store__chunk_key(r->id, 0, r->lower);
        lc_store__chunk_key(r->id, (uint64_t)r->end, r->upper);
        rocksdb_readoptions_set_iterate_lower_bound(r->ro, (const char *)r->lower,
                                                    sizeof(r->lower));
        rocksdb_readoptions_set_iterate_upper_bound(r->ro, (const char *)r->upper,
                                                    sizeof(r->upper));
        r->it = rocksdb_create_iterator_cf(s->db, r->ro, s->cf[CF_BLOB_CHUNKS]);
    }
    *out = r;
    return 0;
fail:
    lc_blob_reader_free(&r);
    return rc;
}

int lc_blob_reader_next(lc_blob_reader *r, const uint8_t **data, size_t *len, lc_err *err)
{
    *data = NULL;
    *len = 0;
    if (r->pos >= r->end)
        return 0;
    if (!r->started) {
        /* Chunks need not be aligned (a resumed upload starts a chunk at its
         * committed size), so find the last chunk starting at or before pos. */
        uint8_t key[LC_STORE__CHUNK_KEY_LEN];
        lc_store__chunk_key(r->id, (uint64_t)r->pos, key);
        rocksdb_iter_seek_for_prev(r->it, (const char *)key, sizeof(key));
        r->started = true;
    } else {
        rocksdb_iter_next(r->it);
    }
    char hex[LC_HASH_HEX_LEN + 1];
    if (!rocksdb_iter_valid(r->it)) {
        int rc = lc_store__iter_err(r->it, err, "reading blob chunks");
        if (rc != 0)
            return rc;
        lc_digest_hex(&r->d, hex);
        return lc_err_set(err, LC_DATA_LOSS,
                          "blob %s/%" PRId64 ": chunk at offset %" PRId64 " is missing", hex,
                          r->d.size, r->pos);
    }
    size_t klen, vlen;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(r->it, &klen);
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(r->it, &vlen);
    int64_t koff = klen == LC_STORE__CHUNK_KEY_LEN
                       ? (int64_t)lc_store__get_be64(k + LC_STORE__ID_LEN)
                       : INT64_MAX;
    if (koff > r->pos || (uint64_t)(r->pos - koff) >= vlen) {
        lc_digest_hex(&r->d, hex);
        return lc_err_set(err, LC_DATA_LOSS,
                          "blob %s/%" PRId64 ": chunks do not cover offset %" PRId64, hex,
                          r->d.size, r->pos);
    }
    size_t skip = (size_t)(r->pos - koff);
    size_t n = vlen - skip;
    if ((int64_t)n > r->end - r->pos)
        n = (size_t)(r->end - r->pos);
    *data = v + skip;
    *len = n;
    r->pos += (int64_t)n;
    return 0;
}

int lc_store_blob_get(lc_store *s, const lc_digest *d, uint8_t **data, size_t *len, lc_err *err)
{
    *data = NULL;
    *len = 0;
    lc_blob_reader *r = NULL;
    int rc = lc_blob_reader_open(s, d, 0, 0, &r, err);
    if (rc != 0)
        return rc;
    if ((uint64_t)d->size >= SIZE_MAX) {
        lc_blob_reader_free(&r);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "blob too large for memory");
    }
    uint8_t *buf = malloc((size_t)d->size + 1);
    if (buf == NULL) {
        lc_blob_reader_free(&r);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory for a %" PRId64 "-byte blob",
                          d->size);
    }
    size_t have = 0;
    for (;;) {
        const uint8_t *p;
        size_t n;
        if ((rc = lc_blob_reader_next(r, &p, &n, err)) != 0)
            break;
        if (n == 0)
            break;
        memcpy(buf + have, p, n);
        have += n;
    }
    lc_blob_reader_free(&r);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = have;
    return 0;
}

int lc_store_blob_delete(lc_store *s, const lc_digest *d, lc_err *err)
{
    int rc = lc_store__check_digest(d, err);
    if (rc != 0 || lc_digest_is_empty(d))
        return rc;
    int stripe = lc_store__stripe(d->hash);
    pthread_mutex_lock(&s->locks[stripe]);
    lc_store__meta m;
    rc = lc_store__meta_get(s, NULL, d, &m, err);
    if (rc <= 0)
        goto out;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    lc_store__counts delta = {0};
    lc_store__batch_drop_blob(s, b, d, &m, &delta);
    lc_store__counts_stage(s, stripe, &delta, b);
    if ((rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__FREEING, 0, err,
                                      "deleting blob")) == 0) {
        lc_store__counts_apply(s, stripe, &delta);
        lc_store__note_garbage(s, m.storage_id, m.size);
    }
    rocksdb_writebatch_destroy(b);
out:
    pthread_mutex_unlock(&s->locks[stripe]);
    if (rc == 0)
        lc_store__space_freed(s);
    return rc;
}

int lc_store_blob_scan(lc_store *s, lc_store_blob_visit_fn fn, void *ctx, lc_err *err)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_BLOB_META]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        lc_store__meta m;
        if (klen != LC_STORE__META_KEY_LEN || lc_store__meta_decode(v, vlen, &m) != 0)
            continue;
        lc_store_blob_info info = {.created = m.created / 1000, .atime = m.atime / 1000};
        memcpy(info.digest.hash, k, LC_HASH_LEN);
        info.digest.size = m.size;
        if (fn(ctx, &info) != 0)
            break;
    }
    int rc = lc_store__iter_err(it, err, "scanning blob records");
    rocksdb_iter_destroy(it);
    return rc;
}

/* ---- action cache ------------------------------------------------------- */

/* instance '\0' hash size(BE64), malloc'd. */
static uint8_t *ac_key(const char *instance, const lc_digest *d, size_t *len)
{
    size_t il = instance != NULL ? strlen(instance) : 0;
    uint8_t *k = malloc(il + 1 + LC_STORE__META_KEY_LEN);
    if (k == NULL)
        return NULL;
    if (il > 0)
        memcpy(k, instance, il);
    k[il] = '\0';
    lc_store__meta_key(d, k + il + 1);
    *len = il + 1 + LC_STORE__META_KEY_LEN;
    return k;
}

/* 1 if the AC key exists (*vlen: its value's length), 0 if not, <0 error. */
static int ac_exists(lc_store *s, const uint8_t *key, size_t klen, size_t *vlen, lc_err *err)
{
    char *e = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[CF_AC], (const char *)key, klen, &e);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading the action cache");
    *vlen = 0;
    if (ps != NULL)
        rocksdb_pinnableslice_value(ps, vlen);
    rocksdb_pinnableslice_destroy(ps);
    return ps != NULL;
}

/* Writes b, which changes the AC entry of action by delta, with the
 * stripe's counts. Caller holds the stripe lock; claimed as in
 * lc_store__write_claimed. */
int lc_store__ac_write(lc_store *s, const lc_digest *action, rocksdb_writebatch_t *b,
                       const lc_store__counts *delta, int cls, int64_t claimed, lc_err *err,
                       const char *what)
{
    int stripe = lc_store__stripe(action->hash);
    lc_store__counts_stage(s, stripe, delta, b);
    int rc = lc_store__write_claimed(s, s->wopts, b, cls, claimed, err, what);
    if (rc == 0)
        lc_store__counts_apply(s, stripe, delta);
    return rc;
}

int lc_store_ac_get(lc_store *s, const char *instance, const lc_digest *action, uint8_t **value,
                    size_t *len, lc_err *err)
{
    *value = NULL;
    *len = 0;
    int rc = lc_store__check_digest(action, err);
    if (rc != 0)
        return rc;
    size_t klen;
    uint8_t *key = ac_key(instance, action, &klen);
    if (key == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    char *e = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[CF_AC], (const char *)key, klen, &e);
    free(key);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading the action cache");
    if (ps == NULL) {
        char hex[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(action, hex);
        return lc_err_set(err, LC_NOT_FOUND, "no action result for %s/%" PRId64 " in \"%s\"", hex,
                          action->size, instance != NULL ? instance : "");
    }
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    uint8_t *copy = malloc(vlen + 1);
    if (copy == NULL) {
        rocksdb_pinnableslice_destroy(ps);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (vlen > 0)
        memcpy(copy, v, vlen);
    rocksdb_pinnableslice_destroy(ps);
    *value = copy;
    *len = vlen;
    return 0;
}

int lc_store_ac_put(lc_store *s, const char *instance, const lc_digest *action,
                    const uint8_t *value, size_t len, lc_err *err)
{
    int rc = lc_store__check_digest(action, err);
    if (rc != 0)
        return rc;
    size_t klen;
    uint8_t *key = ac_key(instance, action, &klen);
    if (key == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    /* Claimed before the stripe lock: the claim may wait for eviction. */
    int64_t claim = (int64_t)(klen + len) + LC_STORE__AC_OVERHEAD;
    if ((rc = lc_store__claim(s, claim, LC_STORE__DATA, err)) != 0) {
        free(key);
        return rc;
    }
    pthread_mutex_t *lock = lc_store__lock_for(s, action->hash);
    pthread_mutex_lock(lock);
    size_t old_len = 0;
    int existed = ac_exists(s, key, klen, &old_len, err);
    if (existed < 0) {
        rc = existed;
        goto out;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put_cf(b, s->cf[CF_AC], (const char *)key, klen,
                              value != NULL ? (const char *)value : "", len);
    lc_store__counts delta = {.ac_entries = existed ? 0 : 1,
                              .ac_bytes =
                                  (int64_t)len - (existed ? (int64_t)old_len : -(int64_t)klen)};
    rc = lc_store__ac_write(s, action, b, &delta, LC_STORE__DATA, claim, err, "writing the action cache");
    rocksdb_writebatch_destroy(b);
out:
    pthread_mutex_unlock(lock);
    lc_store__unclaim(s, claim, LC_STORE__DATA);
    free(key);
    return rc;
}

int lc_store_ac_delete(lc_store *s, const char *instance, const lc_digest *action, lc_err *err)
{
    int rc = lc_store__check_digest(action, err);
    if (rc != 0)
        return rc;
    size_t klen;
    uint8_t *key = ac_key(instance, action, &klen);
    if (key == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    pthread_mutex_t *lock = lc_store__lock_for(s, action->hash);
    pthread_mutex_lock(lock);
    size_t old_len = 0;
    int existed = ac_exists(s, key, klen, &old_len, err);
    if (existed <= 0) {
        rc = existed;
        goto out;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_cf(b, s->cf[CF_AC], (const char *)key, klen);
    lc_store__counts delta = {.ac_entries = -1, .ac_bytes = -(int64_t)(klen + old_len)};
    rc =
        lc_store__ac_write(s, action, b, &delta, LC_STORE__FREEING, 0, err, "deleting from the action cache");
    rocksdb_writebatch_destroy(b);
out:
    pthread_mutex_unlock(lock);
    free(key);
    return rc;
}

int lc_store_ac_evict(lc_store *s, const char *instance, const lc_digest *action,
                      const uint8_t *expect, size_t expect_len, bool *evicted, lc_err *err)
{
    *evicted = false;
    int rc = lc_store__check_digest(action, err);
    if (rc != 0)
        return rc;
    size_t klen;
    uint8_t *key = ac_key(instance, action, &klen);
    if (key == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    pthread_mutex_t *lock = lc_store__lock_for(s, action->hash);
    pthread_mutex_lock(lock);
    char *e = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[CF_AC], (const char *)key, klen, &e);
    if (e != NULL) {
        rc = lc_store__rdb_err(err, e, "reading the action cache");
        goto out;
    }
    if (ps == NULL)
        goto out;
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    /* Rewritten since the caller judged it (a new result, a hit count): keep. */
    bool same = vlen == expect_len && (vlen == 0 || memcmp(v, expect, vlen) == 0);
    rocksdb_pinnableslice_destroy(ps);
    if (!same)
        goto out;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_cf(b, s->cf[CF_AC], (const char *)key, klen);
    lc_store__counts delta = {.ac_entries = -1, .ac_bytes = -(int64_t)(klen + vlen)};
    rc =
        lc_store__ac_write(s, action, b, &delta, LC_STORE__FREEING, 0, err, "evicting from the action cache");
    rocksdb_writebatch_destroy(b);
    *evicted = rc == 0;
out:
    pthread_mutex_unlock(lock);
    free(key);
    return rc;
}

int lc_store_ac_evict_many(lc_store *s, lc_store_ac_victim *v, size_t n, lc_err *err)
{
    int rc = 0;
    uint64_t stripes = 0;
    for (size_t i = 0; i < n; i++) {
        v[i].evicted = false;
        if ((rc = lc_store__check_digest(&v[i].action, err)) != 0)
            return rc;
        stripes |= 1ull << lc_store__stripe(v[i].action.hash);
    }
    uint8_t **keys = calloc(n, sizeof(*keys));
    const char **kp = calloc(n, sizeof(*kp));
    size_t *klen = calloc(n, sizeof(*klen)), *vlen = calloc(n, sizeof(*vlen));
    const rocksdb_column_family_handle_t **cfs = calloc(n, sizeof(*cfs));
    char **vals = calloc(n, sizeof(*vals)), **errs = calloc(n, sizeof(*errs));
    lc_store__counts delta[LC_STORE__LOCKS];
    memset(delta, 0, sizeof(delta));
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (keys == NULL || kp == NULL || klen == NULL || vlen == NULL || cfs == NULL || vals == NULL ||
        errs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto free;
    }
    for (size_t i = 0; i < n; i++) {
        if ((keys[i] = ac_key(v[i].instance, &v[i].action, &klen[i])) == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto free;
        }
        kp[i] = (const char *)keys[i];
        cfs[i] = s->cf[CF_AC];
    }
    for (int k = 0; k < LC_STORE__LOCKS; k++)
        if (stripes & 1ull << k)
            pthread_mutex_lock(&s->locks[k]);
    rocksdb_multi_get_cf(s->db, s->ropts, cfs, n, kp, klen, vals, vlen, errs);
    for (size_t i = 0; i < n; i++) {
        if (errs[i] != NULL) {
            if (rc == 0)
                rc = lc_store__rdb_err(err, errs[i], "reading the action cache");
            else
                rocksdb_free(errs[i]);
            errs[i] = NULL;
            continue;
        }
        /* Rewritten since the caller judged it (a new result, a hit count): keep. */
        if (vals[i] == NULL || vlen[i] != v[i].expect_len ||
            (vlen[i] > 0 && memcmp(vals[i], v[i].expect, vlen[i]) != 0))
            continue;
        rocksdb_writebatch_delete_cf(b, s->cf[CF_AC], kp[i], klen[i]);
        lc_store__counts *d = &delta[lc_store__stripe(v[i].action.hash)];
        d->ac_entries -= 1;
        d->ac_bytes -= (int64_t)(klen[i] + vlen[i]);
        v[i].evicted = true;
    }
    if (rc == 0 && rocksdb_writebatch_count(b) > 0) {
        for (int k = 0; k < LC_STORE__LOCKS; k++)
            if (delta[k].ac_entries != 0)
                lc_store__counts_stage(s, k, &delta[k], b);
        rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__FREEING, 0, err,
                                     "evicting from the action cache");
        for (int k = 0; rc == 0 && k < LC_STORE__LOCKS; k++)
            if (delta[k].ac_entries != 0)
                lc_store__counts_apply(s, k, &delta[k]);
    }
    for (int k = LC_STORE__LOCKS - 1; k >= 0; k--)
        if (stripes & 1ull << k)
            pthread_mutex_unlock(&s->locks[k]);
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            v[i].evicted = false;
free:
    rocksdb_writebatch_destroy(b);
    for (size_t i = 0; i < n; i++) {
        if (keys != NULL)
            free(keys[i]);
        if (vals != NULL)
            rocksdb_free(vals[i]);
        if (errs != NULL)
            rocksdb_free(errs[i]);
    }
    free(errs);
    free(vals);
    free(cfs);
    free(vlen);
    free(klen);
    free(kp);
    free(keys);
    return rc;
}

/* Visits the entries from the iterator's position on (only instance's,
 * plen = its length + 1, if instance); skip_key (may be NULL) is passed over. */
static int ac_walk(rocksdb_iterator_t *it, const char *instance, size_t plen,
                   const uint8_t *skip_key, size_t skip_len, lc_store_ac_visit_fn fn, void *ctx,
                   lc_err *err)
{
    char *name = NULL;
    size_t name_cap = 0;
    int rc = 0;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (instance != NULL && (klen < plen || memcmp(k, instance, plen) != 0))
            break;
        if (skip_key != NULL && klen == skip_len && memcmp(k, skip_key, klen) == 0)
            continue;
        const char *nul = memchr(k, '\0', klen);
        if (nul == NULL || (size_t)(k + klen - (nul + 1)) != LC_STORE__META_KEY_LEN)
            continue; /* not an AC key we wrote */
        size_t il = (size_t)(nul - k);
        if (il + 1 > name_cap) {
            char *p = realloc(name, il + 1);
            if (p == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            name = p;
            name_cap = il + 1;
        }
        memcpy(name, k, il + 1);
        lc_digest d;
        memcpy(d.hash, nul + 1, LC_HASH_LEN);
        d.size = (int64_t)lc_store__get_be64((const uint8_t *)nul + 1 + LC_HASH_LEN);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (fn(ctx, name, &d, (const uint8_t *)v, vlen) != 0)
            goto out;
    }
    rc = lc_store__iter_err(it, err, "scanning the action cache");
out:
    free(name);
    return rc;
}

int lc_store_ac_scan(lc_store *s, const char *instance, lc_store_ac_visit_fn fn, void *ctx,
                     lc_err *err)
{
    size_t plen = instance != NULL ? strlen(instance) + 1 : 0; /* prefix includes the NUL */
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_AC]);
    if (instance != NULL)
        rocksdb_iter_seek(it, instance, plen);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = ac_walk(it, instance, plen, NULL, 0, fn, ctx, err);
    rocksdb_iter_destroy(it);
    return rc;
}

int lc_store_ac_scan_after(lc_store *s, const char *instance, const lc_digest *action,
                           lc_store_ac_visit_fn fn, void *ctx, lc_err *err)
{
    uint8_t *key = NULL;
    size_t klen = 0;
    if (instance != NULL && action != NULL && (key = ac_key(instance, action, &klen)) == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_AC]);
    if (key != NULL)
        rocksdb_iter_seek(it, (const char *)key, klen);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = ac_walk(it, NULL, 0, key, klen, fn, ctx, err);
    rocksdb_iter_destroy(it);
    free(key);
    return rc;
}

/* ---- totals ------------------------------------------------------------- */

void lc_store_get_totals(lc_store *s, lc_store_totals *out)
{
    out->blobs = atomic_load(&s->blobs);
    out->blob_bytes = atomic_load(&s->blob_bytes);
    out->ac_entries = atomic_load(&s->ac_entries);
    out->ac_bytes = atomic_load(&s->ac_bytes);
    int64_t up = atomic_load(&s->space.upload_bytes);
    out->upload_bytes = up > 0 ? (uint64_t)up : 0;
    int64_t claims = atomic_load(&s->space.data_claimed);
    int64_t over = atomic_load(&s->space.disk_over);
    out->disk_over = over > 0 ? (uint64_t)over : 0;
    out->used_bytes = out->blob_bytes + out->blobs * LC_STORE__BLOB_OVERHEAD + out->ac_bytes +
                      out->ac_entries * LC_STORE__AC_OVERHEAD + out->upload_bytes +
                      (claims > 0 ? (uint64_t)claims : 0) + out->disk_over;
    out->max_bytes = s->space.max_bytes;
}
