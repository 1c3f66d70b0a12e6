/* test_platform.c - platform names as containerd normalizes them, and the
 * binfmt_misc check of whether a platform's binaries can run here (against
 * handler files written the way the kernel shows them). */
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

#include "build-worker/layer/fsutil.h"
#include "build-worker/oci/platform.h"

static void norm(const char *in, const char *want)
{
    lc_platform p;
    lc_err err = {0};
    char buf[64];
    assert_int_equal(lc_platform_parse(in, &p, &err), 0);
    lc_platform_format(&p, buf, sizeof(buf));
    if (strcmp(buf, want) != 0)
        fail_msg("%s normalized to %s, want %s", in, buf, want);
}

static void test_normalize(void **state)
{
    (void)state;
    norm("linux/amd64", "linux/amd64");
    norm("linux/x86_64", "linux/amd64");
    norm("amd64", "linux/amd64");
    norm("linux/aarch64", "linux/arm64");
    norm("linux/arm64/v8", "linux/arm64");
    norm("Linux/ARM64", "linux/arm64");
    norm("linux/arm", "linux/arm/v7");
    norm("linux/arm/v6", "linux/arm/v6");
    norm("linux/arm/7", "linux/arm/v7");
    norm("linux/armhf", "linux/arm/v7");
    norm("linux/armel", "linux/arm/v6");
    norm("linux/i386", "linux/386");
    norm("linux/amd64/v3", "linux/amd64/v3");
    norm("linux/ppc64le", "linux/ppc64le");
    lc_platform p;
    lc_err err = {0};
    assert_int_equal(lc_platform_parse("windows/amd64", &p, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "only linux"));
    assert_int_equal(lc_platform_parse("linux/vax", &p, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "unknown architecture 'vax'"));
    assert_int_equal(lc_platform_parse("linux//amd64", &p, &err), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_platform_parse("a/b/c/d", &p, &err), -LC_INVALID_ARGUMENT);
    lc_platform a, b;
    lc_platform_parse("arm64", &a, NULL);
    lc_platform_parse("linux/aarch64/v8", &b, NULL);
    assert_true(lc_platform_equal(&a, &b));
    lc_platform_parse("linux/arm/v6", &b, NULL);
    assert_false(lc_platform_equal(&a, &b));
}

static char dir[64];

static void put(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/lc-binfmt.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return lc_fs_rm_rf(dir);
}

/* The kernel's view of qemu-user-static's aarch64 handler. */
#define AARCH64_MAGIC "magic 7f454c460201010000000000000000000200b700\n"
#define AARCH64_MASK "mask ffffffffffffff00fffffffffffffffffeffffff\n"

static void test_binfmt(void **state)
{
    (void)state;
    lc_platform arm64, host, riscv;
    lc_platform_parse("linux/arm64", &arm64, NULL);
    lc_platform_parse("linux/riscv64", &riscv, NULL);
    lc_platform_host(&host);
    if (strcmp(host.arch, "amd64") != 0)
        skip(); /* the handlers below emulate arm64 on amd64 */
    lc_err err = {0};
    /* Native needs nothing, even without binfmt_misc. */
    assert_int_equal(lc_platform_check_runnable(&host, dir, &err), 0);
    /* Not mounted: no status file. */
    assert_int_equal(lc_platform_check_runnable(&arm64, dir, &err), -LC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "not mounted"));
    assert_non_null(strstr(err.msg, "qemu-user-static"));
    put("status", "enabled\n");
    put("register", "");
    /* Mounted, nothing registered. */
    assert_int_equal(lc_platform_check_runnable(&arm64, dir, &err), -LC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "none is registered"));
    assert_non_null(strstr(err.msg, "qemu-aarch64.conf"));
    /* A handler without F cannot serve a container. */
    put("qemu-aarch64", "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                        "flags: PO\noffset 0\n" AARCH64_MAGIC AARCH64_MASK);
    assert_int_equal(lc_platform_check_runnable(&arm64, dir, &err), -LC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "without the F flag"));
    /* Disabled handler: as if absent. */
    put("qemu-aarch64", "disabled\ninterpreter /x\nflags: POF\noffset 0\n" AARCH64_MAGIC
                        AARCH64_MASK);
    assert_int_equal(lc_platform_check_runnable(&arm64, dir, &err), -LC_FAILED_PRECONDITION);
    /* Enabled with F: runnable; riscv64 still is not. */
    put("qemu-aarch64", "enabled\ninterpreter /x\nflags: POF\noffset 0\n" AARCH64_MAGIC
                        AARCH64_MASK);
    assert_int_equal(lc_platform_check_runnable(&arm64, dir, &err), 0);
    assert_int_equal(lc_platform_check_runnable(&riscv, dir, &err), -LC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "qemu-riscv64.conf"));
    /* binfmt_misc disabled as a whole. */
    put("status", "disabled\n");
    assert_int_equal(lc_platform_check_runnable(&arm64, dir, &err), -LC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "disabled"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test_setup_teardown(test_binfmt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
