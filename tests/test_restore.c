/* test_restore.c - restoration maths and its guarantees: PSNR and SSIM
 * against hand-computed values on fixed images, the Gaussian blur, the
 * bicubic upsampling, the masks, the degradations and the blur tuning,
 * the low-pass projection of super-resolution, and, on a tiny untrained
 * diffusion model (a few DDIM steps), the consistency each mode promises:
 * super-resolved images downsampled are the input, inpainted images keep
 * the known pixels bit for bit, denoising starts part-way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/engine.h"
#include "gen/metrics.h"
#include "gen/restore.h"
#include "testutil.h"

/* ---- PSNR and SSIM ---- */

static void test_psnr(void **state) {
    (void)state;
    float a[16], b[16];
    for (int k = 0; k < 16; k++) a[k] = 0.0f, b[k] = 0.1f;
    assert_true(fabs(gen_psnr(a, b, 16) - 20.0) < 1e-5); /* MSE 0.01 */
    for (int k = 0; k < 16; k++) b[k] = k < 4 ? 0.5f : 0.0f;
    /* MSE = 4 * 0.25 / 16 = 1/16: 10 log10 16 */
    assert_true(fabs(gen_psnr(a, b, 16) - 10 * log10(16.0)) < 1e-9);
    assert_true(isinf(gen_psnr(a, a, 16)));
}

/* The SSIM window's centre weight along one axis: g(0) / sum g(k),
 * g(k) = exp(-k^2 / (2 1.5^2)), k = -5..5. */
static double centre_weight(void) {
    double s = 0;
    for (int k = -5; k <= 5; k++) s += exp(-k * k / 4.5);
    return 1.0 / s;
}

static void test_ssim(void **state) {
    (void)state;
    const double c1 = 1e-4, c2 = 9e-4;
    float a[3 * 12 * 12], b[3 * 12 * 12];
    /* equal images: 1 */
    tu_fill_uniform(a, 144, 0, 1, 3);
    assert_true(fabs(gen_ssim(a, a, 1, 12, 12) - 1.0) < 1e-12);
    /* constants 0.2 and 0.6 (4 window positions, no variance): the
     * luminance term alone */
    for (int k = 0; k < 144; k++) a[k] = 0.2f, b[k] = 0.6f;
    const double want = (2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1);
    assert_true(fabs(gen_ssim(a, b, 1, 12, 12) - want) < 1e-6);
    /* 11 x 11 (one position): left columns 0.25, the middle 0.5, right
     * 0.75, so the weighted mean is 0.5 and the variance 0.0625 (1 - w0) */
    for (int y = 0; y < 11; y++)
        for (int x = 0; x < 11; x++) a[y * 11 + x] = x < 5 ? 0.25f : x > 5 ? 0.75f : 0.5f;
    const double var = 0.0625 * (1 - centre_weight());
    /* shifted by 0.1: the same structure, luminance 0.5 against 0.6 */
    for (int k = 0; k < 121; k++) b[k] = a[k] + 0.1f;
    assert_true(fabs(gen_ssim(a, b, 1, 11, 11) - (0.6 + c1) / (0.61 + c1)) < 1e-6);
    /* inverted: covariance -var */
    for (int k = 0; k < 121; k++) b[k] = 1.0f - a[k];
    assert_true(fabs(gen_ssim(a, b, 1, 11, 11) - (-2 * var + c2) / (2 * var + c2)) < 1e-6);
    /* three channels: the mean of the channels' values (equal, shifted, inverted) */
    float a3[3 * 121], b3[3 * 121];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 121; k++)
            a3[c * 121 + k] = a[k], b3[c * 121 + k] = c == 0 ? a[k] : c == 1 ? a[k] + 0.1f : 1.0f - a[k];
    const double mean3 = (1 + (0.6 + c1) / (0.61 + c1) + (-2 * var + c2) / (2 * var + c2)) / 3;
    assert_true(fabs(gen_ssim(a3, b3, 3, 11, 11) - mean3) < 1e-6);
}

/* ---- baselines ---- */

