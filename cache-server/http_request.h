/* http_request.h - the HTTP/1.x request-head reader of the metrics/dashboard
 * listener (http.c). Hand-written because Debian 12 has no llhttp package
 * (libllhttp-dev) and the listener only needs GET/HEAD heads: it is kept
 * small, strict and fuzzed (tests/fuzz/fuzz_http.c).
 *
 * Strict: the request line must be `METHOD SP /path[?query] SP HTTP/1.D`,
 * lines end in CRLF (a bare LF is accepted, a bare CR is not), header lines
 * are `name: value` with a token name and no obsolete line folding, and no
 * byte of the head is a NUL or other control character except HTAB in
 * values. Anything else is a malformed request (400).
 */
#ifndef LC_HTTP_REQUEST_H
#define LC_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#define LC_HTTP_METHOD_MAX 16
#define LC_HTTP_PATH_MAX 1024
#define LC_HTTP_QUERY_MAX 256
/* "Bearer " and a token of up to 4096 bytes (auth.c's limit). */
#define LC_HTTP_AUTHZ_MAX 4200
#define LC_HTTP_HOST_MAX 255
/* The login cookie (http_auth.h): its name and the longest value kept. */
#define LC_HTTP_SESSION_COOKIE "lc_session"
#define LC_HTTP_SESSION_MAX 128

typedef struct lc_http_request {
    char method[LC_HTTP_METHOD_MAX + 1]; /* as sent, e.g. "GET" */
    char path[LC_HTTP_PATH_MAX + 1];     /* the target without its query string */
    char query[LC_HTTP_QUERY_MAX + 1];   /* after '?', "" if none (longer ones are cut) */
    int minor;                           /* HTTP/1.<minor> */
    bool keep_alive;                     /* 1.1 without "Connection: close", or 1.0 asking */
    bool has_body;                       /* Content-Length > 0 or Transfer-Encoding present */
    /* Access (http_auth.h). A header too long to keep sets the *_bad flag
     * (the request is then refused, never half-read). */
    char authorization[LC_HTTP_AUTHZ_MAX + 1]; /* the Authorization value, "" if none */
    char session[LC_HTTP_SESSION_MAX + 1];     /* the lc_session cookie's value, "" if none */
    char host[LC_HTTP_HOST_MAX + 1];           /* Host, "" if none */
    char origin[LC_HTTP_HOST_MAX + 1];         /* Origin, "" if none */
    char fetch_site[32];                       /* Sec-Fetch-Site, "" if none */
    bool authorization_bad, session_bad, host_bad, origin_bad;
} lc_http_request;

/* Reads the request head at buf[0..len). Returns the head's length in bytes
 * (through the blank line) when complete and well formed, 0 when more bytes
 * are needed, or -1 when malformed (the connection gets a 400). Never reads
 * past buf + len; fills *out only on success. */
int lc_http_request_parse(const char *buf, size_t len, lc_http_request *out);

#endif
