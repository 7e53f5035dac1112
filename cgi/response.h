/* response.h: one HTTP answer: status, headers and a JSON body.
 * This is the one place that maps a status to its reason phrase and an
 * error to each framework's JSON shape. */
#ifndef CHATPATCH_RESPONSE_H
#define CHATPATCH_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

/* The error bodies of the frameworks behind the three APIs. */
enum error_shape {
    SHAPE_GENERIC,      /* {"statusCode":N,"error":"<reason>"}: no API known */
    SHAPE_STATUS_ERROR, /* {"status":"error","error":"<message>"} (Recoup) */
    SHAPE_H3,           /* {"statusCode":N,"statusMessage":"..","data":{"issues":[..]}} */
    SHAPE_NESTJS, /* {"statusCode":N,"message":<string|[strings]>,"error":"<reason>"} */
};

/* A body problem as validators report it. */
struct issue {
    const char *code;    /* zod's issue code, shown by SHAPE_H3 */
    const char *message; /* the list's own copy */
    const char *field;   /* its path: the field key, or NULL for the body */
};

/* Issues, their messages copied into blocks the list owns: a body may have
 * thousands of problems, and LeanMCP lists them all. */
struct issue_list {
    struct issue *items;
    size_t count;
    size_t cap;
    struct issue_text *text; /* the newest block of message text */
};

/* Appends an issue with a copy of message. */
void issue_list_add(struct issue_list *list, const char *code, const char *message,
                    size_t message_len, const char *field);
void issue_list_free(struct issue_list *list);

struct response {
    int status;
    char *body;                /* malloc-ed JSON */
    char allow[64];            /* Allow header value, or "" */
    const char *extra_headers; /* "Name: value\r\n" lines, or NULL */
    bool retry_after;          /* Retry-After: 1 */
    char headers[512];         /* this answer's own header lines (ETag, CORS), or "" */
    const char *content_type;  /* NULL: application/json; charset=utf-8 */
};

const char *response_reason(int status);

/* Sets status and body; takes ownership of body. body NULL: no content
 * (204, 304). */
void response_set(struct response *res, int status, char *body);

/* Appends "Name: value\r\n" to res->headers; lines, one or more whole
 * header lines, as they are. Headers are the worker's own: running out of
 * room is a bug, and aborts. */
void response_add_header(struct response *res, const char *name, const char *value);
void response_add_lines(struct response *res, const char *lines);

/* Sets an error in the given shape. message NULL means the issues are the
 * message (the first one, or all of them for SHAPE_NESTJS). */
void response_error(struct response *res, enum error_shape shape, int status,
                    const char *message, const struct issue_list *issues);

/* The whole CGI response: Status line, headers, blank line, body. A 204 or
 * 304 has no content: no body, and no Content-Type or Content-Length
 * (RFC 9110, 15.3.5 and 15.4.5). Returns a malloc-ed buffer of *len bytes;
 * the caller frees it. */
char *response_format(const struct response *res, const char *request_id, size_t *len);

void response_free(struct response *res);

#endif
