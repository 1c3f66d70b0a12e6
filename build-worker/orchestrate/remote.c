/* remote.c - see remote.h. */
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
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
    int slot;   /* progress slot of the step, -1 none */
    bool probe; /* the start-up GetCapabilities, not an upload */
} upload_job;

/* Blobs smaller than this move too fast to show their bytes. */
#define SHOW_BYTES_FROM (1u << 20)

struct lc_remote {
    lc_cache_client *client;
    lc_progress *progress;
    atomic_int mode; /* enum lc_cache_mode; RW drops to RO on PERMISSION_DENIED */
    char *worker;
    bool configured; /* a server was given and the mode is not off */
    bool required;   /* --cache-required */
    atomic_bool off; /* set after the first failure to reach the server */
    atomic_uint_fast64_t down, up;

    /* What went wrong, for the summary (status_mu). One warning per state
     * change: degraded once, off once. */
    pthread_mutex_t status_mu;
    int state; /* enum lc_cache_state */
    bool auth;
    char reason[LC_ERR_MSG_MAX];

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

static bool is_tls(const char *msg)
{
    return strstr(msg, "TLS") != NULL || strstr(msg, "SSL") != NULL ||
           strstr(msg, "andshake") != NULL || strstr(msg, "certificate") != NULL;
}

/* Records a state change (never back to a better state) and says it once. */
static void set_state(lc_remote *r, int state, bool auth, const char *reason, const char *warning)
{
    pthread_mutex_lock(&r->status_mu);
    bool worse = state > r->state;
    if (worse) {
        r->state = state;
        r->auth = auth;
        snprintf(r->reason, sizeof(r->reason), "%s", reason);
    }
    pthread_mutex_unlock(&r->status_mu);
    /* --cache-required: the build's error says it instead of "continuing". */
    if (worse && !r->required)
        lc_progress_warn(r->progress, "%s", warning);
}

/* A failed call. write: an upload (PERMISSION_DENIED there means a token
 * that may read but not write). */
static void fail(lc_remote *r, int rc, const lc_err *err, bool write)
{
    /* Room for what this adds around the call's message. */
    char msg[LC_ERR_MSG_MAX - 100];
    snprintf(msg, sizeof(msg), "%.*s", (int)sizeof(msg) - 1,
             err != NULL && err->msg[0] ? err->msg : lc_code_name(rc < 0 ? -rc : rc));
    char reason[LC_ERR_MSG_MAX], warning[LC_ERR_MSG_MAX + 128];
    if (rc == -LC_PERMISSION_DENIED && write && atomic_load(&r->mode) == LC_CACHE_RW) {
        /* Read-only credentials: keep reading, stop writing. */
        atomic_store(&r->mode, LC_CACHE_RO);
        snprintf(reason, sizeof(reason),
                 "auth failure (PERMISSION_DENIED): the token may not "
                 "upload; lookups only: %s",
                 msg);
        snprintf(warning, sizeof(warning),
                 "cache server refused an upload: auth failure (%s); continuing read-only", msg);
        set_state(r, LC_CACHE_STATE_DEGRADED, true, reason, warning);
        return;
    }
    if (rc == -LC_UNAUTHENTICATED || rc == -LC_PERMISSION_DENIED) {
        atomic_store(&r->off, true);
        snprintf(reason, sizeof(reason), "auth failure (%s): %s",
                 rc == -LC_UNAUTHENTICATED ? "UNAUTHENTICATED" : "PERMISSION_DENIED", msg);
        snprintf(warning, sizeof(warning),
                 "cache server auth failure: the server refused the token (%s); continuing "
                 "without the cache",
                 msg);
        set_state(r, LC_CACHE_STATE_OFF, true, reason, warning);
        return;
    }
    if (is_fatal(rc)) {
        atomic_store(&r->off, true);
        snprintf(reason, sizeof(reason), "%s%s", is_tls(msg) ? "TLS failure: " : "", msg);
        snprintf(warning, sizeof(warning),
                 "cache server unavailable (%s); continuing without the cache", reason);
        set_state(r, LC_CACHE_STATE_OFF, false, reason, warning);
        return;
    }
    if (rc == -LC_NOT_FOUND && !write)
        return; /* a miss: pulls ask the cache before the registry */
    /* One request failed (a blob refused or gone, the server full): the
     * cache still works, but this build's results may not all be shared. */
    snprintf(reason, sizeof(reason), "%s: %s", write ? "an upload failed" : "a download failed",
             msg);
    snprintf(warning, sizeof(warning), "cache: %s; the build goes on", reason);
    set_state(r, LC_CACHE_STATE_DEGRADED, false, reason, warning);
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

/* A file upload's source: pread that shows how far it got. */
typedef struct upload_src {
    int fd;
    lc_progress *progress;
    int xfer;
    uint64_t high;
} upload_src;

static ssize_t upload_pread(void *ctx, void *buf, size_t len, int64_t off, lc_err *err)
{
    upload_src *u = ctx;
    ssize_t n;
    do
        n = pread(u->fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "read of a blob to upload: %s",
                          strerror(errno));
    if ((uint64_t)off + (uint64_t)n > u->high) {
        u->high = (uint64_t)off + (uint64_t)n;
        lc_progress_transfer_update(u->progress, u->xfer, u->high);
    }
    return n;
}

static int upload_blob(lc_remote *r, upload_job *j, size_t i, lc_err *err)
{
    if (j->datas[i] != NULL)
        return lc_cache_client_write_buffer(r->client, &j->digests[i], j->datas[i], err);
    upload_src u = {
        .fd = open(j->paths[i], O_RDONLY | O_CLOEXEC), .progress = r->progress, .xfer = -1};
    if (u.fd < 0)
        return lc_err_set(err, LC_NOT_FOUND, "cannot open %s: %s", j->paths[i], strerror(errno));
    if (j->digests[i].size >= SHOW_BYTES_FROM) {
        char hex[LC_DIGEST_OCI_LEN + 1], what[64];
        lc_digest_oci(&j->digests[i], hex);
        snprintf(what, sizeof(what), "uploading %.19s", hex);
        u.xfer =
            lc_progress_transfer_begin(r->progress, j->slot, what, (uint64_t)j->digests[i].size);
    }
    int rc = lc_cache_client_write_pread(r->client, &j->digests[i], upload_pread, &u, err);
    lc_progress_transfer_end(r->progress, u.xfer);
    close(u.fd);
    return rc;
}

/* GetCapabilities: is the server there, does it take our token, SHA-256,
 * uploads? */
static void run_probe(lc_remote *r)
{
    lc_cache_capabilities caps;
    lc_err err = {0};
    int rc = lc_cache_client_get_capabilities(r->client, &caps, &err);
    if (rc == -LC_UNIMPLEMENTED)
        return; /* a cache without Capabilities: the calls will tell */
    if (rc < 0) {
        fail(r, rc, &err, false);
        return;
    }
    if (lc_cache_capabilities_check(&caps, 0, &err) < 0) {
        atomic_store(&r->off, true);
        char warning[LC_ERR_MSG_MAX + 64];
        snprintf(warning, sizeof(warning),
                 "cache server unusable (%s); continuing without the cache", err.msg);
        set_state(r, LC_CACHE_STATE_OFF, false, err.msg, warning);
        return;
    }
    if (!caps.update_enabled && atomic_load(&r->mode) == LC_CACHE_RW) {
        atomic_store(&r->mode, LC_CACHE_RO);
        set_state(r, LC_CACHE_STATE_DEGRADED, true,
                  "auth failure: the server accepts no uploads with this token (read-only); "
                  "lookups only",
                  "cache server accepts no uploads with this token (auth: read-only); "
                  "continuing read-only");
    }
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
    if (j->probe) {
        run_probe(r);
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
            build__bazel__remote__execution__v2__action_result__unpack(NULL, j->result_len,
                                                                       j->result);
        if (ar == NULL) {
            rc = -LC_INTERNAL;
            goto out;
        }
        rc = lc_cache_client_update_action_result(r->client, &j->key, ar, &err);
        build__bazel__remote__execution__v2__action_result__free_unpacked(ar, NULL);
    }
out:
    if (rc < 0 && err.code != LC_OK)
        fail(r, rc, &err, true);
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

static void enqueue(lc_remote *r, upload_job *j);

int lc_remote_open(const lc_remote_opts *opts, lc_progress *progress, lc_remote **out, lc_err *err)
{
    lc_remote *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    r->progress = progress;
    atomic_init(&r->mode, opts->mode);
    r->worker = strdup(opts->worker ? opts->worker : "");
    r->required = opts->required;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_mutex_init(&r->status_mu, NULL);
    atomic_init(&r->off, true);
    bool routed = opts->peers != NULL && *opts->peers != '\0';
    bool given = routed || (opts->target != NULL && *opts->target != '\0');
    r->state = LC_CACHE_STATE_OFF;
    snprintf(r->reason, sizeof(r->reason), "%s",
             !given ? "no cache server given (--cache)" : "--cache-mode off");
    if (given && opts->mode != LC_CACHE_OFF) {
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
        r->configured = true;
        r->state = LC_CACHE_STATE_OK;
        r->reason[0] = '\0';
        atomic_store(&r->off, false);
        if (r->required) {
            /* CI that must not run uncached learns it before anything runs. */
            run_probe(r);
            if ((rc = lc_remote_check_required(r, err)) < 0) {
                lc_remote_close(&r);
                return rc;
            }
        }
        if (pthread_create(&r->thread, NULL, upload_thread, r) == 0)
            r->thread_started = true;
        upload_job *probe = calloc(1, sizeof(*probe));
        if (!r->required && probe != NULL && r->thread_started) {
            probe->probe = true;
            probe->slot = -1;
            enqueue(r, probe);
        } else {
            free(probe);
        }
    } else if (opts->required) {
        lc_err_set(err, LC_INVALID_ARGUMENT, "--cache-required: %s", r->reason);
        lc_remote_close(&r);
        return -LC_INVALID_ARGUMENT;
    }
    *out = r;
    return 0;
}

void lc_remote_get_status(lc_remote *r, lc_remote_status *out)
{
    pthread_mutex_lock(&r->status_mu);
    out->state = r->state;
    out->auth = r->auth;
    snprintf(out->reason, sizeof(out->reason), "%s", r->reason);
    pthread_mutex_unlock(&r->status_mu);
}

const char *lc_remote_state_name(int state)
{
    return state == LC_CACHE_STATE_OK         ? "ok"
           : state == LC_CACHE_STATE_DEGRADED ? "degraded"
                                              : "off";
}

int lc_remote_check_required(lc_remote *r, lc_err *err)
{
    if (r == NULL || !r->required)
        return 0;
    lc_remote_status st;
    lc_remote_get_status(r, &st);
    if (st.state == LC_CACHE_STATE_OFF || (st.state == LC_CACHE_STATE_DEGRADED && st.auth))
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "the cache is required (--cache-required) "
                          "but is %s: %s",
                          lc_remote_state_name(st.state), st.reason);
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
    pthread_mutex_destroy(&r->status_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->worker);
    free(r);
    *rp = NULL;
}

bool lc_remote_readable(const lc_remote *r)
{
    return r->client != NULL && !atomic_load(&r->off);
}

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
        fail(r, rc, &err, false);
    for (size_t i = 0; i < n; i++) {
        if (out[i].status == 0 && out[i].result != NULL &&
            lc_step_result_decode(out[i].result, &results[i], NULL) == 0)
            hit[i] = true;
        lc_action_result_free(&out[i].result);
    }
    free(out);
}

/* A download's sink: the file, and how far it got. */
typedef struct fetch_sink {
    int fd;
    lc_progress *progress;
    int xfer;
    uint64_t done;
} fetch_sink;

static int fetch_write(void *ctx, const void *data, size_t len, lc_err *err)
{
    fetch_sink *f = ctx;
    const char *p = data;
    for (size_t left = len; left > 0;) {
        ssize_t w = write(f->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return lc_err_set(err, lc_code_from_errno(errno), "write of a downloaded blob: %s",
                              strerror(errno));
        p += w;
        left -= (size_t)w;
    }
    f->done += len;
    lc_progress_transfer_update(f->progress, f->xfer, f->done);
    return 0;
}

int lc_remote_fetch(lc_remote *r, const lc_digest *d, const char *path, int slot, lc_err *err)
{
    lc_err local = {0};
    if (err == NULL)
        err = &local;
    if (!lc_remote_readable(r))
        return lc_err_set(err, LC_UNAVAILABLE, "no cache server to fetch %s from", path);
    fetch_sink f = {.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644),
                    .progress = r->progress,
                    .xfer = -1};
    if (f.fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", path,
                          strerror(errno));
    if (d->size >= SHOW_BYTES_FROM) {
        char hex[LC_DIGEST_OCI_LEN + 1], what[64];
        lc_digest_oci(d, hex);
        snprintf(what, sizeof(what), "downloading %.19s", hex);
        f.xfer = lc_progress_transfer_begin(r->progress, slot, what, (uint64_t)d->size);
    }
    int rc = lc_cache_client_read(r->client, d, 0, 0, fetch_write, &f, NULL, err);
    lc_progress_transfer_end(r->progress, f.xfer);
    if (close(f.fd) != 0 && rc == 0)
        rc = lc_err_set(err, lc_code_from_errno(errno), "cannot write %s", path);
    if (rc < 0) {
        unlink(path);
        fail(r, rc, err, false);
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
                      int slot, lc_remote_done_fn on_done, void *ctx)
{
    if (!lc_remote_writable(r) || !r->thread_started)
        return;
    upload_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    j->key = *key;
    j->slot = slot;
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
    j->slot = -1;
    j->digests[0] = *d;
    enqueue(r, j);
}

uint64_t lc_remote_bytes_down(const lc_remote *r)
{
    return atomic_load(&r->down);
}
uint64_t lc_remote_bytes_up(const lc_remote *r)
{
    return atomic_load(&r->up);
}
