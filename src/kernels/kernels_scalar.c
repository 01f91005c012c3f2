/* kernels_scalar.c - the plain reference of every kernel in kernels.h.
 *
 * Obvious loops, libm for the transcendental functions, double for every
 * sum. The AVX2 and AVX-512 tables are tested against these. Formulas are
 * written in the form that loses no precision (see sigmoid and GELU), not in
 * the textbook form, so that the reference is itself accurate. */
#include <string.h>
#include <math.h>
#include <stddef.h>

#include "kernels/kernels_impl.h"

/* for i in [0, n): BODY, in the element-wise kernels' blocks. */
#define EACH(n, ...)                                                                              \
    GEN_KBLOCKS(n, b_lo, b_hi, for (int64_t i = b_lo; i < b_hi; i++) { __VA_ARGS__; })

/* ---- element-wise ------------------------------------------------------ */

static void add(int64_t n, const float *a, const float *b, float *y) {
    EACH(n, y[i] = a[i] + b[i]);
}

static void sub(int64_t n, const float *a, const float *b, float *y) {
    EACH(n, y[i] = a[i] - b[i]);
}

static void mul(int64_t n, const float *a, const float *b, float *y) {
    EACH(n, y[i] = a[i] * b[i]);
}

static void scale(int64_t n, float s, const float *x, float *y) {
    EACH(n, y[i] = s * x[i]);
}

static void axpy(int64_t n, float s, const float *x, float *y) {
    EACH(n, y[i] += s * x[i]);
}

static void mul_acc(int64_t n, const float *a, const float *b, float *y) {
    EACH(n, y[i] += a[i] * b[i]);
}

static void mul_grads(int64_t n, const float *dy, const float *a, const float *b, float *da,
                      enum gen_grad_mode ma, float *db, enum gen_grad_mode mb) {
    EACH(n, { /* element i's da before its db: aliased buffers see the two passes' order */
        if (ma == GEN_GRAD_ADD) da[i] += dy[i] * b[i];
        else da[i] = dy[i] * b[i];
        if (mb == GEN_GRAD_ADD) db[i] += dy[i] * a[i];
        else db[i] = dy[i] * a[i];
    });
}

static void fill(int64_t n, float v, float *y) {
    EACH(n, y[i] = v);
}

static double sum_block(int64_t n, const float *x) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static double sumsq_block(int64_t n, const float *x) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static double sum(int64_t n, const float *x) { return gen_ksum_blocks(n, x, sum_block); }
static double sumsq(int64_t n, const float *x) { return gen_ksum_blocks(n, x, sumsq_block); }

/* ---- activations ------------------------------------------------------- */

/* 1 / (1 + e^-x) without overflow: with e = e^-|x| in (0, 1], it is
 * 1 / (1 + e) for x >= 0 and e / (1 + e) below (a select, not a branch:
 * random signs would mispredict). NaN gives NaN. */
