/* kernels_simd.h - the SIMD kernels, written once, included by
 * kernels_avx2.c and kernels_avx512.c.
 *
 * Not an ordinary header: the including file first defines the vector
 * vocabulary (vf, vm, VW, vf_add ..., ld/st with a tail mask, vd2 double
 * accumulators, vf_ldexp) and GEN_SIMD_TABLE / GEN_SIMD_NAME; this file
 * builds every kernel and the table from them. Each kernel mirrors its
 * scalar reference in kernels_scalar.c operation for operation where it can,
 * so the parity tests stay tight. */
#ifndef GEN_SIMD_TABLE
#error "kernels_simd.h is included by kernels_avx2.c / kernels_avx512.c only"
#endif

#include <math.h>

#include "kernels/kernels_impl.h"

/* ---- loops --------------------------------------------------------------
 * VLOOP(lo, hi, BODY) runs BODY for i = lo, lo+VW, ... over [lo, hi); the
 * last partial vector runs under a mask. Inside BODY, LD(p) / LDO(p, fill) /
 * ST(p, v) / ZM(v) load, store and zero dead lanes for the current i. */
#define LD(p) ld((p), m_, f_)
#define LDO(p, fill) ldo((p), m_, f_, (fill))
#define ST(p, v) st((p), m_, f_, (v))
#define ST_BF16(p, v) st_bf16((p), m_, f_, (v)) /* rounded to bf16, where GEN_SIMD_BF16_STORE */
#define LD_BF16(p)    ld_bf16((p), m_, f_)      /* bf16 widened, likewise */
#define ZM(v) zm((v), m_, f_)
#define VLOOP(lo, hi, BODY)                                                  \
    do {                                                                     \
        const int64_t hi_ = (hi);                                            \
        int64_t i = (lo);                                                    \
        {                                                                    \
            const vm m_ = vm_full();                                         \
            const int f_ = 1;                                                \
            for (; i + VW <= hi_; i += VW) { BODY; }                         \
        }                                                                    \
        if (i < hi_) {                                                       \
            const vm m_ = vm_tail(hi_ - i);                                  \
            const int f_ = 0;                                                \
            BODY;                                                            \
        }                                                                    \
    } while (0)

/* Element-wise: parallel over fixed blocks above GEN_KPAR_MIN elements. */
#define ELEMENTWISE(n, BODY) GEN_KBLOCKS(n, b_lo, b_hi, VLOOP(b_lo, b_hi, BODY))


/* BODY for columns [j0, j1) of a rows x cols sum down the rows: a
 * contiguous range of whole vectors of columns per thread, in parallel
 * where the work is large enough. */
#define COL_RANGES(rows, cols, j0, j1, BODY)                                                      \
    do {                                                                                          \
        const int64_t nv_ = ((cols) + VW - 1) / VW, nt_ = gen_kthreads();                         \
        const int64_t parts_ = GEN_KPAR_ROWS(nv_, (rows) * (cols)) ? (nt_ < nv_ ? nt_ : nv_) : 1; \
        GEN_KFOR(parts_ > 1, p_, parts_, {                                                        \
            const int64_t j0 = nv_ * p_ / parts_ * VW, e_ = nv_ * (p_ + 1) / parts_ * VW;         \
            const int64_t j1 = e_ < (cols) ? e_ : (cols);                                         \
            BODY;                                                                                 \
        });                                                                                       \
    } while (0)

/* Rows a column sum takes at a time (col_sum_range, ln_params_range):
 * they stay in L2 while the columns are summed down them a few vectors at
 * a time. */
#define SUM_ROWS 32

/* Inside a *_grad kernel's loop: the gradient its term is added to, LD(p),
 * or zeros when `mode` says it overwrites (p is then never read). */
#define GB(p) (mode == GEN_GRAD_ADD ? LD(p) : vf_set1(0.0f))

/* ---- transcendental functions -------------------------------------------
 * e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (|r| <= ln2/2) in two
 * parts (Cody-Waite), e^r by its Taylor polynomial of degree 7 (truncation
 * below 1e-8 relative), then scaled by 2^n. About 1 ulp; inf above 88.73,
 * gradual underflow to 0 below -87.3, NaN in gives NaN out. The ISA file
 * may have the polynomial times GEN_EXP_Q, a power of two (every rounding
 * of it is the polynomial's, scaled), and its vf_ldexp then scales by 2^n
 * / GEN_EXP_Q: the same bits. */
#ifndef GEN_EXP_Q
#define GEN_EXP_Q 1.0f
#endif
SIMD_INLINE vf vexp(vf x) {
    x = vf_max(vf_set1(-104.0f), vf_min(vf_set1(89.0f), x)); /* x last: keeps NaN */
    const vf n = vf_round(vf_mul(x, vf_set1(1.44269504088896341f)));
    vf r = vf_fnmadd(n, vf_set1(0.693145751953125f), x);      /* ln2, high bits */
    r = vf_fnmadd(n, vf_set1(1.42860682030941723212e-6f), r); /* ln2 - high     */
    vf p = vf_set1(GEN_EXP_Q / 5040.0f);
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q / 720.0f));
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q / 120.0f));
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q / 24.0f));
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q / 6.0f));
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q * 0.5f));
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q));
    p = vf_fmadd(p, r, vf_set1(GEN_EXP_Q));
    return vf_ldexp(p, n);
}

/* tanh: for |x| < 0.4 the odd Taylor series to x^13 (next term < 1e-8
 * relative), since 1 - 2/(e^2|x| + 1) cancels there; above, that form,
 * which loses at most a factor 1.6 of its ~2 ulp. Sign restored last. */
SIMD_INLINE vf vtanh(vf x) {
    const vf ax = vf_abs(x), x2 = vf_mul(ax, ax);
    vf q = vf_set1(21844.0f / 6081075.0f);
    q = vf_fmadd(q, x2, vf_set1(-1382.0f / 155925.0f));
    q = vf_fmadd(q, x2, vf_set1(62.0f / 2835.0f));
    q = vf_fmadd(q, x2, vf_set1(-17.0f / 315.0f));
    q = vf_fmadd(q, x2, vf_set1(2.0f / 15.0f));
    q = vf_fmadd(q, x2, vf_set1(-1.0f / 3.0f));
    const vf small = vf_fmadd(vf_mul(ax, x2), q, ax);
    const vf e = vexp(vf_add(ax, ax));
    const vf big = vf_sub(vf_set1(1.0f), vf_div(vf_set1(2.0f), vf_add(e, vf_set1(1.0f))));
    return vf_copysign(vf_sel_lt(ax, vf_set1(0.4f), small, big), x);
}

/* sigmoid from e = e^-|x| in (0, 1]: 1/(1+e) for x >= 0, e/(1+e) below;
 * never overflows, no cancellation (as sigmoid1 in the scalar file). */
SIMD_INLINE vf vsigmoid(vf x) {
    const vf one = vf_set1(1.0f), e = vexp(vf_sub(vf_set1(0.0f), vf_abs(x)));
    return vf_div(vf_sel_ge(x, vf_set1(0.0f), one, e), vf_add(one, e));
}

/* log(1 + e) for e in [0, 1]: u = 1 + e as m 2^k, m in [1/sqrt 2, sqrt 2],
 * log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, by its odd
 * series to s^9 (next term below 3e-9 relative); then times e / (u - 1),
 * which restores what rounding 1 + e lost (e where u rounds to 1). */
SIMD_INLINE vf vlog1p_unit(vf e) {
    const vf one = vf_set1(1.0f), u = vf_add(one, e);
    const vf big = vf_sel_gt(u, vf_set1(1.41421356f), one, vf_set1(0.0f)); /* k */
    const vf m = vf_sel_gt(u, vf_set1(1.41421356f), vf_mul(u, vf_set1(0.5f)), u);
    const vf s = vf_div(vf_sub(m, one), vf_add(m, one)), s2 = vf_mul(s, s);
    vf q = vf_set1(1.0f / 9.0f);
    q = vf_fmadd(q, s2, vf_set1(1.0f / 7.0f));
    q = vf_fmadd(q, s2, vf_set1(1.0f / 5.0f));
    q = vf_fmadd(q, s2, vf_set1(1.0f / 3.0f));
    q = vf_fmadd(q, s2, one);
    const vf logu = vf_fmadd(big, vf_set1(0.693147181f), vf_mul(vf_add(s, s), q));
    const vf d = vf_sub(u, one);
    return vf_sel_gt(d, vf_set1(0.0f), vf_mul(logu, vf_div(e, d)), e);
}

/* sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 */
SIMD_INLINE vf vdsigmoid(vf x) {
    const vf e = vexp(vf_sub(vf_set1(0.0f), vf_abs(x))), d = vf_add(vf_set1(1.0f), e);
    return vf_div(e, vf_mul(d, d));
}

/* 2u for GELU: 0.5 (1 + tanh(u)) = sigmoid(2u). */
SIMD_INLINE vf vgelu_2u(vf x) {
    const vf inner = vf_add(vf_set1(1.0f), vf_mul(vf_mul(vf_set1(GEN_GELU_K1), x), x));
    return vf_mul(vf_mul(vf_set1(2.0f * GEN_GELU_K0), x), inner);
}

SIMD_INLINE vf vdgelu(vf x) {
    const vf t = vgelu_2u(x);
    const vf du = vf_mul(vf_set1(2.0f * GEN_GELU_K0),
                         vf_add(vf_set1(1.0f), vf_mul(vf_mul(vf_set1(3.0f * GEN_GELU_K1), x), x)));
    return vf_add(vsigmoid(t), vf_mul(vf_mul(x, vdsigmoid(t)), du));
}

SIMD_INLINE vf vsilu(vf x) { return vf_mul(x, vsigmoid(x)); }
/* silu'(x) = sigmoid(x) + x sigmoid'(x), the sum fused: written out, so that
 * silu_grad and the fused group norm get the same bits whatever the
 * compiler would contract. With e = e^-|x| and r = 1 / (1 + e), sigmoid
 * is r (x >= 0) or e r, and sigmoid' is e r^2: one exponential and one
 * reciprocal for both. */
SIMD_INLINE vf vdsilu(vf x) {
    const vf e = vexp(vf_sub(vf_set1(0.0f), vf_abs(x)));
    const vf r = vf_recip(vf_add(vf_set1(1.0f), e)), er = vf_mul(e, r);
    return vf_fmadd(x, vf_mul(er, r), vf_sel_ge(x, vf_set1(0.0f), r, er));
}

/* ---- element-wise --------------------------------------------------------- */

static void add(int64_t n, const float *a, const float *b, float *y) {
    ELEMENTWISE(n, ST(y + i, vf_add(LD(a + i), LD(b + i))));
}

static void sub(int64_t n, const float *a, const float *b, float *y) {
    ELEMENTWISE(n, ST(y + i, vf_sub(LD(a + i), LD(b + i))));
}

static void mul(int64_t n, const float *a, const float *b, float *y) {
    ELEMENTWISE(n, ST(y + i, vf_mul(LD(a + i), LD(b + i))));
}

static void scale(int64_t n, float s, const float *x, float *y) {
    const vf vs = vf_set1(s);
    ELEMENTWISE(n, ST(y + i, vf_mul(vs, LD(x + i))));
}

static void axpy(int64_t n, float s, const float *x, float *y) {
    const vf vs = vf_set1(s);
    ELEMENTWISE(n, ST(y + i, vf_fmadd(vs, LD(x + i), LD(y + i))));
}

static void mul_acc(int64_t n, const float *a, const float *b, float *y) {
    ELEMENTWISE(n, ST(y + i, vf_fmadd(LD(a + i), LD(b + i), LD(y + i))));
}

/* Both of mul's gradients in one pass over dy: each vector's da is stored
 * before its db is loaded, so aliased da and db see the two passes' order. */
static void mul_grads(int64_t n, const float *dy, const float *a, const float *b, float *da,
                      enum gen_grad_mode ma, float *db, enum gen_grad_mode mb) {
    ELEMENTWISE(n, const vf d = LD(dy + i);
                ST(da + i, ma == GEN_GRAD_ADD ? vf_fmadd(d, LD(b + i), LD(da + i))
                                              : vf_mul(d, LD(b + i)));
                ST(db + i, mb == GEN_GRAD_ADD ? vf_fmadd(d, LD(a + i), LD(db + i))
                                              : vf_mul(d, LD(a + i))));
}

static void fill(int64_t n, float v, float *y) {
    const vf vv = vf_set1(v);
    ELEMENTWISE(n, ST(y + i, vv));
}

static double sum_block(int64_t n, const float *x) {
    vd2 acc = vd2_zero();
    VLOOP(0, n, acc = vd2_add(acc, LD(x + i)));
    return vd2_hsum(acc);
}

static double sumsq_block(int64_t n, const float *x) {
    vd2 acc = vd2_zero();
    VLOOP(0, n, acc = vd2_addsq(acc, LD(x + i)));
    return vd2_hsum(acc);
}

static double sum(int64_t n, const float *x) { return gen_ksum_blocks(n, x, sum_block); }
static double sumsq(int64_t n, const float *x) { return gen_ksum_blocks(n, x, sumsq_block); }

/* ---- activations ---------------------------------------------------------- */

static void relu_fwd(int64_t n, const float *x, float *y) {
    const vf z = vf_set1(0.0f);
    ELEMENTWISE(n, ST(y + i, vf_max(z, LD(x + i)))); /* x last: NaN stays NaN */
}

static void relu_grad(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    const vf z = vf_set1(0.0f);
    ELEMENTWISE(n, ST(dx + i, vf_add(GB(dx + i), vf_sel_gt(LD(x + i), z, LD(dy + i), z))));
}

static void leaky_relu_fwd(int64_t n, float slope, const float *x, float *y) {
    const vf z = vf_set1(0.0f), s = vf_set1(slope);
    ELEMENTWISE(n, const vf v = LD(x + i); ST(y + i, vf_sel_gt(v, z, v, vf_mul(s, v))));
}

static void leaky_relu_grad(int64_t n, float slope, const float *x, const float *dy, float *dx,
                            enum gen_grad_mode mode) {
    const vf z = vf_set1(0.0f), s = vf_set1(slope);
    ELEMENTWISE(n, const vf d = LD(dy + i);
                ST(dx + i, vf_add(GB(dx + i), vf_sel_gt(LD(x + i), z, d, vf_mul(s, d)))));
}

/* GELU's tanh form x sigmoid(t), t = 2u, as x s with s = 1 / (1 + e^-t)
 * and -t = x (c0 + c1 x^2): one exponential and one division, 6 fewer
 * vector operations than sigmoid's e^-|t| and its select, which GELU
 * needs for no accuracy (e^-t overflowing to inf gives s = 0: the tail's
 * -0). gelu_fwd and gelu_both give the same bits of it. */
SIMD_INLINE vf vgelu_e(vf v, vf v2) { /* e^-t of v, v2 = v v (the scalar table's gelu_e) */
    const vf c0 = vf_set1(-2.0f * GEN_GELU_K0), c1 = vf_set1(-2.0f * GEN_GELU_K0 * GEN_GELU_K1);
    return vexp(vf_mul(v, vf_fmadd(c1, v2, c0)));
}

static void gelu_fwd(int64_t n, const float *x, float *y) {
    const vf one = vf_set1(1.0f);
    ELEMENTWISE(n, const vf v = LD(x + i); const vf e = vgelu_e(v, vf_mul(v, v));
                ST(y + i, vf_mul(v, vf_div(one, vf_add(one, e)))));
}

static void gelu_grad(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    ELEMENTWISE(n, ST(dx + i, vf_fmadd(LD(dy + i), vdgelu(LD(x + i)), GB(dx + i))));
}

/* gelu_fwd and gelu_grad (SET) at once: s(t) (1 - s(t)) = (e s) s, e s
 * held to 1 where e is inf (inf times 0: NaN; vf_min gives its second
 * operand for a NaN). */
static void gelu_both(int64_t n, const float *x, const float *dy, float *y, float *dx) {
    const vf one = vf_set1(1.0f), k0 = vf_set1(2.0f * GEN_GELU_K0),
             k1 = vf_set1(6.0f * GEN_GELU_K0 * GEN_GELU_K1);
    ELEMENTWISE(n, const vf v = LD(x + i); const vf v2 = vf_mul(v, v); const vf e = vgelu_e(v, v2);
                const vf s = vf_div(one, vf_add(one, e));
                const vf ds = vf_mul(vf_min(vf_mul(e, s), one), s);
                const vf du = vf_fmadd(k1, v2, k0); /* 2 du/dx */
                ST(y + i, vf_mul(v, s));
                ST(dx + i, vf_mul(LD(dy + i), vf_fmadd(vf_mul(v, ds), du, s))));
}

static void silu_fwd(int64_t n, const float *x, float *y) {
    ELEMENTWISE(n, ST(y + i, vsilu(LD(x + i))));
}

static void silu_grad(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    ELEMENTWISE(n, ST(dx + i, vf_fmadd(LD(dy + i), vdsilu(LD(x + i)), GB(dx + i))));
}

