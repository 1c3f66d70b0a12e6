/* capabilities.c - Capabilities.GetCapabilities: what REAPI clients check
 * before using the cache (Bazel refuses a server without SHA256,
 * update_enabled or a 2.0..2.x API range). */
#include <stdio.h>
#include "services.h"

static int get_capabilities(const lc_call_ctx *ctx, const ProtobufCMessage *msg,
                            grpc_byte_buffer **resp, lc_err *err)
{
    const lc_svc_env *env = ctx->env;
    const LC_REAPI(GetCapabilitiesRequest) *req = (const void *)msg;
    int rc = lc_svc_instance(req->instance_name, err);
    if (rc < 0)
        return rc;

    LC_REAPI(DigestFunction__Value)
    digest_fns[] = {BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256};
    LC_REAPI(Compressor__Value)
    compressors[] = {BUILD__BAZEL__REMOTE__EXECUTION__V2__COMPRESSOR__VALUE__IDENTITY};
    LC_REAPI(ActionCacheUpdateCapabilities)
    update = LC_REAPI_INIT(ACTION_CACHE_UPDATE_CAPABILITIES);
    /* Per caller: a read-only token must not make Bazel try uploads. */
    update.update_enabled = lc_auth_allows(ctx->role, LC_ROLE_WRITE); /* untrusted too: trust.h */
    LC_REAPI(CacheCapabilities) cache = LC_REAPI_INIT(CACHE_CAPABILITIES);
    cache.n_digest_functions = 1;
    cache.digest_functions = digest_fns;
    cache.action_cache_update_capabilities = &update;
    cache.max_batch_total_size_bytes = env->max_batch_bytes;
    cache.symlink_absolute_path_strategy =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__SYMLINK_ABSOLUTE_PATH_STRATEGY__VALUE__ALLOWED;
    cache.n_supported_compressors = 1;
    cache.supported_compressors = compressors;
    cache.n_supported_batch_update_compressors = 1;
    cache.supported_batch_update_compressors = compressors;

    Build__Bazel__Semver__SemVer low = BUILD__BAZEL__SEMVER__SEM_VER__INIT;
    Build__Bazel__Semver__SemVer high = BUILD__BAZEL__SEMVER__SEM_VER__INIT;
    Build__Bazel__Semver__SemVer deprecated = BUILD__BAZEL__SEMVER__SEM_VER__INIT;
    low.major = 2;
    high.major = 2;
    high.minor = 3;
    deprecated.major = 2;

    LC_REAPI(ServerCapabilities) caps = LC_REAPI_INIT(SERVER_CAPABILITIES);
    caps.cache_capabilities = &cache;
    caps.low_api_version = &low;
    caps.high_api_version = &high;
    caps.deprecated_api_version = &deprecated;
    *resp = lc_svc_pack(&caps);
    return 0;
}

const lc_method lc_capabilities_methods[] = {
    {.path = "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
     .kind = LC_METHOD_UNARY,
     .request = &LC_REAPI_DESC(get_capabilities_request),
     .unary = get_capabilities},
};
const size_t lc_capabilities_n_methods =
    sizeof(lc_capabilities_methods) / sizeof(lc_capabilities_methods[0]);
