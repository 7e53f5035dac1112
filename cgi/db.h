/* db.h: this worker's PostgreSQL connections and their prepared statements. */
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

/* The most connections one worker may have (--db-connections). */
#define DB_MAX_CONNECTIONS 32

struct db_config {
    const char *conninfo;     /* DATABASE_URL; NULL: libpq's PG* variables */
    int connections;          /* at most, each opened when first needed */
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

/* Each statement runs as its own transaction, REPEATABLE READ, so that one
 * statement's checks and update see the same row versions, or it fails and
 * runs again. Rows come back in the binary format. A connection that
 * breaks is reopened and what was sent on it runs again once, so a
 * restarted server costs no request. A statement that loses a race with
 * another transaction (serialization failure, deadlock) runs again on a
 * fresh snapshot until its deadline (the statement timeout plus 1 s).
 *
 * Statements are pipelined: one worker may have several on a connection
 * at once, answered in the order sent (db_send(), db_receive()). A
 * statement goes on a connection with nothing in flight; when none has
 * nothing and another may be opened (up to config.connections, kept open),
 * it waits for that one, opened without blocking the caller, or for one to
 * have nothing in flight; with all open, it goes on the one with the
 * fewest that has answered within 20 ms: one that has not (a statement
 * waits on a lock) takes no more. */

/* Called once per statement with its outcome; on DB_OK, result is
 * PGRES_TUPLES_OK and the callee PQclear()s it (else NULL). */
typedef void db_done(void *tag, enum db_outcome outcome, PGresult *result,
                     long elapsed_us);

/* Asks for statement number index to run with text values, which the
 * caller keeps until done is called: from db_send() itself when no
 * connection can be had, else from db_receive() or db_expire(). */
void db_send(size_t index, const char *const *values, db_done *done, void *tag);

/* Reads what the server sent on the connections marked readable since the
 * last call (db_readable()), and calls done for each statement answered. */
void db_receive(void);

/* The earliest deadline of the statements asked for (clock_now_us()), 0 when
 * there are none; db_expire() past it gives up on the late ones (cancelled,
 * DB_UNAVAILABLE) and sends the rest again on a new connection. */
long db_deadline_us(void);
void db_expire(void);

/* watch(fd, lane, write) is called with a connection's socket for an
 * event loop to watch, for writing while libpq waits to write as it
 * connects, else for reading; again whenever that or the socket changes
 * (libpq may try another address on a new socket, possibly with the same
 * number; closing one drops it from an epoll set). When fd is ready,
 * db_readable(lane), then db_receive(). db_is_lane() tells a lane from the
 * loop's other event pointers. */
void db_watch(void (*watch)(int fd, void *lane, bool write));
bool db_is_lane(const void *ptr);
void db_readable(void *lane);

/* db_send() and waiting for its answer: the statement's outcome, and on
 * DB_OK the rows in *result (the caller PQclear()s it). */
enum db_outcome db_exec(size_t index, const char *const *values, PGresult **result,
                        long *elapsed_us);

#endif
