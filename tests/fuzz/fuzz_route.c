/* fuzz_route.c: libFuzzer target for the router (cgi/route.c).
 *
 * The input is a raw request path (NUL-terminated, so it ends at its first
 * NUL byte) for route_match(), and the raw bytes of one segment for
 * route_decode_segment(). Both are compared with a plain reference of SPEC
 * section 1: literal segments as sent, parameters percent-decoded once; a decoded '/' or
 * NUL, a malformed escape or an empty segment makes the path unknown.
 *
 * Invariants (abort() when broken): route_decode_segment() agrees with the
 * reference; route_match() matches exactly when the reference does, with
 * the profile's number of parameters, each non-empty, free of '/' and NUL,
 * and equal to the reference's decoding. */
#include "api.h"
#include "route.h"

#define FUZZ_TARGET "fuzz_route"
#include "fuzz_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAX_SEGMENTS 64

static int ref_hex(unsigned char c)
{
    static const char digits[] = "0123456789abcdef0123456789ABCDEF";
    const char *p = c ? memchr(digits, c, sizeof digits - 1) : NULL;

    return p ? (int)((p - digits) % 16) : -1;
}

/* The reference decoding of one segment, or -1. */
static long ref_decode(const char *seg, size_t len, char *out)
{
    size_t n = 0, i = 0;

    if (len == 0)
        return -1;
    while (i < len) {
        unsigned char c = (unsigned char)seg[i++];
        if (c == '%') {
            if (len - i < 2 || ref_hex((unsigned char)seg[i]) < 0 ||
                ref_hex((unsigned char)seg[i + 1]) < 0)
                return -1;
            c = (unsigned char)(ref_hex((unsigned char)seg[i]) * 16 +
                                ref_hex((unsigned char)seg[i + 1]));
            i += 2;
            if (c == '/' || c == '\0')
                return -1;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (long)n;
}

struct ref_segment {
    const char *text;
    size_t len;
};

/* Splits path into its raw segments. Returns the count, or -1. */
static int ref_split(const char *path, struct ref_segment *segs)
{
    int count = 0;

    if (path[0] != '/')
        return -1;
    for (const char *p = path + 1;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (count == REF_MAX_SEGMENTS)
            return -1;
        segs[count++] = (struct ref_segment){p, len};
        if (!slash)
            return count;
        p = slash + 1;
    }
}

/* A parameter segment's decoding (malloc-ed), or NULL when it has none. */
static char *ref_param(const struct ref_segment *seg, long *len)
{
    char *out = malloc(seg->len + 1);

    CHECK(out != NULL);
    *len = ref_decode(seg->text, seg->len, out);
    if (*len < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Does the path match pattern? Literal segments compare as sent; "{}"
 * segments are parameters that must decode. */
static bool ref_match(const char *pattern, const struct ref_segment *segs, int count)
{
    int i = 0;

    for (const char *p = pattern + 1;; i++) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (i >= count)
            return false;
        if (len == 2 && memcmp(p, "{}", 2) == 0) {
            long n;
            char *param = ref_param(&segs[i], &n);
            free(param);
            if (!param)
                return false;
        } else if (segs[i].len != len || memcmp(segs[i].text, p, len) != 0) {
            return false;
        }
        if (!slash)
            return i + 1 == count;
        p = slash + 1;
    }
}

static void check_decode(const uint8_t *data, size_t size)
{
    char *got = malloc(size + 1), *want = malloc(size + 1);
    long n, m;

    CHECK(got && want);
    n = route_decode_segment((const char *)data, size, got);
    m = ref_decode((const char *)data, size, want);
    CHECK(n == m);
    if (n >= 0) {
        CHECK(n > 0 && (size_t)n <= size && got[n] == '\0');
        CHECK(memcmp(got, want, (size_t)n) == 0);
    }
    free(got);
    free(want);
}

static void check_match(const char *path)
{
    struct ref_segment segs[REF_MAX_SEGMENTS];
    int count;
    const struct api_profile *want = NULL;
    bool want_match = false;
    struct route r;
    bool matched;

    count = ref_split(path, segs);
    if (count > 0) {
        if (ref_match(ROUTE_HEALTH, segs, count) ||
            ref_match(ROUTE_STATUS, segs, count)) {
            want_match = true;
        } else {
            for (const struct api_profile *const *api = api_profiles; *api; api++) {
                if (ref_match((*api)->pattern, segs, count)) {
                    want = *api, want_match = true;
                    break;
                }
            }
        }
    }

    memset(&r, 0xa5, sizeof r); /* route_match must fill it either way */
    matched = route_match(path, &r);
    CHECK(matched == want_match);
    if (matched) {
        CHECK(r.api == want);
        CHECK(want ? r.fixed == NULL : r.fixed != NULL);
        CHECK(r.nparams == (want ? want->nparams : 0));
        /* The parameters, in pattern order, are the reference's "{}" segments. */
        size_t k = 0;
        const char *p = (want ? want->pattern : r.fixed) + 1;
        for (int i = 0; i < count; i++) {
            const char *slash = strchr(p, '/');
            if (strncmp(p, "{}", 2) == 0 && (p[2] == '/' || p[2] == '\0')) {
                const char *param = r.params[k++];
                CHECK(param != NULL);
                size_t len = strlen(param);
                CHECK(len > 0 && !strchr(param, '/'));
                /* No decoded NUL: the whole decoded segment is the string. */
                long want_len;
                char *want_param = ref_param(&segs[i], &want_len);
                CHECK(want_param != NULL && len == (size_t)want_len &&
                      memcmp(param, want_param, len) == 0);
                free(want_param);
            }
            p = slash ? slash + 1 : p + strlen(p);
        }
        CHECK(k == r.nparams);
        route_free(&r);
        CHECK(r.buf == NULL && r.api == NULL && r.nparams == 0);
    } else {
        CHECK(r.buf == NULL); /* nothing left to free */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = malloc(size + 1);

    if (!path)
        abort();
    memcpy(path, data, size);
    path[size] = '\0';
    check_decode(data, size);
    check_match(path);
    free(path);
    return 0;
}
