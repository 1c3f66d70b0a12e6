/* client.h - the OCI distribution API over libcurl: what pull and push need.
 *
 * HTTPS with the system CA store (or opts.cacert) by default; plain HTTP only
 * for hosts named in opts.insecure ("HOST:PORT", --insecure-registry).
 * Authentication follows the registry: a request goes out anonymously (or
 * with what worked before for that host and scope); a 401 with
 * `WWW-Authenticate: Bearer realm=...,service=...,scope=...` fetches a token
 * from the realm (with basic credentials when config.json has some for the
 * host), a `Basic` challenge is answered with the credentials; the request
 * is then retried once. Redirects are followed (blobs often live elsewhere);
 * curl never forwards the Authorization header to another host.
 *
 * Errors name the registry and repository: UNAVAILABLE for unknown hosts,
 * refused connections and TLS failures; UNAUTHENTICATED / PERMISSION_DENIED
 * for 401 / 403, naming the credentials tried (host and user name, never the
 * secret); NOT_FOUND for unknown tags/manifests/blobs; DATA_LOSS for digest
 * mismatches; UNIMPLEMENTED for media types we do not handle.
 *
 * One client is used from one thread at a time.
 */
#ifndef LC_REGISTRY_CLIENT_H
#define LC_REGISTRY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build-worker/orchestrate/progress.h"
#include "build-worker/registry/ref.h"
#include "digest.h"
#include "err.h"
#include "strlist.h"

#define LC_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define LC_MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define LC_MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define LC_MEDIA_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"

typedef struct lc_regclient_opts {
    const char *auth_file;      /* config.json; NULL = $DOCKER_CONFIG or ~/.docker */
    const char *cacert;         /* PEM CA bundle; NULL = the system store */
    const lc_strlist *insecure; /* "HOST:PORT" spoken to over plain HTTP; may be NULL */
    uint64_t chunk_size;        /* uploads: PATCH chunks of this size; 0 = one PUT */
    lc_progress *progress;      /* blob GETs and uploads of 1 MiB and more show their
                                 * bytes here; may be NULL; borrowed */
} lc_regclient_opts;

typedef struct lc_regclient lc_regclient;

/* Options are copied. Credentials are loaded here (a bad --registry-auth
 * file fails now, not at the first 401). */
int lc_regclient_new(const lc_regclient_opts *opts, lc_regclient **out, lc_err *err);
void lc_regclient_free(lc_regclient **c);

typedef struct lc_reg_manifest {
    char *body; /* malloc'd, NUL-terminated */
    size_t len;
    char media_type[128]; /* Content-Type, else the body's mediaType */
    lc_digest digest;     /* sha256 of the body (checked against the header) */
} lc_reg_manifest;
void lc_reg_manifest_clear(lc_reg_manifest *m);

/* GET /v2/<path>/manifests/<reference> (a tag or "sha256:..."), accepting
 * OCI manifests and indexes and Docker schema 2 manifests and lists. When
 * reference is a digest the body must hash to it. */
int lc_regclient_get_manifest(lc_regclient *c, const lc_ref *repo, const char *reference,
                              lc_reg_manifest *out, lc_err *err);

/* GET a blob into path (created), verified against d (hash and size) while
 * streaming; path is removed on failure. */
int lc_regclient_get_blob(lc_regclient *c, const lc_ref *repo, const lc_digest *d, const char *path,
                          lc_err *err);

/* HEAD /v2/<path>/blobs/<digest>. */
int lc_regclient_blob_exists(lc_regclient *c, const lc_ref *repo, const lc_digest *d, bool *exists,
                             lc_err *err);

/* Uploads the file path as blob d into repo, unless the registry has it.
 * from_path (a repository path on the same registry, or NULL) is tried
 * first as a cross-repository mount. *how (may be NULL) gets "exists",
 * "mounted" or "uploaded". */
int lc_regclient_put_blob(lc_regclient *c, const lc_ref *repo, const lc_digest *d, const char *path,
                          const char *from_path, const char **how, lc_err *err);

/* PUT /v2/<path>/manifests/<tag>; *digest (may be NULL) gets the digest the
 * registry reports (checked against the body's). */
int lc_regclient_put_manifest(lc_regclient *c, const lc_ref *repo, const char *tag,
                              const char *media_type, const char *body, size_t len,
                              lc_digest *digest, lc_err *err);

/* Requests and bytes so far (blob GETs that reached the registry). */
uint64_t lc_regclient_blob_gets(const lc_regclient *c);
uint64_t lc_regclient_bytes_down(const lc_regclient *c);
uint64_t lc_regclient_bytes_up(const lc_regclient *c);

#endif
