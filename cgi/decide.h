/* decide.h: the engine's decisions, as pure functions of a profile, what the
 * request showed without the database, and what the statement said. No I/O
 * here, so every decision is unit-tested without a database. */
#ifndef CHATPATCH_DECIDE_H
#define CHATPATCH_DECIDE_H

#include "api.h"

#include <stdbool.h>
#include <stddef.h>

/* What the statement said (api.h: its row). */
struct db_verdict {
    const char *failure; /* the db_code of the first failed check, or NULL */
    bool found;          /* the target row exists for this caller */
    bool done;           /* the row was updated (or read) */
};

/* decide_step()'s answer when nothing failed: the operation succeeded. */
#define DECIDE_SUCCESS ((size_t)-1)
/* decide_step()'s answer when the statement said something the profile
 * does not know: a statement out of step with its profile (500). */
#define DECIDE_BROKEN ((size_t)-2)

/* The operation a method names, or NULL. */
const struct api_op *decide_op(const struct api_profile *api, const char *method);

/* The Allow header of a profile: its methods, in the profile's order,
 * joined with ", ", into out (cap bytes, cut to fit). */
void decide_allow(const struct api_profile *api, char *out, size_t cap);

/* The first step, in the API's order, that reports one of the local
 * failures (415 is reported where the body is parsed); api->nsteps if none. */
size_t decide_first_local(const struct api_profile *api, unsigned local);

/* Whether the statement must run: no local failure, or a check only the
 * database can make comes before the first one that failed. */
bool decide_needs_db(const struct api_profile *api, unsigned local);

/* The step that answers the request: the first in the API's order among the
 * local failures and the statement's (db NULL: it did not run).
 * DECIDE_SUCCESS when none failed, DECIDE_BROKEN when the statement's
 * answer makes no sense for the profile. */
size_t decide_step(const struct api_profile *api, unsigned local,
                   const struct db_verdict *db);

#endif
