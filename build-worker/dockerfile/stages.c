/* stages.c - evaluation of a parsed file for a target: ARG scoping (global
 * ARGs are seen by FROM lines, and inside a stage only once re-declared),
 * ENV/ARG expansion per instruction, WORKDIR/USER/SHELL state, stage
 * inheritance through FROM <stage>, and the stages the target needs. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "df_internal.h"
#include "expand.h"

typedef struct scope {
    lc_df_vec env;  /* lc_df_var: ENV, values expanded */
    lc_df_vec args; /* lc_df_var: declared ARGs with a value */
} scope;

typedef struct planner {
    const lc_df_file *f;
    const lc_df_plan_opts *o;
    lc_df_arena *a;
    lc_err *err;
    lc_df_vec globals; /* lc_df_var: predefined + global ARGs with values */
    int *state;        /* per stage: 0 todo, 1 in progress, 2 done */
    scope *final;      /* per stage: scope after its last instruction */
    const char **final_workdir, **final_user;
    const char ***final_shell;
    size_t *final_nshell;
    lc_df_plan *plan;
    bool **deps; /* deps[i][j]: stage i needs stage j */
    const char *target_platform;
} planner;

#define OOM(p) lc_err_set((p)->err, LC_RESOURCE_EXHAUSTED, "out of memory planning a Dockerfile")

static const char *find_var(const lc_df_vec *v, const char *name, size_t len)
{
    const lc_df_var *vars = v->items;
    for (size_t i = v->len; i-- > 0;)
        if (strlen(vars[i].name) == len && memcmp(vars[i].name, name, len) == 0)
            return vars[i].value;
    return NULL;
}

static int set_var(lc_df_arena *a, lc_df_vec *v, const char *name, const char *value)
{
    lc_df_var *vars = v->items;
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(vars[i].name, name) == 0) {
            vars[i].value = value;
            return 0;
        }
    lc_df_var nv = {name, value};
    return lc_df__vec_push(a, v, sizeof(nv), &nv);
}

/* ENV wins over ARG of the same name (Docker's documented rule). */
static const char *scope_lookup(void *ctx, const char *name, size_t len)
{
    const scope *s = ctx;
    const char *v = find_var(&s->env, name, len);
    return v ? v : find_var(&s->args, name, len);
}

static const char *globals_lookup(void *ctx, const char *name, size_t len)
{
    return find_var(ctx, name, len);
}

static const char *build_arg(const planner *p, const char *name)
{
    for (size_t i = p->o ? p->o->nbuild_args : 0; i-- > 0;)
        if (strcmp(p->o->build_args[i].name, name) == 0)
            return p->o->build_args[i].value;
    return NULL;
}

static int expand(planner *p, const lc_df_instr *in, const char *word, lc_df_lookup_fn fn,
                  void *ctx, const char **out)
{
    char *s = NULL;
    lc_err e = {0};
    int rc = lc_df_expand_word(word, p->f->escape, 0, fn, ctx, &s, &e);
    if (rc == -LC_RESOURCE_EXHAUSTED)
        return OOM(p);
    if (rc)
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos, "%s", e.msg);
    *out = lc_df__strdup(p->a, s);
    free(s);
    return *out ? 0 : OOM(p);
}

char *lc_df_workdir_join(const char *prev, const char *dir)
{
    size_t n = strlen(prev ? prev : "/") + strlen(dir) + 3;
    char *joined = malloc(n), *out = malloc(n);
    if (!joined || !out) {
        free(joined);
        free(out);
        return NULL;
    }
    if (dir[0] == '/')
        snprintf(joined, n, "%s", dir);
    else
        snprintf(joined, n, "%s/%s", prev && *prev ? prev : "/", dir);
    /* path.Clean on an absolute path */
    size_t o = 0;
    const char *s = joined;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t l = (size_t)(e - s);
        if (l == 0 || (l == 1 && s[0] == '.')) {
            /* skip */
        } else if (l == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, s, l);
            o += l;
        }
        s = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(joined);
    return out;
}

