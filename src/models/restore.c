/* restore.c - the image maths of restoration (see gen/restore.h): the task
 * a command's options describe, the degradations and masks gen applies to
 * clean images, the low-pass projection of super-resolution, and the
 * classical baselines (bicubic, Gaussian blur, mean-fill). */
#include <math.h>
#include <stb_image_resize.h>
#include <stdio.h>
#include <string.h>

#include "gen/family.h"
#include "gen/metrics.h"
#include "gen/restore.h"

/* ---- the task ---- */

static const char *const regions[] = {"centre", "center", "left", "right", "top", "bottom", "strokes"};
enum { REGION_STROKES = 6, N_REGIONS = 7 };

/* An option of opts when opts has it and it holds a value. */
static const struct gen_config_entry *given(const struct gen_config *opts, enum gen_family_option o) {
    const struct gen_config_entry *e = opts ? gen_opt_get(opts, &gen_family_options[o]) : NULL;
    return e && e->present ? e : NULL;
}

enum gen_status gen_restore_task_of(const struct gen_config *opts,
                                    const struct gen_image_set *mask_image,
                                    struct gen_restore_task *t) {
    const struct gen_config_entry *restore = given(opts, GEN_FAM_RESTORE),
                                  *inpaint = given(opts, GEN_FAM_INPAINT),
                                  *superres = given(opts, GEN_FAM_SUPERRES),
                                  *denoise = given(opts, GEN_FAM_DENOISE),
                                  *strength = given(opts, GEN_FAM_STRENGTH),
                                  *mask = given(opts, GEN_FAM_MASK);
    *t = (struct gen_restore_task){.factor = superres ? (int)superres->i : 4,
                                   .sigma = denoise ? denoise->f : 0.3,
                                   .strength = strength ? strength->f : 0,
                                   .mask = mask ? mask->s : NULL,
                                   .mask_image = mask_image,
                                   .eval = restore != NULL};
    if (restore) {
        t->mode = !strcmp(restore->s, "inpaint")    ? GEN_RESTORE_INPAINT
                  : !strcmp(restore->s, "superres") ? GEN_RESTORE_SUPERRES
                                                    : GEN_RESTORE_DENOISE;
        if (!t->mask) t->mask = regions[REGION_STROKES];
    } else if (opts && gen_opt_get(opts, &gen_family_options[GEN_FAM_RESTORE])) {
        /* gen eval without --restore: the parameters have nothing to say */
        if (superres || denoise || strength || mask)
            return gen_error(GEN_ERR_USAGE, "--%s: a parameter of --restore MODE",
                             superres ? "superres" : denoise ? "denoise" : strength ? "strength" : "mask");
    } else {
        if ((inpaint != NULL) + (superres != NULL) + (denoise != NULL) > 1)
            return gen_error(GEN_ERR_USAGE,
                             "--inpaint, --superres and --denoise: one restoration at a time");
        t->mode = inpaint ? GEN_RESTORE_INPAINT
                  : superres ? GEN_RESTORE_SUPERRES
                  : denoise  ? GEN_RESTORE_DENOISE
                             : GEN_RESTORE_NONE;
        if (mask && !inpaint) return gen_error(GEN_ERR_USAGE, "--mask needs --inpaint");
        if (strength && !denoise) return gen_error(GEN_ERR_USAGE, "--strength needs --denoise");
    }
    if (t->mode == GEN_RESTORE_SUPERRES && t->factor != 2 && t->factor != 4)
        return gen_error(GEN_ERR_USAGE, "--superres: K must be 2 or 4, got %d", t->factor);
    if (t->mode == GEN_RESTORE_DENOISE && !(t->sigma > 0))
        return gen_error(GEN_ERR_USAGE, "--denoise: the noise level must be above 0");
    if (t->mode == GEN_RESTORE_INPAINT && !t->mask)
        return gen_error(GEN_ERR_USAGE,
                         "--inpaint needs --mask (an image, white = keep, or "
                         "centre|left|right|top|bottom|strokes: the part to regenerate)");
    return GEN_OK;
}

