/* test_store.c - the RocksDB store: CAS, streaming reads, resumable uploads,
 * action cache, totals, and what survives closing and reopening. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <unistd.h>

#include "cache-server/store.h"
#include "cache-server/store_internal.h" /* LC_STORE__NOWAL_STREAMS */
#include "build-worker/layer/fsutil.h"

#define MiB (1u << 20)

static int count_raw_chunks(const char *dir);

typedef struct fixture {
    char dir[64];
    lc_store *s;
} fixture;

static void reopen(fixture *f)
{
    lc_err err = {0};
    lc_store_close(&f->s);
    assert_null(f->s);
    int rc = lc_store_open(f->dir, NULL, &f->s, &err);
    if (rc != 0)
        fail_msg("reopen: %s", err.msg);
}

static int teardown(void **state)
{
    fixture *f = *state;
    lc_store_close(&f->s);
    char *slash = strrchr(f->dir, '/');
    *slash = '\0';
    lc_fs_rm_rf(f->dir);
    free(f);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/lc-test-store.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    lc_err err = {0};
    /* a subdirectory, so open must create it */
    strcat(f->dir, "/db");
    *state = f;
    if (lc_store_open(f->dir, NULL, &f->s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        teardown(state);
        return -1;
    }
    return 0;
}

/* Deterministic pseudo-random bytes, different per seed. */
static uint8_t *make_data(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n + 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void read_all(lc_store *s, const lc_digest *d, int64_t off, int64_t limit, uint8_t **out,
                     size_t *outlen)
{
    lc_err err = {0};
    lc_blob_reader *r = NULL;
    int rc = lc_blob_reader_open(s, d, off, limit, &r, &err);
    if (rc != 0)
        fail_msg("reader_open: %s", err.msg);
    size_t cap = 1024, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        const uint8_t *p;
        size_t n;
        rc = lc_blob_reader_next(r, &p, &n, &err);
        if (rc != 0)
            fail_msg("reader_next: %s", err.msg);
        if (n == 0)
            break;
        assert_true(n <= LC_STORE_CHUNK);
        if (len + n > cap) {
            while (len + n > cap)
                cap *= 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, p, n);
        len += n;
    }
    lc_blob_reader_free(&r);
    assert_null(r);
    *out = buf;
    *outlen = len;
}

static void test_put_get_exists_find_missing(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *a = make_data(1000, 1), *b = make_data(3 * MiB + 17, 2);
    lc_digest da, db, dc;
    lc_digest_of(a, 1000, &da);
    lc_digest_of(b, 3 * MiB + 17, &db);
    lc_digest_of("not stored", 10, &dc);

    assert_int_equal(lc_store_blob_exists(f->s, &da, &err), 0);
    assert_int_equal(lc_store_blob_put(f->s, &da, a, 1000, &err), 0);
    assert_int_equal(lc_store_blob_put(f->s, &db, b, 3 * MiB + 17, &err), 0);
    assert_int_equal(lc_store_blob_put(f->s, &da, a, 1000, &err), 0); /* no-op */
    assert_int_equal(lc_store_blob_exists(f->s, &da, &err), 1);
    assert_int_equal(lc_store_blob_exists(f->s, &db, &err), 1);
    assert_int_equal(lc_store_blob_exists(f->s, &dc, &err), 0);

    /* same hash, other size: a different blob */
    lc_digest da_wrong = da;
    da_wrong.size = 999;
    assert_int_equal(lc_store_blob_exists(f->s, &da_wrong, &err), 0);

    lc_digest q[4] = {dc, da, lc_digest_empty, db};
    bool missing[4] = {false, true, true, true};
    assert_int_equal(lc_store_find_missing(f->s, q, 4, missing, &err), 0);
    assert_true(missing[0]);
    assert_false(missing[1]);
    assert_false(missing[2]);
    assert_false(missing[3]);

    uint8_t *got;
    size_t len;
    assert_int_equal(lc_store_blob_get(f->s, &db, &got, &len, &err), 0);
    assert_int_equal(len, 3 * MiB + 17);
    assert_memory_equal(got, b, len);
    free(got);
    assert_int_equal(lc_store_blob_get(f->s, &dc, &got, &len, &err), -LC_NOT_FOUND);
    assert_null(got);

    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 2);
    assert_int_equal(t.blob_bytes, 1000 + 3 * MiB + 17);

    /* delete: gone, counted down, deleting again is fine */
    assert_int_equal(lc_store_blob_delete(f->s, &db, &err), 0);
    assert_int_equal(lc_store_blob_exists(f->s, &db, &err), 0);
    assert_int_equal(lc_store_blob_delete(f->s, &db, &err), 0);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 1);
    assert_int_equal(t.blob_bytes, 1000);
    free(a);
    free(b);
}

static void test_empty_blob(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    assert_int_equal(lc_store_blob_exists(f->s, &lc_digest_empty, &err), 1);
    uint8_t *got = NULL;
    size_t len = 99;
    assert_int_equal(lc_store_blob_get(f->s, &lc_digest_empty, &got, &len, &err), 0);
    assert_int_equal(len, 0);
    free(got);
    size_t n;
    read_all(f->s, &lc_digest_empty, 0, 0, &got, &n);
    assert_int_equal(n, 0);
    free(got);
    lc_blob_reader *r = NULL;
    assert_int_equal(lc_blob_reader_open(f->s, &lc_digest_empty, 1, 0, &r, &err), -LC_OUT_OF_RANGE);
    assert_int_equal(lc_store_blob_put(f->s, &lc_digest_empty, "", 0, &err), 0);
    assert_int_equal(lc_store_blob_delete(f->s, &lc_digest_empty, &err), 0);
    assert_int_equal(lc_store_blob_exists(f->s, &lc_digest_empty, &err), 1);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 0);
}

static void test_put_wrong_digest_stores_nothing(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *a = make_data(5000, 3);
    lc_digest d;
    lc_digest_of(a, 5000, &d);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&d, hex);

    a[10] ^= 1; /* wrong content */
    assert_int_equal(lc_store_blob_put(f->s, &d, a, 5000, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "digest mismatch"));
    assert_non_null(strstr(err.msg, hex));
    a[10] ^= 1;
    assert_int_equal(lc_store_blob_put(f->s, &d, a, 4999, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "/5000"));
    assert_non_null(strstr(err.msg, "/4999"));
    lc_digest neg = d;
    neg.size = -1;
    assert_int_equal(lc_store_blob_put(f->s, &neg, a, 5000, &err), -LC_INVALID_ARGUMENT);

    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 0);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 0);
    free(a);
}

