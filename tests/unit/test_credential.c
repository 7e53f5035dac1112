/* test_credential.c: the Bearer token, the session cookie, and which
 * credential each profile takes (SPEC sections 2-5: Recoup exactly one of
 * x-api-key or Authorization: Bearer; Neptun the neptun-session cookie;
 * LeanMCP Authorization: Bearer; "Bearer" in any case). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "credential.h"

extern const struct api_profile api_recoup, api_neptun, api_leanmcp;

#define COOKIE "neptun-session"

static void assert_bearer(const char *header, const char *want)
{
    const char *token = NULL;
    size_t len = 0;

    if (!credential_bearer(header, &token, &len))
        fail_msg("credential_bearer(\"%s\") found no token", header);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(token, want, len);
    assert_true(token >= header && token + len <= header + strlen(header));
}

static void assert_no_bearer(const char *header)
{
    const char *token = NULL;
    size_t len = 0;

    if (credential_bearer(header, &token, &len))
        fail_msg("credential_bearer(\"%s\") should fail, got \"%.*s\"", header, (int)len,
                 token);
}

static void assert_cookie(const char *header, const char *want)
{
    const char *value = NULL;
    size_t len = 0;

    if (!credential_cookie(header, COOKIE, &value, &len))
        fail_msg("credential_cookie(\"%s\") found no " COOKIE, header);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(value, want, len);
    assert_true(value >= header && value + len <= header + strlen(header));
}

static void assert_no_cookie(const char *header)
{
    const char *value = NULL;
    size_t len = 0;

    if (credential_cookie(header, COOKIE, &value, &len))
        fail_msg("credential_cookie(\"%s\") should fail, got \"%.*s\"", header, (int)len,
                 value);
}

/* A request with only the credential headers set (NULL: absent). */
static struct request request_with(char *api_key, char *authorization, char *cookie)
{
    return (struct request){
        .method = "PATCH",
        .content_type = "application/json",
        .api_key = api_key,
        .authorization = authorization,
        .cookie = cookie,
    };
}

/* credential_take() succeeds, and its token is want, inside header. */
static void assert_takes(const struct api_profile *api, const struct request *req,
                         const char *header, const char *want)
{
    const char *token = NULL;
    size_t len = 0;

    assert_int_equal(credential_take(api, req, &token, &len), FAIL_NONE);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(token, want, len);
    assert_true(token >= header && token + len <= header + strlen(header));
}

static enum local_failure take_failure(const struct api_profile *api,
                                       const struct request *req)
{
    const char *token = NULL;
    size_t len = 0;

    return credential_take(api, req, &token, &len);
}

/* ---- credential_bearer --------------------------------------------------- */

static void test_bearer_plain(void **state)
{
    (void)state;
    assert_bearer("Bearer abc", "abc");
    assert_bearer("Bearer demo-recoup-key", "demo-recoup-key");
}

static void test_bearer_scheme_case_insensitive(void **state)
{
    (void)state;
    assert_bearer("bearer abc", "abc");
    assert_bearer("BEARER abc", "abc");
    assert_bearer("bEaReR abc", "abc");
}

static void test_bearer_multiple_spaces_before_token(void **state)
{
    (void)state;
    assert_bearer("Bearer    abc", "abc");
}

static void test_bearer_tab_separator(void **state)
{
    (void)state;
    assert_bearer("Bearer\tabc", "abc");
    assert_bearer("Bearer \t abc", "abc");
}

static void test_bearer_token_keeps_its_characters(void **state)
{
    (void)state;
    assert_bearer("Bearer a.b-c_d~e+f/g==", "a.b-c_d~e+f/g==");
}

static void test_bearer_empty_token_rejected(void **state)
{
    (void)state;
    assert_no_bearer("Bearer");
    assert_no_bearer("Bearer ");
    assert_no_bearer("Bearer    ");
    assert_no_bearer("Bearer\t");
}

