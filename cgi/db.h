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
    int result_format; /* 0 text, 1 binary */
};

struct db_config {
    const char *conninfo;     /* DATABASE_URL; NULL: libpq's PG* variables */
    int statement_timeout_ms; /* server side; the client waits 1 s longer */
    int connect_timeout_s;
    /* Unnamed statements, parsed with every execution, for a pooler that
     * does not carry prepared statements from one server connection to the
     * next (pgbouncer 1.18 in transaction mode). Such a pooler also refuses
     * the connection's startup options, so the isolation level and the
     * statement timeout then come from the role (sql/grants.sql), and the
     * worker checks the isolation level before it serves. */
    bool unnamed_statements;
};

/* The settings of every worker session, after the statement timeout: the
 * connection's startup options, or through a pooler the role's
 * (sql/grants.sql). Tools that run the workers' statements elsewhere (the
 * bench's ceiling, bench/stmtcost.py) take them from here (sqltext
 * --settings). NULL-terminated. */
struct db_setting {
    const char *name, *value;
};
extern const struct db_setting db_session_settings[];

/* The startup options ("-c name=value ...", spaces escaped) for a session
 * with this statement timeout and db_session_settings. False when they do
 * not fit in n bytes. */
bool db_startup_options(char *out, size_t n, int statement_timeout_ms);

/* Remembers the configuration and the statements to prepare on every new
 * connection. Nothing connects until the first db_exec(). */
void db_init(const struct db_config *config, const struct db_statement *statements,
             size_t count);

enum db_outcome {
    DB_OK,          /* *result holds the rows */
    DB_UNAVAILABLE, /* unreachable, broken twice, timed out or failing: 503 */
    DB_BAD_INPUT,   /* the statement refused a value it was given (SQLSTATE
                       class 22, data exception): the request's fault */
};

/* Runs statement number index with text parameters; rows come back in the
 * binary format. On DB_OK, *result is PGRES_TUPLES_OK and the caller
 * PQclear()s it. A connection that breaks is reopened and the statement
 * retried once, so a restarted server costs no request. A statement that
 * loses a race with another transaction (serialization failure, deadlock)
 * runs again on a fresh snapshot until the deadline. Every transaction is
 * REPEATABLE READ, so that one statement's checks and update see the same
 * row versions, or it fails and runs again. */
enum db_outcome db_exec(size_t index, const char *const *values, PGresult **result,
                        long *elapsed_us);

#endif
