/* loadgen.c - one load generator for bench-server, driving either the bare
 * echo server (bench/echo_server.c, --kind echo) or layercache-server with
 * real REAPI messages (--kind reapi).
 *
 * Everything is asynchronous on one completion queue driven by one thread:
 * concurrency is the number of calls kept in flight, not a thread count.
 *
 * Tests (--test):
 *   unary   calls kept in flight at each --concurrency for --duration seconds
 *           after --warmup: QPS, p50, p99. reapi: for each of --keys actions
 *           uploads one output blob, stores an ActionResult naming it and
 *           checks a GetActionResult hit (with the cache client, common/),
 *           then hammers GetActionResult over the keys in turn (every call
 *           must be OK). echo: the same GetActionResultRequest bytes to
 *           /lcbench.Echo/Unary.
 *   stream  one ByteStream Write of --size random bytes in --chunk messages
 *           with its real SHA-256 (echo: Upload, same messages), then a Read
 *           of it (echo: Download of --size in --chunk messages): MB/s each.
 *   write   --streams concurrent writes of distinct --size blobs: MB/s.
 *   read    a read only, of the blob a write with the same --seed stored
 *           (for profiling the read path alone).
 * Blob i of a run is a shared random prefix plus 64 bytes of its own, so
 * many distinct blobs cost one buffer and one prefix hash.
 *
 * Cluster (--peers HOST:PORT,...: the replicas' peer list): every call goes
 * straight to the first owner of its key by the replicas' placement
 * (common/placement.h), one channel per replica, as a worker given the
 * peer list does; without it every call goes to --target.
 *
 * Output: one "RESULT key=value ..." line per measurement on stdout.
 * MB = 10^6 bytes. Exit status 0 only if every call succeeded.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "cache_client.h"
#include "cache_client_int.h"
#include "google/bytestream/bytestream.pb-c.h"
#include "placement.h"

#define TAIL 64 /* bytes unique to each blob of a blobset */

static const char *const M_GET_AR = "/build.bazel.remote.execution.v2.ActionCache/GetActionResult";
static const char *const M_BS_WRITE = "/google.bytestream.ByteStream/Write";
static const char *const M_BS_READ = "/google.bytestream.ByteStream/Read";
static const char *const M_ECHO_UNARY = "/lcbench.Echo/Unary";
static const char *const M_ECHO_UPLOAD = "/lcbench.Echo/Upload";
static const char *const M_ECHO_DOWNLOAD = "/lcbench.Echo/Download";

typedef struct opts {
    const char *target;
    bool reapi;
    const char *test;
    int conc[16];
    int nconc;
    double duration, warmup;
    uint64_t size, chunk;
    int streams, channels;
    bool verify;
    uint64_t seed;
    const char *peers; /* cluster: route to owners */
    int keys;          /* unary: distinct action keys */
    const char *token; /* unary: sent as "authorization: Bearer <token>" */
} opts;

static opts g_o = {.duration = 5,
                   .warmup = 1,
                   .size = 256u << 20,
                   .chunk = 1u << 20,
                   .streams = 1,
                   .channels = 1,
                   .keys = 1};
static grpc_completion_queue *g_cq;
static grpc_metadata g_auth_md[1]; /* --token */
static char g_auth_value[4200];
static grpc_channel **g_ch;
static unsigned g_next_ch;
/* --peers: one channel per replica, ids as the peer list names them. */
static grpc_channel *g_peer_ch[LC_PLACEMENT_MAX_PEERS];
static char *g_peer_id[LC_PLACEMENT_MAX_PEERS];
static size_t g_np;

/* ---- small helpers ------------------------------------------------------ */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        die("out of memory");
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static void hex(const uint8_t *h, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[64] = '\0';
}

static gpr_timespec deadline_in(int seconds)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(seconds, GPR_TIMESPAN));
}

static grpc_channel *next_channel(void)
{
    return g_ch[g_next_ch++ % (unsigned)g_o.channels];
}

/* The channel of a call about key: its first owner's with --peers. */
static grpc_channel *channel_for(const uint8_t *key, size_t keylen)
{
    if (g_np == 0)
        return next_channel();
    size_t order[LC_PLACEMENT_MAX_PEERS];
    lc_placement_rank((const char *const *)g_peer_id, g_np, key, keylen, order);
    return g_peer_ch[order[0]];
}

static grpc_channel *channel_for_blob(const uint8_t hash[32])
{
    return channel_for(hash, 32);
}

