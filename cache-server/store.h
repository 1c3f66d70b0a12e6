/* store.h - the cache server's storage: one RocksDB database holding the
 * action cache and the content-addressable storage.
 *
 * Column families:
 *   "default"     store format version, persistent counts (64 stripes)
 *   "ac"          instance_name '\0' hash(32 bytes) size(8 bytes BE) -> StoredActionResult
 *   "blob_meta"   hash(32) size(8 BE)            -> blob record (storage id, created, atime)
 *   "blob_atime"  atime(8 BE) hash(32) size(8)   -> (empty): the access-time index
 *   "blob_chunks" storage_id(16) offset(8 BE)    -> up to LC_STORE_CHUNK bytes of a blob
 *                 (RocksDB blob files hold these large values)
 *   "uploads"     upload key (resource name)     -> upload record (storage id, expected
 *                 digest, started) for resumable ByteStream writes
 *
 * Visibility rule: a blob's chunks are written under a fresh storage id while
 * it streams in; the blob becomes visible only when lc_upload_finish (or
 * lc_store_blob_put) has verified SHA-256 and size and written its blob_meta
 * record in one atomic write batch. Nothing else makes a blob visible, so a
 * crash, a truncated stream or a wrong digest leaves nothing readable. Two
 * writers of the same blob are safe: the second finds the record and drops
 * its own chunks.
 *
 * Nothing grows with the size of the store: counts are records updated in
 * the same write batches as the data they count (open reads them, it does
 * not scan), and eviction walks the access-time index from its oldest end,
 * reading only the blobs it evicts, in batches of bounded memory.
 *
 * Access times (LRU eviction, evict.h): reading a blob (blob_get, a reader,
 * blob_exists, find_missing finding it, re-putting or re-uploading a stored
 * blob) records it in an in-memory table, with no RocksDB write;
 * lc_store_access_flush writes the recorded accesses as atimes (record and
 * index entry) in batches.
 *
 * Disk space (store_space.c): every write claims its bytes first. A claim
 * fails with RESOURCE_EXHAUSTED "cache storage is full" unless the volume
 * keeps room, after all writes in flight, for RocksDB to flush its memtables
 * and run a compaction; uploads claim their whole remaining size when they
 * open. RocksDB itself never meets a full disk (Debian's build aborts when
 * it does); reads keep working, writes work again once space is freed, and
 * the store opens on a full volume (it keeps a 16 MiB reserve file for that).
 *
 * --max-size (lc_store_options.max_bytes): what the store holds, counted
 * with a per-record overhead (lc_store_totals.used_bytes: blobs, action
 * results, unfinished uploads, claims) never exceeds it. A write that would
 * cross it asks eviction to make room (lc_store_set_evict_hook) and waits up
 * to 10 s, then fails with RESOURCE_EXHAUSTED. The data directory then stays
 * within max_bytes + max_bytes/10 + 64 MiB (docs/ARCHITECTURE.md, "Disk").
 *
 * Thread safety: every function may be called from any thread at once,
 * except that one lc_upload / lc_blob_reader is used by one thread at a time.
 * All functions return 0 or a negative lc code (err.h) with a message.
 */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "digest.h"
#include "err.h"

/* Blobs are stored in chunks of at most this many bytes. Memory per stream
 * is bounded by it, whatever the blob size. */
#define LC_STORE_CHUNK (1u << 20)

typedef struct lc_store lc_store;

typedef struct lc_store_options {
    bool sync_writes;  /* fsync the WAL on every blob/AC commit (default off:
                          a killed process loses nothing, a power cut may) */
    int64_t max_bytes; /* --max-size: a hard bound on used_bytes (above); 0 = none */
    int claim_wait_ms; /* how long a write waits for room under max_bytes; 0 = 10 s */
} lc_store_options;

/* Opens (creating if missing) the database in dir. */
int lc_store_open(const char *dir, const lc_store_options *opts, lc_store **out, lc_err *err);
/* Flushes and closes; NULLs *store. Safe on NULL. */
void lc_store_close(lc_store **store);

