/* schema.c: body fields, checked and worded as each API's validator does.
 * Entry points: schema_scan(), schema_word(), schema_check(), schema_free(),
 * schema_expand().
 *
 * Problems are collected in the validators' order: the top-level type; then
 * each field in the profile's order (presence, type, emptiness); then the
 * unknown keys in body order; then "no field given". A dialect's shape
 * decides whether the first or all of them are shown. Members are as
 * JSON.parse leaves them: the last of duplicate keys wins, and a key is
 * listed once, where it first appeared. */
#include "schema.h"

#include "buf.h"
#include "field.h"
#include "jsnum.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* zod's codes, which SHAPE_H3 shows; the other shapes show messages only. */
#define CODE_INVALID_TYPE "invalid_type"
#define CODE_TOO_SMALL    "too_small"
#define CODE_UNKNOWN_KEYS "unrecognized_keys"
#define CODE_CUSTOM       "custom"

/* The name JavaScript validators give the type of a JSON value. */
static const char *kind_name(enum json_kind kind)
{
    static const char *const names[] = {
        [JSON_NULL] = "null",     [JSON_BOOLEAN] = "boolean", [JSON_NUMBER] = "number",
        [JSON_STRING] = "string", [JSON_ARRAY] = "array",     [JSON_OBJECT] = "object",
    };
    return names[kind];
}

/* Appends tmpl to out with {field}, {expected}, {received} and {keys}
 * replaced (keys may hold any bytes: it is keys_len long). */
static void expand_into(struct buf *out, const char *tmpl, const char *field,
                        const char *expected, const char *received, const char *keys,
                        size_t keys_len)
{
    static const char *const names[] = {"{field}", "{expected}", "{received}", "{keys}"};
    static const size_t lengths[] = {7, 10, 10, 6};
    const char *values[] = {field, expected, received, keys};

    for (const char *p = tmpl; *p;) {
        const char *brace = strchr(p, '{');
        if (!brace) {
            buf_adds(out, p);
            return;
        }
        buf_add(out, p, (size_t)(brace - p));
        size_t i = 0;
        while (i < 4 &&
               (brace[1] != names[i][1] || strncmp(brace, names[i], lengths[i]) != 0))
            i++;
        if (i == 4) {
            buf_addc(out, '{');
            p = brace + 1;
            continue;
        }
        if (i == 3 && keys)
            buf_add(out, keys, keys_len);
        else if (values[i])
            buf_adds(out, values[i]);
        p = brace + lengths[i];
    }
}

char *schema_expand(const char *tmpl, const char *field, const char *expected,
                    const char *received, const char *keys)
{
    struct buf out = {0};

    expand_into(&out, tmpl, field, expected, received, keys, keys ? strlen(keys) : 0);
    return buf_take(&out, NULL);
}

/* Adds an issue worded from a dialect template. */
static void add_problem(struct body_check *check, struct buf *scratch, const char *code,
                        const char *tmpl, const char *field, const char *expected,
                        const char *received, const char *keys, size_t keys_len)
{
    scratch->len = 0;
    expand_into(scratch, tmpl, field, expected, received, keys, keys_len);
    issue_list_add(&check->issues, code, scratch->data ? scratch->data : "", scratch->len,
                   field);
}

/* A key's raw text, decoded: the text itself when it has no escapes, else a
 * malloc-ed copy in *copy (the caller frees it). */
static const char *decode_key(const char *raw, size_t raw_len, bool escaped, size_t *len,
                              char **copy)
{
    *copy = NULL;
    if (!escaped) {
        *len = raw_len;
        return raw;
    }
    *copy = malloc(raw_len + 1);
    if (!*copy)
        abort();
    *len = jsonscan_decode(raw, raw_len, *copy);
    (*copy)[*len] = '\0';
    return *copy;
}

/* The profile's field named by a member, or -1. */
static int field_of(const struct api_profile *api, const struct json_member *m)
{
    char *copy;
    size_t len;
    const char *key = decode_key(m->key, m->key_len, m->key_escaped, &len, &copy);
    int found = -1;

    for (size_t i = 0; i < api->nfields && found < 0; i++) {
        const char *f = api->fields[i].key;
        if (len > 0 && f[0] == key[0] && strncmp(f, key, len) == 0 && f[len] == '\0')
            found = (int)i;
    }
    free(copy);

    return found;
}

/* A string value's text, decoded and without JavaScript white space around
 * it. Returns a malloc-ed string. */
