/* admin_client.c - see admin_client.h. */
#include "admin_client.h"

#include "cache_client_int.h"

int lc_admin_client_get_stats(lc_cache_client *c, const char *instance,
                              Layercache__V1__GetStatsResponse **out, lc_err *err)
{
    Layercache__V1__GetStatsRequest req = LAYERCACHE__V1__GET_STATS_REQUEST__INIT;
    req.instance_name = (char *)(instance ? instance : "");
    *out = NULL;
    return lc__cache_unary(c, LC__M_ADMIN_GET_STATS, &req.base,
                           &layercache__v1__get_stats_response__descriptor,
                           (ProtobufCMessage **)out, err);
}

int lc_admin_client_list_actions(lc_cache_client *c, const Layercache__V1__ListActionsRequest *req,
                                 Layercache__V1__ListActionsResponse **out, lc_err *err)
{
    *out = NULL;
    return lc__cache_unary(c, LC__M_ADMIN_LIST_ACTIONS, &req->base,
                           &layercache__v1__list_actions_response__descriptor,
                           (ProtobufCMessage **)out, err);
}

int lc_admin_client_purge(lc_cache_client *c, const Layercache__V1__PurgeRequest *req,
                          Layercache__V1__PurgeResponse **out, lc_err *err)
{
    *out = NULL;
    return lc__cache_unary(c, LC__M_ADMIN_PURGE, &req->base,
                           &layercache__v1__purge_response__descriptor, (ProtobufCMessage **)out,
                           err);
}

#define DEFINE_FREE(fn, T)                                                                         \
    void fn(T **r)                                                                                 \
    {                                                                                              \
        if (r != NULL && *r != NULL) {                                                             \
            protobuf_c_message_free_unpacked(&(*r)->base, NULL);                                   \
            *r = NULL;                                                                             \
        }                                                                                          \
    }

DEFINE_FREE(lc_admin_stats_free, Layercache__V1__GetStatsResponse)
DEFINE_FREE(lc_admin_list_free, Layercache__V1__ListActionsResponse)
DEFINE_FREE(lc_admin_purge_free, Layercache__V1__PurgeResponse)
