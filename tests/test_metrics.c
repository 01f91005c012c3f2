/* test_metrics.c - the image metrics of gen eval: the Frechet distance
 * against closed forms and sampled Gaussians, its growth under blur and
 * noise, classifier score and precision/recall on known sets, the
 * classifier family (checkpoint round trip, train/eval commands) and
 * gen_eval_images on good and bad --samples folders. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gen/data.h"
#include "gen/io.h"
#include "gen/metrics.h"
#include "models/classifier.h"
#include "testutil.h"

/* ---- Frechet distance ---- */

static void test_feature_stats(void **state) {
    (void)state;
    const float x[] = {1, 2, 3, 4, 5, 0};
    double mean[2], cov[4];
    assert_int_equal(gen_feature_stats(x, 3, 2, mean, cov), GEN_OK);
    assert_true(fabs(mean[0] - 3) < 1e-12 && fabs(mean[1] - 2) < 1e-12);
    assert_true(fabs(cov[0] - 4) < 1e-12 && fabs(cov[3] - 4) < 1e-12);
    assert_true(fabs(cov[1] + 2) < 1e-12 && fabs(cov[2] + 2) < 1e-12);
}

/* Diagonal covariances: FD = |dmu|^2 + sum (sqrt a - sqrt b)^2, exactly. */
static void test_fd_diagonal_exact(void **state) {
    (void)state;
    enum { D = 6 };
    const double a[D] = {1, 4, 0.25, 9, 2, 0}, b[D] = {4, 1, 0.25, 1, 8, 3};
    double mu1[D] = {0, 1, 2, 3, 4, 5}, mu2[D] = {1, 1, 2, 1, 4, 5};
    double s1[D * D] = {0}, s2[D * D] = {0}, want = 0;
    for (int i = 0; i < D; i++) {
        s1[i * D + i] = a[i], s2[i * D + i] = b[i];
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    double fd;
    assert_int_equal(gen_frechet_distance(mu1, s1, mu2, s2, D, &fd), GEN_OK);
    assert_true(fabs(fd - want) < 1e-10 * want);
    assert_int_equal(gen_frechet_distance(mu2, s2, mu1, s1, D, &fd), GEN_OK); /* symmetric */
    assert_true(fabs(fd - want) < 1e-10 * want);
}

/* 2x2, not commuting: the eigenvalues of S1^1/2 S2 S1^1/2 are those of
 * S1 S2, and for a 2x2 PSD M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)). */
static void test_fd_2x2_closed_form(void **state) {
    (void)state;
    const double s1[4] = {2, 1, 1, 2}, s2[4] = {1, 0, 0, 3}, mu1[2] = {0, 0}, mu2[2] = {1, 2};
    double want = 5 + 4 + 4 - 2 * sqrt(8 + 2 * sqrt(3.0 * 3.0)), fd;
    assert_int_equal(gen_frechet_distance(mu1, s1, mu2, s2, 2, &fd), GEN_OK);
    assert_true(fabs(fd - want) < 1e-10);
}

/* A random orthogonal d x d matrix by Gram-Schmidt. */
static void random_orthogonal(double *q, int d, uint64_t seed) {
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    for (int i = 0; i < d * d; i++) q[i] = gen_rng_normal(&r);
    for (int j = 0; j < d; j++) { /* columns */
        for (int k = 0; k < j; k++) {
            double dot = 0;
            for (int i = 0; i < d; i++) dot += q[i * d + j] * q[i * d + k];
            for (int i = 0; i < d; i++) q[i * d + j] -= dot * q[i * d + k];
        }
        double norm = 0;
        for (int i = 0; i < d; i++) norm += q[i * d + j] * q[i * d + j];
        for (int i = 0; i < d; i++) q[i * d + j] /= sqrt(norm);
    }
}

/* s = Q diag(l) Q^T */
static void rotate(const double *q, const double *l, int d, double *s) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double v = 0;
            for (int k = 0; k < d; k++) v += q[i * d + k] * l[k] * q[j * d + k];
            s[i * d + j] = v;
        }
}

/* Covariances sharing eigenvectors (a full 128-d case): FD = sum of
 * (sqrt l1 - sqrt l2)^2; and FD(S, S) = 0 for a full S. */
