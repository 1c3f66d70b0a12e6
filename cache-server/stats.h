/* stats.h - counters kept since the server started: per gRPC method
 * (calls, errors) and per instance name (action cache hits, misses and
 * updates, blob bytes read and written). Safe from any thread: method
 * counters are atomics, the instance table is guarded by a mutex.
 *
 * Instance names come from clients, so the table is bounded: past
 * LC_STATS_MAX_INSTANCES distinct names, new ones are counted under
 * LC_STATS_OTHER.
 */
#ifndef LC_STATS_H
#define LC_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LC_STATS_MAX_METHODS 32
#define LC_STATS_MAX_INSTANCES 256
#define LC_STATS_OTHER "(other)"

typedef struct lc_stats lc_stats;

typedef struct lc_stats_instance {
    const char *name; /* owned by the snapshot */
    uint64_t ac_hits, ac_misses, ac_updates;
    uint64_t bytes_read, bytes_written;
    double build_seconds_saved; /* admin: sum of the original execution time of hits */
    uint64_t evictions;         /* evict: action cache entries evicted */
} lc_stats_instance;

typedef struct lc_stats_method {
    const char *name; /* the method path; owned by lc_stats (lives as long as it) */
    uint64_t calls, errors;
} lc_stats_method;

/* NULL when out of memory. Free with lc_stats_free (NULLs the pointer). */
lc_stats *lc_stats_new(void);
void lc_stats_free(lc_stats **s);

/* Registers a method path (before serving; not thread-safe) and returns its
 * id for lc_stats_call, or -1 when the table is full. path must outlive s. */
int lc_stats_add_method(lc_stats *s, const char *path);
/* Counts one finished call of method id with gRPC status code. */
void lc_stats_call(lc_stats *s, int id, int code);

void lc_stats_ac(lc_stats *s, const char *instance, bool hit);
void lc_stats_ac_update(lc_stats *s, const char *instance);
void lc_stats_bytes(lc_stats *s, const char *instance, uint64_t read, uint64_t written);
/* admin: a hit saved `seconds` of execution (ExecutedActionMetadata of the
 * entry); added for Admin.GetStats' build_seconds_saved. */
void lc_stats_saved(lc_stats *s, const char *instance, double seconds);

/* evict: action cache entries of instance evicted, and blobs evicted. */
void lc_stats_evict_ac(lc_stats *s, const char *instance, uint64_t entries);
void lc_stats_evict_blobs(lc_stats *s, uint64_t blobs, uint64_t bytes);

/* Seconds since lc_stats_new. */
int64_t lc_stats_uptime(const lc_stats *s);

/* A consistent copy of the counters. Free with lc_stats_snapshot_free. */
typedef struct lc_stats_snapshot {
    lc_stats_instance *instances;
    size_t n_instances;
    lc_stats_method *methods;
    size_t n_methods;
    lc_stats_instance total; /* sum over instances; name "" */
    uint64_t blobs_evicted, blob_bytes_evicted; /* evict */
} lc_stats_snapshot;

int lc_stats_snapshot_take(lc_stats *s, lc_stats_snapshot *out);
void lc_stats_snapshot_free(lc_stats_snapshot *snap);

#endif
