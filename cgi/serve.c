/* serve.c: reading, handling and answering requests, and the access log.
 * Entry points: serve_fastcgi(), serve_cgi().
 *
 * A FastCGI worker watches the listening socket and every connection it has
 * accepted with one epoll set, and serves a request on whichever connection
 * has one. So a web server may keep connections open (fastcgi_keep_conn on)
 * without stranding requests (SPEC section 8): no connection waits for
 * another to close, a busy worker only delays its own connections by the
 * request in hand, and an idle worker is the one the kernel wakes for a new
 * connection (EPOLLEXCLUSIVE). libfcgi still reads and writes the records:
 * the worker accepts the connection itself and hands libfcgi its fd.
 *
 * Signals stay blocked and arrive as events of the same epoll set (a
 * signalfd), so none cuts a response in half and a busy worker still sees
 * them at its next turn. Two ways to stop:
 *   SIGTERM, SIGINT  drain: go on accepting until the listening socket's
 *                    backlog is empty, answer everything accepted, exit.
 *                    The pool removes a unix socket's path first, so the
 *                    backlog only shrinks (README, "Reload and stop").
 *   SIGUSR2          retire (a new generation of workers has taken over the
 *                    socket): stop accepting at once, answer what this
 *                    worker has accepted, exit.
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

/* The epoll event pointers of the listening socket and of the signalfd;
 * every other event is a connection's. */
static char listener_mark, signals_mark;
#define LISTENER (&listener_mark)
#define SIGNALS  (&signals_mark)

/* Handles one request and returns the whole CGI response (malloc-ed, *len
 * bytes); logs the access line. */
static char *answer(const struct request *req, long start_us, size_t *len)
{
    struct response res;
    struct engine_outcome outcome;
    char *out;

    engine_handle(req, &res, &outcome);
    out = response_format(&res, req->request_id, len);
    long total_us = clock_now_us() - start_us;
    log_access(req->request_id, req->method, outcome.route, res.status, total_us,
               outcome.db_us);
    stats_request_end(outcome.route, req->method, res.status, total_us, outcome.db_us);
    response_free(&res);
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
    long served;              /* requests answered on it */
    struct conn *prev, *next; /* the worker's open connections */
};

static struct conn *conns; /* every connection this worker holds */

static struct conn *conn_new(int fd)
{
    struct conn *c = malloc(sizeof *c);

    if (!c)
        abort();
    /* No listening socket for libfcgi: it must never accept by itself. */
    FCGX_InitRequest(&c->req, -1, 0);
    c->req.ipcFd = fd;
    c->served = 0;
    c->prev = NULL;
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

/* The listening socket is marked with a NULL event pointer. */
static bool watch(int ep, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0)
        return true;
    log_error("epoll_ctl: %s", strerror(errno));
    return false;
}

enum accepted { ACCEPTED, NONE_WAITING, FAILING };

static bool serve_one(struct conn *c, const struct serve_config *config);

/* Accepts one connection and serves its first request at once: a worker
 * takes a new connection only when it has nothing else to do, the others,
 * woken one at a time, take the rest, and a worker never waits (and so is
 * never the one woken) while it holds a connection whose request has yet
 * to arrive. FAILING when accepting keeps failing (a listener that will
 * not mend: the pool starts a fresh worker). */
static enum accepted accept_new(int ep, int listen_fd, const struct serve_config *config)
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
    /* Watched only once it outlives its first request: a web server that
     * does not keep connections (the nginx snippet) costs no epoll_ctl. */
    struct conn *c = conn_new(fd);
    if (serve_one(c, config) && !watch(ep, fd, EPOLLIN, c))
        conn_free(c);
    return ACCEPTED;
}

/* A worker that starts to stop closes the kept connections it holds that
 * have no request waiting: a web server sends its next request on another
 * one (nginx tries again at once when a kept connection fails before an
 * answer). A connection that has not yet carried its first request, or
 * has one waiting, is served first. */
static void close_idle_kept(void)
{
    for (struct conn *c = conns, *next; c; c = next) {
        struct pollfd p = {.fd = c->req.ipcFd, .events = POLLIN};
        next = c->next;
        if (c->served > 0 && poll(&p, 1, 0) == 0)
            conn_free(c);
    }
}

/* Serves the request waiting on c. Returns false when the connection is
 * gone (the web server closed it, or did not keep it). */
static bool serve_one(struct conn *c, const struct serve_config *config)
{
    /* The data is there: libfcgi reads the request (its blocking reads
     * only ever wait for the rest of a request the web server is sending).
     * FCGX_Accept_r first finishes the previous request, closing the
     * connection unless it is kept: it is, until the request says. */
    c->req.keepConnection = 1;
    if (FCGX_Accept_r(&c->req) < 0) {
        conn_free(c); /* libfcgi closed the fd when it found no request */
        return false;
    }
    long start = clock_now_us();
    struct request req;
    size_t len;
    stats_request_begin();
    if (stopping)
        c->req.keepConnection = 0; /* answered, then closed: the worker can end */
    request_read(&req, c->req.envp, read_fcgx, c->req.in, false, config->max_body);
    char *out = answer(&req, start, &len);
    FCGX_PutStr(out, (int)len, c->req.out);
    free(out);
    /* A request read to its end leaves nothing unread, so the connection
     * can close at once; one refused unread (413) is drained first, so
     * that the answer is not lost to a reset. */
    c->req.detached = !req.body_too_large;
    request_free(&req);
    FCGX_Finish_r(&c->req);
    c->req.detached = 0;
    c->served++;
    if (c->req.ipcFd < 0) {
        conn_free(c);
        return false;
    }
    return true;
}

