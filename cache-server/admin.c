/* admin.c - layercache.v1.Admin: GetStats, ListActions and Purge.
 *
 * Entries are read with one action cache scan per call (admin calls are
 * rare; the data plane never scans). An entry's description is its step's
 * instruction: the Action blob (its digest is the key) names a Command blob
 * in the CAS; a layercache step's Command is ["layercache-step",
 * "<instruction>"], any other Command (Bazel) shows its arguments joined.
 *
 * Cascade (Purge.cascade): a layercache step result lists the whole image
 * state after the step (state.json, layers/0..n-1), so a state built on top
 * of a purged state extends it. An entry D descends from a purged entry P
 * when both are layercache step results of the same instance, P's layer list
 * is a prefix of D's, and P's image history (config.history in state.json,
 * one record per step, layer or not) is a proper prefix of D's; when a state
 * document cannot be read, D must have more layers than P instead. A P with
 * neither layers nor history (a bare FROM scratch) cascades to nothing.
 *
 * Purge removes action cache entries; blobs are left to eviction, except
 * with `all`, which empties the CAS too. */
#include "admin.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "completeness.h"
#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "forward.h" /* cluster mode */
#include "store_ac.h"
#include "trust.h"

#define MOD "admin"

#ifndef LC_VERSION
#define LC_VERSION "0.1.0"
#endif

#define STEP_TOOL "layercache-step" /* build-worker/keys/action.h */
#define MAX_DESC_BLOB (1u << 20)    /* Action/Command blobs read for a description */
#define MAX_DESC_LEN 1024           /* joined Command arguments shown */
#define MAX_STATE_BLOB (16u << 20)  /* state documents read for cascade */
#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define PURGE_LIST_MAX 1000 /* entries listed in a PurgeResponse */
#define REQUEST_METADATA_KEY "build.bazel.remote.execution.v2.requestmetadata-bin"

/* ---- writer and build time (admin.h) ---------------------------------------- */

/* Access control hook: writer = authenticated name if any. Returns the name
 * the caller authenticated as (token name), or NULL while the server has no
 * access control. */
static const char *authenticated_name(const lc_call_ctx *ctx)
{
    return ctx != NULL ? ctx->principal : NULL; /* auth.h: filled by server.c */
}

static const grpc_metadata *find_md(const lc_call_ctx *ctx, const char *key)
{
    if (ctx == NULL || ctx->metadata == NULL)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < ctx->metadata->count; i++) {
        const grpc_metadata *m = &ctx->metadata->metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == klen &&
            memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) == 0)
            return m;
    }
    return NULL;
}

/* Copies at most cap-1 printable bytes of s[0..len) into out. */
static void copy_printable(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    out[n] = '\0';
}

void lc_admin_writer(const lc_call_ctx *ctx, const LC_REAPI(ExecutedActionMetadata) * meta,
                     char *out, size_t cap)
{
    out[0] = '\0';
    const char *name = authenticated_name(ctx);
    if (name != NULL && name[0] != '\0') {
        copy_printable(out, cap, name, strlen(name));
        return;
    }
    if (meta != NULL && meta->worker != NULL && meta->worker[0] != '\0') {
        copy_printable(out, cap, meta->worker, strlen(meta->worker));
        return;
    }
    /* Bazel and other REAPI clients name themselves in RequestMetadata. */
    const grpc_metadata *m = find_md(ctx, REQUEST_METADATA_KEY);
    if (m != NULL) {
        LC_REAPI(RequestMetadata) *rm = LC_REAPI_FN(request_metadata__unpack)(
            NULL, GRPC_SLICE_LENGTH(m->value), GRPC_SLICE_START_PTR(m->value));
        if (rm != NULL && rm->tool_details != NULL && rm->tool_details->tool_name != NULL &&
            rm->tool_details->tool_name[0] != '\0') {
            char tool[256];
            const char *ver = rm->tool_details->tool_version ? rm->tool_details->tool_version : "";
            snprintf(tool, sizeof(tool), "%s%s%s", rm->tool_details->tool_name, ver[0] ? "/" : "",
                     ver);
            copy_printable(out, cap, tool, strlen(tool));
        }
        if (rm != NULL)
            LC_REAPI_FN(request_metadata__free_unpacked)(rm, NULL);
        if (out[0] != '\0')
            return;
    }
    m = find_md(ctx, "user-agent");
    if (m != NULL)
        copy_printable(out, cap, (const char *)GRPC_SLICE_START_PTR(m->value),
                       GRPC_SLICE_LENGTH(m->value));
}

double lc_admin_exec_seconds(const LC_REAPI(ActionResult) * ar)
{
    const LC_REAPI(ExecutedActionMetadata) *m = ar ? ar->execution_metadata : NULL;
    if (m == NULL || m->execution_start_timestamp == NULL ||
        m->execution_completed_timestamp == NULL)
        return 0;
    double s =
        (double)(m->execution_completed_timestamp->seconds -
                 m->execution_start_timestamp->seconds) +
        (m->execution_completed_timestamp->nanos - m->execution_start_timestamp->nanos) / 1e9;
    return s > 0 ? s : 0;
}

/* ---- entries ------------------------------------------------------------------ */

typedef struct entry {
    char *instance;
    lc_digest action;
    char *writer;
    /* trust.h: untrusted entries are kept per writer (store_ac.h) */
    Layercache__V1__Trust trust;
    char **promoted_from;
    size_t n_promoted_from;
    int64_t created, last_hit;
    uint64_t hits, size;
    /* layercache step results, read only for cascade */
    bool step;
    lc_digest *layers;
    size_t nlayers;
    lc_digest state;
    json_t *history; /* loaded on demand; NULL = not loaded or unreadable */
    bool history_loaded;
    /* purge */
    bool matched, cascaded;
} entry;

