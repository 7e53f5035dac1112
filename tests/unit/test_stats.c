/* test_stats.c: the pool's figures (cgi/stats.c): counts and histograms per
 * route, method and status; the pool's gauges; both renderings; the listen
 * queue of real unix and TCP listeners with connections waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "stats.h"

static char *json(void)
{
    struct buf b = {0};

    stats_write_json(&b, 7);
    return buf_take(&b, NULL);
}

static char *openmetrics(void)
{
    struct buf b = {0};

    stats_write_openmetrics(&b, 7);
    return buf_take(&b, NULL);
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("no \"%s\" in:\n%s", part, text);
}

/* One block for the whole file: the figures only grow, so each test
 * looks for what it added. */
static int setup(void **state)
{
    (void)state;
    unsetenv(STATS_ENV_FD);
    stats_open();
    return getenv(STATS_ENV_FD) == NULL;
}

static void test_counts_per_route_method_status(void **state)
{
    (void)state;
    stats_set_workers(2);
    for (int i = 0; i < 3; i++) {
        stats_request_begin();
        stats_request_end("recoup", "PATCH", 200, 1500, 900);
    }
    stats_request_begin();
    stats_request_end("neptun", "BREW", 405, 10, 0);
    char *j = json();
    assert_contains(
        j, "{\"route\":\"recoup\",\"method\":\"PATCH\",\"status\":200,\"count\":3,"
           "\"total\":{\"sum_ms\":4.500,\"buckets\":{\"0.0005\":0,\"0.001\":0,"
           "\"0.0025\":3,");
    assert_contains(j, "\"db\":{\"sum_ms\":2.700,\"buckets\":{\"0.0005\":0,\"0.001\":3,");
    assert_contains(
        j, "{\"route\":\"neptun\",\"method\":\"other\",\"status\":405,\"count\":1");
    assert_contains(j, "\"listen_queue\":7");
    assert_contains(j, "\"workers\":{\"active\":0,\"idle\":2,\"total\":2");
    free(j);
}

static void test_in_flight_and_max_active(void **state)
{
    (void)state;
    stats_request_begin();
    stats_request_begin();
    char *during = json();
    assert_contains(during, "\"in_flight\":2");
    stats_request_end("leanmcp", "GET", 404, 5, 2);
    stats_request_end("leanmcp", "GET", 404, 5, 2);
    char *after = json();
    assert_contains(after, "\"in_flight\":0");
    assert_contains(after, "\"max_active\":2");
    free(during);
    free(after);
}

static void test_slow_requests(void **state)
{
    (void)state;
    stats_set_slow_us(1000);
    stats_request_begin();
    stats_request_end("health", "GET", 200, 999, 0);
    stats_request_begin();
    stats_request_end("health", "GET", 503, 2000000, 1999000);
    char *j = json();
    assert_contains(j, "\"slow_requests\":1,\"slow_request_ms\":1}");
    free(j);
}

static void test_openmetrics_text(void **state)
{
    (void)state;
    stats_request_begin();
    stats_request_end("status", "GET", 200, 250, 0);
    char *m = openmetrics();
    assert_contains(m, "# TYPE chatpatch_requests counter\n");
    assert_contains(m, "chatpatch_requests_total{route=\"status\",method=\"GET\","
                       "status=\"200\"} 1\n");
    assert_contains(m, "chatpatch_request_duration_seconds_bucket{route=\"status\","
                       "method=\"GET\",status=\"200\",le=\"0.0005\"} 1\n");
    assert_contains(m, "chatpatch_request_duration_seconds_bucket{route=\"status\","
                       "method=\"GET\",status=\"200\",le=\"+Inf\"} 1\n");
    assert_contains(m, "chatpatch_request_duration_seconds_sum{route=\"status\","
                       "method=\"GET\",status=\"200\"} 0.000250\n");
    assert_contains(m, "chatpatch_listen_queue 7\n");
    size_t n = strlen(m);
    assert_true(n > 6 && strcmp(m + n - 6, "# EOF\n") == 0);
    free(m);
}

/* n connections queued on a listener nobody accepts from. */
static void check_queue(int listener, const struct sockaddr *addr, socklen_t len,
                        int family)
{
    int clients[3];

    assert_int_equal(stats_listen_queue(listener), 0);
    for (int i = 0; i < 3; i++) {
        clients[i] = socket(family, SOCK_STREAM, 0);
        assert_true(clients[i] >= 0);
        assert_int_equal(connect(clients[i], addr, len), 0);
    }
    assert_int_equal(stats_listen_queue(listener), 3);
    for (int i = 0; i < 3; i++)
        close(clients[i]);
}

static void test_listen_queue_unix(void **state)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    (void)state;
    snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/chatpatch-stats-%d.sock",
             getpid());
    unlink(addr.sun_path);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(fd, 16), 0);
    check_queue(fd, (struct sockaddr *)&addr, sizeof addr, AF_UNIX);
    close(fd);
    unlink(addr.sun_path);
}

static void test_listen_queue_tcp(void **state)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    check_queue(fd, (struct sockaddr *)&addr, len, AF_INET);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_per_route_method_status),
        cmocka_unit_test(test_in_flight_and_max_active),
        cmocka_unit_test(test_slow_requests),
        cmocka_unit_test(test_openmetrics_text),
        cmocka_unit_test(test_listen_queue_unix),
        cmocka_unit_test(test_listen_queue_tcp),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
