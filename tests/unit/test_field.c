/* test_field.c: UTF-8 decoding and validity, and ECMAScript trimming
 * (SPEC's "Trim": U+0009-U+000D, U+0020, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "field.h"

/* Decodes the whole of s (sizeof - 1 bytes) and checks length and code point. */
#define assert_decodes(lit, want_len, want_cp)                                           \
    do {                                                                                 \
        uint32_t cp_ = 0xdeadbeef;                                                       \
        assert_int_equal(field_utf8_decode(lit, sizeof(lit) - 1, &cp_), (want_len));     \
        assert_int_equal(cp_, (want_cp));                                                \
    } while (0)

#define assert_rejected(lit)                                                             \
    do {                                                                                 \
        uint32_t cp_;                                                                    \
        assert_int_equal(field_utf8_decode(lit, sizeof(lit) - 1, &cp_), 0);              \
        assert_false(field_utf8_valid(lit, sizeof(lit) - 1));                            \
    } while (0)

/* field_trim over the whole literal; checks the remaining text. */
static void assert_trims_to(const char *s, size_t len, const char *want)
{
    size_t start = 0, end = len;

    field_trim(s, &start, &end);
    assert_true(start <= end);
    assert_true(end <= len);
    assert_int_equal(end - start, strlen(want));
    assert_memory_equal(s + start, want, strlen(want));
}

#define assert_trim(lit, want) assert_trims_to(lit, sizeof(lit) - 1, want)

/* ---- field_utf8_decode --------------------------------------------------- */

static void test_decode_ascii(void **state)
{
    (void)state;
    assert_decodes("A", 1, 0x41);
    assert_decodes("\x7f", 1, 0x7f);
}

static void test_decode_only_first_sequence(void **state)
{
    uint32_t cp;

    (void)state;
    assert_int_equal(field_utf8_decode("ab", 2, &cp), 1);
    assert_int_equal(cp, 'a');
    assert_int_equal(field_utf8_decode("\xc3\xa9x", 3, &cp), 2);
    assert_int_equal(cp, 0xe9);
}

static void test_decode_two_byte(void **state)
{
    (void)state;
    assert_decodes("\xc2\x80", 2, 0x80);
    assert_decodes("\xc3\xa9", 2, 0xe9);
    assert_decodes("\xdf\xbf", 2, 0x7ff);
}

static void test_decode_three_byte(void **state)
{
    (void)state;
    assert_decodes("\xe0\xa0\x80", 3, 0x800);
    assert_decodes("\xe2\x82\xac", 3, 0x20ac);
    assert_decodes("\xed\x9f\xbf", 3, 0xd7ff); /* just below the surrogates */
    assert_decodes("\xee\x80\x80", 3, 0xe000); /* just above them */
    assert_decodes("\xef\xbf\xbf", 3, 0xffff);
}

static void test_decode_four_byte_emoji(void **state)
{
    (void)state;
    assert_decodes("\xf0\x9f\x98\x80", 4, 0x1f600); /* U+1F600 grinning face */
    assert_decodes("\xf0\x90\x80\x80", 4, 0x10000);
    assert_decodes("\xf4\x8f\xbf\xbf", 4, 0x10ffff);
}

static void test_decode_rejects_overlong_forms(void **state)
{
    (void)state;
    assert_rejected("\xc0\x80"); /* U+0000 in two bytes */
    assert_rejected("\xc0\xaf"); /* '/' */
    assert_rejected("\xc1\xbf");
    assert_rejected("\xe0\x80\x80");
    assert_rejected("\xe0\x9f\xbf"); /* U+07FF in three bytes */
    assert_rejected("\xf0\x80\x80\x80");
    assert_rejected("\xf0\x8f\xbf\xbf"); /* U+FFFF in four bytes */
}

static void test_decode_rejects_surrogates(void **state)
{
    (void)state;
    assert_rejected("\xed\xa0\x80"); /* U+D800 */
    assert_rejected("\xed\xaf\xbf"); /* U+DBFF */
    assert_rejected("\xed\xb0\x80"); /* U+DC00 */
    assert_rejected("\xed\xbf\xbf"); /* U+DFFF */
    /* CESU-8: a surrogate pair encoded as two 3-byte sequences */
    assert_rejected("\xed\xa0\xbd\xed\xb8\x80");
}

static void test_decode_rejects_above_10ffff(void **state)
{
    (void)state;
    assert_rejected("\xf4\x90\x80\x80"); /* U+110000 */
    assert_rejected("\xf5\x80\x80\x80");
    assert_rejected("\xf7\xbf\xbf\xbf");
    assert_rejected("\xf8\x88\x80\x80\x80"); /* old 5-byte form */
    assert_rejected("\xfc\x84\x80\x80\x80\x80");
    assert_rejected("\xfe");
    assert_rejected("\xff");
}

