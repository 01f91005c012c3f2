/* detect.c - anomaly detection numbers (see gen/detect.h): AUROC, average
 * precision and FPR at 95 % TPR from one walk down the pooled scores,
 * threshold by threshold; the input complexity of an image as its PNG
 * length; the heat-map colour map. */
#include <math.h>
#include <stdlib.h>

#include "gen/detect.h"
#include "gen/io.h"

struct scored {
    double s;
    int ood;
};

static int by_score_desc(const void *a, const void *b) {
    const double x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
    return (x < y) - (x > y);
}

/* One distinct threshold of the walk: the counts of scores >= it. */
struct point {
    int64_t tp, fp;
};

/* The pooled scores, highest first, into *out (gen_alloc'd). */
static enum gen_status pool(const double *in, int64_t n_in, const double *ood, int64_t n_ood,
                            struct scored **out) {
    if (n_in < 1 || n_ood < 1)
        return gen_error(GEN_ERR_USAGE,
                         "anomaly metrics need scores of both sets (got %lld and %lld)",
                         (long long)n_in, (long long)n_ood);
    for (int64_t i = 0; i < n_in + n_ood; i++)
        if (!isfinite(i < n_in ? in[i] : ood[i - n_in]))
            return gen_error(GEN_ERR_FORMAT, "score %lld of the %s set is not a finite number",
                             (long long)(i < n_in ? i : i - n_in),
                             i < n_in ? "in-distribution" : "out-of-distribution");
    struct scored *p = gen_calloc((size_t)(n_in + n_ood), sizeof *p);
    if (!p)
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld scores", (long long)(n_in + n_ood));
    for (int64_t i = 0; i < n_in; i++) p[i] = (struct scored){in[i], 0};
    for (int64_t i = 0; i < n_ood; i++) p[n_in + i] = (struct scored){ood[i], 1};
    qsort(p, (size_t)(n_in + n_ood), sizeof *p, by_score_desc);
    *out = p;
    return GEN_OK;
}

/* The next distinct threshold from position *k of the pooled scores:
 * every score equal to p[*k] moves below it together (ties as one step). */
static struct point step(const struct scored *p, int64_t n, int64_t *k, struct point at) {
    const double s = p[*k].s;
    for (; *k < n && p[*k].s == s; (*k)++) {
        if (p[*k].ood)
            at.tp++;
        else
            at.fp++;
    }
    return at;
}

enum gen_status gen_detect_metrics(const double *in, int64_t n_in, const double *ood, int64_t n_ood,
                                   struct gen_detect *r) {
    struct scored *p = NULL;
    const enum gen_status st = pool(in, n_in, ood, n_ood, &p);
    if (st != GEN_OK) return st;
    const int64_t n = n_in + n_ood;
    struct point at = {0, 0};
    double auroc = 0, ap = 0, fpr95 = 1;
    int found = 0;
    for (int64_t k = 0; k < n;) {
        const struct point was = at;
        at = step(p, n, &k, was);
        /* a trapezoid: a tie of both sets counts as half */
        auroc += (double)(at.fp - was.fp) / (double)n_in * (double)(at.tp + was.tp) /
                 (2.0 * (double)n_ood);
        if (at.tp > was.tp)
            ap +=
                (double)(at.tp - was.tp) / (double)n_ood * (double)at.tp / (double)(at.tp + at.fp);
        if (!found && at.tp * 100 >= n_ood * 95) {
            fpr95 = (double)at.fp / (double)n_in;
            found = 1;
        }
    }
    gen_free(p);
    *r = (struct gen_detect){.auroc = auroc, .aupr = ap, .fpr95 = fpr95};
    return GEN_OK;
}

enum gen_status gen_detect_roc(const double *in, int64_t n_in, const double *ood, int64_t n_ood,
                               int max_points, double *fpr, double *tpr, int *n_out) {
    GEN_ASSERT(max_points >= 4);
    struct scored *p = NULL;
    const enum gen_status st = pool(in, n_in, ood, n_ood, &p);
    if (st != GEN_OK) return st;
    const int64_t n = n_in + n_ood;
    /* fpr + tpr climbs from 0 to 2; a point is kept once it has climbed
     * `gap` past the last kept one, so at most max_points are kept */
    const double gap = 2.0 / (double)(max_points - 2);
    int m = 0;
    fpr[m] = 0, tpr[m] = 0, m++;
    struct point at = {0, 0};
    for (int64_t k = 0; k < n;) {
        at = step(p, n, &k, at);
        const double x = (double)at.fp / (double)n_in, y = (double)at.tp / (double)n_ood;
        if (k < n && x + y - fpr[m - 1] - tpr[m - 1] < gap) continue;
        fpr[m] = x, tpr[m] = y, m++;
    }
    gen_free(p);
    *n_out = m;
    return GEN_OK;
}

enum gen_status gen_complexity_nats(const uint8_t *pixels, int c, int h, int w, double *nats) {
    if (c != 1 && c != 3)
        return gen_error(GEN_ERR_USAGE, "complexity of an image with %d channels (1 or 3)", c);
    const size_t plane = (size_t)h * (size_t)w;
    uint8_t *hwc = gen_alloc(plane * (size_t)c); /* (h, w, c) as PNG rows hold them */
    if (!hwc) return gen_error(GEN_ERR_NOMEM, "out of memory for a %dx%d image", h, w);
    for (size_t i = 0; i < plane; i++)
        for (int k = 0; k < c; k++) hwc[i * (size_t)c + (size_t)k] = pixels[(size_t)k * plane + i];
    uint8_t *png = NULL;
    size_t len = 0;
    const enum gen_status st = gen_png_encode(hwc, w, h, c, &png, &len);
    gen_free(hwc);
    gen_free(png);
    if (st == GEN_OK) *nats = 8.0 * (double)len * log(2.0);
    return st;
}

void gen_heat_colour(double v, float rgb[3]) {
    /* after matplotlib's "inferno", at v = 0, 1/4, 1/2, 3/4, 1 */
    static const float stop[5][3] = {{0.001f, 0.000f, 0.014f},
                                     {0.258f, 0.039f, 0.406f},
                                     {0.735f, 0.216f, 0.330f},
                                     {0.978f, 0.557f, 0.035f},
                                     {0.988f, 0.998f, 0.645f}};
    const double x = v > 0 ? (v < 1 ? v * 4 : 4) : 0; /* NaN: 0 */
    const int i = x < 4 ? (int)x : 3;
    const float t = (float)(x - i);
    for (int k = 0; k < 3; k++) rgb[k] = stop[i][k] + t * (stop[i + 1][k] - stop[i][k]);
}