static void test_fd_rotated_128(void **state) {
    (void)state;
    enum { D = 128 };
    double *q = malloc(D * D * sizeof *q), *s1 = malloc(D * D * sizeof *s1),
           *s2 = malloc(D * D * sizeof *s2), l1[D], l2[D], mu[D] = {0}, want = 0, fd;
    random_orthogonal(q, D, 7);
    for (int i = 0; i < D; i++) {
        l1[i] = 0.1 + i * 0.05;
        l2[i] = i % 3 ? l1[i] : 2 * l1[i] + 0.5;
        want += (sqrt(l1[i]) - sqrt(l2[i])) * (sqrt(l1[i]) - sqrt(l2[i]));
    }
    rotate(q, l1, D, s1);
    rotate(q, l2, D, s2);
    assert_int_equal(gen_frechet_distance(mu, s1, mu, s2, D, &fd), GEN_OK);
    assert_true(fabs(fd - want) < 1e-7 * want);
    assert_int_equal(gen_frechet_distance(mu, s1, mu, s1, D, &fd), GEN_OK);
    assert_true(fd < 1e-8);
    free(q), free(s1), free(s2);
}

/* LAPACK path at the real size: commuting covariances Q diag(a) Q^T and
 * Q diag(b) Q^T with spectra over five decades and different means, so
 * FD = |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2 to 1e-6 relative; then
 * the error paths: NaN features and out-of-memory at each allocation. */
static void test_fd_rotated_128_means(void **state) {
    (void)state;
    enum { D = 128 };
    double *q = malloc(D * D * sizeof *q), *s1 = malloc(D * D * sizeof *s1),
           *s2 = malloc(D * D * sizeof *s2), a[D], b[D], mu1[D], mu2[D], want = 0, fd;
    random_orthogonal(q, D, 12345);
    struct gen_rng r;
    gen_rng_seed(&r, 99);
    for (int i = 0; i < D; i++) {
        a[i] = exp(-8 + 11.5 * gen_rng_uniform(&r)); /* 3e-4 .. 3e1 */
        b[i] = exp(-8 + 11.5 * gen_rng_uniform(&r));
        mu1[i] = gen_rng_normal(&r);
        mu2[i] = mu1[i] + 0.1 * gen_rng_normal(&r);
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    rotate(q, a, D, s1);
    rotate(q, b, D, s2);
    assert_int_equal(gen_frechet_distance(mu1, s1, mu2, s2, D, &fd), GEN_OK);
    print_message("FD %.15g, closed form %.15g (relative %.2g)\n", fd, want, fabs(fd - want) / want);
    assert_true(fabs(fd - want) < 1e-6 * want);
    assert_int_equal(gen_frechet_distance(mu2, s2, mu1, s1, D, &fd), GEN_OK);
    assert_true(fabs(fd - want) < 1e-6 * want);
    /* the k-th allocation failing: GEN_ERR_NOMEM and no value, until k
     * passes the allocations made (buffers, LAPACK workspaces) */
    int failures = 0;
    for (int k = 1;; k++) {
        assert_true(k <= 20);
        gen_alloc_fail_after(k);
        fd = -1;
        enum gen_status st = gen_frechet_distance(mu1, s1, mu2, s2, D, &fd);
        gen_alloc_fail_after(0);
        if (st == GEN_OK) {
            assert_true(fabs(fd - want) < 1e-6 * want);
            break;
        }
        assert_int_equal(st, GEN_ERR_NOMEM);
        assert_true(fd == -1);
        failures++;
    }
    assert_true(failures >= 4);
    /* NaN features: an error naming the cause, not FD 0 */
    gen_clear_error();
    s2[5 * D + 7] = NAN;
    fd = -1;
    assert_int_equal(gen_frechet_distance(mu1, s1, mu2, s2, D, &fd), GEN_ERR_RUNTIME);
    assert_non_null(strstr(gen_last_error(), "not finite"));
    assert_true(fd == -1);
    free(q), free(s1), free(s2);
}

/* Features sampled from two known Gaussians: the FD of the fitted
 * Gaussians approaches the analytic one (2x2 closed form above). */
static void test_fd_sampled(void **state) {
    (void)state;
    enum { N = 40000 };
    /* S1 = L1 L1^T = [[2,1],[1,2]] (L1 = [[sqrt2,0],[1/sqrt2, sqrt(3/2)]]), S2 = diag(1, 3) */
    const double l1[4] = {sqrt(2.0), 0, 1 / sqrt(2.0), sqrt(1.5)};
    float *x = malloc(2 * N * sizeof *x), *y = malloc(2 * N * sizeof *y);
    struct gen_rng r;
    gen_rng_seed(&r, 42);
    for (int i = 0; i < N; i++) {
        double z0 = gen_rng_normal(&r), z1 = gen_rng_normal(&r);
        x[2 * i] = (float)(l1[0] * z0);
        x[2 * i + 1] = (float)(l1[2] * z0 + l1[3] * z1);
        y[2 * i] = (float)(1 + gen_rng_normal(&r));
        y[2 * i + 1] = (float)(2 + sqrt(3.0) * gen_rng_normal(&r));
    }
    double m1[2], c1[4], m2[2], c2[4], fd;
    assert_int_equal(gen_feature_stats(x, N, 2, m1, c1), GEN_OK);
    assert_int_equal(gen_feature_stats(y, N, 2, m2, c2), GEN_OK);
    assert_int_equal(gen_frechet_distance(m1, c1, m2, c2, 2, &fd), GEN_OK);
    double want = 5 + 4 + 4 - 2 * sqrt(14.0);
    assert_true(fabs(fd - want) < 0.03 * want + 0.01);
    /* real vs real: near zero */
    assert_int_equal(gen_feature_stats(x + N, N / 2, 2, m2, c2), GEN_OK);
    assert_int_equal(gen_feature_stats(x, N / 2, 2, m1, c1), GEN_OK);
    assert_int_equal(gen_frechet_distance(m1, c1, m2, c2, 2, &fd), GEN_OK);
    assert_true(fd < 0.01);
    free(x), free(y);
}

/* ---- classifier score, precision/recall ---- */

static void test_classifier_score(void **state) {
    (void)state;
    float p[8 * 4];
    for (int i = 0; i < 32; i++) p[i] = 0.25f;
    assert_true(fabs(gen_classifier_score(p, 8, 4) - 1) < 1e-9);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++) p[i * 4 + k] = k == i % 4;
    assert_true(fabs(gen_classifier_score(p, 8, 4) - 4) < 1e-6);
    for (int i = 0; i < 8; i++) /* always the same class: no diversity */
        for (int k = 0; k < 4; k++) p[i * 4 + k] = k == 1;
    assert_true(fabs(gen_classifier_score(p, 8, 4) - 1) < 1e-9);
}

