/* engine.c: walks an API profile: route, operation, local checks, the one
 * SQL statement, and the answer decide.c picks (status, body, ETag, CORS).
 * Entry points: engine_init(), engine_handle(), engine_is_json_media_type().
 *
 * A request that will be refused before its body matters pays for no more
 * than one pass over the body: problems are worded only when they are the
 * answer. */
#include "engine.h"

#include "api.h"
#include "buf.h"
#include "credential.h"
#include "decide.h"
#include "etag.h"
#include "field.h"
#include "log.h"
#include "route.h"
#include "row.h"
#include "schema.h"
#include "sha256.h"
#include "stats.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEALTH_STATEMENT 0
#define MAX_STATEMENTS   16
#define MAX_SQL_PARAMS   (4 + API_MAX_PARAMS + 2 * API_MAX_FIELDS)

/* The statement's columns before the representation (api.h). */
#define COL_FAILURE        0
#define COL_VERSION        1
#define COL_REPRESENTATION 2

static struct db_statement statements[MAX_STATEMENTS];

static int statement_params(const struct api_profile *api, const struct api_op *op)
{
    int n = (int)(1 + api->nparams);

    /* apply, the fields, the If-Match versions, the request id */
    return op->kind == OP_UPDATE ? n + 3 + 2 * (int)api->nfields : n;
}

void engine_init(const struct engine_config *config)
{
    /* Each operation's statement is named for its API and method
     * ("recoup_patch"), as PostgreSQL's logs show it. */
    static char names[MAX_STATEMENTS][48];
    size_t n = 0;

    statements[n++] = (struct db_statement){"health", "SELECT 1", 0, 0};
    for (const struct api_profile *const *api = api_profiles; *api; api++)
        for (size_t i = 0; i < (*api)->nops; i++) {
            const struct api_op *op = &(*api)->ops[i];
            if (!op->sql)
                continue;
            if (n == MAX_STATEMENTS)
                abort(); /* raise MAX_STATEMENTS */
            int len =
                snprintf(names[n], sizeof names[n], "%s_%s", (*api)->name, op->method);
            for (int k = 0; k < len; k++)
                names[n][k] = (char)tolower((unsigned char)names[n][k]);
            statements[n] =
                (struct db_statement){names[n], op->sql, statement_params(*api, op), 1};
            n++;
        }
    db_init(&config->db, statements, n);
}

/* The statement index of an operation: after health, in profile order,
 * counting the operations that have one. */
