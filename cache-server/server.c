/* server.c - see server.h. */
#include "server.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_msg.h"
#include "log.h"
#include "stats.h"

#define MOD "server"
/* Requests kept posted per method per completion queue, so a burst of new
 * calls does not wait for the worker to repost one by one. */
#define REQUESTS_PER_CQ 4
#define MAX_METHODS 32

typedef struct worker worker;
typedef struct call call;

struct reg_method {
    const lc_method *m; /* NULL for the generic (unknown method) request */
    void *handle;
    int stats_id;
    lc_auth_role need; /* role a caller needs (auth.h) */
};

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_CLOSE };

struct tag {
    call *c;
    enum tag_kind kind;
};

struct call {
    worker *w;
    const struct reg_method *rm;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* generic requests only */
    grpc_byte_buffer *recv_bb; /* initial payload, then each received message */
    grpc_byte_buffer *send_bb; /* the message of the SEND in flight */
    grpc_slice status_details;
    bool has_details;
    int pending;         /* tags in flight; freed at zero */
    bool sent_metadata;  /* initial metadata went out */
    bool final_sent;     /* status batch started */
    bool failed;         /* a batch failed or the client went away: stop */
    int close_cancelled; /* from RECV_CLOSE_ON_SERVER */
    int status;          /* the status sent (for stats) */
    void *state;         /* handler state of streams */
    lc_auth_id id;       /* who the caller authenticated as */
    bool waiting;        /* in its worker's waiting list (LC_STREAM_WAIT), holding a pending */
    call *next_waiting;
    bool forwarded; /* cluster: a peer's call (lc_srv_options.peer_auth) */
    struct tag t_new, t_recv, t_send, t_close;
};

struct worker {
    lc_srv *s;
    grpc_completion_queue *cq;
    pthread_t thread;
    bool started;
    /* Streams whose next said LC_STREAM_WAIT. Only this worker's thread
     * touches the list (every event of a call arrives on its worker's CQ). */
    call *waiting;
    unsigned wake_seen;
};

struct lc_srv {
    lc_srv_options opts;
    char *listen;
    char *tls_cert, *tls_key, *tls_ca; /* copies of the PEM options */
    grpc_server *server;
    grpc_completion_queue *shutdown_cq;
    worker *workers;
    int n_workers;
    struct reg_method methods[MAX_METHODS];
    size_t n_methods;
    struct reg_method generic;
    atomic_bool stopping;
    atomic_int live_calls;
    atomic_uint wake_gen; /* lc_srv_wake_streams */
    bool started, shut_down;
};

static void post_request(worker *w, const struct reg_method *rm);

/* ---- call lifetime ------------------------------------------------------ */

static void call_free(call *c)
{
    lc_srv *s = c->w->s;
    if (c->call != NULL) {
        if (c->rm->m != NULL) {
            lc_stats_call(s->opts.stats, c->rm->stats_id, c->final_sent ? c->status : LC_CANCELLED);
            if (c->rm->m->free_state != NULL)
                c->rm->m->free_state(c->state, c->final_sent);
        }
        grpc_call_unref(c->call);
        atomic_fetch_sub(&s->live_calls, 1);
    }
    if (c->recv_bb != NULL)
        grpc_byte_buffer_destroy(c->recv_bb);
    if (c->send_bb != NULL)
        grpc_byte_buffer_destroy(c->send_bb);
    if (c->has_details)
        grpc_slice_unref(c->status_details);
    grpc_metadata_array_destroy(&c->md);
    grpc_call_details_destroy(&c->details);
    free(c);
}

static void call_release(call *c)
{
    if (--c->pending == 0)
        call_free(c);
}

/* Starts a batch on tag t; on failure the tag never arrives, so cancel the
 * call (its close then drains the other tags). */
