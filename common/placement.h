/* placement.h - where a key lives in a layercache cluster: rendezvous
 * (highest-random-weight) hashing with replication. Pure functions, shared
 * by the server (cache-server/cluster.c) and clients that route calls to
 * the owners directly (common/cache_client.c, bench/loadgen.c).
 *
 * A peer is identified by its HOST:PORT exactly as the --peers list names
 * it. The score of a key at a peer is the first 8 bytes (big endian) of
 * SHA-256(peer || '\0' || key); a key's owners are the `replication` peers
 * with the highest scores (ties by list index). Adding a peer moves
 * ~1/(n+1) of the keys, only to it; removing one moves only its keys.
 *
 * Keys: a blob by its 32-byte hash; an action result by
 * "ac" '\0' instance '\0' hash.
 */
#ifndef LC_PLACEMENT_H
#define LC_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

/* Most peers placement ranks (more are ignored). */
#define LC_PLACEMENT_MAX_PEERS 64
/* Longest peer id / key that are hashed in full (longer ones are cut). */
#define LC_PLACEMENT_MAX_ID 300
#define LC_PLACEMENT_MAX_KEY 2048

/* Score of key at peer. */
uint64_t lc_placement_score(const char *peer, const void *key, size_t keylen);
/* order[0..n) = indices into peers by descending score (ties by index);
 * n is capped at LC_PLACEMENT_MAX_PEERS. */
void lc_placement_rank(const char *const *peers, size_t n, const void *key, size_t keylen,
                       size_t *order);
/* The blob key of d into buf (LC_HASH_LEN bytes); returns its length. */
size_t lc_placement_blob_key(const lc_digest *d, uint8_t *buf);
/* The action key of (instance, d) into buf of cap bytes (cap >= 64; a
 * longer instance name is cut); returns its length. */
size_t lc_placement_action_key(const char *instance, const lc_digest *d, uint8_t *buf, size_t cap);

#endif
