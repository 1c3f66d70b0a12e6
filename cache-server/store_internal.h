/* store_internal.h - what store.c and store_upload.c share; not for other modules.
 *
 * Record layouts (all integers big-endian, so keys sort by number):
 *   blob_meta  key   hash(32) size(8)
 *              value version(1)=1 size(8) storage_id(16) created(8) atime(8)
 *   blob_chunks key  storage_id(16) offset(8)   value: the bytes at offset
 *   uploads    key   the resource name          value: version(1)=1 storage_id(16)
 *              hash(32) size(8) committed(8) started(8) updated(8)
 * Times are Unix seconds.
 */
#ifndef LC_STORE_INTERNAL_H
#define LC_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <rocksdb/c.h>

#include "store.h"

#define LC_STORE__ID_LEN 16
#define LC_STORE__META_KEY_LEN (LC_HASH_LEN + 8)
#define LC_STORE__META_VAL_LEN (1 + 8 + LC_STORE__ID_LEN + 8 + 8)
#define LC_STORE__CHUNK_KEY_LEN (LC_STORE__ID_LEN + 8)
#define LC_STORE__UPLOAD_VAL_LEN (1 + LC_STORE__ID_LEN + LC_HASH_LEN + 8 + 8 + 8 + 8)
#define LC_STORE__LOCKS 64
/* Unfinished uploads idle longer than this are dropped at open. */
#define LC_STORE__UPLOAD_TTL (24 * 3600)
/* Access table: distinct blobs read between two lc_store_access_flush calls
 * (a power of two; at most 3/4 full, later reads are dropped and counted). */
#define LC_STORE__ACC_CAP (1u << 16)
/* Disk guard: a write is refused (RESOURCE_EXHAUSTED) unless the data
 * directory's filesystem keeps this much free after it; big writes also keep
 * room for flushing every memtable. RocksDB must never see ENOSPC itself:
 * Debian's build asserts (aborts) when its info LOG hits a write error. */
#define LC_STORE__SLACK_SMALL (1u << 20)
#define LC_STORE__SLACK_BIG (4u << 20)
#define LC_STORE__BIG_WRITE (64u << 10)
/* Uploads of at least this size write their chunks without the WAL (its
 * CRC32C and second copy of every byte were a third of the write path's CPU)
 * and flush the chunk column family before the commit batch, which keeps the
 * WAL: an acknowledged blob's chunks are in table files by then. Only while
 * at most LC_STORE__NOWAL_STREAMS such uploads are open: with 32 MiB
 * memtables and one flush thread, 64 streams finishing one by one made 64
 * small flushes, 2x slower than the WAL; with 8 MiB memtables and parallel
 * flushes (store.c) 64 WAL-less streams beat 2 (64 x 64 MiB: 445 vs 336
 * MB/s, same peak RSS). Smaller uploads keep the WAL (a flush per small blob
 * costs more). */
#define LC_STORE__NOWAL_MIN (4 << 20)
#define LC_STORE__NOWAL_STREAMS 64
#define LC_STORE__BLOCK_CACHE (8u << 20)
/* lc_store_reclaim compacts once deleted blob bytes reach this and 1/8 of
 * the live bytes. */
#define LC_STORE__RECLAIM_MIN (64u << 20)
/* Write batches kept for reuse by chunk writes: a fresh ~1 MiB batch per chunk
 * was a fresh mmap and 256 page faults. */
#define LC_STORE__BATCH_POOL 4

enum { CF_DEFAULT, CF_AC, CF_BLOB_META, CF_BLOB_CHUNKS, CF_UPLOADS, CF_COUNT };

/* One upload key being written right now (at most one handle per key). */
typedef struct lc_store__active {
    struct lc_store__active *next;
    char key[];
} lc_store__active;

/* Blobs read since the last flush (open addressing on the hash; a slot
 * with size < 0 is free). Two tables: a flush swaps them, so readers never
 * wait for the RocksDB writes. */
typedef struct lc_store__acc {
    pthread_mutex_t mu;
    pthread_mutex_t flush_mu; /* one flusher at a time */
    lc_digest *cur, *spare;
    size_t n;
    _Atomic uint64_t dropped;
} lc_store__acc;

