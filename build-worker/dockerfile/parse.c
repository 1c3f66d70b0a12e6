/* parse.c - instructions, flags and arguments from logical lines, following
 * BuildKit's parser (line_parsers.go) and instructions (parse.go, bflag.go). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df_internal.h"
#include "expand.h"

/* Flag types: 's' string, 'b' bool, 'm' repeatable string. */
static const struct {
    const char *name;
    const char *flags; /* "name:t name:t ..." */
} KINDS[LC_DF_KIND_COUNT] = {
    [LC_DF_FROM] = {"FROM", "platform:s"},
    [LC_DF_RUN] = {"RUN", "mount:m network:s security:s"},
    [LC_DF_CMD] = {"CMD", ""},
    [LC_DF_ENTRYPOINT] = {"ENTRYPOINT", ""},
    [LC_DF_SHELL] = {"SHELL", ""},
    [LC_DF_COPY] = {"COPY", "from:s chown:s chmod:s link:b parents:b exclude:m"},
    [LC_DF_ADD] = {"ADD", "chown:s chmod:s link:b keep-git-dir:b checksum:s exclude:m"},
    [LC_DF_ENV] = {"ENV", ""},
    [LC_DF_ARG] = {"ARG", ""},
    [LC_DF_LABEL] = {"LABEL", ""},
    [LC_DF_EXPOSE] = {"EXPOSE", ""},
    [LC_DF_USER] = {"USER", ""},
    [LC_DF_WORKDIR] = {"WORKDIR", ""},
    [LC_DF_VOLUME] = {"VOLUME", ""},
    [LC_DF_STOPSIGNAL] = {"STOPSIGNAL", ""},
    [LC_DF_HEALTHCHECK] = {"HEALTHCHECK",
                           "interval:s timeout:s start-period:s start-interval:s retries:s"},
    [LC_DF_ONBUILD] = {"ONBUILD", ""},
    [LC_DF_MAINTAINER] = {"MAINTAINER", ""},
};

const char *lc_df_kind_name(enum lc_df_kind kind)
{
    return (unsigned)kind < LC_DF_KIND_COUNT ? KINDS[kind].name : "?";
}

bool lc_df_kind_expands(enum lc_df_kind kind)
{
    switch (kind) {
    case LC_DF_ADD:
    case LC_DF_COPY:
    case LC_DF_ENV:
    case LC_DF_EXPOSE:
    case LC_DF_FROM:
    case LC_DF_LABEL:
    case LC_DF_STOPSIGNAL:
    case LC_DF_USER:
    case LC_DF_VOLUME:
    case LC_DF_WORKDIR:
    case LC_DF_ARG:
        return true;
    default:
        return false;
    }
}

const lc_df_flag *lc_df_instr_flag(const lc_df_instr *in, const char *name)
{
    for (size_t i = 0; in && i < in->nflags; i++)
        if (strcmp(in->flags[i].name, name) == 0)
            return &in->flags[i];
    return NULL;
}

typedef struct parser {
    lc_df_lexer lx;
    lc_df_arena *a;
    lc_err *err;
    const lc_df_lline *ll;
} parser;

#define OOM(p) lc_err_set((p)->err, LC_RESOURCE_EXHAUSTED, "out of memory parsing a Dockerfile")

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

static lc_df_pos pos_at(parser *p, size_t off)
{
    return lc_df__lline_pos(&p->lx, p->ll, off);
}

/* Flag type for name in kind's table: 's', 'b', 'm', or 0 when unknown. */
static char flag_type(enum lc_df_kind kind, const char *name, size_t n)
{
    const char *s = KINDS[kind].flags;
    while (*s) {
        const char *colon = strchr(s, ':');
        if ((size_t)(colon - s) == n && strncmp(s, name, n) == 0)
            return colon[1];
        s = colon + 2;
        while (*s == ' ')
            s++;
    }
    return 0;
}

static void suggest_flag(enum lc_df_kind kind, const char *name, char *out, size_t outn)
{
    const char *s = KINDS[kind].flags;
    size_t best = (size_t)-1;
    out[0] = '\0';
    while (*s) {
        const char *colon = strchr(s, ':');
        char cand[32];
        snprintf(cand, sizeof(cand), "%.*s", (int)(colon - s), s);
        size_t d = lc_df__distance(name, cand);
        if (d < best && d <= 2 + strlen(cand) / 4) {
            best = d;
            snprintf(out, outn, " (did you mean %s?)", cand);
        }
        s = colon + 2;
        while (*s == ' ')
            s++;
    }
}

