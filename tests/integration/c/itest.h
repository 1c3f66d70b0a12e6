/* itest.h - helpers for the C integration tests (header only; each
 * tests/integration/c/test_*.c is one executable, built as itest_*).
 *
 * itest_server_start() runs $LC_BIN/layercache-server on 127.0.0.1:0 with a
 * fresh mkdtemp data directory and reads the port from its start line. The
 * server dies with the test (PR_SET_PDEATHSIG) and is stopped by PID at
 * exit, also when a CHECK fails; its data directory is removed. */
#ifndef LC_ITEST_H
#define LC_ITEST_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "build-worker/layer/fsutil.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* rc must be want (0 or a negative lc code); prints err on a mismatch. */
#define CHECK_RC(rc, want, err)                                                                    \
    do {                                                                                           \
        int rc_ = (rc), want_ = (want);                                                            \
        CHECK(rc_ == want_, "got %d (%s), want %d (%s); message: %s", rc_, lc_code_name(rc_),      \
              want_, lc_code_name(want_), (err)->msg);                                             \
    } while (0)

typedef struct itest_server {
    pid_t pid;
    char dir[64];
    char addr[128];   /* "127.0.0.1:PORT" */
    char target[160]; /* "grpc://127.0.0.1:PORT" */
} itest_server;

static itest_server itest_srv = {.pid = -1};

static inline double itest_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Stops the server (SIGTERM, then SIGKILL after 20 s); returns its wait
 * status, or -1 if none ran. */
static inline int itest_server_stop(void)
{
    int status = -1;
    if (itest_srv.pid > 0) {
        kill(itest_srv.pid, SIGTERM);
        double end = itest_now() + 20;
        for (;;) {
            pid_t r = waitpid(itest_srv.pid, &status, WNOHANG);
            if (r == itest_srv.pid || (r < 0 && errno != EINTR))
                break;
            if (itest_now() > end) {
                kill(itest_srv.pid, SIGKILL);
                waitpid(itest_srv.pid, &status, 0);
                break;
            }
            usleep(10000);
        }
        itest_srv.pid = -1;
    }
    if (itest_srv.dir[0] != '\0') {
        lc_fs_rm_rf(itest_srv.dir);
        itest_srv.dir[0] = '\0';
    }
    return status;
}

static inline void itest_atexit(void)
{
    itest_server_stop();
}

static inline void itest_on_signal(int sig)
{
    /* tests/run's timeout sends SIGTERM: do not leave the server behind. */
    if (itest_srv.pid > 0)
        kill(itest_srv.pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Makes the test's temporary directory (itest_srv.dir) once. */
static inline void itest_tmpdir(void)
{
    if (itest_srv.dir[0] != '\0')
        return;
    snprintf(itest_srv.dir, sizeof(itest_srv.dir), "/tmp/lc-itest.XXXXXX");
    CHECK(mkdtemp(itest_srv.dir) != NULL, "mkdtemp: %s", strerror(errno));
}

/* Starts argv (argv[0] a path) with stdout in a file of the temporary
 * directory and waits for a line containing prefix; what follows prefix
 * (up to a blank) is the address. Fills itest_srv; exits on failure. */
static inline void itest_process_start(char *const argv[], const char *prefix)
{
    itest_tmpdir();
    atexit(itest_atexit);
    signal(SIGTERM, itest_on_signal);
    signal(SIGINT, itest_on_signal);

    /* stdout goes to a file we poll: a pipe would SIGPIPE the server once
     * closed, or block it once full. */
    char outpath[128];
    snprintf(outpath, sizeof(outpath), "%s/stdout.log", itest_srv.dir);
    int outfd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(outfd >= 0, "open %s: %s", outpath, strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(outfd, STDOUT_FILENO);
        close(outfd);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    itest_srv.pid = pid;
    close(outfd);

    /* Wait for the start line; ASan builds start slowly, so allow 60 s. */
    double end = itest_now() + 60;
    for (;;) {
        char buf[4096];
        FILE *f = fopen(outpath, "r");
        int found = 0;
        while (f != NULL && fgets(buf, sizeof(buf), f) != NULL) {
            char *p = strstr(buf, prefix);
            if (p != NULL && strchr(p, '\n') != NULL) {
                p += strlen(prefix);
                p[strcspn(p, " \r\n")] = '\0';
                snprintf(itest_srv.addr, sizeof(itest_srv.addr), "%s", p);
                found = 1;
                break;
            }
        }
        if (f != NULL)
            fclose(f);
        if (found)
            break;
        int status;
        CHECK(waitpid(pid, &status, WNOHANG) == 0,
              "%s exited (wait status 0x%x) before printing its start line", argv[0], status);
        CHECK(itest_now() < end, "no start line from %s within 60 s", argv[0]);
        usleep(10000);
    }
    snprintf(itest_srv.target, sizeof(itest_srv.target), "grpc://%s", itest_srv.addr);
    fprintf(stderr, "itest: %s pid %d at %s, dir %s\n", argv[0], (int)pid, itest_srv.addr,
            itest_srv.dir);
}

/* Starts $LC_BIN/layercache-server on 127.0.0.1:0 with its data in the
 * test's temporary directory. */
static inline void itest_server_start(void)
{
    const char *bin_dir = getenv("LC_BIN");
    char bin[1024], data[128];
    snprintf(bin, sizeof(bin), "%s/layercache-server", bin_dir != NULL ? bin_dir : "bin");
    itest_tmpdir();
    snprintf(data, sizeof(data), "%s/data", itest_srv.dir);
    char *argv[] = {bin, "--listen", "127.0.0.1:0", "--data", data, NULL};
    itest_process_start(argv, "layercache-server listening grpc=");
}

/* Stops the server and requires a clean exit (0 after SIGTERM, which also
 * means no sanitizer report in an ASan build). */
static inline void itest_server_stop_clean(void)
{
    int status = itest_server_stop();
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "layercache-server did not exit cleanly on SIGTERM (wait status 0x%x)", status);
}

/* Deterministic pseudo-random bytes (xorshift64*), so failures reproduce. */
static inline void itest_fill(void *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
        }
        p[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> (8 * (i % 8)));
    }
}

#endif
