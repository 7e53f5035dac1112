/* test_sha256.c: sha256() against FIPS 180-4 vectors and padding boundaries,
 * and sha256_bytea_hex() against the bytea text form PostgreSQL reads.
 * Expected digests come from the FIPS examples and from `sha256sum`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/* The digest of data[0..len) as 64 lower-case hex digits. */
static void digest_hex(const void *data, size_t len, char out[2 * SHA256_BYTES + 1])
{
    uint8_t digest[SHA256_BYTES];

    sha256(data, len, digest);
    for (int i = 0; i < SHA256_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static void assert_digest(const void *data, size_t len, const char *expected)
{
    char hex[2 * SHA256_BYTES + 1];

    digest_hex(data, len, hex);
    assert_string_equal(hex, expected);
}

/* n copies of 'a', malloc-ed (at least one byte so it is never NULL). */
static char *repeat_a(size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, 'a', n);
    s[n] = '\0';
    return s;
}

static void assert_a_digest(size_t n, const char *expected)
{
    char *s = repeat_a(n);

    assert_digest(s, n, expected);
    free(s);
}

static void test_fips_empty_string(void **state)
{
    (void)state;
    assert_digest("", 0,
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_fips_abc(void **state)
{
    (void)state;
    assert_digest("abc", 3,
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_fips_448_bit_message(void **state)
{
    static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

    (void)state;
    assert_int_equal(strlen(msg) * 8, 448);
    assert_digest(msg, strlen(msg),
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_fips_896_bit_message(void **state)
{
    static const char msg[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                              "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

    (void)state;
    assert_int_equal(strlen(msg) * 8, 896);
    assert_digest(msg, strlen(msg),
                  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_fips_one_million_a(void **state)
{
    (void)state;
    assert_a_digest(1000000,
                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* 55 bytes is the longest tail whose padding fits one block. */
static void test_length_55_fits_one_padding_block(void **state)
{
    (void)state;
    assert_a_digest(55,
                    "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
}

/* 56 bytes: the length no longer fits, padding takes a second block. */
static void test_length_56_needs_two_padding_blocks(void **state)
{
    (void)state;
    assert_a_digest(56,
                    "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}

static void test_length_63_one_short_of_a_block(void **state)
{
    (void)state;
    assert_a_digest(63,
                    "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
}

static void test_length_64_exactly_one_block(void **state)
{
    (void)state;
    assert_a_digest(64,
                    "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_length_65_one_past_a_block(void **state)
{
    (void)state;
    assert_a_digest(65,
                    "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0");
}

static void test_lengths_119_120_127_128_second_block_boundaries(void **state)
{
    (void)state;
    assert_a_digest(119,
                    "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");
    assert_a_digest(120,
                    "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c");
    assert_a_digest(127,
                    "c57e9278af78fa3cab38667bef4ce29d783787a2f731d4e12200270f0c32320a");
    assert_a_digest(128,
                    "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e");
}

/* Bytes with the high bit set must not be sign-extended. */
static void test_all_byte_values_0_to_255(void **state)
{
    uint8_t bytes[256];

    (void)state;
    for (int i = 0; i < 256; i++)
        bytes[i] = (uint8_t)i;
    assert_digest(bytes, sizeof bytes,
                  "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

/* SPEC 6: key_hash = sha256(convert_to(key, 'UTF8')): the key's UTF-8 bytes. */
static void test_utf8_key_bytes_hashed_as_is(void **state)
{
    static const char key[] = "caf\xc3\xa9 \xf0\x9f\x98\x80";

    (void)state;
    assert_digest(key, strlen(key),
                  "043764df773ac7ceea6175e1498893e6ee33e79885288417cc1d75cba6094827");
}

static void test_only_len_bytes_are_hashed(void **state)
{
    (void)state;
    assert_digest("abcdef", 3,
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_bytea_hex_is_backslash_x_and_64_lowercase_hex_digits(void **state)
{
    char out[SHA256_BYTEA_HEX_LEN];

    (void)state;
    assert_int_equal(SHA256_BYTEA_HEX_LEN, 67);
    memset(out, '#', sizeof out);
    sha256_bytea_hex("abc", 3, out);
    assert_string_equal(
        out, "\\xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(strlen(out), SHA256_BYTEA_HEX_LEN - 1);
    assert_int_equal(out[SHA256_BYTEA_HEX_LEN - 1], '\0');
}

static void test_bytea_hex_of_demo_recoup_key(void **state)
{
    char out[SHA256_BYTEA_HEX_LEN];

    (void)state;
    sha256_bytea_hex("demo-recoup-key", strlen("demo-recoup-key"), out);
    assert_string_equal(
        out, "\\xa708190f67326509a52112155e5841e9c572f639a9b85223989430a9818132e5");
}

static void test_bytea_hex_of_empty_input(void **state)
{
    char out[SHA256_BYTEA_HEX_LEN];

    (void)state;
    sha256_bytea_hex("", 0, out);
    assert_string_equal(
        out, "\\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Every digit is in [0-9a-f]: PostgreSQL's hex bytea format. */
static void test_bytea_hex_uses_only_lowercase_hex(void **state)
{
    char out[SHA256_BYTEA_HEX_LEN];

    (void)state;
    sha256_bytea_hex("The quick brown fox", 19, out);
    assert_memory_equal(out, "\\x", 2);
    for (int i = 2; i < SHA256_BYTEA_HEX_LEN - 1; i++)
        assert_true((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_empty_string),
        cmocka_unit_test(test_fips_abc),
        cmocka_unit_test(test_fips_448_bit_message),
        cmocka_unit_test(test_fips_896_bit_message),
        cmocka_unit_test(test_fips_one_million_a),
        cmocka_unit_test(test_length_55_fits_one_padding_block),
        cmocka_unit_test(test_length_56_needs_two_padding_blocks),
        cmocka_unit_test(test_length_63_one_short_of_a_block),
        cmocka_unit_test(test_length_64_exactly_one_block),
        cmocka_unit_test(test_length_65_one_past_a_block),
        cmocka_unit_test(test_lengths_119_120_127_128_second_block_boundaries),
        cmocka_unit_test(test_all_byte_values_0_to_255),
        cmocka_unit_test(test_utf8_key_bytes_hashed_as_is),
        cmocka_unit_test(test_only_len_bytes_are_hashed),
        cmocka_unit_test(test_bytea_hex_is_backslash_x_and_64_lowercase_hex_digits),
        cmocka_unit_test(test_bytea_hex_of_demo_recoup_key),
        cmocka_unit_test(test_bytea_hex_of_empty_input),
        cmocka_unit_test(test_bytea_hex_uses_only_lowercase_hex),
    };

    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
