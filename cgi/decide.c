/* decide.c: which operation, which check fails first, which status and
 * which headers (Allow, CORS, ETag).
 * Entry points: decide_op(), decide_allow(), decide_cors(),
 * decide_first_local(), decide_needs_db(), decide_answer(). */
#include "decide.h"

#include "etag.h"

#include <stdio.h>
#include <string.h>

const struct api_op *decide_op(const struct api_profile *api, const char *method)
{
    for (size_t i = 0; i < api->nops; i++)
        if (strcmp(api->ops[i].method, method) == 0)
            return &api->ops[i];
    return NULL;
}

void decide_allow(const struct api_profile *api, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < api->nops; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s",
                                i ? ", " : "", api->ops[i].method);
}

void decide_cors(const struct api_profile *api, bool preflight, char *out, size_t cap)
{
    const struct api_cors *cors = api->cors;
    char methods[64];

    out[0] = '\0';
    if (!cors)
        return;
    if (!preflight) {
        snprintf(out, cap,
                 "Access-Control-Allow-Origin: %s\r\n"
                 "Access-Control-Expose-Headers: %s\r\n",
                 cors->allow_origin, cors->expose_headers);
        return;
    }
    decide_allow(api, methods, sizeof methods);
    snprintf(out, cap,
             "Access-Control-Allow-Origin: %s\r\n"
             "Access-Control-Allow-Methods: %s\r\n"
             "Access-Control-Allow-Headers: %s\r\n"
             "Access-Control-Max-Age: %d\r\n",
             cors->allow_origin, methods, cors->allow_headers, cors->max_age);
}

size_t decide_first_local(const struct api_profile *api, unsigned local)
{
    if (local & FAIL_MEDIA_TYPE)
        local |= FAIL_JSON;
    for (size_t i = 0; i < api->nsteps; i++)
        if (api->steps[i].local & local)
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

bool decide_needs_db(const struct api_profile *api, unsigned local)
{
    size_t first = decide_first_local(api, local);

    return first == api->nsteps || first_db_step(api) < first;
}

static size_t step_of_code(const struct api_profile *api, const char *code)
{
    for (size_t i = 0; code && i < api->nsteps; i++)
        if (api->steps[i].db_code && strcmp(api->steps[i].db_code, code) == 0)
            return i;
    return DECIDE_BROKEN;
}

/* The statement's answer as a step, DECIDE_SUCCESS or DECIDE_BROKEN. */
static size_t db_step(const struct api_profile *api, const struct api_op *op,
                      unsigned local, const struct decide_conditions *cond,
                      const struct db_verdict *db)
{
    if (db->failure)
        return step_of_code(api, db->failure);
    if (!db->found)
        return step_of_code(api, api->target_missing);
    if (local)
        return DECIDE_SUCCESS; /* the statement only checked: a local step answers */
    if (op->kind == OP_UPDATE) {
        if (db->done)
            return DECIDE_SUCCESS;
        /* The target is there, nothing failed, and the update was on: only
         * an If-Match naming another version can have held it back. */
        return etag_condition_of(cond->if_match) == ETAG_LIST
                   ? step_of_code(api, api->precondition_failed)
                   : DECIDE_BROKEN;
    }
    if (!db->done)
        return DECIDE_BROKEN;
    /* A read's If-Match, compared here: nothing changes either way. */
    if (etag_condition_of(cond->if_match) != ETAG_ABSENT &&
        !etag_matches(cond->if_match, db->version, false))
        return step_of_code(api, api->precondition_failed);
    return DECIDE_SUCCESS;
}

struct decide_answer decide_answer(const struct api_profile *api, const struct api_op *op,
                                   unsigned local, const struct decide_conditions *cond,
                                   const struct db_verdict *db)
{
    static const struct decide_conditions none;
    size_t first = decide_first_local(api, local);
    size_t from_db;
    struct decide_answer a;

    if (!cond)
        cond = &none;
    from_db = db ? db_step(api, op, local, cond, db) : DECIDE_SUCCESS;
    a = (struct decide_answer){.step = from_db};

    if (from_db != DECIDE_BROKEN && first < api->nsteps &&
        (from_db == DECIDE_SUCCESS || first < from_db))
        a.step = first;
    if (a.step == DECIDE_SUCCESS) {
        a.etag = db != NULL;
        a.status = op->status;
        /* GET with If-None-Match naming the version: the client has it. */
        if (op->kind == OP_READ && db &&
            etag_matches(cond->if_none_match, db->version, true))
            a.status = 304;
        a.body = a.status != 304;
    } else if (a.step != DECIDE_BROKEN && db && db->found &&
               step_of_code(api, api->precondition_failed) == a.step) {
        a.etag = true; /* the version the client should have named */
    }
    return a;
}
