/* progress.h - build progress on stderr in the styles `docker buildx build
 * --progress` offers, the closing summary, and the --summary-json document.
 *
 * plain (BuildKit's plain output; the default when stderr is not a terminal):
 *   #3 [api 2/5] RUN make deps
 *   #3 0.412 fetching deps...
 *   #3 uploading sha256:0f3c9a1b2d4e 10.5 MB / 52.4 MB 1.0s
 *   #3 DONE 1.3s
 *   #4 [api 3/5] COPY src/ /app/src/
 *   #4 CACHED (remote)
 * tty: a view redrawn in place (the running steps, their last output lines
 *   and byte counts), finished steps printed above it once;
 * quiet: nothing but warnings and errors;
 * rawjson: one JSON object per line in the shape of BuildKit's SolveStatus
 *   (vertexes, statuses, logs, warnings; byte strings base64).
 *
 * Warnings are printed in every mode: a cache that stops working is never
 * silent. One lc_progress per build; every function may be called from any
 * thread (uploads report from their own).
 */
#ifndef LC_PROGRESS_H
#define LC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum lc_step_cached { LC_STEP_EXECUTED = 0, LC_STEP_CACHED_LOCAL, LC_STEP_CACHED_REMOTE };

enum lc_progress_mode {
    LC_PROGRESS_PLAIN = 0,
    LC_PROGRESS_TTY,
    LC_PROGRESS_QUIET,
    LC_PROGRESS_RAWJSON,
};

typedef struct lc_progress lc_progress;

/* "auto|tty|plain|quiet|rawjson" into *mode; auto is tty when fd is a
 * terminal, else plain. tty on a non-terminal is INVALID_ARGUMENT. */
int lc_progress_mode_parse(const char *s, int fd, int *mode, lc_err *err);

/* out is not owned (stderr usually). tty mode starts a thread that redraws
 * the view until lc_progress_free. NULL on OOM. */
lc_progress *lc_progress_new(FILE *out, int mode);
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

/* A long byte operation (hashing, packing, upload, download, registry
 * transfer) of step slot, or of the build itself (slot -1): what it is
 * ("uploading sha256:0f3c9a1b2d4e"), total bytes (0: unknown). Shown while
 * it lasts; in plain mode only once it has lasted a second, then every
 * second and at its end. Returns an id for _update/_end (-1 on OOM, which
 * they accept). */
int lc_progress_transfer_begin(lc_progress *p, int slot, const char *what, uint64_t total);
void lc_progress_transfer_update(lc_progress *p, int id, uint64_t done);
void lc_progress_transfer_end(lc_progress *p, int id);

/* A notice ("WARNING: ..."), printed in every mode. */
void lc_progress_warn(lc_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Information (pulls, rebuilt stages); not in quiet mode. */
void lc_progress_note(lc_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The cache's state for the summary and the JSON: "ok", "degraded" or
 * "off", and why (NULL when ok). Copied. */
void lc_progress_set_cache(lc_progress *p, const char *state, const char *reason);

/* Ends the live view and prints the closing summary line(s) (not in quiet
 * and rawjson modes). */
void lc_progress_summary(lc_progress *p, double wall_seconds, const char *manifest_digest);
/* Writes the --summary-json document. */
int lc_progress_write_json(lc_progress *p, const char *path, double wall_seconds,
                           const char *manifest_digest, const char *state_digest, lc_err *err);

#endif
