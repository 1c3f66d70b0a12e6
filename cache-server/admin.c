/* admin.c - layercache.v1.Admin: GetStats from the stats counters and the
 * store's totals. Purge and ListActions answer UNIMPLEMENTED for now. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layercache/v1/admin.pb-c.h"
#include "services.h"

#ifndef LC_VERSION
#define LC_VERSION "0.1.0"
#endif

static void fill_instance(Layercache__V1__InstanceStats *o, const lc_stats_instance *in)
{
    Layercache__V1__InstanceStats init = LAYERCACHE__V1__INSTANCE_STATS__INIT;
    *o = init;
    o->instance_name = (char *)in->name;
    o->ac_hits = in->ac_hits;
    o->ac_misses = in->ac_misses;
    o->ac_updates = in->ac_updates;
    o->bytes_read = in->bytes_read;
    o->bytes_written = in->bytes_written;
}

static int get_stats(const lc_call_ctx *ctx, const ProtobufCMessage *msg, grpc_byte_buffer **resp,
                     lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const Layercache__V1__GetStatsRequest *req = (const void *)msg;
    const char *only = req->instance_name ? req->instance_name : "";
    lc_stats_snapshot snap;
    Layercache__V1__InstanceStats *insts = NULL, **inst_ptrs = NULL;
    Layercache__V1__MethodStats *meths = NULL, **meth_ptrs = NULL;
    int rc;

    if ((rc = lc_svc_instance(only, err)) < 0)
        return rc;
    if (lc_stats_snapshot_take(env->stats, &snap) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    insts = calloc(snap.n_instances + 1, sizeof(*insts));
    inst_ptrs = calloc(snap.n_instances + 1, sizeof(*inst_ptrs));
    meths = calloc(snap.n_methods + 1, sizeof(*meths));
    meth_ptrs = calloc(snap.n_methods + 1, sizeof(*meth_ptrs));
    if (insts == NULL || inst_ptrs == NULL || meths == NULL || meth_ptrs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < snap.n_instances; i++) {
        if (only[0] != '\0' && strcmp(only, snap.instances[i].name) != 0)
            continue;
        fill_instance(&insts[n], &snap.instances[i]);
        inst_ptrs[n] = &insts[n];
        n++;
    }
    for (size_t i = 0; i < snap.n_methods; i++) {
        Layercache__V1__MethodStats init = LAYERCACHE__V1__METHOD_STATS__INIT;
        meths[i] = init;
        meths[i].method = (char *)snap.methods[i].name;
        meths[i].calls = snap.methods[i].calls;
        meths[i].errors = snap.methods[i].errors;
        meth_ptrs[i] = &meths[i];
    }
    lc_store_totals totals = {0};
    lc_store_get_totals(env->store, &totals);
    Layercache__V1__InstanceStats total;
    fill_instance(&total, &snap.total);
    total.entries = totals.ac_entries;

    Layercache__V1__GetStatsResponse r = LAYERCACHE__V1__GET_STATS_RESPONSE__INIT;
    r.total = &total;
    r.n_instances = n;
    r.instances = inst_ptrs;
    r.n_methods = snap.n_methods;
    r.methods = meth_ptrs;
    r.blobs = totals.blobs;
    r.bytes_stored = totals.blob_bytes;
    r.max_bytes = env->max_bytes > 0 ? (uint64_t)env->max_bytes : 0;
    r.uptime_seconds = lc_stats_uptime(env->stats);
    r.version = LC_VERSION;
    *resp = lc_svc_pack(&r);
    rc = 0;
out:
    free(meth_ptrs);
    free(meths);
    free(inst_ptrs);
    free(insts);
    lc_stats_snapshot_free(&snap);
    return rc;
}

static int unimplemented(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                         grpc_byte_buffer **resp, lc_err *err)
{
    (void)msg;
    (void)resp;
    return lc_err_set(err, LC_UNIMPLEMENTED, "%s is not implemented yet", ctx->method);
}

const lc_method lc_admin_methods[] = {
    {.path = "/layercache.v1.Admin/GetStats",
     .kind = LC_METHOD_UNARY,
     .request = &layercache__v1__get_stats_request__descriptor,
     .unary = get_stats},
    {.path = "/layercache.v1.Admin/Purge",
     .kind = LC_METHOD_UNARY,
     .request = &layercache__v1__purge_request__descriptor,
     .unary = unimplemented},
    {.path = "/layercache.v1.Admin/ListActions",
     .kind = LC_METHOD_UNARY,
     .request = &layercache__v1__list_actions_request__descriptor,
     .unary = unimplemented},
};
const size_t lc_admin_n_methods = sizeof(lc_admin_methods) / sizeof(lc_admin_methods[0]);
