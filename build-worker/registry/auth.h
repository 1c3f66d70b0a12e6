/* auth.h - registry authentication inputs: the WWW-Authenticate challenge
 * a registry answers 401 with, and credentials from a Docker config.json.
 *
 *   WWW-Authenticate: Bearer realm="https://auth.example/token",
 *                     service="registry.example",scope="repository:app:pull"
 *   WWW-Authenticate: Basic realm="Registry Realm"
 *
 * config.json: {"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}
 * (keys may also be URLs such as "https://index.docker.io/v1/"; "username"
 * and "password" fields are read when "auth" is absent). Credential helpers
 * (credsStore, credHelpers) are not run.
 */
#ifndef LC_REGISTRY_AUTH_H
#define LC_REGISTRY_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct lc_regauth_challenge {
    char scheme[16]; /* "Bearer" or "Basic" (as sent; compare case-insensitively) */
    char realm[1024];
    char service[256];
    char scope[512];
    char error[64]; /* "insufficient_scope", ... or "" */
} lc_regauth_challenge;

/* Parses one challenge (the first when several are sent). Unknown
 * parameters are ignored. INVALID_ARGUMENT for malformed input. */
int lc_regauth_parse_challenge(const char *header, lc_regauth_challenge *out, lc_err *err);

/* Loaded credentials. Owned by the caller: lc_regauth_free. */
typedef struct lc_regauth lc_regauth;

/* Loads path, or (path NULL) $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json. A default file that does not exist gives an empty
 * set; an explicit path that does not exist, or bad JSON, is an error. */
int lc_regauth_load(const char *path, lc_regauth **out, lc_err *err);
void lc_regauth_free(lc_regauth **a);

/* The file the credentials came from (or would have), for messages. */
const char *lc_regauth_source(const lc_regauth *a);

/* Credentials for a registry host ("docker.io" also matches the Hub's
 * URL keys). user and pass are malloc'd (caller frees); false if none. */
bool lc_regauth_lookup(const lc_regauth *a, const char *domain, char **user, char **pass);

/* "Basic <base64(user:pass)>" into a malloc'd string, NULL on OOM. */
char *lc_regauth_basic_header(const char *user, const char *pass);

#endif
