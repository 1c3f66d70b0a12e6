/* apply.c - see apply.h. */
#include "apply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lc_apply_has_layer(enum lc_df_kind kind)
{
    return kind == LC_DF_RUN || kind == LC_DF_COPY || kind == LC_DF_ADD;
}

/* ---- history text --------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *g = realloc(b->s, cap);
        if (g == NULL) {
            b->oom = true;
            return;
        }
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* Go's %q of one string (strconv.Quote for ASCII; other bytes kept). */
static void sb_goquote(sbuf *b, const char *s)
{
    sb_add(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_addn(b, esc, 2);
        } else if (c == '\n') {
            sb_add(b, "\\n");
        } else if (c == '\t') {
            sb_add(b, "\\t");
        } else if (c == '\r') {
            sb_add(b, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            sb_add(b, esc);
        } else {
            sb_addn(b, (const char *)&c, 1);
        }
    }
    sb_add(b, "\"");
}

/* Go's %v (quoted: %q) of a []string: [a b c]. */
static void sb_golist(sbuf *b, const char *const *v, size_t n, bool quote)
{
    sb_add(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_add(b, " ");
        if (quote)
            sb_goquote(b, v[i]);
        else
            sb_add(b, v[i]);
    }
    sb_add(b, "]");
}

static bool is_heredoc_word(const char *w)
{
    while (*w >= '0' && *w <= '9')
        w++;
    return strncmp(w, "<<", 2) == 0;
}

/* CMD/ENTRYPOINT: the argv the config gets, %q-formatted. */
static void sb_command(sbuf *b, const lc_df_step *step)
{
    const lc_df_instr *in = step->instr;
    if (in->json) {
        sb_golist(b, in->args, in->nargs, true);
        return;
    }
    const char *argv[17];
    size_t n = 0;
    for (size_t i = 0; i < step->nshell && n < 16; i++)
        argv[n++] = step->shell[i];
    argv[n++] = in->nargs > 0 ? in->args[0] : "";
    sb_golist(b, argv, n, true);
}

/* RUN: the build args in scope ("|N K=V ...", ENV winning), then argv. */
static void sb_run(sbuf *b, const lc_df_step *step)
{
    if (step->nargs > 0) {
        char num[32];
        snprintf(num, sizeof(num), "|%zu", step->nargs);
        sb_add(b, " ");
        sb_add(b, num);
        for (size_t i = 0; i < step->nargs; i++) {
            const char *v = step->args[i].value;
            for (size_t k = 0; k < step->nenv; k++)
                if (strcmp(step->env[k].name, step->args[i].name) == 0)
                    v = step->env[k].value;
            sb_add(b, " ");
            sb_add(b, step->args[i].name);
            sb_add(b, "=");
            sb_add(b, v ? v : "");
        }
    }
    const char *script = lc_df_run_script(step);
    if (script != NULL) { /* BuildKit runs the file it mounts there */
        sb_add(b, " /dev/pipes/");
        sb_add(b, script);
        return;
    }
    lc_strlist argv = {0};
    if (lc_df_run_argv(step, &argv) < 0)
        b->oom = true;
    for (size_t i = 0; i < argv.len; i++) {
        sb_add(b, " ");
        sb_add(b, argv.items[i]);
    }
    lc_strlist_clear(&argv);
}

static void sb_copy(sbuf *b, const lc_df_step *step)
{
    for (size_t i = 0; i < step->nflags; i++) {
        const lc_df_flag *f = &step->flags[i];
        if (strcmp(f->name, "parents") == 0 && (f->value == NULL || strcmp(f->value, "false")))
            sb_add(b, " --parents");
    }
    for (size_t i = 0; i < step->nflags; i++) {
        const lc_df_flag *f = &step->flags[i];
        if (strcmp(f->name, "chown") == 0 && f->value && *f->value) {
            sb_add(b, " --chown=");
            sb_add(b, f->value);
        }
    }
    for (size_t i = 0; i < step->nflags; i++) {
        const lc_df_flag *f = &step->flags[i];
        if (strcmp(f->name, "chmod") == 0 && f->value && *f->value) {
            sb_add(b, " --chmod=");
            sb_add(b, f->value);
        }
    }
    for (size_t i = 0; i + 1 < step->nwords; i++) {
        if (is_heredoc_word(step->words[i]))
            continue;
        sb_add(b, " ");
        sb_add(b, step->words[i]);
    }
    for (size_t i = 0; i < step->instr->nheredocs; i++) {
        sb_add(b, " <<");
        sb_add(b, step->instr->heredocs[i].name);
    }
    if (step->nwords > 0) {
        sb_add(b, " ");
        sb_add(b, step->words[step->nwords - 1]);
    }
}

