/* client.c - the OCI distribution API over libcurl (see client.h). */
#include "build-worker/registry/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "build-worker/registry/auth.h"

#define MAX_MANIFEST (4u << 20)
#define MAX_ERROR_BODY (64u << 10)
#define MAX_TOKEN_BODY (1u << 20)

static const char ACCEPT_MANIFESTS[] =
    "Accept: application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json, " LC_MEDIA_DOCKER_MANIFEST ", " LC_MEDIA_DOCKER_LIST;

/* What worked for a (host, scope): the Authorization header to send. Basic
 * credentials hold for every scope of a host ("*"). */
typedef struct auth_entry {
    struct auth_entry *next;
    char *domain, *scope, *header;
} auth_entry;

struct lc_regclient {
    char *cacert;
    lc_strlist insecure;
    uint64_t chunk_size;
    lc_progress *progress;
    lc_regauth *auth;
    CURL *curl; /* one handle: connections are reused across requests */
    auth_entry *auths;
    uint64_t blob_gets, down, up;
};

typedef struct req {
    /* request */
    const char *method; /* GET HEAD PUT POST PATCH */
    char url[4096];
    const lc_ref *repo;
    char scope[600];
    const char *accept;       /* a whole header line or NULL */
    const char *content_type; /* value or NULL */
    char extra[128];          /* one more header line or "" */
    bool follow;
    const char *body; /* in memory, or ... */
    size_t body_len;
    int body_fd; /* ... a file range */
    uint64_t body_off, body_total, sent;
    /* response sink: 2xx bodies go to out_fd (hashed) or buf; others to buf */
    int out_fd;
    lc_hasher *hasher;
    int64_t limit, got;
    char *buf;
    size_t len, cap, max;
    /* byte progress of a large blob (lc_progress transfer) */
    lc_progress *progress;
    bool xfer_on;
    int xfer;
    uint64_t xfer_base;
    int cb_code; /* an error raised in a callback (lc code) */
    char cb_msg[256];
    /* response */
    long status;
    char ctype[128], dcd[LC_DIGEST_OCI_LEN + 8], location[4096], wwwauth[1536];
    char errbuf[CURL_ERROR_SIZE];
    char tried[600]; /* which credentials went out, for messages */
} req;

/* ---- small helpers ---- */

static const char *scheme_for(const lc_regclient *c, const char *host)
{
    for (size_t i = 0; i < c->insecure.len; i++)
        if (strcmp(c->insecure.items[i], host) == 0)
            return "http";
    return "https";
}

static void base_url(const lc_regclient *c, const lc_ref *r, char *buf, size_t cap)
{
    const char *host = lc_ref_api_host(r);
    snprintf(buf, cap, "%s://%s", scheme_for(c, host), host);
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static void buf_append(req *q, const char *p, size_t n)
{
    if (q->len + n > q->max) {
        q->cb_code = LC_RESOURCE_EXHAUSTED;
        snprintf(q->cb_msg, sizeof(q->cb_msg), "response larger than %zu bytes", q->max);
        return;
    }
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n + 1)
            cap *= 2;
        char *grown = realloc(q->buf, cap);
        if (grown == NULL) {
            q->cb_code = LC_RESOURCE_EXHAUSTED;
            snprintf(q->cb_msg, sizeof(q->cb_msg), "out of memory");
            return;
        }
        q->buf = grown;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, p, n);
    q->len += n;
    q->buf[q->len] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    req *q = ctx;
    size_t len = size * n;
    char line[4096];
    snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1), p);
    trim(line);
    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100): forget the last one's. */
        const char *sp = strchr(line, ' ');
        q->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        q->ctype[0] = q->dcd[0] = q->location[0] = q->wwwauth[0] = '\0';
        return len;
    }
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return len;
    *colon = '\0';
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp(line, "Content-Type") == 0)
        snprintf(q->ctype, sizeof(q->ctype), "%.*s", (int)strcspn(v, ";"), v);
    else if (strcasecmp(line, "Docker-Content-Digest") == 0)
        snprintf(q->dcd, sizeof(q->dcd), "%s", v);
    else if (strcasecmp(line, "Location") == 0)
        snprintf(q->location, sizeof(q->location), "%s", v);
    else if (strcasecmp(line, "WWW-Authenticate") == 0 && q->wwwauth[0] == '\0')
        snprintf(q->wwwauth, sizeof(q->wwwauth), "%s", v);
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    req *q = ctx;
    size_t len = size * n;
    bool ok = q->status >= 200 && q->status < 300;
    if (ok && q->out_fd >= 0) {
        q->got += (int64_t)len;
        if (q->limit >= 0 && q->got > q->limit) {
            q->cb_code = LC_DATA_LOSS;
            snprintf(q->cb_msg, sizeof(q->cb_msg), "blob is larger than its %lld-byte descriptor",
                     (long long)q->limit);
            return 0;
        }
        lc_hasher_update(q->hasher, p, len);
        for (size_t off = 0; off < len;) {
            ssize_t w = write(q->out_fd, p + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                q->cb_code = lc_code_from_errno(errno);
                snprintf(q->cb_msg, sizeof(q->cb_msg), "cannot write blob: %s", strerror(errno));
                return 0;
            }
            off += (size_t)w;
        }
        if (q->xfer_on)
            lc_progress_transfer_update(q->progress, q->xfer, (uint64_t)q->got);
        return len;
    }
    size_t saved = q->max;
    if (!ok && q->max > MAX_ERROR_BODY)
        q->max = MAX_ERROR_BODY;
    if (!ok && q->len + len > q->max) /* error bodies: keep the start only */
        len = q->len < q->max ? q->max - q->len : 0;
    buf_append(q, p, len);
    q->max = saved;
    return q->cb_code ? 0 : size * n;
}