static void test_decode_rejects_truncated_sequences(void **state)
{
    uint32_t cp;

    (void)state;
    assert_rejected("\xc3");
    assert_rejected("\xe2\x82");
    assert_rejected("\xe2");
    assert_rejected("\xf0\x9f\x98");
    assert_rejected("\xf0\x9f");
    /* the bytes are there but len stops before them */
    assert_int_equal(field_utf8_decode("\xc3\xa9", 1, &cp), 0);
    assert_int_equal(field_utf8_decode("\xf0\x9f\x98\x80", 3, &cp), 0);
    assert_int_equal(field_utf8_decode("", 0, &cp), 0);
}

static void test_decode_rejects_bad_continuation(void **state)
{
    (void)state;
    assert_rejected("\x80"); /* lone continuation byte */
    assert_rejected("\xbf");
    assert_rejected("\xc3\x28"); /* second byte not 10xxxxxx */
    assert_rejected("\xc3\xc3");
    assert_rejected("\xe2\x28\xa1");
    assert_rejected("\xe2\x82\x28");
    assert_rejected("\xf0\x28\x8c\xbc");
    assert_rejected("\xf0\x9f\x98\x28");
}

/* ---- field_utf8_valid ---------------------------------------------------- */

static void test_valid_accepts_empty_and_mixed_text(void **state)
{
    static const char mixed[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80!";

    (void)state;
    assert_true(field_utf8_valid("", 0));
    assert_true(field_utf8_valid("plain ascii", 11));
    assert_true(field_utf8_valid(mixed, sizeof mixed - 1));
}

/* U+0000 is well-formed UTF-8; JSON strings reject it elsewhere. */
static void test_valid_accepts_nul_byte(void **state)
{
    (void)state;
    assert_true(field_utf8_valid("a\0b", 3));
}

static void test_valid_rejects_bad_byte_anywhere(void **state)
{
    (void)state;
    assert_false(field_utf8_valid("abc\xff", 4));
    assert_false(field_utf8_valid("\xffxyz", 4));
    assert_false(field_utf8_valid("a\xed\xa0\x80z", 5));
    assert_false(field_utf8_valid("ok \xf0\x9f\x98", 6)); /* truncated at the end */
    assert_false(field_utf8_valid("\xc0\xaf", 2));
}

/* ---- field_is_js_space --------------------------------------------------- */

static void test_js_space_whole_ecmascript_set(void **state)
{
    static const uint32_t set[] = {
        0x09,   0x0a,   0x0b,   0x0c,   0x0d,   0x20,   0xa0,   0x1680, 0x2000,
        0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009,
        0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff,
    };

    (void)state;
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        if (!field_is_js_space(set[i]))
            fail_msg("U+%04X should be JavaScript white space", (unsigned)set[i]);
    }
}

static void test_js_space_near_misses_are_not_space(void **state)
{
    /* U+0085 (NEL) is Unicode White_Space but not in ECMAScript's set, U+180E
     * (Mongolian vowel separator) is no longer a space, U+200B is zero width. */
    static const uint32_t misses[] = {
        0x00,   0x08,   0x0e,   0x1c,    0x1d,     0x1e,   0x1f,   0x21,   0x7f,
        0x85,   0x9f,   0xa1,   0x167f,  0x1681,   0x180e, 0x1fff, 0x200b, 0x200c,
        0x200d, 0x2027, 0x202a, 0x202e,  0x2030,   0x205e, 0x2060, 0x2fff, 0x3001,
        0xfefe, 0xfffe, 0xffff, 0x10000, 0x10ffff, 'a',
    };

    (void)state;
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        if (field_is_js_space(misses[i]))
            fail_msg("U+%04X should not be JavaScript white space", (unsigned)misses[i]);
    }
}

/* Exactly 25 code points in the BMP are in the set: nothing else slipped in. */
static void test_js_space_set_has_exactly_25_members(void **state)
{
    int count = 0;

    (void)state;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++)
        count += field_is_js_space(cp);
    assert_int_equal(count, 25);
}

/* ---- field_trim ---------------------------------------------------------- */

static void test_trim_ascii_white_space(void **state)
{
    (void)state;
    assert_trim(" \t\n\v\f\r abc \r\n\t ", "abc");
    assert_trim("abc", "abc");
}

static void test_trim_keeps_inner_space(void **state)
{
    (void)state;
    assert_trim("  a \t b  ", "a \t b");
    assert_trim("\xe3\x80\x80"
                "a\xe3\x80\x80"
                "b\xe3\x80\x80",
                "a\xe3\x80\x80"
                "b");
}

