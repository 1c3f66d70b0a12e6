/* remote.h - the build's view of the cache server: lookups, downloads and a
 * background upload queue, with one rule above all: a cache problem never
 * fails a build that could succeed without the cache (unless the build asks
 * for that with --cache-required), and never goes unsaid. The server is
 * probed (GetCapabilities) as soon as the remote opens, so an unreachable
 * server, a refused token or a failed TLS handshake is known even when
 * every step hits locally. Each failure is one warning naming its cause
 * (unreachable, auth failure, TLS), and the state it leaves the cache in
 * (lc_remote_status) goes into the build's summary:
 *   ok        every call worked;
 *   degraded  the cache is used, partly: a read-only token (no uploads), an
 *             upload the server refused, a blob it no longer had;
 *   off       no cache server given, --cache-mode off, or the server could
 *             not be used (the rest of the build runs without it).
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
    int mode;           /* enum lc_cache_mode */
    const char *worker; /* who we are, recorded in ExecutedActionMetadata */
    bool required;      /* --cache-required: probe before returning, and fail
                         * (FAILED_PRECONDITION with the cause) if the cache
                         * is not usable */
} lc_remote_opts;

/* Never fails for an unreachable server (unless opts->required): that is
 * found by the probe, in the background; fails on bad options
 * (INVALID_ARGUMENT) or memory. progress is borrowed for warnings and byte
 * counts. */
int lc_remote_open(const lc_remote_opts *opts, lc_progress *progress, lc_remote **out, lc_err *err);
/* Drains the upload queue, then closes. */
void lc_remote_close(lc_remote **r);

bool lc_remote_readable(const lc_remote *r);
bool lc_remote_writable(const lc_remote *r);

enum lc_cache_state { LC_CACHE_STATE_OK = 0, LC_CACHE_STATE_DEGRADED, LC_CACHE_STATE_OFF };

typedef struct lc_remote_status {
    int state;                   /* enum lc_cache_state */
    bool auth;                   /* the cause is an auth failure (token refused, read-only) */
    char reason[LC_ERR_MSG_MAX]; /* "" when ok; else the cause, e.g. "auth failure
                                  * (UNAUTHENTICATED): ..." or "cache server ...
                                  * unreachable ..." */
} lc_remote_status;

/* The cache's state so far. */
void lc_remote_get_status(lc_remote *r, lc_remote_status *out);
/* "ok", "degraded", "off". */
const char *lc_remote_state_name(int state);
/* --cache-required: FAILED_PRECONDITION naming the cause once the cache is
 * off, or read-only through an auth failure; 0 otherwise (and always
 * without --cache-required). */
int lc_remote_check_required(lc_remote *r, lc_err *err);

/* Looks keys[0..n) up at once. hit[i] is set and results[i] filled (clear
 * it with lc_step_result_clear) for hits; anything else is a miss. */
void lc_remote_lookup(lc_remote *r, const lc_digest *keys, size_t n, bool *hit,
                      lc_step_result *results);

/* Downloads blob d to path (created), verified. Fails (and removes path)
 * when the remote is off or the blob cannot be had. Large blobs show their
 * bytes on step slot (-1: the build's). err may be NULL. */
int lc_remote_fetch(lc_remote *r, const lc_digest *d, const char *path, int slot, lc_err *err);

/* One blob of an upload: in memory (data) or in a file (path). */
typedef struct lc_remote_blob {
    lc_digest digest;
    const void *data; /* copied at queue time */
    const char *path; /* read when uploaded: must exist until lc_remote_drain */
} lc_remote_blob;

/* Queues: FindMissingBlobs over blobs, uploads of the missing ones, then
 * UpdateActionResult(key, result). No-op unless writable. Copies what it
 * needs. on_done (may be NULL) runs on the upload thread with the bytes
 * uploaded. Large uploads show their bytes on step slot (-1: none). */
typedef void (*lc_remote_done_fn)(void *ctx, int status, uint64_t bytes_up);
void lc_remote_upload(lc_remote *r, const lc_digest *key, const lc_step_result *result,
                      double start, double end, const lc_remote_blob *blobs, size_t nblobs,
                      int slot, lc_remote_done_fn on_done, void *ctx);

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
