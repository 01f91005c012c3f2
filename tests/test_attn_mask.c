/* test_attn_mask.c - what causal attention (src/core/ops_attn.c) relies on
 * to make one softmax call per (batch, head) instead of one per row: in
 * every kernel table, a row whose future columns are masked (-inf scores
 * forward, zero dP backward) gives bit for bit what the row cut short to
 * its first t + 1 columns gives, and exact +0 in the masked columns. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/kernels.h"

static const char *const isas[] = {"scalar", "avx2", "avx512"};

/* Rows of T columns, causal row t for t = 0..T-1: T crosses the 8- and
 * 16-lane vectors, so the cut row's last vector is partial or whole. */
static void masked_rows(const struct gen_kernels *k, int64_t T, uint64_t seed) {
    float *s = malloc((size_t)T * sizeof(float)), *dp = malloc((size_t)T * sizeof(float));
    float *p_cut = malloc((size_t)T * sizeof(float)), *p_full = malloc((size_t)T * sizeof(float));
    float *ds_cut = calloc((size_t)T, sizeof(float)), *ds_full = calloc((size_t)T, sizeof(float));
    for (int64_t t = 0; t < T; t++) {
        tu_fill_uniform(s, T, -8.0f, 8.0f, seed + (uint64_t)t);
        tu_fill_uniform(dp, T, -1.0f, 1.0f, seed + 1000 + (uint64_t)t);
        k->softmax_fwd(1, t + 1, s, p_cut);
        for (int64_t j = t + 1; j < T; j++) s[j] = -INFINITY, dp[j] = 0.0f;
        k->softmax_fwd(1, T, s, p_full);
        memset(ds_cut, 0, (size_t)T * sizeof(float));
        memset(ds_full, 0, (size_t)T * sizeof(float));
        k->softmax_bwd(1, t + 1, p_cut, dp, ds_cut);
        k->softmax_bwd(1, T, p_full, dp, ds_full);
        if (memcmp(p_cut, p_full, (size_t)(t + 1) * sizeof(float)) ||
            memcmp(ds_cut, ds_full, (size_t)(t + 1) * sizeof(float)))
            fprintf(stderr, "  %s: T %lld, row %lld differs from the cut row\n", k->name,
                    (long long)T, (long long)t);
        assert_memory_equal(p_cut, p_full, (size_t)(t + 1) * sizeof(float));
        assert_memory_equal(ds_cut, ds_full, (size_t)(t + 1) * sizeof(float));
        for (int64_t j = t + 1; j < T; j++) {
            assert_true(p_full[j] == 0.0f && !signbit(p_full[j]));
            assert_true(ds_full[j] == 0.0f && !signbit(ds_full[j]));
        }
    }
    free(s), free(dp), free(p_cut), free(p_full), free(ds_cut), free(ds_full);
}

static void test_masked_softmax(void **state) {
    (void)state;
    static const int64_t lengths[] = {1, 2, 7, 9, 16, 17, 33, 128};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        const struct gen_kernels *k = gen_kernels_for(isas[i]);
        if (!k) {
            fprintf(stderr, "  (%s: not on this CPU/build, skipped)\n", isas[i]);
            continue;
        }
        for (size_t n = 0; n < sizeof lengths / sizeof lengths[0]; n++)
            masked_rows(k, lengths[n], 100 * n + i);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masked_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
