/* db.c: connection, prepared statements, deadlines and reconnects.
 * Entry points: db_init(), db_exec().
 *
 * Every wait on the server is bounded: connect_timeout for connecting, and
 * the statement timeout plus one second for a statement, after which the
 * statement is cancelled and the connection dropped. */
#include "db.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct db_config config;
static const struct db_statement *statements;
static size_t statement_count;
static PGconn *conn;

void db_init(const struct db_config *cfg, const struct db_statement *stmts, size_t count)
{
    config = *cfg;
    statements = stmts;
    statement_count = count;
}

const struct db_setting db_session_settings[] = {
    /* What keeps a request from writing through a concurrent change
     * (README, How it works). */
    {"default_transaction_isolation", "repeatable read"},
    /* Every statement reaches its rows through a unique key. With the
     * default 4, PostgreSQL reads a credential table of a few pages (a few
     * hundred keys) whole instead of through its index, which costs a
     * statement a fifth to a third more instructions (README, Performance). */
    {"random_page_cost", "1.1"},
    {NULL, NULL},
};

static bool append(char *out, size_t n, size_t *len, const char *text)
{
    size_t add = strlen(text);

    if (*len + add >= n)
        return false;
    memcpy(out + *len, text, add + 1);
    *len += add;
    return true;
}

bool db_startup_options(char *out, size_t n, int statement_timeout_ms)
{
    size_t len =
        (size_t)snprintf(out, n, "-c statement_timeout=%d", statement_timeout_ms);

    if (len >= n)
        return false;
    for (const struct db_setting *s = db_session_settings; s->name; s++) {
        if (!append(out, n, &len, " -c ") || !append(out, n, &len, s->name) ||
            !append(out, n, &len, "="))
            return false;
        /* libpq splits the options at spaces; a backslash keeps one. */
        for (const char *v = s->value; *v; v++) {
            char c[3] = {'\\', *v, '\0'};
            if (!append(out, n, &len, *v == ' ' ? c : c + 1))
                return false;
        }
    }
    return true;
}

static void db_close(void)
{
    PQfinish(conn);
    conn = NULL;
}

static bool prepare_all(void)
{
    for (size_t i = 0; i < statement_count; i++) {
        PGresult *r = PQprepare(conn, statements[i].name, statements[i].sql,
                                statements[i].nparams, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            log_error("db: preparing %s: %s", statements[i].name, PQerrorMessage(conn));
        PQclear(r);
        if (!ok)
            return false;
    }
    return true;
}

/* Through a pooler the statements run at the role's isolation level: it
 * must be REPEATABLE READ (or SERIALIZABLE), or a request could write
 * through a concurrent change (README, How it works). */
static bool isolation_ok(void)
{
    PGresult *r = PQexec(conn, "SHOW default_transaction_isolation");
    const char *level = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "";
    bool ok = strcmp(level, "repeatable read") == 0 || strcmp(level, "serializable") == 0;

    if (!ok)
        log_error(
            "db: default_transaction_isolation is '%s' here, not 'repeatable read': "
            "run sql/grants.sql for the workers' role (DATABASE_STATEMENTS=unnamed)",
            level);
    PQclear(r);
    return ok;
}

static bool connect_db(void)
{
    char timeout[32], options[256];
    const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout",
                          "options", NULL};
    const char *values[] = {config.conninfo, "chatpatch", timeout, options, NULL};

    snprintf(timeout, sizeof timeout, "%d", config.connect_timeout_s);
    if (!db_startup_options(options, sizeof options, config.statement_timeout_ms))
        abort(); /* the settings above are fixed, and fit */
    if (config.unnamed_statements)
        keys[3] = NULL; /* a pooler refuses startup options */
    conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        log_warn("db: cannot connect: %s", PQerrorMessage(conn));
        db_close();
        return false;
    }
    if (config.unnamed_statements ? !isolation_ok() : !prepare_all()) {
        db_close();
        return false;
    }
    log_info("db: connected, %zu statements %s", statement_count,
             config.unnamed_statements ? "sent unnamed" : "prepared");
    return true;
}

