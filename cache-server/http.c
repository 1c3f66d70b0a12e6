/* http.c - see http.h. */
#include "http.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "http_auth.h"
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
    lc_http_auth *auth; /* who a request is; login sessions (http_auth.h) */
    bool loopback;      /* listening on loopback: Host must name it too */
    int n_conns;
    bool stopping;
    bool loop_up, listener_up, stop_up, snap_up;
};

/* WORKING: a response is being made on libuv's thread pool. */
enum conn_state { READING, WORKING, WRITING, LINGERING };

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    uv_work_t work;
    lc_http *h;
    enum conn_state state;
    int open_handles; /* freed when both handles are closed and no work is pending */
    size_t work_limit;
    char *work_out;
    bool work_head;
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
    free(c->work_out);
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
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
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
    if (c->state != READING && c->state != WORKING)
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

/* admin: per-instance counters too (as Admin.GetStats over gRPC). */
static char *status_json(lc_http *h, bool admin)
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
        if (admin) {
            json_t *insts = json_array();
            for (size_t i = 0; i < snap.n_instances; i++) {
                json_t *o = counters_json(&snap.instances[i]);
                if (o != NULL)
                    json_object_set_new(o, "name", json_string(snap.instances[i].name));
                json_array_append_new(insts, o);
            }
            json_object_set_new(root, "instances", insts);
        }
        json_t *methods = json_array();
        for (size_t i = 0; i < snap.n_methods; i++)
            json_array_append_new(methods, json_pack("{s:s,s:I,s:I}", "name", snap.methods[i].name,
                                                     "calls", (json_int_t)snap.methods[i].calls,
                                                     "errors", (json_int_t)snap.methods[i].errors));
        json_object_set_new(root, "methods", methods);
        lc_stats_snapshot_free(&snap);
    }
    /* trust.h */
    lc_trust_counts tc;
    lc_trust_counts_get(x->trust, &tc);
    json_object_set_new(root, "untrusted",
                        json_pack("{s:i,s:I,s:I,s:I,s:I}", "promote_quorum",
                                  lc_trust_quorum(x->trust), "promoted_by_trusted",
                                  (json_int_t)tc.promoted_trusted, "promoted_by_quorum",
                                  (json_int_t)tc.promoted_quorum, "rejections",
                                  (json_int_t)tc.rejected, "updates",
                                  (json_int_t)tc.untrusted_updates));
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

/* A JSON error {"error": msg} with status (401 also asks for a token). */
static void respond_error(conn *c, int status, const char *msg, bool head)
{
    json_t *o = json_pack("{s:s,s:b}", "error", msg, "login", status == 401);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL) {
        respond_text(c, 500, "out of memory\n", NULL);
        return;
    }
    respond(c, status, "application/json", body, strlen(body),
            status == 401 ? "WWW-Authenticate: Bearer realm=\"layercache\"\r\n" : NULL, head);
    free(body);
}

/* /api/actions on libuv's thread pool: it scans the action cache. */
static void actions_work(uv_work_t *w)
{
    conn *c = w->data;
    const lc_http_ctx *x = &c->h->ctx;
    c->work_out = x->entries(x->store, x->hits, c->work_limit);
}

static void actions_done(uv_work_t *w, int status)
{
    conn *c = w->data;
    (void)status;
    char *body = c->work_out;
    c->work_out = NULL;
    if (!c->closing) {
        if (body == NULL)
            respond_text(c, 500, "cannot list the action cache (see the server log)\n", NULL);
        else
            respond(c, 200, "application/json", body, strlen(body), NULL, c->work_head);
    }
    free(body);
    conn_handle_closed((uv_handle_t *)&c->tcp); /* the work's reference (conn_handle_closed) */
}

/* The limit=N query parameter (default 50, at most 500). */
static size_t query_limit(const char *q)
{
    const char *p = strstr(q, "limit=");
    if (p == NULL || (p != q && p[-1] != '&'))
        return 50;
    long v = strtol(p + 6, NULL, 10);
    return v < 1 ? 50 : v > 500 ? 500 : (size_t)v;
}

