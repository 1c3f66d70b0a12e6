/* apply.h - the effect of one Dockerfile instruction on the image config.
 *
 * Every instruction that changes no files (ENV, LABEL, USER, EXPOSE, CMD,
 * ENTRYPOINT, SHELL, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER,
 * ARG) is applied here and recorded in the history as an empty layer, as
 * Docker does. RUN/COPY/ADD and WORKDIR (which creates its directory, in a
 * layer of its own as in BuildKit) add their layer elsewhere, with the
 * history text lc_apply_created_by gives.
 */
#ifndef LC_APPLY_H
#define LC_APPLY_H

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/oci/image.h"
#include "err.h"

/* True for instructions that produce a filesystem layer. */
bool lc_apply_has_layer(enum lc_df_kind kind);

/* Applies step (a metadata instruction, or WORKDIR) to img's config.
 * *cmd_set tracks whether the stage set CMD itself (then ENTRYPOINT keeps
 * it; otherwise ENTRYPOINT clears the CMD inherited from the base). */
int lc_apply_config(lc_image *img, const lc_df_step *step, bool *cmd_set, lc_err *err);

/* lc_apply_config, then the step's history entry as an empty layer
 * (ONBUILD, like BuildKit, adds none). */
int lc_apply_metadata(lc_image *img, const lc_df_step *step, bool *cmd_set, lc_err *err);

/* The history text of a step as BuildKit writes it ("RUN /bin/sh -c make",
 * "COPY src/ /app/", "WORKDIR /app", "ENV K=V", `CMD ["sh" "-c" "x"]`).
 * malloc'd (caller frees); NULL when out of memory. */
char *lc_apply_created_by(const lc_df_step *step);

#endif