static inline float sigmoid1(float x) {
    const float e = expf(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = e^-|x|: no 1 - s. */
static inline float dsigmoid1(float x) {
    const float e = expf(-fabsf(x));
    return e / ((1.0f + e) * (1.0f + e));
}

/* GELU's inner argument, doubled: 0.5 (1 + tanh(u)) = sigmoid(2u), which
 * avoids the cancellation of 1 + tanh(u) for negative x. */
static inline float gelu_2u(float x) {
    return 2.0f * GEN_GELU_K0 * x * (1.0f + GEN_GELU_K1 * x * x);
}

static void relu_fwd(int64_t n, const float *x, float *y) {
    EACH(n, y[i] = x[i] < 0.0f ? 0.0f : x[i]); /* NaN stays NaN */
}

/* What a backward kernel adds its term to: dx[i], or 0 when it overwrites. */
static inline float grad_base(const float *dx, int64_t i, enum gen_grad_mode mode) {
    return mode == GEN_GRAD_ADD ? dx[i] : 0.0f;
}

static void relu_grad(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    EACH(n, dx[i] = grad_base(dx, i, mode) + (x[i] > 0.0f ? dy[i] : 0.0f));
}

static void leaky_relu_fwd(int64_t n, float slope, const float *x, float *y) {
    EACH(n, y[i] = x[i] > 0.0f ? x[i] : slope * x[i]);
}

static void leaky_relu_grad(int64_t n, float slope, const float *x, const float *dy, float *dx,
                            enum gen_grad_mode mode) {
    EACH(n, dx[i] = grad_base(dx, i, mode) + (x[i] > 0.0f ? dy[i] : slope * dy[i]));
}

/* e^-t, t = 2u: GELU is x s, s = sigmoid(t) = 1 / (1 + e^-t) (e^-t
 * overflowing to inf gives s = 0, the negative tail's -0). */
static inline float gelu_e(float x) {
    return expf(x * (-2.0f * GEN_GELU_K0 - 2.0f * GEN_GELU_K0 * GEN_GELU_K1 * x * x));
}

static void gelu_fwd(int64_t n, const float *x, float *y) {
    EACH(n, y[i] = x[i] * (1.0f / (1.0f + gelu_e(x[i]))));
}

/* d/dx [x s(2u)] = s(2u) + x s(2u)(1 - s(2u)) 2 du/dx, du/dx = K0 (1 + 3 K1 x^2). */
static void gelu_grad(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    EACH(n, {
        const float v = x[i], t = gelu_2u(v);
        const float du = 2.0f * GEN_GELU_K0 * (1.0f + 3.0f * GEN_GELU_K1 * v * v);
        dx[i] = grad_base(dx, i, mode) + dy[i] * (sigmoid1(t) + v * dsigmoid1(t) * du);
    });
}

/* gelu_fwd and gelu_grad (SET) at once, y the same bits as gelu_fwd's:
 * with e = e^-t and s = 1 / (1 + e), s(t) (1 - s(t)) = (e s) s, e s held
 * to 1 where e is inf (inf times 0). */
static void gelu_both(int64_t n, const float *x, const float *dy, float *y, float *dx) {
    EACH(n, {
        const float v = x[i], e = gelu_e(v), s = 1.0f / (1.0f + e), es = fminf(e * s, 1.0f);
        const float du = 2.0f * GEN_GELU_K0 * (1.0f + 3.0f * GEN_GELU_K1 * v * v);
        y[i] = v * s;
        dx[i] = dy[i] * (s + v * (es * s) * du);
    });
}

static void silu_fwd(int64_t n, const float *x, float *y) {
    EACH(n, y[i] = x[i] * sigmoid1(x[i]));
}

/* silu'(x) = sigmoid(x) + x sigmoid'(x) */
static inline float dsilu1(float x) { return sigmoid1(x) + x * dsigmoid1(x); }

static void silu_grad(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    EACH(n, dx[i] = grad_base(dx, i, mode) + dy[i] * dsilu1(x[i]));
}

static void sigmoid_fwd(int64_t n, const float *x, float *y) {
    EACH(n, y[i] = sigmoid1(x[i]));
}

static void sigmoid_grad(int64_t n, const float *y, const float *dy, float *dx,
                         enum gen_grad_mode mode) {
    EACH(n, dx[i] = grad_base(dx, i, mode) + dy[i] * y[i] * (1.0f - y[i]));
}

static void bce_logits_terms(int64_t n, const float *x, const float *t, float *y) {
    EACH(n, y[i] = fmaxf(x[i], 0.0f) - x[i] * t[i] + log1pf(expf(-fabsf(x[i]))));
}

static void tanh_fwd(int64_t n, const float *x, float *y) {
    EACH(n, y[i] = tanhf(x[i]));
}

static void tanh_grad(int64_t n, const float *y, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    EACH(n, dx[i] = grad_base(dx, i, mode) + dy[i] * (1.0f - y[i] * y[i]));
}

static void exp_fwd(int64_t n, const float *x, float *y) {
    EACH(n, y[i] = expf(x[i]));
}

static void exp_grad(int64_t n, const float *y, const float *dy, float *dx,
                     enum gen_grad_mode mode) {
    EACH(n, dx[i] = grad_base(dx, i, mode) + dy[i] * y[i]);
}

/* ---- row reductions ---------------------------------------------------- */

static float row_max(int64_t cols, const float *x) {
    float m = -INFINITY;
    for (int64_t j = 0; j < cols; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static void softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        const float m = row_max(cols, xr);
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            yr[j] = expf(xr[j] - m);
            s += yr[j];
        }
        for (int64_t j = 0; j < cols; j++) yr[j] = (float)(yr[j] / s);
    });
}

