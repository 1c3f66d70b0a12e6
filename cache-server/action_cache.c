/* action_cache.c - ActionCache.GetActionResult / UpdateActionResult.
 *
 * Entries are keyed by (instance_name, action digest) and stored as a
 * StoredActionResult (admin.proto) holding the ActionResult bytes as
 * accepted. A result that is not complete (completeness.h: a blob it
 * needs, a file inside one of its Trees included, is not in the CAS) reads
 * as NOT_FOUND: a client must never get a hit it cannot download.
 *
 * Who sees which entry is trust.h's rule: a caller with an untrusted token
 * gets its own entry first, then the trusted one; everyone else the
 * trusted one only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "completeness.h"
#include "forward.h" /* cluster mode */
#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "services.h"
#include "store_ac.h"
#include "trust.h"

#define MOD "ac"

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

/* Serves one stored entry (value) if it is complete: 1 with *resp set, 0
 * when it cannot be served (why says so), < 0 on a store error. writer is
 * the untrusted writer of the entry, NULL for the trusted one. */
static int serve(const lc_call_ctx *ctx, const char *inst, const lc_digest *action,
                 const char *name, const uint8_t *value, size_t len, const char *writer,
                 grpc_byte_buffer **resp, char *why, size_t why_cap, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    Layercache__V1__StoredActionResult *stored =
        layercache__v1__stored_action_result__unpack(NULL, len, value);
    LC_REAPI(ActionResult) *ar = NULL;
    int rc = 0;
    if (stored != NULL)
        ar = LC_REAPI_FN(action_result__unpack)(NULL, stored->action_result.len,
                                                stored->action_result.data);
    if (ar == NULL) {
        LC_WARN(MOD, "action result %s in instance '%s' is unreadable; treating it as a miss", name,
                inst);
        snprintf(why, why_cap, "no readable action result for %s in instance '%s'", name, inst);
        goto out;
    }
    /* cluster: a peer's lookup; the asking replica checks the blobs at
     * their owners (forward.c). */
    bool peer_lookup = ctx->forwarded && env->cluster != NULL;
    if (!peer_lookup) {
        lc_complete_report rep;
        lc_err cerr = {0};
        rc = lc_complete_check(env->store, ar, &rep, &cerr);
        if (rc == -LC_INVALID_ARGUMENT) {
            LC_WARN(MOD, "action result %s in instance '%s' is invalid (%s); treating it as a miss",
                    name, inst, cerr.msg);
            snprintf(why, why_cap, "no valid action result for %s in instance '%s'", name, inst);
            rc = 0;
            goto out;
        }
        if (rc < 0) {
            *err = cerr;
            goto out;
        }
        if (rc == 0) {
            char blob[LC_HASH_HEX_LEN + 32];
            digest_name(&rep.first, blob, sizeof(blob));
            snprintf(why, why_cap,
                     "action result for %s in instance '%s' references %zu blob(s) no longer in "
                     "the CAS (first: %s); treated as a miss",
                     name, inst, rep.missing, blob);
            goto out;
        }
    }
    /* admin: hit count/last hit (batched, hits.h) and build time saved. */
    lc_hits_record(env->hits, inst, action, writer, (int64_t)time(NULL));
    lc_stats_saved(env->stats, inst, lc_admin_exec_seconds(ar));
    *resp = bytes_buffer(stored->action_result.data, stored->action_result.len);
    rc = 1;
out:
    if (ar != NULL)
        LC_REAPI_FN(action_result__free_unpacked)(ar, NULL);
    if (stored != NULL)
        layercache__v1__stored_action_result__free_unpacked(stored, NULL);
    return rc;
}