static char *trimmed_string(const struct json_member *m)
{
    char *text = malloc(m->value_len);
    size_t start = 0, end;

    if (!text)
        abort();
    end = jsonscan_decode(m->value + 1, m->value_len - 2, text);
    field_trim(text, &start, &end);
    memmove(text, text + start, end - start);
    text[end - start] = '\0';
    return text;
}

/* One field from its member (NULL when absent): a problem, or a value. */
static enum field_problem take_field(const struct api_field *field,
                                     const struct json_member *m,
                                     struct field_value *value)
{
    if (!m)
        return field->required ? PROBLEM_MISSING : PROBLEM_NONE;
    if (m->kind == JSON_NULL && field->nullable) {
        *value = (struct field_value){.given = true, .text = NULL};
        return PROBLEM_NONE;
    }
    if (m->kind != (field->type == FIELD_STRING ? JSON_STRING : JSON_OBJECT))
        return PROBLEM_TYPE;
    if (field->type == FIELD_OBJECT) {
        struct buf json = {0};
        jsnum_normalize_json(m->value, m->value_len, &json);
        *value = (struct field_value){.given = true, .text = buf_take(&json, NULL)};
        return PROBLEM_NONE;
    }
    char *text = trimmed_string(m);
    if (text[0] == '\0' && !field->may_be_empty) {
        free(text);
        return PROBLEM_EMPTY;
    }
    *value = (struct field_value){.given = true, .text = text};
    return PROBLEM_NONE;
}

/* Remembers where an unknown key lies in the body, for schema_word(). room:
 * the most there can be, from this one on. */
static void keep_unknown_key(struct body_check *out, const struct json_member *m,
                             size_t room)
{
    if (!out->unknown) {
        out->unknown = malloc(room * sizeof *out->unknown);
        if (!out->unknown)
            abort();
    }
    out->unknown[out->unknown_count++] = (struct unknown_key){
        .at = (uint32_t)(m->key - out->body),
        .len = (uint32_t)m->key_len,
        .escaped = m->key_escaped,
    };
}

/* The fields' values and problems from the top-level object's members. */
static void take_members(const struct api_profile *api,
                         const struct json_members *members, struct body_check *out)
{
    const struct json_member *last[API_MAX_FIELDS] = {0};
    bool problem = false, any_given = false;

    for (size_t i = 0; i < members->count; i++) {
        const struct json_member *m = &members->items[i];
        int f = m->key_len ? field_of(api, m) : -1;
        if (f >= 0)
            last[f] = m;
        else if (api->dialect->unknown_one)
            keep_unknown_key(out, m, members->count - i);
    }
    for (size_t i = 0; i < api->nfields; i++) {
        out->problems[i] = take_field(&api->fields[i], last[i], &out->values[i]);
        if (last[i])
            out->received[i] = last[i]->kind;
        problem |= out->problems[i] != PROBLEM_NONE;
        any_given |= out->values[i].given;
    }
    problem |= out->unknown_count > 0; /* kept only where the dialect words them */
    problem |= !any_given && api->dialect->none_given;
    if (problem)
        out->failure = FAIL_SCHEMA;
}

void schema_scan(const struct api_profile *api, const char *body, size_t len,
                 struct body_check *out)
{
    struct json_members members = {0};

    *out = (struct body_check){.failure = FAIL_NONE, .body = body};
    if (!jsonscan_parse(body, len, SCHEMA_MAX_DEPTH, &out->top, &members))
        out->failure = FAIL_JSON;
    else if (out->top != JSON_OBJECT)
        out->failure = api->dialect->not_object ? FAIL_SCHEMA : FAIL_JSON;
    else
        take_members(api, &members, out);
    jsonscan_members_free(&members); /* the values taken are copies */
}

/* ---- wording -------------------------------------------------------------- */

/* The unknown keys seen so far, each once: a hash set of their indexes into
 * check->unknown, plus one (0 is an empty slot), 4 bytes a slot. */
struct key_set {
    uint32_t *slots;
    size_t cap; /* a power of two, at least twice the keys */
};

static uint64_t key_hash(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    return h;
}

/* Unknown key i, decoded: its copy when it has escapes, else its text in
 * the body; check->unknown[i].len is its decoded length by then. */
static const char *decoded_unknown(const struct body_check *check, char *const *copies,
                                   size_t i)
{
    return copies[i] ? copies[i] : check->body + check->unknown[i].at;
}

