/* store_internal.h - what the store's files share; not for other modules.
 *   store.c         open/close, format, counts, CAS blobs, action cache
 *   store_upload.c  resumable uploads (ByteStream.Write)
 *   store_atime.c   access recording, the access-time index, LRU eviction
 *   store_space.c   disk space and --max-size: claims, headroom, ballast
 *
 * Record layouts (all integers big-endian, so keys sort by number):
 *   default    "format_version"              -> "2"
 *              "count" stripe(1)             -> blobs(8) blob_bytes(8) ac_entries(8) ac_bytes(8)
 *   blob_meta  key   hash(32) size(8)
 *              value version(1) size(8) storage_id(16) created(8) atime(8)
 *              version 3: chunks anywhere under the id; 4: one chunk, at offset 0;
 *              times in milliseconds (version 1, format 1's: seconds, chunks anywhere)
 *   blob_atime key   atime(8) hash(32) size(8)   value: empty
 *              (one entry per blob, the same atime as its blob_meta record)
 *   blob_chunks key  storage_id(16) offset(8)   value: the bytes at offset
 *              key   storage_id(16) FF*8         value: committed(8) updated(8), the
 *                    progress mark of an unfinished upload (see store_upload.c)
 *   uploads    key   the resource name          value: version(1)=1 storage_id(16)
 *              hash(32) size(8) committed(8) started(8) updated(8)
 * Times are Unix seconds, except blob times: Unix milliseconds. A write
 * stamps its blob with the current millisecond; an access flushed as
 * second T stamps T.999, so a blob read in a second outlives one only
 * written in it (the API speaks seconds).
 *
 * Counts: 64 stripes (a digest's stripe is hash[0] % 64, the same as its
 * lock), each a record updated in the same write batch as the change it
 * counts, under the stripe lock; open reads 64 records instead of scanning.
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
#define LC_STORE__ATIME_KEY_LEN (8 + LC_STORE__META_KEY_LEN)
#define LC_STORE__CHUNK_KEY_LEN (LC_STORE__ID_LEN + 8)
#define LC_STORE__MARK_VAL_LEN 16
#define LC_STORE__UPLOAD_VAL_LEN (1 + LC_STORE__ID_LEN + LC_HASH_LEN + 8 + 8 + 8 + 8)
#define LC_STORE__LOCKS 64
/* Unfinished uploads idle longer than this are dropped at open. */
#define LC_STORE__UPLOAD_TTL (24 * 3600)
/* Access table: distinct blobs read between two lc_store_access_flush calls
 * (a power of two; at most 3/4 full, later reads are dropped and counted). */
#define LC_STORE__ACC_CAP (1u << 16)
/* What a blob and an action result cost on disk beyond their bytes (their
 * records in blob_meta, blob_atime and blob_chunks or ac, and RocksDB's space
 * amplification of them), charged against --max-size so that a store of
 * many small blobs stays inside it too. bench-scale: 10 M blobs of 100-240
 * bytes took ~320 bytes each on disk, ~150 beyond their data. */
#define LC_STORE__BLOB_OVERHEAD 256
#define LC_STORE__AC_OVERHEAD 64
/* Disk headroom kept free of our own writes for RocksDB's background work
 * (compaction output, MANIFEST, info LOG, OPTIONS): this plus the table
 * files' size up to LC_STORE__COMPACT_RESERVE (what a compaction can write
 * before it deletes its inputs), besides the unflushed memtables. Deletes
 * (eviction, purge) may use half of it. RocksDB must never see ENOSPC:
 * Debian's build keeps its assertions, and any file writer that hit a
 * write error aborts the process on its next use. */
#define LC_STORE__HEADROOM (8 << 20)
#define LC_STORE__COMPACT_RESERVE (96 << 20)
/* A file of this size in the data directory, given back when the volume
 * fills up from outside (so RocksDB's flushes and compactions under way can
 * finish) and at open on a full volume (so RocksDB can write its new
 * MANIFEST, OPTIONS and LOG); recreated once there is room. */
