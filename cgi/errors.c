/* errors.c: the JSON bodies of the answers a web server gives itself
 * (its 413, its 503 when no worker answers, ...), from the API profiles, so
 * a host's config maps them to the very bodies the workers would send.
 * Entry points: errors_body(), errors_print(). */
#include "errors.h"

#include "buf.h"
#include "decide.h"
#include "engine.h"
#include "request.h"
#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 431: lighttpd's answer to a header block over its limit. */
const int errors_host_statuses[] = {400, 403, 404, 405, 408, 413, 414,
                                    429, 431, 500, 501, 503, 505, 0};

char *errors_body(const struct api_profile *api, int status)
{
    struct response res = {0};
    const char *message = NULL;

    /* The worker's own wording where a profile has one (engine.c). */
    if (api && status == 413)
        message = api->message_413;
    response_error(&res, api ? api->shape : SHAPE_GENERIC, status, message, NULL);
    return res.body;
}

/* mkdir -p of dir/sub, where sub has no ".." (it is a profile's pattern). */
static bool make_dirs(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len >= sizeof buf)
        return false;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return false;
        *p = '/';
    }
    return mkdir(buf, 0755) == 0 || errno == EEXIST;
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;

    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "chatpatch: cannot write %s: %s\n", path, strerror(errno));
    return ok;
}

/* Writes list to dir/name and frees it. */
static bool write_list(const char *dir, const char *name, struct buf *list)
{
    char path[4096];
    bool ok = (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
              write_file(path, list->data ? list->data : "");

    buf_free(list);
    return ok;
}

/* The literal segments a pattern starts with, as "/api/sessions/". */
static void pattern_prefix(const char *pattern, char *out, size_t cap)
{
    const char *param = strstr(pattern, "{}");
    size_t len = param ? (size_t)(param - pattern) : strlen(pattern);

    snprintf(out, cap, "%.*s", (int)len, pattern);
}

static bool write_bodies(const char *dir, const struct api_profile *api)
{
    char path[4096];

    if (!make_dirs(dir)) {
        fprintf(stderr, "chatpatch: cannot create %s: %s\n", dir, strerror(errno));
        return false;
    }
    for (const int *s = errors_host_statuses; *s; s++) {
        /* A host's own 404 means a path the worker does not know either,
         * and the worker answers those in no API's shape (route.c), even
         * under an API's prefix: the host finds no file here and takes
         * the generic one. */
        if (api && *s == 404)
            continue;
        char *body = errors_body(api, *s);
        bool ok =
            (size_t)snprintf(path, sizeof path, "%s/%d.json", dir, *s) < sizeof path &&
            write_file(path, body);
        free(body);
        if (!ok)
            return false;
    }
    return true;
}

/* The fixed routes (no API's): fixed.tsv with each one's path and Allow,
 * and the health check's own 503 under its path (healthz/503.json); their
 * other answers are the generic ones. */
static bool write_fixed(const char *dir)
{
    static const char *const fixed[] = {ROUTE_HEALTH, ROUTE_STATUS};
    struct buf list = {0};
    char path[4096];
    bool ok;

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        buf_adds(&list, fixed[i]);
        buf_addc(&list, '\t');
        buf_adds(&list, ENGINE_FIXED_ALLOW);
        buf_addc(&list, '\n');
    }
    ok = write_list(dir, "fixed.tsv", &list);
    snprintf(path, sizeof path, "%s%s", dir, ROUTE_HEALTH);
    if (ok && !make_dirs(path)) {
        fprintf(stderr, "chatpatch: cannot create %s: %s\n", path, strerror(errno));
        ok = false;
    }
    if (ok && (size_t)snprintf(path, sizeof path, "%s%s/503.json", dir, ROUTE_HEALTH) <
                  sizeof path)
        ok = write_file(path, ENGINE_HEALTH_UNAVAILABLE);
    return ok;
}

/* params.tsv: the FastCGI params the workers read, one per line, so that
 * the nginx snippet passes those and no others. */
static bool write_params(const char *dir)
{
    struct buf list = {0};
    const char *name;

    for (size_t i = 0; (name = request_param_name(i)); i++) {
        buf_adds(&list, name);
        buf_addc(&list, '\n');
    }
    return write_list(dir, "params.tsv", &list);
}

bool errors_print(const char *dir)
{
    struct buf routes = {0};
    char path[4096], prefix[256], allow[64];
    bool ok = write_bodies(dir, NULL);

    for (const struct api_profile *const *api = api_profiles; ok && *api; api++) {
        pattern_prefix((*api)->pattern, prefix, sizeof prefix);
        decide_allow(*api, allow, sizeof allow);
        /* the prefix's folder, without its last '/' */
        snprintf(path, sizeof path, "%s%.*s", dir, (int)strlen(prefix) - 1, prefix);
        ok = write_bodies(path, *api);
        buf_adds(&routes, (*api)->name);
        buf_addc(&routes, '\t');
        buf_adds(&routes, prefix);
        buf_addc(&routes, '\t');
        buf_adds(&routes, allow);
        buf_addc(&routes, '\t');
        buf_adds(&routes, (*api)->cors ? (*api)->cors->allow_origin : "-");
        buf_addc(&routes, '\n');
    }
    if (!ok) {
        buf_free(&routes);
        return false;
    }
    return write_list(dir, "routes.tsv", &routes) && write_fixed(dir) &&
           write_params(dir);
}
