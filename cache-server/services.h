/* services.h - the gRPC services of layercache-server, one file each:
 * capabilities.c, action_cache.c, cas.c, bytestream.c, admin.c. Each
 * exports a method table for lc_srv_add_methods. Handlers validate every
 * request (protobuf-c leaves absent submessages NULL) and answer with
 * actionable INVALID_ARGUMENT messages. */
#ifndef LC_SERVICES_H
#define LC_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "digest.h"
#include "err.h"
#include "hits.h"
#include "server.h"
#include "stats.h"
#include "store.h"

/* Short names for the generated REAPI v2 types. */
#define LC_REAPI(T) Build__Bazel__Remote__Execution__V2__##T
#define LC_REAPI_INIT(T) BUILD__BAZEL__REMOTE__EXECUTION__V2__##T##__INIT
#define LC_REAPI_DESC(t) build__bazel__remote__execution__v2__##t##__descriptor
#define LC_REAPI_FN(f) build__bazel__remote__execution__v2__##f

/* Shared by all handlers (lc_call_ctx.env); read-only while serving. */
typedef struct lc_svc_env {
    lc_store *store;
    lc_stats *stats;
    int64_t max_batch_bytes;    /* what BatchUpdateBlobs/BatchReadBlobs accept */
    int64_t max_bytes;          /* --max-size for GetStats, 0 = unlimited */
    lc_hits *hits;              /* admin: batched hit counts and entry locks (NULL = none) */
    struct lc_cluster *cluster; /* cluster.h: NULL = single node (forward.c otherwise) */
    struct lc_trust *trust;     /* trust.h: --promote-quorum and its counters (NULL = none) */
} lc_svc_env;

extern const lc_method lc_capabilities_methods[];
extern const size_t lc_capabilities_n_methods;
extern const lc_method lc_action_cache_methods[];
extern const size_t lc_action_cache_n_methods;
extern const lc_method lc_cas_methods[];
extern const size_t lc_cas_n_methods;
extern const lc_method lc_bytestream_methods[];
extern const size_t lc_bytestream_n_methods;
extern const lc_method lc_admin_methods[];
extern const size_t lc_admin_n_methods;

/* Every table above, in registration order: the one list main.c registers,
 * health.c reports and the request fuzzer dispatches through (the health
 * service adds its own table, health.h). n points at the table's length. */
typedef struct lc_svc_table {
    const lc_method *m;
    const size_t *n;
} lc_svc_table;
extern const lc_svc_table lc_svc_tables[];
extern const size_t lc_svc_n_tables;
/* The method of lc_svc_tables with this path, or NULL. */
const lc_method *lc_svc_find(const char *path);

/* Validates a REAPI Digest message (NULL = missing) named what ("action_digest")
 * and converts it. INVALID_ARGUMENT naming the field and the problem. */
int lc_svc_digest(const LC_REAPI(Digest) * d, const char *what, lc_digest *out, lc_err *err);

/* Checks an instance_name field and a digest_function field (UNKNOWN or SHA256). */
int lc_svc_instance(const char *instance, lc_err *err);
int lc_svc_digest_function(int fn, lc_err *err);

/* Packs a response message into a byte buffer (NULL on out of memory). */
grpc_byte_buffer *lc_svc_pack(const void *msg);

#endif
