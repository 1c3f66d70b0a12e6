/* apply.c - see apply.h. */
#include "apply.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

bool lc_apply_has_layer(enum lc_df_kind kind)
{
    return kind == LC_DF_RUN || kind == LC_DF_COPY || kind == LC_DF_ADD;
}

const char *lc_apply_created_by(const lc_df_step *step) { return step->instr->original; }

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
        else if (strcmp(f->name, "retries") == 0)
            hc.retries = atoi(f->value);
    }
    return lc_image_set_healthcheck(img, &hc);
}

int lc_apply_metadata(lc_image *img, const lc_df_step *step, bool *cmd_set, lc_err *err)
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
    return lc_image_add_history(img, lc_apply_created_by(step), 1, err);
}
