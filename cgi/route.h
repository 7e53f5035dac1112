/* route.h: a request path to the API that serves it and its parameters. */
#ifndef CHATPATCH_ROUTE_H
#define CHATPATCH_ROUTE_H

#include "api.h"

#include <stdbool.h>
#include <stddef.h>

struct route {
    const struct api_profile *api; /* NULL for a fixed route */
    const char *fixed;             /* ROUTE_HEALTH or ROUTE_STATUS, or NULL */
    char *params[API_MAX_PARAMS];  /* decoded path parameters, in pattern order */
    size_t nparams;
    char *buf; /* owns the decoded segments */
};

/* Percent-decodes one path segment of len bytes into out (room for len + 1
 * bytes) and returns the decoded length, or -1 when the segment is empty,
 * has a malformed escape, or decodes to a '/' or a NUL. */
long route_decode_segment(const char *seg, size_t len, char *out);

/* Matches the raw path (no query string) against the fixed routes and the
 * profiles' patterns: literal segments as sent, parameters percent-decoded. Returns false
 * for an unknown path; on success the caller releases out with route_free(). */
bool route_match(const char *path, struct route *out);
void route_free(struct route *route);

/* The fixed routes: the health check, and the pool's status page. */
#define ROUTE_HEALTH "/healthz"
#define ROUTE_STATUS "/status"

#endif
