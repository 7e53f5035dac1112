/* engine.c: walks an API profile: route, method, local checks, the one SQL
 * statement, and the first failure in the API's own order.
 * Entry points: engine_init(), engine_handle(). */
#include "engine.h"

#include "api.h"
#include "credential.h"
#include "field.h"
#include "log.h"
#include "route.h"
#include "schema.h"
#include "sha256.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEALTH_STATEMENT 0
#define MAX_STATEMENTS   16
#define MAX_SQL_PARAMS   (2 + API_MAX_PARAMS + 2 * API_MAX_FIELDS)

static struct db_statement statements[MAX_STATEMENTS];

static int statement_params(const struct api_profile *api)
{
    return (int)(2 + api->nparams + 2 * api->nfields);
}

void engine_init(const struct engine_config *config)
{
    size_t n = 0;

    statements[n++] = (struct db_statement){"health", "SELECT 1", 0};
    for (const struct api_profile *const *api = api_profiles; *api; api++)
        statements[n++] =
            (struct db_statement){(*api)->name, (*api)->sql, statement_params(*api)};
    db_init(&config->db, statements, n);
}

/* The statement index of a profile: its place in api_profiles, after health. */
static size_t statement_of(const struct api_profile *api)
{
    size_t i = 0;

    while (api_profiles[i] != api)
        i++;
    return i + 1;
}

bool engine_is_json_media_type(const char *content_type)
{
    const char *p = content_type, *end;
    size_t len;

    if (!p)
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strcspn(p, ";");
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    len = (size_t)(end - p);
    if (len == 16 && strncasecmp(p, "application/json", 16) == 0)
        return true;
    /* application/<subtype>+json, such as application/merge-patch+json */
    return len > 17 && strncasecmp(p, "application/", 12) == 0 &&
           strncasecmp(end - 5, "+json", 5) == 0 && !memchr(p + 12, '/', len - 12);
}

static bool is_positive_bigint(const char *s)
{
    static const char max[] = "9223372036854775807";
    size_t len;

    while (*s == '0')
        s++;
    len = strlen(s);
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return len > 0 &&
           (len < sizeof max - 1 || (len == sizeof max - 1 && strcmp(s, max) <= 0));
}

static bool is_uuid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return s[36] == '\0';
}

/* Fills values[] with the parameters the statement may see: an invalid one
 * goes as NULL. Returns FAIL_PARAMS when one is not of its declared type. */
static enum local_failure check_params(const struct api_profile *api,
                                       const struct route *route, const char **values)
{
    enum local_failure failure = FAIL_NONE;

    for (size_t i = 0; i < api->nparams; i++) {
        const char *p = route->params[i];
        bool ok = true;
        switch (api->params[i]) {
        case PARAM_TEXT: /* no row has an id that is not UTF-8: NULL finds none */
            values[i] = field_utf8_valid(p, strlen(p)) ? p : NULL;
            continue;
        case PARAM_BIGINT:
            ok = is_positive_bigint(p);
            break;
        case PARAM_UUID:
            ok = is_uuid(p);
            break;
        }
        values[i] = ok ? p : NULL;
        if (!ok)
            failure = FAIL_PARAMS;
    }
    return failure;
}

/* The first step, in the API's order, that reports one of these local
 * failures (415 is reported where the body is parsed); nsteps if none. */
static size_t first_local_step(const struct api_profile *api, unsigned failures)
{
    if (failures & FAIL_MEDIA_TYPE)
        failures |= FAIL_JSON;
    for (size_t i = 0; i < api->nsteps; i++)
        if (api->steps[i].local & failures)
            return i;
    return api->nsteps;
}

static size_t first_db_step(const struct api_profile *api)
{
    for (size_t i = 0; i < api->nsteps; i++)
        if (api->steps[i].db_code)
            return i;
    return api->nsteps;
}

/* The step whose db_code the statement returned. A statement that found no
 * failure yet updated no row lost a race with a delete: that is the last
 * database check, the target row's. */
static size_t db_step(const struct api_profile *api, const char *code)
{
    size_t last = api->nsteps;

    for (size_t i = 0; i < api->nsteps; i++) {
        if (!api->steps[i].db_code)
            continue;
        if (code && strcmp(api->steps[i].db_code, code) == 0)
            return i;
        last = i;
    }
    if (code)
        log_error("%s: the statement returned an unknown failure '%s'", api->name, code);
    return last;
}

