/* statcache.c - see statcache.h.
 *
 * File layout (host byte order; the file never leaves the machine):
 *   "LCSTAT\0\1" magic+version (8 bytes), u64 count,
 *   count records of {u64 dev, u64 ino, i64 size, i64 mtime_ns, i64 ctime_ns,
 *   i64 last_used (unix seconds), u8 hash[32]},
 *   SHA-256 of everything before it (32 bytes). */
#include "statcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SC_MAGIC "LCSTAT\0\1"
#define SC_FILE "statcache.v1"
#define SC_MAX_AGE (30 * 86400)

typedef struct sc_rec {
    lc_stat_key k;
    int64_t last_used;
    uint8_t hash[LC_HASH_LEN];
} sc_rec;

typedef struct sc_slot {
    sc_rec r;
    int used; /* 0 empty, 1 full */
} sc_slot;

struct lc_statcache {
    char *path; /* NULL: memory only */
    sc_slot *slots;
    size_t cap; /* power of two */
    size_t count;
    int dirty;
    int64_t now;
};

static uint64_t mix(uint64_t dev, uint64_t ino)
{
    uint64_t h = dev * 0x9e3779b97f4a7c15ULL ^ ino;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static sc_slot *find_slot(sc_slot *slots, size_t cap, uint64_t dev, uint64_t ino)
{
    size_t i = mix(dev, ino) & (cap - 1);
    while (slots[i].used && (slots[i].r.k.dev != dev || slots[i].r.k.ino != ino))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(lc_statcache *sc)
{
    size_t cap = sc->cap ? sc->cap * 2 : 1024;
    sc_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < sc->cap; i++) {
        if (sc->slots[i].used)
            *find_slot(slots, cap, sc->slots[i].r.k.dev, sc->slots[i].r.k.ino) = sc->slots[i];
    }
    free(sc->slots);
    sc->slots = slots;
    sc->cap = cap;
    return 0;
}

static int insert(lc_statcache *sc, const sc_rec *r)
{
    if ((sc->count + 1) * 2 > sc->cap && grow(sc) != 0)
        return -LC_RESOURCE_EXHAUSTED;
    sc_slot *s = find_slot(sc->slots, sc->cap, r->k.dev, r->k.ino);
    if (!s->used)
        sc->count++;
    s->used = 1;
    s->r = *r;
    return 0;
}

static int mkdirs(const char *dir)
{
    char *p = strdup(dir);
    if (p == NULL)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                free(p);
                return -1;
            }
            *s = '/';
        }
    }
    int rc = mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/* Loads the file; any inconsistency leaves the cache empty. */
static void load(lc_statcache *sc)
{
    FILE *f = fopen(sc->path, "rb");
    if (f == NULL)
        return;
    lc_hasher *h = lc_hasher_new();
    char magic[8];
    uint64_t count = 0;
    sc_rec *recs = NULL;
    if (h == NULL || fread(magic, 1, 8, f) != 8 || memcmp(magic, SC_MAGIC, 8) != 0 ||
        fread(&count, sizeof(count), 1, f) != 1 || count > (1ULL << 28))
        goto out;
    recs = malloc((count ? count : 1) * sizeof(*recs));
    if (recs == NULL || (count > 0 && fread(recs, sizeof(*recs), count, f) != count))
        goto out;
    uint8_t sum[LC_HASH_LEN];
    if (fread(sum, 1, sizeof(sum), f) != sizeof(sum) || fgetc(f) != EOF)
        goto out;
    lc_hasher_update(h, magic, 8);
    lc_hasher_update(h, &count, sizeof(count));
    lc_hasher_update(h, recs, count * sizeof(*recs));
    lc_digest d;
    lc_hasher_final(h, &d);
    if (memcmp(d.hash, sum, sizeof(sum)) != 0)
        goto out;
    /* Size the table once instead of doubling through every power of two. */
    while (sc->cap < 2 * count + 2)
        if (grow(sc) != 0)
            goto out;
    for (uint64_t i = 0; i < count; i++) {
        if (insert(sc, &recs[i]) != 0)
            break;
    }
out:
    lc_hasher_free(&h);
    free(recs);
    fclose(f);
}