static bool start_batch(call *c, const grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        LC_WARN(MOD, "%s: grpc_call_start_batch failed (%d)", c->rm->m ? c->rm->m->path : "generic",
                (int)e);
        c->failed = true;
        grpc_call_cancel(c->call, NULL);
        return false;
    }
    c->pending++;
    return true;
}

/* Sends msg (may be NULL) and the status in one batch; unary calls also
 * wait for the close there. Takes ownership of msg. */
static void send_final(call *c, grpc_byte_buffer *msg, int code, const char *details)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->sent_metadata) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->sent_metadata = true;
    }
    if (msg != NULL) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = msg;
        n++;
    }
    c->status_details = grpc_slice_from_copied_string(details ? details : "");
    c->has_details = true;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    bool with_close = c->rm->m == NULL || c->rm->m->kind == LC_METHOD_UNARY;
    if (with_close) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
        n++;
    }
    c->status = code;
    c->final_sent = true;
    c->send_bb = msg;
    if (!start_batch(c, ops, n, &c->t_send)) {
        c->final_sent = false;
    }
    if (code != LC_OK && code != LC_NOT_FOUND)
        LC_DEBUG(MOD, "%s -> %s: %s", c->rm->m ? c->rm->m->path : "generic", lc_code_name(code),
                 details ? details : "");
}

static void send_error(call *c, const lc_err *err, int rc)
{
    int code = err->code != LC_OK ? err->code : (rc < 0 ? -rc : LC_INTERNAL);
    send_final(c, NULL, code, err->msg[0] ? err->msg : lc_code_name(code));
}

static void start_close(call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    start_batch(c, &op, 1, &c->t_close);
}

static void start_recv(call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    start_batch(c, &op, 1, &c->t_recv);
}

/* cluster: the call carries exactly the peers' authorization value. */
static bool is_peer_call(const lc_srv *s, const call *c)
{
    if (s->opts.peer_auth == NULL)
        return false;
    for (size_t i = 0; i < c->md.count; i++)
        if (lc_grpc_slice_eq(c->md.metadata[i].key, "authorization") &&
            lc_grpc_slice_eq(c->md.metadata[i].value, s->opts.peer_auth))
            return true;
    return false;
}

static lc_call_ctx ctx_of(call *c)
{
    lc_call_ctx ctx = {
        .env = c->w->s->opts.env,
        .metadata = &c->md,
        .deadline = c->deadline,
        .method = c->rm->m->path,
        .role = c->id.role,
        .principal = c->id.name[0] != '\0' ? c->id.name : NULL,
        .forwarded = c->forwarded,
    };
    return ctx;
}

/* Asks the server-stream handler for the next message and sends it. */
static void stream_next(call *c)
{
    lc_err err = {0};
    grpc_byte_buffer *msg = NULL;
    int rc = c->rm->m->next(c->state, &msg, &err);
    if (rc < 0) {
        send_error(c, &err, rc);
        return;
    }
    if (rc == LC_STREAM_WAIT && msg == NULL) {
        if (!c->sent_metadata) { /* so the client sees the stream open */
            grpc_op op;
            memset(&op, 0, sizeof(op));
            op.op = GRPC_OP_SEND_INITIAL_METADATA;
            c->sent_metadata = true;
            start_batch(c, &op, 1, &c->t_send);
            return; /* on_send asks next again, which waits then */
        }
        c->waiting = true;
        c->pending++; /* the list's reference */
        c->next_waiting = c->w->waiting;
        c->w->waiting = c;
        return;
    }
    if (msg == NULL) {
        send_final(c, NULL, LC_OK, "");
        return;
    }
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->sent_metadata) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->sent_metadata = true;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = msg;
    n++;
    c->send_bb = msg;
    start_batch(c, ops, n, &c->t_send);
}

/* ---- events ------------------------------------------------------------- */