static size_t on_read(char *p, size_t size, size_t n, void *ctx)
{
    req *q = ctx;
    size_t want = size * n;
    if (q->body != NULL) {
        size_t left = q->body_len - q->sent;
        size_t k = want < left ? want : left;
        memcpy(p, q->body + q->sent, k);
        q->sent += k;
        return k;
    }
    uint64_t left = q->body_total - q->sent;
    size_t k = want < left ? want : (size_t)left;
    if (k == 0)
        return 0;
    ssize_t r = pread(q->body_fd, p, k, (off_t)(q->body_off + q->sent));
    if (r <= 0) {
        q->cb_code = r < 0 ? lc_code_from_errno(errno) : LC_DATA_LOSS;
        snprintf(q->cb_msg, sizeof(q->cb_msg), "cannot read the blob being uploaded: %s",
                 r < 0 ? strerror(errno) : "file shrank");
        return CURL_READFUNC_ABORT;
    }
    q->sent += (uint64_t)r;
    if (q->xfer_on)
        lc_progress_transfer_update(q->progress, q->xfer, q->xfer_base + q->sent);
    return (size_t)r;
}

/* Shows the bytes of a large blob transfer (verb: "pulling", "pushing"). */
static void xfer_begin(const lc_regclient *c, req *q, const char *verb, const lc_digest *d)
{
    if (c->progress == NULL || d->size < (1 << 20))
        return;
    char hex[LC_DIGEST_OCI_LEN + 1], what[64];
    lc_digest_oci(d, hex);
    snprintf(what, sizeof(what), "%s %.19s", verb, hex);
    q->progress = c->progress;
    q->xfer = lc_progress_transfer_begin(c->progress, -1, what, (uint64_t)d->size);
    q->xfer_on = q->xfer >= 0;
}

static void xfer_end(req *q)
{
    if (q->xfer_on)
        lc_progress_transfer_end(q->progress, q->xfer);
    q->xfer_on = false;
}