static void test_streaming_read_offsets(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    size_t size = 3 * MiB + MiB / 2;
    uint8_t *a = make_data(size, 4);
    lc_digest d;
    lc_digest_of(a, size, &d);
    assert_int_equal(lc_store_blob_put(f->s, &d, a, size, &err), 0);

    const int64_t offs[] = {0, MiB - 1, MiB, MiB + 1, 2 * MiB + 12345, (int64_t)size - 1};
    const int64_t limits[] = {0, 1, 2, MiB, MiB + 2, 3 * MiB};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        for (size_t j = 0; j < sizeof(limits) / sizeof(limits[0]); j++) {
            uint8_t *got;
            size_t n;
            read_all(f->s, &d, offs[i], limits[j], &got, &n);
            size_t want = size - (size_t)offs[i];
            if (limits[j] != 0 && (size_t)limits[j] < want)
                want = (size_t)limits[j];
            assert_int_equal(n, want);
            assert_memory_equal(got, a + offs[i], n);
            free(got);
        }
    }
    uint8_t *got;
    size_t n;
    read_all(f->s, &d, (int64_t)size, 0, &got, &n); /* at the end: empty */
    assert_int_equal(n, 0);
    free(got);
    lc_blob_reader *r = NULL;
    assert_int_equal(lc_blob_reader_open(f->s, &d, (int64_t)size + 1, 0, &r, &err),
                     -LC_OUT_OF_RANGE);
    assert_null(r);
    assert_int_equal(lc_blob_reader_open(f->s, &d, 0, -1, &r, &err), -LC_INVALID_ARGUMENT);
    lc_digest absent = d;
    absent.hash[0] ^= 1;
    assert_int_equal(lc_blob_reader_open(f->s, &absent, 0, 0, &r, &err), -LC_NOT_FOUND);

    /* A reader opened before a delete still reads the whole blob. */
    assert_int_equal(lc_blob_reader_open(f->s, &d, 0, 0, &r, &err), 0);
    const uint8_t *p;
    assert_int_equal(lc_blob_reader_next(r, &p, &n, &err), 0);
    assert_int_equal(n, MiB);
    assert_int_equal(lc_store_blob_delete(f->s, &d, &err), 0);
    size_t total = n;
    for (;;) {
        assert_int_equal(lc_blob_reader_next(r, &p, &n, &err), 0);
        if (n == 0)
            break;
        assert_memory_equal(p, a + total, n);
        total += n;
    }
    assert_int_equal(total, size);
    lc_blob_reader_free(&r);
    free(a);
}

/* Appends data in pieces of the given sizes, cycling. */
static void append_pieces(lc_upload *u, const uint8_t *data, size_t len, const size_t *sizes,
                          size_t nsizes)
{
    lc_err err = {0};
    size_t off = 0;
    for (size_t i = 0; off < len; i++) {
        size_t n = sizes[i % nsizes];
        if (n > len - off)
            n = len - off;
        int rc = lc_upload_append(u, data + off, n, &err);
        if (rc != 0)
            fail_msg("append at %zu: %s", off, err.msg);
        off += n;
    }
}

static void test_upload_odd_pieces(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    size_t size = 2 * MiB + 300001;
    uint8_t *a = make_data(size, 5);
    lc_digest d;
    lc_digest_of(a, size, &d);
    lc_upload *u = NULL;
    bool complete = true;
    const char *key = "inst/uploads/u1/blobs/x/1";
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, &complete, &err), 0);
    assert_false(complete);
    assert_int_equal(lc_upload_committed(u), 0);

    int64_t committed;
    bool done;
    assert_int_equal(lc_store_upload_status(f->s, key, &d, &committed, &done, &err), 0);
    assert_int_equal(committed, 0);
    assert_false(done);

    const size_t sizes[] = {16384, 7};
    append_pieces(u, a, size, sizes, 2);
    /* two full chunks are durable; the rest is buffered */
    assert_int_equal(lc_upload_committed(u), 2 * MiB);
    assert_int_equal(lc_store_upload_status(f->s, key, &d, &committed, &done, &err), 0);
    assert_int_equal(committed, 2 * MiB);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 0); /* not visible yet */

    assert_int_equal(lc_upload_finish(u, &err), 0);
    assert_int_equal(lc_upload_append(u, "x", 1, &err), -LC_FAILED_PRECONDITION);
    lc_upload_free(&u);
    assert_null(u);

    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 1);
    uint8_t *got;
    size_t n;
    read_all(f->s, &d, 0, 0, &got, &n);
    assert_int_equal(n, size);
    assert_memory_equal(got, a, size);
    free(got);
    /* the upload record is gone, the blob reports complete */
    assert_int_equal(lc_store_upload_status(f->s, key, &d, &committed, &done, &err), 0);
    assert_true(done);
    assert_int_equal(committed, size);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 1);
    assert_int_equal(t.blob_bytes, size);
    free(a);
}

static void test_upload_wrong_digest(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    size_t size = MiB + 5;
    uint8_t *a = make_data(size, 6);
    lc_digest d;
    lc_digest_of(a, size, &d);
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&d, hex);
    a[MiB + 1] ^= 0x80;
    const char *key = "uploads/bad/blobs/h/s";
    lc_upload *u = NULL;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, NULL, &err), 0);
    assert_int_equal(lc_upload_append(u, a, size, &err), 0);
    assert_int_equal(lc_upload_finish(u, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "digest mismatch: expected "));
    assert_non_null(strstr(err.msg, hex));
    lc_upload_free(&u);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 0);
    int64_t committed;
    bool done;
    assert_int_equal(lc_store_upload_status(f->s, key, &d, &committed, &done, &err), -LC_NOT_FOUND);

    /* truncated: finish with fewer bytes than declared */
    a[MiB + 1] ^= 0x80;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, NULL, &err), 0);
    assert_int_equal(lc_upload_append(u, a, size - 1, &err), 0);
    assert_int_equal(lc_upload_finish(u, &err), -LC_INVALID_ARGUMENT);
    char want[100];
    snprintf(want, sizeof(want), "received ");
    assert_non_null(strstr(err.msg, want));
    snprintf(want, sizeof(want), "/%zu", size - 1);
    assert_non_null(strstr(err.msg, want));
    lc_upload_free(&u);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 0);

    /* nothing left behind: no chunk of it remains in the database */
    lc_store_close(&f->s);
    assert_int_equal(count_raw_chunks(f->dir), 0);
    reopen(f);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 0);
    free(a);
}

