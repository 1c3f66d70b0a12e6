/* fuzz_http.c - the HTTP request-head reader of the metrics/dashboard
 * listener (cache-server/http_request.h): never reads out of bounds, a
 * complete head's length is within the input and re-reads the same from
 * just that prefix, an accepted head has a well-formed method and path, and
 * reading in two pieces agrees with reading at once (a complete or
 * malformed prefix stays so; an incomplete whole was incomplete before). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const lc_http_request *r)
{
    size_t ml = strlen(r->method), pl = strlen(r->path);
    if (ml == 0 || ml > LC_HTTP_METHOD_MAX || pl == 0 || pl > LC_HTTP_PATH_MAX ||
        r->path[0] != '/' || r->minor < 0 || r->minor > 9)
        abort();
    for (size_t i = 0; i < pl; i++)
        if ((unsigned char)r->path[i] <= 0x20 || (unsigned char)r->path[i] >= 0x7f ||
            r->path[i] == '?')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan catches any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    lc_http_request r, again;
    int n = lc_http_request_parse(buf, size, &r);
    if (n > 0) {
        if ((size_t)n > size)
            abort();
        check_request(&r);
        if (lc_http_request_parse(buf, (size_t)n, &again) != n ||
            strcmp(again.method, r.method) != 0 || strcmp(again.path, r.path) != 0)
            abort();
    }
    /* Split reads: every prefix must agree with the whole. */
    size_t cut = size ? (size_t)data[0] % (size + 1) : 0;
    int m = lc_http_request_parse(buf, cut, &again);
    if (m > 0 && m != n)
        abort();
    if (m < 0 && n >= 0)
        abort();
    if (n == 0 && m != 0)
        abort();
    free(buf);
    return 0;
}
