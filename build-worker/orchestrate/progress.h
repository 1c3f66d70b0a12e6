/* progress.h - build progress in BuildKit's plain style, the closing
 * summary, and the --summary-json document.
 *
 *   #3 [api 2/5] RUN make deps
 *   #3 0.412 fetching deps...
 *   #3 DONE 1.3s
 *   #4 [api 3/5] COPY src/ /app/src/
 *   #4 CACHED (remote)
 *
 * One lc_progress per build, used from the build's loop thread only.
 */
#ifndef LC_PROGRESS_H
#define LC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum lc_step_cached { LC_STEP_EXECUTED = 0, LC_STEP_CACHED_LOCAL, LC_STEP_CACHED_REMOTE };

typedef struct lc_progress lc_progress;

/* out is not owned (stdout usually). */
lc_progress *lc_progress_new(FILE *out);
void lc_progress_free(lc_progress **p);

/* Registers the next step (numbered in build order) with its display label
 * ("api 2/5"), instruction text and key ("sha256:..."); returns its slot.
 * Uncounted steps (a stage's FROM) are shown but left out of the summary. */
int lc_progress_add(lc_progress *p, const char *stage, const char *label, const char *instruction,
                    const char *key, bool counted);
/* Replaces a step's key (a step re-keyed by content, see build.c). */
void lc_progress_set_key(lc_progress *p, int slot, const char *key);
void lc_progress_begin(lc_progress *p, int slot);
/* Forgets a step's outcome (it is about to run after all). */
void lc_progress_reset(lc_progress *p, int slot);
/* One line of a running step's output (without the newline). */
void lc_progress_output(lc_progress *p, int slot, const char *line, size_t len);
void lc_progress_cached(lc_progress *p, int slot, enum lc_step_cached where);
void lc_progress_done(lc_progress *p, int slot, double seconds);
void lc_progress_error(lc_progress *p, int slot, const char *message);
void lc_progress_bytes(lc_progress *p, int slot, uint64_t down, uint64_t up);
/* A one-time notice (cache server unreachable, ...), printed as "WARNING: ...". */
void lc_progress_warn(lc_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lc_progress_note(lc_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the closing summary line(s). */
void lc_progress_summary(lc_progress *p, double wall_seconds, const char *manifest_digest);
/* Writes the --summary-json document. */
int lc_progress_write_json(lc_progress *p, const char *path, double wall_seconds,
                           const char *manifest_digest, const char *state_digest, lc_err *err);

#endif
