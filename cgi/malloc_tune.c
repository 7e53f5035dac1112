/* malloc_tune.c: glibc's allocator set for a worker that lives long and
 * allocates the same few dozen blocks for every request.
 * Entry points: malloc_tune(), malloc_tune_exec().
 *
 * libfcgi allocates about 20 blocks for each request (a string per
 * param, three streams of three blocks) and frees them all at its end.
 * glibc's per-thread cache keeps 7 freed blocks of each size; the rest go
 * to the fast bins, and the next request's 8 KiB stream buffer, a large
 * block, first merges every fast bin back into the heap
 * (malloc_consolidate). With 64 per size, every small block of a request
 * is kept for the next one: a Recoup PATCH costs the worker about 2,500
 * fewer instructions (46,400 -> 43,900, callgrind) and 10% less CPU
 * (README, Performance). */
#include "malloc_tune.h"

#include "log.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TUNABLES_ENV "GLIBC_TUNABLES"

void malloc_tune(void)
{
    /* Keep what a large request needed for the next one: by default glibc
     * gives blocks of 128 KiB and more back to the kernel at once (mmap)
     * and trims the heap, so a 64 KiB body with thousands of problems paid
     * page faults for every page it touched, on every request, more than
     * its work. */
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
}

/* valgrind runs a program through its preloaded helpers; an exec leaves
 * it (children are not traced by default) and the checks with it. */
static bool under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");

    return preload && strstr(preload, "vgpreload");
}

void malloc_tune_exec(char **argv)
{
    const char *have = getenv(TUNABLES_ENV);
    char self[PATH_MAX], tunables[1024];

    if ((have && strstr(have, MALLOC_TUNE_TUNABLE "=")) || under_valgrind())
        return;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    int len =
        snprintf(tunables, sizeof tunables, "%s%s%s", have ? have : "",
                 have && *have ? ":" : "", MALLOC_TUNE_TUNABLE "=" MALLOC_TUNE_VALUE);
    if (n < 0 || (size_t)n >= sizeof self - 1 || len < 0 ||
        (size_t)len >= sizeof tunables) {
        log_warn("cannot set %s for glibc's malloc; going on without it",
                 MALLOC_TUNE_TUNABLE);
        return;
    }
    self[n] = '\0';
    char *old = have ? strdup(have) : NULL;
    if (setenv(TUNABLES_ENV, tunables, 1) == 0)
        execv(self, argv);
    log_warn("cannot execute %s again with %s: %s; going on without it", self, tunables,
             strerror(errno));
    if (old)
        setenv(TUNABLES_ENV, old, 1);
    else
        unsetenv(TUNABLES_ENV);
    free(old);
}