static void sigmoid_fwd(int64_t n, const float *x, float *y) {
    ELEMENTWISE(n, ST(y + i, vsigmoid(LD(x + i))));
}

static void sigmoid_grad(int64_t n, const float *y, const float *dy, float *dx,
                         enum gen_grad_mode mode) {
    const vf one = vf_set1(1.0f);
    ELEMENTWISE(n, const vf v = LD(y + i);
                ST(dx + i, vf_fmadd(vf_mul(LD(dy + i), v), vf_sub(one, v), GB(dx + i))));
}

static void bce_logits_terms(int64_t n, const float *x, const float *t, float *y) {
    const vf z = vf_set1(0.0f);
    ELEMENTWISE(n, const vf xi = LD(x + i);
                const vf e = vexp(vf_sub(z, vf_abs(xi)));
                ST(y + i, vf_add(vf_fnmadd(xi, LD(t + i), vf_max(z, xi)), vlog1p_unit(e))));
}

static void tanh_fwd(int64_t n, const float *x, float *y) {
    ELEMENTWISE(n, ST(y + i, vtanh(LD(x + i))));
}

static void tanh_grad(int64_t n, const float *y, const float *dy, float *dx,
                      enum gen_grad_mode mode) {
    const vf one = vf_set1(1.0f);
    ELEMENTWISE(n, const vf v = LD(y + i);
                ST(dx + i, vf_fmadd(LD(dy + i), vf_fnmadd(v, v, one), GB(dx + i))));
}

static void exp_fwd(int64_t n, const float *x, float *y) {
    ELEMENTWISE(n, ST(y + i, vexp(LD(x + i))));
}

static void exp_grad(int64_t n, const float *y, const float *dy, float *dx,
                     enum gen_grad_mode mode) {
    ELEMENTWISE(n, ST(dx + i, vf_fmadd(LD(dy + i), LD(y + i), GB(dx + i))));
}

/* ---- row reductions ------------------------------------------------------- */

static float row_max(int64_t cols, const float *x) {
    const vf ninf = vf_set1(-INFINITY);
    vf mx = ninf;
    VLOOP(0, cols, mx = vf_max(mx, LDO(x + i, ninf)));
    return vf_hmax(mx);
}

/* y = e^(x - max) over the row; returns the sum of y in double. Where x -
 * max is below ln of the smallest normal float (-inf in a causal mask, say),
 * y is 0 rather than vexp's gradual underflow: the CPU computes a
 * denormal result in microcode, and a softmax of masked 128 x 128 scores
 * took 6 times as long as one without (52 against 8 us). NaN stays NaN
 * (max takes its second operand, x, when either is NaN; the compare is
 * false). */
static double exp_shift(int64_t cols, const float *x, float mx, float *y) {
    const vf m = vf_set1(mx), lo = vf_set1(-87.33654f), zero = vf_set1(0.0f);
    vd2 acc = vd2_zero();
    VLOOP(0, cols, const vf d = vf_sub(LD(x + i), m);
          const vf e = ZM(vf_sel_gt(lo, d, zero, vexp(vf_max(lo, d)))); ST(y + i, e);
          acc = vd2_add(acc, e));
    return vd2_hsum(acc);
}

/* Row r of softmax_fwd: the exponentials into E's row, then y's row
 * written by STORE (ST, or ST_BF16 where the ISA file has it). */
#define SOFTMAX_ROW(E, STORE)                                                                      \
    do {                                                                                           \
        const int64_t at = r * cols;                                                               \
        const double s = exp_shift(cols, x + at, row_max(cols, x + at), (E) + at);                 \
        const vf inv = vf_set1((float)(1.0 / s));                                                  \
        VLOOP(0, cols, STORE(y + at + i, vf_mul(LD((E) + at + i), inv)));                          \
    } while (0)

static void softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, SOFTMAX_ROW(y, ST));
}

/* Row r of softmax_grad: y read by LDY (LD, or LD_BF16 for a y held as
 * bf16), dx written by STORE (ST, or ST_BF16) with ADD(dx) added (GB, or
 * GB_SET: dx set). */
#define GB_SET(p) vf_set1(0.0f)
#define SOFTMAX_GRAD_ROW(LDY, STORE, ADD)                                                          \
    do {                                                                                           \
        const int64_t at = r * cols;                                                               \
        vd2 acc = vd2_zero();                                                                      \
        VLOOP(0, cols, acc = vd2_add(acc, vf_mul(LD(dy + at + i), LDY(y + at + i))));              \
        const vf dot = vf_set1((float)vd2_hsum(acc));                                              \
        VLOOP(0, cols,                                                                             \
              STORE(dx + at + i,                                                                   \
                    vf_fmadd(LDY(y + at + i), vf_sub(LD(dy + at + i), dot), ADD(dx + at + i))));   \
    } while (0)

static void softmax_grad(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx,
                         enum gen_grad_mode mode) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, SOFTMAX_GRAD_ROW(LD, ST, GB));
}

static void log_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        const float mx = row_max(cols, xr);
        const double s = exp_shift(cols, xr, mx, yr); /* yr is scratch here */
        const vf lse = vf_set1((float)((double)mx + log(s)));
        VLOOP(0, cols, ST(yr + i, vf_sub(LD(xr + i), lse)));
    });
}

static void log_softmax_grad(int64_t rows, int64_t cols, const float *y, const float *dy,
                             float *dx, enum gen_grad_mode mode) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        vd2 acc = vd2_zero();
        VLOOP(0, cols, acc = vd2_add(acc, LD(dyr + i)));
        const vf s = vf_set1((float)vd2_hsum(acc));
        VLOOP(0, cols,
              ST(dxr + i, vf_add(GB(dxr + i), vf_fnmadd(vexp(LD(yr + i)), s, LD(dyr + i)))));
    });
}

/* The norms' sums run in double, each block of FLOAT_RUN values summed in
 * float first: a block's rounding stays near float's own, and the
 * widening to double (two conversions and two adds a vector) comes once
 * a block instead of once a vector, where it had bounded the group
 * norm's passes (the fused backward 3.0 -> 2.4 ms for 64 images of 96 x
 * 28 x 28). */
#define FLOAT_RUN 256

/* sum (sq 0) or sum of squared deviations from mu (sq 1) of x[0..n) + s,
 * added to acc; each block in two float accumulators, even and odd
 * vectors, so that the adds of neighbouring vectors do not wait on each
 * other (one chain ran at the add's latency, below the pace of the loads) */
SIMD_INLINE vf run_term(vf v, vf s, vf mu, int sq) {
    const vf d = vf_sub(vf_add(v, s), mu);
    return sq ? vf_mul(d, d) : d;
}
SIMD_INLINE vd2 run_sum(int64_t n, const float *x, vf s, vf mu, int sq, vd2 acc) {
    for (int64_t i0 = 0; i0 < n; i0 += FLOAT_RUN) {
        const int64_t i1 = i0 + FLOAT_RUN < n ? i0 + FLOAT_RUN : n;
        vf f0 = vf_set1(0.0f), f1 = f0;
        int64_t j = i0;
        for (; j + 2 * VW <= i1; j += 2 * VW) {
            f0 = vf_add(f0, run_term(ld(x + j, vm_full(), 1), s, mu, sq));
            f1 = vf_add(f1, run_term(ld(x + j + VW, vm_full(), 1), s, mu, sq));
        }
        VLOOP(j, i1, f0 = vf_add(f0, ZM(run_term(LD(x + i), s, mu, sq))));
        acc = vd2_add(acc, vf_add(f0, f1));
    }
    return acc;
}

/* Mean and 1 / sqrt(biased variance + eps) of x[0..n): two passes, sums
 * in double by blocks (run_sum). */
static void moments(int64_t n, const float *x, float eps, float *mean, float *rstd) {
    const vf z = vf_set1(0.0f);
    const float mu = (float)(vd2_hsum(run_sum(n, x, z, z, 0, vd2_zero())) / (double)n);
    const double q = vd2_hsum(run_sum(n, x, z, vf_set1(mu), 1, vd2_zero()));
    *mean = mu;
    *rstd = (float)(1.0 / sqrt(q / (double)n + eps));
}

/* moments of a group of cpg channels of HW values, channel c's shifted
 * by sh[c] (x + sh[c], as if the shifted values were stored), sums as
 * moments'. */
