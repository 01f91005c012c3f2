/* bench_ops.c - the core's speed, measured side by side in one run:
 *
 *   kernels  element-wise kernels of the table in force on arrays far larger
 *            than L2, as a fraction of a plain stream-copy loop measured in
 *            the same run; SIMD vs scalar softmax / layernorm rows of width
 *            128..1024 (one thread, rows resident in L2, so the ratio is the
 *            kernels' and not the memory's).
 *   conv     conv2d forward + backward of the diffusion U-Net's 3x3 layers
 *            as GFLOP/s against OpenBLAS's cblas_sgemm on a square GEMM of
 *            the same FLOP count (gen's convolutions use gen's own AVX-512
 *            GEMM where the CPU has it, so they can beat this yardstick).
 *   ops      forward + backward (autograd, through the op API) of the ops
 *            that scripts/bench_ops.py times in PyTorch: "op NAME MS" lines,
 *            MS the median of REPS steps, for scripts/bench-ops.sh to pair.
 *
 *   bench_ops [kernels|conv|ops|all] [reps] [op-name substring]
 * Threads: GEN_BENCH_THREADS (default 2) for OpenMP and OpenBLAS.
 * GEN_BENCH_PRECISION=bf16: the products of --precision bf16 (the ops
 * side by side with a run without it, as gen's bf16 against its fp32). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen/core.h"
#include "gen/kernels.h"
#include "gen/tensor.h"

#include "bench_args.h"

static int reps = 7;

static float *make(int64_t n, float lo, float hi, uint64_t seed) {
    float *x = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
    if (!x) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(1);
    }
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    gen_rng_fill_uniform(&r, x, n, lo, hi);
    return x;
}

/* Median seconds of `reps` calls of f(arg) after one warm-up call. */
static double time_median(void (*f)(void *), void *arg) {
    double t[64];
    f(arg);
    for (int r = 0; r < reps; r++) {
        const double t0 = gen_now();
        f(arg);
        t[r] = gen_now() - t0;
    }
    return gen_median(t, reps);
}

/* ---- kernels ------------------------------------------------------------- */

struct ew_arg {
    const struct gen_kernels *k;
    int op;
    int64_t n;
    const float *a, *b;
    float *y;
};

/* The yardstick: a plain read-one-write-one loop (normal stores, as the
 * kernels use), split in fixed halves over the threads. */
__attribute__((noinline)) static void stream_copy(int64_t n, const float *a, float *y) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a[i];
}

enum { EW_COPY, EW_MEMCPY, EW_ADD, EW_MUL, EW_AXPY, EW_RELU, EW_GELU, EW_GELU_BWD, EW_SILU,
       EW_SILU_BWD, EW_EXP, EW_SIGMOID, EW_TANH, EW_COUNT };
static const char *ew_name[EW_COUNT] = {"copy loop", "memcpy", "add", "mul", "axpy", "relu",
                                        "gelu", "gelu_bwd", "silu", "silu_bwd", "exp", "sigmoid",
                                        "tanh"};
static const int ew_streams[EW_COUNT] = {2, 2, 3, 3, 3, 2, 2, 4, 2, 4, 2, 2, 2};

static void run_ew(void *p) {
    const struct ew_arg *e = p;
    const struct gen_kernels *k = e->k;
    switch (e->op) {
    case EW_COPY: stream_copy(e->n, e->a, e->y); break;
    case EW_MEMCPY: {
        const int nt = omp_get_max_threads();
#pragma omp parallel for schedule(static)
        for (int c = 0; c < nt; c++) {
            const int64_t lo = e->n * c / nt, hi = e->n * (c + 1) / nt;
            memcpy(e->y + lo, e->a + lo, (size_t)(hi - lo) * sizeof(float));
        }
        break;
    }
    case EW_ADD: k->add(e->n, e->a, e->b, e->y); break;
    case EW_MUL: k->mul(e->n, e->a, e->b, e->y); break;
    case EW_AXPY: k->axpy(e->n, 0.5f, e->a, e->y); break;
    case EW_RELU: k->relu_fwd(e->n, e->a, e->y); break;
    case EW_GELU: k->gelu_fwd(e->n, e->a, e->y); break;
    case EW_GELU_BWD: k->gelu_bwd(e->n, e->a, e->b, e->y); break;
    case EW_SILU: k->silu_fwd(e->n, e->a, e->y); break;
    case EW_SILU_BWD: k->silu_bwd(e->n, e->a, e->b, e->y); break;
    case EW_EXP: k->exp_fwd(e->n, e->a, e->y); break;
    case EW_SIGMOID: k->sigmoid_fwd(e->n, e->a, e->y); break;
    case EW_TANH: k->tanh_fwd(e->n, e->a, e->y); break;
    default: break;
    }
}