/* extractBuilderFlags: leading "--" words (quotes and backslashes are
 * processed inside them); returns the offset where the arguments start. */
static int extract_flags(parser *p, lc_df_instr *in, size_t i, size_t end, size_t *args_at)
{
    const char *t = p->ll->text;
    lc_df_vec flags = {0};
    for (;;) {
        while (i < end && ws(t[i]))
            i++;
        if (i >= end || t[i] != '-' || i + 1 >= end || t[i + 1] != '-')
            break;
        size_t start = i;
        lc_df_vec w = {0};
        char quote = 0;
        bool blank_ok = false;
        for (; i < end; i++) {
            char c = t[i];
            if (!quote && ws(c))
                break;
            if (!quote && (c == '\'' || c == '"')) {
                quote = c;
                blank_ok = true;
                continue;
            }
            if (quote && c == quote) {
                quote = 0;
                continue;
            }
            if (c == '\\') {
                if (i + 1 == end)
                    continue;
                c = t[++i];
            }
            if (lc_df__vec_push(p->a, &w, 1, &c))
                return OOM(p);
        }
        (void)blank_ok;
        char nul = '\0';
        if (lc_df__vec_push(p->a, &w, 1, &nul))
            return OOM(p);
        const char *word = w.items;
        if (strcmp(word, "--") == 0) {
            while (i < end && ws(t[i]))
                i++;
            break;
        }
        lc_df_pos pos = pos_at(p, start);
        const char *body = word + 2, *eq = strchr(body, '=');
        size_t nlen = eq ? (size_t)(eq - body) : strlen(body);
        char *name = lc_df__strndup(p->a, body, nlen);
        if (!name)
            return OOM(p);
        char type = flag_type(in->kind, body, nlen);
        if (!type) {
            char sug[64];
            suggest_flag(in->kind, name, sug, sizeof(sug));
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos, "unknown flag: --%s for %s%s",
                                name, KINDS[in->kind].name, sug);
        }
        for (size_t k = 0; type != 'm' && k < flags.len; k++)
            if (strcmp(((lc_df_flag *)flags.items)[k].name, name) == 0)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos,
                                    "duplicate flag specified: --%s", name);
        const char *value = eq ? eq + 1 : NULL;
        if (type == 'b') {
            if (eq && !*value)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos,
                                    "missing a value on flag: --%s", name);
            if (value && strcasecmp(value, "true") && strcasecmp(value, "false"))
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos,
                                    "expecting boolean value for flag --%s, not: %s", name, value);
        } else if (!eq) {
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos, "missing a value on flag: --%s",
                                name);
        }
        lc_df_flag fl = {name, value, pos};
        if (lc_df__vec_push(p->a, &flags, sizeof(fl), &fl))
            return OOM(p);
    }
    in->flags = flags.items;
    in->nflags = flags.len;
    *args_at = i;
    return 0;
}

/* parseWords: whitespace-separated words; quotes and escapes are kept but
 * protect whitespace. offs receives each word's start offset. */
static int parse_words(parser *p, size_t i, size_t end, lc_df_vec *words, lc_df_vec *offs)
{
    const char *t = p->ll->text;
    char esc = p->lx.escape;
    while (i < end) {
        while (i < end && ws(t[i]))
            i++;
        if (i >= end)
            break;
        size_t start = i;
        char quote = 0;
        lc_df_vec w = {0};
        while (i < end) {
            char c = t[i];
            if (!quote && ws(c))
                break;
            if (!quote && (c == '\'' || c == '"'))
                quote = c;
            else if (quote && c == quote)
                quote = 0;
            if (c == esc && quote != '\'') {
                if (i + 1 == end) {
                    i++;
                    break; /* an escape at the very end is dropped */
                }
                if (lc_df__vec_push(p->a, &w, 1, &c))
                    return OOM(p);
                c = t[++i];
            }
            if (lc_df__vec_push(p->a, &w, 1, &c))
                return OOM(p);
            i++;
        }
        char nul = '\0';
        if (lc_df__vec_push(p->a, &w, 1, &nul))
            return OOM(p);
        const char *ws_ = w.items;
        if (lc_df__vec_push(p->a, words, sizeof(ws_), &ws_) ||
            (offs && lc_df__vec_push(p->a, offs, sizeof(start), &start)))
            return OOM(p);
    }
    return 0;
}

