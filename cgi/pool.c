/* pool.c: the prefork pool, its generations and its signals.
 * Entry point: pool_run().
 *
 * The parent only forks, reaps, respawns and relays signals; the workers
 * serve (serve.c). A reload keeps the pid, so pid files and systemd's
 * MAINPID stay right, and keeps the listening socket, so nothing queued on
 * it is lost:
 *
 *   SIGHUP   (or SIGUSR2, as PHP-FPM) the parent re-executes its own
 *            binary by path (a new build takes effect) with the listening
 *            socket's fd and the pids of the running workers in the
 *            environment. The new image forks a new generation; each new
 *            worker reports on a pipe once it watches the socket. When all
 *            have, the old workers get SIGUSR2: they stop accepting, answer
 *            what they accepted and exit. At every moment some worker
 *            accepts. When the binary cannot be executed, the running
 *            generation goes on.
 *   SIGTERM  the parent removes the unix socket path it created (nothing
 *            new can queue), then SIGTERMs the workers, which drain the
 *            backlog (serve.c); SIGKILL only after STOP_GRACE_S.
 *   SIGUSR1  the log file is reopened, by the parent and every worker. */
#include "pool.h"

#include "clock.h"
#include "log.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Busy workers get the statement timeout and their drain (serve.c) before
 * the parent insists. */
#define STOP_GRACE_S 15
/* A worker that dies at once must not turn into a fork storm. */
#define RESPAWN_PAUSE_US (100 * 1000)
/* After the socket path is removed, connect() calls that had already found
 * it may still be queueing their connection. */
#define SETTLE_NS (50 * 1000 * 1000)
/* Workers of earlier generations still finishing, at most. */
#define MAX_OLD (4 * POOL_MAX_WORKERS)

static volatile sig_atomic_t stop_requested, reload_requested, reopen_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP || sig == SIGUSR2)
        reload_requested = 1;
    else if (sig == SIGUSR1)
        reopen_requested = 1;
    else if (sig == SIGTERM || sig == SIGINT)
        stop_requested = 1;
    /* SIGCHLD only ends the wait. */
}

static const int pool_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD};
#define N_SIGNALS (sizeof pool_signals / sizeof *pool_signals)

/* ppoll delivers the signals it lets in only when it has to wait (see
 * serve.c): those still pending are taken here. */
static void take_pending(const sigset_t *watched)
{
    static const struct timespec now = {0, 0};
    int sig;

    while ((sig = sigtimedwait(watched, NULL, &now)) > 0)
        on_signal(sig);
}

struct worker {
    pid_t pid; /* 0: the slot is empty */
    bool ready;
};

static struct {
    const struct pool_config *config;
    unsigned long generation;
    struct worker current[POOL_MAX_WORKERS];
    pid_t old[MAX_OLD]; /* earlier generations' workers, not yet reaped */
    int n_old;
    bool old_retired;
    int ready_pipe[2];
    char self[PATH_MAX]; /* this binary's path, to re-execute */
} pool;

/* The workers of the generation this image took over from. */
static void adopt_old_workers(void)
{
    const char *s = getenv(POOL_ENV_WORKERS);
    const char *gen = getenv(POOL_ENV_GENERATION);

    pool.generation = gen ? strtoul(gen, NULL, 10) : 0;
    while (s && *s) {
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s)
            break;
        if (pid > 0 && pool.n_old < MAX_OLD)
            pool.old[pool.n_old++] = (pid_t)pid;
        else if (pid > 0)
            kill((pid_t)pid, SIGUSR2); /* no room to follow it: retire it now */
        s = *end == ',' ? end + 1 : end;
    }
    unsetenv(POOL_ENV_WORKERS);
    unsetenv(POOL_ENV_GENERATION);
}

static pid_t spawn_worker(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid == 0) {
        struct serve_config serve = pool.config->serve;
        log_forked();
        close(pool.ready_pipe[0]);
        serve.ready_fd = pool.ready_pipe[1];
        /* A worker whose parent is gone (killed, or a reload whose new
         * image failed) drains and ends rather than serve on unwatched. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            exit(0);
        /* Signals stay blocked: serve_fastcgi() installs its handlers and
         * lets them in only while it waits. */
        signal(SIGCHLD, SIG_DFL);
        exit(serve_fastcgi(pool.config->listener->fd, &serve));
    }
    if (pid < 0)
        log_error("fork: %s", strerror(errno));
    return pid;
}

