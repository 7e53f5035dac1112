/* response.c: status lines, headers and the JSON error shapes.
 * Entry points: response_set(), response_error(), response_format(),
 * response_reason(), issue_list_add(). */
#include "response.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

const char *response_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* A block of message text; blocks never move, so messages stay put. */
struct issue_text {
    struct issue_text *older;
    size_t used;
    size_t cap;
    char bytes[];
};

#define ISSUE_TEXT_BLOCK 16384

static const char *copy_text(struct issue_list *list, const char *s, size_t n)
{
    struct issue_text *t = list->text;

    if (!t || t->cap - t->used < n + 1) {
        size_t cap = n + 1 > ISSUE_TEXT_BLOCK ? n + 1 : ISSUE_TEXT_BLOCK;
        t = malloc(sizeof *t + cap);
        if (!t)
            abort();
        *t = (struct issue_text){.older = list->text, .cap = cap};
        list->text = t;
    }
    char *copy = t->bytes + t->used;
    memcpy(copy, s, n);
    copy[n] = '\0';
    t->used += n + 1;
    return copy;
}

void issue_list_add(struct issue_list *list, const char *code, const char *message,
                    size_t message_len, const char *field)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 4;
        struct issue *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            abort();
        list->items = items;
        list->cap = cap;
    }
    list->items[list->count++] =
        (struct issue){code, copy_text(list, message, message_len), field};
}

void issue_list_free(struct issue_list *list)
{
    while (list->text) {
        struct issue_text *older = list->text->older;
        free(list->text);
        list->text = older;
    }
    free(list->items);
    *list = (struct issue_list){0};
}

void response_set(struct response *res, int status, char *body)
{
    free(res->body);
    res->status = status;
    res->body = body;
}

void response_add_lines(struct response *res, const char *lines)
{
    size_t used = strlen(res->headers), n = strlen(lines);

    if (used + n >= sizeof res->headers)
        abort(); /* raise the room in response.h */
    memcpy(res->headers + used, lines, n + 1);
}

void response_add_header(struct response *res, const char *name, const char *value)
{
    response_add_lines(res, name);
    response_add_lines(res, ": ");
    response_add_lines(res, value);
    response_add_lines(res, "\r\n");
}

static void add_key(struct buf *b, const char *key)
{
    buf_adds(b, key);
}

static void add_string_member(struct buf *b, const char *key, const char *value)
{
    add_key(b, key);
    buf_add_json_string(b, value, strlen(value));
}

/* zod's issue as h3 shows it: {"code":..,"message":..,"path":[..]}. */
static void add_issue(struct buf *b, const struct issue *issue)
{
    add_string_member(b, "{\"code\":", issue->code);
    add_string_member(b, ",\"message\":", issue->message);
    buf_adds(b, ",\"path\":[");
    if (issue->field)
        buf_add_json_string(b, issue->field, strlen(issue->field));
    buf_adds(b, "]}");
}

void response_error(struct response *res, enum error_shape shape, int status,
                    const char *message, const struct issue_list *issues)
{
    bool has_issues = issues && issues->count > 0;
    const char *text = message      ? message
                       : has_issues ? issues->items[0].message
                                    : response_reason(status);
    struct buf b = {0};

    switch (shape) {
    case SHAPE_GENERIC:
        add_key(&b, "{\"statusCode\":");
        buf_add_long(&b, status);
        add_string_member(&b, ",\"error\":", text);
        break;
    case SHAPE_STATUS_ERROR:
        add_string_member(&b, "{\"status\":\"error\",\"error\":", text);
        break;
    case SHAPE_H3:
        add_key(&b, "{\"statusCode\":");
        buf_add_long(&b, status);
        add_string_member(&b, ",\"statusMessage\":", text);
        if (has_issues) {
            /* The services report only the first issue (SPEC section 4). */
            buf_adds(&b, ",\"data\":{\"issues\":[");
            add_issue(&b, &issues->items[0]);
            buf_adds(&b, "]}");
        }
        break;
    case SHAPE_NESTJS:
        add_key(&b, "{\"statusCode\":");
        buf_add_long(&b, status);
        if (!message && has_issues) {
            size_t room = 0; /* unescaped: a reserve, not a limit */
            for (size_t i = 0; i < issues->count; i++)
                room += strlen(issues->items[i].message) + 3;
            buf_reserve(&b, room + 64);
            buf_adds(&b, ",\"message\":[");
            for (size_t i = 0; i < issues->count; i++) {
                if (i)
                    buf_addc(&b, ',');
                buf_add_json_string(&b, issues->items[i].message,
                                    strlen(issues->items[i].message));
            }
            buf_addc(&b, ']');
        } else {
            add_string_member(&b, ",\"message\":", text);
        }
        add_string_member(&b, ",\"error\":", response_reason(status));
        break;
    }
    buf_addc(&b, '}');
    response_set(res, status, buf_take(&b, NULL));
}

char *response_format(const struct response *res, const char *request_id, size_t *len)
{
    const char *body = res->body ? res->body : "";
    size_t body_len = strlen(body);
    bool content = res->status != 204 && res->status != 304;
    struct buf b = {0};

    buf_reserve(&b, 256 + body_len);
    buf_adds(&b, "Status: ");
    buf_add_long(&b, res->status);
    buf_addc(&b, ' ');
    buf_adds(&b, response_reason(res->status));
    if (content) {
        buf_adds(&b, "\r\nContent-Type: ");
        buf_adds(&b, res->content_type ? res->content_type
                                       : "application/json; charset=utf-8");
    }
    buf_adds(&b, "\r\nCache-Control: no-store\r\nX-Request-Id: ");
    buf_adds(&b, request_id);
    buf_adds(&b, "\r\n");
    if (res->allow[0]) {
        buf_adds(&b, "Allow: ");
        buf_adds(&b, res->allow);
        buf_adds(&b, "\r\n");
    }
    if (res->retry_after)
        buf_adds(&b, "Retry-After: 1\r\n");
    if (res->extra_headers)
        buf_adds(&b, res->extra_headers);
    buf_adds(&b, res->headers);
    if (!content) {
        buf_adds(&b, "\r\n");
        return buf_take(&b, len);
    }
    buf_adds(&b, "Content-Length: ");
    buf_add_long(&b, (long long)body_len);
    buf_adds(&b, "\r\n\r\n");
    buf_add(&b, body, body_len);
    return buf_take(&b, len);
}

void response_free(struct response *res)
{
    free(res->body);
    res->body = NULL;
}