/* Splits on [\t\v\f\r ]+ only (parseStringsWhitespaceDelimited). */
static int split_ws(parser *p, size_t i, size_t end, lc_df_vec *words)
{
    const char *t = p->ll->text;
    while (i < end) {
        while (i < end && ws(t[i]))
            i++;
        if (i >= end)
            break;
        size_t s = i;
        while (i < end && !ws(t[i]))
            i++;
        const char *w = lc_df__strndup(p->a, t + s, i - s);
        if (!w || lc_df__vec_push(p->a, words, sizeof(w), &w))
            return OOM(p);
    }
    return 0;
}

/* 1: JSON string array (args filled); 0: not JSON (shell form); < 0: error. */
static int parse_json(parser *p, lc_df_instr *in, size_t i, size_t end)
{
    const char *t = p->ll->text;
    if (i >= end || t[i] != '[')
        return 0;
    json_error_t je;
    json_t *arr = json_loadb(t + i, end - i, 0, &je);
    if (!arr || !json_is_array(arr)) {
        json_decref(arr);
        return 0;
    }
    size_t n = json_array_size(arr);
    const char **args = lc_df__alloc(p->a, (n + 1) * sizeof(char *));
    if (!args) {
        json_decref(arr);
        return OOM(p);
    }
    for (size_t k = 0; k < n; k++) {
        json_t *s = json_array_get(arr, k);
        if (!json_is_string(s)) {
            json_decref(arr);
            lc_df_pos pos = pos_at(p, i);
            return lc_df__errat(
                p->err, LC_INVALID_ARGUMENT, &pos,
                "when using JSON array syntax, arrays must be comprised of strings only");
        }
        args[k] = lc_df__strndup(p->a, json_string_value(s), json_string_length(s));
        if (!args[k]) {
            json_decref(arr);
            return OOM(p);
        }
    }
    json_decref(arr);
    in->json = true;
    in->args = args;
    in->nargs = n;
    return 1;
}

static int set_one_arg(parser *p, lc_df_instr *in)
{
    const char **a = lc_df__alloc(p->a, 2 * sizeof(char *));
    if (!a)
        return OOM(p);
    a[0] = in->rest;
    in->args = a;
    in->nargs = 1;
    return 0;
}

static void vec_to_args(lc_df_instr *in, lc_df_vec *v)
{
    in->args = v->items;
    in->nargs = v->len;
}

/* Rejects what expansion would reject later: unterminated quotes, "${". */
static int check_syntax(parser *p, const char *word, size_t off)
{
    char *out = NULL;
    lc_err e = {0};
    int rc = lc_df_expand_word(word, p->lx.escape, LC_DF__EXPAND_SYNTAX_ONLY, NULL, NULL, &out, &e);
    free(out);
    if (rc == -LC_RESOURCE_EXHAUSTED)
        return OOM(p);
    if (rc) {
        lc_df_pos pos = pos_at(p, off);
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos, "%s", e.msg);
    }
    return 0;
}

/* ENV / LABEL: "K=V ..." or the legacy "K V" (parseNameVal). */
static int parse_name_val(parser *p, lc_df_instr *in, size_t i, size_t end)
{
    const char *name = KINDS[in->kind].name;
    lc_df_vec words = {0}, offs = {0}, kvs = {0};
    lc_df_pos pos = pos_at(p, i);
    int rc = parse_words(p, i, end, &words, &offs);
    if (rc)
        return rc;
    if (words.len == 0)
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                            "%s requires at least one argument", name);
    const char **w = words.items;
    size_t *o = offs.items;
    if (!strchr(w[0], '=')) {
        const char *t = p->ll->text;
        size_t k = i;
        while (k < end && !ws(t[k]))
            k++;
        size_t v = k;
        while (v < end && ws(t[v]))
            v++;
        if (v >= end)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos, "%s must have two arguments",
                                name);
        lc_df_kv kv = {lc_df__strndup(p->a, t + i, k - i), lc_df__strndup(p->a, t + v, end - v)};
        if (!kv.key || !kv.value || lc_df__vec_push(p->a, &kvs, sizeof(kv), &kv))
            return OOM(p);
        if ((rc = check_syntax(p, kv.value, v)))
            return rc;
    } else {
        for (size_t k = 0; k < words.len; k++) {
            const char *eq = strchr(w[k], '=');
            lc_df_pos wp = pos_at(p, o[k]);
            if (!eq)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &wp,
                                    "Syntax error - can't find = in \"%s\". Must be of the form: "
                                    "name=value",
                                    w[k]);
            if (eq == w[k])
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &wp, "%s names can not be blank",
                                    name);
            lc_df_kv kv = {lc_df__strndup(p->a, w[k], (size_t)(eq - w[k])), eq + 1};
            if (!kv.key || lc_df__vec_push(p->a, &kvs, sizeof(kv), &kv))
                return OOM(p);
            if ((rc = check_syntax(p, kv.key, o[k])) ||
                (rc = check_syntax(p, kv.value, o[k] + (size_t)(eq - w[k]) + 1)))
                return rc;
        }
    }
    in->kvs = kvs.items;
    in->nkvs = kvs.len;
    return 0;
}

