/* flags.c - see flags.h. */
#include "flags.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

static int parse_int(const char *s, int64_t *out, lc_err *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "'%s' is not an integer", s);
    *out = v;
    return 0;
}

/* Parses a number followed by an optional unit from units (multipliers in mult). */
static int parse_scaled(const char *s, const char *units, const int64_t *mult, const char *what,
                        int64_t *out, lc_err *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "'%s' is not a valid %s", s, what);
    int64_t m = 1;
    if (*end != '\0') {
        const char *u = strchr(units, tolower((unsigned char)*end));
        /* Accept an optional trailing 'b'/"ib" for sizes: 10GB, 10GiB. */
        const char *rest = end + 1;
        if (strcmp(what, "size") == 0 &&
            (strcasecmp(rest, "b") == 0 || strcasecmp(rest, "ib") == 0))
            rest += strlen(rest);
        if (u == NULL || *u == '\0' || *rest != '\0')
            return lc_err_set(err, LC_INVALID_ARGUMENT, "'%s' is not a valid %s (units: %s)", s,
                              what, units);
        m = mult[u - units];
    }
    if (v > INT64_MAX / m)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s '%s' is too large", what, s);
    *out = v * m;
    return 0;
}

int lc_parse_size(const char *s, int64_t *out, lc_err *err)
{
    static const int64_t mult[] = {1, 1LL << 10, 1LL << 20, 1LL << 30, 1LL << 40};
    return parse_scaled(s, "bkmgt", mult, "size", out, err);
}

int lc_parse_duration(const char *s, int64_t *out, lc_err *err)
{
    static const int64_t mult[] = {1, 60, 3600, 86400, 7 * 86400};
    return parse_scaled(s, "smhdw", mult, "duration", out, err);
}

static int parse_bool(const char *s, bool *out, lc_err *err)
{
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0) {
        *out = false;
        return 0;
    }
    return lc_err_set(err, LC_INVALID_ARGUMENT, "'%s' is not true or false", s);
}

