/* test_auth.c - tokens file parsing, role checks, reloads under load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache-server/auth.h"

#define GET_AC "/build.bazel.remote.execution.v2.ActionCache/GetActionResult"
#define UPDATE_AC "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult"
#define PURGE "/layercache.v1.Admin/Purge"

static const char tokens[] = "# team tokens\n"
                             "\n"
                             "r-secret-1 read laptop\r\n"
                             "  w-secret-2\twrite   CI runner 7  \n"
                             "a-secret-3 admin\n"
                             "   # indented comment\n";

/* Metadata with one authorization value (or none for value NULL). */
typedef struct md_one {
    grpc_metadata m[2];
    grpc_metadata_array a;
} md_one;

static const grpc_metadata_array *md_with(md_one *o, const char *value)
{
    memset(o, 0, sizeof(*o));
    o->m[0].key = grpc_slice_from_static_string("user-agent");
    o->m[0].value = grpc_slice_from_static_string("test");
    o->a.metadata = o->m;
    o->a.count = 1;
    o->a.capacity = 2;
    if (value != NULL) {
        o->m[1].key = grpc_slice_from_static_string("authorization");
        o->m[1].value = grpc_slice_from_static_string(value);
        o->a.count = 2;
    }
    return &o->a;
}

static int check(lc_auth *a, const char *value, const char *method, lc_auth_id *id, lc_err *err)
{
    md_one o;
    lc_err_clear(err);
    return lc_auth_check(a, md_with(&o, value), lc_auth_method_role(method), method, id, err);
}

