/* test_idx.c - IDX files (raw and gzip; good, truncated, corrupt, absurd)
 * and MNIST-format directories. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "gen/data.h"
#include "gen/io.h"
#include "testutil.h"

static void write_gz(const char *path, const void *b, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n) assert_int_equal(gzwrite(g, b, (unsigned)n), (int)n);
    gzclose(g);
}

/* An IDX image of (rank, dims) bytes with payload i*7 % 256; plus `extra`. */
static uint8_t *make_idx(int rank, const uint32_t *dims, size_t extra, size_t *n) {
    size_t payload = 1;
    for (int i = 0; i < rank; i++) payload *= dims[i];
    *n = 4 + 4 * (size_t)rank + payload + extra;
    uint8_t *b = calloc(1, *n);
    b[2] = 0x08;
    b[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    for (size_t i = 0; i < payload + extra; i++) b[4 + 4 * (size_t)rank + i] = (uint8_t)(i * 7);
    return b;
}

static void expect_error(const char *path, const char *phrase) {
    struct gen_idx x;
    enum gen_status st = gen_idx_read(path, &x);
    if (st == GEN_OK) fail_msg("%s: expected an error containing '%s'", path, phrase);
    assert_null(x.data);
    const char *msg = gen_last_error();
    if (strncmp(msg, path, strlen(path)) != 0 || !strstr(msg, phrase) || strchr(msg, '\n'))
        fail_msg("message '%s' should start with '%s' and contain '%s'", msg, path, phrase);
}

static void test_good_raw_and_gz(void **state) {
    (void)state;
    const uint32_t dims[3] = {5, 3, 4};
    size_t n;
    uint8_t *b = make_idx(3, dims, 0, &n);
    tu_write_file(tu_tmp_path("a.idx"), b, n);
    write_gz(tu_tmp_path("a.idx.gz"), b, n);
    /* A compressed file without .gz in its name is still detected. */
    write_gz(tu_tmp_path("b-idx3-ubyte"), b, n);
    const char *names[] = {"a.idx", "a.idx.gz", "b-idx3-ubyte"};
    for (int k = 0; k < 3; k++) {
        struct gen_idx x;
        assert_int_equal(gen_idx_read(tu_tmp_path(names[k]), &x), GEN_OK);
        assert_int_equal(x.rank, 3);
        assert_int_equal(x.dims[0], 5);
        assert_int_equal(x.dims[1], 3);
        assert_int_equal(x.dims[2], 4);
        assert_int_equal(x.size, 60);
        assert_memory_equal(x.data, b + 16, 60);
        gen_idx_free(&x);
    }
    free(b);
}

static void test_truncated_every_length(void **state) {
    (void)state;
    const uint32_t dims[2] = {6, 5};
    size_t n;
    uint8_t *b = make_idx(2, dims, 0, &n);
    const char *p = tu_tmp_path("t.idx");
    for (size_t len = 0; len < n; len++) {
        tu_write_file(p, b, len);
        expect_error(p, len == 0 ? "empty" : "truncated");
    }
    /* Truncating the compressed stream at every length fails cleanly too. */
    write_gz(tu_tmp_path("full.gz"), b, n);
    size_t gn;
    uint8_t *g = (uint8_t *)tu_read_file(tu_tmp_path("full.gz"), &gn);
    for (size_t len = 0; len < gn; len++) {
        tu_write_file(p, g, len);
        struct gen_idx x;
        if (gen_idx_read(p, &x) == GEN_OK) fail_msg("truncated gzip of %zu bytes accepted", len);
        assert_non_null(strstr(gen_last_error(), p));
    }
    /* Data-level truncation inside a valid gzip stream. */
    write_gz(p, b, n - 7);
    expect_error(p, "truncated: header says 6 items of 5 bytes (30 bytes), file holds 4 items "
                    "(23 bytes)");
    free(g);
    free(b);
}

static void test_bad_headers(void **state) {
    (void)state;
    const char *p = tu_tmp_path("bad.idx");
    uint8_t h[16] = {1, 0, 8, 1, 0, 0, 0, 1, 0};
    tu_write_file(p, h, 9);
    expect_error(p, "not an IDX file");
    uint8_t f32[] = {0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    tu_write_file(p, f32, sizeof f32);
    expect_error(p, "element type 0x0d");
    uint8_t r0[] = {0, 0, 8, 0, 0};
    tu_write_file(p, r0, sizeof r0);
    expect_error(p, "rank 0");
    uint8_t r5[] = {0, 0, 8, 5, 0, 0, 0, 1};
    tu_write_file(p, r5, sizeof r5);
    expect_error(p, "rank 5");
    uint8_t zero[] = {0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 0};
    tu_write_file(p, zero, sizeof zero);
    expect_error(p, "dimension 1 is zero");
    /* 2^31 x 2^31: far beyond any cap, must not overflow or allocate. */
    uint8_t huge[] = {0, 0, 8, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 0};
    tu_write_file(p, huge, sizeof huge);
    expect_error(p, "more than the limit");
    write_gz(p, huge, sizeof huge);
    expect_error(p, "more than the limit");
    /* Each dimension under the cap, the product over it. */
    uint8_t big[] = {0, 0, 8, 3, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0};
    tu_write_file(p, big, sizeof big);
    expect_error(p, "exceed the limit");
    /* Plausible header claiming 10^9 bytes in a tiny gzip file: truncated,
     * found without allocating a gigabyte up front. */
    uint8_t claim[] = {0, 0, 8, 3, 0, 0, 0x03, 0xe8, 0, 0, 0x03, 0xe8, 0, 0, 0x03, 0xe8, 1, 2};
    write_gz(p, claim, sizeof claim);
    expect_error(p, "file holds 0 items (2 bytes)");
    tu_write_file(p, claim, sizeof claim);
    expect_error(p, "header says 1000 items of 1000 x 1000 bytes (1000000000 bytes), file holds 0 "
                    "items (2 bytes)");
    /* Not gzip at all after a gzip magic. */
    uint8_t fake[] = {0x1f, 0x8b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0};
    tu_write_file(p, fake, sizeof fake);
    struct gen_idx x;
    assert_int_not_equal(gen_idx_read(p, &x), GEN_OK);
    assert_non_null(strstr(gen_last_error(), p));
    assert_int_equal(gen_idx_read(tu_tmp_path("missing"), &x), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "cannot open"));
}

static void test_trailing_bytes(void **state) {
    (void)state;
    const uint32_t dims[1] = {10};
    size_t n;
    uint8_t *b = make_idx(1, dims, 3, &n);
    const char *p = tu_tmp_path("trail.idx");
    tu_write_file(p, b, n);
    expect_error(p, "3 trailing bytes");
    write_gz(p, b, n);
    expect_error(p, "3 trailing bytes");
    free(b);
}

/* ---- MNIST-format directories ---- */

static void write_set(const char *dir, const char *img_name, const char *lbl_name, uint32_t n,
                      uint32_t n_labels, int gz) {
    char p[1024];
    const uint32_t idims[3] = {n, 4, 6};
    size_t len;
    uint8_t *b = make_idx(3, idims, 0, &len);
    snprintf(p, sizeof p, "%s/%s", dir, img_name);
    (gz ? write_gz : tu_write_file)(p, b, len);
    free(b);
    const uint32_t ldims[1] = {n_labels};
    b = make_idx(1, ldims, 0, &len);
    for (uint32_t i = 0; i < n_labels; i++) b[8 + i] = (uint8_t)(i % 10);
    snprintf(p, sizeof p, "%s/%s", dir, lbl_name);
    (gz ? write_gz : tu_write_file)(p, b, len);
    free(b);
}

static void test_mnist_dir(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mnist", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    assert_int_equal(gen_mnist_detect(dir), 0);
    write_set(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 12, 12, 0);
    write_set(dir, "t10k-images.idx3-ubyte.gz", "t10k-labels.idx1-ubyte.gz", 7, 7, 1);
    assert_int_equal(gen_mnist_detect(dir), 1);
    struct gen_image_set s;
    assert_int_equal(gen_mnist_load(dir, GEN_SPLIT_TRAIN, &s), GEN_OK);
    assert_int_equal(s.n, 12);
    assert_int_equal(s.c, 1);
    assert_int_equal(s.h, 4);
    assert_int_equal(s.w, 6);
    assert_int_equal(s.n_classes, 10);
    assert_int_equal(s.labels[11], 1);
    assert_int_equal(s.pixels[5], (uint8_t)35);
    gen_image_set_free(&s);
    assert_int_equal(gen_images_load(dir, 0, 0, 0, &s), GEN_OK);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.n_classes, 7);
    gen_image_set_free(&s);
    /* Conversion through gen_images_load: grey -> RGB, 4x6 -> 8x8. */
    assert_int_equal(gen_images_load(dir, 1, 3, 8, &s), GEN_OK);
    assert_int_equal(s.c, 3);
    assert_int_equal(s.h, 8);
    assert_int_equal(s.w, 8);
    assert_memory_equal(s.pixels, s.pixels + 64, 64); /* R == G */
    int32_t idx[2] = {3, 0};
    float batch[2 * 3 * 8 * 8];
    gen_images_batch(&s, idx, 2, batch, -1.0f, 1.0f);
    for (int i = 0; i < 3 * 64; i++) {
        assert_true(batch[i] >= -1.0f && batch[i] <= 1.0f);
        assert_float_equal(batch[i], -1.0f + 2.0f * s.pixels[3 * 192 + i] / 255.0f, 1e-6);
    }
    int32_t lab[2];
    gen_images_labels(&s, idx, 2, lab);
    assert_int_equal(lab[0], 3);
    assert_int_equal(lab[1], 0);
    gen_image_set_free(&s);

    /* Label count mismatch: the message names the labels file. */
    write_set(dir, "t10k-images.idx3-ubyte.gz", "t10k-labels.idx1-ubyte.gz", 7, 6, 1);
    assert_int_equal(gen_mnist_load(dir, GEN_SPLIT_TEST, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "t10k-labels.idx1-ubyte.gz: 6 labels for 7 images"));
    assert_null(s.pixels);
    /* Missing files. */
    char p[1100];
    snprintf(p, sizeof p, "%s/t10k-labels.idx1-ubyte.gz", dir);
    remove(p);
    assert_int_equal(gen_mnist_load(dir, GEN_SPLIT_TEST, &s), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "t10k-labels-idx1-ubyte"));
    /* Images of the wrong rank. */
    const uint32_t d2[2] = {12, 24};
    size_t len;
    uint8_t *b = make_idx(2, d2, 0, &len);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    tu_write_file(p, b, len);
    free(b);
    assert_int_equal(gen_mnist_load(dir, GEN_SPLIT_TRAIN, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "3 dimensions"));
    /* Not a directory. */
    assert_int_not_equal(gen_images_load(p, 1, 0, 0, &s), GEN_OK);
    assert_non_null(strstr(gen_last_error(), "not a directory"));
}

