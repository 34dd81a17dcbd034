/*
 * ddpm/sha256.h — SHA-256 (FIPS 180-4) for content-addressing scripts, configs,
 * checkpoints and artifacts in the run store. Not a general crypto library:
 * no HMAC, no constant-time promises.
 */
#ifndef DDPM_SHA256_H
#define DDPM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ddpm_sha256 {
   uint32_t h[8];
   uint64_t bytes;              /* message length so far */
   unsigned char buf[64];       /* partial block */
   size_t nbuf;
} ddpm_sha256;

void ddpm_sha256_init(ddpm_sha256 *c);
void ddpm_sha256_update(ddpm_sha256 *c, const void *data, size_t n);
/* Writes the 32-byte digest; c must be re-initialised before reuse. */
void ddpm_sha256_final(ddpm_sha256 *c, unsigned char out[32]);

/* Digest of a buffer as 64 lowercase hex characters + NUL. */
void ddpm_sha256_hex(const void *data, size_t n, char hex[65]);
/* Digest of a regular file's contents; *bytes (may be NULL) gets its size.
   DDPM_EIO with the path and strerror when it cannot be read. */
int  ddpm_sha256_file(const char *path, char hex[65], int64_t *bytes);

#endif
