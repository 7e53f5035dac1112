/* serve.c: reading, handling and answering requests, and the access log.
 * Entry points: serve_fastcgi(), serve_cgi().
 *
 * A FastCGI worker watches the listening socket, every connection it has
 * accepted and its database connection with epoll, and serves a request on
 * whichever connection has one: it reads the request, sends its statement
 * (db.c pipelines them) and goes on; the answer is written when the
 * statement's result comes. So a web server may keep connections open
 * (fastcgi_keep_conn on) without stranding requests (SPEC section 8): no
 * connection waits for another to close or for another's statement to be
 * read, and an idle worker is the one the kernel wakes for a new
 * connection (EPOLLEXCLUSIVE; a worker with requests in hand waits on a set
 * without the listening socket). A statement stuck on a lock holds up the
 * statements sent behind it, which is the price of pipelining: such a
 * worker takes no new connection, but the web server may still send it
 * requests on connections it keeps. libfcgi still reads and writes the
 * records: the worker accepts the connection itself and hands libfcgi its
 * fd.
 *
 * Signals stay blocked and arrive as events of both epoll sets (a
 * signalfd), so none cuts a response in half and a busy worker still sees
 * them at its next turn. Two ways to stop:
 *   SIGTERM, SIGINT  drain: go on accepting until the listening socket's
 *                    backlog is empty, answer everything accepted, and
 *                    every request that comes on a kept connection until
 *                    the web server has closed them all (nginx: the
 *                    upstream's keepalive_requests and keepalive_timeout),
 *                    then exit. The worker never closes a kept connection
 *                    itself: one the web server has just picked for a
 *                    request would lose it, and nginx sends a PATCH only
 *                    once.
 *                    The pool removes a unix socket's path first, so the
 *                    backlog only shrinks (README, "Reload and stop").
 *   SIGUSR2          retire (a new generation of workers has taken over the
 *                    socket): stop accepting at once, answer what this
 *                    worker has accepted and its kept connections bring
 *                    (as above), exit.
 * SIGUSR1 reopens the log file. */
#include "serve.h"

#include "clock.h"
#include "engine.h"
#include "log.h"
#include "stats.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

extern char **environ;

#define MAX_EVENTS         64
#define MAX_FAILED_ACCEPTS 100
#define FIRST_REQUEST_S    5 /* a new connection's request must come within */
/* How long a stopping worker may take for what it accepted and, draining,
 * for the backlog: past the statement timeout of a request in flight, and
 * within the pool's grace before SIGKILL (pool.c). */
#define STOP_US (10 * 1000 * 1000)
/* A worker with requests in hand looks for new connections at least this
 * often. */
#define BUSY_LOOK_US (10 * 1000)
/* A worker with requests in hand and no answer from the database for this
 * long takes no new connection; a busy one that does takes up to
 * BUSY_ACCEPTS at a look. */
#define STUCK_US     (20 * 1000)
#define BUSY_ACCEPTS 8
/* A stopping worker looks at the clock at least this often. */
#define STOP_TICK_MS 100

static volatile sig_atomic_t drain_requested, retire_requested, reopen_requested;
static bool stopping; /* draining or retiring: close each connection after its answer */
static int failed_accepts; /* in a row */

static void on_signal(int sig)
{
    if (sig == SIGUSR2)
        retire_requested = 1;
    else if (sig == SIGUSR1)
        reopen_requested = 1;
    else if (sig == SIGTERM || sig == SIGINT)
        drain_requested = 1;
}

static int signal_fd = -1;

/* The signals that arrived, read from the signalfd when epoll says so. */
static void take_signals(int sfd)
{
    struct signalfd_siginfo info;

    while (read(sfd, &info, sizeof info) == (ssize_t)sizeof info)
        on_signal((int)info.ssi_signo);
}

/* The epoll event pointers of the listening socket and the signalfd; a
 * database connection's is its lane (db_is_lane()); every other event is a
 * FastCGI connection's. */
static char listener_mark, signals_mark;
#define LISTENER (&listener_mark)
#define SIGNALS  (&signals_mark)

/* The whole CGI response to req (malloc-ed, *len bytes), which frees res;
 * logs the access line. */
