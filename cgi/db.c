/* db.c: connection, prepared statements, deadlines and reconnects.
 * Entry points: db_init(), db_send(), db_receive(), db_expire(), db_exec().
 *
 * The connection is in libpq's pipeline mode: a worker sends each request's
 * statement as the request comes and reads the answers as they come, so
 * one worker has several requests in hand and one system call carries
 * several answers. Each statement is followed by its own sync, which makes
 * it a transaction of its own: one that fails takes no other with it.
 *
 * A worker has several connections (lanes, --db-connections). A statement
 * goes on one with nothing in flight when there is one, the first first:
 * statements on different connections commit side by side, in one WAL
 * flush, where statements on one connection wait for each other's commits.
 * Each is opened when it is first needed, and kept.
 *
 * A statement that waits (a row lock held by another transaction) holds up
 * every statement sent behind it on its connection. So when every one has
 * statements in flight, what comes next goes on the one with the fewest
 * that has answered within STUCK_US; it waits while all are stuck.
 *
 * A connection opens without blocking the worker: it connects (one host
 * at a time when there are several, dbhosts.h), prepares the statements
 * (or checks a pooler's isolation level) in one round trip, and takes
 * statements once that is answered. Meanwhile what would go on it waits
 * for it, or for one already open to have nothing in flight.
 *
 * Every wait on the server is bounded: connect_timeout for connecting and
 * setting up, and the statement timeout plus one second for a statement,
 * after which the statement is cancelled and the connection dropped (what
 * was sent behind it runs again on a new one). */
#include "db.h"

#include "clock.h"
#include "dbhosts.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct db_config config;
static struct db_hosts hosts; /* tried one at a time when several */
static const struct db_statement *statements;
static size_t statement_count;
static void (*on_socket)(int fd, void *lane, bool write); /* db_watch() */

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

/* How many statements one connection carries at once (pipelined, each
 * its own transaction). A pooler in transaction mode gets one at a time:
 * each may go to another server connection. */
#define PIPELINE_DEPTH 64
/* A connection with statements in flight and no answer for this long is
 * stuck (a lock): the next statements go on the others. */
#define STUCK_US (20 * 1000)
/* After a connection other than the first could not be opened
 * (max_connections), how long the worker makes do with those open before
 * it tries again. */
#define SPARE_RETRY_US (1000 * 1000)

/* One statement asked for and not yet answered. */
struct pending {
    size_t index;
    const char *const *values; /* the caller's, until done */
    db_done *done;
    void *tag;
    long start_us, deadline_us;
    int reconnects;
    PGresult *result; /* its last result so far */
    struct pending *next;
};

struct queue {
    struct pending *head, *tail;
    size_t count;
};

enum lane_state {
    LANE_CLOSED,
    LANE_CONNECTING, /* PQconnectPoll() until the server has the session */
    LANE_SETTING_UP, /* the prepares (or the isolation check) are sent */
    LANE_OPEN,       /* takes statements */
};

/* A connection and the statements sent on it, in the order the answers
 * come. */
struct lane {
    PGconn *conn;
    enum lane_state state;
    struct queue sent;
    long answered_us;      /* its last answer, or its first statement sent since */
    long retry_us;         /* not opened again before */
    long opening_until_us; /* connecting or setting up: given up after */
    int attempt;           /* opening: the host tried (dbhosts.h) */
    int socket;            /* connecting: the socket last watched */
    bool wants_write;      /* connecting: libpq waits to write, not to read */
    size_t set_up;         /* setting up: results that came, all good so far */
    bool set_up_failed;
    bool readable; /* its socket was ready (db_readable()) */
};
static struct lane lanes[DB_MAX_CONNECTIONS];
static struct lane *lanes_end = lanes + 1; /* config.connections of them */
/* Those waiting to be sent (a pooler's, to be run again, or while every
 * connection is stuck). */
static struct queue waiting;