/* ---- content-addressable storage ---------------------------------------- */

/* 1 if the blob is stored and complete (the empty blob always is), 0 if not. */
int lc_store_blob_exists(lc_store *s, const lc_digest *d, lc_err *err);

/* Sets missing[i] = true for every digest not stored (one multi-get). */
int lc_store_find_missing(lc_store *s, const lc_digest *digests, size_t n, bool *missing,
                          lc_err *err);

/* Stores a whole blob held in memory (BatchUpdateBlobs): verifies that data
 * has digest d (INVALID_ARGUMENT naming expected and actual otherwise),
 * then commits atomically. Storing an existing blob is a cheap no-op. */
int lc_store_blob_put(lc_store *s, const lc_digest *d, const void *data, size_t len, lc_err *err);

/* Reads a whole blob into a malloc'd buffer the caller frees (BatchReadBlobs;
 * callers bound the size). NOT_FOUND if absent. */
int lc_store_blob_get(lc_store *s, const lc_digest *d, uint8_t **data, size_t *len, lc_err *err);

/* Streaming read of [offset, offset+limit) (limit 0 = to the end).
 * NOT_FOUND if absent, OUT_OF_RANGE if offset > size. Each call to
 * lc_blob_reader_next yields the next piece (at most LC_STORE_CHUNK bytes)
 * into a buffer owned by the reader, valid until the next call; *len == 0
 * means the end. */
typedef struct lc_blob_reader lc_blob_reader;
int lc_blob_reader_open(lc_store *s, const lc_digest *d, int64_t offset, int64_t limit,
                        lc_blob_reader **out, lc_err *err);
int lc_blob_reader_next(lc_blob_reader *r, const uint8_t **data, size_t *len, lc_err *err);
void lc_blob_reader_free(lc_blob_reader **r);

/* Removes a blob (admin purge, eviction). 0 even if it was absent. */
int lc_store_blob_delete(lc_store *s, const lc_digest *d, lc_err *err);

/* Gives the disk space of deleted blobs back: once enough was deleted (or
 * with force), a compaction of the deleted blobs' chunk keys (with force,
 * of the whole chunk column family) with garbage collection of the oldest
 * blob files (the oldest quarter; under --max-size at most max/20 worth):
 * their live blobs are rewritten so the files can go. Can take seconds; run
 * it off the serving threads. ran (optional) says whether it compacted. */
int lc_store_reclaim(lc_store *s, bool force, bool *ran, lc_err *err);

/* Sets the access time of each stored blob among d[0..n) to when (Unix
 * seconds) if that is later, in one atomic batch; absent blobs are skipped.
 * For LRU eviction: collect hits and touch them in batches, not per read.
 * Added by the store module. */
int lc_store_blob_touch(lc_store *s, const lc_digest *d, size_t n, int64_t when, lc_err *err);

/* Writes the accesses recorded since the last flush as access time when
 * (via lc_store_blob_touch, in batches); *flushed (may be NULL) gets how
 * many blobs. Readers are not blocked while it writes. */
int lc_store_access_flush(lc_store *s, int64_t when, uint64_t *flushed, lc_err *err);
/* Reads that could not be recorded since open (the table was full). */
uint64_t lc_store_access_dropped(lc_store *s);

/* Access times of d[0..n) without recording an access: atime[i] = -1 if
 * absent, INT64_MAX for the empty blob (always present). */
int lc_store_blob_atimes(lc_store *s, const lc_digest *d, size_t n, int64_t *atime, lc_err *err);

/* Deletes blob d only if its access time is before idle_before and no read
 * of it is waiting to be flushed (so a blob read since the caller chose it
 * stays); *evicted tells whether it went. */
int lc_store_blob_evict(lc_store *s, const lc_digest *d, int64_t idle_before, bool *evicted,
                        lc_err *err);

