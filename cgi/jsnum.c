/* jsnum.c: Number::toString (ECMA-262, 6.1.6.1.20) and JSON texts
 * rewritten with it.
 * Entry points: jsnum_format(), jsnum_normalize_json(). */
#include "jsnum.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The shortest decimal digits that read back as v (v > 0, finite), and the
 * exponent n such that v = 0.d1d2...dk * 10^n. For a normal double, a
 * k-digit decimal that reads back as v is the nearest k-digit decimal to v
 * whenever k <= 15 (doubles have over 15.9 digits), so rounding to 15, then
 * 16, then 17 digits finds the shortest; 17 always reads back. Subnormals
 * have fewer digits and try every length. */
static size_t shortest_digits(double v, char digits[20], int *n)
{
    char text[40];
    size_t k = 0;

    for (int precision = v < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*e", precision - 1, v);
        if (precision == 17 || strtod(text, NULL) == v)
            break;
    }
    /* text is "d.ddddde[+-]xx" */
    char *p = text;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    *n = atoi(p + 1) + 1;
    return k;
}

/* Writes the number 0.d1d2...dk * 10^n (k >= 1, d1 != 0) in JavaScript's
 * form, negative when neg. */
static size_t format_digits(bool neg, const char *digits, size_t k, int n,
                            char out[JSNUM_MAX])
{
    size_t len = 0;

    if (neg)
        out[len++] = '-';
    if ((int)k <= n && n <= 21) { /* an integer: digits, then zeros */
        memcpy(out + len, digits, k);
        len += k;
        memset(out + len, '0', (size_t)n - k);
        return len + (size_t)n - k;
    }
    if (0 < n && n <= 21) { /* a point inside the digits */
        memcpy(out + len, digits, (size_t)n);
        len += (size_t)n;
        out[len++] = '.';
        memcpy(out + len, digits + n, k - (size_t)n);
        return len + k - (size_t)n;
    }
    if (-6 < n && n <= 0) { /* 0.000ddd */
        memcpy(out + len, "0.", 2);
        len += 2;
        memset(out + len, '0', (size_t)-n);
        len += (size_t)-n;
        memcpy(out + len, digits, k);
        return len + k;
    }
    out[len++] = digits[0]; /* d.ddde+x */
    if (k > 1) {
        out[len++] = '.';
        memcpy(out + len, digits + 1, k - 1);
        len += k - 1;
    }
    return len + (size_t)snprintf(out + len, JSNUM_MAX - len, "e%c%d",
                                  n - 1 >= 0 ? '+' : '-', abs(n - 1));
}

size_t jsnum_format(double v, char out[JSNUM_MAX])
{
    char digits[20];
    int n;

    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    if (v == 0) { /* and -0, which JavaScript writes as 0 */
        out[0] = '0';
        return 1;
    }
    size_t k = shortest_digits(fabs(v), digits, &n);
    return format_digits(v < 0, digits, k, n, out);
}

/* The end of the number token at s[i]. */
static size_t number_end(const char *s, size_t len, size_t i)
{
    while (i < len && (is_digit(s[i]) || s[i] == '-' || s[i] == '+' || s[i] == '.' ||
                       s[i] == 'e' || s[i] == 'E'))
        i++;
    return i;
}

/* A decimal of at most 15 significant digits that a normal double can hold
 * reads as the double nearest to it, whose shortest form is those digits
 * again: two decimals of 15 digits or fewer are further apart than a
 * double's precision. So such a number is rewritten from its own digits,
 * without a conversion. Returns false for the others. */
static bool format_short_decimal(const char *s, size_t n, char out[JSNUM_MAX],
                                 size_t *len)
{
    char digits[16];
    size_t k = 0, i = 0;
    int point = 0; /* digits before the decimal point, leading zeros excluded */
    bool neg = s[0] == '-', seen_point = false;
    long exp = 0;

    i += neg;
    for (; i < n && (is_digit(s[i]) || s[i] == '.'); i++) {
        if (s[i] == '.') {
            seen_point = true;
        } else if (k == 0 && s[i] == '0') { /* leading zeros */
            point -= seen_point;
        } else {
            if (k == sizeof digits - 1)
                return false;
            digits[k++] = s[i];
            point += !seen_point;
        }
    }
    if (i < n) { /* the exponent: at most a few digits make sense here */
        i++;
        bool eneg = s[i] == '-';
        i += s[i] == '-' || s[i] == '+';
        if (n - i > 4)
            return false;
        for (; i < n; i++)
            exp = exp * 10 + (s[i] - '0');
        exp = eneg ? -exp : exp;
    }
    while (k > 0 && digits[k - 1] == '0')
        k--;
    if (k == 0) { /* zero, of either sign */
        out[0] = '0';
        *len = 1;
        return true;
    }
    long decimal_exp = point + exp;
    if (decimal_exp < -290 || decimal_exp > 290) /* near overflow or subnormal */
        return false;
    *len = format_digits(neg, digits, k, (int)decimal_exp, out);
    return true;
}

/* Appends the number token s[0..n) in JavaScript's form. */
static void add_number(const char *s, size_t n, struct buf *out)
{
    char js[JSNUM_MAX];
    size_t len;

    if (format_short_decimal(s, n, js, &len)) {
        buf_add(out, js, len);
        return;
    }
    char text[400];
    double v;
    if (n < sizeof text) {
        memcpy(text, s, n);
        text[n] = '\0';
        v = strtod(text, NULL);
    } else { /* a very long token (its own copy) */
        char *copy = strndup(s, n);
        if (!copy)
            abort();
        v = strtod(copy, NULL);
        free(copy);
    }
    buf_add(out, js, jsnum_format(v, js));
}

void jsnum_normalize_json(const char *s, size_t len, struct buf *out)
{
    buf_reserve(out, len);
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
        } else if (c == '"') { /* copied whole: only its end matters here */
            size_t start = i++;
            while (s[i] != '"')
                i += s[i] == '\\' ? 2 : 1;
            i++;
            buf_add(out, s + start, i - start);
        } else if (c == '-' || is_digit(c)) {
            size_t end = number_end(s, len, i);
            add_number(s + i, end - i, out);
            i = end;
        } else {
            buf_addc(out, c);
            i++;
        }
    }
}
