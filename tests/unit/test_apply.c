/* test_apply.c - metadata instructions applied to an image config
 * (lc_apply_config): HEALTHCHECK with every duration flag Docker writes;
 * a bad duration is the parser's error, named by file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/oci/image.h"
#include "build-worker/orchestrate/apply.h"

/* Applies the last instruction of a one-stage Dockerfile to a scratch
 * image and returns the config's "config" object (caller decrefs root). */
static json_t *apply_last(const char *text, int want_rc, lc_err *err, json_t **root)
{
    lc_df_file *f = NULL;
    lc_df_plan *p = NULL;
    if (lc_df_parse(text, strlen(text), "Dockerfile", &f, err) != 0)
        fail_msg("parse: %s", err->msg);
    assert_int_equal(lc_df_plan_build(f, NULL, &p, err), 0);
    const lc_df_stage_plan *sp = &p->stages[p->nstages - 1];
    lc_image *img = lc_image_new("linux", "amd64");
    assert_non_null(img);
    bool cmd_set = false;
    int rc = lc_apply_config(img, &sp->steps[sp->nsteps - 1], &cmd_set, err);
    if (rc != want_rc)
        fail_msg("apply: rc %d (%s), want %d", rc, err->msg, want_rc);
    char *cfg = NULL;
    size_t len = 0;
    assert_int_equal(lc_image_config_blob(img, &cfg, &len, NULL), 0);
    *root = json_loads(cfg, 0, NULL);
    assert_non_null(*root);
    free(cfg);
    lc_image_free(&img);
    lc_df_plan_free(&p);
    lc_df_file_free(&f);
    return json_object_get(*root, "config");
}

static void test_healthcheck_durations(void **state)
{
    (void)state;
    lc_err err = {0};
    json_t *root = NULL;
    json_t *c = apply_last("FROM scratch\nHEALTHCHECK --interval=30s --timeout=5s "
                           "--start-period=1m --start-interval=2s --retries=4 CMD curl -f x\n",
                           0, &err, &root);
    json_t *h = json_object_get(c, "Healthcheck");
    assert_non_null(h);
    assert_int_equal(json_integer_value(json_object_get(h, "Interval")), 30000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "Timeout")), 5000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "StartPeriod")), 60000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "StartInterval")), 2000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "Retries")), 4);
    assert_string_equal(json_string_value(json_array_get(json_object_get(h, "Test"), 0)),
                        "CMD-SHELL");
    json_decref(root);

    /* Flags not given are not written (Docker's defaults apply at run time). */
    c = apply_last("FROM scratch\nHEALTHCHECK CMD true\n", 0, &err, &root);
    h = json_object_get(c, "Healthcheck");
    assert_null(json_object_get(h, "StartInterval"));
    assert_null(json_object_get(h, "Interval"));
    json_decref(root);

    /* A bad duration stops the parse, naming where it is. */
    const char *bad = "FROM scratch\nHEALTHCHECK --start-interval=soon CMD true\n";
    lc_df_file *f = NULL;
    assert_int_equal(lc_df_parse(bad, strlen(bad), "Dockerfile", &f, &err), -LC_INVALID_ARGUMENT);
    assert_null(f);
    assert_non_null(strstr(err.msg, "Dockerfile:2:13: "));
    assert_non_null(strstr(err.msg, "\"soon\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthcheck_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