static void softmax_grad(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx,
                         enum gen_grad_mode mode) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t j = 0; j < cols; j++) dot += (double)dyr[j] * yr[j];
        for (int64_t j = 0; j < cols; j++)
            dxr[j] = grad_base(dxr, j, mode) + (float)(yr[j] * (dyr[j] - dot));
    });
}

/* y = x - max - log(sum exp(x - max)): log-sum-exp, never log(0) of a row. */
static void log_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        const float m = row_max(cols, xr);
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) s += expf(xr[j] - m);
        const double lse = (double)m + log(s);
        for (int64_t j = 0; j < cols; j++) yr[j] = (float)(xr[j] - lse);
    });
}

static void log_softmax_grad(int64_t rows, int64_t cols, const float *y, const float *dy,
                             float *dx, enum gen_grad_mode mode) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) s += dyr[j];
        for (int64_t j = 0; j < cols; j++)
            dxr[j] = grad_base(dxr, j, mode) + (float)(dyr[j] - expf(yr[j]) * s);
    });
}

/* Mean and 1/sqrt(biased variance + eps) of n values, two passes in double. */
/* Mean and 1/sqrt(biased variance + eps) of x's n values, each run of HW
 * shifted by its sh (x + sh[i / HW] as if stored), or not with sh NULL. */
static void moments_shifted(int64_t n, int64_t HW, const float *x, const float *sh, float eps,
                            float *mean, float *rstd) {
#define XS(i) (sh ? x[i] + sh[(i) / HW] : x[i])
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += XS(i);
    const double mu = s / (double)n;
    double v = 0.0;
    for (int64_t i = 0; i < n; i++) v += (XS(i) - mu) * (XS(i) - mu);
#undef XS
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(v / (double)n + eps));
}

static void moments(int64_t n, const float *x, float eps, float *mean, float *rstd) {
    moments_shifted(n, n, x, NULL, eps, mean, rstd);
}

static void layernorm_fwd(int64_t rows, int64_t cols, const float *x, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        moments(cols, xr, eps, &mean[r], &rstd[r]);
        for (int64_t j = 0; j < cols; j++) {
            const float g = gamma ? gamma[j] : 1.0f, b = beta ? beta[j] : 0.0f;
            yr[j] = (xr[j] - mean[r]) * rstd[r] * g + b;
        }
    });
}

/* dx (+)= rstd (dyg - mean(dyg) - xhat mean(dyg xhat)), dyg = dy * gamma. */
static void norm_dx(int64_t n, const float *x, const float *s, const float *dy, float gamma,
                    float mu, float rs, double a, double b, float *dx, enum gen_grad_mode mode) {
    const float ma = (float)a, mb = (float)b;
    for (int64_t i = 0; i < n; i++) {
        const float xhat = ((s ? x[i] + *s : x[i]) - mu) * rs;
        dx[i] = grad_base(dx, i, mode) + rs * (dy[i] * gamma - ma - xhat * mb);
    }
}

static void layernorm_grad(int64_t rows, int64_t cols, const float *x, const float *gamma,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           enum gen_grad_mode mode, float *dgamma, float *dbeta) {
    const int64_t dx_rows = dx ? rows : 0;
    GEN_KFOR(GEN_KPAR_ROWS(dx_rows, dx_rows * cols), r, dx_rows, {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        double a = 0.0, b = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            const float dyg = dyr[j] * (gamma ? gamma[j] : 1.0f);
            a += dyg;
            b += (double)dyg * ((xr[j] - mean[r]) * rstd[r]);
        }
        a /= (double)cols;
        b /= (double)cols;
        float *dxr = dx + r * cols;
        const float ma = (float)a, mb = (float)b;
        for (int64_t j = 0; j < cols; j++) {
            const float xhat = (xr[j] - mean[r]) * rstd[r];
            const float dyg = dyr[j] * (gamma ? gamma[j] : 1.0f);
            dxr[j] = grad_base(dxr, j, mode) + rstd[r] * (dyg - ma - xhat * mb);
        }
    });
    if (!dgamma && !dbeta) return;
    GEN_KFOR(GEN_KPAR_ROWS(cols, rows * cols), j, cols, {
        double sg = 0.0, sb = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const float d = dy[r * cols + j];
            sg += (double)d * ((x[r * cols + j] - mean[r]) * rstd[r]);
            sb += d;
        }
        if (dgamma) dgamma[j] += (float)sg;
        if (dbeta) dbeta[j] += (float)sb;
    });
}

