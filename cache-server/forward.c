/* forward.c - see forward.h. */
#include "forward.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_client_int.h" /* lc__cache_unary: forwards a request message as is */
#include "cas.h"
#include "cluster.h"
#include "completeness.h"
#include "google/rpc/status.pb-c.h"
#include "grpc_msg.h"
#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "resource.h"
#include "trust.h"

#define MOD "forward"
#define PATH_AC "/build.bazel.remote.execution.v2.ActionCache/"
#define PATH_CAS "/build.bazel.remote.execution.v2.ContentAddressableStorage/"

/* ---- helpers ------------------------------------------------------------ */

static lc_unary_fn local_unary(const char *path)
{
    const lc_method *m = lc_svc_find(path);
    return m != NULL ? m->unary : NULL;
}

static bool is_down(int rc)
{
    return rc == -LC_UNAVAILABLE || rc == -LC_DEADLINE_EXCEEDED;
}

/* One unary call of method m (path) at peer p: self runs the local handler
 * with a forwarded ctx, others get the message over gRPC. *out is owned by
 * the caller (protobuf_c_message_free_unpacked). */
static int peer_unary(const lc_call_ctx *ctx, lc_cluster_peer *p, const char *path, int m,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rdesc,
                      ProtobufCMessage **out, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    *out = NULL;
    if (lc_cluster_peer_is_self(p)) {
        lc_call_ctx f = *ctx;
        f.forwarded = true;
        grpc_byte_buffer *bb = NULL;
        int rc = local_unary(path)(&f, req, &bb, err);
        if (rc < 0)
            return rc;
        *out = lc_grpc_unpack(rdesc, bb, err);
        grpc_byte_buffer_destroy(bb);
        return *out != NULL ? 0 : -LC_INTERNAL;
    }
    lc_cache_client *c = lc_cluster_client(env->cluster, p, "", err);
    if (c == NULL)
        return -LC_UNAVAILABLE;
    /* trust.h: the peer serves the action cache as the client would be. */
    lc_trust_caller caller;
    lc_trust_caller_of(ctx, &caller);
    char who[LC_AUTH_NAME_MAX + 16];
    lc_trust_caller_format(&caller, who, sizeof(who));
    grpc_metadata md;
    memset(&md, 0, sizeof(md));
    md.key = grpc_slice_from_static_string(LC_TRUST_CALLER_MD);
    md.value = grpc_slice_from_static_string(who); /* the call ends before who goes */
    int rc = lc__cache_unary_md(c, m, req, &md, 1, rdesc, out, err);
    LC_DEBUG(MOD, "%s at %s: %d %s", lc__cache_method_name(m), lc_cluster_peer_id(p), rc,
             rc < 0 && err != NULL ? err->msg : "");
    lc_cluster_peer_failed(p, rc);
    return rc;
}

/* Members and, per key, the mask of members owning it. */
typedef struct placement {
    lc_cluster_route m;
    const char *ids[LC_CLUSTER_MAX_PEERS];
    int repl;
} placement;

static void placement_init(lc_cluster *c, placement *pl)
{
    memset(pl, 0, sizeof(*pl));
    lc_cluster_members(c, &pl->m);
    for (size_t i = 0; i < pl->m.n; i++)
        pl->ids[i] = lc_cluster_peer_id(pl->m.p[i]);
    pl->repl = lc_cluster_replication(c);
}

static uint64_t blob_owners(const placement *pl, const lc_digest *d)
{
    uint8_t key[LC_HASH_LEN];
    size_t order[LC_CLUSTER_MAX_PEERS];
    lc_cluster_rank(pl->ids, pl->m.n, key, lc_cluster_blob_key(d, key), order);
    uint64_t mask = 0;
    for (size_t i = 0; i < pl->m.n && i < (size_t)pl->repl; i++)
        mask |= 1ull << order[i];
    return mask;
}

/* A per-key fan-out over the live members, in member order: phase 0 visits
 * each member with the keys it owns, phase 1 with those it does not own
 * (the keys no owner settled; the caller filters by its own state):
 *   for (fan f = fan_start(&pl); fan_next(&f);)
 *       ... keys i with fan_wants(&f, owners of i) go to fan_peer(&f) ... */
typedef struct fan {
    const placement *pl;
    int phase; /* 0, 1; -1 before the first step */
    size_t j;  /* member index */
} fan;

static fan fan_start(const placement *pl)
{
    return (fan){.pl = pl, .phase = -1, .j = 0};
}

static bool fan_next(fan *f)
{
    for (;;) {
        if (f->phase >= 0 && f->j + 1 < f->pl->m.n)
            f->j++;
        else if (++f->phase > 1)
            return false;
        else
            f->j = 0;
        if (f->j < f->pl->m.n && lc_cluster_peer_alive(f->pl->m.p[f->j]))
            return true;
    }
}

/* Ends the current phase (the next step starts the next one). */
static void fan_end_phase(fan *f)
{
    f->j = f->pl->m.n;
}

static bool fan_wants(const fan *f, uint64_t owners)
{
    return (((owners >> f->j) & 1) != 0) == (f->phase == 0);
}

static lc_cluster_peer *fan_peer(const fan *f)
{
    return f->pl->m.p[f->j];
}

static bool digest_msg_is(const LC_REAPI(Digest) * m, const lc_digest *d)
{
    lc_digest x;
    return m != NULL && lc_svc_digest(m, "digest", &x, NULL) == 0 && lc_digest_equal(&x, d);
}

/* missing[i] for ds[i]: asks the owners of each digest, then every other
 * live member, for those not found yet. UNAVAILABLE if nobody answered. */
