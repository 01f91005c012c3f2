/* test_plot.c - plots: metrics.jsonl -> loss.png drawn by cairo (size,
 * drawn pixels, series colours, text where the labels are, restarts, log
 * axis, errors), the same chart as well-formed SVG, thinning of long
 * curves, x/y charts with labelled points, the metrics reader (strict and
 * lenient, gen eval lines apart), the text buffer's escaping and base64,
 * and the CLI command. */
#include <dirent.h>
#include <math.h>
#include <stb_image.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gen/plot.h"
#include "gen/run.h"
#include "io/strbuf.h"
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

/* Dark pixels (text, not the light grid) in the box [x0, x1) x [y0, y1) of png. */
static long dark_pixels(const char *png, int x0, int y0, int x1, int y1) {
    int w, h, comp;
    uint8_t *px = stbi_load(png, &w, &h, &comp, 3);
    assert_non_null(px);
    long n = 0;
    for (int y = y0; y < y1 && y < h; y++)
        for (int x = x0; x < x1 && x < w; x++) {
            const uint8_t *p = px + 3 * ((long)y * w + x);
            n += p[0] < 140 && p[1] < 140 && p[2] < 140;
        }
    stbi_image_free(px);
    return n;
}

static void write_run(int steps, double scale) {
    FILE *f = fopen(tu_tmp_path("metrics.jsonl"), "w");
    assert_non_null(f);
    for (int s = 50; s <= steps; s += 50) {
        fprintf(f, "{\"step\":%d,\"loss\":%.6f,\"lr\":0.001,\"elapsed\":%d}\n", s,
                scale * (0.2 + 2.0 / s), s / 10);
        if (s % 200 == 0)
            fprintf(f, "{\"step\":%d,\"test_loss\":%.6f}\n", s, scale * (0.3 + 2.0 / s));
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
    assert_true(ink > 2000);            /* axes, ticks, text and curves */
    assert_true(ink < (long)w * h / 2); /* on a white background        */
    assert_true(blue > 300);            /* the loss curve               */
    count_pixels(tu_tmp_path("loss.png"), &w, &h, &ink, &orange, 255, 127, 14);
    assert_true(orange > 100); /* test_loss, the second series */
    /* text drawn by the font: the y-axis name up the left side, the title
     * top left, tick labels under the x axis; nothing dark in the empty
     * top right corner of the plot area */
    assert_true(dark_pixels(tu_tmp_path("loss.png"), 10, h / 2 - 30, 30, h / 2 + 30) > 20);
    assert_true(dark_pixels(tu_tmp_path("loss.png"), 60, 8, 300, 30) > 30);
    assert_true(dark_pixels(tu_tmp_path("loss.png"), 60, h - 45, w - 20, h - 25) > 60);
    assert_int_equal(dark_pixels(tu_tmp_path("loss.png"), w / 2, 60, w - 30, 120), 0);
    /* no temporary file (loss.png.tmp.PID) left behind */
    DIR *d = opendir(tu_tmp);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

static void test_plot_points_and_restart(void **state) {
    (void)state;
    /* 10 steps, then a fresh run from step 1 that reaches 4: 4 points, plus
     * gaps (null), a torn last line and a line without a step. */
    write_file("metrics.jsonl",
               "{\"step\":1,\"loss\":3}\n{\"step\":2,\"loss\":2.5}\n{\"step\":3,\"loss\":2}\n"
               "{\"step\":4,\"loss\":1.9}\n{\"step\":5,\"loss\":null}\n{\"step\":10,\"loss\":1}\n"
               "{\"loss\":7}\n"
               "{\"step\":1,\"loss\":3.1}\n{\"step\":2,\"loss\":2.4}\n{\"step\":3,\"loss_g\":1,"
               "\"loss\":2}\n"
               "{\"step\":4,\"loss\":1.8,\"fid\":12}\n{\"step\":5,\"lo");
    int64_t points = 0;
    assert_int_equal(
        gen_plot_file(tu_tmp_path("metrics.jsonl"), tu_tmp_path("a.png"), "t", &points), GEN_OK);
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

/* Elements of svg balance (<a>..</a>, <b/>), attribute values and text
 * hold no raw '<', and every '&' starts a character reference. */
static void assert_well_formed(const char *svg) {
    char stack[64][16];
    int depth = 0, elements = 0;
    for (const char *p = svg; *p; p++) {
        if (*p == '&') {
            assert_true(!strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) ||
                        !strncmp(p, "&gt;", 4) || !strncmp(p, "&quot;", 6) ||
                        !strncmp(p, "&#39;", 5));
            continue;
        }
        if (*p != '<') continue;
        const char *end = strchr(p, '>');
        assert_non_null(end);
        assert_null(memchr(p + 1, '<', (size_t)(end - p - 1)));
        char name[16] = {0};
        const int closing = p[1] == '/';
        sscanf(p + 1 + closing, "%15[a-z]", name);
        assert_true(name[0] != 0);
        if (closing) {
            assert_true(depth > 0);
            assert_string_equal(stack[--depth], name);
        } else if (end[-1] != '/') {
            assert_true(depth < 64);
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
        }
        elements++;
        p = end;
    }
    assert_int_equal(depth, 0);
    assert_true(elements > 10);
}

static void test_plot_svg(void **state) {
    (void)state;
    const double x[3] = {1, 2, 3}, y[3] = {0.5, 0.25, 0.125};
    const struct gen_plot_series s[2] = {{.name = "a <&> b", .n = 3, .x = x, .y = y, .plain = 1},
                                         {.name = "empty", .n = 0}};
    const struct gen_plot p = {.title = "t\xff\"", .ylabel = "nats", .series = s, .n = 2};
    char *svg = NULL;
    assert_int_equal(gen_plot_svg(&p, GEN_SVG_INLINE, &svg), GEN_OK);
    assert_well_formed(svg);
    assert_non_null(strstr(svg, ">a &lt;&amp;&gt; b</text>")); /* the legend, escaped */
    assert_null(strstr(svg, "empty"));                         /* a series of no points */
    assert_non_null(strstr(svg, "rotate(-90"));                /* the y-axis name */
    assert_non_null(strstr(svg, ">nats</text>"));
    assert_non_null(strstr(svg, "t\xef\xbf\xbd&quot;")); /* a stray byte as U+FFFD */
    assert_non_null(strstr(svg, "stroke=\"#1f77b4\""));
    assert_null(strstr(svg, "http"));
    gen_free(svg);
    assert_int_equal(gen_plot_svg(&p, GEN_SVG_FILE, &svg), GEN_OK);
    assert_non_null(strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\""));
    gen_free(svg);
    /* gen plot -o FILE.svg */
    write_run(400, 1.0);
    int64_t points = 0;
    assert_int_equal(
        gen_plot_file(tu_tmp_path("metrics.jsonl"), tu_tmp_path("l.svg"), "run", &points), GEN_OK);
    size_t n = 0;
    char *text = tu_read_file(tu_tmp_path("l.svg"), &n);
    assert_well_formed(text);
    assert_non_null(strstr(text, ">test_loss</text>"));
    free(text);
}

/* 100000 points become at most four per pixel column, and a one-point
 * spike survives the thinning. */
static void test_plot_thinning(void **state) {
    (void)state;
    enum { N = 100000 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) x[i] = i, y[i] = i == 54321 ? 100 : 1 + (i % 7) * 0.01;
    const struct gen_plot_series s = {.name = "long", .n = N, .x = x, .y = y, .plain = 1};
    const struct gen_plot p = {.series = &s, .n = 1, .width = 400, .height = 300};
    char *svg = NULL;
    assert_int_equal(gen_plot_svg(&p, GEN_SVG_INLINE, &svg), GEN_OK);
    const char *line = strstr(svg, "stroke-width=\"2\"");
    assert_non_null(line);
    const char *pts = strstr(svg, "<polyline points=\"");
    while (pts && strstr(pts + 1, "<polyline points=\"") &&
           strstr(pts + 1, "<polyline points=\"") < line)
        pts = strstr(pts + 1, "<polyline points=\"");
    int commas = 0;
    for (const char *c = pts; c < line; c++) commas += *c == ',';
    assert_true(commas > 100 && commas <= 4 * 400);
    assert_true(strlen(svg) < 60000);
    double top = 1e9; /* the spike: the smallest y of the curve is the plot's top */
    for (const char *c = strchr(pts, '"') + 1; c < line;
         c = strchr(c, ' ') ? strchr(c, ' ') + 1 : line) {
        double px, py;
        if (sscanf(c, "%lf,%lf", &px, &py) == 2 && py < top) top = py;
    }
    assert_true(top < 60);
    gen_free(svg);
    free(x), free(y);
}

/* gen_plot_xy as eval's guidance plot uses it: marked, labelled points. */
static void test_plot_xy(void **state) {
    (void)state;
    const double x[3] = {80, 90, 95}, y[3] = {12, 15, 25};
    const char *labels[3] = {"w=0", "w=1", "w=4"};
    const struct gen_plot_series s = {
        .name = "guidance w", .n = 3, .x = x, .y = y, .labels = labels};
    assert_int_equal(gen_plot_xy(tu_tmp_path("g.png"), "ckpt", "class accuracy %", "FID", &s, 1),
                     GEN_OK);
    int w, h;
    long ink, blue;
    count_pixels(tu_tmp_path("g.png"), &w, &h, &ink, &blue, 31, 119, 180);
    assert_int_equal(w, GEN_PLOT_WIDTH);
    assert_true(blue > 100);
    const double bad[1] = {NAN};
    const struct gen_plot_series nan = {.name = "nan", .n = 1, .x = bad, .y = y};
    assert_int_equal(gen_plot_xy(tu_tmp_path("n.png"), NULL, "x", NULL, &nan, 1), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "not finite"));
    assert_int_equal(gen_plot_xy(tu_tmp_path("n.png"), NULL, "x", NULL, &s, 0), GEN_ERR_USAGE);
    assert_int_equal(access(tu_tmp_path("n.png"), F_OK), -1);
}

