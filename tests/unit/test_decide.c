/* test_decide.c: the engine's decisions without a database (decide.c): the
 * operation a method names, Allow and the CORS headers from the profiles'
 * operations, and the answer to a statement's row: which check fails first
 * in each API's order, 200, 304 (If-None-Match), 412 (If-Match, always the
 * last step) and when the ETag goes with it. The real profiles are used, so
 * these are also the three APIs' orders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "decide.h"

extern const struct api_profile api_recoup, api_neptun, api_leanmcp;

/* The index of the step of api with this status and message. */
static size_t step_with(const struct api_profile *api, int status, const char *message)
{
    for (size_t i = 0; i < api->nsteps; i++)
        if (api->steps[i].status == status &&
            (!message ||
             (api->steps[i].message && strcmp(api->steps[i].message, message) == 0)))
            return i;
    fail_msg("%s has no step %d %s", api->name, status, message ? message : "");
    return 0;
}

/* The index of the step of api that reports a local failure of mask. */
static size_t step_local(const struct api_profile *api, unsigned mask)
{
    for (size_t i = 0; i < api->nsteps; i++)
        if (api->steps[i].local & mask)
            return i;
    fail_msg("%s has no step for %#x", api->name, mask);
    return 0;
}

static const struct api_op *op(const struct api_profile *api, const char *method)
{
    const struct api_op *o = decide_op(api, method);

    assert_non_null(o);
    return o;
}

/* A statement's verdicts. */
static const struct db_verdict updated = {.found = true, .version = 8, .done = true};
static const struct db_verdict read_v7 = {.found = true, .version = 7, .done = true};
static const struct db_verdict held_back = {.found = true, .version = 7, .done = false};
static const struct db_verdict missing = {.found = false};

static void assert_success(struct decide_answer a, int status, bool body)
{
    assert_int_equal(a.step, DECIDE_SUCCESS);
    assert_int_equal(a.status, status);
    assert_true(a.etag);
    assert_int_equal(a.body, body);
}

static void assert_step(struct decide_answer a, size_t step, bool etag)
{
    assert_int_equal(a.step, step);
    assert_int_equal(a.etag, etag);
    assert_false(a.body);
}

/* ---- operations, Allow, CORS ----------------------------------------------- */

static void test_operations_per_method(void **state)
{
    (void)state;
    assert_int_equal(op(&api_recoup, "GET")->kind, OP_READ);
    assert_int_equal(op(&api_recoup, "PATCH")->kind, OP_UPDATE);
    assert_int_equal(op(&api_recoup, "OPTIONS")->kind, OP_PREFLIGHT);
    assert_int_equal(op(&api_recoup, "OPTIONS")->status, 204);
    assert_null(op(&api_recoup, "OPTIONS")->sql);
    assert_int_equal(op(&api_neptun, "GET")->status, 200);
    assert_int_equal(op(&api_leanmcp, "PATCH")->status, 200);
    assert_null(decide_op(&api_neptun, "OPTIONS"));
    assert_null(decide_op(&api_leanmcp, "OPTIONS"));
    assert_null(decide_op(&api_recoup, "PUT"));
    assert_null(decide_op(&api_recoup, "HEAD"));
    assert_null(decide_op(&api_recoup, "patch")); /* methods are case-sensitive */
}

static void test_allow_from_operations(void **state)
{
    char allow[64];

    (void)state;
    decide_allow(&api_recoup, allow, sizeof allow);
    assert_string_equal(allow, "GET, PATCH, OPTIONS");
    decide_allow(&api_neptun, allow, sizeof allow);
    assert_string_equal(allow, "GET, PATCH");
    decide_allow(&api_leanmcp, allow, sizeof allow);
    assert_string_equal(allow, "GET, PATCH");
    decide_allow(&api_recoup, allow, 8);
    assert_string_equal(allow, "GET, PA");
}

static void test_cors_preflight(void **state)
{
    char out[512];

    (void)state;
    decide_cors(&api_recoup, true, out, sizeof out);
    assert_string_equal(
        out, "Access-Control-Allow-Origin: *\r\n"
             "Access-Control-Allow-Methods: GET, PATCH, OPTIONS\r\n"
             "Access-Control-Allow-Headers: authorization, content-type, if-match, "
             "if-none-match, x-api-key\r\n"
             "Access-Control-Max-Age: 86400\r\n");
}