static int region_of(const char *name) {
    for (int k = 0; name && k < N_REGIONS; k++)
        if (!strcmp(name, regions[k])) return k;
    return -1;
}

enum gen_status gen_restore_check(const struct gen_restore_task *t, int C, int H, int W) {
    (void)C;
    if (t->mode == GEN_RESTORE_SUPERRES && (H % t->factor || W % t->factor))
        return gen_error(GEN_ERR_USAGE, "--superres %d: the model's %dx%d images are not divisible by %d",
                         t->factor, W, H, t->factor);
    if (t->mode != GEN_RESTORE_INPAINT) return GEN_OK;
    const struct gen_image_set *img = t->mask_image;
    if (!img && region_of(t->mask) < 0)
        return gen_error(GEN_ERR_USAGE,
                         "--mask: '%s' is neither an image file nor one of "
                         "centre|left|right|top|bottom|strokes",
                         t->mask);
    if (img && (img->n != 1 || img->c != 1 || img->h != H || img->w != W))
        return gen_error(GEN_ERR_FORMAT, "--mask %s: the mask is %dx%d, the model wants %dx%d",
                         t->mask, img->w, img->h, W, H);
    return GEN_OK;
}

void gen_restore_describe(const struct gen_restore_task *t, char *buf, size_t size) {
    switch (t->mode) {
    case GEN_RESTORE_INPAINT: snprintf(buf, size, "inpaint %s", t->mask_image ? "mask file" : t->mask); break;
    case GEN_RESTORE_SUPERRES: snprintf(buf, size, "superres x%d", t->factor); break;
    case GEN_RESTORE_DENOISE: snprintf(buf, size, "denoise sigma %g", t->sigma); break;
    default: snprintf(buf, size, "none"); break;
    }
}

int gen_restore_low_side(const struct gen_restore_task *t, int side) {
    return t->mode == GEN_RESTORE_SUPERRES ? side / t->factor : side;
}

/* ---- masks and degradations ---- */

/* The stream of image `index` of a request for one purpose (tag). */
static void task_rng(struct gen_rng *r, uint64_t seed, int64_t index, uint64_t tag) {
    gen_rng_seed(r, (seed ^ tag) * 0xbf58476d1ce4e5b9ull + (uint64_t)index * 0x94d049bb133111ebull + 1);
}

/* Hides the pixels within `rad` of the segment (x0, y0) - (x1, y1). */
static void paint_segment(double x0, double y0, double x1, double y1, double rad, int H, int W,
                          float *keep) {
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0;
            u = u < 0 ? 0 : u > 1 ? 1 : u;
            const double ex = x - (x0 + u * dx), ey = y - (y0 + u * dy);
            if (ex * ex + ey * ey <= rad * rad) keep[y * W + x] = 0.0f;
        }
}

/* 2 to 4 strokes of 2 to 4 segments each, a brush of radius 0.05 side +
 * 0.5 pixels, segments of 0.15 to 0.35 of the side in random directions. */
static void draw_strokes(struct gen_rng *r, int H, int W, float *keep) {
    const double side = H < W ? H : W, rad = 0.05 * side + 0.5;
    const int strokes = 2 + (int)gen_rng_below(r, 3);
    for (int s = 0; s < strokes; s++) {
        double x = gen_rng_uniform(r) * (W - 1), y = gen_rng_uniform(r) * (H - 1);
        const int segments = 2 + (int)gen_rng_below(r, 3);
        for (int k = 0; k < segments; k++) {
            const double angle = 2 * M_PI * gen_rng_uniform(r);
            const double len = (0.15 + 0.2 * gen_rng_uniform(r)) * side;
            double nx = x + len * cos(angle), ny = y + len * sin(angle);
            nx = nx < 0 ? 0 : nx > W - 1 ? W - 1 : nx;
            ny = ny < 0 ? 0 : ny > H - 1 ? H - 1 : ny;
            paint_segment(x, y, nx, ny, rad, H, W, keep);
            x = nx, y = ny;
        }
    }
}

