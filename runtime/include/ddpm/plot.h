/*
 * ddpm/plot.h — line charts as PNG files, drawn by PLplot (Debian's libplplot,
 * cairo driver "pngcairo"): training curves for `ddpmlua plot` and the run
 * report. Not here: interactive windows, other chart kinds, reading data (the
 * caller passes plain arrays; lib/ddpm/plot.lua fetches them from runs.db).
 */
#ifndef DDPM_PLOT_H
#define DDPM_PLOT_H

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size limits of a chart, in pixels. */
#define DDPM_PLOT_MIN_SIDE 64
#define DDPM_PLOT_MAX_SIDE 8192
/* Colours of the series, in order (then they repeat): 0xRRGGBB. */
#define DDPM_PLOT_NCOLORS 10
extern const unsigned ddpm_plot_colors[DDPM_PLOT_NCOLORS];

/* Draws nseries lines into a width x height RGB PNG at path. Series s has
   ns[s] points (xs[s][i], ys[s][i]); non-finite points (and, on a log axis,
   values <= 0) are left out and break the line; a point without neighbours
   is drawn as a dot. names[s] labels the series in a legend, shown when
   nseries > 1 (names may be NULL then: "series 1", ...). opts gives the
   labels, the y axis and the size (NULL: DDPM_PLOT_OPTS_DEFAULT).

   The file appears complete or not at all (written to a temp file in the
   same directory, then renamed). PLplot keeps global state and ends the
   process on some errors, so the drawing runs in a forked child process:
   whatever goes wrong there comes back as an error here, with PLplot's
   message. DDPM_EINVAL for bad arguments (no point to draw, a size out of
   range), DDPM_EIO when the file cannot be written or PLplot fails,
   DDPM_EINTR when the drawing process was interrupted. */
typedef enum { DDPM_AXIS_LINEAR = 0, DDPM_AXIS_LOG10 = 1 } ddpm_axis;

typedef struct ddpm_plot_opts {
   const char *title, *xlabel, *ylabel;   /* NULL: none */
   ddpm_axis y_axis;                      /* DDPM_AXIS_LOG10: values <= 0 left out */
   int width, height;                     /* pixels, DDPM_PLOT_MIN_SIDE..MAX_SIDE */
} ddpm_plot_opts;

#define DDPM_PLOT_OPTS_DEFAULT {NULL, NULL, NULL, DDPM_AXIS_LINEAR, 800, 500}

int ddpm_plot_lines(const char *path, int nseries, const char *const *names,
                    const double *const *xs, const double *const *ys, const int *ns,
                    const ddpm_plot_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_PLOT_H */