static int parse_arg(parser *p, lc_df_instr *in, size_t i, size_t end)
{
    lc_df_vec words = {0}, offs = {0}, kvs = {0};
    int rc = parse_words(p, i, end, &words, &offs);
    if (rc)
        return rc;
    if (words.len == 0)
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                            "ARG requires at least one argument");
    const char **w = words.items;
    size_t *o = offs.items;
    for (size_t k = 0; k < words.len; k++) {
        const char *eq = strchr(w[k], '=');
        lc_df_pos wp = pos_at(p, o[k]);
        lc_df_kv kv = {w[k], NULL};
        if (eq) {
            if (eq == w[k])
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &wp, "ARG names can not be blank");
            kv.key = lc_df__strndup(p->a, w[k], (size_t)(eq - w[k]));
            kv.value = eq + 1;
            if (!kv.key)
                return OOM(p);
            if ((rc = check_syntax(p, kv.value, o[k] + (size_t)(eq - w[k]) + 1)))
                return rc;
        }
        if (lc_df__vec_push(p->a, &kvs, sizeof(kv), &kv))
            return OOM(p);
    }
    in->kvs = kvs.items;
    in->nkvs = kvs.len;
    return 0;
}

/* Go's time.ParseDuration, enough for HEALTHCHECK: returns 0 and ns. */
static int parse_duration(const char *s, double *ns)
{
    double total = 0;
    int sign = 1;
    if (*s == '-' || *s == '+')
        sign = *s++ == '-' ? -1 : 1;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (!*s)
        return -1;
    while (*s) {
        char *e;
        if (!(isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))))
            return -1;
        double v = strtod(s, &e);
        if (e == s)
            return -1;
        s = e;
        static const struct {
            const char *u;
            double m;
        } units[] = {{"ns", 1},  {"us", 1e3}, {"\xC2\xB5s", 1e3}, {"ms", 1e6},
                     {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
        size_t best = 0, bl = 0;
        for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t l = strlen(units[u].u);
            if (strncmp(s, units[u].u, l) == 0 && l > bl) {
                best = u;
                bl = l;
            }
        }
        if (!bl)
            return -1;
        total += v * units[best].m;
        s += bl;
    }
    *ns = sign * total;
    return 0;
}

static int check_healthcheck_flags(parser *p, lc_df_instr *in)
{
    for (size_t k = 0; k < in->nflags; k++) {
        const lc_df_flag *f = &in->flags[k];
        if (strcmp(f->name, "retries") == 0) {
            char *e;
            errno = 0;
            long long v = strtoll(f->value, &e, 10);
            if (!*f->value || *e || errno || v > 2147483647LL || v < -2147483648LL)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &f->pos,
                                    "strconv.ParseInt: parsing \"%s\": invalid syntax", f->value);
            if (v < 0)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &f->pos,
                                    "--retries cannot be negative (%lld)", v);
            continue;
        }
        double ns;
        if (!*f->value)
            continue; /* "" means the default */
        if (parse_duration(f->value, &ns))
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &f->pos,
                                "time: invalid duration \"%s\"", f->value);
        if (ns < 0)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &f->pos,
                                "Interval \"%s\" cannot be negative", f->name);
        if (ns > 0 && ns < 1e6)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &f->pos,
                                "Interval \"%s\" cannot be less than 1ms", f->name);
    }
    return 0;
}

