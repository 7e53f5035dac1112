/* sqltext.c: prints the SQL statement a worker prepares for an API, and
 * its route, from the very profiles the worker is built from (cgi/api*.c),
 * so that `make bench` gives pgbench the same text byte for byte and wrk the
 * worker's own paths.
 *
 *   sqltext               one line per API: name, number of parameters ($N)
 *   sqltext NAME          that API's statement, exactly, with no newline added
 *   sqltext --route NAME  that API's path pattern, "{}" for each parameter
 *
 * Exit 2 on an unknown name. */
#include "api.h"

#include <ctype.h>
#include <stdbool.h>
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

int main(int argc, char **argv)
{
    if (argc == 1) {
        for (const struct api_profile *const *api = api_profiles; *api; api++)
            printf("%s %ld\n", (*api)->name, max_param((*api)->sql));
        return 0;
    }
    bool route = argc == 3 && strcmp(argv[1], "--route") == 0;
    const char *name = argv[argc - 1];

    for (const struct api_profile *const *api = api_profiles; *api; api++)
        if (strcmp((*api)->name, name) == 0) {
            fputs(route ? (*api)->pattern : (*api)->sql, stdout);
            return 0;
        }
    fprintf(stderr, "sqltext: no API named %s\n", name);
    return 2;
}
