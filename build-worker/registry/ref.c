/* ref.c - image reference parsing and Docker normalization (see ref.h). */
#include "build-worker/registry/ref.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Docker's rule for "is the first component a registry host". */
static bool first_is_domain(const char *s, size_t n)
{
    if (n == 9 && strncmp(s, "localhost", 9) == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' || s[i] == ':' || (s[i] >= 'A' && s[i] <= 'Z'))
            return true;
    return false;
}

bool lc_ref_has_domain(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash != NULL && slash > s && first_is_domain(s, (size_t)(slash - s));
}

/* host[:port] with host a DNS name or IPv4 address, or [IPv6][:port]. */
static int check_domain(const char *d, size_t n, lc_err *err)
{
    size_t i = 0;
    if (n > 0 && d[0] == '[') {
        while (i < n && d[i] != ']')
            i++;
        if (i == n)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "registry host '%.*s': unclosed '['",
                              (int)n, d);
        i++;
    } else {
        for (; i < n && d[i] != ':'; i++) {
            unsigned char c = (unsigned char)d[i];
            if (!isalnum(c) && c != '.' && c != '-')
                return lc_err_set(err, LC_INVALID_ARGUMENT,
                                  "registry host '%.*s': character '%c' not allowed", (int)n, d, c);
        }
        if (i == 0 || d[0] == '.' || d[0] == '-')
            return lc_err_set(err, LC_INVALID_ARGUMENT, "registry host '%.*s' is not a host name",
                              (int)n, d);
    }
    if (i < n) {
        if (d[i] != ':' || i + 1 == n)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "registry host '%.*s': bad port", (int)n,
                              d);
        for (size_t k = i + 1; k < n; k++)
            if (!isdigit((unsigned char)d[k]) || n - i - 1 > 5)
                return lc_err_set(err, LC_INVALID_ARGUMENT, "registry host '%.*s': bad port",
                                  (int)n, d);
    }
    return 0;
}

/* One path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*. */
static int check_component(const char *c, size_t n, const char *whole, lc_err *err)
{
    if (n == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "invalid image name '%s': empty path component",
                          whole);
    for (size_t i = 0; i < n; i++)
        if (c[i] >= 'A' && c[i] <= 'Z')
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "invalid image name '%s': repository names must be lower-case",
                              whole);
    if (!is_lower_alnum(c[0]) || !is_lower_alnum(c[n - 1]))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "invalid image name '%s': '%.*s' must start and end with a letter or "
                          "digit",
                          whole, (int)n, c);
    for (size_t i = 0; i < n;) {
        if (is_lower_alnum(c[i])) {
            i++;
            continue;
        }
        size_t k = i;
        while (k < n && !is_lower_alnum(c[k]))
            k++;
        size_t run = k - i;
        bool ok = (run == 1 && (c[i] == '.' || c[i] == '_' || c[i] == '-')) ||
                  (run == 2 && c[i] == '_' && c[i + 1] == '_');
        if (!ok) {
            ok = true;
            for (size_t j = i; j < k; j++)
                ok = ok && c[j] == '-';
        }
        if (!ok)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "invalid image name '%s': separator '%.*s' not allowed", whole,
                              (int)run, c + i);
        i = k;
    }
    return 0;
}

static int check_tag(const char *t, size_t n, const char *whole, lc_err *err)
{
    if (n == 0 || n > 128)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "invalid tag in '%s': 1 to 128 characters",
                          whole);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!isalnum(c) && c != '_' && (i == 0 || (c != '.' && c != '-')))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "invalid tag '%.*s' in '%s': letters, digits, '_', '.', '-' (not "
                              "first)",
                              (int)n, t, whole);
    }
    return 0;
}

static int check_digest(const char *d, const char *whole, lc_err *err)
{
    if (strncmp(d, "sha256:", 7) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "invalid digest in '%s': only sha256:<64 hex digits> is supported",
                          whole);
    size_t n = strlen(d + 7);
    for (size_t i = 0; i < n; i++)
        if (!((d[7 + i] >= '0' && d[7 + i] <= '9') || (d[7 + i] >= 'a' && d[7 + i] <= 'f')))
            n = 0;
    if (n != LC_HASH_HEX_LEN)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "invalid digest in '%s': want sha256: and 64 lower-case hex digits",
                          whole);
    return 0;
}

int lc_ref_parse(const char *s, lc_ref *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(s);
    if (len == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "empty image name");
    if (len > 2 * LC_REF_NAME_MAX)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "image name too long: '%.40s...'", s);
    char name[2 * LC_REF_NAME_MAX + 1];
    memcpy(name, s, len + 1);
    int rc;

    char *at = strchr(name, '@');
    if (at != NULL) {
        *at = '\0';
        if ((rc = check_digest(at + 1, s, err)) < 0)
            return rc;
        snprintf(out->digest, sizeof(out->digest), "%s", at + 1);
    }
    /* A tag is a ':' after the last '/' (a ':' before it is a port). */
    char *slash = strrchr(name, '/');
    char *colon = strchr(slash ? slash : name, ':');
    if (colon != NULL) {
        *colon = '\0';
        if ((rc = check_tag(colon + 1, strlen(colon + 1), s, err)) < 0)
            return rc;
        snprintf(out->tag, sizeof(out->tag), "%s", colon + 1);
    }
    if (name[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "invalid image name '%s': no repository", s);

    const char *path = name;
    slash = strchr(name, '/');
    if (slash != NULL && first_is_domain(name, (size_t)(slash - name))) {
        size_t dn = (size_t)(slash - name);
        if ((rc = check_domain(name, dn, err)) < 0)
            return rc;
        snprintf(out->domain, sizeof(out->domain), "%.*s", (int)dn, name);
        path = slash + 1;
    } else {
        snprintf(out->domain, sizeof(out->domain), "%s", LC_REF_DOCKER_HUB);
    }
    if (strcmp(out->domain, "index.docker.io") == 0)
        snprintf(out->domain, sizeof(out->domain), "%s", LC_REF_DOCKER_HUB);

    for (const char *p = path;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if ((rc = check_component(p, n, s, err)) < 0)
            return rc;
        if (e == NULL)
            break;
        p = e + 1;
    }
    bool hub = strcmp(out->domain, LC_REF_DOCKER_HUB) == 0;
    int n = snprintf(out->path, sizeof(out->path), "%s%s",
                     hub && strchr(path, '/') == NULL ? "library/" : "", path);
    if (n < 0 || (size_t)n >= sizeof(out->path) ||
        strlen(out->domain) + 1 + strlen(out->path) > 255)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "invalid image name '%s': repository name longer than 255", s);
    if (out->tag[0] == '\0' && out->digest[0] == '\0')
        snprintf(out->tag, sizeof(out->tag), "latest");
    return 0;
}

void lc_ref_string(const lc_ref *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s%s%s%s%s", r->domain, r->path, r->tag[0] ? ":" : "", r->tag,
             r->digest[0] ? "@" : "", r->digest);
}

void lc_ref_repository(const lc_ref *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", r->domain, r->path);
}

const char *lc_ref_reference(const lc_ref *r)
{
    return r->digest[0] ? r->digest : r->tag;
}

const char *lc_ref_api_host(const lc_ref *r)
{
    return strcmp(r->domain, LC_REF_DOCKER_HUB) == 0 ? "registry-1.docker.io" : r->domain;
}
