/* test_schema.c: request bodies against the three profiles' schemas, worded
 * by each validator: zod 4 for Recoup (SPEC 3, first problem wins), zod 3 for
 * Neptun (SPEC 4, one issue with its code), class-validator for LeanMCP
 * (SPEC 5, every problem in field order, then unknown keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

extern const struct api_profile api_recoup, api_neptun, api_leanmcp;

#define RECOUP  (&api_recoup)
#define NEPTUN  (&api_neptun)
#define LEANMCP (&api_leanmcp)

/* The body is a literal, so an embedded NUL byte counts. */
#define check_lit(api, lit, out) schema_check(api, lit, sizeof(lit) - 1, out)

static struct body_check check_text(const struct api_profile *api, const char *body)
{
    struct body_check c;

    schema_check(api, body, strlen(body), &c);
    return c;
}

static size_t field_index(const struct api_profile *api, const char *key)
{
    for (size_t i = 0; i < api->nfields; i++)
        if (strcmp(api->fields[i].key, key) == 0)
            return i;
    fail_msg("profile %s has no field %s", api->name, key);
    return 0;
}

static const struct field_value *value_of(const struct api_profile *api,
                                          const struct body_check *c, const char *key)
{
    return &c->values[field_index(api, key)];
}

static void assert_given_text(const struct api_profile *api, const struct body_check *c,
                              const char *key, const char *want)
{
    const struct field_value *v = value_of(api, c, key);

    if (!v->given)
        fail_msg("%s should be given", key);
    if (!want) {
        assert_null(v->text);
        return;
    }
    assert_non_null(v->text);
    assert_string_equal(v->text, want);
}

static void assert_not_given(const struct api_profile *api, const struct body_check *c,
                             const char *key)
{
    const struct field_value *v = value_of(api, c, key);

    assert_false(v->given);
    assert_null(v->text);
}

/* body fails the schema and the first problem's message is want. */
static void assert_first_problem(const struct api_profile *api, const char *body,
                                 const char *want)
{
    struct body_check c = check_text(api, body);

    if (c.failure != FAIL_SCHEMA)
        fail_msg("%s: body %s: failure %d, want FAIL_SCHEMA (\"%s\")", api->name, body,
                 (int)c.failure, want);
    assert_true(c.issues.count >= 1);
    if (strcmp(c.issues.items[0].message, want) != 0)
        fail_msg("%s: body %s: first problem \"%s\", want \"%s\"", api->name, body,
                 c.issues.items[0].message, want);
    schema_free(&c);
}

/* body fails the schema with exactly the problems want[0..n), in order. */
static void assert_problems(const struct api_profile *api, const char *body,
                            const char *const *want, size_t n)
{
    struct body_check c = check_text(api, body);

    if (c.failure != FAIL_SCHEMA)
        fail_msg("%s: body %s: failure %d, want FAIL_SCHEMA", api->name, body,
                 (int)c.failure);
    for (size_t i = 0; i < n && i < c.issues.count; i++)
        if (strcmp(c.issues.items[i].message, want[i]) != 0)
            fail_msg("%s: body %s: problem %zu \"%s\", want \"%s\"", api->name, body, i,
                     c.issues.items[i].message, want[i]);
    if (c.issues.count != n)
        fail_msg("%s: body %s: %zu problems, want %zu", api->name, body, c.issues.count,
                 n);
    schema_free(&c);
}

#define PROBLEMS(api, body, ...)                                                         \
    do {                                                                                 \
        static const char *const want_[] = {__VA_ARGS__};                                \
        assert_problems(api, body, want_, sizeof want_ / sizeof want_[0]);               \
    } while (0)

