/* store_loader.c - fills a layercache store directly (no gRPC) for
 * bench/bench-scale: N small blobs and M action results, through the same
 * store calls the server makes (lc_store_blob_put, lc_store_ac_put), so
 * counts, the access-time index and the records are exactly what a server
 * would have written.
 *
 *   store_loader --data DIR --blobs N [--from F] [--ac M] [--threads T] [--seed S]
 *
 * Writes blobs F..N-1 (F = 0 by default; --blobs 0: nothing, just the
 * totals). Blob i (of seed S) is 100..240 bytes: its index, the seed, and
 * filler; action result k names blobs k, k+1, k+2 (mod N) as output files.
 * Prints "RESULT key=value ..." lines: the fill time, the time the last
 * 10 % of the blobs took, and the store's totals.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "cache-server/store.h"
#include "layercache/v1/admin.pb-c.h"

typedef struct job {
    lc_store *s;
    uint64_t from, to, step; /* blobs [from, to) every step */
    uint64_t n_blobs, seed;
    int rc;
    char msg[640];
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Blob i's bytes into buf (at least 240 bytes); returns the length. */
static size_t blob_bytes(uint64_t seed, uint64_t i, uint8_t *buf)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    size_t n = 100 + (size_t)(x % 141);
    memcpy(buf, &i, 8);
    memcpy(buf + 8, &seed, 8);
    for (size_t k = 16; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[k] = (uint8_t)x;
    }
    return n;
}

static void blob_digest(uint64_t seed, uint64_t i, lc_digest *d)
{
    uint8_t buf[256];
    size_t n = blob_bytes(seed, i, buf);
    lc_digest_of(buf, n, d);
}

static void *put_blobs(void *arg)
{
    job *j = arg;
    uint8_t buf[256];
    for (uint64_t i = j->from; i < j->to; i += j->step) {
        size_t n = blob_bytes(j->seed, i, buf);
        lc_digest d;
        lc_digest_of(buf, n, &d);
        lc_err err = {0};
        if (lc_store_blob_put(j->s, &d, buf, n, &err) != 0) {
            j->rc = 1;
            snprintf(j->msg, sizeof(j->msg), "blob %" PRIu64 ": %s", i, err.msg);
            return NULL;
        }
    }
    return NULL;
}

static void *put_results(void *arg)
{
    job *j = arg;
    for (uint64_t k = j->from; k < j->to; k += j->step) {
        Build__Bazel__Remote__Execution__V2__OutputFile files[3], *fp[3];
        Build__Bazel__Remote__Execution__V2__Digest dg[3];
        char hex[3][LC_HASH_HEX_LEN + 1];
        for (int f = 0; f < 3; f++) {
            lc_digest d;
            blob_digest(j->seed, (k + (uint64_t)f) % j->n_blobs, &d);
            lc_digest_hex(&d, hex[f]);
            build__bazel__remote__execution__v2__digest__init(&dg[f]);
            dg[f].hash = hex[f];
            dg[f].size_bytes = d.size;
            build__bazel__remote__execution__v2__output_file__init(&files[f]);
            files[f].path = "out";
            files[f].digest = &dg[f];
            fp[f] = &files[f];
        }
        Build__Bazel__Remote__Execution__V2__ActionResult ar =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
        ar.n_output_files = 3;
        ar.output_files = fp;
        uint8_t arb[1024], stb[2048];
        size_t arlen = build__bazel__remote__execution__v2__action_result__pack(&ar, arb);
        Layercache__V1__StoredActionResult st = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
        st.action_result.data = arb;
        st.action_result.len = arlen;
        st.created_unix = (int64_t)time(NULL);
        size_t stlen = layercache__v1__stored_action_result__pack(&st, stb);
        char key[64];
        int kl = snprintf(key, sizeof(key), "bench-scale action %" PRIu64 " %" PRIu64, j->seed, k);
        lc_digest action;
        lc_digest_of(key, (size_t)kl, &action);
        lc_err err = {0};
        if (lc_store_ac_put(j->s, "", &action, stb, stlen, &err) != 0) {
            j->rc = 1;
            snprintf(j->msg, sizeof(j->msg), "action result %" PRIu64 ": %s", k, err.msg);
            return NULL;
        }
    }
    return NULL;
}

/* Runs fn over [from, to) on t threads; 0 or 1. */
static int run(void *(*fn)(void *), lc_store *s, uint64_t from, uint64_t to, int t,
               uint64_t n_blobs, uint64_t seed)
{
    pthread_t th[64];
    job jobs[64];
    for (int k = 0; k < t; k++) {
        jobs[k] = (job){.s = s,
                        .from = from + (uint64_t)k,
                        .to = to,
                        .step = (uint64_t)t,
                        .n_blobs = n_blobs,
                        .seed = seed};
        pthread_create(&th[k], NULL, fn, &jobs[k]);
    }
    int rc = 0;
    for (int k = 0; k < t; k++) {
        pthread_join(th[k], NULL);
        if (jobs[k].rc != 0) {
            fprintf(stderr, "store_loader: %s\n", jobs[k].msg);
            rc = 1;
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t blobs = 0, from = 0, results = 0, seed = 1;
    int threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--blobs") == 0)
            blobs = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--from") == 0)
            from = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--ac") == 0)
            results = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "store_loader: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (dir == NULL || from > blobs || threads < 1 || threads > 64 || (results > 0 && blobs == 0)) {
        fprintf(stderr, "usage: store_loader --data DIR --blobs N [--from F] [--ac M] "
                        "[--threads T] [--seed S]\n");
        return 2;
    }
    lc_err err = {0};
    lc_store *s = NULL;
    if (lc_store_open(dir, NULL, &s, &err) != 0) {
        fprintf(stderr, "store_loader: %s\n", err.msg);
        return 1;
    }
    uint64_t tenth = blobs - (blobs - from) / 10;
    double t0 = now_s();
    int rc = run(put_blobs, s, from, tenth, threads, blobs, seed);
    double t1 = now_s();
    if (rc == 0)
        rc = run(put_blobs, s, tenth, blobs, threads, blobs, seed);
    double t2 = now_s();
    if (rc == 0 && results > 0)
        rc = run(put_results, s, 0, results, threads, blobs, seed);
    double t3 = now_s();
    lc_store_totals t;
    lc_store_get_totals(s, &t);
    lc_store_close(&s);
    double t4 = now_s();
    printf("RESULT blobs=%" PRIu64 " blob_seconds=%.2f last10_blobs=%" PRIu64
           " last10_seconds=%.3f ac=%" PRIu64 " ac_seconds=%.2f close_seconds=%.2f\n",
           blobs - from, t2 - t0, blobs - tenth, t2 - t1, results, t3 - t2, t4 - t3);
    printf("RESULT stored_blobs=%" PRIu64 " blob_bytes=%" PRIu64 " ac_entries=%" PRIu64
           " ac_bytes=%" PRIu64 " used_bytes=%" PRIu64 "\n",
           t.blobs, t.blob_bytes, t.ac_entries, t.ac_bytes, t.used_bytes);
    return rc;
}