typedef struct entries {
    entry *v;
    size_t n, cap;
    bool want_layers;
    int rc;
    lc_err *err;
} entries;

/* The untrusted writer of e, or NULL for an entry everyone sees. */
static const char *untrusted_writer(const entry *e)
{
    return e->trust == LAYERCACHE__V1__TRUST__UNTRUSTED ? e->writer : NULL;
}

/* Frees what one entry holds. */
static void entry_clear(entry *e)
{
    for (size_t k = 0; k < e->n_promoted_from; k++)
        free(e->promoted_from[k]);
    free(e->promoted_from);
    free(e->instance);
    free(e->writer);
    free(e->layers);
    if (e->history != NULL)
        json_decref(e->history);
    memset(e, 0, sizeof(*e));
}

static void entries_clear(entries *es)
{
    for (size_t i = 0; i < es->n; i++)
        entry_clear(&es->v[i]);
    free(es->v);
    es->v = NULL;
    es->n = es->cap = 0;
}

/* The layers/N and state.json outputs of a layercache step result. */
static int read_layers(const LC_REAPI(ActionResult) * ar, entry *e)
{
    bool state = false;
    size_t n = 0;
    for (size_t i = 0; i < ar->n_output_files; i++) {
        const char *p = ar->output_files[i]->path;
        if (p != NULL && strncmp(p, "layers/", 7) == 0)
            n++;
    }
    e->layers = calloc(n + 1, sizeof(*e->layers));
    if (e->layers == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    size_t found = 0;
    for (size_t i = 0; i < ar->n_output_files; i++) {
        const LC_REAPI(OutputFile) *f = ar->output_files[i];
        const LC_REAPI(Digest) *d = f->digest;
        if (f->path == NULL || d == NULL || d->hash == NULL)
            continue;
        lc_digest dg;
        if (lc_digest_parse(d->hash, strlen(d->hash), d->size_bytes, &dg, NULL) != 0)
            continue;
        if (strcmp(f->path, "state.json") == 0) {
            e->state = dg;
            state = true;
        } else if (strncmp(f->path, "layers/", 7) == 0) {
            char *end = NULL;
            unsigned long idx = strtoul(f->path + 7, &end, 10);
            if (end != f->path + 7 && *end == '\0' && idx < n) {
                e->layers[idx] = dg;
                found++;
            }
        }
    }
    /* Anything else (gaps, no state document) is not a step result we know. */
    e->step = state && found == n;
    e->nlayers = e->step ? n : 0;
    return 0;
}

static int visit(void *ctx, const char *instance, const lc_digest *action, const uint8_t *value,
                 size_t len);

/* store_ac.h: an untrusted entry, whatever its record says, is its writer's. */
static int visit_untrusted(void *ctx, const char *instance, const lc_digest *action,
                           const char *writer, const uint8_t *value, size_t len)
{
    entries *es = ctx;
    size_t before = es->n;
    int stop = visit(ctx, instance, action, value, len);
    if (es->n > before) {
        entry *e = &es->v[es->n - 1];
        e->trust = LAYERCACHE__V1__TRUST__UNTRUSTED;
        char *w = strdup(writer);
        if (w == NULL) {
            es->rc = lc_err_set(es->err, LC_RESOURCE_EXHAUSTED, "out of memory");
            return 1;
        }
        free(e->writer);
        e->writer = w;
    }
    return stop;
}

static int visit(void *ctx, const char *instance, const lc_digest *action, const uint8_t *value,
                 size_t len)
{
    entries *es = ctx;
    Layercache__V1__StoredActionResult *s =
        layercache__v1__stored_action_result__unpack(NULL, len, value);
    if (s == NULL)
        return 0; /* unreadable: a miss for clients, invisible here */
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        entry *v = realloc(es->v, cap * sizeof(*v));
        if (v == NULL)
            goto oom;
        es->v = v;
        es->cap = cap;
    }
    entry *e = &es->v[es->n];
    memset(e, 0, sizeof(*e));
    e->instance = strdup(instance);
    e->writer = strdup(s->writer ? s->writer : "");
    if (e->instance == NULL || e->writer == NULL) {
        free(e->instance);
        free(e->writer);
        goto oom;
    }
    e->action = *action;
    e->created = s->created_unix;
    e->last_hit = s->last_hit_unix;
    e->hits = s->hit_count;
    e->size = s->size_bytes;
    /* A trusted key holds TRUSTED or PROMOTED; never UNTRUSTED. */
    e->trust = s->trust == LAYERCACHE__V1__TRUST__PROMOTED ? LAYERCACHE__V1__TRUST__PROMOTED
                                                           : LAYERCACHE__V1__TRUST__TRUSTED;
    es->n++;
    if (s->n_promoted_from > 0) {
        e->promoted_from = calloc(s->n_promoted_from, sizeof(*e->promoted_from));
        if (e->promoted_from == NULL)
            goto oom;
        for (size_t k = 0; k < s->n_promoted_from; k++) {
            if ((e->promoted_from[k] = strdup(s->promoted_from[k] ? s->promoted_from[k] : "")) ==
                NULL)
                goto oom;
            e->n_promoted_from++;
        }
    }
    if (es->want_layers) {
        LC_REAPI(ActionResult) *ar =
            LC_REAPI_FN(action_result__unpack)(NULL, s->action_result.len, s->action_result.data);
        int rc = ar ? read_layers(ar, e) : 0;
        if (ar != NULL)
            LC_REAPI_FN(action_result__free_unpacked)(ar, NULL);
        if (rc < 0)
            goto oom;
    }
    layercache__v1__stored_action_result__free_unpacked(s, NULL);
    return 0;
oom:
    layercache__v1__stored_action_result__free_unpacked(s, NULL);
    es->rc = lc_err_set(es->err, LC_RESOURCE_EXHAUSTED, "out of memory listing the action cache");
    return 1;
}