static void test_bearer_scheme_must_be_a_whole_word(void **state)
{
    (void)state;
    assert_no_bearer("Bearerx abc");
    assert_no_bearer("Bearerabc");
    assert_no_bearer("Bear abc");
    assert_no_bearer("XBearer abc");
}

static void test_bearer_other_schemes_rejected(void **state)
{
    (void)state;
    assert_no_bearer("Basic YWxhZGRpbjpvcGVuc2VzYW1l");
    assert_no_bearer("Token abc");
    assert_no_bearer("abc");
    assert_no_bearer("");
}

/* ---- credential_cookie --------------------------------------------------- */

static void test_cookie_only_one(void **state)
{
    (void)state;
    assert_cookie("neptun-session=tok", "tok");
}

static void test_cookie_among_several(void **state)
{
    (void)state;
    assert_cookie("a=1; neptun-session=tok; b=2", "tok");
    assert_cookie("a=1; b=2; neptun-session=tok", "tok");
    assert_cookie("neptun-session=tok; a=1", "tok");
    assert_cookie("a=1;neptun-session=tok;b=2", "tok");
}

static void test_cookie_spaces_around(void **state)
{
    (void)state;
    assert_cookie("  neptun-session=tok  ", "tok");
    assert_cookie("a=1;   neptun-session = tok ;b=2", "tok");
}

static void test_cookie_quoted_value_unquoted(void **state)
{
    (void)state;
    assert_cookie("neptun-session=\"tok\"", "tok");
    assert_cookie("a=\"x\"; neptun-session=\"t o k\"; b=2", "t o k");
}

static void test_cookie_value_may_contain_equals(void **state)
{
    (void)state;
    assert_cookie("neptun-session=YWJj==", "YWJj==");
}

static void test_cookie_exact_name_not_prefix(void **state)
{
    (void)state;
    assert_no_cookie("neptun-sessionx=tok");
    assert_no_cookie("neptun-session-id=tok");
    assert_cookie("neptun-sessionx=no; neptun-session=yes", "yes");
}

static void test_cookie_exact_name_not_suffix(void **state)
{
    (void)state;
    assert_no_cookie("xneptun-session=tok");
    assert_no_cookie("my-neptun-session=tok");
    assert_cookie("old-neptun-session=no; neptun-session=yes", "yes");
}

static void test_cookie_name_case_sensitive(void **state)
{
    (void)state;
    assert_no_cookie("Neptun-Session=tok");
}

/* Cookie parsers behind h3 keep the first of duplicate names. */
static void test_cookie_first_of_duplicates(void **state)
{
    (void)state;
    assert_cookie("neptun-session=first; neptun-session=second", "first");
}

static void test_cookie_empty_value_is_none(void **state)
{
    (void)state;
    assert_no_cookie("neptun-session=");
    assert_no_cookie("neptun-session=; a=1");
    assert_no_cookie("neptun-session=\"\"");
}

static void test_cookie_without_equals_is_none(void **state)
{
    (void)state;
    assert_no_cookie("neptun-session");
    assert_no_cookie("neptun-session; a=1");
    assert_cookie("neptun-session; neptun-session=tok", "tok");
}

static void test_cookie_absent(void **state)
{
    (void)state;
    assert_no_cookie("");
    assert_no_cookie(";;");
    assert_no_cookie("a=1; b=2");
    assert_no_cookie("a=neptun-session");
}

/* ---- credential_take ----------------------------------------------------- */

static void test_take_recoup_x_api_key(void **state)
{
    char key[] = "demo-recoup-key";
    struct request req = request_with(key, NULL, NULL);

    (void)state;
    assert_takes(&api_recoup, &req, key, "demo-recoup-key");
}

static void test_take_recoup_bearer(void **state)
{
    char auth[] = "bearer demo-recoup-key";
    struct request req = request_with(NULL, auth, NULL);

    (void)state;
    assert_takes(&api_recoup, &req, auth, "demo-recoup-key");
}

