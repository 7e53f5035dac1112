/* credential.c: x-api-key, Authorization: Bearer and Cookie parsing.
 * Entry points: credential_take(), credential_bearer(), credential_cookie(). */
#include "credential.h"

#include <string.h>
#include <strings.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool credential_bearer(const char *authorization, const char **token, size_t *len)
{
    const char *p = authorization;
    const char *end;

    if (strncasecmp(p, "Bearer", 6) != 0 || !is_space(p[6]))
        return false;
    for (p += 6; is_space(*p); p++)
        ;
    end = p + strlen(p);
    while (end > p && is_space(end[-1]))
        end--;
    *token = p;
    *len = (size_t)(end - p);
    return *len > 0;
}

/* Pairs are separated by ';', and also by ',': Apache joins two Cookie
 * header lines with ", ", and no cookie value may hold a comma (RFC 6265,
 * cookie-octet). */
bool credential_cookie(const char *header, const char *name, const char **value,
                       size_t *len)
{
    size_t name_len = strlen(name);

    for (const char *p = header; *p;) {
        const char *end = p + strcspn(p, ";,");
        while (p < end && is_space(*p))
            p++;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            const char *name_end = eq;
            while (name_end > p && is_space(name_end[-1]))
                name_end--;
            if ((size_t)(name_end - p) == name_len && memcmp(p, name, name_len) == 0) {
                const char *v = eq + 1, *v_end = end;
                while (v < v_end && is_space(*v))
                    v++;
                while (v_end > v && is_space(v_end[-1]))
                    v_end--;
                if (v_end - v >= 2 && *v == '"' && v_end[-1] == '"')
                    v++, v_end--;
                *value = v;
                *len = (size_t)(v_end - v);
                return *len > 0;
            }
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

/* Express-style services see an empty header as no header. */
static bool present(const char *header)
{
    return header && *header;
}

enum local_failure credential_take(const struct api_profile *api,
                                   const struct request *req, const char **token,
                                   size_t *len)
{
    switch (api->credential) {
    case CRED_API_KEY_OR_BEARER:
        if (present(req->api_key) == present(req->authorization))
            return present(req->api_key) ? FAIL_CRED_AMBIGUOUS : FAIL_CRED_MISSING;
        if (present(req->api_key)) {
            *token = req->api_key;
            *len = strlen(req->api_key);
            return FAIL_NONE;
        }
        return credential_bearer(req->authorization, token, len) ? FAIL_NONE
                                                                 : FAIL_CRED_SCHEME;
    case CRED_BEARER:
        if (!present(req->authorization))
            return FAIL_CRED_MISSING;
        return credential_bearer(req->authorization, token, len) ? FAIL_NONE
                                                                 : FAIL_CRED_SCHEME;
    case CRED_COOKIE:
        if (!present(req->cookie))
            return FAIL_CRED_MISSING;
        return credential_cookie(req->cookie, api->credential_cookie, token, len)
                   ? FAIL_NONE
                   : FAIL_CRED_MISSING;
    }
    return FAIL_CRED_MISSING;
}
