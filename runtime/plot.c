/*
 * plot.c — line charts as PNG files through PLplot's cairo driver.
 *
 * PLplot is a C library with one global set of streams, and on a fatal error
 * (a driver that fails to load, a file it cannot open) it calls exit(). The
 * runtime must never end the process (the REPL has to survive), so each
 * chart is drawn in a forked child: the child redirects its stderr into a
 * pipe, draws, and leaves with _exit(); PLplot's exit handler (plsexit) also
 * leaves with _exit, so no atexit handler of the parent runs twice. The
 * parent reads the pipe for PLplot's message and waits. Forking copies no
 * memory (copy-on-write), and a chart takes a few milliseconds either way.
 *
 * The child draws into the atomic writer's temp file (runtime/fileio.c),
 * which is renamed into place once the child succeeded, so a failed plot
 * leaves nothing behind.
 * Not here: what to plot (lib/ddpm/plot.lua), other chart types, smoothing.
 */
#include "ddpm.h"
#include "ddpm/plot.h"

#include <plplot.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const unsigned ddpm_plot_colors[DDPM_PLOT_NCOLORS] = {
   0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd,
   0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf,
};

/* cmap0 slots: background, ink (axes, text), grid, then the series. */
enum { C_BG, C_INK, C_GRID, C_SERIES };

typedef struct chart {
   const char *title, *xlabel, *ylabel;
   int nseries;
   const char *const *names;
   const double *const *xs, *const *ys;
   const int *ns;
   int logy, width, height;
   double x0, x1, y0, y1;        /* data ranges (log10 y when logy) */
} chart;

static int usable(const chart *c, int s, int i)
{
   double x = c->xs[s][i], y = c->ys[s][i];
   return isfinite(x) && isfinite(y) && (!c->logy || y > 0);
}

static double ty(const chart *c, double y) { return c->logy ? log10(y) : y; }

/* The ranges over all usable points; 0 when there is none. */
static int ranges(chart *c)
{
   int any = 0;
   for (int s = 0; s < c->nseries; s++)
      for (int i = 0; i < c->ns[s]; i++) {
         if (!usable(c, s, i)) continue;
         double x = c->xs[s][i], y = ty(c, c->ys[s][i]);
         if (!any) { c->x0 = c->x1 = x; c->y0 = c->y1 = y; any = 1; }
         if (x < c->x0) c->x0 = x;
         if (x > c->x1) c->x1 = x;
         if (y < c->y0) c->y0 = y;
         if (y > c->y1) c->y1 = y;
      }
   if (!any) return 0;
   if (c->x1 == c->x0) { c->x0 -= 1; c->x1 += 1; }
   if (c->y1 == c->y0) {
      double d = c->logy ? 0.5 : (fabs(c->y0) > 0 ? 0.1 * fabs(c->y0) : 1);
      c->y0 -= d; c->y1 += d;
   } else {   /* a little air above and below the curves */
      double d = 0.04 * (c->y1 - c->y0);
      c->y0 -= d; c->y1 += d;
   }
   return 1;
}

/* PLplot reads '#' as an escape; "##" is a literal '#'. Truncates long text. */
static void escape_text(char *out, size_t cap, const char *s)
{
   size_t j = 0;
   for (; s && *s && j + 3 < cap; s++) {
      if (*s == '#') out[j++] = '#';
      out[j++] = *s;
   }
   out[j] = '\0';
}

static void set_rgb(PLINT *r, PLINT *g, PLINT *b, int i, unsigned rgb)
{
   r[i] = (rgb >> 16) & 255; g[i] = (rgb >> 8) & 255; b[i] = rgb & 255;
}

static int on_plexit(PLCHAR_VECTOR msg)
{
   /* stderr is the pipe to the parent; _exit skips the parent's atexit work */
   fprintf(stderr, "%s\n", msg ? msg : "PLplot error");
   fflush(stderr);
   _exit(3);
}

