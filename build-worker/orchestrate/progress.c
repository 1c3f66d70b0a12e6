/* progress.c - see progress.h. */
#include "progress.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct step_rec {
    char *stage, *label, *instruction, *key;
    int number;
    enum lc_step_cached cached;
    int begun, finished, failed;
    bool counted;
    double start, seconds;
    uint64_t bytes_down, bytes_up;
} step_rec;

struct lc_progress {
    FILE *out;
    step_rec *steps;
    size_t len, cap;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

lc_progress *lc_progress_new(FILE *out)
{
    lc_progress *p = calloc(1, sizeof(*p));
    if (p != NULL)
        p->out = out;
    return p;
}

void lc_progress_free(lc_progress **p)
{
    if (p == NULL || *p == NULL)
        return;
    for (size_t i = 0; i < (*p)->len; i++) {
        step_rec *s = &(*p)->steps[i];
        free(s->stage);
        free(s->label);
        free(s->instruction);
        free(s->key);
    }
    free((*p)->steps);
    free(*p);
    *p = NULL;
}

int lc_progress_add(lc_progress *p, const char *stage, const char *label, const char *instruction,
                    const char *key, bool counted)
{
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        step_rec *grown = realloc(p->steps, cap * sizeof(*grown));
        if (grown == NULL)
            return -LC_RESOURCE_EXHAUSTED;
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
        return -LC_RESOURCE_EXHAUSTED;
    }
    return (int)p->len++;
}

static void announce(lc_progress *p, step_rec *s)
{
    if (s->begun)
        return;
    s->begun = 1;
    s->start = now_s();
    fprintf(p->out, "#%d [%s] %s\n", s->number, s->label, s->instruction);
    fflush(p->out);
}

void lc_progress_set_key(lc_progress *p, int slot, const char *key)
{
    char *copy = strdup(key);
    if (copy == NULL)
        return;
    free(p->steps[slot].key);
    p->steps[slot].key = copy;
}

void lc_progress_begin(lc_progress *p, int slot) { announce(p, &p->steps[slot]); }

void lc_progress_reset(lc_progress *p, int slot)
{
    step_rec *s = &p->steps[slot];
    s->cached = LC_STEP_EXECUTED;
    s->begun = s->finished = s->failed = 0;
    s->seconds = 0;
}

void lc_progress_output(lc_progress *p, int slot, const char *line, size_t len)
{
    step_rec *s = &p->steps[slot];
    announce(p, s);
    fprintf(p->out, "#%d %.3f %.*s\n", s->number, now_s() - s->start, (int)len, line);
    fflush(p->out);
}

void lc_progress_cached(lc_progress *p, int slot, enum lc_step_cached where)
{
    step_rec *s = &p->steps[slot];
    announce(p, s);
    s->cached = where;
    s->finished = 1;
    s->seconds = now_s() - s->start;
    fprintf(p->out, "#%d CACHED (%s)\n", s->number, where == LC_STEP_CACHED_LOCAL ? "local" : "remote");
    fflush(p->out);
}

void lc_progress_done(lc_progress *p, int slot, double seconds)
{
    step_rec *s = &p->steps[slot];
    announce(p, s);
    s->finished = 1;
    s->seconds = seconds;
    fprintf(p->out, "#%d DONE %.1fs\n", s->number, seconds);
    fflush(p->out);
}

void lc_progress_error(lc_progress *p, int slot, const char *message)
{
    step_rec *s = &p->steps[slot];
    announce(p, s);
    s->failed = 1;
    s->seconds = now_s() - s->start;
    fprintf(p->out, "#%d ERROR: %s\n", s->number, message);
    fflush(p->out);
}

void lc_progress_bytes(lc_progress *p, int slot, uint64_t down, uint64_t up)
{
    p->steps[slot].bytes_down += down;
    p->steps[slot].bytes_up += up;
}

void lc_progress_warn(lc_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("WARNING: ", p->out);
    vfprintf(p->out, fmt, ap);
    fputc('\n', p->out);
    va_end(ap);
    fflush(p->out);
}

void lc_progress_note(lc_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    fputc('\n', p->out);
    va_end(ap);
    fflush(p->out);
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
    totals t = count_steps(p);
    char d[32], u[32];
    human_bytes(t.down, d, sizeof(d));
    human_bytes(t.up, u, sizeof(u));
    fprintf(p->out,
            "Summary: %zu steps: %zu cached locally, %zu cached remotely, %zu executed; "
            "%s downloaded, %s uploaded; %.2fs\n",
            t.counted, t.local, t.remote, t.executed, d, u, wall_seconds);
    if (manifest_digest != NULL)
        fprintf(p->out, "Image: %s\n", manifest_digest);
    fflush(p->out);
}

int lc_progress_write_json(lc_progress *p, const char *path, double wall_seconds,
                           const char *manifest_digest, const char *state_digest, lc_err *err)
{
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
    json_object_set_new(image, "manifest_digest", manifest_digest ? json_string(manifest_digest) : json_null());
    json_object_set_new(image, "state_digest", state_digest ? json_string(state_digest) : json_null());
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
    int rc = 0;
    if (json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
        rc = lc_err_set(err, LC_INTERNAL, "cannot write summary to %s: %s", path, strerror(errno));
    json_decref(root);
    return rc;
}