void gen_restore_mask(const struct gen_restore_task *t, uint64_t seed, int64_t index, int H, int W,
                      float *keep) {
    const int kind = t->mask_image ? -1 : region_of(t->mask);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int hole = 0;
            switch (kind) {
            case 0:
            case 1: hole = y >= H / 4 && y < H - H / 4 && x >= W / 4 && x < W - W / 4; break;
            case 2: hole = x < W / 2; break;
            case 3: hole = x >= W / 2; break;
            case 4: hole = y < H / 2; break;
            case 5: hole = y >= H / 2; break;
            case REGION_STROKES: break;
            default: hole = t->mask_image->pixels[y * W + x] < 128; break;
            }
            keep[y * W + x] = hole ? 0.0f : 1.0f;
        }
    if (kind == REGION_STROKES) {
        struct gen_rng r;
        task_rng(&r, seed, index, 0x5770ce5ull);
        draw_strokes(&r, H, W, keep);
    }
}

void gen_restore_degrade(const struct gen_restore_task *t, uint64_t seed, int64_t index, int C,
                         int H, int W, const float *x, float *y, float *keep) {
    const int64_t HW = (int64_t)H * W, D = C * HW;
    switch (t->mode) {
    case GEN_RESTORE_SUPERRES: gen_restore_downsample(x, C, H, W, t->factor, y); break;
    case GEN_RESTORE_DENOISE: {
        struct gen_rng r;
        task_rng(&r, seed, index, 0xde9015eull);
        gen_rng_fill_normal(&r, y, D, 0.0f, 1.0f);
        for (int64_t k = 0; k < D; k++) y[k] = (float)(x[k] + t->sigma * y[k]);
        break;
    }
    case GEN_RESTORE_INPAINT:
        gen_restore_mask(t, seed, index, H, W, keep);
        for (int64_t k = 0; k < D; k++) y[k] = keep[k % HW] > 0.5f ? x[k] : GEN_RESTORE_HOLE;
        break;
    default: memcpy(y, x, (size_t)D * sizeof *y); break;
    }
}

/* ---- operators ---- */

/* The mean of block (by, bx) of channel c of x (C, H, W). */
static double block_mean(const float *x, int H, int W, int K, int c, int by, int bx) {
    double s = 0;
    for (int dy = 0; dy < K; dy++)
        for (int dx = 0; dx < K; dx++) s += x[((int64_t)c * H + by * K + dy) * W + bx * K + dx];
    return s / (K * K);
}

void gen_restore_downsample(const float *x, int C, int H, int W, int K, float *y) {
    const int h = H / K, w = W / K;
    for (int c = 0; c < C; c++)
        for (int by = 0; by < h; by++)
            for (int bx = 0; bx < w; bx++)
                y[((int64_t)c * h + by) * w + bx] = (float)block_mean(x, H, W, K, c, by, bx);
}

void gen_restore_upsample_nearest(const float *y, int C, int H, int W, int K, float *x) {
    const int h = H / K, w = W / K;
    for (int c = 0; c < C; c++)
        for (int py = 0; py < H; py++)
            for (int px = 0; px < W; px++)
                x[((int64_t)c * H + py) * W + px] = y[((int64_t)c * h + py / K) * w + px / K];
}

/* The c that makes the mean of clip(v + c, lo, hi) over n values equal
 * target (in [lo, hi]), by bisection: the mean grows with c. */
