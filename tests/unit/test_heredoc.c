/* test_heredoc.c - heredocs as BuildKit runs them: the argv of RUN
 * (lc_df_run_argv: stdin of the command, a script, a "#!" script, several
 * on one line, <<-), COPY bodies expanded unless the delimiter is quoted,
 * and the history texts of steps (lc_apply_created_by). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/orchestrate/apply.h"

typedef struct planned {
    lc_df_file *f;
    lc_df_plan *p;
} planned;

static planned plan(const char *text)
{
    planned r = {0};
    lc_err err = {0};
    if (lc_df_parse(text, strlen(text), "Dockerfile", &r.f, &err) != 0)
        fail_msg("parse: %s", err.msg);
    if (lc_df_plan_build(r.f, NULL, &r.p, &err) != 0)
        fail_msg("plan: %s", err.msg);
    return r;
}

static void unplan(planned *r)
{
    lc_df_plan_free(&r->p);
    lc_df_file_free(&r->f);
}

static const lc_df_step *step(const planned *r, size_t i)
{
    const lc_df_stage_plan *sp = &r->p->stages[r->p->nstages - 1];
    assert_true(i < sp->nsteps);
    return &sp->steps[i];
}

/* The argv of step i as one string, args separated by '|'. */
static char *argv_of(const planned *r, size_t i)
{
    lc_strlist argv = {0};
    assert_int_equal(lc_df_run_argv(step(r, i), &argv), 0);
    size_t len = 1;
    for (size_t k = 0; k < argv.len; k++)
        len += strlen(argv.items[k]) + 1;
    char *s = calloc(1, len);
    for (size_t k = 0; k < argv.len; k++) {
        if (k)
            strcat(s, "|");
        strcat(s, argv.items[k]);
    }
    lc_strlist_clear(&argv);
    return s;
}

static void expect_argv(const planned *r, size_t i, const char *want)
{
    char *got = argv_of(r, i);
    if (strcmp(got, want) != 0)
        fail_msg("step %zu argv:\n got: %s\nwant: %s", i, got, want);
    free(got);
}

static void test_run_heredoc_is_stdin(void **state)
{
    (void)state;
    /* The table row: `RUN cat <<EOF > /etc/app.conf` wrote an empty file.
     * The shell gets the command and the body, so cat reads the body. */
    planned r = plan("FROM scratch\n"
                     "RUN cat <<EOF > /etc/app.conf\nport=$PORT\nname=x\nEOF\n"
                     "RUN cat <<A > /a && cat <<'B' > /b\none\nA\n$two\nB\n"
                     "RUN <<-EOF\n\techo tab\n\tEOF\n"
                     "RUN [\"echo\", \"<<EOF\"]\n"
                     "RUN echo plain\n");
    expect_argv(&r, 0, "/bin/sh|-c|cat <<EOF > /etc/app.conf\nport=$PORT\nname=x\nEOF");
    expect_argv(&r, 1, "/bin/sh|-c|cat <<A > /a && cat <<'B' > /b\none\nA\n$two\nB");
    /* A command that is only a heredoc: the body is the script; <<- drops
     * the leading tabs. */
    expect_argv(&r, 2, "/bin/sh|-c|echo tab\n");
    expect_argv(&r, 3, "echo|<<EOF"); /* exec form: no heredoc there */
    expect_argv(&r, 4, "/bin/sh|-c|echo plain");
    assert_null(lc_df_run_script(step(&r, 0)));
    unplan(&r);
}