static void test_cors_other_answers(void **state)
{
    char out[512];

    (void)state;
    decide_cors(&api_recoup, false, out, sizeof out);
    assert_string_equal(out, "Access-Control-Allow-Origin: *\r\n"
                             "Access-Control-Expose-Headers: ETag\r\n");
}

static void test_no_cors_without_profile_data(void **state)
{
    char out[512] = "x";

    (void)state;
    decide_cors(&api_neptun, true, out, sizeof out);
    assert_string_equal(out, "");
    decide_cors(&api_leanmcp, false, out, sizeof out);
    assert_string_equal(out, "");
}

/* ---- PATCH ------------------------------------------------------------------ */

static void test_patch_success(void **state)
{
    const struct decide_conditions if_match = {.if_match = "\"7\""};

    (void)state;
    assert_success(
        decide_answer(&api_recoup, op(&api_recoup, "PATCH"), 0, NULL, &updated), 200,
        true);
    assert_success(
        decide_answer(&api_neptun, op(&api_neptun, "PATCH"), 0, &if_match, &updated), 200,
        true);
}

static void test_patch_if_match_held_back_is_412_with_etag(void **state)
{
    const struct decide_conditions cond = {.if_match = "\"6\""};

    (void)state;
    for (const struct api_profile *const *api = api_profiles; *api; api++) {
        size_t step = step_with(*api, 412, "Precondition Failed");
        assert_int_equal(step, (*api)->nsteps - 1); /* the last of each order */
        assert_step(decide_answer(*api, op(*api, "PATCH"), 0, &cond, &held_back), step,
                    true);
    }
}

static void test_patch_if_match_naming_nothing_is_412(void **state)
{
    /* only weak tags, or a malformed list: the statement got "{}" */
    const struct decide_conditions weak = {.if_match = "W/\"7\""};
    const struct decide_conditions bad = {.if_match = "7"};

    (void)state;
    assert_step(
        decide_answer(&api_leanmcp, op(&api_leanmcp, "PATCH"), 0, &weak, &held_back),
        step_with(&api_leanmcp, 412, NULL), true);
    assert_step(
        decide_answer(&api_leanmcp, op(&api_leanmcp, "PATCH"), 0, &bad, &held_back),
        step_with(&api_leanmcp, 412, NULL), true);
}

static void test_patch_not_updated_without_condition_is_broken(void **state)
{
    const struct decide_conditions star = {.if_match = "*"};

    (void)state;
    assert_int_equal(
        decide_answer(&api_recoup, op(&api_recoup, "PATCH"), 0, NULL, &held_back).step,
        DECIDE_BROKEN);
    assert_int_equal(
        decide_answer(&api_recoup, op(&api_recoup, "PATCH"), 0, &star, &held_back).step,
        DECIDE_BROKEN);
}

static void test_patch_missing_target_is_the_api_404(void **state)
{
    const struct decide_conditions cond = {.if_match = "\"6\""};
    const struct decide_conditions star = {.if_match = "*"};

    (void)state;
    assert_step(decide_answer(&api_recoup, op(&api_recoup, "PATCH"), 0, &cond, &missing),
                step_with(&api_recoup, 404, "Chat not found"), false);
    assert_step(decide_answer(&api_neptun, op(&api_neptun, "PATCH"), 0, &star, &missing),
                step_with(&api_neptun, 404, NULL), false);
    assert_step(
        decide_answer(&api_leanmcp, op(&api_leanmcp, "PATCH"), 0, &cond, &missing),
        step_with(&api_leanmcp, 404, NULL), false);
}

static void test_patch_database_failures_come_first(void **state)
{
    const struct decide_conditions cond = {.if_match = "\"6\""};
    const struct db_verdict owner = {.failure = "owner"};
    const struct db_verdict scope = {.failure = "scope"};

    (void)state;
    assert_step(decide_answer(&api_recoup, op(&api_recoup, "PATCH"), 0, &cond, &owner),
                step_with(&api_recoup, 403, NULL), false);
    assert_step(decide_answer(&api_leanmcp, op(&api_leanmcp, "PATCH"), 0, &cond, &scope),
                step_with(&api_leanmcp, 403, NULL), false);
}

