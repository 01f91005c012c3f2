/* svg.c - a chart of gen/plot.h as SVG text: the canvas calls of
 * plot_canvas.h written as <rect>, <polyline>, <circle> and <text>
 * elements, coordinates to a tenth of a unit. */
#include <string.h>

#include "gen/plot.h"
#include "io/plot_canvas.h"
#include "io/strbuf.h"

static void colour(struct gen_strbuf *b, const char *attr, struct plot_rgb c) {
    gen_strbuf_printf(b, " %s=\"#%02x%02x%02x\"", attr, c.r, c.g, c.b);
}

static void svg_rect(void *ctx, double x, double y, double w, double h, struct plot_rgb fill,
                     const struct plot_rgb *stroke) {
    struct gen_strbuf *b = ctx;
    gen_strbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"", x, y, w, h);
    colour(b, "fill", fill);
    if (stroke) colour(b, "stroke", *stroke);
    gen_strbuf_puts(b, "/>\n");
}

static void svg_line(void *ctx, const double *xy, int64_t n, double width, struct plot_rgb c) {
    struct gen_strbuf *b = ctx;
    gen_strbuf_puts(b, "<polyline points=\"");
    for (int64_t k = 0; k < n; k++)
        gen_strbuf_printf(b, "%s%.1f,%.1f", k ? " " : "", xy[2 * k], xy[2 * k + 1]);
    gen_strbuf_printf(b, "\" fill=\"none\" stroke-width=\"%g\"", width);
    colour(b, "stroke", c);
    gen_strbuf_printf(b, "%s/>\n",
                      width > 1 ? " stroke-linejoin=\"round\" stroke-linecap=\"round\"" : "");
}

static void svg_dot(void *ctx, double x, double y, double r, struct plot_rgb c) {
    struct gen_strbuf *b = ctx;
    gen_strbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%g\"", x, y, r);
    colour(b, "fill", c);
    gen_strbuf_puts(b, "/>\n");
}

static void svg_text(void *ctx, double x, double y, const char *s, const struct plot_text *t) {
    static const char *const anchors[] = {"start", "middle", "end"};
    struct gen_strbuf *b = ctx;
    gen_strbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\" text-anchor=\"%s\"", x, y,
                      t->size, anchors[t->anchor]);
    if (t->bold) gen_strbuf_printf(b, " font-weight=\"bold\"");
    if (t->upward) gen_strbuf_printf(b, " transform=\"rotate(-90 %.1f %.1f)\"", x, y);
    colour(b, "fill", t->colour);
    gen_strbuf_puts(b, ">");
    gen_strbuf_escape(b, s, strlen(s));
    gen_strbuf_puts(b, "</text>\n");
}

enum gen_status gen_plot_svg(const struct gen_plot *p, enum gen_svg_kind kind, char **svg) {
    *svg = NULL;
    enum gen_status st = gen_plot_check(p, "svg");
    if (st != GEN_OK) return st;
    int w, h;
    gen_plot_size(p, &w, &h);
    struct gen_strbuf b = {0};
    gen_strbuf_printf(&b,
                      "<svg%s viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" font-family=\"%s, "
                      "Verdana, sans-serif\" role=\"img\">\n",
                      kind == GEN_SVG_FILE ? " xmlns=\"http://www.w3.org/2000/svg\"" : "", w, h, w,
                      h, PLOT_FONT);
    if (p->title) {
        gen_strbuf_puts(&b, "<title>");
        gen_strbuf_escape(&b, p->title, strlen(p->title));
        gen_strbuf_puts(&b, "</title>\n");
    }
    const struct plot_canvas c = {&b, svg_rect, svg_line, svg_dot, svg_text};
    st = gen_plot_draw(p, &c);
    gen_strbuf_puts(&b, "</svg>\n");
    if (st == GEN_OK && b.failed) st = gen_error(GEN_ERR_NOMEM, "out of memory for an SVG plot");
    if (st != GEN_OK) {
        gen_strbuf_free(&b);
        return st;
    }
    *svg = b.s;
    return GEN_OK;
}
