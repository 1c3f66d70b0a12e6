/* path.c - see path.h. */
#include "path.h"

#include <stdlib.h>
#include <string.h>

char *lc_path_clean_n(const char *p, size_t len)
{
    char *out = malloc(len + 2);
    if (out == NULL)
        return NULL;
    if (len == 0) {
        strcpy(out, ".");
        return out;
    }
    int rooted = p[0] == '/';
    size_t w = 0, r = 0;
    size_t dotdot = 0; /* write position below which ".." may not backtrack */
    if (rooted) {
        out[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < len) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == len || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == len || p[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                /* Drop the last element. */
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                /* Keep a leading ".." of a relative path. */
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            while (r < len && p[r] != '/')
                out[w++] = p[r++];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

char *lc_path_clean(const char *p)
{
    return lc_path_clean_n(p, strlen(p));
}

char *lc_path_rel_clean(const char *p)
{
    size_t n = strlen(p);
    char *tmp = malloc(n + 2);
    if (tmp == NULL)
        return NULL;
    /* Rooting first makes ".." stop at the context root. */
    tmp[0] = '/';
    memcpy(tmp + 1, p, n + 1);
    char *c = lc_path_clean(tmp);
    free(tmp);
    if (c == NULL)
        return NULL;
    if (strcmp(c, "/") == 0) {
        strcpy(c, ".");
        return c;
    }
    memmove(c, c + 1, strlen(c));
    return c;
}

char *lc_path_join(const char *a, const char *b)
{
    if (strcmp(a, ".") == 0 || a[0] == '\0')
        return strdup(b);
    size_t na = strlen(a), nb = strlen(b);
    char *out = malloc(na + nb + 2);
    if (out == NULL)
        return NULL;
    memcpy(out, a, na);
    out[na] = '/';
    memcpy(out + na + 1, b, nb + 1);
    return out;
}
