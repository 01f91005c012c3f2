/* bench_gemm.c - gen's AVX-512 GEMM (on a CPU without AVX-512, the AVX2
 * table's, gemm_avx2.c) against OpenBLAS's cblas_sgemm and against the
 * machine's own FMA peak, on the shapes gen's four models run:
 *
 *   Transformer (batch 32 x 128 tokens = 4096 rows, width C 128, MLP 4C,
 *     byte vocabulary V 256): each linear layer's forward (x w^T), input
 *     gradient (dy w) and weight gradient (dy^T x) on all threads, as
 *     gen_linear calls them outside any parallel region; one head's
 *     attention products (T 128, hd 32) on one thread, as ops_attn runs them.
 *   U-Net (diffusion, base 32, mults 1,2,2, 28 x 28 images, batch 64): the
 *     per-chunk convolutions on one thread, as ops_conv runs them inside its
 *     chunk loop: "conv" rows time the table's implicit-GEMM convolution
 *     (conv_gemm, what really runs, forward and the input gradient as a
 *     flipped convolution), "gemm" rows the plain GEMM of the same M x N x K
 *     on a ready column matrix; "wino" rows are the convolutions the table
 *     runs by Winograd's minimal filtering, whose GFLOP/s count the direct
 *     arithmetic (F(2x2, 3x3) does 4/9 of its products, the AVX2 table's
 *     F(4x4, 3x3) 1/4, the AVX-512 table's F(4x4, 2x2) over a stride-2
 *     4x4 one's phases 0.51 on 7x7 outputs) and are summed up apart.
 *   DCGAN (64 + 64 channels, 7 -> 14 -> 28): the transposed convolution's
 *     column GEMM and the discriminator's stride-2 convolution, per chunk.
 *   VAE (784 -> 400 -> 20, batch 128): the 784 x 400 layers on all threads.
 *
 * The peak is measured, not taken from a data sheet: a loop of independent
 * _mm512_fmadd_ps on 16 accumulators in registers (no loads; without
 * AVX-512, _mm256_fmadd_ps on 12), on 1 thread
 * and on all threads. Each sample of a shape is followed by a peak sample
 * on the same number of threads, and "% peak" is the median over samples
 * of the shape's GFLOP/s over that peak, so that a busy machine (or a host
 * that moves the virtual CPUs about) slows both alike. GFLOP/s are medians
 * of REPS samples, gen and OpenBLAS interleaved; a sample repeats the call
 * until it lasts at least SAMPLE_S. Rows marked "L" are the large
 * shapes as the models run them (the transformer's 4096-row layers of at
 * least 0.4 GFLOP, the "conv" rows of the U-Net's convolutions of at least
 * 40 MFLOP per call).
 *
 *   bench_gemm [threads]     (default 2 for the multi-threaded shapes)
 *   bench_gemm --bf16 [threads]   the --precision bf16 table against gen's
 *                                 own fp32 one (not OpenBLAS) on the same
 *                                 rows, plus each convolution's weight
 *                                 gradient (conv_dw); "ref" is then fp32
 *   bench_gemm --amx [threads]    the same for the bf16 table on AMX tiles
 *   bench_gemm --peak [threads]   only the peak on that many threads, in
 *                                 GFLOP/s (median of 9 samples), for the
 *                                 family benches' share-of-peak lines
 *   bench_gemm --gemv [threads]   one-token decoding's products (gen_gemv,
 *                                 gen_gemv_bf16) on that many threads at
 *                                 once, each over weights of its own, GB/s
 *                                 a thread against the bytes a thread
 *                                 streams (below)
 *   GEN_ISA=avx2 bench_gemm       another table than the widest (not with
 *                                 --bf16 or --amx); the AVX2 table's peak
 *                                 is then the ymm loop's */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/core.h"
#include "gen/kernels.h"
#include "kernels/kernels_impl.h" /* gen_kernels_conv_wino */

#include "bench_args.h"

#define REPS     11
#define SAMPLE_S 0.004

