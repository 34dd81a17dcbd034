/*
 * tempfiles.c — removing the temp files that an atomic write leaves when its
 * process is killed between creating the temp file and renaming it.
 *
 * Every atomic writer of the runtime (checkpoints, PNGs, statistics, plots)
 * writes "dir/.<name>.tmp.<pid>.<k>" and renames it to "dir/<name>"; a kill
 * in between leaves the temp file, never a partial file under the final
 * name. Such a file belongs to a dead writer when no process has its pid on
 * this host. A run folder is written by one process (rank 0 under mpirun),
 * so "no such process here" is a sound test for the folders ddpmlua writes.
 */
#include "ddpm.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The writer's pid when name is ".<x>.tmp.<pid>.<k>", else 0. */
static long temp_owner(const char *name)
{
   if (name[0] != '.') return 0;
   const char *p = strstr(name + 1, ".tmp.");
   const char *last = NULL;
   while (p) { last = p; p = strstr(p + 1, ".tmp."); }
   if (!last || last == name + 1) return 0;
   char *end;
   errno = 0;
   long pid = strtol(last + 5, &end, 10);
   if (errno || pid <= 0 || end == last + 5 || *end != '.') return 0;
   const char *k = end + 1;
   if (!*k) return 0;
   for (; *k; k++) if (*k < '0' || *k > '9') return 0;
   return pid;
}

static int alive(long pid)
{
   return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

int ddpm_remove_stale_temps(const char *dir, int *removed)
{
   if (removed) *removed = 0;
   if (!dir || !*dir) return ddpm_seterr(DDPM_EINVAL, "remove_stale_temps: no folder given");
   DIR *dp = opendir(dir);
   if (!dp) return ddpm_seterr(DDPM_EIO, "%s: cannot open folder (%s)", dir, strerror(errno));
   int rc = DDPM_OK;
   struct dirent *e;
   while ((e = readdir(dp)) != NULL) {
      long pid = temp_owner(e->d_name);
      if (!pid || alive(pid)) continue;
      size_t len = strlen(dir) + strlen(e->d_name) + 2;
      char *path = malloc(len);
      if (!path) { rc = ddpm_seterr(DDPM_ENOMEM, "remove_stale_temps: out of memory"); break; }
      snprintf(path, len, "%s/%s", dir, e->d_name);
      struct stat st;
      if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
         if (unlink(path) == 0) {
            if (removed) (*removed)++;
         } else if (errno != ENOENT) {
            rc = ddpm_seterr(DDPM_EIO, "%s: cannot remove (%s)", path, strerror(errno));
            free(path);
            break;
         }
      }
      free(path);
   }
   closedir(dp);
   return rc;
}
