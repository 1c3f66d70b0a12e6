/* store_upload.c - resumable uploads (ByteStream.Write) into the store.
 *
 * An upload writes chunks under its own storage id, named by its "uploads"
 * record (storage id, expected digest). Each chunk's batch also rewrites
 * the upload's progress mark, a small record in the chunk column family
 * right after its chunks (storage id || FF*8: committed bytes, last write).
 * Mark and chunk sit in one memtable, so they reach the disk together
 * whether or not the batch had the WAL: after a crash the mark says exactly
 * which bytes are durable, and a resume (or QueryWriteStatus) continues from
 * there, not from 0. Only lc_upload_finish, after checking SHA-256 and size,
 * writes the blob record that makes the chunks visible. At most one handle
 * per upload key exists at a time (a second open gets ABORTED), which keeps
 * one writer per storage id.
 *
 * Space: an open upload claims its remaining declared size (store_space.c),
 * so writers in flight together never promise more than the disk or
 * --max-size holds; each chunk moves its bytes from the claim to the
 * store's upload bytes, and finishing moves them to the blob counts.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

enum up_state {
    UP_OPEN,     /* receiving data */
    UP_COMPLETE, /* the blob already exists: data is counted and dropped */
    UP_DONE,     /* finished or discarded */
    UP_BROKEN,   /* a write failed: the hash state no longer matches the store */
};

struct lc_upload {
    lc_store *s;
    char *key;
    size_t keylen;
    lc_digest d;
    lc_store__uprec rec;
    lc_hasher *h;
    uint8_t *buf; /* LC_STORE_CHUNK bytes, allocated on first partial chunk */
    size_t buflen;
    int64_t received; /* UP_COMPLETE: bytes the client sent anyway */
    int state;
    int64_t claim;           /* bytes still claimed for this upload (class DATA) */
    int n_chunks;            /* chunks this handle wrote (one at offset 0: a version 2 record) */
    int64_t start_committed; /* committed when this handle opened */
    bool nowal;              /* large: chunks skip the WAL (LC_STORE__NOWAL_MIN) */
    bool unsynced;  /* chunks of this upload may sit in memtables only: flush before commit */
    uint64_t epoch; /* lc_store__flush_epoch after the last chunk write */
};

/* ---- the registry of keys with an open handle ---------------------------- */

static bool active_has_locked(lc_store *s, const char *key, size_t keylen)
{
    for (lc_store__active *a = s->active; a != NULL; a = a->next)
        if (strlen(a->key) == keylen && memcmp(a->key, key, keylen) == 0)
            return true;
    return false;
}

static int active_add(lc_store *s, const char *key, lc_err *err)
{
    size_t n = strlen(key);
    lc_store__active *a = malloc(sizeof(*a) + n + 1);
    if (a == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(a->key, key, n + 1);
    pthread_mutex_lock(&s->active_lock);
    if (active_has_locked(s, key, n)) {
        pthread_mutex_unlock(&s->active_lock);
        free(a);
        return lc_err_set(err, LC_ABORTED, "upload %s is being written by another stream", key);
    }
    a->next = s->active;
    s->active = a; /* the registry owns it now; active_remove frees it */
    pthread_mutex_unlock(&s->active_lock);
    return 0;
}

static void active_remove(lc_store *s, const char *key)
{
    pthread_mutex_lock(&s->active_lock);
    for (lc_store__active **p = &s->active; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            lc_store__active *a = *p;
            *p = a->next;
            free(a);
            break;
        }
    }
    pthread_mutex_unlock(&s->active_lock);
}

/* ---- records ------------------------------------------------------------ */

/* 1 found (and decoded), 0 absent or undecodable, <0 error. */
static int uprec_get(lc_store *s, const char *key, size_t keylen, lc_store__uprec *u, lc_err *err)
{
    char *e = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[CF_UPLOADS], key, keylen, &e);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading upload record");
    if (ps == NULL)
        return 0;
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    int ok = lc_store__uprec_decode(v, vlen, u) == 0;
    rocksdb_pinnableslice_destroy(ps);
    return ok;
}

/* The durable progress of upload record u: its mark if there is one (what
 * reached the disk with the chunks), else the record's own committed size.
 * *updated (may be NULL): the later of record and mark. 0 or <0 error. */
