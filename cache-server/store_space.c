/* store_space.c - disk space and the --max-size budget of the store.
 *
 * Every write claims its bytes before RocksDB sees them (lc_store__claim) and
 * hands them over once written (lc_store__wrote). Two limits:
 *
 *   disk    free space, minus what was written since the last look, minus
 *           the memtables (a flush writes them), minus every claim not yet
 *           written, must keep a headroom for RocksDB's background work:
 *           LC_STORE__HEADROOM plus the table files up to
 *           LC_STORE__COMPACT_RESERVE (a compaction writes its output before
 *           it deletes its inputs). Deletes may use half of it.
 *   budget  (class DATA, with --max-size) used_bytes plus the claim must stay
 *           within max_bytes; otherwise the claim asks eviction for room and
 *           waits for it (back-pressure), up to LC_STORE__CLAIM_WAIT_MS.
 *
 * A reserve file (LC_STORE__BALLAST) sits in the data directory. When the
 * volume fills from outside until RocksDB's own headroom is nearly gone, it
 * is deleted so that flushes and compactions under way finish; before
 * RocksDB opens on a nearly full volume it is deleted so the open can write
 * its MANIFEST, OPTIONS and LOG. While it is out, its room is kept on top of
 * the headroom, and lc_store_maintain recreates it once there is space.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_internal.h"

#define MOD "store"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t prop_sum(lc_store *s, const char *name)
{
    uint64_t total = 0;
    for (int i = 0; i < CF_COUNT; i++) {
        uint64_t v = 0;
        if (s->cf[i] != NULL && rocksdb_property_int_cf(s->db, s->cf[i], name, &v) == 0)
            total += v;
    }
    return (int64_t)total;
}

static int64_t avail_of(const char *dir)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return INT64_MAX / 4; /* cannot tell: let RocksDB decide */
    return (int64_t)st.f_bavail * (int64_t)st.f_frsize;
}

static void ballast_path(const char *dir, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dir, LC_STORE__BALLAST_NAME);
}

static bool ballast_exists(const char *dir)
{
    char p[4096];
    ballast_path(dir, p, sizeof(p));
    struct stat st;
    return stat(p, &st) == 0;
}

static void ballast_drop(const char *dir)
{
    char p[4096];
    ballast_path(dir, p, sizeof(p));
    unlink(p);
}

