/* encode.c - see encode.h. */
#include "encode.h"

#include <string.h>

#include "err.h"

static void put_u64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static void item(lc_keyenc *e, char type, const char *name, const void *payload, uint64_t n,
                 uint64_t len_field)
{
    if (e->h == NULL)
        return;
    size_t nl = strlen(name);
    uint8_t hdr[2 + 255 + 8];
    if (nl > 255)
        nl = 255;
    hdr[0] = (uint8_t)type;
    hdr[1] = (uint8_t)nl;
    memcpy(hdr + 2, name, nl);
    put_u64(hdr + 2 + nl, len_field);
    lc_hasher_update(e->h, hdr, 2 + nl + 8);
    if (n > 0)
        lc_hasher_update(e->h, payload, (size_t)n);
}

int lc_keyenc_init(lc_keyenc *e, const char *version)
{
    e->h = lc_hasher_new();
    if (e->h == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    lc_keyenc_str(e, "v", version);
    return 0;
}

void lc_keyenc_str(lc_keyenc *e, const char *name, const char *s)
{
    if (s == NULL)
        s = "";
    size_t n = strlen(s);
    item(e, 's', name, s, n, n);
}

void lc_keyenc_bytes(lc_keyenc *e, const char *name, const void *data, size_t n)
{
    item(e, 'b', name, data, n, n);
}

void lc_keyenc_u64(lc_keyenc *e, const char *name, uint64_t v)
{
    uint8_t b[8];
    put_u64(b, v);
    item(e, 'u', name, b, 8, 8);
}

void lc_keyenc_digest(lc_keyenc *e, const char *name, const lc_digest *d)
{
    item(e, 'b', name, d->hash, LC_HASH_LEN, LC_HASH_LEN);
}

void lc_keyenc_list(lc_keyenc *e, const char *name, uint64_t count)
{
    item(e, 'l', name, NULL, 0, count);
}

void lc_keyenc_finish(lc_keyenc *e, lc_digest *out)
{
    memset(out, 0, sizeof(*out));
    if (e->h != NULL) {
        lc_hasher_final(e->h, out);
        out->size = 0;
    }
    lc_hasher_free(&e->h);
}

void lc_keyenc_abort(lc_keyenc *e)
{
    lc_hasher_free(&e->h);
}
