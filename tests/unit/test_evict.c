/* test_evict.c - LRU eviction and TTL over a real store: access recording
 * and batched flushes, which blobs a size pass picks, action results that
 * lose a blob, max-age, and the background thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "cache-server/evict.h"
#include "cache-server/store.h"
#include "cache-server/store_internal.h" /* LC_STORE__BLOB_OVERHEAD */
#include "layercache/v1/admin.pb-c.h"
#include "build-worker/layer/fsutil.h"

#define KiB 1024u
#define BLOB (64 * KiB)
#define N 30
/* "Now" for the tests: far in the future, since access times only move
 * forward and every put stamps the wall clock. */
static int64_t base;
#define BASE base

typedef struct fixture {
    char dir[64];
    lc_store *s;
    lc_stats *stats;
    lc_digest d[N];
} fixture;

static int teardown(void **state)
{
    fixture *f = *state;
    lc_store_close(&f->s);
    lc_stats_free(&f->stats);
    lc_fs_rm_rf(f->dir);
    free(f);
    return 0;
}

static void put_blob(fixture *f, int i, size_t size)
{
    uint8_t *data = malloc(size);
    for (size_t k = 0; k < size; k++)
        data[k] = (uint8_t)(k * 31 + (size_t)i * 7 + (k >> 8));
    memcpy(data, &i, sizeof(i));
    lc_digest_of(data, size, &f->d[i]);
    lc_err err = {0};
    if (lc_store_blob_put(f->s, &f->d[i], data, size, &err) != 0)
        fail_msg("put %d: %s", i, err.msg);
    free(data);
}

/* N blobs of BLOB bytes; blob i last accessed at BASE + i (0 is the oldest). */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    base = (int64_t)time(NULL) + 1000000;
    strcpy(f->dir, "/tmp/lc-test-evict.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    lc_err err = {0};
    f->stats = lc_stats_new();
    if (f->stats == NULL || lc_store_open(f->dir, NULL, &f->s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        teardown(state);
        return -1;
    }
    for (int i = 0; i < N; i++)
        put_blob(f, i, BLOB);
    /* Puts count as accesses only for blobs already stored; nothing pending. */
    uint64_t flushed = 99;
    assert_int_equal(lc_store_access_flush(f->s, BASE, &flushed, &err), 0);
    assert_int_equal(flushed, 0);
    for (int i = 0; i < N; i++) {
        /* touch only moves times forward: set from the past upwards */
        assert_int_equal(lc_store_blob_touch(f->s, &f->d[i], 1, BASE + i, &err), 0);
    }
    return 0;
}

static bool present(fixture *f, int i)
{
    int64_t at = 0;
    lc_err err = {0};
    assert_int_equal(lc_store_blob_atimes(f->s, &f->d[i], 1, &at, &err), 0);
    return at >= 0;
}

static int64_t atime_of(fixture *f, int i)
{
    int64_t at = 0;
    lc_err err = {0};
    assert_int_equal(lc_store_blob_atimes(f->s, &f->d[i], 1, &at, &err), 0);
    return at;
}

/* Stores an action result for action key k referencing blobs idx[0..n). */
static void put_ac(fixture *f, const char *instance, int k, const int *idx, size_t n,
                   int64_t created, lc_digest *action)
{
    Build__Bazel__Remote__Execution__V2__OutputFile files[8], *fp[8];
    Build__Bazel__Remote__Execution__V2__Digest dg[8];
    char hex[8][LC_HASH_HEX_LEN + 1];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        Build__Bazel__Remote__Execution__V2__OutputFile fi =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__OUTPUT_FILE__INIT;
        Build__Bazel__Remote__Execution__V2__Digest di =
            BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
        lc_digest_hex(&f->d[idx[i]], hex[i]);
        di.hash = hex[i];
        di.size_bytes = f->d[idx[i]].size;
        dg[i] = di;
        files[i] = fi;
        files[i].path = "out";
        files[i].digest = &dg[i];
        fp[i] = &files[i];
    }
    Build__Bazel__Remote__Execution__V2__ActionResult ar =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    ar.n_output_files = n;
    ar.output_files = fp;
    uint8_t arb[2048], stb[4096];
    size_t arlen = build__bazel__remote__execution__v2__action_result__pack(&ar, arb);
    Layercache__V1__StoredActionResult st = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    st.action_result.data = arb;
    st.action_result.len = arlen;
    st.created_unix = created;
    size_t stlen = layercache__v1__stored_action_result__pack(&st, stb);
    char key[32];
    snprintf(key, sizeof(key), "action-%d", k);
    lc_digest_of(key, strlen(key), action);
    lc_err err = {0};
    assert_int_equal(lc_store_ac_put(f->s, instance, action, stb, stlen, &err), 0);
}

