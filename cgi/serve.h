/* serve.h: the request loops: FastCGI on a listening socket, or the one
 * request of a CGI invocation. */
#ifndef CHATPATCH_SERVE_H
#define CHATPATCH_SERVE_H

#include <stddef.h>

struct serve_config {
    size_t max_body;
    int ready_fd; /* -1, or a pipe to the pool: the worker's pid, once it
                     watches the listening socket (then closed) */
};

/* Serves FastCGI requests on listen_fd until a signal says to stop:
 * SIGTERM or SIGINT drain the socket's backlog first, SIGUSR2 stops
 * accepting at once; either way, everything accepted is answered first.
 * SIGUSR1 reopens the log file. Returns the process exit status. */
int serve_fastcgi(int listen_fd, const struct serve_config *config);

/* Serves the one request of the CGI environment and stdin to stdout.
 * Returns the process exit status. */
int serve_cgi(const struct serve_config *config);

#endif
