/* progress.c - see progress.h. */
#include "progress.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Output lines of a running step the tty view shows under it. */
#define TTY_TAIL 6
/* How often the tty view is redrawn, and plain/rawjson byte counts printed. */
#define TTY_TICK_MS 100
#define PLAIN_EVERY_S 1.0
#define JSON_EVERY_S 0.5

typedef struct step_rec {
    char *stage, *label, *instruction, *key;
    int number;
    enum lc_step_cached cached;
    int begun, finished, failed;
    bool counted;
    double start, seconds;
    double wall_start; /* Unix seconds, for rawjson */
    uint64_t bytes_down, bytes_up;
    char *tail[TTY_TAIL]; /* tty: last output lines, a ring */
    int tail_next;
} step_rec;

typedef struct xfer {
    int slot;
    char *what;
    uint64_t total, done;
    double start, last_print, wall_start;
    bool active, printed;
} xfer;

struct lc_progress {
    FILE *out;
    int mode;
    pthread_mutex_t mu;
    step_rec *steps;
    size_t len, cap;
    xfer *xfers;
    size_t nxfers, capxfers;
    char *cache_state, *cache_reason;
    double t0;
    /* tty */
    pthread_t thread;
    pthread_cond_t cv;
    bool thread_started, stopping, view_closed;
    int live_lines;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int lc_progress_mode_parse(const char *s, int fd, int *mode, lc_err *err)
{
    if (strcmp(s, "auto") == 0)
        *mode = isatty(fd) ? LC_PROGRESS_TTY : LC_PROGRESS_PLAIN;
    else if (strcmp(s, "plain") == 0)
        *mode = LC_PROGRESS_PLAIN;
    else if (strcmp(s, "quiet") == 0)
        *mode = LC_PROGRESS_QUIET;
    else if (strcmp(s, "rawjson") == 0)
        *mode = LC_PROGRESS_RAWJSON;
    else if (strcmp(s, "tty") == 0) {
        if (!isatty(fd))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "--progress tty: stderr is not a terminal (use plain or auto)");
        *mode = LC_PROGRESS_TTY;
    } else {
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--progress must be auto, tty, plain, quiet or rawjson, not '%s'", s);
    }
    return 0;
}

static void human_bytes(uint64_t n, char *buf, size_t cap)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* "12.3 MB / 52.4 MB" or "12.3 MB" when the total is unknown. */
static void xfer_amount(const xfer *x, char *buf, size_t cap)
{
    char d[32], t[32];
    human_bytes(x->done, d, sizeof(d));
    if (x->total == 0) {
        snprintf(buf, cap, "%s", d);
        return;
    }
    human_bytes(x->total, t, sizeof(t));
    snprintf(buf, cap, "%s / %s", d, t);
}

/* ---- rawjson ---------------------------------------------------------------- */

static json_t *rfc3339(double unix_s)
{
    time_t sec = (time_t)unix_s;
    long ns = (long)((unix_s - (double)sec) * 1e9);
    if (ns < 0)
        ns = 0;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%09ldZ", ns);
    return json_string(buf);
}

static json_t *base64(const char *data, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    unsigned char *b = malloc(cap);
    if (b == NULL)
        return json_string("");
    EVP_EncodeBlock(b, (const unsigned char *)data, (int)len);
    json_t *s = json_string((const char *)b);
    free(b);
    return s;
}

static void emit_json(lc_progress *p, const char *field, json_t *item)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    json_array_append_new(arr, item);
    json_object_set_new(root, field, arr);
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        fprintf(p->out, "%s\n", s);
        fflush(p->out);
        free(s);
    }
    json_decref(root);
}

static const char *vertex_id(const step_rec *s, char *buf, size_t cap)
{
    if (s->key[0] != '\0')
        snprintf(buf, cap, "%s#%d", s->key, s->number);
    else
        snprintf(buf, cap, "step-%d", s->number);
    return buf;
}

static void json_vertex(lc_progress *p, const step_rec *s, const char *error)
{
    char id[128], name[512];
    json_t *v = json_object();
    json_object_set_new(v, "digest", json_string(vertex_id(s, id, sizeof(id))));
    snprintf(name, sizeof(name), "[%s] %s", s->label, s->instruction);
    json_object_set_new(v, "name", json_string(name));
    json_object_set_new(v, "started", rfc3339(s->wall_start));
    if (s->finished || s->failed)
        json_object_set_new(v, "completed", rfc3339(s->wall_start + s->seconds));
    if (s->cached != LC_STEP_EXECUTED)
        json_object_set_new(v, "cached", json_true());
    if (error != NULL)
        json_object_set_new(v, "error", json_string(error));
    emit_json(p, "vertexes", v);
}

