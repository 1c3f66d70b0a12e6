/* dump.c - a stable text rendering of the AST, one fact per line, for
 * golden tests and debugging. Strings are quoted C-style. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_internal.h"

typedef struct out {
    char *p;
    size_t len, cap;
    bool oom;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void pf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pf(out *o, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n >= 0)
        put(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void q(out *o, const char *s)
{
    if (!s) {
        put(o, "null", 4);
        return;
    }
    put(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c == '\t') {
            put(o, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            pf(o, "\\x%02x", c);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
}

static void indent(out *o, int n)
{
    for (int i = 0; i < n; i++)
        put(o, "  ", 2);
}

static void instr(out *o, const lc_df_instr *in, int d)
{
    indent(o, d);
    pf(o, "%s @%d:%d-%d", lc_df_kind_name(in->kind), in->pos.line, in->pos.col, in->end_line);
    if (in->json)
        put(o, " json", 5);
    if (in->healthcheck_none)
        put(o, " none", 5);
    put(o, "\n", 1);
    indent(o, d + 1);
    put(o, "original ", 9);
    q(o, in->original);
    put(o, "\n", 1);
    for (size_t i = 0; i < in->nflags; i++) {
        indent(o, d + 1);
        pf(o, "flag %s=", in->flags[i].name);
        q(o, in->flags[i].value);
        pf(o, " @%d:%d\n", in->flags[i].pos.line, in->flags[i].pos.col);
    }
    for (size_t i = 0; i < in->nargs; i++) {
        indent(o, d + 1);
        put(o, "arg ", 4);
        q(o, in->args[i]);
        put(o, "\n", 1);
    }
    for (size_t i = 0; i < in->nkvs; i++) {
        indent(o, d + 1);
        put(o, "kv ", 3);
        q(o, in->kvs[i].key);
        put(o, " = ", 3);
        q(o, in->kvs[i].value);
        put(o, "\n", 1);
    }
    for (size_t i = 0; i < in->nheredocs; i++) {
        const lc_df_heredoc *h = &in->heredocs[i];
        indent(o, d + 1);
        put(o, "heredoc ", 8);
        q(o, h->name);
        pf(o, " fd=%d strip_tabs=%d expand=%d content=", h->fd, h->strip_tabs, h->expand);
        q(o, h->content);
        put(o, "\n", 1);
    }
    if (in->sub) {
        indent(o, d + 1);
        put(o, "trigger\n", 8);
        instr(o, in->sub, d + 2);
    }
}

char *lc_df_dump(const lc_df_file *f)
{
    out o = {0};
    put(&o, "file ", 5);
    q(&o, f->filename);
    pf(&o, " escape=%c syntax=", f->escape);
    q(&o, f->syntax);
    put(&o, "\n", 1);
    for (size_t i = 0; i < f->ndirectives; i++) {
        pf(&o, "directive %s=", f->directives[i].name);
        q(&o, f->directives[i].value);
        pf(&o, " @%d:%d\n", f->directives[i].pos.line, f->directives[i].pos.col);
    }
    for (size_t i = 0; i < f->nglobal_args; i++) {
        put(&o, "global\n", 7);
        instr(&o, &f->global_args[i], 1);
    }
    for (size_t i = 0; i < f->nstages; i++) {
        const lc_df_stage *s = &f->stages[i];
        pf(&o, "stage %d name=", s->index);
        q(&o, s->name);
        put(&o, " base=", 6);
        q(&o, s->base);
        put(&o, " platform=", 10);
        q(&o, s->platform);
        put(&o, "\n", 1);
        instr(&o, s->from, 1);
        for (size_t k = 0; k < s->ninstrs; k++)
            instr(&o, &s->instrs[k], 1);
    }
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
