/* action_cache.c - ActionCache.GetActionResult / UpdateActionResult.
 *
 * Entries are keyed by (instance_name, action digest) and stored as a
 * StoredActionResult (admin.proto) holding the ActionResult bytes as
 * accepted. A result whose referenced blobs are not all in the CAS reads as
 * NOT_FOUND: a client must never get a hit it cannot download. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "forward.h" /* cluster mode */
#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "services.h"

#define MOD "ac"

/* Every digest an ActionResult references, validated, in a malloc'd array.
 * Empty digests are left out (the empty blob always exists). */
static int collect_digests(const LC_REAPI(ActionResult) * ar, lc_digest **out, size_t *n,
                           uint64_t *total_size, lc_err *err)
{
    size_t cap = ar->n_output_files + ar->n_output_directories + 2, k = 0;
    lc_digest *ds = calloc(cap, sizeof(*ds));
    char what[96];
    int rc = 0;
    if (ds == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    *total_size = 0;
    for (size_t i = 0; i < ar->n_output_files; i++) {
        const LC_REAPI(OutputFile) *f = ar->output_files[i];
        snprintf(what, sizeof(what), "action_result.output_files[%zu].digest", i);
        if (f == NULL || f->path == NULL || f->path[0] == '\0') {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "action_result.output_files[%zu] has no path",
                            i);
            goto fail;
        }
        if ((rc = lc_svc_digest(f->digest, what, &ds[k], err)) < 0)
            goto fail;
        *total_size += (uint64_t)ds[k].size;
        k += !lc_digest_is_empty(&ds[k]);
    }
    for (size_t i = 0; i < ar->n_output_directories; i++) {
        const LC_REAPI(OutputDirectory) *d = ar->output_directories[i];
        snprintf(what, sizeof(what), "action_result.output_directories[%zu].tree_digest", i);
        if (d == NULL) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                            "action_result.output_directories[%zu] is "
                            "empty",
                            i);
            goto fail;
        }
        if ((rc = lc_svc_digest(d->tree_digest, what, &ds[k], err)) < 0)
            goto fail;
        *total_size += (uint64_t)ds[k].size;
        k += !lc_digest_is_empty(&ds[k]);
    }
    /* stdout/stderr digests are optional; when present they must be valid. */
    const LC_REAPI(Digest) * std_digests[2] = {ar->stdout_digest, ar->stderr_digest};
    const char *std_names[2] = {"action_result.stdout_digest", "action_result.stderr_digest"};
    for (int i = 0; i < 2; i++) {
        if (std_digests[i] == NULL)
            continue;
        if ((rc = lc_svc_digest(std_digests[i], std_names[i], &ds[k], err)) < 0)
            goto fail;
        k += !lc_digest_is_empty(&ds[k]);
    }
    *out = ds;
    *n = k;
    return 0;
fail:
    free(ds);
    return rc;
}

static void digest_name(const lc_digest *d, char *out, size_t outlen)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(d, hex);
    snprintf(out, outlen, "%s/%lld", hex, (long long)d->size);
}