static lc_df_var *snapshot(planner *p, const lc_df_vec *v)
{
    lc_df_var *c = lc_df__alloc(p->a, (v->len + 1) * sizeof(lc_df_var));
    if (c && v->len)
        memcpy(c, v->items, v->len * sizeof(lc_df_var));
    return c;
}

/* "type=bind,from=builder,target=/x" -> "builder" (arena), or NULL. */
static const char *mount_from(planner *p, const char *m)
{
    const char *s = m;
    while (s && *s) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l > 5 && strncasecmp(s, "from=", 5) == 0)
            return lc_df__strndup(p->a, s + 5, l - 5);
        s = e ? e + 1 : NULL;
    }
    return NULL;
}

static int eval_stage(planner *p, int idx);

static int resolve_from(planner *p, int self, const char *ref, bool allow_index)
{
    for (size_t i = 0; i < p->f->nstages; i++)
        if (p->f->stages[i].name && strcasecmp(p->f->stages[i].name, ref) == 0)
            return (int)i;
    if (allow_index) {
        int k = lc_df_stage_find(p->f, ref);
        if (k >= 0)
            return k;
    }
    (void)self;
    return -1;
}

static int eval_step(planner *p, int idx, scope *sc, lc_df_step *st, const lc_df_instr *in,
                     const char **workdir, const char **user, const char ***shell, size_t *nshell)
{
    int rc = 0;
    st->instr = in;
    st->env = snapshot(p, &sc->env);
    st->nenv = sc->env.len;
    st->args = snapshot(p, &sc->args);
    st->nargs = sc->args.len;
    st->copy_from_stage = -1;
    if (!st->env || !st->args)
        return OOM(p);
    bool ex = lc_df_kind_expands(in->kind);
    /* words */
    st->words = lc_df__alloc(p->a, (in->nargs + 1) * sizeof(char *));
    st->kvs = lc_df__alloc(p->a, (in->nkvs + 1) * sizeof(lc_df_kv));
    st->flags = lc_df__alloc(p->a, (in->nflags + 1) * sizeof(lc_df_flag));
    if (!st->words || !st->kvs || !st->flags)
        return OOM(p);
    st->nwords = in->nargs;
    st->nkvs = in->nkvs;
    st->nflags = in->nflags;
    st->heredocs = lc_df__alloc(p->a, (in->nheredocs + 1) * sizeof(char *));
    if (!st->heredocs)
        return OOM(p);
    for (size_t i = 0; i < in->nheredocs; i++) {
        const lc_df_heredoc *h = &in->heredocs[i];
        st->heredocs[i] = h->content;
        /* COPY <<EOF bodies expand like BuildKit's ExpandRaw: variables
         * and escapes, quotes literal; the shell expands RUN's itself. */
        if (h->expand && (in->kind == LC_DF_COPY || in->kind == LC_DF_ADD)) {
            char *x = NULL;
            lc_err e = {0};
            rc = lc_df_expand_word(h->content, '\\', LC_DF_EXPAND_NO_QUOTES, scope_lookup, sc, &x,
                                   &e);
            if (rc == -LC_RESOURCE_EXHAUSTED)
                return OOM(p);
            if (rc)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->pos, "heredoc %s: %s",
                                    h->name, e.msg);
            st->heredocs[i] = lc_df__strdup(p->a, x);
            free(x);
            if (!st->heredocs[i])
                return OOM(p);
        }
    }
    for (size_t i = 0; i < in->nargs; i++) {
        st->words[i] = in->args[i];
        if (ex && (rc = expand(p, in, in->args[i], scope_lookup, sc, &st->words[i])))
            return rc;
    }
    for (size_t i = 0; i < in->nkvs; i++) {
        st->kvs[i] = in->kvs[i];
        if (!ex)
            continue;
        if ((rc = expand(p, in, in->kvs[i].key, scope_lookup, sc, &st->kvs[i].key)))
            return rc;
        if (in->kvs[i].value &&
            (rc = expand(p, in, in->kvs[i].value, scope_lookup, sc, &st->kvs[i].value)))
            return rc;
    }
    for (size_t i = 0; i < in->nflags; i++) {
        st->flags[i] = in->flags[i];
        const char *n = in->flags[i].name;
        bool fx = !strcmp(n, "from") || !strcmp(n, "chown") || !strcmp(n, "chmod") ||
                  !strcmp(n, "mount") || !strcmp(n, "checksum");
        if (fx && in->flags[i].value &&
            (rc = expand(p, in, in->flags[i].value, scope_lookup, sc, &st->flags[i].value)))
            return rc;
        if (!strcmp(n, "mount") && st->flags[i].value) {
            const char *from = mount_from(p, st->flags[i].value);
            int k = from ? resolve_from(p, idx, from, true) : -1;
            if (k >= 0 && k != idx)
                p->deps[idx][k] = true;
        }
        if (!strcmp(n, "from") && (in->kind == LC_DF_COPY || in->kind == LC_DF_ADD)) {
            int k = resolve_from(p, idx, st->flags[i].value, true);
            if (k == idx)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &in->flags[i].pos,
                                    "circular dependency detected on stage: %s",
                                    st->flags[i].value);
            st->copy_from_stage = k;
            if (k >= 0)
                p->deps[idx][k] = true;
            else
                st->copy_from_image = st->flags[i].value;
        }
    }
    /* effects */
    switch (in->kind) {
    case LC_DF_ENV:
        for (size_t i = 0; i < st->nkvs; i++)
            if (set_var(p->a, &sc->env, st->kvs[i].key, st->kvs[i].value))
                return OOM(p);
        break;
    case LC_DF_ARG:
        for (size_t i = 0; i < st->nkvs; i++) {
            const char *name = st->kvs[i].key;
            const char *v = build_arg(p, name);
            if (!v)
                v = st->kvs[i].value;
            if (!v)
                v = find_var(&p->globals, name, strlen(name));
            st->kvs[i].value = v;
            if (v && set_var(p->a, &sc->args, name, v))
                return OOM(p);
        }
        break;
    case LC_DF_WORKDIR: {
        char *w = lc_df_workdir_join(*workdir, st->words[0]);
        if (!w)
            return OOM(p);
        *workdir = lc_df__strdup(p->a, w);
        free(w);
        if (!*workdir)
            return OOM(p);
        break;
    }
    case LC_DF_USER:
        *user = st->words[0];
        break;
    case LC_DF_SHELL:
        *shell = in->args;
        *nshell = in->nargs;
        break;
    default:
        break;
    }
    st->workdir = *workdir;
    st->user = *user;
    st->shell = *shell;
    st->nshell = *nshell;
    return 0;
}

