/* fuzz_headers.c: libFuzzer target for the header parsers: Authorization
 * (credential_bearer), Cookie (credential_cookie), the credential each
 * profile takes (credential_take), the Content-Type check
 * (engine_is_json_media_type) and the If-Match / If-None-Match lists
 * (etag.c).
 *
 * Input: "HEADER\0NAME\0OTHER...": HEADER is the header value, NAME a cookie
 * name (when there is a NUL), OTHER the x-api-key value; the last byte's low
 * bits say which of x-api-key, Authorization and Cookie are absent.
 *
 * Invariants (abort() when broken): each parser agrees with a plain
 * reference of SPEC sections 1-2 (scheme "Bearer" in any case, one or more
 * spaces or tabs, the token trimmed and non-empty; cookies split at ';', the
 * first of that name wins, quotes of a quoted value removed; media types
 * application/json or application/<subtype>+json in any case, parameters
 * allowed); every token returned points inside the header it came from;
 * credential_take() reports the failure its profile's source implies; an
 * entity-tag list is absent when blank and "*" only when that is all of it,
 * and the versions etag_versions() binds for an update are exactly those
 * that etag_matches() matches strongly (which match weakly too). */
#include "api.h"
#include "credential.h"
#include "engine.h"
#include "etag.h"
#include "request.h"

#define FUZZ_TARGET "fuzz_headers"
#include "fuzz_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool inside(const char *p, size_t len, const char *s)
{
    return s && p >= s && p + len <= s + strlen(s);
}

/* Trims blanks off [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_blank(**b))
        (*b)++;
    while (*e > *b && is_blank((*e)[-1]))
        (*e)--;
}

static bool ref_bearer(const char *h, const char **token, size_t *len)
{
    const char *b, *e;

    if (strlen(h) < 7 || strncasecmp(h, "bearer", 6) != 0 || !is_blank(h[6]))
        return false;
    b = h + 6, e = h + strlen(h);
    trim(&b, &e);
    *token = b, *len = (size_t)(e - b);
    return *len > 0;
}

static bool ref_cookie(const char *h, const char *name, const char **value, size_t *len)
{
    const char *p = h, *end = h + strlen(h);

    while (p <= end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (comma && (!semi || comma < semi))
            semi = comma; /* Apache's ", " between two Cookie lines */
        const char *stop = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            const char *nb = p, *ne = eq, *vb = eq + 1, *ve = stop;
            trim(&nb, &ne);
            if ((size_t)(ne - nb) == strlen(name) &&
                memcmp(nb, name, strlen(name)) == 0) {
                trim(&vb, &ve);
                if (ve - vb >= 2 && vb[0] == '"' && ve[-1] == '"')
                    vb++, ve--;
                *value = vb, *len = (size_t)(ve - vb);
                return *len > 0;
            }
        }
        if (!semi)
            break;
        p = semi + 1;
    }
    return false;
}

static bool ref_json_media_type(const char *ct)
{
    const char *b = ct, *e = ct + strcspn(ct, ";");
    size_t len, sub;

    trim(&b, &e);
    len = (size_t)(e - b);
    if (len == 16 && strncasecmp(b, "application/json", 16) == 0)
        return true;
    if (len < 12 || strncasecmp(b, "application/", 12) != 0)
        return false;
    sub = len - 12; /* "<x>+json" with x non-empty and no '/' */
    return sub > 5 && strncasecmp(e - 5, "+json", 5) == 0 && !memchr(b + 12, '/', sub);
}

static void check_bearer(const char *h)
{
    const char *token = NULL, *want = NULL;
    size_t len = 0, want_len = 0;
    bool ok = credential_bearer(h, &token, &len);

    CHECK(ok == ref_bearer(h, &want, &want_len));
    if (ok) {
        CHECK(inside(token, len, h) && len > 0);
        CHECK(token == want && len == want_len);
    }
}

static void check_cookie(const char *h, const char *name)
{
    const char *value = NULL, *want = NULL;
    size_t len = 0, want_len = 0;
    bool ok = credential_cookie(h, name, &value, &len);

    CHECK(ok == ref_cookie(h, name, &want, &want_len));
    if (ok) {
        CHECK(inside(value, len, h) && len > 0 && !memchr(value, ';', len) &&
              !memchr(value, ',', len));
        CHECK(value == want && len == want_len);
    }
}

static bool present(const char *h)
{
    return h && *h;
}

