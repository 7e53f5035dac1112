/* api.h: what an API profile is.
 *
 * A profile is data: where the credential comes from, the path parameters
 * and their types, the body fields and their rules, the validator dialect
 * that words body problems, the error shape, the ordered list of checks with
 * their statuses, the representation's columns, and one SQL statement per
 * operation (method). The engine (engine.c) walks it; a fourth API is a new
 * api_*.c file with a new table.
 *
 * An operation's statement takes these parameters, in this order:
 *   $1                credential: bytea text "\x<sha256 hex>", NULL if none
 *   $2 .. $(1+P)      path parameters, NULL when invalid
 *   $(2+P)            apply: 'true' when the update may happen (no local check
 *                     failed); with 'false' the statement only checks
 *   then per field    given ('true'/'false'), value (text; the object's JSON
 *                     for objects; NULL for a JSON null). Values are bound
 *                     only with apply: a statement that only checks never
 *                     reads what the body holds.
 * and returns one row, in the binary format:
 *   0  failure: text, the db_code of the first check that failed in the
 *      database, or NULL
 *   1  found: boolean, whether the target row exists for this caller (NULL
 *      when a check failed first); a missing one is the profile's
 *      target_missing step
 *   2  the representation's columns (api_column), NULL unless the row was
 *      updated.
 * It runs at REPEATABLE READ (db.c): a row changed by another transaction
 * after the statement's snapshot fails it with a serialization error and it
 * runs again on a new one, so the checks and the update always see the same
 * row versions. */
#ifndef CHATPATCH_API_H
#define CHATPATCH_API_H

#include <stdbool.h>
#include <stddef.h>

#include "response.h"

#define API_MAX_PARAMS 4
#define API_MAX_FIELDS 8
#define API_MAX_STEPS  12

enum credential_source {
    CRED_API_KEY_OR_BEARER, /* exactly one of x-api-key or Authorization: Bearer */
    CRED_BEARER,            /* Authorization: Bearer only */
    CRED_COOKIE,            /* the cookie named by credential_cookie */
};

/* Failures found without the database; a step lists those it reports. */
enum local_failure {
    FAIL_NONE = 0,
    FAIL_CRED_MISSING = 1 << 0,   /* no credential where one is needed */
    FAIL_CRED_AMBIGUOUS = 1 << 1, /* both x-api-key and Authorization */
    FAIL_CRED_SCHEME = 1 << 2,    /* Authorization that is not "Bearer <token>" */
    FAIL_PARAMS = 1 << 3,         /* a path parameter not of its type */
    FAIL_MEDIA_TYPE = 1 << 4,     /* not JSON: 415, reported at the FAIL_JSON step */
    FAIL_JSON = 1 << 5,           /* not parseable (or, per dialect, not an object) */
    FAIL_SCHEMA = 1 << 6,         /* body problems, worded by the dialect */
};

enum param_type {
    PARAM_TEXT,   /* any string; invalid UTF-8 can match no row and goes as NULL */
    PARAM_BIGINT, /* ASCII digits, a positive bigint */
    PARAM_UUID,   /* 8-4-4-4-12 hex digits, any case */
};

enum field_type { FIELD_STRING, FIELD_OBJECT };

/* A column of the representation: its PostgreSQL type, as the binary format
 * sends it, and how JSON writes it. */
enum column_type {
    COL_TEXT,      /* a JSON string, or null */
    COL_INT4,      /* a JSON number */
    COL_INT8,      /* a JSON number */
    COL_BOOL,      /* true or false */
    COL_TIMESTAMP, /* timestamptz: ISO 8601 in UTC with milliseconds, or null */
    COL_UUID,      /* a JSON string, lower-case hex */
    COL_JSONB,     /* the JSON itself, numbers as JavaScript writes them */
};

struct api_column {
    const char *key; /* the JSON key */
    enum column_type type;
};

#define API_MAX_COLUMNS 16

struct api_field {
    const char *key;
    enum field_type type;
    bool required;     /* missing is a problem ("Required") */
    bool nullable;     /* null is allowed and clears the column */
    bool may_be_empty; /* "" after trimming is allowed */
};

/* How a validator words body problems. Templates may use {field},
 * {expected} and {received}; {keys} is the quoted list of unknown keys. A
 * NULL template means the dialect has no such problem. */
struct schema_dialect {
    const char *not_object;    /* top level not an object; NULL: it is FAIL_JSON */
    const char *missing;       /* a required field is absent */
    const char *wrong_type;    /* a field of another JSON type */
    const char *empty;         /* a field empty after trimming */
    const char *unknown_one;   /* one unknown key; NULL: unknown keys are ignored */
    const char *unknown_many;  /* several unknown keys; NULL: one problem per key */
    const char *none_given;    /* the body set no field */
    const char *type_names[2]; /* {expected} for FIELD_STRING, FIELD_OBJECT */
};

/* One check in the API's own order. It fails when a local check reports one
 * of the local failures in its mask, or when the statement returns db_code. */
struct api_step {
    unsigned local;
    const char *db_code;
    int status;
    const char *message; /* NULL: the body problems themselves are the message */
};

/* What a method does: read the target (no body), or update it from the body. */
enum op_kind { OP_READ, OP_UPDATE };

struct api_op {
    const char *method;
    enum op_kind kind;
    const char *sql;
};

#define API_MAX_OPS 4

struct api_profile {
    const char *name;    /* route name in logs */
    const char *pattern; /* "/api/users/{}/chats/{}": literal segments and params */
    enum param_type params[API_MAX_PARAMS];
    size_t nparams;

    enum credential_source credential;
    const char *credential_cookie;

    const struct api_field *fields;
    size_t nfields;
    const struct schema_dialect *dialect;

    const struct api_step *steps;
    size_t nsteps;

    enum error_shape shape;
    const char *message_413;   /* NULL: the reason phrase */
    const char *message_415;   /* NULL: the reason phrase */
    const char *extra_headers; /* "Name: value\r\n" lines, or NULL */

    const char *target_missing; /* the db_code of the step a missing target fails */
    const char *envelope;       /* the representation's key around it, or NULL */
    const struct api_column *columns;
    size_t ncolumns;

    const struct api_op *ops;
    size_t nops;
};

/* Every profile the engine serves, NULL-terminated. */
extern const struct api_profile *const api_profiles[];

#endif