/* Neptun: one issue, with its zod code, message and path ["name"]. */
static void assert_neptun_issue(const char *body, const char *code, const char *message)
{
    struct body_check c = check_text(NEPTUN, body);

    if (c.failure != FAIL_SCHEMA)
        fail_msg("neptun: body %s: failure %d, want FAIL_SCHEMA", body, (int)c.failure);
    assert_int_equal(c.issues.count, 1);
    assert_string_equal(c.issues.items[0].code, code);
    assert_string_equal(c.issues.items[0].message, message);
    assert_non_null(c.issues.items[0].field);
    assert_string_equal(c.issues.items[0].field, "name");
    schema_free(&c);
}

static void assert_failure(const struct api_profile *api, const char *body, size_t len,
                           enum local_failure want)
{
    struct body_check c;

    schema_check(api, body, len, &c);
    if (c.failure != want)
        fail_msg("%s: body %.*s: failure %d, want %d", api->name, (int)len, body,
                 (int)c.failure, (int)want);
    schema_free(&c);
}

#define assert_json_failure(api, lit) assert_failure(api, lit, sizeof(lit) - 1, FAIL_JSON)

/* {"<key>": <depth - 1 levels of [[...]]>} plus other members: depth levels in
 * all. Returns a malloc-ed text. */
