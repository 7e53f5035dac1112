/* schema.c: body fields, checked and worded as each API's validator does.
 * Entry points: schema_check(), schema_free(), schema_expand().
 *
 * Problems are collected in the validators' order: the top-level type; then
 * each field in the profile's order (presence, type, emptiness); then the
 * unknown keys in body order; then "no field given". A dialect's shape
 * decides whether the first or all of them are shown. */
#include "schema.h"

#include "field.h"
#include "jsonscan.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* zod's codes, which SHAPE_H3 shows; the other shapes show messages only. */
#define CODE_INVALID_TYPE "invalid_type"
#define CODE_TOO_SMALL    "too_small"
#define CODE_UNKNOWN_KEYS "unrecognized_keys"
#define CODE_CUSTOM       "custom"

/* The name JavaScript validators give the type of a JSON value:
 * null, boolean, number, string, array or object. */
static const char *schema_type_name(json_object *value)
{
    switch (json_object_get_type(value)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
    case json_type_int:
        return "number";
    case json_type_string:
        return "string";
    case json_type_array:
        return "array";
    case json_type_object:
        return "object";
    }
    return "unknown";
}

char *schema_expand(const char *tmpl, const char *field, const char *expected,
                    const char *received, const char *keys)
{
    static const char *const names[] = {"{field}", "{expected}", "{received}", "{keys}"};
    const char *values[] = {field, expected, received, keys};
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);

    if (!f)
        abort();
    for (const char *p = tmpl; *p;) {
        size_t i = 0;
        while (i < 4 && strncmp(p, names[i], strlen(names[i])) != 0)
            i++;
        if (i < 4) {
            fputs(values[i] ? values[i] : "", f);
            p += strlen(names[i]);
        } else {
            fputc(*p++, f);
        }
    }
    if (fclose(f) != 0)
        abort();
    return out;
}

static bool is_known_key(const struct api_profile *api, const char *key)
{
    for (size_t i = 0; i < api->nfields; i++)
        if (strcmp(api->fields[i].key, key) == 0)
            return true;
    return false;
}

/* Returns a malloc-ed copy of the string without JavaScript white space
 * around it. */
static char *trimmed_copy(json_object *str)
{
    const char *s = json_object_get_string(str);
    size_t start = 0, end = (size_t)json_object_get_string_len(str);

    field_trim(s, &start, &end);
    return strndup(s + start, end - start);
}

/* One field: absent, null, of the wrong type, empty, or a value to store. */
static void check_field(const struct api_field *field, const struct schema_dialect *d,
                        json_object *root, const char *body, size_t len,
                        struct body_check *out, struct field_value *value)
{
    json_object *v;
    const char *expected = d->type_names[field->type];

    if (!json_object_object_get_ex(root, field->key, &v)) {
        if (field->required)
            issue_list_add(
                &out->issues, CODE_INVALID_TYPE,
                schema_expand(d->missing, field->key, expected, "undefined", NULL),
                field->key);
        return;
    }
    if (!v && field->nullable) {
        *value = (struct field_value){.given = true, .text = NULL};
        return;
    }
    json_type want = field->type == FIELD_STRING ? json_type_string : json_type_object;
    if (json_object_get_type(v) != want) {
        issue_list_add(
            &out->issues, CODE_INVALID_TYPE,
            schema_expand(d->wrong_type, field->key, expected, schema_type_name(v), NULL),
            field->key);
        return;
    }
    if (field->type == FIELD_OBJECT) {
        /* jsonb must get the raw text: json-c would clamp big integers. */
        const char *raw;
        size_t raw_len;
        if (!jsonscan_member(body, len, field->key, &raw, &raw_len))
            abort(); /* json-c found the member, so the scanner does too */
        *value = (struct field_value){.given = true, .text = strndup(raw, raw_len)};
        return;
    }
    char *text = trimmed_copy(v);
    if (text[0] == '\0' && !field->may_be_empty) {
        free(text);
        issue_list_add(&out->issues, CODE_TOO_SMALL,
                       schema_expand(d->empty, field->key, expected, "string", NULL),
                       field->key);
        return;
    }
    *value = (struct field_value){.given = true, .text = text};
}

/* Unknown keys, in body order: one problem listing all, or one each. */
static void check_unknown_keys(const struct api_profile *api, json_object *root,
                               struct body_check *out)
{
    const struct schema_dialect *d = api->dialect;
    char *keys = NULL;
    size_t keys_len = 0, count = 0;
    FILE *f;

    if (!d->unknown_one)
        return;
    f = open_memstream(&keys, &keys_len);
    if (!f)
        abort();
    json_object_object_foreach(root, key, unused)
    {
        (void)unused;
        if (is_known_key(api, key))
            continue;
        if (!d->unknown_many) {
            issue_list_add(&out->issues, CODE_UNKNOWN_KEYS,
                           schema_expand(d->unknown_one, NULL, NULL, NULL, key), NULL);
            continue;
        }
        fprintf(f, "%s\"%s\"", count ? ", " : "", key);
        count++;
    }
    if (fclose(f) != 0)
        abort();
    if (count > 0)
        issue_list_add(&out->issues, CODE_UNKNOWN_KEYS,
                       schema_expand(count == 1 ? d->unknown_one : d->unknown_many, NULL,
                                     NULL, NULL, keys),
                       NULL);
    free(keys);
}

/* Builds json-c's tree of a text jsonscan_valid() accepted. json-c gives
 * JSON null as NULL, so success is read from the tokener; and a number at
 * the very end of the text waits for more input until an empty final chunk
 * says there is none. */
static bool parse(const char *body, size_t len, json_object **root)
{
    struct json_tokener *tok = json_tokener_new_ex(SCHEMA_MAX_DEPTH + 1);
    bool ok;

    if (!tok)
        abort();
    *root = json_tokener_parse_ex(tok, body, (int)len);
    if (json_tokener_get_error(tok) == json_tokener_continue)
        *root = json_tokener_parse_ex(tok, "", 1);
    ok = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    return ok;
}

void schema_check(const struct api_profile *api, const char *body, size_t len,
                  struct body_check *out)
{
    const struct schema_dialect *d = api->dialect;
    json_object *root = NULL;

    *out = (struct body_check){.failure = FAIL_NONE};
    if (!jsonscan_valid(body, len, SCHEMA_MAX_DEPTH) || !parse(body, len, &root)) {
        out->failure = FAIL_JSON;
        return;
    }
    if (!json_object_is_type(root, json_type_object)) {
        if (d->not_object)
            issue_list_add(&out->issues, CODE_INVALID_TYPE,
                           schema_expand(d->not_object, NULL, "object",
                                         schema_type_name(root), NULL),
                           NULL);
        else
            out->failure = FAIL_JSON;
    } else {
        bool any_given = false;
        for (size_t i = 0; i < api->nfields; i++) {
            check_field(&api->fields[i], d, root, body, len, out, &out->values[i]);
            any_given |= out->values[i].given;
        }
        check_unknown_keys(api, root, out);
        if (d->none_given && !any_given && out->issues.count == 0)
            issue_list_add(&out->issues, CODE_CUSTOM, strdup(d->none_given), NULL);
    }
    if (out->failure == FAIL_NONE && out->issues.count > 0)
        out->failure = FAIL_SCHEMA;
    json_object_put(root);
}

void schema_free(struct body_check *check)
{
    issue_list_free(&check->issues);
    for (size_t i = 0; i < API_MAX_FIELDS; i++)
        free(check->values[i].text);
}