static int progress_get(lc_store *s, const lc_store__uprec *u, int64_t *committed, int64_t *updated,
                        lc_err *err)
{
    uint8_t key[LC_STORE__CHUNK_KEY_LEN];
    lc_store__mark_key(u->storage_id, key);
    char *e = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[CF_BLOB_CHUNKS],
                                                        (const char *)key, sizeof(key), &e);
    if (e != NULL)
        return lc_store__rdb_err(err, e, "reading upload progress");
    *committed = u->committed;
    if (updated != NULL)
        *updated = u->updated;
    if (ps != NULL) {
        size_t vlen;
        const uint8_t *v = (const uint8_t *)rocksdb_pinnableslice_value(ps, &vlen);
        if (vlen == LC_STORE__MARK_VAL_LEN) {
            int64_t c = (int64_t)lc_store__get_be64(v);
            int64_t t = (int64_t)lc_store__get_be64(v + 8);
            if (c >= 0 && c <= u->digest.size)
                *committed = c;
            if (updated != NULL && t > *updated)
                *updated = t;
        }
        rocksdb_pinnableslice_destroy(ps);
    }
    return 0;
}

static void batch_put_mark(lc_upload *u, rocksdb_writebatch_t *b)
{
    uint8_t key[LC_STORE__CHUNK_KEY_LEN], val[LC_STORE__MARK_VAL_LEN];
    lc_store__mark_key(u->rec.storage_id, key);
    lc_store__put_be64(val, (uint64_t)u->rec.committed);
    lc_store__put_be64(val + 8, (uint64_t)u->rec.updated);
    rocksdb_writebatch_put_cf(b, u->s->cf[CF_BLOB_CHUNKS], (const char *)key, sizeof(key),
                              (const char *)val, sizeof(val));
}

static void batch_put_uprec(lc_upload *u, rocksdb_writebatch_t *b)
{
    uint8_t val[LC_STORE__UPLOAD_VAL_LEN];
    lc_store__uprec_encode(&u->rec, val);
    rocksdb_writebatch_put_cf(b, u->s->cf[CF_UPLOADS], u->key, u->keylen, (const char *)val,
                              sizeof(val));
}

/* Deletes the upload record of key and the chunks of id (committed bytes
 * of them) in one batch. */
static int drop_upload(lc_store *s, const char *key, size_t keylen, const uint8_t *id,
                       int64_t committed, lc_err *err)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_cf(b, s->cf[CF_UPLOADS], key, keylen);
    lc_store__batch_drop_chunks(s, b, id);
    int rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__FREEING, 0, err, "dropping upload");
    rocksdb_writebatch_destroy(b);
    if (rc == 0) {
        atomic_fetch_sub(&s->space.upload_bytes, committed);
        lc_store__note_garbage(s, id, committed);
        lc_store__space_freed(s);
    }
    return rc;
}

/* Feeds the durable chunks [0, committed) to a fresh hasher. DATA_LOSS if
 * they do not cover that range exactly. */
static int rehash(lc_upload *u, lc_err *err)
{
    lc_store *s = u->s;
    uint8_t lo[LC_STORE__CHUNK_KEY_LEN], hi[LC_STORE__CHUNK_KEY_LEN];
    lc_store__chunk_key(u->rec.storage_id, 0, lo);
    lc_store__chunk_key(u->rec.storage_id, (uint64_t)u->rec.committed, hi);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_BLOB_CHUNKS]);
    int64_t pos = 0;
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo)); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen != LC_STORE__CHUNK_KEY_LEN || (int64_t)lc_store__get_be64(k + 16) != pos)
            break;
        lc_hasher_update(u->h, v, vlen);
        pos += (int64_t)vlen;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e != NULL)
        rc = lc_store__rdb_err(err, e, "reading upload chunks");
    else if (pos != u->rec.committed)
        rc = lc_err_set(err, LC_DATA_LOSS,
                        "upload %s: stored chunks cover %" PRId64 " of %" PRId64 " committed bytes",
                        u->key, pos, u->rec.committed);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* Starts the upload afresh under a new storage id, dropping old's chunks
 * (old_committed bytes of them). */
static int start_fresh(lc_upload *u, const lc_store__uprec *old, int64_t old_committed, lc_err *err)
{
    lc_digest empty;
    lc_hasher_final(u->h, &empty); /* reset */
    memset(&u->rec, 0, sizeof(u->rec));
    int rc = lc_store__new_id(u->rec.storage_id, err);
    if (rc != 0)
        return rc;
    u->rec.digest = u->d;
    u->rec.started = u->rec.updated = lc_store__now();
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (old != NULL)
        lc_store__batch_drop_chunks(u->s, b, old->storage_id);
    batch_put_uprec(u, b);
    rc = lc_store__write(u->s, b, err, "starting upload");
    rocksdb_writebatch_destroy(b);
    if (rc == 0 && old != NULL) {
        atomic_fetch_sub(&u->s->space.upload_bytes, old_committed);
        lc_store__note_garbage(u->s, old->storage_id, old_committed);
    }
    return rc;
}

