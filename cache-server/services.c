/* services.c - request validation helpers shared by the services (services.h). */
#include <stdio.h>
#include "services.h"

#include <string.h>

#include "grpc_msg.h"
#include "resource.h"

const lc_svc_table lc_svc_tables[] = {
    {lc_capabilities_methods, &lc_capabilities_n_methods},
    {lc_action_cache_methods, &lc_action_cache_n_methods},
    {lc_cas_methods, &lc_cas_n_methods},
    {lc_bytestream_methods, &lc_bytestream_n_methods},
    {lc_admin_methods, &lc_admin_n_methods},
};
const size_t lc_svc_n_tables = sizeof(lc_svc_tables) / sizeof(lc_svc_tables[0]);

const lc_method *lc_svc_find(const char *path)
{
    for (size_t t = 0; t < lc_svc_n_tables; t++)
        for (size_t i = 0; i < *lc_svc_tables[t].n; i++)
            if (strcmp(lc_svc_tables[t].m[i].path, path) == 0)
                return &lc_svc_tables[t].m[i];
    return NULL;
}

int lc_svc_digest(const LC_REAPI(Digest) * d, const char *what, lc_digest *out, lc_err *err)
{
    if (d == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s is missing (a Digest with hash and size)",
                          what);
    const char *hash = d->hash ? d->hash : "";
    lc_err derr = {0};
    if (lc_digest_parse(hash, strlen(hash), d->size_bytes, out, &derr) != 0) {
        char shown[80];
        size_t len = strlen(hash);
        snprintf(shown, sizeof(shown), "%.*s%s", len > 70 ? 70 : (int)len, hash,
                 len > 70 ? "..." : "");
        for (char *p = shown; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s '%s/%lld': %s", what, shown,
                          (long long)d->size_bytes, derr.msg);
    }
    return 0;
}

int lc_svc_instance(const char *instance, lc_err *err)
{
    return lc_resource_check_instance(instance ? instance : "", instance ? strlen(instance) : 0,
                                      err);
}

int lc_svc_digest_function(int fn, lc_err *err)
{
    if (fn != BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__UNKNOWN &&
        fn != BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "digest_function %d is not supported: this server uses SHA256 only", fn);
    return 0;
}

grpc_byte_buffer *lc_svc_pack(const void *msg)
{
    return lc_grpc_pack((const ProtobufCMessage *)msg);
}
