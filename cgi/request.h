/* request.h: the facts of one request, from FastCGI params or the CGI
 * environment, and its body. */
#ifndef CHATPATCH_REQUEST_H
#define CHATPATCH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* Reads up to n bytes of the body; returns 0 at its end. */
typedef size_t (*request_reader)(void *ctx, char *buf, size_t n);

struct request {
    const char *method;
    const char *content_type; /* NULL when absent */
    char *path;               /* the raw path without the query string */
    char *request_id;         /* from REQUEST_ID, or generated */
    /* The credential headers, each header's lines joined as Node.js joins
     * them (", ", and "; " for Cookie); NULL when absent. */
    char *api_key;
    char *authorization;
    char *cookie;
    /* The conditional headers (RFC 9110, 13.1), joined the same way (a
     * list split over lines is one list); NULL when absent. */
    char *if_match;
    char *if_none_match;
    char *accept;      /* Accept, joined with ", "; NULL when absent */
    const char *query; /* the query string, without '?' ("" when none) */
    char *body;
    size_t body_len;
    bool body_too_large; /* longer than the limit: the body was not kept */
};

/* Reads the request from envp ("NAME=value" strings: FastCGI params or the
 * CGI environment) and the body through read. With is_cgi, the body is
 * CONTENT_LENGTH bytes; otherwise it runs to the end of the stream. Always
 * fills req; release it with request_free(). */
void request_read(struct request *req, char *const *envp, request_reader read, void *ctx,
                  bool is_cgi, size_t max_body);
void request_free(struct request *req);

/* The name of the i-th param request_read() reads, NULL past the last: what
 * a web server has to pass (errors_print() lists them for the nginx
 * snippet). */
const char *request_param_name(size_t i);

#endif