static void on_new(call *c, bool ok)
{
    worker *w = c->w;
    lc_srv *s = w->s;
    c->pending--;
    if (!ok) { /* shutting down: the request was never matched with a call */
        call_free(c);
        return;
    }
    atomic_fetch_add(&s->live_calls, 1);
    /* Replace the request first, while this call keeps the server alive. */
    if (!atomic_load(&s->stopping))
        post_request(w, c->rm);

    const lc_method *m = c->rm->m;
    if (m == NULL) {
        char path[256];
        size_t len = GRPC_SLICE_LENGTH(c->details.method);
        if (len >= sizeof(path))
            len = sizeof(path) - 1;
        memcpy(path, GRPC_SLICE_START_PTR(c->details.method), len);
        path[len] = '\0';
        char msg[400];
        snprintf(msg, sizeof(msg),
                 "unknown method '%s': this server implements the REAPI v2 "
                 "cache, ByteStream and layercache.v1.Admin",
                 path);
        send_final(c, NULL, LC_UNIMPLEMENTED, msg);
        goto out;
    }

    lc_err err = {0};
    /* Access control first: a refused call costs no store work, and a
     * refused upload is answered before its data is read. */
    /* cluster: a peer's forwarded call is trusted by the shared token. */
    c->forwarded = is_peer_call(s, c);
    if (c->forwarded) {
        c->id.role = LC_ROLE_ADMIN;
    } else if (s->opts.peers_only) {
        lc_err_set(&err, LC_UNAUTHENTICATED,
                   "this is the cluster's peer port: calls need the cluster token "
                   "(--cluster-token); clients use the gRPC port");
        if (m->kind != LC_METHOD_UNARY)
            start_close(c);
        send_error(c, &err, -err.code);
        goto out;
    } else if (lc_auth_check(s->opts.auth, &c->md, c->rm->need, m->path, &c->id, &err) < 0) {
        if (m->kind != LC_METHOD_UNARY)
            start_close(c);
        send_error(c, &err, -err.code);
        goto out;
    }
    lc_call_ctx ctx = ctx_of(c);
    if (m->kind == LC_METHOD_CLIENT_STREAM) {
        start_close(c);
        start_recv(c);
        goto out;
    }
    if (m->kind == LC_METHOD_SERVER_STREAM)
        start_close(c);
    if (c->recv_bb == NULL) {
        lc_err_set(&err, LC_INVALID_ARGUMENT, "%s: the request message is missing", m->path);
        send_error(c, &err, -LC_INVALID_ARGUMENT);
        goto out;
    }
    ProtobufCMessage *req = lc_grpc_unpack(m->request, c->recv_bb, &err);
    grpc_byte_buffer_destroy(c->recv_bb);
    c->recv_bb = NULL;
    if (req == NULL) {
        send_error(c, &err, -LC_INVALID_ARGUMENT);
        goto out;
    }
    int rc;
    if (m->kind == LC_METHOD_UNARY) {
        grpc_byte_buffer *resp = NULL;
        rc = m->unary(&ctx, req, &resp, &err);
        protobuf_c_message_free_unpacked(req, NULL);
        if (rc < 0) {
            if (resp != NULL)
                grpc_byte_buffer_destroy(resp);
            send_error(c, &err, rc);
        } else if (resp == NULL) {
            lc_err_set(&err, LC_RESOURCE_EXHAUSTED, "out of memory building the response");
            send_error(c, &err, -LC_RESOURCE_EXHAUSTED);
        } else {
            send_final(c, resp, LC_OK, "");
        }
        goto out;
    }
    rc = m->open(&ctx, req, &c->state, &err);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc < 0)
        send_error(c, &err, rc);
    else
        stream_next(c);
out:
    if (c->pending == 0)
        call_free(c);
}

