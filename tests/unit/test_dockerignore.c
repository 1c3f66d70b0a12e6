/* test_dockerignore.c - Docker's .dockerignore semantics and path cleaning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/context/dockerignore.h"
#include "build-worker/context/path.h"
#include "build-worker/layer/fsutil.h"

static lc_ignore *parse(const char *text)
{
    lc_ignore *ig = NULL;
    lc_err err = {0};
    int rc = lc_ignore_parse(text, strlen(text), ".dockerignore", &ig, &err);
    if (rc != 0)
        fail_msg("parse failed: %s", err.msg);
    return ig;
}

static void check(const char *patterns, const char *path, bool want)
{
    lc_ignore *ig = parse(patterns);
    bool got = lc_ignore_match(ig, path);
    if (got != want)
        fail_msg("patterns [%s] path '%s': got %d want %d", patterns, path, got, want);
    lc_ignore_free(&ig);
    assert_null(ig);
}

static void test_path_clean(void **state)
{
    (void)state;
    static const char *cases[][2] = {
        {"", "."},
        {"abc", "abc"},
        {"abc/def", "abc/def"},
        {"a/b/c/", "a/b/c"},
        {"./a", "a"},
        {"a//b/./c/", "a/b/c"},
        {"/", "/"},
        {"//abc", "/abc"},
        {"abc/../../..", "../.."},
        {"/../abc", "/abc"},
        {"../../abc", "../../abc"},
        {"abc/./../def", "def"},
        {"a/b/../..", "."},
        {"/a/b/../../..", "/"},
        {"..", ".."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = lc_path_clean(cases[i][0]);
        if (strcmp(c, cases[i][1]) != 0)
            fail_msg("clean('%s') = '%s', want '%s'", cases[i][0], c, cases[i][1]);
        free(c);
    }
    char *r = lc_path_rel_clean("/../../etc/x/");
    assert_string_equal(r, "etc/x");
    free(r);
    r = lc_path_rel_clean("/");
    assert_string_equal(r, ".");
    free(r);
    r = lc_path_join(".", "a");
    assert_string_equal(r, "a");
    free(r);
}

static void test_star_stays_in_one_element(void **state)
{
    (void)state;
    check("*.log", "a.log", true);
    check("*.log", "dir/a.log", false);
    check("dir/*.log", "dir/a.log", true);
    check("dir/*/file", "dir/x/file", true);
    check("dir/*/file", "dir/x/y/file", false);
    check("?.txt", "a.txt", true);
    check("?.txt", "ab.txt", false);
    check("a?b", "a/b", false);
}

static void test_double_star(void **state)
{
    (void)state;
    check("**/*.log", "a.log", true);
    check("**/*.log", "x/y/z.log", true);
    check("**/*.log", "x/y/z.txt", false);
    check("**/node_modules", "node_modules", true);
    check("**/node_modules", "a/b/node_modules/pkg/index.js", true);
    check("**/node_modules", "a/xnode_modules", false);
    check("a/**/b", "a/b", true);
    check("a/**/b", "a/x/y/b", true);
    check("a/**/b", "a/x/y/c", false);
    check("a/**", "a/b/c", true);
    check("a/**", "ab", false);
    check("**", "anything/at/all", true);
    check("a/**/*.go", "a/x/main.go", true);
    /* Several "**" in one pattern (each needs four NFA states). */
    check("a/**/b/**/c/**/d/**/e", "a/1/b/c/2/3/d/e", true);
    check("**/**/**/**/**/x", "x", true);
}

static void test_parents_are_matched(void **state)
{
    (void)state;
    check("build", "build", true);
    check("build", "build/out/x.o", true);
    check("build", "src/build", false);
    check("src/gen", "src/gen/a/b.c", true);
    check("*/tmp", "x/tmp/file", true);
}

static void test_exceptions_last_match_wins(void **state)
{
    (void)state;
    check("*.md\n!README.md", "README.md", false);
    check("*.md\n!README.md", "CHANGES.md", true);
    check("!README.md\n*.md", "README.md", true);
    check("build\n!build/keep.txt", "build/keep.txt", false);
    check("build\n!build/keep.txt", "build/other.txt", true);
    check("build\n!build/keep.txt\nbuild/keep.txt", "build/keep.txt", true);
    check("**\n!src\n", "src/main.c", false);
    check("**\n!src\n", "docs/x", true);
}