struct row_arg {
    const struct gen_kernels *k;
    int which; /* 0 softmax fwd, 1 softmax bwd, 2 layernorm fwd, 3 layernorm bwd */
    int64_t rows, cols, passes;
    const float *x, *gamma, *beta, *dy;
    float *y, *dx, *mean, *rstd;
};

static void run_rows(void *p) {
    const struct row_arg *r = p;
    for (int64_t i = 0; i < r->passes; i++) {
        switch (r->which) {
        case 0: r->k->softmax_fwd(r->rows, r->cols, r->x, r->y); break;
        case 1: r->k->softmax_bwd(r->rows, r->cols, r->y, r->dy, r->dx); break;
        case 2:
            r->k->layernorm_fwd(r->rows, r->cols, r->x, r->gamma, r->beta, 1e-5f, r->y, r->mean,
                                r->rstd);
            break;
        default:
            r->k->layernorm_bwd(r->rows, r->cols, r->x, r->gamma, r->mean, r->rstd, r->dy, r->dx,
                                NULL, NULL);
            break;
        }
    }
}

static void bench_kernels(int threads) {
    const struct gen_kernels *k = gen_kernels();
    const int64_t n = (int64_t)16 << 20;
    float *a = make(n, -4, 4, 1), *b = make(n, -4, 4, 2), *y = make(n, 0, 1, 3);
    printf("== element-wise, %lld floats (%.0f MiB per array), table %s, %d threads, median of "
           "%d\n",
           (long long)n, (double)n * 4 / (1 << 20), k->name, threads, reps);
    double copy_gbs = 0;
    for (int op = 0; op < EW_COUNT; op++) {
        struct ew_arg e = {k, op, n, a, b, y};
        const double gbs = ew_streams[op] * (double)n * 4 / time_median(run_ew, &e) / 1e9;
        if (op == EW_COPY) copy_gbs = gbs;
        printf("ew %-10s %7.2f GB/s  %5.0f %% of copy loop\n", ew_name[op], gbs,
               100 * gbs / copy_gbs);
    }
    free(a), free(b), free(y);

    /* Rows resident in L2: 64 Ki floats per array (4 arrays = 1 MiB). */
    const struct gen_kernels *sc = gen_kernels_for("scalar");
    const int64_t m = (int64_t)1 << 16;
    float *x = make(m, -4, 4, 4), *dy = make(m, -1, 1, 5), *yy = make(m, 0, 1, 6);
    float *dx = make(m, 0, 0, 7), *mean = make(m, 0, 0, 8), *rstd = make(m, 0, 0, 9);
    float *gamma = make(1024, 0.5f, 1.5f, 10), *beta = make(1024, -0.5f, 0.5f, 11);
    omp_set_num_threads(1);
    printf("\n== rows, 1 thread, %lld floats per pass (L2-resident), %s vs scalar\n",
           (long long)m, k->name);
    static const char *rname[4] = {"softmax", "softmax_bwd", "layernorm", "layernorm_bwd"};
    for (int which = 0; which < 4; which++)
        for (int64_t cols = 128; cols <= 1024; cols *= 2) {
            struct row_arg r = {sc, which, m / cols, cols, 8, x, gamma, beta, dy, yy, dx, mean, rstd};
            if (which == 1 || which == 3) run_rows(&(struct row_arg){sc, which - 1, m / cols, cols, 1,
                                                                    x, gamma, beta, dy, yy, dx,
                                                                    mean, rstd});
            const double ts = time_median(run_rows, &r);
            r.k = k;
            const double tv = time_median(run_rows, &r);
            printf("row %-13s C=%-5lld scalar %7.3f ms  %s %7.3f ms  speed-up %5.2fx\n",
                   rname[which], (long long)cols, 1e3 * ts / 8, k->name, 1e3 * tv / 8, ts / tv);
        }
    omp_set_num_threads(threads);
    free(x), free(dy), free(yy), free(dx), free(mean), free(rstd), free(gamma), free(beta);
}

