/* hash.h - content digests of selected context files, in parallel on
 * libuv's thread pool, with the stat cache in front.
 *
 * A file is read only when the stat cache has no entry for its exact
 * (device, inode, size, mtime, ctime). Reads check the file did not change
 * while being read (fstat before and after; retried, then an error), so a
 * digest always belongs to the stat recorded beside it. */
#ifndef LC_HASH_H
#define LC_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "statcache.h"
#include "walk.h"

typedef struct lc_hash_stats {
    uint64_t files;      /* distinct regular files considered */
    uint64_t bytes;      /* their total size */
    uint64_t files_read; /* stat cache misses: read and hashed */
    uint64_t bytes_read;
    uint64_t cache_hits;
} lc_hash_stats;

/* Fills `digest` (and sets `hashed`) for every regular-file entry of
 * sels[0..n) under root. The same file in several selections is read once.
 * sc may be NULL. Runs a private libuv loop to completion: call it from a
 * thread that is not inside uv_run. stats (optional) is filled. */
int lc_hash_selections(const char *root, lc_selection *const *sels, size_t n, lc_statcache *sc,
                       lc_hash_stats *stats, lc_err *err);

/* The same, calling progress (on the calling thread, may be NULL) as
 * files are read: bytes read so far, of the total the stat cache did not
 * answer. */
typedef void (*lc_hash_progress_fn)(void *ctx, uint64_t done, uint64_t total);
int lc_hash_selections_progress(const char *root, lc_selection *const *sels, size_t n,
                                lc_statcache *sc, lc_hash_progress_fn progress, void *ctx,
                                lc_hash_stats *stats, lc_err *err);

#endif