static size_t statement_of(const struct api_op *op)
{
    size_t n = 1;

    for (const struct api_profile *const *p = api_profiles; *p; p++)
        for (size_t i = 0; i < (*p)->nops; i++) {
            if (&(*p)->ops[i] == op)
                return n;
            n += (*p)->ops[i].sql != NULL;
        }
    abort(); /* an operation of no profile */
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

/* What one request brought, for the statement and the answer. */
struct call {
    const struct api_profile *api;
    const struct api_op *op;
    const struct request *req;
    const char *params[API_MAX_PARAMS];
    char credential[SHA256_BYTEA_HEX_LEN]; /* "" when there is none */
    struct body_check body;
    unsigned local;      /* enum local_failure bits */
    struct buf if_match; /* an update's If-Match versions, bigint[] text */
    bool conditional;    /* if_match holds them (else: no condition, NULL) */
};

static void respond_step(struct call *c, size_t step, struct response *res)
{
    const struct api_profile *api = c->api;
    const struct api_step *s = &api->steps[step];

    if ((s->local & FAIL_JSON) && (c->local & FAIL_MEDIA_TYPE)) {
        response_error(res, api->shape, 415, api->message_415, NULL);
        return;
    }
    bool schema = (s->local & FAIL_SCHEMA) && c->body.failure == FAIL_SCHEMA;
    if (schema)
        schema_word(api, &c->body);
    response_error(res, api->shape, s->status, s->message,
                   schema ? &c->body.issues : NULL);
}

static void unavailable(enum error_shape shape, struct response *res)
{
    res->retry_after = true;
    response_error(res, shape, 503, NULL, NULL);
}

/* The operation statement's values: with apply when no local check failed,
 * else only its checks, with no body value bound. Returns their number;
 * they point into c. */
static size_t statement_values(const struct call *c, const char **values)
{
    const struct api_profile *api = c->api;
    bool apply = c->local == FAIL_NONE;
    size_t n = 0;

    values[n++] = c->credential[0] ? c->credential : NULL;
    for (size_t i = 0; i < api->nparams; i++)
        values[n++] = c->params[i];
    if (c->op->kind != OP_UPDATE)
        return n;
    values[n++] = apply ? "true" : "false";
    for (size_t i = 0; i < api->nfields; i++) {
        bool given = apply && c->body.values[i].given;
        values[n++] = given ? "true" : "false";
        values[n++] = given ? c->body.values[i].text : NULL;
    }
    values[n++] = c->conditional ? c->if_match.data : NULL;
    values[n++] = c->req->request_id;
    return n;
}

static void answer_row(struct call *c, const PGresult *r, struct response *res)
{
    const struct api_profile *api = c->api;
    bool has_version = !PQgetisnull(r, 0, COL_VERSION);
    struct db_verdict db = {
        .failure = PQgetisnull(r, 0, COL_FAILURE) ? NULL : PQgetvalue(r, 0, COL_FAILURE),
        .found = has_version && PQgetlength(r, 0, COL_VERSION) == 8,
        .done = !PQgetisnull(r, 0, COL_REPRESENTATION),
    };
    struct decide_conditions cond = {c->req->if_match, c->req->if_none_match};
    struct buf body = {0};

    if (db.found)
        db.version = (int64_t)row_int8(PQgetvalue(r, 0, COL_VERSION));
    struct decide_answer a = decide_answer(api, c->op, c->local, &cond, &db);
    bool ok = has_version == db.found;

    if (ok && a.step == DECIDE_SUCCESS && a.body)
        ok = row_write_json(api, PQgetvalue(r, 0, COL_REPRESENTATION),
                            (size_t)PQgetlength(r, 0, COL_REPRESENTATION), &body);
    if (!ok || a.step == DECIDE_BROKEN) {
        buf_free(&body);
        log_error(
            "%s: the statement's row does not fit the profile (failure %s, found %d)",
            api->name, db.failure ? db.failure : "NULL", db.found);
        response_error(res, api->shape, 500, NULL, NULL);
        return;
    }
    if (a.etag) {
        char tag[ETAG_MAX];
        etag_format(db.version, tag);
        response_add_header(res, "ETag", tag);
    }
    if (a.step == DECIDE_SUCCESS)
        response_set(res, a.status, a.body ? buf_take(&body, NULL) : NULL);
    else
        respond_step(c, a.step, res);
}

/* The answer from the statement's outcome. */
static void answer_from_db(struct call *c, enum db_outcome outcome, const PGresult *r,
                           struct response *res)
{
    if (outcome != DB_OK) {
        unavailable(c->api->shape, res);
    } else if (PQntuples(r) != 1 || PQnfields(r) != COL_REPRESENTATION + 1) {
        log_error("%s: the statement returned %d rows of %d columns", c->api->name,
                  PQntuples(r), PQnfields(r));
        response_error(res, c->api->shape, 500, NULL, NULL);
    } else {
        answer_row(c, r, res);
    }
}

/* What the request shows without the database: its credential (hashed),
 * parameters, body and If-Match, as local failures and values. */
static void take_request(struct call *c, const struct route *route,
                         const struct request *req)
{
    const char *token = NULL;
    size_t token_len = 0;

    c->req = req;
    c->local |= credential_take(c->api, req, &token, &token_len);
    c->local |= check_params(c->api, route, c->params);
    if (c->op->kind == OP_UPDATE) {
        if (engine_is_json_media_type(req->content_type)) {
            schema_scan(c->api, req->body, req->body_len, &c->body);
            c->local |= c->body.failure;
        } else {
            c->local |= FAIL_MEDIA_TYPE;
        }
        c->conditional = etag_versions(req->if_match, &c->if_match);
    }
    if (token && decide_needs_db(c->api, c->local))
        sha256_bytea_hex(token, token_len, c->credential);
}

static void call_free(struct call *c)
{
    schema_free(&c->body);
    buf_free(&c->if_match);
}

/* Answers into res without the database, or returns false when c's
 * statement must run first. */
static bool serve_api(struct call *c, const struct route *route,
                      const struct request *req, struct response *res)
{
    const struct api_profile *api = c->api;
    bool preflight;

    c->op = decide_op(api, req->method);
    preflight = c->op && c->op->kind == OP_PREFLIGHT;
    char cors[sizeof res->headers];

    res->extra_headers = api->extra_headers;
    decide_cors(api, preflight, cors, sizeof cors);
    response_add_lines(res, cors);
    if (!c->op) {
        decide_allow(api, res->allow, sizeof res->allow);
        response_error(res, api->shape, 405, NULL, NULL);
        return true;
    }
    if (preflight) { /* anyone may ask what a browser may send: no credential */
        response_set(res, c->op->status, NULL);
        return true;
    }
    if (c->op->kind == OP_UPDATE && req->body_too_large) {
        response_error(res, api->shape, 413, api->message_413, NULL);
        return true;
    }
    take_request(c, route, req);
    if (decide_needs_db(api, c->local))
        return false;
    respond_step(c, decide_first_local(api, c->local), res);
    return true;
}

int engine_explain(const struct request *req, const char **sql,
                   void (*emit)(int n, const char *value, void *ctx), void *ctx)
{
    struct route route;
    int count = -1;

    if (!route_match(req->path, &route))
        return -1;
    struct call c = {.api = route.api};
    if (c.api && (c.op = decide_op(c.api, req->method)) != NULL && c.op->sql) {
        take_request(&c, &route, req);
        if (decide_needs_db(c.api, c.local)) {
            const char *values[MAX_SQL_PARAMS];
            count = (int)statement_values(&c, values);
            for (int i = 0; i < count; i++)
                emit(i + 1, values[i], ctx);
            *sql = c.op->sql;
        }
    }
    call_free(&c);
    route_free(&route);
    return count;
}

/* Answers a health check that is not a GET; false when it is one: the
 * answer is then the database's. */
static bool serve_health(const struct request *req, struct response *res)
{
    if (strcmp(req->method, "GET") == 0)
        return false;
    strcpy(res->allow, ENGINE_FIXED_ALLOW);
    response_error(res, SHAPE_GENERIC, 405, NULL, NULL);
    return true;
}

static void answer_health(enum db_outcome outcome, struct response *res)
{
    if (outcome == DB_OK) {
        response_set(res, 200, strdup("{\"status\":\"ok\"}"));
    } else {
        res->retry_after = true;
        response_set(res, 503, strdup(ENGINE_HEALTH_UNAVAILABLE));
    }
}

/* Whether the client asked for the OpenMetrics text: ?openmetrics, or an
 * Accept that names application/openmetrics-text (as Prometheus sends). */
static bool wants_openmetrics(const struct request *req)
{
    for (const char *q = req->query; *q;) {
        size_t n = strcspn(q, "&");
        size_t name = strcspn(q, "=&");
        if (name == 11 && strncmp(q, "openmetrics", 11) == 0)
            return true;
        q += n + (q[n] == '&');
    }
    return req->accept && strcasestr(req->accept, "application/openmetrics-text");
}

/* GET /status: the pool's figures (stats.c), whichever worker answers. */
static void serve_status(const struct request *req, struct response *res)
{
    struct buf body = {0};

    if (strcmp(req->method, "GET") != 0) {
        strcpy(res->allow, ENGINE_FIXED_ALLOW);
        response_error(res, SHAPE_GENERIC, 405, NULL, NULL);
        return;
    }
    if (wants_openmetrics(req)) {
        stats_write_openmetrics(&body, stats_listener_queue());
        res->content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    } else {
        stats_write_json(&body, stats_listener_queue());
    }
    response_set(res, 200, buf_take(&body, NULL));
}

/* A request whose answer waits for its statement. */
struct engine_call {
    struct route route;
    struct call c; /* c.api NULL: the health check */
    const char *values[MAX_SQL_PARAMS];
};

static void call_end(struct engine_call *call)
{
    call_free(&call->c);
    route_free(&call->route);
    free(call);
}

struct engine_call *engine_begin(const struct request *req, struct response *res,
                                 struct engine_outcome *outcome)
{
    struct engine_call *call = calloc(1, sizeof *call);
    bool answered;

    if (!call)
        abort();
    *res = (struct response){0};
    *outcome = (struct engine_outcome){.route = "unknown"};
    if (!route_match(req->path, &call->route)) {
        free(call);
        response_error(res, SHAPE_GENERIC, 404, NULL, NULL);
        return NULL;
    }
    call->c.req = req;
    if (call->route.api) {
        outcome->route = call->route.api->name;
        call->c.api = call->route.api;
        answered = serve_api(&call->c, &call->route, req, res);
    } else if (strcmp(call->route.fixed, ROUTE_STATUS) == 0) {
        outcome->route = "status";
        serve_status(req, res);
        answered = true;
    } else {
        outcome->route = "health";
        answered = serve_health(req, res);
    }
    if (!answered)
        return call;
    call_end(call);
    return NULL;
}

size_t engine_statement(struct engine_call *call, const char *const **values)
{
    *values = call->values;
    if (!call->c.api)
        return HEALTH_STATEMENT;
    statement_values(&call->c, call->values);
    return statement_of(call->c.op);
}

bool engine_resume(struct engine_call *call, enum db_outcome db, PGresult *r,
                   struct response *res)
{
    struct call *c = &call->c;

    if (!c->api) {
        answer_health(db, res);
    } else if (db == DB_BAD_INPUT && c->local == FAIL_NONE) {
        /* A value the database refuses is the body's fault: the body step
         * answers, unless an earlier check fails, which the statement then
         * learns without the values. */
        c->local |= FAIL_JSON;
        return true;
    } else {
        answer_from_db(c, db, r, res);
    }
    PQclear(r);
    call_end(call);
    return false;
}

void engine_handle(const struct request *req, struct response *res,
                   struct engine_outcome *outcome)
{
    struct engine_call *call = engine_begin(req, res, outcome);
    bool again = call != NULL;

    while (again) {
        const char *const *values;
        size_t statement = engine_statement(call, &values);
        PGresult *r;
        long us;
        enum db_outcome db = db_exec(statement, values, &r, &us);
        outcome->db_us += us;
        again = engine_resume(call, db, r, res);
    }
}