static void json_status(lc_progress *p, const xfer *x)
{
    char id[128];
    json_t *st = json_object();
    json_object_set_new(st, "id", json_string(x->what));
    if (x->slot >= 0)
        json_object_set_new(st, "vertex",
                            json_string(vertex_id(&p->steps[x->slot], id, sizeof(id))));
    json_object_set_new(st, "name", json_string(x->what));
    json_object_set_new(st, "current", json_integer((json_int_t)x->done));
    if (x->total > 0)
        json_object_set_new(st, "total", json_integer((json_int_t)x->total));
    json_object_set_new(st, "timestamp", rfc3339(wall_s()));
    json_object_set_new(st, "started", rfc3339(x->wall_start));
    if (!x->active)
        json_object_set_new(st, "completed", rfc3339(wall_s()));
    emit_json(p, "statuses", st);
}

static void json_log(lc_progress *p, const step_rec *s, int stream, const char *line, size_t len)
{
    char id[128];
    json_t *l = json_object();
    json_object_set_new(l, "vertex", json_string(s ? vertex_id(s, id, sizeof(id)) : ""));
    json_object_set_new(l, "stream", json_integer(stream));
    char *with_nl = malloc(len + 1);
    if (with_nl != NULL) {
        memcpy(with_nl, line, len);
        with_nl[len] = '\n';
        json_object_set_new(l, "data", base64(with_nl, len + 1));
        free(with_nl);
    }
    json_object_set_new(l, "timestamp", rfc3339(wall_s()));
    emit_json(p, "logs", l);
}

/* ---- tty -------------------------------------------------------------------- */

static void term_size(lc_progress *p, int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row > 4 ? ws.ws_row : 24;
    }
}

/* Prints s cut to width columns (never in the middle of a UTF-8 sequence)
 * and a newline: a wrapped line would break the cursor arithmetic. */
static void put_cut(lc_progress *p, const char *s, int width)
{
    size_t n = strlen(s);
    if (width > 1 && n > (size_t)(width - 1)) {
        n = (size_t)(width - 1);
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) /* control characters would move the cursor */
        fputc((unsigned char)s[i] < 0x20 ? ' ' : s[i], p->out);
    fputc('\n', p->out);
}

static void tty_clear(lc_progress *p)
{
    if (p->live_lines > 0)
        fprintf(p->out, "\033[%dA\033[J", p->live_lines);
    p->live_lines = 0;
}

static void tty_draw(lc_progress *p)
{
    if (p->view_closed)
        return;
    int cols, rows;
    term_size(p, &cols, &rows);
    int max = rows - 2;
    size_t finished = 0;
    for (size_t i = 0; i < p->len; i++)
        if (p->steps[i].finished || p->steps[i].failed)
            finished++;
    char line[1024];
    snprintf(line, sizeof(line), "[+] Building %.1fs (%zu/%zu)", now_s() - p->t0, finished, p->len);
    put_cut(p, line, cols);
    int n = 1;
    for (size_t k = 0; k < p->nxfers && n < max; k++) {
        const xfer *x = &p->xfers[k];
        if (!x->active || x->slot >= 0)
            continue;
        char amount[80];
        xfer_amount(x, amount, sizeof(amount));
        snprintf(line, sizeof(line), " => %s %s %.1fs", x->what, amount, now_s() - x->start);
        put_cut(p, line, cols);
        n++;
    }
    for (size_t i = 0; i < p->len && n < max; i++) {
        step_rec *s = &p->steps[i];
        bool running = s->begun && !s->finished && !s->failed;
        bool moving = false;
        for (size_t k = 0; k < p->nxfers; k++)
            moving = moving || (p->xfers[k].active && p->xfers[k].slot == (int)i);
        if (!running && !moving)
            continue;
        if (running) {
            snprintf(line, sizeof(line), " => [%s] %s %.1fs", s->label, s->instruction,
                     now_s() - s->start);
            put_cut(p, line, cols);
            n++;
            for (int t = 0; t < TTY_TAIL && n < max; t++) {
                const char *o = s->tail[(s->tail_next + t) % TTY_TAIL];
                if (o == NULL)
                    continue;
                snprintf(line, sizeof(line), " => => # %s", o);
                put_cut(p, line, cols);
                n++;
            }
        }
        for (size_t k = 0; k < p->nxfers && n < max; k++) {
            const xfer *x = &p->xfers[k];
            if (!x->active || x->slot != (int)i)
                continue;
            char amount[80];
            xfer_amount(x, amount, sizeof(amount));
            snprintf(line, sizeof(line), " => => [%s] %s %s %.1fs", s->label, x->what, amount,
                     now_s() - x->start);
            put_cut(p, line, cols);
            n++;
        }
    }
    p->live_lines = n;
    fflush(p->out);
}

