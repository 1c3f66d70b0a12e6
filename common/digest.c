/* digest.c - see digest.h. */
#include "digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const lc_digest lc_digest_empty = {
    .hash = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
             0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
             0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55},
    .size = 0,
};

struct lc_hasher {
    EVP_MD_CTX *ctx;
    uint64_t bytes;
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int lc_digest_parse(const char *hex, size_t hexlen, int64_t size, lc_digest *out, lc_err *err)
{
    if (hexlen != LC_HASH_HEX_LEN)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "digest hash must be %d lowercase hex characters (SHA-256), got %zu",
                          LC_HASH_HEX_LEN, hexlen);
    for (size_t i = 0; i < LC_HASH_LEN; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "digest hash has a character that is not lowercase hex at %zu",
                              hi < 0 ? 2 * i : 2 * i + 1);
        out->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    if (size < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "digest size must not be negative, got %lld",
                          (long long)size);
    out->size = size;
    return 0;
}

int lc_digest_parse_oci(const char *s, lc_digest *out, lc_err *err)
{
    if (strncmp(s, "sha256:", 7) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "digest '%s' does not start with 'sha256:'", s);
    return lc_digest_parse(s + 7, strlen(s + 7), 0, out, err);
}

void lc_digest_hex(const lc_digest *d, char out[LC_HASH_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < LC_HASH_LEN; i++) {
        out[2 * i] = digits[d->hash[i] >> 4];
        out[2 * i + 1] = digits[d->hash[i] & 15];
    }
    out[LC_HASH_HEX_LEN] = '\0';
}

void lc_digest_oci(const lc_digest *d, char out[LC_DIGEST_OCI_LEN + 1])
{
    memcpy(out, "sha256:", 7);
    lc_digest_hex(d, out + 7);
}

int lc_digest_equal(const lc_digest *a, const lc_digest *b)
{
    return a->size == b->size && memcmp(a->hash, b->hash, LC_HASH_LEN) == 0;
}

int lc_digest_is_empty(const lc_digest *d) { return lc_digest_equal(d, &lc_digest_empty); }

void lc_digest_of(const void *data, size_t len, lc_digest *out)
{
    unsigned int n = 0;
    EVP_Digest(data, len, out->hash, &n, EVP_sha256(), NULL);
    out->size = (int64_t)len;
}

lc_hasher *lc_hasher_new(void)
{
    lc_hasher *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void lc_hasher_update(lc_hasher *h, const void *data, size_t len)
{
    EVP_DigestUpdate(h->ctx, data, len);
    h->bytes += len;
}

void lc_hasher_final(lc_hasher *h, lc_digest *out)
{
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, out->hash, &n);
    out->size = (int64_t)h->bytes;
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
    h->bytes = 0;
}

uint64_t lc_hasher_bytes(const lc_hasher *h) { return h->bytes; }

void lc_hasher_free(lc_hasher **h)
{
    if (h == NULL || *h == NULL)
        return;
    EVP_MD_CTX_free((*h)->ctx);
    free(*h);
    *h = NULL;
}
