/* bytestream_client.c - google.bytestream Write/Read/QueryWriteStatus of
 * the cache client (see cache_client.h): chunked uploads with resume, and
 * streamed, digest-checked downloads. */
#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_client.h"
#include "cache_client_int.h"
#include "google/bytestream/bytestream.pb-c.h"
#include "grpc_msg.h"
#include "placement.h"

/* Automatic resumes of one upload after a broken stream. */
#define MAX_RESUMES 3
#define RESOURCE_MAX 1024

/* A stream of n bytes gets the call deadline plus 1 s per MiB, so a large
 * layer is not cut off by a deadline sized for unary calls. */
static int64_t stream_deadline_ms(const lc_cache_client *c, int64_t n)
{
    return c->deadline_ms + (n / LC_CACHE_CHUNK_SIZE) * 1000;
}

/* Where upload bytes come from: random access (resumable) or sequential. */
typedef struct source {
    lc_cache_pread_fn pread;
    lc_cache_read_fn read;
    void *ctx;
} source;

/* Fills buf with exactly len bytes at off, or fails. */
static int source_fill(source *s, void *buf, size_t len, int64_t off, lc_err *err)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = s->pread != NULL
                        ? s->pread(s->ctx, (char *)buf + got, len - got, off + (int64_t)got, err)
                        : s->read(s->ctx, (char *)buf + got, len - got, err);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "the upload source ended at byte %" PRId64 ", before the blob's end",
                              off + (int64_t)got);
        got += (size_t)r;
    }
    return 0;
}

/* One Write stream sending [start, stop) of a blob of size bytes (-1:
 * unknown, raw) to resource; the last message carries finish_write when
 * finish is set. abort cancels the call after the last message instead of
 * half-closing. */
