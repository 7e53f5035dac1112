/* test_jsonscan.c: strict JSON as JSON.parse takes it (SPEC section 2:
 * invalid UTF-8, U+0000, lone surrogates and more than 32 levels are 400),
 * and the raw text of a top-level member, last duplicate winning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

#define DEPTH 32 /* SPEC section 2: 32 levels accepted, 33 not */

/* Literals go with their exact size, so embedded NULs count. */
#define accepts(lit) assert_valid_text(lit, sizeof(lit) - 1, true)
#define rejects(lit) assert_valid_text(lit, sizeof(lit) - 1, false)

static void assert_valid_text(const char *s, size_t len, bool want)
{
    if (jsonscan_valid(s, len, DEPTH) != want)
        fail_msg("jsonscan_valid(%.*s) should be %s", (int)len, s,
                 want ? "true" : "false");
}

/* The raw text of the last member named key (decoded), as JSON.parse keeps
 * it, from jsonscan_parse()'s list; NULL when there is none. Every span
 * must lie inside the body. */
static char *member(const char *body, const char *key)
{
    struct json_members members = {0};
    enum json_kind top;
    size_t len = strlen(body);
    char *found = NULL;

    assert_true(jsonscan_valid(body, len, DEPTH));
    assert_true(jsonscan_parse(body, len, DEPTH, &top, &members));
    assert_int_equal(top, JSON_OBJECT);
    for (size_t i = 0; i < members.count; i++) {
        const struct json_member *m = &members.items[i];
        char name[1024];
        assert_true(m->key >= body && m->key + m->key_len <= body + len);
        assert_true(m->value >= body && m->value + m->value_len <= body + len);
        assert_true(m->key_len < sizeof name);
        size_t name_len = jsonscan_decode(m->key, m->key_len, name);
        assert_int_equal(m->key_escaped, memchr(m->key, '\\', m->key_len) != NULL);
        if (name_len == strlen(key) && memcmp(name, key, name_len) == 0) {
            free(found);
            found = strndup(m->value, m->value_len);
        }
    }
    jsonscan_members_free(&members);
    return found;
}

static void assert_member(const char *body, const char *key, const char *want)
{
    char *got = member(body, key);

    if (!got)
        fail_msg("no member %s in %s", key, body);
    assert_string_equal(got, want);
    free(got);
}

static void assert_no_member(const char *body, const char *key)
{
    char *got = member(body, key);

    if (got) {
        free(got);
        fail_msg("member %s should be absent from %s", key, body);
    }
}

/* depth levels of containers, alternating arrays and objects ({"a":[{"a":...}]}),
 * the outermost being an object when object_first. Returns a malloc-ed text. */
static char *nested(int depth, bool object_first)
{
    size_t cap = (size_t)depth * 8 + 16, n = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        bool obj = (i % 2 == 0) == object_first;
        const char *open = obj ? "{\"a\":" : "[";
        memcpy(s + n, open, strlen(open));
        n += strlen(open);
    }
    s[n++] = '1';
    for (int i = depth - 1; i >= 0; i--)
        s[n++] = ((i % 2 == 0) == object_first) ? '}' : ']';
    s[n] = '\0';
    return s;
}

/* ---- numbers ------------------------------------------------------------- */

static void test_numbers_valid_forms_accepted(void **state)
{
    (void)state;
    accepts("0");
    accepts("-0");
    accepts("1");
    accepts("-12");
    accepts("1.5");
    accepts("-0.0");
    accepts("1E+2");
    accepts("1e2");
    accepts("1e-2");
    accepts("1.5E3");
    accepts("0e0");
    accepts("[1e400]");
    accepts("123456789012345678901234567890");
}

static void test_number_leading_zero_01_rejected(void **state)
{
    (void)state;
    rejects("01");
    rejects("-01");
    rejects("[01]");
    rejects("{\"a\":00}");
}

static void test_number_trailing_dot_1_rejected(void **state)
{
    (void)state;
    rejects("1.");
    rejects("[1.]");
    rejects("1.e3");
}

static void test_number_leading_dot_5_rejected(void **state)
{
    (void)state;
    rejects(".5");
    rejects("[.5]");
}

static void test_number_plus_sign_rejected(void **state)
{
    (void)state;
    rejects("+1");
    rejects("[+1]");
}

static void test_number_lone_minus_rejected(void **state)
{
    (void)state;
    rejects("-");
    rejects("[-]");
    rejects("--1");
}

static void test_number_empty_exponent_rejected(void **state)
{
    (void)state;
    rejects("1e");
    rejects("1E+");
    rejects("1e-");
    rejects("[1e]");
}

static void test_number_hex_and_nan_infinity_rejected(void **state)
{
    (void)state;
    rejects("NaN");
    rejects("[NaN]");
    rejects("Infinity");
    rejects("-Infinity");
    rejects("{\"a\":Infinity}");
    rejects("0x10");
}