static int lookup_kind(const char *kw, size_t n)
{
    for (int k = 0; k < LC_DF_KIND_COUNT; k++)
        if (strlen(KINDS[k].name) == n && strncasecmp(KINDS[k].name, kw, n) == 0)
            return k;
    return -1;
}

static int parse_instr(parser *p, size_t off, bool sub, lc_df_instr *in);

static int parse_args(parser *p, lc_df_instr *in, size_t i, size_t end)
{
    const char *name = KINDS[in->kind].name;
    lc_df_vec words = {0};
    int rc = 0;
    switch (in->kind) {
    case LC_DF_RUN:
    case LC_DF_CMD:
    case LC_DF_ENTRYPOINT:
    case LC_DF_SHELL:
        rc = parse_json(p, in, i, end);
        if (rc < 0)
            return rc;
        if (rc == 0 && in->kind == LC_DF_SHELL) {
            if (i >= end)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                    "SHELL requires at least one argument");
            lc_df_pos pos = pos_at(p, i);
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos,
                                "SHELL requires the arguments to be in JSON form");
        }
        if (rc == 0 && i < end)
            return set_one_arg(p, in);
        if (in->kind == LC_DF_RUN && in->nargs == 0 && !in->json)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "RUN requires at least one argument%s",
                                p->ll->cont_at_eof ? " (line continuation at end of file)" : "");
        if (in->kind == LC_DF_SHELL && in->nargs == 0)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "SHELL requires at least one argument");
        return 0;
    case LC_DF_COPY:
    case LC_DF_ADD:
    case LC_DF_VOLUME:
        rc = parse_json(p, in, i, end);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if ((rc = split_ws(p, i, end, &words)))
                return rc;
            vec_to_args(in, &words);
        }
        if (in->kind == LC_DF_VOLUME) {
            if (in->nargs == 0)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                    "VOLUME requires at least one argument%s",
                                    p->ll->cont_at_eof ? " (line continuation at end of file)"
                                                       : "");
            for (size_t k = 0; k < in->nargs; k++)
                if (!*in->args[k])
                    return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                        "VOLUME specified can not be an empty string");
        } else if (in->nargs < 2) {
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "%s requires at least two arguments, but only %s provided. "
                                "Destination could not be determined.",
                                name, in->nargs ? "one was" : "none were");
        }
        if (!in->json)
            for (size_t k = 0; k < in->nargs; k++)
                if ((rc = check_syntax(p, in->args[k], i)))
                    return rc;
        return 0;
    case LC_DF_FROM:
        if ((rc = split_ws(p, i, end, &words)))
            return rc;
        vec_to_args(in, &words);
        if (in->nargs == 3 && strcasecmp(in->args[1], "as") == 0) {
            const char *n = in->args[2];
            bool ok = islower((unsigned char)tolower((unsigned char)n[0])) &&
                      isalpha((unsigned char)n[0]);
            for (const char *c = n + 1; ok && *c; c++)
                ok = isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.';
            if (!ok) {
                lc_df_pos pos = pos_at(p, (size_t)(strstr(p->ll->text + i, n) - p->ll->text));
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos,
                                    "invalid name for build stage: \"%s\", name can't start with "
                                    "a number or contain symbols",
                                    n);
            }
        } else if (in->nargs != 1) {
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "FROM requires either one or three arguments");
        }
        return check_syntax(p, in->args[0], i);
    case LC_DF_EXPOSE:
        if ((rc = split_ws(p, i, end, &words)))
            return rc;
        vec_to_args(in, &words);
        if (in->nargs == 0)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "EXPOSE requires at least one argument");
        for (size_t k = 0; k < in->nargs; k++)
            if ((rc = check_syntax(p, in->args[k], i)))
                return rc;
        return 0;
    case LC_DF_USER:
    case LC_DF_WORKDIR:
    case LC_DF_STOPSIGNAL:
    case LC_DF_MAINTAINER:
        if (i >= end)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "%s requires exactly one argument", name);
        if (in->kind != LC_DF_MAINTAINER && (rc = check_syntax(p, in->rest, i)))
            return rc;
        return set_one_arg(p, in);
    case LC_DF_ENV:
    case LC_DF_LABEL:
        return parse_name_val(p, in, i, end);
    case LC_DF_ARG:
        return parse_arg(p, in, i, end);
    case LC_DF_HEALTHCHECK: {
        const char *t = p->ll->text;
        if (i >= end)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "HEALTHCHECK requires at least one argument");
        size_t sep = i;
        while (sep < end && !ws(t[sep]))
            sep++;
        size_t nx = sep;
        while (nx < end && ws(t[nx]))
            nx++;
        lc_df_pos tpos = pos_at(p, i);
        if (sep - i == 4 && strncasecmp(t + i, "NONE", 4) == 0) {
            if (nx < end)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &tpos,
                                    "HEALTHCHECK NONE takes no arguments");
            in->healthcheck_none = true;
            return 0;
        }
        if (!(sep - i == 3 && strncasecmp(t + i, "CMD", 3) == 0))
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &tpos,
                                "Unknown type \"%.*s\" in HEALTHCHECK (try CMD)", (int)(sep - i),
                                t + i);
        if ((rc = check_healthcheck_flags(p, in)))
            return rc;
        in->rest = lc_df__strndup(p->a, t + nx, end - nx);
        if (!in->rest)
            return OOM(p);
        rc = parse_json(p, in, nx, end);
        if (rc < 0)
            return rc;
        if (rc == 1)
            rc = 0;
        else if (nx < end)
            rc = set_one_arg(p, in);
        if (rc == 0 && in->nargs == 0)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &tpos,
                                "Missing command after HEALTHCHECK CMD");
        return rc;
    }
    case LC_DF_ONBUILD: {
        if (i >= end)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos,
                                "ONBUILD requires at least one argument");
        size_t k = i;
        while (k < end && !ws(p->ll->text[k]))
            k++;
        int sk = lookup_kind(p->ll->text + i, k - i);
        lc_df_pos spos = pos_at(p, i);
        if (sk == LC_DF_ONBUILD)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &spos,
                                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (sk == LC_DF_MAINTAINER || sk == LC_DF_FROM)
            return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &spos,
                                "%s isn't allowed as an ONBUILD trigger", KINDS[sk].name);
        in->sub = lc_df__alloc(p->a, sizeof(*in->sub));
        if (!in->sub)
            return OOM(p);
        return parse_instr(p, i, true, in->sub);
    }
    default:
        return 0;
    }
}

