/* test_route.c: path segments percent-decoded once, and the routes of SPEC
 * section 1 (a decoded '/' or NUL, or an empty segment, is an unknown path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "route.h"

extern const struct api_profile api_recoup, api_neptun, api_leanmcp;

static const char uuid[] = "c1a83d84-7154-464c-bd19-a9f10e0a067f";

/* Decodes a literal segment; checks the length (-1: rejected) and text. */
static void assert_segment(const char *seg, long want_len, const char *want)
{
    char out[128];
    long n;

    assert_true(strlen(seg) < sizeof out);
    memset(out, '#', sizeof out);
    n = route_decode_segment(seg, strlen(seg), out);
    if (n != want_len)
        fail_msg("route_decode_segment(\"%s\") = %ld, want %ld", seg, n, want_len);
    if (want) {
        assert_memory_equal(out, want, (size_t)want_len);
        assert_int_equal(out[want_len], '\0');
    }
}

#define assert_segment_rejected(seg) assert_segment(seg, -1, NULL)

/* Matches path; checks the profile's name (NULL: the health route) and params. */
static void assert_route(const char *path, const char *want_api, size_t nparams,
                         const char *p0, const char *p1)
{
    struct route r;

    if (!route_match(path, &r))
        fail_msg("route_match(\"%s\") found no route", path);
    if (want_api) {
        assert_non_null(r.api);
        assert_string_equal(r.api->name, want_api);
    } else {
        assert_null(r.api);
    }
    assert_int_equal(r.nparams, nparams);
    if (nparams > 0)
        assert_string_equal(r.params[0], p0);
    if (nparams > 1)
        assert_string_equal(r.params[1], p1);
    route_free(&r);
}

static void assert_no_route(const char *path)
{
    struct route r;

    if (route_match(path, &r)) {
        route_free(&r);
        fail_msg("route_match(\"%s\") should find no route", path);
    }
}

/* ---- route_decode_segment ------------------------------------------------ */

static void test_decode_plain_segment_unchanged(void **state)
{
    (void)state;
    assert_segment("abc", 3, "abc");
    assert_segment("a+b", 3, "a+b"); /* '+' is not a space in a path */
    assert_segment("sess_demo", 9, "sess_demo");
}

static void test_decode_escapes(void **state)
{
    (void)state;
    assert_segment("a%20b", 3, "a b");
    assert_segment("%41", 1, "A");
    assert_segment("%4a%4A", 2, "JJ"); /* hex digits in either case */
    assert_segment("%e2%82%ac", 3, "\xe2\x82\xac");
    assert_segment("x%3F", 2, "x?");
}

static void test_decode_once_only(void **state)
{
    (void)state;
    assert_segment("%2541", 3, "%41");
    assert_segment("%252F", 3, "%2F");
}

static void test_decode_slash_upper_case_2F_rejected(void **state)
{
    (void)state;
    assert_segment_rejected("%2F");
    assert_segment_rejected("a%2Fb");
}

static void test_decode_slash_lower_case_2f_rejected(void **state)
{
    (void)state;
    assert_segment_rejected("%2f");
    assert_segment_rejected("a%2fb");
}

static void test_decode_nul_00_rejected(void **state)
{
    (void)state;
    assert_segment_rejected("%00");
    assert_segment_rejected("a%00");
}

static void test_decode_bare_percent_rejected(void **state)
{
    (void)state;
    assert_segment_rejected("%");
    assert_segment_rejected("a%");
}

static void test_decode_one_hex_digit_rejected(void **state)
{
    (void)state;
    assert_segment_rejected("%4");
    assert_segment_rejected("ab%4");
}

static void test_decode_non_hex_escape_rejected(void **state)
{
    (void)state;
    assert_segment_rejected("%zz");
    assert_segment_rejected("%4z");
    assert_segment_rejected("%z4");
    assert_segment_rejected("%%41");
    assert_segment_rejected("% 41");
}

static void test_decode_empty_segment_rejected(void **state)
{
    char out[4];

    (void)state;
    assert_int_equal(route_decode_segment("", 0, out), -1);
}