static void test_blur(void **state) {
    (void)state;
    enum { H = 15, W = 13 };
    float x[H * W], out[H * W];
    for (int k = 0; k < H * W; k++) x[k] = 0.3f;
    gen_restore_blur(x, 1, H, W, 1.2, out);
    for (int k = 0; k < H * W; k++) assert_true(fabs(out[k] - 0.3f) < 1e-6); /* constants stay */
    /* an impulse in the middle: the kernel, k(dy) k(dx), normalised, symmetric */
    memset(x, 0, sizeof x);
    x[7 * W + 6] = 1.0f;
    gen_restore_blur(x, 1, H, W, 1.0, out);
    double s = 0, norm = 0;
    for (int k = -3; k <= 3; k++) norm += exp(-0.5 * k * k);
    for (int k = 0; k < H * W; k++) s += out[k];
    assert_true(fabs(s - 1.0) < 1e-5);
    assert_true(fabs(out[7 * W + 6] - 1.0 / (norm * norm)) < 1e-6);
    assert_true(fabs(out[7 * W + 7] - exp(-0.5) / (norm * norm)) < 1e-6);
    assert_true(fabs(out[6 * W + 6] - out[8 * W + 6]) < 1e-7 && fabs(out[7 * W + 5] - out[7 * W + 7]) < 1e-7);
    assert_true(out[7 * W + 10] == 0.0f); /* radius ceil(3 sigma) = 3 */
    gen_restore_blur(x, 1, H, W, 0, out); /* sigma 0 copies */
    assert_memory_equal(x, out, sizeof x);
}

static void test_bicubic_and_mean_fill(void **state) {
    (void)state;
    /* a ramp along x is reproduced by Catmull-Rom away from the edges */
    enum { h = 6, w = 8, K = 2 };
    float y[h * w], up[h * w * K * K];
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) y[r * w + c] = 0.1f * (float)c;
    assert_int_equal(gen_restore_bicubic(y, 1, h, w, K, up), GEN_OK);
    for (int r = 0; r < h * K; r++)
        for (int c = 4; c < w * K - 4; c++) /* output centre c + 0.5 = input (c + 0.5) / K */
            assert_true(fabs(up[r * w * K + c] - 0.1 * ((c + 0.5) / K - 0.5)) < 1e-5);
    /* mean-fill: the holes take the mean of the known pixels of their channel */
    float img[2 * 4] = {0.2f, 0.4f, 0.9f, 0.6f, 1.0f, 0.0f, 0.5f, 0.5f}, keep[4] = {1, 1, 0, 1}, out[8];
    gen_restore_mean_fill(img, keep, 2, 2, 2, out);
    assert_true(fabs(out[2] - 0.4f) < 1e-6 && fabs(out[6] - 0.5f) < 1e-6);
    assert_true(out[0] == 0.2f && out[1] == 0.4f && out[3] == 0.6f && out[4] == 1.0f);
}

/* ---- masks and degradations ---- */

static struct gen_restore_task inpaint_task(const char *mask) {
    return (struct gen_restore_task){.mode = GEN_RESTORE_INPAINT, .mask = mask};
}

static int hidden(const float *keep, int n) {
    int h = 0;
    for (int k = 0; k < n; k++) h += keep[k] < 0.5f;
    return h;
}

static void test_masks(void **state) {
    (void)state;
    enum { H = 28, W = 28 };
    float keep[H * W], again[H * W];
    struct gen_restore_task t = inpaint_task("centre");
    assert_int_equal(gen_restore_check(&t, 1, H, W), GEN_OK);
    gen_restore_mask(&t, 0, 0, H, W, keep);
    assert_int_equal(hidden(keep, H * W), 14 * 14);
    assert_true(keep[7 * W + 7] < 0.5f && keep[6 * W + 7] > 0.5f && keep[20 * W + 20] < 0.5f && keep[21 * W + 21] > 0.5f);
    t = inpaint_task("left");
    gen_restore_mask(&t, 0, 0, H, W, keep);
    assert_int_equal(hidden(keep, H * W), H * W / 2);
    assert_true(keep[0] < 0.5f && keep[W - 1] > 0.5f);
    /* strokes: seeded by (seed, index), a fifth to a half of the image */
    t = inpaint_task("strokes");
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        gen_restore_mask(&t, 7, i, H, W, keep);
        gen_restore_mask(&t, 7, i, H, W, again);
        assert_memory_equal(keep, again, sizeof keep);
        const int h = hidden(keep, H * W);
        assert_true(h > H * W / 20 && h < H * W / 2);
        gen_restore_mask(&t, 7, i + 1, H, W, again);
        differ += memcmp(keep, again, sizeof keep) != 0;
    }
    assert_int_equal(differ, 20);
    /* a mask image keeps its light pixels; another size is refused */
    uint8_t px[H * W];
    for (int k = 0; k < H * W; k++) px[k] = k % 3 ? 255 : 0;
    struct gen_image_set img = {.n = 1, .c = 1, .h = H, .w = W, .pixels = px, .n_classes = 1};
    t = inpaint_task("m.png");
    t.mask_image = &img;
    assert_int_equal(gen_restore_check(&t, 1, H, W), GEN_OK);
    gen_restore_mask(&t, 0, 0, H, W, keep);
    for (int k = 0; k < H * W; k++) assert_true((keep[k] > 0.5f) == (k % 3 != 0));
    assert_int_equal(gen_restore_check(&t, 1, 32, 32), GEN_ERR_FORMAT);
    t = inpaint_task("blob");
    assert_int_equal(gen_restore_check(&t, 1, H, W), GEN_ERR_USAGE);
    const struct gen_restore_task sr = {.mode = GEN_RESTORE_SUPERRES, .factor = 4};
    assert_int_equal(gen_restore_check(&sr, 1, 30, 30), GEN_ERR_USAGE);
}