/* A malloc'd-copy byte buffer of data. */
static grpc_byte_buffer *bytes_buffer(const uint8_t *data, size_t len)
{
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

static int get_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                             grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(GetActionResultRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    lc_digest action;
    uint8_t *value = NULL;
    size_t len = 0, n = 0;
    Layercache__V1__StoredActionResult *stored = NULL;
    LC_REAPI(ActionResult) *ar = NULL;
    lc_digest *ds = NULL;
    bool *missing = NULL;
    uint64_t total = 0;
    char name[LC_HASH_HEX_LEN + 32];
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: ask the owners (forward.c) */
        return lc_fwd_get_action_result(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0 ||
        (rc = lc_svc_digest(req->action_digest, "action_digest", &action, err)) < 0)
        return rc;
    digest_name(&action, name, sizeof(name));
    rc = lc_store_ac_get(env->store, inst, &action, &value, &len, err);
    if (rc == -LC_NOT_FOUND) {
        rc = lc_err_set(err, LC_NOT_FOUND, "no action result for %s in instance '%s'", name, inst);
        goto miss;
    }
    if (rc < 0)
        goto out;
    stored = layercache__v1__stored_action_result__unpack(NULL, len, value);
    if (stored != NULL)
        ar = LC_REAPI_FN(action_result__unpack)(NULL, stored->action_result.len,
                                                stored->action_result.data);
    if (ar == NULL) {
        LC_WARN(MOD, "action result %s in instance '%s' is unreadable; treating it as a miss", name,
                inst);
        rc = lc_err_set(err, LC_NOT_FOUND, "no readable action result for %s in instance '%s'",
                        name, inst);
        goto miss;
    }
    lc_err cerr = {0};
    if (collect_digests(ar, &ds, &n, &total, &cerr) < 0) {
        LC_WARN(MOD, "action result %s in instance '%s' is invalid (%s); treating it as a miss",
                name, inst, cerr.msg);
        rc = lc_err_set(err, LC_NOT_FOUND, "no valid action result for %s in instance '%s'", name,
                        inst);
        goto miss;
    }
    /* cluster: a peer's lookup; the asking replica checks the blobs at
     * their owners (forward.c). */
    bool peer_lookup = ctx->forwarded && env->cluster != NULL;
    if (n > 0 && !peer_lookup) {
        missing = calloc(n, sizeof(*missing));
        if (missing == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        if ((rc = lc_store_find_missing(env->store, ds, n, missing, err)) < 0)
            goto out;
        size_t n_missing = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (missing[i] && n_missing++ == 0)
                first = i;
        if (n_missing > 0) {
            char blob[LC_HASH_HEX_LEN + 32];
            digest_name(&ds[first], blob, sizeof(blob));
            rc = lc_err_set(err, LC_NOT_FOUND,
                            "action result for %s in instance '%s' references %zu blob(s) no "
                            "longer in the CAS (first: %s); treated as a miss",
                            name, inst, n_missing, blob);
            goto miss;
        }
    }
    if (!peer_lookup) /* cluster: counted once, by the asking replica */
        lc_stats_ac(env->stats, inst, true);
    /* admin: hit count/last hit (batched, hits.h) and build time saved. */
    lc_hits_record(env->hits, inst, &action, (int64_t)time(NULL));
    lc_stats_saved(env->stats, inst, lc_admin_exec_seconds(ar));
    *resp = bytes_buffer(stored->action_result.data, stored->action_result.len);
    rc = 0;
    goto out;
miss:
    if (!(ctx->forwarded && env->cluster != NULL)) /* cluster: see above */
        lc_stats_ac(env->stats, inst, false);
out:
    free(missing);
    free(ds);
    if (ar != NULL)
        LC_REAPI_FN(action_result__free_unpacked)(ar, NULL);
    if (stored != NULL)
        layercache__v1__stored_action_result__free_unpacked(stored, NULL);
    free(value);
    return rc;
}

static int update_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                                grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(UpdateActionResultRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    lc_digest action;
    lc_digest *ds = NULL;
    size_t n = 0;
    uint64_t total = 0;
    uint8_t *ar_bytes = NULL, *stored_bytes = NULL;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: write to the owners (forward.c) */
        return lc_fwd_update_action_result(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0 ||
        (rc = lc_svc_digest(req->action_digest, "action_digest", &action, err)) < 0)
        return rc;
    if (req->action_result == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "action_result is missing");
    if ((rc = collect_digests(req->action_result, &ds, &n, &total, err)) < 0)
        return rc;

    size_t ar_len = LC_REAPI_FN(action_result__get_packed_size)(req->action_result);
    ar_bytes = malloc(ar_len ? ar_len : 1);
    if (ar_bytes == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    LC_REAPI_FN(action_result__pack)(req->action_result, ar_bytes);

    Layercache__V1__StoredActionResult stored = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    stored.action_result.data = ar_bytes;
    stored.action_result.len = ar_len;
    char writer[256]; /* admin: who wrote it (admin.c) */
    lc_admin_writer(ctx, req->action_result->execution_metadata, writer, sizeof(writer));
    stored.writer = writer;
    stored.created_unix = (int64_t)time(NULL);
    stored.size_bytes = total;
    size_t stored_len = layercache__v1__stored_action_result__get_packed_size(&stored);
    stored_bytes = malloc(stored_len ? stored_len : 1);
    if (stored_bytes == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    layercache__v1__stored_action_result__pack(&stored, stored_bytes);
    /* admin: under the entry lock, so a hit-count flush cannot write the
     * old entry back over this one (hits.h). */
    lc_hits_lock(env->hits, &action);
    rc = lc_store_ac_put(env->store, inst, &action, stored_bytes, stored_len, err);
    lc_hits_unlock(env->hits, &action);
    if (rc < 0)
        goto out;
    if (!ctx->forwarded) /* cluster: counted once, by the replica the client called */
        lc_stats_ac_update(env->stats, inst);
    *resp = bytes_buffer(ar_bytes, ar_len);
out:
    free(stored_bytes);
    free(ar_bytes);
    free(ds);
    return rc;
}

const lc_method lc_action_cache_methods[] = {
    {.path = "/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
     .kind = LC_METHOD_UNARY,
     .request = &LC_REAPI_DESC(get_action_result_request),
     .unary = get_action_result},
    {.path = "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult",
     .kind = LC_METHOD_UNARY,
     .request = &LC_REAPI_DESC(update_action_result_request),
     .unary = update_action_result},
};
const size_t lc_action_cache_n_methods =
    sizeof(lc_action_cache_methods) / sizeof(lc_action_cache_methods[0]);
