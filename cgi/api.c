/* api.c: the profiles this worker serves. A new API is one more line here
 * and its api_*.c file. */
#include "api.h"

extern const struct api_profile api_recoup;

const struct api_profile *const api_profiles[] = {
    &api_recoup,
    NULL,
};
