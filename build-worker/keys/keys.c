/* keys.c - see keys.h and docs/CACHE_KEYS.md (the rules live there; keep
 * both in step, and bump LC_KEY_ENCODING_VERSION when an encoding changes). */
#include "keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "build-worker/context/dockerignore.h"
#include "build-worker/oci/platform.h"
#include "encode.h"

/* ---- a tiny string builder ------------------------------------------------ */

typedef struct sb {
    char *s;
    size_t len, cap;
    int oom;
} sb;

static void sb_addn(sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *g = realloc(b->s, cap);
        if (g == NULL) {
            b->oom = 1;
            return;
        }
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* JSON string literal. */
static void sb_json(sb *b, const char *s)
{
    sb_add(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_addn(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            sb_add(b, esc);
        } else {
            sb_addn(b, (const char *)&c, 1);
        }
    }
    sb_add(b, "\"");
}

/* A word as is when it reads back unambiguously, else JSON-quoted. */
static void sb_word(sb *b, const char *s)
{
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (unsigned char)*p > 0x20 && *p != '"' && *p != '\'' && *p != '\\' && *p != 0x7f;
    if (plain)
        sb_add(b, s);
    else
        sb_json(b, s);
}

static void sb_json_array(sb *b, const char *const *v, size_t n)
{
    sb_add(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_add(b, ", ");
        sb_json(b, v[i]);
    }
    sb_add(b, "]");
}

/* ---- helpers ----------------------------------------------------------------- */

void lc_keys_scratch_digest(lc_digest *out)
{
    static const char s[] = LC_KEY_ENCODING_VERSION ":scratch";
    lc_digest_of(s, sizeof(s) - 1, out);
    out->size = 0;
}

void lc_keys_epoch(const lc_df_var *build_args, size_t n, bool *has, int64_t *epoch)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(build_args[i].name, "SOURCE_DATE_EPOCH") == 0)
            v = build_args[i].value;
    if (v == NULL)
        v = getenv("SOURCE_DATE_EPOCH");
    char *end = NULL;
    long long e = v && *v ? strtoll(v, &end, 10) : -1;
    *has = e >= 0 && end != NULL && *end == '\0';
    *epoch = *has ? (int64_t)e : 0;
}

const char *lc_keys_host_platform(void)
{
    struct utsname u;
    if (uname(&u) != 0)
        return "linux/amd64";
    static const struct {
        const char *machine, *platform;
    } map[] = {
        {"x86_64", "linux/amd64"},    {"aarch64", "linux/arm64"},   {"arm64", "linux/arm64"},
        {"armv7l", "linux/arm/v7"},   {"armv6l", "linux/arm/v6"},   {"i686", "linux/386"},
        {"i386", "linux/386"},        {"ppc64le", "linux/ppc64le"}, {"s390x", "linux/s390x"},
        {"riscv64", "linux/riscv64"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(u.machine, map[i].machine) == 0)
            return map[i].platform;
    return "linux/amd64";
}

static const char *first_line_end(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl ? nl : s + strlen(s);
}

/* A git repository as BuildKit recognizes one in ADD: git@host:repo,
 * git://..., or an http(s) URL whose path ends in ".git" (a "#ref" may
 * follow). layercache does not clone them. */
static bool is_git_source(const char *src)
{
    if (strncmp(src, "git@", 4) == 0 || strncmp(src, "git://", 6) == 0)
        return true;
    if (!lc_url_is_http(src))
        return false;
    size_t n = strcspn(src, "#?");
    return n >= 4 && strncmp(src + n - 4, ".git", 4) == 0;
}

static int is_remote(const char *src)
{
    return lc_url_is_http(src) || is_git_source(src);
}

/* Whether word names one of the instruction's heredocs ("<<EOF", "<<-EOF",
 * "<<'EOF'", "3<<EOF"). */
static int is_heredoc_word(const lc_df_instr *in, const char *w)
{
    const char *p = strstr(w, "<<");
    if (p == NULL || in->nheredocs == 0)
        return 0;
    for (const char *q = w; q < p; q++)
        if (*q < '0' || *q > '9')
            return 0;
    return 1;
}

static int is_octal(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '7')
            return 0;
    return 1;
}

/* The step's words (expanded when Docker expands this kind). */
static void step_words(const lc_df_step *st, const char *const **w, size_t *n)
{
    if (st->words != NULL || st->nwords > 0) {
        *w = st->words;
        *n = st->nwords;
    } else {
        *w = st->instr->args;
        *n = st->instr->nargs;
    }
}

static const lc_df_flag *step_flags(const lc_df_step *st, size_t *n)
{
    if (st->flags != NULL || st->nflags > 0) {
        *n = st->nflags;
        return st->flags;
    }
    *n = st->instr->nflags;
    return st->instr->flags;
}

/* ---- environment ------------------------------------------------------------- */

typedef struct envvar {
    const char *name, *value;
} envvar;

static int cmp_env(const void *a, const void *b)
{
    return strcmp(((const envvar *)a)->name, ((const envvar *)b)->name);
}

/* ARGs with values, then ENV overriding them (Docker: ENV wins over an ARG
 * of the same name), sorted by name. *out is malloc'd. */
static int merged_env(const lc_df_step *st, envvar **out, size_t *n)
{
    size_t cap = st->nargs + st->nenv;
    envvar *v = malloc((cap ? cap : 1) * sizeof(*v));
    if (v == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++) {
        const lc_df_var *src = pass == 0 ? st->args : st->env;
        size_t ns = pass == 0 ? st->nargs : st->nenv;
        for (size_t i = 0; i < ns; i++) {
            if (src[i].value == NULL)
                continue;
            size_t j = 0;
            while (j < k && strcmp(v[j].name, src[i].name) != 0)
                j++;
            v[j].name = src[i].name;
            v[j].value = src[i].value;
            if (j == k)
                k++;
        }
    }
    qsort(v, k, sizeof(*v), cmp_env);
    *out = v;
    *n = k;
    return 0;
}

