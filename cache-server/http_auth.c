/* http_auth.c - see http_auth.h. */
#include "http_auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "digest.h"

#define ID_LEN 32

typedef struct session {
    uint8_t id_hash[LC_HASH_LEN];    /* SHA-256 of the cookie's bytes */
    uint8_t token_hash[LC_HASH_LEN]; /* SHA-256 of the token it logged in with */
    int64_t expires;                 /* 0 = free slot */
} session;

struct lc_http_auth {
    lc_auth *auth;
    session *v; /* LC_HTTP_SESSIONS_MAX slots */
};

lc_http_auth *lc_http_auth_new(lc_auth *auth)
{
    lc_http_auth *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->auth = auth;
    if (auth != NULL && (h->v = calloc(LC_HTTP_SESSIONS_MAX, sizeof(*h->v))) == NULL) {
        free(h);
        return NULL;
    }
    return h;
}

void lc_http_auth_free(lc_http_auth **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    lc_http_auth *h = *hp;
    if (h->v != NULL)
        OPENSSL_cleanse(h->v, LC_HTTP_SESSIONS_MAX * sizeof(*h->v));
    free(h->v);
    free(h);
    *hp = NULL;
}

bool lc_http_auth_required(const lc_http_auth *h)
{
    return h != NULL && h->auth != NULL;
}

size_t lc_http_auth_sessions(const lc_http_auth *h)
{
    size_t n = 0;
    for (size_t i = 0; h->v != NULL && i < LC_HTTP_SESSIONS_MAX; i++)
        n += h->v[i].expires != 0;
    return n;
}

/* ---- origins and hosts -------------------------------------------------------- */

/* host without its ":port" into out. */
static void host_name(const char *host, char *out, size_t cap)
{
    size_t n = strlen(host);
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        n = rb != NULL ? (size_t)(rb - host) + 1 : n;
    } else {
        const char *colon = strrchr(host, ':');
        if (colon != NULL)
            n = (size_t)(colon - host);
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, host, n);
    out[n] = '\0';
}

