/* agentfwd.h - ssh agent forwarding for RUN --mount=type=ssh: a unix
 * socket of the step's own, owned and moded as the mount asks (BuildKit:
 * uid/gid 0, mode 0600 by default), whose every connection is relayed to
 * the agent's socket on the worker. The step sees only the proxy; the
 * agent's own socket, its directory and its owner stay out of reach.
 *
 * Runs on the libuv loop of the RUN step (exec.c):
 *   lc_agentfwd_start(loop, "/priv/agent.0", agent_path, 0, 0, 0600, &fwd, &err);
 *   ... uv_run while the step runs ...
 *   lc_agentfwd_close(fwd);   // closes the listener and every relay; the
 *                             // loop finishes closing them, then frees
 */
#ifndef LC_AGENTFWD_H
#define LC_AGENTFWD_H

#include <uv.h>

#include "err.h"

typedef struct lc_agentfwd lc_agentfwd;

/* Listens on listen_path (created; its directory must exist). On failure
 * nothing is left on the loop. */
int lc_agentfwd_start(uv_loop_t *loop, const char *listen_path, const char *agent_path,
                      unsigned uid, unsigned gid, unsigned mode, lc_agentfwd **out, lc_err *err);

/* Starts closing everything; the memory goes when the loop has closed the
 * handles. Accepts NULL. */
void lc_agentfwd_close(lc_agentfwd *f);

#endif