static double clipped_shift(const float *v, int n, double target, float lo, float hi) {
    double vmin = v[0], vmax = v[0];
    for (int k = 1; k < n; k++) vmin = v[k] < vmin ? v[k] : vmin, vmax = v[k] > vmax ? v[k] : vmax;
    double a = lo - vmax, b = hi - vmin; /* mean lo at a, hi at b */
    for (int it = 0; it < 100 && b - a > 1e-12; it++) {
        const double c = 0.5 * (a + b);
        double s = 0;
        for (int k = 0; k < n; k++) {
            const double u = v[k] + c;
            s += u < lo ? lo : u > hi ? hi : u;
        }
        if (s / n < target) a = c;
        else b = c;
    }
    return 0.5 * (a + b);
}

void gen_restore_match_blocks(float *x, int C, int H, int W, int K, const float *target, float lo,
                              float hi) {
    const int h = H / K, w = W / K;
    float block[64]; /* K x K, K <= 8 */
    GEN_ASSERT(K >= 1 && K * K <= 64);
    for (int c = 0; c < C; c++)
        for (int by = 0; by < h; by++)
            for (int bx = 0; bx < w; bx++) {
                float *px[64];
                double s = 0;
                for (int dy = 0, k = 0; dy < K; dy++)
                    for (int dx = 0; dx < K; dx++, k++) {
                        px[k] = x + ((int64_t)c * H + by * K + dy) * W + bx * K + dx;
                        block[k] = *px[k];
                        s += block[k];
                    }
                double goal = target[((int64_t)c * h + by) * w + bx];
                if (!(lo < hi)) {
                    const double shift = goal - s / (K * K);
                    for (int k = 0; k < K * K; k++) *px[k] = (float)(block[k] + shift);
                    continue;
                }
                goal = goal < lo ? lo : goal > hi ? hi : goal;
                const double shift = clipped_shift(block, K * K, goal, lo, hi);
                for (int k = 0; k < K * K; k++) {
                    const double u = block[k] + shift;
                    *px[k] = (float)(u < lo ? lo : u > hi ? hi : u);
                }
            }
}

/* ---- classical baselines ---- */

void gen_restore_blur(const float *x, int C, int H, int W, double s, float *out) {
    const int64_t D = (int64_t)C * H * W;
    if (!(s > 0)) {
        memcpy(out, x, (size_t)D * sizeof *out);
        return;
    }
    int R = (int)ceil(3 * s);
    if (R > 64) R = 64;
    double k[129], sum = 0;
    for (int i = -R; i <= R; i++) sum += k[i + R] = exp(-0.5 * i * i / (s * s));
    for (int i = 0; i <= 2 * R; i++) k[i] /= sum;
    double row[4096];
    GEN_ASSERT(H <= 4096 && W <= 4096);
    for (int c = 0; c < C; c++) {
        const float *p = x + (int64_t)c * H * W;
        float *o = out + (int64_t)c * H * W;
        for (int y = 0; y < H; y++) /* rows into o */
            for (int xx = 0; xx < W; xx++) {
                double a = 0;
                for (int i = -R; i <= R; i++) {
                    const int q = xx + i < 0 ? 0 : xx + i >= W ? W - 1 : xx + i;
                    a += k[i + R] * p[y * W + q];
                }
                o[y * W + xx] = (float)a;
            }
        for (int xx = 0; xx < W; xx++) { /* then columns of o */
            for (int y = 0; y < H; y++) row[y] = o[y * W + xx];
            for (int y = 0; y < H; y++) {
                double a = 0;
                for (int i = -R; i <= R; i++) {
                    const int q = y + i < 0 ? 0 : y + i >= H ? H - 1 : y + i;
                    a += k[i + R] * row[q];
                }
                o[y * W + xx] = (float)a;
            }
        }
    }
}

enum gen_status gen_restore_bicubic(const float *y, int C, int h, int w, int K, float *out) {
    for (int c = 0; c < C; c++) {
        const float *in = y + (int64_t)c * h * w;
        float *o = out + (int64_t)c * h * w * K * K;
        if (!stbir_resize_float_generic(in, w, h, 0, o, w * K, h * K, 0, 1, -1, 0,
                                        STBIR_EDGE_CLAMP, STBIR_FILTER_CATMULLROM,
                                        STBIR_COLORSPACE_LINEAR, NULL))
            return gen_error(GEN_ERR_NOMEM, "out of memory for bicubic upsampling");
    }
    return GEN_OK;
}