/* The real data sets, which scripts/fetch-data.sh puts in place:
 * Fashion-MNIST (gzip) and MNIST (raw). */
static void check_real_set(const char *rel) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_source_path(rel));
    assert_true(gen_mnist_detect(dir));
    struct gen_image_set s;
    assert_int_equal(gen_images_load(dir, 1, 0, 0, &s), GEN_OK);
    assert_int_equal(s.n, 60000);
    assert_int_equal(s.c, 1);
    assert_int_equal(s.h, 28);
    assert_int_equal(s.w, 28);
    assert_int_equal(s.n_classes, 10);
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < s.n; i++) counts[s.labels[i]]++;
    for (int c = 0; c < 10; c++) assert_true(counts[c] >= 5000 && counts[c] <= 7000);
    gen_image_set_free(&s);
    assert_int_equal(gen_images_load(dir, 0, 0, 0, &s), GEN_OK);
    assert_int_equal(s.n, 10000);
    assert_int_equal(s.h * s.w, 784);
    gen_image_set_free(&s);
}

static void test_real_fashion_mnist(void **state) {
    (void)state;
    TU_NEED_DATA("data/fashion-mnist");
    check_real_set("data/fashion-mnist");
}

static void test_real_mnist(void **state) {
    (void)state;
    TU_NEED_DATA("data/mnist");
    check_real_set("data/mnist");
}

