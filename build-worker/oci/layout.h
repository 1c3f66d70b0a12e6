/* layout.h - OCI image layouts (directory or tar) from an image state.
 *
 * Writes `oci-layout`, `index.json` (one manifest per ref name, annotated
 * with org.opencontainers.image.ref.name) and `blobs/sha256/<hex>` for the
 * config, the manifest and every layer. Config and manifest are canonical
 * JSON, so the same state gives the same manifest digest on every worker.
 * Layer blobs are copied from files the caller names and verified against
 * their descriptors while copying (DATA_LOSS on mismatch).
 */
#ifndef LC_OCI_LAYOUT_H
#define LC_OCI_LAYOUT_H

#include <stdbool.h>

#include "build-worker/oci/image.h"
#include "digest.h"
#include "err.h"
#include "strlist.h"

#define LC_OCI_REF_ANNOTATION "org.opencontainers.image.ref.name"

/* Builds the config and manifest blobs of img. Outputs are malloc'd
 * (caller frees); digests may be NULL. */
int lc_layout_manifest(const lc_image *img, char **config, size_t *config_len,
                       lc_digest *config_digest, char **manifest, size_t *manifest_len,
                       lc_digest *manifest_digest, lc_err *err);

/* One image of a layout: its state, the blob file of each layer, and its
 * platform ("os/arch[/variant]") for an image index entry (may be NULL). */
typedef struct lc_layout_image {
    const lc_image *img;
    const char *const *layer_paths;
    const char *platform;
} lc_layout_image;

/* The OCI image index of several images (each manifest's descriptor with
 * its platform): canonical JSON, *out malloc'd; digest may be NULL. */
int lc_layout_index(const lc_layout_image *imgs, size_t n, char **out, size_t *len,
                    lc_digest *digest, lc_err *err);

/* Writes n images as a layout directory (tar false; an existing index.json
 * is kept minus the same ref) or tar file (dest "-": to stdout). One image
 * is a manifest in index.json; several are one image index (a blob, with a
 * platform per manifest) that index.json names, as BuildKit writes them.
 * top_digest (may be NULL) gets the manifest or index digest. */
int lc_layout_write(const char *dest, bool tar, const lc_layout_image *imgs, size_t n,
                    const char *ref, lc_digest *top_digest, lc_err *err);

/* Writes (or adds to) the layout directory dest (created if missing). An
 * existing index.json is kept, minus any manifest with the same ref name.
 * layer_paths[i] is the blob file of layer i (lc_image_layer_count(img)
 * entries). ref may be NULL (no annotation). manifest_digest may be NULL. */
int lc_layout_write_dir(const char *dest, const lc_image *img, const char *const *layer_paths,
                        const char *ref, lc_digest *manifest_digest, lc_err *err);

/* Writes the same layout as one tar file at tar_path (deterministic: sorted
 * entries, times 0, uid/gid 0). */
int lc_layout_write_tar(const char *tar_path, const lc_image *img, const char *const *layer_paths,
                        const char *ref, lc_digest *manifest_digest, lc_err *err);

/* Reads the image named ref (or the only one when ref is NULL) from the
 * layout directory dir: *img gets a state built from its config and
 * manifest (caller frees), blob_paths gets one path per layer (appended).
 * Blobs are not re-hashed here; lc_untar verifies them when unpacking. */
int lc_layout_read_dir(const char *dir, const char *ref, lc_image **img, lc_strlist *blob_paths,
                       lc_err *err);

#endif
