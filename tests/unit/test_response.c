/* test_response.c: the four error shapes as exact JSON text (SPEC 3-5), the
 * CGI response text (SPEC 2: Content-Type, Cache-Control, X-Request-Id on
 * every response; Allow with 405; Retry-After: 1 with 503), reason phrases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "response.h"

static void add_issue(struct issue_list *list, const char *code, const char *message,
                      const char *field)
{
    issue_list_add(list, code, message, strlen(message), field);
}

static void assert_error_body(enum error_shape shape, int status, const char *message,
                              const struct issue_list *issues, const char *want)
{
    struct response res = {0};

    response_error(&res, shape, status, message, issues);
    assert_int_equal(res.status, status);
    assert_non_null(res.body);
    assert_string_equal(res.body, want);
    response_free(&res);
}

/* The formatted response as a NUL-terminated string (bodies here have no NUL). */
static char *format(const struct response *res, const char *request_id)
{
    size_t len = 0;
    char *out = response_format(res, request_id, &len);

    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

/* The header block (up to and with the blank line) holds line exactly once. */
static void assert_header(const char *out, const char *line)
{
    const char *end = strstr(out, "\r\n\r\n");
    const char *hit;

    assert_non_null(end);
    hit = strstr(out, line);
    if (!hit || hit > end)
        fail_msg("no header line \"%s\" in:\n%s", line, out);
    if (strstr(hit + 1, line) && strstr(hit + 1, line) < end)
        fail_msg("header line \"%s\" twice in:\n%s", line, out);
}

static void assert_no_header(const char *out, const char *name)
{
    const char *end = strstr(out, "\r\n\r\n");
    const char *hit = strstr(out, name);

    assert_non_null(end);
    if (hit && hit < end)
        fail_msg("unexpected header %s in:\n%s", name, out);
}

static const char *body_of(const char *out)
{
    const char *end = strstr(out, "\r\n\r\n");

    assert_non_null(end);
    return end + 4;
}

/* ---- response_error: Recoup {"status":"error","error":..} --------------- */

static void test_status_error_shape_exact_text(void **state)
{
    (void)state;
    assert_error_body(SHAPE_STATUS_ERROR, 401, "Unauthorized", NULL,
                      "{\"status\":\"error\",\"error\":\"Unauthorized\"}");
    assert_error_body(SHAPE_STATUS_ERROR, 404, "Session not found", NULL,
                      "{\"status\":\"error\",\"error\":\"Session not found\"}");
}

static void test_status_error_shape_first_issue_as_message(void **state)
{
    struct issue_list issues = {0};

    (void)state;
    add_issue(&issues, "too_small", "title cannot be empty", "title");
    add_issue(&issues, "unrecognized_keys", "Unrecognized key: \"x\"", NULL);
    assert_error_body(SHAPE_STATUS_ERROR, 400, NULL, &issues,
                      "{\"status\":\"error\",\"error\":\"title cannot be empty\"}");
    issue_list_free(&issues);
}

/* JSON.stringify escapes '"' and '\\' and control characters, not '/' or
 * non-ASCII. */
static void test_status_error_shape_escapes_like_json_stringify(void **state)
{
    (void)state;
    assert_error_body(
        SHAPE_STATUS_ERROR, 400, "Unrecognized key: \"a/b\\c\"", NULL,
        "{\"status\":\"error\",\"error\":\"Unrecognized key: \\\"a/b\\\\c\\\"\"}");
    assert_error_body(
        SHAPE_STATUS_ERROR, 400, "Unrecognized key: \"caf\xc3\xa9\"", NULL,
        "{\"status\":\"error\",\"error\":\"Unrecognized key: \\\"caf\xc3\xa9\\\"\"}");
    assert_error_body(SHAPE_STATUS_ERROR, 400, "a\tb\nc", NULL,
                      "{\"status\":\"error\",\"error\":\"a\\tb\\nc\"}");
    assert_error_body(SHAPE_STATUS_ERROR, 400, "\x01\x1c\x1f\b\f\r\"\\\x7f", NULL,
                      "{\"status\":\"error\",\"error\":"
                      "\"\\u0001\\u001c\\u001f\\b\\f\\r\\\"\\\\\x7f\"}");
}

static void test_status_error_shape_413_415_messages(void **state)
{
    (void)state;
    assert_error_body(SHAPE_STATUS_ERROR, 413, "Request body too large", NULL,
                      "{\"status\":\"error\",\"error\":\"Request body too large\"}");
    assert_error_body(SHAPE_STATUS_ERROR, 415, "Content-Type must be application/json",
                      NULL,
                      "{\"status\":\"error\",\"error\":\"Content-Type must be "
                      "application/json\"}");
}

/* ---- response_error: Neptun (h3) ----------------------------------------- */

static void test_h3_shape_without_issues(void **state)
{
    (void)state;
    assert_error_body(SHAPE_H3, 401, "Unauthorized", NULL,
                      "{\"statusCode\":401,\"statusMessage\":\"Unauthorized\"}");
    assert_error_body(SHAPE_H3, 400, "Bad Request. Invalid JSON body.", NULL,
                      "{\"statusCode\":400,\"statusMessage\":\"Bad Request. Invalid JSON "
                      "body.\"}");
}

static void test_h3_shape_data_issues_holds_only_first_issue(void **state)
{
    struct issue_list issues = {0};

    (void)state;
    add_issue(&issues, "too_small", "String must contain at least 1 character(s)",
              "name");
    add_issue(&issues, "invalid_type", "Required", "other");
    assert_error_body(SHAPE_H3, 400, "Bad Request. Invalid body(name).", &issues,
                      "{\"statusCode\":400,\"statusMessage\":\"Bad Request. Invalid "
                      "body(name).\",\"data\":{\"issues\":[{\"code\":\"too_small\","
                      "\"message\":\"String must contain at least 1 character(s)\","
                      "\"path\":[\"name\"]}]}}");
    issue_list_free(&issues);
}

static void test_h3_shape_required_and_wrong_type_issues(void **state)
{
    struct issue_list issues = {0};

    (void)state;
    add_issue(&issues, "invalid_type", "Required", "name");
    assert_error_body(SHAPE_H3, 400, "Bad Request. Invalid body(name).", &issues,
                      "{\"statusCode\":400,\"statusMessage\":\"Bad Request. Invalid "
                      "body(name).\",\"data\":{\"issues\":[{\"code\":\"invalid_type\","
                      "\"message\":\"Required\",\"path\":[\"name\"]}]}}");
    issue_list_free(&issues);
}

static void test_h3_shape_empty_issue_list_has_no_data(void **state)
{
    struct issue_list issues = {0};

    (void)state;
    assert_error_body(
        SHAPE_H3, 404, "Chat or user not found", &issues,
        "{\"statusCode\":404,\"statusMessage\":\"Chat or user not found\"}");
}

static void test_h3_shape_reason_phrase_for_413_415(void **state)
{
    (void)state;
    assert_error_body(SHAPE_H3, 413, NULL, NULL,
                      "{\"statusCode\":413,\"statusMessage\":\"Payload Too Large\"}");
    assert_error_body(
        SHAPE_H3, 415, NULL, NULL,
        "{\"statusCode\":415,\"statusMessage\":\"Unsupported Media Type\"}");
}

/* ---- response_error: LeanMCP (NestJS) ------------------------------------ */

static void test_nestjs_shape_string_message(void **state)
{
    (void)state;
    assert_error_body(SHAPE_NESTJS, 401, "Unauthorized", NULL,
                      "{\"statusCode\":401,\"message\":\"Unauthorized\",\"error\":"
                      "\"Unauthorized\"}");
    assert_error_body(SHAPE_NESTJS, 403, "Forbidden resource", NULL,
                      "{\"statusCode\":403,\"message\":\"Forbidden resource\",\"error\":"
                      "\"Forbidden\"}");
    assert_error_body(
        SHAPE_NESTJS, 404, "Chat not found", NULL,
        "{\"statusCode\":404,\"message\":\"Chat not found\",\"error\":\"Not "
        "Found\"}");
    assert_error_body(SHAPE_NESTJS, 400, "Validation failed (uuid is expected)", NULL,
                      "{\"statusCode\":400,\"message\":\"Validation failed (uuid is "
                      "expected)\",\"error\":\"Bad Request\"}");
}

static void test_nestjs_shape_array_of_all_issues(void **state)
{
    struct issue_list issues = {0};

    (void)state;
    add_issue(&issues, "too_small", "title should not be empty", "title");
    add_issue(&issues, "invalid_type", "metadata must be an object", "metadata");
    add_issue(&issues, "unrecognized_keys", "property foo should not exist", NULL);
    assert_error_body(SHAPE_NESTJS, 400, NULL, &issues,
                      "{\"statusCode\":400,\"message\":[\"title should not be empty\","
                      "\"metadata must be an object\",\"property foo should not exist\"],"
                      "\"error\":\"Bad Request\"}");
    issue_list_free(&issues);
}

static void test_nestjs_shape_single_issue_still_an_array(void **state)
{
    struct issue_list issues = {0};

    (void)state;
    add_issue(&issues, "invalid_type", "title must be a string", "title");
    assert_error_body(SHAPE_NESTJS, 400, NULL, &issues,
                      "{\"statusCode\":400,\"message\":[\"title must be a string\"],"
                      "\"error\":\"Bad Request\"}");
    issue_list_free(&issues);
}

static void test_nestjs_shape_reason_phrase_for_413_415(void **state)
{
    (void)state;
    assert_error_body(SHAPE_NESTJS, 413, NULL, NULL,
                      "{\"statusCode\":413,\"message\":\"Payload Too Large\",\"error\":"
                      "\"Payload Too Large\"}");
    assert_error_body(
        SHAPE_NESTJS, 415, NULL, NULL,
        "{\"statusCode\":415,\"message\":\"Unsupported Media Type\",\"error\":"
        "\"Unsupported Media Type\"}");
}

static void test_nestjs_shape_503(void **state)
{
    (void)state;
    assert_error_body(SHAPE_NESTJS, 503, NULL, NULL,
                      "{\"statusCode\":503,\"message\":\"Service Unavailable\",\"error\":"
                      "\"Service Unavailable\"}");
}

/* ---- response_error: no API known ---------------------------------------- */

static void test_generic_shape(void **state)
{
    (void)state;
    assert_error_body(SHAPE_GENERIC, 404, NULL, NULL,
                      "{\"statusCode\":404,\"error\":\"Not Found\"}");
    assert_error_body(SHAPE_GENERIC, 405, NULL, NULL,
                      "{\"statusCode\":405,\"error\":\"Method Not Allowed\"}");
}

static void test_error_replaces_previous_body(void **state)
{
    struct response res = {0};
    char *first = strdup("{\"chat\":{}}");

    (void)state;
    assert_non_null(first);
    response_set(&res, 200, first);
    response_error(&res, SHAPE_STATUS_ERROR, 503, "Service Unavailable", NULL);
    assert_int_equal(res.status, 503);
    assert_string_equal(res.body,
                        "{\"status\":\"error\",\"error\":\"Service Unavailable\"}");
    response_free(&res);
    assert_null(res.body);
}

/* ---- response_format ----------------------------------------------------- */

static void test_format_status_line_first(void **state)
{
    struct response res = {.status = 200, .body = "{\"status\":\"ok\"}"};
    char *out = format(&res, "req-1");

    (void)state;
    assert_true(strncmp(out, "Status: 200 OK\r\n", 16) == 0);
    free(out);
}

static void test_format_common_headers(void **state)
{
    struct response res = {.status = 404, .body = "{}"};
    char *out = format(&res, "abc123");

    (void)state;
    assert_true(strncmp(out, "Status: 404 Not Found\r\n", 23) == 0);
    assert_header(out, "\r\nContent-Type: application/json; charset=utf-8\r\n");
    assert_header(out, "\r\nCache-Control: no-store\r\n");
    assert_header(out, "\r\nX-Request-Id: abc123\r\n");
    assert_header(out, "\r\nContent-Length: 2\r\n");
    assert_no_header(out, "Allow:");
    assert_no_header(out, "Retry-After:");
    assert_string_equal(body_of(out), "{}");
    free(out);
}

static void test_format_content_length_counts_bytes(void **state)
{
    struct response res = {.status = 200,
                           .body = "{\"t\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}"};
    char *out = format(&res, "r");

    (void)state;
    assert_int_equal(strlen(res.body), 18);
    assert_header(out, "\r\nContent-Length: 18\r\n");
    assert_string_equal(body_of(out), res.body);
    free(out);
}

static void test_format_allow_header(void **state)
{
    struct response res = {.status = 405, .body = "{}", .allow = "PATCH"};
    char *out = format(&res, "r");

    (void)state;
    assert_true(strncmp(out, "Status: 405 Method Not Allowed\r\n", 32) == 0);
    assert_header(out, "\r\nAllow: PATCH\r\n");
    free(out);
}

static void test_format_retry_after_header(void **state)
{
    struct response res = {.status = 503, .body = "{}", .retry_after = true};
    char *out = format(&res, "r");

    (void)state;
    assert_true(strncmp(out, "Status: 503 Service Unavailable\r\n", 33) == 0);
    assert_header(out, "\r\nRetry-After: 1\r\n");
    free(out);
}

static void test_format_extra_headers(void **state)
{
    struct response res = {.status = 401,
                           .body = "{}",
                           .extra_headers =
                               "Access-Control-Allow-Origin: *\r\nX-A: b\r\n"};
    char *out = format(&res, "r");

    (void)state;
    assert_header(out, "\r\nAccess-Control-Allow-Origin: *\r\n");
    assert_header(out, "\r\nX-A: b\r\n");
    assert_header(out, "\r\nContent-Length: 2\r\n");
    assert_string_equal(body_of(out), "{}");
    free(out);
}

static void test_format_every_header_together(void **state)
{
    struct response res = {.status = 503,
                           .body = "{\"status\":\"unavailable\"}",
                           .allow = "GET",
                           .retry_after = true,
                           .extra_headers = "Access-Control-Allow-Origin: *\r\n"};
    char *out = format(&res, "0123456789abcdef");

    (void)state;
    assert_header(out, "\r\nAllow: GET\r\n");
    assert_header(out, "\r\nRetry-After: 1\r\n");
    assert_header(out, "\r\nAccess-Control-Allow-Origin: *\r\n");
    assert_header(out, "\r\nX-Request-Id: 0123456789abcdef\r\n");
    assert_header(out, "\r\nContent-Length: 24\r\n");
    assert_string_equal(body_of(out), "{\"status\":\"unavailable\"}");
    free(out);
}

/* Every line of the header block ends in CRLF, with a blank line after. */
static void test_format_header_lines_are_crlf(void **state)
{
    struct response res = {.status = 200, .body = "{\"a\":1}", .allow = "PATCH"};
    char *out = format(&res, "r");
    const char *end = strstr(out, "\r\n\r\n");

    (void)state;
    assert_non_null(end);
    for (const char *p = out; p < end; p++)
        if (*p == '\n')
            assert_int_equal(p[-1], '\r');
    assert_string_equal(end + 4, "{\"a\":1}");
    free(out);
}

static void test_format_error_body_round_trip(void **state)
{
    struct response res = {0};
    char *out;

    (void)state;
    response_error(&res, SHAPE_STATUS_ERROR, 401, "Unauthorized", NULL);
    res.extra_headers = "Access-Control-Allow-Origin: *\r\n";
    out = format(&res, "rid");
    assert_true(strncmp(out, "Status: 401 Unauthorized\r\n", 26) == 0);
    assert_header(out, "\r\nContent-Length: 41\r\n");
    assert_string_equal(body_of(out),
                        "{\"status\":\"error\",\"error\":\"Unauthorized\"}");
    free(out);
    response_free(&res);
}

/* ---- response_reason ----------------------------------------------------- */

static void test_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(response_reason(200), "OK");
    assert_string_equal(response_reason(400), "Bad Request");
    assert_string_equal(response_reason(401), "Unauthorized");
    assert_string_equal(response_reason(403), "Forbidden");
    assert_string_equal(response_reason(404), "Not Found");
    assert_string_equal(response_reason(405), "Method Not Allowed");
    assert_string_equal(response_reason(413), "Payload Too Large");
    assert_string_equal(response_reason(415), "Unsupported Media Type");
    assert_string_equal(response_reason(500), "Internal Server Error");
    assert_string_equal(response_reason(503), "Service Unavailable");
}

