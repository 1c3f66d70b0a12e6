/* test_trust.c - untrusted writers at the store level (cache-server/trust.h,
 * store_ac.h): who a call is for (a peer's forwarded identity honoured only
 * on peer calls), what "identical" means, the outcome of each kind of
 * write and the counters, and the untrusted entries' storage (kept apart
 * from trusted keys, counted, scanned per key and per instance, evicted
 * only while unchanged). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "build-worker/layer/fsutil.h"
#include "cache-server/store.h"
#include "cache-server/store_ac.h"
#include "cache-server/trust.h"

typedef Build__Bazel__Remote__Execution__V2__ActionResult action_result;

typedef struct fixture {
    char dir[64];
    lc_store *s;
    lc_hits *h;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/lc-test-trust.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    lc_err err = {0};
    if (lc_store_open(f->dir, NULL, &f->s, &err) != 0 || (f->h = lc_hits_new(f->s)) == NULL) {
        fprintf(stderr, "open: %s\n", err.msg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lc_hits_free(&f->h);
    lc_store_close(&f->s);
    lc_fs_rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- who a call is for --------------------------------------------------------- */

static void md_one(grpc_metadata_array *a, grpc_metadata *m, const char *key, const char *value)
{
    memset(m, 0, sizeof(*m));
    m->key = grpc_slice_from_static_string(key);
    m->value = grpc_slice_from_static_string(value);
    a->count = 1;
    a->capacity = 1;
    a->metadata = m;
}

static void test_caller_of(void **state)
{
    (void)state;
    grpc_metadata_array md = {0};
    grpc_metadata m;
    md_one(&md, &m, LC_TRUST_CALLER_MD, "untrusted pr-7");
    lc_trust_caller c;
    /* A peer's call (cluster token: unnamed admin, forwarded): the header. */
    lc_call_ctx peer = {.metadata = &md, .role = LC_ROLE_ADMIN, .forwarded = true};
    lc_trust_caller_of(&peer, &c);
    assert_int_equal(c.role, LC_ROLE_UNTRUSTED);
    assert_string_equal(c.name, "pr-7");
    assert_true(lc_trust_is_untrusted(&c));
    char v[64];
    lc_trust_caller_format(&c, v, sizeof(v));
    assert_string_equal(v, "untrusted pr-7");
    /* A client's own header is ignored: its token decides. */
    md_one(&md, &m, LC_TRUST_CALLER_MD, "write ci");
    lc_call_ctx client = {.metadata = &md, .role = LC_ROLE_UNTRUSTED, .principal = "pr-7"};
    lc_trust_caller_of(&client, &c);
    assert_int_equal(c.role, LC_ROLE_UNTRUSTED);
    assert_string_equal(c.name, "pr-7");
    /* Also when the replica forwards to itself (forwarded, the client's role). */
    client.forwarded = true;
    lc_trust_caller_of(&client, &c);
    assert_int_equal(c.role, LC_ROLE_UNTRUSTED);
    lc_call_ctx named_admin = {
        .metadata = &md, .role = LC_ROLE_ADMIN, .principal = "ops", .forwarded = true};
    lc_trust_caller_of(&named_admin, &c);
    assert_int_equal(c.role, LC_ROLE_ADMIN);
    assert_string_equal(c.name, "ops");
    /* Malformed headers change nothing. */
    const char *bad[] = {"root x", "untrusted", "untrusted a\tb", "", "write"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        md_one(&md, &m, LC_TRUST_CALLER_MD, bad[i]);
        lc_trust_caller_of(&peer, &c);
        if (i < 4)
            assert_int_equal(c.role, LC_ROLE_ADMIN);
    }
    lc_trust_caller_of(&peer, &c); /* "write": a role, no name */
    assert_int_equal(c.role, LC_ROLE_WRITE);
    assert_string_equal(c.name, "");
}

/* ---- results -------------------------------------------------------------------- */

typedef struct result {
    Build__Bazel__Remote__Execution__V2__OutputFile file, *files[1];
    Build__Bazel__Remote__Execution__V2__Digest d;
    Build__Bazel__Remote__Execution__V2__ExecutedActionMetadata meta;
    char hex[LC_HASH_HEX_LEN + 1];
    action_result ar;
} result;

