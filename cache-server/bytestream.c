/* bytestream.c - google.bytestream.ByteStream over the CAS: Read (server
 * stream of <= 1 MiB messages, one in flight), Write (client stream, each
 * message appended to an lc_upload as it arrives, so memory per stream is
 * one message plus one store chunk whatever the blob size) and
 * QueryWriteStatus (resumable uploads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h" /* cluster mode */
#include "google/bytestream/bytestream.pb-c.h"
#include "grpc_msg.h"
#include "log.h"
#include "resource.h"
#include "services.h"
#include "write_request.h"

#define MOD "bytestream"

static void digest_name(const lc_digest *d, char *out, size_t outlen)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(d, hex);
    snprintf(out, outlen, "%s/%lld", hex, (long long)d->size);
}

/* ---- Read --------------------------------------------------------------- */

typedef struct read_state {
    const lc_svc_env *env;
    lc_blob_reader *reader;
    lc_fwd_stream *fwd; /* cluster: fetched from another replica (forward.c) */
    bool peer;          /* cluster: a peer's call, not counted in the stats */
    uint64_t sent;
    char instance[LC_INSTANCE_MAX + 1];
} read_state;

static int read_open(const lc_call_ctx *ctx, const ProtobufCMessage *msg, void **state, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const Google__Bytestream__ReadRequest *req = (const void *)msg;
    const char *name = req->resource_name ? req->resource_name : "";
    lc_resource res;
    int rc = lc_resource_parse(name, strlen(name), LC_RESOURCE_READ, &res, err);
    if (rc < 0)
        return rc;
    char blob[LC_HASH_HEX_LEN + 32];
    digest_name(&res.digest, blob, sizeof(blob));
    if (req->read_offset < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "read_offset %lld is negative",
                          (long long)req->read_offset);
    if (req->read_limit < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "read_limit %lld is negative (0 means no limit)",
                          (long long)req->read_limit);
    if (req->read_offset > res.digest.size)
        return lc_err_set(err, LC_OUT_OF_RANGE,
                          "read_offset %lld is past the end of blob %s (size %lld)",
                          (long long)req->read_offset, blob, (long long)res.digest.size);
    read_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    st->env = env;
    st->peer = ctx->forwarded;
    memcpy(st->instance, res.instance, sizeof(st->instance));
    /* cluster: not here, so fetch it from a replica that has it. */
    if (lc_fwd_on(ctx) && lc_store_blob_exists(env->store, &res.digest, NULL) != 1) {
        rc = lc_fwd_read_open(ctx, name, &res.digest, req->read_offset, req->read_limit, &st->fwd,
                              err);
        if (rc < 0) {
            free(st);
            return rc;
        }
        *state = st;
        return 0;
    }
    rc = lc_blob_reader_open(env->store, &res.digest, req->read_offset, req->read_limit,
                             &st->reader, err);
    if (rc < 0) {
        if (err != NULL && err->code == LC_NOT_FOUND)
            lc_err_set(err, LC_NOT_FOUND, "blob %s is not in the CAS", blob);
        free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static int read_next(void *state, grpc_byte_buffer **msg, lc_err *err)
{
    read_state *st = state;
    const uint8_t *data = NULL;
    size_t len = 0;
    *msg = NULL;
    if (st->fwd != NULL) { /* cluster */
        int frc = lc_fwd_read_next(st->fwd, msg, err);
        st->sent = lc_fwd_stream_bytes(st->fwd);
        return frc;
    }
    int rc = lc_blob_reader_next(st->reader, &data, &len, err);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0; /* the end */
    Google__Bytestream__ReadResponse r = GOOGLE__BYTESTREAM__READ_RESPONSE__INIT;
    r.data.data = (uint8_t *)data;
    r.data.len = len;
    *msg = lc_svc_pack(&r);
    if (*msg == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    st->sent += len;
    return 0;
}

static void read_free(void *state, bool finished)
{
    (void)finished;
    read_state *st = state;
    if (st == NULL)
        return;
    if (!st->peer)
        lc_stats_bytes(st->env->stats, st->instance, st->sent, 0);
    lc_blob_reader_free(&st->reader);
    lc_fwd_stream_free(&st->fwd); /* cluster */
    free(st);
}

/* ---- Write -------------------------------------------------------------- */

typedef struct write_state {
    const lc_svc_env *env;
    lc_upload *upload;
    lc_resource res;
    char name[LC_RESOURCE_MAX + 1]; /* as the client sent it first */
    char key[LC_RESOURCE_MAX + 1];  /* canonical upload key for the store */
    int64_t offset;                 /* the next write_offset expected */
    uint64_t received;              /* bytes appended by this stream */
    bool finish_tried;              /* lc_upload_finish was called (no flush after) */
    lc_fwd_stream *fwd;             /* cluster: buffered for the owners (forward.c) */
    bool peer;                      /* cluster: a peer's call, not counted in the stats */
} write_state;

static grpc_byte_buffer *write_response(int64_t committed)
{
    Google__Bytestream__WriteResponse r = GOOGLE__BYTESTREAM__WRITE_RESPONSE__INIT;
    r.committed_size = committed;
    return lc_svc_pack(&r);
}

static int write_start(const lc_call_ctx *ctx, const char *name, write_state **out, bool *done,
                       lc_err *err)
{
    if (name[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "the first WriteRequest must carry resource_name "
                          "([{instance}/]uploads/{uuid}/blobs/{hash}/{size})");
    write_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    st->env = ctx->env;
    st->peer = ctx->forwarded;
    int rc = lc_resource_parse(name, strlen(name), LC_RESOURCE_UPLOAD, &st->res, err);
    if (rc < 0)
        goto fail;
    snprintf(st->name, sizeof(st->name), "%s", name);
    if (lc_resource_format(&st->res, st->key, sizeof(st->key)) < 0) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s' is too long", name);
        goto fail;
    }
    rc = lc_upload_open(st->env->store, st->key, &st->res.digest, &st->upload, done, err);
    if (rc < 0)
        goto fail;
    st->offset = st->upload != NULL ? lc_upload_committed(st->upload) : 0;
    *out = st;
    return 0;
fail:
    free(st);
    return rc;
}

/* cluster: the whole stream goes through forward.c, which wants the message. */
static int write_forward(const lc_call_ctx *ctx, void **state, grpc_byte_buffer *bb,
                         grpc_byte_buffer **resp, lc_err *err)
{
    write_state *st = *state;
    Google__Bytestream__WriteRequest *req = (Google__Bytestream__WriteRequest *)lc_grpc_unpack(
        &google__bytestream__write_request__descriptor, bb, err);
    if (req == NULL)
        return -LC_INVALID_ARGUMENT;
    int rc;
    if (st == NULL && (st = calloc(1, sizeof(*st))) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    st->env = ctx->env;
    st->finish_tried = true; /* no local upload to keep */
    *state = st;
    rc = lc_fwd_write(ctx, &st->fwd, req, resp, err);
    st->received = lc_fwd_stream_bytes(st->fwd);
out:
    protobuf_c_message_free_unpacked(&req->base, NULL);
    return rc;
}

static int write_message(const lc_call_ctx *ctx, void **state, grpc_byte_buffer *bb,
                         grpc_byte_buffer **resp, lc_err *err)
{
    if (lc_fwd_on(ctx))
        return write_forward(ctx, state, bb, resp, err);
    write_state *st = *state;
    lc_write_request req;
    int rc = lc_write_request_decode(bb, &req, err);
    if (rc < 0)
        goto out;
    if (st == NULL) {
        bool done = false;
        if ((rc = write_start(ctx, req.resource_name, &st, &done, err)) < 0)
            goto out;
        *state = st;
        if (done) { /* the blob exists: REAPI lets us complete at once */
            *resp = write_response(st->res.digest.size);
            st->finish_tried = true;
            rc = 1;
            goto out;
        }
    } else if (req.resource_name[0] != '\0' && strcmp(req.resource_name, st->name) != 0) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "resource_name changed within one Write stream (from '%s'); send it "
                        "once, in the first message",
                        st->name);
        goto out;
    }
    if (req.write_offset != st->offset) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "write_offset %lld for '%s' does not continue the upload: the next byte "
                        "expected is %lld (QueryWriteStatus tells where to resume)",
                        (long long)req.write_offset, st->name, (long long)st->offset);
        goto out;
    }
    if (req.data_len > 0) {
        if ((rc = lc_upload_appendv(st->upload, req.data, req.n_data, err)) < 0)
            goto out;
        st->offset += (int64_t)req.data_len;
        st->received += req.data_len;
    }
    if (req.finish_write) {
        st->finish_tried = true;
        if ((rc = lc_upload_finish(st->upload, err)) < 0)
            goto out;
        *resp = write_response(st->offset);
        rc = 1;
    }
out:
    lc_write_request_clear(&req);
    return rc;
}