static bool ac_present(fixture *f, const char *instance, const lc_digest *action)
{
    uint8_t *v = NULL;
    size_t len = 0;
    lc_err err = {0};
    int rc = lc_store_ac_get(f->s, instance, action, &v, &len, &err);
    free(v);
    assert_true(rc == 0 || rc == -LC_NOT_FOUND);
    return rc == 0;
}

/* Reads record accesses in memory only; a flush writes them as atimes; a
 * peek at the atimes records nothing. */
static void test_reads_recorded_and_flushed(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(lc_store_blob_get(f->s, &f->d[3], &data, &len, &err), 0);
    free(data);
    bool missing[2];
    assert_int_equal(lc_store_find_missing(f->s, &f->d[4], 1, missing, &err), 0);
    assert_int_equal(lc_store_blob_exists(f->s, &f->d[5], &err), 1);
    lc_blob_reader *r = NULL;
    assert_int_equal(lc_blob_reader_open(f->s, &f->d[6], 0, 0, &r, &err), 0);
    lc_blob_reader_free(&r);
    /* not yet written */
    assert_int_equal(atime_of(f, 3), BASE + 3);
    uint64_t flushed = 0;
    assert_int_equal(lc_store_access_flush(f->s, BASE + 500, &flushed, &err), 0);
    assert_int_equal(flushed, 4);
    for (int i = 3; i <= 6; i++)
        assert_int_equal(atime_of(f, i), BASE + 500);
    assert_int_equal(atime_of(f, 7), BASE + 7);
    /* the atime peeks above recorded nothing */
    assert_int_equal(lc_store_access_flush(f->s, BASE + 600, &flushed, &err), 0);
    assert_int_equal(flushed, 0);
    /* the same blob read many times is one entry */
    for (int k = 0; k < 100; k++)
        assert_int_equal(lc_store_blob_exists(f->s, &f->d[8], &err), 1);
    assert_int_equal(lc_store_access_flush(f->s, BASE + 700, &flushed, &err), 0);
    assert_int_equal(flushed, 1);
}

/* Over the high-water mark (90 %): the least recently used go first, down
 * to the low-water mark (80 %, counted with each record's overhead); blobs
 * read since go last; action results that lost a blob go too. */