static float *make(int64_t n, unsigned seed) {
    float *x = aligned_alloc(64, (size_t)(n + 64) / 16 * 16 * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    srand(seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return x;
}

/* ---- the FMA peak ---------------------------------------------------------
 * Sums n chains' vectors into a volatile, so the loops that made them stay. */
__attribute__((target("avx512f"))) static void keep_sums(const __m512 *c, int n) {
    __m512 s = c[0];
    for (int i = 1; i < n; i++) s = _mm512_add_ps(s, c[i]);
    float out[16];
    _mm512_storeu_ps(out, s);
    volatile float sink = out[0];
    (void)sink;
}

/* 16 independent chains of vfmadd231ps zmm: more than the FMA latency times
 * the FMA pipes of current cores (4 x 2), so the loop is throughput-bound.
 * Returns FLOPs done (2 x 16 lanes x 16 accumulators per iteration). */
__attribute__((target("avx512f,fma"), noinline)) static double fma_loop(int64_t iters, int chains) {
    __m512 c[16];
    for (int i = 0; i < 16; i++) c[i] = _mm512_set1_ps((float)i * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    if (chains == 1) /* as many instructions, one after another: the latency */
        for (int64_t it = 0; it < 16 * iters; it++) c[0] = _mm512_fmadd_ps(c[0], a, b);
    else
        for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) c[i] = _mm512_fmadd_ps(c[i], a, b);
    keep_sums(c, 16);
    return 2.0 * 16 * 16 * (double)iters;
}

/* The same on a CPU without AVX-512: 12 chains of vfmadd231ps ymm (16
 * registers hold them and the two operands; 12 > latency 4 x 2 pipes of
 * current AVX2 cores). 2 x 8 lanes x 12 accumulators per iteration. */
__attribute__((target("avx2,fma"), noinline)) static double fma_loop_avx2(int64_t iters) {
    __m256 c[12];
    for (int i = 0; i < 12; i++) c[i] = _mm256_set1_ps((float)i * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) c[i] = _mm256_fmadd_ps(c[i], a, b);
    __m256 s = c[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, c[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    volatile float sink = out[0];
    (void)sink;
    return 2.0 * 8 * 12 * (double)iters;
}

/* The same with vdpbf16ps (AVX512-BF16): 16 independent chains, each
 * instruction 16 lanes x 2 products, so 2 x 32 x 16 FLOPs an iteration.
 * With `chains` 1, as in fma_loop, the loop waits on the latency. */
__attribute__((target("avx512f,avx512bf16"), noinline)) static double dpbf16_loop(int64_t iters,
                                                                                  int chains) {
    __m512 c[16];
    for (int i = 0; i < 16; i++) c[i] = _mm512_set1_ps((float)i * 1e-3f);
    /* bf16 pairs of 1.0 and of a small number: the sums stay finite */
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    const __m512bh b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
    if (chains == 1)
        for (int64_t it = 0; it < 16 * iters; it++) c[0] = _mm512_dpbf16_ps(c[0], a, b);
    else
        for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) c[i] = _mm512_dpbf16_ps(c[i], a, b);
    keep_sums(c, 16);
    return 2.0 * 32 * 16 * (double)iters;
}

/* vdpbf16ps against the FMA on one thread, where the CPU has both: the
 * rate of 16 independent chains (GFLOP/s, median of 9 x 0.1 s) and one
 * chain's time an instruction (its latency, in ns). */
static void bf16_peak_line(void) {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) return;
    const int64_t iters = (int64_t)(0.1 * 250e9 / 512);
    double pk[9], lf[9], lb[9];
    for (int r = 0; r < 9; r++) {
        double t0 = gen_now();
        pk[r] = dpbf16_loop(iters, 16) / (gen_now() - t0) * 1e-9;
        t0 = gen_now();
        fma_loop(iters / 8, 1);
        lf[r] = (gen_now() - t0) / (16.0 * (double)(iters / 8)) * 1e9;
        t0 = gen_now();
        dpbf16_loop(iters / 8, 1);
        lb[r] = (gen_now() - t0) / (16.0 * (double)(iters / 8)) * 1e9;
    }
    printf("vdpbf16ps peak (16 zmm accumulators, median of 9 x 0.1 s): 1 thread %.1f GFLOP/s; "
           "one chain %.3f ns an instruction against the FMA's %.3f\n",
           gen_median(pk, 9), gen_median(lb, 9), gen_median(lf, 9));
}

/* GFLOP/s of the widest FMA loop this CPU runs, on nt threads for about
 * `seconds`. */
static int ymm_peak; /* the table timed is the AVX2 one: its peak is the ymm loop's */

static double peak_sample(int nt, double seconds) {
    const int wide = __builtin_cpu_supports("avx512f") && !ymm_peak;
    /* ~250 GFLOP/s per core with AVX-512, ~100 with AVX2 */
    const int64_t iters = (int64_t)(seconds * (wide ? 250e9 / 512 : 100e9 / 192));
    double flops = 0;
    const double t0 = gen_now();
#pragma omp parallel num_threads(nt) reduction(+ : flops)
    flops += wide ? fma_loop(iters, 16) : fma_loop_avx2(iters);
    return flops / (gen_now() - t0) * 1e-9;
}

/* ---- the shapes ------------------------------------------------------------ */

enum kind { GEMM, CONV };

struct shape {
    const char *model, *what;
    enum kind kind;
    int ta, tb;
    int64_t M, N, K;     /* GEMM: C (M x N) = op(A) (M x K) op(B) (K x N) */
    int64_t geo[8];      /* CONV: C, H, W, KH, KW, stride, pad, m images; M = out channels */
    int threads, large;  /* threads 0: the command line's count */
};

#define TF(what, ta, tb, M, N, K, large) {"tf", what, GEMM, ta, tb, M, N, K, {0}, 0, large}
#define CV(model, what, M, C, H, W, KH, KW, st, pad, m, large)                                    \
    {model, what, CONV, 0, 0, M, 0, 0, {C, H, W, KH, KW, st, pad, m}, 1, large}

static const struct shape shapes[] = {
    /* Transformer: rows R = 4096, C = 128; forward x w^T, dx = dy w, dw = dy^T x */
    TF("qkv    fwd  128->384", 0, 1, 4096, 384, 128, 1),
    TF("qkv    dx", 0, 0, 4096, 128, 384, 1),
    TF("qkv    dW", 1, 0, 384, 128, 4096, 1),
    TF("proj   fwd  128->128", 0, 1, 4096, 128, 128, 0),
    TF("proj   dW", 1, 0, 128, 128, 4096, 0),
    TF("fc     fwd  128->512", 0, 1, 4096, 512, 128, 1),
    TF("fc     dx", 0, 0, 4096, 128, 512, 1),
    TF("fc     dW", 1, 0, 512, 128, 4096, 1),
    TF("mproj  fwd  512->128", 0, 1, 4096, 128, 512, 1),
    TF("mproj  dx", 0, 0, 4096, 512, 128, 1),
    TF("mproj  dW", 1, 0, 128, 512, 4096, 1),
    TF("head   fwd  128->256", 0, 1, 4096, 256, 128, 0),
    {"tf", "attn   q k^T (1 head)", GEMM, 0, 1, 128, 128, 32, {0}, 1, 0},
    {"tf", "attn   p v   (1 head)", GEMM, 0, 0, 128, 32, 128, {0}, 1, 0},
    /* U-Net at 28 x 28 (one image a chunk), 14 x 14 (two, or one at K 1152), 7 x 7 (eight) */
    CV("unet", "enc1   28x28 32->32", 32, 32, 28, 28, 3, 3, 1, 1, 1, 0),
    CV("unet", "dec1.1 28x28 96->32", 32, 96, 28, 28, 3, 3, 1, 1, 1, 1),
    CV("unet", "dec1.1 dx 28x28 32->96", 96, 32, 28, 28, 3, 3, 1, 1, 1, 1),
    CV("unet", "up1    28x28 64->64", 64, 64, 28, 28, 3, 3, 1, 1, 1, 1),
    CV("unet", "enc2.2 14x14 64->64", 64, 64, 14, 14, 3, 3, 1, 1, 2, 0),
    CV("unet", "dec2.1 14x14 128->64", 64, 128, 14, 14, 3, 3, 1, 1, 1, 0),
    CV("unet", "dec2.1 dx 14x14 64->128", 128, 64, 14, 14, 3, 3, 1, 1, 1, 0),
    CV("unet", "mid    7x7 64->64", 64, 64, 7, 7, 3, 3, 1, 1, 8, 0),
    CV("unet", "down1  s2 28->14 32->32", 32, 32, 28, 28, 3, 3, 2, 1, 4, 0),
    /* DCGAN: G.deconv1 128->64 (7 -> 14, five images a chunk), D.conv2 64->128 s2 */
    {"gan", "G.deconv1 col = W^T x", GEMM, 1, 0, 1024, 245, 128, {0}, 1, 0},
    CV("gan", "D.conv2 s2 14->7 64->128", 128, 64, 14, 14, 4, 4, 2, 1, 5, 0),
    {"gan", "D.conv2 dcol = W^T dy", GEMM, 1, 0, 1024, 245, 128, {0}, 1, 0},
    /* VAE: batch 128, 784 -> 400 and 400 -> 784 */
    {"vae", "enc fc 784->400 fwd", GEMM, 0, 1, 128, 400, 784, {0}, 0, 0},
    {"vae", "enc fc dW", GEMM, 1, 0, 400, 784, 128, {0}, 0, 0},
    {"vae", "dec fc 400->784 fwd", GEMM, 0, 1, 128, 784, 400, {0}, 0, 0},
    {"vae", "dec fc dx", GEMM, 0, 0, 128, 400, 784, {0}, 0, 0},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* The shape's GEMM sizes (a convolution's: M x m P x C KH KW). */
static void gemm_dims(const struct shape *sh, int64_t *M, int64_t *N, int64_t *K) {
    *M = sh->M, *N = sh->N, *K = sh->K;
    if (sh->kind == CONV) {
        const int64_t *g = sh->geo;
        *N = g[7] * gen_conv_out(g[1], g[3], g[5], g[6]) * gen_conv_out(g[2], g[4], g[5], g[6]);
        *K = g[0] * g[3] * g[4];
    }
}

struct result {
    double gen, blas, gen_pk, blas_pk; /* GFLOP/s, % of peak */
};

/* One shape's operands, and the calls timed on them: kt's, and the
 * reference's (OpenBLAS, or with --bf16 the fp32 table ref). */
struct call {
    const struct gen_kernels *kt, *ref;
    const struct shape *sh;
    int64_t M, N, K, lda, ldb;
    float *A, *B, *C, *x, *work;
    float *prep[2]; /* A as kt's and ref's conv_gemm take it, where not A itself */
};

/* A in the form k's conv_gemm takes it for the shape (prepared once, as
 * ops_conv does per convolution), or NULL where that is A itself. */
static float *prep_kernels(const struct gen_kernels *k, const int64_t *g, int64_t M,
                           const float *A) {
    const int64_t n =
        k && k->conv_prep_work ? k->conv_prep_work(M, g[0], g[1], g[2], g[3], g[4], g[5], g[6]) : 0;
    if (n <= 0) return NULL;
    float *p = make(n, 0);
    k->conv_prep(M, g[0], g[1], g[2], g[3], g[4], g[5], g[6], A, p);
    return p;
}

static void conv_call(const struct gen_kernels *kt, const float *w, const struct call *c) {
    const int64_t *g = c->sh->geo;
    kt->conv_gemm(c->M, w, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[0] * g[1] * g[2],
                  c->x, NULL, 0.0f, c->C, c->N, c->N / g[7], c->work);
}

/* dw (M x K, in B's storage) from dy (C) and the images */
static void dw_call(const struct gen_kernels *kt, const struct call *c) {
    const int64_t *g = c->sh->geo;
    kt->conv_dw(c->M, c->C, c->N / g[7], g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                g[0] * g[1] * g[2], c->x, c->B, c->work);
}

static void gemm_call(const struct gen_kernels *kt, const struct call *c) {
    kt->gemm(c->sh->ta, c->sh->tb, c->M, c->N, c->K, 1.0f, c->A, c->lda, c->B, c->ldb, 0.0f,
             c->C, c->N);
}

static void gen_conv_call(const struct call *c) {
    conv_call(c->kt, c->prep[0] ? c->prep[0] : c->A, c);
}
static void gen_dw_call(const struct call *c) { dw_call(c->kt, c); }
static void gen_gemm_call(const struct call *c) { gemm_call(c->kt, c); }
static void ref_conv_call(const struct call *c) {
    conv_call(c->ref, c->prep[1] ? c->prep[1] : c->A, c);
}
static void ref_dw_call(const struct call *c) { dw_call(c->ref, c); }
static void ref_gemm_call(const struct call *c) { gemm_call(c->ref, c); }

static void blas_call(const struct call *c) {
    cblas_sgemm(CblasRowMajor, c->sh->ta ? CblasTrans : CblasNoTrans,
                c->sh->tb ? CblasTrans : CblasNoTrans, (int)c->M, (int)c->N, (int)c->K, 1.0f,
                c->A, (int)c->lda, c->B, (int)c->ldb, 0.0f, c->C, (int)c->N);
}

/* Seconds per call of f, over n calls. */
static double time_calls(void (*f)(const struct call *), const struct call *c, int64_t n) {
    const double t0 = gen_now();
    for (int64_t r = 0; r < n; r++) f(c);
    return (gen_now() - t0) / (double)n;
}

/* conv: 0 the GEMM on a ready column matrix, 1 conv_gemm, 2 conv_dw. */
static struct result run_shape(const struct gen_kernels *kt, const struct gen_kernels *ref,
                               const struct shape *sh, int nt, int conv) {
    struct call c = {.kt = kt, .ref = ref, .sh = sh};
    gemm_dims(sh, &c.M, &c.N, &c.K);
    const int64_t *g = sh->geo, M = c.M, N = c.N, K = c.K;
    c.A = make(M * K, 1), c.B = make(K * N, 2), c.C = make(M * N, 3);
    c.lda = sh->ta ? M : K, c.ldb = sh->tb ? K : N;
    if (conv) { /* the images, the implicit GEMM's workspace, and B as their im2col */
        c.x = make(g[7] * g[0] * g[1] * g[2], 4);
        int64_t nw = 0;
        for (int t = 0; t < 2; t++) { /* room for either table's conv_gemm or conv_dw */
            const struct gen_kernels *k = t ? (ref ? ref : kt) : kt;
            const int64_t a = k->conv_gemm_work(M, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
            const int64_t b = k->conv_dw_work(M, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
            nw = nw > a ? nw : a, nw = nw > b ? nw : b;
        }
        c.work = make(nw, 0);
        c.prep[0] = prep_kernels(kt, g, M, c.A), c.prep[1] = prep_kernels(ref, g, M, c.A);
        const int64_t P = N / g[7], img = g[0] * g[1] * g[2];
        for (int64_t i = 0; i < g[7]; i++)
            kt->im2col_ld(g[0], g[1], g[2], g[3], g[4], g[5], g[6], N, c.x + i * img, c.B + i * P);
    }
    void (*gen_f)(const struct call *) = conv == 2 ? gen_dw_call : conv ? gen_conv_call : gen_gemm_call;
    void (*ref_f)(const struct call *) =
        !ref ? blas_call : conv == 2 ? ref_dw_call : conv ? ref_conv_call : ref_gemm_call;
    omp_set_num_threads(nt);
    time_calls(gen_f, &c, 1); /* warm the packing buffers and caches */
    const double t1 = time_calls(gen_f, &c, 1);
    const int64_t n = (int64_t)(SAMPLE_S / (t1 > 1e-7 ? t1 : 1e-7)) + 1; /* calls per sample */
    const double fl = 2.0 * (double)M * (double)N * (double)K * 1e-9;
    double tg[REPS], tb[REPS], pg[REPS], pb[REPS]; /* times; GFLOP/s over the next peak */
    for (int r = -1; r < REPS; r++) {
        const double a = time_calls(gen_f, &c, n), pa = peak_sample(nt, SAMPLE_S);
        const double b = time_calls(ref_f, &c, n), pbl = peak_sample(nt, SAMPLE_S);
        if (r >= 0) tg[r] = a, tb[r] = b, pg[r] = fl / a / pa, pb[r] = fl / b / pbl;
    }
    const struct result res = {fl / gen_median(tg, REPS), fl / gen_median(tb, REPS),
                               100 * gen_median(pg, REPS), 100 * gen_median(pb, REPS)};
    free(c.A), free(c.B), free(c.C), free(c.x), free(c.work), free(c.prep[0]), free(c.prep[1]);
    return res;
}

/* ---- one-token products ----------------------------------------------------
 * Decoding a token on two threads, each thread streams half of every
 * weight matrix of the default Transformer (4 layers, width 128) once,
 * as matrix-vector products: per layer the q, k and v rows of its two
 * heads (3 x 64 x 128), half the attention projection (64 x 128), half
 * the MLP (256 x 128, then 64 x 512), 384 KiB; the logits and the KV
 * cache add to that, ~1.9 MB a thread in all. Here each thread runs
 * those products over copies of the layer's share filling a working set
 * of a given size, again and again (the weights stay wherever its caches
 * keep them), and the rate falls where the set outgrows the core's L2. */

#define GEMV_LAYER (3 * 64 * 128 + 64 * 128 + 256 * 128 + 64 * 512) /* floats */

/* One pass of the products over nl layer shares (fp32 at w, or bf16 at
 * wb where w is NULL). */
static void gemv_pass(const float *w, const uint16_t *wb, int64_t nl, const float *x, float *y) {
    static const int64_t rows[6] = {64, 64, 64, 64, 256, 64},
                         cols[6] = {128, 128, 128, 128, 128, 512};
    for (int64_t l = 0; l < nl; l++) {
        int64_t off = l * GEMV_LAYER;
        for (int p = 0; p < 6; p++) {
            if (w)
                gen_gemv(GEN_NOTRANS, rows[p], cols[p], 1.0f, w + off, cols[p], x, 0.0f, y);
            else
                gen_gemv_bf16(rows[p], cols[p], wb + off, cols[p], x, 0.0f, y);
            off += rows[p] * cols[p];
        }
    }
}

/* GB/s a thread of gemv_pass on nt threads at once over sets of `bytes`
 * each (fp32, or its bf16 copy): the median over threads and 7 samples
 * of at least 0.02 s. */
static double gemv_rate(int nt, double bytes, int bf16) {
    const int64_t nl = (int64_t)(bytes / (bf16 ? 2.0 : 4.0) / GEMV_LAYER + 0.5);
    double rate[7 * 64];
    int n = 0;
#pragma omp parallel num_threads(nt)
    {
        float *w = make(nl * GEMV_LAYER, 11 + (unsigned)omp_get_thread_num());
        uint16_t *wb = malloc((size_t)(nl * GEMV_LAYER) * sizeof *wb);
        if (!wb) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            exit(1);
        }
        float *x = make(512, 5), y[512];
        gen_bf16_pack(nl * GEMV_LAYER, w, wb);
        gen_bf16_round(512, x, x);
        gemv_pass(bf16 ? NULL : w, wb, nl, x, y); /* first touch */
        for (int r = 0; r < 7; r++) {
#pragma omp barrier
            int64_t passes = 0;
            const double t0 = gen_now();
            double t;
            do gemv_pass(bf16 ? NULL : w, wb, nl, x, y), passes++;
            while ((t = gen_now() - t0) < 0.02);
#pragma omp critical
            if (n < 7 * 64)
                rate[n++] = (double)passes * nl * GEMV_LAYER * (bf16 ? 2 : 4) / t * 1e-9;
        }
        free(w), free(wb), free(x);
    }
    return gen_median(rate, n);
}

static void gemv_table(int nt) {
    printf("one-token products (a layer's share of the default Transformer on one of two "
           "threads, %d KiB in fp32), %d thread(s) at once, each over its own working set: "
           "GB/s a thread (median of 7 x 0.02 s)\n",
           GEMV_LAYER * 4 / 1024, nt);
    static const double mb[] = {0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 3.2};
    for (size_t i = 0; i < sizeof mb / sizeof mb[0]; i++) {
        const int64_t nl = (int64_t)(mb[i] * 1e6 / 4.0 / GEMV_LAYER + 0.5);
        const double set = (double)(nl * GEMV_LAYER * 4) * 1e-6;
        printf("gemv working set %4.2f MB: fp32 %6.1f GB/s", set, gemv_rate(nt, set * 1e6, 0));
        /* the bf16 copy where --precision bf16 runs (else gen_gemv_bf16's
         * scalar loop, which no sampling takes) */
        if (gen_kernels_bf16() && gen_kernels_bf16_beside())
            printf("   bf16 copy (%4.2f MB) %6.1f GB/s", set / 2, gemv_rate(nt, set * 1e6 / 2, 1));
        printf("\n");
        fflush(stdout);
    }
}

#define USAGE "bench_gemm [--peak | --bf16 | --amx | --gemv] [THREADS]"

int main(int argc, char **argv) {
    const int mode = argc > 1 && argv[1][0] == '-'; /* argv[1] names what to time */
    if (mode && strcmp(argv[1], "--peak") && strcmp(argv[1], "--bf16") &&
        strcmp(argv[1], "--amx") && strcmp(argv[1], "--gemv"))
        bench_refuse("bench_gemm", USAGE, "unknown option", argv[1]);
    if (argc > 2 + mode) bench_refuse("bench_gemm", USAGE, "unexpected argument", argv[2 + mode]);
    const char *count = argc > 1 + mode ? argv[1 + mode] : "2";
    const int threads = (int)bench_int("bench_gemm", USAGE, "THREADS", count, 1, 4096);
    if (mode && !strcmp(argv[1], "--peak")) {
        double p[9];
        for (int r = 0; r < 9; r++) p[r] = peak_sample(threads, 0.1);
        printf("%.1f\n", gen_median(p, 9));
        return 0;
    }
    if (mode && !strcmp(argv[1], "--gemv")) {
        if (threads > 64)
            bench_refuse("bench_gemm", USAGE, "--gemv takes at most 64 threads", count);
        gemv_table(threads);
        return 0;
    }
    const int amx = mode && !strcmp(argv[1], "--amx");
    const int bf16 = amx || (mode && !strcmp(argv[1], "--bf16"));
    const char *isa = bf16 ? NULL : getenv("GEN_ISA");
    if (isa && !*isa) isa = NULL;
    if (isa && !gen_kernels_for(isa))
        bench_refuse("bench_gemm", USAGE, "GEN_ISA names no kernel table of this CPU and build",
                     isa);
    const struct gen_kernels *kt = gen_kernels_for(amx    ? "amx"
                                                   : bf16 ? "avx512bf16"
                                                   : isa  ? isa
                                                          : "avx512");
    const struct gen_kernels *ref = bf16 ? gen_kernels_for("avx512") : NULL;
    if (!kt && !bf16 && !isa) kt = gen_kernels_for("avx2");
    if (!kt || !kt->gemm) {
        printf("bench_gemm: no %s GEMM on this CPU/build\n", amx    ? "AMX-BF16"
                                                             : bf16 ? "AVX512-BF16"
                                                             : isa  ? isa
                                                                    : "AVX-512 or AVX2");
        return 0;
    }
    ymm_peak = !strcmp(kt->name, "avx2");
    printf("table: %s\n", kt->name);
    /* the peak: 0.1 s samples, median of 9, on 1 and on `threads` threads */
    double p1[9], pn[9];
    for (int r = 0; r < 9; r++) p1[r] = peak_sample(1, 0.1), pn[r] = peak_sample(threads, 0.1);
    const double peak1 = gen_median(p1, 9), peakn = gen_median(pn, 9);
    printf("FMA peak (%s, median of 9 x 0.1 s): 1 thread %.1f GFLOP/s; "
           "%d threads %.1f GFLOP/s (%.1f per core)\n",
           __builtin_cpu_supports("avx512f") && !ymm_peak ? "16 zmm accumulators"
                                                          : "12 ymm accumulators",
           peak1, threads, peakn, peakn / threads);
    if (bf16) bf16_peak_line();
    /* libgomp's default waiting spins, which on a busy machine with as many
     * threads as cores loses whole time slices at every barrier */
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("OMP_WAIT_POLICY: %s\n", wait ? wait : "unset (spin, then sleep)");
    printf("%-5s %-26s %-4s %3s %5s %5s %5s %1s  %8s %8s  %6s %6s  %s\n", "model", "shape",
           "kind", "thr", "M", "N", "K", "L", bf16 ? "bf16GF/s" : "gen GF/s",
           bf16 ? "fp32GF/s" : "blasGF/s", bf16 ? "bf16%pk" : "gen %pk", bf16 ? "fp32%pk" : "blas%pk",
           bf16 ? "bf16/fp32 time" : "gen/blas time");
    double ratios[2 * N_SHAPES], large_pk[2 * N_SHAPES], wino_pk[2 * N_SHAPES];
    int n_ratios = 0, n_large = 0, n_wino = 0;
    for (size_t s = 0; s < N_SHAPES; s++) {
        const struct shape *sh = &shapes[s];
        const int nt = sh->threads ? sh->threads : threads;
        int64_t M, N, K;
        gemm_dims(sh, &M, &N, &K);
        /* a convolution's row, then the plain GEMM on its column matrix;
         * where the table's conv_gemm does not take the geometry (no
         * workspace), im2col and that GEMM are what runs */
        const int64_t *g = sh->geo;
        const int implicit = sh->kind == CONV && kt->conv_gemm &&
                             kt->conv_gemm_work(M, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]) > 0;
        for (int conv = implicit ? 1 + bf16 : 0; conv >= 0; conv--) {
            const struct result r = run_shape(kt, ref, sh, nt, conv);
            /* a convolution the table runs by Winograd's minimal filtering
             * does 1/4 to 4/9 of the arithmetic counted here: its rate is the
             * direct one's equivalent, and it is kept out of the share of
             * the peak */
            const int wino =
                conv && gen_kernels_conv_wino(kt, M, g[0], g[1], g[2], g[3], g[4], g[5], g[6]);
            const int large = sh->large && (sh->kind == GEMM || conv); /* what the model runs */
            ratios[n_ratios++] = r.blas / r.gen;
            if (large && !wino) large_pk[n_large++] = r.gen_pk;
            if (large && wino) wino_pk[n_wino++] = r.gen_pk;
            printf("%-5s %-26s %-4s %3d %5lld %5lld %5lld %1s  %8.1f %8.1f  %5.1f%% %5.1f%%  "
                   "%.3f\n",
                   sh->model, sh->what, conv == 2 ? "dw" : wino ? "wino" : conv ? "conv" : "gemm",
                   nt, (long long)M, (long long)N, (long long)K, large ? "L" : "", r.gen, r.blas,
                   r.gen_pk, r.blas_pk, r.blas / r.gen);
            fflush(stdout);
        }
    }
    printf("median %s time over the rows: %.3f\n", bf16 ? "bf16/fp32" : "gen/OpenBLAS",
           gen_median(ratios, n_ratios));
    if (n_large) {
        const double mid = gen_median(large_pk, n_large); /* sorts them */
        printf("gen on the large rows: %.1f%% to %.1f%% of peak, median %.1f%%\n", large_pk[0],
               large_pk[n_large - 1], mid);
    }
    if (n_wino) {
        const double mid = gen_median(wino_pk, n_wino); /* sorts them */
        printf("gen on the large Winograd rows: the direct convolution's arithmetic at %.1f%% to "
               "%.1f%% of peak (median %.1f%%), doing 1/4 to 4/9 of it\n",
               wino_pk[0], wino_pk[n_wino - 1], mid);
    }
    return 0;
}
