/* test_cache_fake_server.c - the client's own checks, against a fake REAPI
 * server (fake_reapi.py, Debian's python3-grpcio) that misbehaves on
 * purpose: corrupt or overlong blob reads are DATA_LOSS, the bearer token
 * travels as "authorization" metadata, and a server-side UNAVAILABLE on a
 * live connection keeps the server's message (it is not "unreachable"). */
#include <stdlib.h>
#include <string.h>

#include "cache_client.h"
#include "itest.h"

#define GOOD "the bytes as stored"
#define CORRUPT "bytes that will be corrupted"
#define LONG "bytes that get a tail"

static int collect(void *ctx, const void *data, size_t len, lc_err *err)
{
    size_t *n = ctx;
    (void)data;
    (void)err;
    *n += len;
    return 0;
}

static void expect_read(lc_cache_client *c, const char *text, int want, const char *needle)
{
    lc_err err = {0};
    lc_digest d;
    lc_digest_of(text, strlen(text), &d);
    size_t n = 0;
    int rc = lc_cache_client_read(c, &d, 0, 0, collect, &n, NULL, &err);
    CHECK(rc == want, "read of '%s': got %s, want %s: %s", text, lc_code_name(rc),
          lc_code_name(want), err.msg);
    if (needle != NULL)
        CHECK(strstr(err.msg, needle) != NULL, "message lacks '%s': %s", needle, err.msg);
    fprintf(stderr, "read '%s': %s %s\n", text, lc_code_name(rc), err.msg);
    void *buf = NULL;
    rc = lc_cache_client_read_buffer(c, &d, &buf, &err);
    CHECK(rc == want, "read_buffer of '%s': got %s: %s", text, lc_code_name(rc), err.msg);
    CHECK((buf != NULL) == (want == 0), "buffer presence");
    if (buf != NULL)
        CHECK(memcmp(buf, text, strlen(text)) == 0, "content");
    free(buf);
}

int main(void)
{
    const char *root = getenv("LC_ROOT");
    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/integration/c/fake_reapi.py",
             root != NULL ? root : ".");
    char *argv[] = {"/usr/bin/python3", script, NULL};
    itest_process_start(argv, "fake-reapi listening grpc=");

    lc_err err = {0};
    lc_cache_client_options o = {.deadline_ms = 20000, .token = "s3cret"};
    lc_cache_client *c = NULL;
    CHECK_RC(lc_cache_client_open(itest_srv.target, &o, &c, &err), 0, &err);

    /* ByteStream.Read: the whole blob is verified. */
    expect_read(c, GOOD, 0, NULL);
    expect_read(c, CORRUPT, -LC_DATA_LOSS, "digest");
    expect_read(c, LONG, -LC_DATA_LOSS, "more than");
    /* The fake ignores read_limit: more than asked for is refused too. */
    lc_digest d;
    lc_digest_of(CORRUPT, strlen(CORRUPT), &d);
    size_t n = 0;
    CHECK_RC(lc_cache_client_read(c, &d, 0, 5, collect, &n, NULL, &err), -LC_DATA_LOSS, &err);
    CHECK(n <= 5, "the sink got %zu bytes beyond the limit", n);

    /* BatchReadBlobs: the corrupt blob is DATA_LOSS, the good one is fine. */
    lc_cache_blob blobs[2];
    memset(blobs, 0, sizeof(blobs));
    lc_digest_of(GOOD, strlen(GOOD), &blobs[0].digest);
    lc_digest_of(CORRUPT, strlen(CORRUPT), &blobs[1].digest);
    CHECK_RC(lc_cache_client_batch_read(c, blobs, 2, &err), -LC_DATA_LOSS, &err);
    CHECK(blobs[0].status == 0 && blobs[0].len == strlen(GOOD) &&
              memcmp(blobs[0].data, GOOD, blobs[0].len) == 0,
          "good blob: status %d", blobs[0].status);
    CHECK(blobs[1].status == -LC_DATA_LOSS && blobs[1].data == NULL, "corrupt blob: %d",
          blobs[1].status);
    free(blobs[0].data);

    /* The token arrives as "authorization: Bearer s3cret". */
    lc_action_result *r = NULL;
    CHECK_RC(lc_cache_client_get_action_result(c, &d, &r, &err), 0, &err);
    CHECK(r != NULL && r->exit_code == 42, "wrong result");
    lc_action_result_free(&r);
    lc_cache_client *anon = NULL;
    CHECK_RC(lc_cache_client_open(itest_srv.addr, NULL, &anon, &err), 0, &err);
    CHECK_RC(lc_cache_client_get_action_result(anon, &d, &r, &err), -LC_UNAUTHENTICATED, &err);
    CHECK(strstr(err.msg, "GetActionResult: missing or wrong bearer token") != NULL, "%s", err.msg);
    lc_cache_client_close(&anon);

    /* UNAVAILABLE from a reachable server keeps its own message. */
    lc_cache_capabilities caps;
    CHECK_RC(lc_cache_client_get_capabilities(c, &caps, &err), -LC_UNAVAILABLE, &err);
    CHECK(strcmp(err.msg, "GetCapabilities: fake server is draining") == 0, "%s", err.msg);

    lc_cache_client_close(&c);
    itest_server_stop();
    fprintf(stderr, "ok\n");
    return 0;
}
