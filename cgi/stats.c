/* stats.c: the pool's counters in shared memory, and their two renderings.
 * Entry points: stats_open(), stats_worker_started(), stats_worker_stopped(),
 * stats_request_begin(), stats_request_end(), stats_set_slow_us(),
 * stats_write_json(), stats_write_openmetrics(), stats_listen_queue(). */
#include "stats.h"

#include "log.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROUTES       12
#define NAME_MAX_LEN 24
#define BUCKETS      14           /* the last one is +Inf */
#define STATS_MAGIC  0x63707374UL /* "cpst": a block of this layout */

/* Bucket bounds in microseconds, as Prometheus' seconds. */
static const long bounds_us[BUCKETS - 1] = {500,     1000,    2500,   5000,   10000,
                                            25000,   50000,   100000, 250000, 500000,
                                            1000000, 2500000, 5000000};
static const char *const bound_text[BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "+Inf"};

static const char *const methods[] = {"GET",  "PATCH", "OPTIONS", "HEAD",
                                      "POST", "PUT",   "DELETE",  "other"};
#define METHODS (sizeof methods / sizeof methods[0])

static const int statuses[] = {200, 204, 304, 400, 401, 403, 404, 405, 408,
                               412, 413, 414, 415, 429, 500, 501, 503, 0};
#define STATUSES (sizeof statuses / sizeof statuses[0]) /* 0: any other */

struct histogram {
    uint64_t buckets[BUCKETS]; /* each on its own, not cumulative */
    uint64_t sum_us;
};

struct cell {
    uint64_t count;
    struct histogram total, db;
};

struct block {
    unsigned long magic;
    int64_t start_time; /* seconds since the epoch */
    uint64_t accepted, in_flight, max_in_flight;
    uint64_t workers, restarted, slow;
    int64_t slow_us;
    pthread_mutex_t names_lock; /* only for adding a route name */
    char names[ROUTES][NAME_MAX_LEN];
    struct cell cells[ROUTES][METHODS][STATUSES];
};

static struct block *stats;

#define ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)
#define GET(field)    __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* The fd named by STATS_ENV_FD, if it is a block of ours: an unrelated fd
 * of that number must never be mapped and written. */
static int inherited_fd(void)
{
    const char *v = getenv(STATS_ENV_FD);
    char path[64], target[128];

    if (!v || !*v)
        return -1;
    int fd = atoi(v);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0)
        return -1;
    target[n] = '\0';
    return strncmp(target, "/memfd:chatpatch-stats", 22) == 0 ? fd : -1;
}

void stats_open(void)
{
    int fd = inherited_fd();
    bool fresh = fd < 0;

    if (fresh && (fd = memfd_create("chatpatch-stats", 0)) >= 0 &&
        ftruncate(fd, sizeof *stats) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        log_warn("stats: no shared memory for the pool's figures: %s", strerror(errno));
        return;
    }
    void *mem = mmap(NULL, sizeof *stats, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        log_warn("stats: cannot map the pool's figures: %s", strerror(errno));
        close(fd);
        return;
    }
    stats = mem;
    char text[16];
    snprintf(text, sizeof text, "%d", fd);
    setenv(STATS_ENV_FD, text, 1);
    if (fresh || stats->magic != STATS_MAGIC) {
        pthread_mutexattr_t attr;
        memset(stats, 0, sizeof *stats);
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutex_init(&stats->names_lock, &attr);
        pthread_mutexattr_destroy(&attr);
        stats->start_time = (int64_t)time(NULL);
        stats->slow_us = 1000000;
        stats->magic = STATS_MAGIC;
    }
}

void stats_set_slow_us(long us)
{
    if (stats)
        __atomic_store_n(&stats->slow_us, (int64_t)us, __ATOMIC_RELAXED);
}

void stats_set_workers(int n)
{
    if (stats)
        __atomic_store_n(&stats->workers, (uint64_t)n, __ATOMIC_RELAXED);
}

void stats_worker_restarted(void)
{
    if (stats)
        ADD(stats->restarted, 1);
}

static int listener_fd = -1;

void stats_set_listener(int fd)
{
    listener_fd = fd;
}

long stats_listener_queue(void)
{
    return listener_fd < 0 ? -1 : stats_listen_queue(listener_fd);
}