static void make(result *r, const char *content, const char *worker)
{
    lc_digest d;
    lc_digest_of(content, strlen(content), &d);
    lc_digest_hex(&d, r->hex);
    Build__Bazel__Remote__Execution__V2__Digest di =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    r->d = di;
    r->d.hash = r->hex;
    r->d.size_bytes = d.size;
    Build__Bazel__Remote__Execution__V2__OutputFile fi =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__OUTPUT_FILE__INIT;
    r->file = fi;
    r->file.path = "out";
    r->file.digest = &r->d;
    r->files[0] = &r->file;
    Build__Bazel__Remote__Execution__V2__ExecutedActionMetadata mi =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__EXECUTED_ACTION_METADATA__INIT;
    r->meta = mi;
    r->meta.worker = (char *)worker;
    action_result ai = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    r->ar = ai;
    r->ar.n_output_files = 1;
    r->ar.output_files = r->files;
    r->ar.execution_metadata = &r->meta;
}

static void test_identical_ignores_metadata(void **state)
{
    (void)state;
    result a, b, c;
    make(&a, "same", "laptop-1");
    make(&b, "same", "laptop-2");
    make(&c, "other", "laptop-1");
    lc_digest ia, ib, ic;
    assert_int_equal(lc_trust_result_id(&a.ar, &ia, NULL), 0);
    assert_int_equal(lc_trust_result_id(&b.ar, &ib, NULL), 0);
    assert_int_equal(lc_trust_result_id(&c.ar, &ic, NULL), 0);
    assert_true(lc_digest_equal(&ia, &ib));
    assert_false(lc_digest_equal(&ia, &ic));
    b.ar.exit_code = 1;
    assert_int_equal(lc_trust_result_id(&b.ar, &ib, NULL), 0);
    assert_false(lc_digest_equal(&ia, &ib));
}

static lc_trust_outcome update(fixture *f, lc_trust *t, lc_auth_role role, const char *name,
                               const lc_digest *k, result *r, size_t *promoted)
{
    lc_trust_caller c = {.role = role};
    snprintf(c.name, sizeof(c.name), "%s", name);
    size_t n = build__bazel__remote__execution__v2__action_result__get_packed_size(&r->ar);
    uint8_t *buf = malloc(n + 1);
    build__bazel__remote__execution__v2__action_result__pack(&r->ar, buf);
    Layercache__V1__StoredActionResult st = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    st.action_result.data = buf;
    st.action_result.len = n;
    st.writer = (char *)name;
    lc_trust_outcome out;
    lc_err err = {0};
    size_t p = 0;
    if (lc_trust_update(t, f->s, f->h, &c, "i", k, &r->ar, &st, &out, &p, &err) != 0)
        fail_msg("update: %s", err.msg);
    free(buf);
    if (promoted != NULL)
        *promoted = p;
    return out;
}

/* The trust state of the trusted entry of k, -1 if none. */
static int trusted_state(fixture *f, const lc_digest *k, size_t *n_from)
{
    uint8_t *v = NULL;
    size_t len = 0;
    if (lc_store_ac_get(f->s, "i", k, &v, &len, NULL) != 0)
        return -1;
    Layercache__V1__StoredActionResult *st =
        layercache__v1__stored_action_result__unpack(NULL, len, v);
    free(v);
    assert_non_null(st);
    int t = (int)st->trust;
    if (n_from != NULL)
        *n_from = st->n_promoted_from;
    layercache__v1__stored_action_result__free_unpacked(st, NULL);
    return t;
}

static bool has_untrusted(fixture *f, const lc_digest *k, const char *w)
{
    uint8_t *v = NULL;
    size_t len = 0;
    int rc = lc_store_ac_untrusted_get(f->s, "i", k, w, &v, &len, NULL);
    free(v);
    return rc == 0;
}