/* SPEC 3 row 1: both headers is 401 "Exactly one of ...". */
static void test_take_recoup_both_headers_ambiguous(void **state)
{
    char key[] = "k", auth[] = "Bearer k";
    struct request req = request_with(key, auth, NULL);

    (void)state;
    assert_int_equal(take_failure(&api_recoup, &req), FAIL_CRED_AMBIGUOUS);
}

/* Row 1 comes before row 2: a bad scheme beside x-api-key is still ambiguous. */
static void test_take_recoup_both_headers_bad_scheme_ambiguous(void **state)
{
    char key[] = "k", auth[] = "Basic abc";
    struct request req = request_with(key, auth, NULL);

    (void)state;
    assert_int_equal(take_failure(&api_recoup, &req), FAIL_CRED_AMBIGUOUS);
}

static void test_take_recoup_neither_header_missing(void **state)
{
    char cookie[] = "neptun-session=tok";
    struct request req = request_with(NULL, NULL, cookie);

    (void)state;
    assert_int_equal(take_failure(&api_recoup, &req), FAIL_CRED_MISSING);
}

/* SPEC 3 row 2: Authorization that is not "Bearer <token>". */
static void test_take_recoup_bad_scheme(void **state)
{
    char basic[] = "Basic abc", empty_token[] = "Bearer ", glued[] = "Bearerx abc";
    struct request req = request_with(NULL, basic, NULL);

    (void)state;
    assert_int_equal(take_failure(&api_recoup, &req), FAIL_CRED_SCHEME);
    req.authorization = empty_token;
    assert_int_equal(take_failure(&api_recoup, &req), FAIL_CRED_SCHEME);
    req.authorization = glued;
    assert_int_equal(take_failure(&api_recoup, &req), FAIL_CRED_SCHEME);
}

static void test_take_recoup_steps_report_cred_failures_as_401(void **state)
{
    (void)state;
    assert_true(api_recoup.nsteps >= 2);
    assert_int_equal(api_recoup.steps[0].status, 401);
    assert_true(api_recoup.steps[0].local & FAIL_CRED_MISSING);
    assert_true(api_recoup.steps[0].local & FAIL_CRED_AMBIGUOUS);
    assert_string_equal(api_recoup.steps[0].message,
                        "Exactly one of x-api-key or Authorization must be provided");
    assert_int_equal(api_recoup.steps[1].status, 401);
    assert_true(api_recoup.steps[1].local & FAIL_CRED_SCHEME);
    assert_string_equal(api_recoup.steps[1].message,
                        "Authorization header with Bearer token required");
}

static void test_take_leanmcp_bearer(void **state)
{
    char auth[] = "BEARER  demo-leanmcp-key";
    struct request req = request_with(NULL, auth, NULL);

    (void)state;
    assert_takes(&api_leanmcp, &req, auth, "demo-leanmcp-key");
}

/* LeanMCP reads Authorization only; an x-api-key header is irrelevant. */
static void test_take_leanmcp_ignores_x_api_key(void **state)
{
    char key[] = "other", auth[] = "Bearer demo-leanmcp-key";
    struct request req = request_with(key, auth, NULL);

    (void)state;
    assert_takes(&api_leanmcp, &req, auth, "demo-leanmcp-key");
    req.authorization = NULL;
    assert_int_not_equal(take_failure(&api_leanmcp, &req), FAIL_NONE);
}

/* SPEC 5 row 1: no Bearer key is 401 Unauthorized, whatever the reason. */
static void test_take_leanmcp_failures_fall_in_the_401_step(void **state)
{
    char basic[] = "Basic abc", empty_token[] = "Bearer";
    struct request req = request_with(NULL, NULL, NULL);
    unsigned mask = api_leanmcp.steps[0].local;
    enum local_failure f;

    (void)state;
    assert_int_equal(api_leanmcp.steps[0].status, 401);
    f = take_failure(&api_leanmcp, &req);
    assert_int_not_equal(f, FAIL_NONE);
    assert_true(f & mask);
    req.authorization = basic;
    f = take_failure(&api_leanmcp, &req);
    assert_int_not_equal(f, FAIL_NONE);
    assert_true(f & mask);
    req.authorization = empty_token;
    f = take_failure(&api_leanmcp, &req);
    assert_int_not_equal(f, FAIL_NONE);
    assert_true(f & mask);
}

