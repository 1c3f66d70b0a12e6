/* test_completeness.c - the one rule for "can this action result be
 * served" (cache-server/completeness.h) over a real store: the blobs each
 * output kind needs (output files, stdout, stderr, Tree blobs, the files in
 * a Tree's root and children, root_directory_digest), a missing one of each
 * kind makes the result incomplete, unreadable Trees, the quiet check that
 * records no access, and eviction dropping entries (trusted and untrusted)
 * whose Tree lost a file. */
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
#include "cache-server/completeness.h"
#include "cache-server/evict.h"
#include "cache-server/store.h"
#include "cache-server/store_ac.h"
#include "layercache/v1/admin.pb-c.h"

typedef Build__Bazel__Remote__Execution__V2__ActionResult action_result;
typedef Build__Bazel__Remote__Execution__V2__Digest wire_digest;

/* The blobs of the result under test, by kind. */
enum { OUT_FILE, STDOUT, STDERR, TREE, ROOT_FILE, CHILD_FILE, ROOT_DIR, N_KINDS };
static const char *const kind_names[N_KINDS] = {"output file",
                                                "stdout",
                                                "stderr",
                                                "tree",
                                                "file in the tree's root",
                                                "file in a child directory",
                                                "root_directory_digest"};

typedef struct fixture {
    char dir[64];
    lc_store *s;
    lc_digest d[N_KINDS];
    uint8_t *data[N_KINDS];
    size_t len[N_KINDS];
    char hex[N_KINDS][LC_HASH_HEX_LEN + 1];
    wire_digest w[N_KINDS];
    /* the result */
    Build__Bazel__Remote__Execution__V2__OutputFile file, *files[1];
    Build__Bazel__Remote__Execution__V2__OutputDirectory odir, *odirs[1];
    action_result ar;
} fixture;

static void to_wire(fixture *f, int k)
{
    lc_digest_hex(&f->d[k], f->hex[k]);
    Build__Bazel__Remote__Execution__V2__Digest init =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    f->w[k] = init;
    f->w[k].hash = f->hex[k];
    f->w[k].size_bytes = f->d[k].size;
}

static void set_blob(fixture *f, int k, const void *data, size_t len)
{
    free(f->data[k]);
    f->data[k] = malloc(len + 1);
    memcpy(f->data[k], data, len);
    f->len[k] = len;
    lc_digest_of(data, len, &f->d[k]);
    to_wire(f, k);
}

static void put(fixture *f, int k)
{
    lc_err err = {0};
    if (lc_store_blob_put(f->s, &f->d[k], f->data[k], f->len[k], &err) != 0)
        fail_msg("put %s: %s", kind_names[k], err.msg);
}

static void del(fixture *f, int k)
{
    lc_err err = {0};
    assert_int_equal(lc_store_blob_delete(f->s, &f->d[k], &err), 0);
}

/* A Tree: root with file "a" (ROOT_FILE) and directory "sub" whose child
 * Directory holds file "b" (CHILD_FILE). bad_file: "b" has a malformed
 * digest. */
