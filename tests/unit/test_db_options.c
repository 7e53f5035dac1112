/* test_db_options.c: the startup options a worker's session asks for: the
 * statement timeout and db_session_settings, each "-c name=value", with the
 * spaces libpq would split at escaped; and a buffer too small is refused,
 * never cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "db.h"

static void test_options(void **state)
{
    char out[256];

    (void)state;
    assert_true(db_startup_options(out, sizeof out, 5000));
    assert_string_equal(out, "-c statement_timeout=5000"
                             " -c default_transaction_isolation=repeatable\\ read"
                             " -c random_page_cost=1.1");
}

static void test_every_setting_is_there(void **state)
{
    char out[256], want[128];

    (void)state;
    assert_true(db_startup_options(out, sizeof out, 1));
    for (const struct db_setting *s = db_session_settings; s->name; s++) {
        snprintf(want, sizeof want, " -c %s=", s->name);
        assert_non_null(strstr(out, want));
    }
}

static void test_too_small(void **state)
{
    char out[256];
    size_t whole;

    (void)state;
    assert_true(db_startup_options(out, sizeof out, 5000));
    whole = strlen(out);
    assert_true(db_startup_options(out, whole + 1, 5000));
    assert_false(db_startup_options(out, whole, 5000));
    assert_false(db_startup_options(out, 10, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_every_setting_is_there),
        cmocka_unit_test(test_too_small),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
