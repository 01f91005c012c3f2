/* bench_gemm.c - gen's AVX-512 GEMM against OpenBLAS's cblas_sgemm on the
 * shapes gen's models run: the per-chunk GEMMs of the U-Net's and the
 * DCGAN's convolutions (forward, weight gradient with B transposed, input
 * gradient with A transposed) on one thread, and the Transformer's linear
 * layers on all threads. Prints GFLOP/s of each and gen/OpenBLAS time;
 * each figure is the median of REPS timed runs, the two interleaved.
 *
 *   bench_gemm [threads]     (default 2 for the multi-threaded shapes) */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gen/kernels.h"

#define REPS 15

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *make(int64_t n, unsigned seed) {
    float *x = aligned_alloc(64, (size_t)(n + 16) * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    srand(seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return x;
}

struct shape {
    const char *what;
    int ta, tb;
    int64_t M, N, K;
    int threads; /* 0: the command line's count */
};

static const struct shape shapes[] = {
    {"unet 28x28 32->32 fwd", 0, 0, 32, 784, 288, 1},
    {"unet 28x28 32->32 dW", 0, 1, 32, 288, 784, 1},
    {"unet 28x28 32->32 dcol", 1, 0, 288, 784, 32, 1},
    {"unet 14x14 64->64 fwd", 0, 0, 64, 392, 576, 1},
    {"unet 14x14 64->64 dW", 0, 1, 64, 576, 392, 1},
    {"unet 14x14 64->64 dcol", 1, 0, 576, 392, 64, 1},
    {"unet 14x14 128->64 fwd", 0, 0, 64, 392, 1152, 1},
    {"dcgan 7x7 128->64 convT", 1, 0, 1024, 392, 128, 1},
    {"dcgan 14x14 64->128 s2 fwd", 0, 0, 128, 392, 1024, 1},
    {"tf linear 4096x128->384", 0, 1, 4096, 384, 128, 0},
    {"tf linear 4096x128->512", 0, 1, 4096, 512, 128, 0},
    {"tf linear 4096x512->128", 0, 1, 4096, 128, 512, 0},
    {"tf dW 384x128 over 4096", 1, 0, 384, 128, 4096, 0},
    {"square 512", 0, 0, 512, 512, 512, 0},
};

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const struct gen_kernels *kt = gen_kernels_for("avx512");
    if (!kt || !kt->gemm) {
        printf("bench_gemm: no AVX-512 GEMM on this CPU/build\n");
        return 0;
    }
    printf("%-28s %5s %6s %6s %6s  %9s %9s  %s\n", "shape", "thr", "M", "N", "K", "gen GF/s",
           "blas GF/s", "gen/blas time");
    double ratios[sizeof shapes / sizeof shapes[0]];
    int n_ratios = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const struct shape *sh = &shapes[s];
        const int nt = sh->threads ? sh->threads : threads;
        omp_set_num_threads(nt);
        const int64_t M = sh->M, N = sh->N, K = sh->K;
        float *A = make(M * K, 1), *B = make(K * N, 2), *C = make(M * N, 3);
        const int64_t lda = sh->ta ? M : K, ldb = sh->tb ? K : N;
        double tg[REPS], tb[REPS];
        for (int r = -2; r < REPS; r++) {
            double t0 = now();
            kt->gemm(sh->ta, sh->tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
            double t1 = now();
            cblas_sgemm(CblasRowMajor, sh->ta ? CblasTrans : CblasNoTrans,
                        sh->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                        (int)lda, B, (int)ldb, 0.0f, C, (int)N);
            double t2 = now();
            if (r >= 0) tg[r] = t1 - t0, tb[r] = t2 - t1;
        }
        qsort(tg, REPS, sizeof(double), cmp_double);
        qsort(tb, REPS, sizeof(double), cmp_double);
        const double fl = 2.0 * (double)M * (double)N * (double)K * 1e-9;
        const double g = tg[REPS / 2], b = tb[REPS / 2];
        ratios[n_ratios++] = g / b;
        printf("%-28s %5d %6lld %6lld %6lld  %9.1f %9.1f  %.3f\n", sh->what, nt, (long long)M,
               (long long)N, (long long)K, fl / g, fl / b, g / b);
        free(A);
        free(B);
        free(C);
    }
    qsort(ratios, (size_t)n_ratios, sizeof(double), cmp_double);
    printf("median gen/OpenBLAS time over the shapes: %.3f\n", ratios[n_ratios / 2]);
    return 0;
}
