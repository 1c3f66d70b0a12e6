/* strlist.c - see strlist.h. */
#include "strlist.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int lc_strlist_push_owned(lc_strlist *l, char *s)
{
    if (s == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    if (l->len + 1 >= l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **items = realloc(l->items, cap * sizeof(*items));
        if (items == NULL) {
            free(s);
            return -LC_RESOURCE_EXHAUSTED;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = s;
    l->items[l->len] = NULL;
    return 0;
}

int lc_strlist_push(lc_strlist *l, const char *s) { return lc_strlist_push_owned(l, strdup(s)); }

void lc_strlist_clear(lc_strlist *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = l->cap = 0;
}
