/* sha256.c: SHA-256 by nettle.
 * Entry points: sha256(), sha256_bytea_hex().
 *
 * nettle is in every worker already (libpq -> libldap -> gnutls -> nettle),
 * so it adds no library, and its x86_64 build picks the CPU's SHA
 * instructions when they are there. */
#include "sha256.h"

#include <nettle/sha2.h>

void sha256(const void *data, size_t len, uint8_t out[SHA256_BYTES])
{
    struct sha256_ctx ctx;

    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, SHA256_BYTES, out);
}

void sha256_bytea_hex(const void *data, size_t len, char out[SHA256_BYTEA_HEX_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[SHA256_BYTES];

    sha256(data, len, digest);
    out[0] = '\\';
    out[1] = 'x';
    for (int i = 0; i < SHA256_BYTES; i++) {
        out[2 + 2 * i] = hex[digest[i] >> 4];
        out[3 + 2 * i] = hex[digest[i] & 15];
    }
    out[SHA256_BYTEA_HEX_LEN - 1] = '\0';
}