static void signal_all(int sig)
{
    for (int i = 0; i < pool.config->workers; i++)
        if (pool.current[i].pid > 0)
            kill(pool.current[i].pid, sig);
    for (int i = 0; i < pool.n_old; i++)
        kill(pool.old[i], sig);
}

static int alive_count(void)
{
    int n = pool.n_old;

    for (int i = 0; i < pool.config->workers; i++)
        n += pool.current[i].pid > 0;
    return n;
}

/* Forgets a child that ended; returns whether it was a current worker. */
static bool forget(pid_t pid)
{
    for (int i = 0; i < pool.config->workers; i++) {
        if (pool.current[i].pid == pid) {
            pool.current[i] = (struct worker){0};
            return true;
        }
    }
    for (int i = 0; i < pool.n_old; i++) {
        if (pool.old[i] == pid) {
            pool.old[i] = pool.old[--pool.n_old];
            break;
        }
    }
    return false;
}

/* Reaps the children that ended. Returns whether a current worker did. */
static bool reap(void)
{
    bool lost = false;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (!forget(pid) || stop_requested)
            continue;
        lost = true;
        stats_worker_restarted();
        log_warn("pool: worker %d ended (%s %d); starting another", (int)pid,
                 WIFSIGNALED(status) ? "signal" : "status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    return lost;
}

/* Marks the workers that reported they watch the socket. */
static void read_ready(void)
{
    pid_t pids[64];
    ssize_t got;

    while ((got = read(pool.ready_pipe[0], pids, sizeof pids)) > 0) {
        for (size_t k = 0; k < (size_t)got / sizeof *pids; k++)
            for (int i = 0; i < pool.config->workers; i++)
                if (pool.current[i].pid == pids[k])
                    pool.current[i].ready = true;
    }
}

/* Once every worker of this generation accepts, the old ones stop. */
static void retire_old_when_ready(void)
{
    if (pool.n_old == 0 || pool.old_retired)
        return;
    for (int i = 0; i < pool.config->workers; i++)
        if (!pool.current[i].ready)
            return;
    for (int i = 0; i < pool.n_old; i++)
        kill(pool.old[i], SIGUSR2);
    pool.old_retired = true;
    log_info("pool: generation %lu accepts; %d workers of the previous one retire",
             pool.generation, pool.n_old);
}

/* Appends ",pid" for each running worker to buf; returns false when it
 * does not fit. */
static bool list_workers(char *buf, size_t size)
{
    size_t len = 0;
    pid_t pids[POOL_MAX_WORKERS + MAX_OLD];
    int n = 0;

    for (int i = 0; i < pool.config->workers; i++)
        if (pool.current[i].pid > 0)
            pids[n++] = pool.current[i].pid;
    for (int i = 0; i < pool.n_old; i++)
        pids[n++] = pool.old[i];
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        int w = snprintf(buf + len, size - len, "%s%d", i ? "," : "", (int)pids[i]);
        if (w < 0 || (size_t)w >= size - len)
            return false;
        len += (size_t)w;
    }
    return true;
}

/* SIGHUP: becomes the new image, or logs why not and goes on as it was. */
static void reexec(void)
{
    static char workers[(POOL_MAX_WORKERS + MAX_OLD) * 12];
    char fd[16], ino[32], gen[32];
    const struct listener *l = pool.config->listener;
    int flags = fcntl(l->fd, F_GETFD);

    if (!list_workers(workers, sizeof workers)) {
        log_error("pool: too many workers to hand over; not reloading");
        return;
    }
    snprintf(fd, sizeof fd, "%d", l->fd);
    snprintf(ino, sizeof ino, "%lu", l->path ? (unsigned long)l->ino : 0UL);
    snprintf(gen, sizeof gen, "%lu", pool.generation + 1);
    log_info("pool: SIGHUP: re-executing %s for generation %lu", pool.self,
             pool.generation + 1);
    if (flags < 0 || fcntl(l->fd, F_SETFD, flags & ~FD_CLOEXEC) != 0 ||
        setenv(LISTENER_ENV_FD, fd, 1) != 0 || setenv(LISTENER_ENV_INO, ino, 1) != 0 ||
        setenv(POOL_ENV_WORKERS, workers, 1) != 0 ||
        setenv(POOL_ENV_GENERATION, gen, 1) != 0) {
        log_error("pool: cannot prepare the reload: %s", strerror(errno));
    } else {
        /* Signals stay blocked across execv, and pending ones pending: the
         * new image handles them once it has its handlers. */
        execv(pool.self, pool.config->argv);
        log_error("pool: cannot re-execute %s: %s; generation %lu goes on", pool.self,
                  strerror(errno), pool.generation);
    }
    unsetenv(LISTENER_ENV_FD);
    unsetenv(LISTENER_ENV_INO);
    unsetenv(POOL_ENV_WORKERS);
    unsetenv(POOL_ENV_GENERATION);
}