static int get_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                             grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(GetActionResultRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    lc_digest action;
    uint8_t *value = NULL;
    size_t len = 0;
    char name[LC_HASH_HEX_LEN + 32], why[LC_ERR_MSG_MAX];
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: ask the owners (forward.c) */
        return lc_fwd_get_action_result(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0 ||
        (rc = lc_svc_digest(req->action_digest, "action_digest", &action, err)) < 0)
        return rc;
    digest_name(&action, name, sizeof(name));
    why[0] = '\0'; /* set by serve when an entry is there but cannot be served */
    lc_trust_caller caller;
    lc_trust_caller_of(ctx, &caller);
    rc = 0;
    /* trust.h: an untrusted caller's own result first. */
    if (lc_trust_is_untrusted(&caller)) {
        rc = lc_store_ac_untrusted_get(env->store, inst, &action, caller.name, &value, &len, err);
        if (rc == 0) {
            rc = serve(ctx, inst, &action, name, value, len, caller.name, resp, why, sizeof(why),
                       err);
        } else if (rc == -LC_NOT_FOUND) {
            rc = 0;
            lc_err_clear(err);
        }
        free(value);
        value = NULL;
        if (rc < 0)
            return rc;
    }
    if (rc == 0) {
        rc = lc_store_ac_get(env->store, inst, &action, &value, &len, err);
        if (rc == 0)
            rc = serve(ctx, inst, &action, name, value, len, NULL, resp, why, sizeof(why), err);
        else if (rc == -LC_NOT_FOUND)
            rc = 0;
        free(value);
        if (rc < 0)
            return rc;
    }
    if (!(ctx->forwarded && env->cluster != NULL)) /* cluster: counted once, by the asking replica */
        lc_stats_ac(env->stats, inst, rc == 1);
    if (rc == 1)
        return 0;
    if (why[0] == '\0')
        return lc_err_set(err, LC_NOT_FOUND, "no action result for %s in instance '%s'", name, inst);
    return lc_err_set(err, LC_NOT_FOUND, "%s", why);
}

static int update_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                                grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(UpdateActionResultRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    lc_digest action;
    lc_complete_needs needs = {0};
    uint8_t *ar_bytes = NULL;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: write to the owners (forward.c) */
        return lc_fwd_update_action_result(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0 ||
        (rc = lc_svc_digest(req->action_digest, "action_digest", &action, err)) < 0)
        return rc;
    if (req->action_result == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "action_result is missing");
    /* completeness.h: every digest valid; the size counts the files of the
     * Trees already stored too. */
    if ((rc = lc_complete_needs_of(req->action_result, NULL, NULL, &needs, err)) < 0)
        goto out;
    uint64_t total = needs.bytes;
    lc_err terr = {0};
    if (req->action_result->n_output_directories > 0 &&
        lc_complete_needs_of(req->action_result, lc_complete_fetch_quiet, env->store, &needs,
                             &terr) == 0)
        total = needs.bytes;

    size_t ar_len = LC_REAPI_FN(action_result__get_packed_size)(req->action_result);
    ar_bytes = malloc(ar_len ? ar_len : 1);
    if (ar_bytes == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    LC_REAPI_FN(action_result__pack)(req->action_result, ar_bytes);

    lc_trust_caller caller;
    lc_trust_caller_of(ctx, &caller);
    Layercache__V1__StoredActionResult stored = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    stored.action_result.data = ar_bytes;
    stored.action_result.len = ar_len;
    char writer[256]; /* admin: who wrote it (admin.c) */
    if (caller.name[0] != '\0')
        snprintf(writer, sizeof(writer), "%s", caller.name);
    else
        lc_admin_writer(ctx, req->action_result->execution_metadata, writer, sizeof(writer));
    stored.writer = writer;
    stored.created_unix = (int64_t)time(NULL);
    stored.size_bytes = total;
    /* trust.h: a trusted writer replaces the entry everyone gets; an
     * untrusted one stores its own (and may complete a promotion). */
    lc_trust_outcome outcome;
    size_t promoted = 0;
    rc = lc_trust_update(env->trust, env->store, env->hits, &caller, inst, &action,
                         req->action_result, &stored, &outcome, &promoted, err);
    if (rc < 0)
        goto out;
    if (promoted > 0) {
        char name[LC_HASH_HEX_LEN + 32];
        digest_name(&action, name, sizeof(name));
        LC_INFO(MOD, "%s in instance '%s': %zu untrusted result(s) promoted (%s '%s')", name, inst,
                promoted, outcome == LC_TRUST_PROMOTED ? "quorum completed by" : "confirmed by",
                writer);
    }
    if (!ctx->forwarded) /* cluster: counted once, by the replica the client called */
        lc_stats_ac_update(env->stats, inst);
    *resp = bytes_buffer(ar_bytes, ar_len);
out:
    free(ar_bytes);
    lc_complete_needs_clear(&needs);
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
