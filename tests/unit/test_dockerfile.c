/* test_dockerfile.c - Dockerfile parser, expansion and plan tests, plus the
 * golden corpus under tests/dockerfiles/ (valid/NAME.Dockerfile ->
 * NAME.golden: AST dump + plan dump; invalid/NAME.Dockerfile -> NAME.error:
 * the exact message). LC_UPDATE_GOLDEN=1 rewrites the expected files.
 * A corpus file may carry "# lc-test-target: NAME" and
 * "# lc-test-build-arg: K=V" lines for the plan. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/dockerfile/expand.h"

/* ---- expansion ------------------------------------------------------------ */

static const lc_df_var VARS[] = {
    {"A", "apple"},       {"E", ""}, {"P", "/usr/local/bin:/usr/bin"}, {"S", "a b  c"},
    {"F", "file.tar.gz"},
};

static char *ex(const char *w, int flags)
{
    lc_df_varlist vl = {VARS, sizeof(VARS) / sizeof(VARS[0])};
    char *out = NULL;
    lc_err err = {0};
    int rc = lc_df_expand_word(w, '\\', flags, lc_df_lookup_vars, &vl, &out, &err);
    if (rc) {
        char *m = malloc(strlen(err.msg) + 8);
        sprintf(m, "ERR: %s", err.msg);
        return m;
    }
    return out;
}

static void expect(const char *w, int flags, const char *want)
{
    char *got = ex(w, flags);
    if (strcmp(got, want) != 0)
        fail_msg("expand(%s): got [%s] want [%s]", w, got, want);
    free(got);
}

static void test_expand_basic(void **state)
{
    (void)state;
    expect("$A", 0, "apple");
    expect("${A}", 0, "apple");
    expect("x${A}y", 0, "xappley");
    expect("$A-$A", 0, "apple-apple");
    expect("$UNSET", 0, "");
    expect("${UNSET}", 0, "");
    expect("$", 0, "$");
    expect("a$", 0, "a$");
    expect("$1", 0, "");
    expect("\\$A", 0, "$A");
    expect("'$A'", 0, "$A");
    expect("\"$A\"", 0, "apple");
    expect("\"'$A'\"", 0, "'apple'");
    expect("'\"$A\"'", 0, "\"$A\"");
    expect("a\\ b", 0, "a b");
    expect("\"a\\\"b\"", 0, "a\"b");
    expect("\"a\\nb\"", 0, "a\\nb");
    expect("\\", 0, "");
    expect("$UNSET", LC_DF_EXPAND_KEEP_UNSET, "$UNSET");
    expect("${UNSET:-x}", LC_DF_EXPAND_KEEP_UNSET, "${UNSET:-x}");
    expect("'q'", LC_DF_EXPAND_RAW_QUOTES, "'q'");
    expect("a\\b", LC_DF_EXPAND_RAW_ESCAPES, "a\\b");
}

static void test_expand_modifiers(void **state)
{
    (void)state;
    expect("${A:-x}", 0, "apple");
    expect("${E:-x}", 0, "x");
    expect("${E-x}", 0, "");
    expect("${U-x}", 0, "x");
    expect("${U:-$A}", 0, "apple");
    expect("${U:-${E:-deep}}", 0, "deep");
    expect("${A:+x}", 0, "x");
    expect("${E:+x}", 0, "");
    expect("${E+x}", 0, "x");
    expect("${U+x}", 0, "");
    expect("${A:?}", 0, "apple");
    expect("${U:?}", 0, "ERR: failed to process \"${U:?}\": U: is not allowed to be unset");
    expect("${E:?need E}", 0, "ERR: failed to process \"${E:?need E}\": E: need E");
    expect("${E?}", 0, "");
    expect("${F#*.}", 0, "tar.gz");
    expect("${F##*.}", 0, "gz");
    expect("${F%.*}", 0, "file.tar");
    expect("${F%%.*}", 0, "file");
    expect("${F/tar/zip}", 0, "file.zip.gz");
    expect("${P//usr/opt}", 0, "/opt/local/bin:/opt/bin");
    expect("${F/?ile/x}", 0, "x.tar.gz");
    expect("${A:-a b}", 0, "apple");
    expect("${U:-'a}'}", 0, "a}");
}