/* ---- base images ------------------------------------------------------------- */

static int resolve_image(const lc_keys_opts *o, const char *image, const char *platform,
                         const lc_df_pos *pos, lc_digest *out, lc_err *err)
{
    const char *at = strstr(image, "@sha256:");
    if (at != NULL) {
        /* Pinned by digest: nothing to resolve. */
        if (lc_digest_parse_oci(at + 1, out, NULL) == 0)
            return 0;
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s:%d:%d: invalid digest in image '%s'",
                          pos->file, pos->line, pos->col, image);
    }
    for (size_t i = 0; i < o->nbases; i++) {
        if (strcmp(o->bases[i].image, image) == 0) {
            *out = o->bases[i].digest;
            return 0;
        }
    }
    if (o->resolve != NULL) {
        lc_err e2 = {0};
        int rc = o->resolve(o->resolve_ctx, image, platform, out, &e2);
        if (rc == 0)
            return 0;
        if (rc != -LC_NOT_FOUND)
            return lc_err_set(err, -rc, "%s:%d:%d: resolving image '%s': %s", pos->file, pos->line,
                              pos->col, image, e2.msg);
    }
    return lc_err_set(err, LC_NOT_FOUND,
                      "%s:%d:%d: base image '%s' has no known digest: import it into the local "
                      "image store or pass --base-digest %s=sha256:<manifest digest>",
                      pos->file, pos->line, pos->col, image, image);
}

/* ---- per-step keys ------------------------------------------------------------ */

static void enc_selection(lc_keyenc *e, const lc_selection *s, int chmod_octal)
{
    lc_keyenc_list(e, "entries", s->n);
    for (size_t i = 0; i < s->n; i++) {
        const lc_ctx_entry *en = &s->entries[i];
        lc_keyenc_u64(e, "src", en->src);
        lc_keyenc_str(e, "path", en->path);
        lc_keyenc_str(e, "dest", en->dest);
        lc_keyenc_u64(e, "type", en->mode & S_IFMT);
        /* An octal --chmod replaces the permission bits entirely. */
        lc_keyenc_u64(e, "perm", chmod_octal ? 0 : en->mode & 07777);
        if (S_ISLNK(en->mode))
            lc_keyenc_str(e, "link", en->link);
        if (S_ISREG(en->mode)) {
            lc_keyenc_u64(e, "size", (uint64_t)en->size);
            lc_keyenc_digest(e, "content", &en->digest);
        }
    }
}

/* Heredocs as the step uses them (COPY's expanded). */
static void enc_heredocs(lc_keyenc *e, const lc_df_step *st)
{
    const lc_df_instr *in = st->instr;
    lc_keyenc_list(e, "heredocs", in->nheredocs);
    for (size_t i = 0; i < in->nheredocs; i++) {
        const lc_df_heredoc *h = &in->heredocs[i];
        lc_keyenc_str(e, "name", h->name);
        lc_keyenc_str(e, "content", st->heredocs ? st->heredocs[i] : h->content);
        lc_keyenc_u64(e, "strip_tabs", h->strip_tabs);
        lc_keyenc_u64(e, "expand", h->expand);
        lc_keyenc_u64(e, "fd", (uint64_t)h->fd);
    }
}

static void enc_env(lc_keyenc *e, const envvar *v, size_t n)
{
    lc_keyenc_list(e, "env", n);
    for (size_t i = 0; i < n; i++) {
        lc_keyenc_str(e, "name", v[i].name);
        lc_keyenc_str(e, "value", v[i].value);
    }
}

static void sb_octal(sb *b, const char *name, int64_t v)
{
    char t[40];
    if (v >= 0) {
        snprintf(t, sizeof(t), ",%s=%04llo", name, (unsigned long long)v);
        sb_add(b, t);
    }
}

static void sb_num(sb *b, const char *name, int64_t v)
{
    char t[40];
    if (v >= 0) {
        snprintf(t, sizeof(t), ",%s=%lld", name, (long long)v);
        sb_add(b, t);
    }
}

/* RUN's flags in one canonical spelling, with BuildKit's defaults filled
 * in (runflags.h): what a RUN does, not how it was written. A cache
 * mount's id and sharing are left out (BuildKit keeps them out of its
 * ExecOp cache key: they choose a directory, not a result); a stage named
 * by from= is keyed by the stage's key (enc_mounts), not its name. */
static void normalize_run_flags(const lc_key_step *ks, sb *b)
{
    if (ks->network != LC_DF_NET_UNSET && ks->network != LC_DF_NET_DEFAULT) {
        sb_add(b, " --network=");
        sb_add(b, lc_df_network_name(ks->network));
    }
    for (size_t i = 0; i < ks->run.nmounts; i++) {
        const lc_df_mount *m = &ks->run.mounts[i];
        sb t = {0};
        sb_add(&t, "type=");
        sb_add(&t, lc_df_mount_type_name(m->type));
        if (m->id != NULL && m->type != LC_DF_MOUNT_CACHE) {
            sb_add(&t, ",id=");
            sb_add(&t, m->id);
        }
        if (m->target != NULL) {
            sb_add(&t, ",target=");
            sb_add(&t, m->target);
        }
        if (m->from != NULL && ks->mount_stage[i] < 0) {
            sb_add(&t, ",from=");
            sb_add(&t, m->from);
        }
        if (m->source != NULL && m->source[0] != '\0') {
            sb_add(&t, ",source=");
            sb_add(&t, m->source);
        }
        if (m->env != NULL) {
            sb_add(&t, ",env=");
            sb_add(&t, m->env);
        }
        bool writable_default = m->type == LC_DF_MOUNT_CACHE || m->type == LC_DF_MOUNT_TMPFS;
        if (m->readonly == writable_default)
            sb_add(&t, m->readonly ? ",ro" : ",rw");
        if (m->type == LC_DF_MOUNT_SECRET || m->type == LC_DF_MOUNT_SSH)
            sb_add(&t, m->required ? ",required=true" : ",required=false");
        if (m->type == LC_DF_MOUNT_TMPFS && m->size > 0)
            sb_num(&t, "size", (int64_t)m->size);
        sb_octal(&t, "mode", m->mode);
        sb_num(&t, "uid", m->uid);
        sb_num(&t, "gid", m->gid);
        if (t.oom) {
            b->oom = 1;
        } else {
            sb_add(b, " --mount=");
            sb_word(b, t.s);
        }
        free(t.s);
    }
}