static int write_stream(lc_cache_client *c, int64_t size, const char *resource, int64_t start,
                        int64_t stop, int finish, int abort, source *src, int64_t *committed,
                        lc_err *err)
{
    int rc = 0, src_rc = 0;
    grpc_metadata md[1];
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status = GRPC_STATUS_OK;
    grpc_slice details = grpc_empty_slice();
    grpc_byte_buffer *resp = NULL;
    char status_tag, send_tag;
    lc_err src_err = {0};

    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = lc__cache_call(c, LC__M_BS_WRITE, cq, stream_deadline_ms(c, stop - start));
    char *buf = malloc(LC_CACHE_CHUNK_SIZE);
    if (call == NULL || buf == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "ByteStream.Write: cannot start the call");
        goto out;
    }

    /* The status (and early failures) arrive on their own tag while we send. */
    grpc_op rops[3];
    memset(rops, 0, sizeof(rops));
    rops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    rops[0].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    rops[1].op = GRPC_OP_RECV_MESSAGE;
    rops[1].data.recv_message.recv_message = &resp;
    rops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    rops[2].data.recv_status_on_client.trailing_metadata = &trail_md;
    rops[2].data.recv_status_on_client.status = &status;
    rops[2].data.recv_status_on_client.status_details = &details;
    if (grpc_call_start_batch(call, rops, 3, &status_tag, NULL) != GRPC_CALL_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "ByteStream.Write: cannot start the call");
        goto out;
    }

    int64_t off = start;
    int first = 1, broken = 0;
    do {
        size_t n = stop - off < LC_CACHE_CHUNK_SIZE ? (size_t)(stop - off) : LC_CACHE_CHUNK_SIZE;
        src_rc = source_fill(src, buf, n, off, &src_err);
        if (src_rc != 0)
            break;
        int last = off + (int64_t)n == stop;
        Google__Bytestream__WriteRequest w = GOOGLE__BYTESTREAM__WRITE_REQUEST__INIT;
        w.resource_name = first ? (char *)resource : "";
        w.write_offset = off;
        w.finish_write = last && finish;
        w.data.data = (uint8_t *)buf;
        w.data.len = n;
        grpc_byte_buffer *bb = lc_grpc_pack(&w.base);
        if (bb == NULL) {
            src_rc = lc_err_set(&src_err, LC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        grpc_op ops[3];
        size_t nops = 0;
        memset(ops, 0, sizeof(ops));
        if (first) {
            ops[nops].op = GRPC_OP_SEND_INITIAL_METADATA;
            ops[nops].data.send_initial_metadata.count = lc__cache_metadata(c, md);
            ops[nops].data.send_initial_metadata.metadata = md;
            nops++;
        }
        ops[nops].op = GRPC_OP_SEND_MESSAGE;
        ops[nops].data.send_message.send_message = bb;
        nops++;
        if (last && !abort)
            ops[nops++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        if (grpc_call_start_batch(call, ops, nops, &send_tag, NULL) != GRPC_CALL_OK) {
            grpc_byte_buffer_destroy(bb);
            grpc_call_cancel(call, NULL); /* or the status would wait for the deadline */
            broken = 1;
            break;
        }
        int ok = lc__cache_pluck(cq, &send_tag);
        grpc_byte_buffer_destroy(bb);
        if (!ok) {
            broken = 1; /* the server ended the call; its status says why */
            break;
        }
        off += (int64_t)n;
        first = 0;
    } while (off < stop);

    if (src_rc != 0 || (abort && !broken))
        grpc_call_cancel(call, NULL);
    lc__cache_pluck(cq, &status_tag);

    if (src_rc != 0) {
        rc = lc_err_set(err, src_err.code ? src_err.code : LC_UNKNOWN, "ByteStream.Write: %s",
                        src_err.msg);
        goto out;
    }
    if (abort && !broken) {
        rc = lc_err_set(err, LC_CANCELLED,
                        "ByteStream.Write: stream dropped at offset %" PRId64 " as asked", off);
        goto out;
    }
    rc = lc__cache_status(c, LC__M_BS_WRITE, status, details, err);
    if (rc != 0)
        goto out;
    Google__Bytestream__WriteResponse *wr = NULL;
    if (resp != NULL)
        wr = (Google__Bytestream__WriteResponse *)lc_grpc_unpack(
            &google__bytestream__write_response__descriptor, resp, NULL);
    if (wr == NULL) {
        rc = lc_err_set(err, LC_INTERNAL, "ByteStream.Write: no valid WriteResponse");
        goto out;
    }
    if (committed != NULL)
        *committed = wr->committed_size;
    /* -1 is what REAPI allows for compressed uploads; anything else must be the size. */
    if (finish && size >= 0 && wr->committed_size != size && wr->committed_size != -1)
        rc = lc_err_set(err, LC_INTERNAL,
                        "ByteStream.Write: server committed %" PRId64 " of %" PRId64 " bytes",
                        wr->committed_size, size);
    protobuf_c_message_free_unpacked(&wr->base, NULL);

out:
    free(buf);
    if (resp != NULL)
        grpc_byte_buffer_destroy(resp);
    if (call != NULL)
        grpc_call_unref(call);
    lc__cache_cq_destroy(&cq);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&trail_md);
    grpc_metadata_array_destroy(&init_md);
    return rc;
}

int lc_cache_client_query_write_status(lc_cache_client *c, const lc_digest *d,
                                       const char *upload_id, int64_t *committed, int *complete,
                                       lc_err *err)
{
    char resource[RESOURCE_MAX];
    if (c->n_peers > 0) { /* the peer the upload went to (same route) */
        size_t order[LC_PLACEMENT_MAX_PEERS];
        lc__cache_route_blob(c, d, order);
        return lc_cache_client_query_write_status(c->peers[order[0]].client, d, upload_id,
                                                  committed, complete, err);
    }
    if (lc_cache_resource_upload(c->instance, upload_id, d, resource, sizeof(resource)) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.QueryWriteStatus: name too long");
    Google__Bytestream__QueryWriteStatusRequest req =
        GOOGLE__BYTESTREAM__QUERY_WRITE_STATUS_REQUEST__INIT;
    req.resource_name = resource;
    Google__Bytestream__QueryWriteStatusResponse *resp = NULL;
    int rc = lc__cache_unary(c, LC__M_BS_QUERY, &req.base,
                             &google__bytestream__query_write_status_response__descriptor,
                             (ProtobufCMessage **)&resp, err);
    if (rc != 0)
        return rc;
    if (committed != NULL)
        *committed = resp->committed_size;
    if (complete != NULL)
        *complete = resp->complete;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
}

/* A broken stream worth resuming (not the server refusing the blob). */
static int resumable(int rc)
{
    return rc == -LC_UNAVAILABLE || rc == -LC_ABORTED || rc == -LC_DEADLINE_EXCEEDED ||
           rc == -LC_CANCELLED;
}

static int write_resumable(lc_cache_client *c, const lc_digest *d, source *src, lc_err *err)
{
    char uuid[LC_CACHE_UUID_LEN + 1], resource[RESOURCE_MAX];
    if (c->n_peers > 0) {
        /* One owner is enough (it writes to the others); the next peer when
         * unreachable, unless a sequential source was already consumed. */
        size_t order[LC_PLACEMENT_MAX_PEERS];
        size_t n = lc__cache_route_blob(c, d, order);
        int rc = -LC_UNAVAILABLE;
        for (size_t k = 0; k < n; k++) {
            rc = write_resumable(c->peers[order[k]].client, d, src, err);
            if (!lc__cache_peer_failed(c, order[k], rc) || src->pread == NULL)
                break;
        }
        return rc;
    }
    if (d->size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.Write: negative blob size");
    lc_cache_uuid(uuid);
    if (lc_cache_resource_upload(c->instance, uuid, d, resource, sizeof(resource)) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.Write: resource name too long");
    int64_t start = 0;
    for (int attempt = 0;; attempt++) {
        int rc = write_stream(c, d->size, resource, start, d->size, 1, 0, src, NULL, err);
        if (rc == 0 || src->pread == NULL || attempt == MAX_RESUMES || !resumable(rc))
            return rc;
        int64_t committed = 0;
        int complete = 0;
        if (lc_cache_client_query_write_status(c, d, uuid, &committed, &complete, NULL) != 0)
            return rc; /* the original error says more */
        if (complete)
            return 0;
        if (committed < 0 || committed > d->size)
            return rc;
        start = committed;
    }
}

typedef struct mem_source {
    const char *data;
    int64_t size;
} mem_source;

static ssize_t mem_pread(void *ctx, void *buf, size_t len, int64_t off, lc_err *err)
{
    mem_source *m = ctx;
    (void)err;
    if (off >= m->size)
        return 0;
    size_t n = (int64_t)len < m->size - off ? len : (size_t)(m->size - off);
    memcpy(buf, m->data + off, n);
    return (ssize_t)n;
}

static ssize_t fd_pread(void *ctx, void *buf, size_t len, int64_t off, lc_err *err)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t r = pread(fd, buf, len, (off_t)off);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return lc_err_set(err, lc_code_from_errno(errno), "read of the upload file: %s",
                              strerror(errno));
    }
}

int lc_cache_client_write_buffer(lc_cache_client *c, const lc_digest *d, const void *data,
                                 lc_err *err)
{
    mem_source m = {data, d->size};
    source src = {mem_pread, NULL, &m};
    return write_resumable(c, d, &src, err);
}

int lc_cache_client_write_fd(lc_cache_client *c, const lc_digest *d, int fd, lc_err *err)
{
    source src = {fd_pread, NULL, &fd};
    return write_resumable(c, d, &src, err);
}

int lc_cache_client_write_pread(lc_cache_client *c, const lc_digest *d, lc_cache_pread_fn fn,
                                void *ctx, lc_err *err)
{
    source src = {fn, NULL, ctx};
    return write_resumable(c, d, &src, err);
}

int lc_cache_client_write_reader(lc_cache_client *c, const lc_digest *d, lc_cache_read_fn fn,
                                 void *ctx, lc_err *err)
{
    source src = {NULL, fn, ctx};
    return write_resumable(c, d, &src, err);
}

int lc_cache_client_write(lc_cache_client *c, const lc_digest *d, const lc_cache_write_opts *wo,
                          lc_cache_pread_fn fn, void *ctx, int64_t *committed, lc_err *err)
{
    lc_cache_write_opts defaults = {0};
    char uuid[LC_CACHE_UUID_LEN + 1], resource[RESOURCE_MAX];
    if (c->n_peers > 0) { /* no fallback: a resumed upload must find its peer */
        size_t order[LC_PLACEMENT_MAX_PEERS];
        lc__cache_route_blob(c, d, order);
        int rc = lc_cache_client_write(c->peers[order[0]].client, d, wo, fn, ctx, committed, err);
        lc__cache_peer_failed(c, order[0], rc);
        return rc;
    }
    if (wo == NULL)
        wo = &defaults;
    int64_t stop = wo->stop != 0 ? wo->stop : d->size;
    if (d->size < 0 || wo->start < 0 || wo->start > stop || stop > d->size)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "ByteStream.Write: range %" PRId64 "..%" PRId64
                          " does not fit a blob of %" PRId64 " bytes",
                          wo->start, stop, d->size);
    if (wo->upload_id == NULL)
        lc_cache_uuid(uuid);
    if (lc_cache_resource_upload(c->instance, wo->upload_id != NULL ? wo->upload_id : uuid, d,
                                 resource, sizeof(resource)) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.Write: resource name too long");
    source src = {fn, NULL, ctx};
    return write_stream(c, d->size, resource, wo->start, stop, wo->stop == 0,
                        wo->stop != 0 && wo->abort, &src, committed, err);
}

typedef struct raw_source {
    const char *data;
    int64_t base, len; /* data holds bytes [base, base + len) of the stream */
} raw_source;

static ssize_t raw_pread(void *ctx, void *buf, size_t len, int64_t off, lc_err *err)
{
    raw_source *r = ctx;
    (void)err;
    int64_t rel = off - r->base;
    if (rel < 0 || rel >= r->len)
        return 0;
    size_t n = (int64_t)len < r->len - rel ? len : (size_t)(r->len - rel);
    memcpy(buf, r->data + rel, n);
    return (ssize_t)n;
}

int lc_cache_client_write_raw(lc_cache_client *c, const char *resource, int64_t write_offset,
                              const void *data, size_t len, int finish, int64_t *committed,
                              lc_err *err)
{
    raw_source r = {data, write_offset, (int64_t)len};
    source src = {raw_pread, NULL, &r};
    return write_stream(c, -1, resource, write_offset, write_offset + (int64_t)len, finish, 0, &src,
                        committed, err);
}

/* ---- Read ------------------------------------------------------------------ */

/* One Read stream of resource from offset, at most limit bytes (0: to the
 * end). expect >= 0 bounds the bytes accepted and must be met exactly;
 * verify (may be NULL) is the digest the whole stream must have. */
static int read_stream(lc_cache_client *c, const char *resource, int64_t offset, int64_t limit,
                       int64_t expect, const lc_digest *verify, lc_cache_write_fn fn, void *ctx,
                       int64_t *nread, lc_err *err)
{
    int rc = 0, sink_rc = 0;
    grpc_metadata md[1];
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status = GRPC_STATUS_OK;
    grpc_slice details = grpc_empty_slice();
    grpc_byte_buffer *req_bb = NULL;
    grpc_call *call = NULL;
    lc_hasher *hasher = NULL;
    lc_err sink_err = {0};
    int64_t total = 0;
    char tag;

    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    if (verify != NULL && (hasher = lc_hasher_new()) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "ByteStream.Read: out of memory");
        goto out;
    }
    Google__Bytestream__ReadRequest req = GOOGLE__BYTESTREAM__READ_REQUEST__INIT;
    req.resource_name = (char *)resource;
    req.read_offset = offset;
    req.read_limit = limit;
    req_bb = lc_grpc_pack(&req.base);
    call = lc__cache_call(c, LC__M_BS_READ, cq, stream_deadline_ms(c, expect > 0 ? expect : 0));
    if (req_bb == NULL || call == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "ByteStream.Read: cannot start the call");
        goto out;
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = lc__cache_metadata(c, md);
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    if (grpc_call_start_batch(call, ops, 4, &tag, NULL) != GRPC_CALL_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "ByteStream.Read: cannot start the call");
        goto out;
    }
    int ok = lc__cache_pluck(cq, &tag);

    /* One receive in flight at a time; a NULL buffer is the end of the stream. */
    while (ok) {
        grpc_byte_buffer *bb = NULL;
        grpc_op rop;
        memset(&rop, 0, sizeof(rop));
        rop.op = GRPC_OP_RECV_MESSAGE;
        rop.data.recv_message.recv_message = &bb;
        if (grpc_call_start_batch(call, &rop, 1, &tag, NULL) != GRPC_CALL_OK ||
            !lc__cache_pluck(cq, &tag) || bb == NULL)
            break;
        Google__Bytestream__ReadResponse *r = (Google__Bytestream__ReadResponse *)lc_grpc_unpack(
            &google__bytestream__read_response__descriptor, bb, NULL);
        grpc_byte_buffer_destroy(bb);
        if (r == NULL) {
            sink_rc = lc_err_set(&sink_err, LC_INTERNAL, "invalid ReadResponse from the server");
        } else if (expect >= 0 && total + (int64_t)r->data.len > expect) {
            sink_rc =
                lc_err_set(&sink_err, LC_DATA_LOSS,
                           "the server sent more than the %" PRId64 " bytes expected", expect);
        } else {
            if (hasher != NULL)
                lc_hasher_update(hasher, r->data.data, r->data.len);
            if (r->data.len > 0)
                sink_rc = fn(ctx, r->data.data, r->data.len, &sink_err);
            total += (int64_t)r->data.len;
        }
        if (r != NULL)
            protobuf_c_message_free_unpacked(&r->base, NULL);
        if (sink_rc != 0) {
            grpc_call_cancel(call, NULL);
            break;
        }
    }

    grpc_op sop;
    memset(&sop, 0, sizeof(sop));
    sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    sop.data.recv_status_on_client.trailing_metadata = &trail_md;
    sop.data.recv_status_on_client.status = &status;
    sop.data.recv_status_on_client.status_details = &details;
    if (grpc_call_start_batch(call, &sop, 1, &tag, NULL) == GRPC_CALL_OK)
        lc__cache_pluck(cq, &tag);
    else if (sink_rc == 0)
        sink_rc = lc_err_set(&sink_err, LC_INTERNAL, "cannot receive the call's status");

    if (sink_rc != 0) {
        rc = lc_err_set(err, sink_err.code ? sink_err.code : LC_UNKNOWN, "ByteStream.Read: %s",
                        sink_err.msg);
        goto out;
    }
    rc = lc__cache_status(c, LC__M_BS_READ, status, details, err);
    if (rc != 0)
        goto out;
    if (verify != NULL) {
        lc_digest got;
        lc_hasher_final(hasher, &got);
        got.size = total;
        if (!lc_digest_equal(&got, verify)) {
            char want_hex[LC_HASH_HEX_LEN + 1], got_hex[LC_HASH_HEX_LEN + 1];
            lc_digest_hex(verify, want_hex);
            lc_digest_hex(&got, got_hex);
            rc = lc_err_set(err, LC_DATA_LOSS,
                            "ByteStream.Read: blob %s/%" PRId64 " arrived as %" PRId64
                            " bytes with digest %s",
                            want_hex, verify->size, total, got_hex);
        }
    } else if (expect >= 0 && total != expect) {
        rc = lc_err_set(err, LC_DATA_LOSS,
                        "ByteStream.Read: %" PRId64 " of %" PRId64 " bytes arrived", total, expect);
    }
out:
    if (nread != NULL)
        *nread = total;
    lc_hasher_free(&hasher);
    if (call != NULL)
        grpc_call_unref(call);
    if (req_bb != NULL)
        grpc_byte_buffer_destroy(req_bb);
    lc__cache_cq_destroy(&cq);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&trail_md);
    grpc_metadata_array_destroy(&init_md);
    return rc;
}

