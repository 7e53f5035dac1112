/* api.h: what an API profile is.
 *
 * A profile is data: where the credential comes from, the path parameters
 * and their types, the body fields and their rules, the validator dialect
 * that words body problems, the error shape, the ordered list of checks with
 * their statuses, the representation's columns, its operations (per method:
 * what it does, its success status and its one SQL statement; Allow and 405
 * follow from them) and what browsers from other origins may do (CORS). The
 * engine (engine.c) walks it; a fourth API is a new api_*.c file with a new
 * table.
 *
 * An operation's statement takes these parameters, in this order:
 *   $1                credential: bytea text "\x<sha256 hex>", NULL if none
 *   $2 .. $(1+P)      path parameters, NULL when invalid
 * and an update's (OP_UPDATE) also:
 *   $(2+P)            apply: 'true' when the update may happen (no local check
 *                     failed); with 'false' the statement only checks
 *   then per field    given ('true'/'false'), value (text; the object's JSON
 *                     for objects; NULL for a JSON null). Values are bound
 *                     only with apply: a statement that only checks never
 *                     reads what the body holds.
 *   then              the versions If-Match names, a bigint[] literal
 *                     ("{7,9}", "{}" when it names none of ours), or NULL
 *                     when the update is unconditional (no If-Match, or "*")
 *   then              the request id (text), for the audit row
 * and returns one row, in the binary format:
 *   0  failure: text, the db_code of the first check that failed in the
 *      database, or NULL
 *   1  version: int8, the target's version for this caller (the new one
 *      when the statement updated it), or NULL when it is missing or a check
 *      failed first. A missing target is the profile's target_missing step;
 *      an update that found its target and yet did not happen (apply on) is
 *      the precondition_failed step: If-Match named another version
 *   2  the representation: a record, ROW(...) of the profile's columns
 *      (api_column) in their order, or NULL; a read's whenever the target is
 *      there, an update's only when the row was updated.
 * An update sets version = nextval(the schema's chat_versions) whenever it
 * changes something, so the version, and the ETag made of it, change on
 * every update of the row and only then; and in the same statement (a
 * data-modifying CTE) it appends the audit row to <schema>.chat_changes:
 * the chat, the caller, the fields set with their old and new values, the
 * request id. Old values come from the chat's own row joined in the
 * UPDATE's FROM: at REPEATABLE READ that is the version being updated.
 *
 * It runs at REPEATABLE READ (db.c): a row changed by another transaction
 * after the statement's snapshot fails it with a serialization error and it
 * runs again on a new one, so the checks, the If-Match comparison and the
 * update always see the same row version, and of two updates racing with
 * the same If-Match only one can win. */
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

/* What a method does. */
enum op_kind {
    OP_READ,      /* answer the target as it is (no body) */
    OP_UPDATE,    /* update the target from the body */
    OP_PREFLIGHT, /* a browser's CORS preflight: no credential, no database */
};

struct api_op {
    const char *method;
    enum op_kind kind;
    int status;      /* the status of its success */
    const char *sql; /* its one statement (a prepared statement of its own);
                        NULL for OP_PREFLIGHT */
};

/* Cross-origin access for browser scripts (the Fetch standard's CORS
 * protocol): what a preflight allows and every answer says. The methods a
 * preflight allows are the profile's operations. */
struct api_cors {
    const char *allow_origin;   /* Access-Control-Allow-Origin, on every answer */
    const char *allow_headers;  /* request headers a preflight allows */
    const char *expose_headers; /* response headers a script may read */
    int max_age;                /* seconds a browser may keep a preflight's answer */
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
    const char *message_413;     /* NULL: the reason phrase */
    const char *message_415;     /* NULL: the reason phrase */
    const char *extra_headers;   /* "Name: value\r\n" lines, or NULL */
    const struct api_cors *cors; /* NULL: no cross-origin access */

    const char *target_missing;      /* the db_code of the step a missing target fails */
    const char *precondition_failed; /* the db_code of the step a request whose
                                        If-Match names another version fails */
    const char *envelope;            /* the representation's key around it, or NULL */
    const struct api_column *columns;
    size_t ncolumns;

    const struct api_op *ops;
    size_t nops;
};

/* Every profile the engine serves, NULL-terminated. */
extern const struct api_profile *const api_profiles[];

#endif