static void test_upload_exceeds_size(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *a = make_data(100, 7);
    lc_digest d;
    lc_digest_of(a, 100, &d);
    lc_upload *u = NULL;
    assert_int_equal(lc_upload_open(f->s, "k/exceed", &d, &u, NULL, &err), 0);
    assert_int_equal(lc_upload_append(u, a, 60, &err), 0);
    assert_int_equal(lc_upload_append(u, a, 41, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "exceed"));
    /* the rejected piece was not taken: the right rest still completes it */
    assert_int_equal(lc_upload_append(u, a + 60, 40, &err), 0);
    assert_int_equal(lc_upload_append(u, a, 1, &err), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_upload_finish(u, &err), 0);
    lc_upload_free(&u);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 1);
    free(a);
}

static void test_upload_resume_after_reopen(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    size_t size = 3 * MiB + 4321;
    uint8_t *a = make_data(size, 8);
    lc_digest d;
    lc_digest_of(a, size, &d);
    const char *key = "main/uploads/3f2a/blobs/abc/123";
    lc_upload *u = NULL;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, NULL, &err), 0);
    /* 1 MiB + 100 bytes, then the stream ends without finish: flush */
    assert_int_equal(lc_upload_append(u, a, MiB + 100, &err), 0);
    assert_int_equal(lc_upload_committed(u), MiB);
    assert_int_equal(lc_upload_flush(u, &err), 0);
    assert_int_equal(lc_upload_committed(u), MiB + 100);
    /* some more that is buffered but never flushed: lost with the handle */
    assert_int_equal(lc_upload_append(u, a + MiB + 100, 5000, &err), 0);
    lc_upload_free(&u);

    reopen(f);
    int64_t committed;
    bool done;
    assert_int_equal(lc_store_upload_status(f->s, key, &d, &committed, &done, &err), 0);
    assert_int_equal(committed, MiB + 100);
    assert_false(done);

    bool complete = true;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, &complete, &err), 0);
    assert_false(complete);
    assert_int_equal(lc_upload_committed(u), MiB + 100);
    /* continue from the committed offset; the rebuilt hash must cover the start */
    const size_t sizes[] = {MiB, 7, 16384};
    append_pieces(u, a + MiB + 100, size - (MiB + 100), sizes, 3);
    assert_int_equal(lc_upload_finish(u, &err), 0);
    lc_upload_free(&u);

    uint8_t *got;
    size_t n;
    read_all(f->s, &d, 0, 0, &got, &n); /* chunks are not aligned here */
    assert_int_equal(n, size);
    assert_memory_equal(got, a, size);
    free(got);
    read_all(f->s, &d, MiB + 99, 3, &got, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(got, a + MiB + 99, 3);
    free(got);
    free(a);
}

static void test_upload_of_existing_blob(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *a = make_data(4096, 9);
    lc_digest d;
    lc_digest_of(a, 4096, &d);
    assert_int_equal(lc_store_blob_put(f->s, &d, a, 4096, &err), 0);
    lc_upload *u = NULL;
    bool complete = false;
    assert_int_equal(lc_upload_open(f->s, "k/existing", &d, &u, &complete, &err), 0);
    assert_true(complete);
    assert_int_equal(lc_upload_committed(u), 4096);
    assert_int_equal(lc_upload_append(u, a, 4096, &err), 0); /* client sends anyway */
    assert_int_equal(lc_upload_append(u, a, 1, &err), -LC_INVALID_ARGUMENT);
    assert_int_equal(lc_upload_finish(u, &err), 0);
    lc_upload_free(&u);

    complete = false;
    assert_int_equal(lc_upload_open(f->s, "k/empty", &lc_digest_empty, &u, &complete, &err), 0);
    assert_true(complete);
    assert_int_equal(lc_upload_finish(u, &err), 0);
    lc_upload_free(&u);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, 1);
    free(a);
}

static void test_upload_same_key_twice_is_aborted(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_digest d;
    lc_digest_of("hello", 5, &d);
    lc_upload *u1 = NULL, *u2 = NULL;
    assert_int_equal(lc_upload_open(f->s, "k/same", &d, &u1, NULL, &err), 0);
    assert_int_equal(lc_upload_open(f->s, "k/same", &d, &u2, NULL, &err), -LC_ABORTED);
    assert_null(u2);
    lc_upload_free(&u1);
    assert_int_equal(lc_upload_open(f->s, "k/same", &d, &u2, NULL, &err), 0);
    assert_int_equal(lc_upload_append(u2, "hello", 5, &err), 0);
    assert_int_equal(lc_upload_finish(u2, &err), 0);
    lc_upload_free(&u2);
}

typedef struct upload_job {
    lc_store *s;
    const char *key;
    const uint8_t *data;
    size_t len;
    lc_digest d;
    size_t piece;
    int rc;
    char msg[LC_ERR_MSG_MAX];
} upload_job;

static void *upload_thread(void *arg)
{
    upload_job *j = arg;
    lc_err err = {0};
    lc_upload *u = NULL;
    j->rc = lc_upload_open(j->s, j->key, &j->d, &u, NULL, &err);
    for (size_t off = 0; j->rc == 0 && off < j->len; off += j->piece) {
        size_t n = j->len - off < j->piece ? j->len - off : j->piece;
        j->rc = lc_upload_append(u, j->data + off, n, &err);
    }
    if (j->rc == 0)
        j->rc = lc_upload_finish(u, &err);
    lc_upload_free(&u);
    memcpy(j->msg, err.msg, sizeof(j->msg));
    return NULL;
}

static void test_concurrent_uploads_same_blob(void **state)
{
    fixture *f = *state;
    size_t size = 5 * MiB + 333;
    uint8_t *a = make_data(size, 10);
    lc_digest d;
    lc_digest_of(a, size, &d);
    upload_job jobs[2] = {
        {.s = f->s, .key = "i/uploads/A/blobs/h/s", .data = a, .len = size, .d = d, .piece = 16384},
        {.s = f->s, .key = "i/uploads/B/blobs/h/s", .data = a, .len = size, .d = d, .piece = MiB},
    };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, upload_thread, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        if (jobs[i].rc != 0)
            fail_msg("upload %d: %s", i, jobs[i].msg);
    uint8_t *got;
    size_t n;
    read_all(f->s, &d, 0, 0, &got, &n);
    assert_int_equal(n, size);
    assert_memory_equal(got, a, size);
    free(got);
    lc_store_totals t0;
    lc_store_get_totals(f->s, &t0);
    assert_int_equal(t0.blobs, 1);
    assert_int_equal(t0.blob_bytes, size);
    /* the loser's chunks were dropped (6 chunks stay), and the blob still reads back */
    lc_store_close(&f->s);
    assert_int_equal(count_raw_chunks(f->dir), 6);
    reopen(f);
    read_all(f->s, &d, 0, 0, &got, &n);
    assert_int_equal(n, size);
    assert_memory_equal(got, a, size);
    free(got);
    free(a);
}

