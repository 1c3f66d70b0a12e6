/* auth.c - WWW-Authenticate parsing and Docker config.json credentials (see
 * auth.h). */
#include "build-worker/registry/auth.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct lc_regauth {
    char source[PATH_MAX];
    json_t *auths; /* the "auths" object, or NULL */
};

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    return p;
}

/* Copies a token or quoted-string value into buf; returns the end. */
static const char *read_value(const char *p, char *buf, size_t cap, bool *ok)
{
    size_t n = 0;
    *ok = true;
    if (*p == '"') {
        p++;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1])
                p++;
            if (n + 1 < cap)
                buf[n++] = *p;
            else
                *ok = false;
            p++;
        }
        if (*p != '"')
            *ok = false;
        else
            p++;
    } else {
        while (*p && *p != ',' && *p != ' ' && *p != '\t') {
            if (n + 1 < cap)
                buf[n++] = *p;
            else
                *ok = false;
            p++;
        }
    }
    buf[n] = '\0';
    return p;
}

int lc_regauth_parse_challenge(const char *header, lc_regauth_challenge *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = skip_ws(header);
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '_')
        n++;
    if (n == 0 || n >= sizeof(out->scheme))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "WWW-Authenticate '%.80s': no scheme", header);
    memcpy(out->scheme, p, n);
    p += n;
    if (*p && *p != ' ' && *p != '\t')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "WWW-Authenticate '%.80s': bad scheme", header);
    for (;;) {
        p = skip_ws(p);
        if (*p == '\0')
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != ',')
            p++;
        size_t kn = (size_t)(p - k);
        if (*p != '=') {
            /* A new scheme starts (several challenges in one header): stop. */
            break;
        }
        p++;
        char value[1024];
        bool ok;
        p = read_value(p, value, sizeof(value), &ok);
        if (!ok)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "WWW-Authenticate '%.80s': bad or too long value of '%.*s'", header,
                              (int)kn, k);
        char *dst = NULL;
        size_t cap = 0;
        if (kn == 5 && strncasecmp(k, "realm", 5) == 0)
            dst = out->realm, cap = sizeof(out->realm);
        else if (kn == 7 && strncasecmp(k, "service", 7) == 0)
            dst = out->service, cap = sizeof(out->service);
        else if (kn == 5 && strncasecmp(k, "scope", 5) == 0)
            dst = out->scope, cap = sizeof(out->scope);
        else if (kn == 5 && strncasecmp(k, "error", 5) == 0)
            dst = out->error, cap = sizeof(out->error);
        if (dst != NULL && snprintf(dst, cap, "%s", value) >= (int)cap)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "WWW-Authenticate: '%.*s' too long",
                              (int)kn, k);
    }
    if (strcasecmp(out->scheme, "Bearer") == 0 && out->realm[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "WWW-Authenticate '%.80s': Bearer challenge without realm", header);
    return 0;
}

int lc_regauth_load(const char *path, lc_regauth **out, lc_err *err)
{
    lc_regauth *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    const char *dc = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
    if (path != NULL)
        snprintf(a->source, sizeof(a->source), "%s", path);
    else if (dc != NULL && *dc)
        snprintf(a->source, sizeof(a->source), "%s/config.json", dc);
    else
        snprintf(a->source, sizeof(a->source), "%s/.docker/config.json", home ? home : "");
    if (path == NULL && access(a->source, F_OK) != 0) {
        *out = a; /* no default file: anonymous access only */
        return 0;
    }
    json_error_t je;
    json_t *root = json_load_file(a->source, 0, &je);
    if (root == NULL) {
        int rc = access(a->source, R_OK) != 0
                     ? lc_err_set(err, LC_NOT_FOUND, "registry credentials %s: %s", a->source,
                                  strerror(errno))
                     : lc_err_set(err, LC_INVALID_ARGUMENT, "registry credentials %s:%d: %s",
                                  a->source, je.line, je.text);
        free(a);
        return rc;
    }
    json_t *auths = json_object_get(root, "auths");
    if (json_is_object(auths))
        a->auths = json_incref(auths);
    json_decref(root);
    *out = a;
    return 0;
}

void lc_regauth_free(lc_regauth **a)
{
    if (a == NULL || *a == NULL)
        return;
    json_decref((*a)->auths);
    free(*a);
    *a = NULL;
}

const char *lc_regauth_source(const lc_regauth *a)
{
    return a->source;
}

/* "https://host:port/v1/" -> "host:port" into buf. */
static void key_host(const char *key, char *buf, size_t cap)
{
    const char *p = strstr(key, "://");
    p = p ? p + 3 : key;
    size_t n = strcspn(p, "/");
    snprintf(buf, cap, "%.*s", (int)n, p);
}

static bool hub_alias(const char *host)
{
    return strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0 ||
           strcmp(host, "registry-1.docker.io") == 0;
}

static bool decode_auth(const char *b64, char **user, char **pass)
{
    size_t n = strlen(b64);
    unsigned char *buf = malloc(n / 4 * 3 + 4);
    if (buf == NULL)
        return false;
    int len = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
    if (len < 0) {
        free(buf);
        return false;
    }
    /* EVP_DecodeBlock counts '=' padding as zero bytes. */
    while (n > 0 && b64[n - 1] == '=' && len > 0) {
        n--;
        len--;
    }
    buf[len] = '\0';
    char *colon = strchr((char *)buf, ':');
    bool ok = colon != NULL;
    if (ok) {
        *colon = '\0';
        *user = strdup((char *)buf);
        *pass = strdup(colon + 1);
        ok = *user && *pass;
        if (!ok) {
            free(*user);
            free(*pass);
        }
    }
    OPENSSL_cleanse(buf, (size_t)len);
    free(buf);
    return ok;
}

bool lc_regauth_lookup(const lc_regauth *a, const char *domain, char **user, char **pass)
{
    if (a == NULL || a->auths == NULL)
        return false;
    const char *key;
    json_t *v;
    json_object_foreach(a->auths, key, v)
    {
        char host[512];
        key_host(key, host, sizeof(host));
        if (strcmp(host, domain) != 0 && !(hub_alias(host) && hub_alias(domain)))
            continue;
        const char *b64 = json_string_value(json_object_get(v, "auth"));
        if (b64 != NULL && *b64)
            return decode_auth(b64, user, pass);
        const char *u = json_string_value(json_object_get(v, "username"));
        const char *p = json_string_value(json_object_get(v, "password"));
        if (u != NULL && p != NULL) {
            *user = strdup(u);
            *pass = strdup(p);
            if (*user && *pass)
                return true;
            free(*user);
            free(*pass);
        }
        return false;
    }
    return false;
}

char *lc_regauth_basic_header(const char *user, const char *pass)
{
    size_t n = strlen(user) + 1 + strlen(pass);
    char *plain = malloc(n + 1);
    char *out = malloc(6 + (n + 2) / 3 * 4 + 1);
    if (plain == NULL || out == NULL) {
        free(plain);
        free(out);
        return NULL;
    }
    snprintf(plain, n + 1, "%s:%s", user, pass);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)n);
    OPENSSL_cleanse(plain, n);
    free(plain);
    return out;
}