/* Group norm of x + shift (shift: (N, C), a value a channel, or NULL:
 * each value as if x + shift were stored), then SiLU if `silu`. */
static void gn_fwd(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x, const float *shift,
                   const float *gamma, const float *beta, float eps, float *y, float *mean,
                   float *rstd, int silu) {
    const int64_t cpg = C / G, m = cpg * HW;
    GEN_KFOR(GEN_KPAR_ROWS(N * G, N * G * m), ng, N * G, {
        const float *xg = x + ng * m, *sh = shift ? shift + ng * cpg : NULL;
        float *yg = y + ng * m;
        moments_shifted(m, HW, xg, sh, eps, &mean[ng], &rstd[ng]);
        const int64_t c0 = (ng % G) * cpg;
        for (int64_t c = 0; c < cpg; c++) {
            const float g = gamma ? gamma[c0 + c] : 1.0f, b = beta ? beta[c0 + c] : 0.0f;
            const float s = sh ? sh[c] : 0.0f;
            for (int64_t i = c * HW; i < (c + 1) * HW; i++) {
                const float h = ((sh ? xg[i] + s : xg[i]) - mean[ng]) * rstd[ng] * g + b;
                yg[i] = silu ? h * sigmoid1(h) : h;
            }
        }
    });
}

static void groupnorm_bwd(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                          const float *gamma, const float *mean, const float *rstd,
                          const float *dy, float *dx, float *dgamma, float *dbeta) {
    const int64_t cpg = C / G, m = cpg * HW;
    GEN_KFOR(GEN_KPAR_ROWS(N * G, N * G * m), ng, N * G, {
        const float *xg = x + ng * m, *dyg = dy + ng * m;
        const int64_t c0 = (ng % G) * cpg;
        double a = 0.0, b = 0.0;
        for (int64_t c = 0; c < cpg; c++) {
            const float g = gamma ? gamma[c0 + c] : 1.0f;
            for (int64_t i = c * HW; i < (c + 1) * HW; i++) {
                const float d = dyg[i] * g;
                a += d;
                b += (double)d * ((xg[i] - mean[ng]) * rstd[ng]);
            }
        }
        for (int64_t c = 0; c < cpg; c++)
            norm_dx(HW, xg + c * HW, NULL, dyg + c * HW, gamma ? gamma[c0 + c] : 1.0f, mean[ng],
                    rstd[ng], a / (double)m, b / (double)m, dx + ng * m + c * HW, GEN_GRAD_ADD);
    });
    if (!dgamma && !dbeta) return;
    GEN_KFOR(GEN_KPAR_ROWS(C, N * C * HW), c, C, {
        double sg = 0.0, sb = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const int64_t ng = n * G + c / cpg;
            const float *xc = x + (n * C + c) * HW, *dyc = dy + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) {
                sg += (double)dyc[i] * ((xc[i] - mean[ng]) * rstd[ng]);
                sb += dyc[i];
            }
        }
        if (dgamma) dgamma[c] += (float)sg;
        if (dbeta) dbeta[c] += (float)sb;
    });
}

void gen_scalar_channel_sums(int64_t N, int64_t C, const double *work, float *dgamma,
                             float *dbeta) {
    for (int64_t c = 0; c < C; c++) {
        double sg = 0.0, sb = 0.0;
        for (int64_t n = 0; n < N; n++) {
            sg += work[2 * (n * C + c)];
            sb += work[2 * (n * C + c) + 1];
        }
        if (dgamma) dgamma[c] += (float)sg;
        if (dbeta) dbeta[c] += (float)sb;
    }
}

void gen_gn_dshift(int64_t cpg, int64_t HW, float rstd, const float *gamma, double a, double b,
                   const double *sums, float *dshift) {
    const double m = (double)(cpg * HW);
    for (int64_t c = 0; c < cpg; c++)
        dshift[c] = (float)(rstd * ((gamma ? gamma[c] : 1.0f) * sums[2 * c] - (double)HW * a / m -
                                    b / m * sums[2 * c + 1]));
}

