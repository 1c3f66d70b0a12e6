/* test_keys.c - the step key engine through its C API: encoding, the
 * Command-like description, COPY --from paths, resolvers, platform. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/keys/encode.h"
#include "build-worker/keys/keys.h"
#include "build-worker/layer/fsutil.h"

static char ctxdir[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", ctxdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    strcpy(ctxdir, "/tmp/lc-test-keys.XXXXXX");
    if (mkdtemp(ctxdir) == NULL)
        return -1;
    put("a.txt", "aaa");
    put("b.txt", "bb");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return lc_fs_rm_rf(ctxdir) == 0 ? 0 : -1;
}

typedef struct resolver_log {
    int calls;
    char last[64];
} resolver_log;

static int resolve(void *ctx, const char *image, const char *platform, lc_digest *out, lc_err *err)
{
    resolver_log *log = ctx;
    log->calls++;
    snprintf(log->last, sizeof(log->last), "%s@%s", image, platform);
    if (strcmp(image, "local/base:1") != 0)
        return lc_err_set(err, LC_NOT_FOUND, "no such image");
    lc_digest_of(image, strlen(image), out);
    return 0;
}

static lc_keys *compute(const char *dockerfile, const lc_keys_opts *extra, lc_df_file **file,
                        int want_rc, lc_err *err)
{
    lc_err local = {0};
    if (err == NULL)
        err = &local;
    assert_int_equal(lc_df_parse(dockerfile, strlen(dockerfile), "Dockerfile", file, err), 0);
    lc_keys_opts o = {0};
    if (extra != NULL)
        o = *extra;
    o.context_dir = ctxdir;
    if (o.platform == NULL)
        o.platform = "linux/amd64";
    lc_keys *k = NULL;
    int rc = lc_keys_compute(*file, &o, &k, err);
    if (rc != want_rc)
        fail_msg("compute: rc %d (%s), want %d", rc, err->msg, want_rc);
    return k;
}

static void test_encoding_is_unambiguous(void **state)
{
    (void)state;
    lc_keyenc e;
    lc_digest a, b, c;
    assert_int_equal(lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION), 0);
    lc_keyenc_str(&e, "x", "ab");
    lc_keyenc_str(&e, "x", "c");
    lc_keyenc_finish(&e, &a);
    assert_int_equal(lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION), 0);
    lc_keyenc_str(&e, "x", "a");
    lc_keyenc_str(&e, "x", "bc");
    lc_keyenc_finish(&e, &b);
    assert_false(lc_digest_equal(&a, &b));
    /* Same items, same digest; another version string, another digest. */
    assert_int_equal(lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION), 0);
    lc_keyenc_str(&e, "x", "ab");
    lc_keyenc_str(&e, "x", "c");
    lc_keyenc_finish(&e, &c);
    assert_true(lc_digest_equal(&a, &c));
    assert_int_equal(lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION "-other"), 0);
    lc_keyenc_str(&e, "x", "ab");
    lc_keyenc_str(&e, "x", "c");
    lc_keyenc_finish(&e, &c);
    assert_false(lc_digest_equal(&a, &c));
    /* A string and bytes with the same content differ (typed items). */
    assert_int_equal(lc_keyenc_init(&e, LC_KEY_ENCODING_VERSION), 0);
    lc_keyenc_bytes(&e, "x", "ab", 2);
    lc_keyenc_str(&e, "x", "c");
    lc_keyenc_finish(&e, &c);
    assert_false(lc_digest_equal(&a, &c));
}