/* The reader: curves of the training lines, gen eval's lines apart (the
 * largest step's values), the session values; strict mode names the line. */
static void test_metrics_log(void **state) {
    (void)state;
    write_file("metrics.jsonl",
               "{\"step\":10,\"loss\":3,\"lr\":0.1,\"elapsed\":1}\n"
               "{\"step\":20,\"loss\":2,\"lr\":0.1,\"elapsed\":2}\n"
               "{\"step\":20,\"test_loss\":2.5,\"elapsed\":2.5}\n"
               "{\"steps_timed\":20,\"median_step_ms\":4.5,\"elapsed\":3}\n"
               "{\"command\":\"eval\",\"step\":10,\"test_loss\":9}\n"
               "{\"command\":\"eval\",\"step\":20,\"test_loss\":2.4,\"fid\":null}\n"
               "{\"command\":\"eval\",\"step\":20,\"fid\":30}\n"
               "\n"
               "{\"step\":15,\"loss\":2.2}\n" /* a resume from step 10: replaces 20 */
               "{\"step\":30,\"lo");
    struct gen_metrics_log log;
    assert_int_equal(gen_metrics_log_read(tu_tmp_path("metrics.jsonl"), GEN_LOG_STRICT, &log),
                     GEN_OK);
    const struct gen_curve *loss = gen_metrics_log_curve(&log, "loss");
    assert_non_null(loss);
    assert_int_equal(loss->n, 2);
    assert_true(loss->x[1] == 15 && loss->y[1] == 2.2);
    assert_non_null(gen_metrics_log_curve(&log, "lr"));
    assert_int_equal(gen_metrics_log_curve(&log, "test_loss")->n, 1); /* eval's are apart */
    assert_null(gen_metrics_log_curve(&log, "elapsed"));
    assert_int_equal(log.eval_step, 20);
    assert_int_equal(log.eval.n, 2);
    assert_true(gen_values_get(&log.eval, "test_loss")->value == 2.4);
    assert_true(gen_values_get(&log.eval, "fid")->value == 30);
    assert_true(gen_values_get(&log.session, "median_step_ms")->value == 4.5);
    assert_true(log.elapsed == 3);
    gen_metrics_log_free(&log);

    write_file("metrics.jsonl", "{\"step\":1,\"loss\":3}\nnot json\n{\"step\":2,\"loss\":2}\n");
    assert_int_equal(gen_metrics_log_read(tu_tmp_path("metrics.jsonl"), GEN_LOG_STRICT, &log),
                     GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "metrics.jsonl:2: not a JSON object"));
    assert_int_equal(gen_metrics_log_read(tu_tmp_path("metrics.jsonl"), GEN_LOG_LENIENT, &log),
                     GEN_OK);
    assert_int_equal(gen_metrics_log_curve(&log, "loss")->n, 2);
    gen_metrics_log_free(&log);
    write_file("metrics.jsonl", "\x01\x02"
                                "binary");
    assert_int_equal(gen_metrics_log_read(tu_tmp_path("metrics.jsonl"), GEN_LOG_STRICT, &log),
                     GEN_ERR_FORMAT);
}

