/* test_flags.c - option tables: defaults, environment, argv precedence, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flags.h"

static char *listen_addr;
static int64_t threads, max_size, max_age;
static bool verbose;
static lc_strlist tags;

static const lc_flag table[] = {
    {"listen", 0, LC_FLAG_STRING, &listen_addr, "0.0.0.0:9092", "ADDR", "gRPC address"},
    {"threads", 'j', LC_FLAG_INT, &threads, "2", "N", "worker threads"},
    {"max-size", 0, LC_FLAG_SIZE, &max_size, "0", "BYTES", "size limit"},
    {"max-age", 0, LC_FLAG_DURATION, &max_age, NULL, "DURATION", "TTL"},
    {"verbose", 'v', LC_FLAG_BOOL, &verbose, "false", NULL, "say more"},
    {"tag", 't', LC_FLAG_LIST, &tags, NULL, "NAME", "image name", true},
};
#define NFLAGS (sizeof(table) / sizeof(table[0]))

static int teardown(void **state)
{
    (void)state;
    lc_flags_free(table, NFLAGS);
    unsetenv("LCTEST_LISTEN");
    unsetenv("LCTEST_THREADS");
    unsetenv("LCTEST_TAG");
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"prog", NULL};
    lc_err err = {0};
    assert_int_equal(lc_flags_parse(table, NFLAGS, "LCTEST_", 1, argv, 1, NULL, &err), 0);
    assert_string_equal(listen_addr, "0.0.0.0:9092");
    assert_int_equal(threads, 2);
    assert_int_equal(max_size, 0);
    assert_false(verbose);
    assert_int_equal(tags.len, 0);
}

static void test_env_then_argv(void **state)
{
    (void)state;
    setenv("LCTEST_LISTEN", "127.0.0.1:1", 1);
    setenv("LCTEST_THREADS", "7", 1);
    setenv("LCTEST_TAG", "ignored", 1); /* no_env flag */
    char *argv[] = {"prog",         "--threads=3",  "-v",  "--max-size", "10G",
                    "--max-age=7d", "-t",           "a:1", "-tb:2",      "ctx",
                    "--",           "--not-a-flag", NULL};
    lc_strlist pos = {0};
    lc_err err = {0};
    assert_int_equal(lc_flags_parse(table, NFLAGS, "LCTEST_", 12, argv, 1, &pos, &err), 0);
    assert_string_equal(listen_addr, "127.0.0.1:1"); /* from the environment */
    assert_int_equal(threads, 3);                    /* argv beats the environment */
    assert_true(verbose);
    assert_int_equal(max_size, 10LL << 30);
    assert_int_equal(max_age, 7 * 86400);
    assert_int_equal(tags.len, 2);
    assert_string_equal(tags.items[0], "a:1");
    assert_string_equal(tags.items[1], "b:2");
    assert_int_equal(pos.len, 2);
    assert_string_equal(pos.items[0], "ctx");
    assert_string_equal(pos.items[1], "--not-a-flag");
    lc_strlist_clear(&pos);
}