/* ---- ops through the API ------------------------------------------------- */

/* One op under test: inputs (all differentiated), a forward, and the
 * upstream gradient used for backward. */
#define MAX_IN 5
struct op_case {
    const char *name;
    int n_in;
    int ndim[MAX_IN];
    int64_t shape[MAX_IN][4];
    struct gen_tensor *(*fwd)(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c);
    int64_t i0, i1; /* op parameters (stride, pad / heads, causal / groups) */
    double flops;   /* forward + backward, for GFLOP/s (0: not printed) */
};

struct op_run {
    const struct op_case *c;
    struct gen_ctx g;
    float *data[MAX_IN];
    float *dout;
    int64_t n_out;
};

static int64_t numel_of(int ndim, const int64_t *s) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= s[i];
    return n;
}

static void op_step(void *p) {
    struct op_run *r = p;
    struct gen_ctx *g = &r->g;
    gen_ctx_reset(g);
    struct gen_tensor *in[MAX_IN];
    for (int i = 0; i < r->c->n_in; i++) {
        in[i] = gen_tensor_wrap(g, r->data[i], r->c->ndim[i], r->c->shape[i]);
        in[i]->requires_grad = 1;
    }
    struct gen_tensor *y = r->c->fwd(g, in, r->c);
    GEN_ASSERT(gen_numel(y) == r->n_out);
    gen_backward_seed(g, y, r->dout);
}

/* Median ms of one forward + backward step of case c. */
static double op_time(const struct op_case *c) {
    struct op_run r = {.c = c};
    gen_ctx_init(&r.g);
    for (int i = 0; i < c->n_in; i++)
        r.data[i] = make(numel_of(c->ndim[i], c->shape[i]), i ? -0.2f : -1.0f, i ? 0.2f : 1.0f,
                         (uint64_t)(100 + i));
    /* Output size from one forward without grad. */
    gen_no_grad_begin(&r.g);
    struct gen_tensor *in[MAX_IN];
    for (int i = 0; i < c->n_in; i++)
        in[i] = gen_tensor_wrap(&r.g, r.data[i], c->ndim[i], c->shape[i]);
    r.n_out = gen_numel(c->fwd(&r.g, in, c));
    gen_no_grad_end(&r.g);
    r.dout = make(r.n_out, -1, 1, 99);
    const double ms = 1e3 * time_median(op_step, &r);
    for (int i = 0; i < c->n_in; i++) free(r.data[i]);
    free(r.dout);
    gen_ctx_free(&r.g);
    return ms;
}

static struct gen_tensor *f_add(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c) {
    (void)c;
    return gen_add(g, in[0], in[1]);
}
static struct gen_tensor *f_mul(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c) {
    (void)c;
    return gen_mul(g, in[0], in[1]);
}
static struct gen_tensor *f_gelu(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c) {
    (void)c;
    return gen_gelu(g, in[0]);
}
static struct gen_tensor *f_silu(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c) {
    (void)c;
    return gen_silu(g, in[0]);
}
static struct gen_tensor *f_softmax(struct gen_ctx *g, struct gen_tensor **in,
                                    const struct op_case *c) {
    (void)c;
    return gen_softmax(g, in[0]);
}
static struct gen_tensor *f_layernorm(struct gen_ctx *g, struct gen_tensor **in,
                                      const struct op_case *c) {
    (void)c;
    return gen_layernorm(g, in[0], in[1], in[2], 1e-5f);
}
static struct gen_tensor *f_groupnorm(struct gen_ctx *g, struct gen_tensor **in,
                                      const struct op_case *c) {
    return gen_groupnorm(g, in[0], c->i0, in[1], in[2], 1e-5f);
}
static struct gen_tensor *f_groupnorm_silu(struct gen_ctx *g, struct gen_tensor **in,
                                           const struct op_case *c) {
    return gen_groupnorm_silu(g, in[0], c->i0, in[1], in[2], 1e-5f);
}
static struct gen_tensor *f_conv(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c) {
    return gen_conv2d(g, in[0], in[1], in[2], (int)c->i0, (int)c->i1);
}
static struct gen_tensor *f_convt(struct gen_ctx *g, struct gen_tensor **in,
                                  const struct op_case *c) {
    return gen_conv_transpose2d(g, in[0], in[1], in[2], (int)c->i0, (int)c->i1);
}
static struct gen_tensor *f_linear(struct gen_ctx *g, struct gen_tensor **in,
                                   const struct op_case *c) {
    (void)c;
    return gen_linear(g, in[0], in[1], in[2]);
}
static struct gen_tensor *f_mlp(struct gen_ctx *g, struct gen_tensor **in,
                                const struct op_case *c) {
    (void)c;
    return gen_mlp(g, in[0], in[1], in[2], in[3], in[4]);
}
static struct gen_tensor *f_attn(struct gen_ctx *g, struct gen_tensor **in, const struct op_case *c) {
    return gen_attention(g, in[0], c->i0, (int)c->i1);
}

