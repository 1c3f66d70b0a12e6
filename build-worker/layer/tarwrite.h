/* tarwrite.h - a directory (an overlay upper dir) -> a deterministic OCI
 * layer blob.
 *
 * The same tree gives the same bytes on every worker: entries sorted by
 * path bytewise, every time normalized to one epoch, uid/gid/mode kept,
 * no user/group names, pax (restricted) headers only where a field needs
 * them, no device/inode numbers. Overlay deletions become OCI whiteouts:
 * a character device 0/0 `x` -> empty file `.wh.x`; a directory with
 * xattr trusted.overlay.opaque=y -> its entry plus `dir/.wh..wh..opq`.
 * Hard links (same inode twice) become tar hardlink entries pointing at
 * the first path in sort order. trusted.overlay.* xattrs are never written.
 *
 * One pass computes both digests: the blob (compressed bytes as written)
 * and the diff_id (the uncompressed tar).
 */
#ifndef LC_TARWRITE_H
#define LC_TARWRITE_H

#include <stdint.h>

#include "digest.h"
#include "err.h"

enum lc_layer_compression {
    LC_LAYER_GZIP = 0, /* default: the OCI media type every tool reads */
    LC_LAYER_ZSTD = 1,
    LC_LAYER_NONE = 2,
};

#define LC_MEDIA_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define LC_MEDIA_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define LC_MEDIA_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"

typedef struct lc_layer_opts {
    int compression;  /* enum lc_layer_compression */
    int level;        /* compression level; 0 = library default */
    int64_t epoch;    /* all times; < 0: $SOURCE_DATE_EPOCH, else 0 */
    int xattrs;       /* write user.* / security.* xattrs (never trusted.*) */
    int no_whiteouts; /* 1: write char devices 0/0 as devices (not an overlay dir) */
    /* Optional: called as the tar grows, with its bytes so far and the
     * regular files' total size (for a progress display). */
    void (*progress)(void *ctx, uint64_t tar_bytes, uint64_t file_bytes);
    void *progress_ctx;
} lc_layer_opts;

typedef struct lc_layer_info {
    lc_digest blob;         /* sha256 + size of the file written */
    lc_digest diff_id;      /* sha256 + size of the uncompressed tar */
    const char *media_type; /* static string, one of LC_MEDIA_LAYER_* */
    int64_t entries;        /* tar entries written (whiteouts included) */
} lc_layer_info;

/* Writes the layer of directory `dir` (its contents; the root itself is not
 * an entry) to out_path (created/truncated). opts may be NULL (gzip, epoch
 * from the environment). On failure out_path is removed. */
int lc_layer_write(const char *dir, const char *out_path, const lc_layer_opts *opts,
                   lc_layer_info *info, lc_err *err);

/* The media type for a compression (NULL for an unknown value). */
const char *lc_layer_media_type(int compression);

/* Maps a layer media type (OCI or Docker) to its compression; -1 if unknown. */
int lc_layer_compression_of(const char *media_type);

/* The epoch lc_layer_write uses for opts->epoch < 0: $SOURCE_DATE_EPOCH
 * when it is a valid non-negative integer, else 0. */
int64_t lc_layer_default_epoch(void);

#endif
