/* buf.c: growable buffers and JSON string escaping.
 * Entry points: buf_reserve(), buf_add_long(), buf_add_json_string(),
 * buf_take(), buf_free(). */
#include "buf.h"

#include <stdbool.h>
#include <stdlib.h>

void buf_reserve(struct buf *b, size_t more)
{
    size_t need = b->len + more + 1;

    if (need <= b->cap)
        return;
    /* Doubling keeps appending linear; a reserve beyond that is taken as asked,
     * so a buffer sized up front (an answer of 260 kB) is not rounded up to a
     * power of two (512 kB) that a worker's heap then keeps. */
    size_t cap = b->cap ? 2 * b->cap : 256;
    if (cap < need)
        cap = need;
    char *data = realloc(b->data, cap);
    if (!data)
        abort();
    b->data = data;
    b->cap = cap;
}

const char *buf_format_long(long long v, char digits[BUF_LONG_MAX], size_t *len)
{
    size_t n = BUF_LONG_MAX;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--n] = '-';
    *len = BUF_LONG_MAX - n;
    return digits + n;
}

void buf_add_long(struct buf *b, long long v)
{
    char digits[BUF_LONG_MAX];
    size_t len;
    const char *text = buf_format_long(v, digits, &len);

    buf_add(b, text, len);
}

/* Bytes JSON.stringify escapes: '"', '\\' and the control characters. */
static const bool escaped[256] = {
    [0x00 ... 0x1f] = true,
    ['"'] = true,
    ['\\'] = true,
};

void buf_add_json_string(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    for (;;) {
        size_t start = i; /* a run that needs no escape, copied in one go */
        while (i < n && !escaped[(unsigned char)s[i]])
            i++;

        buf_add(b, s + start, i - start);
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        char esc[6] = {'\\', (char)c, '0', '0', 0, 0};

        size_t len = 2;
        switch (c) {
        case '"':
        case '\\':
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
            esc[1] = 'u';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        buf_add(b, esc, len);
    }
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
