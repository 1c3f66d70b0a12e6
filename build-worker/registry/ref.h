/* ref.h - image references as Docker reads them, normalized.
 *
 *   ubuntu                         -> docker.io/library/ubuntu:latest
 *   user/app:1                     -> docker.io/user/app:1
 *   127.0.0.1:5000/demo/base       -> 127.0.0.1:5000/demo/base:latest
 *   localhost/app@sha256:<64 hex>  -> localhost/app@sha256:...  (no tag)
 *
 * The first path component is a registry host when it contains '.' or ':',
 * is "localhost", or has an upper-case letter (Docker's rule); otherwise the
 * image lives on Docker Hub ("docker.io", API host registry-1.docker.io) and
 * a single-component name gets "library/". Repository components are
 * lower-case alphanumerics joined by '.', '_', "__" or runs of '-'; a tag is
 * [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; a digest is sha256:<64 lower hex>.
 */
#ifndef LC_REGISTRY_REF_H
#define LC_REGISTRY_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "digest.h"
#include "err.h"

#define LC_REF_DOCKER_HUB "docker.io"
#define LC_REF_NAME_MAX 256

typedef struct lc_ref {
    char domain[LC_REF_NAME_MAX];       /* "docker.io", "127.0.0.1:5000", "ghcr.io" */
    char path[LC_REF_NAME_MAX];         /* repository path: "library/ubuntu" */
    char tag[129];                      /* "" when pinned by digest alone */
    char digest[LC_DIGEST_OCI_LEN + 1]; /* "sha256:..." or "" */
} lc_ref;

/* Parses and normalizes s. INVALID_ARGUMENT naming what is wrong. */
int lc_ref_parse(const char *s, lc_ref *out, lc_err *err);

/* True when s names a registry host explicitly (its first component is a
 * host by the rule above). Does not validate s. */
bool lc_ref_has_domain(const char *s);

/* "domain/path:tag", "domain/path@digest" or "domain/path:tag@digest". */
void lc_ref_string(const lc_ref *r, char *buf, size_t cap);
/* "domain/path". */
void lc_ref_repository(const lc_ref *r, char *buf, size_t cap);
/* What /v2/<path>/manifests/<reference> takes: the digest, else the tag. */
const char *lc_ref_reference(const lc_ref *r);
/* The host[:port] the API lives on (registry-1.docker.io for docker.io). */
const char *lc_ref_api_host(const lc_ref *r);

#endif
