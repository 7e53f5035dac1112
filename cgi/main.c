/* main.c: options and how this process was started.
 * Entry point: main().
 *
 *   chatpatch --listen PATH|HOST:PORT --workers N   own socket, prefork pool
 *   chatpatch [--workers N]                          socket inherited on fd 0
 *                                                    (a FastCGI process manager:
 *                                                    spawn-fcgi, mod_fcgid)
 *   chatpatch [--workers N]  (LISTEN_FDS=1)          systemd socket activation
 *   GATEWAY_INTERFACE=CGI/1.1 chatpatch              one CGI request
 *
 * With --listen, --workers or a reload's socket, a pool (pool.c) forks the
 * workers; an inherited socket without --workers is served by this process
 * alone, which its manager restarts. Either ends with status 0 on SIGTERM
 * and never by itself. */
#include "engine.h"
#include "errors.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "serve.h"
#include "stats.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options {
    struct listen_options listen;
    int workers;
    bool workers_given;
    size_t max_body;
    int statement_timeout_ms;
    int db_connections;
    const char *log_file;
    const char *print_errors;
};

/* The help text is also the man page's OPTIONS section (help2man, see
 * doc/chatpatch.h2m): each option is written once, here. */
static void usage(FILE *out)
{
    fputs(
        "Usage: chatpatch [OPTION]...\n"
        "Serve the \"update a chat\" endpoints of the Recoup, Neptun and LeanMCP APIs\n"
        "over FastCGI, from PostgreSQL.\n"
        "\n"
        "Without --listen, serve the FastCGI socket a process manager passes on fd 0,\n"
        "or the one systemd passes (LISTEN_FDS); with neither, and GATEWAY_INTERFACE\n"
        "set, answer the one CGI request of the environment and stdin.\n"
        "\n"
        "Options:\n"
        "      --listen=ADDRESS       create the FastCGI socket: a unix socket PATH, or\n"
        "                             HOST:PORT for TCP\n"
        "      --workers=N            run a pool of N worker processes (1 to 256; "
        "default 1);\n"
        "                             the pool replaces any that dies, reloads on "
        "SIGHUP\n"
        "      --socket-mode=OCTAL    permissions of the unix socket created (default:\n"
        "                             as the umask leaves them)\n"
        "      --socket-group=GROUP   group of the unix socket created (the web "
        "server's,\n"
        "                             with --socket-mode 0660)\n"
        "      --max-body=BYTES       answer 413 to larger bodies (default 65536; keep\n"
        "                             nginx's client_max_body_size equal)\n"
        "      --statement-timeout=MS\n"
        "                             PostgreSQL statement_timeout (default 5000); the\n"
        "                             worker answers 503 one second after it\n"
        "      --db-connections=N     PostgreSQL connections of each worker, opened as\n"
        "                             needed (1 to 32; default 2)\n"
        "      --log-level=LEVEL      error, warn, info (default: one access line per\n"
        "                             request) or debug\n"
        "      --log-file=PATH        append the log to PATH instead of stderr (for "
        "hosts\n"
        "                             that discard stderr); reopened on SIGUSR1\n"
        "      --print-errors=DIR     write into DIR the JSON bodies of the answers a "
        "web\n"
        "                             server may give itself (DIR/STATUS.json, and per\n"
        "                             API under its path prefix) and DIR/routes.tsv\n"
        "                             (name, prefix, Allow, CORS origin), fixed.tsv and\n"
        "                             params.tsv (what the nginx snippet passes), then\n"
        "                             exit\n"
        "      --help                 display this help and exit\n"
        "      --version              output version information and exit\n"
        "\n"
        "Database: DATABASE_URL (a libpq conninfo or URI), else libpq's PG* variables;\n"
        "DATABASE_STATEMENTS=unnamed behind a pooler in transaction mode (pgbouncer).\n"
        "\n"
        "Signals: SIGHUP reloads the pool, SIGTERM stops it once the queue is answered,\n"
        "SIGUSR1 reopens the log file (see chatpatch(8)).\n",
        out);
}