static void test_cleaning_comments_and_space(void **state)
{
    (void)state;
    check("/secret", "secret", true);
    check("./tmp/", "tmp/x", true);
    check("  spaced.txt  \n", "spaced.txt", true);
    check("# comment.txt\n", "# comment.txt", false);
    check("# comment.txt\n", "comment.txt", false);
    /* Only a '#' in the first column starts a comment, as in Docker. */
    check("  #hash.txt\n", "#hash.txt", true);
    check("a/../b\n", "b", true);
    check("\xef\xbb\xbf"
          "bom.txt\r\n",
          "bom.txt", true);
    check("! keep.txt\n", "keep.txt", false);
    check("\n\n   \n", "x", false);
    lc_ignore *ig = parse("# c\n/a/\n!./b\n");
    assert_int_equal(lc_ignore_count(ig), 2);
    assert_string_equal(lc_ignore_pattern(ig, 0), "a");
    assert_string_equal(lc_ignore_pattern(ig, 1), "!b");
    assert_true(lc_ignore_has_exceptions(ig));
    lc_ignore_free(&ig);
}

static void test_classes(void **state)
{
    (void)state;
    check("[a-c].txt", "b.txt", true);
    check("[a-c].txt", "d.txt", false);
    check("[^a-c].txt", "d.txt", true);
    check("[^a-c].txt", "a.txt", false);
    check("file[0-9][0-9]", "file42", true);
    check("x[\\]]y", "x]y", true);
    check("\xc3\xa9t\xc3\xa9?", "\xc3\xa9t\xc3\xa9s", true);
    check("?", "\xc3\xa9", true); /* one code point, not one byte */
}

static void test_bad_patterns(void **state)
{
    (void)state;
    static const char *bad[] = {"ok\n[abc\n", "!\n", "x\\", "[]a]", "[a-]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lc_ignore *ig = NULL;
        lc_err err = {0};
        int rc = lc_ignore_parse(bad[i], strlen(bad[i]), "ctx/.dockerignore", &ig, &err);
        assert_int_equal(rc, -LC_INVALID_ARGUMENT);
        assert_null(ig);
        assert_non_null(strstr(err.msg, "ctx/.dockerignore:"));
    }
    lc_ignore *ig = NULL;
    lc_err err = {0};
    assert_int_equal(lc_ignore_parse("ok\n[abc\n", 8, "f", &ig, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "f:2:"));
}

static void test_from_patterns(void **state)
{
    (void)state;
    const char *pats[] = {"*.tmp", "!keep.tmp"};
    lc_ignore *ig = NULL;
    assert_int_equal(lc_ignore_from_patterns(pats, 2, &ig, NULL), 0);
    assert_true(lc_ignore_match(ig, "x.tmp"));
    assert_false(lc_ignore_match(ig, "keep.tmp"));
    lc_ignore_free(&ig);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_prefers_dockerfile_ignore(void **state)
{
    (void)state;
    char dir[] = "/tmp/lc-test-ignore.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char df[4200], used_want[4300];
    snprintf(df, sizeof(df), "%s/app.Dockerfile", dir);
    lc_ignore *ig = NULL;
    char *used = NULL;
    /* No file at all: an empty matcher. */
    assert_int_equal(lc_ignore_load(dir, df, &ig, &used, NULL), 0);
    assert_null(used);
    assert_false(lc_ignore_match(ig, "a.txt"));
    lc_ignore_free(&ig);

    write_file(dir, ".dockerignore", "a.txt\n");
    assert_int_equal(lc_ignore_load(dir, df, &ig, &used, NULL), 0);
    assert_true(lc_ignore_match(ig, "a.txt"));
    assert_false(lc_ignore_match(ig, "b.txt"));
    free(used);
    lc_ignore_free(&ig);

    write_file(dir, "app.Dockerfile.dockerignore", "b.txt\n");
    assert_int_equal(lc_ignore_load(dir, df, &ig, &used, NULL), 0);
    snprintf(used_want, sizeof(used_want), "%s.dockerignore", df);
    assert_string_equal(used, used_want);
    assert_false(lc_ignore_match(ig, "a.txt"));
    assert_true(lc_ignore_match(ig, "b.txt"));
    free(used);
    lc_ignore_free(&ig);

    write_file(dir, ".dockerignore", "[bad\n");
    lc_err err = {0};
    assert_int_equal(lc_ignore_load(dir, NULL, &ig, NULL, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, ".dockerignore:1"));

    assert_int_equal(lc_fs_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_clean),
        cmocka_unit_test(test_star_stays_in_one_element),
        cmocka_unit_test(test_double_star),
        cmocka_unit_test(test_parents_are_matched),
        cmocka_unit_test(test_exceptions_last_match_wins),
        cmocka_unit_test(test_cleaning_comments_and_space),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_from_patterns),
        cmocka_unit_test(test_load_prefers_dockerfile_ignore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
