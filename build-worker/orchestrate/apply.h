/* apply.h - the effect of one Dockerfile instruction on the image config.
 *
 * Every instruction that changes no files (ENV, LABEL, WORKDIR, USER,
 * EXPOSE, CMD, ENTRYPOINT, SHELL, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD,
 * MAINTAINER, ARG) is applied here and recorded in the history as an empty
 * layer, as Docker does. RUN/COPY/ADD add their layer elsewhere; their
 * config effects (none) and history are recorded by the executor.
 */
#ifndef LC_APPLY_H
#define LC_APPLY_H

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/oci/image.h"
#include "err.h"

/* True for instructions that produce a filesystem layer. */
bool lc_apply_has_layer(enum lc_df_kind kind);

/* Applies step (a metadata instruction) to img and adds its history entry.
 * *cmd_set tracks whether the stage set CMD itself (then ENTRYPOINT keeps
 * it; otherwise ENTRYPOINT clears the CMD inherited from the base). */
int lc_apply_metadata(lc_image *img, const lc_df_step *step, bool *cmd_set, lc_err *err);

/* The history text of a step ("RUN /bin/sh -c make", "COPY src/ /app/ # ..."). */
const char *lc_apply_created_by(const lc_df_step *step);

#endif
