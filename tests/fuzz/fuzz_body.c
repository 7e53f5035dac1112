/* fuzz_body.c: libFuzzer target for the request body: the strict JSON
 * scanner (cgi/jsonscan.c), json-c behind it, and the schema check of every
 * API profile (cgi/schema.c), with the error body each would answer.
 *
 * Invariants (abort() when broken):
 *  - what jsonscan_valid() accepts, json-c (depth 33, with the end of input
 *    fed as schema.c does) parses too, up to trailing white space;
 *  - jsonscan_valid() is monotonic in max_depth;
 *  - jsonscan_parse() accepts exactly what jsonscan_valid() does; the last
 *    of its members with a key (decoded) is there exactly when json-c finds
 *    that key, and every member's raw text lies inside the body and is
 *    itself valid JSON;
 *  - schema_check(): bad JSON is FAIL_JSON, an object never is; an accepted
 *    string field is valid UTF-8, trimmed as JavaScript trims, and non-empty
 *    unless the field may be empty; an accepted object field is a JSON
 *    object with its numbers as JavaScript writes them, which normalizing
 *    again leaves as it is; a schema failure has issues;
 *  - every error body built from the issues is valid JSON. */
#include "api.h"
#include "field.h"
#include "jsnum.h"
#include "jsonscan.h"
#include "response.h"
#include "schema.h"

#define FUZZ_TARGET "fuzz_body"
#include "fuzz_common.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every field key of the three profiles, plus keys no profile has. */
static const char *const member_keys[] = {"title",    "modelId",   "name",
                                          "summary",  "modelUsed", "systemMessageId",
                                          "metadata", "",          "__proto__"};

static bool all_json_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

static bool is_top_level_object(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len && all_json_space(s + i, 1))
        i++;
    return i < len && s[i] == '{';
}

/* json-c, max depth SCHEMA_MAX_DEPTH + 1, as its incremental API is meant to
 * be used: a top-level number or literal at the very end of the text waits
 * for more input (json_tokener_continue), so the end of input is fed as one
 * NUL byte. A JSON null parses to NULL too, so the verdict is in *err; *end
 * is where the text's value ended. */
static json_object *json_c_parse(const char *s, size_t len, size_t *end,
                                 enum json_tokener_error *err)
{
    struct json_tokener *tok = json_tokener_new_ex(SCHEMA_MAX_DEPTH + 1);
    json_object *root;

    CHECK(tok != NULL);
    root = json_tokener_parse_ex(tok, s, (int)len);
    *end = json_tokener_get_parse_end(tok);
    if (json_tokener_get_error(tok) == json_tokener_continue)
        root = json_tokener_parse_ex(tok, "", 1);
    *err = json_tokener_get_error(tok);
    json_tokener_free(tok);
    return root;
}

/* The last member named key, as JSON.parse keeps it, or NULL. */
static const struct json_member *last_member(const struct json_members *members,
                                             const char *key)
{
    const struct json_member *found = NULL;

    for (size_t i = 0; i < members->count; i++) {
        const struct json_member *m = &members->items[i];
        char *name = malloc(m->key_len + 1);
        CHECK(name != NULL);
        size_t n = jsonscan_decode(m->key, m->key_len, name);
        if (n == strlen(key) && memcmp(name, key, n) == 0)
            found = m;
        free(name);
    }
    return found;
}

static void check_members(const char *s, size_t len, json_object *root)
{
    struct json_members members = {0};
    enum json_kind top;

    CHECK(jsonscan_parse(s, len, SCHEMA_MAX_DEPTH, &top, &members));
    CHECK(top == JSON_OBJECT);
    for (size_t i = 0; i < members.count; i++) {
        const struct json_member *m = &members.items[i];
        CHECK(m->key >= s && m->key + m->key_len <= s + len);
        CHECK(m->value >= s && m->value_len > 0 && m->value + m->value_len <= s + len);
        CHECK(jsonscan_valid(m->value, m->value_len, 1 << 20));
    }
    for (size_t k = 0; k < sizeof member_keys / sizeof member_keys[0]; k++) {
        bool json_c_found = json_object_object_get_ex(root, member_keys[k], NULL);
        CHECK((last_member(&members, member_keys[k]) != NULL) == json_c_found);
    }
    jsonscan_members_free(&members);
}