static int write_end(void *state, grpc_byte_buffer **resp, lc_err *err)
{
    (void)resp;
    write_state *st = state;
    if (st == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "Write stream ended without any WriteRequest");
    /* write_free flushes what arrived, so the client can resume. */
    return lc_err_set(err, LC_INVALID_ARGUMENT,
                      "Write stream for '%s' ended without finish_write after %lld of %lld "
                      "bytes; what arrived is kept: resume at offset %lld (QueryWriteStatus)",
                      st->name, (long long)st->offset, (long long)st->res.digest.size,
                      (long long)st->offset);
}

static void write_free(void *state, bool finished)
{
    (void)finished;
    write_state *st = state;
    if (st == NULL)
        return;
    if (st->upload != NULL && !st->finish_tried) {
        /* Keep what arrived so a cancelled client can resume. */
        lc_err ferr = {0};
        if (lc_upload_flush(st->upload, &ferr) < 0)
            LC_WARN(MOD, "cannot keep the partial upload '%s': %s", st->key, ferr.msg);
    }
    lc_upload_free(&st->upload);
    lc_fwd_stream_free(&st->fwd); /* cluster */
    if (!st->peer)
        lc_stats_bytes(st->env->stats, st->res.instance, 0, st->received);
    free(st);
}

/* ---- QueryWriteStatus --------------------------------------------------- */

