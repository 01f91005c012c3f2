/* test_png.c - PNG grids and per-image files, read back with stb_image. */
#include <math.h>
#include <stb_image.h>
#include <string.h>

#include "gen/io.h"
#include "testutil.h"

static void test_grid_size(void **state) {
    (void)state;
    int cols, rows, w, h;
    gen_png_grid_size(64, 28, 28, &cols, &rows, &w, &h);
    assert_int_equal(cols, 8);
    assert_int_equal(rows, 8);
    assert_int_equal(w, 8 * 30 + 2);
    assert_int_equal(h, 8 * 30 + 2);
    gen_png_grid_size(10, 5, 7, &cols, &rows, &w, &h);
    assert_int_equal(cols, 4);
    assert_int_equal(rows, 3);
    assert_int_equal(w, 4 * 9 + 2);
    assert_int_equal(h, 3 * 7 + 2);
    gen_png_grid_size(1, 3, 3, &cols, &rows, &w, &h);
    assert_int_equal(cols * rows, 1);
    assert_int_equal(w, 7);
}

/* Image i, channel k, pixel (y, x) has value i/10 + k/100 + (y*w+x)/1000
 * in [0, 1]; image 1 (if any) is out of range and NaN in places. */
static float value(int i, int k, int p) { return (float)i / 10 + (float)k / 100 + (float)p / 1000; }

static void check_grid(int n, int c, int h, int w) {
    size_t per = (size_t)c * h * w;
    float *img = malloc(per * n * sizeof *img);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++)
            for (int p = 0; p < h * w; p++) img[i * per + k * h * w + p] = value(i, k, p);
    if (n > 1) {
        img[per] = -5.0f;    /* image 1, first pixel: clamps to 0 */
        img[per + 1] = 7.0f; /* clamps to 255 */
        img[per + 2] = NAN;  /* becomes 0 */
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/grid-%d-%d.png", tu_tmp, n, c);
    assert_int_equal(gen_png_write_grid(path, img, n, c, h, w, 0.0f, 1.0f), GEN_OK);
    int gw, gh, comp, cols, rows, ew, eh;
    uint8_t *px = stbi_load(path, &gw, &gh, &comp, 0);
    assert_non_null(px);
    gen_png_grid_size(n, h, w, &cols, &rows, &ew, &eh);
    assert_int_equal(gw, ew);
    assert_int_equal(gh, eh);
    assert_int_equal(comp, c);
    for (int i = 0; i < n; i++) {
        int x0 = 2 + (i % cols) * (w + 2), y0 = 2 + (i / cols) * (h + 2);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) {
                    int got = px[((y0 + y) * gw + x0 + x) * c + k];
                    int p = y * w + x;
                    float v = img[i * per + k * h * w + p];
                    int want = v != v ? 0 : v <= 0 ? 0 : v >= 1 ? 255 : (int)(v * 255 + 0.5f);
                    if (abs(got - want) > 0) fail_msg("image %d (%d,%d,%d): %d != %d", i, y, x, k, got, want);
                }
    }
    /* Borders and empty cells are black. */
    for (int x = 0; x < gw * c; x++) assert_int_equal(px[x], 0);
    if (n < cols * rows) {
        int i = cols * rows - 1;
        int x0 = 2 + (i % cols) * (w + 2), y0 = 2 + (i / cols) * (h + 2);
        assert_int_equal(px[(y0 * gw + x0) * c], 0);
    }
    stbi_image_free(px);
    free(img);
}

static void test_grid_pixels(void **state) {
    (void)state;
    check_grid(10, 1, 5, 7);
    check_grid(4, 3, 6, 6);
    check_grid(1, 3, 2, 3);
}

static void test_each_and_folder(void **state) {
    (void)state;
    float img[3 * 2 * 4 * 4];
    for (int i = 0; i < 3 * 2 * 4 * 4; i++) img[i] = (float)(i % 32) / 31.0f * 2 - 1;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/samples/deep", tu_tmp);
    assert_int_equal(gen_png_write_each(dir, "s", img, 2, 3, 4, 4, -1.0f, 1.0f), GEN_OK);
    char p[1100];
    snprintf(p, sizeof p, "%s/s00001.png", dir);
    int w, h, comp;
    uint8_t *px = stbi_load(p, &w, &h, &comp, 0);
    assert_non_null(px);
    assert_int_equal(w, 4);
    assert_int_equal(h, 4);
    assert_int_equal(comp, 3);
    stbi_image_free(px);
    struct gen_image_set s;
    assert_int_equal(gen_png_load_folder(dir, 3, 0, &s), GEN_OK);
    assert_int_equal(s.n, 2);
    /* The round trip float -> PNG -> uint8 -> float is within half a step. */
    float back[2 * 48];
    const int32_t idx[2] = {0, 1};
    gen_images_batch(&s, idx, 2, back, -1.0f, 1.0f);
    for (int i = 0; i < 96; i++) assert_float_equal(back[i], img[i], 1.0 / 255 + 1e-6);
    gen_image_set_free(&s);
}

static void test_errors(void **state) {
    (void)state;
    float img[4] = {0};
    char p[1100];
    snprintf(p, sizeof p, "%s/missing/dir/g.png", tu_tmp);
    assert_int_equal(gen_png_write_grid(p, img, 1, 1, 2, 2, 0, 1), GEN_ERR_IO);
    assert_int_equal(strncmp(gen_last_error(), p, strlen(p)), 0);
    assert_int_equal(gen_png_write_grid(p, img, 1, 2, 2, 2, 0, 1), GEN_ERR_USAGE);
    assert_int_equal(gen_png_write_grid(p, img, 0, 1, 2, 2, 0, 1), GEN_ERR_USAGE);
    /* A file where the folder should be. */
    snprintf(p, sizeof p, "%s/afile", tu_tmp);
    FILE *f = fopen(p, "w");
    fclose(f);
    assert_int_equal(gen_png_write_each(p, "x", img, 1, 1, 2, 2, 0, 1), GEN_ERR_IO);
    uint8_t px[4] = {1, 2, 3, 4};
    snprintf(p, sizeof p, "%s/plain.png", tu_tmp);
    assert_int_equal(gen_png_write(p, 2, 2, 1, px), GEN_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_size),
        cmocka_unit_test(test_grid_pixels),
        cmocka_unit_test(test_each_and_folder),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