static void respond_step(const struct api_profile *api, size_t step, unsigned failures,
                         const struct body_check *body, struct response *res)
{
    const struct api_step *s = &api->steps[step];

    if ((s->local & FAIL_JSON) && (failures & FAIL_MEDIA_TYPE)) {
        response_error(res, api->shape, 415, api->message_415, NULL);
        return;
    }
    bool schema = (s->local & FAIL_SCHEMA) && (failures & FAIL_SCHEMA);
    response_error(res, api->shape, s->status, s->message, schema ? &body->issues : NULL);
}

static void unavailable(enum error_shape shape, struct response *res)
{
    res->retry_after = true;
    response_error(res, shape, 503, NULL, NULL);
}

/* Runs the profile's statement and answers from its one row. */
static void run_statement(const struct api_profile *api, size_t local_step,
                          unsigned failures, const char *credential,
                          const char *const *params, const struct body_check *body,
                          struct response *res, long *db_us)
{
    const char *values[MAX_SQL_PARAMS];
    size_t n = 0;
    PGresult *r;

    values[n++] = credential;
    for (size_t i = 0; i < api->nparams; i++)
        values[n++] = params[i];
    values[n++] = failures == FAIL_NONE ? "true" : "false";
    for (size_t i = 0; i < api->nfields; i++) {
        values[n++] = body->values[i].given ? "true" : "false";
        values[n++] = body->values[i].text;
    }
    if (!db_exec(statement_of(api), values, &r, db_us)) {
        unavailable(api->shape, res);
        return;
    }
    if (PQntuples(r) != 1 || PQnfields(r) != 2) {
        log_error("%s: the statement returned %d rows of %d columns, not 1 of 2",
                  api->name, PQntuples(r), PQnfields(r));
        PQclear(r);
        response_error(res, api->shape, 500, NULL, NULL);
        return;
    }
    const char *code = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
    bool updated = !PQgetisnull(r, 0, 1);
    size_t step =
        code || (failures == FAIL_NONE && !updated) ? db_step(api, code) : api->nsteps;
    if (local_step < step)
        step = local_step;
    if (step < api->nsteps)
        respond_step(api, step, failures, body, res);
    else
        response_set(res, 200, strdup(PQgetvalue(r, 0, 1)));
    PQclear(r);
}

static void serve_api(const struct api_profile *api, const struct route *route,
                      const struct request *req, struct response *res, long *db_us)
{
    const char *params[API_MAX_PARAMS] = {0};
    struct body_check body = {0};
    const char *token = NULL;
    size_t token_len = 0;
    unsigned failures = FAIL_NONE;

    res->extra_headers = api->extra_headers;
    if (strcmp(req->method, "PATCH") != 0) {
        res->allow = "PATCH";
        response_error(res, api->shape, 405, NULL, NULL);
        return;
    }
    if (req->body_too_large) {
        response_error(res, api->shape, 413, api->message_413, NULL);
        return;
    }

    failures |= credential_take(api, req, &token, &token_len);
    failures |= check_params(api, route, params);
    if (engine_is_json_media_type(req->content_type)) {
        schema_check(api, req->body, req->body_len, &body);
        failures |= body.failure;
    } else {
        failures |= FAIL_MEDIA_TYPE;
    }

    size_t local_step = first_local_step(api, failures);
    if (local_step < api->nsteps && local_step <= first_db_step(api)) {
        respond_step(api, local_step, failures, &body, res);
    } else {
        char hash[SHA256_BYTEA_HEX_LEN];
        if (token)
            sha256_bytea_hex(token, token_len, hash);
        run_statement(api, local_step, failures, token ? hash : NULL, params, &body, res,
                      db_us);
    }
    schema_free(&body);
}

static void serve_health(const struct request *req, struct response *res, long *db_us)
{
    PGresult *r;

    if (strcmp(req->method, "GET") != 0) {
        res->allow = "GET";
        response_error(res, SHAPE_GENERIC, 405, NULL, NULL);
        return;
    }
    if (db_exec(HEALTH_STATEMENT, NULL, &r, db_us)) {
        PQclear(r);
        response_set(res, 200, strdup("{\"status\":\"ok\"}"));
    } else {
        res->retry_after = true;
        response_set(res, 503, strdup("{\"status\":\"unavailable\"}"));
    }
}

void engine_handle(const struct request *req, struct response *res,
                   struct engine_outcome *outcome)
{
    struct route route;

    *res = (struct response){0};
    *outcome = (struct engine_outcome){.route = "unknown"};
    if (!route_match(req->path, &route)) {
        response_error(res, SHAPE_GENERIC, 404, NULL, NULL);
        return;
    }
    if (route.api) {
        outcome->route = route.api->name;
        serve_api(route.api, &route, req, res, &outcome->db_us);
    } else {
        outcome->route = "health";
        serve_health(req, res, &outcome->db_us);
    }
    route_free(&route);
}
