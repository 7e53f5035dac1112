/* test_row.c: the representation read from the statement's record (ROW(...)
 * in PostgreSQL's binary format: the number of columns, then each column's
 * type oid, length and value) and written as the profile's JSON; and the
 * records that do not fit the profile, which must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "row.h"

static const struct api_column columns[] = {
    {"id", COL_UUID},     {"title", COL_TEXT},   {"count", COL_INT4},
    {"public", COL_BOOL}, {"at", COL_TIMESTAMP}, {"version", COL_INT8},
    {"meta", COL_JSONB},  {"gone", COL_TEXT},
};

static const struct api_profile profile = {
    .name = "test",
    .envelope = "chat",
    .columns = columns,
    .ncolumns = sizeof columns / sizeof columns[0],
};

/* A record as record_send writes it, built up in a fixed buffer. */
struct record {
    char bytes[512];
    size_t len;
};

static void put_be(struct record *r, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        r->bytes[r->len++] = (char)(v >> (8 * i));
}

/* A column's head: its type oid (never read) and its length. */
static void put_head(struct record *r, int32_t len)
{
    put_be(r, 25, 4);
    put_be(r, (uint32_t)len, 4);
}

/* One column: its head, then its value (none for NULL, len -1). */
static void put_column(struct record *r, const void *value, int32_t len)
{
    put_head(r, len);
    if (len > 0) {
        memcpy(r->bytes + r->len, value, (size_t)len);
        r->len += (size_t)len;
    }
}

/* An integer column of n bytes, big-endian. */
static void put_int(struct record *r, uint64_t v, int n)
{
    put_head(r, n);
    put_be(r, v, n);
}

/* The profile's eight columns, the last one NULL. */
static struct record full_record(void)
{
    static const unsigned char uuid[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
                                           0xde, 0xf0, 0x01, 0x23, 0x45, 0x67,
                                           0x89, 0xab, 0xcd, 0xef};
    struct record r = {0};

    put_be(&r, 8, 4);
    put_column(&r, uuid, 16);
    put_column(&r, "a \"b\"", 5);
    put_int(&r, (uint32_t)-3, 4);
    put_int(&r, 1, 1);
    put_int(&r, 86400000000, 8); /* one day after 2000-01-01 */
    put_int(&r, 42, 8);
    put_column(&r, "\001{\"n\": 1.50}", 12);
    put_column(&r, NULL, -1);
    return r;
}

static char *written(const struct record *r, bool *ok)
{
    struct buf out = {0};

    *ok = row_write_json(&profile, r->bytes, r->len, &out);
    return buf_take(&out, NULL);
}

static void test_record_as_json(void **state)
{
    struct record r = full_record();
    bool ok;
    char *json = written(&r, &ok);

    (void)state;
    assert_true(ok);
    assert_string_equal(json,
                        "{\"chat\":{\"id\":\"12345678-9abc-def0-0123-456789abcdef\","
                        "\"title\":\"a \\\"b\\\"\",\"count\":-3,\"public\":true,"
                        "\"at\":\"2000-01-02T00:00:00.000Z\",\"version\":42,"
                        "\"meta\":{\"n\":1.5},\"gone\":null}}");
    free(json);
}

static void expect_refused(const struct record *r)
{
    bool ok;
    char *json = written(r, &ok);

    assert_false(ok);
    free(json);
}

static void test_column_count_not_the_profile(void **state)
{
    struct record r = full_record();

    (void)state;
    r.bytes[3] = 7; /* the count says 7 columns of the 8 */
    expect_refused(&r);
}

static void test_truncated_record(void **state)
{
    struct record r = full_record();

    (void)state;
    for (size_t len = 0; len < r.len; len++) {
        struct record cut = r;
        cut.len = len;
        expect_refused(&cut);
    }
}

static void test_bytes_after_the_last_column(void **state)
{
    struct record r = full_record();

    (void)state;
    r.bytes[r.len++] = 0;
    expect_refused(&r);
}

static void test_value_of_the_wrong_length(void **state)
{
    struct record r = {0};

    (void)state;
    put_be(&r, 8, 4);
    put_int(&r, 1, 8); /* a uuid of 8 bytes */
    expect_refused(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_as_json),
        cmocka_unit_test(test_column_count_not_the_profile),
        cmocka_unit_test(test_truncated_record),
        cmocka_unit_test(test_bytes_after_the_last_column),
        cmocka_unit_test(test_value_of_the_wrong_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
