/* cache_client.h - blocking, thread-safe client of a REAPI v2 cache server
 * (layercache-server, or any REAPI cache) on gRPC C core.
 *
 * One lc_cache_client holds one channel; every call may come from any
 * thread at once (each call has its own completion queue). Calls are
 * blocking and bounded by the per-call deadline.
 *
 * Errors: 0 or a negative lc code (the gRPC status code of the call) with
 * "Method: server message" in err. A server that cannot be reached gives
 * -LC_UNAVAILABLE with "cache server HOST:PORT unreachable ...", quickly
 * (connect timeout), never a hang. NOT_FOUND from GetActionResult is a miss,
 * distinct from UNAVAILABLE.
 *
 * grpc_init() is called by lc_cache_client_open and balanced by
 * lc_cache_client_close (reference counted by gRPC itself).
 */
#ifndef LC_CACHE_CLIENT_H
#define LC_CACHE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "digest.h"
#include "err.h"

typedef Build__Bazel__Remote__Execution__V2__ActionResult lc_action_result;

typedef struct lc_cache_client lc_cache_client;

/* ByteStream messages carry at most this much data (1 MiB). */
#define LC_CACHE_CHUNK_SIZE (1024 * 1024)
/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" and a NUL. */
#define LC_CACHE_UUID_LEN 36

typedef struct lc_cache_client_options {
    const char *instance_name;  /* NULL or "" = the default instance */
    const char *token;          /* NULL = none; else sent as "authorization: Bearer <token>" */
    int64_t deadline_ms;        /* per call (a whole ByteStream stream); 0 = 60000 */
    int64_t connect_timeout_ms; /* first connection attempt; 0 = 3000 */
    size_t max_message_size;    /* largest message received; 0 = 64 MiB */
    /* TLS (grpcs:// targets only; PEM files, read at open): */
    const char *ca_file;   /* CAs that may sign the server's certificate; NULL = the
                            * system's roots */
    const char *cert_file; /* client certificate for mutual TLS, with key_file */
    const char *key_file;
    /* The name the server's certificate must carry, when it is not the
     * target's host (cluster peers dialled by resolved address); NULL = the
     * host. */
    const char *tls_server_name;
    /* How messages about ca_file name it to the user; NULL = "--cacert"
     * (the worker's flag; the server's peer clients say "--cluster-ca"). */
    const char *ca_flag;
    /* Cluster: the replicas' peer list, "HOST:PORT,HOST:PORT,..." (client
     * ports, spelled as the replicas' --peers names them; grpc:// or
     * grpcs:// prefixes allowed; NULL or "" = off). Each call then goes
     * straight to an owner of its key by the replicas' own placement
     * (common/placement.h): action-cache calls by action key, ByteStream by
     * blob, FindMissingBlobs and the batch calls split by owner. A peer that
     * answers UNAVAILABLE is skipped for a while and the call goes to the
     * next owner, then to any peer (every replica serves every call). Writes
     * go to one owner (it copies them to the others). Capabilities, raw
     * streams and Admin calls go to target, which may then be NULL or ""
     * (the first peer). */
    const char *peers;
} lc_cache_client_options;

/* Creates a client for target "grpc://host:port", "grpcs://host:port" (TLS,
 * the server's certificate must name host) or "host:port" (IPv6 as
 * "[::1]:port"); a comma list of those is a peer list (opts.peers) with no
 * other front address. opts may be NULL (defaults); its strings are copied and
 * its files read now (INVALID_ARGUMENT naming the file if one is unusable,
 * or if TLS files are given for a grpc:// target). Does not connect yet:
 * the first call does; a TLS handshake that fails (unknown CA, wrong host
 * name, no client certificate) makes calls fail with UNAVAILABLE and a
 * message saying TLS. *out is owned by the caller (lc_cache_client_close). */
int lc_cache_client_open(const char *target, const lc_cache_client_options *opts,
                         lc_cache_client **out, lc_err *err);

/* Destroys the channel and frees the client; NULLs *c; accepts NULL. No
 * call may be in flight. */
void lc_cache_client_close(lc_cache_client **c);

/* "host:port" as given (without the scheme); owned by the client. */
const char *lc_cache_client_target(const lc_cache_client *c);

/* ---- Capabilities ---------------------------------------------------- */
typedef struct lc_cache_capabilities {
    int sha256;                   /* SHA256 among the digest functions */
    int update_enabled;           /* ActionCache updates allowed */
    int64_t max_batch_total_size; /* 0 = server sets no limit */
    int low_major, low_minor;     /* low_api_version */
    int high_major, high_minor;   /* high_api_version */
} lc_cache_capabilities;