static void test_scratch_from_and_run_command(void **state)
{
    (void)state;
    lc_df_file *f = NULL;
    lc_keys *k = compute("FROM scratch\nENV B=2 A=1\nARG Z=9\nUSER app\nWORKDIR /w\n"
                         "SHELL [\"/bin/bash\", \"-c\"]\nRUN echo $A\nRUN [\"/bin/true\", \"x\"]\n",
                         NULL, &f, 0, NULL);
    assert_int_equal(k->nsteps, 8);
    lc_digest scratch;
    lc_keys_scratch_digest(&scratch);
    assert_int_equal(k->stages[0].base_stage, -1);
    assert_true(lc_digest_equal(&k->stages[0].base_digest, &scratch));
    assert_string_equal(k->steps[0].instruction, "FROM scratch");
    assert_string_equal(k->steps[1].normalized, "ENV B=2 A=1");
    assert_string_equal(k->steps[2].normalized, "ARG Z=9");
    const lc_key_step *run = &k->steps[6];
    assert_int_equal(run->kind, LC_DF_RUN);
    assert_int_equal(run->argv.len, 3);
    assert_string_equal(run->argv.items[0], "/bin/bash");
    assert_string_equal(run->argv.items[2], "echo $A");
    /* Env sorted by name; ARGs in scope included; PATH as BuildKit gives
     * every stage whose base has none. */
    assert_int_equal(run->env.len, 4);
    assert_string_equal(run->env.items[0], "A=1");
    assert_string_equal(run->env.items[1], "B=2");
    assert_string_equal(run->env.items[2],
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_string_equal(run->env.items[3], "Z=9");
    assert_string_equal(run->workdir, "/w");
    assert_string_equal(run->user, "app");
    assert_string_equal(k->steps[7].argv.items[0], "/bin/true");
    /* Every key distinct, all "sha256:" + 64 hex. */
    for (size_t i = 0; i < k->nsteps; i++) {
        assert_int_equal(strlen(k->steps[i].key_str), LC_DIGEST_OCI_LEN);
        for (size_t j = 0; j < i; j++)
            assert_false(lc_digest_equal(&k->steps[i].key, &k->steps[j].key));
    }
    /* The same input twice gives the same keys. */
    lc_df_file *f2 = NULL;
    lc_keys *k2 =
        compute("FROM scratch\nENV B=2 A=1\nARG Z=9\nUSER app\nWORKDIR /w\n"
                "SHELL [\"/bin/bash\", \"-c\"]\nRUN echo $A\nRUN [\"/bin/true\", \"x\"]\n",
                NULL, &f2, 0, NULL);
    for (size_t i = 0; i < k->nsteps; i++)
        assert_true(lc_digest_equal(&k->steps[i].key, &k2->steps[i].key));
    lc_keys_free(&k2);
    lc_df_file_free(&f2);
    lc_keys_free(&k);
    assert_null(k);
    lc_df_file_free(&f);
}

static void test_copy_from_stage_and_image(void **state)
{
    (void)state;
    resolver_log log = {0};
    lc_keys_opts o = {.resolve = resolve, .resolve_ctx = &log};
    lc_df_file *f = NULL;
    lc_keys *k = compute("FROM local/base:1 AS b\nCOPY a.txt b.txt /in/\n"
                         "FROM scratch\nCOPY --from=b /in/a.txt /in/b.txt /out/\n"
                         "COPY --from=local/base:1 /etc/x /x\n",
                         &o, &f, 0, NULL);
    assert_int_equal(log.calls, 2);
    assert_string_equal(log.last, "local/base:1@linux/amd64");
    assert_int_equal(k->nsteps, 5);
    const lc_key_step *copy = &k->steps[1];
    assert_int_equal(copy->files, 2);
    assert_int_equal(copy->bytes, 5);
    assert_non_null(copy->selection);
    const lc_key_step *cf = &k->steps[3];
    assert_int_equal(cf->from_stage, 0);
    assert_int_equal(cf->from_paths.len, 2);
    assert_string_equal(cf->from_paths.items[1], "/in/b.txt");
    assert_true(lc_digest_equal(&cf->from_digest, &k->steps[1].key));
    assert_null(strstr(cf->normalized, "--from")); /* keyed by the stage's key, not its name */
    const lc_key_step *ci = &k->steps[4];
    assert_int_equal(ci->from_stage, -1);
    assert_string_equal(ci->from_image, "local/base:1");
    lc_keys_free(&k);
    lc_df_file_free(&f);

    /* Unknown to the resolver and no override: NOT_FOUND naming the flag. */
    lc_err err = {0};
    k = compute("FROM other:2\nRUN x\n", &o, &f, -LC_NOT_FOUND, &err);
    assert_null(k);
    assert_non_null(strstr(err.msg, "--base-digest other:2=sha256:"));
    lc_df_file_free(&f);

    /* An override wins over the resolver; a pinned digest needs neither. */
    lc_keys_base base = {.image = "other:2"};
    lc_digest_of("x", 1, &base.digest);
    o.bases = &base;
    o.nbases = 1;
    k = compute("FROM other:2\nRUN x\n", &o, &f, 0, NULL);
    assert_true(lc_digest_equal(&k->stages[0].base_digest, &base.digest));
    lc_keys_free(&k);
    lc_df_file_free(&f);
    k = compute(
        "FROM img@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n", &o,
        &f, 0, NULL);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&k->stages[0].base_digest, hex);
    assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    lc_keys_free(&k);
    lc_df_file_free(&f);
}