static void test_trim_unicode_spaces_both_ends(void **state)
{
    (void)state;
    /* NBSP, ideographic space, BOM, line and paragraph separators */
    assert_trim("\xc2\xa0\xe3\x80\x80\xef\xbb\xbf"
                "abc"
                "\xe2\x80\xa8\xe2\x80\xa9\xc2\xa0",
                "abc");
    /* ogham space mark, en quad, hair space, narrow NBSP, medium math space */
    assert_trim("\xe1\x9a\x80\xe2\x80\x80\xe2\x80\x8a"
                "x"
                "\xe2\x80\xaf\xe2\x81\x9f",
                "x");
}

static void test_trim_all_space_gives_empty(void **state)
{
    (void)state;
    assert_trim(" \t\xc2\xa0\xe3\x80\x80\xef\xbb\xbf\n", "");
    assert_trim("", "");
}

static void test_trim_does_not_remove_nel_u0085(void **state)
{
    (void)state;
    assert_trim("\xc2\x85"
                "a\xc2\x85",
                "\xc2\x85"
                "a\xc2\x85");
    assert_trim(" \xc2\x85 ", "\xc2\x85");
}

static void test_trim_does_not_remove_u180e(void **state)
{
    (void)state;
    assert_trim("\xe1\xa0\x8e"
                "a\xe1\xa0\x8e",
                "\xe1\xa0\x8e"
                "a\xe1\xa0\x8e");
}

static void test_trim_does_not_remove_zero_width_space_u200b(void **state)
{
    (void)state;
    assert_trim("\xe2\x80\x8b", "\xe2\x80\x8b");
    /* trimming stops at the ZWSP, spaces beyond it stay */
    assert_trim(" \xe2\x80\x8b a \xe2\x80\x8b ", "\xe2\x80\x8b a \xe2\x80\x8b");
}

static void test_trim_mixture_stops_at_first_non_space(void **state)
{
    (void)state;
    assert_trim("\xe2\x80\xa8\xe2\x80\x8a"
                "a"
                "\xe2\x80\x8b\xe2\x80\x8a",
                "a\xe2\x80\x8b");
    assert_trim("\t\xef\xbb\xbf\xc2\x85\xc2\xa0"
                "b"
                "\xc2\xa0",
                "\xc2\x85\xc2\xa0"
                "b");
}

static void test_trim_keeps_multibyte_edges(void **state)
{
    (void)state;
    assert_trim("  \xc3\xa9t\xc3\xa9  ", "\xc3\xa9t\xc3\xa9");
    assert_trim("\xf0\x9f\x98\x80 \xe2\x80\x80", "\xf0\x9f\x98\x80");
    assert_trim(" \xe2\x82\xac", "\xe2\x82\xac");
}

static void test_trim_within_a_sub_range(void **state)
{
    static const char s[] = "xx  a b  yy";
    size_t start = 2, end = 9;

    (void)state;
    field_trim(s, &start, &end);
    assert_int_equal(start, 4);
    assert_int_equal(end, 7);

    start = end = 3;
    field_trim(s, &start, &end);
    assert_int_equal(start, 3);
    assert_int_equal(end, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_ascii),
        cmocka_unit_test(test_decode_only_first_sequence),
        cmocka_unit_test(test_decode_two_byte),
        cmocka_unit_test(test_decode_three_byte),
        cmocka_unit_test(test_decode_four_byte_emoji),
        cmocka_unit_test(test_decode_rejects_overlong_forms),
        cmocka_unit_test(test_decode_rejects_surrogates),
        cmocka_unit_test(test_decode_rejects_above_10ffff),
        cmocka_unit_test(test_decode_rejects_truncated_sequences),
        cmocka_unit_test(test_decode_rejects_bad_continuation),
        cmocka_unit_test(test_valid_accepts_empty_and_mixed_text),
        cmocka_unit_test(test_valid_accepts_nul_byte),
        cmocka_unit_test(test_valid_rejects_bad_byte_anywhere),
        cmocka_unit_test(test_js_space_whole_ecmascript_set),
        cmocka_unit_test(test_js_space_near_misses_are_not_space),
        cmocka_unit_test(test_js_space_set_has_exactly_25_members),
        cmocka_unit_test(test_trim_ascii_white_space),
        cmocka_unit_test(test_trim_keeps_inner_space),
        cmocka_unit_test(test_trim_unicode_spaces_both_ends),
        cmocka_unit_test(test_trim_all_space_gives_empty),
        cmocka_unit_test(test_trim_does_not_remove_nel_u0085),
        cmocka_unit_test(test_trim_does_not_remove_u180e),
        cmocka_unit_test(test_trim_does_not_remove_zero_width_space_u200b),
        cmocka_unit_test(test_trim_mixture_stops_at_first_non_space),
        cmocka_unit_test(test_trim_keeps_multibyte_edges),
        cmocka_unit_test(test_trim_within_a_sub_range),
    };

    return cmocka_run_group_tests_name("field", tests, NULL, NULL);
}