static void moments_shifted(int64_t cpg, int64_t HW, const float *x, const float *sh, float eps,
                            float *mean, float *rstd) {
    const vf z = vf_set1(0.0f);
    vd2 a = vd2_zero(), q = vd2_zero();
    for (int64_t c = 0; c < cpg; c++) a = run_sum(HW, x + c * HW, vf_set1(sh[c]), z, 0, a);
    const float mu = (float)(vd2_hsum(a) / (double)(cpg * HW));
    const vf vmu = vf_set1(mu);
    for (int64_t c = 0; c < cpg; c++) q = run_sum(HW, x + c * HW, vf_set1(sh[c]), vmu, 1, q);
    *mean = mu;
    *rstd = (float)(1.0 / sqrt(vd2_hsum(q) / (double)(cpg * HW) + eps));
}

/* One row of layer norm, (x - mean) rstd gamma + beta, into y, or, where
 * the ISA file has bf16 stores (GEN_SIMD_BF16_STORE), rounded to bf16
 * into yb where y is NULL. */
#ifdef GEN_SIMD_BF16_STORE
#define LN_ST(v) (y ? ST(y + i, (v)) : ST_BF16(yb + i, (v)))
#else
#define LN_ST(v) ST(y + i, (v))
#endif
SIMD_INLINE void ln_row(int64_t cols, const float *xr, const float *gamma, const float *beta,
                        float mean, float rstd, float *y, uint16_t *yb) {
#ifndef GEN_SIMD_BF16_STORE
    GEN_ASSERT(!yb);
#endif
    const vf mu = vf_set1(mean), rs = vf_set1(rstd);
    if (gamma && beta)
        VLOOP(0, cols,
              LN_ST(vf_fmadd(vf_mul(vf_sub(LD(xr + i), mu), rs), LD(gamma + i), LD(beta + i))));
    else
        VLOOP(0, cols, {
            vf v = vf_mul(vf_sub(LD(xr + i), mu), rs);
            if (gamma) v = vf_mul(v, LD(gamma + i));
            if (beta) v = vf_add(v, LD(beta + i));
            LN_ST(v);
        });
}
#undef LN_ST

static void ln_fwd_to(int64_t rows, int64_t cols, const float *x, const float *gamma,
                      const float *beta, float eps, float *y, uint16_t *yb, float *mean,
                      float *rstd) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, {
        moments(cols, x + r * cols, eps, &mean[r], &rstd[r]);
        ln_row(cols, x + r * cols, gamma, beta, mean[r], rstd[r], y ? y + r * cols : NULL,
               yb ? yb + r * cols : NULL);
    });
}

static void layernorm_fwd(int64_t rows, int64_t cols, const float *x, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd) {
    ln_fwd_to(rows, cols, x, gamma, beta, eps, y, NULL, mean, rstd);
}

/* nv whole vectors of columns of layer norm's dgamma (sum over rows of dy
 * xhat) and dbeta (sum of dy), from column c0 of x and dy (mean and rstd
 * per row) over `rows` rows, added to the double sums sg and sb: each
 * column summed down the rows in order, in registers while the rows go by. */
SIMD_INLINE void ln_params_vectors(int nv, int64_t rows, int64_t cols, int64_t c0,
                                   const float *x, const float *dy, const float *mean,
                                   const float *rstd, vd2 *sg, vd2 *sb) {
    vd2 g[4], b[4];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) g[v] = sg[v], b[v] = sb[v];
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols + c0, *dyr = dy + r * cols + c0;
        const vf mu = vf_set1(mean[r]), rs = vf_set1(rstd[r]);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            const vf d = ld(dyr + v * VW, vm_full(), 1);
            g[v] = vd2_add(g[v], vf_mul(d, vf_mul(vf_sub(ld(xr + v * VW, vm_full(), 1), mu), rs)));
            b[v] = vd2_add(b[v], d);
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) sg[v] = g[v], sb[v] = b[v];
}

/* Adds to sg and sb (one vd2 a vector of columns [j0, j1), j0 a whole
 * vector) layer norm's dgamma and dbeta sums over n rows of x and dy
 * (mean and rstd per row): LN_V, 2 or 1 vectors of columns at a time
 * summed down the rows in registers, each column in row order. */
#define LN_V (VW >= 16 ? 4 : 2) /* as many as the registers hold */
static void ln_params_rows(int64_t n, int64_t cols, int64_t j0, int64_t j1, const float *x,
                           const float *dy, const float *mean, const float *rstd, vd2 *sg,
                           vd2 *sb) {
    const int64_t whole = (j1 - j0) / VW;
    int64_t v = 0;
    for (; whole - v >= LN_V; v += LN_V)
        ln_params_vectors(LN_V, n, cols, j0 + v * VW, x, dy, mean, rstd, sg + v, sb + v);
    if (LN_V > 2 && whole - v >= 2)
        ln_params_vectors(2, n, cols, j0 + v * VW, x, dy, mean, rstd, sg + v, sb + v), v += 2;
    if (whole - v >= 1)
        ln_params_vectors(1, n, cols, j0 + v * VW, x, dy, mean, rstd, sg + v, sb + v), v += 1;
    if (j0 + v * VW == j1) return;
    for (int64_t r = 0; r < n; r++) { /* a partial last vector */
        const vf mu = vf_set1(mean[r]), rs = vf_set1(rstd[r]);
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        VLOOP(j0 + v * VW, j1, const vf d = LD(dyr + i);
              sg[v] = vd2_add(sg[v], vf_mul(d, vf_mul(vf_sub(LD(xr + i), mu), rs)));
              sb[v] = vd2_add(sb[v], d));
    }
}

/* Columns [j0, j1) of layer norm's dgamma += sum over rows of dy xhat and
 * dbeta += sum of dy, each column summed down the rows in order, in
 * double: LN_COLS columns at a time, their sums in a buffer in L1, the
 * rows in chunks of SUM_ROWS that stay in L2 while they are summed down
 * (as col_sum_range). The second pass of a layer norm too wide for the
 * one-pass parts below. */
#define LN_COLS 512
static void ln_params_range(int64_t rows, int64_t cols, int64_t j0, int64_t j1, const float *x,
                            const float *dy, const float *mean, const float *rstd, float *dgamma,
                            float *dbeta) {
    for (int64_t c0 = j0; c0 < j1; c0 += LN_COLS) {
        const int64_t c1 = j1 - c0 < LN_COLS ? j1 : c0 + LN_COLS;
        vd2 sg[LN_COLS / VW], sb[LN_COLS / VW];
        for (int64_t v = 0; v < (c1 - c0 + VW - 1) / VW; v++) sg[v] = sb[v] = vd2_zero();
        for (int64_t r0 = 0; r0 < rows; r0 += SUM_ROWS)
            ln_params_rows(rows - r0 < SUM_ROWS ? rows - r0 : SUM_ROWS, cols, c0, c1, x + r0 * cols,
                           dy + r0 * cols, mean + r0, rstd + r0, sg, sb);
        VLOOP(c0, c1, const int64_t v = (i - c0) / VW;
              if (dgamma) ST(dgamma + i, vf_add(LD(dgamma + i), vd2_cvt(sg[v])));
              if (dbeta) ST(dbeta + i, vf_add(LD(dbeta + i), vd2_cvt(sb[v]))));
    }
}

/* dx (+)= rstd (dyg - mean(dyg) - xhat mean(dyg xhat)), dyg = dy gamma,
 * for one row. */
SIMD_INLINE void ln_dx_row(int64_t cols, const float *xr, const float *dyr, const float *gamma,
                           float mean, float rstd, float *dxr, enum gen_grad_mode mode) {
    const vf one = vf_set1(1.0f), mu = vf_set1(mean), rs = vf_set1(rstd);
    vd2 a = vd2_zero(), b = vd2_zero();
    VLOOP(0, cols, const vf dyg = vf_mul(LD(dyr + i), gamma ? LD(gamma + i) : one);
          a = vd2_add(a, dyg); b = vd2_add(b, vf_mul(dyg, vf_mul(vf_sub(LD(xr + i), mu), rs))));
    /* -mean(dyg) and mean(dyg xhat); dyg - mean(dyg) is one fused op */
    const vf nma = vf_set1(-(float)(vd2_hsum(a) / (double)cols));
    const vf mb = vf_set1((float)(vd2_hsum(b) / (double)cols));
    VLOOP(0, cols, const vf xhat = vf_mul(vf_sub(LD(xr + i), mu), rs);
          const vf d = vf_fmadd(LD(dyr + i), gamma ? LD(gamma + i) : one, nma);
          ST(dxr + i, vf_fmadd(rs, vf_fnmadd(xhat, mb, d), GB(dxr + i))));
}

