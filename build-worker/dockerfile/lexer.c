/* lexer.c - physical lines to logical instruction lines, as BuildKit's
 * parser.Parse does: parser directives at the top, comment and blank lines
 * skipped, continuations joined (comment and empty lines inside a
 * continuation are skipped), heredoc bodies read on request. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "df_internal.h"

void lc_df__lex_init(lc_df_lexer *lx, lc_df_arena *a, const char *file, const char *buf, size_t len)
{
    memset(lx, 0, sizeof(*lx));
    lx->a = a;
    lx->file = file;
    lx->buf = buf;
    lx->len = len;
    lx->escape = '\\';
    /* a UTF-8 byte order mark is skipped */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        lx->off = 3;
}

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

/* Next physical line without its "\r\n"/"\n" (trailing \r\n all trimmed). */
static bool phys(lc_df_lexer *lx, const char **s, size_t *n, size_t *rawlen)
{
    if (lx->off >= lx->len)
        return false;
    const char *p = lx->buf + lx->off;
    const char *nl = memchr(p, '\n', lx->len - lx->off);
    size_t l = nl ? (size_t)(nl - p) : lx->len - lx->off;
    lx->off += nl ? l + 1 : l;
    lx->line++;
    *rawlen = l + (nl ? 1 : 0);
    while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n'))
        l--;
    *s = p;
    *n = l;
    return true;
}

lc_df_pos lc_df__lline_pos(const lc_df_lexer *lx, const lc_df_lline *l, size_t off)
{
    lc_df_pos pos = {lx->file, l->start_line, 1};
    for (size_t i = 0; i < l->nsegs; i++) {
        if (l->segs[i].off <= off) {
            pos.line = l->segs[i].line;
            pos.col = l->segs[i].col + (int)(off - l->segs[i].off);
        }
    }
    return pos;
}

/* "# name = value": 1 and fills name/value, 0 when the line is no directive. */
static int directive_match(const char *s, size_t n, const char **name, size_t *nl, const char **val,
                           size_t *vl)
{
    size_t i = 0;
    if (n == 0 || s[0] != '#')
        return 0;
    i = 1;
    while (i < n && ws(s[i]))
        i++;
    if (i >= n || !isalpha((unsigned char)s[i]))
        return 0;
    *name = s + i;
    while (i < n && isalnum((unsigned char)s[i]))
        i++;
    *nl = (size_t)(s + i - *name);
    while (i < n && ws(s[i]))
        i++;
    if (i >= n || s[i] != '=')
        return 0;
    i++;
    while (i < n && ws(s[i]))
        i++;
    size_t e = n;
    while (e > i && ws(s[e - 1]))
        e--;
    if (e == i)
        return 0;
    *val = s + i;
    *vl = e - i;
    return 1;
}

static int directive(lc_df_lexer *lx, const char *s, size_t n, int col, lc_err *err)
{
    const char *name, *val;
    size_t nl, vl;
    if (lx->directives_done)
        return 0;
    if (!directive_match(s, n, &name, &nl, &val, &vl)) {
        lx->directives_done = true;
        return 0;
    }
    lc_df_pos pos = {lx->file, lx->line, col};
    char *lname = lc_df__strndup(lx->a, name, nl);
    char *v = lc_df__strndup(lx->a, val, vl);
    if (!lname || !v)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (char *p = lname; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(lname, "syntax") && strcmp(lname, "escape") && strcmp(lname, "check")) {
        lx->directives_done = true; /* unknown: a comment, and the end of directives */
        return 0;
    }
    const lc_df_directive *d = lx->directives.items;
    for (size_t i = 0; i < lx->directives.len; i++)
        if (strcmp(d[i].name, lname) == 0)
            return lc_df__errat(err, LC_INVALID_ARGUMENT, &pos,
                                "only one %s parser directive can be used", lname);
    if (strcmp(lname, "escape") == 0) {
        if (strcmp(v, "`") && strcmp(v, "\\"))
            return lc_df__errat(err, LC_INVALID_ARGUMENT, &pos,
                                "invalid escape token '%s' does not match ` or \\", v);
        lx->escape = v[0];
    } else if (strcmp(lname, "syntax") == 0) {
        lx->syntax = v;
    }
    lc_df_directive nd = {lname, v, pos};
    if (lc_df__vec_push(lx->a, &lx->directives, sizeof(nd), &nd))
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

/* Strips the escape char (and blanks after it) at the end: true if found. */
static bool trim_continuation(const lc_df_lexer *lx, const char *s, size_t *n)
{
    size_t e = *n;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    if (e > 0 && s[e - 1] == lx->escape) {
        *n = e - 1;
        return true;
    }
    return false;
}

static bool is_comment(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && ws(s[i]))
        i++;
    return i < n && s[i] == '#';
}