void db_init(const struct db_config *cfg, const struct db_statement *stmts, size_t count)
{
    config = *cfg;
    lanes_end = lanes + (cfg->connections >= 1 && cfg->connections <= DB_MAX_CONNECTIONS
                             ? cfg->connections
                             : 1);
    statements = stmts;
    statement_count = count;
    db_hosts_read(&hosts, cfg->conninfo);
}

static void db_close(struct lane *l)
{
    PQfinish(l->conn);
    l->conn = NULL;
    l->state = LANE_CLOSED;
    l->readable = false;
}

/* Through a pooler the statements run at the role's isolation level: it
 * must be REPEATABLE READ (or SERIALIZABLE), or a request could write
 * through a concurrent change (README, How it works). r: the answer to
 * SHOW default_transaction_isolation. */
static bool isolation_ok(const PGresult *r)
{
    const char *level = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                            ? PQgetvalue(r, 0, 0)
                            : "";
    bool ok = strcmp(level, "repeatable read") == 0 || strcmp(level, "serializable") == 0;

    if (!ok)
        log_error(
            "db: default_transaction_isolation is '%s' here, not 'repeatable read': "
            "run sql/grants.sql for the workers' role (DATABASE_STATEMENTS=unnamed)",
            level);
    return ok;
}

static void fail_waiting(void);

/* Connecting or setting up: given up at opening_until_us. */
static bool opening(const struct lane *l)
{
    return l->state == LANE_CONNECTING || l->state == LANE_SETTING_UP;
}

/* Whether any connection is open or on its way: what waits may still be
 * sent. */
static bool any_lane_alive(void)
{
    for (const struct lane *l = lanes; l < lanes_end; l++)
        if (l->state != LANE_CLOSED)
            return true;
    return false;
}

static void open_lane(struct lane *l, long now);

/* l could not be opened on the host it tried: the next host, if there is
 * one; else tried again (from the first host) for the next statement if l
 * is the first, or after a while, making do with those open
 * (max_connections). With none open or opening, what waits fails. */
static void open_failed(struct lane *l, long now)
{
    db_close(l);
    if (++l->attempt < hosts.count) {
        open_lane(l, now);
        return;
    }
    l->attempt = 0;
    l->retry_us = l == lanes ? now : now + SPARE_RETRY_US;
    if (!any_lane_alive())
        fail_waiting();
}

/* Tells the event loop which socket of l to watch, and for what: called
 * at every step of connecting (libpq may move to another address or host,
 * on a new socket) and once open. */
static void watch_lane(struct lane *l, bool write)
{
    int fd = PQsocket(l->conn);

    if (fd != l->socket) /* a new attempt: its own connect_timeout */
        l->opening_until_us = clock_now_us() + config.connect_timeout_s * 1000000L;
    l->socket = fd;
    l->wants_write = write;
    if (on_socket && fd >= 0)
        on_socket(fd, l, write);
}

/* The session is there: the prepares (or the isolation check), and a
 * sync, sent in one go; the lane opens when the sync comes back. */
static bool begin_set_up(struct lane *l)
{
    PGconn *conn = l->conn;
    bool sent = PQenterPipelineMode(conn);

    if (config.unnamed_statements)
        sent = sent && PQsendQueryParams(conn, "SHOW default_transaction_isolation", 0,
                                         NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; sent && !config.unnamed_statements && i < statement_count; i++)
        sent = PQsendPrepare(conn, statements[i].name, statements[i].sql,
                             statements[i].nparams, NULL);
    if (!sent || !PQpipelineSync(conn)) {
        log_warn("db: cannot set up connection %d: %s", (int)(l - lanes) + 1,
                 PQerrorMessage(conn));
        return false;
    }
    l->state = LANE_SETTING_UP;
    l->set_up = 0;
    l->set_up_failed = false;
    watch_lane(l, false);
    return true;
}

/* One more step of connecting l, its socket being ready (or not: libpq
 * then asks to wait again). */
