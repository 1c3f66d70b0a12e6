/* http_request.c - see http_request.h. */
#include "http_request.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A visible character of a request target (no spaces, no controls). */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* The end of the line starting at p (pointing at CR or LF), or NULL when the
 * line is not complete yet; *bad on a bare CR. *next gets the next line. */
static const char *line_end(const char *p, const char *end, const char **next, bool *bad)
{
    for (const char *q = p; q < end; q++) {
        if (*q == '\n') {
            *next = q + 1;
            return q;
        }
        if (*q == '\r') {
            if (q + 1 == end)
                return NULL;
            if (q[1] != '\n') {
                *bad = true;
                return NULL;
            }
            *next = q + 2;
            return q;
        }
    }
    return NULL;
}

static int parse_request_line(const char *p, const char *e, lc_http_request *r)
{
    const char *sp = memchr(p, ' ', (size_t)(e - p));
    if (sp == NULL || sp == p || (size_t)(sp - p) > LC_HTTP_METHOD_MAX)
        return -1;
    for (const char *q = p; q < sp; q++)
        if (!is_tchar((unsigned char)*q))
            return -1;
    memcpy(r->method, p, (size_t)(sp - p));
    r->method[sp - p] = '\0';

    const char *t = sp + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(e - t));
    if (sp2 == NULL || sp2 == t || *t != '/')
        return -1;
    const char *qm = t;
    while (qm < sp2 && *qm != '?' && *qm != '#')
        qm++;
    for (const char *q = t; q < sp2; q++)
        if (!is_target_char((unsigned char)*q))
            return -1;
    if ((size_t)(qm - t) > LC_HTTP_PATH_MAX)
        return -1;
    memcpy(r->path, t, (size_t)(qm - t));
    r->path[qm - t] = '\0';
    if (qm < sp2 && *qm == '?') {
        const char *qe = qm + 1;
        while (qe < sp2 && *qe != '#')
            qe++;
        size_t ql = (size_t)(qe - (qm + 1));
        if (ql > LC_HTTP_QUERY_MAX)
            ql = LC_HTTP_QUERY_MAX;
        memcpy(r->query, qm + 1, ql);
        r->query[ql] = '\0';
    }

    const char *v = sp2 + 1;
    if (e - v != 8 || memcmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' || v[7] > '9')
        return -1;
    r->minor = v[7] - '0';
    r->keep_alive = r->minor >= 1;
    return 0;
}

/* value [p, e) with optional whitespace trimmed; false on control bytes. */
static bool header_value(const char **p, const char **e)
{
    const char *a = *p, *b = *e;
    for (const char *q = a; q < b; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    *p = a;
    *e = b;
    return true;
}

static bool value_is(const char *a, const char *b, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(b - a) == n && strncasecmp(a, word, n) == 0;
}

/* Copies [a, b) into out (cap bytes with the NUL); false when it does not fit. */
static bool keep(const char *a, const char *b, char *out, size_t cap)
{
    size_t n = (size_t)(b - a);
    if (n >= cap)
        return false;
    memcpy(out, a, n);
    out[n] = '\0';
    return true;
}

/* The lc_session cookie among "a=b; c=d" pairs, if any. */
static void find_session(const char *v, const char *ve, lc_http_request *r)
{
    static const char name[] = LC_HTTP_SESSION_COOKIE;
    const size_t nl = sizeof(name) - 1;
    while (v < ve) {
        const char *semi = memchr(v, ';', (size_t)(ve - v));
        const char *end = semi != NULL ? semi : ve;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        if ((size_t)(end - v) > nl && memcmp(v, name, nl) == 0 && v[nl] == '=') {
            const char *val = v + nl + 1, *vend = end;
            while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
                vend--;
            if (!keep(val, vend, r->session, sizeof(r->session)))
                r->session_bad = true;
        }
        v = semi != NULL ? semi + 1 : ve;
    }
}

static bool name_is(const char *p, size_t nlen, const char *word)
{
    return nlen == strlen(word) && strncasecmp(p, word, nlen) == 0;
}

static int parse_header(const char *p, const char *e, lc_http_request *r)
{
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (colon == NULL || colon == p)
        return -1;
    for (const char *q = p; q < colon; q++)
        if (!is_tchar((unsigned char)*q))
            return -1;
    const char *v = colon + 1, *ve = e;
    if (!header_value(&v, &ve))
        return -1;
    size_t nlen = (size_t)(colon - p);
    if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
        if (value_is(v, ve, "close"))
            r->keep_alive = false;
        else if (value_is(v, ve, "keep-alive"))
            r->keep_alive = true;
    } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
        if (v == ve)
            return -1;
        for (const char *q = v; q < ve; q++)
            if (*q < '0' || *q > '9')
                return -1;
        for (const char *q = v; q < ve; q++)
            if (*q != '0')
                r->has_body = true;
    } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
        r->has_body = true;
    } else if (name_is(p, nlen, "authorization")) {
        /* Two Authorization headers are ambiguous: refuse. */
        if (r->authorization[0] != '\0' || !keep(v, ve, r->authorization, sizeof(r->authorization)))
            r->authorization_bad = true;
    } else if (name_is(p, nlen, "cookie")) {
        find_session(v, ve, r);
    } else if (name_is(p, nlen, "host")) {
        if (r->host[0] != '\0' || !keep(v, ve, r->host, sizeof(r->host)))
            r->host_bad = true;
    } else if (name_is(p, nlen, "origin")) {
        if (!keep(v, ve, r->origin, sizeof(r->origin)))
            r->origin_bad = true;
    } else if (name_is(p, nlen, "sec-fetch-site")) {
        if (!keep(v, ve, r->fetch_site, sizeof(r->fetch_site)))
            r->fetch_site[0] = '\0';
    }
    return 0;
}

int lc_http_request_parse(const char *buf, size_t len, lc_http_request *out)
{
    if (len > (size_t)INT_MAX)
        return -1;
    lc_http_request r;
    memset(&r, 0, sizeof(r));
    const char *p = buf, *end = buf + len, *next = NULL;
    bool bad = false;

    /* Robustness (RFC 9112 2.2): ignore empty lines before the request line. */
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (line_end(p, end, &next, &bad) == NULL)
            return bad ? -1 : 0;
        p = next;
    }
    const char *e = line_end(p, end, &next, &bad);
    if (e == NULL) {
        /* A line that can never become a request line fails early. */
        if (bad || memchr(p, '\0', (size_t)(end - p)) != NULL)
            return -1;
        return 0;
    }
    if (parse_request_line(p, e, &r) < 0)
        return -1;
    p = next;
    for (;;) {
        e = line_end(p, end, &next, &bad);
        if (e == NULL)
            return bad ? -1 : 0;
        if (e == p) {
            *out = r;
            return (int)(next - buf);
        }
        if (*p == ' ' || *p == '\t') /* obsolete folding */
            return -1;
        if (parse_header(p, e, &r) < 0)
            return -1;
        p = next;
    }
}
