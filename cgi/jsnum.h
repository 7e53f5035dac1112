/* jsnum.h: JSON numbers as the JavaScript services see them.
 *
 * The three services are Node.js: JSON.parse makes every number an IEEE-754
 * double and JSON.stringify writes it back in the shortest form that reads
 * back the same double (1e400 becomes null, 1.0 becomes 1, 1e21 becomes
 * 1e+21). LeanMCP's `metadata` is stored and answered that way, so a stored
 * row holds only numbers a double can be, and its answer stays small. */
#ifndef CHATPATCH_JSNUM_H
#define CHATPATCH_JSNUM_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* The longest text jsnum_format() writes ("-1.2345678901234567e-308"). */
#define JSNUM_MAX 32

/* Writes v as JSON.stringify writes a number: Number::toString for a
 * finite v, "null" for an infinity or NaN. Returns the length written
 * (no NUL). */
size_t jsnum_format(double v, char out[JSNUM_MAX]);

/* Appends the JSON text s[0..len) to out as JSON.stringify(JSON.parse(s))
 * would write it, but for key order: every number in JavaScript's form, no
 * white space outside strings, strings as they are. s must be valid JSON
 * (jsonscan_parse() accepted it, or PostgreSQL wrote it). */
void jsnum_normalize_json(const char *s, size_t len, struct buf *out);

#endif
