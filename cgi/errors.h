/* errors.h: the answers a web server in front of the workers gives itself,
 * written as files for its config (chatpatch --print-errors). */
#ifndef CHATPATCH_ERRORS_H
#define CHATPATCH_ERRORS_H

#include "api.h"

/* The statuses a host may answer itself, 0-terminated. */
extern const int errors_host_statuses[];

/* The body the worker answers for status on one of api's paths (api NULL:
 * a path of no API). Returns a malloc-ed string; the caller frees it. */
char *errors_body(const struct api_profile *api, int status);

/* Writes into dir (created if missing), for every status:
 *   DIR/<status>.json                       paths of no API
 *   DIR/<prefix>/<status>.json              each API's paths, under the
 *                                           literal segments its pattern
 *                                           starts with (api/sessions/...),
 *                                           but for 404: unknown paths are
 *                                           no API's, under any prefix
 * and DIR/routes.tsv, one line per API: name, path prefix, Allow, and
 * Access-Control-Allow-Origin ("-" for none), tab-separated; DIR/fixed.tsv,
 * one line per fixed route (/healthz, /status): path and Allow; and
 * DIR/healthz/503.json, the health check's body without a database; and
 * DIR/params.tsv, the FastCGI params the workers read, one name per line.
 * Returns false after printing why to stderr. */
bool errors_print(const char *dir);

#endif
