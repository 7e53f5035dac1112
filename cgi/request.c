/* request.c: one request's method, path, headers and body.
 * Entry points: request_read(), request_free(). */
#include "request.h"

#include "buf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* X-Request-Id is echoed in a header: keep it to a safe alphabet. */
#define REQUEST_ID_MAX 128

/* The value of NAME in envp, or NULL. */
static const char *request_param(char *const *envp, const char *name)
{
    size_t n = strlen(name);

    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* A header value without the spaces and tabs around it, as HTTP reads it
 * (RFC 9110, 5.5) and Node.js does; a host may pass them on. */
static const char *trimmed(const char *v, size_t *len)
{
    size_t n = strlen(v);

    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *len = n;
    return v;
}

/* Every value of a header that was sent several times, each trimmed, joined
 * with sep; nginx 1.22 passes each line as its own param. Returns NULL when
 * the header is absent, else a malloc-ed string. */
static char *joined_param(char *const *envp, const char *name, const char *sep)
{
    size_t n = strlen(name);
    struct buf out = {0};
    bool found = false;

    for (; envp && *envp; envp++) {
        if (strncmp(*envp, name, n) != 0 || (*envp)[n] != '=')
            continue;
        size_t len;
        const char *v = trimmed(*envp + n + 1, &len);
        if (found)
            buf_adds(&out, sep);
        buf_add(&out, v, len);
        found = true;
    }
    return found ? buf_take(&out, NULL) : NULL;
}

/* A request id fit to echo in a header and to write in the access log. */
static bool request_id_ok(const char *id)
{
    size_t n = 0;

    for (; id[n]; n++)
        if (!isalnum((unsigned char)id[n]) && !strchr("-_.@", id[n]))
            return false;
    return n > 0 && n <= REQUEST_ID_MAX;
}

/* The host's id for the request: nginx's $request_id (REQUEST_ID), or
 * Apache's mod_unique_id (UNIQUE_ID). Never the client's X-Request-Id: a
 * client must not choose what ops correlate logs by. Without one that is a
 * plain token, the worker makes one like nginx's. */
static char *request_id_from(char *const *envp)
{
    static const char *const names[] = {"REQUEST_ID", "UNIQUE_ID"};
    unsigned char raw[16];
    char *id;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *given = request_param(envp, names[i]);
        if (given && request_id_ok(given))
            return strdup(given);
    }
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        abort();
    id = malloc(2 * sizeof raw + 1);
    if (!id)
        abort();
    for (size_t i = 0; i < sizeof raw; i++) {
        id[2 * i] = "0123456789abcdef"[raw[i] >> 4];
        id[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
    }
    id[2 * sizeof raw] = '\0';
    return id;
}

/* The query string: what follows '?' in REQUEST_URI, or QUERY_STRING. */
static const char *query_string(char *const *envp)
{
    const char *uri = request_param(envp, "REQUEST_URI");
    const char *q = uri ? strchr(uri, '?') : NULL;

    if (q)
        return q + 1;
    q = request_param(envp, "QUERY_STRING");
    return q ? q : "";
}

/* REQUEST_URI is the path as the client sent it (nginx's PATH_INFO would be
 * $uri, already decoded and merged); a CGI host may give PATH_INFO only. */
static char *raw_path(char *const *envp)
{
    const char *uri = request_param(envp, "REQUEST_URI");
    const char *path = uri ? uri : request_param(envp, "PATH_INFO");

    if (!path)
        path = "";
    return strndup(path, strcspn(path, "?"));
}

static void read_body(struct request *req, request_reader read, void *ctx, size_t limit,
                      size_t max_body)
{
    size_t cap = limit < max_body + 1 ? limit : max_body + 1;
    size_t n = 0;

    req->body = malloc(cap + 1);
    if (!req->body)
        abort();
    while (n < cap) {
        size_t got = read(ctx, req->body + n, cap - n);
        if (got == 0)
            break;
        n += got;
    }
    req->body[n] = '\0';
    req->body_len = n;
    if (n > max_body) {
        req->body_too_large = true;
        req->body_len = 0;
        req->body[0] = '\0';
    }
}

void request_read(struct request *req, char *const *envp, request_reader read, void *ctx,
                  bool is_cgi, size_t max_body)
{
    const char *length = request_param(envp, "CONTENT_LENGTH");
    unsigned long long declared = length && *length ? strtoull(length, NULL, 10) : 0;
    const char *method = request_param(envp, "REQUEST_METHOD");

    *req = (struct request){
        .method = method ? method : "GET",
        .content_type = request_param(envp, "CONTENT_TYPE"),
        .path = raw_path(envp),
        .request_id = request_id_from(envp),
        .api_key = joined_param(envp, "HTTP_X_API_KEY", ", "),
        .authorization = joined_param(envp, "HTTP_AUTHORIZATION", ", "),
        .cookie = joined_param(envp, "HTTP_COOKIE", "; "),
        .if_match = joined_param(envp, "HTTP_IF_MATCH", ", "),
        .if_none_match = joined_param(envp, "HTTP_IF_NONE_MATCH", ", "),
        .accept = joined_param(envp, "HTTP_ACCEPT", ", "),
        .query = query_string(envp),
    };
    if (declared > max_body) {
        /* Say 413 without reading what we would throw away. */
        req->body_too_large = true;
        req->body = calloc(1, 1);
        return;
    }
    read_body(req, read, ctx, is_cgi ? (size_t)declared : max_body + 1, max_body);
}

void request_free(struct request *req)
{
    free(req->path);
    free(req->request_id);
    free(req->api_key);
    free(req->authorization);
    free(req->cookie);
    free(req->if_match);
    free(req->if_none_match);
    free(req->accept);
    free(req->body);
    *req = (struct request){0};
}
