/* health.c - grpc.health.v1.Health (health.h). */
#include "health.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc_msg.h"
#include "services.h"

#define HEALTH_SERVICE "grpc.health.v1.Health"
#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING

/* The services are read off the method tables (services.h), so a method
 * added to a table is covered without touching this file. */

/* The service part of "/pkg.Service/Method": start and length. */
static size_t service_of(const char *path, const char **start)
{
    *start = path[0] == '/' ? path + 1 : path;
    const char *slash = strchr(*start, '/');
    return slash != NULL ? (size_t)(slash - *start) : strlen(*start);
}

int lc_health_known(const char *service)
{
    if (service == NULL || service[0] == '\0' || strcmp(service, HEALTH_SERVICE) == 0)
        return 1;
    size_t len = strlen(service);
    for (size_t t = 0; t < lc_svc_n_tables; t++) {
        for (size_t i = 0; i < *lc_svc_tables[t].n; i++) {
            const char *s;
            size_t slen = service_of(lc_svc_tables[t].m[i].path, &s);
            if (slen == len && memcmp(s, service, len) == 0)
                return 1;
        }
    }
    return 0;
}

static int check(const lc_call_ctx *ctx, const ProtobufCMessage *msg, grpc_byte_buffer **resp,
                 lc_err *err)
{
    (void)ctx;
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
    if (!lc_health_known(req->service))
        /* The protocol's answer for an unknown name; no name is echoed
         * beyond a bound, it is only for the person reading a probe log. */
        return lc_err_set(err, LC_NOT_FOUND,
                          "unknown service '%.200s': this server serves \"\", %s, the REAPI v2 "
                          "cache services, google.bytestream.ByteStream and layercache.v1.Admin",
                          req->service, HEALTH_SERVICE);
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = SERVING;
    *resp = lc_grpc_pack(&r.base);
    return 0;
}

/* Adds name to names[0..*n) unless present (services span several methods). */
static void add_name(const char **names, size_t *lens, size_t *n, const char *name, size_t len)
{
    for (size_t i = 0; i < *n; i++)
        if (lens[i] == len && memcmp(names[i], name, len) == 0)
            return;
    names[*n] = name;
    lens[*n] = len;
    (*n)++;
}

static int list(const lc_call_ctx *ctx, const ProtobufCMessage *msg, grpc_byte_buffer **resp,
                lc_err *err)
{
    (void)ctx;
    (void)msg;
    size_t max = 2;
    for (size_t t = 0; t < lc_svc_n_tables; t++)
        max += *lc_svc_tables[t].n;
    int rc = 0;
    const char **names = calloc(max, sizeof(*names));
    size_t *lens = calloc(max, sizeof(*lens));
    char **owned = calloc(max, sizeof(*owned));
    Grpc__Health__V1__HealthListResponse__StatusesEntry *entries = calloc(max, sizeof(*entries));
    Grpc__Health__V1__HealthListResponse__StatusesEntry **ptrs = calloc(max, sizeof(*ptrs));
    Grpc__Health__V1__HealthCheckResponse serving = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    serving.status = SERVING;
    size_t n = 0;
    if (names == NULL || lens == NULL || owned == NULL || entries == NULL || ptrs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory listing services");
        goto out;
    }
    add_name(names, lens, &n, "", 0);
    add_name(names, lens, &n, HEALTH_SERVICE, strlen(HEALTH_SERVICE));
    for (size_t t = 0; t < lc_svc_n_tables; t++) {
        for (size_t i = 0; i < *lc_svc_tables[t].n; i++) {
            const char *s;
            size_t slen = service_of(lc_svc_tables[t].m[i].path, &s);
            add_name(names, lens, &n, s, slen);
        }
    }
    for (size_t i = 0; i < n; i++) {
        owned[i] = strndup(names[i], lens[i]);
        if (owned[i] == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory listing services");
            goto out;
        }
        Grpc__Health__V1__HealthListResponse__StatusesEntry e =
            GRPC__HEALTH__V1__HEALTH_LIST_RESPONSE__STATUSES_ENTRY__INIT;
        entries[i] = e;
        entries[i].key = owned[i];
        entries[i].value = &serving;
        ptrs[i] = &entries[i];
    }
    Grpc__Health__V1__HealthListResponse r = GRPC__HEALTH__V1__HEALTH_LIST_RESPONSE__INIT;
    r.n_statuses = n;
    r.statuses = ptrs;
    *resp = lc_grpc_pack(&r.base);
out:
    if (owned != NULL)
        for (size_t i = 0; i < n; i++)
            free(owned[i]);
    free(ptrs);
    free(entries);
    free(owned);
    free(lens);
    free(names);
    return rc;
}

/* Serving until lc_health_set_serving(false) (shutdown). */
static atomic_bool not_serving;

void lc_health_set_serving(bool serving)
{
    atomic_store(&not_serving, !serving);
}

typedef struct watch_state {
    bool known;
    int sent; /* the status last sent, -1 before the first */
} watch_state;

static int watch_open(const lc_call_ctx *ctx, const ProtobufCMessage *msg, void **state,
                      lc_err *err)
{
    (void)ctx;
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
    watch_state *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    w->known = lc_health_known(req->service) != 0;
    w->sent = -1;
    *state = w;
    return 0;
}

static void watch_free(void *state, bool finished)
{
    (void)finished;
    free(state);
}

/* The current status at once, then a message on each change; the stream
 * ends (OK) once NOT_SERVING for a shutdown has gone out. An unknown name
 * gets SERVICE_UNKNOWN and stays open, as the protocol asks. */
static int watch_next(void *state, grpc_byte_buffer **msg, lc_err *err)
{
    watch_state *w = state;
    bool stopping = atomic_load(&not_serving);
    int status = !w->known
                     ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                 : stopping ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                            : SERVING;
    *msg = NULL;
    if (status != w->sent) {
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        r.status = status;
        if ((*msg = lc_grpc_pack(&r.base)) == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        w->sent = status;
        return 0;
    }
    return stopping ? 0 : LC_STREAM_WAIT;
}

const lc_method lc_health_methods[] = {
    {.path = LC_HEALTH_PREFIX "Check",
     .kind = LC_METHOD_UNARY,
     .request = &grpc__health__v1__health_check_request__descriptor,
     .unary = check},
    {.path = LC_HEALTH_PREFIX "List",
     .kind = LC_METHOD_UNARY,
     .request = &grpc__health__v1__health_list_request__descriptor,
     .unary = list},
    {.path = LC_HEALTH_PREFIX "Watch",
     .kind = LC_METHOD_SERVER_STREAM,
     .request = &grpc__health__v1__health_check_request__descriptor,
     .open = watch_open,
     .next = watch_next,
     .free_state = watch_free},
};
const size_t lc_health_n_methods = sizeof(lc_health_methods) / sizeof(lc_health_methods[0]);
