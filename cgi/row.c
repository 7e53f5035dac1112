/* row.c: PostgreSQL's binary column values written as the services' JSON.
 * Entry points: row_write_json(), row_int8(), row_add_timestamp().
 *
 * The binary format spares PostgreSQL its text output functions (timestamps
 * above all), and its meaning does not hang on the session's DateStyle or
 * TimeZone. The representation comes as one column, a record (ROW(...)):
 * libpq parses each column of a result's description and row on every
 * statement, about 550 instructions a column, where the record's columns
 * cost a few each here. */
#include "row.h"

#include "jsnum.h"

static uint64_t be(const char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

int64_t row_int8(const char *p)
{
    return (int64_t)be(p, 8);
}

/* Howard Hinnant's days_from_civil, inverted: the date of a day number
 * counted from 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* n as exactly width digits, zero-padded. */
static char *put_digits(char *p, long n, int width)
{
    for (int i = width - 1; i >= 0; i--, n /= 10)
        p[i] = (char)('0' + n % 10);
    return p + width;
}

void row_add_timestamp(struct buf *out, int64_t us)
{
    /* PostgreSQL's -infinity and infinity */
    if (us == INT64_MIN || us == INT64_MAX) {
        buf_adds(out, "null");
        return;
    }
    const int64_t ms_per_day = 86400000;
    int64_t ms = floor_div(us, 1000) + INT64_C(946684800000); /* from 1970 */
    int64_t day = floor_div(ms, ms_per_day), in_day = ms - day * ms_per_day, year;
    int month, mday;
    char text[40], *p = text;

    civil_from_days(day, &year, &month, &mday);
    *p++ = '"';
    if (year >= 0 && year <= 9999) {
        p = put_digits(p, (long)year, 4);
    } else { /* toISOString: a sign and six digits beyond 0000..9999 */
        *p++ = year < 0 ? '-' : '+';
        p = put_digits(p, (long)(year < 0 ? -year : year), 6);
    }
    *p++ = '-';
    p = put_digits(p, month, 2);
    *p++ = '-';
    p = put_digits(p, mday, 2);
    *p++ = 'T';
    p = put_digits(p, (long)(in_day / 3600000), 2);
    *p++ = ':';
    p = put_digits(p, (long)(in_day / 60000 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (long)(in_day / 1000 % 60), 2);
    *p++ = '.';
    p = put_digits(p, (long)(in_day % 1000), 3);
    *p++ = 'Z';
    *p++ = '"';
    buf_add(out, text, (size_t)(p - text));
}

static void add_uuid(struct buf *out, const char *p)
{
    static const char hex[] = "0123456789abcdef";
    char text[38];
    size_t n = 0;

    text[n++] = '"';
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            text[n++] = '-';
        text[n++] = hex[(unsigned char)p[i] >> 4];
        text[n++] = hex[(unsigned char)p[i] & 15];
    }
    text[n++] = '"';
    buf_add(out, text, n);
}

/* One column's value; false when its length is not its type's. */
static bool add_value(struct buf *out, enum column_type type, const char *p, int len)
{
    static const int fixed[COL_JSONB + 1] = {
        [COL_INT4] = 4,      [COL_INT8] = 8,  [COL_BOOL] = 1,
        [COL_TIMESTAMP] = 8, [COL_UUID] = 16,
    };

    if (fixed[type] && len != fixed[type])
        return false;
    switch (type) {
    case COL_TEXT:
        buf_add_json_string(out, p, (size_t)len);
        break;
    case COL_INT4:
        buf_add_long(out, (int32_t)be(p, 4));
        break;
    case COL_INT8:
        buf_add_long(out, (int64_t)be(p, 8));
        break;
    case COL_BOOL:
        buf_adds(out, p[0] ? "true" : "false");
        break;
    case COL_TIMESTAMP:
        row_add_timestamp(out, (int64_t)be(p, 8));
        break;
    case COL_UUID:
        add_uuid(out, p);
        break;
    case COL_JSONB: /* a version byte (1), then the text */
        if (len < 1 || p[0] != 1)
            return false;
        jsnum_normalize_json(p + 1, (size_t)len - 1, out);
        break;
    }
    return true;
}

static int32_t be4(const char *p)
{
    return (int32_t)be(p, 4);
}

bool row_write_json(const struct api_profile *api, const char *record, size_t len,
                    struct buf *out)
{
    const char *p = record, *end = record + len;

    /* record_send: the number of columns, then each column's type oid,
     * length (-1: NULL) and value. */
    if (len < 4 || be4(p) != (int32_t)api->ncolumns)
        return false;
    p += 4;
    if (api->envelope) {
        buf_adds(out, "{\"");
        buf_adds(out, api->envelope);
        buf_adds(out, "\":");
    }
    for (size_t i = 0; i < api->ncolumns; i++) {
        if (end - p < 8)
            return false;
        int32_t n = be4(p + 4);
        p += 8;
        buf_adds(out, i ? ",\"" : "{\"");
        buf_adds(out, api->columns[i].key);
        buf_adds(out, "\":");
        if (n < 0) {
            buf_adds(out, "null");
            continue;
        }
        if (end - p < n || !add_value(out, api->columns[i].type, p, n))
            return false;
        p += n;
    }
    buf_addc(out, '}');
    if (api->envelope)
        buf_addc(out, '}');
    return p == end;
}
