/* plot.h - loss curves of a run as a PNG, drawn by gen's own small
 * rasteriser (lines, axes, ticks, a built-in 5x7 bitmap font) and written
 * with stb_image_write: no gnuplot, no Python.
 *
 * The curves come from RUN/metrics.jsonl: "loss" against "step", plus one
 * more series for every field whose name starts with "loss" or ends in
 * "_loss" ("loss_d", "test_loss", "val_loss") or contains "valid". Lines
 * that are not JSON, lack a step or carry none of those fields are skipped;
 * so are null (NaN) values. When a series' step goes back (a fresh run or
 * a resume from an older checkpoint appended to the same file), its points
 * from that step on are replaced by the new ones. The y axis turns
 * logarithmic when every value is positive and they span more than 20x. */
#ifndef GEN_PLOT_H
#define GEN_PLOT_H

#include "gen/core.h"

#define GEN_PLOT_WIDTH 800
#define GEN_PLOT_HEIGHT 500
#define GEN_PLOT_MAX_SERIES 8

/* Renders the run's RUN_DIR/metrics.jsonl into RUN_DIR/loss.png (written
 * to a temporary file and renamed, so a viewer never sees half a PNG). */
enum gen_status gen_plot_metrics(const char *run_dir);

/* The same from any metrics file to any PNG path, with a title line.
 * *points (if not NULL) receives the number of points drawn. A file with
 * no loss values is GEN_ERR_FORMAT naming it. */
enum gen_status gen_plot_file(const char *jsonl, const char *png, const char *title,
                              int64_t *points);

/* One series of an x/y chart: n points, each with an optional label. */
struct gen_plot_series {
    const char *name;
    int n;
    const double *x, *y;
    const char *const *labels; /* (n) or NULL */
    int plain;                 /* a bare line, no dot at each point (long curves) */
};

/* Draws series[0..n) (n <= GEN_PLOT_MAX_SERIES) as lines through marked
 * (unless plain), labelled points with axis names (ylabel may be NULL) into png, as
 * gen_plot_metrics does. Non-finite points are GEN_ERR_FORMAT. */
enum gen_status gen_plot_xy(const char *png, const char *title, const char *xlabel,
                            const char *ylabel, const struct gen_plot_series *series, int n);

#endif
