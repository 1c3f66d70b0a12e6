/* strlist.h - a growable list of owned C strings (repeated flags, args). */
#ifndef LC_STRLIST_H
#define LC_STRLIST_H

#include <stddef.h>

typedef struct lc_strlist {
    char **items;  /* each owned by the list; items[len] is NULL */
    size_t len;
    size_t cap;
} lc_strlist;

/* Appends a copy of s; 0 or -LC_RESOURCE_EXHAUSTED. */
int lc_strlist_push(lc_strlist *l, const char *s);
/* Appends s itself, taking ownership (freed by the list even on failure). */
int lc_strlist_push_owned(lc_strlist *l, char *s);
void lc_strlist_clear(lc_strlist *l);

#endif
