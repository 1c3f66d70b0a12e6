/* runflags.c - RUN --mount, --network, --security (see runflags.h). */
#include "runflags.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "df_internal.h"

#define OOM(err) lc_err_set((err), LC_RESOURCE_EXHAUSTED, "out of memory")

static const char *const type_names[] = {"bind", "cache", "tmpfs", "secret", "ssh"};
static const char *const net_names[] = {"default", "default", "none", "host"};

const char *lc_df_mount_type_name(enum lc_df_mount_type t)
{
    return (unsigned)t < sizeof(type_names) / sizeof(type_names[0]) ? type_names[t] : "?";
}

const char *lc_df_network_name(enum lc_df_network n)
{
    return (unsigned)n < sizeof(net_names) / sizeof(net_names[0]) ? net_names[n] : "?";
}

int lc_df_network_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "default") == 0)
        return LC_DF_NET_DEFAULT;
    if (strcmp(s, "none") == 0)
        return LC_DF_NET_NONE;
    if (strcmp(s, "host") == 0)
        return LC_DF_NET_HOST;
    return -1;
}

static void mount_clear(lc_df_mount *m)
{
    free(m->target);
    free(m->from);
    free(m->source);
    free(m->id);
    free(m->env);
    memset(m, 0, sizeof(*m));
}

void lc_df_run_clear(lc_df_run *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nmounts; i++)
        mount_clear(&r->mounts[i]);
    free(r->mounts);
    memset(r, 0, sizeof(*r));
}

/* ---- CSV fields (go-csvvalue, as BuildKit splits a --mount value) ---- */

/* Splits v into malloc'd fields (*out, *n). A field that starts with '"' is
 * quoted ("" is a literal quote); a quote inside an unquoted field is an
 * error. */
static int csv_fields(const char *v, char ***out, size_t *n, const char **why)
{
    size_t cap = 8, k = 0;
    char **f = calloc(cap, sizeof(*f));
    char *buf = malloc(strlen(v) + 1);
    if (f == NULL || buf == NULL)
        goto oom;
    const char *p = v;
    for (;;) {
        size_t b = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    *why = "extraneous or missing \" in quoted field";
                    goto bad;
                }
                if (*p == '"' && p[1] == '"') {
                    buf[b++] = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    buf[b++] = *p++;
                }
            }
            if (*p != ',' && *p != '\0') {
                *why = "extraneous or missing \" in quoted field";
                goto bad;
            }
        } else {
            while (*p != ',' && *p != '\0') {
                if (*p == '"') {
                    *why = "bare \" in non-quoted field";
                    goto bad;
                }
                buf[b++] = *p++;
            }
        }
        buf[b] = '\0';
        if (k == cap) {
            char **g = realloc(f, 2 * cap * sizeof(*f));
            if (g == NULL)
                goto oom;
            f = g;
            cap *= 2;
        }
        if ((f[k] = strdup(buf)) == NULL)
            goto oom;
        k++;
        if (*p == '\0')
            break;
        p++; /* the comma */
    }
    free(buf);
    *out = f;
    *n = k;
    return 0;
oom:
    *why = NULL;
bad:
    for (size_t i = 0; f != NULL && i < k; i++)
        free(f[i]);
    free(f);
    free(buf);
    return -1;
}

/* ---- values ---- */

