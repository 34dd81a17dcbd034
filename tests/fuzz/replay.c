/*
 * replay.c — a main() for a fuzz harness built without libFuzzer, so that
 * `make test` replays the committed inputs with the normal compiler.
 *
 *   build/tests/test_fuzz_<target> [dir ...]
 *
 * With no arguments it replays tests/fuzz/corpus/<target>/ and
 * tests/fuzz/crashers/<target>/ (run from the repository root). The inputs
 * run one after another in this process, so that a sanitizer build checks
 * for leaks once, at exit, rather than once per input. An input that
 * crashes, aborts, trips a sanitizer or hangs (30 s) ends the process with
 * its file named on the last line of output (a signal handler, and
 * the sanitizers' death callback); tests/run.sh shows that line and counts
 * a failure. One check per folder, in the TAP of tests/c/check.h; an empty or
 * missing corpus folder fails (a replay of nothing proves nothing).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../c/check.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_str(const void *a, const void *b)
{
   return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *current;   /* the input being replayed */

static void say_current(void)
{
   if (!current) return;
   /* async-signal-safe: write(2) only */
   const char pre[] = "\n# replay failed on input ";
   ssize_t r = write(2, pre, sizeof pre - 1);
   r = write(2, current, strlen(current));
   r = write(2, "\n", 1);
   (void)r;
}

static void on_signal(int sig)
{
   if (sig == SIGALRM) {
      const char m[] = "\n# hang: over 30 s";
      ssize_t r = write(2, m, sizeof m - 1);
      (void)r;
   }
   say_current();
   signal(sig, SIG_DFL);
   raise(sig);
}

/* The sanitizers' hook, present only in a sanitizer build. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* Runs the harness on the file's bytes; -1 when the file cannot be read. */
static int replay_one(const char *path)
{
   FILE *f = fopen(path, "rb");
   if (!f) { printf("# %s: %s\n", path, strerror(errno)); return -1; }
   struct stat st;
   if (fstat(fileno(f), &st) != 0) { fclose(f); return -1; }
   size_t n = (size_t)st.st_size;
   uint8_t *buf = malloc(n ? n : 1);
   int ok = buf && fread(buf, 1, n, f) == n;
   fclose(f);
   if (!ok) { free(buf); printf("# %s: short read\n", path); return -1; }
   current = path;
   alarm(30);
   LLVMFuzzerTestOneInput(buf, n);
   alarm(0);
   current = NULL;
   free(buf);
   return 0;
}

/* Replays every file of dir; must_exist: a missing or empty dir fails. */
static void replay_dir(const char *dir, int must_exist)
{
   DIR *d = opendir(dir);
   if (!d) {
      if (must_exist) CHECK(0, "%s: cannot open (%s)", dir, strerror(errno));
      else printf("# %s: none\n", dir);
      return;
   }
   char **names = NULL;
   size_t n = 0, cap = 0;
   struct dirent *e;
   while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      if (n == cap) {
         cap = cap ? 2 * cap : 64;
         names = realloc(names, cap * sizeof *names);
         if (!names) { perror("realloc"); exit(2); }
      }
      size_t len = strlen(dir) + strlen(e->d_name) + 2;
      names[n] = malloc(len);
      if (!names[n]) { perror("malloc"); exit(2); }
      snprintf(names[n], len, "%s/%s", dir, e->d_name);
      n++;
   }
   closedir(d);
   if (n) qsort(names, n, sizeof *names, cmp_str);
   int bad = 0;
   for (size_t i = 0; i < n; i++) {
      struct stat st;
      if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (replay_one(names[i]) != 0) bad++;
   }
   if (must_exist && n == 0) CHECK(0, "%s: no inputs", dir);
   else if (n) CHECK(bad == 0, "%s: %zu inputs replayed, %d failed", dir, n, bad);
   for (size_t i = 0; i < n; i++) free(names[i]);
   free(names);
}

int main(int argc, char **argv)
{
   int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
   for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], on_signal);
   if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(say_current);
   if (argc > 1) {
      for (int i = 1; i < argc; i++) replay_dir(argv[i], 1);
   } else {
      replay_dir("tests/fuzz/corpus/" FUZZ_TARGET, 1);
      replay_dir("tests/fuzz/crashers/" FUZZ_TARGET, 0);
   }
   return check_done();
}