/* Renders the normalized instruction of ks (its step st) into b. */
static void normalize(const lc_key_step *ks, const lc_df_step *st, sb *b)
{
    const lc_df_instr *in = st->instr;
    sb_add(b, lc_df_kind_name(in->kind));
    size_t nf = 0;
    const lc_df_flag *fl = step_flags(st, &nf);
    if (in->kind == LC_DF_RUN) {
        normalize_run_flags(ks, b);
        nf = 0;
    }
    for (size_t i = 0; i < nf; i++) {
        /* A stage reference is keyed by the stage's key, not its name. */
        if (strcmp(fl[i].name, "from") == 0 && st->copy_from_stage >= 0)
            continue;
        sb_add(b, " --");
        sb_add(b, fl[i].name);
        if (fl[i].value != NULL) {
            sb_add(b, "=");
            sb_word(b, fl[i].value);
        }
    }
    const char *const *w;
    size_t nw;
    switch (in->kind) {
    case LC_DF_RUN:
    case LC_DF_CMD:
    case LC_DF_ENTRYPOINT:
    case LC_DF_SHELL:
        sb_add(b, " ");
        if (in->json)
            sb_json_array(b, in->args, in->nargs);
        else if (in->nargs > 0)
            sb_add(b, in->args[0]);
        break;
    case LC_DF_HEALTHCHECK:
        if (in->healthcheck_none) {
            sb_add(b, " NONE");
        } else {
            sb_add(b, " CMD ");
            if (in->json)
                sb_json_array(b, in->args, in->nargs);
            else if (in->nargs > 0)
                sb_add(b, in->args[0]);
        }
        break;
    case LC_DF_ENV:
    case LC_DF_LABEL:
        for (size_t i = 0; i < st->nkvs; i++) {
            sb_add(b, " ");
            sb_word(b, st->kvs[i].key);
            sb_add(b, "=");
            sb_word(b, st->kvs[i].value ? st->kvs[i].value : "");
        }
        break;
    case LC_DF_ARG:
        /* The declaration only, as written: values enter later steps. */
        for (size_t i = 0; i < in->nkvs; i++) {
            sb_add(b, " ");
            sb_add(b, in->kvs[i].key);
            if (in->kvs[i].value != NULL) {
                sb_add(b, "=");
                sb_add(b, in->kvs[i].value);
            }
        }
        break;
    case LC_DF_ONBUILD:
        sb_add(b, " ");
        sb_add(b, in->rest ? in->rest : "");
        break;
    default:
        step_words(st, &w, &nw);
        for (size_t i = 0; i < nw; i++) {
            sb_add(b, " ");
            sb_word(b, w[i]);
        }
        break;
    }
}

static int stage_by_ref(const lc_df_file *f, const char *ref)
{
    for (size_t i = 0; i < f->nstages; i++)
        if (f->stages[i].name && strcasecmp(f->stages[i].name, ref) == 0)
            return (int)i;
    return lc_df_stage_find(f, ref);
}

typedef struct engine {
    const lc_keys_opts *o;
    lc_keys *k;
    lc_ignore *ig;
    lc_err *err;
    lc_strlist image_env; /* the last base image's Env, for the planner */
    lc_df_var *image_vars;
} engine;

/* The planner's image_env: the resolver's "K=V" list as name/value pairs
 * (valid until the next call). */
static const lc_df_var *plan_image_env(void *ctx, const char *image, const char *platform,
                                       size_t *n)
{
    engine *g = ctx;
    *n = 0;
    lc_strlist_clear(&g->image_env);
    free(g->image_vars);
    g->image_vars = NULL;
    if (g->o->image_env(g->o->image_env_ctx, image, platform, &g->image_env) != 0 ||
        g->image_env.len == 0 ||
        (g->image_vars = calloc(g->image_env.len, sizeof(*g->image_vars))) == NULL)
        return NULL;
    for (size_t i = 0; i < g->image_env.len; i++) {
        char *kv = g->image_env.items[i];
        char *eq = strchr(kv, '=');
        if (eq == NULL || eq == kv)
            continue;
        *eq = '\0'; /* the list is ours: split in place */
        g->image_vars[*n].name = kv;
        g->image_vars[(*n)++].value = eq + 1;
    }
    return g->image_vars;
}