static void test_platform_and_target(void **state)
{
    (void)state;
    const char *df = "FROM scratch AS a\nRUN one\nFROM scratch AS b\nRUN two\n";
    lc_df_file *f = NULL;
    lc_keys_opts o = {.target = "a"};
    lc_keys *k = compute(df, &o, &f, 0, NULL);
    assert_int_equal(k->nsteps, 2); /* stage b is not needed */
    assert_false(k->stages[1].needed);
    lc_digest amd = k->steps[1].key;
    lc_keys_free(&k);
    lc_df_file_free(&f);
    o.platform = "linux/arm64";
    k = compute(df, &o, &f, 0, NULL);
    assert_false(lc_digest_equal(&amd, &k->steps[1].key));
    assert_string_equal(k->steps[1].platform, "linux/arm64");
    lc_keys_free(&k);
    lc_df_file_free(&f);
    assert_non_null(strchr(lc_keys_host_platform(), '/'));
}

static void test_heredoc_and_remote_sources(void **state)
{
    (void)state;
    lc_df_file *f = NULL;
    const char *df = "FROM scratch\nARG V=1\nCOPY <<EOF /etc/x\nv=$V\nEOF\n"
                     "COPY <<'EOF' /etc/y\nv=$V\nEOF\n"
                     "ADD --checksum=sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
                     " https://example.invalid/f /f\n";
    lc_keys *k = compute(df, NULL, &f, 0, NULL);
    assert_int_equal(k->steps[2].files, 1);
    /* The expanded body is what the key sees; a quoted delimiter keeps $V. */
    assert_string_equal(k->steps[2].step->heredocs[0], "v=1\n");
    assert_string_equal(k->steps[3].step->heredocs[0], "v=$V\n");
    /* --checksum: keyed by it, nothing fetched (example.invalid never
     * resolves), named after the URL path. */
    assert_int_equal(k->steps[4].nurls, 1);
    assert_null(k->steps[4].urls[0].path);
    assert_string_equal(k->steps[4].urls[0].name, "f");
    lc_digest h1 = k->steps[2].key, q1 = k->steps[3].key, r1 = k->steps[4].key;
    lc_keys_free(&k);
    lc_df_file_free(&f);
    lc_df_var v = {"V", "2"};
    lc_keys_opts o = {.build_args = &v, .nbuild_args = 1};
    k = compute(df, &o, &f, 0, NULL);
    /* The expanding heredoc sees V; the quoted one does not (its key still
     * chains from the first, so compare the inputs' own fields instead). */
    assert_false(lc_digest_equal(&h1, &k->steps[2].key));
    assert_string_equal(k->steps[3].step->heredocs[0], "v=$V\n");
    (void)q1;
    (void)r1;
    lc_keys_free(&k);
    lc_df_file_free(&f);

    /* Another checksum, another key; the same one, the same key. */
    const char *a = "FROM scratch\nADD --checksum=sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 http://h/f /f\n";
    const char *b = "FROM scratch\nADD --checksum=sha256:3cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 http://h/f /f\n";
    k = compute(a, NULL, &f, 0, NULL);
    lc_digest ka = k->steps[1].key;
    lc_keys_free(&k);
    lc_df_file_free(&f);
    k = compute(a, NULL, &f, 0, NULL);
    assert_true(lc_digest_equal(&ka, &k->steps[1].key));
    lc_keys_free(&k);
    lc_df_file_free(&f);
    k = compute(b, NULL, &f, 0, NULL);
    assert_false(lc_digest_equal(&ka, &k->steps[1].key));
    lc_keys_free(&k);
    lc_df_file_free(&f);

    /* COPY takes no URL; --checksum needs exactly one http source. */
    lc_err err = {0};
    k = compute("FROM scratch\nCOPY http://h/f /f\n", NULL, &f, -LC_INVALID_ARGUMENT, &err);
    assert_non_null(strstr(err.msg, "URL for COPY"));
    lc_df_file_free(&f);
    k = compute("FROM scratch\nADD --checksum=sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 a.txt /f\n",
                NULL, &f, -LC_INVALID_ARGUMENT, &err);
    assert_non_null(strstr(err.msg, "--checksum"));
    lc_df_file_free(&f);

    /* git sources are refused by name, never built as an empty step. */
    const char *git[] = {"git@github.com:o/r.git", "git://h/r", "https://h/o/r.git#main"};
    for (size_t i = 0; i < 3; i++) {
        char d[128];
        snprintf(d, sizeof(d), "FROM scratch\nADD %s /src\n", git[i]);
        k = compute(d, NULL, &f, -LC_UNIMPLEMENTED, &err);
        assert_non_null(strstr(err.msg, ":2:1: ADD"));
        assert_non_null(strstr(err.msg, "git sources are not supported"));
        lc_df_file_free(&f);
    }
}

