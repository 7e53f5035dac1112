/* route.c: path segments, percent-decoded once, matched against patterns.
 * Entry points: route_match(), route_decode_segment(), route_free().
 *
 * The raw path is decoded here and nowhere else, so that "%2F" inside an id
 * is seen as what it is (SPEC section 1: a decoded '/' or NUL, or an empty
 * segment, makes the path unknown). Only parameters are decoded. */
#include "route.h"

#include "field.h"

#include <stdlib.h>
#include <string.h>

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

/* Matches path (after its leading '/') against pattern segment by segment.
 * Literal segments compare as sent, undecoded, as Express and Nest match
 * routes; "{}" segments are parameters, decoded into buf. */
static bool match_pattern(const char *pattern, const char *path, char *buf,
                          struct route *out)
{
    const char *p = pattern + 1, *s = path;

    out->nparams = 0;
    for (;;) {
        size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");
        if (plen == 2 && memcmp(p, "{}", 2) == 0) {
            long n = route_decode_segment(s, slen, buf);
            if (n < 0)
                return false;
            out->params[out->nparams++] = buf;
            buf += n + 1;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
        if (*p == '\0' || *s == '\0')
            return *p == '\0' && *s == '\0';
        p++, s++;
    }
}

bool route_match(const char *path, struct route *out)
{
    *out = (struct route){.buf = malloc(strlen(path) + 1)};
    if (!out->buf)
        abort();
    if (path[0] == '/') {
        static const char *const fixed[] = {ROUTE_HEALTH, ROUTE_STATUS};
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            if (match_pattern(fixed[i], path + 1, out->buf, out)) {
                out->fixed = fixed[i];
                return true;
            }
        for (const struct api_profile *const *api = api_profiles; *api; api++) {
            if (match_pattern((*api)->pattern, path + 1, out->buf, out)) {
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
