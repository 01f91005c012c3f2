/* bench_kernels.c - throughput of the kernel tables on arrays far larger
 * than the caches: memcpy bandwidth as the yardstick, then element-wise
 * kernels (GB/s moved, and as a fraction of memcpy) and row kernels
 * (softmax, layernorm at widths 128..1024, with the SIMD/scalar speed-up),
 * per ISA, on 1 and 2 threads. Each figure is the median of REPS runs.
 *
 *   bench_kernels [n_floats]      (default 16M) */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/core.h"
#include "gen/kernels.h"

#include "bench_args.h"

#define REPS 7

static float *make(int64_t n, float lo, float hi, unsigned seed) {
    float *x = aligned_alloc(64, (size_t)n * sizeof(float));
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    srand(seed);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return x;
}

enum ew { EW_ADD, EW_MUL, EW_GELU, EW_SILU, EW_EXP, EW_COUNT };
static const char *ew_name[EW_COUNT] = {"add", "mul", "gelu", "silu", "exp"};
static const int ew_streams[EW_COUNT] = {3, 3, 2, 2, 2}; /* arrays read + written */

static void run_ew(const struct gen_kernels *k, enum ew op, int64_t n, const float *a,
                   const float *b, float *y) {
    switch (op) {
    case EW_ADD: k->add(n, a, b, y); break;
    case EW_MUL: k->mul(n, a, b, y); break;
    case EW_GELU: k->gelu_fwd(n, a, y); break;
    case EW_SILU: k->silu_fwd(n, a, y); break;
    case EW_EXP: k->exp_fwd(n, a, y); break;
    default: break;
    }
}

int main(int argc, char **argv) {
    const char *usage = "bench_kernels [FLOATS]";
    if (argc > 2) bench_refuse("bench_kernels", usage, "unexpected argument", argv[2]);
    const int64_t most = (int64_t)1 << 30;
    const int64_t n = argc > 1 ? bench_int("bench_kernels", usage, "FLOATS", argv[1], 1024, most)
                               : (int64_t)16 << 20;
    const char *isas[3] = {"scalar", "avx2", "avx512"};
    const struct gen_kernels *ks[3];
    for (int i = 0; i < 3; i++) ks[i] = gen_kernels_for(isas[i]);

    float *a = make(n, -4, 4, 1), *b = make(n, -4, 4, 2), *y = make(n, 0, 1, 3);
    float *mean = malloc((size_t)n * sizeof(float)), *rstd = malloc((size_t)n * sizeof(float));
    float *gamma = make(1024, 0.5f, 1.5f, 4), *beta = make(1024, -0.5f, 0.5f, 5);
    double t[REPS];
    printf("gen kernel benchmark: %lld floats (%.0f MiB per array), median of %d\n",
           (long long)n, (double)n * 4 / (1 << 20), REPS);

    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        printf("\n== %d thread%s ==\n", threads, threads > 1 ? "s" : "");

        for (int r = 0; r < REPS; r++) {
            const double t0 = gen_now();
#pragma omp parallel for schedule(static)
            for (int64_t c = 0; c < threads; c++) {
                const int64_t lo = n * c / threads, hi = n * (c + 1) / threads;
                memcpy(y + lo, a + lo, (size_t)(hi - lo) * sizeof(float));
            }
            t[r] = gen_now() - t0;
        }
        const double copy_gbs = 2.0 * (double)n * 4 / gen_median(t, REPS) / 1e9;
        printf("memcpy: %.2f GB/s (read + write)\n\n", copy_gbs);

        printf("%-6s", "kernel");
        for (int i = 0; i < 3; i++)
            if (ks[i]) printf(" | %-7s GB/s  of-copy", isas[i]);
        printf(" | avx512/scalar\n");
        for (int op = 0; op < EW_COUNT; op++) {
            double gbs[3] = {0, 0, 0};
            printf("%-6s", ew_name[op]);
            for (int i = 0; i < 3; i++) {
                if (!ks[i]) continue;
                run_ew(ks[i], (enum ew)op, n, a, b, y); /* warm */
                for (int r = 0; r < REPS; r++) {
                    const double t0 = gen_now();
                    run_ew(ks[i], (enum ew)op, n, a, b, y);
                    t[r] = gen_now() - t0;
                }
                gbs[i] = ew_streams[op] * (double)n * 4 / gen_median(t, REPS) / 1e9;
                printf(" | %7.2f GB/s  %5.2f  ", gbs[i], gbs[i] / copy_gbs);
            }
            if (ks[2]) printf(" | %6.2fx", gbs[2] / gbs[0]);
            printf("\n");
        }

        printf("\nrows of width C over the whole array (ms per pass; speed-up vs scalar)\n");
        printf("%-10s %5s", "kernel", "C");
        for (int i = 0; i < 3; i++)
            if (ks[i]) printf(" | %-8s ms", isas[i]);
        printf(" | avx2/sc | avx512/sc\n");
        for (int which = 0; which < 2; which++)
            for (int64_t cols = 128; cols <= 1024; cols *= 2) {
                const int64_t rows = n / cols;
                double ms[3] = {0, 0, 0};
                printf("%-10s %5lld", which ? "layernorm" : "softmax", (long long)cols);
                for (int i = 0; i < 3; i++) {
                    if (!ks[i]) continue;
                    for (int r = -1; r < REPS; r++) {
                        const double t0 = gen_now();
                        if (which)
                            ks[i]->layernorm_fwd(rows, cols, a, gamma, beta, 1e-5f, y, mean, rstd);
                        else
                            ks[i]->softmax_fwd(rows, cols, a, y);
                        if (r >= 0) t[r] = gen_now() - t0;
                    }
                    ms[i] = 1e3 * gen_median(t, REPS);
                    printf(" | %8.2f ms", ms[i]);
                }
                if (ks[1]) printf(" | %6.2fx", ms[0] / ms[1]);
                if (ks[2]) printf(" | %6.2fx", ms[0] / ms[2]);
                printf("\n");
            }
    }
    free(a), free(b), free(y), free(mean), free(rstd), free(gamma), free(beta);
    return 0;
}