static void connect_step(struct lane *l, long now)
{
    switch (PQconnectPoll(l->conn)) {
    case PGRES_POLLING_READING:
        watch_lane(l, false);
        return;
    case PGRES_POLLING_WRITING:
        watch_lane(l, true);
        return;
    case PGRES_POLLING_OK:
        if (begin_set_up(l))
            return;
        break;
    default:
        log_warn("db: cannot connect: %s", PQerrorMessage(l->conn));
        break;
    }
    open_failed(l, now);
}

/* Starts opening l, on host l->attempt when there are several; the
 * statements go on it once it is open. */
static void open_lane(struct lane *l, long now)
{
    char options[256], host[3 * DB_HOSTS_LIST_MAX];
    /* Those after the expanded dbname override its values. No
     * connect_timeout: libpq ignores it with PQconnectPoll, and
     * opening_until_us (watch_lane()) stands for it. */
    const char *keys[7] = {"dbname", "fallback_application_name"};
    const char *values[7] = {config.conninfo, "chatpatch"};
    size_t n = 2;

    if (!db_startup_options(options, sizeof options, config.statement_timeout_ms))
        abort();                      /* the settings above are fixed, and fit */
    if (!config.unnamed_statements) { /* a pooler refuses startup options */
        keys[n] = "options";
        values[n++] = options;
    }
    n += db_hosts_attempt(&hosts, l->attempt, keys + n, values + n, host, sizeof host);
    keys[n] = values[n] = NULL;
    l->conn = PQconnectStartParams(keys, values, 1);
    if (!l->conn || PQstatus(l->conn) == CONNECTION_BAD) {
        log_warn("db: cannot connect: %s",
                 l->conn ? PQerrorMessage(l->conn) : "out of memory");
        open_failed(l, now);
        return;
    }
    l->state = LANE_CONNECTING;
    l->socket = -1;
    /* libpq's first step waits for the socket to be writable. */
    watch_lane(l, true);
}

/* A result of l's set-up; its sync opens l. False when the set-up failed. */
static bool set_up_result(struct lane *l, PGresult *r)
{
    ExecStatusType status = PQresultStatus(r);

    if (status == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        if (l->set_up_failed)
            return false;
        l->state = LANE_OPEN;
        l->attempt = 0; /* when it is lost, libpq's order again: the first host first */
        log_info("db: connection %d connected, %zu statements %s", (int)(l - lanes) + 1,
                 statement_count,
                 config.unnamed_statements ? "sent unnamed" : "prepared");
        return true;
    }
    if (!l->set_up_failed) {
        bool ok =
            config.unnamed_statements ? isolation_ok(r) : status == PGRES_COMMAND_OK;
        if (!ok && !config.unnamed_statements)
            log_error("db: preparing %s: %s", statements[l->set_up].name,
                      PQresultErrorMessage(r));
        l->set_up_failed = !ok;
        l->set_up++;
    }
    PQclear(r);
    return true;
}

static void push(struct queue *q, struct pending *p)
{
    p->next = NULL;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    q->count++;
}

/* Puts the whole of front ahead of q's own, in front's order. */
static void prepend(struct queue *q, struct queue *front)
{
    if (!front->head)
        return;
    front->tail->next = q->head;
    if (!q->head)
        q->tail = front->tail;
    q->head = front->head;
    q->count += front->count;
}

static struct pending *pop(struct queue *q)
{
    struct pending *p = q->head;

    if (p) {
        q->head = p->next;
        if (!q->head)
            q->tail = NULL;
        q->count--;
    }
    return p;
}

void db_watch(void (*watch)(int fd, void *lane, bool write))
{
    on_socket = watch;
}

bool db_is_lane(const void *ptr)
{
    for (const struct lane *l = lanes; l < lanes_end; l++)
        if (ptr == l)
            return true;
    return false;
}

void db_readable(void *lane)
{
    struct lane *l = lane;

    l->readable = true;
}

/* Hands a statement's outcome to its caller and forgets it. */
static void finish(struct pending *p, enum db_outcome outcome, PGresult *r)
{
    long elapsed = clock_now_us() - p->start_us;
    db_done *done = p->done;
    void *tag = p->tag;

    free(p);
    done(tag, outcome, r, elapsed);
}

