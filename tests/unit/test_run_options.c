/* test_run_options.c - what a RUN step is told to use, before it runs:
 * RUN --mount/--network/--security parsing with BuildKit's defaults
 * (dockerfile/runflags.c), --add-host values (runtime/network.c) and
 * --secret / --ssh specs (orchestrate/secrets.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/dockerfile/runflags.h"
#include "build-worker/orchestrate/secrets.h"
#include "build-worker/runtime/network.h"

/* Parses "FROM scratch\n<line>" and the run flags of its (last) RUN. */
static int parse_run(const char *text, lc_df_run *out, lc_err *err)
{
    lc_df_file *f = NULL;
    lc_df_plan *p = NULL;
    int rc = lc_df_parse(text, strlen(text), "Dockerfile", &f, err);
    if (rc == 0)
        rc = lc_df_plan_build(f, NULL, &p, err);
    if (rc == 0) {
        const lc_df_stage_plan *sp = &p->stages[p->nstages - 1];
        rc = lc_df_run_parse(&sp->steps[sp->nsteps - 1], out, err);
    }
    lc_df_plan_free(&p);
    lc_df_file_free(&f);
    return rc;
}

static void test_mount_defaults(void **state)
{
    (void)state;
    lc_df_run r;
    lc_err err = {0};
    assert_int_equal(parse_run("FROM scratch\nWORKDIR /app\nARG T=/tgt\n"
                               "RUN --mount=type=cache,target=.cache "
                               "--mount=type=secret,id=npmrc "
                               "--mount=type=secret,target=/etc/tok "
                               "--mount=type=secret,id=env1,env=TOKEN "
                               "--mount=type=ssh --mount=type=ssh,id=gh "
                               "--mount=target=${T},source=../x,rw "
                               "--mount=type=tmpfs,target=/t,size=64m "
                               "--network=none true\n",
                               &r, &err),
                     0);
    assert_int_equal(r.nmounts, 8);
    assert_int_equal(r.network, LC_DF_NET_NONE);
    const lc_df_mount *m = r.mounts;
    /* cache: relative target against WORKDIR, id = target, writable */
    assert_int_equal(m[0].type, LC_DF_MOUNT_CACHE);
    assert_string_equal(m[0].target, "/app/.cache");
    assert_string_equal(m[0].id, "/app/.cache");
    assert_false(m[0].readonly);
    assert_int_equal(m[0].sharing, LC_DF_SHARING_SHARED);
    assert_int_equal(m[0].mode, -1);
    /* secrets: target /run/secrets/<id>, id from the target, required */
    assert_string_equal(m[1].id, "npmrc");
    assert_string_equal(m[1].target, "/run/secrets/npmrc");
    assert_true(m[1].required);
    assert_true(m[1].readonly);
    assert_string_equal(m[2].id, "tok");
    assert_string_equal(m[2].target, "/etc/tok");
    assert_null(m[3].target); /* env= only */
    assert_string_equal(m[3].env, "TOKEN");
    /* ssh: default id, numbered targets */
    assert_string_equal(m[4].id, "default");
    assert_string_equal(m[4].target, "/run/buildkit/ssh_agent.0");
    assert_string_equal(m[5].id, "gh");
    assert_string_equal(m[5].target, "/run/buildkit/ssh_agent.1");
    /* bind (the default type): expanded target, source cleaned inside the
     * context, rw */
    assert_int_equal(m[6].type, LC_DF_MOUNT_BIND);
    assert_string_equal(m[6].target, "/tgt");
    assert_string_equal(m[6].source, "x");
    assert_null(m[6].from);
    assert_false(m[6].readonly);
    assert_int_equal(m[7].size, 64u << 20);
    lc_df_run_clear(&r);

    assert_int_equal(parse_run("FROM scratch\nRUN --mount=type=secret,id=a,required=false,mode=0440,"
                               "uid=1,gid=2 --network=default --security=sandbox true\n",
                               &r, &err),
                     0);
    assert_false(r.mounts[0].required);
    assert_int_equal(r.mounts[0].mode, 0440);
    assert_int_equal(r.mounts[0].uid, 1);
    assert_int_equal(r.mounts[0].gid, 2);
    assert_int_equal(r.network, LC_DF_NET_UNSET);
    lc_df_run_clear(&r);
}

static void expect_error_at(const char *run, const char *pos, const char *want)
{
    char text[512];
    snprintf(text, sizeof(text), "FROM scratch\nRUN %s true\n", run);
    lc_df_run r;
    lc_err err = {0};
    assert_int_not_equal(parse_run(text, &r, &err), 0);
    if (strstr(err.msg, want) == NULL || strncmp(err.msg, pos, strlen(pos)) != 0)
        fail_msg("RUN %s: got [%s], want %s ...%s", run, err.msg, pos, want);
}

/* Errors name the flag's position: RUN's first flag is at 2:5. */
static void expect_error(const char *run, const char *want)
{
    expect_error_at(run, "Dockerfile:2:5: ", want);
}