/* Waits for the socket until the deadline. Returns false on timeout or error. */
static bool wait_socket(short events, long deadline_us)
{
    for (;;) {
        long left_ms = (deadline_us - clock_now_us()) / 1000;
        if (left_ms <= 0)
            return false;
        struct pollfd p = {.fd = PQsocket(conn), .events = events};
        int n = poll(&p, 1, (int)left_ms);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* Sends the statement and collects its last result within the deadline.
 * Returns NULL when the connection failed or the deadline passed. */
static PGresult *exec_bounded(size_t index, const char *const *values, long deadline_us)
{
    PGresult *last = NULL, *r;

    const struct db_statement *s = &statements[index];
    int sent = config.unnamed_statements
                   ? PQsendQueryParams(conn, s->sql, s->nparams, NULL, values, NULL, NULL,
                                       s->result_format)
                   : PQsendQueryPrepared(conn, s->name, s->nparams, values, NULL, NULL,
                                         s->result_format);
    if (!sent)
        return NULL;

    for (;;) {
        int flushed;
        while ((flushed = PQflush(conn)) == 1)
            if (!wait_socket(POLLOUT, deadline_us))
                goto timeout;
        if (flushed < 0)
            break;
        while (PQisBusy(conn)) {
            if (!wait_socket(POLLIN, deadline_us))
                goto timeout;
            if (!PQconsumeInput(conn))
                goto failed;
        }
        r = PQgetResult(conn);
        if (!r)
            return last;
        PQclear(last);
        last = r;
    }
failed:
    PQclear(last);
    return NULL;
timeout:
    log_error("db: %s gave no answer in time; cancelling", statements[index].name);
    PGcancel *cancel = PQgetCancel(conn);
    char err[256];
    if (cancel) {
        PQcancel(cancel, err, sizeof err);
        PQfreeCancel(cancel);
    }
    PQclear(last);
    db_close();
    return NULL;
}

static bool sqlstate_is(const PGresult *r, const char *prefix)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* A result that says the connection is gone (server restarted, backend
 * terminated), as opposed to a statement that failed on a sound one. */
static bool connection_lost(const PGresult *r)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK || !r ||
        !PQresultErrorField(r, PG_DIAG_SQLSTATE))
        return true;
    return sqlstate_is(r, "08") || sqlstate_is(r, "57P01") || sqlstate_is(r, "57P02") ||
           sqlstate_is(r, "57P03");
}

/* Another transaction changed what the statement read: run it again. */
static bool lost_race(const PGresult *r)
{
    return sqlstate_is(r, "40001") || sqlstate_is(r, "40P01");
}

enum db_outcome db_exec(size_t index, const char *const *values, PGresult **result,
                        long *elapsed_us)
{
    long start = clock_now_us();
    long deadline = start + (config.statement_timeout_ms + 1000L) * 1000L;
    enum db_outcome outcome = DB_UNAVAILABLE;
    int reconnects = 0;

    *result = NULL;
    while (outcome == DB_UNAVAILABLE && clock_now_us() < deadline) {
        if (!conn && !connect_db())
            break;
        PGresult *r = exec_bounded(index, values, deadline);
        if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
            *result = r;
            outcome = DB_OK;
            break;
        }
        if (lost_race(r)) {
            log_debug("db: %s lost a race; again", statements[index].name);
            PQclear(r);
            continue;
        }
        if (sqlstate_is(r, "22")) {
            /* The message may quote the value, which is the client's. */
            log_info("db: %s refused a value (SQLSTATE %s)", statements[index].name,
                     PQresultErrorField(r, PG_DIAG_SQLSTATE));
            PQclear(r);
            outcome = DB_BAD_INPUT;
            break;
        }
        bool lost = connection_lost(r);
        log_warn("db: %s failed (attempt %d): %s", statements[index].name, reconnects + 1,
                 r      ? PQresultErrorMessage(r)
                 : conn ? PQerrorMessage(conn)
                        : "timeout");
        PQclear(r);
        if (!lost || !conn || ++reconnects > 1)
            break;
        db_close(); /* reopen and retry once: the update sets the same values */
    }
    *elapsed_us = clock_now_us() - start;
    return outcome;
}