static void fail_waiting(void)
{
    for (struct pending *p; (p = pop(&waiting)) != NULL;)
        finish(p, DB_UNAVAILABLE, NULL);
}

/* The connection is gone or given up: what was sent on it runs again on
 * a new one, once (the update sets the same values), unless its time is
 * up. */
static void restart(struct lane *l)
{
    struct queue again = {0};
    long now = clock_now_us();

    db_close(l);
    for (struct pending *p; (p = pop(&l->sent)) != NULL;) {
        PQclear(p->result);
        p->result = NULL;
        if (++p->reconnects > 1 || now >= p->deadline_us)
            finish(p, DB_UNAVAILABLE, NULL);
        else
            push(&again, p);
    }
    prepend(&waiting, &again); /* ahead of those not yet sent */
}

static bool send_one(PGconn *conn, const struct pending *p)
{
    const struct db_statement *s = &statements[p->index];
    int queued = config.unnamed_statements
                     ? PQsendQueryParams(conn, s->sql, s->nparams, NULL, p->values, NULL,
                                         NULL, s->result_format)
                     : PQsendQueryPrepared(conn, s->name, s->nparams, p->values, NULL,
                                           NULL, s->result_format);

    return queued && PQpipelineSync(conn);
}

static bool stuck(const struct lane *l, long now)
{
    return l->sent.count > 0 && now - l->answered_us >= STUCK_US;
}

/* Whether a statement may go on l, or l may be opened for one: the first
 * always (what waits fails when it cannot be opened); another unless it
 * could not be opened lately. */
static bool usable(const struct lane *l, long now)
{
    return l == lanes || l->state != LANE_CLOSED || now >= l->retry_us;
}

/* The connection the next statement goes on: the first open one with
 * nothing in flight; else, while another is opening, none: the statement
 * waits for it (or for an answer on one open) rather than go behind a
 * statement that may be waiting on a lock, as it would once all are open;
 * *to_open is then the first closed one, to be opened, unless one is
 * opening already. With all open that may be, the one with the fewest in
 * flight that is not stuck, if it has room. NULL: the statement waits to
 * be sent. They open in order: one that could not be opened lately ends
 * the search. Taking the first that was not stuck, with eight connections
 * a worker, piled every statement on the first at 128 clients and
 * doubled the p99 (README, How many workers). */
static struct lane *next_lane(long now, struct lane **to_open)
{
    size_t depth = config.unnamed_statements ? 1 : PIPELINE_DEPTH;
    struct lane *fewest = NULL, *closed = NULL;
    bool any_opening = false;

    *to_open = NULL;
    for (struct lane *l = lanes; l < lanes_end && usable(l, now); l++) {
        if (l->state == LANE_OPEN) {
            if (!l->sent.count)
                return l;
            if (!stuck(l, now) && (!fewest || l->sent.count < fewest->sent.count))
                fewest = l;
        } else if (l->state == LANE_CLOSED) {
            closed = closed ? closed : l;
        } else {
            any_opening = true;
        }
    }
    if (any_opening || closed) {
        *to_open = any_opening ? NULL : closed;
        return NULL;
    }
    return fewest && fewest->sent.count < depth ? fewest : NULL;
}

/* Sends what waits, as far as the pipelines take it, and opens another
 * connection when every open one is busy (what waits fails when none is
 * open and none can be opened). now: the caller's clock_now_us(). */
static void pump(long now)
{
    while (waiting.head) {
        struct lane *to_open, *l = next_lane(now, &to_open);
        if (to_open)
            open_lane(to_open, now); /* may fail what waits */
        if (!l || !waiting.head)
            return;
        if (send_one(l->conn, waiting.head)) {
            if (!l->sent.count)
                l->answered_us = now;
            push(&l->sent, pop(&waiting));
            continue;
        }
        log_warn("db: %s could not be sent: %s", statements[waiting.head->index].name,
                 PQerrorMessage(l->conn));
        if (++waiting.head->reconnects > 1)
            finish(pop(&waiting), DB_UNAVAILABLE, NULL);
        restart(l);
    }
}

