/* cache_client_int.h - internals shared by cache_client.c and
 * bytestream_client.c; not for other modules (bench/loadgen.c excepted). */
#ifndef LC_CACHE_CLIENT_INT_H
#define LC_CACHE_CLIENT_INT_H

#include <grpc/grpc.h>

#include "cache_client.h"

enum lc__cache_method {
    LC__M_CAPABILITIES,
    LC__M_GET_ACTION_RESULT,
    LC__M_UPDATE_ACTION_RESULT,
    LC__M_FIND_MISSING,
    LC__M_BATCH_UPDATE,
    LC__M_BATCH_READ,
    LC__M_BS_READ,
    LC__M_BS_WRITE,
    LC__M_BS_QUERY,
    /* layercache.v1.Admin (admin_client.c) */
    LC__M_ADMIN_GET_STATS,
    LC__M_ADMIN_LIST_ACTIONS,
    LC__M_ADMIN_PURGE,
    LC__M_COUNT,
};

/* One replica of a routed client (opts.peers). */
typedef struct lc__cache_peer {
    char *id;                       /* HOST:PORT, the placement identity */
    struct lc_cache_client *client; /* plain client of that replica */
    _Atomic int64_t down_until_ms;  /* tried last until then (CLOCK_MONOTONIC) */
} lc__cache_peer;

struct lc_cache_client {
    grpc_channel *channel;
    void *methods[LC__M_COUNT]; /* grpc_channel_register_call handles */
    char *target;               /* host:port */
    char *instance;             /* "" for the default instance */
    char *auth_value;           /* "Bearer <token>" or NULL */
    int tls;                    /* grpcs:// */
    char ca_flag[32];           /* the CA option as messages name it (opts.ca_flag) */
    int64_t deadline_ms;
    int64_t connect_timeout_ms;
    size_t max_message_size;
    lc__cache_peer *peers; /* routed client: n_peers > 0 */
    size_t n_peers;
};

/* ---- routing (n_peers > 0) ---- */
/* Peers to try for a blob, best first: its owners in rank order, then the
 * others; peers that recently failed UNAVAILABLE come last. order has room
 * for n_peers; returns n_peers. */
size_t lc__cache_route_blob(lc_cache_client *c, const lc_digest *d, size_t *order);
/* After a call to peer i ended with rc: 1 when rc is UNAVAILABLE (the peer
 * is marked down for a while and the caller tries the next one), else 0. */
int lc__cache_peer_failed(lc_cache_client *c, size_t i, int rc);

/* The six ops of a unary call's one batch: send md[0..n_md) and req,
 * half-close, receive the initial metadata, the response and the status.
 * Also used by bench/loadgen.c, which drives such calls asynchronously. */
void lc__cache_unary_ops(grpc_op ops[6], grpc_metadata *md, size_t n_md, grpc_byte_buffer *req,
                         grpc_byte_buffer **resp, grpc_metadata_array *init_md,
                         grpc_metadata_array *trail_md, grpc_status_code *status,
                         grpc_slice *details);

/* "GetActionResult", "Write", ... for messages. */
const char *lc__cache_method_name(int m);

/* A call on c for method m, on cq, that ends by `deadline_ms` from now. */
grpc_call *lc__cache_call(lc_cache_client *c, int m, grpc_completion_queue *cq,
                          int64_t deadline_ms);

/* The initial metadata every call sends (authorization when a token is
 * set): fills md[0..] and returns the count. Slices are static-lifetime
 * views of c's strings, valid while c lives. */
size_t lc__cache_metadata(const lc_cache_client *c, grpc_metadata md[1]);

/* Turns a call's final status into the lc convention: 0 for OK, else
 * -code with "Method: details" in err; a connection failure becomes
 * UNAVAILABLE "cache server HOST:PORT unreachable". */
int lc__cache_status(lc_cache_client *c, int m, grpc_status_code status, grpc_slice details,
                     lc_err *err);

/* Waits for tag on the pluck queue cq; returns the event's success flag. */
int lc__cache_pluck(grpc_completion_queue *cq, void *tag);

/* Shuts down, drains and destroys a pluck queue whose tags were all plucked. */
void lc__cache_cq_destroy(grpc_completion_queue **cq);

/* A blocking unary call of method m with its own pluck queue: *out (owned
 * by the caller) is the response, parsed as desc. */
int lc__cache_unary(lc_cache_client *c, int m, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, lc_err *err);
/* The same sending extra[0..n_extra) (at most 2) beside the authorization
 * (the server's forwarding of a client's identity to a peer, trust.h). */
int lc__cache_unary_md(lc_cache_client *c, int m, const ProtobufCMessage *req,
                       const grpc_metadata *extra, size_t n_extra,
                       const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, lc_err *err);

/* Sets the wire Digest from d; hex must have room for 65 bytes and outlive msg. */
void lc__cache_digest_to_msg(const lc_digest *d, char *hex,
                             Build__Bazel__Remote__Execution__V2__Digest *msg);
/* Parses a wire Digest (INVALID_ARGUMENT if malformed). */
int lc__cache_digest_from_msg(const Build__Bazel__Remote__Execution__V2__Digest *msg,
                              lc_digest *out, lc_err *err);

#endif
