/* evict.h - keeps the store under --max-size and --max-age.
 *
 * Access times: the store records reads in memory (store.h); every interval
 * a background thread writes them as blob atimes in one batch per 1024
 * blobs (lc_store_access_flush), so a read costs no RocksDB write.
 *
 * Size limit: when the stored blob bytes exceed max_bytes, a pass scans the
 * blob records once and keeps, in a max-heap on atime, the oldest blobs
 * whose sizes add up to what must go to reach the low-water mark (90 %);
 * they are deleted oldest first until the total is under it. A blob read
 * since the pass chose it stays (lc_store_blob_evict re-checks). One scan
 * of the blob records per pass (about 60 bytes a blob) instead of an atime
 * index kept on every touch: passes run only when over the limit and the
 * low-water mark spaces them out; see docs/ARCHITECTURE.md.
 *
 * Age limit: blobs not read for max_age seconds are deleted in the same scan.
 *
 * Action results: after blobs went (or on an age check), every entry is
 * checked; one that references a blob no longer stored is deleted (it reads
 * as a miss anyway, so entry counts stay honest), as is one whose newest
 * use (created, last hit, newest access of its blobs) is older than
 * max_age. A GetActionResult hit reads every referenced blob's record
 * through lc_store_find_missing, which records them, so a result that keeps
 * being hit keeps its blobs.
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
    int64_t max_bytes;   /* blob bytes; 0 = no size limit */
    int64_t max_age;     /* seconds since the last access; 0 = no TTL */
    int64_t interval_ms; /* flush accesses and check limits this often; 0 = 2000 */
    int low_water_pct;   /* a size pass evicts down to this % of max_bytes; 0 = 90 */
} lc_evict_options;

/* What one pass did. */
typedef struct lc_evict_report {
    uint64_t blobs, blob_bytes; /* blobs evicted and their bytes */
    uint64_t ac_entries;        /* action results evicted */
    uint64_t blobs_scanned, ac_scanned;
    uint64_t touched; /* accesses flushed first */
} lc_evict_report;

/* One pass at time now (Unix seconds): flushes recorded accesses as atime
 * now, then applies the limits in o. Counts evictions in stats (may be
 * NULL). Runs on the caller's thread (tests, the background thread). */
int lc_evict_pass(lc_store *store, lc_stats *stats, const lc_evict_options *o, int64_t now,
                  lc_evict_report *report, lc_err *err);

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