static const char *DEFAULT_SHELL[] = {"/bin/sh", "-c", NULL};

static int eval_stage(planner *p, int idx)
{
    if (p->state[idx] == 2)
        return 0;
    const lc_df_stage *s = &p->f->stages[idx];
    if (p->state[idx] == 1)
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &s->from->pos,
                            "circular dependency detected on stage: %s", s->name ? s->name : "?");
    p->state[idx] = 1;
    lc_df_stage_plan *sp = &p->plan->stages[idx];
    sp->stage = s;
    sp->base_stage = -1;
    int rc = expand(p, s->from, s->base, globals_lookup, &p->globals, &sp->base);
    if (rc)
        return rc;
    if (s->platform &&
        (rc = expand(p, s->from, s->platform, globals_lookup, &p->globals, &sp->platform)))
        return rc;
    if (!*sp->base)
        return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &s->from->pos,
                            "base name (%s) should not be blank", s->base);
    scope sc = {0};
    const char *workdir = "/", *user = NULL;
    const char **shell = DEFAULT_SHELL;
    size_t nshell = 2;
    for (int k = 0; k < (int)p->f->nstages; k++) {
        if (p->f->stages[k].name && strcasecmp(p->f->stages[k].name, sp->base) == 0) {
            if (k == idx)
                return lc_df__errat(p->err, LC_INVALID_ARGUMENT, &s->from->pos,
                                    "circular dependency detected on stage: %s", s->name);
            if ((rc = eval_stage(p, k)))
                return rc;
            sp->base_stage = k;
            p->deps[idx][k] = true;
            const scope *fs = &p->final[k];
            for (size_t i = 0; i < fs->env.len; i++) {
                const lc_df_var *v = &((const lc_df_var *)fs->env.items)[i];
                if (set_var(p->a, &sc.env, v->name, v->value))
                    return OOM(p);
            }
            workdir = p->final_workdir[k];
            user = p->final_user[k];
            shell = p->final_shell[k];
            nshell = p->final_nshell[k];
            break;
        }
    }
    if (sp->base_stage < 0 && p->o && p->o->image_env && strcasecmp(sp->base, "scratch")) {
        size_t n = 0;
        const char *plat = sp->platform ? sp->platform : p->target_platform;
        const lc_df_var *iv = p->o->image_env(p->o->image_env_ctx, sp->base, plat, &n);
        for (size_t i = 0; iv && i < n; i++) {
            const char *nm = lc_df__strdup(p->a, iv[i].name),
                       *vl = lc_df__strdup(p->a, iv[i].value);
            if (!nm || !vl || set_var(p->a, &sc.env, nm, vl))
                return OOM(p);
        }
    }
    /* BuildKit makes sure every (Linux) stage has a PATH. */
    if (sp->base_stage < 0 && !find_var(&sc.env, "PATH", 4) &&
        set_var(p->a, &sc.env, "PATH", LC_DF_DEFAULT_PATH))
        return OOM(p);
    sp->nsteps = s->ninstrs;
    sp->steps = lc_df__alloc(p->a, (s->ninstrs + 1) * sizeof(lc_df_step));
    if (!sp->steps)
        return OOM(p);
    for (size_t i = 0; i < s->ninstrs; i++)
        if ((rc = eval_step(p, idx, &sc, &sp->steps[i], &s->instrs[i], &workdir, &user, &shell,
                            &nshell)))
            return rc;
    p->final[idx] = sc;
    p->final_workdir[idx] = workdir;
    p->final_user[idx] = user;
    p->final_shell[idx] = shell;
    p->final_nshell[idx] = nshell;
    p->state[idx] = 2;
    return 0;
}

