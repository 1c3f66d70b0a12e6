/* fuzz_resource.c - resource-name parsing: never crashes, and every accepted
 * name formats back to a name that parses to the same resource. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resource.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* First byte picks the kind; the rest is the name. */
    lc_resource_kind kind = (data[0] & 1) ? LC_RESOURCE_UPLOAD : LC_RESOURCE_READ;
    const char *name = (const char *)data + 1;
    size_t len = size - 1;
    lc_resource r, again;
    lc_err err;
    if (lc_resource_parse(name, len, kind, &r, &err) != 0) {
        if (err.code != LC_INVALID_ARGUMENT || err.msg[0] == '\0')
            abort();
        (void)lc_resource_check_instance(name, len, &err);
        return 0;
    }
    char out[LC_RESOURCE_MAX + 64];
    int n = lc_resource_format(&r, out, sizeof(out));
    if (n < 0 || lc_resource_parse(out, (size_t)n, kind, &again, &err) != 0)
        abort();
    if (strcmp(r.instance, again.instance) != 0 || strcmp(r.uuid, again.uuid) != 0 ||
        !lc_digest_equal(&r.digest, &again.digest))
        abort();
    return 0;
}
