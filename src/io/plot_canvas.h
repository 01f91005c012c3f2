/* plot_canvas.h - what a renderer of gen/plot.h gives the layout: four
 * drawing calls in user units (pixels of the PNG), y downwards. plot.c
 * lays a chart out once and draws it through them; svg.c writes them as
 * SVG elements, plot_png.c paints them with cairo. */
#ifndef GEN_IO_PLOT_CANVAS_H
#define GEN_IO_PLOT_CANVAS_H

#include <stdint.h>

#include "gen/plot.h"

struct plot_rgb {
    uint8_t r, g, b;
};

enum plot_anchor { PLOT_ANCHOR_START, PLOT_ANCHOR_MIDDLE, PLOT_ANCHOR_END };

struct plot_text {
    double size;             /* font size (em height)                   */
    enum plot_anchor anchor; /* where (x, y) is along the baseline       */
    int bold;
    int upward; /* rotated a quarter turn: reads bottom to top */
    struct plot_rgb colour;
};

#define PLOT_FONT "DejaVu Sans" /* the font both renderers ask for */

struct plot_canvas {
    void *ctx;
    /* a filled rectangle, outlined when stroke is not NULL */
    void (*rect)(void *ctx, double x, double y, double w, double h, struct plot_rgb fill,
                 const struct plot_rgb *stroke);
    /* a polyline through xy[0..2n) (x, y pairs), round joins and caps */
    void (*line)(void *ctx, const double *xy, int64_t n, double width, struct plot_rgb colour);
    void (*dot)(void *ctx, double x, double y, double radius, struct plot_rgb colour);
    /* valid UTF-8 text with its baseline at y */
    void (*text)(void *ctx, double x, double y, const char *s, const struct plot_text *style);
};

/* The chart's size in user units (GEN_PLOT_WIDTH x GEN_PLOT_HEIGHT for 0). */
void gen_plot_size(const struct gen_plot *p, int *w, int *h);
/* GEN_OK for a chart that can be drawn: 1..GEN_PLOT_MAX_SERIES series of
 * finite points, a size of 200..4096 per side; else an error naming `out`. */
enum gen_status gen_plot_check(const struct gen_plot *p, const char *out);
/* Lays p out and draws it on c (p checked). GEN_ERR_NOMEM only. */
enum gen_status gen_plot_draw(const struct gen_plot *p, const struct plot_canvas *c);

#endif
