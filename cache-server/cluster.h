/* cluster.h - cluster mode of layercache-server: the peer set, placement by
 * rendezvous (highest-random-weight) hashing with replication, peer health.
 *
 * Peers come from --peers: a comma list of HOST:PORT, or one NAME:PORT
 * whose A/AAAA records are the replicas (a Kubernetes headless Service),
 * re-resolved every few seconds. Ownership of a key is computed over every
 * configured (or resolved) peer, dead or alive: the owners of a key are the
 * `replication` peers with the highest SHA-256(peer id || 0 || key) (first
 * 8 bytes, big endian), so adding a peer moves ~1/(n+1) of the keys and
 * removing one moves only its keys. Liveness only decides whom to skip.
 *
 * Peer-to-peer calls go to each peer's peer port (its listed port +
 * peer_port_offset), a second gRPC server with its own threads that only
 * serves locally: a replica's client-facing threads may block forwarding,
 * but the threads answering peers never do, so two replicas forwarding to
 * each other cannot starve each other. They carry "authorization: Bearer <cluster token>"; the
 * server treats a call with exactly that header as forwarded (served from
 * the local store, never forwarded again, access control skipped). The
 * token defaults to a fixed public value, which is fine while access
 * control is off; with --tokens, --cluster-token must be set (a secret
 * shared by the replicas). forward.c uses this module to serve calls.
 *
 * Threads: one background thread health-checks peers (GetCapabilities with
 * a short deadline) and refreshes DNS; every other function is thread-safe.
 */
#ifndef LC_CLUSTER_H
#define LC_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_client.h"
#include "digest.h"
#include "err.h"
#include "placement.h"

#define LC_CLUSTER_MAX_PEERS LC_PLACEMENT_MAX_PEERS
#define LC_CLUSTER_DEFAULT_TOKEN "layercache-cluster"

typedef struct lc_cluster lc_cluster;
typedef struct lc_cluster_peer lc_cluster_peer;

typedef struct lc_cluster_options {
    const char *peers;        /* "h1:p1,h2:p2" or "name:port" (copied) */
    const char *self;         /* this replica's HOST:PORT as peers name it (copied) */
    int replication;          /* owners per key, >= 1 */
    const char *token;        /* cluster token; NULL or "" = LC_CLUSTER_DEFAULT_TOKEN */
    int64_t health_ms;        /* health check period; 0 = 2000 */
    int64_t dns_refresh_ms;   /* DNS re-resolution period; 0 = 10000 */
    int64_t call_deadline_ms; /* deadline of forwarded calls; 0 = 60000 */
    int peer_port_offset;     /* peers are called at their listed port + this */
    /* Peer ports serve TLS: peers are dialled with grpcs://, their
     * certificate checked against tls_ca_file (PEM; NULL = the system's
     * roots) and, if set, tls_server_name instead of the dialled host (a
     * DNS peer list dials addresses). Strings copied. */
    bool tls;
    const char *tls_ca_file;
    const char *tls_server_name;
} lc_cluster_options;

/* Parses the peer list, resolves it (a DNS name that does not resolve yet
 * is not an error: it is retried), opens no connection yet and starts the
 * health thread. *out is owned by the caller (lc_cluster_free). */
int lc_cluster_new(const lc_cluster_options *o, lc_cluster **out, lc_err *err);
/* Stops the health thread, closes the peer clients; NULLs *c. No call may
 * be using the cluster any more. */
void lc_cluster_free(lc_cluster **c);

/* "Bearer <token>": the authorization value forwarded calls carry. */
const char *lc_cluster_auth_value(const lc_cluster *c);
int lc_cluster_replication(const lc_cluster *c);

/* ---- placement ------------------------------------------------------- */
/* The pure functions live in common/placement.h (clients route with them
 * too); these names stay for the forwarding code. */
static inline uint64_t lc_cluster_score(const char *peer, const void *key, size_t keylen)
{
    return lc_placement_score(peer, key, keylen);
}
static inline void lc_cluster_rank(const char *const *peers, size_t n, const void *key,
                                   size_t keylen, size_t *order)
{
    lc_placement_rank(peers, n, key, keylen, order);
}
static inline size_t lc_cluster_blob_key(const lc_digest *d, uint8_t *buf)
{
    return lc_placement_blob_key(d, buf);
}
static inline size_t lc_cluster_action_key(const char *instance, const lc_digest *d, uint8_t *buf,
                                           size_t cap)
{
    return lc_placement_action_key(instance, d, buf, cap);
}

/* ---- routing ---------------------------------------------------------- */
/* Every current peer, ranked for one key: p[0..n_owners) own it. Peers stay
 * valid until lc_cluster_free (the table only grows). */
typedef struct lc_cluster_route {
    size_t n;
    size_t n_owners;
    lc_cluster_peer *p[LC_CLUSTER_MAX_PEERS];
} lc_cluster_route;

void lc_cluster_route_key(lc_cluster *c, const void *key, size_t keylen, lc_cluster_route *r);
void lc_cluster_route_blob(lc_cluster *c, const lc_digest *d, lc_cluster_route *r);
void lc_cluster_route_action(lc_cluster *c, const char *instance, const lc_digest *d,
                             lc_cluster_route *r);
/* Every current peer (unranked) into r (n_owners = 0). */
void lc_cluster_members(lc_cluster *c, lc_cluster_route *r);

bool lc_cluster_peer_is_self(const lc_cluster_peer *p);
bool lc_cluster_peer_alive(const lc_cluster_peer *p);
const char *lc_cluster_peer_id(const lc_cluster_peer *p);
/* Marks a peer dead after a call failed with UNAVAILABLE or
 * DEADLINE_EXCEEDED; the health thread brings it back. */
void lc_cluster_peer_failed(lc_cluster_peer *p, int rc);
/* A client of peer p whose default instance is `instance` (created on first
 * use, owned by the cluster). NULL for self or on error. */
lc_cache_client *lc_cluster_client(lc_cluster *c, lc_cluster_peer *p, const char *instance,
                                   lc_err *err);

#endif