static char *answer(const struct request *req, struct response *res,
                    const struct engine_outcome *outcome, long start_us, size_t *len)
{
    char *out = response_format(res, req->request_id, len);
    long total_us = clock_now_us() - start_us;

    log_access(req->request_id, req->method, outcome->route, res->status, total_us,
               outcome->db_us);
    stats_request_end(outcome->route, req->method, res->status, total_us, outcome->db_us);
    response_free(res);
    return out;
}

static size_t read_fcgx(void *ctx, char *buf, size_t n)
{
    int got = FCGX_GetStr(buf, (int)(n > 65536 ? 65536 : n), ctx);

    return got > 0 ? (size_t)got : 0;
}

static size_t read_stdin(void *ctx, char *buf, size_t n)
{
    (void)ctx;
    return fread(buf, 1, n, stdin);
}

/* One FastCGI connection this worker accepted. */
struct conn {
    FCGX_Request req;
    bool watched; /* in the epoll set: kept, and no request in hand */
    /* The request in hand while its statement runs (call not NULL). */
    struct engine_call *call;
    struct request request;
    struct response res;
    struct engine_outcome outcome;
    long start_us;
    struct conn *prev, *next; /* the worker's open connections */
};

static struct conn *conns; /* every connection this worker holds */
static int in_hand;        /* requests whose statement runs */

/* Two epoll sets with the same connections, signals and database socket;
 * only idle_set has the listening socket. A worker waits on busy_set while
 * it has requests in hand, so that the kernel, which wakes one waiter per
 * new connection (EPOLLEXCLUSIVE), wakes a worker with none: new work goes
 * where a database connection is free. */
static int idle_set = -1, busy_set = -1;

static struct conn *conn_new(int fd)
{
    struct conn *c = calloc(1, sizeof *c);

    if (!c)
        abort();
    /* No listening socket for libfcgi: it must never accept by itself. */
    FCGX_InitRequest(&c->req, -1, 0);
    c->req.ipcFd = fd;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    return c;
}

/* Forgets c; its fd is closed already, or closed here. */
static void conn_free(struct conn *c)
{
    if (c->req.ipcFd >= 0)
        FCGX_Free(&c->req, 1);
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static bool watch_in(int set, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};

    if (epoll_ctl(set, EPOLL_CTL_ADD, fd, &ev) == 0)
        return true;
    log_error("epoll_ctl: %s", strerror(errno));
    return false;
}

/* Watches fd in both sets. */
static bool watch(int fd, void *ptr)
{
    if (!watch_in(idle_set, fd, EPOLLIN, ptr))
        return false;
    if (watch_in(busy_set, fd, EPOLLIN, ptr))
        return true;
    epoll_ctl(idle_set, EPOLL_CTL_DEL, fd, NULL);
    return false;
}

static void unwatch(int fd)
{
    epoll_ctl(idle_set, EPOLL_CTL_DEL, fd, NULL);
    epoll_ctl(busy_set, EPOLL_CTL_DEL, fd, NULL);
}

enum accepted { ACCEPTED, NONE_WAITING, FAILING };

static void serve_one(struct conn *c, const struct serve_config *config);

/* Accepts one connection and serves its first request at once: a worker
 * takes a new connection only when it has nothing else to do, the others,
 * woken one at a time, take the rest, and a worker never waits (and so is
 * never the one woken) while it holds a connection whose request has yet
 * to arrive. FAILING when accepting keeps failing (a listener that will
 * not mend: the pool starts a fresh worker). */
static enum accepted accept_new(int listen_fd, const struct serve_config *config)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return NONE_WAITING; /* another worker was quicker */
        if (errno != ECONNABORTED)
            log_error("accept: %s", strerror(errno));
        return ++failed_accepts < MAX_FAILED_ACCEPTS ? NONE_WAITING : FAILING;
    }
    failed_accepts = 0;
    /* The web server sends its request as it connects; a peer that sends
     * nothing cannot hold the worker for longer than this. */
    struct timeval patience = {FIRST_REQUEST_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    /* Watched only once it outlives its first request (respond()): a web
     * server that does not keep connections costs no epoll_ctl. */
    serve_one(conn_new(fd), config);
    return ACCEPTED;
}

