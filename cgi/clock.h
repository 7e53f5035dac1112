/* clock.h: monotonic time in microseconds, for deadlines and the access
 * log's durations (never for wall-clock stamps). */
#ifndef CHATPATCH_CLOCK_H
#define CHATPATCH_CLOCK_H

#include <time.h>

static inline long clock_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

#endif