static void test_degrade(void **state) {
    (void)state;
    enum { C = 2, H = 8, W = 8, D = C * H * W };
    float x[D], y[D], y2[D], keep[H * W];
    tu_fill_uniform(x, D, 0, 1, 11);
    /* superres: block means */
    const struct gen_restore_task sr = {.mode = GEN_RESTORE_SUPERRES, .factor = 4};
    gen_restore_degrade(&sr, 0, 0, C, H, W, x, y, NULL);
    double s = 0;
    for (int dy = 0; dy < 4; dy++)
        for (int dx = 0; dx < 4; dx++) s += x[H * W + (4 + dy) * W + dx];
    assert_true(fabs(y[4 + 2] - s / 16) < 1e-6); /* channel 1, block (1, 0) */
    float up[D];
    gen_restore_upsample_nearest(y, C, H, W, 4, up);
    assert_true(up[H * W + 5 * W + 3] == y[4 + 2]);
    /* denoise: x + sigma z, the same z for the same (seed, index) */
    const struct gen_restore_task dn = {.mode = GEN_RESTORE_DENOISE, .sigma = 0.3};
    gen_restore_degrade(&dn, 5, 3, C, H, W, x, y, NULL);
    gen_restore_degrade(&dn, 5, 3, C, H, W, x, y2, NULL);
    assert_memory_equal(y, y2, sizeof y);
    gen_restore_degrade(&dn, 5, 4, C, H, W, x, y2, NULL);
    assert_true(memcmp(y, y2, sizeof y) != 0);
    double ss = 0;
    for (int k = 0; k < D; k++) ss += (y[k] - x[k]) * (y[k] - x[k]);
    assert_true(sqrt(ss / D) > 0.2 && sqrt(ss / D) < 0.4);
    /* inpaint: holes mid grey, the rest the image */
    const struct gen_restore_task in = inpaint_task("top");
    gen_restore_degrade(&in, 0, 0, C, H, W, x, y, keep);
    for (int k = 0; k < D; k++) assert_true(y[k] == (keep[k % (H * W)] > 0.5f ? x[k] : GEN_RESTORE_HOLE));
    assert_int_equal(hidden(keep, H * W), H * W / 2);
}

static void test_tune_blur(void **state) {
    (void)state;
    enum { N = 8, H = 16, W = 16, D = H * W };
    float *x = malloc(N * D * sizeof *x);
    for (int i = 0; i < N; i++) /* smooth images: blobs */
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                x[i * D + y * W + xx] = (float)(0.5 + 0.4 * sin(0.3 * (xx + i)) * cos(0.25 * y));
    struct gen_restore_task t = {.mode = GEN_RESTORE_DENOISE, .sigma = 0.02};
    double low, high;
    assert_int_equal(gen_restore_tune_blur(&t, x, N, 1, H, W, 1, &low), GEN_OK);
    t.sigma = 0.5;
    assert_int_equal(gen_restore_tune_blur(&t, x, N, 1, H, W, 1, &high), GEN_OK);
    assert_true(low >= 0.5 && high <= 3.0 && high > low); /* more noise, more blur */
    free(x);
}

/* The low-pass projection: downsampling the result gives the target, also
 * when the box [-1, 1] has to clip. */