/* Serves the events of one epoll_pwait. A worker with requests to serve
 * leaves a new connection to an idle one (the kernel has woken one),
 * unless the connection was still waiting at its previous look, or
 * take_new says to take it anyway. Returns false when accepting keeps
 * failing. */
static bool serve_events(int ep, int listen_fd, const struct epoll_event *events, int n,
                         bool take_new, const struct serve_config *config)
{
    static bool listener_waited;
    bool listener_ready = false, served = false;

    for (int i = 0; i < n; i++) {
        void *ptr = events[i].data.ptr;
        if (ptr == LISTENER)
            listener_ready = true;
        else if (ptr == SIGNALS)
            take_signals(signal_fd);
        else
            serve_one(ptr, config), served = true; /* a closed one left the set */
    }
    if (listener_ready && (!served || listener_waited || take_new) &&
        accept_new(ep, listen_fd, config) == FAILING)
        return false;
    listener_waited = listener_ready && served && !listener_waited && !take_new;
    return true;
}

/* Retiring: takes the listening socket out of the set. A connection whose
 * arrival woke this worker (EPOLLEXCLUSIVE wakes one worker per
 * connection) is taken first, or no other worker would be woken for it. */
static bool stop_listening(int ep, int listen_fd, const struct serve_config *config)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(ep, events, MAX_EVENTS, 0);

    if (n > 0 && !serve_events(ep, listen_fd, events, n, true, config))
        return false;
    if (epoll_ctl(ep, EPOLL_CTL_DEL, listen_fd, NULL) != 0) {
        log_error("epoll_ctl: %s", strerror(errno));
        return false;
    }
    return true;
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

    int ep = epoll_create1(EPOLL_CLOEXEC);
    int sfd = signal_fd = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
    int flags = fcntl(listen_fd, F_GETFL);
    if (FCGX_Init() != 0 || ep < 0 || sfd < 0 || flags < 0 ||
        fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        !watch(ep, sfd, EPOLLIN, SIGNALS) ||
        !watch(ep, listen_fd, EPOLLIN | EPOLLEXCLUSIVE, LISTENER)) {
        log_error("cannot set up the worker's event loop: %s", strerror(errno));
        return 1;
    }
    stats_set_listener(listen_fd);
    say_ready(config->ready_fd);

    bool listening = true;
    long stop_until = 0;
    log_hold(true);
    for (;;) {
        if (reopen_requested) {
            reopen_requested = 0;
            log_reopen();
        }
        if (listening && retire_requested) {
            if (!stop_listening(ep, listen_fd, config)) {
                status = 1;
                break;
            }
            listening = false;
        }
        if (!stopping && (retire_requested || drain_requested)) {
            stopping = true;
            stop_until = clock_now_us() + STOP_US;
            close_idle_kept();
            log_info("worker %s", listening ? "draining" : "retiring");
        }
        /* With access lines held, first a look: when nothing is waiting,
         * they are written before the worker blocks. */
        int timeout = log_pending() ? 0 : -1;
        if (stopping) {
            long left_us = stop_until - clock_now_us();
            if (left_us <= 0) {
                log_warn("worker stops with %s unanswered after %d s",
                         conns ? "connections" : "the backlog", STOP_US / 1000000);
                break;
            }
            if (!conns) {
                /* Draining asks the socket itself rather than wait to be
                 * woken: an empty backlog is the end. */
                enum accepted got =
                    listening ? accept_new(ep, listen_fd, config) : NONE_WAITING;
                if (got == FAILING)
                    status = 1;
                if (got != ACCEPTED)
                    break;
            }
            if (timeout < 0)
                timeout = left_us / 1000 < STOP_TICK_MS ? (int)(left_us / 1000) + 1
                                                        : STOP_TICK_MS;
        }
        int n = epoll_wait(ep, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            status = 1;
            break;
        }
        if (n <= 0) {
            if (n == 0 && log_pending())
                log_flush();
            continue;
        }
        if (!serve_events(ep, listen_fd, events, n, false, config)) {
            log_error("accept keeps failing; worker exits");
            status = 1;
            break;
        }
    }
    /* Kept connections with nothing in flight: nginx opens new ones. */
    while (conns)
        conn_free(conns);
    log_info("worker %s", retire_requested ? "retired" : "stopped");
    log_hold(false);
    close(ep);
    close(sfd);

    sigprocmask(SIG_SETMASK, &previous, NULL);
    return status;
}

int serve_cgi(const struct serve_config *config)
{
    struct request req;
    size_t len;
    long start = clock_now_us();

    signal(SIGPIPE, SIG_IGN);
    request_read(&req, environ, read_stdin, NULL, true, config->max_body);
    char *out = answer(&req, start, &len);
    size_t written = fwrite(out, 1, len, stdout);
    free(out);
    request_free(&req);
    return written == len && fflush(stdout) == 0 ? 0 : 1;
}