/* A line above the live view, printed once. */
static void tty_permanent(lc_progress *p, const char *text)
{
    int cols, rows;
    term_size(p, &cols, &rows);
    tty_clear(p);
    put_cut(p, text, cols);
    tty_draw(p);
}

static void *tty_thread(void *arg)
{
    lc_progress *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TTY_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (p->stopping || p->view_closed)
            continue;
        tty_clear(p);
        tty_draw(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------- */

lc_progress *lc_progress_new(FILE *out, int mode)
{
    lc_progress *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->out = out;
    p->mode = mode;
    p->t0 = now_s();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (mode == LC_PROGRESS_TTY && pthread_create(&p->thread, NULL, tty_thread, p) == 0)
        p->thread_started = true;
    return p;
}

static void close_view(lc_progress *p)
{
    if (p->mode == LC_PROGRESS_TTY && !p->view_closed) {
        tty_clear(p);
        p->view_closed = true;
        fflush(p->out);
    }
}

void lc_progress_free(lc_progress **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    lc_progress *p = *pp;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stopping = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    close_view(p);
    for (size_t i = 0; i < p->len; i++) {
        step_rec *s = &p->steps[i];
        free(s->stage);
        free(s->label);
        free(s->instruction);
        free(s->key);
        for (int t = 0; t < TTY_TAIL; t++)
            free(s->tail[t]);
    }
    for (size_t k = 0; k < p->nxfers; k++)
        free(p->xfers[k].what);
    free(p->xfers);
    free(p->steps);
    free(p->cache_state);
    free(p->cache_reason);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    *pp = NULL;
}

int lc_progress_add(lc_progress *p, const char *stage, const char *label, const char *instruction,
                    const char *key, bool counted)
{
    int rc;
    pthread_mutex_lock(&p->mu);
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        step_rec *grown = realloc(p->steps, cap * sizeof(*grown));
        if (grown == NULL) {
            rc = -LC_RESOURCE_EXHAUSTED;
            goto out;
        }
        p->steps = grown;
        p->cap = cap;
    }
    step_rec *s = &p->steps[p->len];
    memset(s, 0, sizeof(*s));
    s->stage = strdup(stage);
    s->label = strdup(label);
    s->instruction = strdup(instruction);
    s->key = strdup(key ? key : "");
    s->number = (int)p->len + 1;
    s->counted = counted;
    if (!s->stage || !s->label || !s->instruction || !s->key) {
        free(s->stage);
        free(s->label);
        free(s->instruction);
        free(s->key);
        rc = -LC_RESOURCE_EXHAUSTED;
        goto out;
    }
    rc = (int)p->len++;
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* The step's first appearance. Called with the lock held. */
static void announce(lc_progress *p, step_rec *s)
{
    if (s->begun)
        return;
    s->begun = 1;
    s->start = now_s();
    s->wall_start = wall_s();
    char line[1024];
    switch (p->mode) {
    case LC_PROGRESS_PLAIN:
        fprintf(p->out, "#%d [%s] %s\n", s->number, s->label, s->instruction);
        fflush(p->out);
        break;
    case LC_PROGRESS_TTY:
        if (!s->counted) { /* FROM: nothing runs */
            s->finished = 1;
            snprintf(line, sizeof(line), " => [%s] %s", s->label, s->instruction);
            tty_permanent(p, line);
        }
        break;
    case LC_PROGRESS_RAWJSON:
        if (!s->counted) /* FROM: nothing runs */
            s->finished = 1;
        json_vertex(p, s, NULL);
        break;
    default:
        break;
    }
}

void lc_progress_set_key(lc_progress *p, int slot, const char *key)
{
    char *copy = strdup(key);
    if (copy == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    free(p->steps[slot].key);
    p->steps[slot].key = copy;
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_begin(lc_progress *p, int slot)
{
    pthread_mutex_lock(&p->mu);
    announce(p, &p->steps[slot]);
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_reset(lc_progress *p, int slot)
{
    pthread_mutex_lock(&p->mu);
    step_rec *s = &p->steps[slot];
    s->cached = LC_STEP_EXECUTED;
    s->begun = s->finished = s->failed = 0;
    s->seconds = 0;
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_output(lc_progress *p, int slot, const char *line, size_t len)
{
    pthread_mutex_lock(&p->mu);
    step_rec *s = &p->steps[slot];
    announce(p, s);
    switch (p->mode) {
    case LC_PROGRESS_PLAIN:
        fprintf(p->out, "#%d %.3f %.*s\n", s->number, now_s() - s->start, (int)len, line);
        fflush(p->out);
        break;
    case LC_PROGRESS_TTY: {
        char *copy = strndup(line, len);
        if (copy != NULL) {
            free(s->tail[s->tail_next]);
            s->tail[s->tail_next] = copy;
            s->tail_next = (s->tail_next + 1) % TTY_TAIL;
        }
        break;
    }
    case LC_PROGRESS_RAWJSON:
        json_log(p, s, 1, line, len);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_cached(lc_progress *p, int slot, enum lc_step_cached where)
{
    pthread_mutex_lock(&p->mu);
    step_rec *s = &p->steps[slot];
    announce(p, s);
    s->cached = where;
    s->finished = 1;
    s->seconds = now_s() - s->start;
    const char *w = where == LC_STEP_CACHED_LOCAL ? "local" : "remote";
    char line[1024];
    switch (p->mode) {
    case LC_PROGRESS_PLAIN:
        fprintf(p->out, "#%d CACHED (%s)\n", s->number, w);
        fflush(p->out);
        break;
    case LC_PROGRESS_TTY:
        snprintf(line, sizeof(line), " => CACHED (%s) [%s] %s", w, s->label, s->instruction);
        tty_permanent(p, line);
        break;
    case LC_PROGRESS_RAWJSON:
        json_vertex(p, s, NULL);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_done(lc_progress *p, int slot, double seconds)
{
    pthread_mutex_lock(&p->mu);
    step_rec *s = &p->steps[slot];
    announce(p, s);
    s->finished = 1;
    s->seconds = seconds;
    char line[1024];
    switch (p->mode) {
    case LC_PROGRESS_PLAIN:
        fprintf(p->out, "#%d DONE %.1fs\n", s->number, seconds);
        fflush(p->out);
        break;
    case LC_PROGRESS_TTY:
        snprintf(line, sizeof(line), " => [%s] %s %.1fs", s->label, s->instruction, seconds);
        tty_permanent(p, line);
        break;
    case LC_PROGRESS_RAWJSON:
        json_vertex(p, s, NULL);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_error(lc_progress *p, int slot, const char *message)
{
    pthread_mutex_lock(&p->mu);
    step_rec *s = &p->steps[slot];
    announce(p, s);
    s->failed = 1;
    s->seconds = now_s() - s->start;
    char line[1024];
    switch (p->mode) {
    case LC_PROGRESS_PLAIN:
        fprintf(p->out, "#%d ERROR: %s\n", s->number, message);
        fflush(p->out);
        break;
    case LC_PROGRESS_TTY:
        snprintf(line, sizeof(line), " => ERROR [%s] %s %.1fs", s->label, s->instruction,
                 s->seconds);
        tty_permanent(p, line);
        break;
    case LC_PROGRESS_RAWJSON:
        json_vertex(p, s, message);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_bytes(lc_progress *p, int slot, uint64_t down, uint64_t up)
{
    pthread_mutex_lock(&p->mu);
    p->steps[slot].bytes_down += down;
    p->steps[slot].bytes_up += up;
    pthread_mutex_unlock(&p->mu);
}

/* ---- transfers -------------------------------------------------------------- */

static void plain_xfer(lc_progress *p, xfer *x, bool final)
{
    char amount[80];
    xfer_amount(x, amount, sizeof(amount));
    if (x->slot >= 0)
        fprintf(p->out, "#%d %s %s%s %.1fs\n", p->steps[x->slot].number, x->what, amount,
                final ? " done" : "", now_s() - x->start);
    else
        fprintf(p->out, "#0 %s %s%s %.1fs\n", x->what, amount, final ? " done" : "",
                now_s() - x->start);
    fflush(p->out);
    x->printed = true;
    x->last_print = now_s();
}

int lc_progress_transfer_begin(lc_progress *p, int slot, const char *what, uint64_t total)
{
    int id = -1;
    pthread_mutex_lock(&p->mu);
    if (slot >= (int)p->len)
        slot = -1;
    if (p->nxfers == p->capxfers) {
        size_t cap = p->capxfers ? p->capxfers * 2 : 16;
        xfer *grown = realloc(p->xfers, cap * sizeof(*grown));
        if (grown == NULL)
            goto out;
        p->xfers = grown;
        p->capxfers = cap;
    }
    xfer *x = &p->xfers[p->nxfers];
    memset(x, 0, sizeof(*x));
    if ((x->what = strdup(what)) == NULL)
        goto out;
    x->slot = slot;
    x->total = total;
    x->start = x->last_print = now_s();
    x->wall_start = wall_s();
    x->active = true;
    id = (int)p->nxfers++;
    if (p->mode == LC_PROGRESS_RAWJSON)
        json_status(p, x);
out:
    pthread_mutex_unlock(&p->mu);
    return id;
}

void lc_progress_transfer_update(lc_progress *p, int id, uint64_t done)
{
    if (id < 0)
        return;
    pthread_mutex_lock(&p->mu);
    xfer *x = &p->xfers[id];
    x->done = done;
    double t = now_s();
    if (p->mode == LC_PROGRESS_PLAIN && t - x->start >= PLAIN_EVERY_S &&
        t - x->last_print >= PLAIN_EVERY_S)
        plain_xfer(p, x, false);
    else if (p->mode == LC_PROGRESS_RAWJSON && t - x->last_print >= JSON_EVERY_S) {
        json_status(p, x);
        x->last_print = t;
    }
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_transfer_end(lc_progress *p, int id)
{
    if (id < 0)
        return;
    pthread_mutex_lock(&p->mu);
    xfer *x = &p->xfers[id];
    x->active = false;
    if (p->mode == LC_PROGRESS_PLAIN && (x->printed || now_s() - x->start >= PLAIN_EVERY_S))
        plain_xfer(p, x, true);
    else if (p->mode == LC_PROGRESS_RAWJSON)
        json_status(p, x);
    free(x->what);
    x->what = NULL;
    /* Finished transfers at the end are reused, so a long build's many small
     * uploads do not grow the table. */
    while (p->nxfers > 0 && !p->xfers[p->nxfers - 1].active)
        p->nxfers--;
    pthread_mutex_unlock(&p->mu);
}

/* ---- notices ---------------------------------------------------------------- */

static void notice(lc_progress *p, bool warning, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    pthread_mutex_lock(&p->mu);
    char line[2100];
    snprintf(line, sizeof(line), "%s%s", warning ? "WARNING: " : "", msg);
    switch (p->mode) {
    case LC_PROGRESS_TTY:
        if (!p->view_closed) {
            tty_clear(p);
            fprintf(p->out, "%s\n", line);
            tty_draw(p);
        } else {
            fprintf(p->out, "%s\n", line);
        }
        break;
    case LC_PROGRESS_RAWJSON:
        if (warning) {
            json_t *w = json_object();
            json_object_set_new(w, "level", json_integer(1));
            json_object_set_new(w, "short", base64(msg, strlen(msg)));
            emit_json(p, "warnings", w);
        } else {
            json_log(p, NULL, 2, msg, strlen(msg));
        }
        break;
    case LC_PROGRESS_QUIET:
        if (warning)
            fprintf(p->out, "%s\n", line);
        break;
    default:
        fprintf(p->out, "%s\n", line);
        break;
    }
    fflush(p->out);
    pthread_mutex_unlock(&p->mu);
}

void lc_progress_warn(lc_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notice(p, true, fmt, ap);
    va_end(ap);
}

void lc_progress_note(lc_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notice(p, false, fmt, ap);
    va_end(ap);
}

void lc_progress_set_cache(lc_progress *p, const char *state, const char *reason)
{
    char *s = strdup(state), *r = reason ? strdup(reason) : NULL;
    pthread_mutex_lock(&p->mu);
    free(p->cache_state);
    free(p->cache_reason);
    p->cache_state = s;
    p->cache_reason = r;
    pthread_mutex_unlock(&p->mu);
}

/* ---- summary ---------------------------------------------------------------- */

/* What the counted steps add up to: the summary line and the JSON's. */
typedef struct totals {
    size_t counted, local, remote, executed;
    uint64_t down, up;
} totals;

static totals count_steps(const lc_progress *p)
{
    totals t = {0};
    for (size_t i = 0; i < p->len; i++) {
        const step_rec *s = &p->steps[i];
        if (!s->counted)
            continue;
        t.counted++;
        if (s->cached == LC_STEP_CACHED_LOCAL)
            t.local++;
        else if (s->cached == LC_STEP_CACHED_REMOTE)
            t.remote++;
        else if (s->finished)
            t.executed++;
        t.down += s->bytes_down;
        t.up += s->bytes_up;
    }
    return t;
}

void lc_progress_summary(lc_progress *p, double wall_seconds, const char *manifest_digest)
{
    pthread_mutex_lock(&p->mu);
    close_view(p);
    if (p->mode == LC_PROGRESS_QUIET || p->mode == LC_PROGRESS_RAWJSON) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    totals t = count_steps(p);
    char d[32], u[32];
    human_bytes(t.down, d, sizeof(d));
    human_bytes(t.up, u, sizeof(u));
    fprintf(p->out,
            "Summary: %zu steps: %zu cached locally, %zu cached remotely, %zu executed; "
            "%s downloaded, %s uploaded; %.2fs\n",
            t.counted, t.local, t.remote, t.executed, d, u, wall_seconds);
    if (p->cache_state != NULL)
        fprintf(p->out, "Cache: %s%s%s\n", p->cache_state, p->cache_reason ? ": " : "",
                p->cache_reason ? p->cache_reason : "");
    if (manifest_digest != NULL)
        fprintf(p->out, "Image: %s\n", manifest_digest);
    fflush(p->out);
    pthread_mutex_unlock(&p->mu);
}

int lc_progress_write_json(lc_progress *p, const char *path, double wall_seconds,
                           const char *manifest_digest, const char *state_digest, lc_err *err)
{
    pthread_mutex_lock(&p->mu);
    json_t *root = json_object(), *steps = json_array();
    for (size_t i = 0; i < p->len; i++) {
        step_rec *s = &p->steps[i];
        if (!s->counted)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer(s->number));
        json_object_set_new(o, "stage", json_string(s->stage));
        json_object_set_new(o, "instruction", json_string(s->instruction));
        json_object_set_new(o, "key", json_string(s->key));
        json_object_set_new(o, "cached",
                            s->cached == LC_STEP_CACHED_LOCAL    ? json_string("local")
                            : s->cached == LC_STEP_CACHED_REMOTE ? json_string("remote")
                                                                 : json_null());
        json_object_set_new(o, "seconds", json_real(s->seconds));
        json_object_set_new(o, "bytes_down", json_integer((json_int_t)s->bytes_down));
        json_object_set_new(o, "bytes_up", json_integer((json_int_t)s->bytes_up));
        json_array_append_new(steps, o);
    }
    json_object_set_new(root, "steps", steps);
    json_t *image = json_object();
    json_object_set_new(image, "manifest_digest",
                        manifest_digest ? json_string(manifest_digest) : json_null());
    json_object_set_new(image, "state_digest",
                        state_digest ? json_string(state_digest) : json_null());
    json_object_set_new(root, "image", image);
    totals t = count_steps(p);
    json_t *sum = json_object();
    json_object_set_new(sum, "steps", json_integer((json_int_t)t.counted));
    json_object_set_new(sum, "cached_local", json_integer((json_int_t)t.local));
    json_object_set_new(sum, "cached_remote", json_integer((json_int_t)t.remote));
    json_object_set_new(sum, "executed", json_integer((json_int_t)t.executed));
    json_object_set_new(sum, "bytes_down", json_integer((json_int_t)t.down));
    json_object_set_new(sum, "bytes_up", json_integer((json_int_t)t.up));
    json_object_set_new(sum, "seconds", json_real(wall_seconds));
    json_object_set_new(root, "summary", sum);
    json_t *cache = json_object();
    json_object_set_new(cache, "state", json_string(p->cache_state ? p->cache_state : "off"));
    json_object_set_new(cache, "reason",
                        p->cache_reason ? json_string(p->cache_reason) : json_null());
    json_object_set_new(root, "cache", cache);
    pthread_mutex_unlock(&p->mu);
    int rc = 0;
    if (json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
        rc = lc_err_set(err, LC_INTERNAL, "cannot write summary to %s: %s", path, strerror(errno));
    json_decref(root);
    return rc;
}
