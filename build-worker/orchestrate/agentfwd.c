/* agentfwd.c - ssh agent socket relay on a libuv loop (see agentfwd.h). */
#include "agentfwd.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct relay relay;

struct lc_agentfwd {
    uv_pipe_t listener;
    char *agent;
    relay *relays;
    int refs; /* the listener + live relays: freed at 0 */
};

struct relay {
    lc_agentfwd *f;
    uv_pipe_t client, upstream;
    uv_connect_t conn;
    int open; /* handles not closed yet */
    bool closing;
    relay *next, **pprev;
};

typedef struct write_req {
    uv_write_t req;
    char *buf;
} write_req;

static void unref(lc_agentfwd *f)
{
    if (--f->refs == 0) {
        free(f->agent);
        free(f);
    }
}

static void on_relay_closed(uv_handle_t *h)
{
    relay *r = h->data;
    if (--r->open > 0)
        return;
    *r->pprev = r->next;
    if (r->next != NULL)
        r->next->pprev = r->pprev;
    lc_agentfwd *f = r->f;
    free(r);
    unref(f);
}

static void relay_close(relay *r)
{
    if (r->closing)
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->client, on_relay_closed);
    uv_close((uv_handle_t *)&r->upstream, on_relay_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    size_t n = suggested < 65536 ? suggested : 65536;
    char *b = malloc(n);
    *buf = uv_buf_init(b, b ? (unsigned)n : 0);
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    relay *r = req->data;
    free(w->buf);
    free(w);
    if (status < 0)
        relay_close(r);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    relay *r = s->data;
    if (n > 0 && !r->closing) {
        uv_stream_t *peer = s == (uv_stream_t *)&r->client ? (uv_stream_t *)&r->upstream
                                                           : (uv_stream_t *)&r->client;
        write_req *w = malloc(sizeof(*w));
        if (w != NULL) {
            w->buf = buf->base;
            w->req.data = r;
            uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
            if (uv_write(&w->req, peer, &b, 1, on_written) == 0)
                return; /* the buffer goes with the write */
            free(w);
        }
        free(buf->base);
        relay_close(r);
        return;
    }
    free(buf->base);
    if (n < 0)
        relay_close(r); /* EOF or error on either side ends the relay */
}

static void on_upstream(uv_connect_t *req, int status)
{
    relay *r = req->data;
    if (status < 0 || r->closing) {
        relay_close(r);
        return;
    }
    if (uv_read_start((uv_stream_t *)&r->client, on_alloc, on_read) != 0 ||
        uv_read_start((uv_stream_t *)&r->upstream, on_alloc, on_read) != 0)
        relay_close(r);
}

static void on_connection(uv_stream_t *server, int status)
{
    lc_agentfwd *f = server->data;
    if (status < 0)
        return;
    relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return;
    r->f = f;
    r->open = 2;
    uv_pipe_init(server->loop, &r->client, 0);
    uv_pipe_init(server->loop, &r->upstream, 0);
    r->client.data = r->upstream.data = r->conn.data = r;
    f->refs++;
    r->next = f->relays;
    r->pprev = &f->relays;
    if (f->relays != NULL)
        f->relays->pprev = &r->next;
    f->relays = r;
    if (uv_accept(server, (uv_stream_t *)&r->client) != 0) {
        relay_close(r);
        return;
    }
    uv_pipe_connect(&r->conn, &r->upstream, f->agent, on_upstream);
}

static void on_listener_closed(uv_handle_t *h)
{
    unref(h->data);
}

int lc_agentfwd_start(uv_loop_t *loop, const char *listen_path, const char *agent_path,
                      unsigned uid, unsigned gid, unsigned mode, lc_agentfwd **out, lc_err *err)
{
    *out = NULL;
    lc_agentfwd *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->agent = strdup(agent_path)) == NULL) {
        free(f);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    f->refs = 1;
    uv_pipe_init(loop, &f->listener, 0);
    f->listener.data = f;
    int e = uv_pipe_bind(&f->listener, listen_path);
    if (e == 0 && (chown(listen_path, uid, gid) < 0 || chmod(listen_path, mode) < 0))
        e = uv_translate_sys_error(errno);
    if (e == 0)
        e = uv_listen((uv_stream_t *)&f->listener, 16, on_connection);
    if (e != 0) {
        uv_close((uv_handle_t *)&f->listener, on_listener_closed);
        return lc_err_set(err, LC_INTERNAL, "ssh agent socket %s: %s", listen_path, uv_strerror(e));
    }
    *out = f;
    return 0;
}

void lc_agentfwd_close(lc_agentfwd *f)
{
    if (f == NULL)
        return;
    for (relay *r = f->relays; r != NULL; r = r->next)
        relay_close(r);
    uv_close((uv_handle_t *)&f->listener, on_listener_closed);
}