/* ---- hostile files ---- */

/* A FIFO (no writer) where an IDX file should be: refused at once, never
 * read; alarm() turns a hang into a failure. */
static void test_fifo(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fifo", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"};
    char p[1100];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        assert_int_equal(mkfifo(p, 0600), 0);
    }
    alarm(10);
    expect_error(p, "not a regular file");
    struct gen_image_set s;
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_TRAIN, 0, 0, &s), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "train-images-idx3-ubyte: not a regular file"));
    expect_error("/dev/zero", "not a regular file");
    alarm(0);
}

/* zlib names a gzdopen'd file "<fd:N>"; the message must name the path. */
static void test_gzip_message_names_path(void **state) {
    (void)state;
    const char *p = tu_tmp_path("corrupt.gz");
    const uint32_t dims[1] = {4000};
    size_t n;
    uint8_t *b = make_idx(1, dims, 0, &n);
    write_gz(p, b, n);
    free(b);
    size_t gn;
    uint8_t *g = (uint8_t *)tu_read_file(p, &gn);
    for (size_t i = 12; i < gn - 8; i++) g[i] ^= 0x5a; /* the deflate data, not the header */
    tu_write_file(p, g, gn);
    free(g);
    expect_error(p, "gzip");
    assert_null(strstr(gen_last_error(), "<fd:"));
}