static void mark(planner *p, int idx)
{
    if (p->plan->stages[idx].needed)
        return;
    p->plan->stages[idx].needed = true;
    for (size_t k = 0; k < p->f->nstages; k++)
        if (p->deps[idx][k])
            mark(p, (int)k);
}

static int add_global(planner *p, const char *name, const char *value)
{
    const char *n = lc_df__strdup(p->a, name), *v = lc_df__strdup(p->a, value);
    if (!n || !v || set_var(p->a, &p->globals, n, v))
        return OOM(p);
    return 0;
}

/* "linux/arm64/v8" -> os, arch, variant args with the given prefix. */
static int add_platform(planner *p, const char *prefix, const char *plat)
{
    char name[64], os[64] = "", arch[64] = "", var[64] = "";
    const char *a = strchr(plat, '/');
    const char *v = a ? strchr(a + 1, '/') : NULL;
    snprintf(os, sizeof(os), "%.*s", (int)(a ? (size_t)(a - plat) : strlen(plat)), plat);
    if (a)
        snprintf(arch, sizeof(arch), "%.*s", (int)(v ? (size_t)(v - a - 1) : strlen(a + 1)), a + 1);
    if (v)
        snprintf(var, sizeof(var), "%s", v + 1);
    int rc;
    snprintf(name, sizeof(name), "%sPLATFORM", prefix);
    if ((rc = add_global(p, name, plat)))
        return rc;
    snprintf(name, sizeof(name), "%sOS", prefix);
    if ((rc = add_global(p, name, os)))
        return rc;
    snprintf(name, sizeof(name), "%sARCH", prefix);
    if ((rc = add_global(p, name, arch)))
        return rc;
    snprintf(name, sizeof(name), "%sVARIANT", prefix);
    return add_global(p, name, var);
}