void stats_request_begin(void)
{
    if (!stats)
        return;
    ADD(stats->accepted, 1);
    uint64_t now = ADD(stats->in_flight, 1);
    uint64_t max = GET(stats->max_in_flight);
    while (now > max &&
           !__atomic_compare_exchange_n(&stats->max_in_flight, &max, now, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* The index of a route name, added to the block's table when new; -1 when
 * the table is full. */
static int route_index(const char *route)
{
    for (int i = 0; i < ROUTES && stats->names[i][0]; i++)
        if (strncmp(stats->names[i], route, NAME_MAX_LEN) == 0)
            return i;
    int found = -1;
    pthread_mutex_lock(&stats->names_lock);
    for (int i = 0; i < ROUTES && found < 0; i++) {
        if (!stats->names[i][0]) {
            strncpy(stats->names[i], route, NAME_MAX_LEN - 1);
            found = i;
        } else if (strncmp(stats->names[i], route, NAME_MAX_LEN) == 0) {
            found = i;
        }
    }
    pthread_mutex_unlock(&stats->names_lock);
    return found;
}

static size_t method_index(const char *method)
{
    size_t i = 0;

    while (i < METHODS - 1 && strcmp(methods[i], method) != 0)
        i++;
    return i;
}

static size_t status_index(int status)
{
    size_t i = 0;

    while (i < STATUSES - 1 && statuses[i] != status)
        i++;
    return i;
}

static void observe(struct histogram *h, long us)
{
    size_t b = 0;

    while (b < BUCKETS - 1 && us > bounds_us[b])
        b++;
    ADD(h->buckets[b], 1);
    ADD(h->sum_us, (uint64_t)(us > 0 ? us : 0));
}

void stats_request_end(const char *route, const char *method, int status, long total_us,
                       long db_us)
{
    if (!stats)
        return;
    ADD(stats->in_flight, (uint64_t)-1);
    if (total_us > GET(stats->slow_us))
        ADD(stats->slow, 1);
    int r = route_index(route);
    if (r < 0)
        return;
    struct cell *c = &stats->cells[r][method_index(method)][status_index(status)];
    ADD(c->count, 1);
    observe(&c->total, total_us);
    observe(&c->db, db_us);
}

/* ---- the listening socket's backlog ---------------------------------------- */

/* A unix listener's backlog, from the kernel's socket diagnostics. */
static long unix_queue(int fd)
{
    struct stat st;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } q = {
        .nlh = {.nlmsg_len = sizeof q,
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST},
        .req = {.sdiag_family = AF_UNIX,
                .udiag_states = 1 << 10 /* TCP_LISTEN */,
                .udiag_show = UDIAG_SHOW_RQLEN,
                .udiag_cookie = {~0U, ~0U}},
    };
    char reply[1024];
    long found = -1;

    if (fstat(fd, &st) != 0)
        return -1;
    q.req.udiag_ino = (unsigned)st.st_ino;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    ssize_t n = -1;
    if (send(nl, &q, sizeof q, 0) == (ssize_t)sizeof q)
        n = recv(nl, reply, sizeof reply, 0);
    close(nl);
    for (struct nlmsghdr *h = (struct nlmsghdr *)reply; n > 0 && NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
            break;
        struct unix_diag_msg *m = NLMSG_DATA(h);
        struct rtattr *a = (struct rtattr *)(m + 1);
        int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
        for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
            if (a->rta_type == UNIX_DIAG_RQLEN)
                found = (long)((struct unix_diag_rqlen *)RTA_DATA(a))->udiag_rqueue;
    }
    return found;
}

long stats_listen_queue(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;

    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    if (addr.ss_family == AF_UNIX)
        return unix_queue(fd);
    struct tcp_info info;
    len = sizeof info;
    /* For a listener, tcpi_unacked is its accept queue. */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return -1;
    return (long)info.tcpi_unacked;
}

/* ---- rendering ----------------------------------------------------------------- */

static void add_u64(struct buf *out, uint64_t v)
{
    buf_add_long(out, (long long)v);
}

static void add_ms(struct buf *out, uint64_t us)
{
    buf_add_long(out, (long long)(us / 1000));
    buf_addc(out, '.');
    char frac[4] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10), 0};
    buf_adds(out, frac);
}