/* Every entry of instance (NULL = all instances), the untrusted writers'
 * ones included, into es. */
static int scan(lc_store *store, const char *instance, bool want_layers, entries *es, lc_err *err)
{
    memset(es, 0, sizeof(*es));
    es->want_layers = want_layers;
    es->err = err;
    int rc = lc_store_ac_scan(store, instance, visit, es, err);
    if (rc == 0)
        rc = es->rc;
    if (rc == 0)
        rc = lc_store_ac_untrusted_scan(store, instance, visit_untrusted, es, err);
    if (rc == 0)
        rc = es->rc;
    if (rc < 0)
        entries_clear(es);
    return rc;
}

/* instance_name "" means every instance unless default_only. */
static const char *instance_filter(const char *name, bool default_only)
{
    if (name != NULL && name[0] != '\0')
        return name;
    return default_only ? "" : NULL;
}

/* ---- descriptions ------------------------------------------------------------- */

static char *join_args(const LC_REAPI(Command) * cmd)
{
    char *out = malloc(MAX_DESC_LEN + 4);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < cmd->n_arguments && n < MAX_DESC_LEN; i++) {
        const char *a = cmd->arguments[i] ? cmd->arguments[i] : "";
        if (i > 0)
            out[n++] = ' ';
        size_t al = strlen(a);
        size_t take = al < MAX_DESC_LEN - n ? al : MAX_DESC_LEN - n;
        memcpy(out + n, a, take);
        n += take;
    }
    if (n >= MAX_DESC_LEN)
        memcpy(out + n, "...", 3), n += 3;
    out[n] = '\0';
    return out;
}

/* A blob parsed as desc, or NULL (absent, too large, not that message). */
static ProtobufCMessage *read_msg(lc_store *s, const lc_digest *d,
                                  const ProtobufCMessageDescriptor *desc)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (d->size > (int64_t)MAX_DESC_BLOB || lc_store_blob_get(s, d, &data, &len, NULL) != 0)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    free(data);
    return m;
}

char *lc_admin_describe(lc_store *s, const lc_digest *action)
{
    char *text = NULL;
    LC_REAPI(Action) *a = (void *)read_msg(s, action, &LC_REAPI_DESC(action));
    LC_REAPI(Command) *cmd = NULL;
    lc_digest cd;
    if (a != NULL && a->command_digest != NULL && a->command_digest->hash != NULL &&
        lc_digest_parse(a->command_digest->hash, strlen(a->command_digest->hash),
                        a->command_digest->size_bytes, &cd, NULL) == 0)
        cmd = (void *)read_msg(s, &cd, &LC_REAPI_DESC(command));
    if (cmd == NULL)
        text = strdup("");
    else if (cmd->n_arguments == 2 && cmd->arguments[0] != NULL &&
             strcmp(cmd->arguments[0], STEP_TOOL) == 0)
        text = strdup(cmd->arguments[1] ? cmd->arguments[1] : "");
    else
        text = join_args(cmd);
    if (cmd != NULL)
        protobuf_c_message_free_unpacked(&cmd->base, NULL);
    if (a != NULL)
        protobuf_c_message_free_unpacked(&a->base, NULL);
    return text;
}

/* ---- wire helpers -------------------------------------------------------------- */

typedef struct wire_digest {
    LC_REAPI(Digest) msg;
    char hex[LC_HASH_HEX_LEN + 1];
} wire_digest;

static void to_wire(const lc_digest *d, wire_digest *w)
{
    LC_REAPI_FN(digest__init)(&w->msg);
    lc_digest_hex(d, w->hex);
    w->msg.hash = w->hex;
    w->msg.size_bytes = d->size;
}

/* ---- GetStats ------------------------------------------------------------------ */

typedef struct inst_out {
    Layercache__V1__InstanceStats msg;
    char *name;
} inst_out;

static void fill_instance(Layercache__V1__InstanceStats *o, const lc_stats_instance *in)
{
    o->ac_hits = in->ac_hits;
    o->ac_misses = in->ac_misses;
    o->ac_updates = in->ac_updates;
    o->bytes_read = in->bytes_read;
    o->bytes_written = in->bytes_written;
    o->build_seconds_saved = in->build_seconds_saved;
    o->evictions = in->evictions;
}

/* The row of name in outs (adding one), or NULL when out of memory. */
static inst_out *row_of(inst_out **outs, size_t *n, size_t *cap, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*outs)[i].name, name) == 0)
            return &(*outs)[i];
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        inst_out *v = realloc(*outs, c * sizeof(*v));
        if (v == NULL)
            return NULL;
        *outs = v;
        *cap = c;
    }
    inst_out *r = &(*outs)[*n];
    Layercache__V1__InstanceStats init = LAYERCACHE__V1__INSTANCE_STATS__INIT;
    r->msg = init;
    r->name = strdup(name);
    if (r->name == NULL)
        return NULL;
    r->msg.instance_name = r->name;
    (*n)++;
    return r;
}

