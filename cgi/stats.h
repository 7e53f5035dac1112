/* stats.h: the pool's figures for GET /status, as PHP-FPM's status page
 * has them, plus per route, method and status the request count and
 * histograms of total and database time.
 *
 * The figures live in one shared memory block that the pool creates
 * before its workers start, so that every worker process (and thread)
 * counts into the same numbers and any of them can answer /status; the
 * block survives a worker's restart and is handed to a reloaded pool. All
 * updates are atomic; a reader sees each number whole, not all of them
 * from the same instant. */
#ifndef CHATPATCH_STATS_H
#define CHATPATCH_STATS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* What a pool re-executing itself passes its new image: the block's fd. */
#define STATS_ENV_FD "CHATPATCH_STATS_FD"

/* Attaches to the block a reloading pool passed (STATS_ENV_FD), or creates
 * one (a memfd, so that it can outlive an exec) and names it in the
 * environment for a later reload. Without one, no figures are kept and
 * /status answers zeros. Call before forking workers. */
void stats_open(void);

/* The pool's own events: how many workers run, and one replaced. */
void stats_set_workers(int n);
void stats_worker_restarted(void);

/* The listening socket whose backlog /status reports. */
void stats_set_listener(int fd);
long stats_listener_queue(void);

/* A request accepted and in flight, then answered. route is the profile's
 * name, "health", "status" or "unknown"; method is the client's. */
void stats_request_begin(void);
void stats_request_end(const char *route, const char *method, int status, long total_us,
                       long db_us);

/* Requests slower than this count as slow (default 1 s). */
void stats_set_slow_us(long us);

/* The figures as JSON, or in the OpenMetrics text format, appended to out.
 * listen_queue is the connections waiting in the listening socket's
 * backlog (-1 when unknown). */
void stats_write_json(struct buf *out, long listen_queue);
void stats_write_openmetrics(struct buf *out, long listen_queue);

/* The number of connections waiting in the backlog of the listening
 * socket fd (unix or TCP), or -1 when it cannot be told. */
long stats_listen_queue(int fd);

#endif
