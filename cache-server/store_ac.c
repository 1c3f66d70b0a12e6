/* store_ac.c - see store_ac.h. */
#include "store_ac.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

#define UNTRUSTED_TAG 0x01
#define WRITER_MAX 127

/* ---- a blob read that records nothing ------------------------------------- */

int lc_store_blob_peek(lc_store *s, const lc_digest *d, uint8_t **data, size_t *len, lc_err *err)
{
    *data = NULL;
    *len = 0;
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(d, hex);
    if (d->size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "negative blob size");
    uint8_t *buf = malloc((size_t)d->size + 1);
    if (buf == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory for a %" PRId64 "-byte blob",
                          d->size);
    if (lc_digest_is_empty(d)) {
        *data = buf;
        return 0;
    }
    /* One snapshot for the record and its chunks (as lc_blob_reader_open). */
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_iterator_t *it = NULL;
    lc_store__meta m = {.size = 0};
    int rc = lc_store__meta_get(s, ro, d, &m, err);
    if (rc == 0)
        rc = lc_err_set(err, LC_NOT_FOUND, "blob %s/%" PRId64 " not found", hex, d->size);
    if (rc < 0)
        goto out;
    uint8_t lo[LC_STORE__CHUNK_KEY_LEN];
    lc_store__chunk_key(m.storage_id, 0, lo);
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_BLOB_CHUNKS]);
    int64_t pos = 0;
    rc = 0;
    for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo));
         pos < m.size && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        if (klen != LC_STORE__CHUNK_KEY_LEN || memcmp(k, m.storage_id, LC_STORE__ID_LEN) != 0)
            break;
        int64_t koff = (int64_t)lc_store__get_be64(k + LC_STORE__ID_LEN);
        /* Chunks need not be aligned (a resumed upload starts one at its
         * committed size), but they must cover pos. The upload's progress
         * mark sorts last (offset UINT64_MAX, read here as -1): not data. */
        if (koff < 0 || koff > pos || (uint64_t)(pos - koff) >= vlen)
            break;
        size_t skip = (size_t)(pos - koff), n = vlen - skip;
        if ((int64_t)n > m.size - pos)
            n = (size_t)(m.size - pos);
        memcpy(buf + pos, v + skip, n);
        pos += (int64_t)n;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e != NULL)
        rc = lc_store__rdb_err(err, e, "reading blob chunks");
    else if (pos != m.size)
        rc = lc_err_set(err, LC_DATA_LOSS,
                        "blob %s/%" PRId64 ": chunks do not cover offset %" PRId64, hex, d->size,
                        pos);
out:
    if (it != NULL)
        rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db, snap);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = (size_t)m.size;
    return 0;
}

/* ---- untrusted action cache entries --------------------------------------- */

static int check_writer(const char *writer, lc_err *err)
{
    size_t n = writer != NULL ? strlen(writer) : 0;
    if (n == 0 || n > WRITER_MAX)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "an untrusted entry needs its writer's name (1..%d bytes)", WRITER_MAX);
    return 0;
}

/* 0x01 instance '\0' [hash size [writer]], malloc'd. */
static uint8_t *key_of(const char *instance, const lc_digest *action, const char *writer,
                       size_t *len)
{
    size_t il = instance != NULL ? strlen(instance) : 0;
    size_t wl = writer != NULL ? strlen(writer) : 0;
    uint8_t *k = malloc(1 + il + 1 + LC_STORE__META_KEY_LEN + wl);
    if (k == NULL)
        return NULL;
    size_t n = 0;
    k[n++] = UNTRUSTED_TAG;
    if (il > 0)
        memcpy(k + n, instance, il);
    n += il;
    k[n++] = '\0';
    if (action != NULL) {
        lc_store__meta_key(action, k + n);
        n += LC_STORE__META_KEY_LEN;
    }
    if (wl > 0)
        memcpy(k + n, writer, wl);
    *len = n + wl;
    return k;
}

/* Splits an untrusted key; false for any other key. */
static bool key_split(const char *k, size_t klen, size_t *inst_len, lc_digest *action,
                      size_t *writer_off)
{
    if (klen < 2 || (uint8_t)k[0] != UNTRUSTED_TAG)
        return false;
    const char *nul = memchr(k + 1, '\0', klen - 1);
    if (nul == NULL)
        return false;
    size_t after = (size_t)(k + klen - (nul + 1));
    /* Exactly 40 is a trusted key of an instance starting with 0x01. */
    if (after <= LC_STORE__META_KEY_LEN || after > LC_STORE__META_KEY_LEN + WRITER_MAX)
        return false;
    *inst_len = (size_t)(nul - (k + 1));
    memcpy(action->hash, nul + 1, LC_HASH_LEN);
    action->size = (int64_t)lc_store__get_be64((const uint8_t *)nul + 1 + LC_HASH_LEN);
    *writer_off = (size_t)(nul + 1 - k) + LC_STORE__META_KEY_LEN;
    return true;
}

/* 1 (and the value's length) if key is present, 0 if not, <0 on error. */
static int key_exists(lc_store *s, const uint8_t *key, size_t klen, size_t *vlen, lc_err *err)
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