/* GNU: a usage error says how to get help, on stderr, and exits 2. */
static void usage_error(const char *what, const char *value)
{
    if (what)
        fprintf(stderr, "chatpatch: %s%s%s\n", what, value ? ": " : "",
                value ? value : "");
    fputs("Usage: chatpatch [OPTION]...\n"
          "Try 'chatpatch --help' for more information.\n",
          stderr);
    exit(2);
}

static void version(void)
{
    fputs("chatpatch " CHATPATCH_VERSION "\n"
          "Copyright (C) 2026 the chatpatch authors.\n" CHATPATCH_LICENSE "\n",
          stdout);
}

static long parse_number(const char *s, int base, long min, long max, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, base);
    if (errno || *end || end == s || v < min || v > max)
        usage_error(what, s);
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
        {"db-connections", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'v'},
        {"log-file", required_argument, NULL, 'f'},
        {"print-errors", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){.listen = {.socket_mode = -1},
                          .workers = 1,
                          .max_body = 65536,
                          .statement_timeout_ms = 5000,
                          .db_connections = 2};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen.address = optarg;
            break;
        case 'w':
            o->workers =
                (int)parse_number(optarg, 10, 1, POOL_MAX_WORKERS, "bad --workers");
            o->workers_given = true;
            break;
        case 'm':
            o->listen.socket_mode = parse_number(optarg, 8, 0, 0777, "bad --socket-mode");
            break;
        case 'g':
            o->listen.socket_group = optarg;
            break;
        case 'b':
            o->max_body =
                (size_t)parse_number(optarg, 10, 1, 64L << 20, "bad --max-body");
            break;
        case 't':
            o->statement_timeout_ms =
                (int)parse_number(optarg, 10, 1, 600000, "bad --statement-timeout");
            break;
        case 'c':
            o->db_connections = (int)parse_number(optarg, 10, 1, DB_MAX_CONNECTIONS,
                                                  "bad --db-connections");
            break;
        case 'v':
            if (!log_parse_level(optarg, &log_level))
                usage_error("bad --log-level", optarg);
            break;
        case 'f':
            o->log_file = optarg;
            break;
        case 'e':
            o->print_errors = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            version();
            exit(0);
        default:
            usage_error(NULL, NULL); /* getopt said what */
        }
    }
    if (optind < argc)
        usage_error("unexpected argument", argv[optind]);
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
    struct listener listener;

    /* Keep what a large request needed for the next one: by default glibc
     * gives blocks of 128 KiB and more back to the kernel at once (mmap) and
     * trims the heap, so a 64 KiB body with thousands of problems paid page
     * faults for every page it touched, on every request, more than its work. */
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);

    parse_options(argc, argv, &o);
    if (o.print_errors)
        return errors_print(o.print_errors) ? 0 : 1;
    if (o.log_file && !log_open_file(o.log_file)) {
        fprintf(stderr, "chatpatch: cannot open --log-file %s: %s\n", o.log_file,
                strerror(errno));
        return 1;
    }
    struct engine_config engine = {.db = {.conninfo = getenv("DATABASE_URL"),
                                          .connections = o.db_connections,
                                          .statement_timeout_ms = o.statement_timeout_ms,
                                          .connect_timeout_s = 2,
                                          .unnamed_statements = unnamed_statements()}};
    struct serve_config serve = {.max_body = o.max_body, .ready_fd = -1};
    engine_init(&engine);

    if (!listener_open(&o.listen, &listener))
        return 1;
    if (listener.origin == LISTENER_NONE) {
        if (!getenv("GATEWAY_INTERFACE"))
            usage_error("no FastCGI socket (--listen, fd 0 or systemd's) and no CGI "
                        "request (GATEWAY_INTERFACE)",
                        NULL);
        return serve_cgi(&serve);
    }
    /* An inherited socket without --workers: this process serves, and its
     * manager restarts it. */
    bool own_pool = o.workers_given || listener.origin == LISTENER_CREATED ||
                    listener.origin == LISTENER_REEXEC;
    stats_open();
    if (!own_pool) {
        stats_set_workers(1);
        return serve_fastcgi(listener.fd, &serve);
    }
    struct pool_config pool = {
        .listener = &listener, .workers = o.workers, .serve = serve, .argv = argv};
    return pool_run(&pool);
}
