/* remote.c - see remote.h. */
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_client.h"

typedef struct upload_job {
    struct upload_job *next;
    lc_digest key;
    uint8_t *result; /* serialized ActionResult */
    size_t result_len;
    lc_digest *digests;
    void **datas; /* copies, or NULL when the blob is a file */
    char **paths;
    size_t n;
    lc_remote_done_fn on_done;
    void *ctx;
} upload_job;

struct lc_remote {
    lc_cache_client *client;
    lc_progress *progress;
    atomic_int mode; /* enum lc_cache_mode; RW drops to RO on PERMISSION_DENIED */
    char *worker;
    atomic_bool off;   /* set after the first failure to reach the server */
    atomic_bool warned;
    atomic_uint_fast64_t down, up;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    upload_job *head, *tail;
    bool busy, stopping;
};

/* Errors that mean "the cache is not usable": turn the remote off. Others
 * (NOT_FOUND, a rejected blob) concern one request only. */
static bool is_fatal(int rc)
{
    return rc == -LC_UNAVAILABLE || rc == -LC_DEADLINE_EXCEEDED || rc == -LC_UNAUTHENTICATED ||
           rc == -LC_INTERNAL || rc == -LC_UNKNOWN || rc == -LC_CANCELLED;
}

static void fail(lc_remote *r, int rc, const lc_err *err)
{
    if (rc == -LC_PERMISSION_DENIED && atomic_load(&r->mode) == LC_CACHE_RW) {
        /* Read-only credentials: keep reading, stop writing. */
        atomic_store(&r->mode, LC_CACHE_RO);
        if (!atomic_exchange(&r->warned, true))
            lc_progress_warn(r->progress, "cache server refused an upload (%s); continuing read-only",
                             err->msg);
        return;
    }
    if (!is_fatal(rc))
        return;
    atomic_store(&r->off, true);
    if (!atomic_exchange(&r->warned, true))
        lc_progress_warn(r->progress, "cache server unavailable (%s); continuing without the cache",
                         err->msg);
}

static void job_free(upload_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->datas[i]);
        free(j->paths[i]);
    }
    free(j->digests);
    free(j->datas);
    free(j->paths);
    free(j->result);
    free(j);
}

static int upload_blob(lc_remote *r, upload_job *j, size_t i, lc_err *err)
{
    if (j->datas[i] != NULL)
        return lc_cache_client_write_buffer(r->client, &j->digests[i], j->datas[i], err);
    int fd = open(j->paths[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, LC_NOT_FOUND, "cannot open %s: %s", j->paths[i], strerror(errno));
    int rc = lc_cache_client_write_fd(r->client, &j->digests[i], fd, err);
    close(fd);
    return rc;
}

static void run_job(lc_remote *r, upload_job *j)
{
    lc_err err = {0};
    uint64_t bytes = 0;
    int rc = 0;
    unsigned char *missing = calloc(j->n ? j->n : 1, 1);
    if (missing == NULL) {
        rc = -LC_RESOURCE_EXHAUSTED;
        goto out;
    }
    if (atomic_load(&r->off) || atomic_load(&r->mode) != LC_CACHE_RW) {
        rc = -LC_UNAVAILABLE;
        goto out;
    }
    if ((rc = lc_cache_client_find_missing(r->client, j->digests, j->n, missing, &err)) < 0)
        goto out;
    for (size_t i = 0; i < j->n && rc == 0; i++) {
        if (!missing[i])
            continue;
        rc = upload_blob(r, j, i, &err);
        if (rc == 0)
            bytes += (uint64_t)j->digests[i].size;
    }
    if (rc == 0 && j->result != NULL) { /* NULL: a bare blob (lc_remote_put_blob) */
        Build__Bazel__Remote__Execution__V2__ActionResult *ar =
            build__bazel__remote__execution__v2__action_result__unpack(NULL, j->result_len, j->result);
        if (ar == NULL) {
            rc = -LC_INTERNAL;
            goto out;
        }
        rc = lc_cache_client_update_action_result(r->client, &j->key, ar, &err);
        build__bazel__remote__execution__v2__action_result__free_unpacked(ar, NULL);
    }
out:
    if (rc < 0 && err.code != LC_OK)
        fail(r, rc, &err);
    atomic_fetch_add(&r->up, bytes);
    if (j->on_done != NULL)
        j->on_done(j->ctx, rc, bytes);
    free(missing);
}

static void *upload_thread(void *arg)
{
    lc_remote *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->head == NULL && !r->stopping)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->head == NULL)
            break;
        upload_job *j = r->head;
        r->head = j->next;
        if (r->head == NULL)
            r->tail = NULL;
        r->busy = true;
        pthread_mutex_unlock(&r->mu);
        run_job(r, j);
        job_free(j);
        pthread_mutex_lock(&r->mu);
        r->busy = false;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int lc_remote_open(const lc_remote_opts *opts, lc_progress *progress, lc_remote **out,
                   lc_err *err)
{
    lc_remote *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    r->progress = progress;
    atomic_init(&r->mode, opts->mode);
    r->worker = strdup(opts->worker ? opts->worker : "");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->off, true);
    bool routed = opts->peers != NULL && *opts->peers != '\0';
    if ((routed || (opts->target != NULL && *opts->target != '\0')) &&
        opts->mode != LC_CACHE_OFF) {
        lc_cache_client_options co = {.instance_name = opts->instance,
                                      .token = opts->token,
                                      .ca_file = opts->cacert,
                                      .cert_file = opts->tls_cert,
                                      .key_file = opts->tls_key,
                                      .peers = opts->peers};
        /* A one-entry peer list would read as a plain address as the target. */
        int rc = lc_cache_client_open(routed ? NULL : opts->target, &co, &r->client, err);
        if (rc < 0) {
            lc_remote_close(&r);
            return rc;
        }
        atomic_store(&r->off, false);
        if (pthread_create(&r->thread, NULL, upload_thread, r) == 0)
            r->thread_started = true;
    }
    *out = r;
    return 0;
}