/* The path of this binary, to re-execute the file there now (a new build
 * installed over it), not the one this process runs. */
static void find_self(void)
{
    ssize_t n = readlink("/proc/self/exe", pool.self, sizeof pool.self - 1);
    static const char deleted[] = " (deleted)";

    if (n < 0) {
        log_warn("pool: cannot read /proc/self/exe (%s): SIGHUP cannot reload",
                 strerror(errno));
        n = 0;
    }
    pool.self[n] = '\0';
    /* Replaced on disk since this image started. */
    size_t len = (size_t)n, dl = sizeof deleted - 1;
    if (len > dl && strcmp(pool.self + len - dl, deleted) == 0)
        pool.self[len - dl] = '\0';
}

/* Stops every worker: SIGTERM (each drains, serve.c), then SIGKILL for any
 * still there after the grace period. */
static void stop_workers(void)
{
    struct timespec settle = {0, SETTLE_NS};
    time_t deadline = time(NULL) + STOP_GRACE_S;

    if (listener_remove_path(pool.config->listener)) {
        log_info("pool: removed %s; answering what is queued",
                 pool.config->listener->path);
        nanosleep(&settle, NULL);
    }
    signal_all(SIGTERM);
    while (alive_count() > 0) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid > 0) {
            forget(pid);
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        if (time(NULL) >= deadline) {
            log_warn("pool: workers still running %d s after SIGTERM: SIGKILL",
                     STOP_GRACE_S);
            signal_all(SIGKILL);
            deadline = time(NULL) + STOP_GRACE_S;
        }
        struct timespec tick = {0, 20 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
}

int pool_run(const struct pool_config *config)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigset_t watched, waiting;

    pool.config = config;
    /* Blocked except while the parent waits. A reloaded image starts with
     * them blocked already: execv keeps the mask. */
    sigemptyset(&watched);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigaddset(&watched, pool_signals[i]);
    sigprocmask(SIG_BLOCK, &watched, &waiting);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigdelset(&waiting, pool_signals[i]);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigaction(pool_signals[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (pipe2(pool.ready_pipe, O_CLOEXEC) != 0 ||
        fcntl(pool.ready_pipe[0], F_SETFL, O_NONBLOCK) != 0) {
        log_error("pool: pipe: %s", strerror(errno));
        return 1;
    }
    find_self();
    adopt_old_workers();
    if (pool.n_old > 0)
        log_info("pool: generation %lu of %d workers, taking over from %d",
                 pool.generation, config->workers, pool.n_old);
    else
        log_info("pool: %d workers on the socket %s", config->workers,
                 listener_origin_name(config->listener->origin));

    long next_spawn_us = 0;
    while (!stop_requested) {
        long now = clock_now_us();
        int timeout = -1;
        for (int i = 0; i < config->workers; i++) {
            if (pool.current[i].pid > 0)
                continue;
            if (now < next_spawn_us) {
                timeout = (int)((next_spawn_us - now) / 1000) + 1;
                continue;
            }
            pid_t pid = spawn_worker();
            pool.current[i] = (struct worker){.pid = pid > 0 ? pid : 0};
            if (pid < 0) {
                next_spawn_us = now + RESPAWN_PAUSE_US;
                timeout = RESPAWN_PAUSE_US / 1000;
            }
        }
        retire_old_when_ready();
        stats_set_workers(alive_count());

        struct pollfd p = {.fd = pool.ready_pipe[0], .events = POLLIN};
        struct timespec ts = {timeout / 1000, (timeout % 1000) * 1000000L};
        if (ppoll(&p, 1, timeout < 0 ? NULL : &ts, &waiting) < 0 && errno != EINTR) {
            log_error("pool: poll: %s", strerror(errno));
            break;
        }
        take_pending(&watched);
        read_ready();
        if (reap())
            next_spawn_us = clock_now_us() + RESPAWN_PAUSE_US;
        retire_old_when_ready();
        if (reopen_requested) {
            reopen_requested = 0;
            log_reopen();
            signal_all(SIGUSR1);
        }
        if (reload_requested && !stop_requested) {
            reload_requested = 0;
            reexec();
        }
    }
    log_info("pool: stopping");
    stop_workers();
    log_info("pool: stopped");
    return 0;
}
