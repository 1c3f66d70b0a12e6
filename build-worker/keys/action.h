/* action.h - a build step as the REAPI sees it.
 *
 * The step key computed by keys/ (a digest over everything the step depends
 * on) becomes the salt of a REAPI Action whose Command carries the
 * normalized instruction; the Action's digest is the action-cache key. The
 * Action and Command are uploaded to the CAS beside the result, so the
 * server (and `layercache ls`) can show what a key means. The cached result
 * is an ActionResult listing `state.json` (the image state after the step)
 * and every layer of that state as `layers/0`, `layers/1`, ...
 */
#ifndef LC_ACTION_H
#define LC_ACTION_H

#include <stddef.h>
#include <stdint.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "digest.h"
#include "err.h"

#define LC_STEP_COMMAND_TOOL "layercache-step"

typedef struct lc_step_action {
    uint8_t *command; /* serialized Command, malloc'd */
    size_t command_len;
    lc_digest command_digest;
    uint8_t *action; /* serialized Action, malloc'd */
    size_t action_len;
    lc_digest action_digest; /* the action-cache key */
} lc_step_action;

/* Builds the Action/Command of a step from its input key, its instruction
 * as shown to people, and its platform ("linux/amd64"). Deterministic. */
int lc_step_action_make(const lc_digest *input_key, const char *instruction, const char *platform,
                        lc_step_action *out, lc_err *err);
void lc_step_action_clear(lc_step_action *a);

/* The instruction a serialized Command describes, malloc'd; NULL if it is
 * not a layercache step Command. */
char *lc_step_command_instruction(const uint8_t *command, size_t len);

/* The result of a step: the state document and the layers of that state. */
typedef struct lc_step_result {
    lc_digest state;      /* state.json */
    lc_digest *layers;    /* layers/0 .. layers/n-1 (compressed blobs), malloc'd */
    size_t nlayers;
    char *worker;         /* who executed it (from ExecutedActionMetadata), may be NULL */
    double exec_seconds;  /* original execution time, 0 if unknown */
} lc_step_result;

/* Serialized ActionResult for a result, with ExecutedActionMetadata (worker,
 * start/end in Unix seconds). *out malloc'd. */
int lc_step_result_encode(const lc_step_result *r, const char *worker, double start, double end,
                          uint8_t **out, size_t *len, lc_err *err);
/* Reads a step result out of an ActionResult (INVALID_ARGUMENT when it is not
 * a layercache step result). r owns its allocations (lc_step_result_clear). */
int lc_step_result_decode(const Build__Bazel__Remote__Execution__V2__ActionResult *ar,
                          lc_step_result *r, lc_err *err);
void lc_step_result_clear(lc_step_result *r);

#endif