/* Adds unknown key i; returns false when it was there already. */
static bool key_set_add(struct key_set *set, const struct body_check *check,
                        char *const *copies, size_t i)
{
    const char *key = decoded_unknown(check, copies, i);
    size_t len = check->unknown[i].len;
    size_t s = (size_t)key_hash(key, len) & (set->cap - 1);

    for (; set->slots[s]; s = (s + 1) & (set->cap - 1)) {
        size_t j = set->slots[s] - 1;
        if (check->unknown[j].len == len &&
            memcmp(decoded_unknown(check, copies, j), key, len) == 0)
            return false;
    }
    set->slots[s] = (uint32_t)i + 1;
    return true;
}

static void word_unknown_keys(const struct api_profile *api, struct body_check *check,
                              struct buf *scratch)
{
    const struct schema_dialect *d = api->dialect;
    struct key_set set = {.cap = 16};
    struct buf keys = {0};
    char **copies = calloc(check->unknown_count + 1, sizeof *copies);
    size_t count = 0;

    while (set.cap < 2 * check->unknown_count)
        set.cap *= 2;
    set.slots = calloc(set.cap, sizeof *set.slots);
    if (!copies || !set.slots)
        abort();
    for (size_t i = 0; i < check->unknown_count; i++) {
        struct unknown_key *k = &check->unknown[i];
        const char *raw = check->body + k->at;
        size_t len;
        const char *key = decode_key(raw, k->len, k->escaped, &len, &copies[i]);
        k->len = (uint32_t)len; /* decoding never grows a key */
        if (!key_set_add(&set, check, copies, i))
            continue;
        if (!d->unknown_many) {
            add_problem(check, scratch, CODE_UNKNOWN_KEYS, d->unknown_one, NULL, NULL,
                        NULL, key, len);
            continue;
        }
        buf_adds(&keys, count++ ? ", \"" : "\"");
        buf_add(&keys, key, len);
        buf_addc(&keys, '"');
    }
    if (count > 0)
        add_problem(check, scratch, CODE_UNKNOWN_KEYS,
                    count == 1 ? d->unknown_one : d->unknown_many, NULL, NULL, NULL,
                    keys.data, keys.len);
    buf_free(&keys);
    for (size_t i = 0; i < check->unknown_count; i++)
        free(copies[i]);
    free(copies);
    free(set.slots);
    /* Worded: the answer that lists them need not hold them as well. */
    free(check->unknown);
    check->unknown = NULL;
    check->unknown_count = 0;
}

void schema_word(const struct api_profile *api, struct body_check *check)
{
    const struct schema_dialect *d = api->dialect;
    struct buf scratch = {0};
    bool any_given = false;

    if (check->failure != FAIL_SCHEMA || check->issues.count > 0)
        return;
    if (check->top != JSON_OBJECT) {
        add_problem(check, &scratch, CODE_INVALID_TYPE, d->not_object, NULL, "object",
                    kind_name(check->top), NULL, 0);
        buf_free(&scratch);
        return;
    }
    for (size_t i = 0; i < api->nfields; i++) {
        const struct api_field *f = &api->fields[i];
        const char *expected = d->type_names[f->type];
        any_given |= check->values[i].given;
        switch (check->problems[i]) {
        case PROBLEM_NONE:
            break;
        case PROBLEM_MISSING:
            add_problem(check, &scratch, CODE_INVALID_TYPE, d->missing, f->key, expected,
                        "undefined", NULL, 0);
            break;
        case PROBLEM_TYPE:
            add_problem(check, &scratch, CODE_INVALID_TYPE, d->wrong_type, f->key,
                        expected, kind_name(check->received[i]), NULL, 0);
            break;
        case PROBLEM_EMPTY:
            add_problem(check, &scratch, CODE_TOO_SMALL, d->empty, f->key, expected,
                        "string", NULL, 0);
            break;
        }
    }
    if (check->unknown_count > 0)
        word_unknown_keys(api, check, &scratch);
    if (d->none_given && !any_given && check->issues.count == 0)
        add_problem(check, &scratch, CODE_CUSTOM, d->none_given, NULL, NULL, NULL, NULL,
                    0);
    buf_free(&scratch);
}

void schema_check(const struct api_profile *api, const char *body, size_t len,
                  struct body_check *out)
{
    schema_scan(api, body, len, out);
    schema_word(api, out);
}

void schema_free(struct body_check *check)
{
    issue_list_free(&check->issues);
    free(check->unknown);
    for (size_t i = 0; i < API_MAX_FIELDS; i++)
        free(check->values[i].text);
}