/* The base image's Env as a resolver would give it. */
static int base_env(void *ctx, const char *image, const char *platform, lc_strlist *env)
{
    int *calls = ctx;
    (*calls)++;
    assert_string_equal(platform, "linux/amd64");
    if (strcmp(image, "local/base:1") != 0)
        return -LC_NOT_FOUND;
    lc_strlist_push(env, "PATH=/base/bin:/bin");
    lc_strlist_push(env, "LANG=C.UTF-8");
    return 0;
}

static void test_base_image_env_and_epoch(void **state)
{
    (void)state;
    resolver_log log = {0};
    int calls = 0;
    lc_keys_opts o = {.resolve = resolve,
                      .resolve_ctx = &log,
                      .image_env = base_env,
                      .image_env_ctx = &calls};
    lc_df_file *f = NULL;
    lc_keys *k = compute("FROM scratch\nENV PATH=/x:$PATH\n", &o, &f, 0, NULL);
    assert_int_equal(calls, 0); /* scratch has no config to ask for */
    assert_string_equal(k->steps[1].normalized,
                        "ENV PATH=/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    lc_keys_free(&k);
    lc_df_file_free(&f);
    const char *df = "FROM local/base:1\nENV PATH=/opt/app/bin:$PATH L=${LANG}\nRUN x\n";
    k = compute(df, &o, &f, 0, NULL);
    assert_int_equal(calls, 1);
    assert_string_equal(k->steps[1].normalized, "ENV PATH=/opt/app/bin:/base/bin:/bin L=C.UTF-8");
    /* The base's Env is part of what RUN sees, hence of its key. */
    const lc_key_step *run = &k->steps[2];
    assert_int_equal(run->env.len, 3);
    assert_string_equal(run->env.items[0], "L=C.UTF-8");
    assert_string_equal(run->env.items[1], "LANG=C.UTF-8");
    assert_string_equal(run->env.items[2], "PATH=/opt/app/bin:/base/bin:/bin");
    lc_digest plain = k->steps[2].key;
    lc_keys_free(&k);
    lc_df_file_free(&f);

    /* SOURCE_DATE_EPOCH stamps results: every key after FROM changes. */
    o.has_epoch = true;
    o.epoch = 1700000000;
    k = compute(df, &o, &f, 0, NULL);
    assert_false(lc_digest_equal(&plain, &k->steps[2].key));
    lc_digest e1 = k->steps[2].key;
    lc_keys_free(&k);
    lc_df_file_free(&f);
    o.epoch = 1700000001;
    k = compute(df, &o, &f, 0, NULL);
    assert_false(lc_digest_equal(&e1, &k->steps[2].key));
    lc_keys_free(&k);
    lc_df_file_free(&f);

    bool has;
    int64_t ep;
    lc_df_var v = {"SOURCE_DATE_EPOCH", "42"};
    lc_keys_epoch(&v, 1, &has, &ep);
    assert_true(has);
    assert_int_equal(ep, 42);
    v.value = "not-a-number";
    lc_keys_epoch(&v, 1, &has, &ep);
    assert_false(has);
}

static void test_workdir_owner_in_key(void **state)
{
    (void)state;
    lc_df_file *f = NULL;
    /* WORKDIR creates its directory as the USER: another USER, another
     * result. */
    lc_keys *k = compute("FROM scratch\nUSER 0\nWORKDIR /w\n", NULL, &f, 0, NULL);
    lc_digest root_w = k->steps[2].input;
    lc_keys_free(&k);
    lc_df_file_free(&f);
    k = compute("FROM scratch\nUSER 0\nUSER 1000\nWORKDIR /w\n", NULL, &f, 0, NULL);
    assert_false(lc_digest_equal(&root_w, &k->steps[3].input));
    lc_keys_free(&k);
    lc_df_file_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_is_unambiguous),
        cmocka_unit_test_setup_teardown(test_scratch_from_and_run_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_from_stage_and_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_platform_and_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heredoc_and_remote_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base_image_env_and_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workdir_owner_in_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
