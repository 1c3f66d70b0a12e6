/* admin_client.h - layercache.v1.Admin calls (GetStats, ListActions, Purge)
 * on an lc_cache_client's channel: same target, token, deadlines and error
 * convention as the REAPI calls (cache_client.h).
 *
 * Requests and responses are the generated admin.proto messages. Responses
 * are owned by the caller: free them with the matching *_free below, which
 * NULLs the pointer and accepts NULL.
 */
#ifndef LC_ADMIN_CLIENT_H
#define LC_ADMIN_CLIENT_H

#include "cache_client.h"
#include "layercache/v1/admin.pb-c.h"

/* GetStats of one instance, or of every instance when instance is NULL or "". */
int lc_admin_client_get_stats(lc_cache_client *c, const char *instance,
                              Layercache__V1__GetStatsResponse **out, lc_err *err);

/* One page of ListActions. */
int lc_admin_client_list_actions(lc_cache_client *c, const Layercache__V1__ListActionsRequest *req,
                                 Layercache__V1__ListActionsResponse **out, lc_err *err);

/* Purge (req->dry_run: report what would go, remove nothing). */
int lc_admin_client_purge(lc_cache_client *c, const Layercache__V1__PurgeRequest *req,
                          Layercache__V1__PurgeResponse **out, lc_err *err);

void lc_admin_stats_free(Layercache__V1__GetStatsResponse **r);
void lc_admin_list_free(Layercache__V1__ListActionsResponse **r);
void lc_admin_purge_free(Layercache__V1__PurgeResponse **r);

#endif
