/* expand.c - shell-word processing as BuildKit's shell.Lex does it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_internal.h"
#include "expand.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

typedef struct words {
    lc_strlist *out; /* NULL: words not wanted */
    sbuf word;
    bool in_word;
} words;

typedef struct lex {
    const char *s;
    size_t n, i;
    char esc;
    int flags;
    bool raw_escapes;
    lc_df_lookup_fn lookup;
    void *ctx;
    lc_err *err;
    int rc;
} lex;

#define EOFCH (-1)

/* No expanded word may grow past this: `ENV P=$P$P` repeated would
 * otherwise double a value per line until memory runs out. */
#define EXPAND_MAX ((size_t)1 << 20)
#define TOO_LONG (-LC_OUT_OF_RANGE)

static int sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n > EXPAND_MAX)
        return TOO_LONG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -LC_RESOURCE_EXHAUSTED;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int sb_ch(sbuf *b, char c)
{
    return sb_put(b, &c, 1);
}

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int peek(lex *l)
{
    return l->i < l->n ? (unsigned char)l->s[l->i] : EOFCH;
}
static int next(lex *l)
{
    return l->i < l->n ? (unsigned char)l->s[l->i++] : EOFCH;
}

static int fail(lex *l, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(lex *l, int code, const char *fmt, ...)
{
    if (l->rc == 0) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        int n = l->n > 120 ? 120 : (int)l->n;
        l->rc = lc_err_set(l->err, code, "failed to process \"%.*s%s\": %s", n, l->s,
                           l->n > 120 ? "..." : "", msg);
    }
    return l->rc;
}

/* wordsStruct: whitespace outside quotes separates words. */
static int w_raw(words *w, const char *s, size_t n)
{
    if (!w || !w->out)
        return 0;
    w->in_word = true;
    return sb_put(&w->word, s, n);
}

static int w_flush(words *w)
{
    if (!w || !w->out || w->word.len == 0)
        return 0;
    int rc = lc_strlist_push(w->out, w->word.p);
    w->word.len = 0;
    w->word.p[0] = '\0';
    w->in_word = false;
    return rc;
}

static int w_char(words *w, char c)
{
    if (!w || !w->out)
        return 0;
    if (is_space((unsigned char)c)) {
        if (w->in_word && w->word.len)
            return w_flush(w);
        return 0;
    }
    return w_raw(w, &c, 1);
}

