/* serve.c: reading, handling and answering requests, and the access log.
 * Entry points: serve_fastcgi(), serve_cgi().
 *
 * SIGTERM and SIGINT are blocked while a request is handled and let in only
 * around the accept, so a shutdown never cuts a response in half: the
 * handler marks the shutdown (FCGX_ShutdownPending) and the accept returns. */
#include "serve.h"

#include "clock.h"
#include "engine.h"
#include "log.h"

#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define MAX_FAILED_ACCEPTS 100

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
    FCGX_ShutdownPending();
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

int serve_fastcgi(int listen_fd, const struct serve_config *config)
{
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: accept returns */
    sigset_t stop_signals, previous;
    FCGX_Request fcgx;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that went away must not kill us */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, &previous);

    if (FCGX_Init() != 0 ||
        FCGX_InitRequest(&fcgx, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR)) {
        log_error("cannot initialise libfcgi");
        return 1;
    }
    int failed_accepts = 0;
    while (!stopping) {
        sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
        int accepted = stopping ? -1 : FCGX_Accept_r(&fcgx);
        sigprocmask(SIG_BLOCK, &stop_signals, NULL);
        if (accepted < 0) {
            /* A signal, or a client gone before its request: try again. A
             * listener that keeps failing will not mend; the pool's parent
             * starts a fresh worker. */
            if (!stopping && ++failed_accepts >= MAX_FAILED_ACCEPTS) {
                log_error("accept keeps failing (%d); worker exits", accepted);
                return 1;
            }
            continue;
        }
        failed_accepts = 0;

        long start = clock_now_us();
        struct request req;
        size_t len;
        request_read(&req, fcgx.envp, read_fcgx, fcgx.in, false, config->max_body);
        char *out = answer(&req, start, &len);
        FCGX_PutStr(out, (int)len, fcgx.out);
        free(out);
        request_free(&req);
        FCGX_Finish_r(&fcgx);
    }
    FCGX_Free(&fcgx, 1);
    sigprocmask(SIG_SETMASK, &previous, NULL);
    log_info("worker stopped");
    return 0;
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
