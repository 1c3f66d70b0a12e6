/* hash.c - see hash.h. */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "path.h"

#define BATCH_FILES 64
#define BATCH_BYTES (8 << 20)
#define READ_BUF (256 << 10)
/* A file whose ctime is this close to the moment we read it may still change
 * within the same clock tick without a visible stat change: don't cache it. */
#define RACY_NS (100LL * 1000000)

typedef struct file_res {
    lc_digest digest;
    lc_stat_key st;
    int cacheable;
} file_res;

typedef struct hash_job {
    uv_work_t req;
    const char *root;
    lc_ctx_entry **items; /* borrowed slice of the sorted array */
    size_t n;
    file_res *res;
    int code;
    char msg[LC_ERR_MSG_MAX];
} hash_job;

static void to_key(const struct stat *st, lc_stat_key *k)
{
    k->dev = (uint64_t)st->st_dev;
    k->ino = (uint64_t)st->st_ino;
    k->size = (int64_t)st->st_size;
    k->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    k->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static int key_eq(const lc_stat_key *a, const lc_stat_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* Reads and hashes one file (thread pool). 0 or an errno-derived code. */
static int hash_one(const char *root, const char *rel, uint8_t *buf, lc_hasher *h, file_res *out,
                    char *msg)
{
    char *full = lc_path_join(root, rel);
    if (full == NULL) {
        snprintf(msg, LC_ERR_MSG_MAX, "out of memory");
        return LC_RESOURCE_EXHAUSTED;
    }
    int code = 0;
    for (int attempt = 0;; attempt++) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t start = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
        int fd = open(full, O_RDONLY | O_CLOEXEC);
        struct stat a, b;
        if (fd < 0 || fstat(fd, &a) != 0) {
            code = lc_code_from_errno(errno);
            snprintf(msg, LC_ERR_MSG_MAX, "cannot read %s: %s", rel, strerror(errno));
            if (fd >= 0)
                close(fd);
            break;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        ssize_t got;
        while ((got = read(fd, buf, READ_BUF)) > 0)
            lc_hasher_update(h, buf, (size_t)got);
        int rerr = got < 0 ? errno : 0;
        int serr = fstat(fd, &b) != 0 ? errno : 0;
        close(fd);
        lc_hasher_final(h, &out->digest);
        if (rerr != 0 || serr != 0) {
            code = lc_code_from_errno(rerr ? rerr : serr);
            snprintf(msg, LC_ERR_MSG_MAX, "cannot read %s: %s", rel, strerror(rerr ? rerr : serr));
            break;
        }
        to_key(&a, &out->st);
        lc_stat_key kb;
        to_key(&b, &kb);
        if (key_eq(&out->st, &kb) && out->digest.size == out->st.size) {
            out->cacheable = out->st.ctime_ns + RACY_NS < start;
            break;
        }
        if (attempt == 3) {
            code = LC_ABORTED;
            snprintf(msg, LC_ERR_MSG_MAX, "%s keeps changing while it is being hashed", rel);
            break;
        }
    }
    free(full);
    return code;
}

static void work_cb(uv_work_t *req)
{
    hash_job *job = req->data;
    uint8_t *buf = malloc(READ_BUF);
    lc_hasher *h = lc_hasher_new();
    if (buf == NULL || h == NULL) {
        job->code = LC_RESOURCE_EXHAUSTED;
        snprintf(job->msg, sizeof(job->msg), "out of memory");
    }
    for (size_t i = 0; i < job->n && job->code == 0; i++)
        job->code = hash_one(job->root, job->items[i]->path, buf, h, &job->res[i], job->msg);
    lc_hasher_free(&h);
    free(buf);
}

typedef struct hash_run {
    lc_statcache *sc;
    lc_hash_stats *stats;
    lc_hash_progress_fn progress;
    void *progress_ctx;
    uint64_t to_read;
    int code;
    char msg[LC_ERR_MSG_MAX];
} hash_run;

static void after_cb(uv_work_t *req, int status)
{
    hash_job *job = req->data;
    hash_run *run = job->req.loop->data;
    if (status != 0 && job->code == 0) {
        job->code = LC_CANCELLED;
        snprintf(job->msg, sizeof(job->msg), "hashing cancelled");
    }
    if (job->code != 0) {
        if (run->code == 0) {
            run->code = job->code;
            memcpy(run->msg, job->msg, sizeof(run->msg));
        }
        return;
    }
    for (size_t i = 0; i < job->n; i++) {
        lc_ctx_entry *e = job->items[i];
        file_res *r = &job->res[i];
        e->digest = r->digest;
        e->hashed = true;
        /* The content read belongs to the stat taken at read time. */
        e->st = r->st;
        e->size = r->st.size;
        run->stats->files_read++;
        run->stats->bytes_read += (uint64_t)r->st.size;
        if (r->cacheable && lc_statcache_put(run->sc, &r->st, &r->digest) != 0 && run->code == 0) {
            run->code = LC_RESOURCE_EXHAUSTED;
            snprintf(run->msg, sizeof(run->msg), "out of memory");
        }
    }
    if (run->progress != NULL)
        run->progress(run->progress_ctx, run->stats->bytes_read, run->to_read);
}

static int cmp_entry(const void *pa, const void *pb)
{
    const lc_ctx_entry *a = *(lc_ctx_entry *const *)pa, *b = *(lc_ctx_entry *const *)pb;
    if (a->st.dev != b->st.dev)
        return a->st.dev < b->st.dev ? -1 : 1;
    if (a->st.ino != b->st.ino)
        return a->st.ino < b->st.ino ? -1 : 1;
    return strcmp(a->path, b->path);
}

int lc_hash_selections(const char *root, lc_selection *const *sels, size_t n, lc_statcache *sc,
                       lc_hash_stats *stats, lc_err *err)
{
    return lc_hash_selections_progress(root, sels, n, sc, NULL, NULL, stats, err);
}

int lc_hash_selections_progress(const char *root, lc_selection *const *sels, size_t n,
                                lc_statcache *sc, lc_hash_progress_fn progress, void *ctx,
                                lc_hash_stats *stats, lc_err *err)
{
    lc_hash_stats local;
    if (stats == NULL)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += sels[i] ? sels[i]->n : 0;
    lc_ctx_entry **all = malloc((total ? total : 1) * sizeof(*all));
    lc_ctx_entry **todo = malloc((total ? total : 1) * sizeof(*todo));
    file_res *res = calloc(total ? total : 1, sizeof(*res));
    hash_job *jobs = calloc(total ? total : 1, sizeof(*jobs));
    uv_loop_t loop;
    int loop_ok = 0, rc = 0;
    hash_run run = {.sc = sc, .stats = stats, .progress = progress, .progress_ctx = ctx};
    if (all == NULL || todo == NULL || res == NULL || jobs == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; sels[i] && k < sels[i]->n; k++) {
            if (S_ISREG(sels[i]->entries[k].mode))
                all[m++] = &sels[i]->entries[k];
        }
    }
    /* Same (device, inode) once: sorted, the first of each run is hashed. */
    qsort(all, m, sizeof(*all), cmp_entry);
    size_t ntodo = 0;
    for (size_t i = 0; i < m; i++) {
        lc_ctx_entry *e = all[i];
        if (i > 0 && all[i - 1]->st.dev == e->st.dev && all[i - 1]->st.ino == e->st.ino)
            continue;
        stats->files++;
        stats->bytes += (uint64_t)e->st.size;
        if (e->hashed)
            continue;
        if (lc_statcache_get(sc, &e->st, &e->digest)) {
            e->hashed = true;
            stats->cache_hits++;
            continue;
        }
        todo[ntodo++] = e;
        run.to_read += (uint64_t)e->st.size;
    }
    if (ntodo > 0) {
        if (uv_loop_init(&loop) != 0) {
            rc = lc_err_set(err, LC_INTERNAL, "cannot create an event loop");
            goto out;
        }
        loop_ok = 1;
        loop.data = &run;
        size_t njobs = 0;
        for (size_t i = 0; i < ntodo;) {
            hash_job *job = &jobs[njobs++];
            job->root = root;
            job->items = &todo[i];
            job->res = &res[i];
            int64_t bytes = 0;
            while (i < ntodo && job->n < BATCH_FILES && bytes < BATCH_BYTES) {
                bytes += todo[i]->st.size;
                job->n++;
                i++;
            }
            job->req.data = job;
            int q = uv_queue_work(&loop, &job->req, work_cb, after_cb);
            if (q != 0) {
                njobs--;
                run.code = LC_INTERNAL;
                snprintf(run.msg, sizeof(run.msg), "cannot queue hashing work: %s", uv_strerror(q));
                break;
            }
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        if (run.code != 0) {
            rc = lc_err_set(err, run.code, "%s", run.msg);
            goto out;
        }
    }
    /* Copy digests to the other names of the same file. */
    for (size_t i = 1; i < m; i++) {
        if (all[i - 1]->st.dev == all[i]->st.dev && all[i - 1]->st.ino == all[i]->st.ino &&
            all[i - 1]->hashed) {
            all[i]->digest = all[i - 1]->digest;
            all[i]->st = all[i - 1]->st;
            all[i]->size = all[i - 1]->size;
            all[i]->hashed = true;
        }
    }
out:
    if (loop_ok)
        uv_loop_close(&loop);
    free(jobs);
    free(res);
    free(todo);
    free(all);
    return rc;
}
