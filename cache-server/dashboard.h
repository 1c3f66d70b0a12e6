/* dashboard.h - what the dashboard page (GET /, cache-server/dashboard.html,
 * embedded at build time) shows beyond /status: a ring of periodic counter
 * snapshots (the hit rate over time, GET /api/history) and per-key tracking
 * of action cache lookups (the most-hit and the most recently missed steps,
 * GET /api/keys).
 *
 * Key tracking is bounded: the last LC_DASH_MISSES misses, and hit counts of
 * at most LC_DASH_TRACKED keys, counted with the space-saving algorithm (a
 * new key replaces the least-hit one and inherits its count as the error
 * bound), so the top LC_DASH_TOP are right for keys hit often, whatever the
 * number of distinct keys. Counts start at server start (Admin.ListActions
 * has the persistent per-entry counts).
 *
 * Thread safety: everything may be called from any thread; one mutex guards
 * the tables and is held only for copies.
 */
#ifndef LC_DASHBOARD_H
#define LC_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "stats.h"
#include "store.h"

#define LC_DASH_MISSES 50
#define LC_DASH_TOP 20
#define LC_DASH_TRACKED 256
#define LC_DASH_HISTORY 720 /* one hour at the default 5 s interval */
#define LC_DASH_INSTANCE_MAX 128

typedef struct lc_dash lc_dash;

/* The instruction text of an action key (malloc'd, "" when unknown), or
 * NULL; e.g. read from the Action/Command stored beside the result. */
typedef char *(*lc_dash_describe_fn)(lc_store *store, const lc_digest *action);

/* NULL when out of memory. store and stats are borrowed (may be NULL) and
 * must outlive d; describe may be NULL (texts stay empty). */
lc_dash *lc_dash_new(lc_stats *stats, lc_store *store, lc_dash_describe_fn describe);
void lc_dash_free(lc_dash **d);

/* Records one GetActionResult outcome for (instance, action). */
void lc_dash_ac_lookup(lc_dash *d, const char *instance, const lc_digest *action, bool hit);

/* Appends a snapshot of the totals (now) to the history ring. */
void lc_dash_snapshot(lc_dash *d);

/* JSON documents, malloc'd, NULL when out of memory:
 * history: {"interval_seconds":N,"points":[{"t":unix,"hits":..,"misses":..,
 *           "stored_bytes":..,"entries":..,"bytes_in":..,"bytes_out":..},...]}
 *           oldest first, the last point taken now;
 * keys:    {"top_hits":[{"instance","key","hits","last","text"}...],
 *           "recent_misses":[{"instance","key","time","text"}...]} newest first;
 *           key is "HASH/SIZE". */
char *lc_dash_history_json(lc_dash *d, int interval_seconds);
char *lc_dash_keys_json(lc_dash *d);

/* The embedded page (dashboard.html), not NUL-terminated. */
const unsigned char *lc_dash_page(size_t *len);

#endif
