/* output.h - `--output` / `-o` as `docker buildx build` spells it, checked
 * before the build starts and written after it:
 *
 *   type=oci,dest=DIR|FILE.tar|-   an OCI image layout: a directory, or a tar
 *                                  when dest ends in .tar, is "-" (stdout) or
 *                                  tar=true; several platforms: one image index
 *   type=docker,dest=FILE|-        an archive `docker load` reads (manifest.json,
 *                                  repositories, config, uncompressed layers)
 *   type=local,dest=DIR            the image's filesystem (several platforms:
 *                                  one DIR/<os>_<arch>[_<variant>] each)
 *   type=tar,dest=FILE|-           the same filesystem as one tar
 *   DIR                            type=local,dest=DIR
 *   -                              type=tar,dest=-
 *
 * name=NAME[,...] (oci, docker) names the image instead of the -t tags.
 */
#ifndef LC_OUTPUT_H
#define LC_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "build-worker/oci/layout.h"
#include "err.h"
#include "strlist.h"

enum lc_output_type { LC_OUTPUT_OCI = 0, LC_OUTPUT_DOCKER, LC_OUTPUT_LOCAL, LC_OUTPUT_TAR };

typedef struct lc_output {
    int type;         /* enum lc_output_type */
    char *dest;       /* path, or "-" for stdout; owned */
    bool tar;         /* oci: a tar file, not a directory */
    lc_strlist names; /* name=...: image names (docker RepoTags, oci ref) */
} lc_output;

/* Parses one --output value into *out (cleared first; lc_output_clear
 * frees it). INVALID_ARGUMENT naming the value and what is wrong. */
int lc_output_parse(const char *spec, lc_output *out, lc_err *err);
void lc_output_clear(lc_output *o);

/* Before the build: the destination can be written (its parent directory
 * exists; a local dest is absent or an empty directory; an oci directory
 * is a directory) and the type can hold nplatforms images (docker: one). */
int lc_output_check(const lc_output *o, size_t nplatforms, lc_err *err);

/* Writes the result: imgs[0..n) (one per platform, blob files named),
 * tags (-t, may be NULL) for names. tmpdir holds scratch files. */
int lc_output_write(const lc_output *o, const lc_layout_image *imgs, size_t n,
                    const lc_strlist *tags, const char *tmpdir, lc_err *err);

/* "oci", "docker", "local", "tar". */
const char *lc_output_type_name(int type);

#endif