static void test_update_outcomes(void **state)
{
    fixture *f = *state;
    lc_trust *t = lc_trust_new(2);
    lc_digest k;
    lc_digest_of("key", 3, &k);
    result a1, a2, b, c;
    make(&a1, "A", "w1");
    make(&a2, "A", "w2");
    make(&b, "B", "w3");
    make(&c, "C", "w4");
    size_t p = 0, from = 0;

    /* Untrusted, no trusted entry: kept for its writer. */
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-1", &k, &a1, &p),
                     LC_TRUST_STORED_UNTRUSTED);
    assert_int_equal(trusted_state(f, &k, NULL), -1);
    assert_true(has_untrusted(f, &k, "pr-1"));
    /* The same name again: no quorum of one name. */
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-1", &k, &a2, &p),
                     LC_TRUST_STORED_UNTRUSTED);
    assert_int_equal(trusted_state(f, &k, NULL), -1);
    /* A different result of another name does not count. */
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-3", &k, &b, &p),
                     LC_TRUST_STORED_UNTRUSTED);
    assert_int_equal(trusted_state(f, &k, NULL), -1);
    /* A second name, identical outputs: the quorum of 2 promotes. */
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-2", &k, &a2, &p), LC_TRUST_PROMOTED);
    assert_int_equal(p, 2);
    assert_int_equal(trusted_state(f, &k, &from), LAYERCACHE__V1__TRUST__PROMOTED);
    assert_int_equal(from, 2);
    assert_false(has_untrusted(f, &k, "pr-1"));
    assert_false(has_untrusted(f, &k, "pr-2"));
    assert_true(has_untrusted(f, &k, "pr-3"));
    /* Untrusted writing the trusted result: nothing of its own. */
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-3", &k, &a1, &p), LC_TRUST_MATCHED);
    assert_false(has_untrusted(f, &k, "pr-3"));
    /* Untrusted differing from a trusted entry: a rejection, kept; no quorum over it. */
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-1", &k, &c, &p),
                     LC_TRUST_STORED_UNTRUSTED);
    assert_int_equal(update(f, t, LC_ROLE_UNTRUSTED, "pr-2", &k, &c, &p),
                     LC_TRUST_STORED_UNTRUSTED);
    assert_int_equal(trusted_state(f, &k, NULL), LAYERCACHE__V1__TRUST__PROMOTED);
    /* A trusted writer of C promotes both. */
    assert_int_equal(update(f, t, LC_ROLE_WRITE, "ci", &k, &c, &p), LC_TRUST_STORED);
    assert_int_equal(p, 2);
    assert_int_equal(trusted_state(f, &k, &from), LAYERCACHE__V1__TRUST__TRUSTED);
    assert_int_equal(from, 2);
    assert_false(has_untrusted(f, &k, "pr-1"));
    /* A trusted overwrite with nothing to promote. */
    assert_int_equal(update(f, t, LC_ROLE_ADMIN, "ops", &k, &b, &p), LC_TRUST_STORED);
    assert_int_equal(p, 0);

    lc_trust_counts n;
    lc_trust_counts_get(t, &n);
    assert_int_equal(n.promoted_quorum, 1);
    assert_int_equal(n.promoted_trusted, 1);
    assert_int_equal(n.rejected, 2);
    assert_int_equal(n.untrusted_updates, 6); /* every untrusted write but the match */
    lc_store_totals tot;
    lc_store_get_totals(f->s, &tot);
    assert_int_equal(tot.ac_entries, 1);
    lc_trust_free(&t);
    assert_null(t);
}

/* ---- storage ---------------------------------------------------------------------- */

typedef struct seen {
    char what[16][96];
    size_t n;
} seen;

static int note(void *ctx, const char *instance, const lc_digest *action, const char *writer,
                const uint8_t *value, size_t len)
{
    seen *s = ctx;
    snprintf(s->what[s->n++], sizeof(s->what[0]), "%s|%02x|%s|%.*s", instance, action->hash[0],
             writer, (int)len, (const char *)value);
    return 0;
}

static int count_trusted(void *ctx, const char *instance, const lc_digest *action,
                         const uint8_t *value, size_t len)
{
    (void)instance;
    (void)action;
    (void)value;
    (void)len;
    (*(int *)ctx)++;
    return 0;
}

