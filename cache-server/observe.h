/* observe.h - times every gRPC call and reports it to the metrics (method,
 * status code, latency) and the dashboard (GetActionResult hit or miss per
 * key), by wrapping the services' method tables before they are registered,
 * like a server interceptor: server.c and the services stay unaware.
 *
 * Latency is measured from the handler's first callback (unary: the
 * handler; streams: open or the first message) to the end of the call
 * (unary: the handler's return; streams: the state's release), so it
 * includes a stream's network time but not the wait for the request
 * message. Calls the server rejects before any handler runs (an
 * undecodable request) are not seen.
 *
 * Process-wide: wrappers are plain functions, so the sink is global. One
 * server per process; lc_observe_reset after the server is freed.
 */
#ifndef LC_OBSERVE_H
#define LC_OBSERVE_H

#include <stddef.h>

#include "dashboard.h"
#include "metrics.h"
#include "server.h"

/* A copy of methods[0..n) whose handlers report to metrics and dash (both
 * borrowed, either may be NULL), valid until lc_observe_reset; or methods
 * itself when out of memory or the tables are full (calls then go
 * unobserved). */
const lc_method *lc_observe_wrap(lc_metrics *metrics, lc_dash *dash, const lc_method *methods,
                                 size_t n);

/* Frees the wrapped tables. Only when no call can be running. */
void lc_observe_reset(void);

#endif
