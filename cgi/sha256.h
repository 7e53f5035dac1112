/* sha256.h: SHA-256 of a byte string (FIPS 180-4).
 *
 * Credentials are stored as sha256 of the key's bytes; hashing here keeps the
 * plaintext key out of every SQL parameter and so out of PostgreSQL's logs. */
#ifndef CHATPATCH_SHA256_H
#define CHATPATCH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

void sha256(const void *data, size_t len, uint8_t out[SHA256_BYTES]);

/* Writes the bytea text literal of the digest ("\\x" + 64 hex digits + NUL)
 * into out, which must hold SHA256_BYTEA_HEX_LEN bytes. */
#define SHA256_BYTEA_HEX_LEN (2 + 2 * SHA256_BYTES + 1)
void sha256_bytea_hex(const void *data, size_t len, char out[SHA256_BYTEA_HEX_LEN]);

#endif
