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

/* The params request_read() uses. One pass over envp finds them all: a
 * lookup by name per param was 13% of a worker's instructions per request
 * (callgrind), envp holding some thirty params. */
enum param {
    P_CONTENT_LENGTH,
    P_REQUEST_METHOD,
    P_CONTENT_TYPE,
    P_REQUEST_URI,
    P_PATH_INFO,
    P_QUERY_STRING,
    P_REQUEST_ID,
    P_UNIQUE_ID,
    P_X_API_KEY,
    P_AUTHORIZATION,
    P_COOKIE,
    P_IF_MATCH,
    P_IF_NONE_MATCH,
    P_ACCEPT,
    P_COUNT
};

#define PARAM(name, join)                                                                \
    {                                                                                    \
        name, sizeof name - 1, join                                                      \
    }

/* join: NULL for a param the host passes once (the first one counts), else
 * the separator that joins a header's lines, as Node.js joins them (nginx
 * 1.22 passes each line as its own param). */
static const struct param_spec {
    const char *name;
    size_t len;
    const char *join;
} param_specs[P_COUNT] = {
    [P_CONTENT_LENGTH] = PARAM("CONTENT_LENGTH", NULL),
    [P_REQUEST_METHOD] = PARAM("REQUEST_METHOD", NULL),
    [P_CONTENT_TYPE] = PARAM("CONTENT_TYPE", NULL),
    [P_REQUEST_URI] = PARAM("REQUEST_URI", NULL),
    [P_PATH_INFO] = PARAM("PATH_INFO", NULL),
    [P_QUERY_STRING] = PARAM("QUERY_STRING", NULL),
    [P_REQUEST_ID] = PARAM("REQUEST_ID", NULL),
    [P_UNIQUE_ID] = PARAM("UNIQUE_ID", NULL),
    [P_X_API_KEY] = PARAM("HTTP_X_API_KEY", ", "),
    [P_AUTHORIZATION] = PARAM("HTTP_AUTHORIZATION", ", "),
    [P_COOKIE] = PARAM("HTTP_COOKIE", "; "),
    [P_IF_MATCH] = PARAM("HTTP_IF_MATCH", ", "),
    [P_IF_NONE_MATCH] = PARAM("HTTP_IF_NONE_MATCH", ", "),
    [P_ACCEPT] = PARAM("HTTP_ACCEPT", ", "),
};

const char *request_param_name(size_t i)
{
    return i < P_COUNT ? param_specs[i].name : NULL;
}

/* What one pass over envp found: a single param's value, or a joined
 * header's lines so far. */
struct params {
    const char *value[P_COUNT];
    struct buf joined[P_COUNT];
};

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

/* One "NAME=value" of envp into p, if NAME is one of param_specs. */
static void param_take(struct params *p, const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : 0;

    for (int i = 0; i < P_COUNT; i++) {
        const struct param_spec *spec = &param_specs[i];
        if (spec->len != n || memcmp(entry, spec->name, n) != 0)
            continue;
        if (!spec->join) {
            if (!p->value[i])
                p->value[i] = eq + 1;
        } else {
            size_t len;
            const char *v = trimmed(eq + 1, &len);
            if (p->value[i])
                buf_adds(&p->joined[i], spec->join);
            buf_add(&p->joined[i], v, len);
            p->value[i] = eq + 1; /* "found"; the text is in joined */
        }
        return;
    }
}

static void params_read(struct params *p, char *const *envp)
{
    *p = (struct params){0};
    for (; envp && *envp; envp++)
        param_take(p, *envp);
}

/* A joined header's lines as a malloc-ed string, or NULL when absent. */
static char *joined(struct params *p, enum param i)
{
    return p->value[i] ? buf_take(&p->joined[i], NULL) : NULL;
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
static char *request_id_from(const struct params *p)
{
    static const enum param names[] = {P_REQUEST_ID, P_UNIQUE_ID};
    unsigned char raw[16];
    char *id;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *given = p->value[names[i]];
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
static const char *query_string(const struct params *p)
{
    const char *uri = p->value[P_REQUEST_URI];
    const char *q = uri ? strchr(uri, '?') : NULL;

    if (q)
        return q + 1;
    q = p->value[P_QUERY_STRING];
    return q ? q : "";
}

/* REQUEST_URI is the path as the client sent it (nginx's PATH_INFO would be
 * $uri, already decoded and merged); a CGI host may give PATH_INFO only. */
static char *raw_path(const struct params *p)
{
    const char *uri = p->value[P_REQUEST_URI];
    const char *path = uri ? uri : p->value[P_PATH_INFO];

    if (!path)
        path = "";
    return strndup(path, strcspn(path, "?"));
}

/* Reads at most limit bytes (and no more than max_body + 1, to tell a body
 * too large), into a buffer first sized for the declared length and one
 * byte more, so that the end of a body as long as declared is seen without
 * growing it. A worker holds a body per request in hand: at max_body each,
 * the largest of 4 workers at 128 clients held 6.8 MB of RSS instead of
 * 5.0 to 5.4 (README, How many workers). */
static void read_body(struct request *req, request_reader read, void *ctx, size_t limit,
                      size_t max_body, size_t declared)
{
    size_t cap = limit < max_body + 1 ? limit : max_body + 1;
    struct buf body = {0};

    buf_reserve(&body, declared < cap ? declared + 1 : cap);
    while (body.len < cap) {
        buf_reserve(&body, 1); /* full: the host declared less than it sends */
        size_t room = body.cap - 1 - body.len, left = cap - body.len;
        size_t got = read(ctx, body.data + body.len, room < left ? room : left);
        if (got == 0)
            break;
        body.len += got;
    }
    body.data[body.len] = '\0';
    req->body = buf_take(&body, &req->body_len);
    if (req->body_len > max_body) {
        req->body_too_large = true;
        req->body_len = 0;
        req->body[0] = '\0';
    }
}

void request_read(struct request *req, char *const *envp, request_reader read, void *ctx,
                  bool is_cgi, size_t max_body)
{
    struct params p;
    params_read(&p, envp);
    const char *length = p.value[P_CONTENT_LENGTH];
    unsigned long long declared = length && *length ? strtoull(length, NULL, 10) : 0;
    const char *method = p.value[P_REQUEST_METHOD];

    *req = (struct request){
        .method = method ? method : "GET",
        .content_type = p.value[P_CONTENT_TYPE],
        .path = raw_path(&p),
        .request_id = request_id_from(&p),
        .api_key = joined(&p, P_X_API_KEY),
        .authorization = joined(&p, P_AUTHORIZATION),
        .cookie = joined(&p, P_COOKIE),
        .if_match = joined(&p, P_IF_MATCH),
        .if_none_match = joined(&p, P_IF_NONE_MATCH),
        .accept = joined(&p, P_ACCEPT),
        .query = query_string(&p),
    };

    if (declared > max_body) {
        /* Say 413 without reading what we would throw away. */
        req->body_too_large = true;
        req->body = calloc(1, 1);
        return;
    }
    read_body(req, read, ctx, is_cgi ? (size_t)declared : max_body + 1, max_body,
              (size_t)declared);
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