/* When the database last answered a statement of this worker, or the
 * first request of a busy spell was sent: with requests in hand and no
 * answer for a while, the connection is stuck (a lock), and whatever is
 * sent behind waits as long. Under load, answers keep coming. */
static long last_answer_us;

/* How long this worker has had requests in hand and no answer (0: none in
 * hand). */
static long unanswered_us(long now)
{
    return in_hand ? now - last_answer_us : 0;
}

/* Writes the answer in c->res and finishes the request: the connection
 * closes, unless the web server keeps it, which is then watched for its
 * next request. */
static void respond(struct conn *c)
{
    size_t len;
    char *out = answer(&c->request, &c->res, &c->outcome, c->start_us, &len);

    FCGX_PutStr(out, (int)len, c->req.out);
    free(out);
    /* A request read to its end leaves nothing unread, so the connection
     * can close at once; one refused unread (413) is drained first, so
     * that the answer is not lost to a reset. */
    c->req.detached = !c->request.body_too_large;
    request_free(&c->request);
    FCGX_Finish_r(&c->req);
    c->req.detached = 0;
    if (c->req.ipcFd < 0)
        conn_free(c);
    else if (!c->watched && !(c->watched = watch(c->req.ipcFd, c)))
        conn_free(c);
}

static void send_statement(struct conn *c);

/* db_done: the statement of c's request has its outcome. */
static void statement_done(void *tag, enum db_outcome db, PGresult *r, long elapsed_us)
{
    struct conn *c = tag;

    c->outcome.db_us += elapsed_us;
    last_answer_us = clock_now_us();
    if (engine_resume(c->call, db, r, &c->res)) {
        send_statement(c);
        return;
    }
    c->call = NULL;
    in_hand--;
    respond(c);
}

/* Hands c's statement to the database; c is answered when it is done,
 * which may be before this returns. */
static void send_statement(struct conn *c)
{
    const char *const *values;
    size_t statement = engine_statement(c->call, &values);

    db_send(statement, values, statement_done, c);
}

/* Reads the request waiting on c and starts it: answered at once, or when
 * its statement is done. c may be gone when this returns. */
static void serve_one(struct conn *c, const struct serve_config *config)
{
    /* The data is there: libfcgi reads the request (its blocking reads
     * only ever wait for the rest of a request the web server is sending).
     * FCGX_Accept_r first finishes the previous request, closing the
     * connection unless it is kept: it is, until the request says. */
    c->req.keepConnection = 1;
    if (FCGX_Accept_r(&c->req) < 0) {
        conn_free(c); /* libfcgi closed the fd when it found no request */
        return;
    }
    c->start_us = clock_now_us();
    stats_request_begin();
    request_read(&c->request, c->req.envp, read_fcgx, c->req.in, false, config->max_body);
    c->call = engine_begin(&c->request, &c->res, &c->outcome);
    if (c->call) {
        if (in_hand++ == 0)
            last_answer_us = c->start_us;
        send_statement(c);
    } else {
        respond(c);
    }
}

/* An event on a kept connection: its next request, or its end. While a
 * request is in hand the web server sends nothing more but its end, which
 * waits for the answer, out of the set. */
static void conn_event(struct conn *c, const struct serve_config *config)
{
    if (!c->call) {
        serve_one(c, config);
    } else if (c->watched) {
        unwatch(c->req.ipcFd);
        c->watched = false;
    }
}

/* Serves the events of one epoll_pwait. A worker with requests to serve
 * or in hand leaves a new connection to an idle one (the kernel has woken
 * one), unless the connection was still waiting at its previous look, or
 * take_new says to take it anyway: the kernel woke this worker for it
 * (it waited on idle_set), or it is retiring. looked: the events are
 * idle_set's, which has the listening socket. Returns false when accepting
 * keeps failing. */
