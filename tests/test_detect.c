/* test_detect.c - the anomaly-detection numbers of gen/detect.h: AUROC,
 * average precision and FPR at 95 % TPR against values worked out by hand
 * on small lists (ties, perfect separation, reversed), AUROC against the
 * pair count on random scores, the ROC curve, the input complexity (a PNG
 * that decodes back to the image, simple images shorter than noise) and
 * the heat-map colours. */
#include <math.h>
#include <stb_image.h>
#include <string.h>

#include "gen/detect.h"
#include "gen/io.h"
#include "testutil.h"

#define N(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

static struct gen_detect detect(const double *in, int64_t n_in, const double *ood, int64_t n_ood) {
    struct gen_detect r;
    assert_int_equal(gen_detect_metrics(in, n_in, ood, n_ood, &r), GEN_OK);
    return r;
}

static void assert_near(double got, double want) {
    if (fabs(got - want) > 1e-12) fail_msg("got %.15g, want %.15g", got, want);
}

static void test_perfect(void **state) {
    (void)state;
    const double in[] = {1, 2, 3}, ood[] = {4, 5};
    const struct gen_detect r = detect(in, N(in), ood, N(ood));
    assert_near(r.auroc, 1), assert_near(r.aupr, 1), assert_near(r.fpr95, 0);
}

/* The OOD set scores lowest: thresholds 5, 4 (in), 3, 2, 1 (ood) give
 * precision 1/3, 2/4, 3/5 at recall 1/3, 2/3, 1. */
static void test_reversed(void **state) {
    (void)state;
    const double in[] = {4, 5}, ood[] = {3, 1, 2};
    const struct gen_detect r = detect(in, N(in), ood, N(ood));
    assert_near(r.auroc, 0);
    assert_near(r.aupr, (1.0 / 3 + 1.0 / 2 + 3.0 / 5) / 3); /* 43/90 */
    assert_near(r.fpr95, 1);
}

/* in {0, 1, 1, 2}, ood {1, 2, 3}: pairs won 2 + 3.5 + 4 of 12; thresholds
 * 3, 2, 1 give (tp, fp) = (1, 0), (2, 1), (3, 3). */
static void test_ties(void **state) {
    (void)state;
    const double in[] = {1, 0, 2, 1}, ood[] = {2, 1, 3};
    const struct gen_detect r = detect(in, N(in), ood, N(ood));
    assert_near(r.auroc, 9.5 / 12);
    assert_near(r.aupr, 13.0 / 18); /* 1/3 (1 + 2/3 + 1/2) */
    assert_near(r.fpr95, 0.75);
    /* every score equal: chance, one threshold */
    const double a[] = {1, 1}, b[] = {1, 1, 1};
    const struct gen_detect t = detect(a, N(a), b, N(b));
    assert_near(t.auroc, 0.5), assert_near(t.aupr, 0.6), assert_near(t.fpr95, 1);
}

/* FPR at 95 % TPR: the first threshold that finds 19 of 20 positives. */
static void test_fpr95(void **state) {
    (void)state;
    double in[10], ood[20];
    for (int i = 0; i < 10; i++) in[i] = i;        /* 0..9   */
    for (int i = 0; i < 20; i++) ood[i] = 5.5 + i; /* 5.5.. */
    ood[0] = 1.5, ood[1] = 3.5;                    /* two low ones */
    /* 19 found at threshold 3.5: in-scores above it are 4..9 -> 6 / 10 */
    assert_near(detect(in, 10, ood, 20).fpr95, 0.6);
}

/* AUROC = the share of (ood, in) pairs ordered right, ties half, on
 * random scores with many ties; swapping the sets gives 1 - AUROC. */
static void test_auroc_pairs(void **state) {
    (void)state;
    enum { NI = 300, NO = 200 };
    float u[NI + NO];
    tu_fill_uniform(u, NI + NO, 0, 1, 7);
    double in[NI], ood[NO];
    for (int i = 0; i < NI; i++) in[i] = floor(u[i] * 20);
    for (int i = 0; i < NO; i++) ood[i] = floor(u[NI + i] * 20 + 3);
    double won = 0;
    for (int i = 0; i < NO; i++)
        for (int j = 0; j < NI; j++) won += ood[i] > in[j] ? 1 : ood[i] == in[j] ? 0.5 : 0;
    const struct gen_detect r = detect(in, NI, ood, NO), s = detect(ood, NO, in, NI);
    assert_true(fabs(r.auroc - won / (NI * NO)) < 1e-12);
    assert_true(fabs(r.auroc + s.auroc - 1) < 1e-12);
    assert_true(r.aupr > (double)NO / (NI + NO) && r.aupr <= 1);
}

static void test_bad_scores(void **state) {
    (void)state;
    const double in[] = {1, NAN}, ood[] = {2};
    struct gen_detect r;
    assert_int_equal(gen_detect_metrics(in, 2, ood, 1, &r), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "score 1"));
    assert_int_equal(gen_detect_metrics(ood, 1, in, 0, &r), GEN_ERR_USAGE);
}

