/* url.h - the sources of `ADD <http(s) URL>`: downloaded with libcurl,
 * hashed while they stream, checked against `--checksum` when given.
 *
 * As BuildKit's HTTP source: the file is named after the last element of
 * the URL path ("__unnamed__" when there is none), redirects are followed,
 * an HTTP error status is an error naming the URL, and Last-Modified
 * becomes the file's mtime. Remote archives are not extracted.
 *
 * An lc_url_file owns its strings and its downloaded file:
 * lc_url_file_clear removes the file.
 */
#ifndef LC_CTX_URL_H
#define LC_CTX_URL_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

typedef struct lc_url_file {
    char *url;
    char *name;       /* the file's name in the image */
    char *path;       /* the downloaded file (NULL until fetched) */
    lc_digest digest; /* sha256 + size of the content */
    int64_t mtime;    /* Last-Modified (Unix seconds), -1 when absent */
} lc_url_file;

/* True for "http://" and "https://" sources (not git). */
bool lc_url_is_http(const char *src);

/* The name BuildKit gives the file of url: malloc'd, NULL on OOM. */
char *lc_url_name(const char *url);

/* Downloads url into a new file in directory dir. With expect (a sha256
 * digest, size ignored) a different content is an error (DATA_LOSS) naming
 * both digests. On success *out is filled (caller clears it). */
int lc_url_fetch(const char *url, const char *dir, const lc_digest *expect, lc_url_file *out,
                 lc_err *err);

/* Parses a --checksum value ("sha256:<64 hex>"). */
int lc_url_parse_checksum(const char *s, lc_digest *out, lc_err *err);

/* Removes the downloaded file and frees the strings. */
void lc_url_file_clear(lc_url_file *f);

#endif
