/*
 * fileio.c — the one atomic file writer (docs/design.md §2): every file the
 * runtime writes whole (checkpoints, model and statistics files, PNG grids,
 * charts, .npz archives) goes through ddpm_file_write_atomic_fill.
 *
 * The steps: a temp file "dir/.<name>.tmp.<pid>.<k>" created with O_EXCL
 * beside the target (same folder, so the rename stays on one file system and
 * ddpm_remove_stale_temps can find it after a kill), the caller's bytes,
 * fsync, close, rename over the target, fsync of the folder. On any failure
 * the temp file is removed, the target is untouched and the message,
 * "<what>: cannot write <path>: <step> failed: <reason>", names the file.
 *
 * Not here: streaming writers that keep a file open (SQLite owns runs.db),
 * free-space checks (the write itself reports ENOSPC), following a symlink at
 * the target (it is replaced).
 */
#include "ddpm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes all n bytes, through short writes and EINTR, in chunks of at most
   1 GiB (Linux writes no more at once). 0, or -1 with errno set. */
static int write_all(int fd, const void *buf, size_t n, size_t *done)
{
   const unsigned char *p = buf;
   while (n > 0) {
      size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
      ssize_t w = write(fd, p, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return -1;
      if (w == 0) { errno = EIO; return -1; }
      p += w;
      n -= (size_t)w;
      *done += (size_t)w;
   }
   return 0;
}

int ddpm_file_write_atomic_fill(const char *path, ddpm_file_fill_fn fill, void *ctx,
                                const char *what)
{
   if (!what) what = "write";
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "%s: no path", what);
   const char *slash = strrchr(path, '/');
   const char *base = slash ? slash + 1 : path;
   size_t dirlen = slash ? (size_t)(slash - path) : 0;
   if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
      return ddpm_seterr(DDPM_EINVAL, "%s: cannot write %s: the path names a directory, not a file",
                         what, path);

   size_t tlen = dirlen + 1 + 200 + 64;
   char *tmp = malloc(tlen);
   char *dir = malloc(dirlen + 2);
   if (!tmp || !dir) {
      free(tmp);
      free(dir);
      return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory writing %s", what, path);
   }
   if (!slash) strcpy(dir, ".");
   else if (dirlen == 0) strcpy(dir, "/");
   else { memcpy(dir, path, dirlen); dir[dirlen] = '\0'; }

   int fd = -1;
   for (int k = 0; k < 100 && fd < 0; k++) {
      /* base is cut at 200 bytes so the temp name stays under NAME_MAX */
      snprintf(tmp, tlen, "%.*s.%.200s.tmp.%ld.%d", (int)(slash ? dirlen + 1 : 0), path, base,
               (long)getpid(), k);
      fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && errno != EEXIST) break;
   }
   if (fd < 0) {
      int rc = ddpm_seterr(DDPM_EIO,
                           "%s: cannot write %s: cannot create a temporary file in %s: %s",
                           what, path, dir, strerror(errno));
      free(tmp);
      free(dir);
      return rc;
   }

   int rc = fill(fd, tmp, ctx);
   const char *step = NULL;
   int e = 0;
   if (rc == DDPM_OK && fsync(fd) != 0) { e = errno; step = "fsync"; }
   /* Linux closes the descriptor even when close reports EINTR; after a
      successful fsync that is not a lost write */
   if (close(fd) != 0 && errno != EINTR && rc == DDPM_OK && !step) { e = errno; step = "close"; }
   if (rc == DDPM_OK && !step && rename(tmp, path) != 0) { e = errno; step = "rename"; }
   if (rc == DDPM_OK && step)
      rc = ddpm_seterr(DDPM_EIO, "%s: cannot write %s: %s failed: %s", what, path, step,
                       strerror(e));
   if (rc != DDPM_OK) {
      unlink(tmp);
      free(tmp);
      free(dir);
      return rc;
   }
   /* the rename is atomic but not durable until the folder is synced; file
      systems that cannot sync a directory say EINVAL, which is no error */
   int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
   if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
      rc = ddpm_seterr(DDPM_EIO, "%s: wrote %s, but syncing the directory %s failed: %s", what,
                       path, dir, strerror(errno));
   if (dfd >= 0) close(dfd);
   free(tmp);
   free(dir);
   return rc;
}

typedef struct parts_ctx {
   const ddpm_file_part *parts;
   int n;
   const char *path, *what;
} parts_ctx;

static int fill_parts(int fd, const char *tmp, void *ctx)
{
   const parts_ctx *c = ctx;
   size_t total = 0, done = 0;
   for (int i = 0; i < c->n; i++) total += c->parts[i].len;
   for (int i = 0; i < c->n; i++)
      if (c->parts[i].len > 0 && write_all(fd, c->parts[i].data, c->parts[i].len, &done) != 0)
         return ddpm_seterr(DDPM_EIO,
                            "%s: cannot write %s: write failed: %s (after %zu of %zu bytes)",
                            c->what, c->path, strerror(errno), done, total);
   return DDPM_OK;
}

int ddpm_file_write_atomicv(const char *path, const ddpm_file_part *parts, int nparts,
                            const char *what)
{
   if (!what) what = "write";
   if (nparts < 0 || (nparts > 0 && !parts))
      return ddpm_seterr(DDPM_EINVAL, "%s: %d parts to write to %s", what, nparts,
                         path ? path : "(no path)");
   parts_ctx c = {parts, nparts, path, what};
   return ddpm_file_write_atomic_fill(path, fill_parts, &c, what);
}

int ddpm_file_write_atomic(const char *path, const void *buf, size_t len, const char *what)
{
   ddpm_file_part part = {buf, len};
   return ddpm_file_write_atomicv(path, &part, 1, what);
}