static void on_recv(call *c, bool ok)
{
    c->pending--;
    if (c->final_sent) { /* answered early: what still arrives is dropped */
        if (c->recv_bb != NULL) {
            grpc_byte_buffer_destroy(c->recv_bb);
            c->recv_bb = NULL;
        }
        goto out;
    }
    if (!ok || c->failed) {
        c->failed = true;
        grpc_call_cancel(c->call, NULL);
        goto out;
    }
    lc_call_ctx ctx = ctx_of(c);
    lc_err err = {0};
    grpc_byte_buffer *resp = NULL;
    int rc;
    if (c->recv_bb == NULL) { /* the client half-closed */
        rc = c->rm->m->end(c->state, &resp, &err);
    } else {
        /* Ask for the next message before handling this one: the transport
         * reads it on another thread while the handler hashes and stores.
         * Handled one after the other all the same: every event of a call
         * arrives on this worker's queue. */
        grpc_byte_buffer *msg = c->recv_bb;
        c->recv_bb = NULL;
        start_recv(c);
        rc = c->rm->m->message(&ctx, &c->state, msg, &resp, &err);
        grpc_byte_buffer_destroy(msg);
        if (rc == 0)
            goto out;
    }
    if (rc >= 0 && resp == NULL)
        rc = lc_err_set(&err, LC_RESOURCE_EXHAUSTED, "out of memory building the response");
    if (rc < 0) {
        if (resp != NULL)
            grpc_byte_buffer_destroy(resp);
        send_error(c, &err, rc);
    } else {
        send_final(c, resp, LC_OK, "");
    }
out:
    if (c->pending == 0)
        call_free(c);
}

static void on_send(call *c, bool ok)
{
    c->pending--;
    if (c->send_bb != NULL) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
    }
    if (c->final_sent)
        goto out;
    if (!ok || c->failed || c->close_cancelled) {
        c->failed = true;
        grpc_call_cancel(c->call, NULL);
        goto out;
    }
    stream_next(c);
out:
    if (c->pending == 0)
        call_free(c);
}

/* Takes c off its worker's waiting list and drops the list's reference
 * (the caller holds another). */
static void unwait(call *c)
{
    for (call **p = &c->w->waiting; *p != NULL; p = &(*p)->next_waiting) {
        if (*p == c) {
            *p = c->next_waiting;
            break;
        }
    }
    c->waiting = false;
    c->next_waiting = NULL;
    c->pending--;
}

static void on_close(call *c, bool ok)
{
    (void)ok;
    /* A cancelled stream stops at its next completion. */
    if (c->close_cancelled && !c->final_sent)
        c->failed = true;
    if (c->waiting) /* nothing else will complete for it */
        unwait(c);
    call_release(c);
}

/* After lc_srv_wake_streams: every waiting stream asks next again. */
static void wake_waiting(worker *w)
{
    call *list = w->waiting;
    w->waiting = NULL;
    while (list != NULL) {
        call *c = list;
        list = c->next_waiting;
        c->waiting = false;
        c->next_waiting = NULL;
        stream_next(c);  /* may wait again, taking a new reference */
        call_release(c); /* the list's reference */
    }
}

void lc_srv_wake_streams(lc_srv *s)
{
    if (s != NULL)
        atomic_fetch_add(&s->wake_gen, 1);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (;;) {
        /* Waiting streams need a periodic look; an idle worker without any
         * sleeps until the next event. */
        gpr_timespec until = w->waiting != NULL
                                 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                gpr_time_from_millis(LC_SRV_WAKE_MS, GPR_TIMESPAN))
                                 : gpr_inf_future(GPR_CLOCK_MONOTONIC);
        grpc_event ev = grpc_completion_queue_next(w->cq, until, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        unsigned gen = atomic_load(&w->s->wake_gen);
        if (gen != w->wake_seen) {
            w->wake_seen = gen;
            wake_waiting(w);
        }
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct tag *t = ev.tag;
        switch (t->kind) {
        case TAG_NEW:
            on_new(t->c, ev.success != 0);
            break;
        case TAG_RECV:
            on_recv(t->c, ev.success != 0);
            break;
        case TAG_SEND:
            on_send(t->c, ev.success != 0);
            break;
        case TAG_CLOSE:
            on_close(t->c, ev.success != 0);
            break;
        }
    }
    return NULL;
}