static void test_match_blocks(void **state) {
    (void)state;
    enum { C = 1, H = 8, W = 8, K = 4, D = H * W };
    float x[D], target[4] = {0.3f, -0.95f, 0.99f, -0.2f}, got[4];
    tu_fill_uniform(x, D, -1.5f, 1.5f, 2);
    gen_restore_match_blocks(x, C, H, W, K, target, 0.0f, 0.0f); /* unconstrained */
    gen_restore_downsample(x, C, H, W, K, got);
    for (int k = 0; k < 4; k++) assert_true(fabs(got[k] - target[k]) < 1e-6);
    tu_fill_uniform(x, D, -1.5f, 1.5f, 3);
    gen_restore_match_blocks(x, C, H, W, K, target, -1.0f, 1.0f);
    gen_restore_downsample(x, C, H, W, K, got);
    for (int k = 0; k < 4; k++) assert_true(fabs(got[k] - target[k]) < 1e-6);
    for (int k = 0; k < D; k++) assert_true(x[k] >= -1.0f && x[k] <= 1.0f);
}

/* ---- the modes on a tiny untrained model ---- */

struct tiny {
    struct gen_model em;
    struct gen_image_set set; /* 3 clean 8x8 grey test images */
};

static void tiny_build(struct tiny *t) {
    const struct gen_family *fam = gen_family_find("diffusion");
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    struct gen_config cfg = {0};
    char *argv[] = {"--base", "8", "--mults", "1,1,1", "--no-attn", "--timesteps", "20"};
    assert_int_equal(gen_config_parse(&cfg, tables, 7, argv), GEN_OK);
    const struct gen_data_shape shape = {.kind = GEN_DATA_IMAGES, .c = 1, .h = 8, .w = 8, .n_classes = 1};
    assert_int_equal(gen_model_create(&t->em, fam, &cfg, &shape, NULL, 1), GEN_OK);
    gen_config_free(&cfg);
    t->set = (struct gen_image_set){.n = 3, .c = 1, .h = 8, .w = 8, .n_classes = 1,
                                    .pixels = gen_alloc(3 * 64)};
    for (int k = 0; k < 3 * 64; k++) t->set.pixels[k] = (uint8_t)((k * 37) % 256);
}

static void tiny_free(struct tiny *t) {
    gen_image_set_free(&t->set);
    gen_model_free(&t->em);
}

/* Image r of the tiny set in [0, 1]. */
static void tiny_image(const struct tiny *t, int r, float *x) {
    const int32_t id = r;
    gen_images_batch(&t->set, &id, 1, x, 0.0f, 1.0f);
}

/* Runs a sampling mode (argv: sample options) on the tiny model's images
 * (clean: as test images, else as the user's own); the caller frees out. */
static enum gen_status tiny_run(struct tiny *t, int clean, const struct gen_image_set *inputs,
                                int argc, char **argv, struct gen_output *out) {
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_SAMPLE, t->em.fam, tables);
    struct gen_config opts = {0};
    assert_int_equal(gen_config_parse(&opts, tables, argc, argv), GEN_OK);
    const struct gen_dataset in = {.kind = GEN_DATA_IMAGES, .images = inputs, .clean = clean};
    const struct gen_request req = {.n = 2, .seed = 9, .inputs = &in};
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    memset(out, 0, sizeof *out);
    gen_clear_error();
    const enum gen_status st = t->em.fam->generate(t->em.m, &g, &opts, &req, out);
    gen_ctx_free(&g);
    gen_config_free(&opts);
    return st;
}

static void test_superres_consistency(void **state) {
    (void)state;
    struct tiny t;
    tiny_build(&t);
    struct gen_output out;
    char *argv[] = {"--superres", "2", "--steps", "3", "-n", "2"};
    assert_int_equal(tiny_run(&t, 1, &t.set, 6, argv, &out), GEN_OK);
    /* rows: [input | 2 results | original] */
    assert_int_equal(out.cols, 4);
    assert_int_equal(out.n_images, 12);
    const struct gen_restore_task sr = {.mode = GEN_RESTORE_SUPERRES, .factor = 2};
    float x[64], y[16], got[16];
    double worst = 0;
    for (int r = 0; r < 3; r++) {
        tiny_image(&t, r, x);
        gen_restore_degrade(&sr, 9, r, 1, 8, 8, x, y, NULL);
        assert_memory_equal(out.images + (r * 4 + 3) * 64, x, sizeof x); /* the original */
        for (int j = 1; j <= 2; j++) {
            const float *res = out.images + (r * 4 + j) * 64;
            gen_restore_downsample(res, 1, 8, 8, 2, got);
            for (int k = 0; k < 16; k++) worst = fmax(worst, fabs(got[k] - y[k]));
            for (int k = 0; k < 64; k++) assert_true(res[k] >= 0.0f && res[k] <= 1.0f);
        }
    }
    fprintf(stderr, "  superres x2: worst |down(result) - input| %.2e\n", worst);
    assert_true(worst < 1e-5); /* exact to float rounding, far below 2/255 */
    gen_free(out.images);

    /* the user's own 4x4 images: restored as they are, rows [input | 2 results] */
    struct gen_image_set low = {.n = 2, .c = 1, .h = 4, .w = 4, .n_classes = 1, .pixels = gen_alloc(32)};
    for (int k = 0; k < 32; k++) low.pixels[k] = (uint8_t)(k * 8);
    assert_int_equal(tiny_run(&t, 0, &low, 6, argv, &out), GEN_OK);
    assert_int_equal(out.cols, 3);
    for (int r = 0; r < 2; r++) {
        gen_restore_downsample(out.images + (r * 3 + 1) * 64, 1, 8, 8, 2, got);
        for (int k = 0; k < 16; k++) assert_true(fabs(got[k] - low.pixels[r * 16 + k] / 255.0f) < 1e-5);
    }
    gen_free(out.images);
    /* an image of another size is refused */
    assert_int_equal(tiny_run(&t, 0, &t.set, 6, argv, &out), GEN_ERR_FORMAT);
    gen_image_set_free(&low);
    tiny_free(&t);
}