static char *nested_body(const char *members, const char *key, int depth)
{
    size_t cap = strlen(members) + strlen(key) + 2 * (size_t)depth + 32;
    char *s = malloc(cap);
    size_t n;

    assert_non_null(s);
    n = (size_t)snprintf(s, cap, "{%s\"%s\":", members, key);
    for (int i = 1; i < depth; i++)
        s[n++] = '[';
    s[n++] = '1';
    for (int i = 1; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

/* ---- the three profiles: invalid JSON ------------------------------------ */

static void test_invalid_json_is_fail_json_for_every_profile(void **state)
{
    const struct api_profile *apis[] = {RECOUP, NEPTUN, LEANMCP};

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        const struct api_profile *api = apis[i];
        assert_json_failure(api, "");
        assert_json_failure(api, "   ");
        assert_json_failure(api, "{");
        assert_json_failure(api, "{\"title\":\"a\",}");
        assert_json_failure(api, "{'title':'a'}");
        assert_json_failure(api, "{\"title\":\"a\"} x");
        assert_json_failure(api, "{\"name\":NaN}");
        assert_json_failure(api, "{\"title\":01}");
        assert_json_failure(api, "{\"title\":\"a\tb\"}");
        assert_json_failure(api, "{\"title\":\"\\ud800\"}");
        assert_json_failure(api, "{\"name\":\"\\udc00\"}");
        assert_json_failure(api, "{\"title\":\"a\\u0000\"}");
        assert_json_failure(api, "{\"name\":\"\xff\"}");
        assert_json_failure(api, "{\"title\":\"\xed\xa0\x80\"}");
        assert_json_failure(api, "{\"title\":\"a\"}\0");
        assert_json_failure(api, "{\"title\":\"a\" /* c */}");
    }
}

static void test_depth_32_accepted_33_fail_json(void **state)
{
    char *ok_recoup = nested_body("\"title\":\"t\",", "x", 32);
    char *bad_recoup = nested_body("\"title\":\"t\",", "x", 33);
    char *ok_neptun = nested_body("\"name\":\"n\",", "x", 32);
    char *bad_neptun = nested_body("\"name\":\"n\",", "x", 33);
    struct body_check c;

    (void)state;
    /* Recoup: the JSON is fine, so the problem is the unknown key */
    assert_first_problem(RECOUP, ok_recoup, "Unrecognized key: \"x\"");
    assert_failure(RECOUP, bad_recoup, strlen(bad_recoup), FAIL_JSON);
    /* Neptun ignores unknown keys */
    c = check_text(NEPTUN, ok_neptun);
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(NEPTUN, &c, "name", "n");
    schema_free(&c);
    assert_failure(NEPTUN, bad_neptun, strlen(bad_neptun), FAIL_JSON);
    free(ok_recoup);
    free(bad_recoup);
    free(ok_neptun);
    free(bad_neptun);
}

static void test_leanmcp_metadata_depth_32_accepted_33_fail_json(void **state)
{
    /* {"metadata":{"a":{"a":...}}}: 32 levels in all, then 33 */
    char ok[512], bad[512];
    size_t n = 0;

    (void)state;
    for (int depth = 32; depth <= 33; depth++) {
        char *s = depth == 32 ? ok : bad;
        n = (size_t)snprintf(s, sizeof ok, "{\"metadata\":");
        for (int i = 2; i < depth; i++)
            n += (size_t)snprintf(s + n, sizeof ok - n, "{\"a\":");
        n += (size_t)snprintf(s + n, sizeof ok - n, "{}");
        for (int i = 2; i < depth; i++)
            s[n++] = '}';
        s[n++] = '}';
        s[n] = '\0';
    }
    struct body_check c = check_text(LEANMCP, ok);
    assert_int_equal(c.failure, FAIL_NONE);
    assert_true(value_of(LEANMCP, &c, "metadata")->given);
    schema_free(&c);
    assert_failure(LEANMCP, bad, strlen(bad), FAIL_JSON);
}

/* ---- Recoup: zod 4 ------------------------------------------------------- */

static void test_recoup_title_and_model_trimmed(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(RECOUP,
                   "{\"title\":\"  Hello world \\n\",\"modelId\":\"\\tgpt-4o\\u3000\"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_int_equal(c.issues.count, 0);
    assert_given_text(RECOUP, &c, "title", "Hello world");
    assert_given_text(RECOUP, &c, "modelId", "gpt-4o");
    schema_free(&c);
}

static void test_recoup_one_field_enough(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(RECOUP, "{\"modelId\":\"m\"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_not_given(RECOUP, &c, "title");
    assert_given_text(RECOUP, &c, "modelId", "m");
    schema_free(&c);
}

static void test_recoup_trims_javascript_white_space_only(void **state)
{
    struct body_check c;

    (void)state;
    check_lit(RECOUP,
              "{\"title\":\"\\u00a0\\ufeff\xe2\x80\xa8 A "
              "\\u2000\",\"modelId\":\"\\u200bm\\u0085\"}",
              &c);
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(RECOUP, &c, "title", "A");
    assert_given_text(RECOUP, &c, "modelId", "\xe2\x80\x8bm\xc2\x85");
    schema_free(&c);
}

static void test_recoup_zero_width_space_is_not_empty(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(RECOUP, "{\"title\":\"\\u200b\"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(RECOUP, &c, "title", "\xe2\x80\x8b");
    schema_free(&c);
}

/* SPEC 3: a top level that is not an object gives "Invalid input: expected
 * object, received <null|number|boolean|array|string>": every JSON text that
 * is not an object reaches the schema, whatever ends it. */
static void test_recoup_not_object_null_message(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "null", "Invalid input: expected object, received null");
    assert_first_problem(RECOUP, " null\n",
                         "Invalid input: expected object, received null");
}

static void test_recoup_not_object_number_message(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, " 7 ",
                         "Invalid input: expected object, received number");
    assert_first_problem(RECOUP, "42", "Invalid input: expected object, received number");
    assert_first_problem(RECOUP, "-1.5e3",
                         "Invalid input: expected object, received number");
    assert_first_problem(RECOUP, "0", "Invalid input: expected object, received number");
}

static void test_recoup_not_object_boolean_message(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "false\n",
                         "Invalid input: expected object, received boolean");
    assert_first_problem(RECOUP, "true",
                         "Invalid input: expected object, received boolean");
}

static void test_recoup_not_object_array_message(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "[]", "Invalid input: expected object, received array");
    assert_first_problem(RECOUP, "[{\"title\":\"a\"}]",
                         "Invalid input: expected object, received array");
}

static void test_recoup_not_object_string_message(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "\"x\"",
                         "Invalid input: expected object, received string");
}