/* A normalized text is valid JSON and normalizing it again changes nothing. */
static void check_normalized(const char *text, size_t n)
{
    struct buf again = {0};

    CHECK(jsonscan_valid(text, n, SCHEMA_MAX_DEPTH));
    jsnum_normalize_json(text, n, &again);
    CHECK(again.len == n && memcmp(again.data, text, n) == 0);
    buf_free(&again);
}

/* The error body the engine would send for these issues is JSON. */
static void check_error_body(const struct api_profile *api,
                             const struct body_check *check)
{
    struct response res = {0};

    response_error(&res, api->shape, 400, NULL, &check->issues);
    CHECK(res.body != NULL);
    CHECK(jsonscan_valid(res.body, strlen(res.body), SCHEMA_MAX_DEPTH));
    response_free(&res);
}

static void check_profile(const struct api_profile *api, const char *body, size_t len,
                          bool valid, bool object)
{
    struct body_check check;
    bool any_given = false;

    schema_check(api, body, len, &check);
    CHECK(check.failure == FAIL_NONE || check.failure == FAIL_JSON ||
          check.failure == FAIL_SCHEMA);
    if (!valid)
        CHECK(check.failure == FAIL_JSON);
    if (valid && object)
        CHECK(check.failure != FAIL_JSON);
    /* SPEC 3-5: valid JSON whose top level is not an object is a schema
     * problem where the dialect words one (zod: "expected object, received
     * <type>"), else bad JSON. */
    if (valid && !object)
        CHECK(check.failure == (api->dialect->not_object ? FAIL_SCHEMA : FAIL_JSON));
    if (check.failure == FAIL_SCHEMA) {
        CHECK(check.issues.count > 0);
        for (size_t i = 0; i < check.issues.count; i++)
            CHECK(check.issues.items[i].message != NULL &&
                  check.issues.items[i].code != NULL);
        check_error_body(api, &check);
    } else {
        CHECK(check.issues.count == 0);
    }
    for (size_t i = 0; i < api->nfields; i++) {
        const struct api_field *field = &api->fields[i];
        const struct field_value *v = &check.values[i];

        any_given |= v->given;
        if (check.failure != FAIL_NONE || !v->given)
            continue;
        if (!v->text) {
            CHECK(field->nullable);
            continue;
        }
        size_t n = strlen(v->text), start = 0, end = n;
        if (field->type == FIELD_OBJECT) {
            CHECK(n > 0 && v->text[0] == '{');
            check_normalized(v->text, n);
            continue;
        }
        CHECK(field_utf8_valid(v->text, n));
        field_trim(v->text, &start, &end);
        CHECK(start == 0 && end == n);
        CHECK(n > 0 || field->may_be_empty);
    }
    if (check.failure == FAIL_NONE) {
        for (size_t i = 0; i < api->nfields; i++)
            if (api->fields[i].required)
                CHECK(check.values[i].given);
        if (api->dialect->none_given)
            CHECK(any_given);
    }
    schema_free(&check);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *raw = (const char *)data; /* exactly size bytes: no terminator */
    bool valid = jsonscan_valid(raw, size, SCHEMA_MAX_DEPTH);
    bool object = valid && is_top_level_object(raw, size);
    size_t end = 0;
    enum json_tokener_error err;
    json_object *root = NULL;
    char *body;

    if (size > INT32_MAX)
        return 0;
    {
        struct json_members members = {0};
        enum json_kind top;
        CHECK(jsonscan_parse(raw, size, SCHEMA_MAX_DEPTH, &top, &members) == valid);
        jsonscan_members_free(&members);
    }
    if (valid) {
        CHECK(jsonscan_valid(raw, size, SCHEMA_MAX_DEPTH + 1));
        CHECK(jsonscan_valid(raw, size, 1 << 20));
        root = json_c_parse(raw, size, &end, &err);
        CHECK(err == json_tokener_success);
        CHECK(end <= size && all_json_space(raw + end, size - end));
        CHECK(object == json_object_is_type(root, json_type_object));
        if (object)
            check_members(raw, size, root);
        json_object_put(root);
    }

    /* The body as request.c hands it over: malloc-ed, NUL after the end. */
    body = malloc(size + 1);
    CHECK(body != NULL);
    memcpy(body, data, size);
    body[size] = '\0';
    for (const struct api_profile *const *api = api_profiles; *api; api++)
        check_profile(*api, body, size, valid, object);
    free(body);
    return 0;
}