static void test_patch_body_problems_before_412(void **state)
{
    const struct decide_conditions cond = {.if_match = "\"6\""};

    (void)state;
    /* The statement only checked (no apply): found, not updated. */
    assert_step(decide_answer(&api_recoup, op(&api_recoup, "PATCH"), FAIL_SCHEMA, &cond,
                              &held_back),
                step_local(&api_recoup, FAIL_SCHEMA), false);
    assert_step(decide_answer(&api_neptun, op(&api_neptun, "PATCH"), FAIL_JSON, &cond,
                              &held_back),
                step_with(&api_neptun, 400, "Bad Request. Invalid JSON body."), false);
    assert_step(decide_answer(&api_leanmcp, op(&api_leanmcp, "PATCH"), FAIL_MEDIA_TYPE,
                              &cond, &held_back),
                step_with(&api_leanmcp, 400, "Unexpected token in JSON body"), false);
}

static void test_patch_each_api_order_of_404_and_body(void **state)
{
    (void)state;
    /* Recoup: a missing chat (6) before a bad body (7) */
    assert_step(
        decide_answer(&api_recoup, op(&api_recoup, "PATCH"), FAIL_SCHEMA, NULL, &missing),
        step_with(&api_recoup, 404, "Chat not found"), false);
    /* LeanMCP: the schema (5) before a missing chat (6) */
    assert_step(decide_answer(&api_leanmcp, op(&api_leanmcp, "PATCH"), FAIL_SCHEMA, NULL,
                              &missing),
                step_local(&api_leanmcp, FAIL_SCHEMA), false);
}

static void test_unknown_failure_is_broken(void **state)
{
    const struct db_verdict odd = {.failure = "nonsense"};

    (void)state;
    assert_int_equal(
        decide_answer(&api_recoup, op(&api_recoup, "PATCH"), 0, NULL, &odd).step,
        DECIDE_BROKEN);
    assert_int_equal(
        decide_answer(&api_recoup, op(&api_recoup, "GET"), 0, NULL, &odd).step,
        DECIDE_BROKEN);
}

/* ---- GET -------------------------------------------------------------------- */

static struct decide_answer get(const struct api_profile *api, const char *if_match,
                                const char *if_none_match, const struct db_verdict *db)
{
    const struct decide_conditions cond = {if_match, if_none_match};

    return decide_answer(api, op(api, "GET"), 0, &cond, db);
}

static void test_get_success(void **state)
{
    (void)state;
    for (const struct api_profile *const *api = api_profiles; *api; api++)
        assert_success(get(*api, NULL, NULL, &read_v7), 200, true);
}

static void test_get_if_none_match(void **state)
{
    (void)state;
    assert_success(get(&api_recoup, NULL, "\"7\"", &read_v7), 304, false);
    assert_success(get(&api_neptun, NULL, "W/\"7\"", &read_v7), 304, false); /* weak */
    assert_success(get(&api_leanmcp, NULL, "*", &read_v7), 304, false);
    assert_success(get(&api_recoup, NULL, "\"1\", \"7\"", &read_v7), 304, false);
    assert_success(get(&api_recoup, NULL, "\"6\"", &read_v7), 200, true);
    assert_success(get(&api_recoup, NULL, "7", &read_v7), 200, true); /* malformed */
    assert_success(get(&api_recoup, NULL, "", &read_v7), 200, true);
}