/* Labels and grid lines of a log10 y axis at 1-2-5 (or 1..9, or 1) times
   powers of ten: PLplot labels decades only, and a training curve often spans
   less than one. Returns the longest label's length; draws only when draw. */
static int log_ticks(const chart *c, int draw)
{
   static const double m1[] = {1}, m125[] = {1, 2, 5}, m19[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
   double span = c->y1 - c->y0;
   const double *m = span > 3 ? m1 : m125;
   int nm = span > 3 ? 1 : 3;
   int k0 = (int)floor(c->y0), k1 = (int)ceil(c->y1);
   int count = 0;
   for (int k = k0; k <= k1; k++)
      for (int j = 0; j < nm; j++) {
         double v = log10(m[j]) + k;
         count += v >= c->y0 && v <= c->y1;
      }
   if (count < 3) { m = m19; nm = 9; }
   int longest = 0;
   for (int k = k0; k <= k1; k++)
      for (int j = 0; j < nm; j++) {
         double v = log10(m[j]) + k;
         if (v < c->y0 || v > c->y1) continue;
         char label[32];
         int len = snprintf(label, sizeof label, "%g", m[j] * pow(10, k));
         if (len > longest) longest = len;
         if (!draw) continue;
         plcol0(C_GRID);
         pljoin(c->x0, v, c->x1, v);
         plcol0(C_INK);
         plmtex("lv", 0.6, (v - c->y0) / (c->y1 - c->y0), 1.0, label);
      }
   return longest;
}

/* In the child: draws the chart into file tmp. Returns the exit status. */
static int draw(const chart *c, const char *tmp)
{
   plsexit(on_plexit);
   PLINT r[C_SERIES + DDPM_PLOT_NCOLORS], g[C_SERIES + DDPM_PLOT_NCOLORS],
         b[C_SERIES + DDPM_PLOT_NCOLORS];
   set_rgb(r, g, b, C_BG, 0xffffff);
   set_rgb(r, g, b, C_INK, 0x333333);
   set_rgb(r, g, b, C_GRID, 0xdddddd);
   for (int i = 0; i < DDPM_PLOT_NCOLORS; i++) set_rgb(r, g, b, C_SERIES + i, ddpm_plot_colors[i]);
   plsdev("pngcairo");
   plsfnam(tmp);
   plspage(0, 0, c->width, c->height, 0, 0);
   plscmap0(r, g, b, C_SERIES + DDPM_PLOT_NCOLORS);
   plinit();
   pladv(0);
   /* Text scales with the chart's smaller side (PLplot's default suits ~600 px). */
   double side = c->width < c->height ? c->width : c->height;
   double scale = 0.9 * sqrt(500.0 / side);
   plschr(0, scale < 0.6 ? 0.6 : scale > 1.4 ? 1.4 : scale);
   plvsta();   /* margins in character heights, room for the labels */
   int label_len = c->logy ? log_ticks(c, 0) : 4;
   if (label_len > 4) {   /* wider tick labels than plvsta allows for */
      PLFLT def, ht, xmin, xmax, ymin, ymax, sx0, sx1, sy0, sy1;
      plgchr(&def, &ht);
      plgvpd(&xmin, &xmax, &ymin, &ymax);
      plgspa(&sx0, &sx1, &sy0, &sy1);
      double need = (0.9 * label_len + 3.0) * ht / (sx1 - sx0);   /* a digit ~0.9 ht */
      if (need > xmin && need < 0.5) plvpor(need, xmax, ymin, ymax);
   }
   plwind(c->x0, c->x1, c->y0, c->y1);
   plcol0(C_GRID);
   plwidth(1);
   plbox("g", 0, 0, c->logy ? "" : "g", 0, 0);
   if (c->logy) log_ticks(c, 1);
   plcol0(C_INK);
   plbox("bcnst", 0, 0, c->logy ? "bcstl" : "bcnstv", 0, 0);

   char text[512];
   if (c->title) { escape_text(text, sizeof text, c->title); plmtex("t", 1.5, 0.5, 0.5, text); }
   if (c->xlabel) { escape_text(text, sizeof text, c->xlabel); plmtex("b", 3.0, 0.5, 0.5, text); }
   if (c->ylabel) {
      escape_text(text, sizeof text, c->ylabel);
      plmtex("l", label_len > 4 ? 1.6 + 0.9 * label_len : 5.0, 0.5, 0.5, text);
   }

   int maxn = 0;
   for (int s = 0; s < c->nseries; s++) if (c->ns[s] > maxn) maxn = c->ns[s];
   PLFLT *px = malloc(sizeof *px * (size_t)(maxn ? maxn : 1));
   PLFLT *py = malloc(sizeof *py * (size_t)(maxn ? maxn : 1));
   if (!px || !py) { fprintf(stderr, "out of memory\n"); return 4; }
   for (int s = 0; s < c->nseries; s++) {
      plcol0(C_SERIES + s % DDPM_PLOT_NCOLORS);
      plwidth(side < 300 ? 1.2 : 1.8);
      int i = 0, n = c->ns[s];
      while (i < n) {   /* runs of usable points; a gap breaks the line */
         while (i < n && !usable(c, s, i)) i++;
         int k = 0;
         while (i < n && usable(c, s, i)) {
            px[k] = c->xs[s][i];
            py[k] = ty(c, c->ys[s][i]);
            k++, i++;
         }
         if (k == 1) plstring(1, px, py, "●");
         else if (k > 1) plline(k, px, py);
      }
   }
   free(px);
   free(py);

   if (c->nseries > 1) {
      enum { MAXLEG = 24 };
      int nl = c->nseries < MAXLEG ? c->nseries : MAXLEG;
      PLINT opts[MAXLEG], tcol[MAXLEG], lcol[MAXLEG], lsty[MAXLEG];
      PLFLT lwid[MAXLEG];
      char buf[MAXLEG][128];
      const char *labels[MAXLEG];
      for (int s = 0; s < nl; s++) {
         char name[64];
         const char *nm = c->names && c->names[s] ? c->names[s] : NULL;
         if (!nm) { snprintf(name, sizeof name, "series %d", s + 1); nm = name; }
         escape_text(buf[s], sizeof buf[s], nm);
         labels[s] = buf[s];
         opts[s] = PL_LEGEND_LINE;
         tcol[s] = C_INK;
         lcol[s] = C_SERIES + s % DDPM_PLOT_NCOLORS;
         lsty[s] = 1;
         lwid[s] = 2;
      }
      PLFLT lw, lh;
      pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
               PL_POSITION_TOP | PL_POSITION_RIGHT | PL_POSITION_INSIDE, 0.01, 0.01, 0.06,
               C_BG, C_GRID, 1, 0, 0, nl, opts, 0.8, 0.8, 1.6, 0.0, tcol,
               (PLCHAR_MATRIX)labels, NULL, NULL, NULL, NULL, lcol, lsty, lwid, NULL, NULL,
               NULL, NULL);
   }
   plend();
   return 0;
}