static void test_lru_order(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    /* 0, 1 and 2 are the oldest by time, but read now. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(lc_store_blob_exists(f->s, &f->d[i], &err), 1);
    lc_digest act[N], both;
    for (int i = 0; i < N; i++)
        put_ac(f, i % 2 ? "ci" : "", i, &i, 1, BASE, &act[i]);
    int pair[2] = {20, 5}; /* one kept blob, one evicted */
    put_ac(f, "", 100, pair, 2, BASE, &both);

    lc_evict_options o = {.max_bytes = 20 * BLOB};
    lc_evict_report rep;
    assert_int_equal(lc_evict_pass(f->s, f->stats, &o, BASE + 1000, NULL, &rep, &err), 0);
    assert_int_equal(rep.touched, 3);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    /* down to 80 %, and not a blob further */
    assert_true(t.used_bytes <= 16 * BLOB);
    assert_true(t.used_bytes + BLOB + LC_STORE__BLOB_OVERHEAD > 16 * BLOB);
    /* 0, 1, 2 (read) and the newest stay: 15 blobs (and 15 results) fit */
    int kept = (int)t.blobs;
    assert_int_equal(kept, 15);
    assert_int_equal(rep.blobs, N - kept);
    assert_int_equal(rep.blob_bytes, (uint64_t)(N - kept) * BLOB);
    for (int i = 0; i < N; i++) {
        bool keep = i < 3 || i >= N - (kept - 3);
        if (present(f, i) != keep)
            fail_msg("blob %d: present %d, expected %d", i, present(f, i), keep);
        if (ac_present(f, i % 2 ? "ci" : "", &act[i]) != keep)
            fail_msg("action result of blob %d: present %d, expected %d", i, !keep, keep);
    }
    assert_false(ac_present(f, "", &both));
    assert_int_equal(rep.ac_entries, N - kept + 1);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, kept);
    /* counted per instance: 3..17 odd are "ci" (8), even + the pair are "" (8) */
    lc_stats_snapshot snap;
    assert_int_equal(lc_stats_snapshot_take(f->stats, &snap), 0);
    assert_int_equal(snap.blobs_evicted, N - kept);
    assert_int_equal(snap.total.evictions, N - kept + 1);
    for (size_t i = 0; i < snap.n_instances; i++)
        assert_int_equal(snap.instances[i].evictions,
                         strcmp(snap.instances[i].name, "ci") == 0 ? 8 : 8);
    lc_stats_snapshot_free(&snap);

    /* Under the high-water mark now: a second pass does nothing. */
    assert_int_equal(lc_evict_pass(f->s, f->stats, &o, BASE + 1001, NULL, &rep, &err), 0);
    assert_int_equal(rep.blobs, 0);
    assert_int_equal(rep.ac_entries, 0);
}

/* A blob read after the pass chose it stays. */
static void test_read_blob_is_not_evicted(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    bool gone = true;
    assert_int_equal(lc_store_blob_exists(f->s, &f->d[0], &err), 1); /* pending */
    assert_int_equal(lc_store_blob_evict(f->s, &f->d[0], BASE + 100, &gone, &err), 0);
    assert_false(gone);
    assert_true(present(f, 0));
    /* touched after being chosen (atime now past idle_before) */
    assert_int_equal(lc_store_blob_evict(f->s, &f->d[1], BASE + 1, &gone, &err), 0);
    assert_false(gone);
    assert_int_equal(lc_store_blob_evict(f->s, &f->d[1], BASE + 2, &gone, &err), 0);
    assert_true(gone);
    assert_false(present(f, 1));
    /* an action result rewritten since it was read stays */
    int i2 = 2;
    lc_digest a;
    put_ac(f, "", 1, &i2, 1, BASE, &a);
    assert_int_equal(lc_store_ac_evict(f->s, "", &a, (const uint8_t *)"x", 1, &gone, &err), 0);
    assert_false(gone);
    assert_true(ac_present(f, "", &a));
}

/* --max-age: blobs not used since the cutoff go, and so do action results
 * with nothing recent about them; a result whose blob was read stays. */
static void test_max_age(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    for (int i = 20; i < N; i++) /* recently used */
        assert_int_equal(lc_store_blob_touch(f->s, &f->d[i], 1, BASE + 900, &err), 0);
    lc_digest old_result, fresh_result, empty_old, empty_new;
    int i25 = 25, i3 = 3;
    put_ac(f, "", 1, &i25, 1, BASE, &fresh_result); /* created long ago, blob used lately */
    put_ac(f, "", 2, &i3, 1, BASE, &old_result);
    put_ac(f, "", 3, NULL, 0, BASE, &empty_old); /* no blobs: its own time */
    put_ac(f, "", 4, NULL, 0, BASE + 950, &empty_new);

    lc_evict_options o = {.max_age = 100};
    lc_evict_report rep;
    assert_int_equal(lc_evict_pass(f->s, f->stats, &o, BASE + 1000, NULL, &rep, &err), 0);
    assert_int_equal(rep.blobs, 20);
    for (int i = 0; i < N; i++)
        assert_int_equal(present(f, i), i >= 20);
    assert_true(ac_present(f, "", &fresh_result));
    assert_false(ac_present(f, "", &old_result));
    assert_false(ac_present(f, "", &empty_old));
    assert_true(ac_present(f, "", &empty_new));
    assert_int_equal(rep.ac_entries, 2);
}

