/* http.c - see http.h. */
#include "http.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http_request.h"
#include "log.h"
#include "metrics.h"
#include "observe.h"

#define MOD "http"

struct lc_http {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_timer_t snap;
    pthread_t thread;
    lc_http_ctx ctx;
    lc_metrics *metrics;
    lc_dash *dash;
    int n_conns;
    bool stopping;
    bool loop_up, listener_up, stop_up, snap_up;
};

enum conn_state { READING, WRITING, LINGERING };

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    lc_http *h;
    enum conn_state state;
    int open_handles; /* freed when both handles are closed */
    bool closing;
    char *out; /* the response being written */
    size_t len;
    char buf[LC_HTTP_MAX_REQUEST];
} conn;

/* ---- connection lifetime ----------------------------------------------------- */

static void conn_handle_closed(uv_handle_t *hd)
{
    conn *c = hd->data;
    if (--c->open_handles > 0)
        return;
    c->h->n_conns--;
    free(c->out);
    free(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_timer(uv_timer_t *t);

static void after_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    (void)status;
    if (c->closing)
        return;
    /* Keep reading (and dropping) what the client still sends for a while:
     * closing with unread data would reset the connection and could destroy
     * the response before the client reads it. */
    c->state = LINGERING;
    uv_timer_start(&c->timer, on_timer, LC_HTTP_LINGER_MS, 0);
}

static void after_write(uv_write_t *req, int status)
{
    conn *c = req->data;
    free(c->out);
    c->out = NULL;
    if (c->closing)
        return;
    if (status < 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, after_shutdown) < 0)
        conn_close(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Sends one response and ends the connection. body is copied; extra is more
 * header lines, each ending in CRLF. */
static void respond(conn *c, int status, const char *type, const void *body, size_t len,
                    const char *extra, bool head_only)
{
    if (c->state != READING)
        return;
    c->state = WRITING;
    uv_timer_stop(&c->timer);
    char hdr[1024];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n%s\r\n",
                     status, reason(status), type, len, extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(hdr)) {
        conn_close(c);
        return;
    }
    size_t blen = head_only ? 0 : len;
    c->out = malloc((size_t)n + blen);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)n);
    if (blen > 0)
        memcpy(c->out + n, body, blen);
    c->len = (size_t)n + blen;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->len);
    c->wr.data = c;
    c->sd.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, after_write) < 0) {
        free(c->out);
        c->out = NULL;
        conn_close(c);
    }
}

static void respond_text(conn *c, int status, const char *text, const char *extra)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), extra, false);
}

/* ---- pages ------------------------------------------------------------------------ */

static json_t *counters_json(const lc_stats_instance *in)
{
    uint64_t looked = in->ac_hits + in->ac_misses;
    return json_pack("{s:I,s:I,s:f,s:I,s:I,s:I,s:f,s:I}", "ac_hits", (json_int_t)in->ac_hits,
                     "ac_misses", (json_int_t)in->ac_misses, "hit_rate",
                     looked ? (double)in->ac_hits / (double)looked : 0.0, "ac_updates",
                     (json_int_t)in->ac_updates, "bytes_in", (json_int_t)in->bytes_written,
                     "bytes_out", (json_int_t)in->bytes_read, "build_seconds_saved",
                     in->build_seconds_saved, "ac_evictions", (json_int_t)in->evictions);
}