static void test_expand_errors(void **state)
{
    (void)state;
    expect("${A", 0, "ERR: failed to process \"${A\": syntax error: missing '}'");
    expect("${", 0, "ERR: failed to process \"${\": syntax error: missing '}'");
    expect("${}", 0, "ERR: failed to process \"${}\": syntax error: bad substitution");
    expect("${:x}", 0, "ERR: failed to process \"${:x}\": syntax error: bad substitution");
    expect("${A:=x}", 0,
           "ERR: failed to process \"${A:=x}\": unsupported modifier (:=) in substitution");
    expect("${A!}", 0,
           "ERR: failed to process \"${A!}\": unsupported modifier (!) in substitution");
    expect("${A:-x", 0, "ERR: failed to process \"${A:-x\": syntax error: missing '}'");
    expect("'abc", 0,
           "ERR: failed to process \"'abc\": unexpected end of statement while looking for "
           "matching single-quote");
    expect("\"abc", 0,
           "ERR: failed to process \"\"abc\": unexpected end of statement while looking for "
           "matching double-quote");
    expect("${F/x}", 0, "ERR: failed to process \"${F/x}\": syntax error: missing '/' in ${}");
}

static void test_expand_words(void **state)
{
    (void)state;
    lc_df_varlist vl = {VARS, sizeof(VARS) / sizeof(VARS[0])};
    lc_strlist l = {0};
    lc_err err = {0};
    assert_int_equal(
        lc_df_expand_words("x $S 'y z' \"$S\"", '\\', 0, lc_df_lookup_vars, &vl, &l, &err), 0);
    assert_int_equal(l.len, 6);
    assert_string_equal(l.items[0], "x");
    assert_string_equal(l.items[1], "a");
    assert_string_equal(l.items[3], "c");
    assert_string_equal(l.items[4], "y z");
    assert_string_equal(l.items[5], "a b  c");
    lc_strlist_clear(&l);
    /* backtick escape */
    char *out = NULL;
    assert_int_equal(lc_df_expand_word("a`$A\\b", '`', 0, lc_df_lookup_vars, &vl, &out, &err), 0);
    assert_string_equal(out, "a$A\\b");
    free(out);
    assert_true(lc_df_glob_match("a*c", 3, "abbc", 4));
    assert_false(lc_df_glob_match("a?c", 3, "abbc", 4));
}