/* Group norm's backward, of SiLU after it too when dh is given: pass 1 per
 * (n, group) takes d = dy (dh = dy silu'(h), h recomputed, stored) and sums
 * d gamma and d gamma xhat over the group, d xhat and d per channel; pass 2
 * writes dx from d. With a shift (x + shift normalised), dshift (N, C) is
 * each channel's sum of dx (gen_gn_dshift; work then holds 4 N C doubles,
 * the last 2 N C for each channel's sums of d and xhat). */
static void gn_grad(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x, const float *shift,
                    const float *gamma, const float *beta, const float *mean, const float *rstd,
                    const float *dy, float *dh, float *dx, enum gen_grad_mode mode, float *dgamma,
                    float *dbeta, float *dshift, double *work) {
    const int64_t cpg = C / G, m = cpg * HW;
    const int per_channel = dgamma || dbeta;
    GEN_KFOR(GEN_KPAR_ROWS(N * G, N * G * m), ng, N * G, {
        const float *xg = x + ng * m, *sh = shift ? shift + ng * cpg : NULL;
        const float *d = dh ? dh + ng * m : dy + ng * m;
        const int64_t c0 = (ng % G) * cpg, n = ng / G;
        const float mu = mean[ng], rs = rstd[ng];
        double *sx = dshift ? work + 2 * N * C + 2 * (n * C + c0) : NULL; /* (d, xhat) sums */
        double a = 0.0, b = 0.0;
        for (int64_t c = 0; c < cpg; c++) {
            const float g = gamma ? gamma[c0 + c] : 1.0f, bt = beta ? beta[c0 + c] : 0.0f;
            const float s = sh ? sh[c] : 0.0f;
            double sg = 0.0, sb = 0.0, sxh = 0.0;
            for (int64_t i = c * HW; i < (c + 1) * HW; i++) {
                const float xhat = ((sh ? xg[i] + s : xg[i]) - mu) * rs;
                float di = dy[ng * m + i];
                if (dh) dh[ng * m + i] = di = di * dsilu1(xhat * g + bt);
                a += di * g;
                b += (double)(di * g) * xhat;
                sg += (double)di * xhat;
                sb += di;
                sxh += xhat;
            }
            if (per_channel) {
                work[2 * (n * C + c0 + c)] = sg;
                work[2 * (n * C + c0 + c) + 1] = sb;
            }
            if (sx) sx[2 * c] = sb, sx[2 * c + 1] = sxh;
        }
        if (sx)
            gen_gn_dshift(cpg, HW, rs, gamma ? gamma + c0 : NULL, a, b, sx, dshift + n * C + c0);
        if (dx)
            for (int64_t c = 0; c < cpg; c++)
                norm_dx(HW, xg + c * HW, sh ? sh + c : NULL, d + c * HW,
                        gamma ? gamma[c0 + c] : 1.0f, mu, rs, a / (double)m, b / (double)m,
                        dx + ng * m + c * HW, mode);
    });
    if (per_channel) gen_scalar_channel_sums(N, C, work, dgamma, dbeta);
}

/* ---- batch norm: a channel's runs, in order, sums in double ---- */

static double runs_sum(int64_t runs, int64_t len, int64_t stride, const float *x) {
    double s = 0.0;
    for (int64_t r = 0; r < runs; r++)
        for (int64_t i = 0; i < len; i++) s += x[r * stride + i];
    return s;
}

static double runs_sqdev(int64_t runs, int64_t len, int64_t stride, const float *x, float mu) {
    double s = 0.0;
    for (int64_t r = 0; r < runs; r++)
        for (int64_t i = 0; i < len; i++) {
            const double d = (double)x[r * stride + i] - mu;
            s += d * d;
        }
    return s;
}

static void runs_affine(int64_t runs, int64_t len, int64_t stride, const float *x, float a,
                        float b, float *y) {
    for (int64_t r = 0; r < runs; r++)
        for (int64_t i = 0; i < len; i++) y[r * stride + i] = x[r * stride + i] * a + b;
}

static void runs_grad_sums(int64_t runs, int64_t len, int64_t stride, const float *x,
                           const float *dy, float mu, float rs, double s[2]) {
    double sd = 0.0, sx = 0.0;
    for (int64_t r = 0; r < runs; r++)
        for (int64_t i = 0; i < len; i++) {
            const float d = dy[r * stride + i];
            sd += d;
            sx += (double)d * ((x[r * stride + i] - mu) * rs);
        }
    s[0] = sd, s[1] = sx;
}

