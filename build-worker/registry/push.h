/* push.h - images to registries: layers (HEAD-checked, mounted from another
 * repository of the same registry when a pull record shows one holds the
 * blob, else uploaded in one PUT or in chunks), the config, then the
 * manifest under the tag.
 *
 * The manifest is the canonical one lc_layout_manifest makes (the same
 * bytes an OCI layout export holds), so the pushed digest equals the
 * build's manifest digest. Layer blobs come from the state directory, or
 * from the cache server when a fully cached build never downloaded them.
 * After the push, the image is recorded as pulled under the destination
 * name (a later FROM of it needs no download).
 */
#ifndef LC_REGISTRY_PUSH_H
#define LC_REGISTRY_PUSH_H

#include "build-worker/oci/image.h"
#include "build-worker/registry/pull.h"
#include "digest.h"
#include "err.h"

/* Pushes img as dest ("host/repo:tag"; Docker normalization applies, a
 * digest is refused). *manifest_digest (may be NULL) gets the digest. */
int lc_push_image(lc_registry *r, const lc_image *img, const char *dest, lc_digest *manifest_digest,
                  lc_err *err);

#endif
