/* test_cache_roundtrip.c - the C cache client against the real server:
 * capabilities, action cache, FindMissingBlobs, batch update/read (with the
 * empty blob), a 64 MiB ByteStream write/read in 1 MiB chunks, partial
 * reads, a resumed upload, and the concurrent action-cache lookup. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_client.h"
#include "itest.h"

#define BIG (64 * 1024 * 1024)

static lc_cache_client *client;

/* Sink that compares what arrives with the expected bytes. */
typedef struct cmp_sink {
    const unsigned char *want;
    int64_t off, len;
    int64_t calls, max_chunk;
} cmp_sink;

static int cmp_write(void *ctx, const void *data, size_t len, lc_err *err)
{
    cmp_sink *s = ctx;
    if (s->off + (int64_t)len > s->len || memcmp(s->want + s->off, data, len) != 0)
        return lc_err_set(err, LC_DATA_LOSS, "bytes differ at or after %" PRId64, s->off);
    s->off += (int64_t)len;
    s->calls++;
    if ((int64_t)len > s->max_chunk)
        s->max_chunk = (int64_t)len;
    return 0;
}

static ssize_t mem_pread(void *ctx, void *buf, size_t len, int64_t off, lc_err *err)
{
    const cmp_sink *s = ctx; /* reuse: want/len describe the source */
    (void)err;
    if (off >= s->len)
        return 0;
    size_t n = (int64_t)len < s->len - off ? len : (size_t)(s->len - off);
    memcpy(buf, s->want + off, n);
    return (ssize_t)n;
}

typedef struct seq_src {
    const unsigned char *data;
    size_t len, off;
} seq_src;