int lc_df__lex_next(lc_df_lexer *lx, lc_df_lline *out, lc_err *err)
{
    const char *s;
    size_t n, raw;
    memset(out, 0, sizeof(*out));
    while (phys(lx, &s, &n, &raw)) {
        size_t lead = 0;
        while (lead < n && ws(s[lead]))
            lead++;
        int rc = directive(lx, s + lead, n - lead, (int)lead + 1, err);
        if (rc)
            return rc;
        s += lead;
        n -= lead;
        if (n > 0 && s[0] == '#')
            n = 0; /* a comment line */
        bool cont = trim_continuation(lx, s, &n);
        if (!cont && n == 0)
            continue;

        lc_df_vec text = {0}, segs = {0};
        lc_df_seg seg = {0, lx->line, (int)lead + 1};
        out->start_line = lx->line;
        if (lc_df__vec_push(lx->a, &segs, sizeof(seg), &seg))
            goto oom;
        for (size_t i = 0; i < n; i++)
            if (lc_df__vec_push(lx->a, &text, 1, &s[i]))
                goto oom;
        while (cont) {
            if (!phys(lx, &s, &n, &raw)) {
                out->cont_at_eof = true;
                break;
            }
            if (is_comment(s, n))
                continue;
            size_t k = 0;
            while (k < n && ws(s[k]))
                k++;
            if (k == n)
                continue; /* empty continuation line */
            cont = trim_continuation(lx, s, &n);
            lc_df_seg sg = {text.len, lx->line, 1};
            if (lc_df__vec_push(lx->a, &segs, sizeof(sg), &sg))
                goto oom;
            for (size_t i = 0; i < n; i++)
                if (lc_df__vec_push(lx->a, &text, 1, &s[i]))
                    goto oom;
        }
        char nul = '\0';
        if (lc_df__vec_push(lx->a, &text, 1, &nul))
            goto oom;
        out->text = text.items;
        out->len = text.len - 1;
        out->segs = segs.items;
        out->nsegs = segs.len;
        out->end_line = lx->line;
        return 1;
    }
    return 0;
oom:
    return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

int lc_df__lex_heredoc(lc_df_lexer *lx, const char *name, bool strip_tabs, char **content)
{
    lc_df_vec body = {0};
    const char *s;
    size_t n, raw;
    int rc = 1;
    while (phys(lx, &s, &n, &raw)) {
        const char *t = s;
        size_t tn = n;
        if (strip_tabs)
            while (tn > 0 && *t == '\t') {
                t++;
                tn--;
            }
        if (tn == strlen(name) && memcmp(t, name, tn) == 0) {
            rc = 0;
            break;
        }
        /* the body keeps its line ends; "<<-" drops leading tabs */
        size_t from = 0;
        if (strip_tabs)
            while (from < raw && s[from] == '\t')
                from++;
        for (size_t i = from; i < raw; i++)
            if (lc_df__vec_push(lx->a, &body, 1, &s[i]))
                return -LC_RESOURCE_EXHAUSTED;
    }
    char nul = '\0';
    if (lc_df__vec_push(lx->a, &body, 1, &nul))
        return -LC_RESOURCE_EXHAUSTED;
    *content = body.items;
    return rc;
}
