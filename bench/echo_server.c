/* echo_server.c - the ceiling for bench-server: a bare gRPC C core server
 * built the way a good REAPI server is (registered methods, one completion
 * queue per worker thread, a small state machine per call), doing no work of
 * its own. layercache-server is measured against it under the same load.
 *
 * Methods (package lcbench.Echo; messages shaped like the REAPI ones so the
 * load generator does identical client work against both servers):
 *   Unary     request bytes are sent back unchanged.
 *   Upload    client streaming; every message is discarded, the reply is a
 *             google.bytestream.WriteResponse whose committed_size is the
 *             number of message bytes received.
 *   Download  server streaming; the request is 16 bytes, total N and chunk M
 *             (uint64 little endian); the reply is ceil(N/M) messages framed
 *             as google.bytestream.ReadResponse (field 10 = M bytes), the data
 *             coming zero-copy from one static buffer.
 *
 * Usage: echo_server [--listen ADDR] [--threads N]
 * Prints "echo-server listening grpc=HOST:PORT", serves until SIGINT/SIGTERM.
 *
 * Experiment knobs (not used by bench-server): --upload-delay-us N sleeps N µs
 * per received Upload message, standing in for a slow store, to show how
 * much the gRPC transport buffers for streams the server reads slowly;
 * --quota-mb N sets a grpc_resource_quota of N MiB and --no-bdp turns off
 * BDP probing, the two transport settings that bound that buffering.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHUNK (4u << 20)
#define MAX_THREADS 64
/* Requests kept posted per method per queue, so a burst of new calls does
 * not wait for a worker to post the next one (layercache-server posts 4 too;
 * 32 measured no faster here). */
#ifndef POSTED_UNARY
#define POSTED_UNARY 4
#endif
#define POSTED_STREAM 4

enum method { M_UNARY, M_UPLOAD, M_DOWNLOAD, M_GENERIC, M_COUNT };
static const char *const method_path[M_GENERIC] = {
    "/lcbench.Echo/Unary",
    "/lcbench.Echo/Upload",
    "/lcbench.Echo/Download",
};

enum tag_kind { T_NEW, T_RECV, T_SEND, T_CLOSE };

struct call;
typedef struct tag {
    struct call *call;
    enum tag_kind kind;
} tag;

typedef struct worker {
    grpc_completion_queue *cq;
    pthread_t thread;
} worker;

typedef struct call {
    enum method method;
    worker *w;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* generic calls only */
    grpc_byte_buffer *in;
    grpc_byte_buffer *out;
    int pending;   /* batches in flight; the call is freed at zero */
    int cancelled; /* from RECV_CLOSE_ON_SERVER */
    bool failed;
    uint64_t count;     /* Upload: bytes received */
    uint64_t remaining; /* Download: bytes still to send */
    uint64_t chunk;     /* Download: message size */
    tag t_new, t_recv, t_send, t_close;
} call;

static grpc_server *g_server;
static void *g_methods[M_GENERIC];
static worker g_workers[MAX_THREADS];
static int g_nworkers = 2;
static grpc_completion_queue *g_shutdown_cq;
static uint8_t g_zeros[MAX_CHUNK];
static long g_upload_delay_us;
static grpc_slice g_ok_details;

static void post_request(worker *w, enum method m);

static void call_release(call *c)
{
    if (--c->pending > 0)
        return;
    if (c->in)
        grpc_byte_buffer_destroy(c->in);
    if (c->out)
        grpc_byte_buffer_destroy(c->out);
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md);
    if (c->method == M_GENERIC)
        grpc_call_details_destroy(&c->details);
    free(c);
}

/* Starts a batch on the call; a batch that cannot start never completes, so
 * the call is cancelled (its close still arrives) and not counted. */
static void start_batch(call *c, const grpc_op *ops, size_t n, tag *t)
{
    c->pending++;
    if (grpc_call_start_batch(c->call, ops, n, t, NULL) != GRPC_CALL_OK) {
        c->pending--;
        c->failed = true;
        grpc_call_cancel(c->call, NULL);
    }
}

/* Finishes the call: optional initial metadata and reply, the status and,
 * for unary calls (with_close), RECV_CLOSE_ON_SERVER in the same batch. */
static void send_status(call *c, grpc_status_code code, const char *msg, grpc_byte_buffer *reply,
                        bool with_initial_md, bool with_close)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_slice details = msg ? grpc_slice_from_copied_string(msg) : g_ok_details;
    memset(ops, 0, sizeof ops);
    if (with_initial_md)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (reply) {
        c->out = reply;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = reply;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &details; /* copied by the core */
    if (with_close) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    }
    start_batch(c, ops, n, &c->t_send);
    if (msg)
        grpc_slice_unref(details);
}

static void post_recv(call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->in;
    start_batch(c, &op, 1, &c->t_recv);
}

static void post_close(call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    start_batch(c, &op, 1, &c->t_close);
}

/* One ReadResponse-framed message of len bytes: header slice (field 10 tag
 * and length) plus a static data slice, no copy. */