static int get_stats(const lc_call_ctx *ctx, const ProtobufCMessage *msg, grpc_byte_buffer **resp,
                     lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const Layercache__V1__GetStatsRequest *req = (const void *)msg;
    const char *only = req->instance_name ? req->instance_name : "";
    lc_stats_snapshot snap;
    entries es = {0};
    inst_out *rows = NULL;
    size_t n_rows = 0, cap_rows = 0;
    Layercache__V1__InstanceStats **inst_ptrs = NULL;
    Layercache__V1__MethodStats *meths = NULL, **meth_ptrs = NULL;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: every replica's numbers (forward.c) */
        return lc_fwd_admin_get_stats(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(only, err)) < 0)
        return rc;
    if (lc_stats_snapshot_take(env->stats, &snap) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if ((rc = scan(env->store, only[0] ? only : NULL, false, &es, err)) < 0)
        goto out;
    Layercache__V1__InstanceStats total = LAYERCACHE__V1__INSTANCE_STATS__INIT;
    fill_instance(&total, &snap.total);
    for (size_t i = 0; i < snap.n_instances; i++) {
        if (only[0] != '\0' && strcmp(only, snap.instances[i].name) != 0)
            continue;
        inst_out *r = row_of(&rows, &n_rows, &cap_rows, snap.instances[i].name);
        if (r == NULL)
            goto oom;
        fill_instance(&r->msg, &snap.instances[i]);
    }
    /* Instances with entries but no traffic since start appear too. */
    for (size_t i = 0; i < es.n; i++) {
        inst_out *r = row_of(&rows, &n_rows, &cap_rows, es.v[i].instance);
        if (r == NULL)
            goto oom;
        r->msg.entries++;
        r->msg.entry_bytes += es.v[i].size;
        if (only[0] == '\0') {
            total.entries++;
            total.entry_bytes += es.v[i].size;
        }
    }
    inst_ptrs = calloc(n_rows + 1, sizeof(*inst_ptrs));
    meths = calloc(snap.n_methods + 1, sizeof(*meths));
    meth_ptrs = calloc(snap.n_methods + 1, sizeof(*meth_ptrs));
    if (inst_ptrs == NULL || meths == NULL || meth_ptrs == NULL)
        goto oom;
    for (size_t i = 0; i < n_rows; i++)
        inst_ptrs[i] = &rows[i].msg;
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
    if (only[0] != '\0') {
        /* The total of one instance is that instance (zero if unknown). */
        Layercache__V1__InstanceStats zero = LAYERCACHE__V1__INSTANCE_STATS__INIT;
        total = n_rows == 1 ? rows[0].msg : zero;
        total.instance_name = "";
    } else {
        total.entries = totals.ac_entries;
    }

    Layercache__V1__GetStatsResponse r = LAYERCACHE__V1__GET_STATS_RESPONSE__INIT;
    r.total = &total;
    r.n_instances = n_rows;
    r.instances = inst_ptrs;
    r.n_methods = snap.n_methods;
    r.methods = meth_ptrs;
    r.blobs = totals.blobs;
    r.bytes_stored = totals.blob_bytes;
    r.max_bytes = env->max_bytes > 0 ? (uint64_t)env->max_bytes : 0;
    r.uptime_seconds = lc_stats_uptime(env->stats);
    r.version = LC_VERSION;
    r.blobs_evicted = snap.blobs_evicted;
    r.blob_bytes_evicted = snap.blob_bytes_evicted;
    *resp = lc_svc_pack(&r);
    rc = *resp ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
oom:
    rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(meth_ptrs);
    free(meths);
    free(inst_ptrs);
    for (size_t i = 0; i < n_rows; i++)
        free(rows[i].name);
    free(rows);
    entries_clear(&es);
    lc_stats_snapshot_free(&snap);
    return rc;
}

/* ---- ListActions ----------------------------------------------------------------- */

/* Sort position of an entry: (a desc, b desc, c desc, instance, hash,
 * untrusted writer ("" for the entry everyone sees)). */
typedef struct cursor {
    int64_t a, b, c;
    const char *instance;
    lc_digest action;
    const char *writer;
} cursor;

static cursor cursor_of(const entry *e, bool hits)
{
    const char *w = untrusted_writer(e);
    cursor c = {.instance = e->instance, .action = e->action, .writer = w != NULL ? w : ""};
    if (hits) {
        c.a = (int64_t)e->hits;
        c.b = e->last_hit;
        c.c = e->created;
    } else {
        c.a = e->created;
    }
    return c;
}

static int cursor_cmp(const cursor *x, const cursor *y)
{
    if (x->a != y->a)
        return x->a > y->a ? -1 : 1;
    if (x->b != y->b)
        return x->b > y->b ? -1 : 1;
    if (x->c != y->c)
        return x->c > y->c ? -1 : 1;
    int r = strcmp(x->instance, y->instance);
    if (r != 0)
        return r;
    r = memcmp(x->action.hash, y->action.hash, LC_HASH_LEN);
    if (r != 0)
        return r;
    if (x->action.size != y->action.size)
        return x->action.size < y->action.size ? -1 : 1;
    return strcmp(x->writer, y->writer);
}

static int entry_cmp(const void *pa, const void *pb, void *hits)
{
    cursor a = cursor_of(pa, *(bool *)hits), b = cursor_of(pb, *(bool *)hits);
    return cursor_cmp(&a, &b);
}

static void sort_entries(entries *es, bool hits)
{
    if (es->n > 1)
        qsort_r(es->v, es->n, sizeof(*es->v), entry_cmp, &hits);
}

/* Page tokens name the last entry of the previous page:
 * "<order>.<a>.<b>.<c>.<hex>.<size>.<writer length>.<writer><instance>"
 * (instance last: it may hold dots; the untrusted writer before it, by
 * length). Sorting by position rather than by index keeps pages stable
 * while entries come and go. */
static void token_of(const entry *e, bool hits, char *out, size_t cap)
{
    cursor c = cursor_of(e, hits);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&c.action, hex);
    snprintf(out, cap, "%c.%" PRId64 ".%" PRId64 ".%" PRId64 ".%s.%" PRId64 ".%zu.%s%s",
             hits ? 'h' : 'n', c.a, c.b, c.c, hex, c.action.size, strlen(c.writer), c.writer,
             c.instance);
}