static void test_inpaint_keeps_known_pixels(void **state) {
    (void)state;
    struct tiny t;
    tiny_build(&t);
    struct gen_output out;
    char *argv[] = {"--inpaint", "--mask", "strokes", "--steps", "4", "--resample", "2", "-n", "2"};
    assert_int_equal(tiny_run(&t, 1, &t.set, 9, argv, &out), GEN_OK);
    const struct gen_restore_task in = {.mode = GEN_RESTORE_INPAINT, .mask = "strokes"};
    float x[64], keep[64];
    int known = 0, changed = 0;
    for (int r = 0; r < 3; r++) {
        tiny_image(&t, r, x);
        gen_restore_mask(&in, 9, r, 8, 8, keep);
        for (int j = 1; j <= 2; j++)
            for (int k = 0; k < 64; k++) {
                const float v = out.images[(r * 4 + j) * 64 + k];
                if (keep[k] > 0.5f) assert_true(v == x[k]), known++; /* bit for bit */
                else changed += v != x[k];
            }
    }
    assert_true(known > 0 && changed > 0);
    gen_free(out.images);
    tiny_free(&t);
}

static void test_denoise_modes(void **state) {
    (void)state;
    struct tiny t;
    tiny_build(&t);
    struct gen_output a, b;
    char *argv[] = {"--denoise", "0.2", "--steps", "5", "-n", "2"};
    assert_int_equal(tiny_run(&t, 1, &t.set, 6, argv, &a), GEN_OK);
    assert_int_equal(tiny_run(&t, 1, &t.set, 6, argv, &b), GEN_OK);
    assert_int_equal(a.cols, 4);
    assert_memory_equal(a.images, b.images, (size_t)a.n_images * 64 * sizeof(float)); /* seeded */
    /* the input column is the test image plus the noise gen_restore_degrade draws */
    const struct gen_restore_task dn = {.mode = GEN_RESTORE_DENOISE, .sigma = 0.2};
    float x[64], y[64];
    tiny_image(&t, 1, x);
    gen_restore_degrade(&dn, 9, 1, 1, 8, 8, x, y, NULL);
    assert_memory_equal(a.images + 4 * 64, y, sizeof y);
    gen_free(a.images), gen_free(b.images);
    /* misuse: two modes, K = 3, --strength alone */
    char *two[] = {"--denoise", "0.2", "--superres", "2"};
    assert_int_equal(tiny_run(&t, 1, &t.set, 4, two, &a), GEN_ERR_USAGE);
    char *k3[] = {"--superres", "3", "--steps", "3"};
    assert_int_equal(tiny_run(&t, 1, &t.set, 4, k3, &a), GEN_ERR_USAGE);
    assert_non_null(strstr(gen_last_error(), "2 or 4"));
    char *strength[] = {"--strength", "0.5", "--steps", "3"};
    assert_int_equal(tiny_run(&t, 1, &t.set, 4, strength, &a), GEN_ERR_USAGE);
    tiny_free(&t);
}

int main(void) {
    gen_threads_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_psnr),
        cmocka_unit_test(test_ssim),
        cmocka_unit_test(test_blur),
        cmocka_unit_test(test_bicubic_and_mean_fill),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_degrade),
        cmocka_unit_test(test_tune_blur),
        cmocka_unit_test(test_match_blocks),
        cmocka_unit_test(test_superres_consistency),
        cmocka_unit_test(test_inpaint_keeps_known_pixels),
        cmocka_unit_test(test_denoise_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