/* Visits every stored blob (a consistent snapshot, in hash order); the
 * callback returns non-zero to stop. Times are Unix seconds. Added by the
 * store module (eviction, admin listing). */
typedef struct lc_store_blob_info {
    lc_digest digest;
    int64_t created;
    int64_t atime;
} lc_store_blob_info;
typedef int (*lc_store_blob_visit_fn)(void *ctx, const lc_store_blob_info *info);
int lc_store_blob_scan(lc_store *s, lc_store_blob_visit_fn fn, void *ctx, lc_err *err);

/* LRU eviction by the access-time index: deletes blobs oldest access first
 * while fewer than want_bytes (charged, see used_bytes) went, and beyond
 * that those last accessed before idle_before (0 = no age bound); a blob
 * whose read waits to be flushed is skipped (it was just used). Reads only
 * the index entries and records of the blobs it deletes, LC_STORE__EVICT_BATCH
 * at a time, each batch one write. *blobs / *bytes (blob bytes) get what
 * went; *charged what that freed of used_bytes. */
int lc_store_evict_lru(lc_store *s, uint64_t want_bytes, int64_t idle_before, uint64_t *blobs,
                       uint64_t *bytes, uint64_t *charged, lc_err *err);

/* kick is called (from a writing thread, without store locks) when a write
 * brings used_bytes to kick_at or more, or waits for room under --max-size;
 * it should wake the eviction thread. NULL removes the hook. */
void lc_store_set_evict_hook(lc_store *s, void (*kick)(void *ctx), void *ctx, uint64_t kick_at);

/* Bytes that writes waiting for room under --max-size need beyond the
 * limit right now (0 if none wait): eviction frees at least this. */
uint64_t lc_store_space_wanted(lc_store *s);

/* Periodic upkeep, off the serving threads (the eviction thread): measures
 * the data directory (disk_over), refreshes the disk snapshot and recreates
 * the reserve file once there is room. */
void lc_store_maintain(lc_store *s);

/* Bytes the data directory takes on disk (allocated blocks of its files). */
int lc_store_disk_usage(lc_store *s, uint64_t *bytes, lc_err *err);

/* ---- resumable uploads (ByteStream.Write) ------------------------------- */

typedef struct lc_upload lc_upload;

/* Starts or resumes the upload named key (the ByteStream resource name,
 * "{instance}/uploads/{uuid}/blobs/{hash}/{size}") of a blob with digest d.
 * If an unfinished upload of that key exists (even from before a restart),
 * it resumes: lc_upload_committed() tells how many bytes are durable, and
 * the hash state is rebuilt from the stored chunks. If the blob already
 * exists, *already_complete is set and nothing needs to be sent. */
int lc_upload_open(lc_store *s, const char *key, const lc_digest *d, lc_upload **out,
                   bool *already_complete, lc_err *err);

/* Bytes durably stored so far (what QueryWriteStatus reports). */
int64_t lc_upload_committed(const lc_upload *u);

/* Appends data at the current end. Buffers up to LC_STORE_CHUNK bytes, then
 * writes a chunk and advances the committed size in one batch.
 * INVALID_ARGUMENT if the data would exceed the declared size. */
int lc_upload_append(lc_upload *u, const void *data, size_t len, lc_err *err);
/* The same for data in n pieces (e.g. a message's gRPC slices): whole
 * chunks go to RocksDB straight from the pieces. */
int lc_upload_appendv(lc_upload *u, const struct iovec *iov, size_t n, lc_err *err);

/* Writes any buffered bytes (on a stream that ends without finish_write, so
 * a later resume can continue from there). */
int lc_upload_flush(lc_upload *u, lc_err *err);

/* Verifies size and SHA-256 and, only if both match, makes the blob visible
 * atomically and forgets the upload. On mismatch returns INVALID_ARGUMENT
 * naming expected and received digest/size, and discards the upload's data. */
int lc_upload_finish(lc_upload *u, lc_err *err);

/* Closes the handle; the upload's durable part stays for a later resume. */
void lc_upload_free(lc_upload **u);

