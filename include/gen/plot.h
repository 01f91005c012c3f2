/* plot.h - x/y charts: one description of a plot (series, axis names,
 * title), laid out once and drawn by two renderers: SVG text (for the run
 * report and `gen plot -o FILE.svg`) and a PNG through cairo, with a real
 * font found by fontconfig (DejaVu Sans). No gnuplot, no Python.
 *
 * Layout: "nice" ticks of 1, 2 or 5 times a power of ten; the y axis turns
 * logarithmic when every value is positive and they span more than 20x;
 * a grid, a legend above the plot (never over a curve), the y-axis name
 * written up the left side. Curves of more points than pixels are thinned to each pixel
 * column's first, lowest, highest and last point, so their shape stays. */
#ifndef GEN_PLOT_H
#define GEN_PLOT_H

#include "gen/core.h"

#define GEN_PLOT_WIDTH      800
#define GEN_PLOT_HEIGHT     500
#define GEN_PLOT_MAX_SERIES 8

/* One series of an x/y chart: n points, each with an optional label. A
 * series of no points keeps its colour (the i-th of the palette) but is
 * neither drawn nor listed, so a series keeps its colour across plots
 * (gen report: one colour per run). */
struct gen_plot_series {
    const char *name;
    int64_t n;
    const double *x, *y;
    const char *const *labels; /* (n) or NULL */
    int plain;                 /* a bare line, no dot at each point (long curves) */
};

/* A chart. */
struct gen_plot {
    const char *title;           /* may be NULL                              */
    const char *xlabel, *ylabel; /* axis names; NULL: "step", none          */
    const struct gen_plot_series *series;
    int n;             /* 1..GEN_PLOT_MAX_SERIES                   */
    int width, height; /* pixels (user units in SVG); 0: GEN_PLOT_WIDTH x GEN_PLOT_HEIGHT */
};

/* The chart as a PNG file (written to a temporary name and renamed, so a
 * viewer never sees half a PNG). Non-finite points are GEN_ERR_FORMAT. */
enum gen_status gen_plot_png(const struct gen_plot *p, const char *png);

/* The chart as SVG text, *svg gen_alloc'd (the caller frees it).
 * GEN_SVG_INLINE is an <svg> element for an HTML page; GEN_SVG_FILE adds
 * the namespace a standalone .svg file needs. */
enum gen_svg_kind { GEN_SVG_INLINE, GEN_SVG_FILE };
enum gen_status gen_plot_svg(const struct gen_plot *p, enum gen_svg_kind kind, char **svg);

/* Renders the run's RUN_DIR/metrics.jsonl into RUN_DIR/loss.png. */
enum gen_status gen_plot_metrics(const char *run_dir);

/* The loss curves of a metrics file into an image: "loss" against "step",
 * plus one series for every field whose name starts with "loss" or ends in
 * "_loss" ("loss_d", "test_loss", "val_loss") or contains "valid" (lines
 * that are not JSON, lack a step or carry none of those fields are
 * skipped; so are null values), with a title line. `out` ending in .svg
 * gets SVG, anything else PNG. *points (if not NULL) receives the number
 * of points drawn. A file with no loss values is GEN_ERR_FORMAT naming it. */
enum gen_status gen_plot_file(const char *jsonl, const char *out, const char *title,
                              int64_t *points);

/* series[0..n) as a PNG with a title and axis names (ylabel may be NULL):
 * lines through marked (unless plain), labelled points. */
enum gen_status gen_plot_xy(const char *png, const char *title, const char *xlabel,
                            const char *ylabel, const struct gen_plot_series *series, int n);

#endif