static void test_recoup_wrong_type_messages(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{\"title\":1}",
                         "Invalid input: expected string, received number");
    assert_first_problem(RECOUP, "{\"title\":null}",
                         "Invalid input: expected string, received null");
    assert_first_problem(RECOUP, "{\"title\":false}",
                         "Invalid input: expected string, received boolean");
    assert_first_problem(RECOUP, "{\"title\":[\"a\"]}",
                         "Invalid input: expected string, received array");
    assert_first_problem(RECOUP, "{\"modelId\":{}}",
                         "Invalid input: expected string, received object");
}

static void test_recoup_empty_messages(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{\"title\":\"\"}", "title cannot be empty");
    assert_first_problem(RECOUP, "{\"title\":\" \\t\\u3000\"}", "title cannot be empty");
    assert_first_problem(RECOUP, "{\"modelId\":\"\\n\"}", "modelId cannot be empty");
    assert_first_problem(RECOUP, "{\"title\":\"ok\",\"modelId\":\" \"}",
                         "modelId cannot be empty");
}

static void test_recoup_unknown_key_message(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{\"title\":\"a\",\"foo\":1}",
                         "Unrecognized key: \"foo\"");
    assert_first_problem(RECOUP, "{\"foo\":1}", "Unrecognized key: \"foo\"");
}

static void test_recoup_unknown_keys_in_body_order(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{\"zeta\":1,\"title\":\"a\",\"alpha\":2}",
                         "Unrecognized keys: \"zeta\", \"alpha\"");
    assert_first_problem(RECOUP, "{\"b\":1,\"c\":2,\"a\":3}",
                         "Unrecognized keys: \"b\", \"c\", \"a\"");
}

/* JSON.parse keeps one key per name: a repeated unknown key is one key. */
static void test_recoup_repeated_unknown_key_counted_once(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{\"title\":\"a\",\"x\":1,\"x\":2}",
                         "Unrecognized key: \"x\"");
}

static void test_recoup_none_given(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{}", "At least one field is required");
    assert_first_problem(RECOUP, " { } ", "At least one field is required");
}

/* Order: top-level type, title (type, empty), modelId (type, empty), unknown
 * keys, none given. */
static void test_recoup_order_of_messages(void **state)
{
    (void)state;
    assert_first_problem(RECOUP, "{\"foo\":1,\"modelId\":2,\"title\":3}",
                         "Invalid input: expected string, received number");
    assert_first_problem(RECOUP, "{\"foo\":1,\"modelId\":2,\"title\":\"\"}",
                         "title cannot be empty");
    assert_first_problem(RECOUP, "{\"foo\":1,\"modelId\":2,\"title\":\"t\"}",
                         "Invalid input: expected string, received number");
    assert_first_problem(RECOUP, "{\"foo\":1,\"modelId\":\" \",\"title\":\"t\"}",
                         "modelId cannot be empty");
    assert_first_problem(RECOUP, "{\"modelId\":\"\",\"foo\":1}",
                         "modelId cannot be empty");
    assert_first_problem(RECOUP, "{\"foo\":1}", "Unrecognized key: \"foo\"");
}