static void make_tree(fixture *f, bool bad_file)
{
    Build__Bazel__Remote__Execution__V2__FileNode
        a = BUILD__BAZEL__REMOTE__EXECUTION__V2__FILE_NODE__INIT,
        b = BUILD__BAZEL__REMOTE__EXECUTION__V2__FILE_NODE__INIT;
    a.name = "a";
    a.digest = &f->w[ROOT_FILE];
    b.name = "b";
    wire_digest bad = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    bad.hash = "not-a-sha256";
    bad.size_bytes = 3;
    b.digest = bad_file ? &bad : &f->w[CHILD_FILE];
    Build__Bazel__Remote__Execution__V2__FileNode *ra[1] = {&a}, *cb[1] = {&b};
    Build__Bazel__Remote__Execution__V2__Directory child =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIRECTORY__INIT;
    child.n_files = 1;
    child.files = cb;
    size_t clen = build__bazel__remote__execution__v2__directory__get_packed_size(&child);
    uint8_t *cbuf = malloc(clen + 1);
    build__bazel__remote__execution__v2__directory__pack(&child, cbuf);
    lc_digest cd;
    lc_digest_of(cbuf, clen, &cd);
    char chex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&cd, chex);
    wire_digest cw = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    cw.hash = chex;
    cw.size_bytes = cd.size;
    Build__Bazel__Remote__Execution__V2__DirectoryNode sub =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIRECTORY_NODE__INIT;
    sub.name = "sub";
    sub.digest = &cw;
    Build__Bazel__Remote__Execution__V2__DirectoryNode *rd[1] = {&sub};
    Build__Bazel__Remote__Execution__V2__Directory root =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__DIRECTORY__INIT;
    root.n_files = 1;
    root.files = ra;
    root.n_directories = 1;
    root.directories = rd;
    /* The root Directory as its own blob (root_directory_digest). */
    size_t rlen = build__bazel__remote__execution__v2__directory__get_packed_size(&root);
    uint8_t *rbuf = malloc(rlen + 1);
    build__bazel__remote__execution__v2__directory__pack(&root, rbuf);
    set_blob(f, ROOT_DIR, rbuf, rlen);
    Build__Bazel__Remote__Execution__V2__Directory *children[1] = {&child};
    Build__Bazel__Remote__Execution__V2__Tree tree =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__TREE__INIT;
    tree.root = &root;
    tree.n_children = 1;
    tree.children = children;
    size_t tlen = build__bazel__remote__execution__v2__tree__get_packed_size(&tree);
    uint8_t *tbuf = malloc(tlen + 1);
    build__bazel__remote__execution__v2__tree__pack(&tree, tbuf);
    set_blob(f, TREE, tbuf, tlen);
    free(tbuf);
    free(rbuf);
    free(cbuf);
}

static void make_result(fixture *f)
{
    Build__Bazel__Remote__Execution__V2__OutputFile fi =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__OUTPUT_FILE__INIT;
    f->file = fi;
    f->file.path = "out/bin";
    f->file.digest = &f->w[OUT_FILE];
    f->files[0] = &f->file;
    Build__Bazel__Remote__Execution__V2__OutputDirectory di =
        BUILD__BAZEL__REMOTE__EXECUTION__V2__OUTPUT_DIRECTORY__INIT;
    f->odir = di;
    f->odir.path = "out/dir";
    f->odir.tree_digest = &f->w[TREE];
    f->odir.root_directory_digest = &f->w[ROOT_DIR];
    f->odirs[0] = &f->odir;
    action_result ai = BUILD__BAZEL__REMOTE__EXECUTION__V2__ACTION_RESULT__INIT;
    f->ar = ai;
    f->ar.n_output_files = 1;
    f->ar.output_files = f->files;
    f->ar.n_output_directories = 1;
    f->ar.output_directories = f->odirs;
    f->ar.stdout_digest = &f->w[STDOUT];
    f->ar.stderr_digest = &f->w[STDERR];
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/lc-test-complete.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    lc_err err = {0};
    if (lc_store_open(f->dir, NULL, &f->s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        free(f);
        return -1;
    }
    set_blob(f, OUT_FILE, "a binary", 8);
    set_blob(f, STDOUT, "built\n", 6);
    set_blob(f, STDERR, "warning: x\n", 11);
    set_blob(f, ROOT_FILE, "file a", 6);
    set_blob(f, CHILD_FILE, "file sub/b", 10);
    make_tree(f, false);
    make_result(f);
    for (int k = 0; k < N_KINDS; k++)
        put(f, k);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lc_store_close(&f->s);
    lc_fs_rm_rf(f->dir);
    for (int k = 0; k < N_KINDS; k++)
        free(f->data[k]);
    free(f);
    return 0;
}

static bool listed(const lc_complete_needs *n, const lc_digest *d)
{
    for (size_t i = 0; i < n->n; i++)
        if (lc_digest_equal(&n->v[i], d))
            return true;
    return false;
}

static void test_needs_every_kind(void **state)
{
    fixture *f = *state;
    lc_complete_needs n = {0};
    lc_err err = {0};
    assert_int_equal(lc_complete_needs_of(&f->ar, lc_complete_fetch_store, f->s, &n, &err), 0);
    assert_int_equal(n.n, N_KINDS);
    uint64_t bytes = 0;
    for (int k = 0; k < N_KINDS; k++) {
        if (!listed(&n, &f->d[k]))
            fail_msg("the %s is not listed", kind_names[k]);
        bytes += f->len[k];
    }
    assert_int_equal(n.bytes, bytes);
    /* Without a fetch the Tree's files are not known. */
    assert_int_equal(lc_complete_needs_of(&f->ar, NULL, NULL, &n, &err), 0);
    assert_int_equal(n.n, N_KINDS - 2);
    assert_false(listed(&n, &f->d[ROOT_FILE]));
    assert_false(listed(&n, &f->d[CHILD_FILE]));
    /* Duplicates and the empty blob are left out. */
    f->w[STDERR] = f->w[STDOUT];
    wire_digest empty = BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;
    char ehex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&lc_digest_empty, ehex);
    empty.hash = ehex;
    f->file.digest = &empty;
    assert_int_equal(lc_complete_needs_of(&f->ar, lc_complete_fetch_store, f->s, &n, &err), 0);
    assert_int_equal(n.n, N_KINDS - 2);
    lc_complete_needs_clear(&n);
    to_wire(f, STDERR);
    f->file.digest = &f->w[OUT_FILE];
}