static void test_roc(void **state) {
    (void)state;
    const double in[] = {1, 0, 2, 1}, ood[] = {2, 1, 3};
    double fpr[8], tpr[8];
    int n = 0;
    assert_int_equal(gen_detect_roc(in, 4, ood, 3, 8, fpr, tpr, &n), GEN_OK);
    const double want_f[] = {0, 0, 0.25, 0.75, 1}, want_t[] = {0, 1.0 / 3, 2.0 / 3, 1, 1};
    assert_int_equal(n, 5);
    for (int k = 0; k < n; k++) assert_near(fpr[k], want_f[k]), assert_near(tpr[k], want_t[k]);
    /* many thresholds are thinned to at most max_points, still (0,0)..(1,1) */
    enum { M = 1000 };
    static double a[M], b[M], f[40], t[40];
    for (int i = 0; i < M; i++) a[i] = i, b[i] = i + 300.5;
    assert_int_equal(gen_detect_roc(a, M, b, M, 40, f, t, &n), GEN_OK);
    assert_true(n >= 20 && n <= 40);
    assert_near(f[0] + t[0], 0), assert_near(f[n - 1] + t[n - 1], 2);
    for (int k = 1; k < n; k++) assert_true(f[k] >= f[k - 1] && t[k] >= t[k - 1]);
}

/* The complexity is the length of a PNG that decodes to the image. */
static double complexity_checked(const uint8_t *pix, int c, int h, int w) {
    double nats;
    assert_int_equal(gen_complexity_nats(pix, c, h, w, &nats), GEN_OK);
    const double bytes = nats / (8 * log(2.0));
    assert_true(fabs(bytes - round(bytes)) < 1e-9);
    uint8_t hwc[3 * 28 * 28], *png;
    size_t len;
    for (int i = 0; i < h * w; i++)
        for (int k = 0; k < c; k++) hwc[i * c + k] = pix[k * h * w + i];
    assert_int_equal(gen_png_encode(hwc, w, h, c, &png, &len), GEN_OK);
    assert_int_equal((double)len, round(bytes));
    int dw, dh, dc;
    uint8_t *back = stbi_load_from_memory(png, (int)len, &dw, &dh, &dc, c);
    assert_non_null(back);
    assert_true(dw == w && dh == h && dc == c);
    assert_memory_equal(back, hwc, (size_t)(h * w * c));
    stbi_image_free(back);
    gen_free(png);
    return nats;
}

static void test_complexity(void **state) {
    (void)state;
    enum { S = 28 };
    static uint8_t flat[S * S], stroke[S * S], noise[3 * S * S];
    memset(flat, 0, sizeof flat);
    for (int y = 6; y < 22; y++) stroke[y * S + 13] = stroke[y * S + 14] = 255; /* a "1" */
    float u[3 * S * S];
    tu_fill_uniform(u, 3 * S * S, 0, 256, 3);
    for (int i = 0; i < 3 * S * S; i++) noise[i] = (uint8_t)fminf(u[i], 255);
    const double l_flat = complexity_checked(flat, 1, S, S),
                 l_stroke = complexity_checked(stroke, 1, S, S),
                 l_noise = complexity_checked(noise, 1, S, S),
                 l_rgb = complexity_checked(noise, 3, S, S);
    const double byte = 8 * log(2.0);
    assert_true(l_flat < 100 * byte); /* a few dozen bytes  */
    assert_true(l_flat < l_stroke && l_stroke < l_noise);
    assert_true(l_noise > S * S * byte); /* noise does not compress */
    assert_true(l_rgb > 3 * S * S * byte);
    assert_int_equal(gen_complexity_nats(flat, 2, S, S, &(double){0}), GEN_ERR_USAGE);
}

static void test_heat_colour(void **state) {
    (void)state;
    float lo[3], hi[3], prev = -1;
    gen_heat_colour(0, lo), gen_heat_colour(1, hi);
    assert_true(lo[0] + lo[1] + lo[2] < 0.05f && hi[0] + hi[1] + hi[2] > 2.5f);
    for (int i = 0; i <= 100; i++) { /* brightness rises with v */
        float c[3];
        gen_heat_colour(i / 100.0, c);
        const float y = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
        assert_true(y >= prev - 1e-6f);
        for (int k = 0; k < 3; k++) assert_true(c[k] >= 0 && c[k] <= 1);
        prev = y;
    }
    float c[3];
    gen_heat_colour(NAN, c), assert_memory_equal(c, lo, sizeof c);
    gen_heat_colour(7, c), assert_memory_equal(c, hi, sizeof c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect),     cmocka_unit_test(test_reversed),
        cmocka_unit_test(test_ties),        cmocka_unit_test(test_fpr95),
        cmocka_unit_test(test_auroc_pairs), cmocka_unit_test(test_bad_scores),
        cmocka_unit_test(test_roc),         cmocka_unit_test(test_complexity),
        cmocka_unit_test(test_heat_colour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
