/* dbhosts.h: the database hosts a worker tries in turn, one attempt each.
 *
 * DATABASE_URL may name several hosts (host=a,b port=5432,5433, or
 * postgresql://a:5432,b:5433/db); a primary and a standby, say, with
 * target_session_attrs=read-write. libpq's blocking connect tries them in
 * turn, each for at most connect_timeout. Connecting without blocking,
 * libpq times nothing out, so one host that accepts and never answers
 * would hold every attempt: the worker makes one attempt per host itself,
 * each with its own deadline, overriding host, hostaddr and port with
 * that host's own. */
#ifndef CHATPATCH_DBHOSTS_H
#define CHATPATCH_DBHOSTS_H

#include <stdbool.h>
#include <stddef.h>

/* The longest host, hostaddr or port list taken apart; a longer one is
 * left to libpq whole. */
#define DB_HOSTS_LIST_MAX 1024

struct db_hosts {
    int count; /* 1: libpq gets the lists as they are */
    char host[DB_HOSTS_LIST_MAX], hostaddr[DB_HOSTS_LIST_MAX], port[DB_HOSTS_LIST_MAX];
};

/* The lists as libpq reads them: from conninfo (a connection string or URI;
 * NULL or a bare database name: none), else from the PG* variables. */
void db_hosts_read(struct db_hosts *h, const char *conninfo);

/* Takes the lists apart: count is how many hosts they name, or 1 when
 * they name one, or cannot be split host by host (an empty entry, lists
 * of different lengths: libpq says what is wrong). */
void db_hosts_split(struct db_hosts *h);

/* The keywords and values that make attempt k (0 <= k < count) connect to
 * host k only, to follow an expanded dbname in libpq's arrays; values point
 * into buf (n bytes). Returns how many (none when count is 1). */
size_t db_hosts_attempt(const struct db_hosts *h, int k, const char *keys[3],
                        const char *values[3], char *buf, size_t n);

#endif
