/* db.h: this worker's one PostgreSQL connection and its prepared statements. */
#ifndef CHATPATCH_DB_H
#define CHATPATCH_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct db_statement {
    const char *name;
    const char *sql;
    int nparams;
};

struct db_config {
    const char *conninfo;     /* DATABASE_URL; NULL: libpq's PG* variables */
    int statement_timeout_ms; /* server side; the client waits 1 s longer */
    int connect_timeout_s;
};

/* Remembers the configuration and the statements to prepare on every new
 * connection. Nothing connects until the first db_exec(). */
void db_init(const struct db_config *config, const struct db_statement *statements,
             size_t count);

/* Runs statement number index with text parameters. On success returns true
 * and *result (PGRES_TUPLES_OK, the caller PQclear()s it). Returns false
 * when the database cannot answer: unreachable, broken twice, timed out or
 * failing; the caller answers 503. A connection that breaks is reopened and
 * the statement retried once, so a restarted server costs no request. */
bool db_exec(size_t index, const char *const *values, PGresult **result,
             long *elapsed_us);

#endif
