/* log.c: one line per event on stderr: UTC time, pid, level, text.
 * Entry points: log_write(), log_access(), log_parse_level(), log_open_file(),
 * log_reopen().
 *
 * With --log-file, the file is put on fd 2 itself (dup2), so that whatever
 * else writes to stderr (libpq's notices, a sanitizer's report) lands there
 * too: hosts such as lighttpd and mod_fcgid send a worker's stderr to
 * /dev/null. logrotate moves the file and sends SIGUSR1; every process then
 * opens the path anew (log_reopen), as nginx does with USR1.
 *
 * Lines are built by hand, with the date part kept for the second it
 * names: the access line is written once per request, and vfprintf and
 * strftime were a visible part of a request's cost. */
#include "log.h"

#include "buf.h"
#include "clock.h"

#include <stdbool.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
#define METHOD_MAX     32  /* bytes of the method kept */
#define ID_MAX         128 /* bytes of the request id kept (request.c allows as many) */

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

struct line {
    char text[LINE_MAX_BYTES];
    size_t len;
};

static void add(struct line *l, const char *s, size_t n)
{
    if (n > sizeof l->text - 1 - l->len)
        n = sizeof l->text - 1 - l->len; /* the newline always fits */
    memcpy(l->text + l->len, s, n);
    l->len += n;
}

static void adds(struct line *l, const char *s)
{
    add(l, s, strlen(s));
}

static void add_long(struct line *l, long v)
{
    char digits[BUF_LONG_MAX];
    size_t len;
    const char *text = buf_format_long(v, digits, &len);

    add(l, text, len);
}

static pid_t pid; /* 0 until first asked, and again in a forked child */

void log_forked(void)
{
    pid = 0;
}

/* "2026-11-21T21:33:53.375Z [4242] info: " */
static void add_prefix(struct line *l, enum log_level level)
{
    static time_t stamped = -1;
    static char stamp[24];
    struct timeval tv;

    gettimeofday(&tv, NULL);
    if (tv.tv_sec != stamped) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        stamped = tv.tv_sec;
    }
    if (!pid)
        pid = getpid();
    adds(l, stamp);
    int m = (int)(tv.tv_usec / 1000);
    char ms[6] = {
        '.', (char)('0' + m / 100), (char)('0' + m / 10 % 10), (char)('0' + m % 10), 'Z',
        0};
    adds(l, ms);
    adds(l, " [");
    add_long(l, pid);
    adds(l, "] ");
    adds(l, names[level]);
    adds(l, ": ");
}

/* Lines held back by a worker (log_hold), written with one write when
 * this is nearly full or the oldest is HOLD_US old, busy or not (written
 * whenever the worker had nothing to do, they cost a write and an
 * epoll_wait for every other request under load). Whole lines only, so
 * that the workers' lines never interleave. */
#define HOLD_BYTES 4096
#define HOLD_US    (200 * 1000)
static struct {
    bool on;
    char text[HOLD_BYTES];
    size_t len;
    long since_us;
} held;

static void write_all(const char *text, size_t len)
{
    if (write(STDERR_FILENO, text, len) < 0) {
        /* Nowhere left to report it. */
    }
}

static const char *file_path; /* --log-file, or NULL for the inherited stderr */

/* Opens path for appending onto fd 2. Returns false (errno set) and leaves
 * fd 2 as it was when the file cannot be opened. */
static bool put_file_on_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0)
        return false;
    if (fd != STDERR_FILENO) {
        int ok = dup2(fd, STDERR_FILENO) >= 0;
        int saved = errno;
        close(fd);
        errno = saved;
        return ok;
    }
    return true;
}

bool log_open_file(const char *path)
{
    if (!put_file_on_stderr(path))
        return false;
    file_path = path;
    return true;
}

void log_reopen(void)
{
    if (!file_path)
        return;
    log_flush();
    if (!put_file_on_stderr(file_path))
        log_error("cannot reopen the log file %s: %s; still writing to the old one",
                  file_path, strerror(errno));
}

void log_flush(void)
{
    if (held.len > 0)
        write_all(held.text, held.len);
    held.len = 0;
}

void log_hold(bool on)
{
    if (!on)
        log_flush();
    held.on = on;
}

long log_due_us(void)
{
    return held.len > 0 ? held.since_us + HOLD_US : 0;
}

/* Writes the line, or with batch and log_hold on, adds it to the held ones.
 * A line that is not batched comes after the held ones. */
static void emit(struct line *l, bool batch)
{
    l->text[l->len++] = '\n';
    if (!held.on || !batch) {
        log_flush();
        write_all(l->text, l->len);
        return;
    }

    long now = clock_now_us();
    if (held.len > 0 &&
        (held.len + l->len > sizeof held.text || now - held.since_us > HOLD_US))
        log_flush();
    if (held.len == 0)
        held.since_us = now;
    memcpy(held.text + held.len, l->text, l->len);
    held.len += l->len;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    struct line l = {.len = 0};
    va_list ap;

    add_prefix(&l, level);
    va_start(ap, fmt);
    int n = vsnprintf(l.text + l.len, sizeof l.text - l.len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l.len +=
            (size_t)n < sizeof l.text - 1 - l.len ? (size_t)n : sizeof l.text - 1 - l.len;
    /* No newline from a message (libpq's end with one) splits a line. */
    l.len = strcspn(l.text, "\n") < l.len ? strcspn(l.text, "\n") : l.len;
    emit(&l, false);
}

static int is_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-_.!#$%&*+^`|~@", c));
}

/* A field a client may choose: at most max bytes, every byte that is not a
 * plain token character written \xHH, "..." when cut. The line stays far
 * below LINE_MAX_BYTES, so nothing after it is ever lost. */
static void add_escaped(struct line *l, const char *s, size_t max)
{
    size_t n = strlen(s), end = n < max ? n : max;

    for (size_t i = 0; i < end;) {
        /* A run of plain bytes (a whole request id, as a rule) at once. */
        size_t run = i;
        while (run < end && is_plain((unsigned char)s[run]))
            run++;
        add(l, s + i, run - i);
        if (run == end)
            break;
        unsigned char c = (unsigned char)s[run];
        char esc[4] = {'\\', 'x', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
        add(l, esc, 4);
        i = run + 1;
    }
    if (n > max)
        adds(l, "...");
}

void log_access(const char *request_id, const char *method, const char *route, int status,
                long total_us, long db_us)
{
    struct line l = {.len = 0};

    if (log_level < LOG_INFO)
        return;
    add_prefix(&l, LOG_INFO);
    adds(&l, "access rid=");
    add_escaped(&l, request_id, ID_MAX);
    adds(&l, " method=");
    add_escaped(&l, method, METHOD_MAX);
    adds(&l, " route=");
    adds(&l, route);
    adds(&l, " status=");
    add_long(&l, status);
    adds(&l, " total_us=");
    add_long(&l, total_us);
    adds(&l, " db_us=");
    add_long(&l, db_us);
    emit(&l, true);
}