static void test_precision_recall(void **state) {
    (void)state;
    enum { N = 300, D = 3 };
    float *real = malloc(N * D * sizeof *real), *fake = malloc(N * D * sizeof *fake);
    tu_fill_uniform(real, N * D, -1, 1, 3);
    double p, r;
    assert_int_equal(gen_precision_recall(real, N, real, N, D, 3, &p, &r), GEN_OK);
    assert_true(p == 1 && r == 1);
    for (int i = 0; i < N * D; i++) fake[i] = real[i] + 100;
    assert_int_equal(gen_precision_recall(real, N, fake, N, D, 3, &p, &r), GEN_OK);
    assert_true(p == 0 && r == 0);
    /* fake: a denser copy of one corner of the real cube: precise, not diverse */
    tu_fill_uniform(fake, N * D, 0.4f, 1, 4);
    assert_int_equal(gen_precision_recall(real, N, fake, N, D, 3, &p, &r), GEN_OK);
    assert_true(p > 0.9);
    assert_true(r < 0.4);
    /* fake: wider than real: diverse, imprecise */
    tu_fill_uniform(fake, N * D, -3, 3, 5);
    assert_int_equal(gen_precision_recall(real, N, fake, N, D, 3, &p, &r), GEN_OK);
    assert_true(p < 0.3);
    assert_true(r > 0.5);
    free(real), free(fake);
}

/* ---- FD on classifier features under blur and noise ---- */

/* n MNIST test images (n, 1, 28, 28) in [0, 1]: the first n (seed 0) or
 * the next n. */
