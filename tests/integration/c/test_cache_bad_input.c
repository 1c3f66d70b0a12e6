/* test_cache_bad_input.c - bad uploads and names through the C client: a
 * wrong digest, a wrong size, a truncated stream, bad write offsets and
 * malformed resource names get the right status, nothing is stored, and
 * the server keeps serving. Then the server goes away and calls fail fast
 * with UNAVAILABLE. */
#include <stdlib.h>
#include <string.h>

#include "cache_client.h"
#include "itest.h"

#define LEN (100 * 1024 + 3)

static lc_cache_client *client;

static void check_missing(const lc_digest *d, const char *what)
{
    lc_err err = {0};
    unsigned char missing = 0;
    CHECK_RC(lc_cache_client_find_missing(client, d, 1, &missing, &err), 0, &err);
    CHECK(missing, "%s: the blob is stored", what);
}

static void upload_name(const char *hash_hex, int64_t size, char *buf, size_t cap)
{
    char uuid[LC_CACHE_UUID_LEN + 1];
    lc_cache_uuid(uuid);
    snprintf(buf, cap, "itest/uploads/%s/blobs/%s/%" PRId64, uuid, hash_hex, size);
}

static int discard(void *ctx, const void *data, size_t len, lc_err *err)
{
    (void)ctx;
    (void)data;
    (void)len;
    (void)err;
    return 0;
}