/* Layer norm's backward in one pass over x and dy: the rows in parts of
 * LN_PART_ROWS (more where the parts' sums would not fit LN_SUMS_BYTES),
 * fixed by rows and cols alone, so the bits do not depend on the threads.
 * A part takes its rows SUM_ROWS at a time: their dx, then, while they
 * are still in L1 or L2, their dgamma and dbeta sums into the part's own
 * (double, in the calling thread's buffer); the parts' sums are added in
 * order at the end. A second pass down the columns (ln_params_range) read
 * x and dy again from L3 or memory: one pass takes the default
 * Transformer's layer norm backward from 1.6-1.7 to 1.2-1.4 ms a step. */
#define LN_PART_ROWS  128
#define LN_SUMS_BYTES ((size_t)1 << 21)
static void layernorm_grad(int64_t rows, int64_t cols, const float *x, const float *gamma,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           enum gen_grad_mode mode, float *dgamma, float *dbeta) {
    const int64_t nv = (cols + VW - 1) / VW;
    const int64_t most = nv ? (int64_t)(LN_SUMS_BYTES / sizeof(vd2)) / (2 * nv) : 0; /* parts */
    if ((!dgamma && !dbeta) || most < 1 || rows < 1) {
        const int64_t dx_rows = dx ? rows : 0;
        GEN_KFOR(GEN_KPAR_ROWS(dx_rows, dx_rows * cols), r, dx_rows,
                 ln_dx_row(cols, x + r * cols, dy + r * cols, gamma, mean[r], rstd[r],
                           dx + r * cols, mode));
        if (dgamma || dbeta)
            COL_RANGES(rows, cols, j0, j1,
                       ln_params_range(rows, cols, j0, j1, x, dy, mean, rstd, dgamma, dbeta));
        return;
    }
    const int64_t pr =
        (rows + LN_PART_ROWS - 1) / LN_PART_ROWS > most ? (rows + most - 1) / most : LN_PART_ROWS;
    const int64_t parts = (rows + pr - 1) / pr;
    vd2 *sums = gen_pack_buffer(GEN_PACK_LN_SUMS, LN_SUMS_BYTES); /* part p: 2 nv at 2 p nv */
    GEN_KFOR(GEN_KPAR_ROWS(parts, rows * cols), p, parts, {
        vd2 *sg = sums + 2 * p * nv, *sb = sg + nv;
        for (int64_t v = 0; v < nv; v++) sg[v] = sb[v] = vd2_zero();
        const int64_t end = (p + 1) * pr < rows ? (p + 1) * pr : rows;
        for (int64_t r0 = p * pr; r0 < end; r0 += SUM_ROWS) {
            const int64_t n = end - r0 < SUM_ROWS ? end - r0 : SUM_ROWS;
            if (dx)
                for (int64_t r = r0; r < r0 + n; r++)
                    ln_dx_row(cols, x + r * cols, dy + r * cols, gamma, mean[r], rstd[r],
                              dx + r * cols, mode);
            ln_params_rows(n, cols, 0, cols, x + r0 * cols, dy + r0 * cols, mean + r0, rstd + r0,
                           sg, sb);
        }
    });
    for (int64_t p = 1; p < parts; p++) /* into part 0's, in order */
        for (int64_t v = 0; v < 2 * nv; v++) sums[v] = vd2_sum(sums[v], sums[2 * p * nv + v]);
    VLOOP(0, cols, const int64_t v = i / VW;
          if (dgamma) ST(dgamma + i, vf_add(LD(dgamma + i), vd2_cvt(sums[v])));
          if (dbeta) ST(dbeta + i, vf_add(LD(dbeta + i), vd2_cvt(sums[nv + v]))));
}

/* x's value at p, plus the channel's shift `s` where there is one (sh);
 * without one, x's value alone (not + 0: the bits of the plain norms). */
#define GN_X(p) (sh ? vf_add(LD(p), s) : LD(p))

/* The group norms' passes after the first read a group from L1; each
 * vector of them fetches the line at p of the next group, so that the
 * next group's first pass reads from cache rather than waiting on memory
 * with the arithmetic idle. */
#define GN_AHEAD(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

/* Group norm of x + shift (shift: (N, C), a value a channel, or NULL),
 * then SiLU if `silu`, into y, or, where the ISA file has bf16 stores
 * (GEN_SIMD_BF16_STORE), rounded to bf16 into yb where y is NULL. */
static void gn_fwd_to(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                      const float *shift, const float *gamma, const float *beta, float eps,
                      float *y, uint16_t *yb, float *mean, float *rstd, int silu) {
    const int64_t cpg = C / G, m = cpg * HW;
    GEN_KFOR(GEN_KPAR_ROWS(N * G, N * G * m), ng, N * G, {
        const float *xg = x + ng * m, *sh = shift ? shift + ng * cpg : NULL;
        float *yg = y ? y + ng * m : NULL;
        uint16_t *ybg = yb ? yb + ng * m : NULL;
        if (sh)
            moments_shifted(cpg, HW, xg, sh, eps, &mean[ng], &rstd[ng]);
        else
            moments(m, xg, eps, &mean[ng], &rstd[ng]);
        const vf mu = vf_set1(mean[ng]), rs = vf_set1(rstd[ng]);
        const int64_t c0 = (ng % G) * cpg;
        const float *nx = ng + 1 < N * G ? xg + m : xg; /* the next group: see GN_AHEAD */
        for (int64_t c = 0; c < cpg; c++) {
            const vf g = vf_set1(gamma ? gamma[c0 + c] : 1.0f);
            const vf b = vf_set1(beta ? beta[c0 + c] : 0.0f);
            const vf s = vf_set1(sh ? sh[c] : 0.0f);
            const float *xc = xg + c * HW, *pc = nx + c * HW;
#ifdef GEN_SIMD_BF16_STORE
            if (ybg) {
                uint16_t *yc = ybg + c * HW;
                if (silu)
                    VLOOP(0, HW, GN_AHEAD(pc + i); ST_BF16(
                              yc + i, vsilu(vf_fmadd(vf_mul(vf_sub(GN_X(xc + i), mu), rs), g, b))));
                else
                    VLOOP(0, HW, GN_AHEAD(pc + i);
                          ST_BF16(yc + i, vf_fmadd(vf_mul(vf_sub(LD(xc + i), mu), rs), g, b)));
                continue;
            }
#else
            GEN_ASSERT(!ybg);
#endif
            float *yc = yg + c * HW;
            if (silu)
                VLOOP(0, HW, GN_AHEAD(pc + i);
                      ST(yc + i, vsilu(vf_fmadd(vf_mul(vf_sub(GN_X(xc + i), mu), rs), g, b))));
            else
                VLOOP(0, HW, GN_AHEAD(pc + i);
                      ST(yc + i, vf_fmadd(vf_mul(vf_sub(LD(xc + i), mu), rs), g, b)));
        }
    });
}

static void gn_fwd(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x, const float *shift,
                   const float *gamma, const float *beta, float eps, float *y, float *mean,
                   float *rstd, int silu) {
    gn_fwd_to(N, C, HW, G, x, shift, gamma, beta, eps, y, NULL, mean, rstd, silu);
}

/* One channel's stretch of pass 1 of gn_grad (x shifted by *sh, or not
 * with sh NULL): a, b (the group's sums of d gamma and d gamma xhat) go on,
 * sg and sb (the channel's of d xhat and d) start afresh, and sx, where
 * given, is the channel's sum of xhat. */
static void gn_grad_channel(int64_t HW, const float *xc, const float *sh, const float *dc, vf mu,
                            vf rs, float gamma, vd2 *a, vd2 *b, double *sg, double *sb,
                            double *sx) {
    const vf g = vf_set1(gamma), s = vf_set1(sh ? *sh : 0.0f);
    vd2 ca = *a, cb = *b, cg = vd2_zero(), cs = vd2_zero(), cx = vd2_zero();
    for (int64_t i0 = 0; i0 < HW; i0 += FLOAT_RUN) { /* float sums of a block, then double */
        const int64_t i1 = i0 + FLOAT_RUN < HW ? i0 + FLOAT_RUN : HW;
        vf fg = vf_set1(0.0f), fs = fg, fx = fg;
        VLOOP(i0, i1, const vf xhat = vf_mul(vf_sub(GN_X(xc + i), mu), rs); const vf d = LD(dc + i);
              fg = vf_fmadd(d, xhat, fg); fs = vf_add(fs, d); if (sx) fx = vf_add(fx, ZM(xhat)));
        cg = vd2_add(cg, fg), cs = vd2_add(cs, fs), cx = vd2_add(cx, fx);
    }
    /* the group's sums of d gamma and d gamma xhat: the channel's times gamma */
    ca = vd2_add(ca, vf_mul(vd2_cvt(cs), g)), cb = vd2_add(cb, vf_mul(vd2_cvt(cg), g));
    *a = ca, *b = cb;
    *sg = vd2_hsum(cg), *sb = vd2_hsum(cs);
    if (sx) *sx = vd2_hsum(cx);
}

