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

/* True when s[0..len) is one RFC 8259 JSON text with white space around it,
 * in valid UTF-8, nested at most max_depth objects and arrays deep (the top
 * level counts as 1), with no U+0000 and no lone surrogate in any string. */
bool jsonscan_valid(const char *s, size_t len, int max_depth);

/* In a text jsonscan_valid() accepted whose top level is an object, finds the
 * raw text of the value of the last member named key (JSON.parse keeps the
 * last duplicate). key is a field name of at most 64 bytes. Returns false
 * when there is no such member. */
bool jsonscan_member(const char *s, size_t len, const char *key, const char **value,
                     size_t *value_len);

#endif