typedef struct ac_seen {
    int n;
    char instances[8][16];
    lc_digest actions[8];
    size_t lens[8];
    int stop_after;
} ac_seen;

static int ac_visit(void *ctx, const char *instance, const lc_digest *action, const uint8_t *value,
                    size_t len)
{
    (void)value;
    ac_seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->instances[s->n], sizeof(s->instances[0]), "%s", instance);
        s->actions[s->n] = *action;
        s->lens[s->n] = len;
    }
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

static void test_action_cache(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_digest k1, k2;
    lc_digest_of("action-1", 8, &k1);
    lc_digest_of("action-2", 8, &k2);
    assert_int_equal(lc_store_ac_put(f->s, "team-a", &k1, (const uint8_t *)"result-a1", 9, &err),
                     0);
    assert_int_equal(lc_store_ac_put(f->s, "team-b", &k1, (const uint8_t *)"result-b1", 9, &err),
                     0);
    assert_int_equal(lc_store_ac_put(f->s, "team-a", &k2, (const uint8_t *)"r-a2", 4, &err), 0);
    assert_int_equal(lc_store_ac_put(f->s, "", &k2, (const uint8_t *)"", 0, &err), 0);
    /* replace: no new entry */
    assert_int_equal(lc_store_ac_put(f->s, "team-a", &k2, (const uint8_t *)"r-a2'", 5, &err), 0);

    uint8_t *v;
    size_t len;
    assert_int_equal(lc_store_ac_get(f->s, "team-a", &k1, &v, &len, &err), 0);
    assert_int_equal(len, 9);
    assert_memory_equal(v, "result-a1", 9);
    free(v);
    assert_int_equal(lc_store_ac_get(f->s, "team-b", &k1, &v, &len, &err), 0);
    assert_memory_equal(v, "result-b1", 9);
    free(v);
    assert_int_equal(lc_store_ac_get(f->s, "team-a", &k2, &v, &len, &err), 0);
    assert_int_equal(len, 5);
    free(v);
    assert_int_equal(lc_store_ac_get(f->s, "team-b", &k2, &v, &len, &err), -LC_NOT_FOUND);
    assert_null(v);
    assert_int_equal(lc_store_ac_get(f->s, "", &k2, &v, &len, &err), 0);
    assert_int_equal(len, 0);
    free(v);
    assert_int_equal(lc_store_ac_get(f->s, "team", &k1, &v, &len, &err), -LC_NOT_FOUND);

    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 4);

    ac_seen seen = {0};
    assert_int_equal(lc_store_ac_scan(f->s, "team-a", ac_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 2);
    for (int i = 0; i < 2; i++)
        assert_string_equal(seen.instances[i], "team-a");
    assert_true(lc_digest_equal(&seen.actions[0], &k1) || lc_digest_equal(&seen.actions[1], &k1));
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(lc_store_ac_scan(f->s, "team-b", ac_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_true(lc_digest_equal(&seen.actions[0], &k1));
    assert_int_equal(seen.lens[0], 9);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(lc_store_ac_scan(f->s, "team", ac_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(lc_store_ac_scan(f->s, NULL, ac_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 4);
    assert_string_equal(seen.instances[0], "");
    memset(&seen, 0, sizeof(seen));
    seen.stop_after = 2;
    assert_int_equal(lc_store_ac_scan(f->s, NULL, ac_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 2);

    assert_int_equal(lc_store_ac_delete(f->s, "team-a", &k1, &err), 0);
    assert_int_equal(lc_store_ac_delete(f->s, "team-a", &k1, &err), 0);
    assert_int_equal(lc_store_ac_get(f->s, "team-a", &k1, &v, &len, &err), -LC_NOT_FOUND);
    assert_int_equal(lc_store_ac_get(f->s, "team-b", &k1, &v, &len, &err), 0);
    free(v);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.ac_entries, 3);
}

static void test_totals_after_reopen(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < 5; i++) {
        size_t n = 1000 * (i + 1) + (i == 4 ? 2 * MiB : 0);
        uint8_t *a = make_data(n, 100 + i);
        lc_digest d;
        lc_digest_of(a, n, &d);
        assert_int_equal(lc_store_blob_put(f->s, &d, a, n, &err), 0);
        bytes += n;
        if (i == 0) { /* one deleted again */
            assert_int_equal(lc_store_blob_delete(f->s, &d, &err), 0);
            bytes -= n;
        }
        char inst[16];
        snprintf(inst, sizeof(inst), "i%u", i % 2);
        assert_int_equal(lc_store_ac_put(f->s, inst, &d, a, 10, &err), 0);
        free(a);
    }
    lc_store_totals before, after;
    lc_store_get_totals(f->s, &before);
    assert_int_equal(before.blobs, 4);
    assert_int_equal(before.blob_bytes, bytes);
    assert_int_equal(before.ac_entries, 5);
    reopen(f);
    lc_store_get_totals(f->s, &after);
    assert_int_equal(after.blobs, before.blobs);
    assert_int_equal(after.blob_bytes, before.blob_bytes);
    assert_int_equal(after.ac_entries, before.ac_entries);
}

/* The raw database of a closed store, every column family open (h[i] is
 * names[i]); close with raw_close. */
typedef struct raw_db {
    rocksdb_t *db;
    rocksdb_options_t *o;
    char **names;
    size_t n;
    rocksdb_column_family_handle_t *h[16];
} raw_db;

static void raw_open(raw_db *r, const char *dir, const char *const *want, size_t n_want)
{
    memset(r, 0, sizeof(*r));
    r->o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->o, 1);
    rocksdb_options_set_create_missing_column_families(r->o, 1);
    char *e = NULL;
    if (want == NULL) {
        r->names = rocksdb_list_column_families(r->o, dir, &r->n, &e);
        if (e != NULL)
            fail_msg("list column families: %s", e);
    } else {
        r->n = n_want;
        r->names = calloc(n_want, sizeof(char *));
        for (size_t i = 0; i < n_want; i++)
            r->names[i] = strdup(want[i]);
    }
    assert_true(r->n <= 16);
    const rocksdb_options_t *opts[16];
    for (size_t i = 0; i < r->n; i++)
        opts[i] = r->o;
    r->db = rocksdb_open_column_families(r->o, dir, (int)r->n, (const char *const *)r->names, opts,
                                         r->h, &e);
    if (e != NULL)
        fail_msg("raw open: %s", e);
}

static rocksdb_column_family_handle_t *raw_cf(raw_db *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->names[i], name) == 0)
            return r->h[i];
    fail_msg("no column family %s", name);
    return NULL;
}

static void raw_close(raw_db *r)
{
    for (size_t i = 0; i < r->n; i++)
        rocksdb_column_family_handle_destroy(r->h[i]);
    rocksdb_close(r->db);
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    rocksdb_options_destroy(r->o);
}

/* Counts chunk keys of the raw database (store closed; progress marks of
 * unfinished uploads are not chunks). */
static int count_raw_chunks(const char *dir)
{
    raw_db r;
    raw_open(&r, dir, NULL, 0);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r.db, ro, raw_cf(&r, "blob_chunks"));
    int n = 0;
    static const uint8_t mark[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        n += !(klen == 24 && memcmp(k + 16, mark, 8) == 0);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    raw_close(&r);
    return n;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* A store written by a build of format 1 (no counts, no access-time index)
 * opens: it is upgraded once, with counts and an index that eviction walks. */
static void test_open_upgrades_format_1(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_store_close(&f->s);
    lc_fs_rm_rf(f->dir);
    static const char *const v1[] = {"default", "ac", "blob_meta", "blob_chunks", "uploads"};
    raw_db r;
    raw_open(&r, f->dir, v1, 5);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_put_cf(r.db, wo, raw_cf(&r, "default"), "format_version", 14, "1", 1, &e);
    assert_null(e);
    enum { NB = 3 };
    lc_digest d[NB];
    for (int i = 0; i < NB; i++) {
        char data[32];
        int n = snprintf(data, sizeof(data), "format one blob %d", i);
        lc_digest_of(data, (size_t)n, &d[i]);
        uint8_t key[40], val[41], ck[24];
        memcpy(key, d[i].hash, 32);
        put_be64(key + 32, (uint64_t)n);
        val[0] = 1;
        put_be64(val + 1, (uint64_t)n);
        memset(val + 9, 0, 16);
        val[9] = (uint8_t)(i + 1); /* storage id */
        put_be64(val + 25, 1000 + (uint64_t)i);
        put_be64(val + 33, 2000 + (uint64_t)i); /* atime: 0 is the oldest */
        memcpy(ck, val + 9, 16);
        put_be64(ck + 16, 0);
        rocksdb_put_cf(r.db, wo, raw_cf(&r, "blob_meta"), (const char *)key, 40, (const char *)val,
                       41, &e);
        assert_null(e);
        rocksdb_put_cf(r.db, wo, raw_cf(&r, "blob_chunks"), (const char *)ck, 24, data, (size_t)n,
                       &e);
        assert_null(e);
    }
    uint8_t ack[1 + 40]; /* instance "" '\0', the action digest */
    ack[0] = '\0';
    memcpy(ack + 1, d[0].hash, 32);
    put_be64(ack + 33, (uint64_t)d[0].size);
    rocksdb_put_cf(r.db, wo, raw_cf(&r, "ac"), (const char *)ack, sizeof(ack), "result", 6, &e);
    assert_null(e);
    rocksdb_writeoptions_destroy(wo);
    raw_close(&r);

    reopen(f);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, NB);
    assert_int_equal(t.blob_bytes, (uint64_t)(d[0].size + d[1].size + d[2].size));
    assert_int_equal(t.ac_entries, 1);
    assert_int_equal(t.ac_bytes, sizeof(ack) + 6);
    uint8_t *got;
    size_t len;
    assert_int_equal(lc_store_blob_get(f->s, &d[1], &got, &len, &err), 0);
    assert_memory_equal(got, "format one blob 1", len);
    free(got);
    /* the index was built: the LRU walk takes the oldest first */
    uint64_t blobs = 0, bytes = 0, charged = 0;
    assert_int_equal(lc_store_evict_lru(f->s, 1, 0, &blobs, &bytes, &charged, &err), 0);
    assert_int_equal(blobs, 1);
    assert_int_equal(lc_store_blob_exists(f->s, &d[0], &err), 0);
    assert_int_equal(lc_store_blob_exists(f->s, &d[2], &err), 1);
    /* upgraded for good: counts survive without another scan */
    reopen(f);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, NB - 1);
    lc_store_close(&f->s);
    raw_open(&r, f->dir, NULL, 0);
    size_t vlen = 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *v = rocksdb_get_cf(r.db, ro, raw_cf(&r, "default"), "format_version", 14, &vlen, &e);
    assert_non_null(v);
    assert_int_equal(vlen, 1);
    assert_int_equal(v[0], '2');
    rocksdb_free(v);
    rocksdb_readoptions_destroy(ro);
    raw_close(&r);
    reopen(f);
}