/* Selects the context files of a COPY/ADD step (not for --from). */
static int select_sources(engine *g, lc_key_step *ks)
{
    const lc_df_step *st = ks->step;
    const char *const *w;
    size_t nw;
    step_words(st, &w, &nw);
    if (nw < 2)
        return lc_err_set(g->err, LC_INVALID_ARGUMENT,
                          "%s:%d:%d: %s needs a source and a destination", st->instr->pos.file,
                          st->instr->pos.line, st->instr->pos.col,
                          lc_df_kind_name(st->instr->kind));
    const char **srcs = calloc(nw, sizeof(*srcs));
    const char **ex = calloc(st->nflags + st->instr->nflags + 1, sizeof(*ex));
    lc_ignore *exclude = NULL;
    int rc = 0;
    if (srcs == NULL || ex == NULL) {
        rc = lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t ns = 0, nex = 0, nf = 0;
    for (size_t i = 0; i + 1 < nw; i++) {
        if (is_heredoc_word(st->instr, w[i]) || is_remote(w[i]))
            continue;
        srcs[ns++] = w[i];
    }
    const lc_df_flag *fl = step_flags(st, &nf);
    for (size_t i = 0; i < nf; i++)
        if (strcmp(fl[i].name, "exclude") == 0 && fl[i].value != NULL)
            ex[nex++] = fl[i].value;
    if (nex > 0 && (rc = lc_ignore_from_patterns(ex, nex, &exclude, g->err)) != 0)
        goto out;
    rc = lc_walk_select(g->o->context_dir, g->ig, srcs, ns, exclude, &ks->selection, g->err);
    if (rc != 0) {
        char msg[LC_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", g->err ? g->err->msg : "");
        rc = lc_err_set(g->err, -rc, "%s:%d:%d: %s: %s", st->instr->pos.file, st->instr->pos.line,
                        st->instr->pos.col, lc_df_kind_name(st->instr->kind), msg);
    }
out:
    lc_ignore_free(&exclude);
    free(srcs);
    free(ex);
    return rc;
}

/* ADD <http(s) URL>: with --checksum the URL is keyed by it (fetched only
 * if the step runs); without, it is downloaded now and keyed by its
 * content, as BuildKit does. COPY takes no URL. */
static int select_urls(engine *g, lc_key_step *ks)
{
    const lc_df_step *st = ks->step;
    const lc_df_instr *in = st->instr;
    const char *const *w;
    size_t nw, nf = 0, n = 0;
    step_words(st, &w, &nw);
    const lc_df_flag *fl = step_flags(st, &nf);
    const char *checksum = NULL;
    for (size_t i = 0; i < nf; i++)
        if (strcmp(fl[i].name, "checksum") == 0)
            checksum = fl[i].value;
    for (size_t i = 0; i + 1 < nw; i++)
        n += lc_url_is_http(w[i]);
    const lc_df_pos *pos = &in->pos;
    for (size_t i = 0; i + 1 < nw; i++)
        if (is_git_source(w[i]))
            return lc_err_set(g->err, LC_UNIMPLEMENTED,
                              "%s:%d:%d: %s %s: git sources are not supported; clone the "
                              "repository into the build context, or in a RUN step",
                              pos->file, pos->line, pos->col, lc_df_kind_name(in->kind), w[i]);
    if (n > 0 && in->kind == LC_DF_COPY)
        return lc_err_set(g->err, LC_INVALID_ARGUMENT, "%s:%d:%d: source can't be a URL for COPY",
                          pos->file, pos->line, pos->col);
    if (checksum != NULL && (nw != 2 || n != 1))
        return lc_err_set(g->err, LC_INVALID_ARGUMENT,
                          "%s:%d:%d: --checksum needs exactly one http(s) source", pos->file,
                          pos->line, pos->col);
    if (n == 0)
        return 0;
    if ((ks->urls = calloc(n, sizeof(*ks->urls))) == NULL)
        return lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i + 1 < nw; i++) {
        if (!lc_url_is_http(w[i]))
            continue;
        lc_url_file *u = &ks->urls[ks->nurls];
        int rc;
        if (checksum != NULL) {
            u->mtime = -1;
            u->url = strdup(w[i]);
            u->name = lc_url_name(w[i]);
            if (u->url == NULL || u->name == NULL)
                rc = lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
            else
                rc = lc_url_parse_checksum(checksum, &u->digest, g->err);
        } else {
            rc = lc_url_fetch(w[i], g->o->download_dir ? g->o->download_dir : "/tmp", NULL, u,
                              g->err);
        }
        ks->nurls++;
        if (rc != 0) {
            char msg[LC_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", g->err ? g->err->msg : "");
            return lc_err_set(g->err, -rc, "%s:%d:%d: ADD: %s", pos->file, pos->line, pos->col,
                              msg);
        }
        ks->files++;
        ks->bytes += (uint64_t)(u->digest.size > 0 ? u->digest.size : 0);
    }
    return 0;
}

/* Parses a RUN's flags (runflags.h) and selects what each bind mount of
 * the build context binds, so its content enters the key; notes the stage
 * each from= names. */
static int select_mounts(engine *g, lc_key_step *ks, lc_selection **sels, size_t *nsel)
{
    int rc = lc_df_run_parse(ks->step, &ks->run, g->err);
    if (rc != 0)
        return rc;
    ks->network = ks->run.network != LC_DF_NET_UNSET ? ks->run.network : g->o->network;
    if (ks->network == LC_DF_NET_UNSET)
        ks->network = LC_DF_NET_DEFAULT;
    size_t n = ks->run.nmounts;
    ks->mounts = calloc(n ? n : 1, sizeof(*ks->mounts));
    ks->mount_stage = calloc(n ? n : 1, sizeof(*ks->mount_stage));
    if (ks->mounts == NULL || ks->mount_stage == NULL)
        return lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    ks->nmounts = n;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lc_df_mount *m = &ks->run.mounts[i];
        ks->mount_stage[i] = m->from != NULL ? stage_by_ref(g->k->file, m->from) : -1;
        if (m->type != LC_DF_MOUNT_BIND || m->from != NULL)
            continue;
        const char *srcs[] = {m->source[0] ? m->source : "."};
        rc = lc_walk_select(g->o->context_dir, g->ig, srcs, 1, NULL, &ks->mounts[i], g->err);
        if (rc != 0) {
            char msg[LC_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", g->err ? g->err->msg : "");
            rc = lc_err_set(g->err, -rc, "%s:%d:%d: RUN --mount: %s", m->pos.file, m->pos.line,
                            m->pos.col, msg);
        } else {
            sels[(*nsel)++] = ks->mounts[i];
        }
    }
    return rc;
}

static void enc_mode(lc_keyenc *e, const lc_df_mount *m)
{
    /* -1 (not given) encodes as 0, a given value as value + 1 */
    lc_keyenc_u64(e, "mode", (uint64_t)(m->mode + 1));
    lc_keyenc_u64(e, "uid", (uint64_t)(m->uid + 1));
    lc_keyenc_u64(e, "gid", (uint64_t)(m->gid + 1));
}

/* Encodes RUN's network and mounts (BuildKit's ExecOp minus what it keeps
 * out of the cache key): the network mode in effect, the --add-host names
 * (not the addresses), and per mount its type, target and options; a bind
 * brings in what it binds (the content digest of a context selection, the
 * last key of a stage, the digest of an image), a cache mount its from=
 * base; the content of cache, tmpfs, secret and ssh mounts never enters. */
static int enc_run(engine *g, lc_keyenc *e, const lc_key_step *ks, const char *platform)
{
    lc_keyenc_str(e, "network", lc_df_network_name(ks->network));
    lc_keyenc_list(e, "extra_hosts", g->o->n_extra_hosts);
    for (size_t i = 0; i < g->o->n_extra_hosts; i++) {
        const char *h = g->o->extra_hosts[i];
        size_t n = strcspn(h, "=");
        if (h[n] == '\0')
            n = strcspn(h, ":");
        lc_keyenc_bytes(e, "host", h, n);
    }
    lc_keyenc_list(e, "mounts", ks->run.nmounts);
    for (size_t i = 0; i < ks->run.nmounts; i++) {
        const lc_df_mount *m = &ks->run.mounts[i];
        lc_keyenc_str(e, "type", lc_df_mount_type_name(m->type));
        lc_keyenc_str(e, "target", m->target);
        lc_keyenc_u64(e, "readonly", m->readonly);
        switch (m->type) {
        case LC_DF_MOUNT_BIND:
        case LC_DF_MOUNT_CACHE:
            lc_keyenc_str(e, "source", m->source);
            if (m->type == LC_DF_MOUNT_CACHE)
                enc_mode(e, m);
            if (ks->mounts[i] != NULL) {
                lc_keyenc se = {0};
                lc_digest d;
                if (lc_keyenc_init(&se, "layercache-sources-v1") != 0)
                    return lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
                enc_selection(&se, ks->mounts[i], 0);
                lc_keyenc_finish(&se, &d);
                lc_keyenc_digest(e, "mount_context", &d);
            } else if (m->from != NULL && ks->mount_by_content && ks->mount_by_content[i]) {
                lc_keyenc_digest(e, "mount_content", &ks->mount_content[i]);
            } else if (m->from != NULL) {
                int k = ks->mount_stage[i];
                lc_digest d;
                if (k >= 0) {
                    const lc_key_stage *st = &g->k->stages[k];
                    if (st->nsteps == 0 || k >= ks->stage)
                        return lc_err_set(g->err, LC_INVALID_ARGUMENT,
                                          "%s:%d:%d: RUN --mount from=%s: stage is not built "
                                          "before it",
                                          m->pos.file, m->pos.line, m->pos.col, m->from);
                    d = g->k->steps[st->first_step + st->nsteps - 1].key;
                } else {
                    int rc = resolve_image(g->o, m->from, platform, &m->pos, &d, g->err);
                    if (rc != 0)
                        return rc;
                }
                lc_keyenc_digest(e, "mount_from", &d);
            }
            break;
        case LC_DF_MOUNT_TMPFS:
            lc_keyenc_u64(e, "size", m->size);
            break;
        case LC_DF_MOUNT_SECRET:
        case LC_DF_MOUNT_SSH:
            lc_keyenc_str(e, "id", m->id);
            lc_keyenc_str(e, "env", m->env);
            lc_keyenc_u64(e, "required", m->required);
            enc_mode(e, m);
            break;
        }
    }
    return 0;
}

static int fill_command(lc_key_step *ks, const envvar *env, size_t nenv)
{
    const lc_df_step *st = ks->step;
    int rc = 0;
    if (st != NULL && st->instr->kind == LC_DF_RUN) {
        const lc_df_instr *in = st->instr;
        if (in->json) {
            for (size_t i = 0; i < in->nargs && rc == 0; i++)
                rc = lc_strlist_push(&ks->argv, in->args[i]);
        } else {
            for (size_t i = 0; i < st->nshell && rc == 0; i++)
                rc = lc_strlist_push(&ks->argv, st->shell[i]);
            if (st->nshell == 0) {
                rc = lc_strlist_push(&ks->argv, "/bin/sh");
                if (rc == 0)
                    rc = lc_strlist_push(&ks->argv, "-c");
            }
            if (rc == 0)
                rc = lc_strlist_push(&ks->argv, in->nargs > 0 ? in->args[0] : "");
        }
    } else {
        rc = lc_strlist_push(&ks->argv, "layercache-step");
        if (rc == 0)
            rc = lc_strlist_push(&ks->argv, lc_df_kind_name(ks->kind));
        if (rc == 0)
            rc = lc_strlist_push(&ks->argv, ks->normalized);
    }
    for (size_t i = 0; i < nenv && rc == 0; i++) {
        char *kv = malloc(strlen(env[i].name) + strlen(env[i].value) + 2);
        if (kv == NULL)
            return -LC_RESOURCE_EXHAUSTED;
        sprintf(kv, "%s=%s", env[i].name, env[i].value);
        rc = lc_strlist_push_owned(&ks->env, kv);
    }
    return rc;
}

/* Turns the input digest of a step into its cache key (see keys.h). */
static int wrap_key(engine *g, lc_key_step *ks, const char *text, const char *platform)
{
    ks->input = ks->key;
    lc_step_action_clear(&ks->action);
    int rc = lc_step_action_make(&ks->input, text ? text : "", platform ? platform : "",
                                 &ks->action, g->err);
    if (rc < 0)
        return rc;
    ks->key = ks->action.action_digest;
    lc_digest_oci(&ks->key, ks->key_str);
    return 0;
}

/* Computes the key of instruction step ks whose parent key is parent. */
static int key_instruction(engine *g, lc_key_step *ks, const lc_digest *parent,
                           const char *platform)
{
    const lc_df_step *st = ks->step;
    const lc_df_instr *in = st->instr;
    envvar *env = NULL;
    size_t nenv = 0;
    sb b = {0};
    lc_keyenc e = {0};
    int rc = merged_env(st, &env, &nenv);
    if (rc != 0)
        goto oom;
    normalize(ks, st, &b);
    if (b.oom)
        goto oom;
    ks->normalized = b.s;
    b.s = NULL;
    if (lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION) != 0)
        goto oom;
    lc_keyenc_digest(&e, "parent", parent);
    lc_keyenc_str(&e, "platform", platform);
    lc_keyenc_str(&e, "kind", lc_df_kind_name(in->kind));
    lc_keyenc_str(&e, "instruction", ks->normalized);
    switch (in->kind) {
    case LC_DF_RUN:
        enc_env(&e, env, nenv);
        lc_keyenc_list(&e, "shell", st->nshell);
        for (size_t i = 0; i < st->nshell; i++)
            lc_keyenc_str(&e, "arg", st->shell[i]);
        lc_keyenc_str(&e, "user", st->user);
        lc_keyenc_str(&e, "workdir", st->workdir);
        enc_heredocs(&e, st);
        if ((rc = enc_run(g, &e, ks, platform)) != 0) {
            lc_keyenc_abort(&e);
            free(env);
            return rc;
        }
        break;
    case LC_DF_COPY:
    case LC_DF_ADD: {
        const char *chmod = NULL;
        size_t nf = 0;
        const lc_df_flag *fl = step_flags(st, &nf);
        for (size_t i = 0; i < nf; i++)
            if (strcmp(fl[i].name, "chmod") == 0)
                chmod = fl[i].value;
        lc_keyenc_str(&e, "workdir", st->workdir); /* a relative destination resolves here */
        enc_heredocs(&e, st); /* bodies as expanded with the variables in scope */
        for (size_t i = 0; i < in->nheredocs; i++) {
            ks->files++;
            ks->bytes += strlen(st->heredocs ? st->heredocs[i] : in->heredocs[i].content);
        }
        if (ks->from_content) {
            lc_keyenc_digest(&e, "from_content", &ks->from_digest);
        } else if (ks->from_stage >= 0 || ks->from_image != NULL) {
            lc_keyenc_digest(&e, ks->from_stage >= 0 ? "from_stage_key" : "from_image",
                             &ks->from_digest);
        } else if (ks->selection != NULL) {
            lc_keyenc se = {0};
            if (lc_keyenc_init(&se, "layercache-sources-v1") != 0)
                goto oom;
            enc_selection(&se, ks->selection, is_octal(chmod));
            lc_keyenc_finish(&se, &ks->sources);
            lc_keyenc_digest(&e, "sources", &ks->sources);
            ks->files += ks->selection->files;
            ks->bytes += ks->selection->bytes;
        }
        /* ADD <url>: its name and content (the --checksum, or the digest
         * of what was downloaded). */
        lc_keyenc_list(&e, "urls", ks->nurls);
        for (size_t i = 0; i < ks->nurls; i++) {
            lc_keyenc_str(&e, "name", ks->urls[i].name);
            lc_keyenc_digest(&e, "content", &ks->urls[i].digest);
        }
        break;
    }
    case LC_DF_WORKDIR:
        /* WORKDIR creates the directory, owned by the USER in effect. */
        lc_keyenc_str(&e, "workdir", st->workdir);
        lc_keyenc_str(&e, "user", st->user);
        break;
    default:
        break;
    }
    /* SOURCE_DATE_EPOCH stamps layer times and the config's created. */
    if (g->o->has_epoch)
        lc_keyenc_u64(&e, "epoch", (uint64_t)g->o->epoch);
    lc_keyenc_finish(&e, &ks->key);
    if ((rc = wrap_key(g, ks, ks->normalized, platform)) < 0) {
        free(env);
        return rc;
    }
    rc = fill_command(ks, env, nenv);
    free(env);
    return rc == 0 ? 0 : lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
oom:
    lc_keyenc_abort(&e);
    free(b.s);
    free(env);
    return lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

static int key_from(engine *g, lc_key_stage *ks_stage, lc_key_step *ks)
{
    lc_keyenc e = {0};
    sb b = {0};
    sb_add(&b, "FROM ");
    sb_word(&b, ks_stage->base);
    if (ks_stage->platform != NULL) {
        sb_add(&b, " --platform=");
        sb_word(&b, ks_stage->platform);
    }
    if (b.oom || lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION) != 0) {
        free(b.s);
        return lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    ks->normalized = b.s;
    /* Only what the base is, never what it is called. */
    lc_keyenc_str(&e, "kind", "FROM");
    lc_keyenc_digest(&e, "base", &ks_stage->base_digest);
    lc_keyenc_str(&e, "platform", ks_stage->platform);
    lc_keyenc_finish(&e, &ks->key);
    /* The Command names the base by digest: what it is, not what it is called. */
    char from_text[5 + LC_DIGEST_OCI_LEN + 1] = "FROM ";
    lc_digest_oci(&ks_stage->base_digest, from_text + 5);
    int rc = wrap_key(g, ks, from_text, ks_stage->platform);
    if (rc < 0)
        return rc;
    if (lc_strlist_push(&ks->argv, "layercache-step") != 0 ||
        lc_strlist_push(&ks->argv, "FROM") != 0 || lc_strlist_push(&ks->argv, ks->normalized) != 0)
        return lc_err_set(g->err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

/* ---- the whole build ---------------------------------------------------------- */

static int dup_line(const char *s, const char **out)
{
    const char *end = first_line_end(s);
    char *c = strndup(s, (size_t)(end - s));
    *out = c;
    return c ? 0 : -LC_RESOURCE_EXHAUSTED;
}

int lc_keys_compute(const lc_df_file *file, const lc_keys_opts *o, lc_keys **out, lc_err *err)
{
    *out = NULL;
    lc_keys *k = calloc(1, sizeof(*k));
    engine g = {.o = o, .k = k, .err = err};
    lc_selection **sels = NULL;
    int rc = 0;
    if (k == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    k->file = file;
    const char *platform = o->platform ? o->platform : lc_keys_host_platform();

    struct stat cst;
    if (o->context_dir == NULL || stat(o->context_dir, &cst) != 0 || !S_ISDIR(cst.st_mode)) {
        rc = lc_err_set(err, LC_NOT_FOUND, "build context '%s' is not a directory",
                        o->context_dir ? o->context_dir : "(none)");
        goto out;
    }
    lc_df_plan_opts po = {.target = o->target,
                          .build_args = o->build_args,
                          .nbuild_args = o->nbuild_args,
                          .target_platform = platform,
                          .build_platform = lc_keys_host_platform(),
                          .image_env = o->image_env ? plan_image_env : NULL,
                          .image_env_ctx = &g};
    if ((rc = lc_df_plan_build(file, &po, &k->plan, err)) != 0)
        goto out;
    if ((rc = lc_ignore_load(o->context_dir, o->dockerfile_path, &g.ig, NULL, err)) != 0)
        goto out;

    const lc_df_plan *plan = k->plan;
    k->target = plan->target;
    k->nstages = plan->nstages;
    k->stages = calloc(plan->nstages ? plan->nstages : 1, sizeof(*k->stages));
    size_t total = 0;
    for (size_t i = 0; i < plan->nstages; i++)
        if (plan->stages[i].needed)
            total += 1 + plan->stages[i].nsteps;
    k->steps = calloc(total ? total : 1, sizeof(*k->steps));
    size_t maxsel = total;
    for (size_t i = 0; i < plan->nstages; i++)
        for (size_t j = 0; plan->stages[i].needed && j < plan->stages[i].nsteps; j++)
            maxsel += plan->stages[i].steps[j].nflags;
    sels = calloc(maxsel ? maxsel : 1, sizeof(*sels));
    if (k->stages == NULL || k->steps == NULL || sels == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }

    /* Pass 1: lay out the steps and select every context source. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t nsel = 0;
    for (size_t si = 0; si < plan->nstages; si++) {
        const lc_df_stage_plan *sp = &plan->stages[si];
        lc_key_stage *ks = &k->stages[si];
        ks->index = (int)si;
        ks->name = sp->stage->name;
        ks->needed = sp->needed;
        ks->base = sp->base;
        ks->base_stage = sp->base_stage;
        /* FROM --platform as containerd normalizes it: equal platforms
         * spelled differently are one key. */
        char pl[64];
        lc_platform fp;
        if (sp->platform != NULL) {
            if ((rc = lc_platform_parse(sp->platform, &fp, err)) < 0) {
                lc_err_prefix(err, "%s:%d:%d: FROM --platform", sp->stage->from->pos.file,
                              sp->stage->from->pos.line, sp->stage->from->pos.col);
                goto out;
            }
            lc_platform_format(&fp, pl, sizeof(pl));
        } else {
            snprintf(pl, sizeof(pl), "%s", platform);
        }
        ks->platform = strdup(pl);
        if (ks->platform == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        if (!sp->needed)
            continue;
        ks->first_step = k->nsteps;
        ks->nsteps = 1 + sp->nsteps;
        lc_key_step *fs = &k->steps[k->nsteps++];
        fs->stage = (int)si;
        fs->stage_name = sp->stage->name;
        fs->index = 0;
        fs->kind = LC_DF_FROM;
        fs->instr = sp->stage->from;
        fs->from_stage = -1;
        fs->platform = ks->platform;
        fs->workdir = "/";
        fs->user = "";
        if ((rc = dup_line(sp->stage->from->original, &fs->instruction)) != 0) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        for (size_t j = 0; j < sp->nsteps; j++) {
            const lc_df_step *st = &sp->steps[j];
            lc_key_step *s = &k->steps[k->nsteps++];
            s->stage = (int)si;
            s->stage_name = sp->stage->name;
            s->index = (int)j + 1;
            s->kind = st->instr->kind;
            s->instr = st->instr;
            s->step = st;
            s->from_stage = -1;
            s->platform = ks->platform;
            s->workdir = st->workdir ? st->workdir : "/";
            s->user = st->user ? st->user : "";
            if (dup_line(st->instr->original, &s->instruction) != 0) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            if (s->kind == LC_DF_RUN) {
                if ((rc = select_mounts(&g, s, sels, &nsel)) != 0)
                    goto out;
                continue;
            }
            if (s->kind != LC_DF_COPY && s->kind != LC_DF_ADD)
                continue;
            s->from_stage = st->copy_from_stage;
            s->from_image = st->copy_from_image;
            if (s->from_stage >= 0 || s->from_image != NULL) {
                const char *const *w;
                size_t nw;
                step_words(st, &w, &nw);
                for (size_t i = 0; i + 1 < nw; i++)
                    if (lc_strlist_push(&s->from_paths, w[i]) != 0) {
                        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                        goto out;
                    }
                continue;
            }
            if ((rc = select_urls(&g, s)) != 0 || (rc = select_sources(&g, s)) != 0)
                goto out;
            sels[nsel++] = s->selection;
        }
    }

    /* Pass 2: hash every selected file at once, across cores. */
    if ((rc = lc_hash_selections_progress(o->context_dir, sels, nsel, o->statcache,
                                          o->hash_progress, o->hash_progress_ctx, &k->hash, err)) !=
        0)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    k->context_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    /* Pass 3: the key chain, stage by stage in file order (a stage only
     * depends on earlier ones). */
    for (size_t si = 0; si < plan->nstages; si++) {
        const lc_df_stage_plan *sp = &plan->stages[si];
        lc_key_stage *ks = &k->stages[si];
        if (!sp->needed)
            continue;
        const lc_df_pos *pos = &sp->stage->from->pos;
        if (sp->base_stage >= 0) {
            const lc_key_stage *bs = &k->stages[sp->base_stage];
            if ((size_t)sp->base_stage >= si || bs->nsteps == 0) {
                rc = lc_err_set(err, LC_INTERNAL, "%s:%d:%d: stage %d is not built before it",
                                pos->file, pos->line, pos->col, sp->base_stage);
                goto out;
            }
            ks->base_digest = k->steps[bs->first_step + bs->nsteps - 1].key;
        } else if (sp->base != NULL && strcasecmp(sp->base, "scratch") == 0) {
            lc_keys_scratch_digest(&ks->base_digest);
        } else if ((rc = resolve_image(o, sp->base ? sp->base : "", ks->platform, pos,
                                       &ks->base_digest, err)) != 0) {
            goto out;
        }
        lc_key_step *fs = &k->steps[ks->first_step];
        if ((rc = key_from(&g, ks, fs)) != 0)
            goto out;
        for (size_t j = 1; j < ks->nsteps; j++) {
            lc_key_step *s = &k->steps[ks->first_step + j];
            if (s->from_stage >= 0) {
                const lc_key_stage *src = &k->stages[s->from_stage];
                if ((size_t)s->from_stage >= si || src->nsteps == 0) {
                    rc = lc_err_set(err, LC_INTERNAL, "%s:%d:%d: stage %d is not built before it",
                                    s->instr->pos.file, s->instr->pos.line, s->instr->pos.col,
                                    s->from_stage);
                    goto out;
                }
                s->from_digest = k->steps[src->first_step + src->nsteps - 1].key;
            } else if (s->from_image != NULL) {
                if ((rc = resolve_image(o, s->from_image, ks->platform, &s->instr->pos,
                                        &s->from_digest, err)) != 0)
                    goto out;
            }
            if ((rc = key_instruction(&g, s, &k->steps[ks->first_step + j - 1].key,
                                      ks->platform)) != 0)
                goto out;
        }
    }
out:
    lc_ignore_free(&g.ig);
    lc_strlist_clear(&g.image_env);
    free(g.image_vars);
    free(sels);
    if (rc != 0)
        lc_keys_free(&k);
    *out = k;
    return rc;
}

void lc_keys_free(lc_keys **kp)
{
    if (kp == NULL || *kp == NULL)
        return;
    lc_keys *k = *kp;
    for (size_t i = 0; i < k->nsteps; i++) {
        lc_key_step *s = &k->steps[i];
        free((char *)s->instruction);
        free(s->normalized);
        lc_selection_free(&s->selection);
        for (size_t j = 0; j < s->nurls; j++)
            lc_url_file_clear(&s->urls[j]);
        free(s->urls);
        lc_strlist_clear(&s->from_paths);
        lc_strlist_clear(&s->argv);
        lc_strlist_clear(&s->env);
        lc_step_action_clear(&s->action);
        for (size_t j = 0; j < s->nmounts; j++)
            lc_selection_free(&s->mounts[j]);
        free(s->mounts);
        free(s->mount_stage);
        free(s->mount_by_content);
        free(s->mount_content);
        lc_df_run_clear(&s->run);
    }
    for (size_t i = 0; i < k->nstages; i++)
        free(k->stages[i].platform);
    free(k->steps);
    free(k->stages);
    lc_df_plan_free(&k->plan);
    free(k);
    *kp = NULL;
}

/* ---- the content-based second key of COPY --from (see keys.h) ---------------- */

/* Forgets what key_instruction derived for a step, so it can run again. */
static void reset_step_key(lc_key_step *s)
{
    lc_step_action_clear(&s->action);
    free(s->normalized);
    s->normalized = NULL;
    lc_strlist_clear(&s->argv);
    lc_strlist_clear(&s->env);
}

int lc_keys_rekey_content(lc_keys *k, const lc_keys_opts *opts, size_t step,
                          const lc_selection *content, lc_err *err)
{
    if (step >= k->nsteps || k->steps[step].from_stage < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "step %zu is not a COPY --from=<stage>", step);
    engine g = {.o = opts, .k = k, .err = err};
    lc_key_step *s = &k->steps[step];
    const lc_key_stage *st = &k->stages[s->stage];
    lc_keyenc se = {0};
    if (lc_keyenc_init(&se, "layercache-sources-v1") != 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    const char *chmod = NULL;
    size_t nf = 0;
    const lc_df_flag *fl = step_flags(s->step, &nf);
    for (size_t i = 0; i < nf; i++)
        if (strcmp(fl[i].name, "chmod") == 0)
            chmod = fl[i].value;
    enc_selection(&se, content, is_octal(chmod));
    lc_keyenc_finish(&se, &s->from_digest);
    s->from_content = true;
    for (size_t i = step; i < st->first_step + st->nsteps; i++) {
        lc_key_step *cur = &k->steps[i];
        reset_step_key(cur);
        int rc = key_instruction(&g, cur, &k->steps[i - 1].key, st->platform);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void lc_keys_content_digest(const lc_selection *sel, lc_digest *out)
{
    lc_keyenc se = {0};
    memset(out, 0, sizeof(*out));
    if (lc_keyenc_init(&se, "layercache-sources-v1") != 0)
        return;
    enc_selection(&se, sel, 0);
    lc_keyenc_finish(&se, out);
}

int lc_keys_rekey_mounts(lc_keys *k, const lc_keys_opts *opts, size_t step,
                         const lc_digest *const *content, lc_err *err)
{
    if (step >= k->nsteps || k->steps[step].kind != LC_DF_RUN)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "step %zu is not a RUN", step);
    engine g = {.o = opts, .k = k, .err = err};
    lc_key_step *s = &k->steps[step];
    const lc_key_stage *st = &k->stages[s->stage];
    if (s->mount_by_content == NULL) {
        s->mount_by_content = calloc(s->nmounts ? s->nmounts : 1, sizeof(*s->mount_by_content));
        s->mount_content = calloc(s->nmounts ? s->nmounts : 1, sizeof(*s->mount_content));
        if (s->mount_by_content == NULL || s->mount_content == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < s->nmounts; i++) {
        if (content[i] == NULL)
            continue;
        s->mount_by_content[i] = true;
        s->mount_content[i] = *content[i];
    }
    for (size_t i = step; i < st->first_step + st->nsteps; i++) {
        lc_key_step *cur = &k->steps[i];
        reset_step_key(cur);
        int rc = key_instruction(&g, cur, &k->steps[i - 1].key, st->platform);
        if (rc != 0)
            return rc;
    }
    return 0;
}
