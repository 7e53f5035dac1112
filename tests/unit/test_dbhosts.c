/* test_dbhosts.c: the hosts a worker tries one at a time (dbhosts.h):
 * how many the lists name, the overrides that make attempt k connect to
 * host k only, and lists left to libpq whole (one host, an empty entry,
 * lists of different lengths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbhosts.h"

static struct db_hosts lists(const char *host, const char *hostaddr, const char *port)
{
    struct db_hosts h;

    snprintf(h.host, sizeof h.host, "%s", host);
    snprintf(h.hostaddr, sizeof h.hostaddr, "%s", hostaddr);
    snprintf(h.port, sizeof h.port, "%s", port);
    db_hosts_split(&h);
    return h;
}

/* "key=value ..." of attempt k. */
static const char *attempt(const struct db_hosts *h, int k)
{
    static char out[256];
    const char *keys[3], *values[3];
    char buf[3 * DB_HOSTS_LIST_MAX];
    size_t n = db_hosts_attempt(h, k, keys, values, buf, sizeof buf), len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s=%s", i ? " " : "",
                                keys[i], values[i]);
    return out;
}

static void test_hosts_and_ports(void **state)
{
    struct db_hosts h = lists("/run/pg1,/run/pg2", "", "5432,5433");

    (void)state;
    assert_int_equal(h.count, 2);
    assert_string_equal(attempt(&h, 0), "host=/run/pg1 port=5432");
    assert_string_equal(attempt(&h, 1), "host=/run/pg2 port=5433");
}

static void test_one_port_for_all_stays(void **state)
{
    struct db_hosts h = lists("db1.example,db2.example,db3.example", "", "6432");

    (void)state;
    assert_int_equal(h.count, 3);
    assert_string_equal(attempt(&h, 2), "host=db3.example");
}

static void test_hostaddr_with_and_without_host(void **state)
{
    struct db_hosts both = lists("a,b", "10.0.0.1,10.0.0.2", "");
    struct db_hosts addrs = lists("", "10.0.0.1,10.0.0.2", "5432,5433");

    (void)state;
    assert_int_equal(both.count, 2);
    assert_string_equal(attempt(&both, 1), "host=b hostaddr=10.0.0.2");
    assert_int_equal(addrs.count, 2);
    assert_string_equal(attempt(&addrs, 0), "hostaddr=10.0.0.1 port=5432");
}

static void test_left_to_libpq(void **state)
{
    (void)state;
    assert_int_equal(lists("", "", "").count, 1);
    assert_int_equal(lists("/run/postgresql", "", "5432").count, 1);
    assert_int_equal(lists("a,,b", "", "").count, 1);     /* an empty entry */
    assert_int_equal(lists("a,b,", "", "").count, 1);     /* likewise */
    assert_int_equal(lists("a,b", "", "1,2,3").count, 1); /* ports of another length */
    assert_int_equal(lists("a,b", "10.0.0.1", "").count, 1);
    assert_int_equal(lists("a,b", "", "1,,2").count, 1);
    struct db_hosts one = lists("a", "", "");
    assert_string_equal(attempt(&one, 0), "");
}

static void test_read_from_database_url(void **state)
{
    struct db_hosts uri, kv, name;

    (void)state;
    unsetenv("PGHOST");
    unsetenv("PGHOSTADDR");
    unsetenv("PGPORT");
    db_hosts_read(&uri, "postgresql://chatpatch@db1:5432,db2:5433/app?"
                        "target_session_attrs=read-write");
    assert_int_equal(uri.count, 2);
    assert_string_equal(attempt(&uri, 1), "host=db2 port=5433");
    db_hosts_read(&kv, "host=/run/pg1,/run/pg2 port=5432,5433 dbname=app");
    assert_int_equal(kv.count, 2);
    assert_string_equal(attempt(&kv, 0), "host=/run/pg1 port=5432");
    db_hosts_read(&name, "app"); /* a database name: PG* variables, none set */
    assert_int_equal(name.count, 1);
}

static void test_read_from_pg_variables(void **state)
{
    struct db_hosts h;

    (void)state;
    setenv("PGHOST", "/run/a,/run/b", 1);
    setenv("PGPORT", "5432,5433", 1);
    db_hosts_read(&h, NULL);
    assert_int_equal(h.count, 2);
    assert_string_equal(attempt(&h, 1), "host=/run/b port=5433");
    db_hosts_read(&h, "postgresql://chatpatch@db1/app"); /* the URL's host wins */
    assert_int_equal(h.count, 1);
    unsetenv("PGHOST");
    unsetenv("PGPORT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosts_and_ports),
        cmocka_unit_test(test_one_port_for_all_stays),
        cmocka_unit_test(test_hostaddr_with_and_without_host),
        cmocka_unit_test(test_left_to_libpq),
        cmocka_unit_test(test_read_from_database_url),
        cmocka_unit_test(test_read_from_pg_variables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
