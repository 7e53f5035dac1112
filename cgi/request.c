/* request.c: one request's method, path, headers and body.
 * Entry points: request_read(), request_free(). */
#include "request.h"

#include <ctype.h>
#include <stdio.h>
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

/* Every value of a header that was sent several times, joined with sep;
 * nginx 1.22 passes each line as its own param. Returns NULL when the header
 * is absent, else a malloc-ed string. */
static char *joined_param(char *const *envp, const char *name, const char *sep)
{
    size_t n = strlen(name), count = 0;
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = NULL;

    for (; envp && *envp; envp++) {
        if (strncmp(*envp, name, n) != 0 || (*envp)[n] != '=')
            continue;
        if (!f && !(f = open_memstream(&out, &out_len)))
            abort();
        fprintf(f, "%s%s", count++ ? sep : "", *envp + n + 1);
    }
    if (f && fclose(f) != 0)
        abort();
    return out;
}

static bool request_id_ok(const char *id)
{
    size_t n = 0;

    for (; id[n]; n++)
        if (!isalnum((unsigned char)id[n]) && !strchr("-_.", id[n]))
            return false;
    return n > 0 && n <= REQUEST_ID_MAX;
}

/* nginx passes $request_id; a CGI caller may not: then make one like it. */
static char *request_id_from(char *const *envp)
{
    const char *given = request_param(envp, "REQUEST_ID");
    unsigned char raw[16];
    char *id;

    if (!given)
        given = request_param(envp, "HTTP_X_REQUEST_ID");
    if (given && request_id_ok(given))
        return strdup(given);
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        abort();
    id = malloc(2 * sizeof raw + 1);
    if (!id)
        abort();
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    return id;
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
    free(req->body);
    *req = (struct request){0};
}
