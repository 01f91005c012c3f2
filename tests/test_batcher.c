/* test_batcher.c - epoch batches: determinism, every index once per epoch,
 * drop_last, and a restored cursor giving the same batches. */
#include <string.h>

#include "gen/data.h"
#include "testutil.h"

static void run_epochs(struct gen_batcher *b, int epochs, int32_t *log, int64_t *count) {
    int32_t idx[64];
    *count = 0;
    while (gen_batcher_epoch(b) < epochs) {
        int k = gen_batcher_next(b, idx);
        memcpy(log + *count, idx, (size_t)k * sizeof *idx);
        *count += k;
    }
}

static void test_every_index_once(void **state) {
    (void)state;
    const int64_t n = 103;
    struct gen_batcher b;
    assert_int_equal(gen_batcher_init(&b, n, 10, 42, 0), GEN_OK);
    assert_int_equal(gen_batcher_batches_per_epoch(&b), 11);
    int32_t idx[10];
    for (int e = 0; e < 3; e++) {
        int seen[103] = {0};
        int64_t total = 0;
        for (int k = 0; k < 11; k++) {
            assert_int_equal(gen_batcher_epoch(&b), e);
            int got = gen_batcher_next(&b, idx);
            assert_int_equal(got, k < 10 ? 10 : 3);
            for (int i = 0; i < got; i++) seen[idx[i]]++;
            total += got;
        }
        assert_int_equal(total, n);
        for (int i = 0; i < n; i++) assert_int_equal(seen[i], 1);
    }
    assert_int_equal(gen_batcher_epoch(&b), 3);
    gen_batcher_free(&b);
}

static void test_determinism_and_shuffle(void **state) {
    (void)state;
    static int32_t l1[1000], l2[1000], l3[1000];
    int64_t c1, c2, c3;
    struct gen_batcher a, b, c;
    assert_int_equal(gen_batcher_init(&a, 100, 16, 7, 0), GEN_OK);
    assert_int_equal(gen_batcher_init(&b, 100, 16, 7, 0), GEN_OK);
    assert_int_equal(gen_batcher_init(&c, 100, 16, 8, 0), GEN_OK);
    run_epochs(&a, 3, l1, &c1);
    run_epochs(&b, 3, l2, &c2);
    run_epochs(&c, 3, l3, &c3);
    assert_int_equal(c1, 300);
    assert_memory_equal(l1, l2, sizeof(int32_t) * 300);
    assert_memory_not_equal(l1, l3, sizeof(int32_t) * 100);        /* other seed */
    assert_memory_not_equal(l1, l1 + 100, sizeof(int32_t) * 100);  /* other epoch */
    int sorted = 1;
    for (int i = 0; i < 100; i++) sorted &= l1[i] == i;
    assert_false(sorted);
    gen_batcher_free(&a);
    gen_batcher_free(&b);
    gen_batcher_free(&c);
    /* Sequential mode. */
    assert_int_equal(gen_batcher_init(&a, 5, 2, 1, GEN_BATCH_SEQUENTIAL), GEN_OK);
    run_epochs(&a, 2, l1, &c1);
    const int32_t want[10] = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4};
    assert_memory_equal(l1, want, sizeof want);
    gen_batcher_free(&a);
}

static void test_drop_last(void **state) {
    (void)state;
    struct gen_batcher b;
    assert_int_equal(gen_batcher_init(&b, 25, 8, 3, GEN_BATCH_DROP_LAST), GEN_OK);
    assert_int_equal(gen_batcher_batches_per_epoch(&b), 3);
    int32_t idx[8];
    for (int k = 0; k < 9; k++) {
        assert_int_equal(gen_batcher_epoch(&b), k / 3);
        assert_int_equal(gen_batcher_next(&b, idx), 8);
    }
    gen_batcher_free(&b);
    assert_int_equal(gen_batcher_init(&b, 5, 8, 3, GEN_BATCH_DROP_LAST), GEN_ERR_USAGE);
    assert_int_equal(gen_batcher_init(&b, 0, 8, 3, 0), GEN_ERR_USAGE);
    assert_int_equal(gen_batcher_init(&b, 5, 0, 3, 0), GEN_ERR_USAGE);
    /* batch > n without drop_last: one short batch per epoch. */
    assert_int_equal(gen_batcher_init(&b, 5, 8, 3, 0), GEN_OK);
    assert_int_equal(gen_batcher_next(&b, idx), 5);
    assert_int_equal(gen_batcher_epoch(&b), 1);
    gen_batcher_free(&b);
}

static void test_restore_mid_epoch(void **state) {
    (void)state;
    for (int flags = 0; flags <= 1; flags++) {
        struct gen_batcher a, b;
        assert_int_equal(gen_batcher_init(&a, 50, 7, 99, flags), GEN_OK);
        int32_t ia[7], ib[7];
        for (int k = 0; k < 12; k++) gen_batcher_next(&a, ia); /* into epoch 1 */
        int64_t e, p;
        gen_batcher_cursor(&a, &e, &p);
        assert_int_equal(e, 1);
        assert_true(p > 0);
        /* A fresh batcher (new process) restored from the two numbers. */
        assert_int_equal(gen_batcher_init(&b, 50, 7, 99, flags), GEN_OK);
        assert_int_equal(gen_batcher_restore(&b, e, p), GEN_OK);
        for (int k = 0; k < 40; k++) {
            int na = gen_batcher_next(&a, ia), nb = gen_batcher_next(&b, ib);
            assert_int_equal(na, nb);
            assert_memory_equal(ia, ib, (size_t)na * sizeof *ia);
            assert_int_equal(gen_batcher_epoch(&a), gen_batcher_epoch(&b));
        }
        /* Cursors that cannot belong to this batcher. */
        assert_int_equal(gen_batcher_restore(&b, -1, 0), GEN_ERR_FORMAT);
        assert_int_equal(gen_batcher_restore(&b, 0, 3), GEN_ERR_FORMAT);
        assert_int_equal(gen_batcher_restore(&b, 0, 56), GEN_ERR_FORMAT);
        assert_non_null(strstr(gen_last_error(), "data cursor"));
        gen_batcher_free(&a);
        gen_batcher_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_index_once),
        cmocka_unit_test(test_determinism_and_shuffle),
        cmocka_unit_test(test_drop_last),
        cmocka_unit_test(test_restore_mid_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
