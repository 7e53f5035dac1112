/* decide.c: which operation, which check fails first, what Allow says.
 * Entry points: decide_op(), decide_allow(), decide_first_local(),
 * decide_needs_db(), decide_step(). */
#include "decide.h"

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
    for (size_t i = 0; i < api->nsteps; i++)
        if (api->steps[i].db_code && strcmp(api->steps[i].db_code, code) == 0)
            return i;
    return DECIDE_BROKEN;
}

/* The statement's answer as a step, DECIDE_SUCCESS or DECIDE_BROKEN. */
static size_t db_step(const struct api_profile *api, unsigned local,
                      const struct db_verdict *db)
{
    if (db->failure)
        return step_of_code(api, db->failure);
    if (!db->found)
        return step_of_code(api, api->target_missing);
    /* The target is there and nothing failed, so with no local failure the
     * statement must have done its work. */
    return db->done || local ? DECIDE_SUCCESS : DECIDE_BROKEN;
}

size_t decide_step(const struct api_profile *api, unsigned local,
                   const struct db_verdict *db)
{
    size_t first = decide_first_local(api, local);
    size_t from_db = db ? db_step(api, local, db) : DECIDE_SUCCESS;

    if (from_db == DECIDE_BROKEN)
        return DECIDE_BROKEN;
    if (first < api->nsteps && (from_db == DECIDE_SUCCESS || first < from_db))
        return first;
    return from_db;
}
