/* plot.c - the layout of an x/y chart (see gen/plot.h), drawn through the
 * canvas of a renderer (plot_canvas.h: svg.c, plot_png.c), and the loss
 * plot of a run's metrics.jsonl.
 *
 * Text widths for the layout are estimated from DejaVu Sans' advances, so
 * both renderers get the same margins; each renderer places (anchors) its
 * text exactly. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gen/io.h"
#include "gen/plot.h"
#include "gen/run.h"
#include "io/fs.h"
#include "io/plot_canvas.h"
#include "io/strbuf.h"

#define MAX_TICKS 64

static const struct plot_rgb palette[GEN_PLOT_MAX_SERIES] = {
    {31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
    {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
};
static const struct plot_rgb white = {255, 255, 255}, ink = {34, 34, 34}, muted = {85, 85, 85},
                             rule = {68, 68, 68}, grid = {229, 229, 229};

enum { TICK_SIZE = 13, LABEL_SIZE = 14, TITLE_SIZE = 15, LEGEND_ROW = 19 };

/* Width of s at font size `size`: DejaVu Sans advances (digits 0.64 em),
 * rounded up a little so a label never runs into its neighbour. */
static double text_width(const char *s, double size) {
    double em = 0;
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if ((*u & 0xc0) == 0x80) continue; /* one advance per UTF-8 character */
        em += strchr("ijlt.,:;'|!()[] frI", *u) ? 0.36
              : strchr("mwMW%", *u)             ? 0.95
              : *u >= 'A' && *u <= 'Z'          ? 0.72
                                                : 0.64;
    }
    return em * size;
}

/* s as valid UTF-8 (each stray byte as '?') into buf: cairo refuses
 * anything else, SVG must be UTF-8. */
static const char *clean_utf8(const char *s, char *buf, size_t n) {
    size_t o = 0, len = strlen(s);
    for (size_t i = 0; i < len && o + 5 < n;) {
        const int k = gen_utf8_len(s + i, len - i);
        if (k)
            memcpy(buf + o, s + i, (size_t)k), o += (size_t)k, i += (size_t)k;
        else
            buf[o++] = '?', i++;
    }
    buf[o] = 0;
    return buf;
}

static void text(const struct plot_canvas *c, double x, double y, const char *s, double size,
                 enum plot_anchor anchor, struct plot_rgb colour) {
    char buf[512];
    const struct plot_text t = {.size = size, .anchor = anchor, .colour = colour};
    c->text(c->ctx, x, y, clean_utf8(s, buf, sizeof buf), &t);
}

static void segment(const struct plot_canvas *c, double x0, double y0, double x1, double y1,
                    double width, struct plot_rgb colour) {
    const double xy[4] = {x0, y0, x1, y1};
    c->line(c->ctx, xy, 2, width, colour);
}

/* ---- axes ---- */

struct axis {
    double lo, hi;
    int logscale;
    double p0, p1; /* user units of lo and of hi */
};

struct tick {
    double v;
    char label[32];
};

static double to_px(const struct axis *a, double v) {
    const double t = a->logscale ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                                 : (v - a->lo) / (a->hi - a->lo);
    return a->p0 + t * (a->p1 - a->p0);
}