typedef struct plot_job { const chart *c; const char *path; } plot_job;

/* The atomic writer's fill (runtime/fileio.c): a forked child draws the chart
   into the temp file by name, its stderr into a pipe for PLplot's message. */
static int draw_in_child(int fd, const char *tmp, void *ctx)
{
   const plot_job *job = ctx;
   const char *path = job->path;
   int rc = DDPM_OK;
   int fds[2];
   if (pipe(fds) != 0) return ddpm_seterr(DDPM_EIO, "plot: pipe: %s", strerror(errno));
   fflush(NULL);   /* nothing buffered may be written twice */
   pid_t pid = fork();
   if (pid < 0) {
      int e = errno;
      close(fds[0]);
      close(fds[1]);
      return ddpm_seterr(DDPM_EIO, "plot: fork: %s", strerror(e));
   }
   if (pid == 0) {
      close(fds[0]);
      dup2(fds[1], STDERR_FILENO);
      int null = open("/dev/null", O_RDWR);   /* PLplot may prompt for a device */
      if (null >= 0) { dup2(null, STDIN_FILENO); dup2(null, STDOUT_FILENO); }
      signal(SIGPIPE, SIG_DFL);
      _exit(draw(job->c, tmp));
   }
   close(fds[1]);
   char msg[1024];
   size_t len = 0;
   for (;;) {   /* read to EOF (the child's exit), keeping the first bytes */
      char buf[512];
      ssize_t k = read(fds[0], buf, sizeof buf);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      size_t take = (size_t)k < sizeof msg - 1 - len ? (size_t)k : sizeof msg - 1 - len;
      memcpy(msg + len, buf, take);
      len += take;
   }
   close(fds[0]);
   msg[len] = '\0';
   int status = 0;
   while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
   /* PLplot's message: its last non-empty line, without the banner */
   while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) msg[--len] = '\0';
   char *last = strrchr(msg, '\n');
   const char *why = last ? last + 1 : msg;
   struct stat st;
   if (WIFSIGNALED(status)) {
      int sig = WTERMSIG(status);
      rc = sig == SIGINT ? ddpm_seterr(DDPM_EINTR, "plot: interrupted")
                         : ddpm_seterr(DDPM_EIO, "plot: the PLplot process died of signal %d%s%s",
                                       sig, *why ? ": " : "", why);
   } else if (WEXITSTATUS(status) != 0) {
      rc = ddpm_seterr(DDPM_EIO, "plot: PLplot failed writing %s: %s", path,
                       *why ? why : "no message");
   } else if (fstat(fd, &st) != 0 || st.st_size == 0) {
      rc = ddpm_seterr(DDPM_EIO, "plot: PLplot wrote no image%s%s (is the package "
                       "plplot-driver-cairo installed?)", *why ? ": " : "", why);
   }
   return rc;
}

