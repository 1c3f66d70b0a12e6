/* statcache.h - remembers file content digests by (device, inode, size,
 * mtime, ctime) so an unchanged file is not read again on the next build.
 *
 * The cache lives in "<state_dir>/statcache.v1": a small binary file with a
 * checksum, written to a temporary file and renamed into place, so a crash
 * or a concurrent build never leaves a torn cache (the last writer wins; a
 * corrupt or foreign file is ignored and rebuilt). Entries unused for 30
 * days are dropped when saving.
 *
 * Never stale: an entry is only trusted when all five stat fields match, and
 * lc_hash only stores digests of files whose ctime is older than the read
 * (a file rewritten within the same clock tick as it was hashed would
 * otherwise keep its old digest).
 *
 * Not thread-safe: use one cache from one thread (the libuv loop thread). */
#ifndef LC_STATCACHE_H
#define LC_STATCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

typedef struct lc_stat_key {
    uint64_t dev;
    uint64_t ino;
    int64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
} lc_stat_key;

typedef struct lc_statcache lc_statcache;

/* Opens the cache of state_dir (created with its parents if missing); with
 * state_dir NULL the cache is in memory only. A missing, corrupt or
 * foreign-version file gives an empty cache (not an error). Caller frees. */
int lc_statcache_open(const char *state_dir, lc_statcache **out, lc_err *err);

/* Looks k up; on a hit fills out (hash and size) and marks the entry used. */
bool lc_statcache_get(lc_statcache *sc, const lc_stat_key *k, lc_digest *out);

/* Records the digest of the file k describes (replaces an older entry for
 * the same device and inode). 0 or -LC_RESOURCE_EXHAUSTED. */
int lc_statcache_put(lc_statcache *sc, const lc_stat_key *k, const lc_digest *d);

/* Writes the cache back if it changed (no-op for an in-memory cache). */
int lc_statcache_save(lc_statcache *sc, lc_err *err);

size_t lc_statcache_count(const lc_statcache *sc);

/* The default state directory: $LAYERCACHE_STATE_DIR, else
 * $XDG_CACHE_HOME/layercache, else $HOME/.cache/layercache. Caller frees. */
char *lc_statcache_default_dir(void);

void lc_statcache_free(lc_statcache **sc);

#endif