/* strconv.ParseBool */
static int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int parse_uint(const char *s, int base, uint64_t max, int64_t *out)
{
    if (*s == '\0' || *s == '-' || *s == '+' || isspace((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* docker/go-units RAMInBytes: "64m", "1.5g", "100", "2GiB" (powers of 1024). */
static int parse_ram(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0)
        return -1;
    if (*end == ' ')
        end++;
    double mul = 1;
    const char *units = "kmgtp";
    const char *u = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
    if (u != NULL) {
        for (const char *q = units; q <= u; q++)
            mul *= 1024;
        end++;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || v * mul > 9.2e18)
        return -1;
    *out = (uint64_t)(v * mul);
    return 0;
}

/* path.Join("/", p) made relative: "" is the root. Malloc'd. */
static char *clean_source(const char *p)
{
    char *abs = lc_df_workdir_join("/", p);
    if (abs == NULL)
        return NULL;
    char *rel = strdup(abs + 1);
    free(abs);
    return rel;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- one --mount ---- */

typedef struct mount_ctx {
    const lc_df_flag *flag;
    const char *workdir;
    size_t ssh_index; /* ssh mounts before this one */
    lc_err *err;
} mount_ctx;

#define MERR(c, ...) lc_df__errat((c)->err, LC_INVALID_ARGUMENT, &(c)->flag->pos, __VA_ARGS__)

static const char *const all_keys[] = {
    "type", "from", "source", "target", "readonly",    "id", "sharing", "required",  "size", "mode",
    "uid",  "gid",  "src",    "dst",    "destination", "ro", "rw",      "readwrite", "env"};

static void suggest_key(const char *key, char *out, size_t n)
{
    size_t best = (size_t)-1;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
        size_t d = lc_df__distance(key, all_keys[i]);
        if (d < best && d <= 2 + strlen(all_keys[i]) / 4) {
            best = d;
            snprintf(out, n, " (did you mean %s?)", all_keys[i]);
        }
    }
}

static int set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = strdup(v);
    return *slot ? 0 : -1;
}

static int parse_one(mount_ctx *c, lc_df_mount *m)
{
    char **f = NULL;
    size_t nf = 0;
    const char *why = NULL;
    int rc = 0;
    m->type = LC_DF_MOUNT_BIND;
    m->mode = m->uid = m->gid = -1;
    m->pos = c->flag->pos;
    if (csv_fields(c->flag->value ? c->flag->value : "", &f, &nf, &why) < 0)
        return why ? MERR(c, "RUN --mount: failed to parse csv mounts: %s", why) : OOM(c->err);
    bool ro_auto = true, has_sharing = false, has_required = false, has_size = false;
    char *target = NULL, *source = NULL;
    bool has_source = false;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        char *field = f[i];
        char *eq = strchr(field, '=');
        char key[32];
        snprintf(key, sizeof(key), "%.*s", (int)(eq ? (size_t)(eq - field) : strlen(field)), field);
        for (char *q = key; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL) {
            if (!strcmp(key, "readonly") || !strcmp(key, "ro")) {
                m->readonly = true;
                ro_auto = false;
            } else if (!strcmp(key, "readwrite") || !strcmp(key, "rw")) {
                m->readonly = false;
                ro_auto = false;
            } else if (!strcmp(key, "required")) {
                if (m->type != LC_DF_MOUNT_SECRET && m->type != LC_DF_MOUNT_SSH)
                    rc = MERR(c, "RUN --mount: unexpected key 'required' for mount type '%s'",
                              lc_df_mount_type_name(m->type));
                m->required = true;
                has_required = true;
            } else {
                rc = MERR(c, "RUN --mount: invalid field '%s' must be a key=value pair", field);
            }
            continue;
        }
        bool b;
        if (!strcmp(key, "type")) {
            size_t t = 0;
            while (t < 5 && strcasecmp(value, type_names[t]) != 0)
                t++;
            if (t == 5)
                rc = MERR(c,
                          "RUN --mount: unsupported mount type \"%s\" (bind, cache, tmpfs, "
                          "secret or ssh)",
                          value);
            else
                m->type = (enum lc_df_mount_type)t;
        } else if (!strcmp(key, "from")) {
            if (set_str(&m->from, value) < 0)
                rc = OOM(c->err);
        } else if (!strcmp(key, "source") || !strcmp(key, "src")) {
            has_source = true;
            if (set_str(&source, value) < 0)
                rc = OOM(c->err);
        } else if (!strcmp(key, "target") || !strcmp(key, "dst") || !strcmp(key, "destination")) {
            if (set_str(&target, value) < 0)
                rc = OOM(c->err);
        } else if (!strcmp(key, "readonly") || !strcmp(key, "ro") || !strcmp(key, "readwrite") ||
                   !strcmp(key, "rw")) {
            if (parse_bool(value, &b) < 0)
                rc = MERR(c, "RUN --mount: invalid value for %s: %s", key, value);
            else if (!strcmp(key, "rw") || !strcmp(key, "readwrite"))
                m->readonly = !b;
            else
                m->readonly = b;
            ro_auto = false;
        } else if (!strcmp(key, "required")) {
            if (m->type != LC_DF_MOUNT_SECRET && m->type != LC_DF_MOUNT_SSH)
                rc = MERR(c, "RUN --mount: unexpected key 'required' for mount type '%s'",
                          lc_df_mount_type_name(m->type));
            else if (parse_bool(value, &m->required) < 0)
                rc = MERR(c, "RUN --mount: invalid value for required: %s", value);
            has_required = true;
        } else if (!strcmp(key, "size")) {
            if (m->type != LC_DF_MOUNT_TMPFS)
                rc = MERR(c, "RUN --mount: unexpected key 'size' for mount type '%s'",
                          lc_df_mount_type_name(m->type));
            else if (parse_ram(value, &m->size) < 0)
                rc = MERR(c, "RUN --mount: invalid value for size: %s", value);
            has_size = true;
        } else if (!strcmp(key, "id")) {
            if (set_str(&m->id, value) < 0)
                rc = OOM(c->err);
        } else if (!strcmp(key, "sharing")) {
            if (!strcasecmp(value, "shared"))
                m->sharing = LC_DF_SHARING_SHARED;
            else if (!strcasecmp(value, "private"))
                m->sharing = LC_DF_SHARING_PRIVATE;
            else if (!strcasecmp(value, "locked"))
                m->sharing = LC_DF_SHARING_LOCKED;
            else
                rc = MERR(c,
                          "RUN --mount: unsupported sharing value \"%s\" (shared, private or "
                          "locked)",
                          value);
            has_sharing = true;
        } else if (!strcmp(key, "mode")) {
            if (parse_uint(value, 8, 07777, &m->mode) < 0)
                rc = MERR(c, "RUN --mount: invalid value %s for mode (octal, at most 7777)", value);
        } else if (!strcmp(key, "uid") || !strcmp(key, "gid")) {
            if (parse_uint(value, 10, 0xffffffffu, key[0] == 'u' ? &m->uid : &m->gid) < 0)
                rc = MERR(c, "RUN --mount: invalid value %s for %s", value, key);
        } else if (!strcmp(key, "env")) {
            if (set_str(&m->env, value) < 0)
                rc = OOM(c->err);
        } else {
            char sug[64];
            suggest_key(key, sug, sizeof(sug));
            rc = MERR(c, "RUN --mount: unexpected key '%s' in '%s'%s", key, field, sug);
        }
    }
    for (size_t i = 0; i < nf; i++)
        free(f[i]);
    free(f);
    if (rc != 0)
        goto out;

    /* Checks BuildKit makes once every field is known. */
    bool file_info =
        m->type == LC_DF_MOUNT_SECRET || m->type == LC_DF_MOUNT_SSH || m->type == LC_DF_MOUNT_CACHE;
    const char *tn = lc_df_mount_type_name(m->type);
    if (!file_info && (m->mode >= 0 || m->uid >= 0 || m->gid >= 0)) {
        rc = MERR(c, "RUN --mount: %s not allowed for \"%s\" type mounts",
                  m->mode >= 0  ? "mode"
                  : m->uid >= 0 ? "uid"
                                : "gid",
                  tn);
        goto out;
    }
    if (has_required && m->type != LC_DF_MOUNT_SECRET && m->type != LC_DF_MOUNT_SSH) {
        rc = MERR(c, "RUN --mount: unexpected key 'required' for mount type '%s'", tn);
        goto out;
    }
    if (has_size && m->type != LC_DF_MOUNT_TMPFS) {
        rc = MERR(c, "RUN --mount: unexpected key 'size' for mount type '%s'", tn);
        goto out;
    }
    if (has_sharing && m->type != LC_DF_MOUNT_CACHE) {
        rc = MERR(c, "RUN --mount: invalid cache sharing set for %s mount", tn);
        goto out;
    }
    if (m->env != NULL && m->type != LC_DF_MOUNT_SECRET) {
        rc = MERR(c, "RUN --mount: env= is only for secret mounts, not %s", tn);
        goto out;
    }
    if (m->id != NULL && (m->type == LC_DF_MOUNT_BIND || m->type == LC_DF_MOUNT_TMPFS)) {
        rc = MERR(c, "RUN --mount: id= is not an option of %s mounts", tn);
        goto out;
    }
    if (m->from != NULL && (m->type == LC_DF_MOUNT_TMPFS || m->type == LC_DF_MOUNT_SECRET ||
                            m->type == LC_DF_MOUNT_SSH)) {
        rc = MERR(c, "RUN --mount: %s mount should not have a from", tn);
        goto out;
    }
    if (m->from != NULL && m->from[0] == '\0') {
        rc = MERR(c, "RUN --mount: from= needs a stage or an image");
        goto out;
    }
    if (ro_auto)
        m->readonly = !(m->type == LC_DF_MOUNT_CACHE || m->type == LC_DF_MOUNT_TMPFS);
    if (!m->readonly && (m->type == LC_DF_MOUNT_SECRET || m->type == LC_DF_MOUNT_SSH)) {
        /* BuildKit accepts and ignores it; nothing here is ignored. */
        rc = MERR(c, "RUN --mount: rw is not supported for %s mounts (they are read-only)", tn);
        goto out;
    }
    /* A secret or agent that was not given is an error unless required=false
     * (issue 12; BuildKit's default is the opposite: silently absent). */
    if (!has_required && (m->type == LC_DF_MOUNT_SECRET || m->type == LC_DF_MOUNT_SSH))
        m->required = true;

    switch (m->type) {
    case LC_DF_MOUNT_SECRET:
        if (has_source && m->id != NULL) {
            rc = MERR(c, "RUN --mount: both source and id can't be set");
            goto out;
        }
        if (has_source) {
            m->id = source;
            source = NULL;
        }
        if ((m->id == NULL || m->id[0] == '\0') && (target == NULL || target[0] == '\0')) {
            rc = MERR(c, "RUN --mount: invalid secret mount: one of id, source, target required");
            goto out;
        }
        if (m->id == NULL || m->id[0] == '\0') {
            char *t = clean_source(target);
            if (t == NULL || set_str(&m->id, base_name(t)) < 0) {
                free(t);
                rc = OOM(c->err);
                goto out;
            }
            free(t);
        }
        if ((target == NULL || target[0] == '\0') && m->env == NULL) {
            free(target);
            target = malloc(strlen(m->id) + 14);
            if (target == NULL) {
                rc = OOM(c->err);
                goto out;
            }
            sprintf(target, "/run/secrets/%s", base_name(m->id));
        }
        if (m->env != NULL && m->env[0] == '\0') {
            /* env= with no name: the id, as BuildKit does */
            if (set_str(&m->env, m->id) < 0) {
                rc = OOM(c->err);
                goto out;
            }
        }
        break;
    case LC_DF_MOUNT_SSH:
        if (has_source) {
            rc = MERR(c, "RUN --mount: ssh does not support source");
            goto out;
        }
        if ((m->id == NULL || m->id[0] == '\0') && set_str(&m->id, "default") < 0) {
            rc = OOM(c->err);
            goto out;
        }
        if (target == NULL || target[0] == '\0') {
            free(target);
            target = malloc(48);
            if (target == NULL) {
                rc = OOM(c->err);
                goto out;
            }
            snprintf(target, 48, "/run/buildkit/ssh_agent.%zu", c->ssh_index);
        }
        break;
    default:
        if (target == NULL || target[0] == '\0') {
            rc = MERR(c, "RUN --mount: %s mount needs a target", tn);
            goto out;
        }
        break;
    }

    if (target != NULL) {
        m->target = lc_df_workdir_join(c->workdir ? c->workdir : "/", target);
        if (m->target == NULL) {
            rc = OOM(c->err);
            goto out;
        }
        if (strcmp(m->target, "/") == 0) {
            rc = MERR(c, "RUN --mount: invalid mount target \"%s\"", target);
            goto out;
        }
    }
    if (m->type == LC_DF_MOUNT_BIND || m->type == LC_DF_MOUNT_CACHE) {
        m->source = clean_source(source ? source : "");
        if (m->source == NULL) {
            rc = OOM(c->err);
            goto out;
        }
    } else if (has_source && m->type == LC_DF_MOUNT_TMPFS) {
        rc = MERR(c, "RUN --mount: source= is not an option of tmpfs mounts");
        goto out;
    }
    if (m->type == LC_DF_MOUNT_CACHE && (m->id == NULL || m->id[0] == '\0') &&
        set_str(&m->id, m->target) < 0) {
        rc = OOM(c->err);
        goto out;
    }
out:
    free(target);
    free(source);
    if (rc != 0)
        mount_clear(m);
    return rc;
}

int lc_df_run_parse(const lc_df_step *st, lc_df_run *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    const lc_df_flag *fl = st->flags ? st->flags : st->instr->flags;
    size_t nf = st->flags ? st->nflags : st->instr->nflags;
    size_t nm = 0;
    for (size_t i = 0; i < nf; i++)
        if (strcmp(fl[i].name, "mount") == 0)
            nm++;
    out->mounts = calloc(nm ? nm : 1, sizeof(*out->mounts));
    if (out->mounts == NULL)
        return OOM(err);
    size_t ssh = 0;
    int rc = 0;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        const lc_df_flag *f = &fl[i];
        if (strcmp(f->name, "mount") == 0) {
            mount_ctx c = {.flag = f, .workdir = st->workdir, .ssh_index = ssh, .err = err};
            rc = parse_one(&c, &out->mounts[out->nmounts]);
            if (rc == 0 && out->mounts[out->nmounts++].type == LC_DF_MOUNT_SSH)
                ssh++;
        } else if (strcmp(f->name, "network") == 0) {
            int n = lc_df_network_parse(f->value);
            if (n < 0)
                rc = lc_df__errat(err, LC_INVALID_ARGUMENT, &f->pos,
                                  "RUN --network: invalid network mode \"%s\" (default, none or "
                                  "host)",
                                  f->value ? f->value : "");
            out->network = n == LC_DF_NET_DEFAULT ? LC_DF_NET_UNSET : (enum lc_df_network)n;
            out->network_pos = f->pos;
        } else if (strcmp(f->name, "security") == 0) {
            if (f->value && strcmp(f->value, "insecure") == 0)
                rc = lc_df__errat(err, LC_UNIMPLEMENTED, &f->pos,
                                  "RUN --security=insecure is not supported: layercache runs "
                                  "every step sandboxed (there is no security.insecure "
                                  "entitlement)");
            else if (f->value == NULL || strcmp(f->value, "sandbox") != 0)
                rc = lc_df__errat(err, LC_INVALID_ARGUMENT, &f->pos,
                                  "RUN --security: \"%s\" is not valid (sandbox)",
                                  f->value ? f->value : "");
        }
    }
    /* Two mounts on one target: the second would hide the first. */
    for (size_t i = 0; i < out->nmounts && rc == 0; i++)
        for (size_t j = 0; j < i && rc == 0; j++)
            if (out->mounts[i].target && out->mounts[j].target &&
                strcmp(out->mounts[i].target, out->mounts[j].target) == 0)
                rc = lc_df__errat(err, LC_INVALID_ARGUMENT, &out->mounts[i].pos,
                                  "RUN --mount: target %s is already mounted by an earlier "
                                  "--mount",
                                  out->mounts[i].target);
    if (rc != 0)
        lc_df_run_clear(out);
    return rc;
}