void db_send(size_t index, const char *const *values, db_done *done, void *tag)
{
    struct pending *p = malloc(sizeof *p);
    long now = clock_now_us();

    if (!p)
        abort();
    *p = (struct pending){
        .index = index,
        .values = values,
        .done = done,
        .tag = tag,
        .start_us = now,
        .deadline_us = now + (config.statement_timeout_ms + 1000L) * 1000L,
    };
    push(&waiting, p);
    pump(now);
}

static bool sqlstate_is(const PGresult *r, const char *prefix)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* A result that says the connection is gone (server restarted, backend
 * terminated), as opposed to a statement that failed on a sound one. */
static bool connection_lost(const PGconn *conn, const PGresult *r)
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

/* The oldest statement sent has all its answer (its sync came back).
 * Returns false when that answer says the connection is gone. */
static bool answered(struct lane *l)
{
    struct pending *p = pop(&l->sent);
    PGresult *r = p->result;
    const char *name = statements[p->index].name;

    p->result = NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
        finish(p, DB_OK, r);
        return true;
    }
    if (lost_race(r) && clock_now_us() < p->deadline_us) {
        log_debug("db: %s lost a race; again", name);
        PQclear(r);
        push(&waiting, p);
        return true;
    }
    if (sqlstate_is(r, "22")) {
        /* The message may quote the value, which is the client's. */
        log_info("db: %s refused a value (SQLSTATE %s)", name,
                 PQresultErrorField(r, PG_DIAG_SQLSTATE));
        PQclear(r);
        finish(p, DB_BAD_INPUT, NULL);
        return true;
    }
    bool lost = connection_lost(l->conn, r);
    log_warn("db: %s failed (attempt %d): %s", name, p->reconnects + 1,
             r ? PQresultErrorMessage(r) : PQerrorMessage(l->conn));
    PQclear(r);
    if (!lost) {
        finish(p, DB_UNAVAILABLE, NULL);
        return true;
    }
    /* Back at the head of the sent queue, to be sent again with the rest. */
    struct queue back = {0};
    push(&back, p);
    prepend(&l->sent, &back);
    return false;
}

/* Reads the answers that arrived on l (open or setting up), read at now. */
static void receive(struct lane *l, long now)
{
    PGconn *conn = l->conn;
    bool sound = PQconsumeInput(conn);

    if (!sound && (l->sent.head || l->state == LANE_SETTING_UP))
        log_warn("db: connection lost: %s", PQerrorMessage(conn));
    int ends = 0;
    while (sound && (l->sent.head || l->state == LANE_SETTING_UP) && !PQisBusy(conn)) {
        PGresult *r = PQgetResult(conn);
        if (!r) {
            /* The end of one statement's results; its sync follows. */
            if (++ends > 1) {
                log_error("db: the pipeline lost its place");
                sound = false;
            }
            continue;
        }
        ends = 0;
        if (l->state == LANE_SETTING_UP) {
            sound = set_up_result(l, r);
        } else if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            l->answered_us = now;
            sound = answered(l);
        } else {
            PQclear(l->sent.head->result);
            l->sent.head->result = r;
        }
    }
    if (sound)
        return;
    if (l->state == LANE_SETTING_UP) /* it never opened */
        open_failed(l, now);
    else
        restart(l);
}

void db_receive(void)
{
    long now = clock_now_us();

    /* Only where an answer came: most connections are idle most of the
     * time, and asking one cost a recvfrom per turn (EAGAIN). */
    for (struct lane *l = lanes; l < lanes_end; l++)
        if (l->conn && l->readable) {
            l->readable = false;
            if (l->state == LANE_CONNECTING)
                connect_step(l, now);
            else
                receive(l, now);
        }
    pump(now);
}

static long earlier(long a, long b)
{
    return !a || (b && b < a) ? b : a;
}

