/* field.h: checks and trimming of one text value, as the three JavaScript
 * services see it. */
#ifndef CHATPATCH_FIELD_H
#define CHATPATCH_FIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 sequence at s[0..len). Returns its byte length and the
 * code point in *cp, or 0 when the bytes are not well-formed UTF-8 (overlong
 * forms, surrogates and values above U+10FFFF included). */
size_t field_utf8_decode(const char *s, size_t len, uint32_t *cp);

bool field_utf8_valid(const char *s, size_t len);

/* The value of an ASCII hex digit (any case), or -1. */
int field_hex_digit(int c);

/* True for the code points ECMAScript's String.prototype.trim removes. */
bool field_is_js_space(uint32_t cp);

/* Narrows [*start, *end) of the valid UTF-8 string s to drop leading and
 * trailing JavaScript white space. */
void field_trim(const char *s, size_t *start, size_t *end);

#endif