static void test_storage(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_digest k1, k2;
    lc_digest_of("k1", 2, &k1);
    lc_digest_of("k2", 2, &k2);
    /* A trusted entry of an instance that starts with 0x01 must not pass
     * for an untrusted one. */
    assert_int_equal(lc_store_ac_put(f->s, "\x01odd", &k1, (const uint8_t *)"T", 1, &err), 0);
    assert_int_equal(lc_store_ac_put(f->s, "a", &k1, (const uint8_t *)"T", 1, &err), 0);
    assert_int_equal(
        lc_store_ac_untrusted_put(f->s, "a", &k1, "pr-1", (const uint8_t *)"x", 1, &err), 0);
    assert_int_equal(
        lc_store_ac_untrusted_put(f->s, "a", &k1, "pr-2", (const uint8_t *)"y", 1, &err), 0);
    assert_int_equal(
        lc_store_ac_untrusted_put(f->s, "a", &k1, "pr-2", (const uint8_t *)"Y", 1, &err), 0);
    assert_int_equal(
        lc_store_ac_untrusted_put(f->s, "a", &k2, "pr-1", (const uint8_t *)"z", 1, &err), 0);
    assert_int_equal(
        lc_store_ac_untrusted_put(f->s, "b", &k1, "pr-1", (const uint8_t *)"w", 1, &err), 0);
    assert_int_equal(lc_store_ac_untrusted_put(f->s, "a", &k1, "", (const uint8_t *)"w", 1, &err),
                     -LC_INVALID_ARGUMENT);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 6); /* 2 trusted, 4 untrusted (pr-2's replaced) */
    /* The trusted side sees only trusted keys. */
    int n = 0;
    assert_int_equal(lc_store_ac_scan(f->s, NULL, count_trusted, &n, &err), 0);
    assert_int_equal(n, 2);
    uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(lc_store_ac_get(f->s, "a", &k1, &v, &len, &err), 0);
    assert_memory_equal(v, "T", 1);
    free(v);
    /* One key's writers, in order. */
    seen s = {0};
    assert_int_equal(lc_store_ac_untrusted_of(f->s, "a", &k1, note, &s, &err), 0);
    assert_int_equal(s.n, 2);
    char want[96];
    snprintf(want, sizeof(want), "a|%02x|pr-1|x", k1.hash[0]);
    assert_string_equal(s.what[0], want);
    snprintf(want, sizeof(want), "a|%02x|pr-2|Y", k1.hash[0]);
    assert_string_equal(s.what[1], want);
    memset(&s, 0, sizeof(s));
    assert_int_equal(lc_store_ac_untrusted_scan(f->s, "a", note, &s, &err), 0);
    assert_int_equal(s.n, 3);
    memset(&s, 0, sizeof(s));
    assert_int_equal(lc_store_ac_untrusted_scan(f->s, NULL, note, &s, &err), 0);
    assert_int_equal(s.n, 4);
    /* Evict only while unchanged; delete. */
    bool gone = true;
    assert_int_equal(
        lc_store_ac_untrusted_evict(f->s, "a", &k1, "pr-2", (const uint8_t *)"y", 1, &gone, &err),
        0);
    assert_false(gone);
    assert_int_equal(
        lc_store_ac_untrusted_evict(f->s, "a", &k1, "pr-2", (const uint8_t *)"Y", 1, &gone, &err),
        0);
    assert_true(gone);
    assert_int_equal(lc_store_ac_untrusted_delete(f->s, "b", &k1, "pr-1", &err), 0);
    assert_int_equal(lc_store_ac_untrusted_delete(f->s, "b", &k1, "pr-1", &err), 0);
    assert_int_equal(lc_store_ac_untrusted_get(f->s, "b", &k1, "pr-1", &v, &len, &err),
                     -LC_NOT_FOUND);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 4);
    /* Counts survive a reopen (recounted from the column family). */
    lc_store_close(&f->s);
    assert_int_equal(lc_store_open(f->dir, NULL, &f->s, &err), 0);
    lc_hits_free(&f->h);
    f->h = lc_hits_new(f->s);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 4);
    assert_int_equal(lc_store_ac_untrusted_get(f->s, "a", &k2, "pr-1", &v, &len, &err), 0);
    assert_memory_equal(v, "z", 1);
    free(v);
}

/* Hits of an untrusted entry are counted into that entry. */
static void test_hits_per_writer(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_digest k;
    lc_digest_of("hit", 3, &k);
    Layercache__V1__StoredActionResult st = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    uint8_t buf[64];
    size_t n = layercache__v1__stored_action_result__pack(&st, buf);
    assert_int_equal(lc_store_ac_put(f->s, "", &k, buf, n, &err), 0);
    assert_int_equal(lc_store_ac_untrusted_put(f->s, "", &k, "pr-1", buf, n, &err), 0);
    lc_hits_record(f->h, "", &k, "pr-1", 1000);
    lc_hits_record(f->h, "", &k, "pr-1", 1001);
    lc_hits_record(f->h, "", &k, NULL, 1002);
    assert_int_equal(lc_hits_flush(f->h, &err), 0);
    uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(lc_store_ac_untrusted_get(f->s, "", &k, "pr-1", &v, &len, &err), 0);
    Layercache__V1__StoredActionResult *u =
        layercache__v1__stored_action_result__unpack(NULL, len, v);
    free(v);
    assert_int_equal(lc_store_ac_get(f->s, "", &k, &v, &len, &err), 0);
    Layercache__V1__StoredActionResult *tr =
        layercache__v1__stored_action_result__unpack(NULL, len, v);
    free(v);
    assert_int_equal(u->hit_count, 2);
    assert_int_equal(u->last_hit_unix, 1001);
    assert_int_equal(tr->hit_count, 1);
    layercache__v1__stored_action_result__free_unpacked(u, NULL);
    layercache__v1__stored_action_result__free_unpacked(tr, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caller_of),
        cmocka_unit_test(test_identical_ignores_metadata),
        cmocka_unit_test_setup_teardown(test_update_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hits_per_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
