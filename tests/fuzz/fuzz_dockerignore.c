/* fuzz_dockerignore.c - .dockerignore parsing and matching, path cleaning.
 * Input: ignore-file text, then "\n--\n", then one path per line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/context/dockerignore.h"
#include "build-worker/context/path.h"

static void check_clean(const char *p)
{
    char *a = lc_path_clean(p);
    char *b = a ? lc_path_clean(a) : NULL;
    if (a && b && strcmp(a, b) != 0)
        abort(); /* cleaning is idempotent */
    char *r = lc_path_rel_clean(p);
    if (r && (r[0] == '/' || strncmp(r, "../", 3) == 0 || strcmp(r, "..") == 0))
        abort(); /* a context path never leaves the root */
    free(a);
    free(b);
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *sep = strstr(buf, "\n--\n");
    char *paths = NULL;
    size_t ilen = size;
    if (sep != NULL) {
        *sep = '\0';
        paths = sep + 4;
        ilen = (size_t)(sep - buf);
    }
    lc_ignore *ig = NULL, *all = NULL, *none = NULL;
    lc_err err = {0};
    if (lc_ignore_parse(buf, ilen, NULL, &ig, &err) != 0) {
        if (err.msg[0] == '\0' || ig != NULL)
            abort();
        free(buf);
        return 0;
    }
    /* The same patterns plus a final "**" match everything; plus "!**", nothing. */
    size_t n = strlen(buf);
    char *t = malloc(n + 8);
    if (t != NULL) {
        memcpy(t, buf, n);
        memcpy(t + n, "\n**\n", 5);
        if (lc_ignore_parse(t, n + 4, NULL, &all, NULL) != 0)
            abort();
        memcpy(t + n, "\n!**\n", 6);
        if (lc_ignore_parse(t, n + 5, NULL, &none, NULL) != 0)
            abort();
    }
    for (char *line = paths; line != NULL && *line;) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        check_clean(line);
        char *rel = lc_path_rel_clean(line);
        if (rel != NULL) {
            bool m = lc_ignore_match(ig, rel);
            if (m != lc_ignore_match(ig, rel))
                abort();
            if (all != NULL && !lc_ignore_match(all, rel))
                abort();
            if (none != NULL && lc_ignore_match(none, rel))
                abort();
            free(rel);
        }
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; i < lc_ignore_count(ig); i++)
        check_clean(lc_ignore_pattern(ig, i));
    lc_ignore_free(&ig);
    lc_ignore_free(&all);
    lc_ignore_free(&none);
    free(t);
    free(buf);
    return 0;
}