#define LC_STORE__BALLAST (8 << 20)
#define LC_STORE__BALLAST_NAME "layercache-reserve"
/* The disk snapshot (free space, memtable and table sizes) is refreshed at
 * most this often by writers; the bytes written since are subtracted. */
#define LC_STORE__SPACE_REFRESH_NS (20 * 1000 * 1000)
/* How long a write that would cross --max-size waits for eviction to make
 * room before it fails with RESOURCE_EXHAUSTED. */
#define LC_STORE__CLAIM_WAIT_MS 10000
/* Uploads of at least this size write their chunks without the WAL (its
 * CRC32C and second copy of every byte were a third of the write path's CPU)
 * and flush the chunk column family before the commit batch, which keeps the
 * WAL: an acknowledged blob's chunks are in table files by then. Only while
 * at most LC_STORE__NOWAL_STREAMS such uploads are open: with 32 MiB
 * memtables and one flush thread, 64 streams finishing one by one made 64
 * small flushes, 2x slower than the WAL; with 8 MiB memtables and parallel
 * flushes (store.c) 64 WAL-less streams beat 2 (64 x 64 MiB: 445 vs 336
 * MB/s, same peak RSS). Smaller uploads keep the WAL (a flush per small blob
 * costs more). A crash loses the chunks still in memtables, and with them
 * the progress mark written in the same batches, so a resumed upload
 * continues from what was flushed (store_upload.c). */
#define LC_STORE__NOWAL_MIN (4 << 20)
#define LC_STORE__NOWAL_STREAMS 64
#define LC_STORE__BLOCK_CACHE (8u << 20)
/* lc_store_reclaim compacts once deleted blob bytes reach this and 1/8 of
 * the live bytes (without --max-size), or 1/32 of --max-size and 8 MiB. */
#define LC_STORE__RECLAIM_MIN (64u << 20)
#define LC_STORE__RECLAIM_MIN_LIMITED (2u << 20)
/* Write batches kept for reuse by chunk writes: a fresh ~1 MiB batch per chunk
 * was a fresh mmap and 256 page faults. */
#define LC_STORE__BATCH_POOL 4
/* Blobs evicted per write batch (and per stripe-locked step). */
#define LC_STORE__EVICT_BATCH 256

enum { CF_DEFAULT, CF_AC, CF_BLOB_META, CF_BLOB_CHUNKS, CF_UPLOADS, CF_ATIME, CF_COUNT };

/* Classes of disk claims (lc_store__claim). */
enum {
    LC_STORE__DATA,    /* new content: checked against --max-size and the disk */
    LC_STORE__META,    /* bookkeeping (access times, upload records): the disk only */
    LC_STORE__FREEING, /* deletes: the disk only, may use half the headroom */
};

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

/* Persistent counts of one stripe (see the top of this file). */
typedef struct lc_store__counts {
    int64_t blobs, blob_bytes, ac_entries, ac_bytes;
} lc_store__counts;

/* Disk space and the --max-size budget (store_space.c). */
typedef struct lc_store__space {
    pthread_mutex_t mu; /* claims, the snapshot, the ballast */
    pthread_cond_t freed;
    int64_t max_bytes; /* --max-size; 0 = no budget */
    int wait_ms;       /* LC_STORE__CLAIM_WAIT_MS unless the options say */
    /* Snapshot: free bytes of the filesystem, bytes in memtables (they will
     * be written by flushes), table file bytes (compaction inputs). */
    int64_t avail, mem, sst;
    int64_t at_ns;
    _Atomic int64_t written;      /* bytes written since the snapshot */
    _Atomic int64_t disk_claimed; /* claims on the disk not yet written */
    _Atomic int64_t data_claimed; /* claims on the budget not yet stored */
    _Atomic int64_t upload_bytes; /* chunks of unfinished uploads */
    _Atomic int64_t disk_over;    /* the data directory beyond its target (maintain) */
    int64_t wanted;               /* bytes that waiting claims need (under mu) */
    bool ballast_out;             /* released: its room is kept for RocksDB */
    bool danger_logged;
    int64_t last_flush_request;
    void (*kick)(void *ctx); /* asks eviction to make room (may be NULL) */
    void *kick_ctx;
    int64_t kick_at; /* used_bytes from which writes kick (the high-water mark) */
} lc_store__space;