static int on_seek(void *ctx, curl_off_t off, int origin)
{
    req *q = ctx;
    if (origin != SEEK_SET || off < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    q->sent = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

/* The registry's {"errors":[{"code":..,"message":..}]} as "CODE: message". */
static void error_detail(const req *q, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (q->buf == NULL || q->len == 0)
        return;
    json_t *j = json_loadb(q->buf, q->len, 0, NULL);
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    const char *code = json_string_value(json_object_get(e0, "code"));
    const char *msg = json_string_value(json_object_get(e0, "message"));
    if (code != NULL)
        snprintf(buf, cap, " (%s%s%s)", code, msg ? ": " : "", msg ? msg : "");
    json_decref(j);
}

static const auth_entry *find_auth(const lc_regclient *c, const char *domain, const char *scope)
{
    for (const auth_entry *a = c->auths; a; a = a->next)
        if (strcmp(a->domain, domain) == 0 &&
            (strcmp(a->scope, "*") == 0 || strcmp(a->scope, scope) == 0))
            return a;
    return NULL;
}

static int remember_auth(lc_regclient *c, const char *domain, const char *scope, char *header,
                         lc_err *err)
{
    auth_entry *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->domain = strdup(domain)) == NULL || (a->scope = strdup(scope)) == NULL) {
        if (a)
            free(a->domain);
        free(a);
        free(header);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    a->header = header;
    a->next = c->auths;
    c->auths = a;
    return 0;
}

/* ---- one HTTP exchange ---- */

static int curl_failure(const lc_regclient *c, const req *q, CURLcode cc, lc_err *err)
{
    const char *host = lc_ref_api_host(q->repo);
    const char *detail = q->errbuf[0] ? q->errbuf : curl_easy_strerror(cc);
    if (q->cb_code != 0)
        return lc_err_set(err, q->cb_code, "registry %s: %s %s: %s", host, q->method, q->url,
                          q->cb_msg);
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        return lc_err_set(err, LC_UNAVAILABLE, "cannot resolve registry host '%s' (%s)", host,
                          detail);
    case CURLE_COULDNT_CONNECT:
        return lc_err_set(err, LC_UNAVAILABLE, "cannot connect to registry %s: %s", host, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return lc_err_set(err, LC_DEADLINE_EXCEEDED, "registry %s timed out: %s", host, detail);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return lc_err_set(err, LC_UNAVAILABLE,
                          "TLS failure talking to registry %s: %s (a private CA needs "
                          "--registry-cacert FILE; a plain-HTTP registry needs "
                          "--insecure-registry %s)",
                          host, detail, host);
    default:
        (void)c;
        return lc_err_set(err, LC_UNAVAILABLE, "registry %s: %s %s: %s", host, q->method, q->url,
                          detail);
    }
}

static int perform_once(lc_regclient *c, req *q, const char *auth_header, lc_err *err)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    struct curl_slist *hdrs = NULL, *t;
    char line[4096];
    int rc = 0;
#define ADD_HEADER(s)                                                                              \
    do {                                                                                           \
        if ((t = curl_slist_append(hdrs, (s))) == NULL) {                                          \
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");                          \
            goto out;                                                                              \
        }                                                                                          \
        hdrs = t;                                                                                  \
    } while (0)
    ADD_HEADER("Expect:"); /* no 100-continue round trip before bodies */
    if (q->accept)
        ADD_HEADER(q->accept);
    if (q->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", q->content_type);
        ADD_HEADER(line);
    }
    if (q->extra[0])
        ADD_HEADER(q->extra);
    if (auth_header) {
        snprintf(line, sizeof(line), "Authorization: %s", auth_header);
        ADD_HEADER(line);
    }
#undef ADD_HEADER
    q->status = 0;
    q->len = 0;
    q->sent = 0;
    q->cb_code = 0;
    q->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, q->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "layercache/0.1");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, q->follow ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* stalled for a minute: give up */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, q->errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "GET") != 0) {
        curl_off_t size =
            q->body ? (curl_off_t)q->body_len : (q->body_fd >= 0 ? (curl_off_t)q->body_total : 0);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, q);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, q);
        if (strcmp(q->method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, size);
        } else {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size);
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
        }
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK)
        rc = curl_failure(c, q, cc, err);
out:
    curl_slist_free_all(hdrs);
    return rc;
}

static bool hub_token_scope_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

