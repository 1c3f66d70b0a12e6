/* statedir.h - the worker's local state directory, its first-level cache.
 *
 *   blobs/sha256/<hex>   content-addressed blobs: layers, state documents, configs
 *   layers/<diff_id>/    layers unpacked once, used as overlay lower dirs
 *   ac/<key hex>         local action cache: the state document digest of a step
 *   images/<ref>         the local image store: name:tag -> state document digest
 *   tmp/                 scratch space for bundles and upper dirs of running steps
 *
 * Every entry appears atomically (written to tmp/ then renamed into place),
 * so a crashed build never leaves a half-written blob or layer visible.
 */
#ifndef LC_STATEDIR_H
#define LC_STATEDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "digest.h"
#include "err.h"

typedef struct lc_statedir lc_statedir;

/* The default location (lc_statcache_default_dir): $LAYERCACHE_STATE_DIR,
 * else $XDG_CACHE_HOME/layercache, else $HOME/.cache/layercache. */
int lc_statedir_default(char *buf, size_t cap, lc_err *err);

/* Opens (creating) the directory tree under path. *out owned by the caller. */
int lc_statedir_open(const char *path, lc_statedir **out, lc_err *err);
void lc_statedir_close(lc_statedir **sd);
const char *lc_statedir_path(const lc_statedir *sd);

/* Path of a blob (present or not) into buf. */
void lc_statedir_blob_path(const lc_statedir *sd, const lc_digest *d, char *buf, size_t cap);
bool lc_statedir_has_blob(const lc_statedir *sd, const lc_digest *d);
/* Stores len bytes as a blob; *out (may be NULL) gets its digest. */
int lc_statedir_put_blob(lc_statedir *sd, const void *data, size_t len, lc_digest *out,
                         lc_err *err);
/* Moves the file tmp_path (whose digest the caller verified as d) into place. */
int lc_statedir_adopt_blob(lc_statedir *sd, const char *tmp_path, const lc_digest *d, lc_err *err);
/* Reads a whole blob into a malloc'd, NUL-terminated buffer (*len excludes the NUL),
 * verifying its digest (DATA_LOSS on mismatch). NOT_FOUND if absent. */
int lc_statedir_read_blob(lc_statedir *sd, const lc_digest *d, char **data, size_t *len,
                          lc_err *err);

/* Path of the unpacked layer with this diff_id into buf; true if it exists. */
bool lc_statedir_layer_dir(const lc_statedir *sd, const lc_digest *diff_id, char *buf, size_t cap);

/* A new empty directory under tmp/ (prefix names it), path into buf. */
int lc_statedir_mktemp(lc_statedir *sd, const char *prefix, char *buf, size_t cap, lc_err *err);

/* Local action cache: step key -> state document digest. */
int lc_statedir_ac_get(lc_statedir *sd, const lc_digest *key, lc_digest *state, lc_err *err);
int lc_statedir_ac_put(lc_statedir *sd, const lc_digest *key, const lc_digest *state,
                       lc_err *err);

/* Image store: "name:tag" (a tag defaults to "latest") -> state document digest. */
int lc_statedir_image_put(lc_statedir *sd, const char *ref, const lc_digest *state, lc_err *err);
int lc_statedir_image_get(lc_statedir *sd, const char *ref, lc_digest *state, lc_err *err);
typedef int (*lc_statedir_image_fn)(void *ctx, const char *ref, const lc_digest *state);
int lc_statedir_image_list(lc_statedir *sd, lc_statedir_image_fn fn, void *ctx, lc_err *err);

/* Resolves a FROM / COPY --from image to the digest that stands for it in
 * keys: its state document digest in the image store (which determines its
 * manifest). Has the shape of lc_keys_resolve_fn; ctx is the lc_statedir. */
int lc_statedir_resolve(void *ctx, const char *image, const char *platform, lc_digest *out,
                        lc_err *err);

/* Normalizes an image reference: "app" -> "app:latest"; refuses empty
 * names, whitespace and '/' sequences that could escape the store. */
int lc_statedir_normalize_ref(const char *ref, char *buf, size_t cap, lc_err *err);

#endif
