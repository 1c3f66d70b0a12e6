/* test_cache_ac_complete.c - an action result whose blobs are not all in
 * the CAS is a miss (NOT_FOUND), never a hit, through the single and the
 * concurrent lookup; once the blobs are uploaded it hits. Covers output
 * files (the worker's state.json + layers/N) and stdout/stderr digests. */
#include <stdlib.h>
#include <string.h>

#include "cache_client.h"
#include "itest.h"

static lc_cache_client *client;

typedef struct blob {
    char text[64];
    lc_digest d;
    char hex[LC_HASH_HEX_LEN + 1];
    Build__Bazel__Remote__Execution__V2__Digest msg;
} blob;

static void blob_make(blob *b, const char *text)
{
    snprintf(b->text, sizeof(b->text), "%s", text);
    lc_digest_of(b->text, strlen(b->text), &b->d);
    build__bazel__remote__execution__v2__digest__init(&b->msg);
    lc_digest_hex(&b->d, b->hex);
    b->msg.hash = b->hex;
    b->msg.size_bytes = b->d.size;
}

static void blob_upload(blob *b)
{
    lc_err err = {0};
    CHECK_RC(lc_cache_client_write_buffer(client, &b->d, b->text, &err), 0, &err);
}

/* Updates key; a server may refuse an incomplete result outright
 * (FAILED_PRECONDITION) instead of storing it as a miss: both keep it from
 * ever hitting. Returns whether it was stored. */
static int update(const lc_digest *key, const lc_action_result *ar)
{
    lc_err err = {0};
    int rc = lc_cache_client_update_action_result(client, key, ar, &err);
    CHECK(rc == 0 || rc == -LC_FAILED_PRECONDITION, "UpdateActionResult: %s: %s", lc_code_name(rc),
          err.msg);
    return rc == 0;
}

static void expect_get(const lc_digest *key, int want, const char *what)
{
    lc_err err = {0};
    lc_action_result *r = NULL;
    int rc = lc_cache_client_get_action_result(client, key, &r, &err);
    CHECK(rc == want, "%s: got %s, want %s: %s", what, lc_code_name(rc), lc_code_name(want),
          err.msg);
    CHECK((r != NULL) == (want == 0), "%s: result presence", what);
    if (rc == -LC_NOT_FOUND)
        fprintf(stderr, "%s: %s\n", what, err.msg);
    lc_action_result_free(&r);
}

int main(void)
{
    itest_server_start();
    lc_err err = {0};
    lc_cache_client_options o = {.instance_name = "team/ac", .deadline_ms = 20000};
    CHECK_RC(lc_cache_client_open(itest_srv.target, &o, &client, &err), 0, &err);

    blob state = {0}, layer0 = {0}, layer1 = {0}, out = {0}, errb = {0};
    blob_make(&state, "{\"layers\": 2}");
    blob_make(&layer0, "layer zero bytes");
    blob_make(&layer1, "layer one bytes");
    blob_make(&out, "stdout of the step");
    blob_make(&errb, "stderr of the step");

    /* Key 1: state.json + two layers as output files; layer 1 is absent. */
    Build__Bazel__Remote__Execution__V2__OutputFile f[3];
    const char *paths[3] = {"state.json", "layers/0", "layers/1"};
    blob *fb[3] = {&state, &layer0, &layer1};
    Build__Bazel__Remote__Execution__V2__OutputFile *fp[3];
    for (int i = 0; i < 3; i++) {
        build__bazel__remote__execution__v2__output_file__init(&f[i]);
        f[i].path = (char *)paths[i];
        f[i].digest = &fb[i]->msg;
        fp[i] = &f[i];
    }
    lc_action_result ar1 = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    ar1.n_output_files = 3;
    ar1.output_files = fp;
    lc_digest key1, key2, key3;
    lc_digest_of("key-1", 5, &key1);
    lc_digest_of("key-2", 5, &key2);
    lc_digest_of("key-3", 5, &key3);

    blob_upload(&state);
    blob_upload(&layer0);
    int stored1 = update(&key1, &ar1);
    expect_get(&key1, -LC_NOT_FOUND, "output file absent");

    /* Key 2: stdout/stderr digests; stderr absent. */
    lc_action_result ar2 = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    ar2.stdout_digest = &out.msg;
    ar2.stderr_digest = &errb.msg;
    blob_upload(&out);
    int stored2 = update(&key2, &ar2);
    expect_get(&key2, -LC_NOT_FOUND, "stderr blob absent");

    /* Key 3: complete from the start. */
    lc_action_result ar3 = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    ar3.n_output_files = 2;
    ar3.output_files = fp;
    CHECK(update(&key3, &ar3), "a complete result was refused");
    expect_get(&key3, 0, "complete result");

    /* The concurrent lookup says the same. */
    lc_digest keys[3] = {key1, key2, key3};
    lc_cache_lookup res[3];
    CHECK_RC(lc_cache_client_get_action_results(client, keys, 3, res, &err), 0, &err);
    CHECK(res[0].status == -LC_NOT_FOUND && res[0].result == NULL, "batch key1: %d", res[0].status);
    CHECK(res[1].status == -LC_NOT_FOUND && res[1].result == NULL, "batch key2: %d", res[1].status);
    CHECK(res[2].status == 0 && res[2].result != NULL, "batch key3: %d", res[2].status);
    for (int i = 0; i < 3; i++)
        lc_action_result_free(&res[i].result);

    /* Upload what was missing: the entries hit (stored again if the server
     * had refused them). */
    blob_upload(&layer1);
    blob_upload(&errb);
    if (!stored1)
        CHECK(update(&key1, &ar1), "complete result 1 refused");
    if (!stored2)
        CHECK(update(&key2, &ar2), "complete result 2 refused");
    expect_get(&key1, 0, "output file uploaded");
    expect_get(&key2, 0, "stderr uploaded");
    fprintf(stderr, "incomplete results were %s by the server\n",
            stored1 && stored2 ? "stored (and read as misses)" : "refused");

    lc_cache_client_close(&client);
    itest_server_stop_clean();
    fprintf(stderr, "ok\n");
    return 0;
}