/* ---- the handle ------------------------------------------------------- */

void lc_upload_free(lc_upload **up)
{
    lc_upload *u = up != NULL ? *up : NULL;
    if (u == NULL)
        return;
    if (u->key != NULL)
        active_remove(u->s, u->key);
    if (u->nowal)
        atomic_fetch_sub(&u->s->nowal_open, 1);
    lc_store__unclaim(u->s, u->claim, LC_STORE__DATA);
    lc_hasher_free(&u->h);
    free(u->buf);
    free(u->key);
    free(u);
    *up = NULL;
}

int lc_upload_open(lc_store *s, const char *key, const lc_digest *d, lc_upload **out,
                   bool *already_complete, lc_err *err)
{
    *out = NULL;
    if (already_complete != NULL)
        *already_complete = false;
    if (key == NULL || key[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "empty upload name");
    if (d == NULL || d->size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "upload %s: bad digest", key);
    lc_upload *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    u->s = s;
    u->d = *d;
    if (d->size >= LC_STORE__NOWAL_MIN) {
        if (atomic_fetch_add(&s->nowal_open, 1) < LC_STORE__NOWAL_STREAMS)
            u->nowal = true;
        else
            atomic_fetch_sub(&s->nowal_open, 1);
    }
    u->epoch = lc_store__flush_epoch(s);
    u->keylen = strlen(key);
    u->h = lc_hasher_new();
    char *k = malloc(u->keylen + 1);
    int rc;
    if (u->h == NULL || k == NULL) {
        free(k);
        lc_upload_free(&u);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    memcpy(k, key, u->keylen + 1);
    if ((rc = active_add(s, key, err)) != 0) {
        free(k);
        lc_upload_free(&u);
        return rc;
    }
    u->key = k; /* from here on lc_upload_free unregisters it */

    lc_store__meta m;
    int exists = lc_digest_is_empty(d) ? 1 : lc_store__meta_get(s, NULL, d, &m, err);
    lc_store__uprec old;
    int64_t old_committed = 0;
    int have_old = exists < 0 ? 0 : uprec_get(s, key, u->keylen, &old, err);
    if (have_old > 0 && (rc = progress_get(s, &old, &old_committed, NULL, err)) != 0)
        goto fail;
    if ((rc = exists < 0 ? exists : have_old < 0 ? have_old : 0) != 0)
        goto fail;
    if (exists) {
        u->state = UP_COMPLETE;
        if (!lc_digest_is_empty(d)) /* the client relies on it now: an access for LRU */
            lc_store__record(s, d);
        if (have_old &&
            (rc = drop_upload(s, key, u->keylen, old.storage_id, old_committed, err)) != 0)
            goto fail;
    } else if (have_old && lc_digest_equal(&old.digest, d)) {
        u->rec = old;
        u->rec.committed = old_committed; /* what reached the disk */
        rc = rehash(u, err);
        if (rc == -LC_DATA_LOSS) /* unusable leftovers: start over, the client resends */
            rc = start_fresh(u, &old, old_committed, err);
        if (rc != 0)
            goto fail;
    } else if ((rc = start_fresh(u, have_old ? &old : NULL, old_committed, err)) != 0) {
        goto fail;
    }
    if (u->state == UP_OPEN) {
        /* A resumed large upload's earlier chunks may have skipped the WAL
         * (another handle wrote them): if this one keeps the WAL, they are
         * made durable first, so that no later chunk (replayed from the WAL
         * after a crash) can move the mark past chunks that were lost. */
        u->unsynced = u->nowal || (d->size >= LC_STORE__NOWAL_MIN && u->rec.committed > 0);
        if (!u->nowal && u->unsynced) {
            if ((rc = lc_store__flush_chunks(s, u->epoch, err)) != 0)
                goto fail;
            u->unsynced = false;
        }
        /* The rest of the blob, promised now: writers in flight together
         * never count on more than the disk and --max-size hold. */
        int64_t claim = d->size - u->rec.committed + LC_STORE__BLOB_OVERHEAD;
        if ((rc = lc_store__claim(s, claim, LC_STORE__DATA, err)) != 0)
            goto fail;
        u->claim = claim;
        u->start_committed = u->rec.committed;
    }
    if (already_complete != NULL)
        *already_complete = u->state == UP_COMPLETE;
    *out = u;
    return 0;
fail:
    lc_upload_free(&u);
    return rc;
}

int64_t lc_upload_committed(const lc_upload *u)
{
    return u->state == UP_COMPLETE ? u->d.size : u->rec.committed;
}

static int usable(const lc_upload *u, lc_err *err)
{
    if (u->state == UP_DONE)
        return lc_err_set(err, LC_FAILED_PRECONDITION, "upload %s is already finished", u->key);
    if (u->state == UP_BROKEN)
        return lc_err_set(err, LC_INTERNAL, "upload %s failed earlier; open it again to resume",
                          u->key);
    return 0;
}

/* Pieces of one chunk to write (RocksDB concatenates them into the batch). */
#define MAX_PARTS 512 /* a 1 MiB message arrives in ~80 slices */
typedef struct chunk_parts {
    const char *p[MAX_PARTS];
    size_t len[MAX_PARTS];
    int n;
    size_t total;
} chunk_parts;

/* Writes one chunk at the committed offset and advances the record, atomically. */
static int write_chunk(lc_upload *u, const chunk_parts *c, lc_err *err)
{
    uint8_t key[LC_STORE__CHUNK_KEY_LEN];
    const char *kp = (const char *)key;
    size_t klen = sizeof(key);
    lc_store__chunk_key(u->rec.storage_id, (uint64_t)u->rec.committed, key);
    rocksdb_writebatch_t *b = lc_store__batch_take(u->s);
    rocksdb_writebatch_putv_cf(b, u->s->cf[CF_BLOB_CHUNKS], 1, &kp, &klen, c->n, c->p, c->len);
    u->rec.committed += (int64_t)c->total;
    u->rec.updated = lc_store__now();
    /* The mark goes with the chunk, into the same memtable. */
    batch_put_mark(u, b);
    int64_t claimed = (int64_t)c->total < u->claim ? (int64_t)c->total : u->claim;
    int rc = lc_store__write_claimed(u->s, u->nowal ? u->s->wopts_nowal : u->s->wopts, b,
                                     LC_STORE__DATA, claimed, err, "writing upload chunk");
    lc_store__batch_release(u->s, b);
    u->epoch = lc_store__flush_epoch(u->s);
    if (rc != 0) {
        u->rec.committed -= (int64_t)c->total;
        u->state = UP_BROKEN;
        return rc;
    }
    u->n_chunks++;
    atomic_fetch_add(&u->s->space.upload_bytes, (int64_t)c->total);
    u->claim -= claimed;
    lc_store__unclaim(u->s, claimed, LC_STORE__DATA);
    return 0;
}

static int write_buffered(lc_upload *u, lc_err *err)
{
    chunk_parts c = {.p = {(const char *)u->buf}, .len = {u->buflen}, .n = 1, .total = u->buflen};
    int rc = write_chunk(u, &c, err);
    if (rc == 0)
        u->buflen = 0;
    return rc;
}

/* Collects the next LC_STORE_CHUNK bytes from iov at (*i, *off) without
 * copying; false (position unchanged) if they span more than MAX_PARTS. */
static bool gather_chunk(const struct iovec *iov, size_t *i, size_t *off, chunk_parts *c)
{
    size_t j = *i, o = *off;
    c->n = 0;
    c->total = 0;
    while (c->total < LC_STORE_CHUNK) {
        if (o == iov[j].iov_len) {
            j++;
            o = 0;
            continue;
        }
        if (c->n == MAX_PARTS)
            return false;
        size_t k = iov[j].iov_len - o;
        if (k > LC_STORE_CHUNK - c->total)
            k = LC_STORE_CHUNK - c->total;
        c->p[c->n] = (const char *)iov[j].iov_base + o;
        c->len[c->n++] = k;
        c->total += k;
        o += k;
    }
    *i = j;
    *off = o;
    return true;
}

int lc_upload_appendv(lc_upload *u, const struct iovec *iov, size_t n, lc_err *err)
{
    int rc = usable(u, err);
    if (rc != 0)
        return rc;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += iov[i].iov_len;
    int64_t have = u->state == UP_COMPLETE ? u->received : u->rec.committed + (int64_t)u->buflen;
    if ((uint64_t)len > (uint64_t)(u->d.size - have))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "upload %s: %zu more bytes after %" PRId64
                          " would exceed the declared size %" PRId64,
                          u->key, len, have, u->d.size);
    if (u->state == UP_COMPLETE) {
        u->received += (int64_t)len;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        lc_hasher_update(u->h, iov[i].iov_base, iov[i].iov_len);
    size_t i = 0, off = 0;
    while (len > 0) {
        chunk_parts c;
        if (u->buflen == 0 && len >= LC_STORE_CHUNK && gather_chunk(iov, &i, &off, &c)) {
            if ((rc = write_chunk(u, &c, err)) != 0) /* whole chunk: no copy */
                return rc;
            len -= LC_STORE_CHUNK;
            continue;
        }
        if (off == iov[i].iov_len) {
            i++;
            off = 0;
            continue;
        }
        if (u->buf == NULL && (u->buf = malloc(LC_STORE_CHUNK)) == NULL) {
            u->state = UP_BROKEN;
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        }
        size_t k = iov[i].iov_len - off;
        if (k > LC_STORE_CHUNK - u->buflen)
            k = LC_STORE_CHUNK - u->buflen;
        memcpy(u->buf + u->buflen, (const uint8_t *)iov[i].iov_base + off, k);
        u->buflen += k;
        off += k;
        len -= k;
        if (u->buflen == LC_STORE_CHUNK && (rc = write_buffered(u, err)) != 0)
            return rc;
    }
    return 0;
}

int lc_upload_append(lc_upload *u, const void *data, size_t len, lc_err *err)
{
    struct iovec one = {(void *)data, len};
    return lc_upload_appendv(u, &one, 1, err);
}

int lc_upload_flush(lc_upload *u, lc_err *err)
{
    int rc = usable(u, err);
    if (rc != 0 || u->state != UP_OPEN || u->buflen == 0)
        return rc;
    return write_buffered(u, err);
}

int lc_upload_finish(lc_upload *u, lc_err *err)
{
    int rc = usable(u, err);
    if (rc != 0)
        return rc;
    if (u->state == UP_COMPLETE) {
        u->state = UP_DONE;
        return 0;
    }
    if ((rc = lc_upload_flush(u, err)) != 0)
        return rc;
    lc_store *s = u->s;
    lc_digest got;
    lc_hasher_final(u->h, &got);
    got.size = u->rec.committed;
    if (!lc_digest_equal(&got, &u->d)) {
        char want_hex[LC_HASH_HEX_LEN + 1], got_hex[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(&u->d, want_hex);
        lc_digest_hex(&got, got_hex);
        u->state = UP_DONE;
        rc = drop_upload(s, u->key, u->keylen, u->rec.storage_id, u->rec.committed, err);
        if (rc != 0)
            return rc;
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "digest mismatch: expected %s/%" PRId64 ", received %s/%" PRId64,
                          want_hex, u->d.size, got_hex, got.size);
    }
    if (u->unsynced) { /* the commit below must not outlive its chunks */
        if ((rc = lc_store__flush_chunks(s, u->epoch, err)) != 0) {
            u->state = UP_BROKEN;
            return rc;
        }
        u->unsynced = false;
    }
    int stripe = lc_store__stripe(u->d.hash);
    pthread_mutex_lock(&s->locks[stripe]);
    lc_store__meta m;
    int exists = lc_store__meta_get(s, NULL, &u->d, &m, err);
    if (exists < 0) {
        rc = exists;
        goto out;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_cf(b, s->cf[CF_UPLOADS], u->key, u->keylen);
    lc_store__counts delta = {0};
    if (exists) { /* another writer won: ours are redundant copies */
        lc_store__batch_drop_chunks(s, b, u->rec.storage_id);
        lc_store__record(s, &u->d);
    } else {
        uint8_t mark[LC_STORE__CHUNK_KEY_LEN];
        lc_store__mark_key(u->rec.storage_id, mark);
        rocksdb_writebatch_delete_cf(b, s->cf[CF_BLOB_CHUNKS], (const char *)mark, sizeof(mark));
        memcpy(m.storage_id, u->rec.storage_id, LC_STORE__ID_LEN);
        m.size = u->d.size;
        m.created = m.atime = lc_store__now_ms();
        /* One chunk at offset 0, written by this handle: evicting it is a
         * point delete (one chunk of a resumed upload may not start at 0). */
        m.one_chunk = u->n_chunks == 1 && u->start_committed == 0;
        lc_store__batch_put_blob(s, b, &u->d, &m);
        delta.blobs = 1;
        delta.blob_bytes = u->d.size;
        lc_store__counts_stage(s, stripe, &delta, b);
    }
    /* The record's overhead was claimed at open; nothing else is new. */
    rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__DATA, u->claim, err, "committing blob");
    rocksdb_writebatch_destroy(b);
    if (rc == 0) {
        if (!exists) {
            lc_store__counts_apply(s, stripe, &delta);
            lc_store__note_atime(s, m.atime);
        } else {
            lc_store__note_garbage(s, u->rec.storage_id, u->rec.committed);
        }
        atomic_fetch_sub(&s->space.upload_bytes, u->rec.committed);
        lc_store__unclaim(s, u->claim, LC_STORE__DATA);
        u->claim = 0;
    }
out:
    pthread_mutex_unlock(&s->locks[stripe]);
    u->state = rc == 0 ? UP_DONE : UP_BROKEN;
    return rc;
}

int lc_store_upload_status(lc_store *s, const char *key, const lc_digest *d, int64_t *committed,
                           bool *complete, lc_err *err)
{
    *committed = 0;
    *complete = false;
    if (key == NULL || d == NULL || d->size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "bad upload name or digest");
    lc_store__meta m;
    int exists = lc_digest_is_empty(d) ? 1 : lc_store__meta_get(s, NULL, d, &m, err);
    if (exists < 0)
        return exists;
    if (exists) {
        *committed = d->size;
        *complete = true;
        return 0;
    }
    lc_store__uprec rec;
    int rc = uprec_get(s, key, strlen(key), &rec, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || !lc_digest_equal(&rec.digest, d))
        return lc_err_set(err, LC_NOT_FOUND, "no upload %s", key);
    return progress_get(s, &rec, committed, NULL, err);
}

/* ---- garbage collection of abandoned uploads ----------------------------- */

int lc_store__gc_uploads(lc_store *s, int64_t max_age, uint64_t *removed, lc_err *err)
{
    uint64_t n = 0;
    int rc = 0;
    int64_t cutoff = lc_store__now() - max_age;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_UPLOADS]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && rc == 0; rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        lc_store__uprec u;
        int64_t committed = 0, updated = 0;
        bool bad = lc_store__uprec_decode(v, vlen, &u) != 0;
        if (!bad && (rc = progress_get(s, &u, &committed, &updated, err)) != 0)
            break;
        if (!bad && updated > cutoff)
            continue;
        /* Holding the registry lock across the delete: an open of this key
         * either happened before (and we skip it) or happens after (and
         * finds no record). */
        pthread_mutex_lock(&s->active_lock);
        if (!active_has_locked(s, k, klen)) {
            rocksdb_writebatch_t *b = rocksdb_writebatch_create();
            rocksdb_writebatch_delete_cf(b, s->cf[CF_UPLOADS], k, klen);
            if (!bad)
                lc_store__batch_drop_chunks(s, b, u.storage_id);
            rc = lc_store__write_claimed(s, s->wopts, b, LC_STORE__FREEING, 0, err,
                                         "dropping a stale upload");
            rocksdb_writebatch_destroy(b);
            if (rc == 0) {
                n++;
                atomic_fetch_sub(&s->space.upload_bytes, committed);
                if (!bad)
                    lc_store__note_garbage(s, u.storage_id, committed);
            }
        }
        pthread_mutex_unlock(&s->active_lock);
    }
    if (rc == 0) {
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e != NULL)
            rc = lc_store__rdb_err(err, e, "scanning uploads");
    }
    rocksdb_iter_destroy(it);
    if (removed != NULL)
        *removed = n;
    return rc;
}

int lc_store_gc_uploads(lc_store *s, int64_t max_age_seconds, uint64_t *removed, lc_err *err)
{
    if (max_age_seconds < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "negative upload age %" PRId64,
                          max_age_seconds);
    return lc_store__gc_uploads(s, max_age_seconds, removed, err);
}

int lc_store__count_uploads(lc_store *s, lc_err *err)
{
    int64_t total = 0;
    int rc = 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[CF_UPLOADS]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && rc == 0; rocksdb_iter_next(it)) {
        size_t vlen;
        const char *v = rocksdb_iter_value(it, &vlen);
        lc_store__uprec u;
        int64_t committed = 0;
        if (lc_store__uprec_decode(v, vlen, &u) == 0 &&
            (rc = progress_get(s, &u, &committed, NULL, err)) == 0)
            total += committed;
    }
    if (rc == 0)
        rc = lc_store__iter_err(it, err, "scanning uploads");
    rocksdb_iter_destroy(it);
    atomic_store(&s->space.upload_bytes, total);
    return rc;
}