char *lc_apply_created_by(const lc_df_step *step)
{
    const lc_df_instr *in = step->instr;
    sbuf b = {0};
    sb_add(&b, lc_df_kind_name(in->kind));
    switch (in->kind) {
    case LC_DF_RUN:
        sb_run(&b, step);
        break;
    case LC_DF_COPY:
    case LC_DF_ADD:
        sb_copy(&b, step);
        break;
    case LC_DF_WORKDIR:
        sb_add(&b, " ");
        sb_add(&b, step->workdir ? step->workdir : "/");
        break;
    case LC_DF_ENV:
    case LC_DF_LABEL:
    case LC_DF_ARG:
        for (size_t i = 0; i < step->nkvs; i++) {
            sb_add(&b, " ");
            sb_add(&b, step->kvs[i].key);
            if (step->kvs[i].value != NULL || in->kind != LC_DF_ARG) {
                sb_add(&b, "=");
                sb_add(&b, step->kvs[i].value ? step->kvs[i].value : "");
            }
        }
        break;
    case LC_DF_CMD:
    case LC_DF_ENTRYPOINT:
        sb_add(&b, " ");
        sb_command(&b, step);
        break;
    case LC_DF_SHELL:
        sb_add(&b, " ");
        sb_golist(&b, in->args, in->nargs, false);
        break;
    case LC_DF_EXPOSE: {
        sb_add(&b, " [");
        for (size_t i = 0; i < step->nwords; i++) {
            sb_add(&b, i ? " " : "");
            sb_add(&b, step->words[i]);
            if (strchr(step->words[i], '/') == NULL)
                sb_add(&b, "/tcp");
        }
        sb_add(&b, "]");
        break;
    }
    case LC_DF_VOLUME:
        sb_add(&b, " ");
        sb_golist(&b, step->words, step->nwords, false);
        break;
    case LC_DF_USER:
    case LC_DF_STOPSIGNAL:
        sb_add(&b, " ");
        sb_add(&b, step->nwords ? step->words[0] : "");
        break;
    default: /* MAINTAINER, HEALTHCHECK, ONBUILD: as written */
        sb_add(&b, " ");
        sb_add(&b, in->rest ? in->rest : "");
        break;
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* Go duration ("30s", "1m30s", "500ms") to nanoseconds; -1 if malformed. */
static int64_t go_duration_ns(const char *s)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    double total = 0;
    if (strcmp(s, "0") == 0)
        return 0;
    while (*s) {
        char *end = NULL;
        double v = strtod(s, &end);
        if (end == s)
            return -1;
        s = end;
        size_t best = 0, best_len = 0;
        for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t l = strlen(units[u].unit);
            if (strncmp(s, units[u].unit, l) == 0 && l > best_len) {
                best = u;
                best_len = l;
            }
        }
        if (best_len == 0)
            return -1;
        total += v * units[best].ns;
        s += best_len;
    }
    return (int64_t)total;
}

/* Shell form becomes [shell..., cmd]; exec form is taken as is. */
static int set_command(lc_image *img, const char *field, const lc_df_step *step)
{
    const lc_df_instr *in = step->instr;
    if (in->json)
        return lc_image_set_strv(img, field, in->args, in->nargs);
    const char *argv[16];
    size_t n = 0;
    for (size_t i = 0; i < step->nshell && n < 15; i++)
        argv[n++] = step->shell[i];
    argv[n++] = in->nargs > 0 ? in->args[0] : "";
    return lc_image_set_strv(img, field, argv, n);
}

