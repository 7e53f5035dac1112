/* test_etag.c: a version's entity tag, and the If-Match / If-None-Match
 * lists (RFC 9110, 8.8.3 and 13.1): "*", strong and weak comparison, list
 * syntax (empty elements, white space), and lists that name nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "etag.h"

static void test_format(void **state)
{
    char tag[ETAG_MAX];

    (void)state;
    etag_format(1, tag);
    assert_string_equal(tag, "\"1\"");
    etag_format(1234567890, tag);
    assert_string_equal(tag, "\"1234567890\"");
    etag_format(INT64_MAX, tag);
    assert_string_equal(tag, "\"9223372036854775807\"");
}

static void test_condition_of(void **state)
{
    (void)state;
    assert_int_equal(etag_condition_of(NULL), ETAG_ABSENT);
    assert_int_equal(etag_condition_of(""), ETAG_ABSENT);
    assert_int_equal(etag_condition_of(" \t "), ETAG_ABSENT);
    assert_int_equal(etag_condition_of("*"), ETAG_ANY);
    assert_int_equal(etag_condition_of(" * "), ETAG_ANY);
    assert_int_equal(etag_condition_of("\"1\""), ETAG_LIST);
    /* "*" is only ever the whole value; in a list it is a syntax error */
    assert_int_equal(etag_condition_of("*, \"1\""), ETAG_LIST);
    assert_int_equal(etag_condition_of("garbage"), ETAG_LIST);
}

static void test_strong_comparison(void **state)
{
    (void)state;
    assert_true(etag_matches("\"5\"", 5, false));
    assert_false(etag_matches("\"5\"", 6, false));
    assert_false(etag_matches("W/\"5\"", 5, false));
    assert_true(etag_matches("W/\"5\", \"5\"", 5, false));
    assert_true(etag_matches("\"1\", \"2\", \"5\"", 5, false));
    assert_true(etag_matches("\"9223372036854775807\"", INT64_MAX, false));
}

static void test_weak_comparison(void **state)
{
    (void)state;
    assert_true(etag_matches("W/\"5\"", 5, true));
    assert_true(etag_matches("\"5\"", 5, true));
    assert_false(etag_matches("W/\"6\"", 5, true));
}

static void test_star_and_absent(void **state)
{
    (void)state;
    assert_true(etag_matches("*", 5, false));
    assert_true(etag_matches(" *\t", 5, true));
    assert_false(etag_matches(NULL, 5, false));
    assert_false(etag_matches("", 5, true));
}

static void test_list_syntax(void **state)
{
    (void)state;
    /* empty elements and optional white space are allowed (RFC 9110, 5.6.1) */
    assert_true(etag_matches(", ,\t\"5\" ,", 5, false));
    assert_true(etag_matches("\"4\",\"5\"", 5, false));
    assert_true(etag_matches(" \"4\" , \"5\" ", 5, false));
    /* two header lines, joined */
    assert_true(etag_matches("\"4\", \"5\"", 5, false));
}

static void test_malformed_lists_match_nothing(void **state)
{
    (void)state;
    assert_false(etag_matches("5", 5, false));
    assert_false(etag_matches("\"5", 5, false));
    assert_false(etag_matches("\"5\" x", 5, false));
    assert_false(etag_matches("\"5\", garbage", 5, true));
    assert_false(etag_matches("\"5\" \"6\"", 5, false));
    assert_false(etag_matches("w/\"5\"", 5, true)); /* W/ is case-sensitive */
    assert_false(etag_matches("*, \"5\"", 5, false));
    assert_false(etag_matches("\"5 \"", 5, false)); /* a space is no etagc */
}

static void test_tags_that_are_no_version(void **state)
{
    (void)state;
    assert_false(etag_matches("\"05\"", 5, false));
    assert_false(etag_matches("\"+5\"", 5, false));
    assert_false(etag_matches("\"\"", 0, false));
    assert_false(etag_matches("\"abc\"", 5, false));
    assert_false(etag_matches("\"9223372036854775808\"", INT64_MAX, false));
    assert_false(etag_matches("\"18446744073709551621\"", 5, false)); /* 2^64 + 5 */
}

static void assert_versions(const char *header, const char *want)
{
    struct buf out = {0};

    if (!want) {
        assert_false(etag_versions(header, &out));
        assert_int_equal(out.len, 0);
        return;
    }
    assert_true(etag_versions(header, &out));
    assert_string_equal(out.data, want);
    buf_free(&out);
}

static void test_versions(void **state)
{
    (void)state;
    assert_versions(NULL, NULL);
    assert_versions("", NULL);
    assert_versions("*", NULL);
    assert_versions("\"5\"", "{5}");
    assert_versions("\"5\", W/\"6\", \"abc\", \"007\", \"7\"", "{5,7}");
    assert_versions("W/\"5\"", "{}");
    assert_versions("\"5\", garbage", "{}");
    assert_versions("\"9223372036854775807\"", "{9223372036854775807}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_condition_of),
        cmocka_unit_test(test_strong_comparison),
        cmocka_unit_test(test_weak_comparison),
        cmocka_unit_test(test_star_and_absent),
        cmocka_unit_test(test_list_syntax),
        cmocka_unit_test(test_malformed_lists_match_nothing),
        cmocka_unit_test(test_tags_that_are_no_version),
        cmocka_unit_test(test_versions),
    };
    return cmocka_run_group_tests_name("etag", tests, NULL, NULL);
}
