/* fuzz_http.c - the HTTP request-head reader of the metrics/dashboard
 * listener (cache-server/http_request.h): never reads out of bounds, a
 * complete head's length is within the input and re-reads the same from
 * just that prefix, an accepted head has a well-formed method and path, and
 * reading in two pieces agrees with reading at once (a complete or
 * malformed prefix stays so; an incomplete whole was incomplete before). */
#include <stdbool.h>
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
    /* The access headers (http_auth.h): within their buffers, no control
     * byte but HTAB, and a flagged one is never kept half-read. */
    const struct {
        const char *v;
        size_t max;
        bool bad;
    } kept[] = {{r->authorization, LC_HTTP_AUTHZ_MAX, r->authorization_bad},
                {r->session, LC_HTTP_SESSION_MAX, r->session_bad},
                {r->host, LC_HTTP_HOST_MAX, r->host_bad},
                {r->origin, LC_HTTP_HOST_MAX, r->origin_bad},
                {r->query, LC_HTTP_QUERY_MAX, false}};
    for (size_t k = 0; k < sizeof(kept) / sizeof(kept[0]); k++) {
        size_t n = strnlen(kept[k].v, kept[k].max + 1);
        if (n > kept[k].max)
            abort();
        for (size_t i = 0; i < n; i++)
            if (((unsigned char)kept[k].v[i] < 0x20 && kept[k].v[i] != '\t') ||
                (unsigned char)kept[k].v[i] == 0x7f)
                abort();
    }
    if (r->session_bad && r->session[0] != '\0' && strlen(r->session) > LC_HTTP_SESSION_MAX)
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