static int flag_set(const lc_flag *f, const char *value, bool from_env, lc_err *err)
{
    int rc = 0;
    switch (f->type) {
    case LC_FLAG_STRING: {
        char **target = f->target;
        char *copy = strdup(value);
        if (copy == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        free(*target);
        *target = copy;
        break;
    }
    case LC_FLAG_INT:
        rc = parse_int(value, f->target, err);
        break;
    case LC_FLAG_SIZE:
        rc = lc_parse_size(value, f->target, err);
        break;
    case LC_FLAG_DURATION:
        rc = lc_parse_duration(value, f->target, err);
        break;
    case LC_FLAG_BOOL:
        rc = parse_bool(value, f->target, err);
        break;
    case LC_FLAG_LIST: {
        lc_strlist *l = f->target;
        if (!from_env)
            return lc_strlist_push(l, value)
                       ? lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory")
                       : 0;
        /* From the environment: comma-separated values. */
        char *copy = strdup(value), *save = NULL;
        if (copy == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
            if (*tok != '\0' && lc_strlist_push(l, tok) != 0)
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        free(copy);
        break;
    }
    case LC_FLAG_INCLUDE:
        break; /* flattened away before values are set */
    }
    return rc;
}

static void env_name(const char *prefix, const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (const char *p = prefix; *p && i + 1 < cap; p++)
        out[i++] = *p;
    for (const char *p = name; *p && i + 1 < cap; p++)
        out[i++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[i] = '\0';
}

/* The leaf flags of a table, included groups expanded in place. */
typedef struct flat {
    const lc_flag *f[LC_FLAGS_MAX];
    size_t n;
    bool overflow;
} flat;

static void flatten(const lc_flag *flags, size_t n, flat *out)
{
    for (size_t i = 0; i < n; i++) {
        if (flags[i].type == LC_FLAG_INCLUDE) {
            const lc_flag_group *g = flags[i].target;
            flatten(g->flags, g->n, out);
        } else if (out->n < LC_FLAGS_MAX) {
            out->f[out->n++] = &flags[i];
        } else {
            out->overflow = true;
        }
    }
}

static const lc_flag *find_long(const flat *fl, const char *name, size_t len)
{
    for (size_t i = 0; i < fl->n; i++)
        if (strlen(fl->f[i]->name) == len && strncmp(fl->f[i]->name, name, len) == 0)
            return fl->f[i];
    return NULL;
}

static const lc_flag *find_short(const flat *fl, char c)
{
    for (size_t i = 0; i < fl->n; i++)
        if (fl->f[i]->short_name == c)
            return fl->f[i];
    return NULL;
}

/* Groups make a clash easy to miss in review: a later duplicate would
 * silently never be set. */
static int check_unique(const flat *fl, lc_err *err)
{
    if (fl->overflow)
        return lc_err_set(err, LC_INTERNAL, "more than %d flags", LC_FLAGS_MAX);
    for (size_t i = 0; i < fl->n; i++)
        for (size_t j = i + 1; j < fl->n; j++) {
            if (strcmp(fl->f[i]->name, fl->f[j]->name) == 0)
                return lc_err_set(err, LC_INTERNAL, "flag --%s is declared twice", fl->f[i]->name);
            if (fl->f[i]->short_name != 0 && fl->f[i]->short_name == fl->f[j]->short_name)
                return lc_err_set(err, LC_INTERNAL, "flag -%c is declared twice",
                                  fl->f[i]->short_name);
        }
    return 0;
}

/* One of the words of "a|b|c". */
static bool is_metavar_word(const char *metavar, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = metavar; p != NULL && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && n > 0 && strncmp(p, word, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

int lc_flags_parse(const lc_flag *flags, size_t n, const char *env_prefix, int argc, char **argv,
                   int first, lc_strlist *positional, lc_err *err)
{
    flat fl = {.n = 0};
    flatten(flags, n, &fl);
    int crc = check_unique(&fl, err);
    if (crc < 0)
        return crc;
    for (size_t i = 0; i < fl.n; i++) {
        const lc_flag *f = fl.f[i];
        if (f->def != NULL && f->type != LC_FLAG_LIST) {
            int rc = flag_set(f, f->def, false, err);
            if (rc < 0)
                return rc;
        }
        if (f->no_env || env_prefix == NULL)
            continue;
        char name[128];
        env_name(env_prefix, f->name, name, sizeof(name));
        const char *v = getenv(name);
        if (v != NULL && *v != '\0') {
            int rc = flag_set(f, v, true, err);
            if (rc < 0) {
                lc_err_prefix(err, "environment variable %s", name);
                return rc;
            }
        }
    }
    bool only_positional = false;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        const lc_flag *f = NULL;
        const char *value = NULL;
        char shown[128];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (positional == NULL)
                return lc_err_set(err, LC_INVALID_ARGUMENT, "unexpected argument '%s'", arg);
            if (lc_strlist_push(positional, arg) != 0)
                return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return LC_FLAGS_HELP;
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            f = find_long(&fl, name, len);
            if (eq != NULL)
                value = eq + 1;
            snprintf(shown, sizeof(shown), "--%.*s", (int)len, name);
        } else {
            f = arg[2] == '\0' ? find_short(&fl, arg[1]) : NULL;
            snprintf(shown, sizeof(shown), "%s", arg);
            if (f == NULL && arg[2] != '\0') {
                /* -fFILE form */
                f = find_short(&fl, arg[1]);
                if (f != NULL && f->type != LC_FLAG_BOOL)
                    value = arg + 2;
                else
                    f = NULL;
            }
        }
        if (f == NULL)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "unknown flag '%s' (see --help)", shown);
        if (value == NULL) {
            if (f->type == LC_FLAG_BOOL) {
                value = "true";
            } else if (f->bare != NULL) {
                value = f->bare;
                if (i + 1 < argc && is_metavar_word(f->metavar, argv[i + 1]))
                    value = argv[++i];
            } else {
                if (i + 1 >= argc)
                    return lc_err_set(err, LC_INVALID_ARGUMENT, "flag %s needs a value (%s)", shown,
                                      f->metavar ? f->metavar : "VALUE");
                value = argv[++i];
            }
        }
        int rc = flag_set(f, value, false, err);
        if (rc < 0) {
            lc_err_prefix(err, "flag %s", shown);
            return rc;
        }
    }
    return 0;
}

void lc_flags_usage(FILE *out, const char *usage, const lc_flag *flags, size_t n,
                    const char *env_prefix)
{
    flat fl = {.n = 0};
    flatten(flags, n, &fl);
    fprintf(out, "%s\n\nOptions:\n", usage);
    for (size_t i = 0; i < fl.n; i++) {
        const lc_flag *f = fl.f[i];
        char head[160];
        int len = 0;
        if (f->short_name)
            len = snprintf(head, sizeof(head), "  -%c, --%s", f->short_name, f->name);
        else
            len = snprintf(head, sizeof(head), "      --%s", f->name);
        if (f->type != LC_FLAG_BOOL && len > 0 && (size_t)len < sizeof(head))
            snprintf(head + len, sizeof(head) - (size_t)len, f->bare ? "[=%s]" : " %s",
                     f->metavar ? f->metavar : "VALUE");
        fprintf(out, "%s\n      %s", head, f->help);
        if (f->def != NULL && *f->def != '\0')
            fprintf(out, " (default: %s)", f->def);
        if (f->type == LC_FLAG_LIST)
            fprintf(out, " (repeatable)");
        if (!f->no_env && env_prefix != NULL) {
            char name[128];
            env_name(env_prefix, f->name, name, sizeof(name));
            fprintf(out, " [env %s]", name);
        }
        fputc('\n', out);
    }
    fprintf(out, "  -h, --help\n      Show this help and exit.\n");
}

void lc_flags_free(const lc_flag *flags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (flags[i].type == LC_FLAG_STRING) {
            char **target = flags[i].target;
            free(*target);
            *target = NULL;
        } else if (flags[i].type == LC_FLAG_LIST) {
            lc_strlist_clear(flags[i].target);
        } else if (flags[i].type == LC_FLAG_INCLUDE) {
            const lc_flag_group *g = flags[i].target;
            lc_flags_free(g->flags, g->n);
        }
    }
}