static char *status_json(lc_http *h)
{
    const lc_http_ctx *x = &h->ctx;
    json_t *root = json_pack("{s:s,s:I}", "version", LC_VERSION, "uptime_seconds",
                             (json_int_t)(x->stats ? lc_stats_uptime(x->stats) : 0));
    if (root == NULL)
        return NULL;
    if (x->store != NULL) {
        lc_store_totals t;
        lc_store_get_totals(x->store, &t);
        json_object_set_new(root, "store",
                            json_pack("{s:I,s:I,s:I}", "blobs", (json_int_t)t.blobs, "blob_bytes",
                                      (json_int_t)t.blob_bytes, "ac_entries",
                                      (json_int_t)t.ac_entries));
    }
    json_object_set_new(root, "limits",
                        json_pack("{s:I,s:I,s:i,s:i}", "max_size_bytes", (json_int_t)x->max_bytes,
                                  "max_age_seconds", (json_int_t)x->max_age,
                                  "http_max_request_bytes", LC_HTTP_MAX_REQUEST,
                                  "http_header_timeout_ms", LC_HTTP_HEADER_TIMEOUT_MS));
    lc_stats_snapshot snap;
    if (x->stats != NULL && lc_stats_snapshot_take(x->stats, &snap) == 0) {
        json_t *totals = counters_json(&snap.total);
        if (totals != NULL) {
            json_object_set_new(totals, "blobs_evicted",
                                json_integer((json_int_t)snap.blobs_evicted));
            json_object_set_new(totals, "evicted_bytes",
                                json_integer((json_int_t)snap.blob_bytes_evicted));
        }
        json_object_set_new(root, "totals", totals);
        json_t *insts = json_array();
        for (size_t i = 0; i < snap.n_instances; i++) {
            json_t *o = counters_json(&snap.instances[i]);
            if (o != NULL)
                json_object_set_new(o, "name", json_string(snap.instances[i].name));
            json_array_append_new(insts, o);
        }
        json_object_set_new(root, "instances", insts);
        json_t *methods = json_array();
        for (size_t i = 0; i < snap.n_methods; i++)
            json_array_append_new(methods, json_pack("{s:s,s:I,s:I}", "name", snap.methods[i].name,
                                                     "calls", (json_int_t)snap.methods[i].calls,
                                                     "errors", (json_int_t)snap.methods[i].errors));
        json_object_set_new(root, "methods", methods);
        lc_stats_snapshot_free(&snap);
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

/* A generated body (malloc'd, NULL = out of memory) as a response. */
static void respond_owned(conn *c, char *body, size_t len, const char *type, bool head)
{
    if (body == NULL) {
        respond_text(c, 500, "out of memory\n", NULL);
        return;
    }
    respond(c, 200, type, body, len, NULL, head);
    free(body);
}

static void route(conn *c, const lc_http_request *req)
{
    lc_http *h = c->h;
    bool head = strcmp(req->method, "HEAD") == 0;
    if (!head && strcmp(req->method, "GET") != 0) {
        respond_text(c, 405, "only GET and HEAD are served here\n", "Allow: GET, HEAD\r\n");
        return;
    }
    const char *p = req->path;
    if (strcmp(p, "/metrics") == 0) {
        lc_metrics_source src = {.stats = h->ctx.stats,
                                 .store = h->ctx.store,
                                 .max_bytes = h->ctx.max_bytes,
                                 .max_age = h->ctx.max_age};
        size_t len = 0;
        char *body = lc_metrics_render(h->metrics, &src, &len);
        respond_owned(c, body, len, "text/plain; version=0.0.4; charset=utf-8", head);
    } else if (strcmp(p, "/status") == 0) {
        char *body = status_json(h);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else if (strcmp(p, "/api/history") == 0) {
        char *body = lc_dash_history_json(h->dash, h->ctx.snapshot_ms / 1000);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else if (strcmp(p, "/api/keys") == 0) {
        char *body = lc_dash_keys_json(h->dash);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else if (strcmp(p, "/") == 0 || strcmp(p, "/index.html") == 0) {
        size_t len = 0;
        const unsigned char *page = lc_dash_page(&len);
        /* Everything is inline: forbid the page from loading anything else. */
        respond(c, 200, "text/html; charset=utf-8", page, len,
                "Content-Security-Policy: default-src 'self'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; img-src data:\r\n",
                head);
    } else if (strcmp(p, "/healthz") == 0) {
        respond(c, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL, head);
    } else {
        respond_text(c, 404, "not found: try /, /metrics or /status\n", NULL);
    }
}

/* ---- reading ----------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    conn *c = hd->data;
    (void)suggested;
    size_t len = c->state == READING ? c->len : 0; /* afterwards: read into buf and drop */
    *b = uv_buf_init(c->buf + len, (unsigned)(sizeof(c->buf) - len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn *c = s->data;
    (void)b;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->state != READING)
        return;
    c->len += (size_t)nread;
    lc_http_request req;
    int r = lc_http_request_parse(c->buf, c->len, &req);
    if (r > 0) {
        LC_DEBUG(MOD, "%s %s", req.method, req.path);
        route(c, &req);
    } else if (r < 0) {
        respond_text(c, 400, "malformed request\n", NULL);
    } else if (c->len >= sizeof(c->buf)) {
        respond_text(c, 431, "request head too large\n", NULL);
    }
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->state == READING)
        respond_text(c, 408, "request not received in time\n", NULL);
    else
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    lc_http *h = server->data;
    if (status < 0 || h->stopping)
        return;
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return; /* the pending connection waits; the next accept may have memory */
    c->h = h;
    uv_tcp_init(&h->loop, &c->tcp);
    uv_timer_init(&h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    h->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || h->n_conns > LC_HTTP_MAX_CONNS ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LC_HTTP_HEADER_TIMEOUT_MS, 0);
}

/* ---- loop thread ------------------------------------------------------------------- */

static void on_snapshot(uv_timer_t *t)
{
    lc_http *h = t->data;
    lc_dash_snapshot(h->dash);
}

static void close_any(uv_handle_t *hd, void *arg)
{
    lc_http *h = arg;
    if (uv_is_closing(hd))
        return;
    if (hd == (uv_handle_t *)&h->listener || hd == (uv_handle_t *)&h->stop ||
        hd == (uv_handle_t *)&h->snap) {
        uv_close(hd, NULL);
        return;
    }
    conn_close(hd->data); /* a connection's tcp or timer handle */
}

static void on_stop(uv_async_t *a)
{
    lc_http *h = a->data;
    h->stopping = true;
    uv_walk(&h->loop, close_any, h);
}

static void *loop_main(void *arg)
{
    lc_http *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, char *host, size_t hostcap,
                      lc_err *err)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--http-listen '%s' is not HOST:PORT (e.g. 0.0.0.0:9090, [::1]:0)", addr);
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--http-listen '%s': bad port", addr);
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= hostcap)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--http-listen '%s': host too long", addr);
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    char ip[64];
    int rc;
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']' || hlen - 2 >= sizeof(ip))
            return lc_err_set(err, LC_INVALID_ARGUMENT, "--http-listen '%s': bad IPv6 host", addr);
        memcpy(ip, host + 1, hlen - 2);
        ip[hlen - 2] = '\0';
        rc = uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)ss);
    } else {
        rc = uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, (int)port,
                         (struct sockaddr_in *)ss);
    }
    if (rc < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--http-listen '%s': the host must be a numeric IPv4 address or "
                          "[IPv6] address",
                          addr);
    return 0;
}