/* Each kind in turn missing: incomplete, naming that blob; back: complete. */
static void test_missing_blob_of_each_kind(void **state)
{
    fixture *f = *state;
    lc_complete_report rep;
    lc_err err = {0};
    assert_int_equal(lc_complete_check(f->s, &f->ar, &rep, &err), 1);
    assert_int_equal(rep.needed, N_KINDS);
    assert_int_equal(rep.missing, 0);
    for (int k = 0; k < N_KINDS; k++) {
        del(f, k);
        int rc = lc_complete_check(f->s, &f->ar, &rep, &err);
        if (rc != 0 || rep.missing != 1 || !lc_digest_equal(&rep.first, &f->d[k]))
            fail_msg("%s missing: check %d, %zu missing", kind_names[k], rc, rep.missing);
        assert_int_equal(lc_complete_check_quiet(f->s, &f->ar, &rep, NULL, &err), 0);
        assert_true(lc_digest_equal(&rep.first, &f->d[k]));
        put(f, k);
        assert_int_equal(lc_complete_check(f->s, &f->ar, &rep, &err), 1);
    }
}

static void test_unreadable_trees(void **state)
{
    fixture *f = *state;
    lc_complete_report rep;
    lc_complete_needs n = {0};
    lc_err err = {0};
    /* Not a Tree message. */
    lc_digest good_tree = f->d[TREE];
    set_blob(f, TREE, "\xff\xff\xff\xff", 4);
    put(f, TREE);
    assert_int_equal(lc_complete_needs_of(&f->ar, lc_complete_fetch_store, f->s, &n, &err),
                     -LC_FAILED_PRECONDITION);
    assert_true(lc_digest_equal(&n.bad_tree, &f->d[TREE]));
    assert_int_equal(lc_complete_check(f->s, &f->ar, &rep, &err), 0);
    assert_true(lc_digest_equal(&rep.first, &f->d[TREE]));
    /* A Tree naming a malformed file digest. */
    make_tree(f, true);
    put(f, TREE);
    put(f, ROOT_DIR);
    assert_int_equal(lc_complete_check(f->s, &f->ar, &rep, &err), 0);
    assert_true(lc_digest_equal(&rep.first, &f->d[TREE]));
    /* An absent Tree: its digest is listed, its files unknown. */
    make_tree(f, false);
    assert_true(lc_digest_equal(&f->d[TREE], &good_tree));
    del(f, TREE);
    assert_int_equal(lc_complete_needs_of(&f->ar, lc_complete_fetch_store, f->s, &n, &err), 0);
    assert_int_equal(n.trees_absent, 1);
    assert_true(listed(&n, &f->d[TREE]));
    assert_int_equal(lc_complete_check(f->s, &f->ar, &rep, &err), 0);
    lc_complete_needs_clear(&n);
    put(f, TREE);
    assert_int_equal(lc_complete_check(f->s, &f->ar, &rep, &err), 1);
}