/* writer_buf: LC_AUTH_NAME_MAX bytes for the cursor's writer. */
static int token_parse(const char *tok, bool hits, cursor *c, char *writer_buf, lc_err *err)
{
    char order = 0, hex[LC_HASH_HEX_LEN + 1];
    long long a, b, cc, size;
    unsigned wl = 0;
    int used = 0;
    if (sscanf(tok, "%c.%lld.%lld.%lld.%64[0-9a-f].%lld.%u.%n", &order, &a, &b, &cc, hex, &size,
               &wl, &used) != 7 ||
        used == 0 || order != (hits ? 'h' : 'n') || wl >= LC_AUTH_NAME_MAX ||
        strlen(tok + used) < wl || lc_digest_parse(hex, strlen(hex), size, &c->action, NULL) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "page_token is not one this server gave for this order; start again "
                          "without it");
    c->a = a;
    c->b = b;
    c->c = cc;
    memcpy(writer_buf, tok + used, wl);
    writer_buf[wl] = '\0';
    c->writer = writer_buf;
    c->instance = tok + used + wl;
    return 0;
}

/* Keeps the entries matching a ListActions trust filter and writer. */
static void filter_entries(entries *es, Layercache__V1__ListActionsRequest__TrustFilter trust,
                           const char *writer)
{
    size_t k = 0;
    for (size_t i = 0; i < es->n; i++) {
        entry *e = &es->v[i];
        bool untrusted = e->trust == LAYERCACHE__V1__TRUST__UNTRUSTED;
        bool keep =
            (trust != LAYERCACHE__V1__LIST_ACTIONS_REQUEST__TRUST_FILTER__TRUSTED_ONLY ||
             !untrusted) &&
            (trust != LAYERCACHE__V1__LIST_ACTIONS_REQUEST__TRUST_FILTER__UNTRUSTED_ONLY ||
             untrusted) &&
            (writer == NULL || writer[0] == '\0' || strcmp(e->writer, writer) == 0);
        if (keep)
            es->v[k++] = *e;
        else
            entry_clear(e);
    }
    es->n = k;
}

/* completeness.h, read quietly (a listing is no access): whether a blob
 * e's result needs is gone, so GetActionResult would miss. */
static bool entry_incomplete(lc_store *s, const entry *e)
{
    uint8_t *value = NULL;
    size_t len = 0;
    const char *w = untrusted_writer(e);
    int rc = w != NULL ? lc_store_ac_untrusted_get(s, e->instance, &e->action, w, &value, &len, NULL)
                       : lc_store_ac_get(s, e->instance, &e->action, &value, &len, NULL);
    if (rc < 0)
        return true; /* gone since the scan */
    Layercache__V1__StoredActionResult *st =
        layercache__v1__stored_action_result__unpack(NULL, len, value);
    LC_REAPI(ActionResult) *ar =
        st != NULL ? LC_REAPI_FN(action_result__unpack)(NULL, st->action_result.len,
                                                        st->action_result.data)
                   : NULL;
    bool incomplete = ar == NULL || lc_complete_check_quiet(s, ar, NULL, NULL, NULL) != 1;
    if (ar != NULL)
        LC_REAPI_FN(action_result__free_unpacked)(ar, NULL);
    if (st != NULL)
        layercache__v1__stored_action_result__free_unpacked(st, NULL);
    free(value);
    return incomplete;
}