static void test_gc_uploads(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    uint8_t *a = make_data(MiB, 12);
    lc_digest d;
    lc_digest_of(a, MiB, &d);
    lc_upload *idle = NULL, *busy = NULL;
    assert_int_equal(lc_upload_open(f->s, "k/idle", &d, &idle, NULL, &err), 0);
    assert_int_equal(lc_upload_append(idle, a, MiB / 2, &err), 0);
    assert_int_equal(lc_upload_flush(idle, &err), 0);
    lc_upload_free(&idle);
    assert_int_equal(lc_upload_open(f->s, "k/busy", &d, &busy, NULL, &err), 0);

    uint64_t removed = 99;
    assert_int_equal(lc_store_gc_uploads(f->s, 3600, &removed, &err), 0);
    assert_int_equal(removed, 0); /* both are fresh */
    assert_int_equal(lc_store_gc_uploads(f->s, 0, &removed, &err), 0);
    assert_int_equal(removed, 1); /* the open one stays */
    int64_t committed;
    bool done;
    assert_int_equal(lc_store_upload_status(f->s, "k/idle", &d, &committed, &done, &err),
                     -LC_NOT_FOUND);
    assert_int_equal(lc_store_upload_status(f->s, "k/busy", &d, &committed, &done, &err), 0);
    assert_int_equal(lc_store_gc_uploads(f->s, -1, &removed, &err), -LC_INVALID_ARGUMENT);

    assert_int_equal(lc_upload_append(busy, a, MiB, &err), 0);
    assert_int_equal(lc_upload_finish(busy, &err), 0);
    lc_upload_free(&busy);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 1);
    free(a);
}