/* Answers a 401 challenge: a token for Bearer, credentials for Basic. */
static int authenticate(lc_regclient *c, req *q, lc_err *err)
{
    const char *domain = q->repo->domain;
    lc_regauth_challenge ch;
    int rc = lc_regauth_parse_challenge(q->wwwauth, &ch, err);
    if (rc < 0) {
        lc_err_prefix(err, "registry %s", lc_ref_api_host(q->repo));
        return rc;
    }
    char *user = NULL, *pass = NULL;
    bool have = lc_regauth_lookup(c->auth, domain, &user, &pass);
    if (have)
        snprintf(q->tried, sizeof(q->tried), "credentials of user '%s' for %s from %s", user,
                 domain, lc_regauth_source(c->auth));
    else
        snprintf(q->tried, sizeof(q->tried),
                 "no credentials (%s has none for %s; use --registry-auth FILE or DOCKER_CONFIG)",
                 lc_regauth_source(c->auth), domain);
    char *basic = have ? lc_regauth_basic_header(user, pass) : NULL;
    free(user);
    if (pass) {
        memset(pass, 0, strlen(pass));
        free(pass);
    }
    if (have && basic == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");

    if (strcasecmp(ch.scheme, "Basic") == 0) {
        if (basic == NULL)
            return lc_err_set(err, LC_UNAUTHENTICATED,
                              "registry %s requires authentication for %s: %s", domain,
                              q->repo->path, q->tried);
        return remember_auth(c, domain, "*", basic, err);
    }
    if (strcasecmp(ch.scheme, "Bearer") != 0) {
        free(basic);
        return lc_err_set(err, LC_UNIMPLEMENTED,
                          "registry %s asks for '%s' authentication, which is not supported",
                          domain, ch.scheme);
    }
    /* Bearer: GET realm?service=..&scope=.. (with basic credentials if any). */
    const char *scope = ch.scope[0] ? ch.scope : q->scope;
    char *es = curl_easy_escape(c->curl, ch.service, 0);
    char *esc = curl_easy_escape(c->curl, scope, 0);
    req t = {.method = "GET",
             .repo = q->repo,
             .body_fd = -1,
             .out_fd = -1,
             .limit = -1,
             .max = MAX_TOKEN_BODY,
             .follow = true};
    if (es == NULL || esc == NULL || !hub_token_scope_ok(ch.realm)) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "registry %s: bad token realm or scope", domain);
        goto out;
    }
    if (strncmp(ch.realm, "https://", 8) != 0 && strncmp(ch.realm, "http://", 7) != 0) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "registry %s: token realm '%s' is not a URL",
                        domain, ch.realm);
        goto out;
    }
    snprintf(t.url, sizeof(t.url), "%s%sservice=%s&scope=%s", ch.realm,
             strchr(ch.realm, '?') ? "&" : "?", es, esc);
    if ((rc = perform_once(c, &t, basic, err)) < 0)
        goto out;
    if (t.status == 401 || t.status == 403) {
        rc = lc_err_set(err, t.status == 401 ? LC_UNAUTHENTICATED : LC_PERMISSION_DENIED,
                        "token service of registry %s refused %s (HTTP %ld)", domain, q->tried,
                        t.status);
        goto out;
    }
    if (t.status != 200) {
        rc = lc_err_set(err, LC_UNAVAILABLE, "token service of registry %s: HTTP %ld", domain,
                        t.status);
        goto out;
    }
    json_t *j = json_loadb(t.buf ? t.buf : "", t.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (tok == NULL || *tok == '\0')
        tok = json_string_value(json_object_get(j, "access_token"));
    char *hdr = NULL;
    if (tok == NULL || *tok == '\0' || !hub_token_scope_ok(tok) ||
        asprintf(&hdr, "Bearer %s", tok) < 0) {
        json_decref(j);
        rc = lc_err_set(err, LC_UNAVAILABLE, "token service of registry %s sent no token", domain);
        goto out;
    }
    json_decref(j);
    rc = remember_auth(c, domain, q->scope, hdr, err);
out:
    curl_free(es);
    curl_free(esc);
    free(t.buf);
    free(basic);
    return rc;
}

/* Sends q, answering one authentication challenge. After it returns 0,
 * q->status holds the final status (any). */
static int perform(lc_regclient *c, req *q, lc_err *err)
{
    for (int attempt = 0;; attempt++) {
        const auth_entry *a = find_auth(c, q->repo->domain, q->scope);
        if (a != NULL && q->tried[0] == '\0')
            snprintf(q->tried, sizeof(q->tried), "cached credentials for %s", q->repo->domain);
        int rc = perform_once(c, q, a ? a->header : NULL, err);
        if (rc < 0)
            return rc;
        if (q->status != 401 || attempt > 0 || q->wwwauth[0] == '\0')
            return 0;
        if ((rc = authenticate(c, q, err)) < 0)
            return rc;
    }
}

