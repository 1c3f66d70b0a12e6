/* test_stats.c - server counters: per method, per instance, the bounded
 * instance table, snapshots and thread safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "cache-server/stats.h"
#include "err.h"

static const lc_stats_instance *find(const lc_stats_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_instances; i++)
        if (strcmp(s->instances[i].name, name) == 0)
            return &s->instances[i];
    return NULL;
}

static void test_counts(void **state)
{
    (void)state;
    lc_stats *s = lc_stats_new();
    assert_non_null(s);
    int a = lc_stats_add_method(s, "/x.Y/A"), b = lc_stats_add_method(s, "/x.Y/B");
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    lc_stats_call(s, a, LC_OK);
    lc_stats_call(s, a, LC_NOT_FOUND);
    lc_stats_call(s, b, LC_OK);
    lc_stats_call(s, 7, LC_OK); /* unknown ids are ignored */
    lc_stats_ac(s, "ci", true);
    lc_stats_ac(s, "ci", false);
    lc_stats_ac(s, "", true);
    lc_stats_ac_update(s, "ci");
    lc_stats_bytes(s, "ci", 10, 20);
    lc_stats_bytes(s, "", 1, 0);
    lc_stats_snapshot snap;
    assert_int_equal(lc_stats_snapshot_take(s, &snap), 0);
    assert_int_equal(snap.n_methods, 2);
    assert_string_equal(snap.methods[0].name, "/x.Y/A");
    assert_int_equal(snap.methods[0].calls, 2);
    assert_int_equal(snap.methods[0].errors, 1);
    assert_int_equal(snap.methods[1].calls, 1);
    assert_int_equal(snap.methods[1].errors, 0);
    assert_int_equal(snap.n_instances, 2);
    const lc_stats_instance *ci = find(&snap, "ci");
    assert_non_null(ci);
    assert_int_equal(ci->ac_hits, 1);
    assert_int_equal(ci->ac_misses, 1);
    assert_int_equal(ci->ac_updates, 1);
    assert_int_equal(ci->bytes_read, 10);
    assert_int_equal(ci->bytes_written, 20);
    assert_int_equal(snap.total.ac_hits, 2);
    assert_int_equal(snap.total.bytes_read, 11);
    lc_stats_snapshot_free(&snap);
    lc_stats_free(&s);
    assert_null(s);
    lc_stats_free(&s); /* NULL is fine */
}

static void test_bounded_instances(void **state)
{
    (void)state;
    lc_stats *s = lc_stats_new();
    char name[32];
    for (int i = 0; i < LC_STATS_MAX_INSTANCES + 50; i++) {
        snprintf(name, sizeof(name), "i%d", i);
        lc_stats_ac(s, name, true);
    }
    lc_stats_ac(s, "i0", true); /* an early name still has its own row */
    lc_stats_snapshot snap;
    assert_int_equal(lc_stats_snapshot_take(s, &snap), 0);
    assert_int_equal(snap.n_instances, LC_STATS_MAX_INSTANCES + 1);
    const lc_stats_instance *other = find(&snap, LC_STATS_OTHER);
    assert_non_null(other);
    assert_int_equal(other->ac_hits, 50);
    assert_int_equal(find(&snap, "i0")->ac_hits, 2);
    assert_int_equal(snap.total.ac_hits, LC_STATS_MAX_INSTANCES + 51);
    lc_stats_snapshot_free(&snap);
    lc_stats_free(&s);
}

static lc_stats *shared;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        lc_stats_call(shared, 0, i % 2 ? LC_OK : LC_INTERNAL);
        lc_stats_bytes(shared, i % 3 ? "a" : "b", 1, 2);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    shared = lc_stats_new();
    lc_stats_add_method(shared, "/m");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    lc_stats_snapshot snap;
    assert_int_equal(lc_stats_snapshot_take(shared, &snap), 0);
    assert_int_equal(snap.methods[0].calls, 80000);
    assert_int_equal(snap.methods[0].errors, 40000);
    assert_int_equal(snap.total.bytes_read, 80000);
    assert_int_equal(snap.total.bytes_written, 160000);
    lc_stats_snapshot_free(&snap);
    lc_stats_free(&shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_bounded_instances),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