static void test_sync_writes_option(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_store_close(&f->s);
    lc_store_options o = {.sync_writes = true};
    assert_int_equal(lc_store_open(f->dir, &o, &f->s, &err), 0);
    lc_digest d;
    lc_digest_of("sync", 4, &d);
    assert_int_equal(lc_store_blob_put(f->s, &d, "sync", 4, &err), 0);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 1);
    /* a second open of the same directory fails cleanly (RocksDB's lock) */
    lc_store *other = NULL;
    assert_true(lc_store_open(f->dir, NULL, &other, &err) < 0);
    assert_null(other);
    assert_true(strlen(err.msg) > 0);
}

typedef struct blob_seen {
    int n;
    lc_store_blob_info info[8];
} blob_seen;

static int blob_visit(void *ctx, const lc_store_blob_info *info)
{
    blob_seen *s = ctx;
    if (s->n < 8)
        s->info[s->n] = *info;
    s->n++;
    return 0;
}

static const lc_store_blob_info *find_info(const blob_seen *seen, const lc_digest *d)
{
    for (int i = 0; i < seen->n && i < 8; i++)
        if (lc_digest_equal(&seen->info[i].digest, d))
            return &seen->info[i];
    return NULL;
}

static void test_blob_touch_and_scan(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    lc_digest d1, d2, absent;
    lc_digest_of("one", 3, &d1);
    lc_digest_of("two!", 4, &d2);
    lc_digest_of("absent", 6, &absent);
    assert_int_equal(lc_store_blob_put(f->s, &d1, "one", 3, &err), 0);
    assert_int_equal(lc_store_blob_put(f->s, &d2, "two!", 4, &err), 0);
    blob_seen seen = {0};
    assert_int_equal(lc_store_blob_scan(f->s, blob_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 2);
    const lc_store_blob_info *i1 = find_info(&seen, &d1);
    assert_non_null(i1);
    assert_int_equal(i1->digest.size, 3);
    int64_t created = i1->created;
    assert_true(created > 1600000000);
    assert_int_equal(i1->atime, created);

    lc_digest batch[4] = {d1, absent, lc_digest_empty, d1};
    int64_t later = created + 1000;
    assert_int_equal(lc_store_blob_touch(f->s, batch, 4, later, &err), 0);
    assert_int_equal(lc_store_blob_touch(f->s, &d1, 1, created, &err), 0); /* never back */
    reopen(f);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(lc_store_blob_scan(f->s, blob_visit, &seen, &err), 0);
    assert_int_equal(seen.n, 2);
    assert_int_equal(find_info(&seen, &d1)->atime, later);
    assert_int_equal(find_info(&seen, &d1)->created, created);
    assert_true(find_info(&seen, &d2)->atime < later);
    assert_int_equal(lc_store_blob_exists(f->s, &absent, &err), 0); /* touch made nothing */
    uint8_t *got;
    size_t len;
    assert_int_equal(lc_store_blob_get(f->s, &d1, &got, &len, &err), 0);
    assert_memory_equal(got, "one", 3);
    free(got);
}

/* ---- crash safety: a child killed with SIGKILL mid-upload ---------------- */

#define CRASH_BLOBS 40

/* Every fifth is large enough to skip the WAL (LC_STORE__NOWAL_MIN): its
 * acknowledgement must survive the kill all the same. */
static size_t crash_blob_size(int i)
{
    return (i % 5 == 4 ? 4 * MiB : 200000) + (size_t)i * 37199;
}

/* Child mode (re-executed binary): uploads blobs one after another in odd
 * pieces and writes each index to fd once lc_upload_finish returned. */
static int crash_child(const char *dir, int fd)
{
    lc_err err = {0};
    lc_store *s = NULL;
    if (lc_store_open(dir, NULL, &s, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < CRASH_BLOBS; i++) {
        size_t n = crash_blob_size(i);
        uint8_t *a = make_data(n, 1000 + (uint32_t)i);
        lc_digest d;
        lc_digest_of(a, n, &d);
        char key[64];
        snprintf(key, sizeof(key), "crash/uploads/%d/blobs/h/s", i);
        lc_upload *u = NULL;
        if (lc_upload_open(s, key, &d, &u, NULL, &err) != 0)
            return 2;
        for (size_t off = 0; off < n; off += 65536 + 3) {
            size_t m = n - off < 65536 + 3 ? n - off : 65536 + 3;
            if (lc_upload_append(u, a + off, m, &err) != 0)
                return 3;
        }
        if (lc_upload_finish(u, &err) != 0)
            return 4;
        lc_upload_free(&u);
        free(a);
        unsigned char b = (unsigned char)i;
        if (write(fd, &b, 1) != 1)
            return 5;
    }
    pause(); /* wait for the kill */
    return 0;
}

/* Closes f's store and re-executes this binary in a child mode on f->dir;
 * the child writes acknowledgements to the pipe whose read end is *rfd. */
static pid_t spawn_child(fixture *f, const char *mode, int *rfd)
{
    lc_store_close(&f->s);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char fdbuf[16];
        snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
        execl("/proc/self/exe", "test_store", mode, f->dir, fdbuf, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *rfd = p[0];
    return pid;
}

static void test_crash_keeps_acknowledged_blobs(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    int rfd;
    pid_t pid = spawn_child(f, "--crash-child", &rfd);
    bool acked[CRASH_BLOBS] = {false};
    int n_acked = 0;
    unsigned char b;
    while (n_acked < CRASH_BLOBS / 3 && read(rfd, &b, 1) == 1) {
        acked[b] = true;
        n_acked++;
    }
    usleep(20000); /* let it get into the middle of the next uploads */
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    while (read(rfd, &b, 1) == 1) { /* acks sent before the kill landed */
        acked[b] = true;
        n_acked++;
    }
    close(rfd);
    assert_true(WIFSIGNALED(status));
    assert_true(n_acked >= CRASH_BLOBS / 3 && n_acked < CRASH_BLOBS);

    reopen(f);
    uint64_t visible = 0, bytes = 0;
    for (int i = 0; i < CRASH_BLOBS; i++) {
        size_t n = crash_blob_size(i);
        uint8_t *a = make_data(n, 1000 + (uint32_t)i);
        lc_digest d;
        lc_digest_of(a, n, &d);
        int ex = lc_store_blob_exists(f->s, &d, &err);
        assert_true(ex >= 0);
        if (acked[i])
            assert_int_equal(ex, 1);
        if (ex == 1) { /* acknowledged, or finished just before the kill: whole */
            uint8_t *got;
            size_t len;
            assert_int_equal(lc_store_blob_get(f->s, &d, &got, &len, &err), 0);
            assert_int_equal(len, n);
            assert_memory_equal(got, a, n);
            free(got);
            visible++;
            bytes += n;
        }
        free(a);
    }
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.blobs, visible);
    assert_int_equal(t.blob_bytes, bytes);
    /* and it takes new writes */
    lc_digest d;
    lc_digest_of("after the crash", 15, &d);
    assert_int_equal(lc_store_blob_put(f->s, &d, "after the crash", 15, &err), 0);
    assert_int_equal(lc_store_blob_exists(f->s, &d, &err), 1);
}

/* Blobs of LC_STORE__NOWAL_MIN and more skip the WAL and flush before their
 * commit; fed as many small pieces (as gRPC slices arrive) and resumed. */
static void test_large_upload_in_pieces(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    size_t size = 9 * MiB + 123;
    uint8_t *a = make_data(size, 77);
    lc_digest d;
    lc_digest_of(a, size, &d);
    const char *key = "big/uploads/1/blobs/h/s";
    lc_upload *u = NULL;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, NULL, &err), 0);
    /* the first 5 MiB + 17 as 13 KiB pieces, three vectors at a time */
    size_t piece = 13 * 1024, off = 0, first = 5 * MiB + 17;
    while (off < first) {
        struct iovec iov[3];
        size_t n = 0;
        for (; n < 3 && off < first; n++) {
            size_t k = first - off < piece ? first - off : piece;
            iov[n].iov_base = a + off;
            iov[n].iov_len = k;
            off += k;
        }
        if (lc_upload_appendv(u, iov, n, &err) != 0)
            fail_msg("appendv: %s", err.msg);
    }
    assert_int_equal(lc_upload_flush(u, &err), 0);
    lc_upload_free(&u); /* the stream broke */

    bool complete = true;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, &complete, &err), 0);
    assert_false(complete);
    assert_int_equal(lc_upload_committed(u), first);
    struct iovec rest[2] = {{a + first, MiB}, {a + first + MiB, size - first - MiB}};
    assert_int_equal(lc_upload_appendv(u, rest, 2, &err), 0);
    assert_int_equal(lc_upload_finish(u, &err), 0);
    lc_upload_free(&u);

    for (int round = 0; round < 2; round++) {
        uint8_t *got;
        size_t n;
        read_all(f->s, &d, 0, 0, &got, &n);
        assert_int_equal(n, size);
        assert_memory_equal(got, a, size);
        free(got);
        reopen(f);
    }
    free(a);
}

