/* dockerignore.c - see dockerignore.h.
 *
 * Each pattern compiles the way moby/patternmatcher compiles it: patterns
 * without wildcards compare exactly, "prefix/" + "**" is a prefix test, a
 * leading "**" a suffix test, everything else an anchored regular expression. Instead of
 * a regex engine we build a small Thompson NFA over code points and simulate
 * it (linear time, so hostile patterns cannot make matching exponential). */
#include "dockerignore.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "path.h"

enum match_type { M_EXACT, M_PREFIX, M_SUFFIX, M_REGEX };
enum st_kind { ST_CHAR, ST_ANY, ST_NOSLASH, ST_CLASS, ST_SPLIT, ST_MATCH };

typedef struct nstate {
    uint8_t kind;
    uint32_t c; /* ST_CHAR: code point; ST_CLASS: class index */
    int out, out1;
} nstate;

typedef struct cclass {
    int neg;
    size_t n;
    uint32_t *lo, *hi;
} cclass;

typedef struct pattern {
    char *text;    /* cleaned, without '!' */
    char *display; /* as stored: "!" + text for exceptions */
    int exception;
    int type;
    nstate *st;
    int nst, start;
    cclass *cls;
    size_t ncls;
} pattern;

struct lc_ignore {
    pattern *pats;
    size_t n;
    int has_exceptions;
};

/* ---- UTF-8 -------------------------------------------------------------- */

/* Decodes one code point; invalid bytes decode as U+FFFD one byte at a time,
 * like Go's range over a string. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    if (n > len) {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        *cp = 0xfffd;
        return 1;
    }
    *cp = v;
    return n;
}

/* Decodes s into a freshly allocated code point array. */
static uint32_t *utf8_decode(const char *s, size_t *count)
{
    size_t len = strlen(s);
    uint32_t *out = malloc((len + 1) * sizeof(*out));
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len;)
        i += utf8_next((const unsigned char *)s + i, len - i, &out[n++]);
    *count = n;
    return out;
}

/* ---- compiling ----------------------------------------------------------- */

enum tok_kind { T_LIT, T_QM, T_STAR, T_DSTAR_SLASH, T_DSTAR_END, T_CLASS };
typedef struct tok {
    int kind;
    uint32_t c;
} tok;

static int add_state(pattern *p, int kind, uint32_t c, int out, int out1)
{
    nstate *s = &p->st[p->nst];
    s->kind = (uint8_t)kind;
    s->c = c;
    s->out = out;
    s->out1 = out1;
    return p->nst++;
}

/* Parses "[...]" starting after '['; *pos is advanced past ']'. Go's
 * filepath.Match rules: optional '^', then ranges "a-z" or single (possibly
 * '\'-escaped) characters, at least one, until ']'. */
static int parse_class(const uint32_t *r, size_t n, size_t *pos, cclass *out)
{
    size_t i = *pos;
    out->neg = 0;
    out->n = 0;
    out->lo = malloc((n + 1) * sizeof(uint32_t));
    out->hi = malloc((n + 1) * sizeof(uint32_t));
    if (out->lo == NULL || out->hi == NULL)
        return -1;
    if (i < n && r[i] == '^') {
        out->neg = 1;
        i++;
    }
    for (;;) {
        if (i >= n)
            return -1; /* unterminated */
        if (r[i] == ']' && out->n > 0)
            break;
        if (r[i] == ']' || r[i] == '-')
            return -1; /* empty class or stray '-' */
        uint32_t lo, hi;
        if (r[i] == '\\') {
            if (++i >= n)
                return -1;
        }
        lo = r[i++];
        hi = lo;
        if (i < n && r[i] == '-') {
            i++;
            if (i >= n)
                return -1;
            if (r[i] == '\\') {
                if (++i >= n)
                    return -1;
            } else if (r[i] == ']') {
                return -1;
            }
            hi = r[i++];
        }
        out->lo[out->n] = lo;
        out->hi[out->n] = hi;
        out->n++;
    }
    *pos = i + 1;
    return 0;
}

static void pattern_clear(pattern *p)
{
    free(p->text);
    free(p->display);
    free(p->st);
    for (size_t i = 0; i < p->ncls; i++) {
        free(p->cls[i].lo);
        free(p->cls[i].hi);
    }
    free(p->cls);
    memset(p, 0, sizeof(*p));
}

/* Compiles p->text into p->type and, for M_REGEX, the NFA. 0 or -1 for a
 * malformed pattern. */