/* ---- literals, strings --------------------------------------------------- */

static void test_literals_exact_spelling(void **state)
{
    (void)state;
    accepts("true");
    accepts("false");
    accepts("null");
    rejects("True");
    rejects("nul");
    rejects("nulll");
    rejects("undefined");
    rejects("[tru]");
}

static void test_single_quotes_rejected(void **state)
{
    (void)state;
    rejects("'a'");
    rejects("{'a':1}");
    rejects("{\"a\":'b'}");
}

static void test_comments_rejected(void **state)
{
    (void)state;
    rejects("{\"a\":1 /* c */}");
    rejects("// c\n{}");
    rejects("{} // c");
    rejects("# c\n{}");
}

static void test_trailing_commas_rejected(void **state)
{
    (void)state;
    rejects("{\"a\":1,}");
    rejects("[1,]");
    rejects("[,1]");
    rejects("[1,,2]");
    rejects("{,}");
    rejects("{\"a\":1,,\"b\":2}");
}

static void test_object_syntax_errors_rejected(void **state)
{
    (void)state;
    rejects("{a:1}");
    rejects("{1:1}");
    rejects("{\"a\" 1}");
    rejects("{\"a\":}");
    rejects("{\"a\"}");
    rejects("{\"a\":1");
    rejects("[1");
    rejects("{\"a\":1]");
    rejects("[1}");
}

static void test_raw_control_characters_in_strings_rejected(void **state)
{
    (void)state;
    rejects("\"a\tb\"");
    rejects("\"a\nb\"");
    rejects("\"a\rb\"");
    rejects("\"\x01\"");
    rejects("\"\x1f\"");
    rejects("{\"a\tb\":1}");
    rejects("\"a\0b\""); /* a raw NUL byte */
    accepts("\"a\x7f"
            "b\""); /* DEL is not a control character for JSON */
}

static void test_escape_u0000_rejected(void **state)
{
    (void)state;
    rejects("\"\\u0000\"");
    rejects("\"a\\u0000b\"");
    rejects("{\"a\\u0000\":1}"); /* in a key too */
    accepts("\"\\u0001\"");
}

static void test_lone_high_surrogate_rejected(void **state)
{
    (void)state;
    rejects("\"\\ud800\"");
    rejects("\"\\uDBFF\"");
    rejects("\"\\ud800x\"");
    rejects("\"\\ud800\\u0041\"");
    rejects("\"\\ud800\\ud800\"");
    rejects("\"\\ud83d\\n\"");
    rejects("{\"\\ud800\":1}");
}

static void test_lone_low_surrogate_rejected(void **state)
{
    (void)state;
    rejects("\"\\udc00\"");
    rejects("\"\\uDFFF\"");
    rejects("\"\\ude00\\ud83d\""); /* pair in the wrong order */
}

static void test_valid_surrogate_pair_accepted(void **state)
{
    (void)state;
    accepts("\"\\ud83d\\ude00\"");
    accepts("\"\\uD83D\\uDE00\"");
    accepts("\"\\udbff\\udfff\""); /* U+10FFFF */
    accepts("{\"\\ud83d\\ude00\":\"x\"}");
}

static void test_valid_escapes_accepted(void **state)
{
    (void)state;
    accepts("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uFFFF\"");
}

static void test_bad_escapes_rejected(void **state)
{
    (void)state;
    rejects("\"\\x41\"");
    rejects("\"\\a\"");
    rejects("\"\\'\"");
    rejects("\"\\U0041\"");
    rejects("\"\\u12\"");
    rejects("\"\\u12G4\"");
    rejects("\"\\u\"");
    rejects("\"\\\""); /* backslash escapes the closing quote */
    rejects("\"\\");   /* ends after the backslash */
    rejects("\"\\0\"");
}

static void test_invalid_utf8_rejected(void **state)
{
    (void)state;
    rejects("\"\xff\"");
    rejects("\"\xc0\xaf\"");         /* overlong */
    rejects("\"\xed\xa0\x80\"");     /* encoded surrogate */
    rejects("\"\xf4\x90\x80\x80\""); /* above U+10FFFF */
    rejects("\"\xc3\"");             /* truncated */
    rejects("{\"\xff\":1}");
    rejects("\xef\xbb\xbf{}"); /* a BOM is not JSON white space */
    accepts("\"h\xc3\xa9 \xf0\x9f\x98\x80\"");
}

static void test_unterminated_string_rejected(void **state)
{
    (void)state;
    rejects("\"abc");
    rejects("{\"a\":\"b}");
}

/* ---- the text as a whole ------------------------------------------------- */