/* cluster: 1 if some replica holds the blob of res, 0 if none, <0 error.
 * An upload through a replica that is not an owner leaves nothing here. */
static int cluster_has_blob(const lc_call_ctx *ctx, const lc_resource *res)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&res->digest, hex);
    Build__Bazel__Remote__Execution__V2__Digest d =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    d.hash = hex;
    d.size_bytes = res->digest.size;
    Build__Bazel__Remote__Execution__V2__Digest *ds[1] = {&d};
    Build__Bazel__Remote__Execution__V2__FindMissingBlobsRequest q =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__FIND_MISSING_BLOBS_REQUEST__INIT;
    q.instance_name = (char *)res->instance;
    q.n_blob_digests = 1;
    q.blob_digests = ds;
    grpc_byte_buffer *bb = NULL;
    lc_err ferr = {0};
    int rc = lc_fwd_find_missing_blobs(ctx, &q.base, &bb, &ferr);
    if (rc < 0)
        return rc;
    LC_REAPI(FindMissingBlobsResponse) *r = (LC_REAPI(FindMissingBlobsResponse) *)lc_grpc_unpack(
        &build__bazel__remote__execution__v2__find_missing_blobs_response__descriptor, bb, &ferr);
    grpc_byte_buffer_destroy(bb);
    if (r == NULL)
        return -LC_INTERNAL;
    rc = r->n_missing_blob_digests == 0;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

static int query_write_status(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                              grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const Google__Bytestream__QueryWriteStatusRequest *req = (const void *)msg;
    const char *name = req->resource_name ? req->resource_name : "";
    lc_resource res;
    char key[LC_RESOURCE_MAX + 1];
    int rc = lc_resource_parse(name, strlen(name), LC_RESOURCE_UPLOAD, &res, err);
    if (rc < 0)
        return rc;
    if (lc_resource_format(&res, key, sizeof(key)) < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s' is too long", name);
    int64_t committed = 0;
    bool complete = false;
    rc = lc_store_upload_status(env->store, key, &res.digest, &committed, &complete, err);
    if (rc == -LC_NOT_FOUND && lc_fwd_on(ctx)) { /* cluster: finished through another replica? */
        rc = cluster_has_blob(ctx, &res);
        if (rc > 0)
            complete = true;
        rc = rc > 0 ? 0 : -LC_NOT_FOUND;
    }
    if (rc == -LC_NOT_FOUND)
        return lc_err_set(err, LC_NOT_FOUND,
                          "no upload '%s' and no such blob: start the Write at offset 0", name);
    if (rc < 0)
        return rc;
    Google__Bytestream__QueryWriteStatusResponse r =
        GOOGLE__BYTESTREAM__QUERY_WRITE_STATUS_RESPONSE__INIT;
    r.committed_size = complete ? res.digest.size : committed;
    r.complete = complete;
    *resp = lc_svc_pack(&r);
    return 0;
}

const lc_method lc_bytestream_methods[] = {
    {.path = "/google.bytestream.ByteStream/Read",
     .kind = LC_METHOD_SERVER_STREAM,
     .request = &google__bytestream__read_request__descriptor,
     .open = read_open,
     .next = read_next,
     .free_state = read_free},
    {.path = "/google.bytestream.ByteStream/Write",
     .kind = LC_METHOD_CLIENT_STREAM,
     .message = write_message,
     .end = write_end,
     .free_state = write_free},
    {.path = "/google.bytestream.ByteStream/QueryWriteStatus",
     .kind = LC_METHOD_UNARY,
     .request = &google__bytestream__query_write_status_request__descriptor,
     .unary = query_write_status},
};
const size_t lc_bytestream_n_methods =
    sizeof(lc_bytestream_methods) / sizeof(lc_bytestream_methods[0]);