static int pattern_compile(pattern *p)
{
    size_t n = 0;
    uint32_t *r = utf8_decode(p->text, &n);
    tok *toks = malloc((n + 1) * sizeof(*toks));
    int rc = -1;
    if (r == NULL || toks == NULL)
        goto out;
    p->cls = calloc(n + 1, sizeof(*p->cls));
    if (p->cls == NULL)
        goto out;
    size_t nt = 0;
    p->type = M_EXACT;
    size_t pos = 0;
    for (int i = 0; pos < n; i++) {
        uint32_t ch = r[pos++];
        if (ch == '*') {
            if (pos < n && r[pos] == '*') {
                pos++;
                if (pos < n && r[pos] == '/')
                    pos++;
                if (pos >= n) {
                    if (p->type == M_EXACT) {
                        p->type = M_PREFIX;
                    } else {
                        toks[nt++] = (tok){T_DSTAR_END, 0};
                        p->type = M_REGEX;
                    }
                } else {
                    toks[nt++] = (tok){T_DSTAR_SLASH, 0};
                    p->type = M_REGEX;
                }
                if (i == 0)
                    p->type = M_SUFFIX;
            } else {
                toks[nt++] = (tok){T_STAR, 0};
                p->type = M_REGEX;
            }
        } else if (ch == '?') {
            toks[nt++] = (tok){T_QM, 0};
            p->type = M_REGEX;
        } else if (ch == '\\') {
            if (pos >= n)
                goto out; /* trailing backslash: filepath.ErrBadPattern */
            toks[nt++] = (tok){T_LIT, r[pos++]};
        } else if (ch == '[') {
            if (parse_class(r, n, &pos, &p->cls[p->ncls]) != 0) {
                p->ncls++;
                goto out;
            }
            toks[nt++] = (tok){T_CLASS, (uint32_t)p->ncls++};
            p->type = M_REGEX;
        } else {
            /* Regex-special characters (".+()|{}$") are plain literals here. */
            toks[nt++] = (tok){T_LIT, ch};
        }
    }
    /* Build the NFA backwards so each element knows its successor. */
    /* At most 4 states per token (a double star with its slash) plus the match state. */
    p->st = malloc((4 * nt + 2) * sizeof(*p->st));
    if (p->st == NULL)
        goto out;
    int next = add_state(p, ST_MATCH, 0, -1, -1);
    for (size_t k = nt; k-- > 0;) {
        switch (toks[k].kind) {
        case T_LIT:
            next = add_state(p, ST_CHAR, toks[k].c, next, -1);
            break;
        case T_QM:
            next = add_state(p, ST_NOSLASH, 0, next, -1);
            break;
        case T_CLASS:
            next = add_state(p, ST_CLASS, toks[k].c, next, -1);
            break;
        case T_STAR: {
            int l = add_state(p, ST_SPLIT, 0, -1, next);
            p->st[l].out = add_state(p, ST_NOSLASH, 0, l, -1);
            next = l;
            break;
        }
        case T_DSTAR_END: {
            int l = add_state(p, ST_SPLIT, 0, -1, next);
            p->st[l].out = add_state(p, ST_ANY, 0, l, -1);
            next = l;
            break;
        }
        case T_DSTAR_SLASH: {
            /* "(.* then /)?": skip, or loop over any characters and leave after a '/'. */
            int slash = add_state(p, ST_CHAR, '/', next, -1);
            int l = add_state(p, ST_SPLIT, 0, -1, slash);
            p->st[l].out = add_state(p, ST_ANY, 0, l, -1);
            next = add_state(p, ST_SPLIT, 0, l, next);
            break;
        }
        }
    }
    p->start = next;
    rc = 0;
out:
    free(r);
    free(toks);
    return rc;
}

/* ---- matching ------------------------------------------------------------ */

static int class_has(const cclass *c, uint32_t cp)
{
    int in = 0;
    for (size_t i = 0; i < c->n && !in; i++)
        in = cp >= c->lo[i] && cp <= c->hi[i];
    return c->neg ? !in : in;
}

/* Adds s and everything reachable by epsilon moves to list. */
static void add_closure(const pattern *p, int s, int *list, int *nlist, int *mark, int gen,
                        int *stack)
{
    int sp = 0;
    stack[sp++] = s;
    while (sp > 0) {
        int x = stack[--sp];
        if (x < 0 || mark[x] == gen)
            continue;
        mark[x] = gen;
        if (p->st[x].kind == ST_SPLIT) {
            stack[sp++] = p->st[x].out1;
            stack[sp++] = p->st[x].out;
        } else {
            list[(*nlist)++] = x;
        }
    }
}