static int cluster_missing(const lc_call_ctx *ctx, const char *inst, int digest_fn,
                           LC_REAPI(Digest) * *msgs, const lc_digest *ds, size_t n, bool *missing,
                           lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    placement pl;
    uint64_t *owners = calloc(n + 1, sizeof(*owners));
    size_t *idx = calloc(n + 1, sizeof(*idx));
    LC_REAPI(Digest) **sub = calloc(n + 1, sizeof(*sub));
    int rc = 0, answered = 0;
    if (owners == NULL || idx == NULL || sub == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    placement_init(env->cluster, &pl);
    for (size_t i = 0; i < n; i++) {
        missing[i] = true;
        owners[i] = blob_owners(&pl, &ds[i]);
    }
    for (fan f = fan_start(&pl); fan_next(&f);) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (missing[i] && fan_wants(&f, owners[i])) {
                idx[k] = i;
                sub[k++] = msgs[i];
            }
        if (k == 0)
            continue;
        LC_REAPI(FindMissingBlobsRequest) r = LC_REAPI_INIT(FIND_MISSING_BLOBS_REQUEST);
        r.instance_name = (char *)inst;
        r.digest_function = digest_fn;
        r.n_blob_digests = k;
        r.blob_digests = sub;
        LC_REAPI(FindMissingBlobsResponse) *resp = NULL;
        lc_err perr = {0};
        int prc = peer_unary(ctx, fan_peer(&f), PATH_CAS "FindMissingBlobs", LC__M_FIND_MISSING,
                             &r.base, &LC_REAPI_DESC(find_missing_blobs_response),
                             (ProtobufCMessage **)&resp, &perr);
        if (prc < 0) {
            LC_DEBUG(MOD, "FindMissingBlobs at %s: %s", lc_cluster_peer_id(fan_peer(&f)), perr.msg);
            continue;
        }
        answered++;
        for (size_t q = 0; q < k; q++) {
            bool miss = false;
            for (size_t t = 0; t < resp->n_missing_blob_digests && !miss; t++)
                miss = digest_msg_is(resp->missing_blob_digests[t], &ds[idx[q]]);
            if (!miss)
                missing[idx[q]] = false;
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    if (answered == 0 && n > 0)
        rc = lc_err_set(err, LC_UNAVAILABLE, "no cache replica answered FindMissingBlobs");
out:
    free(sub);
    free(idx);
    free(owners);
    return rc;
}

/* ---- ActionCache -------------------------------------------------------- */

static FILE *stream_file(lc_fwd_stream *s); /* the ByteStream section below */

/* completeness.h's fetch over the cluster: a Tree from the local store, else
 * from the first replica that has it. */
typedef struct fetch_ctx {
    const lc_call_ctx *ctx;
    const char *inst;
} fetch_ctx;

static int cluster_fetch(void *arg, const lc_digest *d, uint8_t **data, size_t *len, lc_err *err)
{
    fetch_ctx *f = arg;
    const lc_svc_env *env = f->ctx->env;
    int rc = lc_store_blob_get(env->store, d, data, len, err);
    if (rc != -LC_NOT_FOUND)
        return rc;
    lc_err_clear(err);
    lc_resource res = {.kind = LC_RESOURCE_READ, .digest = *d};
    snprintf(res.instance, sizeof(res.instance), "%s", f->inst);
    char name[LC_RESOURCE_MAX + 1];
    if (lc_resource_format(&res, name, sizeof(name)) < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "instance name too long");
    lc_fwd_stream *s = NULL;
    if ((rc = lc_fwd_read_open(f->ctx, name, d, 0, 0, &s, err)) < 0)
        return rc;
    uint8_t *buf = malloc((size_t)d->size + 1);
    size_t got = buf != NULL ? fread(buf, 1, (size_t)d->size + 1, stream_file(s)) : 0;
    lc_fwd_stream_free(&s);
    if (buf == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (got != (size_t)d->size) {
        free(buf);
        return lc_err_set(err, LC_DATA_LOSS, "a replica sent %zu bytes of a %lld-byte blob", got,
                          (long long)d->size);
    }
    *data = buf;
    *len = got;
    return 0;
}

/* Every blob ar needs (completeness.h) found at some live replica? */
static int result_complete(const lc_call_ctx *ctx, const char *inst,
                           const LC_REAPI(ActionResult) * ar, bool *complete, lc_err *err)
{
    lc_complete_needs needs = {0};
    fetch_ctx fc = {.ctx = ctx, .inst = inst};
    LC_REAPI(Digest) *ms = NULL, **mp = NULL;
    char(*hex)[LC_HASH_HEX_LEN + 1] = NULL;
    bool *missing = NULL;
    *complete = false;
    lc_err nerr = {0};
    int rc = lc_complete_needs_of(ar, cluster_fetch, &fc, &needs, &nerr);
    if (rc == -LC_FAILED_PRECONDITION || rc == -LC_INVALID_ARGUMENT) {
        LC_DEBUG(MOD, "action result not servable: %s", nerr.msg);
        rc = 0; /* a Tree that cannot be served, a malformed result: a miss */
        goto out;
    }
    if (rc < 0) {
        *err = nerr;
        goto out;
    }
    size_t n = needs.n;
    ms = calloc(n + 1, sizeof(*ms));
    mp = calloc(n + 1, sizeof(*mp));
    hex = calloc(n + 1, sizeof(*hex));
    missing = calloc(n + 1, sizeof(*missing));
    if (ms == NULL || mp == NULL || hex == NULL || missing == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        lc__cache_digest_to_msg(&needs.v[i], hex[i], &ms[i]);
        mp[i] = &ms[i];
    }
    if (n > 0 && (rc = cluster_missing(ctx, inst, 0, mp, needs.v, n, missing, err)) < 0)
        goto out;
    *complete = true;
    for (size_t i = 0; i < n; i++)
        *complete &= !missing[i];
out:
    free(missing);
    free(hex);
    free(mp);
    free(ms);
    lc_complete_needs_clear(&needs);
    return rc;
}

/* The result the owners give who (first owner that has one), or NULL;
 * *answered counts the replicas that answered. */
static LC_REAPI(ActionResult) * owners_result(const lc_call_ctx *who, const lc_cluster_route *r,
                                              const ProtobufCMessage *msg, const char *hex,
                                              int *answered)
{
    LC_REAPI(ActionResult) *ar = NULL;
    /* Owners first, then every other live peer: previous owners of a key
     * that moved in a scale-up still answer. */
    for (size_t i = 0; i < r->n && ar == NULL; i++) {
        if (!lc_cluster_peer_alive(r->p[i]))
            continue;
        lc_err perr = {0};
        int prc = peer_unary(who, r->p[i], PATH_AC "GetActionResult", LC__M_GET_ACTION_RESULT, msg,
                             &LC_REAPI_DESC(action_result), (ProtobufCMessage **)&ar, &perr);
        if (prc == 0 || prc == -LC_NOT_FOUND) {
            (*answered)++;
        } else if (!is_down(prc)) {
            LC_WARN(MOD, "GetActionResult %s at %s: %s", hex, lc_cluster_peer_id(r->p[i]), perr.msg);
        }
        if (prc < 0)
            ar = NULL;
    }
    return ar;
}

int lc_fwd_get_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                             grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(GetActionResultRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    lc_digest action;
    lc_cluster_route r;
    LC_REAPI(ActionResult) *ar = NULL;
    int rc, answered = 0;
    bool seen = false;
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0 ||
        (rc = lc_svc_digest(req->action_digest, "action_digest", &action, err)) < 0)
        return rc;
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&action, hex);
    lc_cluster_route_action(env->cluster, inst, &action, &r);
    /* trust.h: an untrusted caller gets its own result first (the owners
     * serve it without checking the blobs: that is done here); when that
     * one cannot be served, it gets the trusted one, asked for as a reader. */
    lc_trust_caller caller;
    lc_trust_caller_of(ctx, &caller);
    lc_call_ctx as_reader = *ctx;
    as_reader.role = LC_ROLE_READ;
    as_reader.principal = NULL;
    int passes = lc_trust_is_untrusted(&caller) ? 2 : 1;
    for (int pass = 0; pass < passes; pass++) {
        ar = owners_result(pass == 0 ? ctx : &as_reader, &r, msg, hex, &answered);
        if (ar == NULL)
            break; /* no own result means the trusted one was looked up already */
        seen = true;
        bool complete = false;
        if ((rc = result_complete(ctx, inst, ar, &complete, err)) < 0)
            goto out;
        if (complete) {
            lc_stats_ac(env->stats, inst, true);
            *resp = lc_svc_pack(ar);
            rc = *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        LC_REAPI_FN(action_result__free_unpacked)(ar, NULL);
        ar = NULL;
    }
    lc_stats_ac(env->stats, inst, false);
    if (seen)
        rc = lc_err_set(err, LC_NOT_FOUND,
                        "action result for %s/%lld in instance '%s' references blobs no replica "
                        "holds any more; treated as a miss",
                        hex, (long long)action.size, inst);
    else if (answered == 0)
        rc = lc_err_set(err, LC_UNAVAILABLE, "no cache replica answered for action %s/%lld", hex,
                        (long long)action.size);
    else
        rc = lc_err_set(err, LC_NOT_FOUND, "no action result for %s/%lld in instance '%s'", hex,
                        (long long)action.size, inst);
out:
    LC_REAPI_FN(action_result__free_unpacked)(ar, NULL);
    return rc;
}

/* Writes req at the owners of a key (route r): see forward.h. */
static int write_owners(const lc_call_ctx *ctx, const lc_cluster_route *r, const char *path, int m,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rdesc,
                        ProtobufCMessage **out, lc_err *err)
{
    int ok = 0, hard = 0;
    lc_err last = {0};
    *out = NULL;
    for (size_t i = 0; i < r->n; i++) {
        if (i >= r->n_owners && ok > 0)
            break; /* non-owners only stand in when no owner took it */
        if (!lc_cluster_peer_alive(r->p[i]))
            continue;
        ProtobufCMessage *o = NULL;
        lc_err perr = {0};
        int prc = peer_unary(ctx, r->p[i], path, m, req, rdesc, &o, &perr);
        if (prc == 0) {
            ok++;
            if (*out == NULL)
                *out = o;
            else
                protobuf_c_message_free_unpacked(o, NULL);
        } else if (!is_down(prc)) {
            hard = prc;
            last = perr;
        } else {
            last = perr;
        }
    }
    if (hard < 0) {
        if (*out != NULL)
            protobuf_c_message_free_unpacked(*out, NULL);
        *out = NULL;
        *err = last;
        return hard;
    }
    if (ok == 0)
        return lc_err_set(err, LC_UNAVAILABLE, "no cache replica could store it (last: %s)",
                          last.msg[0] ? last.msg : "no live replica");
    return 0;
}

int lc_fwd_update_action_result(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                                grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(UpdateActionResultRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    lc_digest action;
    lc_cluster_route r;
    int rc;
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0 ||
        (rc = lc_svc_digest(req->action_digest, "action_digest", &action, err)) < 0)
        return rc;
    if (req->action_result == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "action_result is missing");
    lc_cluster_route_action(env->cluster, inst, &action, &r);
    ProtobufCMessage *out = NULL;
    if ((rc = write_owners(ctx, &r, PATH_AC "UpdateActionResult", LC__M_UPDATE_ACTION_RESULT, msg,
                           &LC_REAPI_DESC(action_result), &out, err)) < 0)
        return rc;
    lc_stats_ac_update(env->stats, inst);
    *resp = lc_grpc_pack(out);
    protobuf_c_message_free_unpacked(out, NULL);
    return *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

/* ---- CAS ---------------------------------------------------------------- */

int lc_fwd_find_missing_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                              grpc_byte_buffer **resp, lc_err *err)
{
    const LC_REAPI(FindMissingBlobsRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    size_t n = req->n_blob_digests, k = 0;
    lc_digest *ds = calloc(n + 1, sizeof(*ds));
    bool *missing = calloc(n + 1, sizeof(*missing));
    LC_REAPI(Digest) **out = calloc(n + 1, sizeof(*out));
    int rc;
    if (ds == NULL || missing == NULL || out == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if ((rc = lc_cas_check_find_missing(req, ds, err)) < 0)
        goto out;
    if ((rc = cluster_missing(ctx, inst, req->digest_function, req->blob_digests, ds, n, missing,
                              err)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (missing[i] && !lc_digest_is_empty(&ds[i]))
            out[k++] = req->blob_digests[i];
    LC_REAPI(FindMissingBlobsResponse) r = LC_REAPI_INIT(FIND_MISSING_BLOBS_RESPONSE);
    r.n_missing_blob_digests = k;
    r.missing_blob_digests = out;
    *resp = lc_svc_pack(&r);
    rc = *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(out);
    free(missing);
    free(ds);
    return rc;
}

/* Per-blob outcome of a forwarded batch. */
typedef struct blob_state {
    lc_digest d;
    bool valid;
    uint64_t owners;
    int ok;   /* owners that stored it / 1 once read */
    int code; /* last per-blob error code */
    char msg[600];
    ProtobufCBinaryData data; /* read: borrowed from a kept response */
} blob_state;

static void blob_fail(blob_state *b, const Google__Rpc__Status *st)
{
    b->code = st ? st->code : LC_UNKNOWN;
    snprintf(b->msg, sizeof(b->msg), "%s", st && st->message ? st->message : "failed");
}

int lc_fwd_batch_update_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                              grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(BatchUpdateBlobsRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    size_t n = req->n_requests;
    placement pl;
    int rc;
    if ((rc = lc_cas_check_update(env, req, err)) < 0)
        return rc;
    blob_state *bs = calloc(n + 1, sizeof(*bs));
    LC_REAPI(BatchUpdateBlobsRequest__Request) **sub = calloc(n + 1, sizeof(*sub));
    size_t *idx = calloc(n + 1, sizeof(*idx));
    LC_REAPI(BatchUpdateBlobsResponse__Response) *rs = calloc(n + 1, sizeof(*rs)),
                                                 **rps = calloc(n + 1, sizeof(*rps));
    Google__Rpc__Status *sts = calloc(n + 1, sizeof(*sts));
    LC_REAPI(Digest) empty_digest = LC_REAPI_INIT(DIGEST);
    if (bs == NULL || sub == NULL || idx == NULL || rs == NULL || rps == NULL || sts == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    placement_init(env->cluster, &pl);
    for (size_t i = 0; i < n; i++) {
        const LC_REAPI(BatchUpdateBlobsRequest__Request) *q = req->requests[i];
        lc_err e = {0};
        bs[i].code = LC_UNAVAILABLE;
        snprintf(bs[i].msg, sizeof(bs[i].msg), "no cache replica could store it");
        if (q == NULL || lc_svc_digest(q->digest, "digest", &bs[i].d, &e) < 0) {
            bs[i].code = LC_INVALID_ARGUMENT;
            snprintf(bs[i].msg, sizeof(bs[i].msg), "requests[%zu]: %s", i,
                     q == NULL ? "empty" : e.msg);
            continue;
        }
        bs[i].valid = true;
        bs[i].owners = blob_owners(&pl, &bs[i].d);
    }
    /* Phase 0: every live owner; phase 1: stand-ins for blobs no owner took. */
    for (fan f = fan_start(&pl); fan_next(&f);) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            bool hard = bs[i].code != LC_UNAVAILABLE && bs[i].code != LC_OK;
            if (bs[i].valid && fan_wants(&f, bs[i].owners) &&
                (f.phase == 0 || (bs[i].ok == 0 && !hard))) {
                idx[k] = i;
                sub[k++] = req->requests[i];
            }
        }
        if (k == 0)
            continue;
        LC_REAPI(BatchUpdateBlobsRequest) r = LC_REAPI_INIT(BATCH_UPDATE_BLOBS_REQUEST);
        r.instance_name = (char *)inst;
        r.digest_function = req->digest_function;
        r.n_requests = k;
        r.requests = sub;
        LC_REAPI(BatchUpdateBlobsResponse) *pr = NULL;
        lc_err perr = {0};
        if (peer_unary(ctx, fan_peer(&f), PATH_CAS "BatchUpdateBlobs", LC__M_BATCH_UPDATE, &r.base,
                       &LC_REAPI_DESC(batch_update_blobs_response), (ProtobufCMessage **)&pr,
                       &perr) < 0)
            continue;
        for (size_t q = 0; q < k; q++) {
            blob_state *b = &bs[idx[q]];
            for (size_t t = 0; t < pr->n_responses; t++) {
                const LC_REAPI(BatchUpdateBlobsResponse__Response) *x = pr->responses[t];
                if (x == NULL || !digest_msg_is(x->digest, &b->d))
                    continue;
                if (x->status == NULL || x->status->code == 0) {
                    b->ok++;
                    if (b->code == LC_UNAVAILABLE)
                        b->code = LC_OK;
                } else {
                    blob_fail(b, x->status);
                }
                break;
            }
        }
        protobuf_c_message_free_unpacked(&pr->base, NULL);
        if (f.phase == 1)
            fan_end_phase(&f); /* one stand-in per pass is enough */
    }
    for (size_t i = 0; i < n; i++) {
        const LC_REAPI(BatchUpdateBlobsRequest__Request) *q = req->requests[i];
        LC_REAPI(BatchUpdateBlobsResponse__Response)
        init = LC_REAPI_INIT(BATCH_UPDATE_BLOBS_RESPONSE__RESPONSE);
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        rs[i] = init;
        sts[i] = st;
        rs[i].digest = (q != NULL && q->digest != NULL) ? q->digest : &empty_digest;
        if (bs[i].code != LC_OK) {
            sts[i].code = bs[i].code;
            sts[i].message = bs[i].msg;
        }
        rs[i].status = &sts[i];
        rps[i] = &rs[i];
    }
    uint64_t written = 0;
    for (size_t i = 0; i < n; i++)
        if (bs[i].code == LC_OK && req->requests[i] != NULL)
            written += req->requests[i]->data.len;
    lc_stats_bytes(env->stats, inst, 0, written);
    LC_REAPI(BatchUpdateBlobsResponse) o = LC_REAPI_INIT(BATCH_UPDATE_BLOBS_RESPONSE);
    o.n_responses = n;
    o.responses = rps;
    *resp = lc_svc_pack(&o);
    rc = *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(sts);
    free(rps);
    free(rs);
    free(idx);
    free(sub);
    free(bs);
    return rc;
}

int lc_fwd_batch_read_blobs(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                            grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(BatchReadBlobsRequest) *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    size_t n = req->n_digests, n_kept = 0;
    uint64_t total = 0;
    placement pl;
    int rc;
    if ((rc = lc_svc_instance(inst, err)) < 0 ||
        (rc = lc_svc_digest_function(req->digest_function, err)) < 0)
        return rc;
    blob_state *bs = calloc(n + 1, sizeof(*bs));
    LC_REAPI(Digest) **sub = calloc(n + 1, sizeof(*sub));
    size_t *idx = calloc(n + 1, sizeof(*idx));
    LC_REAPI(BatchReadBlobsResponse__Response) *rs = calloc(n + 1, sizeof(*rs)),
                                               **rps = calloc(n + 1, sizeof(*rps));
    Google__Rpc__Status *sts = calloc(n + 1, sizeof(*sts));
    LC_REAPI(BatchReadBlobsResponse) **kept = calloc(2 * LC_CLUSTER_MAX_PEERS, sizeof(*kept));
    LC_REAPI(Digest) empty_digest = LC_REAPI_INIT(DIGEST);
    if (bs == NULL || sub == NULL || idx == NULL || rs == NULL || rps == NULL || sts == NULL ||
        kept == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    placement_init(env->cluster, &pl);
    for (size_t i = 0; i < n; i++) {
        lc_err e = {0};
        char what[32];
        snprintf(what, sizeof(what), "digests[%zu]", i);
        if (lc_svc_digest(req->digests[i], what, &bs[i].d, &e) < 0) {
            bs[i].code = LC_INVALID_ARGUMENT;
            snprintf(bs[i].msg, sizeof(bs[i].msg), "%s", e.msg);
            continue;
        }
        total += (uint64_t)bs[i].d.size;
        bs[i].valid = true;
        bs[i].code = LC_NOT_FOUND;
        snprintf(bs[i].msg, sizeof(bs[i].msg), "blob is not in the CAS of any live replica");
        bs[i].owners = blob_owners(&pl, &bs[i].d);
    }
    if ((rc = lc_cas_check_read_total(env, total, err)) < 0)
        goto out;
    for (fan f = fan_start(&pl); fan_next(&f);) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (bs[i].valid && bs[i].ok == 0 && fan_wants(&f, bs[i].owners)) {
                idx[k] = i;
                sub[k++] = req->digests[i];
            }
        if (k == 0)
            continue;
        LC_REAPI(BatchReadBlobsRequest) r = LC_REAPI_INIT(BATCH_READ_BLOBS_REQUEST);
        r.instance_name = (char *)inst;
        r.digest_function = req->digest_function;
        r.n_digests = k;
        r.digests = sub;
        LC_REAPI(BatchReadBlobsResponse) *pr = NULL;
        lc_err perr = {0};
        if (peer_unary(ctx, fan_peer(&f), PATH_CAS "BatchReadBlobs", LC__M_BATCH_READ, &r.base,
                       &LC_REAPI_DESC(batch_read_blobs_response), (ProtobufCMessage **)&pr,
                       &perr) < 0)
            continue;
        kept[n_kept++] = pr; /* data is borrowed from it */
        for (size_t q = 0; q < k; q++) {
            blob_state *b = &bs[idx[q]];
            for (size_t t = 0; t < pr->n_responses; t++) {
                const LC_REAPI(BatchReadBlobsResponse__Response) *x = pr->responses[t];
                if (x == NULL || !digest_msg_is(x->digest, &b->d))
                    continue;
                if ((x->status == NULL || x->status->code == 0) &&
                    x->data.len == (size_t)b->d.size) {
                    b->ok = 1;
                    b->code = LC_OK;
                    b->data = x->data;
                } else if (x->status != NULL && x->status->code != LC_NOT_FOUND) {
                    blob_fail(b, x->status);
                }
                break;
            }
        }
    }
    uint64_t read = 0;
    for (size_t i = 0; i < n; i++) {
        LC_REAPI(BatchReadBlobsResponse__Response)
        init = LC_REAPI_INIT(BATCH_READ_BLOBS_RESPONSE__RESPONSE);
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        rs[i] = init;
        sts[i] = st;
        rs[i].digest = req->digests[i] != NULL ? req->digests[i] : &empty_digest;
        if (bs[i].code == LC_OK) {
            rs[i].data = bs[i].data;
            read += bs[i].data.len;
        } else {
            sts[i].code = bs[i].code;
            sts[i].message = bs[i].msg;
        }
        rs[i].status = &sts[i];
        rps[i] = &rs[i];
    }
    lc_stats_bytes(env->stats, inst, read, 0);
    LC_REAPI(BatchReadBlobsResponse) o = LC_REAPI_INIT(BATCH_READ_BLOBS_RESPONSE);
    o.n_responses = n;
    o.responses = rps;
    *resp = lc_svc_pack(&o);
    rc = *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    if (kept != NULL)
        for (size_t i = 0; i < n_kept; i++)
            protobuf_c_message_free_unpacked(&kept[i]->base, NULL);
    free(kept);
    free(sts);
    free(rps);
    free(rs);
    free(idx);
    free(sub);
    free(bs);
    return rc;
}

/* ---- ByteStream --------------------------------------------------------- */

struct lc_fwd_stream {
    FILE *f;         /* unlinked temp file */
    lc_hasher *h;    /* write: hash of what arrived */
    lc_resource res; /* write: the upload resource */
    int64_t offset;  /* write: bytes received; read: bytes sent */
    uint8_t *buf;    /* read: one message of data */
    /* write: resumable through this replica (forward.h) */
    const lc_svc_env *env;
    char key[LC_RESOURCE_MAX + 1]; /* canonical resource name */
    int64_t start;                 /* offset this call began at (stats) */
    bool write, done;              /* done: finish_write was handled */
    bool mirrored;                 /* a partial upload of key is in the local store */
    bool registered, busy;         /* in the parked table; a Write stream has it */
    int64_t idle_since;            /* parked: monotonic seconds */
};

static FILE *stream_file(lc_fwd_stream *s)
{
    return s->f;
}

uint64_t lc_fwd_stream_bytes(const lc_fwd_stream *s)
{
    return s != NULL ? (uint64_t)(s->offset - s->start) : 0;
}

static void stream_destroy(lc_fwd_stream *s)
{
    if (s == NULL)
        return;
    if (s->f != NULL)
        fclose(s->f);
    lc_hasher_free(&s->h);
    free(s->buf);
    free(s);
}

static int to_file(void *ctx, const void *data, size_t len, lc_err *err)
{
    if (fwrite(data, 1, len, ctx) != len)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot buffer the blob in a temp file");
    return 0;
}

/* Parked uploads: the buffers of unfinished forwarded Writes, by resource
 * name, until a Write resumes them, LC_FWD_PARK_IDLE_S pass or the bounds
 * push them out (oldest first). QueryWriteStatus is answered by
 * bytestream.c from the local store, so a parked buffer is mirrored there
 * as a partial upload of the same key (the store's own resumable-upload
 * record); the mirror is dropped with the buffer, or consumed when this
 * replica is an owner of the blob. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER; /* a buffer stopped being busy */
static lc_fwd_stream *parked[LC_FWD_PARK_MAX];
static size_t n_parked;
static int64_t parked_bytes;

static int64_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* Drops key's partial upload from the local store (finishing it short makes
 * the store discard it); a no-op when there is none. */
static void mirror_drop(const lc_svc_env *env, const char *key, const lc_digest *d)
{
    lc_upload *u = NULL;
    bool done = false;
    lc_err e = {0};
    if (lc_upload_open(env->store, key, d, &u, &done, &e) == 0 && !done &&
        lc_upload_committed(u) > 0 && lc_upload_committed(u) < d->size)
        lc_upload_finish(u, &e); /* INVALID_ARGUMENT: discarded, as wanted */
    lc_upload_free(&u);
}

/* Appends s's buffer from stored offset `from` to the open upload u. */
static int append_file(lc_upload *u, FILE *f, int64_t from, lc_err *err)
{
    uint8_t *buf = malloc(LC_CACHE_CHUNK_SIZE);
    size_t len;
    int rc = 0;
    if (buf == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (fflush(f) != 0 || fseeko(f, (off_t)from, SEEK_SET) != 0)
        rc = lc_err_set(err, LC_INTERNAL, "cannot read the buffered blob");
    while (rc == 0 && (len = fread(buf, 1, LC_CACHE_CHUNK_SIZE, f)) > 0)
        rc = lc_upload_append(u, buf, len, err);
    if (rc == 0 && ferror(f))
        rc = lc_err_set(err, LC_INTERNAL, "cannot read the buffered blob");
    free(buf);
    fseeko(f, 0, SEEK_END);
    return rc;
}

/* Makes the local store's partial upload of s->key hold s's buffer. */
static int mirror_write(lc_fwd_stream *s, lc_err *err)
{
    lc_upload *u = NULL;
    bool done = false;
    int rc = lc_upload_open(s->env->store, s->key, &s->res.digest, &u, &done, err);
    if (rc < 0 || done)
        return rc < 0 ? rc : lc_err_set(err, LC_ALREADY_EXISTS, "the blob is stored here");
    int64_t have = lc_upload_committed(u);
    if (have > s->offset) /* not a prefix of this buffer */
        rc = lc_err_set(err, LC_ABORTED, "another partial upload of '%s' is in the way", s->key);
    else if ((rc = append_file(u, s->f, have, err)) == 0)
        rc = lc_upload_flush(u, err);
    lc_upload_free(&u);
    s->mirrored = true;
    return rc;
}

/* Frees a buffer that will not be resumed, with its mirror. */
static void stream_drop(lc_fwd_stream *s)
{
    if (s != NULL && s->mirrored)
        mirror_drop(s->env, s->key, &s->res.digest);
    stream_destroy(s);
}

/* Removes parked (idle) buffers that expired, or (key != NULL) of key, into
 * out[] (*n), to be dropped outside the lock. Lock held. */
static void park_sweep(const char *key, int64_t now, lc_fwd_stream **out, size_t *n)
{
    for (size_t i = 0; i < n_parked;) {
        lc_fwd_stream *p = parked[i];
        if (!p->busy && (now - p->idle_since >= LC_FWD_PARK_IDLE_S ||
                         (key != NULL && strcmp(p->key, key) == 0))) {
            out[(*n)++] = p;
            parked_bytes -= p->offset;
            parked[i] = parked[--n_parked];
        } else {
            i++;
        }
    }
}

static void drop_all(lc_fwd_stream **gone, size_t n)
{
    for (size_t i = 0; i < n; i++)
        stream_drop(gone[i]);
}

/* Claims key's buffer for a resuming Write: *out = the buffer (now busy), or
 * NULL if there is none. A buffer still busy with the stream the client
 * abandoned is waited for a few seconds (the server has not seen the
 * cancellation yet); ABORTED if it stays busy. Expired buffers go. */
static int park_claim(const char *key, lc_fwd_stream **out, lc_err *err)
{
    lc_fwd_stream *gone[LC_FWD_PARK_MAX];
    size_t n = 0;
    int rc = 0;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LC_FWD_PARK_WAIT_S;
    *out = NULL;
    pthread_mutex_lock(&park_lock);
    park_sweep(NULL, mono_seconds(), gone, &n);
    for (;;) {
        lc_fwd_stream *p = NULL;
        for (size_t i = 0; i < n_parked && p == NULL; i++)
            if (strcmp(parked[i]->key, key) == 0)
                p = parked[i];
        if (p == NULL)
            break;
        if (!p->busy) {
            p->busy = true;
            parked_bytes -= p->offset;
            *out = p;
            break;
        }
        if (pthread_cond_timedwait(&park_cond, &park_lock, &until) != 0) {
            rc = lc_err_set(err, LC_ABORTED,
                            "another Write stream of '%s' is still running through this "
                            "replica: retry, or upload under a new uuid",
                            key);
            break;
        }
    }
    pthread_mutex_unlock(&park_lock);
    drop_all(gone, n);
    return rc;
}

/* Registers a new buffer (busy) so a resume finds it; the oldest parked
 * buffers make room. Not registered (not resumable) if all are busy. */
static void park_register(lc_fwd_stream *s)
{
    lc_fwd_stream *gone[LC_FWD_PARK_MAX];
    size_t n = 0;
    pthread_mutex_lock(&park_lock);
    park_sweep(NULL, mono_seconds(), gone, &n);
    while (n_parked >= LC_FWD_PARK_MAX) {
        size_t oldest = SIZE_MAX;
        for (size_t i = 0; i < n_parked; i++)
            if (!parked[i]->busy &&
                (oldest == SIZE_MAX || parked[i]->idle_since < parked[oldest]->idle_since))
                oldest = i;
        if (oldest == SIZE_MAX)
            break;
        gone[n++] = parked[oldest];
        parked_bytes -= parked[oldest]->offset;
        parked[oldest] = parked[--n_parked];
    }
    if (n_parked < LC_FWD_PARK_MAX) {
        s->busy = s->registered = true;
        parked[n_parked++] = s;
    }
    pthread_mutex_unlock(&park_lock);
    drop_all(gone, n);
}

/* Drops key's idle buffer, if any (its upload finished another way). */
static void park_forget(const char *key)
{
    lc_fwd_stream *gone[LC_FWD_PARK_MAX];
    size_t n = 0;
    pthread_mutex_lock(&park_lock);
    park_sweep(key, mono_seconds(), gone, &n);
    pthread_mutex_unlock(&park_lock);
    drop_all(gone, n);
}

/* The stream of a registered buffer ended: an unfinished upload is parked
 * (mirrored first, so QueryWriteStatus sees it), anything else leaves. */
static void park_release(lc_fwd_stream *s)
{
    lc_fwd_stream *gone[LC_FWD_PARK_MAX];
    size_t n = 0;
    lc_err e = {0};
    bool keep = !s->done && s->f != NULL && s->offset > 0 && s->offset <= LC_FWD_PARK_MAX_BYTES;
    if (keep && mirror_write(s, &e) < 0) {
        LC_DEBUG(MOD, "not keeping the partial upload '%s': %s", s->key, e.msg);
        keep = false;
    }
    pthread_mutex_lock(&park_lock);
    for (size_t i = 0; i < n_parked; i++)
        if (parked[i] == s) {
            parked[i] = parked[--n_parked];
            break;
        }
    if (keep) { /* back in, idle; the oldest idle ones make room */
        while (n_parked > 0 && parked_bytes + s->offset > LC_FWD_PARK_MAX_BYTES) {
            size_t oldest = SIZE_MAX;
            for (size_t i = 0; i < n_parked; i++)
                if (!parked[i]->busy &&
                    (oldest == SIZE_MAX || parked[i]->idle_since < parked[oldest]->idle_since))
                    oldest = i;
            if (oldest == SIZE_MAX)
                break;
            gone[n++] = parked[oldest];
            parked_bytes -= parked[oldest]->offset;
            parked[oldest] = parked[--n_parked];
        }
        s->busy = false;
        s->idle_since = mono_seconds();
        parked[n_parked++] = s;
        parked_bytes += s->offset;
    }
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    drop_all(gone, n);
    if (!keep)
        stream_drop(s);
}

void lc_fwd_stream_free(lc_fwd_stream **ps)
{
    lc_fwd_stream *s = ps ? *ps : NULL;
    if (s == NULL)
        return;
    *ps = NULL;
    if (s->registered)
        park_release(s);
    else
        stream_drop(s);
}

int lc_fwd_read_open(const lc_call_ctx *ctx, const char *name, const lc_digest *d, int64_t offset,
                     int64_t limit, lc_fwd_stream **out, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    lc_cluster_route r;
    int answered = 0;
    lc_fwd_stream *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->f = tmpfile()) == NULL || (s->buf = malloc(LC_CACHE_CHUNK_SIZE)) == NULL) {
        lc_fwd_stream_free(&s);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot create a temp file for the blob");
    }
    lc_cluster_route_blob(env->cluster, d, &r);
    for (size_t i = 0; i < r.n; i++) {
        if (lc_cluster_peer_is_self(r.p[i]) || !lc_cluster_peer_alive(r.p[i]))
            continue; /* self: the caller looked locally already */
        lc_err perr = {0};
        lc_cache_client *c = lc_cluster_client(env->cluster, r.p[i], "", &perr);
        if (c == NULL)
            continue;
        rewind(s->f);
        if (ftruncate(fileno(s->f), 0) != 0)
            break;
        int prc = lc_cache_client_read_raw(c, name, offset, limit, to_file, s->f, NULL, &perr);
        lc_cluster_peer_failed(r.p[i], prc);
        if (prc == 0 && fflush(s->f) == 0) {
            rewind(s->f);
            *out = s;
            return 0;
        }
        answered += !is_down(prc);
    }
    lc_fwd_stream_free(&s);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(d, hex);
    if (answered == 0)
        return lc_err_set(err, LC_UNAVAILABLE, "blob %s/%lld: no other cache replica answered", hex,
                          (long long)d->size);
    return lc_err_set(err, LC_NOT_FOUND, "blob %s/%lld is not in the CAS", hex, (long long)d->size);
}

int lc_fwd_read_next(lc_fwd_stream *s, grpc_byte_buffer **msg, lc_err *err)
{
    *msg = NULL;
    size_t len = fread(s->buf, 1, LC_CACHE_CHUNK_SIZE, s->f);
    if (len == 0)
        return ferror(s->f) ? lc_err_set(err, LC_INTERNAL, "cannot read the buffered blob") : 0;
    Google__Bytestream__ReadResponse r = GOOGLE__BYTESTREAM__READ_RESPONSE__INIT;
    r.data.data = s->buf;
    r.data.len = len;
    *msg = lc_svc_pack(&r);
    if (*msg == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    s->offset += (int64_t)len;
    return 0;
}

static grpc_byte_buffer *write_response(int64_t committed)
{
    Google__Bytestream__WriteResponse r = GOOGLE__BYTESTREAM__WRITE_RESPONSE__INIT;
    r.committed_size = committed;
    return lc_svc_pack(&r);
}

/* Stores the buffered blob in the local store, continuing a partial upload
 * of the key if one is there (the mirror of a parked buffer). */
static int store_local(const lc_svc_env *env, lc_fwd_stream *s, lc_err *err)
{
    lc_upload *u = NULL;
    bool done = false;
    int rc;
    if ((rc = lc_upload_open(env->store, s->key, &s->res.digest, &u, &done, err)) < 0 || done)
        return rc;
    int64_t have = lc_upload_committed(u);
    if (have > s->offset) { /* not ours: start over */
        lc_upload_free(&u);
        return lc_err_set(err, LC_ABORTED, "a partial upload of '%s' is in the way", s->key);
    }
    if ((rc = append_file(u, s->f, have, err)) == 0)
        rc = lc_upload_finish(u, err);
    lc_upload_free(&u);
    s->mirrored = false; /* consumed (or discarded on a mismatch) */
    return rc;
}

/* Sends the verified blob to every live owner (stand-ins if none). */
static int write_to_owners(const lc_call_ctx *ctx, lc_fwd_stream *s, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    lc_cluster_route r;
    int ok = 0, hard = 0;
    lc_err last = {0};
    lc_cluster_route_blob(env->cluster, &s->res.digest, &r);
    for (size_t i = 0; i < r.n; i++) {
        if (i >= r.n_owners && ok > 0)
            break;
        if (!lc_cluster_peer_alive(r.p[i]))
            continue;
        lc_err perr = {0};
        int prc;
        if (lc_cluster_peer_is_self(r.p[i])) {
            prc = store_local(env, s, &perr);
        } else {
            lc_cache_client *c = lc_cluster_client(env->cluster, r.p[i], s->res.instance, &perr);
            prc = c != NULL ? lc_cache_client_write_fd(c, &s->res.digest, fileno(s->f), &perr)
                            : -LC_UNAVAILABLE;
            lc_cluster_peer_failed(r.p[i], prc);
        }
        if (prc == 0)
            ok++;
        else if (!is_down(prc))
            hard = prc;
        if (prc < 0)
            last = perr;
    }
    if (hard < 0) {
        *err = last;
        return hard;
    }
    if (ok == 0)
        return lc_err_set(err, LC_UNAVAILABLE, "no cache replica could store the blob (last: %s)",
                          last.msg[0] ? last.msg : "no live replica");
    return 0;
}

/* The first message of a forwarded Write: completes at once if a replica
 * has the blob, resumes key's parked buffer, or starts a new one. Returns 1
 * with *resp when done, else 0 with *ps set. */
static int write_begin(const lc_call_ctx *ctx, lc_fwd_stream **ps, const char *name,
                       grpc_byte_buffer **resp, lc_err *err)
{
    lc_resource res;
    char key[LC_RESOURCE_MAX + 1];
    int rc;
    if (name[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "the first WriteRequest must carry resource_name "
                          "([{instance}/]uploads/{uuid}/blobs/{hash}/{size})");
    if ((rc = lc_resource_parse(name, strlen(name), LC_RESOURCE_UPLOAD, &res, err)) < 0)
        return rc;
    if (lc_resource_format(&res, key, sizeof(key)) < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s' is too long", name);
    /* Already at a replica: complete at once, as REAPI allows. */
    LC_REAPI(Digest) dm = LC_REAPI_INIT(DIGEST), *dmp = &dm;
    char hex[LC_HASH_HEX_LEN + 1];
    bool missing = true;
    lc__cache_digest_to_msg(&res.digest, hex, &dm);
    if (lc_digest_is_empty(&res.digest) ||
        (cluster_missing(ctx, res.instance, 0, &dmp, &res.digest, 1, &missing, NULL) == 0 &&
         !missing)) {
        park_forget(key);
        *resp = write_response(res.digest.size);
        return 1;
    }
    lc_fwd_stream *s = NULL;
    if ((rc = park_claim(key, &s, err)) < 0)
        return rc;
    if (s != NULL) { /* a resume: the client continues at s->offset */
        s->start = s->offset;
        *ps = s;
        return 0;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    *ps = s;
    s->env = ctx->env;
    s->res = res;
    s->write = true;
    memcpy(s->key, key, sizeof(key));
    mirror_drop(s->env, key, &res.digest); /* left from a buffer that expired */
    if ((s->f = tmpfile()) == NULL || (s->h = lc_hasher_new()) == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot create a temp file for the blob");
    park_register(s);
    return 0;
}

int lc_fwd_write(const lc_call_ctx *ctx, lc_fwd_stream **ps,
                 const Google__Bytestream__WriteRequest *req, grpc_byte_buffer **resp, lc_err *err)
{
    int rc;
    if (*ps == NULL &&
        (rc = write_begin(ctx, ps, req->resource_name ? req->resource_name : "", resp, err)) != 0)
        return rc;
    lc_fwd_stream *s = *ps;
    if (s->f == NULL) /* write_begin failed midway */
        return lc_err_set(err, LC_INTERNAL, "the upload buffer is gone");
    if (req->write_offset != s->offset)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "write_offset %lld for '%s' does not continue the upload: the next byte "
                          "expected is %lld (QueryWriteStatus tells where to resume)",
                          (long long)req->write_offset, s->key, (long long)s->offset);
    if (s->offset + (int64_t)req->data.len > s->res.digest.size)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "more data than the digest's size %lld",
                          (long long)s->res.digest.size);
    if (req->data.len > 0) {
        if (to_file(s->f, req->data.data, req->data.len, err) < 0)
            return -LC_RESOURCE_EXHAUSTED;
        lc_hasher_update(s->h, req->data.data, req->data.len);
        s->offset += (int64_t)req->data.len;
    }
    if (!req->finish_write)
        return 0;
    s->done = true;
    lc_digest got;
    lc_hasher_final(s->h, &got);
    got.size = s->offset;
    if (!lc_digest_equal(&got, &s->res.digest)) {
        char want[LC_HASH_HEX_LEN + 1], have[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(&s->res.digest, want);
        lc_digest_hex(&got, have);
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "uploaded data is %s/%lld but the resource name says %s/%lld", have,
                        (long long)got.size, want, (long long)s->res.digest.size);
    } else if (fflush(s->f) != 0) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot buffer the blob in a temp file");
    } else {
        rc = write_to_owners(ctx, s, err);
    }
    if (s->mirrored) { /* not consumed by store_local: this replica is no owner */
        mirror_drop(s->env, s->key, &s->res.digest);
        s->mirrored = false;
    }
    if (rc < 0)
        return rc;
    *resp = write_response(s->offset);
    return 1;
}

/* ---- Admin fan-out ------------------------------------------------------ */

#define PATH_ADMIN "/layercache.v1.Admin/"

static void stats_add(Layercache__V1__InstanceStats *to, const Layercache__V1__InstanceStats *x)
{
    to->ac_hits += x->ac_hits;
    to->ac_misses += x->ac_misses;
    to->ac_updates += x->ac_updates;
    to->bytes_read += x->bytes_read;
    to->bytes_written += x->bytes_written;
    to->entries += x->entries;
    to->build_seconds_saved += x->build_seconds_saved;
    to->evictions += x->evictions;
    to->entry_bytes += x->entry_bytes;
}

int lc_fwd_admin_get_stats(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                           grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    lc_cluster_route m;
    Layercache__V1__GetStatsResponse *got[LC_CLUSTER_MAX_PEERS] = {0};
    Layercache__V1__InstanceStats *rows = NULL, **row_ptrs = NULL;
    size_t n_got = 0, n_rows = 0, cap = 0, self_idx = SIZE_MAX;
    int rc = 0;
    lc_cluster_members(env->cluster, &m);
    for (size_t j = 0; j < m.n; j++) {
        if (!lc_cluster_peer_alive(m.p[j]))
            continue;
        lc_err perr = {0};
        Layercache__V1__GetStatsResponse *r = NULL;
        int prc = peer_unary(ctx, m.p[j], PATH_ADMIN "GetStats", LC__M_ADMIN_GET_STATS, msg,
                             &layercache__v1__get_stats_response__descriptor,
                             (ProtobufCMessage **)&r, &perr);
        if (prc < 0 && lc_cluster_peer_is_self(m.p[j])) {
            *err = perr;
            rc = prc;
            goto out;
        }
        if (prc == 0) {
            if (lc_cluster_peer_is_self(m.p[j]))
                self_idx = n_got;
            got[n_got++] = r;
            cap += r->n_instances;
        }
    }
    rows = calloc(cap + 1, sizeof(*rows));
    row_ptrs = calloc(cap + 1, sizeof(*row_ptrs));
    if (rows == NULL || row_ptrs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* Counts add up over the replicas; entries and blobs are stored copies
     * (about --replication per key). uptime, version and methods are this
     * replica's. */
    Layercache__V1__InstanceStats total = LAYERCACHE__V1__INSTANCE_STATS__INIT;
    Layercache__V1__GetStatsResponse o = LAYERCACHE__V1__GET_STATS_RESPONSE__INIT;
    for (size_t g = 0; g < n_got; g++) {
        const Layercache__V1__GetStatsResponse *r = got[g];
        if (r->total != NULL)
            stats_add(&total, r->total);
        for (size_t i = 0; i < r->n_instances; i++) {
            const Layercache__V1__InstanceStats *x = r->instances[i];
            const char *name = x->instance_name ? x->instance_name : "";
            size_t k = 0;
            while (k < n_rows && strcmp(rows[k].instance_name, name) != 0)
                k++;
            if (k == n_rows) {
                Layercache__V1__InstanceStats init = LAYERCACHE__V1__INSTANCE_STATS__INIT;
                rows[n_rows] = init;
                rows[n_rows].instance_name = (char *)name;
                row_ptrs[n_rows] = &rows[n_rows];
                n_rows++;
            }
            stats_add(&rows[k], x);
        }
        o.blobs += r->blobs;
        o.bytes_stored += r->bytes_stored;
        o.max_bytes += r->max_bytes;
        o.blobs_evicted += r->blobs_evicted;
        o.blob_bytes_evicted += r->blob_bytes_evicted;
    }
    const Layercache__V1__GetStatsResponse *self = self_idx < n_got ? got[self_idx] : NULL;
    if (self != NULL) {
        o.uptime_seconds = self->uptime_seconds;
        o.version = self->version;
        o.n_methods = self->n_methods;
        o.methods = self->methods;
    }
    total.instance_name = (char *)"";
    o.total = &total;
    o.n_instances = n_rows;
    o.instances = row_ptrs;
    *resp = lc_grpc_pack(&o.base);
    rc = *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(row_ptrs);
    free(rows);
    for (size_t g = 0; g < n_got; g++)
        protobuf_c_message_free_unpacked(&got[g]->base, NULL);
    return rc;
}

int lc_fwd_admin_purge(const lc_call_ctx *ctx, const ProtobufCMessage *msg, grpc_byte_buffer **resp,
                       lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    lc_cluster_route m;
    Layercache__V1__PurgeResponse *got[LC_CLUSTER_MAX_PEERS] = {0};
    Layercache__V1__PurgedAction **list = NULL;
    size_t n_got = 0, n_list = 0, cap = 0, n_down = 0;
    char down[256] = "";
    int rc = 0;
    lc_cluster_members(env->cluster, &m);
    for (size_t j = 0; j < m.n; j++) {
        lc_err perr = {0};
        Layercache__V1__PurgeResponse *r = NULL;
        int prc = lc_cluster_peer_alive(m.p[j])
                      ? peer_unary(ctx, m.p[j], PATH_ADMIN "Purge", LC__M_ADMIN_PURGE, msg,
                                   &layercache__v1__purge_response__descriptor,
                                   (ProtobufCMessage **)&r, &perr)
                      : -LC_UNAVAILABLE;
        if (prc == 0) {
            got[n_got++] = r;
            cap += r->n_removed;
            continue;
        }
        if (!is_down(prc)) { /* a bad request: every replica refuses it alike */
            *err = perr;
            rc = prc;
            goto out;
        }
        if (n_down++ == 0)
            snprintf(down, sizeof(down), "%s", lc_cluster_peer_id(m.p[j]));
    }
    list = calloc(cap + 1, sizeof(*list));
    if (list == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* An entry purged at several owners is listed once. */
    Layercache__V1__PurgeResponse o = LAYERCACHE__V1__PURGE_RESPONSE__INIT;
    for (size_t g = 0; g < n_got; g++) {
        const Layercache__V1__PurgeResponse *r = got[g];
        for (size_t i = 0; i < r->n_removed; i++) {
            Layercache__V1__PurgedAction *x = r->removed[i];
            bool dup = false;
            for (size_t k = 0; k < n_list && !dup; k++)
                dup = strcmp(list[k]->instance_name ? list[k]->instance_name : "",
                             x->instance_name ? x->instance_name : "") == 0 &&
                      list[k]->action_digest != NULL && x->action_digest != NULL &&
                      strcmp(list[k]->action_digest->hash, x->action_digest->hash) == 0;
            if (!dup)
                list[n_list++] = x;
        }
        o.blobs_removed += r->blobs_removed;
        o.bytes_removed += r->bytes_removed;
        o.truncated |= r->truncated;
    }
    o.n_removed = n_list;
    o.removed = list;
    /* Distinct entries when every list is whole; else the copies removed. */
    if (!o.truncated) {
        o.entries_removed = n_list;
    } else {
        for (size_t g = 0; g < n_got; g++)
            o.entries_removed += got[g]->entries_removed;
    }
    if (n_down > 0 && !((const Layercache__V1__PurgeRequest *)msg)->dry_run) {
        rc = lc_err_set(err, LC_UNAVAILABLE,
                        "purged at %zu of %zu replicas; %zu unreachable (first: %s) keep their "
                        "copies: repeat the purge when they are back",
                        n_got, m.n, n_down, down);
        goto out;
    }
    *resp = lc_grpc_pack(&o.base);
    rc = *resp != NULL ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(list);
    for (size_t g = 0; g < n_got; g++)
        protobuf_c_message_free_unpacked(&got[g]->base, NULL);
    return rc;
}
