/* jsonscan.h: strict JSON syntax, as JavaScript's JSON.parse accepts it.
 *
 * json-c builds the tree we read fields from, but it is lenient where the
 * services are not (it takes `1.`, NaN, single quotes, raw control
 * characters), turns lone surrogates into U+FFFD and clamps big integers.
 * So every body passes this scanner first, and values that must reach
 * PostgreSQL exactly (jsonb) are taken from the raw text it locates. */
#ifndef CHATPATCH_JSONSCAN_H
#define CHATPATCH_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

enum json_kind {
    JSON_NULL,
    JSON_BOOLEAN,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
};

/* One member of an object, pointing into the text. */
struct json_member {
    const char *key; /* the raw text between the key's quotes */
    size_t key_len;
    const char *value; /* the value's raw text, without white space around */
    size_t value_len;
    enum json_kind kind;
    bool key_escaped; /* has escapes: jsonscan_decode() it before comparing */
};

struct json_members {
    struct json_member *items; /* malloc-ed: jsonscan_members_free() */
    size_t count;
    size_t cap;
};

/* True when s[0..len) is one RFC 8259 JSON text with white space around it,
 * in valid UTF-8, nested at most max_depth objects and arrays deep (the top
 * level counts as 1), with no U+0000 and no lone surrogate in any string. */
bool jsonscan_valid(const char *s, size_t len, int max_depth);

/* jsonscan_valid(), in the same single pass telling the kind of the top
 * level and, when it is an object, appending its members to *members in
 * body order (duplicates included). On false, *members may hold a part. */
bool jsonscan_parse(const char *s, size_t len, int max_depth, enum json_kind *top,
                    struct json_members *members);
void jsonscan_members_free(struct json_members *members);

/* Decodes the raw inside of a string jsonscan accepted (a member's key, or
 * a string value without its quotes) into out, which has room for raw_len
 * bytes: decoding never grows a string. Returns the decoded length. */
size_t jsonscan_decode(const char *raw, size_t raw_len, char *out);

#endif