static void add_seconds(struct buf *out, uint64_t us)
{
    buf_add_long(out, (long long)(us / 1000000));
    buf_addc(out, '.');
    char frac[7];
    uint64_t f = us % 1000000;
    for (int i = 5; i >= 0; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    frac[6] = 0;
    buf_adds(out, frac);
}

static void add_iso_time(struct buf *out, int64_t t)
{
    char text[32];
    struct tm tm;
    time_t tt = (time_t)t;

    gmtime_r(&tt, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_add_json_string(out, text, strlen(text));
}

/* What every rendering says about the pool. */
struct pool_view {
    int64_t start_time, uptime;
    uint64_t accepted, in_flight, max_in_flight, workers, restarted, slow;
    int64_t slow_us;
    long listen_queue;
};

static struct pool_view view(long listen_queue)
{
    struct pool_view v = {.listen_queue = listen_queue};

    if (!stats)
        return v;
    v.start_time = stats->start_time;
    v.uptime = (int64_t)time(NULL) - v.start_time;
    v.accepted = GET(stats->accepted);
    v.in_flight = GET(stats->in_flight);
    v.max_in_flight = GET(stats->max_in_flight);
    v.workers = GET(stats->workers);
    v.restarted = GET(stats->restarted);
    v.slow = GET(stats->slow);
    v.slow_us = GET(stats->slow_us);
    return v;
}

static void json_histogram(struct buf *out, const char *name, const struct histogram *h)
{
    uint64_t cumulative = 0;

    buf_adds(out, ",\"");
    buf_adds(out, name);
    buf_adds(out, "\":{\"sum_ms\":");
    add_ms(out, GET(h->sum_us));
    buf_adds(out, ",\"buckets\":{");
    for (size_t b = 0; b < BUCKETS; b++) {
        cumulative += GET(h->buckets[b]);
        buf_adds(out, b ? ",\"" : "\"");
        buf_adds(out, bound_text[b]);
        buf_adds(out, "\":");
        add_u64(out, cumulative);
    }
    buf_adds(out, "}}");
}

void stats_write_json(struct buf *out, long listen_queue)
{
    struct pool_view v = view(listen_queue);
    bool first = true;

    buf_adds(out, "{\"pool\":{\"start_time\":");
    add_iso_time(out, v.start_time);
    buf_adds(out, ",\"start_since\":");
    buf_add_long(out, v.uptime);
    buf_adds(out, ",\"accepted\":");
    add_u64(out, v.accepted);
    buf_adds(out, ",\"in_flight\":");
    add_u64(out, v.in_flight);
    buf_adds(out, ",\"listen_queue\":");
    buf_add_long(out, v.listen_queue);
    buf_adds(out, ",\"workers\":{\"active\":");
    add_u64(out, v.in_flight);
    buf_adds(out, ",\"idle\":");
    add_u64(out, v.workers > v.in_flight ? v.workers - v.in_flight : 0);
    buf_adds(out, ",\"total\":");
    add_u64(out, v.workers);
    buf_adds(out, ",\"max_active\":");
    add_u64(out, v.max_in_flight);
    buf_adds(out, ",\"restarted\":");
    add_u64(out, v.restarted);
    buf_adds(out, "},\"slow_requests\":");
    add_u64(out, v.slow);
    buf_adds(out, ",\"slow_request_ms\":");
    buf_add_long(out, v.slow_us / 1000);
    buf_adds(out, "},\"requests\":[");
    for (int r = 0; stats && r < ROUTES && stats->names[r][0]; r++)
        for (size_t m = 0; m < METHODS; m++)
            for (size_t s = 0; s < STATUSES; s++) {
                const struct cell *c = &stats->cells[r][m][s];
                uint64_t count = GET(c->count);
                if (!count)
                    continue;
                buf_adds(out, first ? "{\"route\":" : ",{\"route\":");
                first = false;
                buf_add_json_string(out, stats->names[r], strlen(stats->names[r]));
                buf_adds(out, ",\"method\":\"");
                buf_adds(out, methods[m]);
                buf_adds(out, "\",\"status\":");
                if (statuses[s])
                    buf_add_long(out, statuses[s]);
                else
                    buf_adds(out, "\"other\"");
                buf_adds(out, ",\"count\":");
                add_u64(out, count);
                json_histogram(out, "total", &c->total);
                json_histogram(out, "db", &c->db);
                buf_addc(out, '}');
            }
    buf_adds(out, "]}");
}

static void metric_head(struct buf *out, const char *name, const char *type,
                        const char *help)
{
    buf_adds(out, "# TYPE ");
    buf_adds(out, name);
    buf_addc(out, ' ');
    buf_adds(out, type);
    buf_adds(out, "\n# HELP ");
    buf_adds(out, name);
    buf_addc(out, ' ');
    buf_adds(out, help);
    buf_addc(out, '\n');
}

static void gauge(struct buf *out, const char *name, const char *type, const char *help,
                  long long value)
{
    metric_head(out, name, type, help);
    buf_adds(out, name);
    if (strcmp(type, "counter") == 0)
        buf_adds(out, "_total");
    buf_addc(out, ' ');
    buf_add_long(out, value);
    buf_addc(out, '\n');
}

static void labels(struct buf *out, int r, size_t m, size_t s)
{
    buf_adds(out, "{route=\"");
    buf_adds(out, stats->names[r]);
    buf_adds(out, "\",method=\"");
    buf_adds(out, methods[m]);
    buf_adds(out, "\",status=\"");
    if (statuses[s])
        buf_add_long(out, statuses[s]);
    else
        buf_adds(out, "other");
    buf_addc(out, '"');
}

static void om_histogram(struct buf *out, const char *name, int r, size_t m, size_t s,
                         const struct histogram *h, uint64_t count)
{
    uint64_t cumulative = 0;

    for (size_t b = 0; b < BUCKETS; b++) {
        cumulative += GET(h->buckets[b]);
        buf_adds(out, name);
        buf_adds(out, "_bucket");
        labels(out, r, m, s);
        buf_adds(out, ",le=\"");
        buf_adds(out, bound_text[b]);
        buf_adds(out, "\"} ");
        add_u64(out, cumulative);
        buf_addc(out, '\n');
    }
    buf_adds(out, name);
    buf_adds(out, "_count");
    labels(out, r, m, s);
    buf_adds(out, "} ");
    add_u64(out, count);
    buf_addc(out, '\n');
    buf_adds(out, name);
    buf_adds(out, "_sum");
    labels(out, r, m, s);
    buf_adds(out, "} ");
    add_seconds(out, GET(h->sum_us));
    buf_addc(out, '\n');
}

void stats_write_openmetrics(struct buf *out, long listen_queue)
{
    struct pool_view v = view(listen_queue);
    static const struct {
        const char *name, *help;
        bool db;
    } histograms[] = {
        {"chatpatch_request_duration_seconds",
         "Time from the request read to its answer.", false},
        {"chatpatch_request_db_seconds", "Time spent waiting for PostgreSQL.", true},
    };

    gauge(out, "chatpatch_start_time_seconds", "gauge", "When the pool started.",
          v.start_time);
    gauge(out, "chatpatch_accepted_requests", "counter", "Requests accepted.",
          (long long)v.accepted);
    gauge(out, "chatpatch_requests_in_flight", "gauge", "Requests being answered.",
          (long long)v.in_flight);
    gauge(out, "chatpatch_listen_queue", "gauge",
          "Connections waiting in the listening socket's backlog (-1: unknown).",
          v.listen_queue);
    gauge(out, "chatpatch_workers_active", "gauge", "Workers answering a request.",
          (long long)v.in_flight);
    gauge(out, "chatpatch_workers_idle", "gauge", "Workers waiting for a request.",
          (long long)(v.workers > v.in_flight ? v.workers - v.in_flight : 0));
    gauge(out, "chatpatch_workers_max_active", "gauge",
          "The most workers seen busy at once.", (long long)v.max_in_flight);
    gauge(out, "chatpatch_workers_restarted", "counter", "Workers the pool replaced.",
          (long long)v.restarted);
    gauge(out, "chatpatch_slow_requests", "counter",
          "Requests slower than the threshold.", (long long)v.slow);
    metric_head(out, "chatpatch_requests", "counter", "Requests answered.");
    for (int r = 0; stats && r < ROUTES && stats->names[r][0]; r++)
        for (size_t m = 0; m < METHODS; m++)
            for (size_t s = 0; s < STATUSES; s++) {
                uint64_t count = GET(stats->cells[r][m][s].count);
                if (!count)
                    continue;
                buf_adds(out, "chatpatch_requests_total");
                labels(out, r, m, s);
                buf_adds(out, "} ");
                add_u64(out, count);
                buf_addc(out, '\n');
            }
    for (size_t k = 0; k < 2; k++) {
        metric_head(out, histograms[k].name, "histogram", histograms[k].help);
        for (int r = 0; stats && r < ROUTES && stats->names[r][0]; r++)
            for (size_t m = 0; m < METHODS; m++)
                for (size_t s = 0; s < STATUSES; s++) {
                    const struct cell *c = &stats->cells[r][m][s];
                    uint64_t count = GET(c->count);
                    if (count)
                        om_histogram(out, histograms[k].name, r, m, s,
                                     histograms[k].db ? &c->db : &c->total, count);
                }
    }
    buf_adds(out, "# EOF\n");
}
