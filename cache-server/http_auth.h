/* http_auth.h - who an HTTP request is (the dashboard and its JSON), and
 * the dashboard's login sessions. docs/SECURITY.md says why it works so.
 *
 * With --tokens, a request shows a token of the tokens file (auth.h) in
 * one of two ways:
 *   - "Authorization: Bearer <token>" (curl, scripts), on any request;
 *   - the lc_session cookie, which POST /login sets after checking the
 *     Bearer token the page sent (the user pasted it into the login form,
 *     or opened the page at /#token=...). The cookie is HttpOnly (the
 *     page's scripts never hold it), SameSite=Strict (no other site's page
 *     makes the browser send it), Path=/, and lives LC_HTTP_SESSION_TTL
 *     seconds. Its value is 32 random bytes; the server keeps only their
 *     SHA-256 and the token's SHA-256, so every request re-checks the token
 *     against the current tokens file (a token removed by SIGHUP ends its
 *     sessions at once; a role change applies at once).
 * Login and logout are the only state-changing requests and the only POSTs;
 * they take no body and are refused from another origin (an Origin or
 * Sec-Fetch-Site header naming another site): no cross-site page can log a
 * browser in or out (the Bearer header also forces a CORS preflight, which
 * this server never grants).
 *
 * Without --tokens every request is an unnamed admin, as over gRPC.
 *
 * Not thread-safe: the HTTP loop thread owns it.
 */
#ifndef LC_HTTP_AUTH_H
#define LC_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "err.h"
#include "http_request.h"

#define LC_HTTP_SESSION_TTL (12 * 3600)
#define LC_HTTP_SESSIONS_MAX 1024

typedef struct lc_http_auth lc_http_auth;

/* auth is borrowed (NULL = no access control) and must outlive h. NULL
 * when out of memory. */
lc_http_auth *lc_http_auth_new(lc_auth *auth);
void lc_http_auth_free(lc_http_auth **h);

/* Whether the server has tokens (pages need one). */
bool lc_http_auth_required(const lc_http_auth *h);

/* Who req is at time now: 1 with *id (a token, a session, or no access
 * control: admin), 0 anonymous (id->role is read with
 * --allow-anonymous-read, else none), < 0 UNAUTHENTICATED with a message
 * (a malformed or unknown Bearer token). An unknown or expired session
 * reads as anonymous. */
int lc_http_auth_identify(lc_http_auth *h, const lc_http_request *req, int64_t now, lc_auth_id *id,
                          lc_err *err);

/* POST /login at now: checks the request's Bearer token and origin, opens
 * a session and writes the Set-Cookie header line (with CRLF) into
 * cookie. UNAUTHENTICATED (no or unknown token), PERMISSION_DENIED
 * (another origin), FAILED_PRECONDITION (no tokens: nothing to log in to). */
int lc_http_auth_login(lc_http_auth *h, const lc_http_request *req, int64_t now, lc_auth_id *id,
                       char *cookie, size_t cap, lc_err *err);

/* POST /logout: ends req's session (if any) and writes the Set-Cookie line
 * that clears the cookie. PERMISSION_DENIED from another origin. */
int lc_http_auth_logout(lc_http_auth *h, const lc_http_request *req, char *cookie, size_t cap,
                        lc_err *err);

/* Whether the request comes from a page of this server or no page at all
 * (Origin absent or http(s)://<Host>; Sec-Fetch-Site absent, same-origin or
 * none). */
bool lc_http_auth_same_origin(const lc_http_request *req);

/* Whether host (a Host header: "name[:port]") names this machine's
 * loopback: localhost, 127.x.y.z, [::1]. With the listener on loopback,
 * other names are refused (DNS rebinding: a page of another site whose
 * name resolves to 127.0.0.1 would otherwise read the dashboard). */
bool lc_http_auth_loopback_host(const char *host);

/* Open sessions (tests). */
size_t lc_http_auth_sessions(const lc_http_auth *h);

#endif