static int w_str(words *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = w_char(w, s[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int process_dollar(lex *l, sbuf *out);

static int process_single(lex *l, sbuf *out)
{
    int ch = next(l);
    if (l->flags & LC_DF_EXPAND_RAW_QUOTES)
        sb_ch(out, (char)ch);
    for (;;) {
        ch = next(l);
        if (ch == EOFCH)
            return fail(l, LC_INVALID_ARGUMENT,
                        "unexpected end of statement while looking for matching single-quote");
        if (ch == '\'') {
            if (l->flags & LC_DF_EXPAND_RAW_QUOTES)
                sb_ch(out, (char)ch);
            return 0;
        }
        if (sb_ch(out, (char)ch))
            return -LC_RESOURCE_EXHAUSTED;
    }
}

static int process_double(lex *l, sbuf *out)
{
    int ch = next(l);
    if (l->flags & LC_DF_EXPAND_RAW_QUOTES)
        sb_ch(out, (char)ch);
    for (;;) {
        int p = peek(l);
        if (p == EOFCH)
            return fail(l, LC_INVALID_ARGUMENT,
                        "unexpected end of statement while looking for matching double-quote");
        if (p == '"') {
            next(l);
            if (l->flags & LC_DF_EXPAND_RAW_QUOTES)
                sb_ch(out, '"');
            return 0;
        }
        if (p == '$') {
            int rc = process_dollar(l, out);
            if (rc)
                return rc;
            continue;
        }
        ch = next(l);
        if (ch == l->esc) {
            if (l->raw_escapes)
                sb_ch(out, (char)ch);
            p = peek(l);
            if (p == EOFCH)
                continue; /* a trailing escape is dropped */
            if (p == '"' || p == '$' || p == l->esc)
                ch = next(l);
        }
        if (sb_ch(out, (char)ch))
            return -LC_RESOURCE_EXHAUSTED;
    }
}

/* processStopOn: stop < 0 means the whole input. */
static int process_stop_on(lex *l, int stop, bool raw_escapes, sbuf *result, words *w)
{
    bool saved = l->raw_escapes;
    l->raw_escapes = raw_escapes;
    int rc = 0;
    bool quotes = !(l->flags & LC_DF_EXPAND_NO_QUOTES);
    while (peek(l) != EOFCH) {
        int ch = peek(l);
        if (stop >= 0 && ch == stop) {
            next(l);
            goto out;
        }
        if (ch == '$' || (quotes && (ch == '\'' || ch == '"'))) {
            sbuf tmp = {0};
            if (ch == '$')
                rc = process_dollar(l, &tmp);
            else if (ch == '\'')
                rc = process_single(l, &tmp);
            else
                rc = process_double(l, &tmp);
            if (!rc && tmp.len)
                rc = sb_put(result, tmp.p, tmp.len);
            if (!rc)
                rc = ch == '$' ? w_str(w, tmp.p, tmp.len) : w_raw(w, tmp.p ? tmp.p : "", tmp.len);
            free(tmp.p);
            if (rc)
                goto out;
            continue;
        }
        ch = next(l);
        if (ch == l->esc) {
            if (l->raw_escapes) {
                char c = (char)ch;
                if ((rc = w_raw(w, &c, 1)) || (rc = sb_ch(result, c)))
                    goto out;
            }
            ch = next(l);
            if (ch == EOFCH)
                break;
            char c = (char)ch;
            if ((rc = w_raw(w, &c, 1)))
                goto out;
        } else if ((rc = w_char(w, (char)ch))) {
            goto out;
        }
        if ((rc = sb_ch(result, (char)ch)))
            goto out;
    }
    if (stop >= 0)
        rc = fail(l, LC_INVALID_ARGUMENT,
                  "unexpected end of statement while looking for matching %c", stop);
out:
    l->raw_escapes = saved;
    if (rc == -LC_RESOURCE_EXHAUSTED && l->rc == 0)
        l->rc = lc_err_set(l->err, LC_RESOURCE_EXHAUSTED, "out of memory expanding a word");
    if (rc == TOO_LONG && l->rc == 0)
        l->rc = lc_err_set(l->err, LC_INVALID_ARGUMENT,
                           "variable expansion produces a word longer than 1 MiB");
    return rc ? (l->rc ? l->rc : rc) : 0;
}

static bool is_special_param(int c)
{
    return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!' ||
           c == '0';
}

static bool is_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* processName: digits, one special parameter, or [A-Za-z0-9_]+. */
static void process_name(lex *l, size_t *start, size_t *len)
{
    *start = l->i;
    int c = peek(l);
    if (c >= '0' && c <= '9') {
        while (peek(l) >= '0' && peek(l) <= '9')
            next(l);
    } else if (c != EOFCH && is_special_param(c)) {
        next(l);
    } else {
        while (peek(l) != EOFCH && is_name_char(peek(l)))
            next(l);
    }
    *len = l->i - *start;
}

static const char *get_env(lex *l, const char *name, size_t len)
{
    if (!l->lookup || (l->flags & LC_DF__EXPAND_SYNTAX_ONLY))
        return NULL;
    return l->lookup(l->ctx, name, len);
}

/* A shell pattern, pre-tokenized: literal bytes, '?' (any) and '*' (any run). */
typedef struct pat {
    short *t; /* byte value, or -1 for '?', -2 for '*' */
    size_t n;
} pat;

static int compile_pat(lex *l, const char *p, size_t n, pat *out)
{
    out->t = malloc((n + 1) * sizeof(short));
    out->n = 0;
    if (!out->t)
        return -LC_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '*') {
            out->t[out->n++] = -2;
        } else if (c == '?') {
            out->t[out->n++] = -1;
        } else if (c == '\\') {
            if (i + 1 < n && (p[i + 1] == '}' || p[i + 1] == '/'))
                continue; /* the escape only protected the ${} syntax */
            if (i + 1 >= n || (p[i + 1] != '*' && p[i + 1] != '?' && p[i + 1] != '\\')) {
                free(out->t);
                out->t = NULL;
                return fail(l, LC_INVALID_ARGUMENT,
                            "invalid pattern (%.*s) in substitution: invalid escape '\\%c'", (int)n,
                            p, i + 1 < n ? p[i + 1] : ' ');
            }
            out->t[out->n++] = (unsigned char)p[++i];
        } else {
            out->t[out->n++] = c;
        }
    }
    return 0;
}

static bool pat_match(const short *t, size_t tn, const char *s, size_t n)
{
    size_t ti = 0, si = 0, star_t = (size_t)-1, star_s = 0;
    while (si < n) {
        if (ti < tn && (t[ti] == -1 || (t[ti] >= 0 && t[ti] == (unsigned char)s[si]))) {
            ti++;
            si++;
        } else if (ti < tn && t[ti] == -2) {
            star_t = ti++;
            star_s = si;
        } else if (star_t != (size_t)-1) {
            ti = star_t + 1;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (ti < tn && t[ti] == -2)
        ti++;
    return ti == tn;
}

bool lc_df_glob_match(const char *p, size_t plen, const char *s, size_t n)
{
    lex l = {0};
    pat pt;
    if (compile_pat(&l, p, plen, &pt))
        return false;
    bool ok = pat_match(pt.t, pt.n, s, n);
    free(pt.t);
    return ok;
}

/* ${v#p} ${v##p} ${v%p} ${v%%p}: writes the trimmed value. */
static int trim_value(lex *l, const char *v, char op, const char *p, size_t pn, sbuf *out)
{
    bool greedy = pn > 0 && p[0] == op;
    if (greedy) {
        p++;
        pn--;
    }
    pat pt;
    int rc = compile_pat(l, p, pn, &pt);
    if (rc)
        return rc;
    size_t n = strlen(v), start = 0, end = n;
    if (op == '#') {
        for (size_t k = 0; k <= n; k++) {
            size_t i = greedy ? n - k : k;
            if (pat_match(pt.t, pt.n, v, i)) {
                start = i;
                break;
            }
        }
    } else {
        for (size_t k = 0; k <= n; k++) {
            size_t i = greedy ? k : n - k;
            if (pat_match(pt.t, pt.n, v + i, n - i)) {
                end = i;
                break;
            }
        }
    }
    free(pt.t);
    return sb_put(out, v + start, end - start);
}

/* ${v/p/r} ${v//p/r}: leftmost, longest matches. */
static int replace_value(lex *l, const char *v, const char *p, size_t pn, const char *r, bool all,
                         sbuf *out)
{
    pat pt;
    int rc = compile_pat(l, p, pn, &pt);
    if (rc)
        return rc;
    size_t n = strlen(v), i = 0;
    bool done = false;
    while (i <= n && !rc) {
        size_t mlen = (size_t)-1;
        if (!done) {
            for (size_t e = n; e + 1 > i; e--) {
                if (pat_match(pt.t, pt.n, v + i, e - i)) {
                    mlen = e - i;
                    break;
                }
                if (e == i)
                    break;
            }
        }
        if (mlen != (size_t)-1 && mlen > 0) {
            rc = sb_put(out, r, strlen(r));
            i += mlen;
            done = !all;
            continue;
        }
        if (i < n)
            rc = sb_ch(out, v[i]);
        i++;
    }
    free(pt.t);
    return rc;
}

static int process_dollar(lex *l, sbuf *out)
{
    next(l); /* '$' */
    size_t ns, nl;
    if (peek(l) != '{') {
        process_name(l, &ns, &nl);
        if (nl == 0)
            return sb_ch(out, '$');
        const char *v = get_env(l, l->s + ns, nl);
        if (!v && (l->flags & LC_DF_EXPAND_KEEP_UNSET))
            return sb_put(out, l->s + ns - 1, nl + 1);
        return v ? sb_put(out, v, strlen(v)) : 0;
    }
    size_t open = l->i - 1;
    next(l); /* '{' */
    int c = peek(l);
    if (c == EOFCH)
        return fail(l, LC_INVALID_ARGUMENT, "syntax error: missing '}'");
    if (c == '{' || c == '}' || c == ':')
        return fail(l, LC_INVALID_ARGUMENT, "syntax error: bad substitution");
    process_name(l, &ns, &nl);
    int ch = next(l);
    char chs[3] = {(char)ch, 0, 0};
    bool null_is_unset = false;
    const char *v;
    int rc = 0;
    if (ch == EOFCH)
        return fail(l, LC_INVALID_ARGUMENT, "syntax error: missing '}'");
    if (ch == '}') {
        v = get_env(l, l->s + ns, nl);
        if (!v && (l->flags & LC_DF_EXPAND_KEEP_UNSET))
            return sb_put(out, l->s + open, l->i - open);
        return v ? sb_put(out, v, strlen(v)) : 0;
    }
    if (ch == ':') {
        null_is_unset = true;
        ch = next(l);
        chs[1] = ch == EOFCH ? '\0' : (char)ch;
        if (ch != '+' && ch != '-' && ch != '?' && ch != '#' && ch != '%') {
            if (ch == EOFCH)
                return fail(l, LC_INVALID_ARGUMENT, "syntax error: missing '}'");
            return fail(l, LC_INVALID_ARGUMENT, "unsupported modifier (%s) in substitution", chs);
        }
    }
    if (ch == '+' || ch == '-' || ch == '?' || ch == '#' || ch == '%') {
        sbuf word = {0};
        rc = process_stop_on(l, '}', ch == '#' || ch == '%', &word, NULL);
        if (rc) {
            free(word.p);
            if (peek(l) == EOFCH && l->rc) {
                /* BuildKit reports a missing '}' rather than the inner error */
                l->rc = 0;
                lc_err_clear(l->err);
                return fail(l, LC_INVALID_ARGUMENT, "syntax error: missing '}'");
            }
            return rc;
        }
        const char *w = word.p ? word.p : "";
        v = get_env(l, l->s + ns, nl);
        bool set = v != NULL;
        if (!set && (l->flags & LC_DF_EXPAND_KEEP_UNSET)) {
            rc = sb_put(out, l->s + open, l->i - open);
        } else if (ch == '-') {
            const char *r = (!set || (null_is_unset && !*v)) ? w : v;
            rc = sb_put(out, r, strlen(r));
        } else if (ch == '+') {
            if (set && !(null_is_unset && !*v))
                rc = sb_put(out, w, strlen(w));
        } else if (ch == '?') {
            if (l->flags & LC_DF__EXPAND_SYNTAX_ONLY) {
                /* nothing to check without values */
            } else if (!set) {
                rc = fail(l, LC_INVALID_ARGUMENT, "%.*s: %s", (int)nl, l->s + ns,
                          *w ? w : "is not allowed to be unset");
            } else if (null_is_unset && !*v) {
                rc = fail(l, LC_INVALID_ARGUMENT, "%.*s: %s", (int)nl, l->s + ns,
                          *w ? w : "is not allowed to be empty");
            } else {
                rc = sb_put(out, v, strlen(v));
            }
        } else {
            rc = trim_value(l, v ? v : "", (char)ch, w, strlen(w), out);
        }
        free(word.p);
        return rc;
    }
    if (ch == '/') {
        bool all = peek(l) == '/';
        if (all)
            next(l);
        sbuf p = {0}, r = {0};
        rc = process_stop_on(l, '/', true, &p, NULL);
        if (rc && peek(l) == EOFCH) {
            l->rc = 0;
            lc_err_clear(l->err);
            rc = fail(l, LC_INVALID_ARGUMENT, "syntax error: missing '/' in ${}");
        }
        if (!rc) {
            rc = process_stop_on(l, '}', true, &r, NULL);
            if (rc && peek(l) == EOFCH) {
                l->rc = 0;
                lc_err_clear(l->err);
                rc = fail(l, LC_INVALID_ARGUMENT, "syntax error: missing '}'");
            }
        }
        if (!rc) {
            v = get_env(l, l->s + ns, nl);
            if (!v && (l->flags & LC_DF_EXPAND_KEEP_UNSET))
                rc = sb_put(out, l->s + open, l->i - open);
            else
                rc = replace_value(l, v ? v : "", p.p ? p.p : "", p.len, r.p ? r.p : "", all, out);
        }
        free(p.p);
        free(r.p);
        return rc;
    }
    return fail(l, LC_INVALID_ARGUMENT, "unsupported modifier (%s) in substitution", chs);
}

static int run(const char *word, char escape, int flags, lc_df_lookup_fn lookup, void *ctx,
               sbuf *result, words *w, lc_err *err)
{
    lex l = {.s = word,
             .n = strlen(word),
             .esc = escape ? escape : '\\',
             .flags = flags,
             .raw_escapes = (flags & LC_DF_EXPAND_RAW_ESCAPES) != 0,
             .lookup = lookup,
             .ctx = ctx,
             .err = err};
    int rc = process_stop_on(&l, -1, l.raw_escapes, result, w);
    if (rc == 0 && w)
        rc = w_flush(w);
    if (rc == -LC_RESOURCE_EXHAUSTED && !l.rc)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory expanding a word");
    if (rc == TOO_LONG && !l.rc)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "variable expansion produces a word longer than 1 MiB");
    return rc;
}

int lc_df_expand_word(const char *word, char escape, int flags, lc_df_lookup_fn lookup, void *ctx,
                      char **out, lc_err *err)
{
    sbuf result = {0};
    *out = NULL;
    int rc = run(word, escape, flags, lookup, ctx, &result, NULL, err);
    if (rc == 0 && !result.p)
        rc = sb_put(&result, "", 0);
    if (rc) {
        free(result.p);
        return rc < 0 ? rc : -rc;
    }
    *out = result.p;
    return 0;
}

int lc_df_expand_words(const char *text, char escape, int flags, lc_df_lookup_fn lookup, void *ctx,
                       lc_strlist *out, lc_err *err)
{
    sbuf result = {0};
    words w = {.out = out};
    int rc = run(text, escape, flags, lookup, ctx, &result, &w, err);
    free(result.p);
    free(w.word.p);
    return rc;
}

const char *lc_df_lookup_vars(void *ctx, const char *name, size_t len)
{
    const lc_df_varlist *vl = ctx;
    for (size_t i = vl->len; i-- > 0;) {
        const char *n = vl->vars[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return vl->vars[i].value;
    }
    return NULL;
}
