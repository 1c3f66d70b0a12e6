/* test_step_action.c - steps as REAPI Actions and results as ActionResults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "build-worker/keys/action.h"

static void test_action_is_deterministic_and_keyed(void **state)
{
    (void)state;
    lc_digest k1, k2;
    lc_digest_of("input-1", 7, &k1);
    lc_digest_of("input-2", 7, &k2);
    lc_step_action a, b, c, d;
    assert_int_equal(lc_step_action_make(&k1, "RUN make", "linux/amd64", &a, NULL), 0);
    assert_int_equal(lc_step_action_make(&k1, "RUN make", "linux/amd64", &b, NULL), 0);
    assert_int_equal(lc_step_action_make(&k2, "RUN make", "linux/amd64", &c, NULL), 0);
    assert_int_equal(lc_step_action_make(&k1, "RUN make", "linux/arm64", &d, NULL), 0);
    assert_true(lc_digest_equal(&a.action_digest, &b.action_digest));
    assert_false(lc_digest_equal(&a.action_digest, &c.action_digest));
    assert_false(lc_digest_equal(&a.action_digest, &d.action_digest));
    lc_digest check;
    lc_digest_of(a.action, a.action_len, &check);
    assert_true(lc_digest_equal(&check, &a.action_digest));
    char *text = lc_step_command_instruction(a.command, a.command_len);
    assert_string_equal(text, "RUN make");
    free(text);
    assert_null(lc_step_command_instruction((const uint8_t *)"\x0a\x01x", 3));
    lc_step_action_clear(&a);
    lc_step_action_clear(&b);
    lc_step_action_clear(&c);
    lc_step_action_clear(&d);
}

static void test_result_roundtrip(void **state)
{
    (void)state;
    lc_digest layers[3];
    lc_step_result r = {0};
    lc_digest_of("state", 5, &r.state);
    for (int i = 0; i < 3; i++) {
        char b[8];
        int n = snprintf(b, sizeof(b), "layer%d", i);
        lc_digest_of(b, (size_t)n, &layers[i]);
    }
    r.layers = layers;
    r.nlayers = 3;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(lc_step_result_encode(&r, "ci-7", 100.0, 102.5, &buf, &len, NULL), 0);
    Build__Bazel__Remote__Execution__V2__ActionResult *ar =
        build__bazel__remote__execution__v2__action_result__unpack(NULL, len, buf);
    assert_non_null(ar);
    assert_int_equal(ar->n_output_files, 4);
    lc_step_result back;
    assert_int_equal(lc_step_result_decode(ar, &back, NULL), 0);
    assert_true(lc_digest_equal(&back.state, &r.state));
    assert_int_equal(back.nlayers, 3);
    for (int i = 0; i < 3; i++)
        assert_true(lc_digest_equal(&back.layers[i], &layers[i]));
    assert_string_equal(back.worker, "ci-7");
    assert_true(back.exec_seconds > 2.49 && back.exec_seconds < 2.51);
    lc_step_result_clear(&back);

    /* A result without state.json is not a layercache step. */
    char *saved = ar->output_files[0]->path;
    ar->output_files[0]->path = "other";
    lc_err err = {0};
    assert_int_equal(lc_step_result_decode(ar, &back, &err), -LC_INVALID_ARGUMENT);
    ar->output_files[0]->path = saved;
    build__bazel__remote__execution__v2__action_result__free_unpacked(ar, NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_is_deterministic_and_keyed),
        cmocka_unit_test(test_result_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
