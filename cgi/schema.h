/* schema.h: a request body checked against a profile's fields.
 *
 * The body is parsed once (jsonscan_parse). schema_scan() finds the field
 * values and whether there is any problem, which is all the engine needs to
 * decide the answer; the problems are worded (schema_word) only when the
 * answer is the schema step, so a request refused for its credential never
 * pays for wording thousands of unknown keys. */
#ifndef CHATPATCH_SCHEMA_H
#define CHATPATCH_SCHEMA_H

#include "api.h"
#include "jsonscan.h"
#include "response.h"

#include <stdint.h>

/* The deepest nesting of objects and arrays a body may have (SPEC 2). */
#define SCHEMA_MAX_DEPTH 32

struct field_value {
    bool given;
    char *text; /* malloc-ed: the trimmed string or the object's JSON (numbers
                   as JavaScript writes them); NULL for null */
};

enum field_problem { PROBLEM_NONE, PROBLEM_MISSING, PROBLEM_TYPE, PROBLEM_EMPTY };

/* A key that names none of the profile's fields: where its raw text (between
 * the quotes) lies in the body, and whether it has escapes (jsonscan's
 * json_member.key_escaped). A body is at most --max-body (64 MiB). */
struct unknown_key {
    uint32_t at;
    uint32_t len : 31;
    uint32_t escaped : 1;
};

struct body_check {
    enum local_failure failure; /* FAIL_NONE, FAIL_JSON or FAIL_SCHEMA */
    struct issue_list issues;   /* the problems behind FAIL_SCHEMA, once worded */
    struct field_value values[API_MAX_FIELDS];

    /* What schema_word() needs. The parsed members are not kept: a request
     * waiting for the database holds 8 bytes per unknown key (none when its
     * dialect ignores them) instead of 48 per member. */
    const char *body;
    enum json_kind top;
    struct unknown_key *unknown; /* malloc-ed, in body order, repeats included */
    size_t unknown_count;
    enum field_problem problems[API_MAX_FIELDS];
    enum json_kind received[API_MAX_FIELDS];
};

/* Checks body against api's fields: out->failure and out->values, no
 * wording. body must outlive out. Release out with schema_free(). */
void schema_scan(const struct api_profile *api, const char *body, size_t len,
                 struct body_check *out);

/* Words the problems schema_scan() found into out->issues, in the dialect's
 * order: the top-level type; each field in the profile's order (presence,
 * type, emptiness); the unknown keys in body order, each once; "no field
 * given". */
void schema_word(const struct api_profile *api, struct body_check *check);

/* schema_scan() and, on FAIL_SCHEMA, schema_word(). */
void schema_check(const struct api_profile *api, const char *body, size_t len,
                  struct body_check *out);

void schema_free(struct body_check *check);

/* Expands {field}, {expected}, {received} and {keys} in a dialect template.
 * Returns a malloc-ed string. */
char *schema_expand(const char *tmpl, const char *field, const char *expected,
                    const char *received, const char *keys);

#endif