static int apply_healthcheck(lc_image *img, const lc_df_step *step, lc_err *err)
{
    const lc_df_instr *in = step->instr;
    if (in->healthcheck_none) {
        const char *none[] = {"NONE"};
        lc_image_healthcheck hc = {.test = none, .ntest = 1};
        return lc_image_set_healthcheck(img, &hc);
    }
    const char *test[64];
    size_t n = 0;
    if (in->json) {
        test[n++] = "CMD";
        for (size_t i = 0; i < in->nargs && n < 63; i++)
            test[n++] = in->args[i];
    } else {
        test[n++] = "CMD-SHELL";
        test[n++] = in->nargs > 0 ? in->args[0] : "";
    }
    lc_image_healthcheck hc = {.test = test, .ntest = n};
    for (size_t i = 0; i < in->nflags; i++) {
        const lc_df_flag *f = &in->flags[i];
        if (f->value == NULL)
            continue;
        int64_t ns = strcmp(f->name, "retries") == 0 ? 0 : go_duration_ns(f->value);
        if (ns < 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%d:%d: invalid duration --%s=%s",
                              f->pos.file, f->pos.line, f->pos.col, f->name, f->value);
        if (strcmp(f->name, "interval") == 0)
            hc.interval_ns = ns;
        else if (strcmp(f->name, "timeout") == 0)
            hc.timeout_ns = ns;
        else if (strcmp(f->name, "start-period") == 0)
            hc.start_period_ns = ns;
        else if (strcmp(f->name, "start-interval") == 0)
            hc.start_interval_ns = ns;
        else if (strcmp(f->name, "retries") == 0)
            hc.retries = atoi(f->value);
    }
    return lc_image_set_healthcheck(img, &hc);
}

int lc_apply_config(lc_image *img, const lc_df_step *step, bool *cmd_set, lc_err *err)
{
    const lc_df_instr *in = step->instr;
    int rc = 0;
    switch (in->kind) {
    case LC_DF_ENV:
        for (size_t i = 0; i < step->nkvs && rc == 0; i++)
            rc = lc_image_set_env(img, step->kvs[i].key, step->kvs[i].value ? step->kvs[i].value : "");
        break;
    case LC_DF_LABEL:
        for (size_t i = 0; i < step->nkvs && rc == 0; i++)
            rc = lc_image_set_label(img, step->kvs[i].key, step->kvs[i].value ? step->kvs[i].value : "");
        break;
    case LC_DF_MAINTAINER:
        rc = lc_image_set_string(img, "Author", in->nargs ? in->args[0] : "");
        break;
    case LC_DF_WORKDIR:
        rc = lc_image_set_string(img, "WorkingDir", step->workdir);
        break;
    case LC_DF_USER:
        rc = lc_image_set_string(img, "User", step->user);
        break;
    case LC_DF_STOPSIGNAL:
        rc = lc_image_set_string(img, "StopSignal", step->nwords ? step->words[0] : NULL);
        break;
    case LC_DF_EXPOSE:
        for (size_t i = 0; i < step->nwords && rc == 0; i++)
            rc = lc_image_add_exposed_port(img, step->words[i]);
        break;
    case LC_DF_VOLUME:
        for (size_t i = 0; i < step->nwords && rc == 0; i++)
            rc = lc_image_add_volume(img, step->words[i]);
        break;
    case LC_DF_CMD:
        rc = set_command(img, "Cmd", step);
        *cmd_set = true;
        break;
    case LC_DF_ENTRYPOINT:
        /* Docker: a new ENTRYPOINT resets a CMD inherited from the base. */
        rc = set_command(img, "Entrypoint", step);
        if (rc == 0 && !*cmd_set)
            rc = lc_image_set_strv(img, "Cmd", NULL, 0);
        break;
    case LC_DF_SHELL:
        rc = lc_image_set_strv(img, "Shell", in->args, in->nargs);
        break;
    case LC_DF_HEALTHCHECK:
        rc = apply_healthcheck(img, step, err);
        break;
    case LC_DF_ONBUILD:
        rc = lc_image_add_onbuild(img, in->rest ? in->rest : "");
        break;
    case LC_DF_ARG:
        break;
    default:
        return lc_err_set(err, LC_INTERNAL, "%s is not a metadata instruction",
                          lc_df_kind_name(in->kind));
    }
    if (rc < 0)
        return err && err->code ? rc : lc_err_set(err, -rc, "cannot apply %s", in->original);
    return 0;
}

int lc_apply_metadata(lc_image *img, const lc_df_step *step, bool *cmd_set, lc_err *err)
{
    int rc = lc_apply_config(img, step, cmd_set, err);
    if (rc < 0 || step->instr->kind == LC_DF_ONBUILD)
        return rc;
    char *text = lc_apply_created_by(step);
    if (text == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    rc = lc_image_add_history(img, text, 1, err);
    free(text);
    return rc;
}