static void runs_grad_dx(int64_t runs, int64_t len, int64_t stride, const float *x,
                         const float *dy, float mu, float rs, float g, float k1, float k2,
                         float *dx, enum gen_grad_mode mode) {
    for (int64_t r = 0; r < runs; r++)
        for (int64_t i = r * stride; i < r * stride + len; i++) {
            const float xhat = (x[i] - mu) * rs;
            dx[i] = grad_base(dx, i, mode) + rs * (dy[i] * g - k1 - xhat * k2);
        }
}

/* Each column summed down the rows in order; in parallel, a contiguous
 * range of columns per thread (any split gives the same bits). */
static void col_sum(int64_t rows, int64_t cols, const float *x, int64_t stride, float *y,
                    enum gen_grad_mode mode) {
    const int64_t nt = gen_kthreads();
    const int64_t parts = GEN_KPAR_ROWS(cols, rows * cols) ? (nt < cols ? nt : cols) : 1;
    GEN_KFOR(parts > 1, p, parts, {
        const int64_t j0 = cols * p / parts, j1 = cols * (p + 1) / parts;
        if (mode == GEN_GRAD_SET)
            for (int64_t j = j0; j < j1; j++) y[j] = 0.0f;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = j0; j < j1; j++) y[j] += x[r * stride + j];
    });
}

/* ---- optimisers -------------------------------------------------------- */

static void adam_step(int64_t n, float *p, const float *g, float *m, float *v,
                      const struct gen_adam_step *h) {
    const float b1 = h->beta1, b2 = h->beta2, lr = h->lr, wd = h->wd, l2 = h->l2;
    EACH(n, {
        float gi = g[i];
        if (l2 != 0.0f) gi += l2 * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        const float step = (m[i] / h->bc1) / (sqrtf(v[i] / h->bc2) + h->eps);
        p[i] -= lr * step + lr * wd * p[i];
    });
}

void gen_scalar_sgd(int64_t n, float *p, const float *g, float *buf, float lr, float mom,
                    float wd) {
    EACH(n, {
        buf[i] = mom * buf[i] + (g[i] + wd * p[i]);
        p[i] -= lr * buf[i];
    });
}

static void ema(int64_t n, float *e, const float *p, float decay) {
    EACH(n, e[i] = decay * e[i] + (1.0f - decay) * p[i]);
}

/* ---- convolution helpers ----------------------------------------------- */

/* col row (c, kh, kw), column (oh, ow) = x[c, oh s - pad + kh, ow s - pad + kw];
 * col rows are `ld` floats apart (ld >= OH OW: a block of a wider matrix). */
/* One channel plane src (H x W) into d (Hq x Wq), zero-padded by pad on
 * the left and top and zeros to Wq and Hq: the stride-1 plane of the wide
 * grid (kernels_impl.h), which the AVX2 and AVX-512 convolutions read. */
void gen_pad_plane(const float *src, int64_t H, int64_t W, int64_t pad, int64_t Hq, int64_t Wq,
                   float *d) {
    memset(d, 0, (size_t)(pad * Wq) * sizeof(float));
    d += pad * Wq;
    for (int64_t ih = 0; ih < H; ih++, d += Wq) {
        for (int64_t j = 0; j < pad; j++) d[j] = 0.0f;
        memcpy(d + pad, src + ih * W, (size_t)W * sizeof(float));
        for (int64_t j = pad + W; j < Wq; j++) d[j] = 0.0f;
    }
    memset(d, 0, (size_t)((Hq - pad - H) * Wq) * sizeof(float));
}

void gen_scalar_im2col_ld(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad, int64_t ld, const float *x, float *col) {
    const int64_t OH = gen_conv_out(H, KH, stride, pad), OW = gen_conv_out(W, KW, stride, pad);
    GEN_KFOR(GEN_KPAR_ROWS(C, C * KH * KW * OH * OW), c, C,
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                float *dst = col + ((c * KH + kh) * KW + kw) * ld;
                int64_t lo, hi;
                gen_conv_valid(W, OW, stride, pad, kw, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh * stride - pad + kh;
                    float *d = dst + oh * OW;
                    if (ih < 0 || ih >= H) {
                        for (int64_t ow = 0; ow < OW; ow++) d[ow] = 0.0f;
                        continue;
                    }
                    const float *s = x + (c * H + ih) * W - pad + kw;
                    for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                    for (int64_t ow = lo; ow < hi; ow++) d[ow] = s[ow * stride];
                    for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0.0f;
                }
            });
}