static float *real_images(int n, uint64_t seed) {
    float *x = malloc((size_t)n * 784 * sizeof *x);
    struct gen_image_set set = {0};
    assert_int_equal(gen_mnist_load(tu_source_path("data/mnist"), GEN_SPLIT_TEST, &set), GEN_OK);
    assert_true(set.n >= 2 * n);
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    for (int i = 0; i < n; i++) idx[i] = (int32_t)(i + (seed ? n : 0));
    gen_images_batch(&set, idx, n, x, 0, 1);
    free(idx);
    gen_image_set_free(&set);
    return x;
}

static void box_blur(float *x, int n) {
    float blurred[784];
    for (int i = 0; i < n; i++) {
        float *im = x + (size_t)i * 784;
        for (int y = 0; y < 28; y++)
            for (int xx = 0; xx < 28; xx++) {
                float s = 0;
                int c = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy, xc = xx + dx;
                        if (yy < 0 || yy >= 28 || xc < 0 || xc >= 28) continue;
                        s += im[yy * 28 + xc], c++;
                    }
                blurred[y * 28 + xx] = s / (float)c;
            }
        memcpy(im, blurred, sizeof blurred);
    }
}

static double fd_of(struct gen_classifier *m, const float *a, const float *b, int n) {
    enum { D = GEN_CLASSIFIER_FEATURES };
    float *fa = malloc((size_t)n * D * sizeof *fa), *fb = malloc((size_t)n * D * sizeof *fb);
    double *ma = malloc(D * sizeof *ma), *mb = malloc(D * sizeof *mb),
           *ca = malloc(D * D * sizeof *ca), *cb = malloc(D * D * sizeof *cb), fd;
    gen_classifier_embed(m, a, n, fa, NULL);
    gen_classifier_embed(m, b, n, fb, NULL);
    assert_int_equal(gen_feature_stats(fa, n, D, ma, ca), GEN_OK);
    assert_int_equal(gen_feature_stats(fb, n, D, mb, cb), GEN_OK);
    assert_int_equal(gen_frechet_distance(ma, ca, mb, cb, D, &fd), GEN_OK);
    free(fa), free(fb), free(ma), free(mb), free(ca), free(cb);
    return fd;
}

/* A small classifier trained briefly (100 steps of 32) on MNIST training
 * images. */
static void quick_classifier(struct gen_classifier *m) {
    assert_int_equal(gen_classifier_init(m, 1, 28, 28, 10, 8, 1), GEN_OK);
    struct gen_image_set set = {0};
    assert_int_equal(gen_mnist_load(tu_source_path("data/mnist"), GEN_SPLIT_TRAIN, &set), GEN_OK);
    struct gen_ctx g;
    gen_ctx_init(&g);
    g.training = 1;
    const struct gen_optim opt = {GEN_OPTIM_ADAM, 2e-3f, 0.9f, 0.999f, 1e-8f, 0, 0};
    int32_t idx[32], y[32];
    double first = 0, last = 0;
    for (int step = 0; step < 100; step++) {
        for (int i = 0; i < 32; i++) idx[i] = (int32_t)((step * 32 + i) % set.n);
        struct gen_tensor *x = gen_tensor_4d(&g, 32, 1, 28, 28);
        gen_images_batch(&set, idx, 32, x->data, 0, 1);
        gen_images_labels(&set, idx, 32, y);
        struct gen_tensor *loss = gen_cross_entropy(&g, gen_classifier_forward(&g, m, x, NULL), y);
        gen_params_zero_grad(&m->ps);
        gen_backward(&g, loss);
        gen_optim_step(&opt, &m->ps, -1, opt.lr);
        if (step < 10) first += loss->data[0];
        if (step >= 90) last += loss->data[0];
        gen_ctx_reset(&g);
    }
    print_message("quick classifier: loss %.3f -> %.3f\n", first / 10, last / 10);
    assert_true(last < 0.5 * first);
    gen_ctx_free(&g);
    gen_image_set_free(&set);
}

/* The FD between real images and the same images blurred or noised more
 * and more grows monotonically from zero, well past the FD between two
 * disjoint sets of real images (sampling noise). MNIST. */