static void test_invalid_results(void **state)
{
    fixture *f = *state;
    lc_complete_needs n = {0};
    lc_err err = {0};
    f->file.path = "";
    assert_int_equal(lc_complete_needs_of(&f->ar, NULL, NULL, &n, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "output_files[0] has no path"));
    f->file.path = "out/bin";
    f->odir.tree_digest = NULL;
    assert_int_equal(lc_complete_needs_of(&f->ar, NULL, NULL, &n, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "output_directories[0].tree_digest"));
    f->odir.tree_digest = &f->w[TREE];
    f->w[STDOUT].size_bytes = -1;
    assert_int_equal(lc_complete_needs_of(&f->ar, NULL, NULL, &n, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "stdout_digest"));
    f->w[STDOUT].size_bytes = f->d[STDOUT].size;
    lc_complete_needs_clear(&n);
}

/* The quiet check reads Trees and presence without recording accesses:
 * eviction checking an entry must not keep its blobs alive. */
static void test_quiet_records_nothing(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint64_t flushed = 0;
    int64_t now = (int64_t)time(NULL) + 100000;
    assert_int_equal(lc_store_access_flush(f->s, now, &flushed, &err), 0);
    assert_int_equal(lc_store_blob_touch(f->s, f->d, N_KINDS, now, &err), 0);
    int64_t newest = 0;
    assert_int_equal(lc_complete_check_quiet(f->s, &f->ar, NULL, &newest, &err), 1);
    assert_int_equal(newest, now); /* the newest access among the blobs */
    assert_int_equal(lc_store_access_flush(f->s, now + 10, &flushed, &err), 0);
    assert_int_equal(flushed, 0);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(lc_store_blob_peek(f->s, &f->d[TREE], &data, &len, &err), 0);
    assert_int_equal(len, f->len[TREE]);
    assert_memory_equal(data, f->data[TREE], len);
    free(data);
    assert_int_equal(lc_store_access_flush(f->s, now + 20, &flushed, &err), 0);
    assert_int_equal(flushed, 0);
    /* The serving check does record them (a hit keeps its blobs). */
    assert_int_equal(lc_complete_check(f->s, &f->ar, NULL, &err), 1);
    assert_int_equal(lc_store_access_flush(f->s, now + 30, &flushed, &err), 0);
    assert_int_equal(flushed, N_KINDS);
}

static void stored_entry(fixture *f, uint8_t **out, size_t *len)
{
    size_t n = build__bazel__remote__execution__v2__action_result__get_packed_size(&f->ar);
    uint8_t *arb = malloc(n + 1);
    build__bazel__remote__execution__v2__action_result__pack(&f->ar, arb);
    Layercache__V1__StoredActionResult st = LAYERCACHE__V1__STORED_ACTION_RESULT__INIT;
    st.action_result.data = arb;
    st.action_result.len = n;
    st.created_unix = (int64_t)time(NULL);
    *len = layercache__v1__stored_action_result__get_packed_size(&st);
    *out = malloc(*len + 1);
    layercache__v1__stored_action_result__pack(&st, *out);
    free(arb);
}

/* Eviction drops entries (trusted and untrusted) whose Tree lost a file. */
static void test_eviction_drops_incomplete(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *v = NULL;
    size_t len = 0;
    stored_entry(f, &v, &len);
    lc_digest ka, kb;
    lc_digest_of("action a", 8, &ka);
    lc_digest_of("action b", 8, &kb);
    assert_int_equal(lc_store_ac_put(f->s, "", &ka, v, len, &err), 0);
    assert_int_equal(lc_store_ac_untrusted_put(f->s, "", &kb, "pr-1", v, len, &err), 0);
    free(v);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 2);
    int64_t now = (int64_t)time(NULL);
    lc_evict_options o = {.max_age = 10 * 365 * 86400};
    lc_evict_report rep;
    assert_int_equal(lc_evict_pass(f->s, NULL, &o, now, NULL, &rep, &err), 0);
    assert_int_equal(rep.ac_entries, 0); /* complete and recent: kept */
    assert_int_equal(rep.ac_scanned, 2);
    del(f, CHILD_FILE);
    assert_int_equal(lc_evict_pass(f->s, NULL, &o, now, NULL, &rep, &err), 0);
    assert_int_equal(rep.ac_entries, 2);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 0);
    uint8_t *got = NULL;
    assert_int_equal(lc_store_ac_get(f->s, "", &ka, &got, &len, &err), -LC_NOT_FOUND);
    assert_int_equal(lc_store_ac_untrusted_get(f->s, "", &kb, "pr-1", &got, &len, &err),
                     -LC_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_needs_every_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_blob_of_each_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_trees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quiet_records_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_drops_incomplete, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