static void test_trailing_garbage_rejected(void **state)
{
    (void)state;
    rejects("{}x");
    rejects("{} {}");
    rejects("{}}");
    rejects("[] 1");
    rejects("1 2");
    rejects("{}\0"); /* a NUL after the text counts */
    rejects("\"a\"\"b\"");
}

static void test_white_space_around_accepted(void **state)
{
    (void)state;
    accepts(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n\t\r ");
    accepts("\n[]\n");
}

static void test_non_json_white_space_rejected(void **state)
{
    (void)state;
    rejects("\f{}");
    rejects("{}\v");
    rejects("\xc2\xa0{}"); /* NBSP */
    rejects("{\"a\":\f1}");
}

static void test_empty_text_rejected(void **state)
{
    (void)state;
    rejects("");
    rejects(" ");
    rejects("\n\t ");
}

static void test_depth_32_accepted_mixed_objects_arrays(void **state)
{
    char *a = nested(32, true), *b = nested(32, false);

    (void)state;
    assert_true(jsonscan_valid(a, strlen(a), DEPTH));
    assert_true(jsonscan_valid(b, strlen(b), DEPTH));
    free(a);
    free(b);
}

static void test_depth_33_rejected_mixed_objects_arrays(void **state)
{
    char *a = nested(33, true), *b = nested(33, false);

    (void)state;
    assert_false(jsonscan_valid(a, strlen(a), DEPTH));
    assert_false(jsonscan_valid(b, strlen(b), DEPTH));
    free(a);
    free(b);
}

/* Depth is nesting, not the count of containers: siblings do not add up. */
static void test_depth_counts_nesting_not_siblings(void **state)
{
    char *deep = nested(31, false);
    size_t len = strlen(deep) * 3 + 32;
    char *s = malloc(len);

    (void)state;
    assert_non_null(s);
    snprintf(s, len, "{\"x\":%s,\"y\":%s,\"z\":%s}", deep, deep, deep);
    assert_true(jsonscan_valid(s, strlen(s), DEPTH));
    free(s);
    free(deep);
}

static void test_depth_limit_is_a_parameter(void **state)
{
    (void)state;
    assert_true(jsonscan_valid("[[1]]", 5, 2));
    assert_false(jsonscan_valid("[[1]]", 5, 1));
    assert_true(jsonscan_valid("1", 1, 1));
    assert_true(jsonscan_valid("{}", 2, 1));
}

/* Scalars and arrays are valid JSON texts; whether a body may be one is the
 * schema's business. */
static void test_any_top_level_value_accepted(void **state)
{
    (void)state;
    accepts("\"x\"");
    accepts("[]");
    accepts("{}");
    accepts("42");
}

/* The length is honoured: no reading past it, no need for a NUL. */
static void test_length_bounds_the_text(void **state)
{
    static const char s[] = "{\"a\":1}garbage";

    (void)state;
    assert_true(jsonscan_valid(s, 7, DEPTH));
    assert_false(jsonscan_valid(s, 6, DEPTH));
    assert_false(jsonscan_valid("\"abc\"", 4, DEPTH));
    assert_false(jsonscan_valid("truex", 3, DEPTH));
}

/* ---- jsonscan_parse: the top-level members -------------------------------- */

static void test_member_simple_values(void **state)
{
    (void)state;
    assert_member("{\"a\":1,\"b\":\"two\",\"c\":null}", "a", "1");
    assert_member("{\"a\":1,\"b\":\"two\",\"c\":null}", "b", "\"two\"");
    assert_member("{\"a\":1,\"b\":\"two\",\"c\":null}", "c", "null");
}

static void test_member_last_duplicate_wins(void **state)
{
    (void)state;
    assert_member("{\"metadata\":{\"v\":1},\"x\":0,\"metadata\":{\"v\":2}}", "metadata",
                  "{\"v\":2}");
    assert_member("{\"a\":1,\"a\":2,\"a\":3}", "a", "3");
}

static void test_member_escaped_key_name_matches(void **state)
{
    (void)state;
    assert_member("{\"meta\\u0064ata\":{\"k\":true}}", "metadata", "{\"k\":true}");
    assert_member("{\"\\u006d\\u0065tadata\":[]}", "metadata", "[]");
    assert_member("{\"a\\/b\":5}", "a/b", "5");
    /* a plain and an escaped spelling are the same key: the last one wins */
    assert_member("{\"metadata\":1,\"meta\\u0064ata\":2}", "metadata", "2");
    assert_member("{\"meta\\u0064ata\":1,\"metadata\":2}", "metadata", "2");
}

static void test_member_nested_not_confused_with_top_level(void **state)
{
    (void)state;
    assert_no_member("{\"outer\":{\"metadata\":1}}", "metadata");
    assert_no_member("{\"list\":[{\"metadata\":1}]}", "metadata");
    assert_member("{\"outer\":{\"metadata\":1},\"metadata\":2}", "metadata", "2");
    assert_member("{\"metadata\":2,\"outer\":{\"metadata\":1}}", "metadata", "2");
    /* a string value that looks like a member */
    assert_no_member("{\"x\":\"\\\"metadata\\\":1\"}", "metadata");
    assert_member("{\"a\\\"metadata\":1,\"metadata\":3}", "metadata", "3");
}

static void test_member_raw_span_exact_text(void **state)
{
    (void)state;
    /* numbers JavaScript keeps but a double or int64 would change */
    assert_member("{\"n\":1e400}", "n", "1e400");
    assert_member("{\"n\":123456789012345678901234567890}", "n",
                  "123456789012345678901234567890");
    assert_member("{\"n\":-0.000000000000000000001}", "n", "-0.000000000000000000001");
    assert_member("{\"n\":1.0}", "n", "1.0");
    /* inner white space and escapes are kept as written */
    assert_member("{\"metadata\": {\"a\" : [1, 2.50, \"\\u00e9\"]} , \"z\":0}",
                  "metadata", "{\"a\" : [1, 2.50, \"\\u00e9\"]}");
    assert_member("{\"s\":\"a\\\"b\\\\\"}", "s", "\"a\\\"b\\\\\"");
}

static void test_member_span_excludes_surrounding_space(void **state)
{
    (void)state;
    assert_member("{ \"n\" :\n 42 \t}", "n", "42");
    assert_member(" {\"n\":[ ] }\n", "n", "[ ]");
}

static void test_member_absent_key(void **state)
{
    (void)state;
    assert_no_member("{}", "metadata");
    assert_no_member("{ }", "metadata");
    assert_no_member("{\"metadataX\":1}", "metadata");
    assert_no_member("{\"meta\":1}", "metadata");
    assert_no_member("{\"Metadata\":1}", "metadata");
    assert_no_member("{\"metadata \":1}", "metadata");
}

static void test_member_long_key_before_target(void **state)
{
    char body[1200];
    char key[600];

    (void)state;
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(body, sizeof body, "{\"%s\":1,\"metadata\":{\"v\":9}}", key);
    assert_member(body, "metadata", "{\"v\":9}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_valid_forms_accepted),
        cmocka_unit_test(test_number_leading_zero_01_rejected),
        cmocka_unit_test(test_number_trailing_dot_1_rejected),
        cmocka_unit_test(test_number_leading_dot_5_rejected),
        cmocka_unit_test(test_number_plus_sign_rejected),
        cmocka_unit_test(test_number_lone_minus_rejected),
        cmocka_unit_test(test_number_empty_exponent_rejected),
        cmocka_unit_test(test_number_hex_and_nan_infinity_rejected),
        cmocka_unit_test(test_literals_exact_spelling),
        cmocka_unit_test(test_single_quotes_rejected),
        cmocka_unit_test(test_comments_rejected),
        cmocka_unit_test(test_trailing_commas_rejected),
        cmocka_unit_test(test_object_syntax_errors_rejected),
        cmocka_unit_test(test_raw_control_characters_in_strings_rejected),
        cmocka_unit_test(test_escape_u0000_rejected),
        cmocka_unit_test(test_lone_high_surrogate_rejected),
        cmocka_unit_test(test_lone_low_surrogate_rejected),
        cmocka_unit_test(test_valid_surrogate_pair_accepted),
        cmocka_unit_test(test_valid_escapes_accepted),
        cmocka_unit_test(test_bad_escapes_rejected),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_unterminated_string_rejected),
        cmocka_unit_test(test_trailing_garbage_rejected),
        cmocka_unit_test(test_white_space_around_accepted),
        cmocka_unit_test(test_non_json_white_space_rejected),
        cmocka_unit_test(test_empty_text_rejected),
        cmocka_unit_test(test_depth_32_accepted_mixed_objects_arrays),
        cmocka_unit_test(test_depth_33_rejected_mixed_objects_arrays),
        cmocka_unit_test(test_depth_counts_nesting_not_siblings),
        cmocka_unit_test(test_depth_limit_is_a_parameter),
        cmocka_unit_test(test_any_top_level_value_accepted),
        cmocka_unit_test(test_length_bounds_the_text),
        cmocka_unit_test(test_member_simple_values),
        cmocka_unit_test(test_member_last_duplicate_wins),
        cmocka_unit_test(test_member_escaped_key_name_matches),
        cmocka_unit_test(test_member_nested_not_confused_with_top_level),
        cmocka_unit_test(test_member_raw_span_exact_text),
        cmocka_unit_test(test_member_span_excludes_surrounding_space),
        cmocka_unit_test(test_member_absent_key),
        cmocka_unit_test(test_member_long_key_before_target),
    };

    return cmocka_run_group_tests_name("jsonscan", tests, NULL, NULL);
}
