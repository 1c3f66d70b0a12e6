/* hits.h - action cache hit counts, kept in memory and written into the
 * entries' StoredActionResult (hit_count, last_hit_unix) in batches, so a
 * hit costs no RocksDB write; and the per-key locks that serialize every
 * read-modify-write of an action cache entry (UpdateActionResult, Purge,
 * the hit flush), so a flush never resurrects a purged entry nor writes an
 * old result over a new one.
 *
 * Pending hits are written when lc_hits_flush is called (Admin calls do,
 * before they read entries), by the recording thread once the oldest
 * pending hit is LC_HITS_FLUSH_SECONDS old or LC_HITS_FLUSH_ENTRIES keys are
 * pending, and by lc_hits_free. A crash loses at most the pending counts.
 *
 * Every function accepts h == NULL and then does nothing (no counting, no
 * locking): a server without a hit table still serves correctly.
 * Thread-safe.
 */
#ifndef LC_HITS_H
#define LC_HITS_H

#include <stdint.h>

#include "digest.h"
#include "err.h"
#include "store.h"

#define LC_HITS_FLUSH_SECONDS 10
#define LC_HITS_FLUSH_ENTRIES 4096

typedef struct lc_hits lc_hits;

/* NULL when out of memory. store is borrowed and must outlive the table. */
lc_hits *lc_hits_new(lc_store *store);
/* Flushes pending hits, frees, NULLs *h. Accepts NULL. */
void lc_hits_free(lc_hits **h);

/* Counts one hit of (instance, action) at when (Unix seconds): of the
 * trusted entry (writer NULL or ""), or of the untrusted entry of writer
 * (store_ac.h). May flush. */
void lc_hits_record(lc_hits *h, const char *instance, const lc_digest *action, const char *writer,
                    int64_t when);

/* Writes every pending count into its entry (entries gone by now are
 * skipped). Returns the first store error, after trying every entry. */
int lc_hits_flush(lc_hits *h, lc_err *err);

/* Drops the pending hits of one entry (after it was deleted); writer as
 * for lc_hits_record. */
void lc_hits_forget(lc_hits *h, const char *instance, const lc_digest *action,
                    const char *writer);

/* The lock of every action cache entry with this digest: hold it around
 * any write or delete of such an entry. Not recursive. */
void lc_hits_lock(lc_hits *h, const lc_digest *action);
void lc_hits_unlock(lc_hits *h, const lc_digest *action);

#endif
