/* etag.c: entity tags of versions, and lists of them in conditional headers.
 * Entry points: etag_format(), etag_condition_of(), etag_matches(),
 * etag_versions().
 *
 * The lists are walked in place, tag by tag, without storing them: a client
 * may send thousands of tags (up to nginx's header line limit), and each
 * only needs comparing with one version, or copying into one array. */
#include "etag.h"

#include <string.h>

void etag_format(int64_t version, char out[ETAG_MAX])
{
    char digits[20];
    size_t n = sizeof digits, len = 0;
    uint64_t v = version < 0 ? 0 : (uint64_t)version;

    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out[len++] = '"';
    memcpy(out + len, digits + n, sizeof digits - n);
    len += sizeof digits - n;
    out[len++] = '"';
    out[len] = '\0';
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc (RFC 9110, 8.8.3): any visible byte but '"', and obs-text. */
static bool is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

enum etag_condition etag_condition_of(const char *header)
{
    const char *p = header, *end;

    if (!header)
        return ETAG_ABSENT;
    while (is_ows(*p))
        p++;
    end = p + strlen(p);
    while (end > p && is_ows(end[-1]))
        end--;
    if (end == p)
        return ETAG_ABSENT;
    return end - p == 1 && *p == '*' ? ETAG_ANY : ETAG_LIST;
}

/* One entity tag of a list. */
struct tag {
    bool weak;
    const char *opaque; /* between the quotes */
    size_t len;
};

/* Reads the next tag of the list at *p, skipping empty elements (which a
 * recipient must accept, RFC 9110, 5.6.1). Returns 1 with a tag, 0 at the
 * end of the list, -1 on a syntax error. */
static int next_tag(const char **p, struct tag *tag)
{
    const char *s = *p;

    while (is_ows(*s) || *s == ',')
        s++;
    if (*s == '\0')
        return 0;
    tag->weak = s[0] == 'W' && s[1] == '/';
    if (tag->weak)
        s += 2;
    if (*s++ != '"')
        return -1;
    tag->opaque = s;
    while (is_etagc((unsigned char)*s))
        s++;
    if (*s != '"')
        return -1;
    tag->len = (size_t)(s - tag->opaque);
    s++;
    while (is_ows(*s))
        s++;
    if (*s != ',' && *s != '\0')
        return -1;
    *p = s;
    return 1;
}

/* The version an opaque tag names: the decimal form etag_format() writes
 * (no sign, no leading zero, within int64). Returns false for any other. */
static bool tag_version(const struct tag *tag, int64_t *version)
{
    uint64_t v = 0;

    if (tag->len == 0 || tag->len > 19 || (tag->opaque[0] == '0' && tag->len > 1))
        return false;
    for (size_t i = 0; i < tag->len; i++) {
        char c = tag->opaque[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (v > INT64_MAX)
        return false;
    *version = (int64_t)v;
    return true;
}

/* Whether the whole list is well-formed. */
static bool list_valid(const char *header)
{
    struct tag tag;
    int r;

    while ((r = next_tag(&header, &tag)) > 0)
        ;
    return r == 0;
}

bool etag_matches(const char *header, int64_t version, bool weak)
{
    enum etag_condition condition = etag_condition_of(header);
    struct tag tag;
    int64_t v;

    if (condition != ETAG_LIST)
        return condition == ETAG_ANY;
    if (!list_valid(header))
        return false;
    while (next_tag(&header, &tag) > 0)
        if ((weak || !tag.weak) && tag_version(&tag, &v) && v == version)
            return true;
    return false;
}

bool etag_versions(const char *header, struct buf *out)
{
    struct tag tag;
    int64_t v;
    size_t count = 0;

    if (etag_condition_of(header) != ETAG_LIST)
        return false;
    buf_addc(out, '{');
    if (list_valid(header))
        while (next_tag(&header, &tag) > 0)
            if (!tag.weak && tag_version(&tag, &v)) {
                if (count++)
                    buf_addc(out, ',');
                buf_add(out, tag.opaque, tag.len);
            }
    buf_addc(out, '}');
    return true;
}