static void test_workdir_join(void **state)
{
    (void)state;
    struct {
        const char *prev, *dir, *want;
    } cases[] = {{"/", "app", "/app"},      {"/app", "src", "/app/src"}, {"/app", "/x/../y", "/y"},
                 {"/a/b", "..", "/a"},      {"/", "../..", "/"},         {"/a", "./b/", "/a/b"},
                 {"/a", "b//c/.", "/a/b/c"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *w = lc_df_workdir_join(cases[i].prev, cases[i].dir);
        assert_string_equal(w, cases[i].want);
        free(w);
    }
}

/* ---- plan semantics ------------------------------------------------------- */

static lc_df_file *parse(const char *text)
{
    lc_df_file *f = NULL;
    lc_err err = {0};
    if (lc_df_parse(text, strlen(text), "Dockerfile", &f, &err))
        fail_msg("parse: %s", err.msg);
    return f;
}

static const char *env_of(const lc_df_step *s, const char *name)
{
    for (size_t i = 0; i < s->nenv; i++)
        if (!strcmp(s->env[i].name, name))
            return s->env[i].value;
    return NULL;
}
static const char *arg_of(const lc_df_step *s, const char *name)
{
    for (size_t i = 0; i < s->nargs; i++)
        if (!strcmp(s->args[i].name, name))
            return s->args[i].value;
    return NULL;
}

static void test_arg_scoping(void **state)
{
    (void)state;
    lc_df_file *f = parse("ARG V=1\nARG BASE=alpine\nFROM $BASE:${V}\nRUN echo $V\nARG V\n"
                          "RUN echo $V\nARG W=w\nENV X=${V}-${W} V=env\nRUN true\n");
    lc_df_var ba[] = {{"V", "9"}};
    lc_df_plan_opts o = {.build_args = ba, .nbuild_args = 1};
    lc_df_plan *p = NULL;
    lc_err err = {0};
    assert_int_equal(lc_df_plan_build(f, &o, &p, &err), 0);
    const lc_df_stage_plan *sp = &p->stages[0];
    assert_string_equal(sp->base, "alpine:9");
    assert_null(arg_of(&sp->steps[0], "V")); /* global ARG not visible before re-declaration */
    assert_string_equal(arg_of(&sp->steps[2], "V"), "9");
    assert_string_equal(env_of(&sp->steps[5], "X"), "9-w");
    assert_string_equal(env_of(&sp->steps[5], "V"), "env");
    lc_df_plan_free(&p);
    assert_null(p);
    /* without the build arg: the global default */
    assert_int_equal(lc_df_plan_build(f, NULL, &p, &err), 0);
    assert_string_equal(p->stages[0].base, "alpine:1");
    assert_string_equal(arg_of(&p->stages[0].steps[2], "V"), "1");
    lc_df_plan_free(&p);
    lc_df_file_free(&f);
    assert_null(f);
}

static void test_stages_needed(void **state)
{
    (void)state;
    lc_df_file *f = parse("FROM alpine AS base\nENV P=/b\nWORKDIR /app\n"
                          "FROM base AS build\nWORKDIR src\nRUN make\n"
                          "FROM busybox AS unused\n"
                          "FROM scratch AS final\nCOPY --from=build /app/src/out /out\n"
                          "COPY --from=nginx:1 /etc/nginx /n\nCOPY --from=0 / /\n");
    lc_df_plan *p = NULL;
    lc_err err = {0};
    assert_int_equal(lc_df_plan_build(f, NULL, &p, &err), 0);
    assert_int_equal(p->target, 3);
    assert_true(p->stages[0].needed);
    assert_true(p->stages[1].needed);
    assert_false(p->stages[2].needed);
    assert_true(p->stages[3].needed);
    assert_int_equal(p->stages[1].base_stage, 0);
    assert_string_equal(p->stages[1].steps[0].workdir, "/app/src");
    assert_string_equal(env_of(&p->stages[1].steps[1], "P"), "/b");
    assert_int_equal(p->stages[3].steps[0].copy_from_stage, 1);
    assert_int_equal(p->stages[3].steps[1].copy_from_stage, -1);
    assert_string_equal(p->stages[3].steps[1].copy_from_image, "nginx:1");
    assert_int_equal(p->stages[3].steps[2].copy_from_stage, 0);
    lc_df_plan_free(&p);
    lc_df_plan_opts o = {.target = "BUILD"};
    assert_int_equal(lc_df_plan_build(f, &o, &p, &err), 0);
    assert_int_equal(p->target, 1);
    assert_false(p->stages[3].needed);
    lc_df_plan_free(&p);
    o.target = "nope";
    assert_int_equal(lc_df_plan_build(f, &o, &p, &err), -LC_NOT_FOUND);
    assert_string_equal(err.msg, "Dockerfile:1:1: target stage \"nope\" could not be found");
    lc_df_file_free(&f);
}

/* ---- golden corpus -------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, fp);
    b[got] = '\0';
    fclose(fp);
    if (len)
        *len = got;
    return b;
}

static void spill(const char *path, const char *s)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(s, fp);
    fclose(fp);
}

static const char *root_dir(void)
{
    const char *r = getenv("LC_ROOT");
    return r && *r ? r : ".";
}

/* Test directives in the corpus file: target and build args. */
static void test_opts(const char *text, lc_df_plan_opts *o, lc_df_var *ba, size_t max,
                      char store[][256])
{
    memset(o, 0, sizeof(*o));
    size_t n = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        if (len > 20 && !strncmp(l, "# lc-test-target: ", 18) && n < max) {
            snprintf(store[n], 256, "%.*s", (int)(len - 18), l + 18);
            o->target = store[n++];
        } else if (len > 22 && !strncmp(l, "# lc-test-build-arg: ", 21) && n < max) {
            snprintf(store[n], 256, "%.*s", (int)(len - 21), l + 21);
            char *eq = strchr(store[n], '=');
            if (eq) {
                *eq = '\0';
                ba[o->nbuild_args].name = store[n];
                ba[o->nbuild_args++].value = eq + 1;
            }
            n++;
        }
    }
    o->build_args = ba;
}

typedef struct buf {
    char *p;
    size_t len;
} buf;
static void bputs(buf *b, const char *s)
{
    size_t n = strlen(s);
    b->p = realloc(b->p, b->len + n + 1);
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}
static void bprintf(buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    bputs(b, tmp);
}

static void dump_plan(buf *b, const lc_df_plan *p)
{
    bprintf(b, "plan target=%d\n", p->target);
    for (size_t i = 0; i < p->nstages; i++) {
        const lc_df_stage_plan *sp = &p->stages[i];
        bprintf(b, "stage %zu needed=%d base=\"%s\" base_stage=%d platform=%s\n", i, sp->needed,
                sp->base, sp->base_stage, sp->platform ? sp->platform : "-");
        for (size_t k = 0; k < sp->nsteps; k++) {
            const lc_df_step *st = &sp->steps[k];
            bprintf(b, "  %s", lc_df_kind_name(st->instr->kind));
            for (size_t j = 0; j < st->nflags; j++)
                bprintf(b, " --%s=%s", st->flags[j].name,
                        st->flags[j].value ? st->flags[j].value : "");
            for (size_t j = 0; j < st->nwords; j++)
                bprintf(b, " [%s]", st->words[j]);
            for (size_t j = 0; j < st->nkvs; j++)
                bprintf(b, " {%s=%s}", st->kvs[j].key,
                        st->kvs[j].value ? st->kvs[j].value : "<unset>");
            bputs(b, "\n    scope");
            for (size_t j = 0; j < st->nenv; j++)
                bprintf(b, " env:%s=%s", st->env[j].name, st->env[j].value);
            for (size_t j = 0; j < st->nargs; j++)
                bprintf(b, " arg:%s=%s", st->args[j].name, st->args[j].value);
            bprintf(b, " workdir=%s user=%s shell=%s", st->workdir, st->user ? st->user : "-",
                    st->shell[0]);
            if (st->copy_from_stage >= 0)
                bprintf(b, " from_stage=%d", st->copy_from_stage);
            if (st->copy_from_image)
                bprintf(b, " from_image=%s", st->copy_from_image);
            bputs(b, "\n");
        }
    }
}

