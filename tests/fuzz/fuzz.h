/*
 * fuzz.h — what the fuzz harnesses in tests/fuzz/ share.
 *
 * Each fuzz_<target>.c defines LLVMFuzzerTestOneInput for one parser of
 * outside bytes. Built with clang -fsanitize=fuzzer (make fuzz) it is a
 * libFuzzer target; built with the normal compiler and replay.c (make test)
 * it replays tests/fuzz/corpus/<target>/ and tests/fuzz/crashers/<target>/.
 *
 * A harness passes when the parser either accepts the input or refuses it
 * with a message; FUZZ_ASSERT states what an accepted input must satisfy.
 * File-based readers get their input through fuzz_write, which puts it in a
 * private temporary folder removed at exit. Not here: anything that would
 * make a harness's outcome depend on an earlier input.
 */
#ifndef DDPM_FUZZ_H
#define DDPM_FUZZ_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond) do {                                                    \
   if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: fuzz assertion failed: %s (last message: %s)\n",    \
              __FILE__, __LINE__, #cond, ddpm_errmsg());                          \
      abort();                                                                    \
   }                                                                              \
} while (0)

/* Every refusal must leave a message saying what was wrong. */
#define FUZZ_REFUSED() FUZZ_ASSERT(ddpm_errmsg() && ddpm_errmsg()[0])

static char fuzz_tmp_[64];

static void fuzz_cleanup_(void)
{
   DIR *d = opendir(fuzz_tmp_);
   if (d) {
      struct dirent *e;
      char p[128];
      while ((e = readdir(d)) != NULL) {
         if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
         snprintf(p, sizeof p, "%s/%s", fuzz_tmp_, e->d_name);
         unlink(p);
      }
      closedir(d);
   }
   rmdir(fuzz_tmp_);
}

/* The private folder (in memory when /dev/shm exists). */
__attribute__((unused)) static const char *fuzz_dir(void)
{
   if (!fuzz_tmp_[0]) {
      const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
      snprintf(fuzz_tmp_, sizeof fuzz_tmp_, "%s/ddpm-fuzz-XXXXXX", base);
      if (!mkdtemp(fuzz_tmp_)) { perror("fuzz: mkdtemp"); abort(); }
      atexit(fuzz_cleanup_);
   }
   return fuzz_tmp_;
}

/* Writes n bytes to <dir>/name (replacing it) and returns the path, which
   stays valid until the next call with a path buffer of the same slot. */
__attribute__((unused)) static const char *fuzz_write(int slot, const char *name,
                                                      const void *data, size_t n)
{
   static char paths[4][160];
   snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
   FILE *f = fopen(paths[slot], "wb");
   if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
      perror("fuzz: write");
      abort();
   }
   return paths[slot];
}

/* Little-endian 32-bit read from the input, for harnesses that split it. */
__attribute__((unused)) static uint32_t fuzz_u32(const uint8_t *p)
{
   return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