static void test_parse_and_roles(void **state)
{
    (void)state;
    lc_auth *a = NULL;
    lc_err err = {0};
    assert_int_equal(lc_auth_open_text(tokens, strlen(tokens), "t", false, &a, &err), 0);
    assert_int_equal(lc_auth_count(a), 3);
    lc_auth_id id;

    /* Each role against a read, a write and an admin method. */
    struct {
        const char *value;
        int get, update, purge;
        const char *name;
    } cases[] = {
        {"Bearer r-secret-1", 0, -LC_PERMISSION_DENIED, -LC_PERMISSION_DENIED, "laptop"},
        {"Bearer w-secret-2", 0, 0, -LC_PERMISSION_DENIED, "CI runner 7"},
        {"bearer   a-secret-3  ", 0, 0, 0, ""},
        {NULL, -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, ""},
        {"Bearer nope", -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, ""},
        {"Bearer r-secret-", -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, ""},
        {"Basic r-secret-1", -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, ""},
        {"Bearer ", -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, -LC_UNAUTHENTICATED, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(check(a, cases[i].value, GET_AC, &id, &err), cases[i].get);
        if (cases[i].get == 0)
            assert_string_equal(id.name, cases[i].name);
        assert_int_equal(check(a, cases[i].value, UPDATE_AC, &id, &err), cases[i].update);
        if (cases[i].update == -LC_PERMISSION_DENIED) {
            /* Names the role needed and the token's name, never the token. */
            assert_non_null(strstr(err.msg, "'write'"));
            assert_non_null(strstr(err.msg, "laptop"));
            assert_null(strstr(err.msg, "secret"));
        }
        assert_int_equal(check(a, cases[i].value, PURGE, &id, &err), cases[i].purge);
        if (cases[i].purge == -LC_PERMISSION_DENIED)
            assert_non_null(strstr(err.msg, "'admin'"));
        assert_null(strstr(err.msg, "secret"));
        assert_null(strstr(err.msg, "nope"));
    }
    lc_auth_free(&a);
    assert_null(a);

    /* No access control: everything, as admin, no name. */
    assert_int_equal(check(NULL, NULL, PURGE, &id, &err), 0);
    assert_int_equal(id.role, LC_ROLE_ADMIN);
    assert_string_equal(id.name, "");
}

static void test_anonymous_read(void **state)
{
    (void)state;
    lc_auth *a = NULL;
    lc_err err = {0};
    lc_auth_id id;
    assert_int_equal(lc_auth_open_text(tokens, strlen(tokens), "t", true, &a, &err), 0);
    assert_int_equal(check(a, NULL, GET_AC, &id, &err), 0);
    assert_int_equal(id.role, LC_ROLE_READ);
    assert_int_equal(check(a, NULL, UPDATE_AC, &id, &err), -LC_UNAUTHENTICATED);
    assert_non_null(strstr(err.msg, "anonymous"));
    /* A wrong token is still wrong, even where anonymous reads pass. */
    assert_int_equal(check(a, "Bearer nope", GET_AC, &id, &err), -LC_UNAUTHENTICATED);
    lc_auth_free(&a);
}

static void test_method_roles(void **state)
{
    (void)state;
    const char *reads[] = {
        "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
        GET_AC,
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree",
        "/google.bytestream.ByteStream/Read",
        "/google.bytestream.ByteStream/QueryWriteStatus",
    };
    const char *writes[] = {
        UPDATE_AC,
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
        "/google.bytestream.ByteStream/Write",
    };
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
        assert_int_equal(lc_auth_method_role(reads[i]), LC_ROLE_READ);
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        assert_int_equal(lc_auth_method_role(writes[i]), LC_ROLE_WRITE);
    assert_int_equal(lc_auth_method_role("/layercache.v1.Admin/GetStats"), LC_ROLE_ADMIN);
    assert_int_equal(lc_auth_method_role(PURGE), LC_ROLE_ADMIN);
    /* Health probes need no token, even with access control on. */
    assert_int_equal(lc_auth_method_role("/grpc.health.v1.Health/Check"), LC_ROLE_NONE);
    lc_auth *a = NULL;
    lc_err err = {0};
    lc_auth_id id;
    assert_int_equal(lc_auth_open_text(tokens, strlen(tokens), "t", false, &a, &err), 0);
    assert_int_equal(check(a, NULL, "/grpc.health.v1.Health/Check", &id, &err), 0);
    lc_auth_free(&a);
    /* Unknown methods fail closed. */
    assert_int_equal(lc_auth_method_role("/x.Y/Z"), LC_ROLE_ADMIN);
    assert_int_equal(lc_auth_method_role("/google.bytestream.ByteStream/Reads"), LC_ROLE_ADMIN);
}

static void test_bad_files(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *expect; /* in the message */
    } bad[] = {
        {"tok-aaaa reader x\n", "line 1: unknown role 'reader'"},
        {"# c\n\ntok-aaaa\n", "line 3: missing role"},
        {"tok-aaaa read\ntok-bbbb write\ntok-aaaa admin\n", "line 3: the same token as line 1"},
        {"tok-\x01 read\n", "line 1"},
        {"tok-aaaa read na\x7fme\n", "printable"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lc_auth *a = NULL;
        lc_err err = {0};
        assert_int_equal(
            lc_auth_open_text(bad[i].text, strlen(bad[i].text), "tokens.txt", false, &a, &err),
            -LC_INVALID_ARGUMENT);
        assert_null(a);
        if (strstr(err.msg, bad[i].expect) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].expect);
        assert_null(strstr(err.msg, "tok-"));
    }
    /* An empty file is valid: nobody gets in (unless anonymous read). */
    lc_auth *a = NULL;
    lc_err err = {0};
    lc_auth_id id;
    assert_int_equal(lc_auth_open_text("", 0, "t", false, &a, &err), 0);
    assert_int_equal(lc_auth_count(a), 0);
    assert_int_equal(check(a, "Bearer x", GET_AC, &id, &err), -LC_UNAUTHENTICATED);
    lc_auth_free(&a);
}

