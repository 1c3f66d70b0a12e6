/* server.h - the gRPC C core plumbing of layercache-server.
 *
 * Threads: `threads` workers, each blocking on its own completion queue
 * (CQ). Every registered method has a few requests posted on every CQ; a
 * generic request is kept posted too, so unknown methods get UNIMPLEMENTED
 * at once instead of hanging until their deadline.
 *
 * Calls: each call is a small state machine driven by four tags (NEW, RECV,
 * SEND, CLOSE) with a count of tags in flight; the call is freed when the
 * count drops to zero. At most one receive and one send are in flight per
 * call. A client stream's next receive starts before its handler sees the
 * current message, so it holds at most two received messages: one being
 * handled, one arriving.
 *
 * Handlers run on the worker thread that received the completion and may
 * block (the store is synchronous); they never see gRPC calls, only
 * requests, byte buffers and an lc_err.
 */
#ifndef LC_SERVER_H
#define LC_SERVER_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "err.h"

/* gRPC receive/send limit per message. Batch limits must stay below it. */
#define LC_SRV_MAX_MESSAGE (16 << 20)
/* Room for the framing and the other fields of a batch request. */
#define LC_SRV_BATCH_HEADROOM (64 << 10)

typedef struct lc_srv lc_srv;

/* What every handler of one call can see. */
typedef struct lc_call_ctx {
    void *env;                           /* lc_srv_options.env */
    const grpc_metadata_array *metadata; /* request metadata (keys lowercase) */
    gpr_timespec deadline;
    const char *method; /* the method path */
    /* Access control (auth.h), checked before the handler runs: */
    lc_auth_role role;     /* the caller's role; admin when the server has no tokens file */
    const char *principal; /* the caller's token name, NULL if anonymous or unnamed */
    /* cluster.h: a peer forwarded this call (it carried lc_srv_options.peer_auth):
     * serve it from the local store, never forward it again. */
    bool forwarded;
} lc_call_ctx;

typedef enum lc_method_kind {
    LC_METHOD_UNARY,         /* one request, one response */
    LC_METHOD_SERVER_STREAM, /* one request, a stream of responses */
    LC_METHOD_CLIENT_STREAM, /* a stream of requests, one response */
} lc_method_kind;

/* Handlers return 0 (or 1 where stated) on success, or a negative lc code
 * with err filled; that code and message become the call's status. A
 * response buffer handed back is owned by the server from then on. */

/* Unary: req is the unpacked request (validated by the handler). */
typedef int (*lc_unary_fn)(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                           grpc_byte_buffer **resp, lc_err *err);
/* Server stream: open validates req and creates *state; next is called
 * whenever the previous message has been sent and yields the next one in
 * *msg, or *msg = NULL at the end (status OK). next may also return
 * LC_STREAM_WAIT with *msg = NULL: nothing to send yet; the call waits,
 * holding no thread, and next is called again after lc_srv_wake_streams. */
#define LC_STREAM_WAIT 2
typedef int (*lc_open_fn)(const lc_call_ctx *ctx, const ProtobufCMessage *req, void **state,
                          lc_err *err);
typedef int (*lc_next_fn)(void *state, grpc_byte_buffer **msg, lc_err *err);
/* Client stream: message consumes one raw request message (still owned by
 * the server) and returns 0 to receive more, or 1 with *resp set to end
 * the call early with OK. end is called when the client half-closes and
 * sets *resp or fails. *state starts NULL. */
typedef int (*lc_message_fn)(const lc_call_ctx *ctx, void **state, grpc_byte_buffer *msg,
                             grpc_byte_buffer **resp, lc_err *err);
typedef int (*lc_end_fn)(void *state, grpc_byte_buffer **resp, lc_err *err);
/* Frees stream state (may be NULL); finished is false when the call was
 * cancelled or failed before a status was sent. */
typedef void (*lc_state_free_fn)(void *state, bool finished);

typedef struct lc_method {
    const char *path; /* "/package.Service/Method" */
    lc_method_kind kind;
    const ProtobufCMessageDescriptor *request; /* unary and server stream */
    lc_unary_fn unary;
    lc_open_fn open;
    lc_next_fn next;
    lc_message_fn message;
    lc_end_fn end;
    lc_state_free_fn free_state;
} lc_method;

typedef struct lc_srv_options {
    const char *listen; /* "HOST:PORT", port 0 = any free port */
    int threads;        /* worker threads, one CQ each */
    void *env;          /* handed to every handler in lc_call_ctx.env */
    void *stats;        /* lc_stats * for per-method counters, or NULL */
    /* Checked when each call arrives, before any work: the role a method
     * needs is lc_auth_method_role(path). NULL = every call is allowed.
     * Borrowed: must outlive the server. */
    lc_auth *auth;
    /* TLS: PEM texts (copied). With cert and key the port speaks TLS only;
     * with client_ca too, clients must present a certificate signed by it. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    const char *tls_client_ca_pem;
    /* cluster.h: calls whose authorization header equals this value come
     * from a peer replica: marked forwarded, access control skipped (the
     * value is the shared cluster token). NULL = cluster mode off. */
    const char *peer_auth;
    /* cluster.h: the peer port: every call must carry peer_auth
     * (UNAUTHENTICATED otherwise) and is served as forwarded. */
    bool peers_only;
} lc_srv_options;

/* Creates the server (grpc_init must have been called). Copies opts. */
int lc_srv_new(const lc_srv_options *opts, lc_srv **out, lc_err *err);

/* Registers methods (before lc_srv_start); the table must outlive the server. */
int lc_srv_add_methods(lc_srv *s, const lc_method *methods, size_t n, lc_err *err);

/* Binds, starts the worker threads and posts the requests. *port gets the
 * bound port. */
int lc_srv_start(lc_srv *s, int *port, lc_err *err);

/* Calls next again on every waiting server stream (LC_STREAM_WAIT), within
 * LC_SRV_WAKE_MS. Thread-safe. */
#define LC_SRV_WAKE_MS 200
void lc_srv_wake_streams(lc_srv *s);

/* Stops accepting calls, lets calls in flight finish for up to grace_seconds,
 * cancels the rest, then stops and joins the workers. Blocks. */
void lc_srv_shutdown(lc_srv *s, int64_t grace_seconds);

/* Frees the server (shutting it down first with no grace if needed);
 * NULLs *s. Call grpc_shutdown afterwards. */
void lc_srv_free(lc_srv **s);

#endif
