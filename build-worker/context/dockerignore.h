/* dockerignore.h - .dockerignore files and Docker's path pattern semantics
 * (moby/patternmatcher + BuildKit's ignorefile reader):
 *
 *  - one pattern a line; lines starting with '#' are comments; surrounding
 *    whitespace is trimmed; blank lines are skipped; a UTF-8 BOM is dropped;
 *  - '!' makes an exception (re-includes); the LAST matching pattern wins;
 *  - patterns are cleaned like Go's filepath.Clean, so "./a", "a/", "/a"
 *    all mean "a" (a leading '/' is stripped after cleaning);
 *  - syntax is Go's filepath.Match ('*' and '?' never cross '/', '[a-z]',
 *    '[^a-z]', '\' escapes) plus '**' which matches any number of path
 *    elements (at the start, in the middle or at the end of a pattern);
 *  - a path matches when it or any of its parent directories matches, so
 *    "build" excludes everything below build/.
 *
 * Paths passed to the matcher are relative to the context root, '/'
 * separated, cleaned, without a leading "./". */
#ifndef LC_DOCKERIGNORE_H
#define LC_DOCKERIGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct lc_ignore lc_ignore;

/* Parses .dockerignore text (len bytes, need not be NUL-terminated).
 * INVALID_ARGUMENT naming the line for a malformed pattern ("[a", "!").
 * *out is owned by the caller (lc_ignore_free). */
int lc_ignore_parse(const char *text, size_t len, const char *name, lc_ignore **out, lc_err *err);

/* Builds a matcher from a list of patterns (e.g. COPY --exclude values),
 * each cleaned the same way; a pattern may start with '!'. */
int lc_ignore_from_patterns(const char *const *patterns, size_t n, lc_ignore **out, lc_err *err);

/* Loads the ignore file for a build: "<dockerfile>.dockerignore" beside the
 * Dockerfile when it exists (it takes precedence), else
 * "<context>/.dockerignore", else an empty matcher. dockerfile may be NULL.
 * *used_path (optional) receives a malloc'd path of the file read, or NULL. */
int lc_ignore_load(const char *context_dir, const char *dockerfile, lc_ignore **out,
                   char **used_path, lc_err *err);

/* True when relpath (or one of its parent directories) is excluded. */
bool lc_ignore_match(const lc_ignore *ig, const char *relpath);

/* True if any pattern is an exception ('!'): a walker may then not skip an
 * excluded directory, since something below it could be re-included. */
bool lc_ignore_has_exceptions(const lc_ignore *ig);

size_t lc_ignore_count(const lc_ignore *ig);
/* The i-th cleaned pattern as stored ("!" prefix kept for exceptions). */
const char *lc_ignore_pattern(const lc_ignore *ig, size_t i);

void lc_ignore_free(lc_ignore **ig);

#endif