void gen_scalar_im2col(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                       int64_t pad, const float *x, float *col) {
    const int64_t P = gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
    gen_scalar_im2col_ld(C, H, W, KH, KW, stride, pad, P, x, col);
}

/* The adjoint of im2col; each channel is one thread's, summed in a fixed
 * order: (kh, kw, oh, ow) ascending for every element of x. */
void gen_scalar_col2im_ld(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad, int64_t ld, const float *col, float *x) {
    const int64_t OH = gen_conv_out(H, KH, stride, pad), OW = gen_conv_out(W, KW, stride, pad);
    GEN_KFOR(GEN_KPAR_ROWS(C, C * KH * KW * OH * OW), c, C,
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *src = col + ((c * KH + kh) * KW + kw) * ld;
                int64_t lo, hi;
                gen_conv_valid(W, OW, stride, pad, kw, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    float *d = x + (c * H + ih) * W - pad + kw;
                    const float *s = src + oh * OW;
                    for (int64_t ow = lo; ow < hi; ow++) d[ow * stride] += s[ow];
                }
            });
}

void gen_scalar_col2im(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                       int64_t pad, const float *col, float *x) {
    const int64_t P = gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
    gen_scalar_col2im_ld(C, H, W, KH, KW, stride, pad, P, col, x);
}

GEN_TABLE_WRAPPERS

const struct gen_kernels gen_kernels_scalar = {
    .name = "scalar",
    .add = add, .sub = sub, .mul = mul, .scale = scale, .axpy = axpy, .mul_acc = mul_acc,
    .fill = fill, .sum = sum, .sumsq = sumsq,
    .relu_fwd = relu_fwd, .relu_bwd = relu_bwd,
    .leaky_relu_fwd = leaky_relu_fwd, .leaky_relu_bwd = leaky_relu_bwd,
    .gelu_fwd = gelu_fwd, .gelu_bwd = gelu_bwd, .silu_fwd = silu_fwd, .silu_bwd = silu_bwd,
    .sigmoid_fwd = sigmoid_fwd, .sigmoid_bwd = sigmoid_bwd,
    .bce_logits_terms = bce_logits_terms,
    .tanh_fwd = tanh_fwd, .tanh_bwd = tanh_bwd, .exp_fwd = exp_fwd, .exp_bwd = exp_bwd,
    .softmax_fwd = softmax_fwd, .softmax_bwd = softmax_bwd,
    .log_softmax_fwd = log_softmax_fwd, .log_softmax_bwd = log_softmax_bwd,
    .layernorm_fwd = layernorm_fwd, .layernorm_bwd = layernorm_bwd,
    .groupnorm_fwd = groupnorm_fwd, .groupnorm_bwd = groupnorm_bwd,
    .adam = adam, .sgd = gen_scalar_sgd, .ema = ema,
    .im2col = gen_scalar_im2col, .col2im = gen_scalar_col2im,
    .im2col_ld = gen_scalar_im2col_ld, .col2im_ld = gen_scalar_col2im_ld,
    .relu_grad = relu_grad, .leaky_relu_grad = leaky_relu_grad, .gelu_grad = gelu_grad,
    .silu_grad = silu_grad, .sigmoid_grad = sigmoid_grad, .tanh_grad = tanh_grad,
    .exp_grad = exp_grad, .softmax_grad = softmax_grad, .log_softmax_grad = log_softmax_grad,
    .layernorm_grad = layernorm_grad, .groupnorm_grad = groupnorm_grad,
    .groupnorm_silu_fwd = groupnorm_silu_fwd, .groupnorm_silu_grad = groupnorm_silu_grad,
    .adam_step = adam_step, .col_sum = col_sum, .mul_grads = mul_grads,
    .runs_sum = runs_sum, .runs_sqdev = runs_sqdev, .runs_affine = runs_affine,
    .runs_grad_sums = runs_grad_sums, .runs_grad_dx = runs_grad_dx,
    .gelu_both = gelu_both,
};
