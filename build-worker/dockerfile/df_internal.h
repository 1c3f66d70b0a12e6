/* df_internal.h - internals shared by the dockerfile/ sources (not public). */
#ifndef LC_DF_INTERNAL_H
#define LC_DF_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "dockerfile.h"

/* One owner for everything a parsed file or a plan holds: freed at once. */
typedef struct lc_df_arena lc_df_arena;
lc_df_arena *lc_df__arena_new(void);
void lc_df__arena_free(lc_df_arena **a);
void *lc_df__alloc(lc_df_arena *a, size_t n); /* zeroed; NULL when out of memory */
char *lc_df__strndup(lc_df_arena *a, const char *s, size_t n);
char *lc_df__strdup(lc_df_arena *a, const char *s);
char *lc_df__printf(lc_df_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Growable array inside an arena: growing copies, the old block stays in
 * the arena (at most 2x waste, nothing to free on error paths). */
typedef struct lc_df_vec {
    void *items;
    size_t len, cap;
} lc_df_vec;
int lc_df__vec_push(lc_df_arena *a, lc_df_vec *v, size_t size, const void *item);

/* Sets "FILE:LINE:COL: message" and returns -code. */
int lc_df__errat(lc_err *err, int code, const lc_df_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Syntax-only check of a word for expand: no lookup, ${X?} never fails. */
#define LC_DF__EXPAND_SYNTAX_ONLY (1 << 8)

/* Levenshtein distance (case-insensitive), for "did you mean". */
size_t lc_df__distance(const char *a, const char *b);

/* ---- lexer (lexer.c): physical lines -> logical instruction lines ---- */

/* Offset off of a joined line begins at physical (line, col). */
typedef struct lc_df_seg {
    size_t off;
    int line;
    int col;
} lc_df_seg;

typedef struct lc_df_lline {
    const char *text; /* continuations joined, NUL-terminated (arena) */
    size_t len;
    lc_df_seg *segs;
    size_t nsegs;
    int start_line, end_line;
    bool cont_at_eof; /* the last line ended with a continuation */
} lc_df_lline;

typedef struct lc_df_lexer {
    lc_df_arena *a;
    const char *file;
    const char *buf;
    size_t len, off;
    int line; /* physical lines consumed */
    char escape;
    bool directives_done;
    lc_df_vec directives; /* lc_df_directive */
    const char *syntax;
} lc_df_lexer;

void lc_df__lex_init(lc_df_lexer *lx, lc_df_arena *a, const char *file, const char *buf,
                     size_t len);
/* 1: *out is the next instruction line; 0: end of input; < 0: error. */
int lc_df__lex_next(lc_df_lexer *lx, lc_df_lline *out, lc_err *err);
/* Reads a heredoc body up to its delimiter: 0, or 1 when the input ended first. */
int lc_df__lex_heredoc(lc_df_lexer *lx, const char *name, bool strip_tabs, char **content);
lc_df_pos lc_df__lline_pos(const lc_df_lexer *lx, const lc_df_lline *l, size_t off);

#endif