static void test_errors_name_the_flag(void **state)
{
    (void)state;
    lc_err err = {0};
    char *bad_int[] = {"prog", "--threads", "many", NULL};
    assert_int_equal(lc_flags_parse(table, NFLAGS, NULL, 3, bad_int, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "--threads"));
    char *unknown[] = {"prog", "--nope", NULL};
    assert_int_equal(lc_flags_parse(table, NFLAGS, NULL, 2, unknown, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "--nope"));
    char *missing[] = {"prog", "--listen", NULL};
    assert_int_equal(lc_flags_parse(table, NFLAGS, NULL, 2, missing, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "needs a value"));
    char *bad_size[] = {"prog", "--max-size", "12Q", NULL};
    assert_int_equal(lc_flags_parse(table, NFLAGS, NULL, 3, bad_size, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    char *positional[] = {"prog", "stray", NULL};
    assert_int_equal(lc_flags_parse(table, NFLAGS, NULL, 2, positional, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    char *help[] = {"prog", "--help", NULL};
    assert_int_equal(lc_flags_parse(table, NFLAGS, NULL, 2, help, 1, NULL, &err), LC_FLAGS_HELP);
}

static void test_usage_lists_every_flag(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    lc_flags_usage(f, "usage: prog [options]", table, NFLAGS, "LCTEST_");
    fclose(f);
    for (size_t i = 0; i < NFLAGS; i++)
        assert_non_null(strstr(text, table[i].name));
    assert_non_null(strstr(text, "[env LCTEST_MAX_SIZE]"));
    assert_null(strstr(text, "LCTEST_TAG"));
    assert_non_null(strstr(text, "(default: 0.0.0.0:9092)"));
    free(text);
}

static void test_size_and_duration_parsers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(lc_parse_size("512", &v, NULL), 0);
    assert_int_equal(v, 512);
    assert_int_equal(lc_parse_size("64K", &v, NULL), 0);
    assert_int_equal(v, 64 * 1024);
    assert_int_equal(lc_parse_size("2GiB", &v, NULL), 0);
    assert_int_equal(v, 2LL << 30);
    assert_int_equal(lc_parse_size("-1", &v, NULL), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_parse_size("99999999999T", &v, NULL), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_parse_duration("90", &v, NULL), 0);
    assert_int_equal(v, 90);
    assert_int_equal(lc_parse_duration("15m", &v, NULL), 0);
    assert_int_equal(v, 900);
    assert_int_equal(lc_parse_duration("12h", &v, NULL), 0);
    assert_int_equal(v, 12 * 3600);
    assert_int_equal(lc_parse_duration("3x", &v, NULL), -LC_INVALID_ARGUMENT);
}

/* Groups: a second table included by two programs' tables, one of them
 * including a third (groups nest). */
static char *server_addr, *token;
static lc_strlist peers;
static bool dry_run;

static const lc_flag token_flags[] = {
    {"token", 0, LC_FLAG_STRING, &token, NULL, "TOKEN", "bearer token"},
};
static const lc_flag_group token_group = LC_FLAG_GROUP(token_flags);

static const lc_flag server_flags[] = {
    {"server", 's', LC_FLAG_STRING, &server_addr, "127.0.0.1:1", "ADDR", "server address"},
    LC_FLAG_INCLUDE_GROUP(token_group),
    {"peer", 0, LC_FLAG_LIST, &peers, NULL, "HOST:PORT", "other servers"},
};
static const lc_flag_group server_group = LC_FLAG_GROUP(server_flags);

static const lc_flag grouped[] = {
    {"dry-run", 'n', LC_FLAG_BOOL, &dry_run, NULL, NULL, "change nothing", true},
    LC_FLAG_INCLUDE_GROUP(server_group),
};
#define NGROUPED (sizeof(grouped) / sizeof(grouped[0]))

static int teardown_groups(void **state)
{
    (void)state;
    lc_flags_free(grouped, NGROUPED);
    assert_null(server_addr); /* included groups are freed too */
    assert_null(token);
    assert_int_equal(peers.len, 0);
    unsetenv("LCTEST_TOKEN");
    unsetenv("LCTEST_PEER");
    unsetenv("LCTEST_DRY_RUN");
    return 0;
}

static void test_groups_parse_as_one_table(void **state)
{
    (void)state;
    setenv("LCTEST_TOKEN", "from-env", 1); /* nested group, from the environment */
    setenv("LCTEST_PEER", "a:1,b:2", 1);   /* a list in a group, comma-separated */
    setenv("LCTEST_DRY_RUN", "true", 1);   /* no_env: ignored */
    char *argv[] = {"prog", "-s", "127.0.0.1:9", "--peer=c:3", "ctx", NULL};
    lc_strlist pos = {0};
    lc_err err = {0};
    assert_int_equal(lc_flags_parse(grouped, NGROUPED, "LCTEST_", 5, argv, 1, &pos, &err), 0);
    assert_false(dry_run);
    assert_string_equal(server_addr, "127.0.0.1:9"); /* short flag of the second group */
    assert_string_equal(token, "from-env");
    assert_int_equal(peers.len, 3);
    assert_string_equal(peers.items[2], "c:3");
    assert_int_equal(pos.len, 1);
    lc_strlist_clear(&pos);

    char *argv2[] = {"prog", "--token", "t2", "-n", NULL};
    assert_int_equal(lc_flags_parse(grouped, NGROUPED, NULL, 4, argv2, 1, NULL, &err), 0);
    assert_string_equal(token, "t2");
    assert_string_equal(server_addr, "127.0.0.1:1"); /* a group's default */
    assert_true(dry_run);
}

static void test_groups_errors_and_usage(void **state)
{
    (void)state;
    lc_err err = {0};
    char *unknown[] = {"prog", "--tokens", "x", NULL};
    assert_int_equal(lc_flags_parse(grouped, NGROUPED, NULL, 3, unknown, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "unknown flag '--tokens' (see --help)");
    char *bad[] = {"prog", "--token", NULL};
    assert_int_equal(lc_flags_parse(grouped, NGROUPED, NULL, 2, bad, 1, NULL, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "--token needs a value (TOKEN)"));

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    lc_flags_usage(f, "usage: prog [options]", grouped, NGROUPED, "LCTEST_");
    fclose(f);
    const char *want[] = {
        "-n, --dry-run",    "-s, --server ADDR", "--token TOKEN", "bearer token [env LCTEST_TOKEN]",
        "--peer HOST:PORT", "[env LCTEST_PEER]", "-h, --help"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_non_null(strstr(text, want[i]));
    /* in table order, the group's flags where it is included */
    assert_true(strstr(text, "--dry-run") < strstr(text, "--server"));
    assert_true(strstr(text, "--server") < strstr(text, "--token"));
    assert_true(strstr(text, "--token") < strstr(text, "--peer"));
    free(text);
}

static void test_groups_reject_a_name_declared_twice(void **state)
{
    (void)state;
    static char *other;
    static const lc_flag clash[] = {
        {"token", 0, LC_FLAG_STRING, &other, NULL, "TOKEN", "a second --token"},
        LC_FLAG_INCLUDE_GROUP(server_group),
    };
    char *argv[] = {"prog", NULL};
    lc_err err = {0};
    assert_int_equal(lc_flags_parse(clash, 2, NULL, 1, argv, 1, NULL, &err), -LC_INTERNAL);
    assert_non_null(strstr(err.msg, "--token is declared twice"));
    lc_flags_free(clash, 2);
    assert_null(other);
}

/* A flag with a bare value: "--pull" alone, "--pull=V", "--pull V" only for
 * V among the metavar's words (so "--pull ." leaves "." positional). */
static void test_bare_value(void **state)
{
    (void)state;
    static char *pull;
    static const lc_flag t[] = {
        {"pull", 0, LC_FLAG_STRING, &pull, "missing", "missing|always|never", "pulls", true,
         "always"},
    };
    struct {
        int argc;
        char *argv[4];
        const char *want;
        size_t npos;
    } cases[] = {
        {3, {"prog", "--pull", "ctx"}, "always", 1},
        {3, {"prog", "--pull=never", "ctx"}, "never", 1},
        {4, {"prog", "--pull", "never", "ctx"}, "never", 1},
        {2, {"prog", "ctx"}, "missing", 1},
        {3, {"prog", "ctx", "--pull"}, "always", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lc_strlist pos = {0};
        lc_err err = {0};
        assert_int_equal(lc_flags_parse(t, 1, NULL, cases[i].argc, cases[i].argv, 1, &pos, &err), 0);
        assert_string_equal(pull, cases[i].want);
        assert_int_equal(pos.len, cases[i].npos);
        assert_string_equal(pos.items[0], "ctx");
        lc_strlist_clear(&pos);
        lc_flags_free(t, 1);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lc_flags_usage(f, "usage", t, 1, NULL);
    fclose(f);
    assert_non_null(strstr(buf, "--pull[=missing|always|never]"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_env_then_argv, teardown),
        cmocka_unit_test_teardown(test_errors_name_the_flag, teardown),
        cmocka_unit_test_teardown(test_usage_lists_every_flag, teardown),
        cmocka_unit_test(test_size_and_duration_parsers),
        cmocka_unit_test_teardown(test_groups_parse_as_one_table, teardown_groups),
        cmocka_unit_test_teardown(test_groups_errors_and_usage, teardown_groups),
        cmocka_unit_test_teardown(test_groups_reject_a_name_declared_twice, teardown_groups),
        cmocka_unit_test(test_bare_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