static grpc_call *new_call(grpc_channel *ch, const char *method, int timeout_s)
{
    grpc_slice m = grpc_slice_from_static_string(method);
    grpc_call *c = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, g_cq, m, NULL,
                                            deadline_in(timeout_s), NULL);
    if (!c)
        die("cannot create a call to %s", method);
    return c;
}

static grpc_byte_buffer *bb_from(const void *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static grpc_byte_buffer *bb_pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static ProtobufCMessage *bb_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

static char *slice_str(grpc_slice s)
{
    char *p = grpc_slice_to_c_string(s);
    return p ? p : strdup("");
}

/* Every completion-queue tag: a handler and its object. */
typedef struct tag {
    void (*fn)(void *obj, bool ok);
    void *obj;
} tag;

/* Runs completions until *live drops to zero. */
static void drive(const int *live)
{
    while (*live > 0) {
        grpc_event ev = grpc_completion_queue_next(g_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            die("completion queue: unexpected event %d", (int)ev.type);
        tag *t = ev.tag;
        t->fn(t->obj, ev.success != 0);
    }
}

/* ---- blobs ---------------------------------------------------------------- */

/* size random bytes; blob i = base[0, prefix) + its own tail of size - prefix
 * bytes (<= TAIL), so digests cost one pass over the prefix. */
typedef struct blobset {
    uint8_t *base;
    uint64_t size, prefix;
    EVP_MD_CTX *prefix_ctx;
    uint64_t seed;
} blobset;

static void blobset_init(blobset *b, uint64_t size, uint64_t seed)
{
    b->size = size;
    b->prefix = size > TAIL ? size - TAIL : 0;
    b->seed = seed;
    b->base = malloc(b->prefix + 8);
    if (!b->base)
        die("cannot allocate %llu bytes", (unsigned long long)size);
    uint64_t s = seed;
    for (uint64_t i = 0; i < b->prefix; i += 8) {
        uint64_t v = splitmix(&s);
        memcpy(b->base + i, &v, 8);
    }
    b->prefix_ctx = EVP_MD_CTX_new();
    if (!b->prefix_ctx || !EVP_DigestInit_ex(b->prefix_ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(b->prefix_ctx, b->base, b->prefix))
        die("SHA-256 init failed");
}

static void blobset_free(blobset *b)
{
    free(b->base);
    EVP_MD_CTX_free(b->prefix_ctx);
    memset(b, 0, sizeof *b);
}

static void blob_tail(const blobset *b, int idx, uint8_t tail[TAIL])
{
    uint64_t s = b->seed ^ (0x5151ull * (uint64_t)(idx + 1)) ^ 0xa5a5a5a5ull;
    for (int i = 0; i < TAIL; i += 8) {
        uint64_t v = splitmix(&s);
        memcpy(tail + i, &v, 8);
    }
}

static void blob_hash(const blobset *b, int idx, uint8_t hash[32])
{
    uint8_t tail[TAIL];
    blob_tail(b, idx, tail);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned len = 0;
    if (!c || !EVP_MD_CTX_copy_ex(c, b->prefix_ctx) ||
        !EVP_DigestUpdate(c, tail, b->size - b->prefix) || !EVP_DigestFinal_ex(c, hash, &len))
        die("SHA-256 failed");
    EVP_MD_CTX_free(c);
}

static void random_uuid(char out[37])
{
    static uint64_t s;
    if (!s)
        s = g_o.seed ^ 0x1234567ull;
    uint64_t a = splitmix(&s), b = splitmix(&s);
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)((b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffull));
}

/* ---- streaming write (ByteStream.Write / Echo.Upload) ------------------ */

typedef struct wstream {
    struct wrun *run;
    int idx;
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *out, *resp;
    grpc_status_code status;
    grpc_slice details;
    uint64_t off;
    bool first;
    int pending;
    char resource[160];
    uint8_t tail[TAIL];
    tag t_send, t_status;
} wstream;

typedef struct wrun {
    const blobset *blobs;
    uint64_t chunk;
    int live;
    int errors;
} wrun;

/* The next WriteRequest: fields 1 (first message), 2, 3 (last) and the
 * data field 10 header in one slice, then the data itself from the shared
 * buffer and the tail, uncopied. */
static grpc_byte_buffer *write_message(wstream *w, bool *last)
{
    const blobset *b = w->run->blobs;
    uint64_t len = b->size - w->off < w->run->chunk ? b->size - w->off : w->run->chunk;
    *last = w->off + len == b->size;
    uint8_t hdr[200];
    size_t h = 0;
    if (w->first) {
        size_t rl = strlen(w->resource);
        hdr[h++] = (1 << 3) | 2;
        h += put_varint(hdr + h, rl);
        memcpy(hdr + h, w->resource, rl);
        h += rl;
    }
    if (w->off) {
        hdr[h++] = (2 << 3) | 0;
        h += put_varint(hdr + h, w->off);
    }
    if (*last) {
        hdr[h++] = (3 << 3) | 0;
        hdr[h++] = 1;
    }
    if (len) {
        hdr[h++] = (10 << 3) | 2;
        h += put_varint(hdr + h, len);
    }
    grpc_slice sl[3];
    size_t n = 0;
    sl[n++] = grpc_slice_from_copied_buffer((const char *)hdr, h);
    uint64_t end = w->off + len;
    if (w->off < b->prefix) {
        uint64_t pe = end < b->prefix ? end : b->prefix;
        sl[n++] = grpc_slice_from_static_buffer(b->base + w->off, (size_t)(pe - w->off));
    }
    if (end > b->prefix) {
        uint64_t ts = w->off > b->prefix ? w->off : b->prefix;
        sl[n++] = grpc_slice_from_static_buffer(w->tail + (ts - b->prefix), (size_t)(end - ts));
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, n);
    for (size_t i = 0; i < n; i++)
        grpc_slice_unref(sl[i]);
    w->off = end;
    w->first = false;
    return bb;
}

static void wstream_send(wstream *w)
{
    bool last;
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (w->first)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    w->out = write_message(w, &last);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = w->out;
    if (last)
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    w->pending++;
    if (grpc_call_start_batch(w->call, ops, n, &w->t_send, NULL) != GRPC_CALL_OK)
        die("write: cannot start a send batch");
}

static void wstream_release(wstream *w)
{
    if (--w->pending > 0)
        return;
    if (w->status != GRPC_STATUS_OK) {
        if (w->run->errors++ < 3) { /* the first few say enough */
            char *d = slice_str(w->details);
            fprintf(stderr, "loadgen: write %s: status %d: %s\n", w->resource, (int)w->status, d);
            free(d);
        }
    } else if (g_o.reapi) {
        Google__Bytestream__WriteResponse *r = (Google__Bytestream__WriteResponse *)bb_unpack(
            &google__bytestream__write_response__descriptor, w->resp);
        if (!r || (uint64_t)r->committed_size != w->run->blobs->size) {
            fprintf(stderr, "loadgen: write %s: committed_size %lld, expected %llu\n", w->resource,
                    r ? (long long)r->committed_size : -1LL,
                    (unsigned long long)w->run->blobs->size);
            w->run->errors++;
        }
        if (r)
            protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    if (w->resp)
        grpc_byte_buffer_destroy(w->resp);
    grpc_slice_unref(w->details);
    grpc_metadata_array_destroy(&w->init_md);
    grpc_metadata_array_destroy(&w->trail_md);
    grpc_call_unref(w->call);
    w->run->live--;
}

static void wstream_on_send(void *obj, bool ok)
{
    wstream *w = obj;
    grpc_byte_buffer_destroy(w->out);
    w->out = NULL;
    if (ok && w->off < w->run->blobs->size)
        wstream_send(w);
    /* !ok: the stream broke; its status tells why */
    wstream_release(w);
}

static void wstream_on_status(void *obj, bool ok)
{
    (void)ok;
    wstream_release(obj);
}

static void wstream_start(wstream *w, wrun *run, int idx)
{
    memset(w, 0, sizeof *w);
    w->run = run;
    w->idx = idx;
    w->first = true;
    w->t_send = (tag){wstream_on_send, w};
    w->t_status = (tag){wstream_on_status, w};
    blob_tail(run->blobs, idx, w->tail);
    uint8_t h[32];
    char hx[65], uuid[37];
    blob_hash(run->blobs, idx, h);
    hex(h, hx);
    random_uuid(uuid);
    snprintf(w->resource, sizeof w->resource, "uploads/%s/blobs/%s/%llu", uuid, hx,
             (unsigned long long)run->blobs->size);
    grpc_metadata_array_init(&w->init_md);
    grpc_metadata_array_init(&w->trail_md);
    w->call = new_call(g_o.reapi ? channel_for_blob(h) : next_channel(),
                       g_o.reapi ? M_BS_WRITE : M_ECHO_UPLOAD, 1800);
    run->live++;

    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[0].data.recv_initial_metadata.recv_initial_metadata = &w->init_md;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &w->resp;
    ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[2].data.recv_status_on_client.trailing_metadata = &w->trail_md;
    ops[2].data.recv_status_on_client.status = &w->status;
    ops[2].data.recv_status_on_client.status_details = &w->details;
    w->pending++;
    if (grpc_call_start_batch(w->call, ops, 3, &w->t_status, NULL) != GRPC_CALL_OK)
        die("write: cannot start the status batch");
    wstream_send(w);
}

/* Writes blobs 0..n-1 of the set concurrently; returns seconds taken. */
static double run_writes(const blobset *blobs, int n, uint64_t chunk)
{
    wrun run = {.blobs = blobs, .chunk = chunk};
    wstream *ws = xcalloc((size_t)n, sizeof *ws);
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        wstream_start(&ws[i], &run, i);
    drive(&run.live);
    double t = now_s() - t0;
    free(ws);
    if (run.errors)
        die("%d of %d writes failed", run.errors, n);
    return t;
}

/* ---- streaming read (ByteStream.Read / Echo.Download) ------------------- */

typedef struct rstream {
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *req, *in;
    grpc_status_code status;
    grpc_slice details;
    uint64_t bytes, msgs;
    int pending, live;
    bool bad_frame;
    EVP_MD_CTX *sha; /* --verify */
    tag t_start, t_recv, t_status;
} rstream;

/* Data bytes in one ReadResponse-framed message; optionally hashes them.
 * Returns false if the message is not a bare field-10 frame. */
static bool read_frame(rstream *r, grpc_byte_buffer *bb)
{
    size_t total = grpc_byte_buffer_length(bb);
    if (total == 0)
        return true;
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return false;
    uint8_t hdr[11];
    size_t have = 0, hlen = 0;
    uint64_t dlen = 0;
    grpc_slice s;
    bool ok = false;
    while (grpc_byte_buffer_reader_next(&rd, &s)) {
        const uint8_t *p = GRPC_SLICE_START_PTR(s);
        size_t len = GRPC_SLICE_LENGTH(s), i = 0;
        while (hlen == 0 && i < len && have < sizeof hdr) { /* header still incomplete */
            hdr[have++] = p[i++];
            if (have >= 2 && !(hdr[have - 1] & 0x80)) {
                if (hdr[0] != ((10 << 3) | 2))
                    break;
                for (size_t k = have - 1; k >= 1; k--)
                    dlen = dlen << 7 | (hdr[k] & 0x7f);
                hlen = have;
            }
        }
        if (hlen && r->sha && i < len)
            EVP_DigestUpdate(r->sha, p + i, len - i);
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_reader_destroy(&rd);
    if (hlen && hlen + dlen == total) {
        r->bytes += dlen;
        ok = true;
    }
    return ok;
}

static void rstream_release(rstream *r)
{
    if (--r->pending == 0)
        r->live--;
}

static void rstream_post_recv(rstream *r)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &r->in;
    r->pending++;
    if (grpc_call_start_batch(r->call, &op, 1, &r->t_recv, NULL) != GRPC_CALL_OK)
        die("read: cannot start a receive batch");
}

static void rstream_on_recv(void *obj, bool ok)
{
    rstream *r = obj;
    if (ok && r->in) {
        if (!read_frame(r, r->in))
            r->bad_frame = true;
        r->msgs++;
        grpc_byte_buffer_destroy(r->in);
        r->in = NULL;
        rstream_post_recv(r);
    }
    rstream_release(r);
}

static void rstream_on_other(void *obj, bool ok)
{
    (void)ok;
    rstream_release(obj);
}

/* Reads blob idx of the set (reapi) or size bytes (echo); returns seconds. */
static double run_read(const blobset *blobs, int idx, uint64_t chunk)
{
    rstream r;
    memset(&r, 0, sizeof r);
    r.t_start = (tag){rstream_on_other, &r};
    r.t_recv = (tag){rstream_on_recv, &r};
    r.t_status = (tag){rstream_on_other, &r};
    grpc_metadata_array_init(&r.init_md);
    grpc_metadata_array_init(&r.trail_md);
    uint8_t want[32];
    if (g_o.reapi) {
        char hx[65], res[120];
        blob_hash(blobs, idx, want);
        hex(want, hx);
        snprintf(res, sizeof res, "blobs/%s/%llu", hx, (unsigned long long)blobs->size);
        Google__Bytestream__ReadRequest rq = GOOGLE__BYTESTREAM__READ_REQUEST__INIT;
        rq.resource_name = res;
        r.req = bb_pack(&rq.base);
    } else {
        uint8_t rq[16];
        for (int i = 0; i < 8; i++) {
            rq[i] = (uint8_t)(blobs->size >> (8 * i));
            rq[8 + i] = (uint8_t)(chunk >> (8 * i));
        }
        r.req = bb_from(rq, sizeof rq);
    }
    if (g_o.verify) {
        r.sha = EVP_MD_CTX_new();
        if (!r.sha || !EVP_DigestInit_ex(r.sha, EVP_sha256(), NULL))
            die("SHA-256 init failed");
    }
    double t0 = now_s();
    r.call = new_call(g_o.reapi ? channel_for_blob(want) : next_channel(),
                      g_o.reapi ? M_BS_READ : M_ECHO_DOWNLOAD, 1800);
    r.live = 1;
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = r.req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &r.init_md;
    r.pending++;
    if (grpc_call_start_batch(r.call, ops, 4, &r.t_start, NULL) != GRPC_CALL_OK)
        die("read: cannot start the call");
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &r.trail_md;
    ops[0].data.recv_status_on_client.status = &r.status;
    ops[0].data.recv_status_on_client.status_details = &r.details;
    r.pending++;
    if (grpc_call_start_batch(r.call, ops, 1, &r.t_status, NULL) != GRPC_CALL_OK)
        die("read: cannot start the status batch");
    rstream_post_recv(&r);
    drive(&r.live);
    double t = now_s() - t0;

    if (r.status != GRPC_STATUS_OK) {
        char *d = slice_str(r.details);
        die("read: status %d: %s", (int)r.status, d);
    }
    if (r.bad_frame)
        die("read: a response message was not a ReadResponse with data only");
    if (r.bytes != blobs->size)
        die("read: got %llu bytes, expected %llu", (unsigned long long)r.bytes,
            (unsigned long long)blobs->size);
    if (r.sha) {
        uint8_t got[32];
        unsigned len;
        EVP_DigestFinal_ex(r.sha, got, &len);
        EVP_MD_CTX_free(r.sha);
        if (g_o.reapi && memcmp(got, want, 32) != 0)
            die("read: data does not match the blob's SHA-256");
        printf("VERIFY kind=%s read=ok bytes=%llu msgs=%llu\n", g_o.reapi ? "reapi" : "echo",
               (unsigned long long)r.bytes, (unsigned long long)r.msgs);
    }
    grpc_byte_buffer_destroy(r.req);
    grpc_slice_unref(r.details);
    grpc_metadata_array_destroy(&r.init_md);
    grpc_metadata_array_destroy(&r.trail_md);
    grpc_call_unref(r.call);
    return t;
}

/* ---- unary load ------------------------------------------------------------ */

/* The requests of the unary test: one per key, with its channel. */
typedef struct ureqs {
    grpc_slice *req;
    grpc_channel **ch;
    int n;
} ureqs;

typedef struct urun {
    const char *method;
    const ureqs *reqs;
    unsigned next;
    double t_measure, t_end;
    int live;
    uint64_t errors, calls;
    uint64_t *lat; /* ns, calls started and finished inside the window */
    size_t nlat, caplat;
} urun;

typedef struct ucall {
    urun *run;
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *req, *resp;
    grpc_status_code status;
    grpc_slice details;
    double start;
    tag t;
} ucall;

static void ucall_start(ucall *u)
{
    const ureqs *rq = u->run->reqs;
    unsigned k = u->run->next++ % (unsigned)rq->n;
    u->start = now_s();
    grpc_metadata_array_init(&u->init_md);
    grpc_metadata_array_init(&u->trail_md);
    u->req = grpc_raw_byte_buffer_create(&rq->req[k], 1);
    u->resp = NULL;
    u->call = new_call(rq->ch[k] != NULL ? rq->ch[k] : next_channel(), u->run->method, 30);
    grpc_op ops[6];
    lc__cache_unary_ops(ops, g_auth_md, g_o.token != NULL ? 1 : 0, u->req, &u->resp, &u->init_md,
                        &u->trail_md, &u->status, &u->details);
    if (grpc_call_start_batch(u->call, ops, 6, &u->t, NULL) != GRPC_CALL_OK)
        die("unary: cannot start a call");
}

static void ucall_done(void *obj, bool ok)
{
    ucall *u = obj;
    urun *run = u->run;
    double t = now_s();
    if (!ok || u->status != GRPC_STATUS_OK || !u->resp) {
        if (run->errors++ == 0) {
            char *d = slice_str(u->details);
            fprintf(stderr, "loadgen: %s: status %d: %s\n", run->method, (int)u->status, d);
            free(d);
        }
    } else if (u->start >= run->t_measure && t <= run->t_end) {
        run->calls++;
        if (run->nlat == run->caplat) {
            run->caplat = run->caplat ? run->caplat * 2 : 65536;
            run->lat = realloc(run->lat, run->caplat * sizeof *run->lat);
            if (!run->lat)
                die("out of memory");
        }
        run->lat[run->nlat++] = (uint64_t)((t - u->start) * 1e9);
    }
    grpc_byte_buffer_destroy(u->req);
    if (u->resp)
        grpc_byte_buffer_destroy(u->resp);
    grpc_slice_unref(u->details);
    grpc_metadata_array_destroy(&u->init_md);
    grpc_metadata_array_destroy(&u->trail_md);
    grpc_call_unref(u->call);
    if (t < run->t_end)
        ucall_start(u);
    else
        run->live--;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run_unary(const char *method, const ureqs *reqs, int conc)
{
    urun run = {.method = method, .reqs = reqs};
    ucall *us = xcalloc((size_t)conc, sizeof *us);
    double t0 = now_s();
    run.t_measure = t0 + g_o.warmup;
    run.t_end = run.t_measure + g_o.duration;
    for (int i = 0; i < conc; i++) {
        us[i].run = &run;
        us[i].t = (tag){ucall_done, &us[i]};
        run.live++;
        ucall_start(&us[i]);
    }
    drive(&run.live);
    if (run.errors)
        die("%llu of the %s calls failed", (unsigned long long)run.errors, method);
    qsort(run.lat, run.nlat, sizeof *run.lat, cmp_u64);
    double p50 = run.nlat ? (double)run.lat[run.nlat / 2] / 1e3 : 0;
    double p99 = run.nlat ? (double)run.lat[(size_t)((double)run.nlat * 0.99)] / 1e3 : 0;
    printf("RESULT kind=%s test=unary conc=%d qps=%.0f p50_us=%.1f p99_us=%.1f calls=%llu "
           "errors=0\n",
           g_o.reapi ? "reapi" : "echo", conc, (double)run.calls / g_o.duration, p50, p99,
           (unsigned long long)run.calls);
    fflush(stdout);
    free(run.lat);
    free(us);
}

/* reapi: per key, one output blob and an ActionResult naming it, stored and
 * checked to be a hit with the cache client (routed with --peers). Fills
 * the packed GetActionResultRequest of each key (both kinds send these
 * bytes) and its channel (the key's first owner with --peers, else NULL:
 * the next channel). */
static void unary_setup(ureqs *rq)
{
    rq->n = g_o.keys;
    rq->req = xcalloc((size_t)rq->n, sizeof *rq->req);
    rq->ch = xcalloc((size_t)rq->n, sizeof *rq->ch);
    lc_cache_client *cl = NULL;
    lc_err err = {0};
    if (g_o.reapi) {
        char target[300];
        snprintf(target, sizeof target, "grpc://%s", g_o.target);
        lc_cache_client_options co = {.peers = g_o.peers, .deadline_ms = 60000, .token = g_o.token};
        if (lc_cache_client_open(g_o.peers ? NULL : target, &co, &cl, &err) < 0)
            die("%s", err.msg);
    }
    for (int k = 0; k < rq->n; k++) {
        char action[96], ahx[65];
        snprintf(action, sizeof action, "lcbench action %llu %d", (unsigned long long)g_o.seed, k);
        lc_digest ad;
        lc_digest_of(action, strlen(action), &ad);
        lc_digest_hex(&ad, ahx);
        Build__Bazel__Remote__Execution__V2__Digest adig =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
        adig.hash = ahx;
        adig.size_bytes = ad.size;
        Build__Bazel__Remote__Execution__V2__GetActionResultRequest get =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__GET_ACTION_RESULT_REQUEST__INIT;
        get.instance_name = "";
        get.action_digest = &adig;
        size_t len = protobuf_c_message_get_packed_size(&get.base);
        rq->req[k] = grpc_slice_malloc(len);
        protobuf_c_message_pack(&get.base, GRPC_SLICE_START_PTR(rq->req[k]));
        if (!g_o.reapi)
            continue;
        uint8_t akey[LC_PLACEMENT_MAX_KEY];
        rq->ch[k] =
            g_np ? channel_for(akey, lc_placement_action_key("", &ad, akey, sizeof akey)) : NULL;

        uint8_t out[4096];
        uint64_t s = g_o.seed ^ (0x77ull + (uint64_t)k);
        for (size_t i = 0; i < sizeof out; i += 8) {
            uint64_t v = splitmix(&s);
            memcpy(out + i, &v, 8);
        }
        lc_digest od;
        lc_digest_of(out, sizeof out, &od);
        char ohx[65];
        lc_digest_hex(&od, ohx);
        if (lc_cache_client_write_buffer(cl, &od, out, &err) < 0)
            die("output blob: %s", err.msg);
        Build__Bazel__Remote__Execution__V2__Digest odig =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
        odig.hash = ohx;
        odig.size_bytes = od.size;
        Build__Bazel__Remote__Execution__V2__OutputFile of =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__OUTPUT_FILE__INIT;
        of.path = "out/result.bin";
        of.digest = &odig;
        Build__Bazel__Remote__Execution__V2__OutputFile *ofs[1] = {&of};
        lc_action_result ar = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
        ar.n_output_files = 1;
        ar.output_files = ofs;
        if (lc_cache_client_update_action_result(cl, &ad, &ar, &err) < 0)
            die("%s", err.msg);
        lc_action_result *got = NULL;
        if (lc_cache_client_get_action_result(cl, &ad, &got, &err) < 0)
            die("%s (expected a hit after the update)", err.msg);
        if (got->n_output_files != 1 || !got->output_files[0]->digest ||
            strcmp(got->output_files[0]->digest->hash, ohx) != 0)
            die("GetActionResult returned a different ActionResult than was stored");
        lc_action_result_free(&got);
    }
    lc_cache_client_close(&cl);
}

/* ---- main ------------------------------------------------------------------- */

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024;
        break;
    case 'm':
    case 'M':
        v *= 1024 * 1024;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024 * 1024;
        break;
    case '\0':
        break;
    default:
        die("bad size %s (use a number with k, M or G: binary units)", s);
    }
    if (v < 0)
        die("bad size %s", s);
    return (uint64_t)v;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen --target HOST:PORT --kind echo|reapi --test unary|stream|write|read\n"
            "  [--concurrency 1,16,64] [--duration 5] [--warmup 1]      unary\n"
            "  [--size 256M] [--chunk 1M] [--streams 1] [--verify]     stream, write, read\n"
            "  [--channels 1] [--seed N] [--keys 1] [--token T]         --keys, --token: unary\n"
            "  [--peers HOST:PORT,...]   cluster: each call to its key's first owner\n");
}

int main(int argc, char **argv)
{
    const char *kind = NULL;
    g_o.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--verify") == 0) {
            g_o.verify = true;
            continue;
        } else if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--target") == 0) {
            g_o.target = v;
        } else if (strcmp(a, "--kind") == 0) {
            kind = v;
        } else if (strcmp(a, "--test") == 0) {
            g_o.test = v;
        } else if (strcmp(a, "--concurrency") == 0) {
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && g_o.nconc < 16;
                 t = strtok_r(NULL, ",", &save))
                g_o.conc[g_o.nconc++] = atoi(t);
            free(copy);
        } else if (strcmp(a, "--duration") == 0) {
            g_o.duration = atof(v);
        } else if (strcmp(a, "--warmup") == 0) {
            g_o.warmup = atof(v);
        } else if (strcmp(a, "--size") == 0) {
            g_o.size = parse_size(v);
        } else if (strcmp(a, "--chunk") == 0) {
            g_o.chunk = parse_size(v);
        } else if (strcmp(a, "--streams") == 0) {
            g_o.streams = atoi(v);
        } else if (strcmp(a, "--channels") == 0) {
            g_o.channels = atoi(v);
        } else if (strcmp(a, "--peers") == 0) {
            g_o.peers = v;
        } else if (strcmp(a, "--keys") == 0) {
            g_o.keys = atoi(v);
        } else if (strcmp(a, "--token") == 0) {
            g_o.token = v;
        } else if (strcmp(a, "--seed") == 0) {
            g_o.seed = strtoull(v, NULL, 0);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!g_o.target && g_o.peers) { /* the first peer serves what has no key */
        static char first[300];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(g_o.peers, ","), g_o.peers);
        g_o.target = first;
    }
    if (!g_o.target || !kind || !g_o.test) {
        usage(stderr);
        return 2;
    }
    if (strcmp(kind, "reapi") != 0 && strcmp(kind, "echo") != 0)
        die("--kind must be echo or reapi");
    g_o.reapi = strcmp(kind, "reapi") == 0;
    if (g_o.nconc == 0)
        g_o.conc[g_o.nconc++] = 64;
    if (g_o.channels < 1 || g_o.streams < 1 || g_o.chunk == 0 || g_o.duration <= 0 || g_o.keys < 1)
        die("--channels, --streams, --chunk, --duration and --keys must be positive");

    if (g_o.token != NULL) {
        snprintf(g_auth_value, sizeof g_auth_value, "Bearer %s", g_o.token);
        g_auth_md[0].key = grpc_slice_from_static_string("authorization");
        g_auth_md[0].value = grpc_slice_from_static_string(g_auth_value);
    }
    grpc_init();
    g_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = 64 << 20},
        /* each channel its own TCP connection */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
    };
    grpc_channel_args chargs = {.num_args = 2, .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    g_ch = xcalloc((size_t)g_o.channels, sizeof *g_ch);
    for (int i = 0; i < g_o.channels; i++)
        g_ch[i] = grpc_channel_create(g_o.target, creds, &chargs);
    if (g_o.peers) {
        char *copy = strdup(g_o.peers), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && g_np < LC_PLACEMENT_MAX_PEERS;
             t = strtok_r(NULL, ",", &save)) {
            g_peer_id[g_np] = strdup(t);
            g_peer_ch[g_np++] = grpc_channel_create(t, creds, &chargs);
        }
        free(copy);
    }
    grpc_channel_credentials_release(creds);

    const char *k = g_o.reapi ? "reapi" : "echo";
    if (strcmp(g_o.test, "unary") == 0) {
        ureqs rq;
        unary_setup(&rq);
        for (int i = 0; i < g_o.nconc; i++)
            run_unary(g_o.reapi ? M_GET_AR : M_ECHO_UNARY, &rq, g_o.conc[i]);
        for (int i = 0; i < rq.n; i++)
            grpc_slice_unref(rq.req[i]);
        free(rq.req);
        free(rq.ch);
    } else if (strcmp(g_o.test, "stream") == 0 || strcmp(g_o.test, "write") == 0 ||
               strcmp(g_o.test, "read") == 0) {
        bool with_write = strcmp(g_o.test, "read") != 0;
        bool with_read = strcmp(g_o.test, "write") != 0;
        blobset b;
        blobset_init(&b, g_o.size, g_o.seed);
        double t;
        if (with_write) {
            t = run_writes(&b, g_o.streams, g_o.chunk);
            double total = (double)g_o.size * g_o.streams;
            uint8_t h0[32];
            char h0x[65];
            blob_hash(&b, 0, h0);
            hex(h0, h0x);
            printf("RESULT kind=%s test=write streams=%d size=%llu chunk=%llu secs=%.3f "
                   "mbps=%.1f hash0=%s\n",
                   k, g_o.streams, (unsigned long long)g_o.size, (unsigned long long)g_o.chunk, t,
                   total / t / 1e6, h0x);
            fflush(stdout);
        }
        if (with_read) {
            t = run_read(&b, 0, g_o.chunk);
            printf("RESULT kind=%s test=read streams=1 size=%llu chunk=%llu secs=%.3f mbps=%.1f\n",
                   k, (unsigned long long)g_o.size, (unsigned long long)g_o.chunk, t,
                   (double)g_o.size / t / 1e6);
            fflush(stdout);
        }
        blobset_free(&b);
    } else {
        die("unknown --test %s", g_o.test);
    }

    for (int i = 0; i < g_o.channels; i++)
        grpc_channel_destroy(g_ch[i]);
    free(g_ch);
    for (size_t i = 0; i < g_np; i++) {
        grpc_channel_destroy(g_peer_ch[i]);
        free(g_peer_id[i]);
    }
    grpc_completion_queue_shutdown(g_cq);
    while (grpc_completion_queue_next(g_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(g_cq);
    grpc_shutdown();
    return 0;
}