static void suggest_kind(const char *kw, char *out, size_t n)
{
    size_t best = (size_t)-1;
    out[0] = '\0';
    for (int k = 0; k < LC_DF_KIND_COUNT; k++) {
        size_t d = lc_df__distance(kw, KINDS[k].name);
        if (d < best && d <= 1 + strlen(KINDS[k].name) / 3) {
            best = d;
            snprintf(out, n, " (did you mean %s?)", KINDS[k].name);
        }
    }
}

static int parse_instr(parser *p, size_t off, bool sub, lc_df_instr *in)
{
    const char *t = p->ll->text;
    size_t end = p->ll->len;
    while (end > off && ws(t[end - 1]))
        end--;
    size_t i = off;
    while (i < end && ws(t[i]))
        i++;
    size_t kw = i;
    while (i < end && !ws(t[i]))
        i++;
    memset(in, 0, sizeof(*in));
    in->pos = pos_at(p, kw);
    in->end_line = p->ll->end_line;
    int kind = lookup_kind(t + kw, i - kw);
    if (kind < 0) {
        char word[64], sug[64];
        snprintf(word, sizeof(word), "%.*s", (int)(i - kw), t + kw);
        suggest_kind(word, sug, sizeof(sug));
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos, "unknown instruction: %s%s",
                            word, sug);
    }
    in->kind = (enum lc_df_kind)kind;
    in->original = lc_df__strndup(p->a, t + kw, end - kw);
    if (!in->original)
        return OOM(p);
    size_t args_at = end;
    int rc = extract_flags(p, in, i, end, &args_at);
    if (rc)
        return rc;
    in->rest = lc_df__strndup(p->a, t + args_at, end - args_at);
    if (!in->rest)
        return OOM(p);
    (void)sub;
    return parse_args(p, in, args_at, end);
}

/* heredocsFromLine: words of the line (quotes and escapes kept) that look
 * like [n]<<[-]WORD; each body follows the instruction line in order. */