/* Committed bytes of an upload key without opening it: *committed and
 * *complete (the blob exists). NOT_FOUND if neither upload nor blob exists. */
int lc_store_upload_status(lc_store *s, const char *key, const lc_digest *d, int64_t *committed,
                           bool *complete, lc_err *err);

/* Drops unfinished uploads (record and chunks) idle for at least
 * max_age_seconds that no handle has open; *removed (may be NULL) gets how
 * many. lc_store_open already does this with 24 h; a server may call it from
 * a timer. Added by the store module. */
int lc_store_gc_uploads(lc_store *s, int64_t max_age_seconds, uint64_t *removed, lc_err *err);

/* ---- action cache ------------------------------------------------------- */

/* Reads the serialized StoredActionResult (admin.proto) for (instance, action)
 * into a malloc'd buffer the caller frees. NOT_FOUND if absent. Completeness
 * (all referenced blobs present) is the caller's check: see ac.c. */
int lc_store_ac_get(lc_store *s, const char *instance, const lc_digest *action, uint8_t **value,
                    size_t *len, lc_err *err);

/* Writes (replaces) the entry atomically. */
int lc_store_ac_put(lc_store *s, const char *instance, const lc_digest *action,
                    const uint8_t *value, size_t len, lc_err *err);

/* Removes one entry; 0 even if absent. */
int lc_store_ac_delete(lc_store *s, const char *instance, const lc_digest *action, lc_err *err);

/* Removes the entry only if its value still equals expect[0..expect_len)
 * (not rewritten since the caller read it); *evicted tells whether it went. */
int lc_store_ac_evict(lc_store *s, const char *instance, const lc_digest *action,
                      const uint8_t *expect, size_t expect_len, bool *evicted, lc_err *err);

/* lc_store_ac_evict for n entries in one write (eviction's sweep): each goes
 * only if its value still equals expect; evicted tells which went. */
typedef struct lc_store_ac_victim {
    const char *instance;
    lc_digest action;
    const uint8_t *expect;
    size_t expect_len;
    bool evicted; /* out */
} lc_store_ac_victim;
int lc_store_ac_evict_many(lc_store *s, lc_store_ac_victim *v, size_t n, lc_err *err);

/* Visits every AC entry (optionally only one instance); the callback returns
 * non-zero to stop. Values are valid only during the callback. */
typedef int (*lc_store_ac_visit_fn)(void *ctx, const char *instance, const lc_digest *action,
                                    const uint8_t *value, size_t len);
int lc_store_ac_scan(lc_store *s, const char *instance, lc_store_ac_visit_fn fn, void *ctx,
                     lc_err *err);
/* The same over all instances, starting after (instance, action) in key
 * order (NULL instance: from the first); for sweeps spread over time. */
int lc_store_ac_scan_after(lc_store *s, const char *instance, const lc_digest *action,
                           lc_store_ac_visit_fn fn, void *ctx, lc_err *err);

/* ---- totals ------------------------------------------------------------- */

typedef struct lc_store_totals {
    uint64_t blobs;
    uint64_t blob_bytes;
    uint64_t ac_entries;
    uint64_t ac_bytes;     /* keys and values of action results */
    uint64_t upload_bytes; /* stored chunks of unfinished uploads */
    /* What --max-size bounds: blob bytes and action results, each with its
     * per-record overhead on disk (LC_STORE__BLOB_OVERHEAD, ..._AC_OVERHEAD),
     * unfinished uploads and the claims of writes in flight. */
    uint64_t used_bytes;
    int64_t max_bytes; /* the store's --max-size (0 = none) */
    /* With --max-size: what the data directory held beyond max + max/20 +
     * 40 MiB when lc_store_maintain last looked (counted in used_bytes). */
    uint64_t disk_over;
} lc_store_totals;

/* Current totals (persistent counts, kept in memory; read at open). */
void lc_store_get_totals(lc_store *s, lc_store_totals *out);

#endif