bool lc_http_auth_loopback_host(const char *host)
{
    char name[LC_HTTP_HOST_MAX + 1];
    host_name(host, name, sizeof(name));
    if (strcasecmp(name, "localhost") == 0 || strcmp(name, "[::1]") == 0)
        return true;
    unsigned a, b, c, d;
    char extra;
    return sscanf(name, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

bool lc_http_auth_same_origin(const lc_http_request *req)
{
    if (req->origin_bad)
        return false;
    if (req->fetch_site[0] != '\0' && strcmp(req->fetch_site, "same-origin") != 0 &&
        strcmp(req->fetch_site, "none") != 0)
        return false;
    if (req->origin[0] == '\0')
        return true; /* not sent by a page (curl), or a same-origin GET */
    const char *rest = NULL;
    if (strncasecmp(req->origin, "http://", 7) == 0)
        rest = req->origin + 7;
    else if (strncasecmp(req->origin, "https://", 8) == 0)
        rest = req->origin + 8;
    return rest != NULL && req->host[0] != '\0' && strcasecmp(rest, req->host) == 0;
}

/* ---- tokens and sessions ------------------------------------------------------ */

/* "Bearer <token>": 1 with the token, 0 when absent, -1 malformed. */
static int bearer(const lc_http_request *req, const char **tok, size_t *len)
{
    if (req->authorization_bad)
        return -1;
    const char *v = req->authorization;
    if (v[0] == '\0')
        return 0;
    size_t n = strlen(v);
    if (n < 8 || strncasecmp(v, "bearer ", 7) != 0)
        return -1;
    size_t s = 7;
    while (s < n && (v[s] == ' ' || v[s] == '\t'))
        s++;
    if (s == n)
        return -1;
    *tok = v + s;
    *len = n - s;
    return 1;
}

static session *find_session(lc_http_auth *h, const lc_http_request *req, int64_t now)
{
    if (h->v == NULL || req->session_bad || strlen(req->session) != 2 * ID_LEN)
        return NULL;
    lc_digest d;
    lc_digest_of(req->session, strlen(req->session), &d);
    session *found = NULL;
    for (size_t i = 0; i < LC_HTTP_SESSIONS_MAX; i++) {
        session *s = &h->v[i];
        if (s->expires != 0 && s->expires <= now)
            memset(s, 0, sizeof(*s)); /* expired */
        if (s->expires != 0 && CRYPTO_memcmp(s->id_hash, d.hash, LC_HASH_LEN) == 0)
            found = s;
    }
    OPENSSL_cleanse(&d, sizeof(d));
    return found;
}

int lc_http_auth_identify(lc_http_auth *h, const lc_http_request *req, int64_t now, lc_auth_id *id,
                          lc_err *err)
{
    memset(id, 0, sizeof(*id));
    if (h->auth == NULL) {
        id->role = LC_ROLE_ADMIN;
        return 1;
    }
    const char *tok = NULL;
    size_t len = 0;
    int b = bearer(req, &tok, &len);
    if (b < 0)
        return lc_err_set(err, LC_UNAUTHENTICATED,
                          "the Authorization header is not 'Bearer <token>'");
    if (b > 0) {
        int rc = lc_auth_lookup(h->auth, tok, len, id, NULL, err);
        return rc < 0 ? rc : 1;
    }
    session *s = find_session(h, req, now);
    if (s != NULL) {
        if (lc_auth_lookup_hash(h->auth, s->token_hash, id, NULL) == 0)
            return 1;
        memset(s, 0, sizeof(*s)); /* its token was removed: the session ends */
    }
    memset(id, 0, sizeof(*id));
    id->role = lc_auth_anonymous_read(h->auth) ? LC_ROLE_READ : LC_ROLE_NONE;
    return 0;
}

static void clear_cookie(char *cookie, size_t cap)
{
    snprintf(cookie, cap,
             "Set-Cookie: " LC_HTTP_SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; "
             "Max-Age=0\r\n");
}

int lc_http_auth_login(lc_http_auth *h, const lc_http_request *req, int64_t now, lc_auth_id *id,
                       char *cookie, size_t cap, lc_err *err)
{
    memset(id, 0, sizeof(*id));
    cookie[0] = '\0';
    if (h->auth == NULL)
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "this server has no tokens (--tokens): every page is open, there is "
                          "nothing to log in to");
    if (!lc_http_auth_same_origin(req))
        return lc_err_set(err, LC_PERMISSION_DENIED,
                          "login refused: the request comes from another site's page");
    const char *tok = NULL;
    size_t len = 0;
    int b = bearer(req, &tok, &len);
    if (b <= 0)
        return lc_err_set(err, LC_UNAUTHENTICATED,
                          "send the token as 'Authorization: Bearer <token>'");
    uint8_t token_hash[LC_HASH_LEN];
    int rc = lc_auth_lookup(h->auth, tok, len, id, token_hash, err);
    if (rc < 0) {
        OPENSSL_cleanse(token_hash, sizeof(token_hash));
        return rc;
    }
    uint8_t raw[ID_LEN];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        OPENSSL_cleanse(token_hash, sizeof(token_hash));
        return lc_err_set(err, LC_UNAVAILABLE, "no randomness for a session id");
    }
    char hex[2 * ID_LEN + 1];
    for (size_t i = 0; i < ID_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    /* A free (or expired) slot, else the one closest to expiry. */
    session *slot = &h->v[0];
    for (size_t i = 0; i < LC_HTTP_SESSIONS_MAX; i++) {
        session *s = &h->v[i];
        if (s->expires <= now) {
            slot = s;
            break;
        }
        if (s->expires < slot->expires)
            slot = s;
    }
    lc_digest d;
    lc_digest_of(hex, 2 * ID_LEN, &d);
    memcpy(slot->id_hash, d.hash, LC_HASH_LEN);
    memcpy(slot->token_hash, token_hash, LC_HASH_LEN);
    slot->expires = now + LC_HTTP_SESSION_TTL;
    snprintf(cookie, cap,
             "Set-Cookie: " LC_HTTP_SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; "
             "Max-Age=%d\r\n",
             hex, LC_HTTP_SESSION_TTL);
    OPENSSL_cleanse(&d, sizeof(d));
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    OPENSSL_cleanse(token_hash, sizeof(token_hash));
    return 0;
}

int lc_http_auth_logout(lc_http_auth *h, const lc_http_request *req, char *cookie, size_t cap,
                        lc_err *err)
{
    cookie[0] = '\0';
    if (!lc_http_auth_same_origin(req))
        return lc_err_set(err, LC_PERMISSION_DENIED,
                          "logout refused: the request comes from another site's page");
    session *s = find_session(h, req, 0);
    if (s != NULL)
        memset(s, 0, sizeof(*s));
    clear_cookie(cookie, cap);
    return 0;
}