static int read_heredocs(parser *p, lc_df_instr *in)
{
    lc_df_instr *target = in->kind == LC_DF_ONBUILD ? in->sub : in;
    if (!target ||
        (target->kind != LC_DF_RUN && target->kind != LC_DF_COPY && target->kind != LC_DF_ADD) ||
        !strstr(p->ll->text, "<<"))
        return 0;
    lc_strlist words = {0};
    lc_err e = {0};
    int rc =
        lc_df_expand_words(p->ll->text, '\\', LC_DF_EXPAND_RAW_QUOTES | LC_DF_EXPAND_RAW_ESCAPES,
                           NULL, NULL, &words, &e);
    lc_df_vec docs = {0};
    if (rc) {
        /* BuildKit ignores a line it cannot split here; later checks report it */
        lc_strlist_clear(&words);
        return rc == -LC_RESOURCE_EXHAUSTED ? OOM(p) : 0;
    }
    for (size_t k = 0; k < words.len && rc == 0; k++) {
        const char *w = words.items[k], *s = w;
        int fd = 0;
        while (isdigit((unsigned char)*s)) {
            if (fd < 100000) /* a file descriptor number; never overflow */
                fd = fd * 10 + (*s - '0');
            s++;
        }
        if (strncmp(s, "<<", 2) != 0)
            continue;
        s += 2;
        bool strip = *s == '-';
        if (strip)
            s++;
        if (!*s || strchr(s, '<'))
            continue;
        lc_strlist plain = {0}, raw = {0};
        rc = lc_df_expand_words(s, '\\', LC_DF_EXPAND_KEEP_UNSET, NULL, NULL, &plain, &e);
        if (!rc)
            rc = lc_df_expand_words(s, '\\', LC_DF_EXPAND_KEEP_UNSET | LC_DF_EXPAND_RAW_QUOTES,
                                    NULL, NULL, &raw, &e);
        if (rc == 0 && plain.len == 1 && raw.len == 1) {
            size_t q1 = 0, q2 = 0;
            for (const char *c = plain.items[0]; *c; c++)
                q1 += *c == '\'' || *c == '"';
            for (const char *c = raw.items[0]; *c; c++)
                q2 += *c == '\'' || *c == '"';
            lc_df_heredoc h = {lc_df__strdup(p->a, plain.items[0]), NULL, strip, q1 == q2, fd};
            const char *at = strstr(p->ll->text, w);
            lc_df_pos pos = pos_at(p, at ? (size_t)(at - p->ll->text) : 0);
            char *content = NULL;
            if (!h.name)
                rc = OOM(p);
            else if ((rc = lc_df__lex_heredoc(&p->lx, h.name, strip, &content)) < 0)
                rc = OOM(p);
            else if (rc == 1)
                rc = lc_df__errat(p->err, LC_INVALID_ARGUMENT, &pos,
                                  "unterminated heredoc: no line \"%s\" before the end of the file",
                                  h.name);
            h.content = content;
            if (rc == 0 && lc_df__vec_push(p->a, &docs, sizeof(h), &h))
                rc = OOM(p);
        } else if (rc) {
            rc = 0; /* not a heredoc word after all */
        }
        lc_strlist_clear(&plain);
        lc_strlist_clear(&raw);
    }
    lc_strlist_clear(&words);
    if (rc)
        return rc;
    target->heredocs = docs.items;
    target->nheredocs = docs.len;
    in->end_line = target->end_line = p->lx.line;
    return 0;
}

