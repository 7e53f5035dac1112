/* buf.c: growable buffers and JSON string escaping.
 * Entry points: buf_reserve(), buf_add_long(), buf_add_json_string(),
 * buf_take(), buf_free(). */
#include "buf.h"

#include <stdlib.h>

void buf_reserve(struct buf *b, size_t more)
{
    size_t need = b->len + more + 1, cap = b->cap ? b->cap : 256;

    if (need <= b->cap)
        return;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        abort();
    b->data = data;
    b->cap = cap;
}

void buf_add_long(struct buf *b, long long v)
{
    char digits[24];
    size_t n = sizeof digits;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--n] = '-';
    buf_add(b, digits + n, sizeof digits - n);
}

void buf_add_json_string(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* bytes that need no escape, copied in one go */

    buf_reserve(b, n + 2);
    buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        buf_add(b, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0};
        size_t len = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        buf_add(b, esc, len);
    }
    buf_add(b, s + n - run, run);
    buf_addc(b, '"');
}

char *buf_take(struct buf *b, size_t *len)
{
    char *out;

    if (!b->data)
        buf_reserve(b, 0), b->data[0] = '\0';
    out = b->data;
    if (len)
        *len = b->len;
    *b = (struct buf){0};
    return out;
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}