struct lc_store {
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *db_opts;
    rocksdb_options_t *cf_opts[CF_COUNT];
    rocksdb_block_based_table_options_t *table_opts, *meta_table_opts;
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
     * so counts stay exact and two writers never both commit a blob record. */
    pthread_mutex_t locks[LC_STORE__LOCKS];
    lc_store__counts counts[LC_STORE__LOCKS]; /* stripe i under locks[i] */
    pthread_mutex_t active_lock;
    lc_store__active *active;
    _Atomic uint64_t blobs, blob_bytes, ac_entries, ac_bytes; /* sums of the stripes */
    _Atomic uint64_t garbage_bytes; /* blob bytes deleted since the last reclaim */
    /* Storage ids of the blobs deleted since the last reclaim span [gc_lo, gc_hi]
     * (under pool_lock; gc_any says whether any). */
    uint8_t gc_lo[LC_STORE__ID_LEN], gc_hi[LC_STORE__ID_LEN];
    bool gc_any;
    /* Oldest access time the atime index may still hold: eviction seeks
     * here instead of walking the tombstones of entries it deleted before.
     * Writers of an older atime lower it (and atime_new_min, the oldest
     * written since the current eviction started). */
    _Atomic int64_t atime_floor, atime_new_min;
    pthread_mutex_t evict_lock; /* one LRU eviction at a time */
    lc_store__acc acc;
    lc_store__space space;
};