int lc_df_plan_build(const lc_df_file *f, const lc_df_plan_opts *opts, lc_df_plan **out,
                     lc_err *err)
{
    *out = NULL;
    static const lc_df_plan_opts none = {0};
    const lc_df_plan_opts *o = opts ? opts : &none;
    lc_df_arena *a = lc_df__arena_new();
    if (!a)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    planner p = {.f = f, .o = o, .a = a, .err = err};
    size_t n = f->nstages;
    int rc = 0;
    p.plan = lc_df__alloc(a, sizeof(*p.plan));
    p.state = lc_df__alloc(a, n * sizeof(int));
    p.final = lc_df__alloc(a, n * sizeof(scope));
    p.final_workdir = lc_df__alloc(a, n * sizeof(char *));
    p.final_user = lc_df__alloc(a, n * sizeof(char *));
    p.final_shell = lc_df__alloc(a, n * sizeof(char **));
    p.final_nshell = lc_df__alloc(a, n * sizeof(size_t));
    p.deps = lc_df__alloc(a, n * sizeof(bool *));
    if (!p.plan || !p.state || !p.final || !p.final_workdir || !p.final_user || !p.final_shell ||
        !p.final_nshell || !p.deps)
        goto oom;
    for (size_t i = 0; i < n; i++)
        if (!(p.deps[i] = lc_df__alloc(a, n)))
            goto oom;
    p.plan->file = f;
    p.plan->priv_ = a;
    p.plan->nstages = n;
    p.plan->stages = lc_df__alloc(a, (n + 1) * sizeof(lc_df_stage_plan));
    if (!p.plan->stages)
        goto oom;

    const char *tp = o->target_platform ? o->target_platform : "linux/amd64";
    const char *bp = o->build_platform ? o->build_platform : tp;
    p.target_platform = tp;
    if ((rc = add_platform(&p, "TARGET", tp)) || (rc = add_platform(&p, "BUILD", bp)))
        goto fail;
    /* global ARGs: a --build-arg wins over the default, expanded in order */
    for (size_t i = 0; i < f->nglobal_args; i++) {
        const lc_df_instr *in = &f->global_args[i];
        const char **vals = lc_df__alloc(a, (in->nkvs + 1) * sizeof(char *));
        if (!vals)
            goto oom;
        for (size_t k = 0; k < in->nkvs; k++)
            if (in->kvs[k].value &&
                (rc = expand(&p, in, in->kvs[k].value, globals_lookup, &p.globals, &vals[k])))
                goto fail;
        for (size_t k = 0; k < in->nkvs; k++) {
            const char *v = build_arg(&p, in->kvs[k].key);
            if (!v)
                v = vals[k];
            if (v && (rc = add_global(&p, in->kvs[k].key, v)))
                goto fail;
        }
    }
    int target = (int)n - 1;
    if (o->target) {
        target = lc_df_stage_find(f, o->target);
        if (target < 0) {
            rc = lc_err_set(err, LC_NOT_FOUND, "%s:1:1: target stage \"%s\" could not be found",
                            f->filename, o->target);
            goto fail;
        }
    }
    p.plan->target = target;
    for (size_t i = 0; i < n; i++)
        if ((rc = eval_stage(&p, (int)i)))
            goto fail;
    mark(&p, target);
    *out = p.plan;
    return 0;
oom:
    rc = OOM(&p);
fail:
    lc_df__arena_free(&a);
    return rc;
}

void lc_df_plan_free(lc_df_plan **pl)
{
    if (!pl || !*pl)
        return;
    lc_df_arena *a = (*pl)->priv_;
    lc_df__arena_free(&a);
    *pl = NULL;
}
