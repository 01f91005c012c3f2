/* test_plot.c - gen plot: metrics.jsonl -> loss.png (size, drawn pixels,
 * series colours, restarts, log axis, errors) and the CLI command. */
#include <stb_image.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gen/plot.h"
#include "testutil.h"

static void write_file(const char *name, const char *text) {
    tu_write_file(tu_tmp_path(name), text, strlen(text));
}

/* Pixels of loss.png: counts of non-white pixels and of pixels near rgb. */
static void count_pixels(const char *png, int *w, int *h, long *ink, long *near, int r, int g,
                         int b) {
    int comp;
    uint8_t *px = stbi_load(png, w, h, &comp, 3);
    assert_non_null(px);
    *ink = *near = 0;
    for (long i = 0; i < (long)*w * *h; i++) {
        const uint8_t *p = px + 3 * i;
        if (p[0] != 255 || p[1] != 255 || p[2] != 255) (*ink)++;
        if (abs(p[0] - r) < 8 && abs(p[1] - g) < 8 && abs(p[2] - b) < 8) (*near)++;
    }
    stbi_image_free(px);
}

static void write_run(int steps, double scale) {
    FILE *f = fopen(tu_tmp_path("metrics.jsonl"), "w");
    assert_non_null(f);
    for (int s = 50; s <= steps; s += 50) {
        fprintf(f, "{\"step\":%d,\"loss\":%.6f,\"lr\":0.001,\"elapsed\":%d}\n", s,
                scale * (0.2 + 2.0 / s), s / 10);
        if (s % 200 == 0) fprintf(f, "{\"step\":%d,\"test_loss\":%.6f}\n", s, scale * (0.3 + 2.0 / s));
    }
    fclose(f);
}

static void test_plot_writes_png(void **state) {
    (void)state;
    write_run(1000, 1.0);
    assert_int_equal(gen_plot_metrics(tu_tmp), GEN_OK);
    int w, h;
    long ink, blue, orange;
    count_pixels(tu_tmp_path("loss.png"), &w, &h, &ink, &blue, 31, 119, 180);
    assert_int_equal(w, GEN_PLOT_WIDTH);
    assert_int_equal(h, GEN_PLOT_HEIGHT);
    assert_true(ink > 2000);           /* axes, ticks, text and curves */
    assert_true(ink < (long)w * h / 2); /* on a white background        */
    assert_true(blue > 300);           /* the loss curve               */
    count_pixels(tu_tmp_path("loss.png"), &w, &h, &ink, &orange, 255, 127, 14);
    assert_true(orange > 100); /* test_loss, the second series */
    /* no temporary file left behind */
    assert_int_equal(access(tu_tmp_path("loss.png.tu_tmp"), F_OK), -1);
}

static void test_plot_points_and_restart(void **state) {
    (void)state;
    /* 10 steps, then a fresh run from step 1 that reaches 4: 4 points, plus
     * gaps (null), a torn last line and a line without a step. */
    write_file("metrics.jsonl",
               "{\"step\":1,\"loss\":3}\n{\"step\":2,\"loss\":2.5}\n{\"step\":3,\"loss\":2}\n"
               "{\"step\":4,\"loss\":1.9}\n{\"step\":5,\"loss\":null}\n{\"step\":10,\"loss\":1}\n"
               "{\"loss\":7}\n"
               "{\"step\":1,\"loss\":3.1}\n{\"step\":2,\"loss\":2.4}\n{\"step\":3,\"loss_g\":1,\"loss\":2}\n"
               "{\"step\":4,\"loss\":1.8,\"fid\":12}\n{\"step\":5,\"lo");
    int64_t points = 0;
    assert_int_equal(gen_plot_file(tu_tmp_path("metrics.jsonl"), tu_tmp_path("a.png"), "t", &points),
                     GEN_OK);
    assert_int_equal(points, 5); /* loss 1..4, loss_g at 3 */
}

static void test_plot_log_axis_and_single_point(void **state) {
    (void)state;
    write_run(5000, 1000.0); /* 1000x range: a log axis */
    assert_int_equal(gen_plot_metrics(tu_tmp), GEN_OK);
    int w, h;
    long ink, blue;
    count_pixels(tu_tmp_path("loss.png"), &w, &h, &ink, &blue, 31, 119, 180);
    assert_true(blue > 300);
    write_file("metrics.jsonl", "{\"step\":7,\"loss\":0.5}\n");
    assert_int_equal(gen_plot_metrics(tu_tmp), GEN_OK);
    count_pixels(tu_tmp_path("loss.png"), &w, &h, &ink, &blue, 31, 119, 180);
    assert_true(blue > 10);
}

static void test_plot_errors(void **state) {
    (void)state;
    assert_int_equal(gen_plot_metrics(tu_tmp_path("nothing-here")), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "nothing-here/metrics.jsonl"));
    write_file("metrics.jsonl", "{\"step\":1,\"fid\":3}\nnot json\n");
    assert_int_equal(gen_plot_metrics(tu_tmp), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "no loss values"));
    write_file("metrics.jsonl", "");
    assert_int_equal(gen_plot_metrics(tu_tmp), GEN_ERR_FORMAT);
}

static void test_plot_cli(void **state) {
    (void)state;
    write_run(300, 1.0);
    char out[4096];
    snprintf(out, sizeof out, "%s/other.png", tu_tmp);
    assert_int_equal(gen_cli_main(5, (char *[]){"gen", "plot", tu_tmp, "-o", out, NULL}), 0);
    assert_int_equal(access(out, F_OK), 0);
    assert_int_equal(gen_cli_main(4, (char *[]){"gen", "plot", tu_tmp, "-q", NULL}), 0);
    assert_int_equal(access(tu_tmp_path("loss.png"), F_OK), 0);
    assert_int_equal(gen_cli_main(2, (char *[]){"gen", "plot", NULL}), 2);
    assert_int_equal(gen_cli_main(4, (char *[]){"gen", "plot", tu_tmp, "--bogus", NULL}), 2);
    assert_int_equal(gen_cli_main(4, (char *[]){"gen", "plot", tu_tmp, "extra", NULL}), 2);
    assert_int_equal(gen_cli_main(4, (char *[]){"gen", "plot", tu_tmp, "-o", NULL}), 2);
    assert_int_equal(gen_cli_main(3, (char *[]){"gen", "plot", (char *)tu_tmp_path("none"), NULL}), 1);
}

int main(void) {
    gen_threads_init(1); /* small problems: threads only add contention */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plot_writes_png, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_points_and_restart, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_log_axis_and_single_point, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_errors, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_cli, tu_tmp_setup, tu_tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
