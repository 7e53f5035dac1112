/* fuzz_common.h: what every libFuzzer target in tests/fuzz/ shares.
 *
 * A target defines FUZZ_TARGET, its name as a string literal, before it
 * includes this header; CHECK() names it in its message. The profiles a
 * target checks each of are the engine's own list, api_profiles (api.h). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET (the target's name) before including fuzz_common.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the target: when it is broken, says which one on stderr
 * and aborts, so that libFuzzer keeps the input as a crash. */
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, FUZZ_TARGET ": invariant broken at %s:%d: %s\n", __FILE__,   \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
