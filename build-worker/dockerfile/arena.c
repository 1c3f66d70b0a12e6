/* arena.c - the single owner of a parsed Dockerfile's memory. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "df_internal.h"

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct lc_df_arena {
    struct chunk *head;
};

lc_df_arena *lc_df__arena_new(void)
{
    return calloc(1, sizeof(lc_df_arena));
}

void lc_df__arena_free(lc_df_arena **a)
{
    if (!a || !*a)
        return;
    struct chunk *c = (*a)->head;
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(*a);
    *a = NULL;
}

void *lc_df__alloc(lc_df_arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *lc_df__strndup(lc_df_arena *a, const char *s, size_t n)
{
    char *p = lc_df__alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *lc_df__strdup(lc_df_arena *a, const char *s)
{
    return lc_df__strndup(a, s, strlen(s));
}

char *lc_df__printf(lc_df_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = lc_df__alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int lc_df__vec_push(lc_df_arena *a, lc_df_vec *v, size_t size, const void *item)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        void *items = lc_df__alloc(a, cap * size);
        if (!items)
            return -LC_RESOURCE_EXHAUSTED;
        if (v->len)
            memcpy(items, v->items, v->len * size);
        v->items = items;
        v->cap = cap;
    }
    memcpy((char *)v->items + v->len * size, item, size);
    v->len++;
    return 0;
}

int lc_df__errat(lc_err *err, int code, const lc_df_pos *pos, const char *fmt, ...)
{
    char msg[LC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lc_err_set(err, code, "%s:%d:%d: %s", pos->file ? pos->file : "Dockerfile", pos->line,
                      pos->col, msg);
}

size_t lc_df__distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}