typedef struct lc_store__meta {
    int64_t size;
    uint8_t storage_id[LC_STORE__ID_LEN];
    int64_t created, atime; /* Unix milliseconds */
    bool one_chunk;         /* its only chunk is at offset 0 (record version 2) */
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
void lc_store__atime_key(int64_t atime, const lc_digest *d, uint8_t key[LC_STORE__ATIME_KEY_LEN]);
void lc_store__chunk_key(const uint8_t *id, uint64_t offset, uint8_t key[LC_STORE__CHUNK_KEY_LEN]);
/* The progress mark's key of storage id (sorts after all its chunks). */
void lc_store__mark_key(const uint8_t *id, uint8_t key[LC_STORE__CHUNK_KEY_LEN]);
void lc_store__uprec_encode(const lc_store__uprec *u, uint8_t out[LC_STORE__UPLOAD_VAL_LEN]);
int lc_store__uprec_decode(const char *v, size_t len, lc_store__uprec *u);
int lc_store__new_id(uint8_t id[LC_STORE__ID_LEN], lc_err *err);
int64_t lc_store__now(void);
int64_t lc_store__now_ms(void);
/* Blob times: an access at second t is stamped at its last millisecond. */
#define LC_STORE__MS_OF(t) ((t)*1000 + 999)
int lc_store__check_digest(const lc_digest *d, lc_err *err);

/* Turns a RocksDB errptr into an lc error (and frees it); returns the negative code. */
int lc_store__rdb_err(lc_err *err, char *errptr, const char *what);
int lc_store__iter_err(rocksdb_iterator_t *it, lc_err *err, const char *what);
/* Writes a batch with the store's write options, after checking its size
 * against the disk (class LC_STORE__META; lc_store__write_opts: with wo). */
int lc_store__write(lc_store *s, rocksdb_writebatch_t *b, lc_err *err, const char *what);
int lc_store__write_opts(lc_store *s, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *b,
                         lc_err *err, const char *what);
/* The same with claimed bytes of the batch claimed before (they are not
 * checked again; the rest is, as class cls). The claim is not released. */
int lc_store__write_claimed(lc_store *s, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *b,
                            int cls, int64_t claimed, lc_err *err, const char *what);
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
/* Flushes the memtables of column families [from, to); RocksDB's first
 * error (free it with rocksdb_free) or NULL. */
char *lc_store__flush_cfs(lc_store *s, int from, int to, bool wait);
/* Adds a delete of every chunk of storage id to the batch (one range tombstone). */
void lc_store__batch_drop_chunks(lc_store *s, rocksdb_writebatch_t *b, const uint8_t *id);
/* Adds the deletes of blob d's records and chunks, and counts them in
 * delta (caller holds d's stripe lock; notes the garbage after a write). */
void lc_store__batch_drop_blob(lc_store *s, rocksdb_writebatch_t *b, const lc_digest *d,
                               const lc_store__meta *m, lc_store__counts *delta);
/* Adds blob d's records (blob_meta and its atime index entry). */
void lc_store__batch_put_blob(lc_store *s, rocksdb_writebatch_t *b, const lc_digest *d,
                              const lc_store__meta *m);
/* Reads the blob record of d (latest state). 1 found, 0 absent, <0 error. */
int lc_store__meta_get(lc_store *s, const rocksdb_readoptions_t *ro, const lc_digest *d,
                       lc_store__meta *m, lc_err *err);
pthread_mutex_t *lc_store__lock_for(lc_store *s, const uint8_t *hash);
int lc_store__stripe(const uint8_t *hash);

/* Counts: adds stripe's record, changed by delta, to b (caller holds the
 * stripe lock); after b was written, lc_store__counts_apply. */
void lc_store__counts_stage(lc_store *s, int stripe, const lc_store__counts *delta,
                            rocksdb_writebatch_t *b);
void lc_store__counts_apply(lc_store *s, int stripe, const lc_store__counts *delta);
/* Writes b, an action cache change of action (caller holds its stripe
 * lock), with the counts changed by delta staged in the same batch; claimed
 * bytes of class cls were claimed before (lc_store__claim). */
int lc_store__ac_write(lc_store *s, const lc_digest *action, rocksdb_writebatch_t *b,
                       const lc_store__counts *delta, int cls, int64_t claimed, lc_err *err,
                       const char *what);
/* Notes deleted blob bytes for lc_store_reclaim (after the delete was written). */
void lc_store__note_garbage(lc_store *s, const uint8_t *id, int64_t bytes);

/* ---- store_atime.c ---- */
/* Notes that blob d was read (no RocksDB write; see lc_store_access_flush). */
void lc_store__record(lc_store *s, const lc_digest *d);
/* Whether a read of d waits to be flushed. */
bool lc_store__acc_pending(lc_store *s, const lc_digest *d);
void lc_store__acc_clear(lc_digest *table);
/* A blob_atime entry at atime is being written: keeps it above the floor. */
void lc_store__note_atime(lc_store *s, int64_t atime);

/* ---- store_space.c ---- */
int lc_store__space_init(lc_store *s, const lc_store_options *opts, lc_err *err);
void lc_store__space_destroy(lc_store *s);
/* Before RocksDB opens: gives the ballast back if the volume is nearly full. */
void lc_store__space_preopen(const char *dir);
/* Reserves n bytes for a write about to happen: RESOURCE_EXHAUSTED
 * ("cache storage is full") if the disk would keep too little for RocksDB,
 * or (class LC_STORE__DATA) if --max-size would be crossed and eviction did
 * not make room in time. Release with lc_store__unclaim (or move written
 * bytes out with lc_store__wrote). */
int lc_store__claim(lc_store *s, int64_t n, int cls, lc_err *err);
void lc_store__unclaim(lc_store *s, int64_t n, int cls);
/* n bytes were written to RocksDB; claimed of them (class cls) were claimed. */
void lc_store__wrote(lc_store *s, int64_t n, int64_t claimed, int cls);
/* Whether flushing every memtable now fits on the disk (close). */
bool lc_store__space_can_flush(lc_store *s);
/* Wakes writers waiting for budget room. */
void lc_store__space_freed(lc_store *s);

/* Removes upload records (and their chunks) idle for at least max_age seconds
 * that no handle has open. Used at open and by lc_store_gc_uploads. */
int lc_store__gc_uploads(lc_store *s, int64_t max_age, uint64_t *removed, lc_err *err);
/* Sums the committed bytes of unfinished uploads (open). */
int lc_store__count_uploads(lc_store *s, lc_err *err);

#endif