static bool serve_events(int listen_fd, const struct epoll_event *events, int n,
                         bool looked, bool take_new, const struct serve_config *config)
{
    static bool listener_waited;
    bool listener_ready = false, served = false, answers = false;

    for (int i = 0; i < n; i++) {
        void *ptr = events[i].data.ptr;
        if (ptr == LISTENER)
            listener_ready = true;
        else if (ptr == SIGNALS)
            take_signals(signal_fd);
        else if (db_is_lane(ptr))
            db_readable(ptr), answers = true;
        else
            conn_event(ptr, config), served = true; /* a closed one left the set */
    }
    /* After the new requests, so that their statements went out first. */
    if (answers)
        db_receive();
    bool busy = served || in_hand;
    if (listener_ready && (!busy || listener_waited || take_new)) {
        /* A busy worker that takes connections takes what waits, up to a
         * few: no idle worker came for them. */
        enum accepted got = accept_new(listen_fd, config);
        for (int k = 1; busy && got == ACCEPTED && k < BUSY_ACCEPTS; k++)
            got = accept_new(listen_fd, config);
        if (got == FAILING)
            return false;
    }
    if (looked)
        listener_waited = listener_ready && busy && !listener_waited && !take_new;
    return true;
}

/* Retiring: takes the listening socket out of the set. A connection whose
 * arrival woke this worker (EPOLLEXCLUSIVE wakes one worker per
 * connection) is taken first, or no other worker would be woken for it. */
static bool stop_listening(int listen_fd, const struct serve_config *config)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(idle_set, events, MAX_EVENTS, 0);

    if (n > 0 && !serve_events(listen_fd, events, n, true, true, config))
        return false;
    if (epoll_ctl(idle_set, EPOLL_CTL_DEL, listen_fd, NULL) != 0) {
        log_error("epoll_ctl: %s", strerror(errno));
        return false;
    }
    return true;
}

/* db_watch: a database connection's socket, watched for its answers, or
 * for what libpq waits for as it connects (the epoll sets exist before the
 * first statement is sent). Not yet in a set when libpq has just opened
 * it (ENOENT). */
static void watch_database(int fd, void *lane, bool write)
{
    struct epoll_event ev = {.events = write ? EPOLLOUT : EPOLLIN, .data.ptr = lane};
    const int sets[] = {idle_set, busy_set};

    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        if (epoll_ctl(sets[i], EPOLL_CTL_MOD, fd, &ev) == 0)
            continue;
        if (errno == ENOENT)
            watch_in(sets[i], fd, ev.events, lane); /* logs a failure */
        else
            log_error("epoll_ctl: %s", strerror(errno));
    }
}

/* The epoll timeout (ms) that ends just after due_us, never before: one
 * that ended early would wake the worker to find nothing due. */
static int ms_until(long due_us, long now)
{
    return (int)((due_us - now) / 1000) + 1;
}

/* An epoll timeout (ms, -1: none) that ends within ms at the latest. */
static int at_most(int timeout, int ms)
{
    return timeout < 0 || ms < timeout ? ms : timeout;
}

/* Tells the pool that this worker watches the listening socket, so that
 * the workers it replaces may stop accepting. */
static void say_ready(int ready_fd)
{
    pid_t self = getpid();

    if (ready_fd < 0)
        return;
    if (write(ready_fd, &self, sizeof self) != (ssize_t)sizeof self)
        log_warn("cannot tell the pool this worker is ready: %s", strerror(errno));
    close(ready_fd);
}