/* conv2d fwd + bwd FLOPs: three GEMMs of 2 Cout P K each per image. */
static double conv_flops(int64_t N, int64_t Cin, int64_t Cout, int64_t OH, int64_t OW, int64_t KH,
                         int64_t KW) {
    return 3.0 * 2.0 * (double)N * (double)Cout * (double)(OH * OW) * (double)(Cin * KH * KW);
}

/* The same shapes as scripts/bench_ops.py (keep the two in step). */
static const struct op_case op_cases[] = {
    {"add 64x64x32x32", 2, {4, 4}, {{64, 64, 32, 32}, {64, 64, 32, 32}}, f_add, 0, 0, 0},
    {"mul 64x64x32x32", 2, {4, 4}, {{64, 64, 32, 32}, {64, 64, 32, 32}}, f_mul, 0, 0, 0},
    {"gelu 64x64x32x32", 1, {4}, {{64, 64, 32, 32}}, f_gelu, 0, 0, 0},
    {"silu 64x64x32x32", 1, {4}, {{64, 64, 32, 32}}, f_silu, 0, 0, 0},
    {"softmax 16384x128", 1, {2}, {{16384, 128}}, f_softmax, 0, 0, 0},
    {"layernorm 4096x256", 3, {2, 1, 1}, {{4096, 256}, {256}, {256}}, f_layernorm, 0, 0, 0},
    {"groupnorm 64x64x14x14 G8", 3, {4, 1, 1}, {{64, 64, 14, 14}, {64}, {64}}, f_groupnorm, 8, 0, 0},
    {"groupnorm_silu 64x64x14x14 G8", 3, {4, 1, 1}, {{64, 64, 14, 14}, {64}, {64}},
     f_groupnorm_silu, 8, 0, 0},
    {"conv3x3 64x32x28x28", 3, {4, 4, 1}, {{64, 32, 28, 28}, {32, 32, 3, 3}, {32}}, f_conv, 1, 1,
     0},
    {"conv3x3 64x64x14x14", 3, {4, 4, 1}, {{64, 64, 14, 14}, {64, 64, 3, 3}, {64}}, f_conv, 1, 1,
     0},
    {"conv3x3s2 32->32 28->14", 3, {4, 4, 1}, {{64, 32, 28, 28}, {32, 32, 3, 3}, {32}}, f_conv, 2,
     1, 0},
    {"conv3x3s2 64->64 14->7", 3, {4, 4, 1}, {{64, 64, 14, 14}, {64, 64, 3, 3}, {64}}, f_conv, 2, 1,
     0},
    {"convT4x4s2 128->64 7->14", 3, {4, 4, 1}, {{64, 128, 7, 7}, {128, 64, 4, 4}, {64}}, f_convt, 2,
     1, 0},
    {"convT4x4s2 64->1 14->28", 3, {4, 4, 1}, {{64, 64, 14, 14}, {64, 1, 4, 4}, {1}}, f_convt, 2, 1,
     0},
    {"conv4x4s2 1->64 28->14", 3, {4, 4, 1}, {{64, 1, 28, 28}, {64, 1, 4, 4}, {64}}, f_conv, 2, 1,
     0},
    {"conv4x4s2 64->128 14->7", 3, {4, 4, 1}, {{64, 64, 14, 14}, {128, 64, 4, 4}, {128}}, f_conv, 2,
     1, 0},
    {"linear 128x784->400", 3, {2, 2, 1}, {{128, 784}, {400, 784}, {400}}, f_linear, 0, 0, 0},
    {"attention B32 T128 C128 H4", 1, {3}, {{32, 128, 384}}, f_attn, 4, 1, 0},
    {"mlp 4096x128->512->128", 5, {2, 2, 1, 2, 1}, {{4096, 128}, {512, 128}, {512}, {128, 512}, {128}},
     f_mlp, 0, 0, 0},
};
#define N_OP_CASES ((int)(sizeof op_cases / sizeof op_cases[0]))

