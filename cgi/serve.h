/* serve.h: the request loops: FastCGI on a listening socket, or the one
 * request of a CGI invocation. */
#ifndef CHATPATCH_SERVE_H
#define CHATPATCH_SERVE_H

#include <stddef.h>

struct serve_config {
    size_t max_body;
};

/* Serves FastCGI requests on listen_fd until SIGTERM or SIGINT, finishing
 * the request in flight first. Returns the process exit status. */
int serve_fastcgi(int listen_fd, const struct serve_config *config);

/* Serves the one request of the CGI environment and stdin to stdout.
 * Returns the process exit status. */
int serve_cgi(const struct serve_config *config);

#endif
