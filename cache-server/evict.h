/* evict.h - keeps the store under --max-size and --max-age.
 *
 * Access times: the store records reads in memory (store.h); every interval
 * a background thread writes them as blob atimes in one batch per 1024
 * blobs (lc_store_access_flush), so a read costs no RocksDB write.
 *
 * Size limit: the store counts what --max-size bounds (used_bytes: blobs and
 * action results with their per-record overhead, unfinished uploads, claims
 * of writes in flight) and refuses to cross it: a write that would waits for
 * eviction (store.h). Eviction runs ahead of that: once used_bytes reaches
 * the high-water mark (90 %; a write crossing it wakes the thread at once),
 * a pass deletes least recently used blobs, walking the store's access-time
 * index from its oldest end (lc_store_evict_lru), until used_bytes plus what
 * waiting writes need is at the low-water mark (80 %). It reads only the
 * blobs it deletes, 256 at a time, so its time and memory follow what it
 * frees, not the size of the store. A blob read since the last access flush
 * stays.
 *
 * Age limit: blobs not read for max_age seconds go in the same walk (they are
 * the oldest entries of the index).
 *
 * Action results: after blobs went (or on an age check) the action cache is
 * swept from where the last sweep stopped, a slice proportional to the blobs
 * evicted (at least 1024 entries; the whole cache without a cursor); an
 * entry that references a blob no longer stored is deleted (it reads as a
 * miss anyway, so entry counts stay honest), as is one whose newest use
 * (created, last hit, newest access of its blobs) is older than max_age. A
 * GetActionResult hit reads every referenced blob's record through
 * lc_store_find_missing, which records them, so a result that keeps being
 * hit keeps its blobs.
 *
 * Disk: deleted blobs' space comes back through lc_store_reclaim (a
 * compaction of the deleted chunks' key range), run by the thread once
 * enough was deleted, or at once (the whole chunk column family) when the
 * data directory outgrows max_bytes + 5 % + 40 MiB; what it holds beyond
 * that also counts as used (store.h), so eviction frees more meanwhile.
 *
 * Reads never wait for a pass: deletes go through RocksDB concurrently and
 * open readers hold snapshots.
 */
#ifndef LC_EVICT_H
#define LC_EVICT_H

#include <stdint.h>

#include "err.h"
#include "stats.h"
#include "store.h"

typedef struct lc_evict_options {
    int64_t max_bytes;   /* the store's used_bytes; 0 = no size limit */
    int64_t max_age;     /* seconds since the last access; 0 = no TTL */
    int64_t interval_ms; /* flush accesses and check limits this often; 0 = 2000 */
    int high_water_pct;  /* a size pass starts above this % of max_bytes; 0 = 90 */
    int low_water_pct;   /* and evicts down to this %; 0 = 80 */
} lc_evict_options;

/* What one pass did. */
typedef struct lc_evict_report {
    uint64_t blobs, blob_bytes; /* blobs evicted and their bytes */
    uint64_t ac_entries;        /* action results evicted */
    uint64_t ac_scanned;
    uint64_t touched;         /* accesses flushed first */
    double blob_ms, sweep_ms; /* time spent on blobs and on the action-cache sweep */
} lc_evict_report;

/* Where the action-cache sweep stopped; zero-initialised by the caller,
 * released with lc_evict_cursor_clear. */
typedef struct lc_evict_cursor {
    char *instance; /* NULL: at the start */
    lc_digest action;
} lc_evict_cursor;
void lc_evict_cursor_clear(lc_evict_cursor *c);

/* One pass at time now (Unix seconds): flushes recorded accesses as atime
 * now, then applies the limits in o. Counts evictions in stats (may be
 * NULL). With cursor NULL the action-cache sweep covers every entry; with
 * one it covers a slice and moves the cursor on. Runs on the caller's
 * thread (tests, the background thread). */
int lc_evict_pass(lc_store *store, lc_stats *stats, const lc_evict_options *o, int64_t now,
                  lc_evict_cursor *cursor, lc_evict_report *report, lc_err *err);

typedef struct lc_evict lc_evict;

/* Starts the background thread (a pthread of its own rather than a libuv
 * timer on the HTTP loop: a pass may take seconds on a big store and must
 * not delay /metrics). store and stats are borrowed and must outlive it. */
int lc_evict_start(lc_store *store, lc_stats *stats, const lc_evict_options *o, lc_evict **out,
                   lc_err *err);

/* Wakes the thread for a pass now (e.g. a write crossed the limit). */
void lc_evict_kick(lc_evict *e);

/* Stops and joins the thread, flushes pending accesses, NULLs *e. Accepts NULL. */
void lc_evict_stop(lc_evict **e);

#endif