static void groupnorm_bwd(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                          const float *gamma, const float *mean, const float *rstd,
                          const float *dy, float *dx, float *dgamma, float *dbeta) {
    const int64_t cpg = C / G, m = cpg * HW;
    GEN_KFOR(GEN_KPAR_ROWS(N * G, N * G * m), ng, N * G, {
        const float *xg = x + ng * m, *dyg = dy + ng * m;
        float *dxg = dx + ng * m;
        const int64_t c0 = (ng % G) * cpg;
        const vf mu = vf_set1(mean[ng]), rs = vf_set1(rstd[ng]);
        vd2 a = vd2_zero(), b = vd2_zero();
        for (int64_t c = 0; c < cpg; c++) {
            double sg, sb; /* as gn_grad's, whose bits these are */
            gn_grad_channel(HW, xg + c * HW, NULL, dyg + c * HW, mu, rs,
                            gamma ? gamma[c0 + c] : 1.0f, &a, &b, &sg, &sb, NULL);
        }
        const vf nma = vf_set1(-(float)(vd2_hsum(a) / (double)m)); /* as gn_grad */
        const vf mb = vf_set1((float)(vd2_hsum(b) / (double)m));
        for (int64_t c = 0; c < cpg; c++) {
            const vf g = vf_set1(gamma ? gamma[c0 + c] : 1.0f);
            const float *xc = xg + c * HW, *dyc = dyg + c * HW;
            float *dxc = dxg + c * HW;
            VLOOP(0, HW, const vf xhat = vf_mul(vf_sub(LD(xc + i), mu), rs);
                  const vf dgm = vf_fmadd(LD(dyc + i), g, nma);
                  ST(dxc + i, vf_fmadd(rs, vf_fnmadd(xhat, mb, dgm), LD(dxc + i))));
        }
    });
    if (!dgamma && !dbeta) return;
    GEN_KFOR(GEN_KPAR_ROWS(C, N * C * HW), c, C, {
        double tg = 0.0, tb = 0.0; /* image by image, as gen_scalar_channel_sums */
        for (int64_t n = 0; n < N; n++) {
            const int64_t ng = n * G + c / cpg;
            vd2 a = vd2_zero(), b = vd2_zero();
            double sg, sb;
            gn_grad_channel(HW, x + (n * C + c) * HW, NULL, dy + (n * C + c) * HW,
                            vf_set1(mean[ng]), vf_set1(rstd[ng]), 1.0f, &a, &b, &sg, &sb, NULL);
            tg += sg, tb += sb;
        }
        if (dgamma) dgamma[c] += (float)tg;
        if (dbeta) dbeta[c] += (float)tb;
    });
}

/* dh = dy silu'(h) over one group of the fused backward, h recomputed
 * from x as gn_fwd has it. A loop of its own: its long chains (exp, two
 * divisions) overlap from one vector to the next, where inside the sums'
 * loop they would wait on each other; the group is then in L1 for it. */
static void gn_dsilu(int64_t cpg, int64_t HW, const float *xg, const float *sh, const float *dyg,
                     vf mu, vf rs, const float *gamma, const float *beta, int64_t c0, float *dhg) {
    for (int64_t c = 0; c < cpg; c++) {
        const vf g = vf_set1(gamma ? gamma[c0 + c] : 1.0f);
        const vf bt = vf_set1(beta ? beta[c0 + c] : 0.0f);
        const vf s = vf_set1(sh ? sh[c] : 0.0f);
        const float *xc = xg + c * HW, *dyc = dyg + c * HW;
        float *dhc = dhg + c * HW;
        VLOOP(0, HW, const vf h = vf_fmadd(vf_mul(vf_sub(GN_X(xc + i), mu), rs), g, bt);
              ST(dhc + i, vf_mul(LD(dyc + i), vdsilu(h))));
    }
}

/* Group norm's backward (of SiLU after it too when dh is given), as the
 * scalar gn_grad: pass 1 per (n, group) the sums, pass 2 dx. With a shift,
 * x + shift is what was normalised, and dshift (N, C) = each channel's sum
 * of dx, from pass 1's sums (gen_gn_dshift; work then holds 4 N C
 * doubles, the last 2 N C for each channel's sums of d and xhat). */
static void gn_grad(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x, const float *shift,
                    const float *gamma, const float *beta, const float *mean, const float *rstd,
                    const float *dy, float *dh, float *dx, enum gen_grad_mode mode, float *dgamma,
                    float *dbeta, float *dshift, double *work) {
    const int64_t cpg = C / G, m = cpg * HW;
    const int per_channel = dgamma || dbeta;
    GEN_KFOR(GEN_KPAR_ROWS(N * G, N * G * m), ng, N * G, {
        const float *xg = x + ng * m, *sh = shift ? shift + ng * cpg : NULL;
        const int64_t c0 = (ng % G) * cpg, n = ng / G;
        const vf mu = vf_set1(mean[ng]), rs = vf_set1(rstd[ng]);
        if (dh) gn_dsilu(cpg, HW, xg, sh, dy + ng * m, mu, rs, gamma, beta, c0, dh + ng * m);
        const float *d = dh ? dh + ng * m : dy + ng * m;
        vd2 a = vd2_zero(), b = vd2_zero();
        double *sx = dshift ? work + 2 * N * C + 2 * (n * C + c0) : NULL; /* (d, xhat) sums */
        for (int64_t c = 0; c < cpg; c++) {
            double sg, sb;
            gn_grad_channel(HW, xg + c * HW, sh ? sh + c : NULL, d + c * HW, mu, rs,
                            gamma ? gamma[c0 + c] : 1.0f, &a, &b, &sg, &sb,
                            sx ? sx + 2 * c + 1 : NULL);
            if (per_channel) {
                work[2 * (n * C + c0 + c)] = sg;
                work[2 * (n * C + c0 + c) + 1] = sb;
            }
            if (sx) sx[2 * c] = sb;
        }
        if (sx)
            gen_gn_dshift(cpg, HW, rstd[ng], gamma ? gamma + c0 : NULL, vd2_hsum(a), vd2_hsum(b),
                          sx, dshift + n * C + c0);
        if (!dx) continue;
        /* as layernorm_grad: d gamma - mean(d gamma) is one fused op */
        const vf nma = vf_set1(-(float)(vd2_hsum(a) / (double)m));
        const vf mb = vf_set1((float)(vd2_hsum(b) / (double)m));
        const int64_t na = ng + 1 < N * G ? m : 0; /* the next group's x and dy */
        for (int64_t c = 0; c < cpg; c++) {
            const vf g = vf_set1(gamma ? gamma[c0 + c] : 1.0f);
            const vf s = vf_set1(sh ? sh[c] : 0.0f);
            const float *xc = xg + c * HW, *dc = d + c * HW;
            const float *px = xc + na, *pd = dy + ng * m + c * HW + na;
            float *dxc = dx + ng * m + c * HW;
            VLOOP(0, HW, GN_AHEAD(px + i); GN_AHEAD(pd + i);
                  const vf xhat = vf_mul(vf_sub(GN_X(xc + i), mu), rs);
                  const vf dgm = vf_fmadd(LD(dc + i), g, nma);
                  ST(dxc + i, vf_fmadd(rs, vf_fnmadd(xhat, mb, dgm), GB(dxc + i))));
        }
    });
    if (per_channel) gen_scalar_channel_sums(N, C, work, dgamma, dbeta);
}
#undef GN_X

/* ---- batch norm: a channel's runs ------------------------------------------
 * Two accumulators, for even and odd runs, so that neighbouring runs'
 * additions overlap instead of waiting on one chain. */

static double runs_sum(int64_t runs, int64_t len, int64_t stride, const float *x) {
    vd2 acc[2] = {vd2_zero(), vd2_zero()};
    for (int64_t r = 0; r < runs; r++) {
        const float *xr = x + r * stride;
        vd2 a = acc[r & 1];
        VLOOP(0, len, a = vd2_add(a, LD(xr + i)));
        acc[r & 1] = a;
    }
    return vd2_hsum(acc[0]) + vd2_hsum(acc[1]);
}

static double runs_sqdev(int64_t runs, int64_t len, int64_t stride, const float *x, float mu) {
    const vf vmu = vf_set1(mu);
    vd2 acc[2] = {vd2_zero(), vd2_zero()};
    for (int64_t r = 0; r < runs; r++) {
        const float *xr = x + r * stride;
        vd2 a = acc[r & 1];
        VLOOP(0, len, a = vd2_addsq(a, ZM(vf_sub(LD(xr + i), vmu))));
        acc[r & 1] = a;
    }
    return vd2_hsum(acc[0]) + vd2_hsum(acc[1]);
}

