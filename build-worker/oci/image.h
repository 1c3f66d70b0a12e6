/* image.h - the image state document ("state.json"): what a cached step's
 * result is.
 *
 * It holds the ordered layer descriptors (compressed digest, size, diff_id,
 * media type) and the complete OCI image config (architecture, os, config
 * {Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes,
 * StopSignal, Healthcheck, Shell, OnBuild}, rootfs.diff_ids, history).
 * Serialization is canonical JSON (sorted keys, no whitespace) so the same
 * state always gives the same bytes, hence the same CAS digest; no field
 * holds a wall-clock time unless the caller sets one.
 *
 *   {"config":{...OCI config...},"layers":[{"diffID":"sha256:..",
 *    "digest":"sha256:..","mediaType":"...","size":N}],"schemaVersion":1}
 *
 * An lc_image is a mutable value owned by its creator; free with
 * lc_image_free. Strings returned by getters are borrowed from the image and
 * valid until the next change to it.
 */
#ifndef LC_OCI_IMAGE_H
#define LC_OCI_IMAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"
#include "strlist.h"

#define LC_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define LC_MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define LC_MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"

typedef struct lc_image lc_image;

typedef struct lc_image_layer {
    lc_digest blob;      /* compressed blob: sha256 + size */
    lc_digest diff_id;   /* uncompressed tar sha256 (size not stored: 0 after parse) */
    char media_type[96]; /* e.g. LC_MEDIA_LAYER_GZIP */
} lc_image_layer;

typedef struct lc_image_healthcheck {
    const char *const *test; /* ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"] */
    size_t ntest;
    int64_t interval_ns, timeout_ns, start_period_ns, start_interval_ns; /* 0 = omitted */
    int retries;                                      /* 0 = omitted */
} lc_image_healthcheck;

/* A scratch image: no layers, empty config. os/arch NULL = "linux" and the
 * host's GOARCH name ("amd64", "arm64", ...). NULL on OOM. */
lc_image *lc_image_new(const char *os, const char *arch);
lc_image *lc_image_clone(const lc_image *img);
void lc_image_free(lc_image **img);

/* Parses a state document (validated: layers and rootfs.diff_ids agree). */
int lc_image_parse(const char *json, size_t len, lc_image **out, lc_err *err);

/* Builds a state from an OCI (or Docker) image config blob and the
 * manifest's layer descriptors, e.g. when importing a base image. The
 * config's rootfs.diff_ids must have one entry per layer; they are copied
 * into the layers' diff_id. */
int lc_image_from_config(const char *config_json, size_t len, const lc_image_layer *layers,
                         size_t nlayers, lc_image **out, lc_err *err);

/* Canonical bytes of the state document / of the OCI config blob. *out is
 * malloc'd (caller frees), not NUL-terminated in *len but NUL-terminated. */
int lc_image_serialize(const lc_image *img, char **out, size_t *len, lc_err *err);
int lc_image_config_blob(const lc_image *img, char **out, size_t *len, lc_err *err);

/* Layers, bottom first. */
size_t lc_image_layer_count(const lc_image *img);
int lc_image_layer_at(const lc_image *img, size_t i, lc_image_layer *out);

/* Appends a layer: its descriptor, its diff_id to rootfs.diff_ids, and a
 * history entry {"created_by": created_by}. */
int lc_image_add_layer(lc_image *img, const lc_image_layer *layer, const char *created_by,
                       lc_err *err);
/* A history entry alone (metadata-only steps pass empty_layer = 1). */
int lc_image_add_history(lc_image *img, const char *created_by, int empty_layer, lc_err *err);
size_t lc_image_history_count(const lc_image *img);

/* "created" (RFC 3339) at the top of the config; NULL removes it. */
int lc_image_set_created(lc_image *img, const char *rfc3339);

/* ---- config (the "config" object of the OCI config) ---- */
/* Env: sets KEY=value, replacing an existing KEY in place (order kept). */
int lc_image_set_env(lc_image *img, const char *key, const char *value);
/* The value of KEY, or NULL. */
const char *lc_image_get_env(const lc_image *img, const char *key);
/* Appends every "KEY=value" in order to out. */
int lc_image_env_list(const lc_image *img, lc_strlist *out);

/* String arrays: field is "Cmd", "Entrypoint" or "Shell". v == NULL removes
 * the field; n == 0 with v != NULL stores []. */
int lc_image_set_strv(lc_image *img, const char *field, const char *const *v, size_t n);
/* Appends the array's items to out; NOT_FOUND (negative) if unset. */
int lc_image_get_strv(const lc_image *img, const char *field, lc_strlist *out);

/* Strings: "WorkingDir", "User", "StopSignal" (in config), and "Author"
 * (MAINTAINER: the top-level "author"). NULL removes. */
int lc_image_set_string(lc_image *img, const char *field, const char *value);
const char *lc_image_get_string(const lc_image *img, const char *field);

int lc_image_set_label(lc_image *img, const char *key, const char *value);
int lc_image_add_exposed_port(lc_image *img, const char *port); /* "80/tcp"; "80" -> "80/tcp" */
int lc_image_add_volume(lc_image *img, const char *path);
int lc_image_add_onbuild(lc_image *img, const char *instruction);
/* How many ONBUILD triggers the config holds; the first in *first (borrowed). */
size_t lc_image_onbuild_count(const lc_image *img, const char **first);
/* NULL removes the healthcheck. */
int lc_image_set_healthcheck(lc_image *img, const lc_image_healthcheck *hc);

/* The platform at the top of the config: os, architecture, variant (NULL
 * or "" removes it). */
int lc_image_set_platform(lc_image *img, const char *os, const char *arch, const char *variant);
/* "os/arch" or "os/arch/variant" as the config says (fields it lacks empty). */
void lc_image_get_platform(const lc_image *img, char *buf, size_t cap);

/* Escape hatch: the config object itself (borrowed; mutate with jansson). */
json_t *lc_image_config_obj(lc_image *img);

#endif
