/* schema.h: a request body checked against a profile's fields. */
#ifndef CHATPATCH_SCHEMA_H
#define CHATPATCH_SCHEMA_H

#include "api.h"
#include "response.h"

/* The deepest nesting of objects and arrays a body may have (SPEC 2). */
#define SCHEMA_MAX_DEPTH 32

struct field_value {
    bool given;
    char *text; /* malloc-ed: the trimmed string or the raw JSON; NULL for null */
};

struct body_check {
    enum local_failure failure; /* FAIL_NONE, FAIL_JSON or FAIL_SCHEMA */
    struct issue_list issues;   /* the problems behind FAIL_SCHEMA, in order */
    struct field_value values[API_MAX_FIELDS];
};

/* Checks body against api's fields and dialect, in the dialect's order.
 * Always fills out; release it with schema_free(). */
void schema_check(const struct api_profile *api, const char *body, size_t len,
                  struct body_check *out);
void schema_free(struct body_check *check);

/* Expands {field}, {expected}, {received} and {keys} in a dialect template.
 * Returns a malloc-ed string. */
char *schema_expand(const char *tmpl, const char *field, const char *expected,
                    const char *received, const char *keys);

#endif