int lc_df_parse(const char *buf, size_t len, const char *filename, lc_df_file **out, lc_err *err)
{
    *out = NULL;
    lc_df_arena *a = lc_df__arena_new();
    if (!a)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    lc_df_file *f = lc_df__alloc(a, sizeof(*f));
    if (!f) {
        lc_df__arena_free(&a);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    f->priv_ = a;
    f->filename = lc_df__strdup(a, filename ? filename : "Dockerfile");
    parser p = {.a = a, .err = err};
    int rc = 0;
    if (!f->filename) {
        rc = OOM(&p);
        goto fail;
    }
    lc_df__lex_init(&p.lx, a, f->filename, buf, len);
    lc_df_vec globals = {0}, stages = {0}, cur = {0};
    lc_df_stage *stage = NULL;
    lc_df_lline ll;
    for (;;) {
        rc = lc_df__lex_next(&p.lx, &ll, err);
        if (rc <= 0)
            break;
        p.ll = &ll;
        lc_df_instr in;
        if ((rc = parse_instr(&p, 0, false, &in)) || (rc = read_heredocs(&p, &in)))
            goto fail;
        if (in.kind == LC_DF_FROM) {
            if (stage) {
                stage->instrs = cur.items;
                stage->ninstrs = cur.len;
            }
            memset(&cur, 0, sizeof(cur));
            lc_df_instr *from = lc_df__alloc(a, sizeof(*from));
            lc_df_stage st = {0};
            if (!from) {
                rc = OOM(&p);
                goto fail;
            }
            *from = in;
            st.index = (int)stages.len;
            st.from = from;
            st.base = in.args[0];
            const lc_df_flag *pf = lc_df_instr_flag(&in, "platform");
            st.platform = pf ? pf->value : NULL;
            if (in.nargs == 3) {
                char *n = lc_df__strdup(a, in.args[2]);
                if (!n) {
                    rc = OOM(&p);
                    goto fail;
                }
                for (char *c = n; *c; c++)
                    *c = (char)tolower((unsigned char)*c);
                st.name = n;
                const lc_df_stage *ss = stages.items;
                for (size_t k = 0; k < stages.len; k++)
                    if (ss[k].name && strcmp(ss[k].name, n) == 0) {
                        rc = lc_df__errat(err, LC_INVALID_ARGUMENT, &in.pos,
                                          "duplicate stage name \"%s\" (first defined on line %d)",
                                          n, ss[k].from->pos.line);
                        goto fail;
                    }
            }
            if (lc_df__vec_push(a, &stages, sizeof(st), &st)) {
                rc = OOM(&p);
                goto fail;
            }
            stage = &((lc_df_stage *)stages.items)[stages.len - 1];
        } else if (!stage) {
            if (in.kind != LC_DF_ARG) {
                rc = lc_df__errat(err, LC_INVALID_ARGUMENT, &in.pos,
                                  "%s before the first FROM: no build stage in current context "
                                  "(only ARG may precede FROM)",
                                  lc_df_kind_name(in.kind));
                goto fail;
            }
            if (lc_df__vec_push(a, &globals, sizeof(in), &in)) {
                rc = OOM(&p);
                goto fail;
            }
        } else if (lc_df__vec_push(a, &cur, sizeof(in), &in)) {
            rc = OOM(&p);
            goto fail;
        }
    }
    if (rc < 0)
        goto fail;
    if (stage) {
        stage->instrs = cur.items;
        stage->ninstrs = cur.len;
    }
    if (stages.len == 0) {
        lc_df_pos pos = {f->filename, p.lx.line > 0 ? p.lx.line : 1, 1};
        rc = globals.len
                 ? lc_df__errat(err, LC_INVALID_ARGUMENT, &pos,
                                "no FROM instruction: nothing to build")
                 : lc_df__errat(err, LC_INVALID_ARGUMENT, &pos, "file with no instructions");
        goto fail;
    }
    f->escape = p.lx.escape;
    f->syntax = p.lx.syntax;
    f->directives = p.lx.directives.items;
    f->ndirectives = p.lx.directives.len;
    f->global_args = globals.items;
    f->nglobal_args = globals.len;
    f->stages = stages.items;
    f->nstages = stages.len;
    *out = f;
    return 0;
fail:
    lc_df__arena_free(&a);
    return rc < 0 ? rc : -LC_INVALID_ARGUMENT;
}

int lc_df_parse_path(const char *path, lc_df_file **out, lc_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot open %s: %s", path,
                          strerror(errno));
    struct stat st;
    char *buf = NULL;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s: not a regular file", path);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = lc_err_set(err, LC_UNAVAILABLE, "cannot read %s: %s", path,
                            r < 0 ? strerror(errno) : "short read");
            goto out;
        }
        got += (size_t)r;
    }
    rc = lc_df_parse(buf, got, path, out, err);
out:
    free(buf);
    close(fd);
    return rc;
}

void lc_df_file_free(lc_df_file **f)
{
    if (!f || !*f)
        return;
    lc_df_arena *a = (*f)->priv_;
    lc_df__arena_free(&a);
    *f = NULL;
}

int lc_df_stage_find(const lc_df_file *f, const char *s)
{
    if (!s || !*s)
        return -1;
    for (size_t i = 0; i < f->nstages; i++)
        if (f->stages[i].name && strcasecmp(f->stages[i].name, s) == 0)
            return (int)i;
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (*e || errno || v < 0 || (size_t)v >= f->nstages || !isdigit((unsigned char)s[0]))
        return -1;
    return (int)v;
}
