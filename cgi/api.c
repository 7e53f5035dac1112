/* api.c: the profiles this worker serves. A new API is its api_*.c file and
 * one more line here. */
#include "api.h"

extern const struct api_profile api_recoup, api_neptun, api_leanmcp;

const struct api_profile *const api_profiles[] = {
    &api_recoup,
    &api_neptun,
    &api_leanmcp,
    NULL,
};
