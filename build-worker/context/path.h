/* path.h - slash-separated relative paths inside a build context, cleaned the
 * way Go's filepath.Clean does (Docker and BuildKit clean every pattern and
 * source path with it, so we must agree byte for byte). */
#ifndef LC_CTX_PATH_H
#define LC_CTX_PATH_H

#include <stddef.h>

/* Returns a newly allocated cleaned copy of p[0..len): repeated slashes
 * collapsed, "." elements removed, ".." resolved lexically ("/.." is "/"),
 * no trailing slash, "" becomes ".". Caller frees; NULL on allocation failure. */
char *lc_path_clean_n(const char *p, size_t len);
char *lc_path_clean(const char *p);

/* Cleans p as a path inside a context: a leading "/" is dropped, ".." cannot
 * climb above the root, the root itself is ".". Caller frees. */
char *lc_path_rel_clean(const char *p);

/* "a" + "b" -> "a/b"; "." + "b" -> "b". Caller frees. */
char *lc_path_join(const char *a, const char *b);

#endif