static void check_take(const struct api_profile *api, const struct request *req)
{
    const char *token = NULL, *t;
    size_t len = 0, l;
    enum local_failure want;
    enum local_failure got = credential_take(api, req, &token, &len);

    switch (api->credential) {
    case CRED_API_KEY_OR_BEARER:
        if (present(req->api_key) && present(req->authorization))
            want = FAIL_CRED_AMBIGUOUS;
        else if (present(req->api_key))
            want = FAIL_NONE;
        else if (!present(req->authorization))
            want = FAIL_CRED_MISSING;
        else
            want = ref_bearer(req->authorization, &t, &l) ? FAIL_NONE : FAIL_CRED_SCHEME;
        break;
    case CRED_BEARER:
        if (!present(req->authorization))
            want = FAIL_CRED_MISSING;
        else
            want = ref_bearer(req->authorization, &t, &l) ? FAIL_NONE : FAIL_CRED_SCHEME;
        break;
    case CRED_COOKIE:
    default:
        want = present(req->cookie) &&
                       ref_cookie(req->cookie, api->credential_cookie, &t, &l)
                   ? FAIL_NONE
                   : FAIL_CRED_MISSING;
        break;
    }
    CHECK(got == want);
    if (got == FAIL_NONE)
        CHECK(len > 0 && (inside(token, len, req->api_key) ||
                          inside(token, len, req->authorization) ||
                          inside(token, len, req->cookie)));
}

/* The versions of a bigint[] literal "{1,2}", into v (room for cap). */
static size_t parse_versions(const char *s, int64_t *v, size_t cap)
{
    size_t n = 0;

    CHECK(s[0] == '{' && s[strlen(s) - 1] == '}');
    for (const char *p = s + 1; *p != '}';) {
        char *end;
        CHECK(*p >= '0' && *p <= '9');
        long long x = strtoll(p, &end, 10);
        CHECK(end > p && (*end == ',' || *end == '}'));
        if (n < cap)
            v[n++] = x;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void check_conditional(const char *h)
{
    const char *b = h, *e = h + strlen(h);
    enum etag_condition c = etag_condition_of(h);
    struct buf out = {0};
    int64_t v[64];

    trim(&b, &e);
    CHECK((c == ETAG_ABSENT) == (b == e));
    CHECK((c == ETAG_ANY) == (e - b == 1 && *b == '*'));
    CHECK(etag_condition_of(NULL) == ETAG_ABSENT);
    CHECK(etag_versions(h, &out) == (c == ETAG_LIST));
    CHECK(etag_matches(h, 42, false) == (c == ETAG_ANY) || c == ETAG_LIST);
    if (c != ETAG_LIST) {
        CHECK(out.len == 0);
        return;
    }
    size_t n = parse_versions(out.data, v, 64);
    for (size_t i = 0; i < n; i++) {
        CHECK(etag_matches(h, v[i], false));
        CHECK(etag_matches(h, v[i], true));
    }
    /* A version the list does not bind never matches strongly. */
    for (int64_t probe = 0; probe < 4; probe++) {
        bool bound = false;
        for (size_t i = 0; i < n; i++)
            bound |= v[i] == probe;
        if (n < 64 && !bound)
            CHECK(!etag_matches(h, probe, false));
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 2);
    const char *header, *name = NULL, *other = NULL;
    unsigned absent = size ? data[size - 1] : 0;

    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    header = buf;
    if (memchr(buf, '\0', size)) {
        name = header + strlen(header) + 1;
        if (name < buf + size)
            other = name + strlen(name) + 1;
        if (other >= buf + size)
            other = NULL;
    }

    check_bearer(header);
    check_cookie(header, "neptun-session");
    if (name)
        check_cookie(header, name);
    CHECK(engine_is_json_media_type(header) == ref_json_media_type(header));
    CHECK(!engine_is_json_media_type(NULL));
    check_conditional(header);

    struct request req = {
        .method = "PATCH",
        .content_type = header,
        .path = (char *)"/",
        .api_key = (char *)(absent & 1 ? NULL
                            : other    ? other
                                       : name),
        .authorization = (char *)(absent & 2 ? NULL : header),
        .cookie = (char *)(absent & 4 ? NULL : header),
    };
    for (const struct api_profile *const *api = api_profiles; *api; api++)
        check_take(*api, &req);
    free(buf);
    return 0;
}