static ssize_t seq_read(void *ctx, void *buf, size_t len, lc_err *err)
{
    seq_src *s = ctx;
    (void)err;
    size_t n = len < s->len - s->off ? len : s->len - s->off;
    if (n > 4000)
        n = 4000; /* short reads on purpose: the client must fill its chunks */
    memcpy(buf, s->data + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void test_capabilities(void)
{
    lc_err err = {0};
    lc_cache_capabilities caps;
    CHECK_RC(lc_cache_client_get_capabilities(client, &caps, &err), 0, &err);
    CHECK(caps.sha256, "SHA256 not offered");
    CHECK(caps.update_enabled, "action cache updates disabled");
    CHECK(caps.low_major == 2 && caps.low_minor == 0, "low_api_version %d.%d", caps.low_major,
          caps.low_minor);
    CHECK(caps.high_major >= 2, "high_api_version %d.%d", caps.high_major, caps.high_minor);
    CHECK(caps.max_batch_total_size > 0, "max_batch_total_size %" PRId64,
          caps.max_batch_total_size);
    CHECK_RC(lc_cache_capabilities_check(&caps, 1, &err), 0, &err);
    fprintf(stderr, "capabilities: api %d.%d..%d.%d, batch limit %" PRId64 "\n", caps.low_major,
            caps.low_minor, caps.high_major, caps.high_minor, caps.max_batch_total_size);
}

static void test_action_cache(void)
{
    lc_err err = {0};
    const char *out = "output of the step";
    lc_digest key, blob;
    lc_digest_of("action-key-1", 12, &key);
    lc_digest_of(out, strlen(out), &blob);

    /* Unknown key: NOT_FOUND, distinguishable from other errors. */
    lc_action_result *r = NULL;
    CHECK_RC(lc_cache_client_get_action_result(client, &key, &r, &err), -LC_NOT_FOUND, &err);
    CHECK(r == NULL, "result set on a miss");
    CHECK(strstr(err.msg, "GetActionResult") != NULL, "message lacks the method: %s", err.msg);

    /* The output blob must exist for the entry to hit. */
    lc_cache_blob b = {.digest = blob, .data = (void *)out, .len = strlen(out)};
    CHECK_RC(lc_cache_client_batch_update(client, &b, 1, &err), 0, &err);

    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&blob, hex);
    Build__Bazel__Remote__Execution__V2__Digest dmsg =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    dmsg.hash = hex;
    dmsg.size_bytes = blob.size;
    Build__Bazel__Remote__Execution__V2__OutputFile of =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__OUTPUT_FILE__INIT;
    of.path = "state.json";
    of.digest = &dmsg;
    Build__Bazel__Remote__Execution__V2__OutputFile *ofs[] = {&of};
    Build__Bazel__Remote__Execution__V2__ExecutedActionMetadata meta =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__EXECUTED_ACTION_METADATA__INIT;
    meta.worker = "itest-worker";
    lc_action_result ar = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    ar.n_output_files = 1;
    ar.output_files = ofs;
    ar.exit_code = 7;
    ar.execution_metadata = &meta;
    CHECK_RC(lc_cache_client_update_action_result(client, &key, &ar, &err), 0, &err);

    CHECK_RC(lc_cache_client_get_action_result(client, &key, &r, &err), 0, &err);
    CHECK(r != NULL, "no result on a hit");
    /* Equal result: compare the wire encodings. */
    size_t la = protobuf_c_message_get_packed_size(&ar.base);
    size_t lb = protobuf_c_message_get_packed_size(&r->base);
    unsigned char *pa = malloc(la + 1), *pb = malloc(lb + 1);
    protobuf_c_message_pack(&ar.base, pa);
    protobuf_c_message_pack(&r->base, pb);
    CHECK(la == lb && memcmp(pa, pb, la) == 0, "result read back differs (%zu vs %zu bytes)", la,
          lb);
    CHECK(r->n_output_files == 1 && strcmp(r->output_files[0]->path, "state.json") == 0 &&
              r->exit_code == 7,
          "fields differ");
    free(pa);
    free(pb);
    lc_action_result_free(&r);
    CHECK(r == NULL, "free does not NULL");

    /* The concurrent lookup: hits and misses in one go, in key order. */
    enum { N = 40 };
    lc_digest keys[N];
    for (int i = 0; i < N; i++) {
        char k[32];
        snprintf(k, sizeof(k), "lookup-%d", i);
        lc_digest_of(k, strlen(k), &keys[i]);
    }
    keys[17] = key;
    keys[33] = key;
    lc_cache_lookup res[N];
    CHECK_RC(lc_cache_client_get_action_results(client, keys, N, res, &err), 0, &err);
    for (int i = 0; i < N; i++) {
        int hit = i == 17 || i == 33;
        CHECK(res[i].status == (hit ? 0 : -LC_NOT_FOUND), "key %d: status %d", i, res[i].status);
        CHECK((res[i].result != NULL) == hit, "key %d: result presence", i);
        if (hit)
            CHECK(res[i].result->exit_code == 7, "key %d: wrong result", i);
        lc_action_result_free(&res[i].result);
    }
    double t0 = itest_now();
    enum { M = 1000 };
    lc_digest *many = malloc(M * sizeof(*many));
    lc_cache_lookup *mres = malloc(M * sizeof(*mres));
    for (int i = 0; i < M; i++)
        many[i] = i % 2 ? key : keys[0];
    CHECK_RC(lc_cache_client_get_action_results(client, many, M, mres, &err), 0, &err);
    for (int i = 0; i < M; i++) {
        CHECK(mres[i].status == (i % 2 ? 0 : -LC_NOT_FOUND), "many[%d]: %d", i, mres[i].status);
        lc_action_result_free(&mres[i].result);
    }
    fprintf(stderr, "concurrent lookup of %d keys: %.1f ms\n", M, (itest_now() - t0) * 1e3);
    free(mres);
    free(many);
}

static void test_cas_batch(void)
{
    lc_err err = {0};
    enum { N = 5 };
    size_t sizes[N] = {0, 1, 100, 4096, 300000};
    unsigned char *data[N];
    lc_cache_blob blobs[N];
    lc_digest digests[N + 1];
    for (int i = 0; i < N; i++) {
        data[i] = malloc(sizes[i] + 1);
        itest_fill(data[i], sizes[i], 100 + (uint64_t)i);
        lc_digest_of(data[i], sizes[i], &digests[i]);
        blobs[i] = (lc_cache_blob){.digest = digests[i], .data = data[i], .len = sizes[i]};
    }
    CHECK(lc_digest_is_empty(&digests[0]), "blob 0 should be the empty blob");
    digests[N] = digests[2]; /* a duplicate in the request */

    unsigned char missing[N + 1];
    CHECK_RC(lc_cache_client_find_missing(client, digests, N + 1, missing, &err), 0, &err);
    CHECK(missing[0] == 0, "the empty blob is reported missing");
    for (int i = 1; i <= N; i++)
        CHECK(missing[i] == 1, "blob %d not missing before upload", i);

    CHECK_RC(lc_cache_client_batch_update(client, blobs, N, &err), 0, &err);
    for (int i = 0; i < N; i++)
        CHECK(blobs[i].status == 0, "blob %d status %d", i, blobs[i].status);

    CHECK_RC(lc_cache_client_find_missing(client, digests, N + 1, missing, &err), 0, &err);
    for (int i = 0; i <= N; i++)
        CHECK(missing[i] == 0, "blob %d still missing after upload", i);

    /* Read back in reverse order plus one unknown blob. */
    lc_cache_blob rd[N + 1];
    for (int i = 0; i < N; i++)
        rd[i] = (lc_cache_blob){.digest = digests[N - 1 - i]};
    lc_digest_of("never stored", 12, &rd[N].digest);
    int rc = lc_cache_client_batch_read(client, rd, N + 1, &err);
    CHECK_RC(rc, -LC_NOT_FOUND, &err);
    CHECK(rd[N].status == -LC_NOT_FOUND && rd[N].data == NULL, "unknown blob: %d", rd[N].status);
    for (int i = 0; i < N; i++) {
        int j = N - 1 - i;
        CHECK(rd[i].status == 0, "read blob %d: status %d", j, rd[i].status);
        CHECK(rd[i].len == sizes[j] && rd[i].data != NULL &&
                  memcmp(rd[i].data, data[j], sizes[j]) == 0,
              "read blob %d: content differs", j);
        free(rd[i].data);
    }
    for (int i = 0; i < N; i++)
        free(data[i]);

    /* The empty blob reads through ByteStream too, without being uploaded. */
    void *buf = NULL;
    CHECK_RC(lc_cache_client_read_buffer(client, &lc_digest_empty, &buf, &err), 0, &err);
    CHECK(buf != NULL, "empty read gives NULL");
    free(buf);
}

static void test_bytestream_big(void)
{
    lc_err err = {0};
    unsigned char *data = malloc(BIG);
    itest_fill(data, BIG, 42);
    lc_digest d;
    lc_digest_of(data, BIG, &d);

    unsigned char missing = 0;
    CHECK_RC(lc_cache_client_find_missing(client, &d, 1, &missing, &err), 0, &err);
    CHECK(missing, "64 MiB blob present before upload");

    double t0 = itest_now();
    CHECK_RC(lc_cache_client_write_buffer(client, &d, data, &err), 0, &err);
    double t1 = itest_now();
    CHECK_RC(lc_cache_client_find_missing(client, &d, 1, &missing, &err), 0, &err);
    CHECK(!missing, "64 MiB blob missing after upload");

    cmp_sink s = {data, 0, BIG, 0, 0};
    int64_t nread = 0;
    double t2 = itest_now();
    CHECK_RC(lc_cache_client_read(client, &d, 0, 0, cmp_write, &s, &nread, &err), 0, &err);
    double t3 = itest_now();
    CHECK(nread == BIG && s.off == BIG, "read %" PRId64 " bytes", nread);
    CHECK(s.max_chunk <= LC_CACHE_CHUNK_SIZE, "chunk of %" PRId64 " bytes", s.max_chunk);
    fprintf(stderr, "64 MiB: write %.0f MB/s, read %.0f MB/s (%" PRId64 " messages)\n",
            BIG / 1e6 / (t1 - t0), BIG / 1e6 / (t3 - t2), s.calls);

    /* Partial reads: offset and limit. */
    int64_t off = 3 * 1024 * 1024 + 17, lim = 2 * 1024 * 1024 + 5;
    s = (cmp_sink){data + off, 0, lim, 0, 0};
    CHECK_RC(lc_cache_client_read(client, &d, off, lim, cmp_write, &s, &nread, &err), 0, &err);
    CHECK(nread == lim && s.off == lim, "ranged read gave %" PRId64, nread);
    s = (cmp_sink){data + BIG - 10, 0, 10, 0, 0};
    CHECK_RC(lc_cache_client_read(client, &d, BIG - 10, 0, cmp_write, &s, &nread, &err), 0, &err);
    CHECK(nread == 10, "tail read gave %" PRId64, nread);

    /* Whole-blob read into a file descriptor. */
    char path[] = "/tmp/lc-itest-read.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    unlink(path);
    CHECK_RC(lc_cache_client_read_fd(client, &d, fd, &err), 0, &err);
    CHECK(lseek(fd, 0, SEEK_END) == BIG, "file size after read_fd");

    /* Upload from a file descriptor: a different blob (the first 5 MiB + 1). */
    size_t part = 5 * 1024 * 1024 + 1;
    lc_digest dp;
    lc_digest_of(data + 1, part, &dp);
    CHECK(pwrite(fd, data + 1, part, 0) == (ssize_t)part, "pwrite");
    CHECK_RC(lc_cache_client_write_fd(client, &dp, fd, &err), 0, &err);
    close(fd);
    void *back = NULL;
    CHECK_RC(lc_cache_client_read_buffer(client, &dp, &back, &err), 0, &err);
    CHECK(memcmp(back, data + 1, part) == 0, "fd upload read back differs");
    free(back);

    /* Upload from a sequential reader with short reads. */
    size_t slen = 3 * 1024 * 1024 + 333;
    lc_digest ds;
    lc_digest_of(data + 7, slen, &ds);
    seq_src ss = {data + 7, slen, 0};
    CHECK_RC(lc_cache_client_write_reader(client, &ds, seq_read, &ss, &err), 0, &err);
    CHECK_RC(lc_cache_client_read_buffer(client, &ds, &back, &err), 0, &err);
    CHECK(memcmp(back, data + 7, slen) == 0, "reader upload read back differs");
    free(back);

    /* Uploading an existing blob again succeeds. */
    CHECK_RC(lc_cache_client_write_buffer(client, &ds, data + 7, &err), 0, &err);
    free(data);
}

static void resume_case(int abort_stream, uint64_t seed)
{
    lc_err err = {0};
    const int64_t size = 8 * 1024 * 1024 + 4321, half = 4 * 1024 * 1024;
    unsigned char *data = malloc((size_t)size);
    itest_fill(data, (size_t)size, seed);
    lc_digest d;
    lc_digest_of(data, (size_t)size, &d);
    cmp_sink src = {data, 0, size, 0, 0};
    char uuid[LC_CACHE_UUID_LEN + 1];
    lc_cache_uuid(uuid);

    /* First half only, then the stream ends (dropped, or closed unfinished). */
    lc_cache_write_opts wo = {.upload_id = uuid, .start = 0, .stop = half, .abort = abort_stream};
    int rc = lc_cache_client_write(client, &d, &wo, mem_pread, &src, NULL, &err);
    if (abort_stream)
        CHECK_RC(rc, -LC_CANCELLED, &err);
    fprintf(stderr, "resume (%s): first stream ended with %s: %s\n",
            abort_stream ? "dropped" : "unfinished", lc_code_name(rc), err.msg);
    unsigned char missing = 0;
    CHECK_RC(lc_cache_client_find_missing(client, &d, 1, &missing, &err), 0, &err);
    CHECK(missing, "a half-written blob is visible");

    int64_t committed = -1;
    int complete = 1;
    usleep(100000); /* a dropped stream is noticed by the server asynchronously */
    rc = lc_cache_client_query_write_status(client, &d, uuid, &committed, &complete, &err);
    if (abort_stream && rc == -LC_NOT_FOUND) {
        committed = 0; /* nothing was durable yet: start over, same upload id */
        complete = 0;
    } else {
        CHECK_RC(rc, 0, &err);
    }
    fprintf(stderr, "resume (%s): committed %" PRId64 " of %" PRId64 "\n",
            abort_stream ? "dropped" : "unfinished", committed, half);
    CHECK(!complete, "upload reported complete");
    CHECK(committed >= 0 && committed <= half, "committed %" PRId64, committed);
    if (!abort_stream)
        CHECK(committed == half,
              "an unfinished, half-closed stream committed %" PRId64 " of %" PRId64, committed,
              half);

    wo = (lc_cache_write_opts){.upload_id = uuid, .start = committed};
    int64_t final = 0;
    CHECK_RC(lc_cache_client_write(client, &d, &wo, mem_pread, &src, &final, &err), 0, &err);
    CHECK(final == size, "final committed_size %" PRId64, final);
    rc = lc_cache_client_query_write_status(client, &d, uuid, &committed, &complete, &err);
    CHECK(rc == 0 ? complete : rc == -LC_NOT_FOUND, "status after finishing: %d %s", rc, err.msg);

    void *back = NULL;
    CHECK_RC(lc_cache_client_read_buffer(client, &d, &back, &err), 0, &err);
    CHECK(memcmp(back, data, (size_t)size) == 0, "resumed blob differs");
    free(back);
    free(data);
}

/* Many threads share one client: each uploads, looks up and reads its own
 * blobs and action results at once. */
enum { THREADS = 8, ROUNDS = 10 };

static void *worker(void *arg)
{
    long id = (long)arg;
    lc_err err = {0};
    size_t len = 200000 + (size_t)id * 1000;
    unsigned char *data = malloc(len);
    for (int round = 0; round < ROUNDS; round++) {
        itest_fill(data, len, 1000 + (uint64_t)id * 100 + (uint64_t)round);
        lc_digest d, key;
        lc_digest_of(data, len, &d);
        char k[64];
        snprintf(k, sizeof(k), "thread-%ld-round-%d", id, round);
        lc_digest_of(k, strlen(k), &key);
        CHECK_RC(lc_cache_client_write_buffer(client, &d, data, &err), 0, &err);
        char hex[LC_HASH_HEX_LEN + 1];
        lc_digest_hex(&d, hex);
        Build__Bazel__Remote__Execution__V2__Digest dmsg =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
        dmsg.hash = hex;
        dmsg.size_bytes = d.size;
        lc_action_result ar = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
        ar.stdout_digest = &dmsg;
        ar.exit_code = (int32_t)(id * 100 + round);
        CHECK_RC(lc_cache_client_update_action_result(client, &key, &ar, &err), 0, &err);
        lc_action_result *r = NULL;
        CHECK_RC(lc_cache_client_get_action_result(client, &key, &r, &err), 0, &err);
        CHECK(r->exit_code == ar.exit_code, "thread %ld: another thread's result", id);
        lc_action_result_free(&r);
        void *back = NULL;
        CHECK_RC(lc_cache_client_read_buffer(client, &d, &back, &err), 0, &err);
        CHECK(memcmp(back, data, len) == 0, "thread %ld: read back differs", id);
        free(back);
    }
    free(data);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    double t0 = itest_now();
    for (long i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr, "%d threads x %d rounds: %.2f s\n", THREADS, ROUNDS, itest_now() - t0);
}

int main(void)
{
    itest_server_start();
    lc_err err = {0};
    lc_cache_client_options o = {.instance_name = "itest", .deadline_ms = 30000};
    CHECK_RC(lc_cache_client_open(itest_srv.target, &o, &client, &err), 0, &err);

    test_capabilities();
    test_action_cache();
    test_cas_batch();
    test_bytestream_big();
    resume_case(0, 7);
    resume_case(1, 8);
    test_threads();

    /* A client of the default instance does not see the action cache
     * entries of instance "itest". */
    lc_cache_client *other = NULL;
    CHECK_RC(lc_cache_client_open(itest_srv.addr, NULL, &other, &err), 0, &err);
    lc_digest key;
    lc_digest_of("action-key-1", 12, &key);
    lc_action_result *r = NULL;
    CHECK_RC(lc_cache_client_get_action_result(other, &key, &r, &err), -LC_NOT_FOUND, &err);
    lc_cache_client_close(&other);
    CHECK(other == NULL, "close does not NULL");

    lc_cache_client_close(&client);
    itest_server_stop_clean();
    fprintf(stderr, "ok\n");
    return 0;
}
