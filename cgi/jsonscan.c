/* jsonscan.c: a recursive-descent checker of strict JSON.
 * Entry points: jsonscan_valid(), jsonscan_parse(), jsonscan_decode(). */
#include "jsonscan.h"

#include "field.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *s;
    size_t len;
    size_t pos;
    int depth;
    int max_depth;
};

static bool scan_value(struct scan *sc);

static int peek(const struct scan *sc)
{
    return sc->pos < sc->len ? (unsigned char)sc->s[sc->pos] : -1;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(struct scan *sc)
{
    while (sc->pos < sc->len && is_json_space(sc->s[sc->pos]))
        sc->pos++;
}

static bool take(struct scan *sc, char c)
{
    if (peek(sc) != (unsigned char)c)
        return false;
    sc->pos++;
    return true;
}

static bool take_word(struct scan *sc, const char *word)
{
    size_t n = strlen(word);

    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return false;
    sc->pos += n;
    return true;
}

/* Reads the 4 hex digits after "\u"; -1 when they are not hex digits. */
static long take_hex4(struct scan *sc)
{
    long v = 0;

    if (sc->len - sc->pos < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int d = field_hex_digit((unsigned char)sc->s[sc->pos + i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    sc->pos += 4;
    return v;
}

/* After a backslash: one escape; a \u escape yields a whole code point, a
 * surrogate pair taken together. Returns the code point, or -1. */
static long take_escape(struct scan *sc)
{
    int c = peek(sc);

    sc->pos++;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return -1;
    }
    long hi = take_hex4(sc);
    if (hi < 0xd800 || hi > 0xdfff)
        return hi;
    if (hi > 0xdbff || !take_word(sc, "\\u"))
        return -1;
    long lo = take_hex4(sc);
    if (lo < 0xdc00 || lo > 0xdfff)
        return -1;
    return 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Scans one string. With out, decodes it there as UTF-8, as far as cap bytes
 * allow; *decoded_len (when not NULL) is the whole decoded length. */
static bool scan_string(struct scan *sc, char *out, size_t cap, size_t *decoded_len)
{
    size_t n = 0;

    if (!take(sc, '"'))
        return false;
    for (;;) {
        /* A run of plain ASCII, the common case, in one go. */
        size_t start = sc->pos;
        while (sc->pos < sc->len) {
            unsigned char b = (unsigned char)sc->s[sc->pos];
            if (b < 0x20 || b >= 0x80 || b == '"' || b == '\\')
                break;
            sc->pos++;
        }
        if (out && sc->pos > start) {
            size_t run = sc->pos - start;
            if (n + run <= cap)
                memcpy(out + n, sc->s + start, run);
            n += run;
        } else {
            n += sc->pos - start;
        }
        int c = peek(sc);
        char utf8[4];
        const char *bytes;
        size_t w;
        if (c < 0x20) /* end of input, or a raw control character */
            return false;
        if (c == '"')
            break;
        if (c == '\\') {
            sc->pos++;
            long cp = take_escape(sc);
            if (cp <= 0) /* malformed, or U+0000 which no service stores */
                return false;
            w = utf8_encode((uint32_t)cp, utf8);
            bytes = utf8;
        } else {
            uint32_t cp;
            w = field_utf8_decode(sc->s + sc->pos, sc->len - sc->pos, &cp);
            if (w == 0)
                return false;
            bytes = sc->s + sc->pos;
            sc->pos += w;
        }
        if (out && n + w <= cap)
            memcpy(out + n, bytes, w);
        n += w;
    }
    sc->pos++;
    if (decoded_len)
        *decoded_len = n;
    return true;
}

static bool take_digits(struct scan *sc)
{
    size_t start = sc->pos;

    while (peek(sc) >= '0' && peek(sc) <= '9')
        sc->pos++;
    return sc->pos > start;
}

static bool scan_number(struct scan *sc)
{
    take(sc, '-');
    if (!take(sc, '0') && !take_digits(sc))
        return false;
    if (take(sc, '.') && !take_digits(sc))
        return false;
    if (take(sc, 'e') || take(sc, 'E')) {
        if (!take(sc, '+'))
            take(sc, '-');
        if (!take_digits(sc))
            return false;
    }
    return true;
}

/* Scans "{...}" or "[...]": members (key ':' value) for objects, values for
 * arrays, separated by commas. */
static bool scan_container(struct scan *sc, char open, char close)
{
    if (!take(sc, open) || ++sc->depth > sc->max_depth)
        return false;
    skip_space(sc);
    if (!take(sc, close)) {
        do {
            skip_space(sc);
            if (open == '{') {
                if (!scan_string(sc, NULL, 0, NULL))
                    return false;
                skip_space(sc);
                if (!take(sc, ':'))
                    return false;
            }
            if (!scan_value(sc))
                return false;
        } while (take(sc, ','));
        if (!take(sc, close))
            return false;
    }
    sc->depth--;
    return true;
}

/* One value with the white space around it; *kind says what it was. */
static bool scan_value_kind(struct scan *sc, enum json_kind *kind)
{
    bool ok;

    skip_space(sc);
    switch (peek(sc)) {
    case '{':
        *kind = JSON_OBJECT;
        ok = scan_container(sc, '{', '}');
        break;
    case '[':
        *kind = JSON_ARRAY;
        ok = scan_container(sc, '[', ']');
        break;
    case '"':
        *kind = JSON_STRING;
        ok = scan_string(sc, NULL, 0, NULL);
        break;
    case 't':
        *kind = JSON_BOOLEAN;
        ok = take_word(sc, "true");
        break;
    case 'f':
        *kind = JSON_BOOLEAN;
        ok = take_word(sc, "false");
        break;
    case 'n':
        *kind = JSON_NULL;
        ok = take_word(sc, "null");
        break;
    default:
        *kind = JSON_NUMBER;
        ok = scan_number(sc);
        break;
    }
    skip_space(sc);
    return ok;
}

static bool scan_value(struct scan *sc)
{
    enum json_kind kind;

    return scan_value_kind(sc, &kind);
}

static void add_member(struct json_members *list, struct json_member m)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        struct json_member *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            abort();
        list->items = items;
        list->cap = cap;
    }
    list->items[list->count++] = m;
}

/* The top-level object, its members recorded as they are scanned. */
static bool scan_top_object(struct scan *sc, struct json_members *members)
{
    if (!take(sc, '{'))
        return false;
    sc->depth = 1;
    skip_space(sc);
    if (take(sc, '}'))
        return true;
    do {
        struct json_member m = {0};
        skip_space(sc);
        size_t key_start = sc->pos + 1;
        if (!scan_string(sc, NULL, 0, NULL))
            return false;
        m.key = sc->s + key_start;
        m.key_len = sc->pos - 1 - key_start;
        m.key_escaped = memchr(m.key, '\\', m.key_len) != NULL;
        skip_space(sc);
        if (!take(sc, ':'))
            return false;
        skip_space(sc);
        size_t value_start = sc->pos;
        if (!scan_value_kind(sc, &m.kind))
            return false;
        size_t value_end = sc->pos;
        while (value_end > value_start && is_json_space(sc->s[value_end - 1]))
            value_end--;
        m.value = sc->s + value_start;
        m.value_len = value_end - value_start;
        add_member(members, m);
    } while (take(sc, ','));
    return take(sc, '}');
}

bool jsonscan_valid(const char *s, size_t len, int max_depth)
{
    struct scan sc = {.s = s, .len = len, .max_depth = max_depth};

    return scan_value(&sc) && sc.pos == len;
}

bool jsonscan_parse(const char *s, size_t len, int max_depth, enum json_kind *top,
                    struct json_members *members)
{
    struct scan sc = {.s = s, .len = len, .max_depth = max_depth};

    skip_space(&sc);
    if (peek(&sc) == '{' && members) {
        *top = JSON_OBJECT;
        if (!scan_top_object(&sc, members))
            return false;
        skip_space(&sc);
    } else if (!scan_value_kind(&sc, top)) {
        return false;
    }
    return sc.pos == len;
}

size_t jsonscan_decode(const char *raw, size_t raw_len, char *out)
{
    struct scan sc = {.s = raw - 1, .len = raw_len + 2, .pos = 0};
    size_t n = 0;

    /* raw is the inside of a string the scanner accepted, so its quotes are
     * at raw[-1] and raw[raw_len]. */
    if (!scan_string(&sc, out, raw_len, &n))
        abort();
    return n;
}

void jsonscan_members_free(struct json_members *members)
{
    free(members->items);
    *members = (struct json_members){0};
}