long db_deadline_us(void)
{
    /* The clock only when something waits to be sent (rarely): this runs
     * every turn of a worker's loop. */
    long first = 0, now = waiting.head ? clock_now_us() : 0;

    for (struct lane *l = lanes; l < lanes_end; l++) {
        for (struct pending *p = l->sent.head; p; p = p->next)
            first = earlier(first, p->deadline_us);
        /* When it becomes stuck, what waits may go on the next one. */
        if (waiting.head && l->sent.count && !stuck(l, now))
            first = earlier(first, l->answered_us + STUCK_US);
        if (opening(l))
            first = earlier(first, l->opening_until_us);
    }
    for (struct pending *p = waiting.head; p; p = p->next)
        first = earlier(first, p->deadline_us);
    return first;
}

/* Gives up l when a statement on it is late: cancelled, and the
 * connection dropped. */
static void expire(struct lane *l, long now)
{
    bool late = false;

    for (struct pending *p = l->sent.head; p && !late; p = p->next)
        if (now >= p->deadline_us) {
            late = true;
            log_error("db: %s gave no answer in time; cancelling",
                      statements[p->index].name);
        }
    if (late) {
        PGcancel *cancel = PQgetCancel(l->conn);
        char err[256];
        if (cancel) {
            PQcancel(cancel, err, sizeof err);
            PQfreeCancel(cancel);
        }
        restart(l); /* the late ones fail, the others run again */
    }
}

void db_expire(void)
{
    long now = clock_now_us();

    for (struct lane *l = lanes; l < lanes_end; l++) {
        if (opening(l) && now >= l->opening_until_us) {
            log_warn("db: cannot connect: connection %d not set up within %d s (host %s)",
                     (int)(l - lanes) + 1, config.connect_timeout_s,
                     PQhost(l->conn) ? PQhost(l->conn) : "?");
            open_failed(l, now);
        } else if (l->state == LANE_OPEN) {
            expire(l, now);
        }
    }
    /* Those still waiting to be sent whose time is up. */
    struct queue keep = {0};
    for (struct pending *p; (p = pop(&waiting)) != NULL;)
        if (now >= p->deadline_us)
            finish(p, DB_UNAVAILABLE, NULL);
        else
            push(&keep, p);
    waiting = keep;
    pump(now);
}

/* What db_exec waits for. */
struct waiter {
    bool done;
    enum db_outcome outcome;
    PGresult *result;
    long elapsed_us;
};

static void wake(void *tag, enum db_outcome outcome, PGresult *result, long elapsed_us)
{
    struct waiter *w = tag;

    *w = (struct waiter){true, outcome, result, elapsed_us};
}

/* Waits until a connection's socket is readable or the deadline. */
static bool wait_readable(long deadline_us)
{
    for (;;) {
        long left_ms = (deadline_us - clock_now_us() + 999) / 1000;
        if (left_ms <= 0)
            return false;
        struct pollfd p[DB_MAX_CONNECTIONS];
        struct lane *polled[DB_MAX_CONNECTIONS];
        nfds_t n = 0;
        for (struct lane *l = lanes; l < lanes_end; l++)
            if (l->conn) {
                bool write = l->state == LANE_CONNECTING && l->wants_write;
                polled[n] = l;
                p[n++] = (struct pollfd){.fd = PQsocket(l->conn),
                                         .events = write ? POLLOUT : POLLIN};
            }
        if (n == 0)
            return false;
        int ready = poll(p, n, (int)left_ms);
        for (nfds_t i = 0; ready > 0 && i < n; i++)
            if (p[i].revents)
                db_readable(polled[i]);
        if (ready > 0)
            return true;
        if (ready < 0 && errno != EINTR)
            return false;
    }
}

enum db_outcome db_exec(size_t index, const char *const *values, PGresult **result,
                        long *elapsed_us)
{
    struct waiter w = {0};

    db_send(index, values, wake, &w);
    while (!w.done) {
        if (wait_readable(db_deadline_us()))
            db_receive();
        else
            db_expire();
    }
    *result = w.result;
    *elapsed_us = w.elapsed_us;
    return w.outcome;
}