/* 0 if the reserve file now exists with its full size. */
static int ballast_make(const char *dir)
{
    char p[4096];
    ballast_path(dir, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = posix_fallocate(fd, 0, LC_STORE__BALLAST);
    if (rc == 0)
        rc = fsync(fd);
    close(fd);
    if (rc != 0)
        unlink(p);
    return rc != 0 ? -1 : 0;
}

/* Headroom kept for RocksDB, by claim class. Caller holds mu. */
static int64_t headroom(const lc_store__space *sp, int cls)
{
    int64_t h = LC_STORE__HEADROOM +
                (sp->sst < LC_STORE__COMPACT_RESERVE ? sp->sst : LC_STORE__COMPACT_RESERVE);
    if (sp->ballast_out)
        h += LC_STORE__BALLAST;
    return cls == LC_STORE__FREEING ? h / 2 : h;
}

/* Free bytes left for claims of class cls. Caller holds mu. */
static int64_t room(const lc_store__space *sp, int cls)
{
    return sp->avail - atomic_load(&sp->written) - sp->mem - atomic_load(&sp->disk_claimed) -
           headroom(sp, cls);
}

/* Caller holds mu. */
static void refresh_locked(lc_store *s)
{
    lc_store__space *sp = &s->space;
    int64_t w0 = atomic_load(&sp->written);
    sp->avail = avail_of(s->dir);
    if (s->db != NULL) {
        sp->mem = prop_sum(s, "rocksdb.cur-size-all-mem-tables");
        sp->sst = prop_sum(s, "rocksdb.total-sst-files-size");
    }
    atomic_fetch_sub(&sp->written, w0); /* what the new numbers include */
    sp->at_ns = mono_ns();
    /* Filled from outside: RocksDB's own room is nearly gone. */
    int64_t base = LC_STORE__HEADROOM +
                   (sp->sst < LC_STORE__COMPACT_RESERVE ? sp->sst : LC_STORE__COMPACT_RESERVE);
    if (!sp->ballast_out && sp->avail - sp->mem < base / 4) {
        ballast_drop(s->dir);
        sp->ballast_out = true;
        LC_WARN(MOD,
                "the volume of %s is nearly full (%" PRId64 " bytes free): gave the %d MiB "
                "reserve file back to RocksDB; writes fail until space is freed",
                s->dir, sp->avail, LC_STORE__BALLAST >> 20);
    }
}

static void refresh_if_stale(lc_store *s)
{
    if (mono_ns() - s->space.at_ns >= LC_STORE__SPACE_REFRESH_NS)
        refresh_locked(s);
}

static int64_t used_locked(lc_store *s)
{
    return (int64_t)(atomic_load(&s->blob_bytes) +
                     atomic_load(&s->blobs) * LC_STORE__BLOB_OVERHEAD + atomic_load(&s->ac_bytes) +
                     atomic_load(&s->ac_entries) * LC_STORE__AC_OVERHEAD) +
           atomic_load(&s->space.upload_bytes) + atomic_load(&s->space.data_claimed) +
           atomic_load(&s->space.disk_over);
}

int lc_store__space_init(lc_store *s, const lc_store_options *opts, lc_err *err)
{
    (void)err;
    lc_store__space *sp = &s->space;
    sp->max_bytes = opts != NULL && opts->max_bytes > 0 ? opts->max_bytes : 0;
    sp->wait_ms =
        opts != NULL && opts->claim_wait_ms > 0 ? opts->claim_wait_ms : LC_STORE__CLAIM_WAIT_MS;
    pthread_mutex_lock(&sp->mu);
    sp->ballast_out = !ballast_exists(s->dir);
    refresh_locked(s);
    pthread_mutex_unlock(&sp->mu);
    lc_store_maintain(s);
    return 0;
}

void lc_store__space_preopen(const char *dir)
{
    /* What RocksDB writes while it opens (a new MANIFEST, OPTIONS, LOG, WAL)
     * is well under this. */
    if (avail_of(dir) < LC_STORE__BALLAST && ballast_exists(dir)) {
        ballast_drop(dir);
        LC_WARN(MOD, "the volume of %s is nearly full: gave the reserve file back to open", dir);
    }
}

void lc_store_maintain(lc_store *s)
{
    lc_store__space *sp = &s->space;
    /* Under --max-size the data directory's target is max + max/20 +
     * 40 MiB, inside the documented slack (max/10 + 64 MiB): what it holds
     * beyond that (blob files that still hold deleted blobs, mostly) counts
     * as used, so eviction frees more and writers wait until it did. */
    uint64_t du = 0;
    lc_err err = {0};
    if (sp->max_bytes > 0 && s->db != NULL && lc_store_disk_usage(s, &du, &err) == 0) {
        int64_t target = sp->max_bytes + sp->max_bytes / 20 + (40 << 20);
        atomic_store(&sp->disk_over, (int64_t)du > target ? (int64_t)du - target : 0);
    }
    pthread_mutex_lock(&sp->mu);
    refresh_locked(s);
    /* Back in once the volume has room for it twice over, beyond everything
     * else kept free (so it does not take the last of a slowly freed disk). */
    if (sp->ballast_out && room(sp, LC_STORE__META) >= 2 * LC_STORE__BALLAST) {
        if (ballast_make(s->dir) == 0) {
            sp->ballast_out = false;
            if (sp->danger_logged)
                LC_INFO(MOD, "the volume of %s has room again; reserve file restored", s->dir);
            sp->danger_logged = false;
            refresh_locked(s);
        }
    } else if (sp->ballast_out && !sp->danger_logged) {
        sp->danger_logged = true;
    }
    pthread_mutex_unlock(&sp->mu);
}

/* Asks RocksDB (without waiting) to flush every memtable, if that fits: the
 * WAL files holding the same bytes can then go. At most once a second.
 * Caller holds mu. */
static void request_flush_locked(lc_store *s)
{
    lc_store__space *sp = &s->space;
    int64_t now = lc_store__now();
    if (s->db == NULL || now == sp->last_flush_request || sp->mem < (1 << 20) ||
        sp->avail - atomic_load(&sp->written) < sp->mem + headroom(sp, LC_STORE__FREEING))
        return;
    sp->last_flush_request = now;
    rocksdb_free(lc_store__flush_cfs(s, 0, CF_COUNT, false));
}

static int full_err(lc_store *s, int64_t n, lc_err *err)
{
    lc_store__space *sp = &s->space;
    return lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                      "cache storage is full: %" PRId64 " bytes free in %s, %" PRId64
                      " of them in memtables to flush or promised to writes in flight; writing "
                      "%" PRId64 " bytes would leave less than the %" PRId64
                      " bytes RocksDB needs for its own work; free disk space or lower --max-size",
                      sp->avail - atomic_load(&sp->written), s->dir,
                      sp->mem + atomic_load(&sp->disk_claimed), n, headroom(sp, LC_STORE__META));
}