static void test_recoup_last_duplicate_wins(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(RECOUP, "{\"title\":\"first\",\"title\":\" second \"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(RECOUP, &c, "title", "second");
    schema_free(&c);
    assert_first_problem(RECOUP, "{\"title\":\"ok\",\"title\":\"\"}",
                         "title cannot be empty");
}

static void test_recoup_escaped_key_is_the_field(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(RECOUP, "{\"t\\u0069tle\":\"x\"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(RECOUP, &c, "title", "x");
    schema_free(&c);
}

static void test_recoup_unicode_value_kept(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(RECOUP, "{\"title\":\" caf\\u00e9 \\ud83d\\ude00 \"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(RECOUP, &c, "title", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    schema_free(&c);
}

/* ---- Neptun: zod 3 ------------------------------------------------------- */

static void test_neptun_name_trimmed(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(NEPTUN, "{\"name\":\"\\u3000 My chat \\t\"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_int_equal(c.issues.count, 0);
    assert_given_text(NEPTUN, &c, "name", "My chat");
    schema_free(&c);
}

static void test_neptun_unknown_keys_ignored(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(NEPTUN, "{\"a\":1,\"name\":\"n\",\"model\":\"x\"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(NEPTUN, &c, "name", "n");
    schema_free(&c);
}

static void test_neptun_missing_name_required(void **state)
{
    (void)state;
    assert_neptun_issue("{}", "invalid_type", "Required");
    assert_neptun_issue("{\"title\":\"x\"}", "invalid_type", "Required");
}

static void test_neptun_wrong_type_with_code(void **state)
{
    (void)state;
    assert_neptun_issue("{\"name\":1}", "invalid_type",
                        "Expected string, received number");
    assert_neptun_issue("{\"name\":null}", "invalid_type",
                        "Expected string, received null");
    assert_neptun_issue("{\"name\":true}", "invalid_type",
                        "Expected string, received boolean");
    assert_neptun_issue("{\"name\":[]}", "invalid_type",
                        "Expected string, received array");
    assert_neptun_issue("{\"name\":{}}", "invalid_type",
                        "Expected string, received object");
}

static void test_neptun_empty_too_small(void **state)
{
    (void)state;
    assert_neptun_issue("{\"name\":\"\"}", "too_small",
                        "String must contain at least 1 character(s)");
    assert_neptun_issue("{\"name\":\" \\u00a0\\n\"}", "too_small",
                        "String must contain at least 1 character(s)");
}

/* SPEC 4: "A top level that is not an object answers row 4" (invalid JSON). */
static void test_neptun_not_object_is_fail_json(void **state)
{
    (void)state;
    assert_json_failure(NEPTUN, "null");
    assert_json_failure(NEPTUN, "1");
    assert_json_failure(NEPTUN, "true");
    assert_json_failure(NEPTUN, "\"name\"");
    assert_json_failure(NEPTUN, "[]");
    assert_json_failure(NEPTUN, "[{\"name\":\"x\"}]");
}

static void test_neptun_exactly_one_issue_even_with_unknown_keys(void **state)
{
    (void)state;
    assert_neptun_issue("{\"x\":1,\"name\":5,\"y\":2}", "invalid_type",
                        "Expected string, received number");
}

/* ---- LeanMCP: class-validator -------------------------------------------- */

static void test_leanmcp_all_fields_stored(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP,
                   "{\"title\":\" T \",\"summary\":\" S \",\"modelUsed\":\" M \","
                   "\"systemMessageId\":\" I \",\"metadata\":{\"k\":\"v\"}}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(LEANMCP, &c, "title", "T");
    assert_given_text(LEANMCP, &c, "summary", "S");
    assert_given_text(LEANMCP, &c, "modelUsed", "M");
    assert_given_text(LEANMCP, &c, "systemMessageId", "I");
    assert_given_text(LEANMCP, &c, "metadata", "{\"k\":\"v\"}");
    schema_free(&c);
}

/* SPEC 5: "{} changes nothing" (200). */
static void test_leanmcp_empty_object_changes_nothing(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP, "{}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_int_equal(c.issues.count, 0);
    for (size_t i = 0; i < LEANMCP->nfields; i++) {
        assert_false(c.values[i].given);
        assert_null(c.values[i].text);
    }
    schema_free(&c);
}

static void test_leanmcp_summary_may_be_empty(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP, "{\"summary\":\"  \\t \"}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(LEANMCP, &c, "summary", "");
    schema_free(&c);
}

static void test_leanmcp_null_clears_nullable_fields(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP,
                   "{\"summary\":null,\"modelUsed\":null,\"systemMessageId\":null}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(LEANMCP, &c, "summary", NULL);
    assert_given_text(LEANMCP, &c, "modelUsed", NULL);
    assert_given_text(LEANMCP, &c, "systemMessageId", NULL);
    assert_not_given(LEANMCP, &c, "title");
    assert_not_given(LEANMCP, &c, "metadata");
    schema_free(&c);
}

static void test_leanmcp_title_null_must_be_a_string(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"title\":null}", "title must be a string");
}

static void test_leanmcp_metadata_null_must_be_an_object(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"metadata\":null}", "metadata must be an object");
}

static void test_leanmcp_wrong_type_messages(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"title\":1}", "title must be a string");
    PROBLEMS(LEANMCP, "{\"summary\":false}", "summary must be a string");
    PROBLEMS(LEANMCP, "{\"modelUsed\":[]}", "modelUsed must be a string");
    PROBLEMS(LEANMCP, "{\"systemMessageId\":{}}", "systemMessageId must be a string");
    PROBLEMS(LEANMCP, "{\"metadata\":[]}", "metadata must be an object");
    PROBLEMS(LEANMCP, "{\"metadata\":\"{}\"}", "metadata must be an object");
    PROBLEMS(LEANMCP, "{\"metadata\":3}", "metadata must be an object");
}

static void test_leanmcp_empty_messages(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"title\":\"\"}", "title should not be empty");
    PROBLEMS(LEANMCP, "{\"title\":\" \\u2028 \"}", "title should not be empty");
    PROBLEMS(LEANMCP, "{\"modelUsed\":\"\"}", "modelUsed should not be empty");
    PROBLEMS(LEANMCP, "{\"systemMessageId\":\"\\t\"}",
             "systemMessageId should not be empty");
}

static void test_leanmcp_unknown_property_messages(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"foo\":1}", "property foo should not exist");
    PROBLEMS(LEANMCP, "{\"b\":1,\"title\":\"t\",\"a\":2}", "property b should not exist",
             "property a should not exist");
}