/* A step of 1, 2 or 5 times a power of ten giving at most `max` ticks. */
static double nice_step(double range, int max) {
    const double raw = range / max, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void tick_label(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0;
    const double a = fabs(v);
    if (a != 0 && (a >= 1e6 || a < 1e-3)) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(buf, n, "%.*f", dec, v);
}

/* Ticks of a; `max` of them at most on a linear axis; on a log axis the
 * decades (and 2, 5 within them when there are few). */
static int ticks(const struct axis *a, int max, struct tick *t) {
    int n = 0;
    if (a->logscale) {
        const int few = log10(a->hi / a->lo) < 3;
        for (double d = pow(10, floor(log10(a->lo))); d <= a->hi && n < MAX_TICKS; d *= 10)
            for (int m = 1; m <= 5 && n < MAX_TICKS; m++) {
                const double v = d * m;
                if ((m != 1 && (!few || (m != 2 && m != 5))) || v < a->lo || v > a->hi) continue;
                t[n].v = v;
                snprintf(t[n++].label, sizeof t[0].label, "%g", v);
            }
        return n;
    }
    const double step = nice_step(a->hi - a->lo, max);
    for (double v = ceil(a->lo / step) * step; v <= a->hi + step * 1e-9 && n < MAX_TICKS;
         v += step) {
        t[n].v = v;
        tick_label(t[n++].label, sizeof t[0].label, v, step);
    }
    return n;
}

/* The data ranges, padded: a little around the values, more to the right
 * of labelled points for their labels. */
static void ranges(const struct gen_plot *p, int markers, struct axis *ax, struct axis *ay) {
    ax->lo = ay->lo = INFINITY, ax->hi = ay->hi = -INFINITY;
    ax->logscale = 0;
    for (int i = 0; i < p->n; i++)
        for (int64_t k = 0; k < p->series[i].n; k++) {
            ax->lo = fmin(ax->lo, p->series[i].x[k]), ax->hi = fmax(ax->hi, p->series[i].x[k]);
            ay->lo = fmin(ay->lo, p->series[i].y[k]), ay->hi = fmax(ay->hi, p->series[i].y[k]);
        }
    if (!(ax->lo <= ax->hi)) ax->lo = 0, ax->hi = 1, ay->lo = 0, ay->hi = 1; /* nothing to draw */
    if (ax->hi <= ax->lo) ax->lo -= 1, ax->hi += 1;
    if (markers) {
        const double pad = 0.08 * (ax->hi - ax->lo);
        ax->lo -= pad, ax->hi += 2 * pad;
    }
    ay->logscale = ay->lo > 0 && ay->hi / ay->lo > 20;
    if (ay->logscale) {
        ay->lo /= 1.15, ay->hi *= 1.15;
    } else {
        const double pad = ay->hi > ay->lo ? 0.05 * (ay->hi - ay->lo)
                           : ay->hi != 0   ? 0.1 * fabs(ay->hi)
                                           : 1;
        ay->lo -= pad, ay->hi += pad;
    }
}

/* ---- curves ---- */

/* The series' points in user units, thinned to the first, lowest, highest
 * and last point of each pixel column (in their order): *xy (2 per point,
 * gen_alloc'd) and the count. */
static enum gen_status curve_points(const struct gen_plot_series *s, const struct axis *ax,
                                    const struct axis *ay, double **xy, int64_t *count) {
    double *o = gen_alloc((size_t)(2 * s->n) * sizeof *o);
    if (!o) return GEN_ERR_NOMEM;
    int64_t m = 0;
    for (int64_t k = 0; k < s->n;) {
        const double col = floor(to_px(ax, s->x[k]));
        int64_t end = k, lo = k, hi = k;
        while (end + 1 < s->n && floor(to_px(ax, s->x[end + 1])) == col) {
            end++;
            if (s->y[end] < s->y[lo]) lo = end;
            if (s->y[end] > s->y[hi]) hi = end;
        }
        const int64_t keep[4] = {k, lo < hi ? lo : hi, lo < hi ? hi : lo, end};
        for (int j = 0; j < 4; j++) {
            if (j && keep[j] == keep[j - 1]) continue;
            o[2 * m] = to_px(ax, s->x[keep[j]]), o[2 * m + 1] = to_px(ay, s->y[keep[j]]), m++;
        }
        k = end + 1;
    }
    *xy = o, *count = m;
    return GEN_OK;
}

/* The legend: a key per drawn series in the strip above the plot, never
 * over the data. It goes right-aligned on the title's line when it fits
 * there, else in rows of its own under the title. */
struct legend {
    int rows;                                              /* rows under the title line */
    double x[GEN_PLOT_MAX_SERIES], y[GEN_PLOT_MAX_SERIES]; /* each key's left end and baseline */
};

enum { LEGEND_KEY = 30, LEGEND_GAP = 18, TITLE_BASE = 24 };

static double key_width(const struct gen_plot_series *s) {
    return LEGEND_KEY + text_width(s->name, TICK_SIZE);
}

static void legend_layout(const struct gen_plot *p, double x0, double x1, struct legend *lg) {
    double total = 0, title = p->title ? text_width(p->title, TITLE_SIZE) + 3 * LEGEND_GAP : 0;
    for (int i = 0; i < p->n; i++)
        if (p->series[i].n > 0) total += key_width(&p->series[i]) + (total > 0 ? LEGEND_GAP : 0);
    lg->rows = x0 + title + total <= x1 ? 0 : 1;
    double x = lg->rows ? x0 : x1 - total;
    for (int i = 0; i < p->n; i++) {
        if (p->series[i].n == 0) continue;
        const double w = key_width(&p->series[i]);
        if (lg->rows && x > x0 && x + w > x1) x = x0, lg->rows++; /* wrap */
        lg->x[i] = x, lg->y[i] = TITLE_BASE + (lg->rows ? lg->rows * LEGEND_ROW : 0);
        x += w + LEGEND_GAP;
    }
}

static void legend(const struct gen_plot *p, const struct plot_canvas *c, const struct legend *lg) {
    for (int i = 0; i < p->n; i++) {
        if (p->series[i].n == 0) continue;
        const double mid = lg->y[i] - 0.36 * TICK_SIZE;
        segment(c, lg->x[i], mid, lg->x[i] + LEGEND_KEY - 8, mid, 3, palette[i]);
        text(c, lg->x[i] + LEGEND_KEY, lg->y[i], p->series[i].name, TICK_SIZE, PLOT_ANCHOR_START,
             ink);
    }
}

/* ---- the chart ---- */

void gen_plot_size(const struct gen_plot *p, int *w, int *h) {
    *w = p->width > 0 ? p->width : GEN_PLOT_WIDTH;
    *h = p->height > 0 ? p->height : GEN_PLOT_HEIGHT;
}

enum gen_status gen_plot_check(const struct gen_plot *p, const char *out) {
    int w, h;
    gen_plot_size(p, &w, &h);
    if (p->n < 1 || p->n > GEN_PLOT_MAX_SERIES)
        return gen_error(GEN_ERR_USAGE, "%s: %d series to plot (1..%d)", out, p->n,
                         GEN_PLOT_MAX_SERIES);
    if (w < 200 || h < 200 || w > 4096 || h > 4096)
        return gen_error(GEN_ERR_USAGE, "%s: a plot of %dx%d (200..4096 per side)", out, w, h);
    for (int i = 0; i < p->n; i++)
        for (int64_t k = 0; k < p->series[i].n; k++)
            if (!isfinite(p->series[i].x[k]) || !isfinite(p->series[i].y[k]))
                return gen_error(GEN_ERR_FORMAT, "%s: a point of '%s' is not finite", out,
                                 p->series[i].name);
    return GEN_OK;
}

enum gen_status gen_plot_draw(const struct gen_plot *p, const struct plot_canvas *c) {
    int W, H;
    gen_plot_size(p, &W, &H);
    int markers = 0;
    for (int i = 0; i < p->n; i++) markers |= p->series[i].n > 0 && !p->series[i].plain;
    struct axis ax, ay;
    ranges(p, markers, &ax, &ay);

    /* margins: title; the y-axis name, its tick labels; the x tick labels and name */
    char ylabel[160];
    snprintf(ylabel, sizeof ylabel, "%s%s%s", p->ylabel ? p->ylabel : "",
             p->ylabel && ay.logscale ? " " : "", ay.logscale ? "(log scale)" : "");
    struct tick xt[MAX_TICKS], yt[MAX_TICKS];
    struct legend lg;
    int nyt = 0;
    double left = 0;
    ay.p0 = H - 52;
    for (int pass = 0; pass < 2;
         pass++) { /* the legend's rows need the left margin, which needs the ticks */
        legend_layout(p, pass ? left : 60, W - 24, &lg);
        ay.p1 = TITLE_BASE + lg.rows * LEGEND_ROW + 16;
        nyt = ticks(&ay, H > 360 ? 8 : 6, yt);
        double wy = 0;
        for (int i = 0; i < nyt; i++) wy = fmax(wy, text_width(yt[i].label, TICK_SIZE));
        left = 12 + (*ylabel ? LABEL_SIZE + 10 : 0) + wy + 10;
    }
    ax.p0 = left, ax.p1 = W - 24;
    const int nxt = ticks(&ax, W > 600 ? 8 : 6, xt);

    c->rect(c->ctx, 0, 0, W, H, white, NULL);
    for (int i = 0; i < nxt; i++) {
        const double x = floor(to_px(&ax, xt[i].v)) + 0.5;
        segment(c, x, ay.p1, x, ay.p0, 1, grid);
        segment(c, x, ay.p0, x, ay.p0 + 5, 1, rule);
        text(c, x, ay.p0 + 8 + TICK_SIZE, xt[i].label, TICK_SIZE, PLOT_ANCHOR_MIDDLE, ink);
    }
    for (int i = 0; i < nyt; i++) {
        const double y = floor(to_px(&ay, yt[i].v)) + 0.5;
        segment(c, ax.p0, y, ax.p1, y, 1, grid);
        segment(c, ax.p0 - 5, y, ax.p0, y, 1, rule);
        text(c, ax.p0 - 8, y + 0.36 * TICK_SIZE, yt[i].label, TICK_SIZE, PLOT_ANCHOR_END, ink);
    }
    const double frame[6] = {ax.p0 + 0.5, ay.p1, ax.p0 + 0.5, ay.p0 + 0.5, ax.p1, ay.p0 + 0.5};
    c->line(c->ctx, frame, 3, 1, rule);

    /* names: title top left, x under its ticks, y up the left side */
    char buf[512];
    if (p->title) {
        const struct plot_text t = {.size = TITLE_SIZE, .bold = 1, .colour = ink};
        c->text(c->ctx, ax.p0, TITLE_BASE, clean_utf8(p->title, buf, sizeof buf), &t);
    }
    text(c, (ax.p0 + ax.p1) / 2, H - 12, p->xlabel ? p->xlabel : "step", LABEL_SIZE,
         PLOT_ANCHOR_MIDDLE, muted);
    if (*ylabel) {
        const struct plot_text t = {
            .size = LABEL_SIZE, .anchor = PLOT_ANCHOR_MIDDLE, .upward = 1, .colour = muted};
        c->text(c->ctx, 12 + LABEL_SIZE, (ay.p0 + ay.p1) / 2, clean_utf8(ylabel, buf, sizeof buf),
                &t);
    }

    /* curves, their points and labels; a lone point is a dot */
    legend(p, c, &lg);
    for (int i = 0; i < p->n; i++) {
        const struct gen_plot_series *s = &p->series[i];
        double *xy;
        int64_t count;
        if (s->n == 0) continue;
        if (curve_points(s, &ax, &ay, &xy, &count) != GEN_OK)
            return gen_error(GEN_ERR_NOMEM, "out of memory drawing a plot");
        if (count > 1) c->line(c->ctx, xy, count, 2, palette[i]);
        gen_free(xy);
        for (int64_t k = 0; k < s->n && (count == 1 || (markers && !s->plain)); k++)
            c->dot(c->ctx, to_px(&ax, s->x[k]), to_px(&ay, s->y[k]), 3.5, palette[i]);
        for (int64_t k = 0; s->labels && k < s->n; k++)
            if (s->labels[k])
                text(c, to_px(&ax, s->x[k]) + 8, to_px(&ay, s->y[k]) - 6, s->labels[k], TICK_SIZE,
                     PLOT_ANCHOR_START, ink);
    }
    return GEN_OK;
}

/* ---- the plots of gen ---- */

enum gen_status gen_plot_xy(const char *png, const char *title, const char *xlabel,
                            const char *ylabel, const struct gen_plot_series *series, int n) {
    const struct gen_plot p = {
        .title = title, .xlabel = xlabel, .ylabel = ylabel, .series = series, .n = n};
    return gen_plot_png(&p, png);
}

static int loss_field(const char *name) {
    const size_t len = strlen(name);
    return !strncmp(name, "loss", 4) || (len > 5 && !strcmp(name + len - 5, "_loss")) ||
           strstr(name, "valid") != NULL;
}

enum gen_status gen_plot_file(const char *jsonl, const char *out, const char *title,
                              int64_t *points) {
    struct gen_metrics_log log;
    enum gen_status st = gen_metrics_log_read(jsonl, GEN_LOG_LENIENT, &log);
    if (st != GEN_OK) return st;
    struct gen_plot_series s[GEN_PLOT_MAX_SERIES];
    int n = 0;
    int64_t total = 0;
    const struct gen_curve *loss = gen_metrics_log_curve(&log, "loss");
    for (int pass = 0; pass < 2; pass++) /* "loss" first, whatever the field order */
        for (int i = 0; i < log.n_curves && n < GEN_PLOT_MAX_SERIES; i++) {
            const struct gen_curve *cv = &log.curves[i];
            if ((pass == 0) != (cv == loss) || !loss_field(cv->name) || cv->n == 0) continue;
            s[n++] = (struct gen_plot_series){
                .name = cv->name, .n = cv->n, .x = cv->x, .y = cv->y, .plain = 1};
            total += cv->n;
        }
    if (n == 0) {
        st = gen_error(GEN_ERR_FORMAT, "%s: no loss values to plot", jsonl);
    } else {
        const struct gen_plot p = {.title = title, .ylabel = "loss", .series = s, .n = n};
        char *svg = NULL;
        if (!gen_fs_has_ext(out, ".svg")) {
            st = gen_plot_png(&p, out);
        } else if ((st = gen_plot_svg(&p, GEN_SVG_FILE, &svg)) == GEN_OK) {
            st = gen_fs_write_atomic(out, svg, strlen(svg));
            gen_free(svg);
        }
    }
    if (points) *points = st == GEN_OK ? total : 0;
    gen_metrics_log_free(&log);
    return st;
}

enum gen_status gen_plot_metrics(const char *run_dir) {
    char in[4200], out[4200];
    snprintf(in, sizeof in, "%s/metrics.jsonl", run_dir);
    snprintf(out, sizeof out, "%s/loss.png", run_dir);
    return gen_plot_file(in, out, run_dir, NULL);
}
