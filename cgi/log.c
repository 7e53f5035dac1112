/* log.c: one line per event on stderr: UTC time, pid, level, text.
 * Entry points: log_write(), log_parse_level(). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level = LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

_Bool log_parse_level(const char *name, enum log_level *level)
{
    for (int i = LOG_ERROR; i <= LOG_DEBUG; i++) {
        if (strcmp(name, names[i]) == 0) {
            *level = (enum log_level)i;
            return 1;
        }
    }
    return 0;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char line[1024], stamp[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof line, "%s.%03ldZ [%d] %s: ", stamp, (long)tv.tv_usec / 1000,
                 (int)getpid(), names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so that the workers' lines never interleave, and no
     * newline from a message (libpq's end with one) splits a line. */
    size_t len = strcspn(line, "\n");
    line[len] = '\n';
    if (write(STDERR_FILENO, line, len + 1) < 0) {
        /* Nowhere left to report it. */
    }
}