static void test_mount_errors(void **state)
{
    (void)state;
    expect_error("--mount=type=cache,target=/x,size=1m", "unexpected key 'size'");
    expect_error("--mount=type=nfs,target=/x", "unsupported mount type \"nfs\"");
    expect_error("--mount=type=bind,target=/x,tagret=/y", "did you mean target?");
    expect_error("--mount=type=bind,target=/x,ro=perhaps", "invalid value for ro: perhaps");
    expect_error("--mount=type=bind,target=/x,mode=0644", "mode not allowed for \"bind\"");
    expect_error("--mount=type=cache,target=/x,mode=999", "invalid value 999 for mode");
    expect_error("--mount=type=cache,target=/x,uid=-1", "invalid value -1 for uid");
    expect_error("--mount=type=tmpfs,target=/x,sharing=locked", "invalid cache sharing");
    expect_error("--mount=type=secret,id=a,source=b", "both source and id can't be set");
    expect_error("--mount=type=secret", "one of id, source, target required");
    expect_error("--mount=type=secret,id=a,from=s", "secret mount should not have a from");
    expect_error("--mount=type=tmpfs,target=/x,source=y", "source= is not an option of tmpfs");
    expect_error("--mount=type=bind,target=/x,env=A", "env= is only for secret mounts");
    expect_error("--mount=type=cache", "cache mount needs a target");
    expect_error("--mount=type=bind,target=/", "invalid mount target");
    expect_error_at("--mount=type=tmpfs,target=/x --mount=type=cache,target=/x/",
                    "Dockerfile:2:34: ", "target /x is already mounted");
    expect_error("--mount=type=secret,id=a,rw", "rw is not supported for secret mounts");
    expect_error("--network=bridge", "invalid network mode \"bridge\"");
    expect_error("--security=insecure", "--security=insecure is not supported");
    expect_error("--security=other", "\"other\" is not valid");
}

static void test_add_host(void **state)
{
    (void)state;
    char *name, *ip;
    lc_err err = {0};
    assert_int_equal(lc_net_parse_host("db:10.0.0.5", &name, &ip, &err), 0);
    assert_string_equal(name, "db");
    assert_string_equal(ip, "10.0.0.5");
    free(name);
    free(ip);
    assert_int_equal(lc_net_parse_host("v6=[fd00::1]", &name, &ip, &err), 0);
    assert_string_equal(name, "v6");
    assert_string_equal(ip, "fd00::1");
    free(name);
    free(ip);
    assert_int_equal(lc_net_parse_host("v6:fd00::2", &name, &ip, &err), 0);
    assert_string_equal(ip, "fd00::2");
    free(name);
    free(ip);
    assert_int_not_equal(lc_net_parse_host("nohost", &name, &ip, &err), 0);
    assert_int_not_equal(lc_net_parse_host(":1.2.3.4", &name, &ip, &err), 0);
    assert_int_not_equal(lc_net_parse_host("a:999.1.1.1", &name, &ip, &err), 0);
    assert_non_null(strstr(err.msg, "not an IPv4 or IPv6 address"));
    assert_int_not_equal(lc_net_parse_host("a:host-gateway", &name, &ip, &err), 0);
    assert_non_null(strstr(err.msg, "host-gateway is not supported"));
}

static void test_secret_specs(void **state)
{
    (void)state;
    char dir[] = "/tmp/lc-test-secrets.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[64], sock[80];
    snprintf(file, sizeof(file), "%s/s", dir);
    FILE *f = fopen(file, "w");
    fputs("file-value", f);
    fclose(f);
    /* a listening unix socket stands for an agent */
    snprintf(sock, sizeof(sock), "%s/agent", dir);
    int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("LC_TEST_RUN_OPT", "env-value", 1);

    lc_strlist sec = {0}, ssh = {0};
    char spec[128];
    snprintf(spec, sizeof(spec), "id=f,src=%s", file);
    lc_strlist_push(&sec, spec);
    lc_strlist_push(&sec, "id=e,env=LC_TEST_RUN_OPT");
    lc_strlist_push(&sec, "id=LC_TEST_RUN_OPT"); /* neither: the variable of that name */
    lc_strlist_push(&sec, "type=env,id=t,src=LC_TEST_RUN_OPT");
    snprintf(spec, sizeof(spec), "gh=%s", sock);
    lc_strlist_push(&ssh, spec);
    lc_secrets *s = NULL;
    lc_err err = {0};
    assert_int_equal(lc_secrets_open(&sec, &ssh, &s, &err), 0);
    char *v;
    size_t len;
    bool found;
    const char *ids[] = {"f", "e", "LC_TEST_RUN_OPT", "t"};
    const char *want[] = {"file-value", "env-value", "env-value", "env-value"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(lc_secrets_get(s, ids[i], &v, &len, &found, &err), 0);
        assert_true(found);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(v, want[i], len);
        lc_secrets_wipe(&v, len);
        assert_null(v);
    }
    assert_int_equal(lc_secrets_get(s, "nope", &v, &len, &found, &err), 0);
    assert_false(found);
    assert_string_equal(lc_secrets_ssh(s, "gh"), sock);
    assert_null(lc_secrets_ssh(s, "default"));
    lc_secrets_free(&s);
    lc_strlist_clear(&sec);
    lc_strlist_clear(&ssh);

    /* Errors name the flag and the file, never a value. */
    const char *bad[] = {"src=/x", "id=a,src=/nonexistent/file", "id=a,foo=b", "id=a,type=vault",
                         "id=a,src=/etc,env=X", "id"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lc_strlist_push(&sec, bad[i]);
        assert_int_not_equal(lc_secrets_open(&sec, NULL, &s, &err), 0);
        assert_null(s);
        assert_non_null(strstr(err.msg, "--secret") ? err.msg : strstr(err.msg, "secret"));
        lc_strlist_clear(&sec);
    }
    lc_strlist_push(&ssh, "gh=/etc/passwd"); /* a key file, not an agent */
    assert_int_not_equal(lc_secrets_open(NULL, &ssh, &s, &err), 0);
    assert_non_null(strstr(err.msg, "not a unix socket"));
    lc_strlist_clear(&ssh);

    close(sfd);
    unlink(sock);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mount_defaults),
        cmocka_unit_test(test_mount_errors),
        cmocka_unit_test(test_add_host),
        cmocka_unit_test(test_secret_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
