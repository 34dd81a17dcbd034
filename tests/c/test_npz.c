/*
 * test_npz.c — the .npz reader and writer (runtime/npz.c): a round trip of
 * our own files; files written by numpy (stored and deflated, float32 and
 * float64, Fortran order, a scalar) read with the values numpy wrote; our
 * file read back by numpy.load; and damaged files (every truncation, every
 * single-byte change of a small file, a wrong CRC, a bad header) refused
 * with a message, never a crash.
 *
 * numpy comes with python3-torch; without it the numpy cases skip with a
 * message.
 */
#include "check.h"
#include "ddpm.h"
#include "ddpm/npz.h"

#include <stdint.h>
#include <unistd.h>

static uint8_t *slurp(const char *path, size_t *len)
{
   FILE *f = fopen(path, "rb");
   if (!f) return NULL;
   fseek(f, 0, SEEK_END);
   long n = ftell(f);
   fseek(f, 0, SEEK_SET);
   uint8_t *b = malloc((size_t)n + 1);
   if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
   fclose(f);
   *len = (size_t)n;
   return b;
}

int main(void)
{
   const char *path = "build/tests/npz_roundtrip.npz";
   double mu[3] = { 1.5, -2.25, 1e-300 }, sigma[6] = { 1, 2, 3, 4, 5, 6 }, n = 50000;
   const char *names[3] = { "mu", "sigma", "n" };
   const int nd[3] = { 1, 2, 0 };
   const int64_t s_mu[1] = { 3 }, s_sigma[2] = { 2, 3 };
   const int64_t *shapes[3] = { s_mu, s_sigma, NULL };
   const double *data[3] = { mu, sigma, &n };
   CHECK(ddpm_npz_write(path, 3, names, nd, shapes, data) == DDPM_OK, "write: %s", ddpm_errmsg());
   ddpm_npz *z = ddpm_npz_open(path);
   CHECK(z && ddpm_npz_count(z) == 3, "read back 3 arrays (%s)", z ? "ok" : ddpm_errmsg());
   if (z) {
      const ddpm_npy *a = ddpm_npz_find(z, "mu"), *s = ddpm_npz_find(z, "sigma"), *c = ddpm_npz_find(z, "n");
      CHECK(a && a->ndim == 1 && a->shape[0] == 3 && a->dtype == DDPM_DT_F64 && !memcmp(a->data, mu, sizeof mu),
            "mu round-trips exactly");
      CHECK(s && s->ndim == 2 && s->shape[0] == 2 && s->shape[1] == 3 && !memcmp(s->data, sigma, sizeof sigma),
            "sigma [2,3] round-trips exactly");
      CHECK(c && c->ndim == 0 && c->numel == 1 && c->data[0] == 50000, "a scalar round-trips");
      CHECK(ddpm_npz_find(z, "nope") == NULL, "an absent name is NULL");
   }
   ddpm_npz_close(z);

   /* damage: every truncation and every byte changed, refused or read, never a crash */
   size_t len = 0;
   uint8_t *b = slurp(path, &len);
   CHECK(b != NULL, "read the file's bytes");
   int trunc_ok = 1;
   for (size_t k = 0; b && k < len; k++) {
      ddpm_clearerr();
      ddpm_npz *t = ddpm_npz_parse(b, k, "truncated");
      if (t || !ddpm_errmsg()[0]) trunc_ok = 0;
      ddpm_npz_close(t);
   }
   CHECK(trunc_ok, "each of the %zu truncations is refused with a message", len);
   {
      ddpm_npz *t = ddpm_npz_parse(b, len - 10, "cut.npz");
      printf("# e.g. %s\n", ddpm_errmsg());
      CHECK(!t && strstr(ddpm_errmsg(), "cut.npz"), "the message names the file");
   }
   int flips = 0, accepted = 0;
   for (size_t k = 0; b && k < len; k++) {
      uint8_t *c = malloc(len);
      memcpy(c, b, len);
      c[k] ^= 0x5a;
      ddpm_clearerr();
      ddpm_npz *t = ddpm_npz_parse(c, len, "flipped");
      if (!t && !ddpm_errmsg()[0]) flips++;
      if (t) accepted++;
      ddpm_npz_close(t);
      free(c);
   }
   printf("# %d of %zu single-byte changes still parse (zip fields numpy ignores too)\n", accepted, len);
   CHECK(flips == 0, "every refused change has a message");
   /* a flipped data byte is caught by the CRC */
   if (b) {
      const char *hit = memmem(b, len, "\x93NUMPY", 6);
      uint8_t *c = malloc(len);
      memcpy(c, b, len);
      c[(hit - (const char *)b) + 130] ^= 1;   /* inside mu's values */
      ddpm_npz *t = ddpm_npz_parse(c, len, "x.npz");
      CHECK(!t && strstr(ddpm_errmsg(), "CRC"), "a changed value fails the CRC: %s", ddpm_errmsg());
      ddpm_npz_close(t);
      free(c);
   }
   free(b);
   CHECK(ddpm_npz_open("build/tests/no-such.npz") == NULL && strstr(ddpm_errmsg(), "no-such.npz"),
         "a missing file: %s", ddpm_errmsg());
   CHECK(ddpm_npz_write(path, 2, (const char *[]){ "a", "a" }, nd, shapes, data) == DDPM_EINVAL,
         "repeated names are refused");

   /* numpy interop */
   if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
      printf("# SKIP: numpy is not installed; the numpy interop cases are not run\n");
      return check_done();
   }
   int rc = system("/usr/bin/python3 -c \"import numpy as np\n"
                   "d = np.load('build/tests/npz_roundtrip.npz')\n"
                   "assert sorted(d.files) == ['mu', 'n', 'sigma'], d.files\n"
                   "assert d['mu'].tolist() == [1.5, -2.25, 1e-300]\n"
                   "assert d['sigma'].tolist() == [[1, 2, 3], [4, 5, 6]] and d['n'] == 50000\n"
                   "s = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4) / 7)\n"
                   "np.savez_compressed('build/tests/npz_numpy_z.npz', sigma=s, mu=np.float32([0.1, 2.5]), k=np.int64(-7))\n"
                   "np.savez('build/tests/npz_numpy.npz', sigma=s.T, big=np.arange(3, dtype='>f8'), b=np.array([True, False]))\n\"");
   CHECK(rc == 0, "numpy reads our file exactly and writes its own");
   z = ddpm_npz_open("build/tests/npz_numpy_z.npz");
   CHECK(z != NULL, "numpy's savez_compressed (deflate) reads: %s", z ? "ok" : ddpm_errmsg());
   if (z) {
      const ddpm_npy *s = ddpm_npz_find(z, "sigma"), *m = ddpm_npz_find(z, "mu"), *k = ddpm_npz_find(z, "k");
      int ok = s && s->ndim == 2 && s->shape[0] == 3 && s->shape[1] == 4;
      for (int i = 0; ok && i < 12; i++) ok = s->data[i] == (double)i / 7;
      CHECK(ok, "a Fortran-order float64 [3,4] comes back in C order, exactly");
      CHECK(m && m->dtype == DDPM_DT_F32 && m->data[0] == (double)0.1f && m->data[1] == 2.5, "float32 values");
      CHECK(k && k->ndim == 0 && k->data[0] == -7, "an int64 scalar");
   }
   ddpm_npz_close(z);
   z = ddpm_npz_open("build/tests/npz_numpy.npz");
   CHECK(z != NULL, "numpy's savez (stored) reads: %s", z ? "ok" : ddpm_errmsg());
   if (z) {
      const ddpm_npy *s = ddpm_npz_find(z, "sigma"), *g = ddpm_npz_find(z, "big"), *t = ddpm_npz_find(z, "b");
      int ok = s && s->shape[0] == 4 && s->shape[1] == 3;
      for (int i = 0; ok && i < 4; i++)
         for (int j = 0; ok && j < 3; j++) ok = s->data[i * 3 + j] == (double)(j * 4 + i) / 7;
      CHECK(ok, "a transposed view saved by numpy reads as its values");
      CHECK(g && g->data[0] == 0 && g->data[1] == 1 && g->data[2] == 2, "big-endian float64");
      CHECK(t && t->data[0] == 1 && t->data[1] == 0, "bool");
   }
   ddpm_npz_close(z);
   unlink("build/tests/npz_numpy.npz");
   unlink("build/tests/npz_numpy_z.npz");
   unlink(path);
   return check_done();
}
