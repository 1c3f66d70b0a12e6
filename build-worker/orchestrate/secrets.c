/* secrets.c - --secret and --ssh (see secrets.h). */
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct secret {
    char *id;
    char *file; /* one of file, env */
    char *env;
} secret;

typedef struct agent {
    char *id;
    char *socket;
} agent;

struct lc_secrets {
    secret *s;
    size_t ns;
    agent *a;
    size_t na;
};

void lc_secrets_free(lc_secrets **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    lc_secrets *s = *sp;
    for (size_t i = 0; i < s->ns; i++) {
        free(s->s[i].id);
        free(s->s[i].file);
        free(s->s[i].env);
    }
    for (size_t i = 0; i < s->na; i++) {
        free(s->a[i].id);
        free(s->a[i].socket);
    }
    free(s->s);
    free(s->a);
    free(s);
    *sp = NULL;
}

static int set(char **slot, const char *v, size_t n)
{
    free(*slot);
    *slot = strndup(v, n);
    return *slot ? 0 : -1;
}

/* One --secret value (buildx util/buildflags/secrets.go). */
static int parse_secret(const char *spec, secret *out, lc_err *err)
{
    char *type = NULL;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    for (const char *p = spec; *p && rc == 0;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq == NULL) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                            "--secret '%s': invalid field '%.*s' must be a key=value pair", spec,
                            (int)n, p);
            break;
        }
        size_t kn = (size_t)(eq - p), vn = n - kn - 1;
        const char *v = eq + 1;
        int r = 0;
        if (kn == 4 && strncasecmp(p, "type", 4) == 0) {
            if (!(vn == 4 && strncmp(v, "file", 4) == 0) && !(vn == 3 && strncmp(v, "env", 3) == 0))
                rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                                "--secret '%s': unsupported secret type \"%.*s\" (file or env)",
                                spec, (int)vn, v);
            else
                r = set(&type, v, vn);
        } else if (kn == 2 && strncasecmp(p, "id", 2) == 0) {
            r = set(&out->id, v, vn);
        } else if ((kn == 3 && strncasecmp(p, "src", 3) == 0) ||
                   (kn == 6 && strncasecmp(p, "source", 6) == 0)) {
            r = set(&out->file, v, vn);
        } else if (kn == 3 && strncasecmp(p, "env", 3) == 0) {
            r = set(&out->env, v, vn);
        } else {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                            "--secret '%s': unexpected key '%.*s' (id, src, env, type)", spec,
                            (int)kn, p);
        }
        if (r < 0)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        p = end ? end + 1 : p + n;
    }
    if (rc == 0 && type != NULL && strcmp(type, "env") == 0 && out->env == NULL) {
        out->env = out->file; /* type=env,src=VAR */
        out->file = NULL;
    }
    if (rc == 0 && (out->id == NULL || out->id[0] == '\0'))
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--secret '%s': missing id=", spec);
    if (rc == 0 && out->env != NULL && out->file != NULL)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--secret '%s': give src= or env=, not both",
                        spec);
    if (rc == 0 && out->env == NULL && out->file == NULL) {
        /* buildx: the variable named like the id if set, else the file. */
        if (getenv(out->id) != NULL)
            rc = set(&out->env, out->id, strlen(out->id));
        else
            rc = set(&out->file, out->id, strlen(out->id));
        if (rc < 0)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (rc == 0 && out->file != NULL) {
        struct stat st;
        if (stat(out->file, &st) < 0)
            rc = lc_err_set(err, lc_code_from_errno(errno), "--secret id=%s: %s: %s", out->id,
                            out->file, strerror(errno));
        else if (!S_ISREG(st.st_mode))
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--secret id=%s: %s is not a file", out->id,
                            out->file);
        else if (st.st_size > LC_SECRET_MAX_SIZE)
            rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                            "--secret id=%s: %s is too big (%lld bytes; at most %d)", out->id,
                            out->file, (long long)st.st_size, LC_SECRET_MAX_SIZE);
    }
    free(type);
    if (rc < 0) {
        free(out->id);
        free(out->file);
        free(out->env);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* One --ssh value: "default", "ID" (both $SSH_AUTH_SOCK) or "ID=SOCKET". */
static int parse_ssh(const char *spec, agent *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *eq = strchr(spec, '=');
    size_t idn = eq ? (size_t)(eq - spec) : strlen(spec);
    const char *path = eq ? eq + 1 : getenv("SSH_AUTH_SOCK");
    if (idn == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--ssh '%s': missing the id", spec);
    if (path == NULL || path[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--ssh '%s': no agent socket: SSH_AUTH_SOCK is not set (or give "
                          "ID=SOCKET)",
                          spec);
    if (strchr(path, ',') != NULL)
        return lc_err_set(err, LC_UNIMPLEMENTED,
                          "--ssh '%s': one agent socket per id is supported, not a list", spec);
    struct stat st;
    if (stat(path, &st) < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "--ssh '%s': %s: %s", spec, path,
                          strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return lc_err_set(err, LC_UNIMPLEMENTED,
                          "--ssh '%s': %s is not a unix socket (private key files are not "
                          "supported: add the key to an ssh-agent and pass its socket)",
                          spec, path);
    out->id = strndup(spec, idn);
    out->socket = strdup(path);
    if (out->id == NULL || out->socket == NULL) {
        free(out->id);
        free(out->socket);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

int lc_secrets_open(const lc_strlist *secrets, const lc_strlist *ssh, lc_secrets **out, lc_err *err)
{
    *out = NULL;
    size_t ns = secrets ? secrets->len : 0, na = ssh ? ssh->len : 0;
    lc_secrets *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->s = calloc(ns + 1, sizeof(*s->s))) == NULL ||
        (s->a = calloc(na + 1, sizeof(*s->a))) == NULL) {
        lc_secrets_free(&s);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < ns && rc == 0; i++) {
        secret one;
        if ((rc = parse_secret(secrets->items[i], &one, err)) < 0)
            break;
        /* A later --secret with the same id replaces the earlier (buildx). */
        size_t k = 0;
        while (k < s->ns && strcmp(s->s[k].id, one.id) != 0)
            k++;
        if (k < s->ns) {
            free(s->s[k].id);
            free(s->s[k].file);
            free(s->s[k].env);
        } else {
            s->ns++;
        }
        s->s[k] = one;
    }
    for (size_t i = 0; i < na && rc == 0; i++) {
        agent one;
        if ((rc = parse_ssh(ssh->items[i], &one, err)) < 0)
            break;
        size_t k = 0;
        while (k < s->na && strcmp(s->a[k].id, one.id) != 0)
            k++;
        if (k < s->na) {
            free(s->a[k].id);
            free(s->a[k].socket);
        } else {
            s->na++;
        }
        s->a[k] = one;
    }
    if (rc < 0) {
        lc_secrets_free(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void lc_secrets_wipe(char **data, size_t len)
{
    if (data == NULL || *data == NULL)
        return;
    explicit_bzero(*data, len);
    free(*data);
    *data = NULL;
}

int lc_secrets_get(const lc_secrets *s, const char *id, char **data, size_t *len, bool *found,
                   lc_err *err)
{
    *data = NULL;
    *len = 0;
    *found = false;
    const secret *sc = NULL;
    for (size_t i = 0; s != NULL && i < s->ns && sc == NULL; i++)
        if (strcmp(s->s[i].id, id) == 0)
            sc = &s->s[i];
    if (sc == NULL)
        return 0;
    *found = true;
    if (sc->env != NULL) {
        const char *v = getenv(sc->env);
        *len = v ? strlen(v) : 0;
        *data = malloc(*len + 1);
        if (*data == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        memcpy(*data, v ? v : "", *len + 1);
        return 0;
    }
    int fd = open(sc->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "secret %s: %s: %s", id, sc->file,
                          strerror(errno));
    char *buf = malloc(LC_SECRET_MAX_SIZE + 1);
    size_t n = 0;
    int rc = 0;
    if (buf == NULL)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    while (rc == 0) {
        ssize_t r = read(fd, buf + n, LC_SECRET_MAX_SIZE + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = lc_err_set(err, lc_code_from_errno(errno), "secret %s: %s: %s", id, sc->file,
                            strerror(errno));
        else if (r == 0)
            break;
        else if ((n += (size_t)r) > LC_SECRET_MAX_SIZE)
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "secret %s: %s is larger than %d bytes", id,
                            sc->file, LC_SECRET_MAX_SIZE);
    }
    close(fd);
    if (rc < 0) {
        lc_secrets_wipe(&buf, n < LC_SECRET_MAX_SIZE + 1 ? n : LC_SECRET_MAX_SIZE + 1);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

const char *lc_secrets_ssh(const lc_secrets *s, const char *id)
{
    for (size_t i = 0; s != NULL && i < s->na; i++)
        if (strcmp(s->a[i].id, id) == 0)
            return s->a[i].socket;
    return NULL;
}
