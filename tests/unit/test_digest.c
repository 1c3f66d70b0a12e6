/* test_digest.c - SHA-256 digests: known vectors, parsing, incremental hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "digest.h"

static void test_empty_blob_constant(void **state)
{
    (void)state;
    lc_digest d;
    lc_digest_of("", 0, &d);
    assert_true(lc_digest_equal(&d, &lc_digest_empty));
    assert_true(lc_digest_is_empty(&d));
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&d, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_known_vector(void **state)
{
    (void)state;
    lc_digest d;
    lc_digest_of("abc", 3, &d);
    char oci[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&d, oci);
    assert_string_equal(oci,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(d.size, 3);
}

static void test_parse_roundtrip_and_errors(void **state)
{
    (void)state;
    const char *hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    lc_digest d, abc;
    lc_err err = {0};
    assert_int_equal(lc_digest_parse(hex, strlen(hex), 3, &d, &err), 0);
    lc_digest_of("abc", 3, &abc);
    assert_true(lc_digest_equal(&d, &abc));

    assert_int_equal(lc_digest_parse(hex, 63, 3, &d, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "64"));
    char upper[65];
    memcpy(upper, hex, 65);
    upper[0] = 'B';
    assert_int_equal(lc_digest_parse(upper, 64, 3, &d, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "at 0"));
    assert_int_equal(lc_digest_parse(hex, 64, -1, &d, &err), -LC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "negative"));

    assert_int_equal(lc_digest_parse_oci("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &d, &err), 0);
    assert_int_equal(lc_digest_parse_oci("md5:abc", &d, &err), -LC_INVALID_ARGUMENT);
}

static void test_incremental_matches_one_shot(void **state)
{
    (void)state;
    size_t len = 3 * 1024 * 1024 + 17;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    lc_digest whole, parts;
    lc_digest_of(buf, len, &whole);
    lc_hasher *h = lc_hasher_new();
    assert_non_null(h);
    for (size_t off = 0, step = 1; off < len; off += step, step = step * 3 + 1) {
        size_t n = off + step > len ? len - off : step;
        lc_hasher_update(h, buf + off, n);
    }
    assert_int_equal(lc_hasher_bytes(h), len);
    lc_hasher_final(h, &parts);
    assert_true(lc_digest_equal(&whole, &parts));
    /* The hasher is reusable after final. */
    lc_hasher_final(h, &parts);
    assert_true(lc_digest_equal(&parts, &lc_digest_empty));
    lc_hasher_free(&h);
    assert_null(h);
    lc_hasher_free(&h);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_blob_constant),
        cmocka_unit_test(test_known_vector),
        cmocka_unit_test(test_parse_roundtrip_and_errors),
        cmocka_unit_test(test_incremental_matches_one_shot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