static void runs_affine(int64_t runs, int64_t len, int64_t stride, const float *x, float a,
                        float b, float *y) {
    const vf va = vf_set1(a), vb = vf_set1(b);
    for (int64_t r = 0; r < runs; r++) {
        const float *xr = x + r * stride;
        float *yr = y + r * stride;
        VLOOP(0, len, ST(yr + i, vf_fmadd(LD(xr + i), va, vb)));
    }
}

static void runs_grad_sums(int64_t runs, int64_t len, int64_t stride, const float *x,
                           const float *dy, float mu, float rs, double s[2]) {
    const vf vmu = vf_set1(mu), vrs = vf_set1(rs);
    vd2 sd[2] = {vd2_zero(), vd2_zero()}, sx[2] = {vd2_zero(), vd2_zero()};
    for (int64_t r = 0; r < runs; r++) {
        const float *xr = x + r * stride, *dyr = dy + r * stride;
        vd2 a = sd[r & 1], b = sx[r & 1];
        VLOOP(0, len, const vf d = LD(dyr + i);
              a = vd2_add(a, d); b = vd2_add(b, vf_mul(d, vf_mul(vf_sub(LD(xr + i), vmu), vrs))));
        sd[r & 1] = a, sx[r & 1] = b;
    }
    s[0] = vd2_hsum(sd[0]) + vd2_hsum(sd[1]);
    s[1] = vd2_hsum(sx[0]) + vd2_hsum(sx[1]);
}

static void runs_grad_dx(int64_t runs, int64_t len, int64_t stride, const float *x,
                         const float *dy, float mu, float rs, float g, float k1, float k2,
                         float *dx, enum gen_grad_mode mode) {
    const vf vmu = vf_set1(mu), vrs = vf_set1(rs), vg = vf_set1(g), vk1 = vf_set1(k1),
             vk2 = vf_set1(k2);
    for (int64_t r = 0; r < runs; r++) {
        const float *xr = x + r * stride, *dyr = dy + r * stride;
        float *dxr = dx + r * stride;
        VLOOP(0, len, const vf xhat = vf_mul(vf_sub(LD(xr + i), vmu), vrs);
              const vf d = vf_fnmadd(xhat, vk2, vf_sub(vf_mul(LD(dyr + i), vg), vk1));
              ST(dxr + i, vf_fmadd(vrs, d, GB(dxr + i))));
    }
}

/* ---- column sums ---------------------------------------------------------- */

/* nv whole vectors of columns from c0 summed down the rows, in row order,
 * onto y: the sums stay in registers while the rows stream past. */
SIMD_INLINE void col_sum_vectors(int nv, int64_t rows, int64_t c0, const float *x,
                                 int64_t stride, float *y) {
    vf acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < nv; v++) acc[v] = ld(y + c0 + v * VW, vm_full(), 1);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * stride + c0;
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[v] = vf_add(acc[v], ld(xr + v * VW, vm_full(), 1));
    }
#pragma GCC unroll 8
    for (int v = 0; v < nv; v++) st(y + c0 + v * VW, vm_full(), 1, acc[v]);
}

/* Columns [j0, j1) of every row, in row order, added into y. The rows go
 * by in chunks of SUM_ROWS, which stay in L2 while 8, 4, 2 or 1 vectors of
 * columns at a time are summed down them in registers, a partial last
 * vector in y (sums kept in y made each row wait on a store and a load: a
 * thread's share of 128 columns ran no faster on two threads than on one;
 * sums in registers down all the rows at once read each row in several
 * strided passes from L3). */
static void col_sum_range(int64_t rows, int64_t j0, int64_t j1, const float *x, int64_t stride,
                          float *y, enum gen_grad_mode mode) {
    if (mode == GEN_GRAD_SET) VLOOP(j0, j1, ST(y + i, vf_set1(0.0f)));
    for (int64_t r0 = 0; r0 < rows; r0 += SUM_ROWS) {
        const int64_t n = rows - r0 < SUM_ROWS ? rows - r0 : SUM_ROWS;
        const float *xc = x + r0 * stride;
        int64_t c0 = j0;
        for (; j1 - c0 >= 8 * VW; c0 += 8 * VW) col_sum_vectors(8, n, c0, xc, stride, y);
        if (j1 - c0 >= 4 * VW) col_sum_vectors(4, n, c0, xc, stride, y), c0 += 4 * VW;
        if (j1 - c0 >= 2 * VW) col_sum_vectors(2, n, c0, xc, stride, y), c0 += 2 * VW;
        if (j1 - c0 >= VW) col_sum_vectors(1, n, c0, xc, stride, y), c0 += VW;
        for (int64_t r = 0; r < n && c0 < j1; r++)
            VLOOP(c0, j1, ST(y + i, vf_add(LD(y + i), LD(xc + r * stride + i))));
    }
}

/* Whole rows streamed from memory; in parallel, a contiguous range of
 * whole vectors of columns per thread. Any split gives the same bits: each
 * column is summed down the rows in order whoever sums it. */
static void col_sum(int64_t rows, int64_t cols, const float *x, int64_t stride, float *y,
                    enum gen_grad_mode mode) {
    COL_RANGES(rows, cols, j0, j1, col_sum_range(rows, j0, j1, x, stride, y, mode));
}

/* ---- optimisers ----------------------------------------------------------- */

static void adam_step(int64_t n, float *p, const float *g, float *m, float *v,
                      const struct gen_adam_step *h) {
    const float b1 = h->beta1, b2 = h->beta2;
    const vf vb1 = vf_set1(b1), vb2 = vf_set1(b2), c1 = vf_set1(1.0f - b1),
             c2 = vf_set1(1.0f - b2), vbc1 = vf_set1(h->bc1), vbc2 = vf_set1(h->bc2),
             veps = vf_set1(h->eps), vlr = vf_set1(h->lr), vlrwd = vf_set1(h->lr * h->wd),
             vl2 = vf_set1(h->l2);
    const int l2 = h->l2 != 0.0f;
    ELEMENTWISE(n, const vf pi = LD(p + i);
                const vf gi = l2 ? vf_fmadd(vl2, pi, LD(g + i)) : LD(g + i);
                const vf mi = vf_fmadd(vb1, LD(m + i), vf_mul(c1, gi));
                const vf vi = vf_fmadd(vb2, LD(v + i), vf_mul(vf_mul(c2, gi), gi));
                const vf step = vf_div(vf_div(mi, vbc1), vf_add(vf_sqrt(vf_div(vi, vbc2)), veps));
                ST(m + i, mi); ST(v + i, vi);
                ST(p + i, vf_sub(pi, vf_fmadd(vlr, step, vf_mul(vlrwd, pi)))));
}

static void sgd(int64_t n, float *p, const float *g, float *buf, float lr, float mom, float wd) {
    const vf vlr = vf_set1(lr), vmom = vf_set1(mom), vwd = vf_set1(wd);
    ELEMENTWISE(n, const vf pi = LD(p + i);
                const vf bi = vf_fmadd(vmom, LD(buf + i), vf_fmadd(vwd, pi, LD(g + i)));
                ST(buf + i, bi); ST(p + i, vf_fnmadd(vlr, bi, pi)));
}

static void ema(int64_t n, float *e, const float *p, float decay) {
    const vf d = vf_set1(decay), c = vf_set1(1.0f - decay);
    ELEMENTWISE(n, ST(e + i, vf_fmadd(d, LD(e + i), vf_mul(c, LD(p + i)))));
}

/* ---- convolution helpers --------------------------------------------------
 * Stride 1: each output row of a col row is [zeros | a contiguous run of x's
 * row | zeros], the run copied a vector at a time. Other strides: scalar. */

/* d[0, n) = s[0, n) (s NULL: zeros) in whole vectors, the last one ending
 * at n and overlapping the one before; runs shorter than a vector go
 * element by element. No masked stores: the rows of a convolution are
 * short (28, 14, 7), so a masked tail came once a row, and AVX2's
 * vmaskmovps store costs AMD's cores about as much as the rest of the row. */
SIMD_INLINE void copy_run(float *restrict d, const float *restrict s, int64_t n) {
    if (n < VW) {
        for (int64_t i = 0; i < n; i++) d[i] = s ? s[i] : 0.0f;
        return;
    }
    const vm m = vm_full();
    const vf z = vf_set1(0.0f);
    int64_t i = 0;
    for (; i + VW < n; i += VW) st(d + i, m, 1, s ? ld(s + i, m, 1) : z);
    st(d + n - VW, m, 1, s ? ld(s + n - VW, m, 1) : z);
}