/* SPEC 5's example, and the field order whatever the body order. */
static void test_leanmcp_all_problems_in_field_order_then_unknown(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"title\":\"\",\"foo\":1}", "title should not be empty",
             "property foo should not exist");
    PROBLEMS(LEANMCP,
             "{\"zeta\":1,\"metadata\":1,\"systemMessageId\":\"\",\"modelUsed\":2,"
             "\"summary\":3,\"alpha\":2,\"title\":\" \"}",
             "title should not be empty", "summary must be a string",
             "modelUsed must be a string", "systemMessageId should not be empty",
             "metadata must be an object", "property zeta should not exist",
             "property alpha should not exist");
}

static void test_leanmcp_repeated_unknown_key_listed_once(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"b\":1,\"a\":2,\"b\":3}", "property b should not exist",
             "property a should not exist");
}

/* An unknown key is worded as JSON.parse decodes it, and its escaped and
 * plain spellings are one key. */
static void test_leanmcp_escaped_unknown_key_decoded_and_listed_once(void **state)
{
    (void)state;
    PROBLEMS(LEANMCP, "{\"f\\u006fo\":1,\"foo\":2,\"b\\\"r\":3}",
             "property foo should not exist", "property b\"r should not exist");
}

/* Issue 8: metadata goes to jsonb as Node's JSON.stringify(JSON.parse())
 * writes it: numbers as doubles in their shortest form, no white space;
 * strings are left for jsonb, which decodes them. */
static void test_leanmcp_metadata_numbers_as_javascript(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP, "{\"metadata\": {\"big\": 123456789012345678901234567890, "
                            "\"n\": 1e400, \"f\": 1.50, \"s\": \"\\u00e9\"} }");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(LEANMCP, &c, "metadata",
                      "{\"big\":1.2345678901234568e+29,\"n\":null,\"f\":1.5,"
                      "\"s\":\"\\u00e9\"}");
    schema_free(&c);
}

