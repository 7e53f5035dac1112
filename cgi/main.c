/* main.c: options, the worker pool and how this process was started.
 *
 *   chatpatch --listen PATH|HOST:PORT --workers N   own socket, prefork pool
 *   chatpatch [--workers N]                          socket inherited on fd 0
 *                                                    (a FastCGI process manager)
 *   GATEWAY_INTERFACE=CGI/1.1 chatpatch              one CGI request
 *
 * The parent only forks, reaps and respawns; children serve. SIGTERM or
 * SIGINT to the parent stops the children after their request in flight. */
#include "engine.h"
#include "log.h"
#include "serve.h"

#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 256
/* A child stuck idle in accept() after SIGTERM has nothing in flight; give
 * busy ones the statement timeout and more before the parent insists. */
#define STOP_GRACE_S 15

struct options {
    const char *listen;
    int workers;
    long socket_mode;         /* -1: as the umask leaves it */
    const char *socket_group; /* NULL: the process's own group */
    size_t max_body;
    int statement_timeout_ms;
};

static volatile sig_atomic_t stop_requested;

static void on_parent_signal(int sig)
{
    if (sig != SIGCHLD)
        stop_requested = 1;
}

static void usage(FILE *out)
{
    fputs(
        "usage: chatpatch [--listen PATH|HOST:PORT] [--workers N] [--socket-mode OCTAL]\n"
        "                 [--socket-group GROUP] [--max-body BYTES] [--statement-timeout "
        "MS]\n"
        "                 [--log-level error|warn|info|debug]\n"
        "Database: DATABASE_URL (libpq conninfo or URI), else libpq's PG* variables;\n"
        "DATABASE_STATEMENTS=unnamed behind a pooler in transaction mode (pgbouncer).\n",

        out);
}

