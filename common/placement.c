/* placement.c - see placement.h. */
#include "placement.h"

#include <string.h>

uint64_t lc_placement_score(const char *peer, const void *key, size_t keylen)
{
    uint8_t buf[LC_PLACEMENT_MAX_ID + 1 + LC_PLACEMENT_MAX_KEY];
    size_t pl = strlen(peer);
    if (pl > LC_PLACEMENT_MAX_ID)
        pl = LC_PLACEMENT_MAX_ID;
    if (keylen > LC_PLACEMENT_MAX_KEY)
        keylen = LC_PLACEMENT_MAX_KEY;
    memcpy(buf, peer, pl);
    buf[pl] = '\0';
    memcpy(buf + pl + 1, key, keylen);
    lc_digest d;
    lc_digest_of(buf, pl + 1 + keylen, &d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | d.hash[i];
    return v;
}

void lc_placement_rank(const char *const *peers, size_t n, const void *key, size_t keylen,
                       size_t *order)
{
    uint64_t score[LC_PLACEMENT_MAX_PEERS];
    if (n > LC_PLACEMENT_MAX_PEERS)
        n = LC_PLACEMENT_MAX_PEERS;
    for (size_t i = 0; i < n; i++) {
        score[i] = lc_placement_score(peers[i], key, keylen);
        order[i] = i;
    }
    /* insertion sort: n is small */
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        while (j > 0 && (score[order[j - 1]] < score[v] ||
                         (score[order[j - 1]] == score[v] && order[j - 1] > v))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

size_t lc_placement_blob_key(const lc_digest *d, uint8_t *buf)
{
    memcpy(buf, d->hash, LC_HASH_LEN);
    return LC_HASH_LEN;
}

size_t lc_placement_action_key(const char *instance, const lc_digest *d, uint8_t *buf, size_t cap)
{
    size_t il = instance != NULL ? strlen(instance) : 0;
    if (3 + il + 1 + LC_HASH_LEN > cap)
        il = cap - 4 - LC_HASH_LEN; /* cap >= 64 by contract: truncation only */
    memcpy(buf, "ac", 3);
    if (il > 0)
        memcpy(buf + 3, instance, il);
    buf[3 + il] = '\0';
    memcpy(buf + 4 + il, d->hash, LC_HASH_LEN);
    return 4 + il + LC_HASH_LEN;
}
