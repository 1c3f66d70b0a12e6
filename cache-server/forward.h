/* forward.h - cluster mode: serving a client's call through the owners of
 * its keys (cluster.h). The handlers call these when lc_fwd_on(ctx): the
 * server runs in cluster mode and the call came from a client, not from a
 * peer. Owners that are self are served by calling the local handler with
 * a forwarded copy of ctx; other owners over gRPC with the cluster token.
 *
 * Rules (DESIGN.md section 6, issue 7):
 * - Writes (UpdateActionResult, BatchUpdateBlobs, ByteStream.Write) go to
 *   every live owner and succeed when every live owner accepted; dead
 *   owners are skipped; if no owner is live the next live peers in rank
 *   order take it (so a write succeeds while any replica lives); an owner's
 *   refusal (a bad digest) is the client's error; none reachable is
 *   UNAVAILABLE.
 * - Reads (GetActionResult, BatchReadBlobs, ByteStream.Read) and
 *   FindMissingBlobs ask the owners first, then every other live peer (in
 *   rank order), before declaring a miss: keys whose ownership moved in a
 *   scale-up still hit at their previous owners. A blob is missing only if
 *   no live replica has it.
 * - GetActionResult checks completeness across the replicas: every blob the
 *   result references must be found (as FindMissingBlobs above).
 * - ByteStream.Read is fetched whole from a replica into an unlinked temp
 *   file, then streamed; ByteStream.Write is buffered in a temp file and
 *   verified before it is sent to the owners (bounded memory either way).
 * - A Write that stops before finish_write is resumable at this replica:
 *   its buffer is parked by resource name (at most LC_FWD_PARK_MAX of them,
 *   LC_FWD_PARK_MAX_BYTES in all, each until LC_FWD_PARK_IDLE_S idle; the
 *   oldest make room) and mirrored into the local store as a partial upload
 *   of the same name, so QueryWriteStatus (answered by bytestream.c from the
 *   local store) reports its committed_size. A Write of that name continues
 *   it at write_offset = committed_size (another offset is INVALID_ARGUMENT,
 *   as on a single node); a blob some replica holds completes at once. The
 *   mirror is dropped with the buffer, or becomes the local copy when this
 *   replica owns the blob. After a restart the buffers are gone: a resume
 *   is refused (INVALID_ARGUMENT, start at 0) and the stale mirror dropped.
 */
#ifndef LC_FORWARD_H
#define LC_FORWARD_H

#include <stdbool.h>

#include "google/bytestream/bytestream.pb-c.h"
#include "services.h"

#define LC_FWD_PARK_MAX 64
#define LC_FWD_PARK_MAX_BYTES (4ll << 30)
#define LC_FWD_PARK_IDLE_S (15 * 60)
#define LC_FWD_PARK_WAIT_S 5 /* a resume waits this long for the old stream to end */

/* True when ctx's call must go through forward.c. */
static inline bool lc_fwd_on(const lc_call_ctx *ctx)
{
    return ((const lc_svc_env *)ctx->env)->cluster != NULL && !ctx->forwarded;
}

int lc_fwd_get_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                             grpc_byte_buffer **resp, lc_err *err);
int lc_fwd_update_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                                grpc_byte_buffer **resp, lc_err *err);
int lc_fwd_find_missing_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                              grpc_byte_buffer **resp, lc_err *err);
int lc_fwd_batch_update_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                              grpc_byte_buffer **resp, lc_err *err);
int lc_fwd_batch_read_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                            grpc_byte_buffer **resp, lc_err *err);

/* Admin fan-out: GetStats adds up every live replica's numbers (entries
 * and blobs count stored copies; uptime, version and per-method counts are
 * this replica's); Purge runs at every replica, lists each entry once and
 * fails UNAVAILABLE (after purging the others) if a replica is down. */
int lc_fwd_admin_get_stats(const lc_call_ctx *ctx, const ProtobufCMessage *req,
                           grpc_byte_buffer **resp, lc_err *err);
int lc_fwd_admin_purge(const lc_call_ctx *ctx, const ProtobufCMessage *req, grpc_byte_buffer **resp,
                       lc_err *err);

/* A forwarded ByteStream stream (temp file), owned by the handler state. */
typedef struct lc_fwd_stream lc_fwd_stream;

/* Read: fetches resource name [offset, offset+limit) from the first replica
 * that has it into *out. NOT_FOUND when none has it. */
int lc_fwd_read_open(const lc_call_ctx *ctx, const char *name, const lc_digest *d, int64_t offset,
                     int64_t limit, lc_fwd_stream **out, lc_err *err);
/* The next <= 1 MiB ReadResponse, or *msg = NULL at the end. */
int lc_fwd_read_next(lc_fwd_stream *s, grpc_byte_buffer **msg, lc_err *err);

/* Write: consumes one WriteRequest (*s starts NULL). Returns 0 for more, 1
 * with *resp when done (the blob is at its owners). */
int lc_fwd_write(const lc_call_ctx *ctx, lc_fwd_stream **s,
                 const Google__Bytestream__WriteRequest *req, grpc_byte_buffer **resp, lc_err *err);

/* Bytes moved by the stream (for stats). */
uint64_t lc_fwd_stream_bytes(const lc_fwd_stream *s);
void lc_fwd_stream_free(lc_fwd_stream **s);

#endif
