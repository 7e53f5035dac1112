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
 * SIGTERM and SIGINT are blocked except while the worker waits for work, so
 * a shutdown never cuts a response in half. */
#include "serve.h"

#include "clock.h"
#include "engine.h"
#include "log.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

#define MAX_EVENTS         64
#define MAX_FAILED_ACCEPTS 100
#define DRAIN_US           (2 * 1000 * 1000)

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Handles one request and returns the whole CGI response (malloc-ed, *len
 * bytes); logs the access line. */
static char *answer(const struct request *req, long start_us, size_t *len)
{
    struct response res;
    struct engine_outcome outcome;
    char *out;

    engine_handle(req, &res, &outcome);
    out = response_format(&res, req->request_id, len);
    log_access(req->request_id, req->method, outcome.route, res.status,
               clock_now_us() - start_us, outcome.db_us);
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

/* Accepts one connection: a worker takes a new connection only when it
 * has nothing else to do, and the others, woken one at a time, take the
 * rest. Returns false when accepting keeps failing (a listener that will
 * not mend: the pool starts a fresh worker). */
static bool accept_new(int ep, int listen_fd, int *failed)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return true; /* another worker was quicker */
        if (errno != ECONNABORTED)
            log_error("accept: %s", strerror(errno));
        return ++*failed < MAX_FAILED_ACCEPTS;
    }
    *failed = 0;
    struct conn *c = conn_new(fd);
    if (!watch(ep, fd, EPOLLIN, c))
        conn_free(c);
    return true;
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
    if (c->req.ipcFd < 0) {
        conn_free(c);
        return false;
    }
    return true;
}

int serve_fastcgi(int listen_fd, const struct serve_config *config)
{
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART */
    sigset_t stop_signals, previous;
    struct epoll_event events[MAX_EVENTS];
    int failed_accepts = 0, status = 0;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that went away must not kill us */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, &previous);
    sigset_t waiting = previous; /* what epoll_pwait lets in */
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    int flags = fcntl(listen_fd, F_GETFL);
    if (FCGX_Init() != 0 || ep < 0 || flags < 0 ||
        fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        !watch(ep, listen_fd, EPOLLIN | EPOLLEXCLUSIVE, NULL)) {
        log_error("cannot set up the worker's event loop: %s", strerror(errno));
        return 1;
    }
    /* After a stop, what is already there (requests on open connections,
     * connections queued) is still served, for a bounded time. */
    long drain_until = 0;
    bool listener_waited = false;
    log_hold(true);
    for (;;) {
        /* With access lines held, first a look: when nothing is waiting,
         * they are written before the worker blocks. */
        int timeout = log_pending() ? 0 : -1;
        if (stopping) {
            if (!drain_until)
                drain_until = clock_now_us() + DRAIN_US;
            if (clock_now_us() >= drain_until)
                break;
            timeout = 0;
        }
        int n = epoll_pwait(ep, events, MAX_EVENTS, timeout, &waiting);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            status = 1;
            break;
        }
        if (n == 0 && stopping)
            break;
        if (n == 0 && timeout == 0) {
            log_flush();
            continue;
        }
        /* Requests first. A worker with requests to serve leaves a new
         * connection to an idle one (the kernel has woken one), unless the
         * connection was still waiting at its previous look. */
        bool listener_ready = false, served = false;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c)
                serve_one(c, config), served = true; /* a closed one left the set */
            else
                listener_ready = true;
        }
        if (listener_ready && (!served || listener_waited) &&
            !accept_new(ep, listen_fd, &failed_accepts)) {
            log_error("accept keeps failing; worker exits");
            status = 1;
            break;
        }
        listener_waited = listener_ready && served && !listener_waited;
    }
    /* Kept connections with nothing in flight: nginx opens new ones. */
    while (conns)
        conn_free(conns);
    log_hold(false);
    close(ep);

    sigprocmask(SIG_SETMASK, &previous, NULL);

    log_info("worker stopped");
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
