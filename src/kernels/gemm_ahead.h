/* gemm_ahead.h - private to the AVX-512 GEMMs (gemm_avx512.c, fp32, and
 * gemm_avx512bf16.c, bf16 operands): the lines their micro-kernels fetch
 * into L2 as they run, one every mask + 1 steps, so that what packing
 * reads next comes from L2. Packing reads its source from memory with the
 * multiply-add units idle (on a machine whose copy loop moves 28 GB/s, as
 * long as a sixth of the block's products); fetched during the products
 * before, it comes from L2. The sources: the next block of A; after a
 * slice's last block, the next slice's first block of A and its rows of
 * B; each region rows of `len` lines `ld` bytes apart. */
#ifndef GEN_KERNELS_GEMM_AHEAD_H
#define GEN_KERNELS_GEMM_AHEAD_H

#include <stdint.h>

struct ahead {
    const char *row, *p;
    int64_t ld, rows;
    int len, left, mask, more; /* more: region 1 follows */
    const char *row1;
    int64_t ld1, rows1;
    int len1;
};

/* The next row of a's regions after the line at p (a->p NULL: none). */
static __attribute__((noinline, unused)) const char *ahead_row(struct ahead *a) {
    a->row += a->ld, a->left = a->len;
    if (--a->rows == 0) {
        if (!a->more) return a->p = NULL;
        a->row = a->row1, a->ld = a->ld1, a->rows = a->rows1;
        a->len = a->left = a->len1, a->more = 0;
    }
    return a->p = a->row;
}

/* op(A)'s block [i0, i0 + mc) x [p0, p0 + kc) as a region: stored M x K
 * (ta 0), mc rows of kc floats; K x M, kc rows of mc. */
static inline void ahead_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t p0,
                           int64_t mc, int64_t kc, const char **row, int64_t *ld, int64_t *rows,
                           int *len) {
    *row = (const char *)(ta ? A + p0 * lda + i0 : A + i0 * lda + p0);
    *ld = lda * (int64_t)sizeof(float);
    *rows = ta ? kc : mc;
    *len = (int)(((ta ? mc : kc) + 15) / 16);
}

/* What packing reads after the block of rows [i0, i0 + mc) of A in the
 * slice [p0, p0 + kc) of K (slices kslice deep, blocks of rows mcap
 * tall; B, when not NULL, is packed a slice at a time, columns [j0, j0 +
 * nc)), spread over the `steps` steps of the block's micro-kernels. Its p
 * is NULL where there is nothing to fetch. */
static inline struct ahead ahead_plan(int ta, int tb, const float *A, int64_t lda,
                                      const float *B, int64_t ldb, int64_t M, int64_t K,
                                      int64_t mcap, int64_t i0, int64_t p0, int64_t kc,
                                      int64_t kslice, int64_t j0, int64_t nc, int64_t steps) {
    struct ahead next = {0};
    const int64_t p1 = p0 + kslice, kc1 = K - p1 < kslice ? K - p1 : kslice;
    if (i0 + mcap < M) {
        ahead_a(ta, A, lda, i0 + mcap, p0, M - i0 - mcap < mcap ? M - i0 - mcap : mcap, kc,
                &next.row, &next.ld, &next.rows, &next.len);
    } else if (p1 < K) {
        ahead_a(ta, A, lda, 0, p1, M < mcap ? M : mcap, kc1, &next.row, &next.ld, &next.rows,
                &next.len);
        if (B) { /* B stored K x N (tb 0) or N x K */
            next.more = 1;
            next.row1 = (const char *)(tb ? B + j0 * ldb + p1 : B + p1 * ldb + j0);
            next.ld1 = ldb * (int64_t)sizeof(float);
            next.rows1 = tb ? nc : kc1;
            next.len1 = (int)(((tb ? kc1 : nc) + 15) / 16);
        }
    }
    if (next.rows > 0) {
        const int64_t lines = next.rows * next.len + next.more * next.rows1 * next.len1;
        next.p = next.row, next.left = next.len;
        next.mask = steps >= 8 * lines   ? 7
                    : steps >= 4 * lines ? 3
                    : steps >= 2 * lines ? 1
                                         : 0;
    }
    return next;
}

#endif