/* GetCapabilities. Fills out; does not judge it (see _check). */
int lc_cache_client_get_capabilities(lc_cache_client *c, lc_cache_capabilities *out, lc_err *err);
/* FAILED_PRECONDITION unless the server speaks SHA-256 and API 2.x
 * (low <= 2.x <= high). need_update also requires update_enabled. */
int lc_cache_capabilities_check(const lc_cache_capabilities *caps, int need_update, lc_err *err);

/* ---- Action cache ---------------------------------------------------- */
/* GetActionResult. 0 and *out (owned by the caller, lc_action_result_free)
 * on a hit; -LC_NOT_FOUND on a miss (*out NULL). */
int lc_cache_client_get_action_result(lc_cache_client *c, const lc_digest *key,
                                      lc_action_result **out, lc_err *err);

/* One key of a concurrent lookup. */
typedef struct lc_cache_lookup {
    lc_action_result *result; /* hit: owned by the caller (lc_action_result_free) */
    int status;               /* 0 hit, -LC_NOT_FOUND miss, else the call's error */
} lc_cache_lookup;

/* Looks up n keys at once: all n GetActionResult calls are started
 * together on one completion queue (at most 256 in flight) and collected.
 * out[i] belongs to keys[i]. Returns 0 when every call ended in a hit or a
 * miss; otherwise the first other error (err says which key), with every
 * out[i].status still filled in. On return, the caller frees every non-NULL
 * out[i].result (also on failure). */
int lc_cache_client_get_action_results(lc_cache_client *c, const lc_digest *keys, size_t n,
                                       lc_cache_lookup *out, lc_err *err);

/* UpdateActionResult (result is not taken over). */
int lc_cache_client_update_action_result(lc_cache_client *c, const lc_digest *key,
                                         const lc_action_result *result, lc_err *err);

void lc_action_result_free(lc_action_result **r);

/* ---- CAS ------------------------------------------------------------- */
/* FindMissingBlobs: missing[i] = 1 when digests[i] is absent, else 0
 * (missing has n entries, owned by the caller). Large n is split into
 * several requests. */
int lc_cache_client_find_missing(lc_cache_client *c, const lc_digest *digests, size_t n,
                                 unsigned char *missing, lc_err *err);

/* One blob of a batch call. */
typedef struct lc_cache_blob {
    lc_digest digest; /* in */
    void *data;       /* update: in, not taken over; read: out, malloc'd, owned by the caller */
    size_t len;       /* update: in (must equal digest.size); read: out */
    int status;       /* out: 0 or a negative lc code for this blob */
} lc_cache_blob;

/* BatchUpdateBlobs in one request (the caller keeps the total under the
 * server's max_batch_total_size). 0 when every blob was stored; otherwise
 * the first failing blob's code and message (every status filled in). */
int lc_cache_client_batch_update(lc_cache_client *c, lc_cache_blob *blobs, size_t n, lc_err *err);

/* BatchReadBlobs in one request. Each blob's data is checked against its
 * digest (DATA_LOSS on mismatch). 0 when every blob was read; otherwise the
 * first failing blob's code (NOT_FOUND, DATA_LOSS, ...). data is set only
 * for blobs with status 0 (free() it, also when the call failed). */
int lc_cache_client_batch_read(lc_cache_client *c, lc_cache_blob *blobs, size_t n, lc_err *err);

/* ---- ByteStream ------------------------------------------------------ */
/* Sequential source: up to len bytes into buf. Returns the count (0 = end),
 * or a negative lc code with err filled. */
typedef ssize_t (*lc_cache_read_fn)(void *ctx, void *buf, size_t len, lc_err *err);
/* Random-access source: up to len bytes at offset off (lets an interrupted
 * upload resume from the server's committed size). */
typedef ssize_t (*lc_cache_pread_fn)(void *ctx, void *buf, size_t len, int64_t off, lc_err *err);
/* Sink of a read: consumes len bytes; 0 or a negative lc code (err filled),
 * which cancels the read. */
typedef int (*lc_cache_write_fn)(void *ctx, const void *data, size_t len, lc_err *err);

/* Uploads a blob with ByteStream.Write in 1 MiB messages to
 * "{instance}/uploads/{uuid}/blobs/{hash}/{size}" (fresh UUIDv4). If the
 * stream breaks, asks QueryWriteStatus and resumes from the committed size
 * (a few times). The server verifies the digest: a mismatch is its
 * INVALID_ARGUMENT. data has d->size bytes. */
int lc_cache_client_write_buffer(lc_cache_client *c, const lc_digest *d, const void *data,
                                 lc_err *err);