int main(void)
{
    itest_server_start();
    lc_err err = {0};
    lc_cache_client_options o = {
        .instance_name = "itest", .deadline_ms = 20000, .connect_timeout_ms = 1000};
    CHECK_RC(lc_cache_client_open(itest_srv.target, &o, &client, &err), 0, &err);

    unsigned char *data = malloc(LEN);
    itest_fill(data, LEN, 5);
    lc_digest d, other;
    lc_digest_of(data, LEN, &d);
    lc_digest_of("something else", 14, &other);
    char hex[LC_HASH_HEX_LEN + 1], other_hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&d, hex);
    lc_digest_hex(&other, other_hex);
    char name[1024];
    int64_t committed = 0;

    /* Wrong digest: the bytes do not hash to the name's hash. */
    upload_name(other_hex, LEN, name, sizeof(name));
    CHECK_RC(lc_cache_client_write_raw(client, name, 0, data, LEN, 1, &committed, &err),
             -LC_INVALID_ARGUMENT, &err);
    fprintf(stderr, "wrong digest: %s\n", err.msg);
    lc_digest claimed = other;
    claimed.size = LEN;
    check_missing(&claimed, "wrong digest");
    check_missing(&d, "wrong digest (true digest)");
    /* The same through the digest API: the server verifies, not the client. */
    CHECK_RC(lc_cache_client_write_buffer(client, &claimed, data, &err), -LC_INVALID_ARGUMENT,
             &err);
    check_missing(&claimed, "wrong digest (write_buffer)");

    /* Wrong size: fewer bytes than the name says, and more. */
    upload_name(hex, LEN + 5, name, sizeof(name));
    CHECK_RC(lc_cache_client_write_raw(client, name, 0, data, LEN, 1, &committed, &err),
             -LC_INVALID_ARGUMENT, &err);
    fprintf(stderr, "short: %s\n", err.msg);
    lc_digest bigger = d;
    bigger.size = LEN + 5;
    check_missing(&bigger, "size too large");
    check_missing(&d, "size too large (true digest)");
    upload_name(hex, LEN - 5, name, sizeof(name));
    CHECK_RC(lc_cache_client_write_raw(client, name, 0, data, LEN, 1, &committed, &err),
             -LC_INVALID_ARGUMENT, &err);
    fprintf(stderr, "long: %s\n", err.msg);
    lc_digest smaller = d;
    smaller.size = LEN - 5;
    check_missing(&smaller, "size too small");
    check_missing(&d, "size too small (true digest)");

    /* Truncated stream: half the bytes and no finish_write. */
    upload_name(hex, LEN, name, sizeof(name));
    int rc = lc_cache_client_write_raw(client, name, 0, data, LEN / 2, 0, &committed, &err);
    CHECK(rc != 0, "a stream without finish_write succeeded");
    fprintf(stderr, "truncated: %s: %s\n", lc_code_name(rc), err.msg);
    check_missing(&d, "truncated stream");
    /* ... and finish_write on an incomplete blob. */
    upload_name(hex, LEN, name, sizeof(name));
    CHECK_RC(lc_cache_client_write_raw(client, name, 0, data, LEN / 2, 1, &committed, &err),
             -LC_INVALID_ARGUMENT, &err);
    check_missing(&d, "finish_write too early");

    /* A new upload must start at offset 0. */
    upload_name(hex, LEN, name, sizeof(name));
    CHECK_RC(lc_cache_client_write_raw(client, name, 5, data + 5, LEN - 5, 1, &committed, &err),
             -LC_INVALID_ARGUMENT, &err);
    fprintf(stderr, "bad offset: %s\n", err.msg);
    check_missing(&d, "bad write offset");

    /* Malformed upload names. */
    char sizes[32];
    snprintf(sizes, sizeof(sizes), "%d", LEN);
    const char *bad_uploads[] = {
        "",
        "garbage",
        "itest/uploads/u1/blobs/abc/100",               /* short hash */
        "itest/uploads/u1/blobs/%H/-1",                 /* negative size */
        "itest/uploads/u1/blobs/%H/12x",                /* not a number */
        "itest/uploads/u1/blobs/%H",                    /* no size */
        "itest/uploads/u1/blob/%H/%S",                  /* "blob" */
        "itest/blobs/%H/%S",                            /* a read name */
        "itest/uploads/u1/blobs/%U/%S",                 /* upper-case hex */
        "itest/uploads/u1/blobs/%Hzz/%S",               /* long hash */
        "itest/uploads/u1/compressed-blobs/zstd/%H/%S", /* not offered */
    };
    char upper[LC_HASH_HEX_LEN + 1];
    for (int i = 0; i < LC_HASH_HEX_LEN + 1; i++)
        upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
    for (size_t i = 0; i < sizeof(bad_uploads) / sizeof(bad_uploads[0]); i++) {
        /* Expand %H (hash), %U (upper-case hash), %S (size). */
        char *w = name;
        for (const char *p = bad_uploads[i]; *p; p++) {
            if (p[0] == '%' && (p[1] == 'H' || p[1] == 'U' || p[1] == 'S')) {
                const char *rep = p[1] == 'H' ? hex : p[1] == 'U' ? upper : sizes;
                w += sprintf(w, "%s", rep);
                p++;
            } else {
                *w++ = *p;
            }
        }
        *w = '\0';
        rc = lc_cache_client_write_raw(client, name, 0, data, LEN, 1, &committed, &err);
        CHECK(rc == -LC_INVALID_ARGUMENT, "upload name '%s': got %s: %s", name, lc_code_name(rc),
              err.msg);
    }
    check_missing(&d, "malformed upload names");

    /* Malformed read names; an absent blob; offsets out of range. */
    const char *bad_reads[] = {"", "blobs", "itest/blobs/abc/1", "itest/blobs/zz/1",
                               "itest/uploads/u/blobs/x/1"};
    for (size_t i = 0; i < sizeof(bad_reads) / sizeof(bad_reads[0]); i++) {
        rc = lc_cache_client_read_raw(client, bad_reads[i], 0, 0, discard, NULL, NULL, &err);
        CHECK(rc == -LC_INVALID_ARGUMENT, "read name '%s': got %s: %s", bad_reads[i],
              lc_code_name(rc), err.msg);
    }
    CHECK_RC(lc_cache_client_read(client, &d, 0, 0, discard, NULL, NULL, &err), -LC_NOT_FOUND,
             &err);

    /* Everything refused: now store the blob for real. */
    CHECK_RC(lc_cache_client_write_buffer(client, &d, data, &err), 0, &err);
    snprintf(name, sizeof(name), "itest/blobs/%s/%d", hex, LEN);
    rc = lc_cache_client_read_raw(client, name, LEN + 1, 0, discard, NULL, NULL, &err);
    CHECK(rc == -LC_OUT_OF_RANGE || rc == -LC_INVALID_ARGUMENT, "offset past the end: %s: %s",
          lc_code_name(rc), err.msg);
    rc = lc_cache_client_read_raw(client, name, -1, 0, discard, NULL, NULL, &err);
    CHECK(rc == -LC_INVALID_ARGUMENT || rc == -LC_OUT_OF_RANGE, "negative offset: %s: %s",
          lc_code_name(rc), err.msg);
    rc = lc_cache_client_read_raw(client, name, 0, -1, discard, NULL, NULL, &err);
    CHECK(rc == -LC_INVALID_ARGUMENT, "negative limit: %s: %s", lc_code_name(rc), err.msg);
    /* Offset == size is an empty read, not an error. */
    int64_t nread = -1;
    CHECK_RC(lc_cache_client_read_raw(client, name, LEN, 0, discard, NULL, &nread, &err), 0, &err);
    CHECK(nread == 0, "read at the end gave %" PRId64 " bytes", nread);

    /* Batch update: one good blob, one whose bytes do not match its digest,
     * one whose size is wrong. */
    unsigned char small[64];
    itest_fill(small, sizeof(small), 9);
    lc_cache_blob blobs[3] = {
        {.data = small, .len = 32}, {.data = small, .len = 32}, {.data = small, .len = 32}};
    lc_digest_of(small, 32, &blobs[0].digest);
    lc_digest_of(small + 1, 32, &blobs[1].digest); /* wrong hash */
    lc_digest_of(small, 32, &blobs[2].digest);
    blobs[2].digest.hash[0] ^= 1;
    blobs[2].digest.size = 31; /* wrong size (and hash) */
    rc = lc_cache_client_batch_update(client, blobs, 3, &err);
    CHECK_RC(rc, -LC_INVALID_ARGUMENT, &err);
    CHECK(blobs[0].status == 0, "good blob: %d", blobs[0].status);
    CHECK(blobs[1].status == -LC_INVALID_ARGUMENT, "wrong hash: %d", blobs[1].status);
    CHECK(blobs[2].status == -LC_INVALID_ARGUMENT, "wrong size: %d", blobs[2].status);
    fprintf(stderr, "batch: %s\n", err.msg);
    check_missing(&blobs[1].digest, "batch wrong hash");
    check_missing(&blobs[2].digest, "batch wrong size");
    unsigned char missing = 1;
    CHECK_RC(lc_cache_client_find_missing(client, &blobs[0].digest, 1, &missing, &err), 0, &err);
    CHECK(!missing, "the good blob of the batch is missing");

    /* The server still serves. */
    lc_cache_capabilities caps;
    CHECK_RC(lc_cache_client_get_capabilities(client, &caps, &err), 0, &err);
    void *back = NULL;
    CHECK_RC(lc_cache_client_read_buffer(client, &d, &back, &err), 0, &err);
    CHECK(memcmp(back, data, LEN) == 0, "read back differs");
    free(back);
    itest_server_stop_clean();

    /* The server is gone: calls fail with UNAVAILABLE, fast, and say so. */
    lc_action_result *r = NULL;
    double t0 = itest_now();
    rc = lc_cache_client_get_action_result(client, &d, &r, &err);
    double secs = itest_now() - t0;
    CHECK_RC(rc, -LC_UNAVAILABLE, &err);
    CHECK(strstr(err.msg, "unreachable") != NULL && strstr(err.msg, itest_srv.addr) != NULL,
          "unclear message: %s", err.msg);
    CHECK(secs < 5, "took %.1f s", secs);
    fprintf(stderr, "after the server stopped (%.3f s): %s\n", secs, err.msg);
    CHECK_RC(lc_cache_client_write_buffer(client, &d, data, &err), -LC_UNAVAILABLE, &err);

    lc_cache_client_close(&client);
    free(data);
    fprintf(stderr, "ok\n");
    return 0;
}
