/* observe.c - see observe.h. */
#include "observe.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services.h"

#define MAX_WRAPPED 64
#define MAX_TABLES 16
#define GET_ACTION_RESULT "/build.bazel.remote.execution.v2.ActionCache/GetActionResult"

struct slot {
    const lc_method *orig;
    int metric_id;
    bool is_get_ac;
};

/* Written while registering (one thread, before serving), then read-only. */
static struct slot slots[MAX_WRAPPED];
static size_t n_slots;
static lc_method *tables[MAX_TABLES];
static size_t n_tables;
static lc_metrics *sink_metrics;
static lc_dash *sink_dash;

/* Stream state: ours around the handler's. */
typedef struct wrap_state {
    void *inner;
    const struct slot *slot;
    double start;
    int code; /* the first failure's code, else OK */
} wrap_state;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ctx->method is the registered table's path pointer, which we copied. */
static const struct slot *slot_of(const char *path)
{
    for (size_t i = 0; i < n_slots; i++)
        if (slots[i].orig->path == path)
            return &slots[i];
    for (size_t i = 0; i < n_slots; i++)
        if (strcmp(slots[i].orig->path, path) == 0)
            return &slots[i];
    return NULL;
}

static void report(const struct slot *s, int code, double start)
{
    lc_metrics_observe(sink_metrics, s->metric_id, code, mono() - start);
}

static int code_of(int rc)
{
    return rc < 0 ? -rc : LC_OK;
}

/* GetActionResult outcomes per key for the dashboard. */
static void track_lookup(const ProtobufCMessage *msg, int rc)
{
    if (sink_dash == NULL || (rc < 0 && rc != -LC_NOT_FOUND))
        return;
    const LC_REAPI(GetActionResultRequest) *req = (const void *)msg;
    const LC_REAPI(Digest) *d = req->action_digest;
    lc_digest key;
    if (d == NULL || d->hash == NULL ||
        lc_digest_parse(d->hash, strlen(d->hash), d->size_bytes, &key, NULL) != 0)
        return;
    lc_dash_ac_lookup(sink_dash, req->instance_name, &key, rc >= 0);
}

static int w_unary(const lc_call_ctx *ctx, const ProtobufCMessage *req, grpc_byte_buffer **resp,
                   lc_err *err)
{
    const struct slot *s = slot_of(ctx->method);
    double start = mono();
    int rc = s->orig->unary(ctx, req, resp, err);
    /* server.c turns a success without a response into RESOURCE_EXHAUSTED. */
    report(s, rc >= 0 && *resp == NULL ? LC_RESOURCE_EXHAUSTED : code_of(rc), start);
    if (s->is_get_ac)
        track_lookup(req, rc);
    return rc;
}

static wrap_state *state_new(const struct slot *s)
{
    wrap_state *w = calloc(1, sizeof(*w));
    if (w != NULL) {
        w->slot = s;
        w->start = mono();
    }
    return w;
}

static void note(wrap_state *w, int rc)
{
    if (rc < 0 && w->code == LC_OK)
        w->code = -rc;
}

static int w_open(const lc_call_ctx *ctx, const ProtobufCMessage *req, void **state, lc_err *err)
{
    wrap_state *w = state_new(slot_of(ctx->method));
    if (w == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory opening %s", ctx->method);
    *state = w; /* server.c frees the state even when open fails */
    int rc = w->slot->orig->open(ctx, req, &w->inner, err);
    note(w, rc);
    return rc;
}

static int w_next(void *state, grpc_byte_buffer **msg, lc_err *err)
{
    wrap_state *w = state;
    int rc = w->slot->orig->next(w->inner, msg, err);
    note(w, rc);
    return rc;
}

static int w_message(const lc_call_ctx *ctx, void **state, grpc_byte_buffer *msg,
                     grpc_byte_buffer **resp, lc_err *err)
{
    wrap_state *w = *state;
    if (w == NULL) {
        w = state_new(slot_of(ctx->method));
        if (w == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory in %s", ctx->method);
        *state = w;
    }
    int rc = w->slot->orig->message(ctx, &w->inner, msg, resp, err);
    note(w, rc);
    return rc;
}

static int w_end(void *state, grpc_byte_buffer **resp, lc_err *err)
{
    wrap_state *w = state;
    if (w != NULL) {
        int rc = w->slot->orig->end(w->inner, resp, err);
        note(w, rc);
        return rc;
    }
    /* A client stream closed before its first message has no state of
     * ours, and end gets no ctx to find the method by: hand it to the one
     * client-stream method there is (ByteStream.Write); it goes untimed. */
    const struct slot *only = NULL;
    for (size_t i = 0; i < n_slots; i++) {
        if (slots[i].orig->kind != LC_METHOD_CLIENT_STREAM)
            continue;
        if (only != NULL)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "the stream ended before any message");
        only = &slots[i];
    }
    if (only == NULL)
        return lc_err_set(err, LC_INTERNAL, "a client stream ended without a method");
    return only->orig->end(NULL, resp, err);
}

static void w_free_state(void *state, bool finished)
{
    wrap_state *w = state;
    if (w == NULL)
        return;
    if (w->slot->orig->free_state != NULL)
        w->slot->orig->free_state(w->inner, finished);
    int code = w->code;
    if (code == LC_OK && !finished)
        code = LC_CANCELLED;
    report(w->slot, code, w->start);
    free(w);
}

const lc_method *lc_observe_wrap(lc_metrics *metrics, lc_dash *dash, const lc_method *methods,
                                 size_t n)
{
    if (n_tables >= MAX_TABLES || n_slots + n > MAX_WRAPPED)
        return methods;
    lc_method *t = malloc(n * sizeof(*t));
    if (t == NULL)
        return methods;
    sink_metrics = metrics;
    sink_dash = dash;
    for (size_t i = 0; i < n; i++) {
        const lc_method *m = &methods[i];
        struct slot *s = &slots[n_slots++];
        s->orig = m;
        s->metric_id = metrics ? lc_metrics_add_method(metrics, m->path) : -1;
        s->is_get_ac = m->kind == LC_METHOD_UNARY && strcmp(m->path, GET_ACTION_RESULT) == 0;
        t[i] = *m;
        switch (m->kind) {
        case LC_METHOD_UNARY:
            t[i].unary = w_unary;
            break;
        case LC_METHOD_SERVER_STREAM:
            t[i].open = w_open;
            t[i].next = w_next;
            t[i].free_state = w_free_state;
            break;
        case LC_METHOD_CLIENT_STREAM:
            t[i].message = w_message;
            t[i].end = w_end;
            t[i].free_state = w_free_state;
            break;
        }
    }
    tables[n_tables++] = t;
    return t;
}

void lc_observe_reset(void)
{
    for (size_t i = 0; i < n_tables; i++)
        free(tables[i]);
    n_tables = 0;
    n_slots = 0;
    sink_metrics = NULL;
    sink_dash = NULL;
}