int lc_statcache_open(const char *state_dir, lc_statcache **out, lc_err *err)
{
    *out = NULL;
    lc_statcache *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    sc->now = (int64_t)time(NULL);
    if (grow(sc) != 0) {
        lc_statcache_free(&sc);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (state_dir != NULL) {
        if (mkdirs(state_dir) != 0) {
            int e = errno;
            lc_statcache_free(&sc);
            return lc_err_set(err, lc_code_from_errno(e), "cannot create state directory %s: %s",
                              state_dir, strerror(e));
        }
        sc->path = malloc(strlen(state_dir) + sizeof(SC_FILE) + 1);
        if (sc->path == NULL) {
            lc_statcache_free(&sc);
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        }
        sprintf(sc->path, "%s/%s", state_dir, SC_FILE);
        load(sc);
    }
    *out = sc;
    return 0;
}

bool lc_statcache_get(lc_statcache *sc, const lc_stat_key *k, lc_digest *out)
{
    if (sc == NULL)
        return false;
    sc_slot *s = find_slot(sc->slots, sc->cap, k->dev, k->ino);
    if (!s->used || s->r.k.size != k->size || s->r.k.mtime_ns != k->mtime_ns ||
        s->r.k.ctime_ns != k->ctime_ns)
        return false;
    memcpy(out->hash, s->r.hash, LC_HASH_LEN);
    out->size = k->size;
    /* Refresh the age only once a day's worth, to keep warm runs write-free. */
    if (sc->now - s->r.last_used > 86400) {
        s->r.last_used = sc->now;
        sc->dirty = 1;
    }
    return true;
}

int lc_statcache_put(lc_statcache *sc, const lc_stat_key *k, const lc_digest *d)
{
    if (sc == NULL)
        return 0;
    sc_rec r;
    memset(&r, 0, sizeof(r));
    r.k = *k;
    r.last_used = sc->now;
    memcpy(r.hash, d->hash, LC_HASH_LEN);
    sc->dirty = 1;
    return insert(sc, &r);
}

size_t lc_statcache_count(const lc_statcache *sc)
{
    return sc ? sc->count : 0;
}

int lc_statcache_save(lc_statcache *sc, lc_err *err)
{
    if (sc == NULL || sc->path == NULL || !sc->dirty)
        return 0;
    char *tmp = malloc(strlen(sc->path) + 32);
    sc_rec *recs = malloc((sc->count ? sc->count : 1) * sizeof(*recs));
    lc_hasher *h = lc_hasher_new();
    FILE *f = NULL;
    int rc = 0;
    if (tmp == NULL || recs == NULL || h == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    uint64_t count = 0;
    for (size_t i = 0; i < sc->cap; i++) {
        if (sc->slots[i].used && sc->now - sc->slots[i].r.last_used <= SC_MAX_AGE)
            recs[count++] = sc->slots[i].r;
    }
    sprintf(tmp, "%s.tmp.%ld", sc->path, (long)getpid());
    f = fopen(tmp, "wb");
    if (f == NULL) {
        rc =
            lc_err_set(err, lc_code_from_errno(errno), "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    lc_hasher_update(h, SC_MAGIC, 8);
    lc_hasher_update(h, &count, sizeof(count));
    lc_hasher_update(h, recs, count * sizeof(*recs));
    lc_digest d;
    lc_hasher_final(h, &d);
    int ok = fwrite(SC_MAGIC, 1, 8, f) == 8 && fwrite(&count, sizeof(count), 1, f) == 1 &&
             (count == 0 || fwrite(recs, sizeof(*recs), count, f) == count) &&
             fwrite(d.hash, 1, LC_HASH_LEN, f) == LC_HASH_LEN && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    f = NULL;
    if (!ok || rename(tmp, sc->path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        rc = lc_err_set(err, lc_code_from_errno(e), "cannot write stat cache %s: %s", sc->path,
                        strerror(e));
        goto out;
    }
    sc->dirty = 0;
out:
    lc_hasher_free(&h);
    free(recs);
    free(tmp);
    return rc;
}

char *lc_statcache_default_dir(void)
{
    const char *s = getenv("LAYERCACHE_STATE_DIR");
    if (s != NULL && *s != '\0')
        return strdup(s);
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char *out = NULL;
    if (xdg != NULL && *xdg == '/') {
        out = malloc(strlen(xdg) + sizeof("/layercache"));
        if (out != NULL)
            sprintf(out, "%s/layercache", xdg);
    } else {
        if (home == NULL || *home == '\0')
            home = "/tmp";
        out = malloc(strlen(home) + sizeof("/.cache/layercache"));
        if (out != NULL)
            sprintf(out, "%s/.cache/layercache", home);
    }
    return out;
}

void lc_statcache_free(lc_statcache **sc)
{
    if (sc == NULL || *sc == NULL)
        return;
    free((*sc)->path);
    free((*sc)->slots);
    free(*sc);
    *sc = NULL;
}
