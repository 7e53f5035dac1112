/* buf.h: a growable byte buffer, and JSON text written into it.
 *
 * Every answer the worker sends is assembled in one of these: the success
 * body from the statement's row, the error bodies, the headers. Out of
 * memory aborts, as everywhere in the worker. */
#ifndef CHATPATCH_BUF_H
#define CHATPATCH_BUF_H

#include <stddef.h>
#include <string.h>

struct buf {
    char *data; /* NUL-terminated whenever it is not NULL */
    size_t len;
    size_t cap;
};

/* Makes room for more bytes after len (and the NUL). */
void buf_reserve(struct buf *b, size_t more);

static inline void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap)
        buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static inline void buf_addc(struct buf *b, char c)
{
    buf_add(b, &c, 1);
}

/* A signed decimal number written at the end of digits (no NUL): returns
 * where it starts, and its length in *len. Faster than printf, which
 * showed in a request's profile. */
#define BUF_LONG_MAX 24
const char *buf_format_long(long long v, char digits[BUF_LONG_MAX], size_t *len);

/* Appends a signed decimal number. */
void buf_add_long(struct buf *b, long long v);

/* Appends s[0..n) as a JSON string, quoted and escaped as JavaScript's
 * JSON.stringify escapes it (s is valid UTF-8). */
void buf_add_json_string(struct buf *b, const char *s, size_t n);

/* Hands the bytes over: returns the malloc-ed, NUL-terminated text (an empty
 * string for an empty buffer) and leaves b empty. The caller frees it. */
char *buf_take(struct buf *b, size_t *len);

void buf_free(struct buf *b);

#endif
