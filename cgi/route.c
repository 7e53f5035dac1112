/* route.c: path segments, percent-decoded once, matched against patterns.
 * Entry points: route_match(), route_decode_segment(), route_free().
 *
 * The raw path is decoded here and nowhere else, so that "%2F" inside an id
 * is seen as what it is (SPEC section 1: a decoded '/' or NUL, or an empty
 * segment, makes the path unknown). */
#include "route.h"

#include "field.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENTS 16

long route_decode_segment(const char *seg, size_t len, char *out)
{
    size_t n = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = seg[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = field_hex_digit(seg[i + 1]), lo = field_hex_digit(seg[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            if (c == '/' || c == '\0')
                return -1;
            i += 2;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return (long)n;
}

/* Splits "/a/b/c" into decoded segments stored NUL-separated in buf (room
 * for strlen(path) + 1 bytes). Returns the count, or -1 when any segment is
 * bad or there are too many. */
static int split_path(const char *path, char *buf, char *segments[MAX_SEGMENTS])
{
    int count = 0;

    if (path[0] != '/')
        return -1;
    for (const char *p = path + 1;; count++) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        long n;
        if (count == MAX_SEGMENTS || (n = route_decode_segment(p, len, buf)) < 0)
            return -1;
        segments[count] = buf;
        buf += n + 1;
        if (!end)
            return count + 1;
        p = end + 1;
    }
}

/* Matches decoded segments against a pattern whose "{}" segments are
 * parameters. */
static bool match_pattern(const char *pattern, char *const *segments, int count,
                          struct route *out)
{
    const char *p = pattern + 1;
    int i = 0;

    out->nparams = 0;
    for (; *p && i < count; i++) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 2 && memcmp(p, "{}", 2) == 0)
            out->params[out->nparams++] = segments[i];
        else if (strlen(segments[i]) != len || memcmp(segments[i], p, len) != 0)
            return false;
        p = end ? end + 1 : p + len;
    }
    return *p == '\0' && i == count;
}

bool route_match(const char *path, struct route *out)
{
    char *segments[MAX_SEGMENTS];
    int count;

    *out = (struct route){.buf = malloc(strlen(path) + 1)};
    if (!out->buf)
        abort();
    count = split_path(path, out->buf, segments);
    if (count > 0) {
        if (match_pattern(ROUTE_HEALTH, segments, count, out))
            return true;
        for (const struct api_profile *const *api = api_profiles; *api; api++) {
            if (match_pattern((*api)->pattern, segments, count, out)) {
                out->api = *api;
                return true;
            }
        }
    }
    route_free(out);
    return false;
}

void route_free(struct route *route)
{
    free(route->buf);
    *route = (struct route){0};
}