/* A small gzip file whose header claims 2.7 million 28 x 28 images but
 * holds 1000: the error says both, and reading it never allocates for the
 * claim (checked in a child under an address-space limit where the build
 * allows one). */
static void test_gzip_claims_too_much(void **state) {
    (void)state;
    const uint32_t real[3] = {1000, 28, 28};
    size_t n;
    uint8_t *b = make_idx(3, real, 0, &n);
    const uint32_t claim = 2700000;
    for (int k = 0; k < 4; k++) b[4 + k] = (uint8_t)(claim >> (24 - 8 * k));
    const char *p = tu_tmp_path("claim.gz");
    write_gz(p, b, n);
    free(b);
    expect_error(p, "truncated: header says 2700000 items of 28 x 28 bytes (2116800000 bytes), "
                    "file holds 1000 items (784000 bytes)");
#if !defined(__SANITIZE_ADDRESS__)
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {256L << 20, 256L << 20};
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f && fscanf(f, "%ld", &pages) == 1) {
            rl.rlim_cur += (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
            rl.rlim_max = rl.rlim_cur;
        }
        if (f) fclose(f);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        struct gen_idx x;
        enum gen_status st = gen_idx_read(p, &x);
        _exit(st == GEN_ERR_FORMAT && strstr(gen_last_error(), "truncated") ? 0 : 1);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
#endif
}

/* Only the t10k files: asking for the train split names the missing train
 * files instead of looking for images. */
static void test_test_split_only(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/t10k-only", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    write_set(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 5, 5, 0);
    assert_int_equal(gen_mnist_detect(dir), 1);
    struct gen_image_set s;
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_TRAIN, 0, 0, &s), GEN_ERR_IO);
    const char *msg = gen_last_error();
    if (!strstr(msg, dir) || !strstr(msg, "train-images-idx3-ubyte") || strstr(msg, "no images"))
        fail_msg("message '%s' should name the missing train files", msg);
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_TEST, 0, 0, &s), GEN_OK);
    assert_int_equal(s.n, 5);
    gen_image_set_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_raw_and_gz),  cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_bad_headers),      cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_mnist_dir),        cmocka_unit_test(test_real_fashion_mnist),
        cmocka_unit_test(test_real_mnist),
        cmocka_unit_test(test_fifo),             cmocka_unit_test(test_gzip_message_names_path),
        cmocka_unit_test(test_gzip_claims_too_much), cmocka_unit_test(test_test_split_only),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
