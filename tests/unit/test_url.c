/* test_url.c - ADD <url> sources: the file name BuildKit gives a URL,
 * --checksum parsing, and a download from a one-shot HTTP server on
 * 127.0.0.1 (content digest, Last-Modified, checksum mismatch, 404). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/context/url.h"
#include "build-worker/layer/fsutil.h"

static void expect_name(const char *url, const char *want)
{
    char *got = lc_url_name(url);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%s: name '%s', want '%s'", url, got, want);
    free(got);
}

static void test_names(void **state)
{
    (void)state;
    expect_name("https://example.org/dl/tool-1.2.tar.gz", "tool-1.2.tar.gz");
    expect_name("https://example.org/dl/tool.tgz?sig=abc#frag", "tool.tgz");
    expect_name("https://example.org/dl/dir/", "dir"); /* path.Base drops the slash */
    expect_name("https://example.org/", "__unnamed__");
    expect_name("https://example.org", "__unnamed__");
    expect_name("http://h:8080/a/..", "__unnamed__");
    assert_true(lc_url_is_http("http://x/y"));
    assert_true(lc_url_is_http("https://x/y"));
    assert_false(lc_url_is_http("git://x/y"));
    assert_false(lc_url_is_http("./http://x"));
}

static void test_checksum(void **state)
{
    (void)state;
    lc_digest d;
    lc_err err = {0};
    assert_int_equal(
        lc_url_parse_checksum(
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", &d, &err),
        0);
    assert_int_equal(lc_url_parse_checksum("md5:abc", &d, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "--checksum"));
    assert_int_equal(lc_url_parse_checksum("sha256:xyz", &d, &err), -LC_INVALID_ARGUMENT);
}

/* A server that answers one request with a fixed response, then exits. */
typedef struct server {
    int fd;
    int port;
    const char *response;
    pthread_t thread;
} server;

static void *serve(void *arg)
{
    server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c >= 0) {
        char buf[4096];
        ssize_t n = read(c, buf, sizeof(buf)); /* the request; one read is enough here */
        (void)n;
        ssize_t w = write(c, s->response, strlen(s->response));
        (void)w;
        close(c);
    }
    return NULL;
}

static void start(server *s, const char *response)
{
    s->response = response;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 1), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void stop(server *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

static void test_fetch(void **state)
{
    (void)state;
    char dir[] = "/tmp/lc-url.XXXXXX";
    assert_non_null(mkdtemp(dir));
    server s;
    start(&s, "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n"
              "Last-Modified: Wed, 03 Feb 2021 04:05:06 GMT\r\n\r\nhello\n");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/files/hello.txt", s.port);
    lc_url_file f;
    lc_err err = {0};
    if (lc_url_fetch(url, dir, NULL, &f, &err) != 0)
        fail_msg("fetch: %s", err.msg);
    stop(&s);
    assert_string_equal(f.name, "hello.txt");
    assert_int_equal(f.mtime, 1612325106);
    lc_digest want;
    lc_digest_of("hello\n", 6, &want);
    assert_true(memcmp(want.hash, f.digest.hash, LC_HASH_LEN) == 0);
    assert_int_equal(f.digest.size, 6);
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(lc_fs_read_file(f.path, 1024, &body, &len, NULL), 0);
    assert_string_equal(body, "hello\n");
    free(body);
    char *path = strdup(f.path);
    lc_url_file_clear(&f);
    assert_int_equal(access(path, F_OK), -1); /* clear removes the download */
    free(path);

    /* A --checksum that does not match: DATA_LOSS naming both, no file left. */
    start(&s, "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", s.port);
    lc_digest other;
    lc_digest_of("other", 5, &other);
    assert_int_equal(lc_url_fetch(url, dir, &other, &f, &err), -LC_DATA_LOSS);
    stop(&s);
    assert_non_null(strstr(err.msg, "checksum mismatch"));
    assert_null(f.path);

    start(&s, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/missing", s.port);
    assert_int_equal(lc_url_fetch(url, dir, NULL, &f, &err), -LC_NOT_FOUND);
    stop(&s);
    assert_non_null(strstr(err.msg, "HTTP status 404"));
    assert_non_null(strstr(err.msg, "/missing"));
    /* Nothing left behind by the failures. */
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_fetch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