static void test_strbuf(void **state) {
    (void)state;
    struct gen_strbuf b = {0};
    gen_strbuf_escape(&b, "<a href='x'>&\"\x01\tok\xc3\xa9\xc3\xed\xa0\x80</a>", 28);
    assert_string_equal(b.s, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;\tok\xc3\xa9\xef\xbf\xbd"
                             "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd&lt;/a&gt;");
    gen_strbuf_free(&b);
    const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        gen_strbuf_base64(&b, (const uint8_t *)in[i], strlen(in[i]));
        assert_string_equal(b.s ? b.s : "", out[i]);
        gen_strbuf_free(&b);
    }
    for (int i = 0; i < 300; i++)
        gen_strbuf_printf(&b, "%04d,", i); /* grows past its first block */
    assert_int_equal(b.len, 1500);
    assert_int_equal(strncmp(b.s + 1495, "0299,", 5), 0);
    gen_strbuf_free(&b);
    gen_alloc_fail_after(1); /* a failed allocation sticks */
    gen_strbuf_put(&b, "x", 1);
    gen_strbuf_put(&b, "y", 1);
    assert_true(b.failed);
    gen_alloc_fail_after(0);
    gen_strbuf_free(&b);
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
    assert_int_equal(gen_cli_main(3, (char *[]){"gen", "plot", (char *)tu_tmp_path("none"), NULL}),
                     1);
}

int main(void) {
    gen_threads_init(1); /* small problems: threads only add contention */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plot_writes_png, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_points_and_restart, tu_tmp_setup,
                                        tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_log_axis_and_single_point, tu_tmp_setup,
                                        tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_errors, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plot_svg, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test(test_plot_thinning),
        cmocka_unit_test_setup_teardown(test_plot_xy, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_log, tu_tmp_setup, tu_tmp_teardown),
        cmocka_unit_test(test_strbuf),
        cmocka_unit_test_setup_teardown(test_plot_cli, tu_tmp_setup, tu_tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