/* Whether id may see what needs role need: read for the totals, admin for
 * instruction texts and per-instance numbers (as over gRPC). Answers
 * 401/403 and returns false otherwise. */
static bool allowed(conn *c, int who, const lc_auth_id *id, lc_auth_role need, bool head)
{
    if (lc_auth_allows(id->role, need) && id->role != LC_ROLE_NONE)
        return true;
    if (who == 0 && id->role == LC_ROLE_NONE) {
        respond_error(c, 401,
                      "this server requires a token: log in on the dashboard, or send "
                      "'Authorization: Bearer <token>'",
                      head);
        return false;
    }
    char msg[LC_AUTH_NAME_MAX + 160];
    snprintf(msg, sizeof(msg), "this needs the '%s' role; %s%s%s has '%s'",
             lc_auth_role_name(need), id->name[0] ? "token '" : "",
             id->name[0] ? id->name : (who == 0 ? "an anonymous caller" : "this token"),
             id->name[0] ? "'" : "", lc_auth_role_name(id->role));
    respond_error(c, 403, msg, head);
    return false;
}

static void route(conn *c, const lc_http_request *req)
{
    lc_http *h = c->h;
    bool head = strcmp(req->method, "HEAD") == 0;
    bool post = strcmp(req->method, "POST") == 0;
    const char *p = req->path;
    bool login = strcmp(p, "/login") == 0, logout = strcmp(p, "/logout") == 0;
    if (req->host_bad) {
        respond_text(c, 400, "malformed Host header\n", NULL);
        return;
    }
    /* DNS rebinding: on loopback, only names of loopback reach the pages. */
    if (h->loopback && req->host[0] != '\0' && !lc_http_auth_loopback_host(req->host)) {
        respond_text(c, 403,
                     "this server listens on loopback: requests naming another host are "
                     "refused\n",
                     NULL);
        return;
    }
    if ((login || logout) && !post) {
        respond_text(c, 405, "use POST\n", "Allow: POST\r\n");
        return;
    }
    if (!login && !logout && !head && strcmp(req->method, "GET") != 0) {
        respond_text(c, 405, "only GET and HEAD are served here (POST for /login, /logout)\n",
                     "Allow: GET, HEAD\r\n");
        return;
    }
    if (post && req->has_body) {
        respond_error(c, 400, "no body expected: send the token as 'Authorization: Bearer <token>'",
                      false);
        return;
    }
    /* Open to all: Prometheus, probes, the page itself (it holds no data). */
    if (strcmp(p, "/metrics") == 0) {
        lc_metrics_source src = {.stats = h->ctx.stats,
                                 .store = h->ctx.store,
                                 .max_bytes = h->ctx.max_bytes,
                                 .max_age = h->ctx.max_age,
                                 .trust = h->ctx.trust};
        size_t len = 0;
        char *body = lc_metrics_render(h->metrics, &src, &len);
        respond_owned(c, body, len, "text/plain; version=0.0.4; charset=utf-8", head);
        return;
    }
    if (strcmp(p, "/healthz") == 0) {
        respond(c, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL, head);
        return;
    }
    if (strcmp(p, "/") == 0 || strcmp(p, "/index.html") == 0) {
        size_t len = 0;
        const unsigned char *page = lc_dash_page(&len);
        /* Everything is inline: forbid the page from loading anything else,
         * being framed (clickjacking) or posting forms elsewhere. */
        respond(c, 200, "text/html; charset=utf-8", page, len,
                "Content-Security-Policy: default-src 'self'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; img-src data:; form-action 'self'; "
                "frame-ancestors 'none'\r\nX-Frame-Options: DENY\r\n",
                head);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    lc_err err = {0};
    if (login) {
        char cookie[256];
        lc_auth_id id;
        int rc = lc_http_auth_login(h->auth, req, now, &id, cookie, sizeof(cookie), &err);
        if (rc < 0) {
            respond_error(c, rc == -LC_UNAUTHENTICATED ? 401 : rc == -LC_PERMISSION_DENIED ? 403 : 400,
                          err.msg, false);
            return;
        }
        json_t *o = json_pack("{s:s,s:s}", "role", lc_auth_role_name(id.role), "name", id.name);
        char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (body == NULL) {
            respond_text(c, 500, "out of memory\n", NULL);
            return;
        }
        respond(c, 200, "application/json", body, strlen(body), cookie, false);
        free(body);
        return;
    }
    if (logout) {
        char cookie[256];
        if (lc_http_auth_logout(h->auth, req, cookie, sizeof(cookie), &err) < 0) {
            respond_error(c, 403, err.msg, false);
            return;
        }
        respond(c, 200, "application/json", "{}", 2, cookie, false);
        return;
    }
    bool known = strcmp(p, "/status") == 0 || strcmp(p, "/api/history") == 0 ||
                 strcmp(p, "/api/keys") == 0 || strcmp(p, "/api/session") == 0 ||
                 (strcmp(p, "/api/actions") == 0 && h->ctx.entries != NULL);
    if (!known) {
        respond_text(c, 404, "not found: try /, /metrics or /status\n", NULL);
        return;
    }
    lc_auth_id id;
    int who = lc_http_auth_identify(h->auth, req, now, &id, &err);
    if (who < 0) {
        respond_error(c, 401, err.msg, head);
        return;
    }
    if (strcmp(p, "/api/session") == 0) {
        if (!allowed(c, who, &id, LC_ROLE_READ, head))
            return;
        json_t *o = json_pack("{s:b,s:s,s:s,s:b}", "tokens", lc_http_auth_required(h->auth),
                              "role", lc_auth_role_name(id.role), "name", id.name, "anonymous",
                              who == 0);
        char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else if (strcmp(p, "/status") == 0) {
        if (!allowed(c, who, &id, LC_ROLE_READ, head))
            return;
        char *body = status_json(h, id.role == LC_ROLE_ADMIN);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else if (strcmp(p, "/api/history") == 0) {
        if (!allowed(c, who, &id, LC_ROLE_READ, head))
            return;
        char *body = lc_dash_history_json(h->dash, h->ctx.snapshot_ms / 1000);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else if (strcmp(p, "/api/keys") == 0) {
        /* Instruction texts can carry secrets: admin only, as ListActions. */
        if (!allowed(c, who, &id, LC_ROLE_ADMIN, head))
            return;
        char *body = lc_dash_keys_json(h->dash);
        respond_owned(c, body, body ? strlen(body) : 0, "application/json", head);
    } else { /* /api/actions */
        if (!allowed(c, who, &id, LC_ROLE_ADMIN, head))
            return;
        c->state = WORKING;
        uv_timer_stop(&c->timer);
        c->work.data = c;
        c->work_limit = query_limit(req->query);
        c->work_head = head;
        if (uv_queue_work(&h->loop, &c->work, actions_work, actions_done) < 0) {
            respond_text(c, 503, "busy\n", NULL);
            return;
        }
        c->open_handles++; /* the work holds the connection until actions_done */
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
                          "--http-listen '%s' is not HOST:PORT (e.g. 127.0.0.1:9090, [::1]:0)", addr);
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

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
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
    lc_http_auth_free(&h->auth);
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
    h->auth = lc_http_auth_new(ctx->auth);
    h->loopback = is_loopback(&ss);
    if (h->metrics == NULL || h->dash == NULL || h->auth == NULL) {
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
    if (ctx->auth != NULL)
        LC_INFO(MOD, "pages and JSON need a token (login cookie or Bearer); /metrics and "
                     "/healthz are open");
    if (!h->loopback && ctx->auth == NULL)
        LC_WARN(MOD, "the HTTP side listens beyond loopback (%s) without --tokens: anyone who "
                     "reaches it reads the dashboard, instruction texts included",
                bound);
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
