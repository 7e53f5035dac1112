/* sqltext.c: prints the SQL statement a worker prepares for an API, and
 * its route, from the very profiles the worker is built from (cgi/api*.c),
 * so that `make bench` gives pgbench the same text byte for byte and wrk the
 * worker's own paths.
 *
 *   sqltext                one line per API: name, parameters ($N) of its PATCH
 *   sqltext NAME [METHOD]  that API's statement for METHOD (PATCH), exactly,
 *                          with no newline added
 *   sqltext --route NAME   that API's path pattern, "{}" for each parameter
 *   sqltext --ops NAME     that API's operations, one "METHOD STATUS STATEMENT"
 *                          a line: its success status, and "-" for an
 *                          operation that runs none (a preflight)
 *   sqltext --settings     the workers' session settings, one NAME=VALUE a line
 *                          (the statement timeout aside)
 *   sqltext --values METHOD PATH [NAME: VALUE]...   (the body on stdin)
 *                          the values the worker's engine gives the statement
 *                          for that request, as a JSON array (null for NULL)
 *
 * Exit 2 on an unknown name. */
#include "api.h"
#include "buf.h"
#include "db.h"
#include "engine.h"
#include "request.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The highest $N in the text: the statement's parameter count. */
static long max_param(const char *sql)
{
    long max = 0;

    for (const char *p = strchr(sql, '$'); p; p = strchr(p + 1, '$')) {
        if (!isdigit((unsigned char)p[1]))
            continue;
        long n = strtol(p + 1, NULL, 10);
        if (n > max)
            max = n;
    }
    return max;
}

static const struct api_profile *profile(const char *name)
{
    for (const struct api_profile *const *api = api_profiles; *api; api++)
        if (strcmp((*api)->name, name) == 0)
            return *api;
    return NULL;
}

static void print_ops(const struct api_profile *api)
{
    for (size_t i = 0; i < api->nops; i++)
        printf("%s %d %s\n", api->ops[i].method, api->ops[i].status,
               api->ops[i].sql ? "statement" : "-");
}

static const char *statement(const struct api_profile *api, const char *method)
{
    for (size_t i = 0; i < api->nops; i++)
        if (strcmp(api->ops[i].method, method) == 0)
            return api->ops[i].sql;
    return NULL;
}

/* The body, handed to request_read() from memory. */
struct body {
    const char *bytes;
    size_t len;
    size_t pos;
};

static size_t read_body(void *ctx, char *buf, size_t n)
{
    struct body *b = ctx;
    size_t left = b->len - b->pos;

    if (n > left)
        n = left;
    memcpy(buf, b->bytes + b->pos, n);
    b->pos += n;
    return n;
}

static void add_value(int n, const char *value, void *ctx)
{
    struct buf *out = ctx;

    buf_adds(out, n > 1 ? "," : "[");
    if (value)
        buf_add_json_string(out, value, strlen(value));
    else
        buf_adds(out, "null");
}

/* "NAME=value", malloc-ed. */
static char *param(const char *name, const char *value)
{
    struct buf p = {0};

    buf_adds(&p, name);
    buf_addc(&p, '=');
    buf_adds(&p, value);
    return buf_take(&p, NULL);
}

/* The request as a CGI host passes it (each header as HTTP_NAME), through
 * the worker's own request and engine code. */
static int explain(int argc, char **argv)
{
    static char bytes[1 << 20];
    struct body body = {bytes, fread(bytes, 1, sizeof bytes, stdin), 0};
    char *env[64], length[32];
    int n = 0, count;
    const char *sql = NULL;
    struct buf out = {0};
    struct request req;

    if (argc < 2 || argc > 60)
        return 2;
    env[n++] = param("REQUEST_METHOD", argv[0]);
    env[n++] = param("REQUEST_URI", argv[1]);
    snprintf(length, sizeof length, "%zu", body.len);
    env[n++] = param("CONTENT_LENGTH", length);
    for (int i = 2; i < argc; i++) {
        char name[128] = "HTTP_";
        const char *colon = strchr(argv[i], ':');
        size_t k = colon ? (size_t)(colon - argv[i]) : 0;
        if (!colon || k + 6 > sizeof name)
            return 2;
        for (size_t j = 0; j < k; j++)
            name[5 + j] =
                argv[i][j] == '-' ? '_' : (char)toupper((unsigned char)argv[i][j]);
        name[5 + k] = '\0';
        /* CGI passes Content-Type without the HTTP_ prefix */
        const char *key = strcmp(name, "HTTP_CONTENT_TYPE") == 0 ? name + 5 : name;
        env[n++] = param(key, colon + 1 + strspn(colon + 1, " "));
    }
    env[n] = NULL;
    request_read(&req, env, read_body, &body, true, sizeof bytes);
    count = engine_explain(&req, &sql, add_value, &out);
    request_free(&req);
    for (int i = 0; i < n; i++)
        free(env[i]);
    if (count < 0) {
        fprintf(stderr, "sqltext: that request runs no statement\n");
        return 2;
    }
    buf_adds(&out, "]\n");
    fputs(out.data, stdout);
    buf_free(&out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--values") == 0)
        return explain(argc - 2, argv + 2);

    const char *method = argc > 2 ? argv[2] : "PATCH";

    if (argc == 1) {
        for (const struct api_profile *const *api = api_profiles; *api; api++)
            printf("%s %ld\n", (*api)->name, max_param(statement(*api, "PATCH")));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--settings") == 0) {
        for (const struct db_setting *s = db_session_settings; s->name; s++)
            printf("%s=%s\n", s->name, s->value);
        return 0;
    }
    if (argc == 3 && (strcmp(argv[1], "--route") == 0 || strcmp(argv[1], "--ops") == 0)) {
        const struct api_profile *api = profile(argv[2]);

        if (!api) {
            fprintf(stderr, "sqltext: no API named %s\n", argv[2]);
            return 2;
        }
        if (strcmp(argv[1], "--route") == 0)
            fputs(api->pattern, stdout);
        else
            print_ops(api);
        return 0;
    }
    for (const struct api_profile *const *api = api_profiles; *api; api++) {
        const char *sql = statement(*api, method);
        if (strcmp((*api)->name, argv[1]) == 0 && sql) {
            fputs(sql, stdout);
            return 0;
        }
    }
    fprintf(stderr, "sqltext: no API named %s with %s\n", argv[1], method);
    return 2;
}