static void test_reload_keeps_old_on_error(void **state)
{
    (void)state;
    char path[] = "/tmp/lc-test-auth-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "one-token read\n", 15), 15);
    close(fd);
    lc_auth *a = NULL;
    lc_err err = {0};
    lc_auth_id id;
    assert_int_equal(lc_auth_open(path, false, &a, &err), 0);
    assert_int_equal(check(a, "Bearer one-token", GET_AC, &id, &err), 0);
    assert_int_equal(check(a, "Bearer two-token", GET_AC, &id, &err), -LC_UNAUTHENTICATED);

    FILE *f = fopen(path, "w");
    fputs("two-token write\n", f);
    fclose(f);
    assert_int_equal(lc_auth_reload(a, &err), 0);
    assert_int_equal(check(a, "Bearer one-token", GET_AC, &id, &err), -LC_UNAUTHENTICATED);
    assert_int_equal(check(a, "Bearer two-token", UPDATE_AC, &id, &err), 0);

    f = fopen(path, "w");
    fputs("three-token superuser\n", f);
    fclose(f);
    assert_int_equal(lc_auth_reload(a, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "superuser"));
    assert_int_equal(check(a, "Bearer two-token", UPDATE_AC, &id, &err), 0);

    unlink(path);
    assert_true(lc_auth_reload(a, &err) < 0);
    assert_int_equal(check(a, "Bearer two-token", UPDATE_AC, &id, &err), 0);
    lc_auth_free(&a);
    assert_int_equal(lc_auth_open(path, false, &a, &err), -LC_NOT_FOUND);
    assert_null(a);
}

/* Checks on several threads while the table is swapped thousands of
 * times: a token in every table always passes, one in every other table
 * passes or fails but never crashes (ASan would see a freed table). */
struct hammer {
    lc_auth *a;
    atomic_bool stop;
    atomic_long checks, failures;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    lc_err err;
    lc_auth_id id;
    while (!atomic_load(&h->stop)) {
        if (check(h->a, "Bearer stable-token", UPDATE_AC, &id, &err) != 0 ||
            strcmp(id.name, "stable") != 0)
            atomic_fetch_add(&h->failures, 1);
        int rc = check(h->a, "Bearer flip-token", GET_AC, &id, &err);
        if (rc != 0 && rc != -LC_UNAUTHENTICATED)
            atomic_fetch_add(&h->failures, 1);
        atomic_fetch_add(&h->checks, 2);
    }
    return NULL;
}

static void test_reload_under_load(void **state)
{
    (void)state;
    static const char t1[] = "stable-token write stable\nflip-token read\n";
    static const char t2[] = "x-token admin\nstable-token write stable\n";
    struct hammer h = {0};
    lc_err err = {0};
    assert_int_equal(lc_auth_open_text(t1, strlen(t1), "t1", false, &h.a, &err), 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h), 0);
    /* The reloads must overlap the checks: on a loaded machine the threads
     * may not have run yet, or 3000 reloads may end before they do. */
    while (atomic_load(&h.checks) == 0)
        sched_yield();
    long before = atomic_load(&h.checks);
    for (int i = 0; i < 3000 || atomic_load(&h.checks) - before < 3000; i++) {
        const char *t = i % 2 ? t1 : t2;
        assert_int_equal(lc_auth_load_text(h.a, t, strlen(t), "t", &err), 0);
    }
    atomic_store(&h.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&h.failures), 0);
    lc_auth_free(&h.a);
}

/* untrusted: the calls of write (its AC writes are kept apart by trust.h),
 * nothing of admin; it must be named. */
