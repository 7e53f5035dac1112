/* etag.h: the entity tag of a chat's version, and the If-Match and
 * If-None-Match lists that name tags (RFC 9110, 8.8.3 and 13.1).
 *
 * A chat's ETag is its version number, quoted: "42". The version changes
 * on every update of the row (api.h), so the tag is a strong validator. */
#ifndef CHATPATCH_ETAG_H
#define CHATPATCH_ETAG_H

#include "buf.h"

#include <stdbool.h>
#include <stdint.h>

/* Room for the longest tag: a quote, 19 digits, a quote, the NUL. */
#define ETAG_MAX 24

/* Writes the ETag of version into out, quoted, NUL-terminated. */
void etag_format(int64_t version, char out[ETAG_MAX]);

/* What a conditional header asks for. */
enum etag_condition {
    ETAG_ABSENT, /* no header, or an empty one (an empty header counts as none) */
    ETAG_ANY,    /* "*": any current representation */
    ETAG_LIST,   /* a list of entity tags, possibly one that names nothing */
};

enum etag_condition etag_condition_of(const char *header);

/* Whether the header's list names version's tag. With strong comparison
 * (If-Match) a weak tag W/"n" never matches; with weak comparison
 * (If-None-Match) it matches "n". "*" matches any version. A list that is
 * not RFC 9110's #entity-tag syntax matches nothing: the client asked for a
 * condition, and no version can meet one it did not state clearly. */
bool etag_matches(const char *header, int64_t version, bool weak);

/* The versions a strong comparison with the header's list can match, as a
 * PostgreSQL bigint[] literal appended to out ("{7,9}"; "{}" when it names
 * none, such as only weak tags or tags that are no version of ours). Returns
 * false, appending nothing, when the header is absent or "*": no condition. */
bool etag_versions(const char *header, struct buf *out);

#endif
