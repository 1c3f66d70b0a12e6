/* digest.h - SHA-256 content digests (the REAPI Digest: hash + size).
 * Hashing is OpenSSL libcrypto's EVP SHA-256 (SHA-NI where available). */
#ifndef LC_DIGEST_H
#define LC_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define LC_HASH_LEN 32
#define LC_HASH_HEX_LEN 64

typedef struct lc_digest {
    uint8_t hash[LC_HASH_LEN];
    int64_t size;
} lc_digest;

/* The empty blob e3b0c442...b855/0, which every CAS holds implicitly. */
extern const lc_digest lc_digest_empty;

/* Parses 64 lowercase hex characters (exactly hexlen bytes, no NUL needed)
 * and a size >= 0. INVALID_ARGUMENT with a message naming the problem. */
int lc_digest_parse(const char *hex, size_t hexlen, int64_t size, lc_digest *out, lc_err *err);

/* Parses "sha256:<hex>" (the OCI form); size is left 0. */
int lc_digest_parse_oci(const char *s, lc_digest *out, lc_err *err);

/* Writes 64 hex characters and a NUL into out. */
void lc_digest_hex(const lc_digest *d, char out[LC_HASH_HEX_LEN + 1]);

/* Writes "sha256:<hex>" and a NUL (72 bytes). */
#define LC_DIGEST_OCI_LEN (7 + LC_HASH_HEX_LEN)
void lc_digest_oci(const lc_digest *d, char out[LC_DIGEST_OCI_LEN + 1]);

int lc_digest_equal(const lc_digest *a, const lc_digest *b);
int lc_digest_is_empty(const lc_digest *d);

/* One-shot digest of a buffer. */
void lc_digest_of(const void *data, size_t len, lc_digest *out);

/* Incremental hashing; the caller owns the hasher and frees it with
 * lc_hasher_free, which NULLs the pointer. */
typedef struct lc_hasher lc_hasher;

lc_hasher *lc_hasher_new(void);
void lc_hasher_update(lc_hasher *h, const void *data, size_t len);
/* Finishes: out gets the hash and the number of bytes fed. The hasher is
 * reset and can be reused. */
void lc_hasher_final(lc_hasher *h, lc_digest *out);
uint64_t lc_hasher_bytes(const lc_hasher *h);
void lc_hasher_free(lc_hasher **h);

#endif
