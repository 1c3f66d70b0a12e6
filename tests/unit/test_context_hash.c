/* test_context_hash.c - COPY source selection, parallel hashing and the stat cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/context/dockerignore.h"
#include "build-worker/context/hash.h"
#include "build-worker/context/statcache.h"
#include "build-worker/context/walk.h"
#include "digest.h"
#include "build-worker/layer/fsutil.h"

typedef struct fixture {
    char dir[64];
    char state[64];
} fixture;

static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    assert_int_equal(lc_fs_mkdir_p(path), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/lc-test-ctx.XXXXXX");
    strcpy(fx->state, "/tmp/lc-test-state.XXXXXX");
    if (mkdtemp(fx->dir) == NULL || mkdtemp(fx->state) == NULL)
        return -1;
    put(fx->dir, "Dockerfile", "FROM scratch\n");
    put(fx->dir, "src/main.c", "int main(void) { return 0; }\n");
    put(fx->dir, "src/util.c", "void util(void) {}\n");
    put(fx->dir, "src/util.h", "void util(void);\n");
    put(fx->dir, "src/gen/big.o", "object");
    put(fx->dir, "docs/a.md", "# a\n");
    put(fx->dir, "docs/README.md", "# readme\n");
    put(fx->dir, "secret.env", "TOKEN=x\n");
    put(fx->dir, "build/keep.txt", "keep\n");
    put(fx->dir, "build/drop.txt", "drop\n");
    char p[128], t[128];
    snprintf(p, sizeof(p), "%s/src/link", fx->dir);
    assert_int_equal(symlink("main.c", p), 0);
    snprintf(p, sizeof(p), "%s/escape", fx->dir);
    assert_int_equal(symlink("/etc/hostname", p), 0);
    snprintf(p, sizeof(p), "%s/abslink", fx->dir);
    assert_int_equal(symlink("/src/util.c", p), 0);
    snprintf(p, sizeof(p), "%s/toplink", fx->dir);
    snprintf(t, sizeof(t), "src/util.c");
    assert_int_equal(symlink(t, p), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    int rc = lc_fs_rm_rf(fx->dir) | lc_fs_rm_rf(fx->state);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static lc_selection *select1(fixture *fx, const char *ignore, const char *src, int want_rc)
{
    lc_ignore *ig = NULL;
    assert_int_equal(lc_ignore_parse(ignore, strlen(ignore), NULL, &ig, NULL), 0);
    lc_selection *sel = NULL;
    lc_err err = {0};
    const char *srcs[] = {src};
    int rc = lc_walk_select(fx->dir, ig, srcs, 1, NULL, &sel, &err);
    if (rc != want_rc)
        fail_msg("select '%s': rc %d (%s), want %d", src, rc, err.msg, want_rc);
    lc_ignore_free(&ig);
    return sel;
}

static int has(const lc_selection *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].path, path) == 0)
            return 1;
    return 0;
}

static void test_select_dir_recursive_with_ignore(void **state)
{
    fixture *fx = *state;
    lc_selection *s =
        select1(fx, "*.env\nsrc/gen\nbuild\n!build/keep.txt\n**/*.md\n!docs/README.md\n", ".", 0);
    assert_true(has(s, "src/main.c"));
    assert_true(has(s, "src/util.h"));
    assert_true(has(s, "src/link"));
    assert_true(has(s, "Dockerfile"));
    assert_false(has(s, "secret.env"));
    assert_false(has(s, "src/gen"));
    assert_false(has(s, "src/gen/big.o"));
    assert_true(has(s, "build/keep.txt"));
    assert_true(has(s, "build")); /* kept: something below is re-included */
    assert_false(has(s, "build/drop.txt"));
    assert_false(has(s, "docs/a.md"));
    assert_true(has(s, "docs/README.md"));
    /* Sorted depth-first, dest relative to the copied directory. */
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->entries[i].path, "src/link") == 0) {
            assert_true(S_ISLNK(s->entries[i].mode));
            assert_string_equal(s->entries[i].link, "main.c");
        }
        if (strcmp(s->entries[i].path, "src/main.c") == 0)
            assert_string_equal(s->entries[i].dest, "src/main.c");
    }
    lc_selection_free(&s);
    assert_null(s);
}

static void test_select_wildcards_and_errors(void **state)
{
    fixture *fx = *state;
    lc_selection *s = select1(fx, "", "src/*.c", 0);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->entries[0].path, "src/main.c");
    assert_string_equal(s->entries[0].dest, "main.c");
    assert_string_equal(s->entries[1].path, "src/util.c");
    assert_int_equal(s->files, 2);
    lc_selection_free(&s);

    s = select1(fx, "", "/../src/util.h", 0); /* cannot climb out */
    assert_int_equal(s->n, 1);
    lc_selection_free(&s);

    s = select1(fx, "", "*/u?il.[ch]", 0);
    assert_int_equal(s->n, 2);
    lc_selection_free(&s);

    s = select1(fx, "", "nothing*", 0); /* empty wildcard: no error */
    assert_int_equal(s->n, 0);
    lc_selection_free(&s);

    s = select1(fx, "src", "src/main.c", -LC_NOT_FOUND);
    assert_null(s);
    s = select1(fx, "", "missing.txt", -LC_NOT_FOUND);
    /* A symlink resolves inside the context, as BuildKit scopes it: an
     * absolute target is relative to the context root, never the host's. */
    s = select1(fx, "", "escape", -LC_NOT_FOUND);
    s = select1(fx, "", "abslink", 0);
    assert_int_equal(s->n, 1);
    assert_string_equal(s->entries[0].path, "src/util.c"); /* read from there */
    assert_string_equal(s->entries[0].dest, "abslink");    /* named as the link */
    assert_true(s->entries[0].match);
    lc_selection_free(&s);

    /* A top-level symlink inside the context is followed. */
    s = select1(fx, "", "toplink", 0);
    assert_int_equal(s->n, 1);
    assert_true(S_ISREG(s->entries[0].mode));
    assert_string_equal(s->entries[0].dest, "toplink");
    lc_selection_free(&s);
}