static grpc_byte_buffer *download_message(uint64_t len)
{
    uint8_t hdr[11];
    size_t h = 0;
    hdr[h++] = (10 << 3) | 2;
    for (uint64_t v = len;; v >>= 7) {
        hdr[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    grpc_slice slices[2] = {grpc_slice_from_copied_buffer((const char *)hdr, h),
                            grpc_slice_from_static_buffer(g_zeros, (size_t)len)};
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, 2);
    grpc_slice_unref(slices[0]);
    grpc_slice_unref(slices[1]);
    return bb;
}

/* Sends the next Download message, with the status on the last one. */
static void download_next(call *c, bool first)
{
    uint64_t len = c->remaining < c->chunk ? c->remaining : c->chunk;
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (first)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->out = download_message(len);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->out;
    c->remaining -= len;
    if (c->remaining == 0) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = GRPC_STATUS_OK;
        ops[n++].data.send_status_from_server.status_details = &g_ok_details;
    }
    start_batch(c, ops, n, &c->t_send);
}

static void write_response(call *c)
{
    /* google.bytestream.WriteResponse { committed_size = count } */
    uint8_t buf[11];
    size_t n = 0;
    buf[n++] = (1 << 3) | 0;
    for (uint64_t v = c->count;; v >>= 7) {
        buf[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, n);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    send_status(c, GRPC_STATUS_OK, NULL, bb, true, false);
}

static void on_new(call *c, bool ok)
{
    if (!ok) { /* server shutting down: the request is gone */
        c->pending = 1;
        call_release(c);
        return;
    }
    post_request(c->w, c->method); /* replacement first, then serve */
    switch (c->method) {
    case M_UNARY: {
        grpc_byte_buffer *reply = c->in;
        c->in = NULL;
        if (!reply) {
            send_status(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message", NULL, true, true);
            break;
        }
        send_status(c, GRPC_STATUS_OK, NULL, reply, true, true);
        break;
    }
    case M_UPLOAD:
        post_close(c);
        post_recv(c);
        break;
    case M_DOWNLOAD: {
        uint8_t req[16];
        grpc_slice s = grpc_empty_slice();
        grpc_byte_buffer_reader r;
        bool good = false;
        if (c->in && grpc_byte_buffer_reader_init(&r, c->in)) {
            s = grpc_byte_buffer_reader_readall(&r);
            grpc_byte_buffer_reader_destroy(&r);
            if (GRPC_SLICE_LENGTH(s) == sizeof req) {
                memcpy(req, GRPC_SLICE_START_PTR(s), sizeof req);
                good = true;
            }
        }
        grpc_slice_unref(s);
        grpc_byte_buffer_destroy(c->in);
        c->in = NULL;
        uint64_t total = 0, chunk = 0;
        for (int i = 7; good && i >= 0; i--) {
            total = total << 8 | req[i];
            chunk = chunk << 8 | req[8 + i];
        }
        post_close(c);
        if (!good || chunk == 0 || chunk > MAX_CHUNK) {
            send_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                        "request must be 16 bytes: total, chunk (1..4 MiB), little endian", NULL,
                        true, false);
            break;
        }
        c->remaining = total;
        c->chunk = chunk;
        if (total == 0)
            send_status(c, GRPC_STATUS_OK, NULL, NULL, true, false);
        else
            download_next(c, true);
        break;
    }
    case M_GENERIC:
        send_status(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL, true, true);
        break;
    default:
        break;
    }
    call_release(c); /* the NEW tag */
}

static void on_recv(call *c, bool ok)
{
    if (!ok || c->failed) {
        if (c->in)
            grpc_byte_buffer_destroy(c->in);
        c->in = NULL;
        grpc_call_cancel(c->call, NULL);
    } else if (c->in == NULL) { /* half-close: the upload is complete */
        write_response(c);
    } else {
        c->count += grpc_byte_buffer_length(c->in);
        grpc_byte_buffer_destroy(c->in);
        if (g_upload_delay_us > 0)
            usleep((useconds_t)g_upload_delay_us);
        c->in = NULL;
        post_recv(c);
    }
    call_release(c);
}

static void on_send(call *c, bool ok)
{
    if (c->out)
        grpc_byte_buffer_destroy(c->out);
    c->out = NULL;
    if (c->method == M_DOWNLOAD && c->remaining > 0) {
        if (ok && !c->failed)
            download_next(c, false);
        else
            grpc_call_cancel(c->call, NULL);
    }
    call_release(c);
}

static void post_request(worker *w, enum method m)
{
    call *c = calloc(1, sizeof *c);
    if (!c) {
        fprintf(stderr, "echo-server: out of memory\n");
        abort();
    }
    c->method = m;
    c->w = w;
    c->pending = 1;
    c->t_new = (tag){c, T_NEW};
    c->t_recv = (tag){c, T_RECV};
    c->t_send = (tag){c, T_SEND};
    c->t_close = (tag){c, T_CLOSE};
    grpc_metadata_array_init(&c->md);
    grpc_call_error e;
    if (m == M_GENERIC) {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(g_server, &c->call, &c->details, &c->md, w->cq, w->cq,
                                     &c->t_new);
    } else {
        e = grpc_server_request_registered_call(g_server, g_methods[m], &c->call, &c->deadline,
                                                &c->md, m == M_UPLOAD ? NULL : &c->in, w->cq, w->cq,
                                                &c->t_new);
    }
    if (e != GRPC_CALL_OK) { /* only during shutdown */
        c->pending = 1;
        call_release(c);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        tag *t = ev.tag;
        switch (t->kind) {
        case T_NEW:
            on_new(t->call, ev.success);
            break;
        case T_RECV:
            on_recv(t->call, ev.success);
            break;
        case T_SEND:
            on_send(t->call, ev.success);
            break;
        case T_CLOSE:
            call_release(t->call);
            break;
        }
    }
    return NULL;
}

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    grpc_server_shutdown_and_notify(g_server, g_shutdown_cq, NULL);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: echo_server [--listen ADDR (127.0.0.1:0)] [--threads N (2)]\n"
               "  experiments: [--upload-delay-us N] [--quota-mb N] [--no-bdp]\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    long quota_mb = 0;
    bool bdp = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            g_nworkers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--upload-delay-us") == 0 && i + 1 < argc) {
            g_upload_delay_us = atol(argv[++i]);
        } else if (strcmp(argv[i], "--quota-mb") == 0 && i + 1 < argc) {
            quota_mb = atol(argv[++i]);
        } else if (strcmp(argv[i], "--no-bdp") == 0) {
            bdp = false;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (g_nworkers < 1 || g_nworkers > MAX_THREADS) {
        fprintf(stderr, "echo-server: --threads must be 1..%d\n", MAX_THREADS);
        return 2;
    }

    /* gRPC's threads inherit this mask; only our signal thread takes them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    grpc_init();
    g_ok_details = grpc_empty_slice();
    grpc_resource_quota *quota = NULL;
    grpc_arg args[3] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = 16 << 20},
    };
    size_t nargs = 1;
    if (!bdp)
        args[nargs++] = (grpc_arg){
            .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0};
    if (quota_mb > 0) {
        quota = grpc_resource_quota_create("echo-server");
        grpc_resource_quota_resize(quota, (size_t)quota_mb << 20);
        args[nargs].type = GRPC_ARG_POINTER;
        args[nargs].key = GRPC_ARG_RESOURCE_QUOTA;
        args[nargs].value.pointer.p = quota;
        args[nargs++].value.pointer.vtable = grpc_resource_quota_arg_vtable();
    }
    grpc_channel_args chargs = {.num_args = nargs, .args = args};
    g_server = grpc_server_create(&chargs, NULL);
    if (quota)
        grpc_resource_quota_unref(quota); /* the server holds its own reference */
    for (int m = 0; m < M_GENERIC; m++)
        g_methods[m] = grpc_server_register_method(
            g_server, method_path[m], NULL,
            m == M_UPLOAD ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    g_shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_register_completion_queue(g_server, g_shutdown_cq, NULL);
    for (int i = 0; i < g_nworkers; i++) {
        g_workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(g_server, g_workers[i].cq, NULL);
    }
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(g_server, listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        fprintf(stderr, "echo-server: cannot listen on %s\n", listen);
        return 1;
    }
    grpc_server_start(g_server);
    for (int i = 0; i < g_nworkers; i++) {
        for (int k = 0; k < POSTED_UNARY; k++)
            post_request(&g_workers[i], M_UNARY);
        for (int k = 0; k < POSTED_STREAM; k++) {
            post_request(&g_workers[i], M_UPLOAD);
            post_request(&g_workers[i], M_DOWNLOAD);
        }
        post_request(&g_workers[i], M_GENERIC);
    }
    for (int i = 0; i < g_nworkers; i++)
        pthread_create(&g_workers[i].thread, NULL, worker_main, &g_workers[i]);
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_main, &set);

    /* Print the bound port: host part of --listen, real port. */
    const char *colon = strrchr(listen, ':');
    int hostlen = colon ? (int)(colon - listen) : (int)strlen(listen);
    printf("echo-server listening grpc=%.*s:%d\n", hostlen, listen, port);
    fflush(stdout);

    pthread_join(sig_thread, NULL);
    gpr_timespec grace =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(2, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(g_shutdown_cq, NULL, grace, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        grpc_server_cancel_all_calls(g_server);
        grpc_completion_queue_pluck(g_shutdown_cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    }
    grpc_server_destroy(g_server);
    for (int i = 0; i < g_nworkers; i++)
        grpc_completion_queue_shutdown(g_workers[i].cq);
    for (int i = 0; i < g_nworkers; i++) {
        pthread_join(g_workers[i].thread, NULL);
        grpc_completion_queue_destroy(g_workers[i].cq);
    }
    grpc_completion_queue_shutdown(g_shutdown_cq);
    grpc_completion_queue_destroy(g_shutdown_cq);
    grpc_shutdown();
    return 0;
}