/* Prints the first differing line so a failure reads like a diff. */
static void report_diff(const char *name, const char *want, const char *got)
{
    int line = 1;
    const char *w = want, *g = got;
    while (*w && *g) {
        const char *we = strchr(w, '\n'), *ge = strchr(g, '\n');
        size_t wl = we ? (size_t)(we - w) : strlen(w), gl = ge ? (size_t)(ge - g) : strlen(g);
        if (wl != gl || memcmp(w, g, wl)) {
            fprintf(stderr, "%s: line %d differs\n- %.*s\n+ %.*s\n", name, line, (int)wl, w,
                    (int)gl, g);
            return;
        }
        w += wl + (we ? 1 : 0);
        g += gl + (ge ? 1 : 0);
        line++;
    }
    fprintf(stderr, "%s: differs at line %d (one side ends)\n- %s\n+ %s\n", name, line, w, g);
}

static int run_dir(const char *kind)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tests/dockerfiles/%s", root_dir(), kind);
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s (set LC_ROOT)", dir);
    bool update = getenv("LC_UPDATE_GOLDEN") && !strcmp(getenv("LC_UPDATE_GOLDEN"), "1");
    bool valid = !strcmp(kind, "valid");
    int count = 0, failures = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 12 || strcmp(de->d_name + nl - 11, ".Dockerfile"))
            continue;
        count++;
        char path[8192], exp[8192], name[512];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        snprintf(name, sizeof(name), "%s", de->d_name);
        snprintf(exp, sizeof(exp), "%s/%.*s.%s", dir, (int)(nl - 11), de->d_name,
                 valid ? "golden" : "error");
        size_t len;
        char *text = slurp(path, &len);
        lc_df_file *f = NULL;
        lc_df_plan *p = NULL;
        lc_err err = {0};
        buf got = {0};
        lc_df_plan_opts o;
        lc_df_var ba[16];
        char store[16][256];
        test_opts(text, &o, ba, 16, store);
        int rc = lc_df_parse(text, len, name, &f, &err);
        if (rc == 0) {
            char *dump = lc_df_dump(f);
            rc = lc_df_plan_build(f, &o, &p, &err);
            if (rc == 0) {
                bputs(&got, dump);
                dump_plan(&got, p);
            }
            free(dump);
        }
        if (rc != 0)
            bprintf(&got, "%s\n", err.msg);
        if (!got.p)
            bputs(&got, "");
        if ((rc == 0) != valid) {
            fprintf(stderr, "%s: expected %s, got %s\n", name, valid ? "success" : "an error",
                    got.p);
            failures++;
        } else if (update) {
            spill(exp, got.p);
        } else {
            char *want = slurp(exp, NULL);
            if (!want) {
                fprintf(stderr, "%s: missing %s (LC_UPDATE_GOLDEN=1 writes it)\n", name, exp);
                failures++;
            } else if (strcmp(want, got.p)) {
                report_diff(name, want, got.p);
                failures++;
            }
            free(want);
        }
        free(got.p);
        lc_df_plan_free(&p);
        lc_df_file_free(&f);
        free(text);
    }
    closedir(d);
    fprintf(stderr, "%s corpus: %d files, %d failures\n", kind, count, failures);
    assert_true(count >= (valid ? 60 : 25));
    return failures;
}

static void test_golden_valid(void **state)
{
    (void)state;
    assert_int_equal(run_dir("valid"), 0);
}

static void test_golden_invalid(void **state)
{
    (void)state;
    assert_int_equal(run_dir("invalid"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_basic),   cmocka_unit_test(test_expand_modifiers),
        cmocka_unit_test(test_expand_errors),  cmocka_unit_test(test_expand_words),
        cmocka_unit_test(test_workdir_join),   cmocka_unit_test(test_arg_scoping),
        cmocka_unit_test(test_stages_needed),  cmocka_unit_test(test_golden_valid),
        cmocka_unit_test(test_golden_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
