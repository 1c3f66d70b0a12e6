/* admin.h - helpers of the Admin service (admin.c) that the action cache
 * uses when it records and serves entries. */
#ifndef LC_ADMIN_H
#define LC_ADMIN_H

#include <stddef.h>

#include "services.h"

/* Who is writing an action cache entry, into out (always NUL-terminated):
 * the authenticated caller's name once access control provides one (hook in
 * admin.c), else ExecutedActionMetadata.worker, else the client tool named
 * in the REAPI RequestMetadata header, else the user-agent, else "".
 * meta may be NULL. */
void lc_admin_writer(const lc_call_ctx *ctx, const LC_REAPI(ExecutedActionMetadata) * meta,
                     char *out, size_t cap);

/* The original execution time of a result in seconds (execution_completed
 * - execution_start of its metadata), 0 when unknown or negative. */
double lc_admin_exec_seconds(const LC_REAPI(ActionResult) * ar);

/* The instruction of an action key (from its Action and Command in the
 * CAS), malloc'd; "" when they are not there; NULL only when out of memory.
 * The dashboard shows it beside the key. */
char *lc_admin_describe(lc_store *s, const lc_digest *action);

/* The dashboard's list of action cache entries (GET /api/actions, admin
 * only), malloc'd JSON, NULL on failure:
 *   {"total":N,"untrusted":N,"writers":[{"name","entries"}...] (untrusted
 *    writers, most entries first),"entries":[{"instance","key","text",
 *    "writer","trust","promoted_from":[...],"created","last_hit","hits",
 *    "size_bytes","incomplete"}...] (the newest `limit`)}.
 * Scans the whole action cache like ListActions: run it off the HTTP loop. */
char *lc_admin_entries_json(lc_store *s, lc_hits *h, size_t limit);

#endif
