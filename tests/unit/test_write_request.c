/* test_write_request.c - the in-place WriteRequest decoder against
 * protobuf-c's encoder, with the message cut into slices the way gRPC
 * delivers it, and against malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "cache-server/write_request.h"
#include "google/bytestream/bytestream.pb-c.h"

/* A byte buffer holding bytes cut into slices of `cut` bytes (0: one slice). */
static grpc_byte_buffer *buffer_of(const uint8_t *p, size_t n, size_t cut)
{
    size_t count = cut == 0 || n == 0 ? 1 : (n + cut - 1) / cut;
    grpc_slice *s = calloc(count, sizeof(*s));
    for (size_t i = 0; i < count; i++) {
        size_t off = cut == 0 ? 0 : i * cut;
        size_t k = cut == 0 || n - off < cut ? n - off : cut;
        s[i] = grpc_slice_from_copied_buffer((const char *)p + off, k);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, count);
    for (size_t i = 0; i < count; i++)
        grpc_slice_unref(s[i]);
    free(s);
    return bb;
}

static uint8_t *gather(const lc_write_request *r)
{
    uint8_t *out = malloc(r->data_len + 1);
    size_t off = 0;
    for (size_t i = 0; i < r->n_data; i++) {
        memcpy(out + off, r->data[i].iov_base, r->data[i].iov_len);
        off += r->data[i].iov_len;
    }
    assert_int_equal(off, r->data_len);
    return out;
}

static int decode_bytes(const uint8_t *p, size_t n, size_t cut, lc_write_request *r, lc_err *err)
{
    grpc_byte_buffer *bb = buffer_of(p, n, cut);
    int rc = lc_write_request_decode(bb, r, err);
    lc_write_request_clear(r);
    grpc_byte_buffer_destroy(bb);
    return rc;
}

static void test_matches_protobuf_c(void **state)
{
    (void)state;
    size_t len = 300000;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    const char *name = "main/uploads/5e1f/blobs/0123abcd/300000";
    const size_t cuts[] = {0, 1, 3, 13 * 1024, 65536};
    const size_t lens[] = {0, 1, 1000, len};
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            Google__Bytestream__WriteRequest m = GOOGLE__BYTESTREAM__WRITE_REQUEST__INIT;
            m.resource_name = (char *)name;
            m.write_offset = (int64_t)(l * 1048576 + 5);
            m.finish_write = l % 2 == 1;
            m.data.data = data;
            m.data.len = lens[l];
            size_t n = protobuf_c_message_get_packed_size(&m.base);
            uint8_t *wire = malloc(n);
            protobuf_c_message_pack(&m.base, wire);
            grpc_byte_buffer *bb = buffer_of(wire, n, cuts[c]);
            lc_write_request r;
            lc_err err = {0};
            if (lc_write_request_decode(bb, &r, &err) != 0)
                fail_msg("cut %zu len %zu: %s", cuts[c], lens[l], err.msg);
            assert_string_equal(r.resource_name, name);
            assert_int_equal(r.write_offset, m.write_offset);
            assert_int_equal(r.finish_write, m.finish_write);
            assert_int_equal(r.data_len, lens[l]);
            uint8_t *got = gather(&r);
            assert_memory_equal(got, data, lens[l]);
            free(got);
            lc_write_request_clear(&r);
            grpc_byte_buffer_destroy(bb);
            free(wire);
        }
    }
    free(data);
}

/* Unknown fields of every wire type are skipped; a repeated field keeps its
 * last value; the name may come after the data. */
static void test_unknown_and_repeated_fields(void **state)
{
    (void)state;
    lc_write_request r;
    lc_err err = {0};

    const uint8_t ok[] = {
        0x52, 0x02, 'x',  'y',                       /* data = "xy" */
        0x10, 0x05,                                  /* write_offset = 5 */
        0xa0, 0x06, 0x01,                            /* field 100, varint */
        0xa9, 0x06, 1,    2,   3,   4,   5, 6, 7, 8, /* field 101, fixed64 */
        0xb2, 0x06, 0x03, 'a', 'b', 'c',             /* field 102, bytes */
        0xbd, 0x06, 1,    2,   3,   4,               /* field 103, fixed32 */
        0x0a, 0x03, 'a',  '/', 'b',                  /* resource_name = "a/b" */
        0x10, 0x07,                                  /* write_offset = 7 (last wins) */
        0x52, 0x03, 'x',  'y', 'z',                  /* data = "xyz" (last wins) */
        0x18, 0x01,                                  /* finish_write = true */
    };
    for (size_t cut = 0; cut < 5; cut++) {
        grpc_byte_buffer *bb = buffer_of(ok, sizeof(ok), cut);
        if (lc_write_request_decode(bb, &r, &err) != 0)
            fail_msg("cut %zu: %s", cut, err.msg);
        assert_string_equal(r.resource_name, "a/b");
        assert_int_equal(r.write_offset, 7);
        assert_true(r.finish_write);
        uint8_t *got = gather(&r);
        assert_int_equal(r.data_len, 3);
        assert_memory_equal(got, "xyz", 3);
        free(got);
        lc_write_request_clear(&r);
        grpc_byte_buffer_destroy(bb);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t b[8];
        size_t n;
    } bad[] = {
        {"truncated data", {0x52, 0x05, 'a', 'b'}, 4},
        {"truncated name", {0x0a, 0x02, 'a'}, 3},
        {"truncated varint", {0x10, 0x80}, 2},
        {"truncated fixed64", {0xa9, 0x06, 1, 2}, 4},
        {"group wire type", {0xa3, 0x06}, 2},
        {"data as varint", {0x50, 0x01}, 2},
        {"offset as bytes", {0x12, 0x01, 0x00}, 3},
        {"NUL in name", {0x0a, 0x03, 'a', 0, 'b'}, 5},
        {"varint of 11 bytes", {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lc_write_request r;
        lc_err err = {0};
        int rc = decode_bytes(bad[i].b, bad[i].n, 1, &r, &err);
        if (rc != -LC_INVALID_ARGUMENT)
            fail_msg("%s: rc %d", bad[i].what, rc);
        assert_true(err.msg[0] != '\0');
    }
    /* a resource name longer than LC_RESOURCE_MAX */
    size_t n = LC_RESOURCE_MAX + 1;
    uint8_t *w = malloc(n + 3);
    w[0] = 0x0a;
    w[1] = (uint8_t)(0x80 | (n & 0x7f));
    w[2] = (uint8_t)(n >> 7);
    memset(w + 3, 'a', n);
    lc_write_request r;
    lc_err err = {0};
    assert_int_equal(decode_bytes(w, n + 3, 100, &r, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "resource_name"));
    free(w);
    /* the empty message is valid: every field at its default */
    assert_int_equal(decode_bytes((const uint8_t *)"", 0, 0, &r, &err), 0);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_protobuf_c),
        cmocka_unit_test(test_unknown_and_repeated_fields),
        cmocka_unit_test(test_malformed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