static int regex_match(const pattern *p, const char *path)
{
    size_t n = 0;
    uint32_t *r = utf8_decode(path, &n);
    int *buf = malloc((size_t)p->nst * 5 * sizeof(int));
    int matched = 0;
    if (r == NULL || buf == NULL)
        goto out;
    int *cur = buf, *nxt = buf + p->nst, *mark = buf + 2 * p->nst, *stack = buf + 3 * p->nst;
    int ncur = 0, nnxt = 0, gen = 1;
    for (int i = 0; i < p->nst; i++)
        mark[i] = 0;
    add_closure(p, p->start, cur, &ncur, mark, gen, stack);
    for (size_t i = 0; i < n && ncur > 0; i++) {
        uint32_t c = r[i];
        gen++;
        nnxt = 0;
        for (int k = 0; k < ncur; k++) {
            const nstate *s = &p->st[cur[k]];
            int ok = 0;
            switch (s->kind) {
            case ST_CHAR:
                ok = s->c == c;
                break;
            case ST_ANY:
                ok = c != '\n'; /* Go's regexp '.' */
                break;
            case ST_NOSLASH:
                ok = c != '/';
                break;
            case ST_CLASS:
                ok = class_has(&p->cls[s->c], c);
                break;
            default:
                break;
            }
            if (ok)
                add_closure(p, s->out, nxt, &nnxt, mark, gen, stack);
        }
        int *t = cur;
        cur = nxt;
        nxt = t;
        ncur = nnxt;
    }
    for (int k = 0; k < ncur; k++)
        if (p->st[cur[k]].kind == ST_MATCH)
            matched = 1;
out:
    free(r);
    free(buf);
    return matched;
}

static int pattern_match(const pattern *p, const char *path)
{
    size_t lp = strlen(p->text), ln = strlen(path);
    switch (p->type) {
    case M_EXACT:
        return strcmp(path, p->text) == 0;
    case M_PREFIX:
        return ln >= lp - 2 && memcmp(path, p->text, lp - 2) == 0;
    case M_SUFFIX: {
        const char *suffix = p->text + 2;
        size_t ls = lp - 2;
        if (ln >= ls && memcmp(path + ln - ls, suffix, ls) == 0)
            return 1;
        return ls > 0 && suffix[0] == '/' && strcmp(path, suffix + 1) == 0;
    }
    default:
        return regex_match(p, path);
    }
}

bool lc_ignore_match(const lc_ignore *ig, const char *relpath)
{
    if (ig == NULL || ig->n == 0)
        return false;
    int matched = 0;
    /* Parent prefixes: "a/b/c" checks "a" and "a/b" too (parent "." has none). */
    size_t len = strlen(relpath);
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return false;
    const char *last_slash = strrchr(relpath, '/');
    for (size_t i = 0; i < ig->n; i++) {
        const pattern *p = &ig->pats[i];
        if (p->exception != matched)
            continue;
        int m = pattern_match(p, relpath);
        if (!m && last_slash != NULL) {
            for (const char *s = strchr(relpath, '/'); s != NULL && s <= last_slash;
                 s = strchr(s + 1, '/')) {
                size_t k = (size_t)(s - relpath);
                memcpy(buf, relpath, k);
                buf[k] = '\0';
                if (pattern_match(p, buf)) {
                    m = 1;
                    break;
                }
            }
        }
        if (m)
            matched = !p->exception;
    }
    free(buf);
    return matched != 0;
}

/* ---- building ------------------------------------------------------------ */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims whitespace from both ends of [*s, *s+*n). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

