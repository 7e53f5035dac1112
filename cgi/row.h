/* row.h: a representation from the statement's binary row to JSON. */
#ifndef CHATPATCH_ROW_H
#define CHATPATCH_ROW_H

#include "api.h"
#include "buf.h"

#include <stddef.h>
#include <stdint.h>

/* Appends the profile's representation, read from a record in the binary
 * format (the statement's ROW(...) of the profile's columns, in order), to
 * out: an object with the profile's keys in order, under its envelope if it
 * has one. Returns false when the record is not what the profile says (a
 * statement out of step with it). */
bool row_write_json(const struct api_profile *api, const char *record, size_t len,
                    struct buf *out);

/* The value of an int8 column in the binary format (8 bytes, big-endian). */
int64_t row_int8(const char *p);

/* Appends a timestamp as JavaScript's Date.prototype.toISOString writes it
 * (milliseconds, cut), quoted; null for infinite ones. us counts
 * microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's epoch. */
void row_add_timestamp(struct buf *out, int64_t us);

#endif
