/* encode.h - the deterministic, versioned byte encoding that step keys hash.
 *
 * Every item is self-delimiting, so no two different inputs give the same
 * bytes:  type (1 byte: 's' string, 'b' bytes, 'u' u64, 'l' list)
 *         name length (1 byte) + name
 *         payload length (8 bytes, big endian) + payload
 * ('u' payloads are 8 bytes big endian; 'l' payloads are the item count,
 * the items follow). A key's first item is the string "v" =
 * LC_KEY_ENCODING_VERSION. The bytes are streamed into SHA-256, never kept. */
#ifndef LC_KEYS_ENCODE_H
#define LC_KEYS_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define LC_KEY_ENCODING_VERSION "layercache-key-v2"

typedef struct lc_keyenc {
    lc_hasher *h; /* owned; NULL after an allocation failure */
} lc_keyenc;

/* Starts an encoding whose first item is ("v", version). 0 or
 * -LC_RESOURCE_EXHAUSTED. */
int lc_keyenc_init(lc_keyenc *e, const char *version);

void lc_keyenc_str(lc_keyenc *e, const char *name, const char *s); /* NULL encodes as "" */
void lc_keyenc_bytes(lc_keyenc *e, const char *name, const void *data, size_t n);
void lc_keyenc_u64(lc_keyenc *e, const char *name, uint64_t v);
void lc_keyenc_digest(lc_keyenc *e, const char *name, const lc_digest *d); /* the 32 hash bytes */
void lc_keyenc_list(lc_keyenc *e, const char *name, uint64_t count);

/* Finishes: out gets SHA-256 of everything encoded (size left 0). Frees
 * the hasher. */
void lc_keyenc_finish(lc_keyenc *e, lc_digest *out);
void lc_keyenc_abort(lc_keyenc *e);

#endif