static void test_run_heredoc_script_and_shell(void **state)
{
    (void)state;
    planned r = plan("FROM scratch\n"
                     "RUN <<EOF\nset -e\necho one\necho two\nEOF\n"
                     "SHELL [\"/bin/bash\", \"-eu\", \"-c\"]\n"
                     "RUN <<EOF\necho in bash\nEOF\n"
                     "RUN <<'PY'\n#!/usr/bin/env python3\nprint('hi')\nPY\n");
    expect_argv(&r, 0, "/bin/sh|-c|set -e\necho one\necho two\n");
    expect_argv(&r, 2, "/bin/bash|-eu|-c|echo in bash\n");
    /* "#!": BuildKit runs the body as a file at /dev/pipes/NAME. */
    assert_string_equal(lc_df_run_script(step(&r, 3)), "PY");
    lc_strlist argv = {0};
    assert_int_equal(lc_df_run_argv(step(&r, 3), &argv), 0);
    assert_int_equal(argv.len, 6);
    assert_string_equal(argv.items[0], "/bin/sh");
    assert_non_null(strstr(argv.items[2], "/dev/pipes/"));
    assert_string_equal(argv.items[4], "#!/usr/bin/env python3\nprint('hi')\n");
    assert_string_equal(argv.items[5], "PY");
    lc_strlist_clear(&argv);
    unplan(&r);
}

static void test_copy_heredoc_expansion(void **state)
{
    (void)state;
    planned r = plan("FROM scratch\nARG NAME=world\nENV HOME=/root\n"
                     "COPY <<EOF /greet\nhello ${NAME} \"q\" 'sq' \\$lit $HOME\nEOF\n"
                     "COPY <<\"EOF\" /raw\nhello ${NAME}\nEOF\n"
                     "COPY <<-EOF /tabs\n\tx=$NAME\n\tEOF\n"
                     "RUN <<EOF\necho $NAME\nEOF\n");
    /* Variables and escapes as BuildKit's ExpandRaw; quotes stay. */
    assert_string_equal(step(&r, 2)->heredocs[0], "hello world \"q\" 'sq' $lit /root\n");
    assert_string_equal(step(&r, 3)->heredocs[0], "hello ${NAME}\n");
    assert_string_equal(step(&r, 4)->heredocs[0], "x=world\n");
    /* RUN's body is the shell's to expand. */
    assert_string_equal(step(&r, 5)->heredocs[0], "echo $NAME\n");
    unplan(&r);
}

static void expect_history(const planned *r, size_t i, const char *want)
{
    char *got = lc_apply_created_by(step(r, i));
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("step %zu history:\n got: %s\nwant: %s", i, got, want);
    free(got);
}

static void test_history_texts(void **state)
{
    (void)state;
    planned r = plan("FROM scratch\nARG V=1\nENV E=x\n"
                     "RUN make $V\n"
                     "WORKDIR app\n"
                     "COPY --chown=app:app --chmod=644 --link a.txt b/ ./\n"
                     "COPY <<EOF /etc/x\nbody\nEOF\n"
                     "CMD [\"run\", \"--fast\"]\n"
                     "ENTRYPOINT serve \"now\"\n"
                     "EXPOSE 80 53/udp\n"
                     "USER app\n"
                     "VOLUME /data /logs\n"
                     "LABEL a=b\n"
                     "RUN <<EOF\n#!/bin/sh\necho\nEOF\n");
    expect_history(&r, 0, "ARG V=1");
    expect_history(&r, 1, "ENV E=x");
    expect_history(&r, 2, "RUN |1 V=1 /bin/sh -c make $V");
    expect_history(&r, 3, "WORKDIR /app");
    expect_history(&r, 4, "COPY --chown=app:app --chmod=644 a.txt b/ ./");
    expect_history(&r, 5, "COPY <<EOF /etc/x");
    expect_history(&r, 6, "CMD [\"run\" \"--fast\"]");
    expect_history(&r, 7, "ENTRYPOINT [\"/bin/sh\" \"-c\" \"serve \\\"now\\\"\"]");
    expect_history(&r, 8, "EXPOSE [80/tcp 53/udp]");
    expect_history(&r, 9, "USER app");
    expect_history(&r, 10, "VOLUME [/data /logs]");
    expect_history(&r, 11, "LABEL a=b");
    expect_history(&r, 12, "RUN |1 V=1 /dev/pipes/EOF");
    unplan(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_heredoc_is_stdin),
        cmocka_unit_test(test_run_heredoc_script_and_shell),
        cmocka_unit_test(test_copy_heredoc_expansion),
        cmocka_unit_test(test_history_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