static void im2col_ld(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                      int64_t pad, int64_t ldc, const float *x, float *col) {
    if (stride != 1) {
#ifdef GEN_SIMD_IM2COL_S2
        if (stride == 2 && GEN_SIMD_IM2COL_S2(C, H, W, KH, KW, pad, ldc, x, col)) return;
#endif
        gen_scalar_im2col_ld(C, H, W, KH, KW, stride, pad, ldc, x, col);
        return;
    }
    const int64_t OH = gen_conv_out(H, KH, 1, pad), OW = gen_conv_out(W, KW, 1, pad);
    GEN_KFOR(GEN_KPAR_ROWS(C, C * KH * KW * OH * OW), c, C,
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                float *dst = col + ((c * KH + kh) * KW + kw) * ldc;
                int64_t lo, hi;
                gen_conv_valid(W, OW, 1, pad, kw, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh - pad + kh;
                    float *d = dst + oh * OW;
                    if (ih < 0 || ih >= H) {
                        copy_run(d, NULL, OW);
                        continue;
                    }
                    const float *s = x + (c * H + ih) * W - pad + kw;
                    for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                    copy_run(d + lo, s + lo, hi - lo);
                    for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0.0f;
                }
            });
}

static void im2col(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                   int64_t pad, const float *x, float *col) {
    const int64_t P = gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
    im2col_ld(C, H, W, KH, KW, stride, pad, P, x, col);
}

/* Same summation order as the scalar reference, so the results are equal.
 * Stride 2 goes a row at a time through the table's GEN_SIMD_COL2IM_S2
 * where it has one; other strides are scalar. */
#ifdef GEN_SIMD_COL2IM_S2
#define COL2IM_SIMD(stride) ((stride) == 1 || (stride) == 2)
#else
#define COL2IM_SIMD(stride) ((stride) == 1)
#define GEN_SIMD_COL2IM_S2(d, s, n) ((void)0)
#endif
static void col2im_ld(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                      int64_t pad, int64_t ldc, const float *col, float *x) {
    if (!COL2IM_SIMD(stride)) {
        gen_scalar_col2im_ld(C, H, W, KH, KW, stride, pad, ldc, col, x);
        return;
    }
    const int64_t OH = gen_conv_out(H, KH, stride, pad), OW = gen_conv_out(W, KW, stride, pad);
    GEN_KFOR(GEN_KPAR_ROWS(C, C * KH * KW * OH * OW), c, C,
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *src = col + ((c * KH + kh) * KW + kw) * ldc;
                int64_t lo, hi;
                gen_conv_valid(W, OW, stride, pad, kw, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    float *d = x + (c * H + ih) * W - pad + kw;
                    const float *s = src + oh * OW;
                    if (stride == 2) {
                        if (hi > lo) GEN_SIMD_COL2IM_S2(d + 2 * lo, s + lo, hi - lo);
                        continue;
                    }
                    VLOOP(lo, hi, ST(d + i, vf_add(LD(d + i), LD(s + i))));
                }
            });
}
#undef COL2IM_SIMD

static void col2im(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                   int64_t pad, const float *col, float *x) {
    const int64_t P = gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
    col2im_ld(C, H, W, KH, KW, stride, pad, P, col, x);
}

GEN_TABLE_WRAPPERS

const struct gen_kernels GEN_SIMD_TABLE = {
    .name = GEN_SIMD_NAME,
    .add = add, .sub = sub, .mul = mul, .scale = scale, .axpy = axpy, .mul_acc = mul_acc,
    .fill = fill, .sum = sum, .sumsq = sumsq,
    .relu_fwd = relu_fwd, .relu_bwd = relu_bwd,
    .leaky_relu_fwd = leaky_relu_fwd, .leaky_relu_bwd = leaky_relu_bwd,
    .gelu_fwd = gelu_fwd, .gelu_bwd = gelu_bwd, .silu_fwd = silu_fwd, .silu_bwd = silu_bwd,
    .sigmoid_fwd = sigmoid_fwd, .sigmoid_bwd = sigmoid_bwd,
    .tanh_fwd = tanh_fwd, .tanh_bwd = tanh_bwd, .exp_fwd = exp_fwd, .exp_bwd = exp_bwd,
    .softmax_fwd = softmax_fwd, .softmax_bwd = softmax_bwd,
    .log_softmax_fwd = log_softmax_fwd, .log_softmax_bwd = log_softmax_bwd,
    .layernorm_fwd = layernorm_fwd, .layernorm_bwd = layernorm_bwd,
    .groupnorm_fwd = groupnorm_fwd, .groupnorm_bwd = groupnorm_bwd,
    .adam = adam, .sgd = sgd, .ema = ema,
    .im2col = im2col, .col2im = col2im,
    .im2col_ld = im2col_ld, .col2im_ld = col2im_ld,
    .gemm = GEN_SIMD_GEMM, .conv_gemm_work = GEN_SIMD_CONV_GEMM_WORK,
    .conv_gemm = GEN_SIMD_CONV_GEMM, .conv_dw_work = GEN_SIMD_CONV_DW_WORK,
    .conv_dw = GEN_SIMD_CONV_DW, .conv_prep_work = GEN_SIMD_CONV_PREP_WORK,
    .conv_prep = GEN_SIMD_CONV_PREP,
    .relu_grad = relu_grad, .leaky_relu_grad = leaky_relu_grad, .gelu_grad = gelu_grad,
    .silu_grad = silu_grad, .sigmoid_grad = sigmoid_grad, .tanh_grad = tanh_grad,
    .exp_grad = exp_grad, .softmax_grad = softmax_grad, .log_softmax_grad = log_softmax_grad,
    .layernorm_grad = layernorm_grad, .groupnorm_grad = groupnorm_grad,
    .groupnorm_silu_fwd = groupnorm_silu_fwd, .groupnorm_silu_grad = groupnorm_silu_grad,
    .adam_step = adam_step, .col_sum = col_sum, .gemm_bias = GEN_SIMD_GEMM_BIAS,
    .mul_grads = mul_grads, .conv_dx_work = GEN_SIMD_CONV_DX_WORK,
    .conv_dx_prep_work = GEN_SIMD_CONV_DX_PREP_WORK, .conv_dx_prep = GEN_SIMD_CONV_DX_PREP,
    .conv_dx = GEN_SIMD_CONV_DX, .bce_logits_terms = bce_logits_terms,
    .gemv = GEN_SIMD_GEMV, .bpack_floats = GEN_SIMD_BPACK_FLOATS, .bpack = GEN_SIMD_BPACK,
    .gemm_bpacked = GEN_SIMD_GEMM_BPACKED,
    .runs_sum = runs_sum, .runs_sqdev = runs_sqdev, .runs_affine = runs_affine,
    .runs_grad_sums = runs_grad_sums, .runs_grad_dx = runs_grad_dx,
    .gelu_both = gelu_both,
    .conv_gemm_images = GEN_SIMD_CONV_GEMM_IMAGES,
};

#ifdef GEN_SIMD_BF16_STORE
/* layernorm_fwd_b16 of the bf16 table, as groupnorm_silu_fwd_b16 below. */
void gen_layernorm_fwd_b16_avx512(int64_t rows, int64_t cols, const float *x, const float *gamma,
                                  const float *beta, float eps, uint16_t *y, float *mean,
                                  float *rstd) {
    ln_fwd_to(rows, cols, x, gamma, beta, eps, NULL, y, mean, rstd);
}

/* softmax_fwd_b16 and softmax_grad_b16 of the bf16 table, likewise. */
void gen_softmax_fwd_b16_avx512(int64_t rows, int64_t cols, float *x, uint16_t *y) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, SOFTMAX_ROW(x, ST_BF16));
}

void gen_softmax_grad_b16_avx512(int64_t rows, int64_t cols, const uint16_t *y, const float *dy,
                                 uint16_t *dx) {
    GEN_KFOR(GEN_KPAR_ROWS(rows, rows * cols), r, rows, SOFTMAX_GRAD_ROW(LD_BF16, ST_BF16, GB_SET));
}

/* groupnorm_silu_fwd_b16 of the bf16 table (gen_kernels_avx512bf16_fill):
 * this table's own has none, so that its vcvtneps2bf16 runs only where
 * the CPU has it. */
void gen_groupnorm_silu_fwd_b16_avx512(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                                       const float *shift, const float *gamma, const float *beta,
                                       float eps, uint16_t *y, float *mean, float *rstd) {
    gn_fwd_to(N, C, HW, G, x, shift, gamma, beta, eps, NULL, y, mean, rstd, 1);
}
#endif