static void test_reason_unknown_status_not_null(void **state)
{
    (void)state;
    assert_non_null(response_reason(299));
    assert_non_null(response_reason(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_error_shape_exact_text),
        cmocka_unit_test(test_status_error_shape_first_issue_as_message),
        cmocka_unit_test(test_status_error_shape_escapes_like_json_stringify),
        cmocka_unit_test(test_status_error_shape_413_415_messages),
        cmocka_unit_test(test_h3_shape_without_issues),
        cmocka_unit_test(test_h3_shape_data_issues_holds_only_first_issue),
        cmocka_unit_test(test_h3_shape_required_and_wrong_type_issues),
        cmocka_unit_test(test_h3_shape_empty_issue_list_has_no_data),
        cmocka_unit_test(test_h3_shape_reason_phrase_for_413_415),
        cmocka_unit_test(test_nestjs_shape_string_message),
        cmocka_unit_test(test_nestjs_shape_array_of_all_issues),
        cmocka_unit_test(test_nestjs_shape_single_issue_still_an_array),
        cmocka_unit_test(test_nestjs_shape_reason_phrase_for_413_415),
        cmocka_unit_test(test_nestjs_shape_503),
        cmocka_unit_test(test_generic_shape),
        cmocka_unit_test(test_error_replaces_previous_body),
        cmocka_unit_test(test_format_status_line_first),
        cmocka_unit_test(test_format_common_headers),
        cmocka_unit_test(test_format_content_length_counts_bytes),
        cmocka_unit_test(test_format_allow_header),
        cmocka_unit_test(test_format_retry_after_header),
        cmocka_unit_test(test_format_extra_headers),
        cmocka_unit_test(test_format_every_header_together),
        cmocka_unit_test(test_format_header_lines_are_crlf),
        cmocka_unit_test(test_format_error_body_round_trip),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_reason_unknown_status_not_null),
    };

    return cmocka_run_group_tests_name("response", tests, NULL, NULL);
}
