/* profiles.c: prints the API profiles the worker is built from (cgi/api*.c)
 * as one JSON object, so that tests/openapi/test_document.py can compare
 * docs/openapi.yaml with the facts the worker itself holds: routes, methods
 * and their success statuses, Allow, parameter types, body fields and their
 * rules and nesting depth, every step's status and message, the 413 and
 * 415 messages, the representation's keys and types, and CORS.
 *
 *   profiles    {"max_depth":N,"apis":[{"name":..., "pattern":..., ...}, ...]}
 *
 * Built by mk/openapi.mk against the worker's own objects; it opens no
 * database and no socket. */
#include "api.h"
#include "buf.h"
#include "decide.h"
#include "response.h"
#include "schema.h"

#include <stdio.h>
#include <string.h>

static void add_string(struct buf *out, const char *s)
{
    if (s)
        buf_add_json_string(out, s, strlen(s));
    else
        buf_adds(out, "null");
}

static void add_member(struct buf *out, const char *key, const char *value)
{
    buf_addc(out, ',');
    add_string(out, key);
    buf_addc(out, ':');
    add_string(out, value);
}

/* The names the JSON gives the profiles' enums, indexed by them. */
static const char *const param_types[] = {
    [PARAM_TEXT] = "text", [PARAM_BIGINT] = "bigint", [PARAM_UUID] = "uuid"};
static const char *const credentials[] = {[CRED_API_KEY_OR_BEARER] = "api_key_or_bearer",
                                          [CRED_BEARER] = "bearer",
                                          [CRED_COOKIE] = "cookie"};
static const char *const shapes[] = {[SHAPE_GENERIC] = "generic",
                                     [SHAPE_STATUS_ERROR] = "status_error",
                                     [SHAPE_H3] = "h3",
                                     [SHAPE_NESTJS] = "nestjs"};
static const char *const column_types[] = {
    [COL_TEXT] = "text",  [COL_INT4] = "int4",           [COL_INT8] = "int8",
    [COL_BOOL] = "bool",  [COL_TIMESTAMP] = "timestamp", [COL_UUID] = "uuid",
    [COL_JSONB] = "jsonb"};

static void add_bool(struct buf *out, const char *key, bool value)
{
    buf_addc(out, ',');
    add_string(out, key);
    buf_adds(out, value ? ":true" : ":false");
}

static void add_profile(struct buf *out, const struct api_profile *api)
{
    char allow[64];

    buf_adds(out, "{\"name\":");
    add_string(out, api->name);
    add_member(out, "pattern", api->pattern);
    buf_adds(out, ",\"params\":[");
    for (size_t i = 0; i < api->nparams; i++) {
        if (i)
            buf_addc(out, ',');
        add_string(out, param_types[api->params[i]]);
    }
    buf_addc(out, ']');
    add_member(out, "credential", credentials[api->credential]);
    add_member(out, "cookie", api->credential_cookie);
    add_member(out, "shape", shapes[api->shape]);
    add_member(out, "message_413",
               api->message_413 ? api->message_413 : response_reason(413));
    add_member(out, "message_415",
               api->message_415 ? api->message_415 : response_reason(415));
    add_member(out, "envelope", api->envelope);
    decide_allow(api, allow, sizeof allow);
    add_member(out, "allow", allow);

    buf_adds(out, ",\"ops\":[");
    for (size_t i = 0; i < api->nops; i++) {
        buf_adds(out, i ? ",{\"method\":" : "{\"method\":");
        add_string(out, api->ops[i].method);
        buf_adds(out, ",\"status\":");
        buf_add_long(out, api->ops[i].status);
        buf_addc(out, '}');
    }
    buf_adds(out, "],\"fields\":[");
    for (size_t i = 0; i < api->nfields; i++) {
        const struct api_field *f = &api->fields[i];
        buf_adds(out, i ? ",{\"key\":" : "{\"key\":");
        add_string(out, f->key);
        add_member(out, "type", f->type == FIELD_STRING ? "string" : "object");
        add_bool(out, "required", f->required);
        add_bool(out, "nullable", f->nullable);
        add_bool(out, "may_be_empty", f->may_be_empty);
        buf_addc(out, '}');
    }
    buf_adds(out, "],\"steps\":[");
    for (size_t i = 0; i < api->nsteps; i++) {
        buf_adds(out, i ? ",{\"status\":" : "{\"status\":");
        buf_add_long(out, api->steps[i].status);
        add_member(out, "message", api->steps[i].message);
        buf_addc(out, '}');
    }
    buf_adds(out, "],\"columns\":[");
    for (size_t i = 0; i < api->ncolumns; i++) {
        buf_adds(out, i ? ",{\"key\":" : "{\"key\":");
        add_string(out, api->columns[i].key);
        add_member(out, "type", column_types[api->columns[i].type]);
        buf_addc(out, '}');
    }
    buf_addc(out, ']');
    if (api->cors) {
        buf_adds(out, ",\"cors\":{\"allow_origin\":");
        add_string(out, api->cors->allow_origin);
        add_member(out, "allow_headers", api->cors->allow_headers);
        add_member(out, "expose_headers", api->cors->expose_headers);
        buf_adds(out, ",\"max_age\":");
        buf_add_long(out, api->cors->max_age);
        buf_addc(out, '}');
    } else {
        buf_adds(out, ",\"cors\":null");
    }
    buf_addc(out, '}');
}

int main(void)
{
    struct buf out = {0};

    buf_adds(&out, "{\"max_depth\":");
    buf_add_long(&out, SCHEMA_MAX_DEPTH);
    buf_adds(&out, ",\"apis\":[");
    for (const struct api_profile *const *api = api_profiles; *api; api++) {
        if (api != api_profiles)
            buf_addc(&out, ',');
        add_profile(&out, *api);
    }
    buf_adds(&out, "]}\n");
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    return ferror(stdout) ? 1 : 0;
}