void lc_remote_drain(lc_remote *r)
{
    if (r == NULL || !r->thread_started)
        return;
    pthread_mutex_lock(&r->mu);
    while (r->head != NULL || r->busy)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void lc_remote_close(lc_remote **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    lc_remote *r = *rp;
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    while (r->head != NULL) {
        upload_job *j = r->head;
        r->head = j->next;
        job_free(j);
    }
    lc_cache_client_close(&r->client);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->worker);
    free(r);
    *rp = NULL;
}

bool lc_remote_readable(const lc_remote *r) { return r->client != NULL && !atomic_load(&r->off); }

bool lc_remote_writable(const lc_remote *r)
{
    return lc_remote_readable(r) && atomic_load(&r->mode) == LC_CACHE_RW;
}

void lc_remote_lookup(lc_remote *r, const lc_digest *keys, size_t n, bool *hit,
                      lc_step_result *results)
{
    memset(hit, 0, n * sizeof(*hit));
    if (!lc_remote_readable(r) || n == 0)
        return;
    lc_cache_lookup *out = calloc(n, sizeof(*out));
    if (out == NULL)
        return;
    lc_err err = {0};
    int rc = lc_cache_client_get_action_results(r->client, keys, n, out, &err);
    if (rc < 0)
        fail(r, rc, &err);
    for (size_t i = 0; i < n; i++) {
        if (out[i].status == 0 && out[i].result != NULL &&
            lc_step_result_decode(out[i].result, &results[i], NULL) == 0)
            hit[i] = true;
        lc_action_result_free(&out[i].result);
    }
    free(out);
}

int lc_remote_fetch(lc_remote *r, const lc_digest *d, const char *path, lc_err *err)
{
    if (!lc_remote_readable(r))
        return lc_err_set(err, LC_UNAVAILABLE, "no cache server to fetch %s from", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", path,
                          strerror(errno));
    int rc = lc_cache_client_read_fd(r->client, d, fd, err);
    if (close(fd) != 0 && rc == 0)
        rc = lc_err_set(err, lc_code_from_errno(errno), "cannot write %s", path);
    if (rc < 0) {
        unlink(path);
        fail(r, rc, err);
        return rc;
    }
    atomic_fetch_add(&r->down, (uint64_t)d->size);
    return 0;
}

/* The job's blob arrays, for n blobs (job_free frees them). */
static int job_alloc_blobs(upload_job *j, size_t n)
{
    j->digests = calloc(n ? n : 1, sizeof(*j->digests));
    j->datas = calloc(n ? n : 1, sizeof(*j->datas));
    j->paths = calloc(n ? n : 1, sizeof(*j->paths));
    if (!j->digests || !j->datas || !j->paths)
        return -1;
    j->n = n; /* only now may job_free walk the arrays */
    return 0;
}

/* Hands j to the upload thread. */
static void enqueue(lc_remote *r, upload_job *j)
{
    pthread_mutex_lock(&r->mu);
    if (r->tail != NULL)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void lc_remote_upload(lc_remote *r, const lc_digest *key, const lc_step_result *result,
                      double start, double end, const lc_remote_blob *blobs, size_t nblobs,
                      lc_remote_done_fn on_done, void *ctx)
{
    if (!lc_remote_writable(r) || !r->thread_started)
        return;
    upload_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    j->key = *key;
    j->on_done = on_done;
    j->ctx = ctx;
    if (job_alloc_blobs(j, nblobs) < 0 ||
        lc_step_result_encode(result, r->worker, start, end, &j->result, &j->result_len, NULL) < 0)
        goto oom;
    for (size_t i = 0; i < nblobs; i++) {
        j->digests[i] = blobs[i].digest;
        if (blobs[i].data != NULL) {
            j->datas[i] = malloc(blobs[i].digest.size ? (size_t)blobs[i].digest.size : 1);
            if (j->datas[i] == NULL)
                goto oom;
            memcpy(j->datas[i], blobs[i].data, (size_t)blobs[i].digest.size);
        } else if ((j->paths[i] = strdup(blobs[i].path)) == NULL) {
            goto oom;
        }
    }
    enqueue(r, j);
    return;
oom:
    job_free(j);
}

/* registry: base image blobs pulled from a registry go into the CAS by
 * digest, so the next worker gets them from the cache (registry/pull.c). */
void lc_remote_put_blob(lc_remote *r, const lc_digest *d, const char *path)
{
    if (!lc_remote_writable(r) || !r->thread_started)
        return;
    upload_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    if (job_alloc_blobs(j, 1) < 0 || (j->paths[0] = strdup(path)) == NULL) {
        job_free(j);
        return;
    }
    j->digests[0] = *d;
    enqueue(r, j);
}

uint64_t lc_remote_bytes_down(const lc_remote *r) { return atomic_load(&r->down); }
uint64_t lc_remote_bytes_up(const lc_remote *r) { return atomic_load(&r->up); }