static void test_fd_grows_with_degradation(void **state) {
    (void)state;
    TU_NEED_DATA("data/mnist");
    enum { N = 400 };
    struct gen_classifier m;
    quick_classifier(&m);
    float *a = real_images(N, 0), *b = real_images(N, 1), *c = malloc(N * 784 * sizeof *c);
    double real = fd_of(&m, a, b, N), prev = fd_of(&m, a, a, N);
    assert_true(prev < 1e-6);
    /* blur: 1, 2, 3 passes of a 3x3 box */
    memcpy(c, a, N * 784 * sizeof *c);
    for (int level = 1; level <= 3; level++) {
        box_blur(c, N);
        double fd = fd_of(&m, a, c, N);
        print_message("blur %d: FD %.4g (real vs real %.4g)\n", level, fd, real);
        assert_true(fd > prev);
        prev = fd;
    }
    assert_true(prev > real);
    /* noise: sigma 0.1, 0.2, 0.4 (clamped to [0, 1]) */
    prev = 0;
    const float sigma[] = {0.1f, 0.2f, 0.4f};
    for (int level = 0; level < 3; level++) {
        struct gen_rng r;
        gen_rng_seed(&r, 99);
        for (int i = 0; i < N * 784; i++) {
            float v = a[i] + sigma[level] * gen_rng_normal(&r);
            c[i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
        double fd = fd_of(&m, a, c, N);
        print_message("noise %.1f: FD %.4g\n", sigma[level], fd);
        assert_true(fd > prev);
        prev = fd;
    }
    assert_true(prev > real);
    free(a), free(b), free(c);
    gen_classifier_free(&m);
}

/* ---- the classifier family ---- */

static void test_classifier_roundtrip(void **state) {
    (void)state;
    struct gen_classifier m, back;
    assert_int_equal(gen_classifier_init(&m, 1, 12, 12, 3, 4, 5), GEN_OK);
    float x[5 * 144], p1[5 * 3], p2[5 * 3], f1[5 * 128], f2[5 * 128];
    tu_fill_uniform(x, 5 * 144, 0, 1, 6);
    gen_classifier_embed(&m, x, 5, f1, p1);
    const char *path = tu_tmp_path("clf.safetensors");
    assert_int_equal(gen_classifier_save(&m, path), GEN_OK);
    assert_int_equal(gen_classifier_load(&back, path), GEN_OK);
    assert_int_equal(back.C, 1);
    assert_int_equal(back.H, 12);
    assert_int_equal(back.K, 3);
    gen_classifier_embed(&back, x, 5, f2, p2);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(f1, f2, sizeof f1);
    gen_classifier_free(&back);
    /* a checkpoint of another family, a truncated file */
    struct gen_st_entry e = {"w", 1, (int64_t[]){1}, (float[]){1}, GEN_ST_F32, NULL};
    const struct gen_kv meta[] = {{"family", "vae"}, {"config", "{}"}};
    assert_int_equal(gen_st_save(tu_tmp_path("vae.safetensors"), &e, 1, meta, 2), GEN_OK);
    assert_int_not_equal(gen_classifier_load(&back, tu_tmp_path("vae.safetensors")), GEN_OK);
    assert_non_null(strstr(gen_last_error(), "vae.safetensors"));
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 100), 0);
    fclose(f);
    assert_int_not_equal(gen_classifier_load(&back, path), GEN_OK);
    assert_non_null(strstr(gen_last_error(), "clf.safetensors"));
    gen_classifier_free(&m);
}

/* A tiny labelled image folder: class "a" has a bright band at the top,
 * "b" at the bottom; n images per class (every 10th is a test image). */
static void write_dataset(const char *dir, int n, int side) {
    float *x = malloc((size_t)n * side * side * sizeof *x);
    for (int cls = 0; cls < 2; cls++) {
        struct gen_rng r;
        gen_rng_seed(&r, (uint64_t)cls + 20);
        for (int i = 0; i < n; i++)
            for (int y = 0; y < side; y++)
                for (int k = 0; k < side; k++) {
                    int band = cls == 0 ? y < side / 3 : y >= 2 * side / 3;
                    x[((size_t)i * side + y) * side + k] = 0.7f * band + 0.3f * gen_rng_uniform(&r);
                }
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%c", dir, 'a' + cls);
        assert_int_equal(gen_png_write_each(sub, "img", x, n, 1, side, side, 0, 1), GEN_OK);
    }
    free(x);
}

