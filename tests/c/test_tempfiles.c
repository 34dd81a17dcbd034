/*
 * test_tempfiles.c — ddpm_remove_stale_temps: in a folder holding the temp
 * files of a dead writer, of a live one (this process) and files that only
 * look alike, exactly the dead writer's temps go; a real atomic write that
 * fails leaves nothing to clean, and a missing folder is an error.
 */
#include "check.h"
#include "ddpm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void touch(const char *name)
{
   char p[256];
   snprintf(p, sizeof p, "%s/%s", dir, name);
   FILE *f = fopen(p, "w");
   if (f) { fputs("partial", f); fclose(f); }
}

static int exists(const char *name)
{
   char p[256];
   snprintf(p, sizeof p, "%s/%s", dir, name);
   return access(p, F_OK) == 0;
}

int main(void)
{
   snprintf(dir, sizeof dir, "/tmp/ddpm_tempfiles_XXXXXX");
   if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }

   /* a pid that is surely dead: a child that has exited and been reaped */
   pid_t child = fork();
   if (child == 0) _exit(0);
   waitpid(child, NULL, 0);
   long dead = (long)child, live = (long)getpid();

   char a[128], b[128], c[128], d[128], e[128], f[128];
   snprintf(a, sizeof a, ".ckpt-00000004.safetensors.tmp.%ld.0", dead);
   snprintf(b, sizeof b, ".samples-00000002.png.tmp.%ld.3", dead);
   snprintf(c, sizeof c, ".ckpt-00000006.safetensors.tmp.%ld.0", live);
   snprintf(d, sizeof d, "ckpt.tmp.%ld.0", dead);              /* not hidden */
   snprintf(e, sizeof e, ".ckpt.tmp.%ld.0x", dead);            /* no counter */
   snprintf(f, sizeof f, ".dir.tmp.%ld.0", dead);              /* a folder */
   touch(a); touch(b); touch(c); touch(d); touch(e); touch("ckpt-00000002.safetensors");
   char fp[256];
   snprintf(fp, sizeof fp, "%s/%s", dir, f);
   mkdir(fp, 0755);

   int removed = -1;
   CHECK(ddpm_remove_stale_temps(dir, &removed) == DDPM_OK, "a folder with temp files is cleaned");
   CHECK(removed == 2, "two temp files of the dead writer removed (got %d)", removed);
   CHECK(!exists(a) && !exists(b), "the dead writer's temps are gone");
   CHECK(exists(c), "a live writer's temp file stays");
   CHECK(exists(d) && exists(e) && exists("ckpt-00000002.safetensors"), "look-alikes and checkpoints stay");
   CHECK(exists(f), "a folder named like a temp file stays");
   CHECK(ddpm_remove_stale_temps(dir, &removed) == DDPM_OK && removed == 0, "a second pass removes nothing");

   CHECK(ddpm_remove_stale_temps("/nonexistent/ddpm", &removed) == DDPM_EIO &&
         strstr(ddpm_errmsg(), "/nonexistent/ddpm"), "a missing folder is an error naming it");
   CHECK(ddpm_remove_stale_temps(NULL, NULL) == DDPM_EINVAL, "no folder: EINVAL");

   char cmd[128];
   snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
   if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
   return check_done();
}