static uint64_t blob_file_bytes(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".blob") != 0)
            continue;
        struct stat st;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    closedir(dp);
    return total;
}

/* Deleted blobs' bytes stay in blob files until lc_store_reclaim. */
static void test_reclaim_gives_space_back(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    enum { N = 6 };
    size_t size = 3 * MiB + 5;
    lc_digest d[N];
    for (int i = 0; i < N; i++) {
        uint8_t *a = make_data(size, 300 + (uint32_t)i);
        lc_digest_of(a, size, &d[i]);
        assert_int_equal(lc_store_blob_put(f->s, &d[i], a, size, &err), 0);
        free(a);
        reopen(f); /* flushes: one blob file each, as a long-running server has */
    }
    bool ran = true;
    assert_int_equal(lc_store_reclaim(f->s, false, &ran, &err), 0);
    assert_false(ran); /* nothing deleted yet */
    uint64_t before = blob_file_bytes(f->dir);
    if (before < (uint64_t)N * size)
        fail_msg("blob files hold %llu bytes", (unsigned long long)before);
    for (int i = 0; i < N - 1; i++)
        assert_int_equal(lc_store_blob_delete(f->s, &d[i], &err), 0);
    assert_int_equal(lc_store_reclaim(f->s, true, &ran, &err), 0);
    assert_true(ran);
    uint64_t after = blob_file_bytes(f->dir);
    if (after >= before / 2)
        fail_msg("blob files hold %llu bytes after deleting %d of %d blobs (%llu before)",
                 (unsigned long long)after, N - 1, N, (unsigned long long)before);
    uint8_t *got;
    size_t n;
    read_all(f->s, &d[N - 1], 0, 0, &got, &n); /* the live one survived */
    uint8_t *want = make_data(size, 300 + N - 1);
    assert_int_equal(n, size);
    assert_memory_equal(got, want, size);
    free(got);
    free(want);
}

/* Child mode: a large upload A starts without the WAL and its stream
 * breaks; other large uploads take every WAL-less slot, so A resumes
 * with the WAL and finishes. Writes one byte once A is acknowledged, then
 * waits for the kill. A's first chunks skipped the WAL: its commit must
 * have flushed them. */
static int resume_child(const char *dir, int fd)
{
    lc_err err = {0};
    lc_store *s = NULL;
    if (lc_store_open(dir, NULL, &s, &err) != 0)
        return 1;
    size_t n = 6 * MiB + 7;
    uint8_t *a = make_data(n, 4242);
    lc_digest d, other;
    lc_digest_of(a, n, &d);
    lc_upload *u = NULL, *busy[LC_STORE__NOWAL_STREAMS] = {NULL};
    if (lc_upload_open(s, "resume/uploads/a/blobs/h/s", &d, &u, NULL, &err) != 0 ||
        lc_upload_append(u, a, 5 * MiB, &err) != 0)
        return 2;
    lc_upload_free(&u);
    for (int i = 0; i < LC_STORE__NOWAL_STREAMS; i++) {
        other = d;
        other.hash[0] ^= (uint8_t)(i + 1);
        other.hash[1] ^= (uint8_t)((i + 1) >> 8);
        char key[64];
        snprintf(key, sizeof(key), "resume/uploads/busy%d/blobs/h/s", i);
        if (lc_upload_open(s, key, &other, &busy[i], NULL, &err) != 0)
            return 3;
    }
    if (lc_upload_open(s, "resume/uploads/a/blobs/h/s", &d, &u, NULL, &err) != 0 ||
        lc_upload_committed(u) != 5 * MiB ||
        lc_upload_append(u, a + 5 * MiB, n - 5 * MiB, &err) != 0 || lc_upload_finish(u, &err) != 0)
        return 4;
    unsigned char b = 1;
    if (write(fd, &b, 1) != 1)
        return 5;
    pause(); /* wait for the kill */
    return 0;
}

static void test_resumed_large_upload_survives_kill(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    int rfd;
    pid_t pid = spawn_child(f, "--resume-child", &rfd);
    unsigned char b = 0;
    ssize_t got = read(rfd, &b, 1);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(rfd);
    if (got != 1)
        fail_msg("child failed before the acknowledgement (status %d)", status);
    reopen(f);
    size_t n = 6 * MiB + 7;
    uint8_t *a = make_data(n, 4242);
    lc_digest d;
    lc_digest_of(a, n, &d);
    uint8_t *data;
    size_t len;
    if (lc_store_blob_get(f->s, &d, &data, &len, &err) != 0)
        fail_msg("acknowledged blob unreadable after the kill: %s", err.msg);
    assert_int_equal(len, n);
    assert_memory_equal(data, a, n);
    free(data);
    free(a);
}

