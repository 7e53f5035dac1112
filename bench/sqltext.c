/* sqltext.c: prints the SQL statement a worker prepares for an API, and
 * its route, from the very profiles the worker is built from (cgi/api*.c),
 * so that `make bench` gives pgbench the same text byte for byte and wrk the
 * worker's own paths.
 *
 *   sqltext                one line per API: name, parameters ($N) of its PATCH
 *   sqltext NAME [METHOD]  that API's statement for METHOD (PATCH), exactly,
 *                          with no newline added
 *   sqltext --route NAME   that API's path pattern, "{}" for each parameter
 *
 * Exit 2 on an unknown name. */
#include "api.h"

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

static const char *statement(const struct api_profile *api, const char *method)
{
    for (size_t i = 0; i < api->nops; i++)
        if (strcmp(api->ops[i].method, method) == 0)
            return api->ops[i].sql;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *method = argc > 2 ? argv[2] : "PATCH";

    if (argc == 1) {
        for (const struct api_profile *const *api = api_profiles; *api; api++)
            printf("%s %ld\n", (*api)->name, max_param(statement(*api, "PATCH")));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--route") == 0) {
        for (const struct api_profile *const *api = api_profiles; *api; api++)
            if (strcmp((*api)->name, argv[2]) == 0) {
                fputs((*api)->pattern, stdout);
                return 0;
            }
        fprintf(stderr, "sqltext: no API named %s\n", argv[2]);
        return 2;
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
