/* malloc_tune.h: glibc's allocator set for a worker that lives long and
 * allocates the same few dozen blocks for every request. */
#ifndef CHATPATCH_MALLOC_TUNE_H
#define CHATPATCH_MALLOC_TUNE_H

/* The tunable a FastCGI process starts with (README, Performance). */
#define MALLOC_TUNE_TUNABLE "glibc.malloc.tcache_count"
#define MALLOC_TUNE_VALUE   "64"

/* Sets what mallopt() can set; call first. */
void malloc_tune(void);

/* Executes this binary again with the tunable in GLIBC_TUNABLES (glibc
 * reads it only as a process starts), unless it is there already, set by
 * the operator or by this call before the exec. Returns only when it did
 * not execute: already set, under valgrind (which would not follow), or
 * the exec failed (logged; the process goes on untuned). Call before any
 * file or socket is opened. */
void malloc_tune_exec(char **argv);

#endif