static void test_classifier_train_eval_cli(void **state) {
    (void)state;
    const char *data = tu_tmp_path("data"), *out = tu_tmp_path("run");
    write_dataset(data, 60, 12);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    char *train[] = {"gen", "train", "classifier", "--data", (char *)data, "--out", (char *)out,
                     "--steps", "40", "--batch", "16", "--filters", "4", "--threads", "1", "-q",
                     NULL};
    assert_int_equal(gen_cli_main(16, train), 0);
    assert_int_equal(access(ckpt, F_OK), 0);
    struct gen_classifier m;
    assert_int_equal(gen_classifier_load(&m, ckpt), GEN_OK);
    assert_int_equal(m.K, 2);
    assert_int_equal(m.C, 1); /* grey images: the folder loads as one channel */
    /* it learnt the two bands */
    struct gen_image_set test = {0};
    assert_int_equal(gen_images_load(data, GEN_SPLIT_TEST, 0, 0, &test), GEN_OK);
    assert_int_equal(test.c, 1);
    float *x = malloc((size_t)test.n * 144 * sizeof *x), *p = malloc((size_t)test.n * 2 * sizeof *p);
    int32_t idx[64];
    for (int i = 0; i < test.n; i++) idx[i] = i;
    gen_images_batch(&test, idx, (int)test.n, x, 0, 1);
    gen_classifier_embed(&m, x, test.n, NULL, p);
    int correct = 0;
    for (int i = 0; i < test.n; i++) correct += (p[2 * i + 1] > p[2 * i]) == test.labels[i];
    assert_int_equal(correct, test.n);
    free(x), free(p);
    gen_image_set_free(&test);
    gen_classifier_free(&m);
    char *eval[] = {"gen", "eval", "classifier", "--ckpt", ckpt, "--data", (char *)data,
                    "--threads", "1", "-q", NULL};
    assert_int_equal(gen_cli_main(10, eval), 0);
    /* any folder of images, scored with this classifier as the feature network */
    char samples[4096];
    snprintf(samples, sizeof samples, "%s/b", data);
    char *score[] = {"gen", "eval", "classifier", "--ckpt", ckpt, "--data", (char *)data,
                     "--samples", samples, "--threads", "1", "-q", NULL};
    assert_int_equal(gen_cli_main(12, score), 0);
    snprintf(samples, sizeof samples, "%s/none", data);
    assert_int_equal(gen_cli_main(12, score), 1);
    char *sample[] = {"gen", "sample", "classifier", "--ckpt", ckpt, NULL};
    assert_int_equal(gen_cli_main(5, sample), 2);
}

/* ---- gen_eval_images ---- */

static const struct gen_option eval_options[] = {
    GEN_EVAL_IMAGE_OPTIONS,
    GEN_OPT_END,
};

static struct gen_config eval_cfg;

static int eval_with(gen_generate_fn fn, int argc, char **argv) {
    const struct gen_option *const tables[] = {gen_eval_options, eval_options, NULL};
    assert_int_equal(gen_config_parse(&eval_cfg, tables, argc, argv), GEN_OK);
    gen_clear_error();
    struct gen_metrics out = {0};
    const struct gen_eval_source src = {fn, NULL, 1, 12, 12, 0, NULL};
    return gen_eval_images(&eval_cfg, "test", 1, fn ? &src : NULL, &out, NULL);
}

/* A "model" whose images are random noise. */
static enum gen_status noise_model(void *model, int64_t n, uint64_t seed, const int32_t *labels,
                                   float *out) {
    (void)model, (void)labels;
    tu_fill_uniform(out, n * 144, 0, 1, seed);
    return GEN_OK;
}

static void make_eval_fixture(void) {
    write_dataset(tu_tmp_path("data"), 60, 12);
    struct gen_classifier m;
    assert_int_equal(gen_classifier_init(&m, 1, 12, 12, 2, 4, 3), GEN_OK);
    assert_int_equal(gen_classifier_save(&m, tu_tmp_path("clf.safetensors")), GEN_OK);
    gen_classifier_free(&m);
}

static int eval_samples(const char *dir) {
    char *argv[] = {"--classifier", (char *)tu_tmp_path("clf.safetensors"), "--data",
                    (char *)tu_tmp_path("data"), "--samples", (char *)dir, NULL};
    return eval_with(NULL, 6, argv);
}