static int list_actions(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                        grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const Layercache__V1__ListActionsRequest *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    bool hits = req->order == LAYERCACHE__V1__LIST_ACTIONS_REQUEST__ORDER__MOST_HIT;
    entries es = {0};
    Layercache__V1__ActionInfo *infos = NULL, **ptrs = NULL;
    wire_digest *wds = NULL;
    char **descs = NULL;
    size_t n_page = 0;
    char next[LC_HASH_HEX_LEN + 512];
    int rc;

    if ((rc = lc_svc_instance(inst, err)) < 0)
        return rc;
    if (req->order != LAYERCACHE__V1__LIST_ACTIONS_REQUEST__ORDER__NEWEST && !hits)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "order %d is not NEWEST (0) or MOST_HIT (1)",
                          (int)req->order);
    if (req->page_size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "page_size %d is negative", req->page_size);
    size_t page = req->page_size == 0         ? PAGE_DEFAULT
                  : req->page_size > PAGE_MAX ? PAGE_MAX
                                              : (size_t)req->page_size;
    if (req->trust != LAYERCACHE__V1__LIST_ACTIONS_REQUEST__TRUST_FILTER__ANY &&
        req->trust != LAYERCACHE__V1__LIST_ACTIONS_REQUEST__TRUST_FILTER__TRUSTED_ONLY &&
        req->trust != LAYERCACHE__V1__LIST_ACTIONS_REQUEST__TRUST_FILTER__UNTRUSTED_ONLY)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "trust %d is not ANY (0), TRUSTED_ONLY (1) or UNTRUSTED_ONLY (2)",
                          (int)req->trust);
    cursor after;
    char after_writer[LC_AUTH_NAME_MAX];
    bool have_after = req->page_token != NULL && req->page_token[0] != '\0';
    if (have_after && (rc = token_parse(req->page_token, hits, &after, after_writer, err)) < 0)
        return rc;

    lc_err ferr = {0};
    if (lc_hits_flush(env->hits, &ferr) < 0) /* counts shown are then slightly behind */
        LC_WARN(MOD, "cannot save hit counts before listing: %s", ferr.msg);
    if ((rc = scan(env->store, instance_filter(inst, req->default_instance), false, &es, err)) < 0)
        return rc;
    filter_entries(&es, req->trust, req->writer);
    sort_entries(&es, hits);
    size_t first = 0;
    if (have_after) {
        while (first < es.n) {
            cursor c = cursor_of(&es.v[first], hits);
            if (cursor_cmp(&c, &after) > 0)
                break;
            first++;
        }
    }
    n_page = es.n - first < page ? es.n - first : page;
    infos = calloc(n_page + 1, sizeof(*infos));
    ptrs = calloc(n_page + 1, sizeof(*ptrs));
    wds = calloc(n_page + 1, sizeof(*wds));
    descs = calloc(n_page + 1, sizeof(*descs));
    if (infos == NULL || ptrs == NULL || wds == NULL || descs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_page; i++) {
        const entry *e = &es.v[first + i];
        Layercache__V1__ActionInfo init = LAYERCACHE__V1__ACTION_INFO__INIT;
        infos[i] = init;
        to_wire(&e->action, &wds[i]);
        descs[i] = lc_admin_describe(env->store, &e->action);
        if (descs[i] == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        infos[i].instance_name = e->instance;
        infos[i].action_digest = &wds[i].msg;
        infos[i].description = descs[i];
        infos[i].writer = e->writer;
        infos[i].created_unix = e->created;
        infos[i].last_hit_unix = e->last_hit;
        infos[i].hit_count = e->hits;
        infos[i].size_bytes = e->size;
        infos[i].trust = e->trust;
        infos[i].n_promoted_from = e->n_promoted_from;
        infos[i].promoted_from = e->promoted_from;
        infos[i].incomplete = entry_incomplete(env->store, e);
        ptrs[i] = &infos[i];
    }
    next[0] = '\0';
    if (first + n_page < es.n && n_page > 0)
        token_of(&es.v[first + n_page - 1], hits, next, sizeof(next));

    Layercache__V1__ListActionsResponse r = LAYERCACHE__V1__LIST_ACTIONS_RESPONSE__INIT;
    r.n_actions = n_page;
    r.actions = ptrs;
    r.next_page_token = next;
    r.total_entries = es.n;
    *resp = lc_svc_pack(&r);
    rc = *resp ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    if (descs != NULL)
        for (size_t i = 0; i < n_page; i++)
            free(descs[i]);
    free(descs);
    free(wds);
    free(ptrs);
    free(infos);
    entries_clear(&es);
    return rc;
}

/* ---- Purge --------------------------------------------------------------------- */

static int digest_cmp(const void *pa, const void *pb)
{
    const lc_digest *a = pa, *b = pb;
    int r = memcmp(a->hash, b->hash, LC_HASH_LEN);
    return r != 0 ? r : (a->size < b->size ? -1 : a->size > b->size);
}

/* config.history of e's state document (cached in e), or NULL. */
static const json_t *history_of(lc_store *s, entry *e)
{
    if (e->history_loaded)
        return e->history;
    e->history_loaded = true;
    uint8_t *data = NULL;
    size_t len = 0;
    if (e->state.size > (int64_t)MAX_STATE_BLOB ||
        lc_store_blob_get(s, &e->state, &data, &len, NULL) != 0)
        return NULL;
    json_t *doc = json_loadb((const char *)data, len, 0, NULL);
    free(data);
    json_t *h = json_object_get(json_object_get(doc, "config"), "history");
    if (json_is_array(h))
        e->history = json_incref(h);
    json_decref(doc);
    return e->history;
}

/* Whether d builds on p's state (see the top of this file). */
static bool descends(lc_store *s, entry *p, entry *d)
{
    if (!p->step || !d->step || strcmp(p->instance, d->instance) != 0 || d->nlayers < p->nlayers)
        return false;
    for (size_t i = 0; i < p->nlayers; i++)
        if (!lc_digest_equal(&p->layers[i], &d->layers[i]))
            return false;
    const json_t *hp = history_of(s, p), *hd = history_of(s, d);
    if (hp == NULL || hd == NULL)
        return d->nlayers > p->nlayers;
    size_t np = json_array_size(hp);
    if (np == 0 && p->nlayers == 0)
        return false;
    if (json_array_size(hd) <= np)
        return false;
    for (size_t i = 0; i < np; i++)
        if (!json_equal(json_array_get(hp, i), json_array_get(hd, i)))
            return false;
    return true;
}

typedef struct blob_list {
    lc_digest *v;
    size_t n, cap;
    bool oom;
} blob_list;

static int collect_blob(void *ctx, const lc_store_blob_info *info)
{
    blob_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        lc_digest *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            l->oom = true;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = info->digest;
    return 0;
}

/* Every blob (Purge all): counted, and removed unless dry_run. */
static int purge_blobs(lc_store *s, bool dry_run, uint64_t *blobs, uint64_t *bytes, lc_err *err)
{
    blob_list l = {0};
    int rc = lc_store_blob_scan(s, collect_blob, &l, err);
    if (rc == 0 && l.oom)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory listing the blobs");
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (!dry_run && (rc = lc_store_blob_delete(s, &l.v[i], err)) < 0)
            break;
        (*blobs)++;
        *bytes += (uint64_t)l.v[i].size;
    }
    free(l.v);
    return rc;
}

/* Removes e (trusted, or an untrusted writer's, store_ac.h) under its lock. */
static int delete_entry(const lc_svc_env *env, const entry *e, lc_err *err)
{
    const char *w = untrusted_writer(e);
    lc_hits_lock(env->hits, &e->action);
    int rc = w != NULL ? lc_store_ac_untrusted_delete(env->store, e->instance, &e->action, w, err)
                       : lc_store_ac_delete(env->store, e->instance, &e->action, err);
    lc_hits_unlock(env->hits, &e->action);
    if (rc == 0)
        lc_hits_forget(env->hits, e->instance, &e->action, w);
    return rc;
}

