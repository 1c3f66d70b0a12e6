/* expand.h - Dockerfile word processing and variable substitution.
 *
 * Behaves like BuildKit's shell.Lex (ProcessWord / ProcessWords): single
 * quotes are literal, double quotes allow $ substitution and escapes of
 * " $ and the escape char, the escape char ('\\' or '`') makes the next char
 * literal, and these forms are substituted:
 *   $NAME ${NAME}            value, "" when unset
 *   ${NAME:-w} ${NAME-w}     w when unset (":" also when empty)
 *   ${NAME:+w} ${NAME+w}     w when set (":" only when non-empty), else ""
 *   ${NAME:?w} ${NAME?w}     error w when unset (":" also when empty)
 *   ${NAME#p} ${NAME##p}     remove shortest/longest prefix matching glob p
 *   ${NAME%p} ${NAME%%p}     remove shortest/longest suffix matching glob p
 *   ${NAME/p/r} ${NAME//p/r} replace first/all matches of glob p by r
 * Words are split on unquoted whitespace after substitution.
 */
#ifndef LC_DF_EXPAND_H
#define LC_DF_EXPAND_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "strlist.h"

/* Returns the value of the variable name[0..len) or NULL when unset. The
 * pointer needs to stay valid only until the next call. */
typedef const char *(*lc_df_lookup_fn)(void *ctx, const char *name, size_t len);

enum {
    LC_DF_EXPAND_RAW_QUOTES = 1 << 0,  /* keep quote characters in the output */
    LC_DF_EXPAND_RAW_ESCAPES = 1 << 1, /* keep escape characters in the output */
    LC_DF_EXPAND_KEEP_UNSET = 1 << 2,  /* leave $X / ${X...} as written when X is unset */
    LC_DF_EXPAND_NO_QUOTES = 1 << 3,   /* quotes are ordinary characters (heredoc bodies) */
};

/* Processes one word: the result is one string (whitespace kept). escape is
 * '\\' or '`'; lookup may be NULL (everything unset). *out is malloc'd
 * (caller frees). Errors (LC_INVALID_ARGUMENT): "failed to process \"w\": ...". */
int lc_df_expand_word(const char *word, char escape, int flags, lc_df_lookup_fn lookup, void *ctx,
                      char **out, lc_err *err);

/* Same processing, split into words on unquoted whitespace (appended to out). */
int lc_df_expand_words(const char *text, char escape, int flags, lc_df_lookup_fn lookup, void *ctx,
                       lc_strlist *out, lc_err *err);

/* A lookup over an array of NAME/VALUE pairs, the last definition winning:
 * pass lc_df_lookup_vars with ctx pointing at an lc_df_varlist. */
typedef struct lc_df_var {
    const char *name;
    const char *value;
} lc_df_var;
typedef struct lc_df_varlist {
    const lc_df_var *vars;
    size_t len;
} lc_df_varlist;
const char *lc_df_lookup_vars(void *ctx, const char *name, size_t len);

/* Shell glob match (`*`, `?`, escape with '\\') of the whole string s[0..n). */
bool lc_df_glob_match(const char *pat, size_t plen, const char *s, size_t n);

#endif
