/* remote.h - the build's view of the cache server: lookups, downloads and a
 * background upload queue, with one rule above all: a cache problem never
 * fails a build that could succeed without the cache. The first failure to
 * reach the server is reported once ("continuing without the cache") and
 * the remote is then off for the rest of the build.
 *
 * Uploads run on one thread of their own, in the order they were queued, so
 * they overlap the next step's execution; lc_remote_drain waits for them.
 */
#ifndef LC_REMOTE_H
#define LC_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build-worker/keys/action.h"
#include "digest.h"
#include "err.h"
#include "progress.h"

enum lc_cache_mode { LC_CACHE_RW = 0, LC_CACHE_RO, LC_CACHE_OFF };

typedef struct lc_remote lc_remote;

typedef struct lc_remote_opts {
    const char *target;   /* "grpc[s]://host:port"; NULL or "" = no remote cache */
    const char *peers;    /* cluster peer list (cache_client.h: routes calls to owners);
                           * when set it is the remote cache and target is ignored */
    const char *instance; /* REAPI instance name */
    const char *token;    /* bearer token or NULL */
    const char *cacert;   /* grpcs://: CA PEM file or NULL (system roots) */
    const char *tls_cert; /* grpcs://: client certificate and key PEM files or NULL */
    const char *tls_key;
    int mode;             /* enum lc_cache_mode */
    const char *worker;   /* who we are, recorded in ExecutedActionMetadata */
} lc_remote_opts;

/* Never fails for an unreachable server (that is discovered lazily);
 * fails only on bad options (INVALID_ARGUMENT) or memory. progress is
 * borrowed for the one warning. */
int lc_remote_open(const lc_remote_opts *opts, lc_progress *progress, lc_remote **out,
                   lc_err *err);
/* Drains the upload queue, then closes. */
void lc_remote_close(lc_remote **r);

bool lc_remote_readable(const lc_remote *r);
bool lc_remote_writable(const lc_remote *r);

/* Looks keys[0..n) up at once. hit[i] is set and results[i] filled (clear
 * it with lc_step_result_clear) for hits; anything else is a miss. */
void lc_remote_lookup(lc_remote *r, const lc_digest *keys, size_t n, bool *hit,
                      lc_step_result *results);

/* Downloads blob d to path (created), verified. Fails (and removes path)
 * when the remote is off or the blob cannot be had. */
int lc_remote_fetch(lc_remote *r, const lc_digest *d, const char *path, lc_err *err);

/* One blob of an upload: in memory (data) or in a file (path). */
typedef struct lc_remote_blob {
    lc_digest digest;
    const void *data; /* copied at queue time */
    const char *path; /* read when uploaded: must exist until lc_remote_drain */
} lc_remote_blob;

/* Queues: FindMissingBlobs over blobs, uploads of the missing ones, then
 * UpdateActionResult(key, result). No-op unless writable. Copies what it
 * needs. on_done (may be NULL) runs on the upload thread with the bytes
 * uploaded. */
typedef void (*lc_remote_done_fn)(void *ctx, int status, uint64_t bytes_up);
void lc_remote_upload(lc_remote *r, const lc_digest *key, const lc_step_result *result,
                      double start, double end, const lc_remote_blob *blobs, size_t nblobs,
                      lc_remote_done_fn on_done, void *ctx);

/* registry: queues the upload of one blob (a base image layer or config
 * pulled from a registry) to the CAS, without an action result, when it is
 * missing there. path must exist until lc_remote_drain. No-op unless
 * writable. */
void lc_remote_put_blob(lc_remote *r, const lc_digest *d, const char *path);

/* Waits until every queued upload finished. */
void lc_remote_drain(lc_remote *r);

/* Totals so far. */
uint64_t lc_remote_bytes_down(const lc_remote *r);
uint64_t lc_remote_bytes_up(const lc_remote *r);

#endif