/* Only len bytes are the segment: the rest of the path is not read. */
static void test_decode_respects_length(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(route_decode_segment("ab/cd", 2, out), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(route_decode_segment("a%41", 2, out), -1);
}

/* ---- route_match --------------------------------------------------------- */

static void test_match_healthz(void **state)
{
    (void)state;
    assert_route(ROUTE_HEALTH, NULL, 0, NULL, NULL);
    assert_route("/healthz", NULL, 0, NULL, NULL);
}

static void test_match_recoup_session_chat(void **state)
{
    (void)state;
    assert_route("/api/sessions/a/chats/b", "recoup", 2, "a", "b");
    assert_route("/api/sessions/sess_demo/chats/chat_demo", "recoup", 2, "sess_demo",
                 "chat_demo");
}

static void test_match_neptun_user_chat(void **state)
{
    (void)state;
    assert_route("/api/users/1/chats/2", "neptun", 2, "1", "2");
}

/* Parameter types are checked later (SPEC 4 row 2: 400, not 404). */
static void test_match_neptun_non_numeric_params_still_route(void **state)
{
    (void)state;
    assert_route("/api/users/abc/chats/-1", "neptun", 2, "abc", "-1");
}

static void test_match_leanmcp_chat_by_uuid(void **state)
{
    struct route r;

    (void)state;
    assert_true(route_match("/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f", &r));
    assert_non_null(r.api);
    assert_string_equal(r.api->name, "leanmcp");
    assert_int_equal(r.nparams, 1);
    assert_string_equal(r.params[0], uuid);
    route_free(&r);
}

/* SPEC 5 row 3: a malformed id is 400, so the path must still route. */
static void test_match_leanmcp_non_uuid_still_routes(void **state)
{
    struct route r;

    (void)state;
    assert_true(route_match("/api/chats/id/not-a-uuid", &r));
    assert_string_equal(r.api->name, "leanmcp");
    assert_int_equal(r.nparams, 1);
    assert_string_equal(r.params[0], "not-a-uuid");
    route_free(&r);
}

static void test_match_profiles_are_the_exported_ones(void **state)
{
    struct route r;

    (void)state;
    assert_true(route_match("/api/sessions/a/chats/b", &r));
    assert_ptr_equal(r.api, &api_recoup);
    route_free(&r);
    assert_true(route_match("/api/users/1/chats/2", &r));
    assert_ptr_equal(r.api, &api_neptun);
    route_free(&r);
    assert_true(route_match("/api/chats/id/x", &r));
    assert_ptr_equal(r.api, &api_leanmcp);
    route_free(&r);
}

static void test_match_percent_encoded_params_decoded(void **state)
{
    (void)state;
    assert_route("/api/sessions/a%20b/chats/c%2Bd", "recoup", 2, "a b", "c+d");
    assert_route("/api/sessions/%e2%82%ac/chats/%41", "recoup", 2, "\xe2\x82\xac", "A");
    assert_route("/api/users/%31/chats/%32", "neptun", 2, "1", "2");
    assert_route("/api/sessions/%2541/chats/b", "recoup", 2, "%41", "b");
}

static void test_match_double_slash_no_match(void **state)
{
    (void)state;
    assert_no_route("//api/sessions/a/chats/b");
    assert_no_route("/api//sessions/a/chats/b");
    assert_no_route("/api/sessions//chats/b");
    assert_no_route("/api/chats/id//");
    assert_no_route("//healthz");
}

static void test_match_trailing_slash_no_match(void **state)
{
    (void)state;
    assert_no_route("/healthz/");
    assert_no_route("/api/sessions/a/chats/b/");
    assert_no_route("/api/users/1/chats/2/");
    assert_no_route("/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f/");
}

static void test_match_extra_segment_no_match(void **state)
{
    (void)state;
    assert_no_route("/healthz/x");
    assert_no_route("/api/sessions/a/chats/b/c");
    assert_no_route("/api/users/1/chats/2/3");
    assert_no_route("/api/chats/id/x/y");
    assert_no_route("/x/api/chats/id/x");
}

static void test_match_missing_segment_no_match(void **state)
{
    (void)state;
    assert_no_route("/api/sessions/a/chats");
    assert_no_route("/api/sessions/a");
    assert_no_route("/api/users/1/chats");
    assert_no_route("/api/chats/id");
    assert_no_route("/api/chats/id/");
    assert_no_route("/api");
}

static void test_match_decoded_slash_in_param_no_match(void **state)
{
    (void)state;
    assert_no_route("/api/chats/id/a%2Fb");
    assert_no_route("/api/chats/id/a%2fb");
    assert_no_route("/api/sessions/a%2Fb/chats/c");
}

static void test_match_decoded_nul_in_param_no_match(void **state)
{
    (void)state;
    assert_no_route("/api/chats/id/a%00b");
    assert_no_route("/api/users/1%00/chats/2");
}

static void test_match_bad_escape_no_match(void **state)
{
    (void)state;
    assert_no_route("/api/chats/id/%");
    assert_no_route("/api/chats/id/%4");
    assert_no_route("/api/chats/id/%zz");
}

static void test_match_unknown_paths(void **state)
{
    (void)state;
    assert_no_route("");
    assert_no_route("/");
    assert_no_route("healthz");
    assert_no_route("/health");
    assert_no_route("/healthzz");
    assert_no_route("/api/session/a/chats/b");
    assert_no_route("/api/sessions/a/chat/b");
    assert_no_route("/api/chats/a");
    assert_no_route("/api/chats/ids/x");
}

/* Express and Nest match literal segments as sent: only parameters decode. */
static void test_match_encoded_literal_segment_no_match(void **state)
{
    (void)state;
    assert_no_route("/api/%63hats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f");
    assert_no_route("/health%7A");
    assert_no_route("/api/users/1/%63hats/2");
}

static void test_match_many_segments_no_match(void **state)
{
    (void)state;
    assert_no_route("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_plain_segment_unchanged),
        cmocka_unit_test(test_decode_escapes),
        cmocka_unit_test(test_decode_once_only),
        cmocka_unit_test(test_decode_slash_upper_case_2F_rejected),
        cmocka_unit_test(test_decode_slash_lower_case_2f_rejected),
        cmocka_unit_test(test_decode_nul_00_rejected),
        cmocka_unit_test(test_decode_bare_percent_rejected),
        cmocka_unit_test(test_decode_one_hex_digit_rejected),
        cmocka_unit_test(test_decode_non_hex_escape_rejected),
        cmocka_unit_test(test_decode_empty_segment_rejected),
        cmocka_unit_test(test_decode_respects_length),
        cmocka_unit_test(test_match_healthz),
        cmocka_unit_test(test_match_recoup_session_chat),
        cmocka_unit_test(test_match_neptun_user_chat),
        cmocka_unit_test(test_match_neptun_non_numeric_params_still_route),
        cmocka_unit_test(test_match_leanmcp_chat_by_uuid),
        cmocka_unit_test(test_match_leanmcp_non_uuid_still_routes),
        cmocka_unit_test(test_match_profiles_are_the_exported_ones),
        cmocka_unit_test(test_match_percent_encoded_params_decoded),
        cmocka_unit_test(test_match_double_slash_no_match),
        cmocka_unit_test(test_match_trailing_slash_no_match),
        cmocka_unit_test(test_match_extra_segment_no_match),
        cmocka_unit_test(test_match_missing_segment_no_match),
        cmocka_unit_test(test_match_decoded_slash_in_param_no_match),
        cmocka_unit_test(test_match_decoded_nul_in_param_no_match),
        cmocka_unit_test(test_match_bad_escape_no_match),
        cmocka_unit_test(test_match_unknown_paths),
        cmocka_unit_test(test_match_encoded_literal_segment_no_match),
        cmocka_unit_test(test_match_many_segments_no_match),
    };

    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