/* Same from a file (read with pread from offset 0; d->size bytes). */
int lc_cache_client_write_fd(lc_cache_client *c, const lc_digest *d, int fd, lc_err *err);
/* Same from a random-access source (resumes like write_fd; the worker
 * counts the bytes it hands over for its progress display). */
int lc_cache_client_write_pread(lc_cache_client *c, const lc_digest *d, lc_cache_pread_fn fn,
                                void *ctx, lc_err *err);
/* Same from a sequential reader (no resume: it cannot rewind). The reader
 * must deliver exactly d->size bytes. */
int lc_cache_client_write_reader(lc_cache_client *c, const lc_digest *d, lc_cache_read_fn fn,
                                 void *ctx, lc_err *err);

/* The general upload, one stream, no automatic resume. */
typedef struct lc_cache_write_opts {
    const char *upload_id; /* NULL: a fresh UUIDv4; else continue that upload */
    int64_t start;         /* first offset sent (the committed size when resuming) */
    int64_t stop;          /* 0: send to the end and finish_write; else send [start, stop)
                            * and end without finish_write (a partial upload) */
    int abort;             /* with stop: cancel the call instead of half-closing, as a
                            * dropped connection would */
} lc_cache_write_opts;

/* Runs one Write stream. committed (may be NULL) gets the server's
 * committed_size when it answered. An unfinished (stop) stream returns the
 * server's status for it: whatever that is, the caller can
 * lc_cache_client_query_write_status and resume. */
int lc_cache_client_write(lc_cache_client *c, const lc_digest *d, const lc_cache_write_opts *wo,
                          lc_cache_pread_fn fn, void *ctx, int64_t *committed, lc_err *err);

/* QueryWriteStatus of upload upload_id of blob d. */
int lc_cache_client_query_write_status(lc_cache_client *c, const lc_digest *d,
                                       const char *upload_id, int64_t *committed, int *complete,
                                       lc_err *err);

/* ByteStream.Read of "{instance}/blobs/{hash}/{size}" from offset, at most
 * limit bytes (0 = to the end), into fn. Reading a whole blob (offset 0,
 * limit 0) verifies its size and SHA-256: a mismatch is -LC_DATA_LOSS (fn
 * has then already seen the bad bytes: the caller discards them). nread
 * (may be NULL) gets the byte count delivered. */
int lc_cache_client_read(lc_cache_client *c, const lc_digest *d, int64_t offset, int64_t limit,
                         lc_cache_write_fn fn, void *ctx, int64_t *nread, lc_err *err);
/* Whole blob into a new malloc'd buffer (*out owned by the caller; a
 * non-NULL pointer even for the empty blob). */
int lc_cache_client_read_buffer(lc_cache_client *c, const lc_digest *d, void **out, lc_err *err);
/* Whole blob written to fd at its current position. */
int lc_cache_client_read_fd(lc_cache_client *c, const lc_digest *d, int fd, lc_err *err);

/* Raw streams with a resource name used verbatim and no checks on the
 * client side (tests, tools): Write sends data in 1 MiB messages starting
 * at write_offset (finish_write on the last one when finish); Read delivers
 * whatever the server sends. */
int lc_cache_client_write_raw(lc_cache_client *c, const char *resource, int64_t write_offset,
                              const void *data, size_t len, int finish, int64_t *committed,
                              lc_err *err);
int lc_cache_client_read_raw(lc_cache_client *c, const char *resource, int64_t offset,
                             int64_t limit, lc_cache_write_fn fn, void *ctx, int64_t *nread,
                             lc_err *err);

/* ---- pure helpers (exposed for tests and the worker) ----------------- */
/* Writes a random UUIDv4 and a NUL into out. */
void lc_cache_uuid(char out[LC_CACHE_UUID_LEN + 1]);
/* "{instance}/blobs/{hash}/{size}" ("blobs/..." for the default instance)
 * into buf; -LC_INVALID_ARGUMENT if it does not fit. */
int lc_cache_resource_read(const char *instance, const lc_digest *d, char *buf, size_t cap);
/* "{instance}/uploads/{uuid}/blobs/{hash}/{size}" into buf. */
int lc_cache_resource_upload(const char *instance, const char *uuid, const lc_digest *d, char *buf,
                             size_t cap);
/* Splits "grpc://host:port" / "grpcs://host:port" / "host:port" into
 * "host:port" (into buf). INVALID_ARGUMENT for other schemes or a missing
 * port. */
int lc_cache_parse_target(const char *target, char *buf, size_t cap, lc_err *err);
/* 1 when target asks for TLS (grpcs://), else 0. */
int lc_cache_target_is_tls(const char *target);

#endif