static void test_hash_digests_and_stat_cache(void **state)
{
    fixture *fx = *state;
    sleep_ms(150); /* older than the racy window, so the cache may keep them */
    lc_statcache *sc = NULL;
    assert_int_equal(lc_statcache_open(fx->state, &sc, NULL), 0);
    lc_selection *a = select1(fx, "", "src", 0);
    lc_selection *b = select1(fx, "", "src/*.c", 0);
    lc_selection *sels[] = {a, b};
    lc_hash_stats st;
    lc_err err = {0};
    assert_int_equal(lc_hash_selections(fx->dir, sels, 2, sc, &st, &err), 0);
    /* main.c util.c util.h gen/big.o; the duplicates in b are read once. */
    assert_int_equal(st.files, 4);
    assert_int_equal(st.files_read, 4);
    assert_int_equal(st.cache_hits, 0);
    for (size_t i = 0; i < b->n; i++) {
        assert_true(b->entries[i].hashed);
        lc_digest want;
        const char *text = strcmp(b->entries[i].dest, "main.c") == 0
                               ? "int main(void) { return 0; }\n"
                               : "void util(void) {}\n";
        lc_digest_of(text, strlen(text), &want);
        assert_true(lc_digest_equal(&want, &b->entries[i].digest));
    }
    assert_int_equal(lc_statcache_save(sc, &err), 0);
    lc_statcache_free(&sc);
    lc_selection_free(&a);
    lc_selection_free(&b);

    /* A new process-like run: loaded from disk, nothing is read. */
    assert_int_equal(lc_statcache_open(fx->state, &sc, NULL), 0);
    assert_int_equal(lc_statcache_count(sc), 4);
    a = select1(fx, "", "src", 0);
    assert_int_equal(lc_hash_selections(fx->dir, &a, 1, sc, &st, &err), 0);
    assert_int_equal(st.files_read, 0);
    assert_int_equal(st.cache_hits, 4);

    /* Same size, new content: the stat change forces a read. */
    put(fx->dir, "src/util.c", "void UTIL(void) {}\n");
    lc_selection_free(&a);
    a = select1(fx, "", "src/util.c", 0);
    assert_int_equal(lc_hash_selections(fx->dir, &a, 1, sc, &st, &err), 0);
    assert_int_equal(st.files_read, 1);
    lc_digest want;
    lc_digest_of("void UTIL(void) {}\n", 19, &want);
    assert_true(lc_digest_equal(&want, &a->entries[0].digest));
    /* Just written: inside the racy window, so not cached yet. */
    lc_selection_free(&a);
    a = select1(fx, "", "src/util.c", 0);
    assert_int_equal(lc_hash_selections(fx->dir, &a, 1, sc, &st, &err), 0);
    assert_int_equal(st.files_read, 1);
    lc_selection_free(&a);
    lc_statcache_free(&sc);
}

static void test_statcache_corrupt_file_is_ignored(void **state)
{
    fixture *fx = *state;
    lc_statcache *sc = NULL;
    assert_int_equal(lc_statcache_open(fx->state, &sc, NULL), 0);
    lc_stat_key k = {1, 2, 3, 4, 5};
    lc_digest d;
    lc_digest_of("abc", 3, &d);
    assert_int_equal(lc_statcache_put(sc, &k, &d), 0);
    assert_int_equal(lc_statcache_save(sc, NULL), 0);
    lc_statcache_free(&sc);

    char path[128];
    snprintf(path, sizeof(path), "%s/statcache.v1", fx->state);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 20, SEEK_SET);
    fputc('X', f);
    fclose(f);
    assert_int_equal(lc_statcache_open(fx->state, &sc, NULL), 0);
    lc_digest out;
    assert_false(lc_statcache_get(sc, &k, &out));
    assert_int_equal(lc_statcache_count(sc), 0);
    /* A different mtime never hits. */
    assert_int_equal(lc_statcache_put(sc, &k, &d), 0);
    lc_stat_key k2 = k;
    k2.mtime_ns++;
    assert_false(lc_statcache_get(sc, &k2, &out));
    assert_true(lc_statcache_get(sc, &k, &out));
    assert_true(memcmp(out.hash, d.hash, 32) == 0);
    lc_statcache_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_select_dir_recursive_with_ignore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_wildcards_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_digests_and_stat_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statcache_corrupt_file_is_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