static void test_leanmcp_metadata_last_duplicate_wins(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP,
                   "{\"metadata\":{\"v\":1},\"title\":\"t\",\"metadata\":{\"v\":2}}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(LEANMCP, &c, "metadata", "{\"v\":2}");
    schema_free(&c);
    /* the last one decides the type too */
    PROBLEMS(LEANMCP, "{\"metadata\":{},\"metadata\":[]}", "metadata must be an object");
}

static void test_leanmcp_metadata_escaped_key(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP, "{\"meta\\u0064ata\":{\"a\":[1,2]}}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_given_text(LEANMCP, &c, "metadata", "{\"a\":[1,2]}");
    schema_free(&c);
}

static void test_leanmcp_nested_keys_are_not_fields(void **state)
{
    struct body_check c;

    (void)state;
    c = check_text(LEANMCP, "{\"metadata\":{\"title\":\"\",\"foo\":1}}");
    assert_int_equal(c.failure, FAIL_NONE);
    assert_not_given(LEANMCP, &c, "title");
    assert_given_text(LEANMCP, &c, "metadata", "{\"title\":\"\",\"foo\":1}");
    schema_free(&c);
}

/* SPEC 2 and 5: a top level that is not an object is a 400 before the
 * schema, row 4's message. */
static void test_leanmcp_not_object_is_fail_json(void **state)
{
    (void)state;
    assert_json_failure(LEANMCP, "null");
    assert_json_failure(LEANMCP, "1");
    assert_json_failure(LEANMCP, "false");
    assert_json_failure(LEANMCP, "\"title\"");
    assert_json_failure(LEANMCP, "[]");
}

/* ---- schema_expand ------------------------------------------------------- */

static void test_expand_all_placeholders(void **state)
{
    char *s = schema_expand("{field}|{expected}|{received}|{keys}", "f", "e", "r", "k");

    (void)state;
    assert_string_equal(s, "f|e|r|k");
    free(s);
}

static void test_expand_dialect_templates(void **state)
{
    char *a = schema_expand("Invalid input: expected {expected}, received {received}",
                            NULL, "string", "number", NULL);
    char *b =
        schema_expand("{field} must be {expected}", "title", "a string", NULL, NULL);
    char *c =
        schema_expand("Unrecognized keys: {keys}", NULL, NULL, NULL, "\"a\", \"b\"");

    (void)state;
    assert_string_equal(a, "Invalid input: expected string, received number");
    assert_string_equal(b, "title must be a string");
    assert_string_equal(c, "Unrecognized keys: \"a\", \"b\"");
    free(a);
    free(b);
    free(c);
}

static void test_expand_null_value_is_empty(void **state)
{
    char *s = schema_expand("[{field}][{keys}]", NULL, NULL, NULL, NULL);

    (void)state;
    assert_string_equal(s, "[][]");
    free(s);
}

static void test_expand_repeated_placeholder(void **state)
{
    char *s = schema_expand("{field}, {field}!", "x", NULL, NULL, NULL);

    (void)state;
    assert_string_equal(s, "x, x!");
    free(s);
}

static void test_expand_other_braces_kept(void **state)
{
    char *s = schema_expand("{other} {field {} }", "f", NULL, NULL, NULL);

    (void)state;
    assert_string_equal(s, "{other} {field {} }");
    free(s);
}

static void test_expand_no_placeholder_and_empty(void **state)
{
    char *a = schema_expand("At least one field is required", "f", "e", "r", "k");
    char *b = schema_expand("", "f", "e", "r", "k");

    (void)state;
    assert_string_equal(a, "At least one field is required");
    assert_string_equal(b, "");
    free(a);
    free(b);
}

