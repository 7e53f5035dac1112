/* pool.h: the prefork pool of workers on one listening socket. */
#ifndef CHATPATCH_POOL_H
#define CHATPATCH_POOL_H

#include "listener.h"
#include "serve.h"

#define POOL_MAX_WORKERS 256

/* What a pool re-executing itself passes to its new image besides the
 * listening socket (listener.h): the workers still running, for the new
 * generation to retire once it accepts, and the generation's number. */
#define POOL_ENV_WORKERS    "CHATPATCH_WORKER_PIDS"
#define POOL_ENV_GENERATION "CHATPATCH_GENERATION"

struct pool_config {
    const struct listener *listener;
    int workers;
    struct serve_config serve; /* ready_fd is the pool's */
    char **argv;               /* this process's own, to re-execute with */
};

/* Runs the pool until SIGTERM or SIGINT: forks the workers and replaces
 * any that dies; SIGHUP re-executes this program (same pid, same socket) to
 * start a new generation, and the old workers stop accepting once every
 * new one accepts; SIGUSR1 reopens the log file, the workers' too. On
 * SIGTERM, removes the unix socket path the pool created, lets the workers
 * drain the backlog, and returns the exit status (0) once they are gone. */
int pool_run(const struct pool_config *config);

#endif