static long parse_number(const char *s, int base, long min, long max, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, base);
    if (errno || *end || end == s || v < min || v > max) {
        fprintf(stderr, "chatpatch: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"socket-mode", required_argument, NULL, 'm'},
        {"socket-group", required_argument, NULL, 'g'},
        {"max-body", required_argument, NULL, 'b'},
        {"statement-timeout", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){
        .workers = 1, .socket_mode = -1, .max_body = 65536, .statement_timeout_ms = 5000};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 'w':
            o->workers = (int)parse_number(optarg, 10, 1, MAX_WORKERS, "--workers");
            break;
        case 'm':
            o->socket_mode = parse_number(optarg, 8, 0, 0777, "--socket-mode");
            break;
        case 'g':
            o->socket_group = optarg;
            break;
        case 'b':
            o->max_body = (size_t)parse_number(optarg, 10, 1, 64L << 20, "--max-body");
            break;
        case 't':
            o->statement_timeout_ms =
                (int)parse_number(optarg, 10, 1, 600000, "--statement-timeout");
            break;
        case 'v':
            if (!log_parse_level(optarg, &log_level)) {
                fprintf(stderr, "chatpatch: bad --log-level: %s\n", optarg);
                exit(2);
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
}

/* libfcgi reads an address without a colon as a unix socket path. */
static bool is_unix_path(const char *listen)
{
    return strchr(listen, ':') == NULL;
}

/* Removes the unix socket at path, and nothing that is not a socket. */
static void remove_socket(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
}

/* Gives the socket to a group, such as the web server's, so that mode 0660
 * lets it connect and nobody else. */
static bool set_group(const char *path, const char *name)
{
    struct group *g = getgrnam(name);

    if (!g) {
        log_error("--socket-group: no group named %s", name);
        return false;
    }
    if (chown(path, (uid_t)-1, g->gr_gid) != 0) {
        log_error("cannot give %s to group %s: %s", path, name, strerror(errno));
        return false;
    }
    return true;
}

static int open_listener(const struct options *o)
{
    int fd;

    if (FCGX_Init() != 0)
        return -1;
    if (is_unix_path(o->listen))
        remove_socket(o->listen); /* a stale one from a previous run */
    fd = FCGX_OpenSocket(o->listen, 1024);
    if (fd < 0) {
        log_error("cannot listen on %s", o->listen);
        return -1;
    }
    if (!is_unix_path(o->listen))
        return fd;
    if (o->socket_group && !set_group(o->listen, o->socket_group))
        return -1;
    if (o->socket_mode >= 0 && chmod(o->listen, (mode_t)o->socket_mode) != 0) {
        log_error("cannot chmod %s: %s", o->listen, strerror(errno));
        return -1;
    }
    return fd;
}

static pid_t spawn_worker(int listen_fd, const struct serve_config *config)
{
    pid_t pid = fork();

    if (pid == 0) {
        sigset_t none;
        log_forked();
        sigemptyset(&none);
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        exit(serve_fastcgi(listen_fd, config));
    }
    if (pid < 0)
        log_error("fork: %s", strerror(errno));
    return pid;
}

/* Stops the children: SIGTERM, then SIGKILL for any still there after the
 * grace period (idle in accept, so nothing is cut). */
static void stop_workers(pid_t *pids, int n)
{
    time_t deadline = time(NULL) + STOP_GRACE_S;
    int alive = 0;

    for (int i = 0; i < n; i++)
        if (pids[i] > 0 && kill(pids[i], SIGTERM) == 0)
            alive++;
    while (alive > 0) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid > 0) {
            for (int i = 0; i < n; i++)
                if (pids[i] == pid)
                    pids[i] = 0, alive--;
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        if (time(NULL) >= deadline) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            deadline = time(NULL) + STOP_GRACE_S;
        }
        struct timespec tick = {0, 20 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
}

/* Forks the workers, replaces any that dies, and stops them all on SIGTERM
 * or SIGINT. */
static int run_pool(int listen_fd, int workers, const struct serve_config *config)
{
    struct sigaction sa = {.sa_handler = on_parent_signal};
    sigset_t watched, none;
    pid_t pids[MAX_WORKERS] = {0};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&none);
    sigemptyset(&watched);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGCHLD);
    sigprocmask(SIG_BLOCK, &watched, NULL);

    log_info("pool: %d workers", workers);
    while (!stop_requested) {
        for (int i = 0; i < workers; i++) {
            if (pids[i] <= 0)
                pids[i] = spawn_worker(listen_fd, config);
        }
        sigsuspend(&none); /* until a child dies or we are told to stop */
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < workers; i++) {
                if (pids[i] != pid)
                    continue;
                pids[i] = 0;
                if (!stop_requested)
                    log_warn("pool: worker %d ended (%s %d); starting another", (int)pid,
                             WIFSIGNALED(status) ? "signal" : "status",
                             WIFSIGNALED(status) ? WTERMSIG(status)
                                                 : WEXITSTATUS(status));
            }
        }
        if (!stop_requested) {
            /* A worker that dies at once must not turn into a fork storm. */
            struct timespec pause = {0, 100 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    log_info("pool: stopping");
    stop_workers(pids, workers);
    log_info("pool: stopped");
    return 0;
}

/* DATABASE_STATEMENTS: "prepared" (the default) or "unnamed" (a pooler in
 * transaction mode, such as pgbouncer 1.18). */
static bool unnamed_statements(void)
{
    const char *v = getenv("DATABASE_STATEMENTS");

    if (!v || !*v || strcmp(v, "prepared") == 0)
        return false;
    if (strcmp(v, "unnamed") == 0)
        return true;
    fprintf(stderr, "chatpatch: bad DATABASE_STATEMENTS: %s (prepared or unnamed)\n", v);
    exit(2);
}

int main(int argc, char **argv)
{
    struct options o;
    int listen_fd = 0;

    /* Keep what a large request needed for the next one: by default glibc
     * gives blocks of 128 KiB and more back to the kernel at once (mmap) and
     * trims the heap, so a 64 KiB body with thousands of problems paid page
     * faults for every page it touched, on every request, more than its work. */
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);

    parse_options(argc, argv, &o);
    struct engine_config engine = {.db = {.conninfo = getenv("DATABASE_URL"),
                                          .statement_timeout_ms = o.statement_timeout_ms,
                                          .connect_timeout_s = 2,
                                          .unnamed_statements = unnamed_statements()}};
    struct serve_config serve = {.max_body = o.max_body};
    engine_init(&engine);

    if (!o.listen) {
        if (FCGX_IsCGI()) {
            if (!getenv("GATEWAY_INTERFACE")) {
                usage(stderr);
                return 2;
            }
            return serve_cgi(&serve);
        }
    } else if ((listen_fd = open_listener(&o)) < 0) {
        return 1;
    }
    if (o.workers == 1 && !o.listen)
        return serve_fastcgi(listen_fd, &serve);
    int status = run_pool(listen_fd, o.workers, &serve);
    if (o.listen && is_unix_path(o.listen))
        remove_socket(o.listen); /* nginx then fails fast, with its JSON 503 */
    return status;
}
