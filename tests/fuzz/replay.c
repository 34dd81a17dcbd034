/*
 * replay.c — a main() for a fuzz harness built without libFuzzer, so that
 * `make test` replays the committed inputs with the normal compiler.
 *
 *   build/tests/test_fuzz_<target> [dir ...]
 *
 * With no arguments it replays tests/fuzz/corpus/<target>/ and
 * tests/fuzz/crashers/<target>/ (run from the repository root). Each input
 * runs in a child process, so a crash, an abort or a hang (30 s) is reported
 * against the file that caused it and the rest still run. One check per
 * folder, in the TAP of tests/c/check.h; an empty or missing corpus folder
 * fails (a replay of nothing proves nothing).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* 0 when the harness returned normally on the file's bytes. */
static int replay_one(const char *path)
{
   fflush(stdout);
   pid_t pid = fork();
   if (pid < 0) { perror("fork"); return -1; }
   if (pid == 0) {
      FILE *f = fopen(path, "rb");
      if (!f) { perror(path); _exit(3); }
      struct stat st;
      if (fstat(fileno(f), &st) != 0) _exit(3);
      size_t n = (size_t)st.st_size;
      uint8_t *buf = malloc(n ? n : 1);
      if (!buf || fread(buf, 1, n, f) != n) _exit(3);
      fclose(f);
      alarm(30);
      LLVMFuzzerTestOneInput(buf, n);
      free(buf);
      exit(0);   /* exit, not _exit: the harness's atexit cleanup runs */
   }
   int status;
   while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) return -1;
   if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
   if (WIFSIGNALED(status))
      printf("# %s: killed by signal %d%s\n", path, WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? " (hang)" : "");
   else
      printf("# %s: exit status %d\n", path, WEXITSTATUS(status));
   return -1;
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
   if (argc > 1) {
      for (int i = 1; i < argc; i++) replay_dir(argv[i], 1);
   } else {
      replay_dir("tests/fuzz/corpus/" FUZZ_TARGET, 1);
      replay_dir("tests/fuzz/crashers/" FUZZ_TARGET, 0);
   }
   return check_done();
}