static void bench_ops(const char *only) {
    for (int i = 0; i < N_OP_CASES; i++) {
        if (only && !strstr(op_cases[i].name, only)) continue;
        printf("op %s\t%.4f\n", op_cases[i].name, op_time(&op_cases[i]));
        fflush(stdout);
    }
}

/* ---- conv against GEMM ---------------------------------------------------- */

struct gemm_arg {
    int64_t n;
    const float *a, *b;
    float *c;
};

static void run_gemm(void *p) {
    const struct gemm_arg *e = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)e->n, (int)e->n, (int)e->n, 1.0f,
                e->a, (int)e->n, e->b, (int)e->n, 0.0f, e->c, (int)e->n);
}

static void bench_conv(int threads) {
    printf("\n== conv2d 3x3 s1 p1 forward+backward (x, w, b grads) vs square cblas_sgemm of the same "
           "FLOPs, %d threads, median of %d\n",
           threads, reps);
    for (int i = 0; i < N_OP_CASES; i++) {
        if (strncmp(op_cases[i].name, "conv3x3 ", 8) != 0) continue;
        struct op_case c = op_cases[i];
        const int64_t *xs = c.shape[0], *ws = c.shape[1];
        c.flops = conv_flops(xs[0], xs[1], ws[0], xs[2], xs[3], ws[2], ws[3]);
        const int64_t n = (int64_t)llround(cbrt(c.flops / 2.0));
        struct gemm_arg e = {n, make(n * n, -1, 1, 1), make(n * n, -1, 1, 2), make(n * n, 0, 0, 3)};
        const double tg = time_median(run_gemm, &e);
        const double tc = 1e-3 * op_time(&c);
        const double gf_g = 2.0 * (double)n * (double)n * (double)n / tg / 1e9;
        const double gf_c = c.flops / tc / 1e9;
        printf("conv %-22s %.2f GFLOP  %7.2f ms  %6.1f GFLOP/s | sgemm %lld^3 %7.2f ms  %6.1f "
               "GFLOP/s | conv/sgemm %3.0f %%\n",
               c.name, c.flops / 1e9, 1e3 * tc, gf_c, (long long)n, 1e3 * tg, gf_g,
               100 * gf_c / gf_g);
        free((void *)e.a), free((void *)e.b), free(e.c);
    }
}

#define USAGE "bench_ops [all | kernels | conv | ops] [REPS (1-64)] [OP-NAME SUBSTRING]"

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    if (strcmp(what, "all") && strcmp(what, "kernels") && strcmp(what, "conv") &&
        strcmp(what, "ops"))
        bench_refuse("bench_ops", USAGE, "unknown part", what);
    if (argc > 2) reps = (int)bench_int("bench_ops", USAGE, "REPS", argv[2], 1, 64);
    if (argc > 4) bench_refuse("bench_ops", USAGE, "unexpected argument", argv[4]);
    const char *env = getenv("GEN_BENCH_THREADS");
    const int threads = env && atoi(env) > 0 ? atoi(env) : 2;
    gen_threads_init(threads);
    const char *prec = getenv("GEN_BENCH_PRECISION");
    if (prec && strcmp(prec, "fp32") != 0 &&
        (strcmp(prec, "bf16") != 0 || !gen_kernels_set_precision(GEN_PRECISION_BF16))) {
        fprintf(stderr, "bench_ops: GEN_BENCH_PRECISION=%s: %s\n", prec,
                strcmp(prec, "bf16") != 0 ? "fp32 or bf16" : gen_last_error());
        return 2;
    }
    const int all = strcmp(what, "all") == 0;
    if (all || strcmp(what, "kernels") == 0) bench_kernels(threads);
    if (all || strcmp(what, "conv") == 0) bench_conv(threads);
    if (all || strcmp(what, "ops") == 0) bench_ops(argc > 3 ? argv[3] : NULL);
    return 0;
}
