/* decide.h: the engine's decisions, as pure functions of a profile, what the
 * request showed without the database, and what the statement said. No I/O
 * here, so every decision is unit-tested without a database. */
#ifndef CHATPATCH_DECIDE_H
#define CHATPATCH_DECIDE_H

#include "api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the statement said (api.h: its row). */
struct db_verdict {
    const char *failure; /* the db_code of the first failed check, or NULL */
    bool found;          /* the target exists for this caller: version holds */
    int64_t version;     /* its version: the new one when it was updated */
    bool done;           /* the representation came back: updated, or read */
};

/* The conditional headers of the request (RFC 9110, 13.1), or NULL. */
struct decide_conditions {
    const char *if_match;
    const char *if_none_match;
};

/* decide_answer()'s step when nothing failed: the operation succeeded. */
#define DECIDE_SUCCESS ((size_t)-1)
/* decide_answer()'s step when the statement said something the profile
 * does not know: a statement out of step with its profile (500). */
#define DECIDE_BROKEN ((size_t)-2)

/* How to answer a request the statement ran for. */
struct decide_answer {
    size_t step; /* the failing step in the API's order, DECIDE_SUCCESS or
                    DECIDE_BROKEN */
    int status;  /* with DECIDE_SUCCESS: the operation's status, or 304 */
    bool etag;   /* send the target's ETag (its version): with a success, a
                    304, and the precondition step's 412 */
    bool body;   /* send the representation (a success other than 304) */
};

/* The operation a method names, or NULL. */
const struct api_op *decide_op(const struct api_profile *api, const char *method);

/* The profile's methods, in the profile's order, joined with ", ", into out
 * (cap bytes, cut to fit): the Allow header of its 405, and the methods its
 * CORS preflight allows. */
void decide_allow(const struct api_profile *api, char *out, size_t cap);

/* The CORS header lines ("Name: value\r\n") of a profile's answers into out
 * (cap bytes, cut to fit; "" for a profile without CORS): a preflight's
 * allow the origin, the methods, the request headers and say how long to
 * keep that; every other answer allows the origin and exposes headers. */
void decide_cors(const struct api_profile *api, bool preflight, char *out, size_t cap);

/* The first step, in the API's order, that reports one of the local
 * failures (415 is reported where the body is parsed); api->nsteps if none. */
size_t decide_first_local(const struct api_profile *api, unsigned local);

/* Whether the statement must run: no local failure, or a check only the
 * database can make comes before the first one that failed. */
bool decide_needs_db(const struct api_profile *api, unsigned local);

/* The answer to a request of operation op whose statement ran (db) after
 * the local checks found local: the first failing step in the API's order
 * among the local failures, the statement's and the preconditions, which
 * come last (only a request that would otherwise succeed gets 412). An
 * update's If-Match was the statement's to check (it did not update); a
 * read's If-Match (strong comparison) and If-None-Match (weak comparison,
 * 304) are checked here against the version it read. cond NULL: none;
 * db NULL: the statement did not run (a local step answers). */
struct decide_answer decide_answer(const struct api_profile *api, const struct api_op *op,
                                   unsigned local, const struct decide_conditions *cond,
                                   const struct db_verdict *db);

#endif
