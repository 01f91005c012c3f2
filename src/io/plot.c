/* plot.c - loss curves from metrics.jsonl into a PNG (see gen/plot.h): a
 * tiny RGB rasteriser with thick Bresenham lines, "nice" tick steps of 1, 2
 * or 5 times a power of ten, and a 5x7 bitmap font drawn at 2x. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gen/io.h"
#include "gen/plot.h"
#include "io/fs.h"

/* ---- font: 5x7 glyphs, rows top to bottom, '#' on ---- */

static const struct {
    char ch;
    const char *rows; /* 7 groups of 5, separated by spaces */
} font[] = {
    {'0', ".###. #...# #..## #.#.# ##..# #...# .###."},
    {'1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'2', ".###. #...# ....# ...#. ..#.. .#... #####"},
    {'3', "####. ....# ....# .###. ....# ....# ####."},
    {'4', "...#. ..##. .#.#. #..#. ##### ...#. ...#."},
    {'5', "##### #.... ####. ....# ....# #...# .###."},
    {'6', "..##. .#... #.... ####. #...# #...# .###."},
    {'7', "##### ....# ...#. ..#.. .#... .#... .#..."},
    {'8', ".###. #...# #...# .###. #...# #...# .###."},
    {'9', ".###. #...# #...# .#### ....# ...#. .##.."},
    {'a', "..... ..... .###. ....# .#### #...# .####"},
    {'b', "#.... #.... ####. #...# #...# #...# ####."},
    {'c', "..... ..... .###. #.... #.... #.... .###."},
    {'d', "....# ....# .#### #...# #...# #...# .####"},
    {'e', "..... ..... .###. #...# ##### #.... .###."},
    {'f', "..##. .#... ####. .#... .#... .#... .#..."},
    {'g', "..... ..... .#### #...# .#### ....# .###."},
    {'h', "#.... #.... ####. #...# #...# #...# #...#"},
    {'i', "..#.. ..... .##.. ..#.. ..#.. ..#.. .###."},
    {'j', "...#. ..... ..##. ...#. ...#. #..#. .##.."},
    {'k', "#.... #.... #..#. #.#.. ##... #.#.. #..#."},
    {'l', ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'m', "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#"},
    {'n', "..... ..... ####. #...# #...# #...# #...#"},
    {'o', "..... ..... .###. #...# #...# #...# .###."},
    {'p', "..... ..... ####. #...# ####. #.... #...."},
    {'q', "..... ..... .#### #...# .#### ....# ....#"},
    {'r', "..... ..... #.##. ##..# #.... #.... #...."},
    {'s', "..... ..... .#### #.... .###. ....# ####."},
    {'t', ".#... .#... ####. .#... .#... .#..# ..##."},
    {'u', "..... ..... #...# #...# #...# #..## .##.#"},
    {'v', "..... ..... #...# #...# #...# .#.#. ..#.."},
    {'w', "..... ..... #...# #...# #.#.# #.#.# .#.#."},
    {'x', "..... ..... #...# .#.#. ..#.. .#.#. #...#"},
    {'y', "..... ..... #...# #...# .#### ....# .###."},
    {'z', "..... ..... ##### ...#. ..#.. .#... #####"},
    {'.', "..... ..... ..... ..... ..... .##.. .##.."},
    {',', "..... ..... ..... ..... .##.. ..#.. .#..."},
    {'-', "..... ..... ..... .###. ..... ..... ....."},
    {'+', "..... ..#.. ..#.. ##### ..#.. ..#.. ....."},
    {'_', "..... ..... ..... ..... ..... ..... #####"},
    {':', "..... .##.. .##.. ..... .##.. .##.. ....."},
    {'/', "....# ....# ...#. ..#.. .#... #.... #...."},
    {'(', "...#. ..#.. .#... .#... .#... ..#.. ...#."},
    {')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."},
    {'%', "##... ##..# ...#. ..#.. .#... #..## ...##"},
    {'=', "..... ..... ##### ..... ##### ..... ....."},
    {'?', ".###. #...# ....# ...#. ..#.. ..... ..#.."},
};

#define FONT_SCALE 2
#define GLYPH_ADVANCE (6 * FONT_SCALE)
#define GLYPH_HEIGHT (7 * FONT_SCALE)

static const char *glyph(char ch) {
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].ch == ch) return font[i].rows;
    return ch == ' ' ? NULL : "?";
}

/* ---- canvas ---- */

struct rgb {
    uint8_t r, g, b;
};

struct canvas {
    int w, h;
    uint8_t *px; /* (h, w, 3) */
};

static void put(struct canvas *c, int x, int y, struct rgb col) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r, p[1] = col.g, p[2] = col.b;
}

