/* log.h: levelled lines on stderr, and the one access line per request.
 * Arguments of a level that is off are not evaluated. Never pass a key, a
 * cookie or a body here. */
#ifndef CHATPATCH_LOG_H
#define CHATPATCH_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_level;

/* Parses "error", "warn", "info" or "debug". Returns false otherwise. */
_Bool log_parse_level(const char *name, enum log_level *level);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A worker holds its lines back: on, lines are written in batches (within
 * 200 ms, and always by log_flush() or log_hold(false)); a line longer than
 * the batch is written alone. log_due_us(): when the held lines are to be
 * written (clock_now_us()), 0 when none are held. */
void log_hold(_Bool on);
void log_flush(void);
long log_due_us(void);

/* To be called in a child right after fork(): its lines carry its own pid. */
void log_forked(void);

/* Sends every line (and anything else written to stderr) to path, opened
 * for appending (created 0640 less the umask). Returns false, with errno
 * set, when it cannot be opened; stderr is then unchanged. path must stay
 * valid: log_reopen() opens it again. */
_Bool log_open_file(const char *path);

/* Opens the log file's path again (after logrotate moved the file), after
 * writing the lines held. Without a log file, does nothing; when the path
 * cannot be opened, logs why and keeps the old file. */
void log_reopen(void);

/* The one line per request ops grep for. The request id and the method are
 * the host's and the client's: bounded and escaped, never verbatim. */
void log_access(const char *request_id, const char *method, const char *route, int status,
                long total_us, long db_us);

#define log_at(level, ...)                                                               \
    do {                                                                                 \
        if (log_level >= (level))                                                        \
            log_write((level), __VA_ARGS__);                                             \
    } while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