static int purge(const lc_call_ctx *ctx, const ProtobufCMessage *msg, grpc_byte_buffer **resp,
                 lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const Layercache__V1__PurgeRequest *req = (const void *)msg;
    const char *inst = req->instance_name ? req->instance_name : "";
    const char *writer = req->writer ? req->writer : "";
    const char *filter = instance_filter(inst, req->default_instance);
    lc_digest *keys = NULL;
    entries es = {0};
    Layercache__V1__PurgedAction *outs = NULL, **ptrs = NULL;
    wire_digest *wds = NULL;
    char **descs = NULL;
    size_t n_out = 0;
    uint64_t n_removed = 0, blobs = 0, blob_bytes = 0;
    int rc;

    if (lc_fwd_on(ctx)) /* cluster: purge at every replica (forward.c) */
        return lc_fwd_admin_purge(ctx, msg, resp, err);
    if ((rc = lc_svc_instance(inst, err)) < 0)
        return rc;
    if (req->older_than_seconds < 0 || req->newer_than_seconds < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "older_than_seconds and newer_than_seconds must not be negative");
    bool criteria = req->n_action_digests > 0 || filter != NULL || writer[0] != '\0' ||
                    req->older_than_seconds > 0 || req->newer_than_seconds > 0 ||
                    req->untrusted_only;
    if (req->all && (criteria || req->cascade))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "all removes every entry and blob: it takes no keys, instance, writer, "
                          "age, untrusted_only or cascade");
    if (!req->all && !criteria)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "nothing to purge: give action keys, an instance, a writer, an age "
                          "window, untrusted_only, or all");
    if (req->n_action_digests > 0) {
        keys = calloc(req->n_action_digests, sizeof(*keys));
        if (keys == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        for (size_t i = 0; i < req->n_action_digests; i++) {
            char what[48];
            snprintf(what, sizeof(what), "action_digests[%zu]", i);
            if ((rc = lc_svc_digest(req->action_digests[i], what, &keys[i], err)) < 0)
                goto out;
        }
        qsort(keys, req->n_action_digests, sizeof(*keys), digest_cmp);
    }

    /* Cascade stays within an instance, so the filter's scan holds every
     * candidate; layer lists are read only for it. */
    if ((rc = scan(env->store, filter, req->cascade, &es, err)) < 0)
        goto out;
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < es.n; i++) {
        entry *e = &es.v[i];
        bool m = true;
        if (filter != NULL)
            m = m && strcmp(e->instance, filter) == 0;
        if (keys != NULL) {
            /* A key with size 0 names its hash at any size: `layercache keys`
             * and build summaries print "sha256:<hex>" only (an Action is
             * never the empty blob, so 0 is free for this). */
            lc_digest any = e->action;
            any.size = 0;
            m = m &&
                (bsearch(&e->action, keys, req->n_action_digests, sizeof(*keys), digest_cmp) !=
                     NULL ||
                 bsearch(&any, keys, req->n_action_digests, sizeof(*keys), digest_cmp) != NULL);
        }
        if (writer[0] != '\0')
            m = m && strcmp(e->writer, writer) == 0;
        if (req->untrusted_only)
            m = m && e->trust == LAYERCACHE__V1__TRUST__UNTRUSTED;
        if (req->older_than_seconds > 0)
            m = m && e->created < now - req->older_than_seconds;
        if (req->newer_than_seconds > 0)
            m = m && e->created > now - req->newer_than_seconds;
        e->matched = m;
    }
    if (req->cascade) {
        for (size_t i = 0; i < es.n; i++) {
            if (!es.v[i].matched || !es.v[i].step)
                continue;
            for (size_t j = 0; j < es.n; j++)
                if (!es.v[j].matched && !es.v[j].cascaded &&
                    descends(env->store, &es.v[i], &es.v[j]))
                    es.v[j].cascaded = true;
        }
    }
    for (size_t i = 0; i < es.n; i++)
        n_removed += es.v[i].matched || es.v[i].cascaded;

    size_t n_list = n_removed < PURGE_LIST_MAX ? n_removed : PURGE_LIST_MAX;
    outs = calloc(n_list + 1, sizeof(*outs));
    ptrs = calloc(n_list + 1, sizeof(*ptrs));
    wds = calloc(n_list + 1, sizeof(*wds));
    descs = calloc(n_list + 1, sizeof(*descs));
    if (outs == NULL || ptrs == NULL || wds == NULL || descs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* Descriptions first: with `all`, the Action blobs go too. */
    for (size_t i = 0; i < es.n && n_out < n_list; i++) {
        entry *e = &es.v[i];
        if (!e->matched && !e->cascaded)
            continue;
        Layercache__V1__PurgedAction init = LAYERCACHE__V1__PURGED_ACTION__INIT;
        outs[n_out] = init;
        to_wire(&e->action, &wds[n_out]);
        if ((descs[n_out] = lc_admin_describe(env->store, &e->action)) == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        outs[n_out].instance_name = e->instance;
        outs[n_out].action_digest = &wds[n_out].msg;
        outs[n_out].description = descs[n_out];
        outs[n_out].writer = e->writer;
        outs[n_out].created_unix = e->created;
        outs[n_out].cascaded = e->cascaded;
        outs[n_out].trust = e->trust;
        ptrs[n_out] = &outs[n_out];
        n_out++;
    }
    if (!req->dry_run) {
        for (size_t i = 0; i < es.n; i++) {
            entry *e = &es.v[i];
            if (!e->matched && !e->cascaded)
                continue;
            if ((rc = delete_entry(env, e, err)) < 0)
                goto out;
        }
    }
    if (req->all) {
        /* Entries written after the scan above go too. */
        entries late = {0};
        if (!req->dry_run && (rc = scan(env->store, NULL, false, &late, err)) == 0) {
            for (size_t i = 0; i < late.n && rc == 0; i++)
                rc = delete_entry(env, &late.v[i], err);
            n_removed += late.n;
        }
        entries_clear(&late);
        if (rc < 0)
            goto out;
        if ((rc = purge_blobs(env->store, req->dry_run, &blobs, &blob_bytes, err)) < 0)
            goto out;
    }
    LC_INFO(MOD, "purge%s: %" PRIu64 " action cache entries, %" PRIu64 " blobs (%" PRIu64 " bytes)",
            req->dry_run ? " (dry run)" : "", n_removed, blobs, blob_bytes);

    Layercache__V1__PurgeResponse r = LAYERCACHE__V1__PURGE_RESPONSE__INIT;
    r.n_removed = n_out;
    r.removed = ptrs;
    r.blobs_removed = blobs;
    r.bytes_removed = blob_bytes;
    r.entries_removed = n_removed;
    r.truncated = n_out < n_removed;
    *resp = lc_svc_pack(&r);
    rc = *resp ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    if (descs != NULL)
        for (size_t i = 0; i < n_out; i++)
            free(descs[i]);
    free(descs);
    free(wds);
    free(ptrs);
    free(outs);
    entries_clear(&es);
    free(keys);
    return rc;
}

/* ---- the dashboard's entry list (admin.h) ------------------------------------ */

typedef struct writer_count {
    const char *name;
    size_t n;
} writer_count;

static int by_count_desc(const void *pa, const void *pb)
{
    const writer_count *a = pa, *b = pb;
    if (a->n != b->n)
        return a->n < b->n ? 1 : -1;
    return strcmp(a->name, b->name);
}

static json_t *entry_json(lc_store *s, const entry *e)
{
    char hex[LC_HASH_HEX_LEN + 1], key[LC_HASH_HEX_LEN + 32];
    lc_digest_hex(&e->action, hex);
    snprintf(key, sizeof(key), "%s/%lld", hex, (long long)e->action.size);
    char *text = lc_admin_describe(s, &e->action);
    json_t *from = json_array();
    for (size_t k = 0; from != NULL && k < e->n_promoted_from; k++)
        json_array_append_new(from, json_string(e->promoted_from[k]));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o*,s:I,s:I,s:I,s:I,s:b}", "instance",
                          e->instance, "key", key, "text", text ? text : "", "writer", e->writer,
                          "trust", lc_trust_name(e->trust), "promoted_from", from, "created",
                          (json_int_t)e->created, "last_hit", (json_int_t)e->last_hit, "hits",
                          (json_int_t)e->hits, "size_bytes", (json_int_t)e->size, "incomplete",
                          entry_incomplete(s, e));
    free(text);
    return o;
}

