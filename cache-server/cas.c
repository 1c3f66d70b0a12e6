/* cas.c - ContentAddressableStorage: FindMissingBlobs, BatchUpdateBlobs,
 * BatchReadBlobs (per-blob google.rpc.Status), GetTree (UNIMPLEMENTED).
 * Batches are bounded by env->max_batch_total_size_bytes, which the
 * server advertises in its capabilities; bigger blobs go through ByteStream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas.h"
#include "forward.h" /* cluster mode */
#include "google/rpc/status.pb-c.h"
#include "services.h"

int lc_cas_check_find_missing(const LC_REAPI(FindMissingBlobsRequest) * req, lc_digest *out,
                              lc_err *err)
{
    char what[48];
    int rc;
    if ((rc = lc_svc_instance(req->instance_name, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0)
        return rc;
    for (size_t i = 0; i < req->n_blob_digests; i++) {
        snprintf(what, sizeof(what), "blob_digests[%zu]", i);
        if ((rc = lc_svc_digest(req->blob_digests[i], what, &out[i], err)) < 0)
            return rc;
    }
    return 0;
}

int lc_cas_check_update(const lc_svc_env *env, const LC_REAPI(BatchUpdateBlobsRequest) * req,
                        lc_err *err)
{
    uint64_t total = 0;
    int rc;
    if ((rc = lc_svc_instance(req->instance_name, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0)
        return rc;
    for (size_t i = 0; i < req->n_requests; i++)
        if (req->requests[i] != NULL)
            total += req->requests[i]->data.len;
    if (total > (uint64_t)env->max_batch_bytes)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "BatchUpdateBlobs carries %llu bytes of data; the limit is %lld "
                          "(max_batch_total_size_bytes): split the batch or use ByteStream.Write",
                          (unsigned long long)total, (long long)env->max_batch_bytes);
    return 0;
}

int lc_cas_check_read_total(const lc_svc_env *env, uint64_t total, lc_err *err)
{
    if (total > (uint64_t)env->max_batch_bytes)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "BatchReadBlobs asks for %llu bytes; the limit is %lld "
                          "(max_batch_total_size_bytes): split the batch or use ByteStream.Read",
                          (unsigned long long)total, (long long)env->max_batch_bytes);
    return 0;
}

static int find_missing_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                              grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(FindMissingBlobsRequest) *req = (const void *)msg;
    size_t n = req->n_blob_digests, n_missing = 0;
    lc_digest *ds = NULL;
    bool *missing = NULL;
    LC_REAPI(Digest) **out = NULL;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: split by owner (forward.c) */
        return lc_fwd_find_missing_blobs(ctx, msg, resp, err);
    ds = calloc(n + 1, sizeof(*ds));
    missing = calloc(n + 1, sizeof(*missing));
    out = calloc(n + 1, sizeof(*out));
    if (ds == NULL || missing == NULL || out == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if ((rc = lc_cas_check_find_missing(req, ds, err)) < 0)
        goto out;
    if (n > 0 && (rc = lc_store_find_missing(env->store, ds, n, missing, err)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (missing[i])
            out[n_missing++] = req->blob_digests[i];
    LC_REAPI(FindMissingBlobsResponse) r = LC_REAPI_INIT(FIND_MISSING_BLOBS_RESPONSE);
    r.n_missing_blob_digests = n_missing;
    r.missing_blob_digests = out;
    *resp = lc_svc_pack(&r);
    rc = 0;
out:
    free(out);
    free(missing);
    free(ds);
    return rc;
}

static int batch_update_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                              grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(BatchUpdateBlobsRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    size_t n = req->n_requests;
    LC_REAPI(BatchUpdateBlobsResponse__Response) *rs = NULL, **rps = NULL;
    Google__Rpc__Status *sts = NULL;
    lc_err *errs = NULL;
    LC_REAPI(Digest) empty_digest = LC_REAPI_INIT(DIGEST);
    uint64_t written = 0;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: split by owner (forward.c) */
        return lc_fwd_batch_update_blobs(ctx, msg, resp, err);
    if ((rc = lc_cas_check_update(env, req, err)) < 0)
        return rc;
    rs = calloc(n + 1, sizeof(*rs));
    rps = calloc(n + 1, sizeof(*rps));
    sts = calloc(n + 1, sizeof(*sts));
    errs = calloc(n + 1, sizeof(*errs));
    if (rs == NULL || rps == NULL || sts == NULL || errs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const LC_REAPI(BatchUpdateBlobsRequest__Request) *r = req->requests[i];
        char what[48];
        lc_digest d;
        int code = 0;
        snprintf(what, sizeof(what), "requests[%zu].digest", i);
        if (r == NULL) {
            code = lc_err_set(&errs[i], LC_INVALID_ARGUMENT, "requests[%zu] is empty", i);
        } else if (r->compressor !=
                   BUILD__BAZEL__REMOTE__EXECUTION__V2__COMPRESSOR__VALUE__IDENTITY) {
            code = lc_err_set(&errs[i], LC_INVALID_ARGUMENT,
                              "requests[%zu]: compressor %d is not supported (IDENTITY only)", i,
                              (int)r->compressor);
        } else if ((code = lc_svc_digest(r->digest, what, &d, &errs[i])) == 0) {
            if ((uint64_t)d.size != r->data.len)
                code = lc_err_set(&errs[i], LC_INVALID_ARGUMENT,
                                  "requests[%zu]: data is %zu bytes but the digest says %lld", i,
                                  r->data.len, (long long)d.size);
            else if ((code = lc_store_blob_put(env->store, &d, r->data.data, r->data.len,
                                               &errs[i])) == 0)
                written += r->data.len;
        }
        LC_REAPI(BatchUpdateBlobsResponse__Response)
        init = LC_REAPI_INIT(BATCH_UPDATE_BLOBS_RESPONSE__RESPONSE);
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        sts[i] = st;
        rs[i] = init;
        rs[i].digest = (r != NULL && r->digest != NULL) ? r->digest : &empty_digest;
        if (code < 0) {
            sts[i].code = errs[i].code ? errs[i].code : -code;
            sts[i].message = errs[i].msg;
        }
        rs[i].status = &sts[i];
        rps[i] = &rs[i];
    }
    if (!ctx->forwarded) /* cluster: counted by the replica the client called */
        lc_stats_bytes(env->stats, inst, 0, written);
    LC_REAPI(BatchUpdateBlobsResponse) out = LC_REAPI_INIT(BATCH_UPDATE_BLOBS_RESPONSE);
    out.n_responses = n;
    out.responses = rps;
    *resp = lc_svc_pack(&out);
    rc = 0;
out:
    free(errs);
    free(sts);
    free(rps);
    free(rs);
    return rc;
}

static int batch_read_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                            grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(BatchReadBlobsRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    size_t n = req->n_digests;
    LC_REAPI(BatchReadBlobsResponse__Response) *rs = NULL, **rps = NULL;
    Google__Rpc__Status *sts = NULL;
    lc_err *errs = NULL;
    lc_digest *ds = NULL;
    uint8_t **datas = NULL;
    LC_REAPI(Digest) empty_digest = LC_REAPI_INIT(DIGEST);
    uint64_t total = 0, read = 0;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: split by owner (forward.c) */
        return lc_fwd_batch_read_blobs(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0)
        return rc;
    rs = calloc(n + 1, sizeof(*rs));
    rps = calloc(n + 1, sizeof(*rps));
    sts = calloc(n + 1, sizeof(*sts));
    errs = calloc(n + 1, sizeof(*errs));
    ds = calloc(n + 1, sizeof(*ds));
    datas = calloc(n + 1, sizeof(*datas));
    if (rs == NULL || rps == NULL || sts == NULL || errs == NULL || ds == NULL || datas == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* First pass: validate and add up the sizes; errors stay in errs. */
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof(what), "digests[%zu]", i);
        if (lc_svc_digest(req->digests[i], what, &ds[i], &errs[i]) == 0)
            total += (uint64_t)ds[i].size;
    }
    if ((rc = lc_cas_check_read_total(env, total, err)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        LC_REAPI(BatchReadBlobsResponse__Response)
        init = LC_REAPI_INIT(BATCH_READ_BLOBS_RESPONSE__RESPONSE);
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        rs[i] = init;
        sts[i] = st;
        rs[i].digest = req->digests[i] != NULL ? req->digests[i] : &empty_digest;
        if (errs[i].code == LC_OK) {
            size_t len = 0;
            if (lc_store_blob_get(env->store, &ds[i], &datas[i], &len, &errs[i]) == 0) {
                rs[i].data.data = datas[i];
                rs[i].data.len = len;
                read += len;
            } else if (errs[i].code == LC_OK) {
                lc_err_set(&errs[i], LC_INTERNAL, "cannot read the blob");
            }
        }
        if (errs[i].code != LC_OK) {
            sts[i].code = errs[i].code;
            sts[i].message = errs[i].msg;
        }
        rs[i].status = &sts[i];
        rps[i] = &rs[i];
    }
    if (!ctx->forwarded) /* cluster: counted by the replica the client called */
        lc_stats_bytes(env->stats, inst, read, 0);
    LC_REAPI(BatchReadBlobsResponse) out = LC_REAPI_INIT(BATCH_READ_BLOBS_RESPONSE);
    out.n_responses = n;
    out.responses = rps;
    *resp = lc_svc_pack(&out);
    rc = 0;
out:
    if (datas != NULL)
        for (size_t i = 0; i < n; i++)
            free(datas[i]);
    free(datas);
    free(ds);
    free(errs);
    free(sts);
    free(rps);
    free(rs);
    return rc;
}

static int get_tree_open(const lc_call_ctx *ctx, const ProtobufCMessage *req, void **state,
                         lc_err *err)
{
    (void)ctx;
    (void)req;
    (void)state;
    return lc_err_set(err, LC_UNIMPLEMENTED,
                      "GetTree is not implemented by this cache: fetch Tree and Directory "
                      "messages with BatchReadBlobs or ByteStream.Read");
}

static int get_tree_next(void *state, grpc_byte_buffer **msg, lc_err *err)
{
    (void)state;
    *msg = NULL;
    return lc_err_set(err, LC_UNIMPLEMENTED, "GetTree is not implemented");
}

const lc_method lc_cas_methods[] = {
    {.path = "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
     .kind = LC_METHOD_UNARY,
     .request = &LC_REAPI_DESC(find_missing_blobs_request),
     .unary = find_missing_blobs},
    {.path = "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
     .kind = LC_METHOD_UNARY,
     .request = &LC_REAPI_DESC(batch_update_blobs_request),
     .unary = batch_update_blobs},
    {.path = "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
     .kind = LC_METHOD_UNARY,
     .request = &LC_REAPI_DESC(batch_read_blobs_request),
     .unary = batch_read_blobs},
    {.path = "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree",
     .kind = LC_METHOD_SERVER_STREAM,
     .request = &LC_REAPI_DESC(get_tree_request),
     .open = get_tree_open,
     .next = get_tree_next},
};
const size_t lc_cas_n_methods = sizeof(lc_cas_methods) / sizeof(lc_cas_methods[0]);