static int ignore_add(lc_ignore *ig, const char *line, size_t n, const char *name, size_t lineno,
                      lc_err *err)
{
    trim(&line, &n);
    if (n == 0)
        return 0;
    int exception = line[0] == '!';
    if (exception) {
        line++;
        n--;
        trim(&line, &n);
    }
    char *text = NULL;
    if (n > 0) {
        text = lc_path_clean_n(line, n);
        if (text == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        if (strlen(text) > 1 && text[0] == '/')
            memmove(text, text + 1, strlen(text));
    } else {
        if (exception) {
            return lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%zu: illegal exclusion pattern: \"!\"",
                              name, lineno);
        }
        return 0;
    }
    pattern *grown = realloc(ig->pats, (ig->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(text);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    ig->pats = grown;
    pattern *p = &ig->pats[ig->n];
    memset(p, 0, sizeof(*p));
    p->text = text;
    p->exception = exception;
    p->display = malloc(strlen(text) + 2);
    if (p->display == NULL) {
        pattern_clear(p);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    sprintf(p->display, "%s%s", exception ? "!" : "", text);
    if (pattern_compile(p) != 0) {
        int rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%zu: syntax error in pattern '%s'", name,
                            lineno, p->display);
        pattern_clear(p);
        return rc;
    }
    if (exception)
        ig->has_exceptions = 1;
    ig->n++;
    return 0;
}

int lc_ignore_parse(const char *text, size_t len, const char *name, lc_ignore **out, lc_err *err)
{
    *out = NULL;
    lc_ignore *ig = calloc(1, sizeof(*ig));
    if (ig == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (name == NULL)
        name = ".dockerignore";
    size_t pos = 0, lineno = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *line = text + pos;
        size_t n = end - pos;
        lineno++;
        pos = end + 1;
        /* A comment starts at the first byte, before trimming (as Docker). */
        if (n > 0 && line[0] == '#')
            continue;
        if (memchr(line, '\0', n) != NULL) {
            lc_ignore_free(&ig);
            return lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%zu: NUL byte in pattern", name,
                              lineno);
        }
        int rc = ignore_add(ig, line, n, name, lineno, err);
        if (rc != 0) {
            lc_ignore_free(&ig);
            return rc;
        }
    }
    *out = ig;
    return 0;
}

int lc_ignore_from_patterns(const char *const *patterns, size_t n, lc_ignore **out, lc_err *err)
{
    *out = NULL;
    lc_ignore *ig = calloc(1, sizeof(*ig));
    if (ig == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = ignore_add(ig, patterns[i], strlen(patterns[i]), "--exclude", i + 1, err);
        if (rc != 0) {
            lc_ignore_free(&ig);
            return rc;
        }
    }
    *out = ig;
    return 0;
}

static int read_file(const char *path, char **data, size_t *len, lc_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot open %s: %s", path,
                          strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = 0;
    if (buf == NULL) {
        fclose(f);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
    }
    for (;;) {
        if (n == cap) {
            char *g = realloc(buf, cap * 2);
            if (g == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
                break;
            }
            buf = g;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = lc_err_set(err, LC_UNAVAILABLE, "cannot read %s", path);
    if (rc != 0) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return rc;
}

int lc_ignore_load(const char *context_dir, const char *dockerfile, lc_ignore **out,
                   char **used_path, lc_err *err)
{
    *out = NULL;
    if (used_path != NULL)
        *used_path = NULL;
    char *candidates[2] = {NULL, NULL};
    int rc = 0;
    if (dockerfile != NULL) {
        candidates[0] = malloc(strlen(dockerfile) + sizeof(".dockerignore"));
        if (candidates[0] != NULL)
            sprintf(candidates[0], "%s.dockerignore", dockerfile);
    }
    candidates[1] = lc_path_join(context_dir, ".dockerignore");
    if (candidates[1] == NULL || (dockerfile != NULL && candidates[0] == NULL)) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (candidates[i] == NULL || stat(candidates[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        char *data = NULL;
        size_t len = 0;
        rc = read_file(candidates[i], &data, &len, err);
        if (rc != 0)
            goto out;
        rc = lc_ignore_parse(data, len, candidates[i], out, err);
        free(data);
        if (rc == 0 && used_path != NULL) {
            *used_path = candidates[i];
            candidates[i] = NULL;
        }
        goto out;
    }
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(candidates[0]);
    free(candidates[1]);
    return rc;
}

bool lc_ignore_has_exceptions(const lc_ignore *ig)
{
    return ig != NULL && ig->has_exceptions;
}

size_t lc_ignore_count(const lc_ignore *ig)
{
    return ig ? ig->n : 0;
}

const char *lc_ignore_pattern(const lc_ignore *ig, size_t i)
{
    return ig != NULL && i < ig->n ? ig->pats[i].display : NULL;
}

void lc_ignore_free(lc_ignore **ig)
{
    if (ig == NULL || *ig == NULL)
        return;
    for (size_t i = 0; i < (*ig)->n; i++)
        pattern_clear(&(*ig)->pats[i]);
    free((*ig)->pats);
    free(*ig);
    *ig = NULL;
}