/* Waits until the budget has room for n (class DATA). Caller holds mu. */
static int budget_wait_locked(lc_store *s, int64_t n, lc_err *err)
{
    lc_store__space *sp = &s->space;
    if (n > sp->max_bytes)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                          "a write of %" PRId64 " bytes does not fit in --max-size %" PRId64, n,
                          sp->max_bytes);
    if (used_locked(s) + n <= sp->max_bytes)
        return 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += sp->wait_ms / 1000;
    until.tv_nsec += (long)(sp->wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int64_t need = used_locked(s) + n - sp->max_bytes;
    sp->wanted += need;
    int rc = 0;
    while (used_locked(s) + n > sp->max_bytes) {
        if (sp->kick != NULL)
            sp->kick(sp->kick_ctx);
        /* Wake at least every 200 ms: eviction may free room without a
         * broadcast reaching us (claims of others released). */
        struct timespec step;
        clock_gettime(CLOCK_MONOTONIC, &step);
        step.tv_nsec += 200 * 1000 * 1000;
        if (step.tv_nsec >= 1000000000) {
            step.tv_sec++;
            step.tv_nsec -= 1000000000;
        }
        if (step.tv_sec > until.tv_sec ||
            (step.tv_sec == until.tv_sec && step.tv_nsec > until.tv_nsec))
            step = until;
        pthread_cond_timedwait(&sp->freed, &sp->mu, &step);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (used_locked(s) + n > sp->max_bytes &&
            (now.tv_sec > until.tv_sec ||
             (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED,
                            "cache is at --max-size (%" PRId64 " of %" PRId64
                            " bytes used) and eviction made no room for %" PRId64
                            " more bytes within %d ms (everything stored may be in use by "
                            "uploads in flight); retry later",
                            used_locked(s), sp->max_bytes, n, sp->wait_ms);
            break;
        }
    }
    sp->wanted -= need;
    return rc;
}

int lc_store__claim(lc_store *s, int64_t n, int cls, lc_err *err)
{
    if (n <= 0)
        return 0;
    lc_store__space *sp = &s->space;
    int rc = 0;
    pthread_mutex_lock(&sp->mu);
    if (cls == LC_STORE__DATA && sp->max_bytes > 0) {
        /* Past the high-water mark: eviction starts now, ahead of the limit. */
        if (sp->kick != NULL && sp->kick_at > 0 && used_locked(s) + n >= sp->kick_at)
            sp->kick(sp->kick_ctx);
        if ((rc = budget_wait_locked(s, n, err)) != 0)
            goto out;
    }
    refresh_if_stale(s);
    if (room(sp, cls) < n) {
        refresh_locked(s); /* decide on fresh numbers */
        if (room(sp, cls) < n) {
            request_flush_locked(s);
            rc = full_err(s, n, err);
            goto out;
        }
    }
    atomic_fetch_add(&sp->disk_claimed, n);
    if (cls == LC_STORE__DATA)
        atomic_fetch_add(&sp->data_claimed, n);
out:
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

void lc_store__unclaim(lc_store *s, int64_t n, int cls)
{
    if (n <= 0)
        return;
    lc_store__space *sp = &s->space;
    atomic_fetch_sub(&sp->disk_claimed, n);
    if (cls == LC_STORE__DATA) {
        atomic_fetch_sub(&sp->data_claimed, n);
        lc_store__space_freed(s);
    }
}

void lc_store__wrote(lc_store *s, int64_t n, int64_t claimed, int cls)
{
    lc_store__space *sp = &s->space;
    atomic_fetch_add(&sp->written, n);
    if (claimed > 0) {
        atomic_fetch_sub(&sp->disk_claimed, claimed);
        if (cls == LC_STORE__DATA)
            atomic_fetch_sub(&sp->data_claimed, claimed);
    }
}

bool lc_store__space_can_flush(lc_store *s)
{
    lc_store__space *sp = &s->space;
    pthread_mutex_lock(&sp->mu);
    refresh_locked(s);
    bool ok = sp->avail >= sp->mem + LC_STORE__HEADROOM / 2;
    pthread_mutex_unlock(&sp->mu);
    return ok;
}

void lc_store__space_freed(lc_store *s)
{
    pthread_mutex_lock(&s->space.mu);
    pthread_cond_broadcast(&s->space.freed);
    pthread_mutex_unlock(&s->space.mu);
}

void lc_store__space_destroy(lc_store *s)
{
    pthread_cond_destroy(&s->space.freed);
    pthread_mutex_destroy(&s->space.mu);
}

void lc_store_set_evict_hook(lc_store *s, void (*kick)(void *ctx), void *ctx, uint64_t kick_at)
{
    pthread_mutex_lock(&s->space.mu);
    s->space.kick = kick;
    s->space.kick_ctx = ctx;
    s->space.kick_at = kick_at > INT64_MAX ? INT64_MAX : (int64_t)kick_at;
    pthread_mutex_unlock(&s->space.mu);
}

uint64_t lc_store_space_wanted(lc_store *s)
{
    pthread_mutex_lock(&s->space.mu);
    int64_t w = s->space.wanted;
    pthread_mutex_unlock(&s->space.mu);
    return w > 0 ? (uint64_t)w : 0;
}

int lc_store_disk_usage(lc_store *s, uint64_t *bytes, lc_err *err)
{
    *bytes = 0;
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "reading %s: %s", s->dir,
                          strerror(errno));
    struct dirent *e;
    uint64_t total = 0;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    *bytes = total;
    return 0;
}