static void fill(struct canvas *c, int x0, int y0, int x1, int y1, struct rgb col) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, col);
}

/* A line of the given thickness: Bresenham stepping a square brush. */
static void line(struct canvas *c, int x0, int y0, int x1, int y1, int thick, struct rgb col) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, lo = -(thick - 1) / 2, hi = thick / 2;
    for (;;) {
        fill(c, x0 + lo, y0 + lo, x0 + hi, y0 + hi, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

static int text_width(const char *s) {
    int n = (int)strlen(s);
    return n ? n * GLYPH_ADVANCE - FONT_SCALE : 0;
}

/* Text with its top-left corner at (x, y). */
static void text(struct canvas *c, int x, int y, const char *s, struct rgb col) {
    for (; *s; s++, x += GLYPH_ADVANCE) {
        const char *rows = glyph(*s);
        if (!rows) continue;
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++)
                if (rows[r * 6 + k] == '#')
                    fill(c, x + k * FONT_SCALE, y + r * FONT_SCALE, x + (k + 1) * FONT_SCALE - 1,
                         y + (r + 1) * FONT_SCALE - 1, col);
    }
}

/* ---- series from metrics.jsonl ---- */

struct series {
    char name[64];
    int64_t n, cap;
    double *x, *y;
    const char *const *labels; /* (n) text beside each point, or NULL */
    int plain;                 /* no dot at each point                 */
};

struct plot {
    struct series s[GEN_PLOT_MAX_SERIES];
    int n;
    const char *xlabel, *ylabel; /* axis names (ylabel may be NULL) */
    int markers;                 /* a dot at every point          */
};

static int plotted(const char *name) {
    size_t len = strlen(name);
    return !strncmp(name, "loss", 4) || (len > 5 && !strcmp(name + len - 5, "_loss")) ||
           strstr(name, "valid") != NULL;
}

static struct series *series_for(struct plot *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->s[i].name, name)) return &p->s[i];
    if (p->n == GEN_PLOT_MAX_SERIES) return NULL;
    struct series *s = &p->s[p->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static enum gen_status add_point(struct series *s, double x, double y) {
    while (s->n > 0 && s->x[s->n - 1] >= x) s->n--; /* a restart replaces what follows */
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return gen_error(GEN_ERR_NOMEM, "plot: out of memory");
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return gen_error(GEN_ERR_NOMEM, "plot: out of memory");
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x, s->y[s->n] = y, s->n++;
    return GEN_OK;
}

static void plot_free(struct plot *p) {
    for (int i = 0; i < p->n; i++) free(p->s[i].x), free(p->s[i].y);
}

static enum gen_status read_metrics(const char *path, struct plot *p) {
    FILE *f = gen_fs_fopen_read(path);
    if (!f) return GEN_ERR_IO;
    char *buf = NULL;
    size_t cap = 0;
    enum gen_status st = GEN_OK;
    while (st == GEN_OK && getline(&buf, &cap, f) >= 0) {
        cJSON *o = cJSON_Parse(buf);
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (cJSON_IsNumber(step) && isfinite(step->valuedouble)) {
            for (const cJSON *e = o->child; e && st == GEN_OK; e = e->next) {
                if (!e->string || !cJSON_IsNumber(e) || !isfinite(e->valuedouble) ||
                    !plotted(e->string))
                    continue;
                struct series *s = series_for(p, e->string);
                if (s) st = add_point(s, step->valuedouble, e->valuedouble);
            }
        }
        cJSON_Delete(o);
    }
    if (st == GEN_OK && ferror(f)) st = gen_error(GEN_ERR_IO, "%s: read error", path);
    for (int i = 1; i < p->n; i++) /* "loss" first, whatever the field order */
        if (!strcmp(p->s[i].name, "loss")) {
            struct series tmp = p->s[i];
            memmove(&p->s[1], &p->s[0], (size_t)i * sizeof p->s[0]);
            p->s[0] = tmp;
        }
    free(buf);
    fclose(f);
    int64_t points = 0;
    for (int i = 0; i < p->n; i++) points += p->s[i].n;
    if (st == GEN_OK && points == 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: no loss values to plot", path);
    return st;
}

/* ---- axes ---- */

/* A step of 1, 2 or 5 times a power of ten giving at most `max` ticks. */
static double nice_step(double range, int max) {
    double raw = range / max, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void tick_label(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0;
    double a = fabs(v);
    if (a != 0 && (a >= 1e6 || a < 1e-3)) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(buf, n, "%.*f", dec, v);
}

struct axis {
    double lo, hi;
    int logscale;
    int p0, p1; /* pixel of lo, of hi */
};

static double to_px(const struct axis *a, double v) {
    double t = a->logscale ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                           : (v - a->lo) / (a->hi - a->lo);
    return a->p0 + t * (a->p1 - a->p0);
}

static const struct rgb palette[GEN_PLOT_MAX_SERIES] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
    {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
};

enum { LEFT = 90, RIGHT = 24, TOP = 44, BOTTOM = 56 };

static void draw(struct canvas *c, const struct plot *p, const char *title) {
    const char *xlabel = p->xlabel ? p->xlabel : "step";
    const struct rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225},
                     grey = {90, 90, 90};
    fill(c, 0, 0, c->w - 1, c->h - 1, white);
    struct axis ax = {INFINITY, -INFINITY, 0, LEFT, c->w - RIGHT};
    struct axis ay = {INFINITY, -INFINITY, 0, c->h - BOTTOM, TOP};
    for (int i = 0; i < p->n; i++)
        for (int64_t k = 0; k < p->s[i].n; k++) {
            ax.lo = fmin(ax.lo, p->s[i].x[k]), ax.hi = fmax(ax.hi, p->s[i].x[k]);
            ay.lo = fmin(ay.lo, p->s[i].y[k]), ay.hi = fmax(ay.hi, p->s[i].y[k]);
        }
    if (ax.hi <= ax.lo) ax.lo -= 1, ax.hi += 1;
    if (p->markers) { /* room for the points' labels */
        const double pad = 0.08 * (ax.hi - ax.lo);
        ax.lo -= pad, ax.hi += 2 * pad;
    }
    ay.logscale = ay.lo > 0 && ay.hi / ay.lo > 20;
    if (ay.logscale) {
        ay.lo /= 1.15, ay.hi *= 1.15;
    } else {
        double pad = ay.hi > ay.lo ? 0.05 * (ay.hi - ay.lo) : fmax(fabs(ay.hi) * 0.1, 1);
        ay.lo -= pad, ay.hi += pad;
    }

    char buf[64];
    /* x ticks and grid */
    double xs = nice_step(ax.hi - ax.lo, 8);
    for (double v = ceil(ax.lo / xs) * xs; v <= ax.hi + xs * 1e-9; v += xs) {
        int x = (int)lround(to_px(&ax, v));
        line(c, x, ay.p1, x, ay.p0, 1, grid);
        line(c, x, ay.p0, x, ay.p0 + 5, 1, black);
        tick_label(buf, sizeof buf, v, xs);
        text(c, x - text_width(buf) / 2, ay.p0 + 10, buf, black);
    }
    /* y ticks and grid: decades (and 2, 5 within few decades) on a log axis */
    if (ay.logscale) {
        int few = log10(ay.hi / ay.lo) < 3;
        for (double d = pow(10, floor(log10(ay.lo))); d <= ay.hi; d *= 10)
            for (int m = 1; m <= 5; m++) {
                if (m != 1 && (!few || (m != 2 && m != 5))) continue;
                double v = d * m;
                if (v < ay.lo || v > ay.hi) continue;
                int y = (int)lround(to_px(&ay, v));
                line(c, ax.p0, y, ax.p1, y, 1, grid);
                line(c, ax.p0 - 5, y, ax.p0, y, 1, black);
                snprintf(buf, sizeof buf, "%g", v);
                text(c, ax.p0 - 9 - text_width(buf), y - GLYPH_HEIGHT / 2, buf, black);
            }
    } else {
        double ys = nice_step(ay.hi - ay.lo, 8);
        for (double v = ceil(ay.lo / ys) * ys; v <= ay.hi + ys * 1e-9; v += ys) {
            int y = (int)lround(to_px(&ay, v));
            line(c, ax.p0, y, ax.p1, y, 1, grid);
            line(c, ax.p0 - 5, y, ax.p0, y, 1, black);
            tick_label(buf, sizeof buf, v, ys);
            text(c, ax.p0 - 9 - text_width(buf), y - GLYPH_HEIGHT / 2, buf, black);
        }
    }
    /* frame, labels */
    line(c, ax.p0, ay.p0, ax.p1, ay.p0, 1, black);
    line(c, ax.p0, ay.p0, ax.p0, ay.p1, 1, black);
    text(c, (ax.p0 + ax.p1 - text_width(xlabel)) / 2, c->h - GLYPH_HEIGHT - 8, xlabel, grey);
    if (title) text(c, LEFT, (TOP - GLYPH_HEIGHT) / 2, title, black);
    if (p->ylabel || ay.logscale) {
        snprintf(buf, sizeof buf, "%s%s%s", p->ylabel ? p->ylabel : "",
                 p->ylabel && ay.logscale ? " " : "", ay.logscale ? "(log)" : "");
        text(c, 8, TOP - GLYPH_HEIGHT - 6, buf, grey);
    }
    /* curves (a lone point is a dot) */
    for (int i = 0; i < p->n; i++) {
        const struct series *s = &p->s[i];
        for (int64_t k = 0; k < s->n; k++) {
            int x1 = (int)lround(to_px(&ax, s->x[k])), y1 = (int)lround(to_px(&ay, s->y[k]));
            if (p->markers && !s->plain) line(c, x1, y1, x1, y1, 7, palette[i]);
            if (s->labels && s->labels[k]) text(c, x1 + 8, y1 - GLYPH_HEIGHT - 2, s->labels[k], black);
            if (k == 0) {
                line(c, x1, y1, x1, y1, s->n == 1 ? 5 : 2, palette[i]);
                continue;
            }
            int x0 = (int)lround(to_px(&ax, s->x[k - 1])), y0 = (int)lround(to_px(&ay, s->y[k - 1]));
            line(c, x0, y0, x1, y1, 2, palette[i]);
        }
    }
    /* legend, top right */
    int wmax = 0;
    for (int i = 0; i < p->n; i++)
        if (text_width(p->s[i].name) > wmax) wmax = text_width(p->s[i].name);
    int lx = ax.p1 - wmax - 40, ly = ay.p1 + 8, row = GLYPH_HEIGHT + 6;
    fill(c, lx - 8, ly - 6, ax.p1 - 6, ly + p->n * row, white);
    for (int i = 0; i < p->n; i++) {
        int y = ly + i * row;
        line(c, lx, y + GLYPH_HEIGHT / 2, lx + 20, y + GLYPH_HEIGHT / 2, 3, palette[i]);
        text(c, lx + 28, y, p->s[i].name, black);
    }
}

/* Draws p into png (a temporary name of this process's own, renamed over
 * the plot, so a viewer never sees half a PNG). */
static enum gen_status render(const struct plot *p, const char *png, const char *title) {
    struct canvas c = {GEN_PLOT_WIDTH, GEN_PLOT_HEIGHT, NULL};
    c.px = gen_alloc((size_t)c.w * (size_t)c.h * 3);
    if (!c.px) return gen_error(GEN_ERR_NOMEM, "%s: out of memory for the plot", png);
    draw(&c, p, title);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", png, (long)getpid());
    enum gen_status st = gen_png_write(tmp, c.w, c.h, 3, c.px);
    if (st == GEN_OK && rename(tmp, png) != 0) {
        st = gen_error(GEN_ERR_IO, "%s: cannot write: %s", png, strerror(errno));
        remove(tmp);
    }
    gen_free(c.px);
    return st;
}

enum gen_status gen_plot_xy(const char *png, const char *title, const char *xlabel,
                            const char *ylabel, const struct gen_plot_series *series, int n) {
    struct plot p;
    memset(&p, 0, sizeof p);
    p.xlabel = xlabel, p.ylabel = ylabel;
    if (n < 1 || n > GEN_PLOT_MAX_SERIES)
        return gen_error(GEN_ERR_USAGE, "%s: %d series to plot (1..%d)", png, n, GEN_PLOT_MAX_SERIES);
    for (int i = 0; i < n; i++) {
        const struct gen_plot_series *in = &series[i];
        for (int k = 0; k < in->n; k++)
            if (!isfinite(in->x[k]) || !isfinite(in->y[k]))
                return gen_error(GEN_ERR_FORMAT, "%s: a point of '%s' is not finite", png, in->name);
        p.s[i] = (struct series){.n = in->n, .x = (double *)in->x, .y = (double *)in->y, .labels = in->labels, .plain = in->plain};
        p.markers |= !in->plain;
        snprintf(p.s[i].name, sizeof p.s[i].name, "%s", in->name);
    }
    p.n = n;
    return render(&p, png, title); /* the series are the caller's: nothing to free */
}

enum gen_status gen_plot_file(const char *jsonl, const char *png, const char *title,
                              int64_t *points) {
    struct plot p;
    memset(&p, 0, sizeof p);
    enum gen_status st = read_metrics(jsonl, &p);
    if (st == GEN_OK) {
        st = render(&p, png, title);
        if (points) {
            *points = 0;
            for (int i = 0; i < p.n; i++) *points += p.s[i].n;
        }
    }
    plot_free(&p);
    return st;
}

enum gen_status gen_plot_metrics(const char *run_dir) {
    char in[4200], out[4200];
    snprintf(in, sizeof in, "%s/metrics.jsonl", run_dir);
    snprintf(out, sizeof out, "%s/loss.png", run_dir);
    return gen_plot_file(in, out, run_dir, NULL);
}