int ddpm_plot_lines(const char *path, int nseries, const char *const *names,
                    const double *const *xs, const double *const *ys, const int *ns,
                    const ddpm_plot_opts *opts)
{
   static const ddpm_plot_opts defaults = DDPM_PLOT_OPTS_DEFAULT;
   if (!opts) opts = &defaults;
   const int logy = opts->y_axis == DDPM_AXIS_LOG10, width = opts->width, height = opts->height;
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "plot: empty output path");
   if (nseries < 1) return ddpm_seterr(DDPM_EINVAL, "plot: no series to draw");
   if (!xs || !ys || !ns) return ddpm_seterr(DDPM_EINVAL, "plot: NULL data arrays");
   if (width < DDPM_PLOT_MIN_SIDE || width > DDPM_PLOT_MAX_SIDE || height < DDPM_PLOT_MIN_SIDE ||
       height > DDPM_PLOT_MAX_SIDE)
      return ddpm_seterr(DDPM_EINVAL, "plot: size %dx%d is outside %d..%d pixels a side", width,
                         height, DDPM_PLOT_MIN_SIDE, DDPM_PLOT_MAX_SIDE);
   for (int s = 0; s < nseries; s++) {
      if (ns[s] < 0) return ddpm_seterr(DDPM_EINVAL, "plot: series %d has %d points", s + 1, ns[s]);
      if (ns[s] > 0 && (!xs[s] || !ys[s]))
         return ddpm_seterr(DDPM_EINVAL, "plot: series %d has NULL data", s + 1);
   }
   chart c = {opts->title, opts->xlabel, opts->ylabel, nseries, names, xs, ys, ns, logy, width,
              height, 0, 0, 0, 0};
   if (!ranges(&c))
      return ddpm_seterr(DDPM_EINVAL, logy ? "plot: no positive finite values for a log axis"
                                           : "plot: no finite values to draw");

   plot_job job = {&c, path};
   return ddpm_file_write_atomic_fill(path, draw_in_child, &job, "plot");
}
