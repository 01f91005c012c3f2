/* plot_png.c - a chart of gen/plot.h as a PNG: the canvas calls of
 * plot_canvas.h painted by cairo (antialiased), text in DejaVu Sans found
 * through fontconfig, the pixels encoded by gen_png_encode. */
#include <cairo.h>
#include <math.h>
#include <string.h>

#include "gen/io.h"
#include "gen/plot.h"
#include "io/fs.h"
#include "io/plot_canvas.h"

static void source(cairo_t *cr, struct plot_rgb c) {
    cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0);
}

static void png_rect(void *ctx, double x, double y, double w, double h, struct plot_rgb fill,
                     const struct plot_rgb *stroke) {
    cairo_t *cr = ctx;
    cairo_rectangle(cr, x, y, w, h);
    source(cr, fill);
    if (!stroke) {
        cairo_fill(cr);
        return;
    }
    cairo_fill_preserve(cr);
    source(cr, *stroke);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
}

static void png_line(void *ctx, const double *xy, int64_t n, double width, struct plot_rgb c) {
    cairo_t *cr = ctx;
    cairo_move_to(cr, xy[0], xy[1]);
    for (int64_t k = 1; k < n; k++) cairo_line_to(cr, xy[2 * k], xy[2 * k + 1]);
    const int round = width > 1;
    cairo_set_line_join(cr, round ? CAIRO_LINE_JOIN_ROUND : CAIRO_LINE_JOIN_MITER);
    cairo_set_line_cap(cr, round ? CAIRO_LINE_CAP_ROUND : CAIRO_LINE_CAP_BUTT);
    cairo_set_line_width(cr, width);
    source(cr, c);
    cairo_stroke(cr);
}

static void png_dot(void *ctx, double x, double y, double r, struct plot_rgb c) {
    cairo_t *cr = ctx;
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    source(cr, c);
    cairo_fill(cr);
}

static void png_text(void *ctx, double x, double y, const char *s, const struct plot_text *t) {
    cairo_t *cr = ctx;
    cairo_select_font_face(cr, PLOT_FONT, CAIRO_FONT_SLANT_NORMAL,
                           t->bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, t->size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    const double shift = t->anchor == PLOT_ANCHOR_START    ? 0
                         : t->anchor == PLOT_ANCHOR_MIDDLE ? e.x_advance / 2
                                                           : e.x_advance;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (t->upward) cairo_rotate(cr, -M_PI / 2);
    cairo_move_to(cr, -shift, 0);
    source(cr, t->colour);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

#ifdef __SANITIZE_ADDRESS__
/* fontconfig loses a few bytes parsing its configuration files
 * (FcInitLoadConfigAndFonts, called by cairo at the first text): not
 * gen's to free, and no leak of gen's goes through fontconfig. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\n";
}
#endif

/* The surface's pixels (0x00RRGGBB words) as RGB bytes, then a PNG. */
static enum gen_status encode(cairo_surface_t *surface, int w, int h, uint8_t **png, size_t *len) {
    uint8_t *rgb = gen_alloc((size_t)w * (size_t)h * 3);
    if (!rgb) return GEN_ERR_NOMEM;
    cairo_surface_flush(surface);
    const uint8_t *data = cairo_image_surface_get_data(surface);
    const int stride = cairo_image_surface_get_stride(surface);
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(data + (size_t)y * (size_t)stride);
        for (int x = 0; x < w; x++) {
            uint8_t *o = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
            o[0] = (uint8_t)(row[x] >> 16), o[1] = (uint8_t)(row[x] >> 8), o[2] = (uint8_t)row[x];
        }
    }
    const enum gen_status st = gen_png_encode(rgb, w, h, 3, png, len);
    gen_free(rgb);
    return st;
}

enum gen_status gen_plot_png(const struct gen_plot *p, const char *path) {
    enum gen_status st = gen_plot_check(p, path);
    if (st != GEN_OK) return st;
    int w, h;
    gen_plot_size(p, &w, &h);
    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(surface);
    const struct plot_canvas c = {cr, png_rect, png_line, png_dot, png_text};
    if (cairo_status(cr) == CAIRO_STATUS_SUCCESS) st = gen_plot_draw(p, &c);
    if (st == GEN_OK && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = gen_error(GEN_ERR_RUNTIME, "%s: cairo: %s", path,
                       cairo_status_to_string(cairo_status(cr)));
    uint8_t *png = NULL;
    size_t len = 0;
    if (st == GEN_OK && (st = encode(surface, w, h, &png, &len)) != GEN_OK)
        gen_fs_error_at(st, path);
    if (st == GEN_OK) st = gen_fs_write_atomic(path, png, len);
    gen_free(png);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
    return st;
}