/* ---- requests ----------------------------------------------------------- */

static void post_request(worker *w, const struct reg_method *rm)
{
    lc_srv *s = w->s;
    call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        LC_ERROR(MOD, "out of memory posting a request");
        return;
    }
    c->w = w;
    c->rm = rm;
    c->t_new = (struct tag){c, TAG_NEW};
    c->t_recv = (struct tag){c, TAG_RECV};
    c->t_send = (struct tag){c, TAG_SEND};
    c->t_close = (struct tag){c, TAG_CLOSE};
    grpc_metadata_array_init(&c->md);
    grpc_call_details_init(&c->details);
    grpc_call_error e;
    if (rm->m == NULL) {
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, w->cq, w->cq,
                                     &c->t_new);
    } else {
        bool payload = rm->m->kind != LC_METHOD_CLIENT_STREAM;
        e = grpc_server_request_registered_call(s->server, rm->handle, &c->call, &c->deadline,
                                                &c->md, payload ? &c->recv_bb : NULL, w->cq, w->cq,
                                                &c->t_new);
    }
    if (e != GRPC_CALL_OK) {
        LC_ERROR(MOD, "cannot post a request for %s (%d)", rm->m ? rm->m->path : "unknown methods",
                 (int)e);
        c->call = NULL;
        call_free(c);
        return;
    }
    c->pending = 1;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void free_tls(lc_srv *s)
{
    if (s->tls_key != NULL)
        OPENSSL_cleanse(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    free(s->tls_ca);
    s->tls_key = s->tls_cert = s->tls_ca = NULL;
}

int lc_srv_new(const lc_srv_options *opts, lc_srv **out, lc_err *err)
{
    *out = NULL;
    if (opts->threads < 1 || opts->threads > 256)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--threads must be 1..256, got %d",
                          opts->threads);
    lc_srv *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    s->opts = *opts;
    s->listen = strdup(opts->listen);
    s->n_workers = opts->threads;
    s->workers = calloc((size_t)s->n_workers, sizeof(*s->workers));
    bool tls = opts->tls_cert_pem != NULL && opts->tls_key_pem != NULL;
    if (tls) {
        s->tls_cert = strdup(opts->tls_cert_pem);
        s->tls_key = strdup(opts->tls_key_pem);
        if (opts->tls_client_ca_pem != NULL)
            s->tls_ca = strdup(opts->tls_client_ca_pem);
    }
    if (s->listen == NULL || s->workers == NULL ||
        (tls && (s->tls_cert == NULL || s->tls_key == NULL ||
                 (opts->tls_client_ca_pem != NULL && s->tls_ca == NULL)))) {
        free_tls(s);
        free(s->listen);
        free(s->workers);
        free(s);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    s->opts.listen = s->listen;
    s->opts.tls_cert_pem = s->tls_cert;
    s->opts.tls_key_pem = s->tls_key;
    s->opts.tls_client_ca_pem = s->tls_ca;

    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = LC_SRV_MAX_MESSAGE},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         .value.integer = LC_SRV_MAX_MESSAGE},
        /* REAPI clients (Bazel --grpc_keepalive_time) ping idle connections:
         * never answer that with GOAWAY too_many_pings. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PING_STRIKES, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
         .value.integer = 1},
        /* Without BDP probing a stream's window stays near one message, so a
         * slow store makes clients wait instead of the server buffering
         * their blobs (64 x 32 MiB uploads: 1.8 GiB RSS with it, see below). */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
        /* A second server on the same explicit port must fail, not share it. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
    };
    grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    s->server = grpc_server_create(&cargs, NULL);
    s->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);
    for (int i = 0; i < s->n_workers; i++) {
        s->workers[i].s = s;
        s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->workers[i].cq, NULL);
    }
    s->generic.m = NULL;
    s->generic.stats_id = -1;
    *out = s;
    return 0;
}

int lc_srv_add_methods(lc_srv *s, const lc_method *methods, size_t n, lc_err *err)
{
    if (s->started)
        return lc_err_set(err, LC_FAILED_PRECONDITION, "methods must be added before start");
    for (size_t i = 0; i < n; i++) {
        const lc_method *m = &methods[i];
        if (s->n_methods >= MAX_METHODS)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "more than %d methods", MAX_METHODS);
        bool payload = m->kind != LC_METHOD_CLIENT_STREAM;
        void *h = grpc_server_register_method(
            s->server, m->path, NULL,
            payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE, 0);
        if (h == NULL)
            return lc_err_set(err, LC_ALREADY_EXISTS, "cannot register method %s (twice?)",
                              m->path);
        struct reg_method *rm = &s->methods[s->n_methods++];
        rm->m = m;
        rm->handle = h;
        rm->stats_id = s->opts.stats ? lc_stats_add_method(s->opts.stats, m->path) : -1;
        rm->need = lc_auth_method_role(m->path);
    }
    return 0;
}

int lc_srv_start(lc_srv *s, int *port, lc_err *err)
{
    grpc_server_credentials *creds;
    if (s->tls_cert != NULL) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = s->tls_key, .cert_chain = s->tls_cert};
        creds = grpc_ssl_server_credentials_create_ex(
            s->tls_ca, &pair, 1,
            s->tls_ca != NULL ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    if (creds == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "cannot create TLS credentials from --tls-cert/--tls-key");
    int bound = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (bound == 0)
        return lc_err_set(err, LC_UNAVAILABLE,
                          "cannot listen on '%s' (address in use, not local, or malformed; "
                          "expected HOST:PORT, port 0 for any free port%s)",
                          s->listen,
                          s->tls_cert != NULL ? "; or the TLS certificate/key was refused" : "");
    grpc_server_start(s->server);
    s->started = true;
    for (int i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        for (int k = 0; k < REQUESTS_PER_CQ; k++) {
            for (size_t j = 0; j < s->n_methods; j++)
                post_request(w, &s->methods[j]);
            post_request(w, &s->generic);
        }
    }
    for (int i = 0; i < s->n_workers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            LC_ERROR(MOD, "cannot start worker thread %d", i);
            continue;
        }
        s->workers[i].started = true;
    }
    *port = bound;
    return 0;
}

void lc_srv_shutdown(lc_srv *s, int64_t grace_seconds)
{
    if (s == NULL || s->shut_down)
        return;
    s->shut_down = true;
    atomic_store(&s->stopping, true);
    if (s->started) {
        static int shutdown_tag;
        grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, &shutdown_tag);
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_seconds(grace_seconds, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->shutdown_cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            LC_WARN(MOD, "grace period of %llds over: cancelling %d calls in flight",
                    (long long)grace_seconds, atomic_load(&s->live_calls));
            grpc_server_cancel_all_calls(s->server);
            grpc_completion_queue_next(s->shutdown_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        }
    }
    grpc_server_destroy(s->server);
    s->server = NULL;
    for (int i = 0; i < s->n_workers; i++)
        grpc_completion_queue_shutdown(s->workers[i].cq);
    for (int i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
            w->started = false;
        } else { /* its thread never ran: drain (and free) its calls here */
            worker_main(w);
        }
        grpc_completion_queue_destroy(w->cq);
        w->cq = NULL;
    }
    grpc_completion_queue_shutdown(s->shutdown_cq);
    while (grpc_completion_queue_next(s->shutdown_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->shutdown_cq);
    s->shutdown_cq = NULL;
}

void lc_srv_free(lc_srv **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    lc_srv *s = *sp;
    lc_srv_shutdown(s, 0);
    free(s->workers);
    free(s->listen);
    free_tls(s);
    free(s);
    *sp = NULL;
}