static void test_untrusted_role(void **state)
{
    (void)state;
    static const char text[] = "u-secret-4 untrusted pr-1234\nw-secret-5 write ci\n";
    lc_auth *a = NULL;
    lc_err err = {0};
    lc_auth_id id;
    assert_int_equal(lc_auth_open_text(text, strlen(text), "t", false, &a, &err), 0);
    assert_int_equal(check(a, "Bearer u-secret-4", GET_AC, &id, &err), 0);
    assert_int_equal(id.role, LC_ROLE_UNTRUSTED);
    assert_string_equal(id.name, "pr-1234");
    assert_int_equal(check(a, "Bearer u-secret-4", UPDATE_AC, &id, &err), 0);
    assert_int_equal(check(a, "Bearer u-secret-4", "/google.bytestream.ByteStream/Write", &id, &err),
                     0);
    assert_int_equal(check(a, "Bearer u-secret-4", PURGE, &id, &err), -LC_PERMISSION_DENIED);
    assert_non_null(strstr(err.msg, "'untrusted'"));
    assert_non_null(strstr(err.msg, "pr-1234"));
    /* A read token is told untrusted would do for writes. */
    static const char rtext[] = "r-secret-1 read laptop\n";
    assert_int_equal(lc_auth_load_text(a, rtext, strlen(rtext), "t", &err), 0);
    assert_int_equal(check(a, "Bearer r-secret-1", UPDATE_AC, &id, &err), -LC_PERMISSION_DENIED);
    assert_non_null(strstr(err.msg, "'write' role (or 'untrusted')"));
    lc_auth_free(&a);

    /* Who may do what. */
    assert_true(lc_auth_allows(LC_ROLE_UNTRUSTED, LC_ROLE_READ));
    assert_true(lc_auth_allows(LC_ROLE_UNTRUSTED, LC_ROLE_WRITE));
    assert_false(lc_auth_allows(LC_ROLE_UNTRUSTED, LC_ROLE_ADMIN));
    assert_false(lc_auth_allows(LC_ROLE_READ, LC_ROLE_WRITE));
    assert_true(lc_auth_allows(LC_ROLE_ADMIN, LC_ROLE_WRITE));
    assert_false(lc_auth_allows(LC_ROLE_NONE, LC_ROLE_READ));
    /* A plain comparison with write leaves untrusted out (capabilities, etc. fail closed). */
    assert_true(LC_ROLE_UNTRUSTED < LC_ROLE_WRITE);
    assert_string_equal(lc_auth_role_name(LC_ROLE_UNTRUSTED), "untrusted");

    /* Nameless untrusted tokens are refused. */
    static const char nameless[] = "ok-secret read x\nu-secret-9 untrusted\n";
    assert_int_equal(lc_auth_open_text(nameless, strlen(nameless), "t", false, &a, &err),
                     -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "line 2"));
    assert_non_null(strstr(err.msg, "needs a name"));
    assert_null(strstr(err.msg, "u-secret"));
}

/* Lookups by token and by its hash (the HTTP side's sessions). */
static void test_lookup(void **state)
{
    (void)state;
    lc_auth *a = NULL;
    lc_err err = {0};
    lc_auth_id id;
    uint8_t hash[32];
    assert_int_equal(lc_auth_open_text(tokens, strlen(tokens), "t", true, &a, &err), 0);
    assert_true(lc_auth_anonymous_read(a));
    assert_int_equal(lc_auth_lookup(a, "w-secret-2", 10, &id, hash, &err), 0);
    assert_int_equal(id.role, LC_ROLE_WRITE);
    assert_string_equal(id.name, "CI runner 7");
    memset(&id, 0, sizeof(id));
    assert_int_equal(lc_auth_lookup_hash(a, hash, &id, &err), 0);
    assert_int_equal(id.role, LC_ROLE_WRITE);
    assert_int_equal(lc_auth_lookup(a, "w-secret-", 9, &id, NULL, &err), -LC_UNAUTHENTICATED);
    /* Removed by a reload: its hash no longer authenticates. */
    static const char fewer[] = "a-secret-3 admin\n";
    assert_int_equal(lc_auth_load_text(a, fewer, strlen(fewer), "t", &err), 0);
    assert_int_equal(lc_auth_lookup_hash(a, hash, &id, &err), -LC_UNAUTHENTICATED);
    lc_auth_free(&a);
    assert_false(lc_auth_anonymous_read(NULL));
    assert_int_equal(lc_auth_lookup(NULL, "x", 1, &id, NULL, &err), 0);
    assert_int_equal(id.role, LC_ROLE_ADMIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untrusted_role),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_parse_and_roles),
        cmocka_unit_test(test_anonymous_read),
        cmocka_unit_test(test_method_roles),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_reload_keeps_old_on_error),
        cmocka_unit_test(test_reload_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
