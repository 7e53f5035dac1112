/* field.c: UTF-8 decoding and ECMAScript trimming of one value.
 * Entry points: field_utf8_decode(), field_utf8_valid(), field_hex_digit(),
 * field_is_js_space(),
 * field_trim(). */
#include "field.h"

size_t field_utf8_decode(const char *str, size_t len, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t need;
    uint32_t c, min;

    if (len == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        need = 2, c = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        need = 3, c = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        need = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return need;
}

bool field_utf8_valid(const char *s, size_t len)
{
    uint32_t cp;

    for (size_t i = 0; i < len;) {
        size_t n = field_utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

int field_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool field_is_js_space(uint32_t cp)
{
    switch (cp) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x20:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
    case 0xfeff:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

/* The length of the valid UTF-8 sequence that ends at s[end - 1]. */
static size_t last_sequence_length(const char *s, size_t start, size_t end)
{
    size_t n = 1;

    while (n < 4 && end - n > start && ((unsigned char)s[end - n] & 0xc0) == 0x80)
        n++;
    return n;
}

void field_trim(const char *s, size_t *start, size_t *end)
{
    uint32_t cp;

    while (*start < *end) {
        size_t n = field_utf8_decode(s + *start, *end - *start, &cp);
        if (n == 0 || !field_is_js_space(cp))
            break;
        *start += n;
    }
    while (*end > *start) {
        size_t n = last_sequence_length(s, *start, *end);
        if (field_utf8_decode(s + *end - n, n, &cp) != n || !field_is_js_space(cp))
            break;
        *end -= n;
    }
}