int serve_fastcgi(int listen_fd, const struct serve_config *config)
{
    sigset_t handled, previous;
    struct epoll_event events[MAX_EVENTS];
    int status = 0;
    static const int signals[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};

    /* Blocked for good: they arrive through the signalfd. */
    sigemptyset(&handled);
    for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
        sigaddset(&handled, signals[i]);
    sigprocmask(SIG_BLOCK, &handled, &previous);
    signal(SIGHUP, SIG_IGN);  /* the pool reloads; a worker goes on */
    signal(SIGPIPE, SIG_IGN); /* a client that went away must not kill us */

    idle_set = epoll_create1(EPOLL_CLOEXEC);
    busy_set = epoll_create1(EPOLL_CLOEXEC);
    int sfd = signal_fd = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
    int flags = fcntl(listen_fd, F_GETFL);
    if (FCGX_Init() != 0 || idle_set < 0 || busy_set < 0 || sfd < 0 || flags < 0 ||
        fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0 || !watch(sfd, SIGNALS) ||
        !watch_in(idle_set, listen_fd, EPOLLIN | EPOLLEXCLUSIVE, LISTENER)) {
        log_error("cannot set up the worker's event loop: %s", strerror(errno));
        return 1;
    }
    stats_set_listener(listen_fd);
    db_watch(watch_database);
    say_ready(config->ready_fd);

    bool listening = true;
    long stop_until = 0, idle_look_us = 0;
    log_hold(true);
    for (;;) {
        if (reopen_requested) {
            reopen_requested = 0;
            log_reopen();
        }
        if (listening && retire_requested) {
            if (!stop_listening(listen_fd, config)) {
                status = 1;
                break;
            }
            listening = false;
        }
        if (!stopping && (retire_requested || drain_requested)) {
            stopping = true;
            stop_until = clock_now_us() + STOP_US;
            log_info("worker %s", listening ? "draining" : "retiring");
        }
        long now = clock_now_us(), db_deadline = db_deadline_us();
        int timeout = -1;
        long log_due = log_due_us();
        if (log_due) {
            if (log_due <= now)
                log_flush();
            else
                timeout = ms_until(log_due, now);
        }
        if (db_deadline) {
            if (db_deadline <= now) {
                db_expire();
                continue;
            }
            timeout = at_most(timeout, ms_until(db_deadline, now));
        }
        if (stopping) {
            long left_us = stop_until - now;
            if (left_us <= 0) {
                log_warn("worker stops with %s unanswered after %d s",
                         conns ? "connections" : "the backlog", STOP_US / 1000000);
                break;
            }
            if (!conns) {
                /* Draining asks the socket itself rather than wait to be
                 * woken: an empty backlog is the end. */
                enum accepted got =
                    listening ? accept_new(listen_fd, config) : NONE_WAITING;
                if (got == FAILING)
                    status = 1;
                if (got != ACCEPTED)
                    break;
            }
            timeout = at_most(at_most(timeout, ms_until(stop_until, now)), STOP_TICK_MS);
        }
        /* A worker with requests in hand looks at new connections now and
         * then, should every worker have some, unless its database is
         * slow to answer (a lock): what it took would wait behind. */
        int set = idle_set;
        if (in_hand) {
            set = busy_set;
            timeout = at_most(timeout, BUSY_LOOK_US / 1000);
            /* A look, never a wait: a worker waiting on idle_set may be
             * the one the kernel wakes for a new connection. */
            if (unanswered_us(now) <= STUCK_US && now - idle_look_us >= BUSY_LOOK_US) {
                set = idle_set;
                timeout = 0;
                idle_look_us = now;
            }
        }
        int n = epoll_wait(set, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            status = 1;
            break;
        }
        if (n <= 0)
            continue;
        bool looked = set == idle_set;
        if (!serve_events(listen_fd, events, n, looked, looked && timeout != 0, config)) {
            log_error("accept keeps failing; worker exits");
            status = 1;
            break;
        }
    }
    /* Kept connections with nothing in flight: nginx opens new ones. Those
     * with a request in hand are past the time to stop: left to exit. */
    for (struct conn *c = conns, *next; c; c = next) {
        next = c->next;
        if (!c->call)
            conn_free(c);
    }
    log_info("worker %s", retire_requested ? "retired" : "stopped");
    log_hold(false);
    close(idle_set);
    close(busy_set);
    close(sfd);

    sigprocmask(SIG_SETMASK, &previous, NULL);
    return status;
}

int serve_cgi(const struct serve_config *config)
{
    struct request req;
    struct response res;
    struct engine_outcome outcome;
    size_t len;
    long start = clock_now_us();

    signal(SIGPIPE, SIG_IGN);
    request_read(&req, environ, read_stdin, NULL, true, config->max_body);
    engine_handle(&req, &res, &outcome);
    char *out = answer(&req, &res, &outcome, start, &len);
    size_t written = fwrite(out, 1, len, stdout);
    free(out);
    request_free(&req);
    return written == len && fflush(stdout) == 0 ? 0 : 1;
}