void gen_restore_mean_fill(const float *y, const float *keep, int C, int H, int W, float *out) {
    const int64_t HW = (int64_t)H * W;
    for (int c = 0; c < C; c++) {
        const float *p = y + c * HW;
        double s = 0;
        int64_t n = 0;
        for (int64_t k = 0; k < HW; k++)
            if (keep[k] > 0.5f) s += p[k], n++;
        const float fill = n ? (float)(s / (double)n) : 0.5f;
        for (int64_t k = 0; k < HW; k++) out[c * HW + k] = keep[k] > 0.5f ? p[k] : fill;
    }
}

enum gen_status gen_restore_baseline(const struct gen_restore_task *t, const float *y,
                                     const float *keep, int C, int H, int W, double blur_sigma,
                                     float *out) {
    switch (t->mode) {
    case GEN_RESTORE_SUPERRES:
        return gen_restore_bicubic(y, C, H / t->factor, W / t->factor, t->factor, out);
    case GEN_RESTORE_DENOISE: gen_restore_blur(y, C, H, W, blur_sigma, out); return GEN_OK;
    case GEN_RESTORE_INPAINT: gen_restore_mean_fill(y, keep, C, H, W, out); return GEN_OK;
    default: memcpy(out, y, (size_t)C * H * W * sizeof *out); return GEN_OK;
    }
}

enum gen_status gen_restore_tune_blur(const struct gen_restore_task *t, const float *x, int64_t n,
                                      int C, int H, int W, uint64_t seed, double *best) {
    static const double grid[] = GEN_RESTORE_BLUR_GRID;
    enum { G = sizeof grid / sizeof grid[0] };
    const int64_t D = (int64_t)C * H * W;
    float *y = gen_alloc((size_t)D * sizeof *y), *b = gen_alloc((size_t)D * sizeof *b);
    if (!y || !b) {
        gen_free(y), gen_free(b);
        return gen_error(GEN_ERR_NOMEM, "out of memory tuning the blur");
    }
    double psnr[G] = {0};
    for (int64_t i = 0; i < n; i++) {
        gen_restore_degrade(t, seed, i, C, H, W, x + i * D, y, NULL);
        for (int g = 0; g < G; g++) {
            gen_restore_blur(y, C, H, W, grid[g], b);
            psnr[g] += gen_psnr(b, x + i * D, D);
        }
    }
    int k = 0;
    for (int g = 1; g < G; g++)
        if (psnr[g] > psnr[k]) k = g;
    *best = grid[k];
    gen_free(y), gen_free(b);
    return GEN_OK;
}

void gen_restore_residual(const struct gen_restore_task *t, const float *r, const float *y,
                          const float *keep, int C, int H, int W, double *sum_sq, int64_t *count) {
    const int64_t HW = (int64_t)H * W;
    if (t->mode == GEN_RESTORE_SUPERRES) {
        const int K = t->factor, h = H / K, w = W / K;
        for (int c = 0; c < C; c++)
            for (int by = 0; by < h; by++)
                for (int bx = 0; bx < w; bx++) {
                    const double d = block_mean(r, H, W, K, c, by, bx) - y[((int64_t)c * h + by) * w + bx];
                    *sum_sq += d * d;
                }
        *count += (int64_t)C * h * w;
        return;
    }
    for (int64_t k = 0; k < C * HW; k++) {
        if (t->mode == GEN_RESTORE_INPAINT && !(keep[k % HW] > 0.5f)) continue;
        const double d = (double)r[k] - y[k];
        *sum_sq += d * d;
        ++*count;
    }
}
