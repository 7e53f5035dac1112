/* credential.h: the caller's secret from the request headers. */
#ifndef CHATPATCH_CREDENTIAL_H
#define CHATPATCH_CREDENTIAL_H

#include "api.h"
#include "request.h"

#include <stddef.h>

/* The token of "Bearer <token>" (scheme in any case). Returns false when the
 * header is not of that form or the token is empty. */
bool credential_bearer(const char *authorization, const char **token, size_t *len);

/* The value of the first cookie named name in a Cookie header ("a=1; b=2",
 * or "a=1, b=2" as Apache joins two lines), with the quotes of a quoted value
 * removed. Returns false when there is none. */
bool credential_cookie(const char *header, const char *name, const char **value,
                       size_t *len);

/* Finds the credential the profile asks for. Returns FAIL_NONE and points
 * *token into the request's headers, or the failure (FAIL_CRED_*). */
enum local_failure credential_take(const struct api_profile *api,
                                   const struct request *req, const char **token,
                                   size_t *len);

#endif