char *lc_admin_entries_json(lc_store *s, lc_hits *h, size_t limit)
{
    entries es = {0};
    lc_err err = {0};
    writer_count *wc = NULL;
    size_t n_wc = 0, n_untrusted = 0;
    json_t *root = NULL;
    char *out = NULL;
    if (lc_hits_flush(h, &err) < 0) /* counts shown are then slightly behind */
        LC_WARN(MOD, "cannot save hit counts before listing: %s", err.msg);
    if (scan(s, NULL, false, &es, &err) < 0) {
        LC_WARN(MOD, "cannot list the action cache for the dashboard: %s", err.msg);
        return NULL;
    }
    sort_entries(&es, false);
    wc = calloc(es.n + 1, sizeof(*wc));
    json_t *list = json_array(), *writers = json_array();
    root = json_pack("{s:I,s:o*,s:o*}", "total", (json_int_t)es.n, "entries", list, "writers",
                     writers);
    if (wc == NULL || root == NULL)
        goto out;
    for (size_t i = 0; i < es.n; i++) {
        const entry *e = &es.v[i];
        if (i < limit)
            json_array_append_new(list, entry_json(s, e));
        if (e->trust != LAYERCACHE__V1__TRUST__UNTRUSTED)
            continue;
        n_untrusted++;
        size_t k = 0;
        while (k < n_wc && strcmp(wc[k].name, e->writer) != 0)
            k++;
        if (k == n_wc)
            wc[n_wc++].name = e->writer;
        wc[k].n++;
    }
    qsort(wc, n_wc, sizeof(*wc), by_count_desc);
    for (size_t k = 0; k < n_wc; k++)
        json_array_append_new(writers,
                              json_pack("{s:s,s:I}", "name", wc[k].name, "entries", (json_int_t)wc[k].n));
    json_object_set_new(root, "untrusted", json_integer((json_int_t)n_untrusted));
    out = json_dumps(root, JSON_COMPACT);
out:
    json_decref(root);
    free(wc);
    entries_clear(&es);
    return out;
}

const lc_method lc_admin_methods[] = {
    {.path = "/layercache.v1.Admin/GetStats",
     .kind = LC_METHOD_UNARY,
     .request = &layercache__v1__get_stats_request__descriptor,
     .unary = get_stats},
    {.path = "/layercache.v1.Admin/Purge",
     .kind = LC_METHOD_UNARY,
     .request = &layercache__v1__purge_request__descriptor,
     .unary = purge},
    {.path = "/layercache.v1.Admin/ListActions",
     .kind = LC_METHOD_UNARY,
     .request = &layercache__v1__list_actions_request__descriptor,
     .unary = list_actions},
};
const size_t lc_admin_n_methods = sizeof(lc_admin_methods) / sizeof(lc_admin_methods[0]);
