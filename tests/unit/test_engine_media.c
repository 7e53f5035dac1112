/* test_engine_media.c: which Content-Type values count as JSON (SPEC 2:
 * application/json in any case, parameters allowed, or application/<subtype>+json;
 * anything else is 415). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine.h"

static void assert_json(const char *content_type)
{
    if (!engine_is_json_media_type(content_type))
        fail_msg("\"%s\" should be a JSON media type", content_type);
}

static void assert_not_json(const char *content_type)
{
    if (engine_is_json_media_type(content_type))
        fail_msg("\"%s\" should not be a JSON media type", content_type);
}

static void test_application_json(void **state)
{
    (void)state;
    assert_json("application/json");
}

static void test_application_json_any_case(void **state)
{
    (void)state;
    assert_json("Application/JSON");
    assert_json("APPLICATION/JSON");
    assert_json("application/Json");
}

static void test_application_json_with_parameters(void **state)
{
    (void)state;
    assert_json("application/json; charset=utf-8");
    assert_json("application/json;charset=UTF-8");
    assert_json("application/json ; charset=utf-8");
    assert_json("application/json;");
    assert_json("application/json; charset=utf-8; foo=bar");
}

static void test_application_json_leading_spaces(void **state)
{
    (void)state;
    assert_json(" application/json");
    assert_json("   application/json; charset=utf-8");
    assert_json("\tapplication/json");
}

static void test_application_json_trailing_spaces(void **state)
{
    (void)state;
    assert_json("application/json ");
}

static void test_merge_patch_json(void **state)
{
    (void)state;
    assert_json("application/merge-patch+json");
    assert_json("application/merge-patch+json; charset=utf-8");
}

static void test_vnd_api_json(void **state)
{
    (void)state;
    assert_json("application/vnd.api+json");
    assert_json("Application/Vnd.Api+JSON");
}

static void test_text_json_rejected(void **state)
{
    (void)state;
    assert_not_json("text/json");
    assert_not_json("text/plain");
    assert_not_json("text/vnd.api+json");
}

static void test_application_jsonx_rejected(void **state)
{
    (void)state;
    assert_not_json("application/jsonx");
    assert_not_json("application/json5");
    assert_not_json("application/jsonp");
}

static void test_application_json_seq_rejected(void **state)
{
    (void)state;
    assert_not_json("application/json-seq");
    assert_not_json("application/json-patch");
}

static void test_suffix_must_end_the_subtype(void **state)
{
    (void)state;
    assert_not_json("application/vnd.api+jsonx");
    assert_not_json("application/vnd.api+json-seq");
    assert_not_json("application/vnd.api+xml");
}

static void test_other_media_types_rejected(void **state)
{
    (void)state;
    assert_not_json("application/x-www-form-urlencoded");
    assert_not_json("multipart/form-data; boundary=x");
    assert_not_json("application/xml");
    assert_not_json("application/octet-stream");
    assert_not_json("application/ json");
    assert_not_json("json");
    assert_not_json("application");
    assert_not_json("application/");
}

static void test_json_only_in_parameter_rejected(void **state)
{
    (void)state;
    assert_not_json("text/plain; type=application/json");
    assert_not_json("text/plain;application/json");
}

static void test_null_rejected(void **state)
{
    (void)state;
    assert_false(engine_is_json_media_type(NULL));
}

static void test_empty_rejected(void **state)
{
    (void)state;
    assert_not_json("");
    assert_not_json("   ");
    assert_not_json("; charset=utf-8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_application_json),
        cmocka_unit_test(test_application_json_any_case),
        cmocka_unit_test(test_application_json_with_parameters),
        cmocka_unit_test(test_application_json_leading_spaces),
        cmocka_unit_test(test_application_json_trailing_spaces),
        cmocka_unit_test(test_merge_patch_json),
        cmocka_unit_test(test_vnd_api_json),
        cmocka_unit_test(test_text_json_rejected),
        cmocka_unit_test(test_application_jsonx_rejected),
        cmocka_unit_test(test_application_json_seq_rejected),
        cmocka_unit_test(test_suffix_must_end_the_subtype),
        cmocka_unit_test(test_other_media_types_rejected),
        cmocka_unit_test(test_json_only_in_parameter_rejected),
        cmocka_unit_test(test_null_rejected),
        cmocka_unit_test(test_empty_rejected),
    };

    return cmocka_run_group_tests_name("engine_media", tests, NULL, NULL);
}
