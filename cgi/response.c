/* response.c: status lines, headers and the JSON error shapes.
 * Entry points: response_set(), response_error(), response_format(),
 * response_reason(), issue_list_add(). */
#include "response.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

const char *response_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
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
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

void issue_list_add(struct issue_list *list, const char *code, char *message,
                    const char *field)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 4;
        struct issue *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            abort();
        list->items = items;
        list->cap = cap;
    }
    list->items[list->count++] = (struct issue){code, message, field};
}

void issue_list_free(struct issue_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].message);
    free(list->items);
    *list = (struct issue_list){0};
}

void response_set(struct response *res, int status, char *body)
{
    free(res->body);
    res->status = status;
    res->body = body;
}

static char *json_take_string(json_object *obj)
{
    char *s = strdup(json_object_to_json_string_ext(obj, JSON_FLAGS));

    json_object_put(obj);
    if (!s)
        abort();
    return s;
}

/* zod's issue as h3 shows it: {"code":..,"message":..,"path":[..]}. */
static json_object *issue_json(const struct issue *issue)
{
    json_object *obj = json_object_new_object();
    json_object *path = json_object_new_array();

    if (issue->field)
        json_object_array_add(path, json_object_new_string(issue->field));
    json_object_object_add(obj, "code", json_object_new_string(issue->code));
    json_object_object_add(obj, "message", json_object_new_string(issue->message));
    json_object_object_add(obj, "path", path);
    return obj;
}

void response_error(struct response *res, enum error_shape shape, int status,
                    const char *message, const struct issue_list *issues)
{
    bool has_issues = issues && issues->count > 0;
    const char *text = message      ? message
                       : has_issues ? issues->items[0].message
                                    : response_reason(status);
    json_object *body = json_object_new_object();

    switch (shape) {
    case SHAPE_GENERIC:
        json_object_object_add(body, "statusCode", json_object_new_int(status));
        json_object_object_add(body, "error", json_object_new_string(text));
        break;
    case SHAPE_STATUS_ERROR:
        json_object_object_add(body, "status", json_object_new_string("error"));
        json_object_object_add(body, "error", json_object_new_string(text));
        break;
    case SHAPE_H3:
        json_object_object_add(body, "statusCode", json_object_new_int(status));
        json_object_object_add(body, "statusMessage", json_object_new_string(text));
        if (has_issues) {
            /* The services report only the first issue (SPEC section 4). */
            json_object *list = json_object_new_array();
            json_object *data = json_object_new_object();
            json_object_array_add(list, issue_json(&issues->items[0]));
            json_object_object_add(data, "issues", list);
            json_object_object_add(body, "data", data);
        }
        break;
    case SHAPE_NESTJS:
        json_object_object_add(body, "statusCode", json_object_new_int(status));
        if (!message && has_issues) {
            json_object *list = json_object_new_array();
            for (size_t i = 0; i < issues->count; i++)
                json_object_array_add(list,
                                      json_object_new_string(issues->items[i].message));
            json_object_object_add(body, "message", list);
        } else {
            json_object_object_add(body, "message", json_object_new_string(text));
        }
        json_object_object_add(body, "error",
                               json_object_new_string(response_reason(status)));
        break;
    }
    response_set(res, status, json_take_string(body));
}

char *response_format(const struct response *res, const char *request_id, size_t *len)
{
    const char *body = res->body ? res->body : "";
    size_t body_len = strlen(body);
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);

    if (!f)
        abort();
    fprintf(f,
            "Status: %d %s\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "Cache-Control: no-store\r\n"
            "X-Request-Id: %s\r\n",
            res->status, response_reason(res->status), request_id);
    if (res->allow)
        fprintf(f, "Allow: %s\r\n", res->allow);
    if (res->retry_after)
        fputs("Retry-After: 1\r\n", f);
    if (res->extra_headers)
        fputs(res->extra_headers, f);
    fprintf(f, "Content-Length: %zu\r\n\r\n", body_len);
    fwrite(body, 1, body_len, f);
    if (fclose(f) != 0)
        abort();
    *len = out_len;
    return out;
}

void response_free(struct response *res)
{
    free(res->body);
    res->body = NULL;
}
