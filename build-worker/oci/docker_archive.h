/* docker_archive.h - an image as the archive `docker save` writes, which
 * `docker load` and skopeo's docker-archive: transport read:
 *
 *   manifest.json          [{"Config":"<hex>.json","RepoTags":["app:1"],
 *                            "Layers":["<diff_id hex>/layer.tar",...]}]
 *   repositories           {"app":{"1":"<top layer's diff_id hex>"}}
 *   <config hex>.json      the image config
 *   <diff_id hex>/layer.tar  every layer, uncompressed (checked against its
 *                          diff_id while it is written)
 *
 * Entries are sorted, times 0, owner root: the same image gives the same
 * bytes.
 */
#ifndef LC_OCI_DOCKER_ARCHIVE_H
#define LC_OCI_DOCKER_ARCHIVE_H

#include "build-worker/oci/image.h"
#include "err.h"
#include "strlist.h"

/* Writes img to dest (a file, or "-" for stdout). layer_paths[i] is the
 * blob file of layer i (any compression libarchive reads). tags (may be
 * NULL or empty) become RepoTags, spelled as Docker shows them ("app:1",
 * "registry:5000/app:1"). Layers are decompressed into files under tmpdir
 * one at a time (the tar header needs their size first). */
int lc_docker_archive_write(const char *dest, const lc_image *img, const char *const *layer_paths,
                            const lc_strlist *tags, const char *tmpdir, lc_err *err);

#endif
