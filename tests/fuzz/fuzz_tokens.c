/* fuzz_tokens.c - the tokens file parser and the bearer-token check: never
 * crash; a file that loads answers every check with one of the documented
 * codes, and a refusal message never holds the presented token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache-server/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Input: tokens file, then after the first 0xff byte an authorization
     * value to check against it. */
    const uint8_t *sep = memchr(data, 0xff, size);
    size_t flen = sep != NULL ? (size_t)(sep - data) : size;
    lc_auth *a = NULL;
    lc_err err = {0};
    if (lc_auth_open_text((const char *)data, flen, "fuzz", (size & 1) != 0, &a, &err) != 0) {
        if (a != NULL || err.code != LC_INVALID_ARGUMENT || err.msg[0] == '\0')
            abort();
        return 0;
    }
    char value[512];
    size_t vlen = 0;
    if (sep != NULL) {
        vlen = size - flen - 1;
        if (vlen >= sizeof(value))
            vlen = sizeof(value) - 1;
        memcpy(value, sep + 1, vlen);
    }
    value[vlen] = '\0';
    grpc_metadata m;
    memset(&m, 0, sizeof(m));
    m.key = grpc_slice_from_static_string("authorization");
    m.value = grpc_slice_from_static_buffer(value, vlen);
    grpc_metadata_array md = {.count = sep != NULL ? 1 : 0, .capacity = 1, .metadata = &m};
    static const char *const methods[] = {
        "/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
        "/google.bytestream.ByteStream/Write",
        "/layercache.v1.Admin/Purge",
    };
    for (size_t i = 0; i < 3; i++) {
        lc_auth_id id;
        lc_err_clear(&err);
        int rc = lc_auth_check(a, &md, lc_auth_method_role(methods[i]), methods[i], &id, &err);
        if (rc != 0 && rc != -LC_UNAUTHENTICATED && rc != -LC_PERMISSION_DENIED)
            abort();
        if (rc == 0 && !lc_auth_allows(id.role, lc_auth_method_role(methods[i])))
            abort();
        /* untrusted tokens are named (their entries are kept under it). */
        if (rc == 0 && id.role == LC_ROLE_UNTRUSTED && id.name[0] == '\0')
            abort();
        /* A presented token of some length must not be echoed back. */
        const char *tok = strrchr(value, ' ');
        if (rc != 0 && tok != NULL && strlen(tok + 1) >= 12 && strstr(err.msg, tok + 1) != NULL)
            abort();
    }
    lc_auth_free(&a);
    return 0;
}
