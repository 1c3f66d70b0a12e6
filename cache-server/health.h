/* health.h - grpc.health.v1.Health (proto/grpc/health/v1/health.proto), so
 * Kubernetes `grpc:` probes, grpc_health_probe and gRPC client-side health
 * checking can ask the server whether it serves.
 *
 * Check answers SERVING for "" (the server as a whole) and for every service
 * this server registers (the tables in services.h plus Health itself), and
 * NOT_FOUND for any other name, as the protocol asks. A server that answers
 * at all is serving: the store is opened before the port is bound and the
 * port is closed before the store.
 *
 * List returns the same statuses for every known service.
 *
 * Watch sends the status at once (SERVICE_UNKNOWN for an unknown name) and
 * keeps the stream open without holding a thread (server.c's
 * LC_STREAM_WAIT); on shutdown main.c sets NOT_SERVING and wakes the
 * streams, so watchers get NOT_SERVING and their stream ends with OK
 * instead of being cut at the end of the grace period.
 *
 * Access control: auth.c classifies these paths as needing no role, so
 * probes work without a token when --tokens is set (they reveal only that
 * the server is up and which services it has).
 */
#ifndef LC_HEALTH_H
#define LC_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

/* "/grpc.health.v1.Health/" */
#define LC_HEALTH_PREFIX "/grpc.health.v1.Health/"

extern const lc_method lc_health_methods[];
extern const size_t lc_health_n_methods;

/* 1 when service ("" or "package.Service") is served by this server, else
 * 0. Exposed for tests. */
int lc_health_known(const char *service);

/* Sets the status Watch reports (Check answers while the port is open).
 * Call lc_srv_wake_streams afterwards so open Watch streams see it. */
void lc_health_set_serving(bool serving);

#endif
