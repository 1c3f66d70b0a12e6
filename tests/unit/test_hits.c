/* test_hits.c - batched action cache hit counts (cache-server/hits.c): hits
 * are counted in memory and written into StoredActionResult by a flush,
 * never into an entry deleted meanwhile, and forgotten on request; the
 * entry lock serializes writers; a NULL table is a no-op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "cache-server/hits.h"
#include "cache-server/store.h"
#include "layercache/v1/admin.pb-c.h"
#include "build-worker/layer/fsutil.h"

typedef struct fixture {
    char dir[64];
    lc_store *s;
    lc_hits *h;
} fixture;

static int teardown(void **state)
{
    fixture *f = *state;
    lc_hits_free(&f->h);
    lc_store_close(&f->s);
    lc_fs_rm_rf(f->dir);
    free(f);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/lc-test-hits.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    lc_err err = {0};
    if (lc_store_open(f->dir, NULL, &f->s, &err) != 0 || (f->h = lc_hits_new(f->s)) == NULL) {
        fprintf(stderr, "open: %s\n", err.msg);
        teardown(state);
        return -1;
    }
    return 0;
}

static lc_digest key_of(const char *name)
{
    lc_digest d;
    lc_digest_of(name, strlen(name), &d);
    return d;
}

/* Stores an entry with writer "w", created 100, no hits. */
static void put_entry(fixture *f, const char *inst, const lc_digest *k)
{
    Layercache__V1__StoredActionResult s = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    uint8_t ar[] = {0x0a, 0x00};
    s.action_result.data = ar;
    s.action_result.len = sizeof(ar);
    s.writer = "w";
    s.created_unix = 100;
    uint8_t buf[256];
    size_t n = layercache__v1__stored_action_result__pack(&s, buf);
    lc_err err = {0};
    assert_int_equal(lc_store_ac_put(f->s, inst, k, buf, n, &err), 0);
}

/* hit_count and last hit of an entry; -1 when absent. */
static int64_t hits_of(fixture *f, const char *inst, const lc_digest *k, int64_t *last)
{
    uint8_t *v = NULL;
    size_t len = 0;
    lc_err err = {0};
    if (lc_store_ac_get(f->s, inst, k, &v, &len, &err) != 0)
        return -1;
    Layercache__V1__StoredActionResult *s =
        layercache__v1__stored_action_result__unpack(NULL, len, v);
    free(v);
    assert_non_null(s);
    assert_string_equal(s->writer, "w"); /* the rest of the entry is kept */
    assert_int_equal(s->created_unix, 100);
    int64_t n = (int64_t)s->hit_count;
    if (last != NULL)
        *last = s->last_hit_unix;
    layercache__v1__stored_action_result__free_unpacked(s, NULL);
    return n;
}

static void test_counts_are_written_by_flush(void **state)
{
    fixture *f = *state;
    lc_digest a = key_of("a"), b = key_of("b");
    put_entry(f, "team", &a);
    put_entry(f, "team", &b);
    put_entry(f, "other", &a); /* same digest, another instance */
    for (int i = 0; i < 5; i++)
        lc_hits_record(f->h, "team", &a, NULL, 1000 + i);
    lc_hits_record(f->h, "team", &b, NULL, 900);
    int64_t last = 0;
    assert_int_equal(hits_of(f, "team", &a, NULL), 0); /* no write per hit */
    lc_err err = {0};
    assert_int_equal(lc_hits_flush(f->h, &err), 0);
    assert_int_equal(hits_of(f, "team", &a, &last), 5);
    assert_int_equal(last, 1004);
    assert_int_equal(hits_of(f, "team", &b, &last), 1);
    assert_int_equal(last, 900);
    assert_int_equal(hits_of(f, "other", &a, NULL), 0);
    /* A second batch adds up; an older hit does not move last_hit back. */
    lc_hits_record(f->h, "team", &a, NULL, 10);
    assert_int_equal(lc_hits_flush(f->h, &err), 0);
    assert_int_equal(hits_of(f, "team", &a, &last), 6);
    assert_int_equal(last, 1004);
}

static void test_deleted_entry_is_not_resurrected(void **state)
{
    fixture *f = *state;
    lc_digest a = key_of("a");
    lc_err err = {0};
    put_entry(f, "", &a);
    lc_hits_record(f->h, "", &a, NULL, 1000);
    assert_int_equal(lc_store_ac_delete(f->s, "", &a, &err), 0);
    assert_int_equal(lc_hits_flush(f->h, &err), 0);
    assert_int_equal(hits_of(f, "", &a, NULL), -1);
}

static void test_forget(void **state)
{
    fixture *f = *state;
    lc_digest a = key_of("a"), b = key_of("b");
    lc_err err = {0};
    put_entry(f, "i", &a);
    put_entry(f, "i", &b);
    lc_hits_record(f->h, "i", &a, NULL, 1000);
    lc_hits_record(f->h, "i", &b, NULL, 1000);
    lc_hits_forget(f->h, "i", &a, NULL);
    assert_int_equal(lc_hits_flush(f->h, &err), 0);
    assert_int_equal(hits_of(f, "i", &a, NULL), 0);
    assert_int_equal(hits_of(f, "i", &b, NULL), 1);
}

static void test_due_flush_and_free_flush(void **state)
{
    fixture *f = *state;
    lc_digest a = key_of("a");
    put_entry(f, "i", &a);
    /* A hit LC_HITS_FLUSH_SECONDS after the oldest pending one flushes. */
    lc_hits_record(f->h, "i", &a, NULL, 1000);
    lc_hits_record(f->h, "i", &a, NULL, 1000 + LC_HITS_FLUSH_SECONDS);
    assert_int_equal(hits_of(f, "i", &a, NULL), 2);
    /* Closing the table flushes what is pending. */
    lc_hits_record(f->h, "i", &a, NULL, 2000);
    lc_hits_free(&f->h);
    assert_null(f->h);
    assert_int_equal(hits_of(f, "i", &a, NULL), 3);
}

typedef struct worker_arg {
    fixture *f;
    lc_digest key;
    int n;
} worker_arg;

static void *hitter(void *p)
{
    worker_arg *w = p;
    for (int i = 0; i < w->n; i++)
        lc_hits_record(w->f->h, "i", &w->key, NULL, 1000 + i / 100); /* flushes on its own */
    return NULL;
}

static void test_concurrent_hits_all_counted(void **state)
{
    fixture *f = *state;
    worker_arg w = {.f = f, .key = key_of("a"), .n = 3000};
    put_entry(f, "i", &w.key);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hitter, &w), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    lc_err err = {0};
    assert_int_equal(lc_hits_flush(f->h, &err), 0);
    assert_int_equal(hits_of(f, "i", &w.key, NULL), 4 * 3000);
}

static void test_null_table_is_a_no_op(void **state)
{
    (void)state;
    lc_digest a = key_of("a");
    lc_err err = {0};
    lc_hits_record(NULL, "i", &a, NULL, 1);
    lc_hits_lock(NULL, &a);
    lc_hits_unlock(NULL, &a);
    lc_hits_forget(NULL, "i", &a, NULL);
    assert_int_equal(lc_hits_flush(NULL, &err), 0);
    lc_hits *h = NULL;
    lc_hits_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_counts_are_written_by_flush),
        T(test_deleted_entry_is_not_resurrected),
        T(test_forget),
        T(test_due_flush_and_free_flush),
        T(test_concurrent_hits_all_counted),
        T(test_null_table_is_a_no_op),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