int lc_cache_client_read(lc_cache_client *c, const lc_digest *d, int64_t offset, int64_t limit,
                         lc_cache_write_fn fn, void *ctx, int64_t *nread, lc_err *err)
{
    char resource[RESOURCE_MAX];
    if (nread != NULL)
        *nread = 0;
    if (c->n_peers > 0) {
        /* The first live owner; the next peer while nothing was delivered. */
        size_t order[LC_PLACEMENT_MAX_PEERS];
        size_t n = lc__cache_route_blob(c, d, order);
        int rc = -LC_UNAVAILABLE;
        for (size_t k = 0; k < n; k++) {
            int64_t got = 0;
            rc = lc_cache_client_read(c->peers[order[k]].client, d, offset, limit, fn, ctx, &got,
                                      err);
            if (nread != NULL)
                *nread = got;
            if (!lc__cache_peer_failed(c, order[k], rc) || got > 0)
                break;
        }
        return rc;
    }
    if (offset < 0 || limit < 0 || d->size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.Read: negative offset or limit");
    if (lc_cache_resource_read(c->instance, d, resource, sizeof(resource)) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.Read: resource name too long");
    int64_t expect = offset >= d->size ? 0 : d->size - offset;
    if (limit > 0 && limit < expect)
        expect = limit;
    int whole = offset == 0 && limit == 0;
    return read_stream(c, resource, offset, limit, expect, whole ? d : NULL, fn, ctx, nread, err);
}

int lc_cache_client_read_raw(lc_cache_client *c, const char *resource, int64_t offset,
                             int64_t limit, lc_cache_write_fn fn, void *ctx, int64_t *nread,
                             lc_err *err)
{
    return read_stream(c, resource, offset, limit, -1, NULL, fn, ctx, nread, err);
}

typedef struct mem_sink {
    char *data;
    int64_t len, cap;
} mem_sink;

static int mem_write(void *ctx, const void *data, size_t len, lc_err *err)
{
    mem_sink *m = ctx;
    if ((int64_t)len > m->cap - m->len)
        return lc_err_set(err, LC_DATA_LOSS, "more bytes than the blob's size");
    memcpy(m->data + m->len, data, len);
    m->len += (int64_t)len;
    return 0;
}

int lc_cache_client_read_buffer(lc_cache_client *c, const lc_digest *d, void **out, lc_err *err)
{
    *out = NULL;
    if (d->size < 0 || (uint64_t)d->size >= SIZE_MAX)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "ByteStream.Read: bad blob size");
    mem_sink m = {malloc((size_t)d->size + 1), 0, d->size};
    if (m.data == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                          "ByteStream.Read: no memory for %" PRId64 " bytes", d->size);
    int rc = lc_cache_client_read(c, d, 0, 0, mem_write, &m, NULL, err);
    if (rc != 0) {
        free(m.data);
        return rc;
    }
    *out = m.data;
    return 0;
}

static int fd_write(void *ctx, const void *data, size_t len, lc_err *err)
{
    int fd = *(int *)ctx;
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "write of the downloaded blob: %s",
                              strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int lc_cache_client_read_fd(lc_cache_client *c, const lc_digest *d, int fd, lc_err *err)
{
    return lc_cache_client_read(c, d, 0, 0, fd_write, &fd, NULL, err);
}
