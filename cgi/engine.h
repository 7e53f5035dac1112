/* engine.h: one request in, one response out, for any API profile. */
#ifndef CHATPATCH_ENGINE_H
#define CHATPATCH_ENGINE_H

#include "db.h"
#include "request.h"
#include "response.h"

struct engine_config {
    struct db_config db;
};

/* Prepares the statements of every profile (and the health check) for the
 * database module. Call once per process, before engine_handle(). */
void engine_init(const struct engine_config *config);

/* What the access log wants to know of a handled request. */
struct engine_outcome {
    const char *route; /* the profile's name, "health" or "unknown" */
    long db_us;        /* time spent waiting for PostgreSQL */
};

/* The fixed routes' methods (the Allow of their 405), and the health
 * check's body when the database does not answer. errors.c prints both for
 * the configs of web servers in front (chatpatch --print-errors). */
#define ENGINE_FIXED_ALLOW        "GET"
#define ENGINE_HEALTH_UNAVAILABLE "{\"status\":\"unavailable\"}"

/* Answers req into res (release it with response_free()), waiting for
 * the database when the answer needs it. */
void engine_handle(const struct request *req, struct response *res,
                   struct engine_outcome *outcome);

/* The same in steps, for a worker that serves other requests while the
 * database works (serve.c). engine_begin() answers into res and returns
 * NULL, or returns the call whose statement must run first: run
 * engine_statement()'s (index and values, valid while the call lives) and
 * give its outcome to engine_resume(), which either answers into res and
 * frees the call, or returns true to have engine_statement()'s statement
 * run again. req must outlive the call. */
struct engine_call;
struct engine_call *engine_begin(const struct request *req, struct response *res,
                                 struct engine_outcome *outcome);
size_t engine_statement(struct engine_call *call, const char *const **values);
/* Takes r (NULL unless DB_OK). */
bool engine_resume(struct engine_call *call, enum db_outcome db, PGresult *r,
                   struct response *res);

/* For tools (make bench): the statement a request would run and the values
 * it would be given, without the database. Calls emit for each value ($n,
 * NULL for SQL NULL) and sets *sql; returns their number, or -1 when the
 * request would be answered without the statement. */
int engine_explain(const struct request *req, const char **sql,
                   void (*emit)(int n, const char *value, void *ctx), void *ctx);

/* True for application/json (any case, parameters allowed) and

 * application/<anything>+json. */
bool engine_is_json_media_type(const char *content_type);

#endif
