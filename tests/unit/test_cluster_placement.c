/* test_cluster_placement.c - rendezvous placement (common/placement.c):
 * deterministic, balanced over peers, adding a peer moves ~1/(n+1) of the
 * keys (only to the new peer), removing one moves only the keys it owned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/placement.h"

#define N_KEYS 10000

static void key_of(int i, lc_digest *d)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "key-%d", i);
    lc_digest_of(buf, (size_t)n, d);
}

static size_t owner_of(const char *const *peers, size_t n, int i)
{
    lc_digest d;
    uint8_t key[LC_HASH_LEN];
    size_t order[LC_PLACEMENT_MAX_PEERS];
    key_of(i, &d);
    size_t kl = lc_placement_blob_key(&d, key);
    lc_placement_rank(peers, n, key, kl, order);
    return order[0];
}

static void test_deterministic(void **state)
{
    (void)state;
    const char *peers[] = {"10.0.0.1:9092", "10.0.0.2:9092", "10.0.0.3:9092"};
    const char *shuffled[] = {"10.0.0.3:9092", "10.0.0.1:9092", "10.0.0.2:9092"};
    for (int i = 0; i < 1000; i++) {
        size_t a = owner_of(peers, 3, i), b = owner_of(peers, 3, i);
        assert_int_equal(a, b);
        /* the order of the list does not matter, only the names */
        assert_string_equal(peers[a], shuffled[owner_of(shuffled, 3, i)]);
    }
    uint8_t k[] = {1, 2, 3};
    assert_true(lc_placement_score("a:1", k, 3) != lc_placement_score("a:2", k, 3));
    /* a rank is a permutation */
    size_t order[3];
    lc_placement_rank(peers, 3, k, 3, order);
    assert_int_not_equal(order[0], order[1]);
    assert_int_not_equal(order[1], order[2]);
    assert_int_not_equal(order[0], order[2]);
}

static void test_balanced(void **state)
{
    (void)state;
    const char *peers[] = {"a:9092", "b:9092", "c:9092", "d:9092", "e:9092"};
    size_t count[5] = {0}, second[5] = {0};
    for (int i = 0; i < N_KEYS; i++) {
        lc_digest d;
        uint8_t key[LC_HASH_LEN];
        size_t order[5];
        key_of(i, &d);
        lc_placement_rank(peers, 5, key, lc_placement_blob_key(&d, key), order);
        count[order[0]]++;
        second[order[1]]++;
    }
    for (int p = 0; p < 5; p++) {
        /* 2000 expected; 10% tolerance is > 4 sigma */
        assert_in_range(count[p], 1800, 2200);
        assert_in_range(second[p], 1800, 2200);
    }
}

static void test_add_peer(void **state)
{
    (void)state;
    const char *peers[] = {"r0:9092", "r1:9092", "r2:9092", "r3:9092"};
    size_t moved = 0;
    for (int i = 0; i < N_KEYS; i++) {
        size_t before = owner_of(peers, 3, i), after = owner_of(peers, 4, i);
        if (before != after) {
            assert_int_equal(after, 3); /* keys only move to the new peer */
            moved++;
        }
    }
    /* ~1/4 of the keys */
    assert_in_range(moved, N_KEYS / 4 - 250, N_KEYS / 4 + 250);
}

static void test_remove_peer(void **state)
{
    (void)state;
    const char *peers[] = {"r0:9092", "r1:9092", "r2:9092", "r3:9092"};
    const char *without[] = {"r0:9092", "r1:9092", "r3:9092"}; /* r2 removed */
    size_t moved = 0;
    for (int i = 0; i < N_KEYS; i++) {
        size_t before = owner_of(peers, 4, i);
        const char *after = without[owner_of(without, 3, i)];
        if (strcmp(peers[before], after) != 0) {
            assert_string_equal(peers[before], "r2:9092"); /* only r2's keys move */
            moved++;
        }
    }
    assert_in_range(moved, N_KEYS / 4 - 250, N_KEYS / 4 + 250);
}

static void test_replicas_distinct(void **state)
{
    (void)state;
    const char *peers[] = {"a:1", "b:1", "c:1"};
    lc_digest d;
    uint8_t key[1200];
    size_t order[3];
    key_of(7, &d);
    size_t kl = lc_placement_action_key("inst", &d, key, sizeof(key));
    size_t kl2 = lc_placement_action_key("", &d, key + 600, 600);
    assert_int_equal(kl, 4 + 4 + LC_HASH_LEN);
    assert_int_equal(kl2, 4 + LC_HASH_LEN);
    assert_memory_not_equal(key, key + 600, kl2);
    lc_placement_rank(peers, 3, key, kl, order);
    assert_true(order[0] != order[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),     cmocka_unit_test(test_balanced),
        cmocka_unit_test(test_add_peer),          cmocka_unit_test(test_remove_peer),
        cmocka_unit_test(test_replicas_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
