/* walk.h - the files a COPY/ADD source selects from the build context.
 *
 * Rules (BuildKit's, for a local context):
 *  - a source is a path relative to the context root ("/" and ".." cannot
 *    leave it), cleaned; it may hold Go filepath.Match wildcards ('*', '?',
 *    '[...]', never crossing '/'), matched element by element;
 *  - a matched directory selects its contents recursively (the directory's
 *    entry itself is kept too, dest "."); a matched file selects itself;
 *  - a matched top-level symlink is followed inside the root (an absolute
 *    target or ".." cannot leave it, as BuildKit scopes them): the entry's
 *    path is where it leads; symlinks below a selected directory are kept
 *    as links;
 *  - anything .dockerignore excludes is invisible; a directory excluded as a
 *    whole is still descended when an exception ('!') could re-include
 *    something below it, and then kept only if something below it is;
 *  - --exclude patterns are matched against the path relative to the
 *    selected source (and against the context-relative path);
 *  - a source without wildcards that selects nothing is an error
 *    (LC_NOT_FOUND); a wildcard matching nothing selects nothing.
 *
 * Entries come out in a deterministic order: by source argument, then by
 * matched path, then depth-first in byte order of names. */
#ifndef LC_WALK_H
#define LC_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "dockerignore.h"
#include "err.h"
#include "statcache.h"

typedef struct lc_ctx_entry {
    char *path;       /* relative to the context root, '/'-separated */
    char *dest;       /* relative to the COPY destination ("." for a matched dir) */
    uint32_t src;     /* index of the source argument that selected it */
    uint32_t mode;    /* st_mode as on disk: type and permission bits */
    int64_t size;     /* regular files: bytes */
    char *link;       /* symlinks: the target as stored, else NULL */
    lc_stat_key st;   /* for the stat cache */
    lc_digest digest; /* regular files: content digest, valid once hashed */
    bool hashed;
    bool match; /* the matched source itself (not something below it) */
} lc_ctx_entry;

typedef struct lc_selection {
    lc_ctx_entry *entries;
    size_t n, cap;
    uint64_t files; /* regular files */
    uint64_t bytes; /* their total size */
} lc_selection;

/* Selects what sources[0..nsrc) name under root (an existing directory),
 * honouring ig (may be NULL) and exclude (may be NULL). *out is owned by
 * the caller (lc_selection_free). Errors name the source and the reason. */
int lc_walk_select(const char *root, const lc_ignore *ig, const char *const *sources, size_t nsrc,
                   const lc_ignore *exclude, lc_selection **out, lc_err *err);

/* True if s contains an unescaped '*', '?' or '['. */
bool lc_walk_has_wildcards(const char *s);

void lc_selection_free(lc_selection **s);

#endif