int lc_store_ac_untrusted_get(lc_store *s, const char *instance, const lc_digest *action,
                              const char *writer, uint8_t **value, size_t *len, lc_err *err)
{
    *value = NULL;
    *len = 0;
    int rc = check_writer(writer, err);
    if (rc < 0)
        return rc;
    size_t klen;
    uint8_t *key = key_of(instance, action, writer, &klen);
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
        return lc_err_set(err, LC_NOT_FOUND,
                          "no untrusted action result of '%s' for %s/%" PRId64 " in \"%s\"", writer,
                          hex, action->size, instance != NULL ? instance : "");
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

int lc_store_ac_untrusted_put(lc_store *s, const char *instance, const lc_digest *action,
                              const char *writer, const uint8_t *value, size_t len, lc_err *err)
{
    int rc = check_writer(writer, err);
    if (rc < 0)
        return rc;
    size_t klen;
    uint8_t *key = key_of(instance, action, writer, &klen);
    if (key == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    /* Claimed before the stripe lock, as lc_store_ac_put: it may wait for eviction. */
    int64_t claim = (int64_t)(klen + len) + LC_STORE__AC_OVERHEAD;
    if ((rc = lc_store__claim(s, claim, LC_STORE__DATA, err)) != 0) {
        free(key);
        return rc;
    }
    /* The store's stripe of this action: counts stay exact (as lc_store_ac_put). */
    pthread_mutex_t *lock = lc_store__lock_for(s, action->hash);
    pthread_mutex_lock(lock);
    size_t old_len = 0;
    int existed = key_exists(s, key, klen, &old_len, err);
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
    rc = lc_store__ac_write(s, action, b, &delta, LC_STORE__DATA, claim, err,
                            "writing the action cache");
    rocksdb_writebatch_destroy(b);
out:
    pthread_mutex_unlock(lock);
    lc_store__unclaim(s, claim, LC_STORE__DATA);
    free(key);
    return rc;
}

/* Deletes key when expect is NULL or the value still equals it. */
static int delete_if(lc_store *s, const lc_digest *action, const uint8_t *key, size_t klen,
                     const uint8_t *expect, size_t expect_len, bool *gone, lc_err *err)
{
    *gone = false;
    int rc = 0;
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
    bool same =
        expect == NULL || (vlen == expect_len && (vlen == 0 || memcmp(v, expect, vlen) == 0));
    rocksdb_pinnableslice_destroy(ps);
    if (!same)
        goto out;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_cf(b, s->cf[CF_AC], (const char *)key, klen);
    lc_store__counts delta = {.ac_entries = -1, .ac_bytes = -(int64_t)(klen + vlen)};
    rc = lc_store__ac_write(s, action, b, &delta, LC_STORE__FREEING, 0, err,
                            "deleting from the action cache");
    rocksdb_writebatch_destroy(b);
    *gone = rc == 0;
out:
    pthread_mutex_unlock(lock);
    return rc;
}

int lc_store_ac_untrusted_delete(lc_store *s, const char *instance, const lc_digest *action,
                                 const char *writer, lc_err *err)
{
    bool gone;
    return lc_store_ac_untrusted_evict(s, instance, action, writer, NULL, 0, &gone, err);
}

int lc_store_ac_untrusted_evict(lc_store *s, const char *instance, const lc_digest *action,
                                const char *writer, const uint8_t *expect, size_t expect_len,
                                bool *evicted, lc_err *err)
{
    *evicted = false;
    int rc = check_writer(writer, err);
    if (rc < 0)
        return rc;
    size_t klen;
    uint8_t *key = key_of(instance, action, writer, &klen);
    if (key == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    rc = delete_if(s, action, key, klen, expect, expect_len, evicted, err);
    free(key);
    return rc;
}

/* Visits the untrusted keys starting with prefix[0..plen). */
static int visit_prefix(lc_store *s, const uint8_t *prefix, size_t plen,
                        lc_store_ac_untrusted_fn fn, void *ctx, lc_err *err)
{
    char *inst = NULL, writer[WRITER_MAX + 1];
    size_t inst_cap = 0;
    int rc = 0;
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_AC]);
    for (rocksdb_iter_seek(it, (const char *)prefix, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen, il, woff;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0)
            break;
        lc_digest action;
        if (!key_split(k, klen, &il, &action, &woff))
            continue; /* a trusted key of an instance starting with 0x01 */
        if (il + 1 > inst_cap) {
            char *p = realloc(inst, il + 1);
            if (p == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            inst = p;
            inst_cap = il + 1;
        }
        memcpy(inst, k + 1, il);
        inst[il] = '\0';
        memcpy(writer, k + woff, klen - woff);
        writer[klen - woff] = '\0';
        const char *v = rocksdb_iter_value(it, &vlen);
        if (fn(ctx, inst, &action, writer, (const uint8_t *)v, vlen) != 0)
            goto out;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e != NULL)
        rc = lc_store__rdb_err(err, e, "scanning the action cache");
out:
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db, snap);
    free(inst);
    return rc;
}

int lc_store_ac_untrusted_of(lc_store *s, const char *instance, const lc_digest *action,
                             lc_store_ac_untrusted_fn fn, void *ctx, lc_err *err)
{
    size_t plen;
    uint8_t *prefix = key_of(instance, action, NULL, &plen);
    if (prefix == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = visit_prefix(s, prefix, plen, fn, ctx, err);
    free(prefix);
    return rc;
}

int lc_store_ac_untrusted_scan(lc_store *s, const char *instance, lc_store_ac_untrusted_fn fn,
                               void *ctx, lc_err *err)
{
    if (instance == NULL) {
        uint8_t tag = UNTRUSTED_TAG;
        return visit_prefix(s, &tag, 1, fn, ctx, err);
    }
    size_t plen;
    uint8_t *prefix = key_of(instance, NULL, NULL, &plen);
    if (prefix == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = visit_prefix(s, prefix, plen, fn, ctx, err);
    free(prefix);
    return rc;
}