static void test_get_if_match(void **state)
{
    (void)state;
    assert_success(get(&api_recoup, "\"7\"", NULL, &read_v7), 200, true);
    assert_success(get(&api_recoup, "*", NULL, &read_v7), 200, true);
    assert_step(get(&api_recoup, "\"6\"", NULL, &read_v7),
                step_with(&api_recoup, 412, NULL), true);
    assert_step(get(&api_neptun, "W/\"7\"", NULL, &read_v7), /* strong */
                step_with(&api_neptun, 412, NULL), true);
    /* If-Match holds, then If-None-Match: 304 (RFC 9110, 13.2.2) */
    assert_success(get(&api_leanmcp, "\"7\"", "\"7\"", &read_v7), 304, false);
    /* If-Match fails first: 412 even when If-None-Match would say 304 */
    assert_step(get(&api_leanmcp, "\"6\"", "\"7\"", &read_v7),
                step_with(&api_leanmcp, 412, NULL), true);
}

static void test_get_failures(void **state)
{
    const struct db_verdict key = {.failure = "key"};
    const struct db_verdict session = {.failure = "session"};

    (void)state;
    assert_step(get(&api_recoup, "\"6\"", "\"7\"", &key),
                step_with(&api_recoup, 401, "Unauthorized"), false);
    assert_step(get(&api_recoup, NULL, "*", &session),
                step_with(&api_recoup, 404, "Session not found"), false);
    assert_step(get(&api_neptun, NULL, "*", &missing), step_with(&api_neptun, 404, NULL),
                false);
    assert_step(get(&api_leanmcp, "*", NULL, &missing),
                step_with(&api_leanmcp, 404, NULL), false);
}

static void test_get_local_failures_in_order(void **state)
{
    (void)state;
    /* Neptun: a bad id (2) after the session (1), before the chat (3) */
    assert_step(
        decide_answer(&api_neptun, op(&api_neptun, "GET"), FAIL_PARAMS, NULL, &missing),
        step_with(&api_neptun, 400, "Bad Request. Invalid params."), false);
    const struct db_verdict session = {.failure = "session"};
    assert_step(
        decide_answer(&api_neptun, op(&api_neptun, "GET"), FAIL_PARAMS, NULL, &session),
        step_with(&api_neptun, 401, NULL), false);
    /* no statement at all */
    assert_step(
        decide_answer(&api_recoup, op(&api_recoup, "GET"), FAIL_CRED_MISSING, NULL, NULL),
        0, false);
}

static void test_get_found_without_row_is_broken(void **state)
{
    (void)state;
    assert_int_equal(get(&api_recoup, NULL, NULL, &held_back).step, DECIDE_BROKEN);
}

static void test_needs_db(void **state)
{
    (void)state;
    assert_true(decide_needs_db(&api_recoup, 0));
    assert_false(decide_needs_db(&api_recoup, FAIL_CRED_MISSING));
    assert_true(decide_needs_db(&api_recoup, FAIL_SCHEMA));
    assert_true(decide_needs_db(&api_neptun, FAIL_PARAMS));
    assert_false(decide_needs_db(&api_neptun, FAIL_CRED_MISSING));
    assert_true(decide_needs_db(&api_leanmcp, FAIL_PARAMS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations_per_method),
        cmocka_unit_test(test_allow_from_operations),
        cmocka_unit_test(test_cors_preflight),
        cmocka_unit_test(test_cors_other_answers),
        cmocka_unit_test(test_no_cors_without_profile_data),
        cmocka_unit_test(test_patch_success),
        cmocka_unit_test(test_patch_if_match_held_back_is_412_with_etag),
        cmocka_unit_test(test_patch_if_match_naming_nothing_is_412),
        cmocka_unit_test(test_patch_not_updated_without_condition_is_broken),
        cmocka_unit_test(test_patch_missing_target_is_the_api_404),
        cmocka_unit_test(test_patch_database_failures_come_first),
        cmocka_unit_test(test_patch_body_problems_before_412),
        cmocka_unit_test(test_patch_each_api_order_of_404_and_body),
        cmocka_unit_test(test_unknown_failure_is_broken),
        cmocka_unit_test(test_get_success),
        cmocka_unit_test(test_get_if_none_match),
        cmocka_unit_test(test_get_if_match),
        cmocka_unit_test(test_get_failures),
        cmocka_unit_test(test_get_local_failures_in_order),
        cmocka_unit_test(test_get_found_without_row_is_broken),
        cmocka_unit_test(test_needs_db),
    };
    return cmocka_run_group_tests_name("decide", tests, NULL, NULL);
}