static void test_take_neptun_cookie(void **state)
{
    char cookie[] = "theme=dark; neptun-session=demo-neptun-session; lang=en";
    struct request req = request_with(NULL, NULL, cookie);

    (void)state;
    assert_takes(&api_neptun, &req, cookie, "demo-neptun-session");
}

static void test_take_neptun_ignores_authorization(void **state)
{
    char auth[] = "Bearer tok", key[] = "tok";
    struct request req = request_with(key, auth, NULL);

    (void)state;
    assert_int_equal(take_failure(&api_neptun, &req), FAIL_CRED_MISSING);
}

static void test_take_neptun_no_session_cookie_missing(void **state)
{
    char other[] = "a=1; b=2", empty[] = "neptun-session=";
    struct request req = request_with(NULL, NULL, NULL);

    (void)state;
    assert_int_equal(take_failure(&api_neptun, &req), FAIL_CRED_MISSING);
    req.cookie = other;
    assert_int_equal(take_failure(&api_neptun, &req), FAIL_CRED_MISSING);
    req.cookie = empty;
    assert_int_equal(take_failure(&api_neptun, &req), FAIL_CRED_MISSING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer_plain),
        cmocka_unit_test(test_bearer_scheme_case_insensitive),
        cmocka_unit_test(test_bearer_multiple_spaces_before_token),
        cmocka_unit_test(test_bearer_tab_separator),
        cmocka_unit_test(test_bearer_token_keeps_its_characters),
        cmocka_unit_test(test_bearer_empty_token_rejected),
        cmocka_unit_test(test_bearer_scheme_must_be_a_whole_word),
        cmocka_unit_test(test_bearer_other_schemes_rejected),
        cmocka_unit_test(test_cookie_only_one),
        cmocka_unit_test(test_cookie_among_several),
        cmocka_unit_test(test_cookie_spaces_around),
        cmocka_unit_test(test_cookie_quoted_value_unquoted),
        cmocka_unit_test(test_cookie_value_may_contain_equals),
        cmocka_unit_test(test_cookie_exact_name_not_prefix),
        cmocka_unit_test(test_cookie_exact_name_not_suffix),
        cmocka_unit_test(test_cookie_name_case_sensitive),
        cmocka_unit_test(test_cookie_first_of_duplicates),
        cmocka_unit_test(test_cookie_empty_value_is_none),
        cmocka_unit_test(test_cookie_without_equals_is_none),
        cmocka_unit_test(test_cookie_absent),
        cmocka_unit_test(test_take_recoup_x_api_key),
        cmocka_unit_test(test_take_recoup_bearer),
        cmocka_unit_test(test_take_recoup_both_headers_ambiguous),
        cmocka_unit_test(test_take_recoup_both_headers_bad_scheme_ambiguous),
        cmocka_unit_test(test_take_recoup_neither_header_missing),
        cmocka_unit_test(test_take_recoup_bad_scheme),
        cmocka_unit_test(test_take_recoup_steps_report_cred_failures_as_401),
        cmocka_unit_test(test_take_leanmcp_bearer),
        cmocka_unit_test(test_take_leanmcp_ignores_x_api_key),
        cmocka_unit_test(test_take_leanmcp_failures_fall_in_the_401_step),
        cmocka_unit_test(test_take_neptun_cookie),
        cmocka_unit_test(test_take_neptun_ignores_authorization),
        cmocka_unit_test(test_take_neptun_no_session_cookie_missing),
    };

    return cmocka_run_group_tests_name("credential", tests, NULL, NULL);
}