/* A failed status as an lc error about `what`. */
static int status_error(const req *q, const char *what, lc_err *err)
{
    char detail[300];
    error_detail(q, detail, sizeof(detail));
    const char *host = q->repo->domain;
    switch (q->status) {
    case 401:
        return lc_err_set(err, LC_UNAUTHENTICATED,
                          "registry %s refused %s for %s (401 Unauthorized%s): tried %s", host,
                          what, q->repo->path, detail, q->tried[0] ? q->tried : "anonymous access");
    case 403:
        return lc_err_set(err, LC_PERMISSION_DENIED,
                          "registry %s denied %s for %s (403 Forbidden%s): tried %s", host, what,
                          q->repo->path, detail, q->tried[0] ? q->tried : "anonymous access");
    case 404:
        return lc_err_set(err, LC_NOT_FOUND, "%s: not found on registry %s (repository %s)%s", what,
                          host, q->repo->path, detail);
    case 429:
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "registry %s: too many requests (%s)%s", host,
                          what, detail);
    case 400:
        if (q->buf && strstr(q->buf, "HTTPS server"))
            return lc_err_set(err, LC_UNAVAILABLE,
                              "registry %s speaks HTTPS: drop --insecure-registry %s", host, host);
        /* fall through */
    default:
        return lc_err_set(err, q->status >= 500 ? LC_UNAVAILABLE : LC_UNKNOWN,
                          "registry %s: %s for %s: HTTP %ld%s", host, what, q->repo->path,
                          q->status, detail);
    }
}

static void repo_url(const lc_regclient *c, const lc_ref *r, const char *kind, const char *ref,
                     char *buf, size_t cap)
{
    char base[512];
    base_url(c, r, base, sizeof(base));
    snprintf(buf, cap, "%s/v2/%s/%s/%s", base, r->path, kind, ref);
}

static void set_scope(req *q, const char *actions)
{
    snprintf(q->scope, sizeof(q->scope), "repository:%s:%s", q->repo->path, actions);
}

/* ---- public API ---- */

