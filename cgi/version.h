/* version.h: what `chatpatch --version` says (and so the man page's
 * header, which help2man takes from it). Bump CHATPATCH_VERSION for each
 * release. */
#ifndef CHATPATCH_VERSION_H
#define CHATPATCH_VERSION_H

#define CHATPATCH_VERSION "1.0.0"

/* No licence has been chosen for chatpatch yet; this line says so until
 * one is. */
#define CHATPATCH_LICENSE                                                                \
    "License: none granted yet; all rights reserved by the authors.\n"                   \
    "There is NO WARRANTY, to the extent permitted by law."

#endif