struct lc_store {
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *db_opts;
    rocksdb_options_t *cf_opts[CF_COUNT];
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_cache_t *block_cache;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    /* Column families found on disk that we do not use; opened because RocksDB
     * requires it, closed with the rest. */
    rocksdb_column_family_handle_t **extra_cf;
    rocksdb_options_t *extra_opts;
    size_t n_extra;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writeoptions_t *wopts_nowal; /* chunks of large uploads (LC_STORE__NOWAL_MIN) */
    /* Group flush (lc_store__flush_chunks): a write that completed while
     * flush_epoch was e is durable once durable_epoch > e. */
    pthread_mutex_t flush_lock;
    _Atomic uint64_t flush_epoch;
    _Atomic int nowal_open; /* open uploads writing without the WAL */
    uint64_t durable_epoch; /* under flush_lock */
    pthread_mutex_t pool_lock;
    rocksdb_writebatch_t *batch_pool[LC_STORE__BATCH_POOL];
    int n_pooled;
    rocksdb_readoptions_t *ropts;
    /* Striped by hash: serializes "is it there? then write" on one digest or AC key
     * so counters stay exact and two writers never both commit a blob record. */
    pthread_mutex_t locks[LC_STORE__LOCKS];
    pthread_mutex_t active_lock;
    lc_store__active *active;
    _Atomic uint64_t blobs, blob_bytes, ac_entries;
    _Atomic uint64_t garbage_bytes; /* blob bytes deleted since the last reclaim */
    lc_store__acc acc;
    _Atomic int64_t last_space_flush; /* when the disk guard last asked for a flush */
};

typedef struct lc_store__meta {
    int64_t size;
    uint8_t storage_id[LC_STORE__ID_LEN];
    int64_t created, atime;
} lc_store__meta;

typedef struct lc_store__uprec {
    uint8_t storage_id[LC_STORE__ID_LEN];
    lc_digest digest;
    int64_t committed, started, updated;
} lc_store__uprec;

void lc_store__put_be64(uint8_t *p, uint64_t v);
uint64_t lc_store__get_be64(const uint8_t *p);
void lc_store__meta_key(const lc_digest *d, uint8_t key[LC_STORE__META_KEY_LEN]);
void lc_store__meta_encode(const lc_store__meta *m, uint8_t out[LC_STORE__META_VAL_LEN]);
int lc_store__meta_decode(const char *v, size_t len, lc_store__meta *m);
void lc_store__chunk_key(const uint8_t *id, uint64_t offset, uint8_t key[LC_STORE__CHUNK_KEY_LEN]);
void lc_store__uprec_encode(const lc_store__uprec *u, uint8_t out[LC_STORE__UPLOAD_VAL_LEN]);
int lc_store__uprec_decode(const char *v, size_t len, lc_store__uprec *u);
int lc_store__new_id(uint8_t id[LC_STORE__ID_LEN], lc_err *err);
int64_t lc_store__now(void);

/* Turns a RocksDB errptr into an lc error (and frees it); returns the negative code. */
int lc_store__rdb_err(lc_err *err, char *errptr, const char *what);
/* Writes a batch with the store's write options (lc_store__write_opts: with wo). */
int lc_store__write(lc_store *s, rocksdb_writebatch_t *b, lc_err *err, const char *what);
int lc_store__write_opts(lc_store *s, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *b,
                         lc_err *err, const char *what);
/* An empty write batch, from the pool if it has one; give it back with
 * lc_store__batch_release (which clears it, or destroys it if the pool is full). */
rocksdb_writebatch_t *lc_store__batch_take(lc_store *s);
void lc_store__batch_release(lc_store *s, rocksdb_writebatch_t *b);
/* Makes chunks written with wopts_nowal durable: flushes the chunk column
 * family's memtables to table files and waits, unless a flush that started
 * after the caller's last write (epoch: lc_store__flush_epoch read after that
 * write returned) already did. Concurrent finishing uploads share one flush. */
uint64_t lc_store__flush_epoch(lc_store *s);
int lc_store__flush_chunks(lc_store *s, uint64_t epoch, lc_err *err);
/* Adds a delete of every chunk of storage id to the batch (one range tombstone). */
void lc_store__batch_drop_chunks(lc_store *s, rocksdb_writebatch_t *b, const uint8_t *id);
/* Reads the blob record of d (latest state). 1 found, 0 absent, <0 error. */
int lc_store__meta_get(lc_store *s, const rocksdb_readoptions_t *ro, const lc_digest *d,
                       lc_store__meta *m, lc_err *err);
pthread_mutex_t *lc_store__lock_for(lc_store *s, const uint8_t *hash);
void lc_store__count_blob(lc_store *s, int64_t size, int sign);

/* Notes that blob d was read (no RocksDB write; see lc_store_access_flush). */
void lc_store__record(lc_store *s, const lc_digest *d);
/* RESOURCE_EXHAUSTED ("cache storage is full") if writing incoming more
 * bytes would leave too little free space for RocksDB (see above). */
int lc_store__space_check(lc_store *s, size_t incoming, lc_err *err);

/* Removes upload records (and their chunks) idle for at least max_age seconds
 * that no handle has open. Used at open and by lc_store_gc_uploads. */
int lc_store__gc_uploads(lc_store *s, int64_t max_age, uint64_t *removed, lc_err *err);

#endif
