/* pull.h - base images from registries: resolve, pull, remember.
 *
 * A registry session (lc_registry) belongs to one command: it holds the
 * registry client (made on first use, so builds from local images never
 * read credentials), the worker's state directory, the cache server and
 * what this command resolved already.
 *
 * Pulling `FROM 127.0.0.1:5000/demo/base:1` for linux/amd64:
 *   1. GET the manifest (an index or list selects the platform's manifest
 *      by os/architecture/variant): its digest is what the FROM step's key
 *      is made of, so a moved tag invalidates the chain;
 *   2. config and layer blobs: the local state directory, else the cache
 *      server's CAS (keyed by digest), else the registry (verified while
 *      streaming) and then queued for upload to the CAS, so the next worker
 *      gets base layers from the team cache instead of the registry;
 *   3. the image state (lc_image) from config + layers goes to the image
 *      store under the normalized name (docker.io/library/ubuntu:latest),
 *      and a pull record `registry/<name>#<platform>` in the state
 *      directory keeps the manifest digest, state digest, repository and
 *      blob digests (for keys and cross-repository mounts on push).
 *
 * Pull policy (--pull): missing (default) uses a pulled or local copy when
 * there is one and pulls otherwise; always contacts the registry for every
 * registry image (images built or imported locally under a short name
 * without registry origin stay local); never uses local copies only.
 */
#ifndef LC_REGISTRY_PULL_H
#define LC_REGISTRY_PULL_H

#include <stdbool.h>

#include "build-worker/orchestrate/progress.h"
#include "build-worker/orchestrate/remote.h"
#include "build-worker/orchestrate/statedir.h"
#include "build-worker/oci/image.h"
#include "build-worker/registry/client.h"
#include "build-worker/registry/ref.h"
#include "digest.h"
#include "err.h"

enum lc_pull_policy { LC_PULL_MISSING = 0, LC_PULL_ALWAYS, LC_PULL_NEVER };

typedef struct lc_registry_opts {
    lc_regclient_opts client;
    int pull;  /* enum lc_pull_policy */
    bool push; /* build --push: push every -t tag after the build */
} lc_registry_opts;

/* "missing" | "always" | "never". */
int lc_pull_policy_parse(const char *s, int *out, lc_err *err);

typedef struct lc_registry lc_registry;

/* opts (copied; NULL = defaults), sd, remote and progress are borrowed and
 * must outlive the session; remote and progress may be NULL (notes then go
 * to stderr). */
int lc_registry_open(const lc_registry_opts *opts, lc_statedir *sd, lc_remote *remote,
                     lc_progress *progress, lc_registry **out, lc_err *err);
void lc_registry_close(lc_registry **r);

/* The session's client (created now if needed); borrowed. */
int lc_registry_client(lc_registry *r, lc_regclient **out, lc_err *err);
lc_statedir *lc_registry_statedir(lc_registry *r);
lc_remote *lc_registry_remote(lc_registry *r);
/* Prints a note (through progress when the session has one). */
void lc_registry_note(lc_registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* lc_keys_resolve_fn (ctx is the lc_registry): the digest that stands for
 * image in keys: a pulled image's registry manifest digest, a local image's
 * state document digest. Pulls per the policy. Never NOT_FOUND (the key
 * engine would replace the message with advice to import): an image that
 * --pull never keeps from the registry, or that the registry does not
 * know, is FAILED_PRECONDITION with a message saying which. */
int lc_pull_resolve(void *registry, const char *image, const char *platform, lc_digest *out,
                    lc_err *err);

/* The state document digest of image (as FROM names it) for platform (NULL
 * = the host's): what this session resolved, else resolves (pulling per the
 * policy). */
int lc_pull_state(lc_registry *r, const char *image, const char *platform, lc_digest *state,
                  lc_err *err);

/* Pulls image from its registry now, whatever the policy. manifest and
 * state may be NULL. */
int lc_pull_image(lc_registry *r, const char *image, const char *platform, lc_digest *manifest,
                  lc_digest *state, lc_err *err);

/* Offline: the pull record of image for platform (NULL = host). 0 or
 * -LC_NOT_FOUND (also for names that do not parse). */
int lc_pull_recorded(lc_statedir *sd, const char *image, const char *platform, lc_digest *manifest,
                     lc_digest *state);

/* Writes the pull record of ref (normalized) for platform: manifest and
 * state digests and the blobs the registry holds for it (img's layers and
 * the config blob). Used after a push too. */
int lc_pull_record(lc_statedir *sd, const lc_ref *ref, const char *platform,
                   const lc_digest *manifest, const lc_digest *state, const lc_image *img,
                   const lc_digest *config, lc_err *err);

/* A repository path on registry domain that holds blob, from the pull
 * records (a cross-repository mount source); false if none. */
bool lc_pull_mount_source(lc_statedir *sd, const char *domain, const lc_digest *blob,
                          const char *not_path, char *path, size_t cap);

#endif