/* A value that looks like a placeholder is not expanded again. */
static void test_expand_values_not_rescanned(void **state)
{
    char *s = schema_expand("{keys} {field}", "F", NULL, NULL, "{field}");

    (void)state;
    assert_string_equal(s, "{field} F");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_json_is_fail_json_for_every_profile),
        cmocka_unit_test(test_depth_32_accepted_33_fail_json),
        cmocka_unit_test(test_leanmcp_metadata_depth_32_accepted_33_fail_json),
        cmocka_unit_test(test_recoup_title_and_model_trimmed),
        cmocka_unit_test(test_recoup_one_field_enough),
        cmocka_unit_test(test_recoup_trims_javascript_white_space_only),
        cmocka_unit_test(test_recoup_zero_width_space_is_not_empty),
        cmocka_unit_test(test_recoup_not_object_null_message),
        cmocka_unit_test(test_recoup_not_object_number_message),
        cmocka_unit_test(test_recoup_not_object_boolean_message),
        cmocka_unit_test(test_recoup_not_object_array_message),
        cmocka_unit_test(test_recoup_not_object_string_message),
        cmocka_unit_test(test_recoup_wrong_type_messages),
        cmocka_unit_test(test_recoup_empty_messages),
        cmocka_unit_test(test_recoup_unknown_key_message),
        cmocka_unit_test(test_recoup_unknown_keys_in_body_order),
        cmocka_unit_test(test_recoup_repeated_unknown_key_counted_once),
        cmocka_unit_test(test_recoup_none_given),
        cmocka_unit_test(test_recoup_order_of_messages),
        cmocka_unit_test(test_recoup_last_duplicate_wins),
        cmocka_unit_test(test_recoup_escaped_key_is_the_field),
        cmocka_unit_test(test_recoup_unicode_value_kept),
        cmocka_unit_test(test_neptun_name_trimmed),
        cmocka_unit_test(test_neptun_unknown_keys_ignored),
        cmocka_unit_test(test_neptun_missing_name_required),
        cmocka_unit_test(test_neptun_wrong_type_with_code),
        cmocka_unit_test(test_neptun_empty_too_small),
        cmocka_unit_test(test_neptun_not_object_is_fail_json),
        cmocka_unit_test(test_neptun_exactly_one_issue_even_with_unknown_keys),
        cmocka_unit_test(test_leanmcp_all_fields_stored),
        cmocka_unit_test(test_leanmcp_empty_object_changes_nothing),
        cmocka_unit_test(test_leanmcp_summary_may_be_empty),
        cmocka_unit_test(test_leanmcp_null_clears_nullable_fields),
        cmocka_unit_test(test_leanmcp_title_null_must_be_a_string),
        cmocka_unit_test(test_leanmcp_metadata_null_must_be_an_object),
        cmocka_unit_test(test_leanmcp_wrong_type_messages),
        cmocka_unit_test(test_leanmcp_empty_messages),
        cmocka_unit_test(test_leanmcp_unknown_property_messages),
        cmocka_unit_test(test_leanmcp_all_problems_in_field_order_then_unknown),
        cmocka_unit_test(test_leanmcp_repeated_unknown_key_listed_once),
        cmocka_unit_test(test_leanmcp_escaped_unknown_key_decoded_and_listed_once),
        cmocka_unit_test(test_leanmcp_metadata_numbers_as_javascript),
        cmocka_unit_test(test_leanmcp_metadata_last_duplicate_wins),
        cmocka_unit_test(test_leanmcp_metadata_escaped_key),
        cmocka_unit_test(test_leanmcp_nested_keys_are_not_fields),
        cmocka_unit_test(test_leanmcp_not_object_is_fail_json),
        cmocka_unit_test(test_expand_all_placeholders),
        cmocka_unit_test(test_expand_dialect_templates),
        cmocka_unit_test(test_expand_null_value_is_empty),
        cmocka_unit_test(test_expand_repeated_placeholder),
        cmocka_unit_test(test_expand_other_braces_kept),
        cmocka_unit_test(test_expand_no_placeholder_and_empty),
        cmocka_unit_test(test_expand_values_not_rescanned),
    };

    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
