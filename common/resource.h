/* resource.h - ByteStream resource names of the REAPI v2 CAS.
 *
 *   read:   [{instance}/]blobs/{hash}/{size}
 *   write:  [{instance}/]uploads/{uuid}/blobs/{hash}/{size}[/{optional metadata}...]
 *
 * The instance name may contain slashes, but none of its segments may be
 * empty or one of the reserved words (blobs, uploads, compressed-blobs,
 * actions, actionResults, operations, capabilities). Hashes are 64
 * lowercase hex characters (SHA-256); sizes are canonical decimals
 * (no sign, no leading zeros). Compressed resource names
 * (compressed-blobs/...) are refused: only IDENTITY is supported.
 */
#ifndef LC_RESOURCE_H
#define LC_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "digest.h"
#include "err.h"

/* Longest accepted resource name and instance name, in bytes. */
#define LC_RESOURCE_MAX 2048
#define LC_INSTANCE_MAX 1024
#define LC_UUID_MAX 128

typedef enum lc_resource_kind {
    LC_RESOURCE_READ,   /* [{instance}/]blobs/{hash}/{size} */
    LC_RESOURCE_UPLOAD, /* [{instance}/]uploads/{uuid}/blobs/{hash}/{size}[/...] */
} lc_resource_kind;

typedef struct lc_resource {
    lc_resource_kind kind;
    char instance[LC_INSTANCE_MAX + 1]; /* "" for the default instance */
    char uuid[LC_UUID_MAX + 1];         /* uploads only, "" otherwise */
    lc_digest digest;
} lc_resource;

/* Parses name (len bytes, no NUL needed) as a resource of the given kind.
 * INVALID_ARGUMENT with a message quoting the name and the expected form. */
int lc_resource_parse(const char *name, size_t len, lc_resource_kind kind, lc_resource *out,
                      lc_err *err);

/* Checks an instance_name field: "" or slash-separated non-empty segments
 * that are not reserved words. INVALID_ARGUMENT naming the problem. */
int lc_resource_check_instance(const char *instance, size_t len, lc_err *err);

/* Writes the canonical name of r (without optional upload metadata) into
 * out; returns the length, or -LC_INVALID_ARGUMENT if it does not fit. */
int lc_resource_format(const lc_resource *r, char *out, size_t outlen);

#endif