static void free_h(lc_http *h)
{
    if (h->loop_up) {
        /* Close what start opened and let the loop finish the closes. */
        if (h->listener_up && !uv_is_closing((uv_handle_t *)&h->listener))
            uv_close((uv_handle_t *)&h->listener, NULL);
        if (h->stop_up && !uv_is_closing((uv_handle_t *)&h->stop))
            uv_close((uv_handle_t *)&h->stop, NULL);
        if (h->snap_up && !uv_is_closing((uv_handle_t *)&h->snap))
            uv_close((uv_handle_t *)&h->snap, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&h->loop) != 0)
            LC_WARN(MOD, "the HTTP loop still had open handles at exit");
    }
    lc_observe_reset();
    lc_dash_free(&h->dash);
    lc_metrics_free(&h->metrics);
    free(h);
}

int lc_http_start(const char *addr, const lc_http_ctx *ctx, lc_http **out, char *bound, size_t cap,
                  lc_err *err)
{
    char host[256];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = parse_addr(addr, &ss, host, sizeof(host), err);
    if (rc < 0)
        return rc;
    lc_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory starting HTTP");
    h->ctx = *ctx;
    if (h->ctx.snapshot_ms <= 0)
        h->ctx.snapshot_ms = LC_HTTP_SNAPSHOT_MS;
    h->metrics = lc_metrics_new();
    h->dash = lc_dash_new(ctx->stats, ctx->store, ctx->describe);
    if (h->metrics == NULL || h->dash == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory starting HTTP");
        goto fail;
    }
    if ((rc = uv_loop_init(&h->loop)) < 0) {
        rc = lc_err_set(err, LC_INTERNAL, "HTTP loop: %s", uv_strerror(rc));
        goto fail;
    }
    h->loop_up = true;
    uv_tcp_init(&h->loop, &h->listener);
    h->listener_up = true;
    h->listener.data = h;
    if ((rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&h->listener, 64, on_connection)) < 0) {
        rc = lc_err_set(err, rc == UV_EADDRINUSE ? LC_FAILED_PRECONDITION : LC_UNAVAILABLE,
                        "cannot listen for HTTP on %s: %s%s", addr, uv_strerror(rc),
                        rc == UV_EADDRINUSE ? " (pick another --http-listen port, or 0)" : "");
        goto fail;
    }
    struct sockaddr_storage got;
    int glen = sizeof(got);
    int port = 0;
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&got, &glen) == 0)
        port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                               : ((struct sockaddr_in *)&got)->sin_port);
    snprintf(bound, cap, "%s:%d", host, port);

    uv_async_init(&h->loop, &h->stop, on_stop);
    h->stop_up = true;
    h->stop.data = h;
    uv_timer_init(&h->loop, &h->snap);
    h->snap_up = true;
    h->snap.data = h;
    lc_dash_snapshot(h->dash);
    uv_timer_start(&h->snap, on_snapshot, (uint64_t)h->ctx.snapshot_ms,
                   (uint64_t)h->ctx.snapshot_ms);
    if ((rc = pthread_create(&h->thread, NULL, loop_main, h)) != 0) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot start the HTTP thread: %s",
                        strerror(rc));
        goto fail;
    }
    LC_INFO(MOD, "serving /metrics, /status and the dashboard on %s", bound);
    *out = h;
    return 0;
fail:
    free_h(h);
    return rc;
}

const lc_method *lc_http_observe(lc_http *h, const lc_method *methods, size_t n)
{
    if (h == NULL)
        return methods;
    return lc_observe_wrap(h->metrics, h->dash, methods, n);
}

void lc_http_stop(lc_http **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    lc_http *h = *hp;
    uv_async_send(&h->stop);
    pthread_join(h->thread, NULL);
    free_h(h); /* the loop has closed everything; this only closes the loop */
    *hp = NULL;
}