/* Child mode: a large (WAL-less) upload of 24 MiB gets 20 MiB, which are
 * made durable by a chunk flush, then 2 MiB more that stay in a memtable;
 * one byte to the parent, then it waits for the kill. */
static int mark_child(const char *dir, int fd)
{
    lc_err err = {0};
    lc_store *s = NULL;
    if (lc_store_open(dir, NULL, &s, &err) != 0)
        return 1;
    size_t n = 24 * MiB;
    uint8_t *a = make_data(n, 777);
    lc_digest d;
    lc_digest_of(a, n, &d);
    lc_upload *u = NULL;
    if (lc_upload_open(s, "mark/uploads/u/blobs/h/s", &d, &u, NULL, &err) != 0 ||
        lc_upload_append(u, a, 20 * MiB, &err) != 0 ||
        lc_store__flush_chunks(s, lc_store__flush_epoch(s), &err) != 0 ||
        lc_upload_append(u, a + 20 * MiB, 2 * MiB, &err) != 0)
        return 2;
    unsigned char b = 1;
    if (write(fd, &b, 1) != 1)
        return 3;
    pause();
    return 0;
}

/* After a crash, a large upload resumes from exactly what reached the
 * disk (its progress mark went there with the chunks), not from 0 and not
 * from what only a memtable held; QueryWriteStatus says the same. */
static void test_upload_resumes_from_durable_mark(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    int rfd;
    pid_t pid = spawn_child(f, "--mark-child", &rfd);
    unsigned char b = 0;
    ssize_t got = read(rfd, &b, 1);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(rfd);
    if (got != 1)
        fail_msg("child failed (status %d)", status);
    reopen(f);
    size_t n = 24 * MiB;
    uint8_t *a = make_data(n, 777);
    lc_digest d;
    lc_digest_of(a, n, &d);
    int64_t committed = -1;
    bool done = true;
    const char *key = "mark/uploads/u/blobs/h/s";
    assert_int_equal(lc_store_upload_status(f->s, key, &d, &committed, &done, &err), 0);
    assert_false(done);
    assert_int_equal(committed, 20 * MiB);
    lc_store_totals t;
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.upload_bytes, 20 * MiB);
    lc_upload *u = NULL;
    assert_int_equal(lc_upload_open(f->s, key, &d, &u, NULL, &err), 0);
    assert_int_equal(lc_upload_committed(u), 20 * MiB);
    assert_int_equal(lc_upload_append(u, a + 20 * MiB, n - 20 * MiB, &err), 0);
    if (lc_upload_finish(u, &err) != 0)
        fail_msg("finish: %s", err.msg);
    lc_upload_free(&u);
    uint8_t *back;
    size_t len;
    assert_int_equal(lc_store_blob_get(f->s, &d, &back, &len, &err), 0);
    assert_int_equal(len, n);
    assert_memory_equal(back, a, n);
    free(back);
    lc_store_get_totals(f->s, &t);
    assert_int_equal(t.upload_bytes, 0);
    assert_int_equal(t.blob_bytes, n);
    free(a);
}

/* --max-size is a hard bound on used_bytes: writes that would cross it
 * wait (here 50 ms: no eviction runs) and fail with RESOURCE_EXHAUSTED; an
 * upload larger than the limit fails at once; deleting makes room. */
static void test_max_size_refuses_writes(void **state)
{
    fixture *f = *state;
    lc_err err = {0};
    char dir[80];
    snprintf(dir, sizeof(dir), "%s-limited", f->dir);
    lc_store_options o = {.max_bytes = MiB, .claim_wait_ms = 50};
    lc_store *s = NULL;
    assert_int_equal(lc_store_open(dir, &o, &s, &err), 0);
    size_t n = 100000;
    lc_digest d[12];
    int stored = 0, rc = 0;
    for (int i = 0; i < 12; i++) {
        uint8_t *a = make_data(n, 900 + (uint32_t)i);
        lc_digest_of(a, n, &d[i]);
        rc = lc_store_blob_put(s, &d[i], a, n, &err);
        free(a);
        if (rc != 0)
            break;
        stored++;
    }
    assert_int_equal(rc, -LC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "--max-size"));
    /* each blob counts with its record overhead: ten fit in 1 MiB */
    assert_int_equal(stored, (int)(MiB / (n + LC_STORE__BLOB_OVERHEAD)));
    lc_store_totals t;
    lc_store_get_totals(s, &t);
    assert_true(t.used_bytes <= MiB);
    assert_int_equal(t.max_bytes, MiB);
    lc_digest big;
    lc_digest_of("big", 3, &big);
    big.size = 2 * MiB;
    lc_upload *u = NULL;
    lc_err_clear(&err);
    assert_int_equal(lc_upload_open(s, "limited/uploads/big/blobs/h/s", &big, &u, NULL, &err),
                     -LC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.msg, "does not fit"));
    assert_null(u);
    /* room again after a delete */
    assert_int_equal(lc_store_blob_delete(s, &d[0], &err), 0);
    uint8_t *a = make_data(n, 900 + (uint32_t)stored);
    assert_int_equal(lc_store_blob_put(s, &d[stored], a, n, &err), 0);
    free(a);
    lc_store_close(&s);
    lc_fs_rm_rf(dir);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "--resume-child") == 0)
        return resume_child(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "--mark-child") == 0)
        return mark_child(argv[2], atoi(argv[3]));
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_put_get_exists_find_missing),
        T(test_empty_blob),
        T(test_put_wrong_digest_stores_nothing),
        T(test_streaming_read_offsets),
        T(test_upload_odd_pieces),
        T(test_upload_wrong_digest),
        T(test_upload_exceeds_size),
        T(test_upload_resume_after_reopen),
        T(test_upload_of_existing_blob),
        T(test_upload_same_key_twice_is_aborted),
        T(test_concurrent_uploads_same_blob),
        T(test_action_cache),
        T(test_totals_after_reopen),
        T(test_open_upgrades_format_1),
        T(test_gc_uploads),
        T(test_sync_writes_option),
        T(test_blob_touch_and_scan),
        T(test_crash_keeps_acknowledged_blobs),
        T(test_large_upload_in_pieces),
        T(test_resumed_large_upload_survives_kill),
        T(test_reclaim_gives_space_back),
        T(test_upload_resumes_from_durable_mark),
        T(test_max_size_refuses_writes),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