int lc_regclient_new(const lc_regclient_opts *o, lc_regclient **out, lc_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return lc_err_set(err, LC_INTERNAL, "cannot initialize libcurl");
    lc_regclient *c = calloc(1, sizeof(*c));
    int rc = 0;
    if (c == NULL) {
        curl_global_cleanup();
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->chunk_size = o->chunk_size;
    c->progress = o->progress;
    if ((o->cacert && (c->cacert = strdup(o->cacert)) == NULL) ||
        (c->curl = curl_easy_init()) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (o->cacert && access(o->cacert, R_OK) != 0) {
        rc = lc_err_set(err, LC_NOT_FOUND, "--registry-cacert %s: %s", o->cacert, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; o->insecure && i < o->insecure->len; i++)
        if (lc_strlist_push(&c->insecure, o->insecure->items[i]) < 0) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
    if ((rc = lc_regauth_load(o->auth_file, &c->auth, err)) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    lc_regclient_free(&c);
    return rc;
}

void lc_regclient_free(lc_regclient **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    lc_regclient *c = *cp;
    while (c->auths) {
        auth_entry *a = c->auths;
        c->auths = a->next;
        memset(a->header, 0, strlen(a->header));
        free(a->header);
        free(a->domain);
        free(a->scope);
        free(a);
    }
    if (c->curl)
        curl_easy_cleanup(c->curl);
    lc_regauth_free(&c->auth);
    lc_strlist_clear(&c->insecure);
    free(c->cacert);
    free(c);
    *cp = NULL;
    curl_global_cleanup();
}

void lc_reg_manifest_clear(lc_reg_manifest *m)
{
    free(m->body);
    memset(m, 0, sizeof(*m));
}

static const char *const manifest_types[] = {"application/vnd.oci.image.manifest.v1+json",
                                             "application/vnd.oci.image.index.v1+json",
                                             LC_MEDIA_DOCKER_MANIFEST, LC_MEDIA_DOCKER_LIST};

int lc_regclient_get_manifest(lc_regclient *c, const lc_ref *repo, const char *reference,
                              lc_reg_manifest *out, lc_err *err)
{
    req q = {.method = "GET",
             .repo = repo,
             .accept = ACCEPT_MANIFESTS,
             .follow = true,
             .body_fd = -1,
             .out_fd = -1,
             .limit = -1,
             .max = MAX_MANIFEST};
    char what[LC_REF_NAME_MAX * 2 + 160];
    snprintf(what, sizeof(what), "manifest %s/%s%s%s", repo->domain, repo->path,
             reference[0] == 's' && strncmp(reference, "sha256:", 7) == 0 ? "@" : ":", reference);
    repo_url(c, repo, "manifests", reference, q.url, sizeof(q.url));
    set_scope(&q, "pull");
    int rc = perform(c, &q, err);
    if (rc < 0)
        goto out;
    if (q.status != 200) {
        rc = status_error(&q, what, err);
        goto out;
    }
    memset(out, 0, sizeof(*out));
    lc_digest_of(q.buf ? q.buf : "", q.len, &out->digest);
    char got[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&out->digest, got);
    if (strncmp(reference, "sha256:", 7) == 0 && strcmp(reference, got) != 0) {
        rc = lc_err_set(err, LC_DATA_LOSS, "%s: registry sent a manifest whose digest is %s", what,
                        got);
        goto out;
    }
    if (q.dcd[0] && strcmp(q.dcd, got) != 0) {
        rc = lc_err_set(err, LC_DATA_LOSS,
                        "%s: digest mismatch: Docker-Content-Digest %s, content %s", what, q.dcd,
                        got);
        goto out;
    }
    /* The body's mediaType wins over a generic Content-Type. */
    json_t *j = json_loadb(q.buf ? q.buf : "", q.len, 0, NULL);
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    snprintf(out->media_type, sizeof(out->media_type), "%s", mt ? mt : q.ctype);
    json_decref(j);
    bool known = false;
    for (size_t i = 0; i < sizeof(manifest_types) / sizeof(manifest_types[0]); i++)
        known = known || strcmp(out->media_type, manifest_types[i]) == 0;
    if (!known) {
        rc = lc_err_set(err, LC_UNIMPLEMENTED,
                        "%s: unsupported media type '%s' (want an OCI manifest or index, or a "
                        "Docker schema 2 manifest or list)",
                        what, out->media_type);
        goto out;
    }
    out->body = q.buf;
    out->len = q.len;
    q.buf = NULL;
out:
    free(q.buf);
    return rc;
}

int lc_regclient_get_blob(lc_regclient *c, const lc_ref *repo, const lc_digest *d, const char *path,
                          lc_err *err)
{
    char hex[LC_DIGEST_OCI_LEN + 1], what[LC_DIGEST_OCI_LEN + 16];
    lc_digest_oci(d, hex);
    snprintf(what, sizeof(what), "blob %s", hex);
    req q = {.method = "GET",
             .repo = repo,
             .follow = true,
             .body_fd = -1,
             .limit = d->size,
             .max = MAX_ERROR_BODY};
    repo_url(c, repo, "blobs", hex, q.url, sizeof(q.url));
    set_scope(&q, "pull");
    q.out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (q.out_fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", path,
                          strerror(errno));
    int rc = 0;
    if ((q.hasher = lc_hasher_new()) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    c->blob_gets++;
    xfer_begin(c, &q, "pulling", d);
    rc = perform(c, &q, err);
    xfer_end(&q);
    if (rc < 0)
        goto out;
    if (q.status != 200) {
        rc = status_error(&q, what, err);
        goto out;
    }
    lc_digest got;
    lc_hasher_final(q.hasher, &got);
    if (got.size != d->size || memcmp(got.hash, d->hash, LC_HASH_LEN) != 0) {
        char ghex[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(&got, ghex);
        rc = lc_err_set(err, LC_DATA_LOSS,
                        "%s from registry %s (%s): digest mismatch: got %s, %lld bytes (want "
                        "%lld)",
                        what, repo->domain, repo->path, ghex, (long long)got.size,
                        (long long)d->size);
        goto out;
    }
    c->down += (uint64_t)got.size;
out:
    if (close(q.out_fd) != 0 && rc == 0)
        rc = lc_err_set(err, lc_code_from_errno(errno), "cannot write %s", path);
    if (rc < 0)
        unlink(path);
    lc_hasher_free(&q.hasher);
    free(q.buf);
    return rc;
}

int lc_regclient_blob_exists(lc_regclient *c, const lc_ref *repo, const lc_digest *d, bool *exists,
                             lc_err *err)
{
    char hex[LC_DIGEST_OCI_LEN + 1], what[LC_DIGEST_OCI_LEN + 16];
    lc_digest_oci(d, hex);
    snprintf(what, sizeof(what), "blob %s", hex);
    req q = {.method = "HEAD",
             .repo = repo,
             .follow = true,
             .body_fd = -1,
             .out_fd = -1,
             .limit = -1,
             .max = MAX_ERROR_BODY};
    repo_url(c, repo, "blobs", hex, q.url, sizeof(q.url));
    set_scope(&q, "pull,push");
    int rc = perform(c, &q, err);
    if (rc == 0) {
        *exists = q.status == 200;
        if (q.status != 200 && q.status != 404)
            rc = status_error(&q, what, err);
    }
    free(q.buf);
    return rc;
}

/* An upload Location (absolute or a path) as a URL, with extra query. */
static int upload_url(const lc_regclient *c, const req *q, const char *query, char *buf, size_t cap,
                      lc_err *err)
{
    if (q->location[0] == '\0')
        return lc_err_set(err, LC_UNKNOWN, "registry %s started an upload without a Location",
                          q->repo->domain);
    char base[512] = "";
    if (q->location[0] == '/')
        base_url(c, q->repo, base, sizeof(base));
    int n = snprintf(buf, cap, "%s%s%s%s", base, q->location,
                     query ? (strchr(q->location, '?') ? "&" : "?") : "", query ? query : "");
    if (n < 0 || (size_t)n >= cap)
        return lc_err_set(err, LC_UNKNOWN, "registry %s: upload Location too long",
                          q->repo->domain);
    return 0;
}

int lc_regclient_put_blob(lc_regclient *c, const lc_ref *repo, const lc_digest *d, const char *path,
                          const char *from_path, const char **how, lc_err *err)
{
    char hex[LC_DIGEST_OCI_LEN + 1], what[LC_DIGEST_OCI_LEN + 32];
    lc_digest_oci(d, hex);
    bool exists = false;
    int rc = lc_regclient_blob_exists(c, repo, d, &exists, err);
    if (rc < 0 || exists) {
        if (how)
            *how = "exists";
        return rc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot open blob %s: %s", path,
                          strerror(errno));
    req q = {.method = "POST",
             .repo = repo,
             .body_fd = -1,
             .out_fd = -1,
             .limit = -1,
             .max = MAX_ERROR_BODY};
    req x = {.xfer = -1}; /* only the byte progress shared by the requests below */
    char base[512];
    base_url(c, repo, base, sizeof(base));
    set_scope(&q, "pull,push");
    /* Start an upload, asking for a cross-repository mount when we know a
     * repository of this registry that holds the blob. */
    if (from_path != NULL && strcmp(from_path, repo->path) != 0) {
        char *ef = curl_easy_escape(c->curl, from_path, 0);
        if (ef == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        snprintf(q.url, sizeof(q.url), "%s/v2/%s/blobs/uploads/?mount=%s&from=%s", base, repo->path,
                 hex, ef);
        curl_free(ef);
    } else {
        snprintf(q.url, sizeof(q.url), "%s/v2/%s/blobs/uploads/", base, repo->path);
    }
    snprintf(what, sizeof(what), "upload of blob %s", hex);
    if ((rc = perform(c, &q, err)) < 0)
        goto out;
    if (q.status == 201) {
        if (how)
            *how = "mounted";
        goto out;
    }
    if (q.status != 202) {
        rc = status_error(&q, what, err);
        goto out;
    }
    /* Chunks (PATCH with Content-Range), then the closing PUT; or one PUT. */
    uint64_t total = (uint64_t)d->size, off = 0;
    xfer_begin(c, &x, "pushing", d);
    if (c->chunk_size > 0 && total > c->chunk_size) {
        while (off < total) {
            uint64_t n = total - off < c->chunk_size ? total - off : c->chunk_size;
            req p = {.method = "PATCH",
                     .repo = repo,
                     .body_fd = fd,
                     .body_off = off,
                     .body_total = n,
                     .out_fd = -1,
                     .limit = -1,
                     .max = MAX_ERROR_BODY,
                     .content_type = "application/octet-stream"};
            set_scope(&p, "pull,push");
            snprintf(p.extra, sizeof(p.extra), "Content-Range: %llu-%llu", (unsigned long long)off,
                     (unsigned long long)(off + n - 1));
            p.progress = x.progress;
            p.xfer = x.xfer;
            p.xfer_on = x.xfer_on;
            p.xfer_base = off;
            if ((rc = upload_url(c, &q, NULL, p.url, sizeof(p.url), err)) < 0 ||
                (rc = perform(c, &p, err)) < 0) {
                free(p.buf);
                goto out;
            }
            if (p.status != 202) {
                rc = status_error(&p, what, err);
                free(p.buf);
                goto out;
            }
            snprintf(q.location, sizeof(q.location), "%s", p.location);
            free(p.buf);
            off += n;
            c->up += n;
        }
    }
    char query[LC_DIGEST_OCI_LEN + 16];
    snprintf(query, sizeof(query), "digest=sha256%%3A%s", hex + 7);
    req u = {.method = "PUT",
             .repo = repo,
             .body_fd = off < total ? fd : -1,
             .body_off = off,
             .body_total = total - off,
             .out_fd = -1,
             .limit = -1,
             .max = MAX_ERROR_BODY,
             .content_type = "application/octet-stream"};
    set_scope(&u, "pull,push");
    u.progress = x.progress;
    u.xfer = x.xfer;
    u.xfer_on = x.xfer_on;
    u.xfer_base = off;
    if ((rc = upload_url(c, &q, query, u.url, sizeof(u.url), err)) < 0 ||
        (rc = perform(c, &u, err)) < 0) {
        free(u.buf);
        goto out;
    }
    if (u.status != 201) {
        rc = status_error(&u, what, err);
        free(u.buf);
        goto out;
    }
    if (u.dcd[0] && strcmp(u.dcd, hex) != 0)
        rc = lc_err_set(err, LC_DATA_LOSS, "registry %s stored blob %s as %s", repo->domain, hex,
                        u.dcd);
    c->up += total - off;
    free(u.buf);
    if (how)
        *how = "uploaded";
out:
    xfer_end(&x);
    free(q.buf);
    close(fd);
    return rc;
}

int lc_regclient_put_manifest(lc_regclient *c, const lc_ref *repo, const char *tag,
                              const char *media_type, const char *body, size_t len,
                              lc_digest *digest, lc_err *err)
{
    char what[LC_REF_NAME_MAX * 2 + 200];
    snprintf(what, sizeof(what), "manifest upload to %s/%s:%s", repo->domain, repo->path, tag);
    req q = {.method = "PUT",
             .repo = repo,
             .body = body,
             .body_len = len,
             .body_fd = -1,
             .out_fd = -1,
             .limit = -1,
             .max = MAX_ERROR_BODY,
             .content_type = media_type};
    repo_url(c, repo, "manifests", tag, q.url, sizeof(q.url));
    set_scope(&q, "pull,push");
    int rc = perform(c, &q, err);
    if (rc == 0 && q.status != 201)
        rc = status_error(&q, what, err);
    lc_digest mine;
    char hex[LC_DIGEST_OCI_LEN + 1];
    lc_digest_of(body, len, &mine);
    lc_digest_oci(&mine, hex);
    if (rc == 0 && q.dcd[0] && strcmp(q.dcd, hex) != 0)
        rc = lc_err_set(err, LC_DATA_LOSS, "%s: the registry reports digest %s, the manifest is %s",
                        what, q.dcd, hex);
    if (rc == 0 && digest)
        *digest = mine;
    if (rc == 0)
        c->up += len;
    free(q.buf);
    return rc;
}

uint64_t lc_regclient_blob_gets(const lc_regclient *c)
{
    return c->blob_gets;
}
uint64_t lc_regclient_bytes_down(const lc_regclient *c)
{
    return c->down;
}
uint64_t lc_regclient_bytes_up(const lc_regclient *c)
{
    return c->up;
}