static void test_eval_generate_and_samples(void **state) {
    (void)state;
    make_eval_fixture();
    assert_int_equal(gen_mkdir_p(tu_tmp_path("model")), GEN_OK);
    char *argv[] = {"--classifier", (char *)tu_tmp_path("clf.safetensors"), "--data",
                    (char *)tu_tmp_path("data"), "--ckpt", (char *)tu_tmp_path("model/checkpoint.safetensors"),
                    "-n", "30", NULL};
    assert_int_equal(eval_with(noise_model, 8, argv), 0);
    /* the metrics went to metrics.jsonl beside the checkpoint */
    FILE *f = fopen(tu_tmp_path("model/metrics.jsonl"), "r");
    assert_non_null(f);
    char line[2048] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "\"fid\":"));
    assert_non_null(strstr(line, "\"recall_baseline\":"));
    /* a folder of images as --samples; -n takes a subset */
    assert_int_equal(eval_samples(tu_tmp_path("data/a")), 0);
    char *sub[] = {"--classifier", (char *)tu_tmp_path("clf.safetensors"), "--data",
                   (char *)tu_tmp_path("data"), "--samples", (char *)tu_tmp_path("data"), "-n", "20", NULL};
    assert_int_equal(eval_with(NULL, 8, sub), 0);
}

static void test_eval_bad_samples(void **state) {
    (void)state;
    make_eval_fixture();
    /* missing */
    assert_int_equal(eval_samples(tu_tmp_path("nope")), 1);
    assert_non_null(strstr(gen_last_error(), "nope"));
    /* empty */
    assert_int_equal(gen_mkdir_p(tu_tmp_path("empty")), GEN_OK);
    assert_int_equal(eval_samples(tu_tmp_path("empty")), 1);
    assert_non_null(strstr(gen_last_error(), "empty"));
    /* too few */
    float img[3 * 144];
    tu_fill_uniform(img, 3 * 144, 0, 1, 1);
    assert_int_equal(gen_png_write_each(tu_tmp_path("few"), "", img, 3, 1, 12, 12, 0, 1), GEN_OK);
    assert_int_equal(eval_samples(tu_tmp_path("few")), 1);
    assert_non_null(strstr(gen_last_error(), "at least"));
    /* mixed sizes */
    float big[20 * 196];
    tu_fill_uniform(big, 20 * 196, 0, 1, 2);
    assert_int_equal(gen_png_write_each(tu_tmp_path("mixed"), "a", big, 12, 1, 12, 12, 0, 1), GEN_OK);
    assert_int_equal(gen_png_write_each(tu_tmp_path("mixed"), "b", big, 12, 1, 14, 14, 0, 1), GEN_OK);
    assert_int_equal(eval_samples(tu_tmp_path("mixed")), 1);
    assert_non_null(strstr(gen_last_error(), "mixed"));
    /* a file that is not an image */
    assert_int_equal(gen_png_write_each(tu_tmp_path("junk"), "a", big, 12, 1, 12, 12, 0, 1), GEN_OK);
    FILE *f = fopen(tu_tmp_path("junk/zz.png"), "w");
    fputs("this is not a PNG", f);
    fclose(f);
    assert_int_equal(eval_samples(tu_tmp_path("junk")), 1);
    assert_non_null(strstr(gen_last_error(), "zz.png"));
    /* no classifier */
    char *argv[] = {"--classifier", (char *)tu_tmp_path("none.safetensors"), "--samples",
                    (char *)tu_tmp_path("data/a"), NULL};
    assert_int_equal(eval_with(NULL, 4, argv), 1);
    assert_non_null(strstr(gen_last_error(), "gen train classifier"));
}

int main(void) {
    gen_threads_init(1); /* small problems: threads only add contention */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_stats),
        cmocka_unit_test(test_fd_diagonal_exact),
        cmocka_unit_test(test_fd_2x2_closed_form),
        cmocka_unit_test(test_fd_rotated_128),
        cmocka_unit_test(test_fd_rotated_128_means),
        cmocka_unit_test(test_fd_sampled),
        cmocka_unit_test(test_classifier_score),
        cmocka_unit_test(test_precision_recall),
        cmocka_unit_test(test_fd_grows_with_degradation),
        cmocka_unit_test_setup_teardown(test_classifier_roundtrip, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_classifier_train_eval_cli, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_eval_generate_and_samples, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_eval_bad_samples, tu_tmp_setup, tu_tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