/* The background thread flushes and evicts on its own; stop joins it. */
static void test_thread(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_evict *e = NULL;
    lc_evict_options o = {.max_bytes = 10 * BLOB, .interval_ms = 50};
    assert_int_equal(lc_evict_start(f->s, f->stats, &o, &e, &err), 0);
    lc_evict_kick(e);
    lc_store_totals t;
    for (int k = 0; k < 200; k++) {
        lc_store_get_totals(f->s, &t);
        if (t.blob_bytes <= 10 * BLOB)
            break;
        usleep(20 * 1000);
    }
    lc_evict_stop(&e);
    assert_null(e);
    lc_store_get_totals(f->s, &t);
    /* down to 80 % of ten blobs with their overhead: seven */
    assert_int_equal(t.blobs, 7);
    /* times set in setup order them: the newest seven stay */
    for (int i = 0; i < N; i++)
        assert_int_equal(present(f, i), i >= N - 7);
    lc_stats_snapshot snap;
    assert_int_equal(lc_stats_snapshot_take(f->stats, &snap), 0);
    assert_int_equal(snap.blobs_evicted, N - 7);
    assert_int_equal(snap.blob_bytes_evicted, (uint64_t)(N - 7) * BLOB);
    lc_stats_snapshot_free(&snap);
    lc_evict_stop(&e); /* NULL is fine */
}

/* Back-pressure: with the thread running, writes far past --max-size all
 * succeed (each waits for eviction when it would cross the limit), and the
 * store never holds more than the limit. */
static void test_writes_wait_for_eviction(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    char dir[80];
    snprintf(dir, sizeof(dir), "%s/limited", f->dir);
    int64_t max = 10 * (BLOB + LC_STORE__BLOB_OVERHEAD);
    lc_store_options so = {.max_bytes = max};
    lc_store *s = NULL;
    assert_int_equal(lc_store_open(dir, &so, &s, &err), 0);
    lc_evict *e = NULL;
    /* a long interval: only the writers' kicks start passes */
    lc_evict_options o = {.max_bytes = max, .interval_ms = 60000};
    assert_int_equal(lc_evict_start(s, f->stats, &o, &e, &err), 0);
    uint8_t *data = malloc(BLOB);
    lc_digest last;
    for (int i = 0; i < 50; i++) {
        memset(data, i, BLOB);
        memcpy(data, &i, sizeof(i));
        lc_digest_of(data, BLOB, &last);
        if (lc_store_blob_put(s, &last, data, BLOB, &err) != 0)
            fail_msg("put %d: %s", i, err.msg);
        lc_store_totals t;
        lc_store_get_totals(s, &t);
        if (t.used_bytes > (uint64_t)max)
            fail_msg("put %d: %llu bytes used, limit %lld", i, (unsigned long long)t.used_bytes,
                     (long long)max);
    }
    free(data);
    lc_store_totals t;
    lc_store_get_totals(s, &t);
    assert_true(t.blobs >= 8 && t.blobs <= 10);
    assert_int_equal(lc_store_blob_exists(s, &last, &err), 1);
    lc_evict_stop(&e);
    lc_store_close(&s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reads_recorded_and_flushed),
        T(test_lru_order),
        T(test_read_blob_is_not_evicted),
        T(test_max_age),
        T(test_thread),
        T(test_writes_wait_for_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
