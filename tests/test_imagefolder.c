/* test_imagefolder.c - image folders: decoding PNG/BMP in grey, grey+alpha,
 * RGB and RGBA; channel conversion; crop and resize; subfolder labels;
 * the every-10th holdout; undecodable files and empty folders. */
#include <stb_image_write.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen/data.h"
#include "gen/io.h"
#include "testutil.h"

/* A fresh directory under tu_tmp. */
static const char *fresh(const char *name) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", tu_tmp, name);
    tu_rmtree(buf);
    assert_int_equal(gen_mkdir_p(buf), GEN_OK);
    return buf;
}

static void put(const char *dir, const char *name, int w, int h, int comp, const uint8_t *px) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    assert_int_equal(gen_mkdir_p(p), GEN_OK);
    *slash = '/';
    int ok = strstr(name, ".bmp") ? stbi_write_bmp(p, w, h, comp, px)
                                  : stbi_write_png(p, w, h, comp, px, w * comp);
    assert_true(ok);
}

static void put_solid(const char *dir, const char *name, int w, int h, int comp,
                      const uint8_t *value) {
    uint8_t *px = malloc((size_t)w * h * comp);
    for (int i = 0; i < w * h; i++) memcpy(px + i * comp, value, (size_t)comp);
    put(dir, name, w, h, comp, px);
    free(px);
}

static void put_bytes(const char *dir, const char *name, const uint8_t *b, size_t n);

static void put_text(const char *dir, const char *name, const char *text) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_conversion(void **state) {
    (void)state;
    const char *d = fresh("conv");
    put_solid(d, "a_grey.png", 4, 4, 1, (const uint8_t[]){100});
    put_solid(d, "b_rgb.png", 4, 4, 3, (const uint8_t[]){200, 100, 50});
    put_solid(d, "c_rgba.png", 4, 4, 4, (const uint8_t[]){255, 0, 0, 128});
    put_solid(d, "d_greyalpha.png", 4, 4, 2, (const uint8_t[]){200, 51});
    put_solid(d, "e_rgb.bmp", 4, 4, 3, (const uint8_t[]){10, 20, 30});
    struct gen_image_set s;
    assert_int_equal(gen_imagefolder_load(d, GEN_SPLIT_ALL, 3, 0, &s), GEN_OK);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.c, 3);
    assert_int_equal(s.h, 4);
    assert_int_equal(s.w, 4);
    assert_int_equal(s.n_classes, 1);
    assert_string_equal(s.class_names[0], ".");
    const uint8_t want3[5][3] = {{100, 100, 100}, {200, 100, 50}, {128, 0, 0}, {40, 40, 40},
                                 {10, 20, 30}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.labels[i], 0);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 16; p++)
                assert_int_equal(s.pixels[(i * 3 + c) * 16 + p], want3[i][c]);
    }
    gen_image_set_free(&s);
    assert_int_equal(gen_imagefolder_load(d, GEN_SPLIT_ALL, 1, 0, &s), GEN_OK);
    assert_int_equal(s.c, 1);
    /* luma 0.299 R + 0.587 G + 0.114 B, alpha onto black */
    const uint8_t want1[5] = {100, 124, 38, 40, 18};
    for (int i = 0; i < 5; i++)
        for (int p = 0; p < 16; p++) assert_int_equal(s.pixels[i * 16 + p], want1[i]);
    gen_image_set_free(&s);
    /* channels 0: the data's, from the first image (grey here: 1) */
    assert_int_equal(gen_imagefolder_load(d, GEN_SPLIT_ALL, 0, 0, &s), GEN_OK);
    assert_int_equal(s.c, 1);
    gen_image_set_free(&s);
    struct gen_image_set one;
    char path[2048];
    snprintf(path, sizeof path, "%s/b_rgb.png", d);
    assert_int_equal(gen_image_file_load(path, 0, 0, &one), GEN_OK);
    assert_int_equal(one.c, 3);
    gen_image_set_free(&one);
    const char *rgb = fresh("conv-rgb");
    put_solid(rgb, "a_rgb.png", 4, 4, 3, (const uint8_t[]){200, 100, 50});
    put_solid(rgb, "b_grey.png", 4, 4, 1, (const uint8_t[]){100});
    assert_int_equal(gen_imagefolder_load(rgb, GEN_SPLIT_ALL, 0, 0, &s), GEN_OK);
    assert_int_equal(s.c, 3);
    gen_image_set_free(&s);
}

static void test_crop_and_resize(void **state) {
    (void)state;
    const char *d = fresh("resize");
    /* 8 wide, 4 high: columns 0..3 are 0, 4..7 are 255; the centre crop
     * keeps columns 2..5. */
    uint8_t px[32];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++) px[y * 8 + x] = x < 4 ? 0 : 255;
    put(d, "wide.png", 8, 4, 1, px);
    struct gen_image_set s;
    assert_int_equal(gen_imagefolder_load(d, GEN_SPLIT_ALL, 1, 2, &s), GEN_OK);
    assert_int_equal(s.h, 2);
    assert_int_equal(s.w, 2);
    const uint8_t shrunk[4] = {0, 255, 0, 255};
    assert_memory_equal(s.pixels, shrunk, 4);
    gen_image_set_free(&s);
    /* Growing is bilinear with half-pixel centres. */
    assert_int_equal(gen_imagefolder_load(d, GEN_SPLIT_ALL, 1, 8, &s), GEN_OK);
    const uint8_t row[8] = {0, 0, 0, 64, 191, 255, 255, 255};
    for (int y = 0; y < 8; y++) assert_memory_equal(s.pixels + y * 8, row, 8);
    gen_image_set_free(&s);

    /* Non-integer shrink keeps a flat image flat (weights sum to one). */
    const char *d2 = fresh("resize2");
    put_solid(d2, "flat.png", 7, 5, 3, (const uint8_t[]){77, 78, 79});
    assert_int_equal(gen_imagefolder_load(d2, GEN_SPLIT_ALL, 3, 3, &s), GEN_OK);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 9; p++) assert_int_equal(s.pixels[c * 9 + p], 77 + c);
    gen_image_set_free(&s);

    /* Direct float resize: 2 -> 4 along x, 1 -> 1 along y. */
    const float src[2] = {0.0f, 1.0f};
    float dst[4];
    assert_int_equal(gen_resize_f32(src, 1, 1, 2, dst, 1, 4), GEN_OK);
    const float want[4] = {0.0f, 0.25f, 0.75f, 1.0f};
    for (int i = 0; i < 4; i++) assert_float_equal(dst[i], want[i], 1e-6);

    /* Different native sizes without a requested size: error naming one. */
    put_solid(d2, "small.png", 3, 3, 3, (const uint8_t[]){1, 2, 3});
    assert_int_equal(gen_imagefolder_load(d2, GEN_SPLIT_ALL, 3, 0, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "small.png"));
    assert_null(s.pixels);
}

static void test_labels_and_order(void **state) {
    (void)state;
    const char *d = fresh("classes");
    const uint8_t v[1] = {0};
    put_solid(d, "dog/c.png", 2, 2, 1, (const uint8_t[]){30});
    put_solid(d, "dog/sub/d.png", 2, 2, 1, (const uint8_t[]){40});
    put_solid(d, "cat/b.png", 2, 2, 1, (const uint8_t[]){20});
    put_solid(d, "cat/a.png", 2, 2, 1, (const uint8_t[]){10});
    put_solid(d, ".hidden/x.png", 2, 2, 1, v);
    put_text(d, "notes.txt", "not an image");
    char p[1100];
    snprintf(p, sizeof p, "%s/empty", d);
    mkdir(p, 0777);
    struct gen_image_set s;
    assert_int_equal(gen_images_load(d, GEN_SPLIT_ALL, 1, 0, &s), GEN_OK);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.n_classes, 2);
    assert_string_equal(s.class_names[0], "cat");
    assert_string_equal(s.class_names[1], "dog");
    const int32_t labels[4] = {0, 0, 1, 1};
    const uint8_t first[4] = {10, 20, 30, 40};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s.labels[i], labels[i]);
        assert_int_equal(s.pixels[i * 4], first[i]);
    }
    gen_image_set_free(&s);
    /* Images directly in the folder form class "." first. */
    put_solid(d, "z.png", 2, 2, 1, (const uint8_t[]){50});
    assert_int_equal(gen_images_load(d, GEN_SPLIT_ALL, 1, 0, &s), GEN_OK);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.n_classes, 3);
    assert_string_equal(s.class_names[0], ".");
    assert_int_equal(s.labels[0], 0);
    assert_int_equal(s.pixels[0], 50);
    assert_int_equal(s.labels[4], 2);
    gen_image_set_free(&s);
}

static void test_holdout(void **state) {
    (void)state;
    const char *d = fresh("split");
    char name[64];
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "a/%02d.png", i);
        put_solid(d, name, 2, 2, 1, (const uint8_t[]){(uint8_t)i});
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "b/%02d.png", i);
        put_solid(d, name, 2, 2, 1, (const uint8_t[]){(uint8_t)(100 + i)});
    }
    struct gen_image_set tr, te;
    assert_int_equal(gen_images_load(d, GEN_SPLIT_TRAIN, 1, 0, &tr), GEN_OK);
    assert_int_equal(gen_images_load(d, GEN_SPLIT_TEST, 1, 0, &te), GEN_OK);
    assert_int_equal(tr.n, 28);
    assert_int_equal(te.n, 2);
    assert_int_equal(te.pixels[0], 9);
    assert_int_equal(te.pixels[4], 19);
    assert_int_equal(tr.labels[27], 1);
    gen_image_set_free(&tr);
    gen_image_set_free(&te);
    /* Too few images for a test split. */
    const char *d2 = fresh("split2");
    put_solid(d2, "x.png", 2, 2, 1, (const uint8_t[]){1});
    assert_int_equal(gen_images_load(d2, GEN_SPLIT_TEST, 1, 0, &te), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "test split is empty"));
}

static void test_bad_inputs(void **state) {
    (void)state;
    struct gen_image_set s;
    const char *d = fresh("emptydir");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", d);
    assert_int_equal(gen_images_load(dir, 1, 3, 0, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "no images found"));
    assert_int_equal(strncmp(gen_last_error(), dir, strlen(dir)), 0);
    put_text(dir, "readme.txt", "hello");
    assert_int_equal(gen_images_load(dir, 1, 3, 0, &s), GEN_ERR_FORMAT);
    /* A file with an image name that does not decode. */
    put_solid(dir, "good.png", 2, 2, 3, (const uint8_t[]){1, 2, 3});
    put_text(dir, "broken.png", "\x89PNG\r\n\x1a\n garbage garbage");
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_ALL, 3, 0, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "broken.png: cannot decode image"));
    assert_null(s.pixels);
    /* stb names an unknown chunk by its four bytes: a newline among them
     * must not reach the one-line message. */
    static const uint8_t chunk[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                    'I', 'H', 'D', 'R', 0, 0, 0, 2, 0, 0, 0, 2, 8, 0, 0, 0, 0,
                                    0x43, 0x5f, 0x6d, 0x13, 0, 0, 0, 0, '\n', 'x', '\n', '\033',
                                    0, 0, 0, 0};
    put_bytes(dir, "broken.png", chunk, sizeof chunk);
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_ALL, 3, 0, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "broken.png: cannot decode image"));
    assert_null(strpbrk(gen_last_error(), "\n\033"));
    /* An IDAT chunk claiming 1.6 GB in a 57-byte file: refused before stb
     * sizes a buffer by it. */
    static const uint8_t idat[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                   'I', 'H', 'D', 'R', 0, 0, 0, 16, 0, 0, 0, 2, 1, 0, 0, 0, 0,
                                   0, 0, 0, 0, 0x61, 0, 0, 0x0e, 'I', 'D', 'A', 'T', 0x78, 0x9c,
                                   0x63, 0x58, 0, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0, 0, 0, 0};
    put_bytes(dir, "broken.png", idat, sizeof idat);
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_ALL, 3, 0, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "broken.png: truncated or corrupt PNG"));
    put_text(dir, "broken.png", "");
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_ALL, 3, 0, &s), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "broken.png"));
    /* Missing folder, bad channels. */
    snprintf(dir, sizeof dir, "%s/nope", tu_tmp);
    assert_int_equal(gen_images_load(dir, 1, 3, 0, &s), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "no such directory"));
    assert_int_equal(gen_images_load(tu_tmp, 1, 2, 0, &s), GEN_ERR_USAGE);
    /* Fault injection: every allocation failing in turn fails cleanly. */
    const char *d2 = fresh("faults");
    put_solid(d2, "a/x.png", 3, 2, 3, (const uint8_t[]){1, 2, 3});
    put_solid(d2, "b/y.png", 3, 2, 3, (const uint8_t[]){4, 5, 6});
    for (long k = 1; k < 200; k++) {
        gen_alloc_fail_after(k);
        enum gen_status st = gen_images_load(d2, GEN_SPLIT_ALL, 1, 4, &s);
        gen_alloc_fail_after(0);
        if (st == GEN_OK) {
            assert_int_equal(s.n, 2);
            gen_image_set_free(&s);
            break;
        }
        assert_int_equal(st, GEN_ERR_NOMEM);
        assert_null(s.pixels);
    }
}

/* ---- hostile folders ---- */

static void put_bytes(const char *dir, const char *name, const uint8_t *b, size_t n) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    tu_write_file(p, b, n);
}

static void le32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* A 24-bit BMP header (BITMAPINFOHEADER) for w x h (h < 0: top-down)
 * followed by `data` bytes of pixels; returns the file length. */
static size_t bmp_header(uint8_t *b, int32_t w, int32_t h, uint32_t data) {
    memset(b, 0, 54);
    b[0] = 'B', b[1] = 'M';
    le32(b + 2, 54 + data);
    le32(b + 10, 54);
    le32(b + 14, 40);
    le32(b + 18, (uint32_t)w);
    le32(b + 22, (uint32_t)h);
    b[26] = 1;  /* planes */
    b[28] = 24; /* bits per pixel */
    le32(b + 34, data);
    return 54 + data;
}

/* A FIFO named like an image is refused at once, not read (alarm turns a
 * hang into a failure). */
static void test_fifo(void **state) {
    (void)state;
    const char *d = fresh("fifo");
    put_solid(d, "a.png", 2, 2, 1, (const uint8_t[]){7});
    char p[2048];
    snprintf(p, sizeof p, "%s/b.png", d);
    assert_int_equal(mkfifo(p, 0600), 0);
    struct gen_image_set s;
    alarm(10);
    assert_int_equal(gen_imagefolder_load(d, GEN_SPLIT_ALL, 1, 0, &s), GEN_ERR_IO);
    alarm(0);
    assert_non_null(strstr(gen_last_error(), "b.png: not a regular file"));
    assert_null(s.pixels);
}

/* Directory symlinks back up the tree are walked once: one image and five
 * `ln -s . loopN` is one image; a class folder linking to its parent adds
 * nothing. */
static void test_symlink_loops(void **state) {
    (void)state;
    const char *d = fresh("loops");
    char dir[1024], p[2048];
    snprintf(dir, sizeof dir, "%s", d);
    put_solid(dir, "a.png", 2, 2, 1, (const uint8_t[]){9});
    for (int i = 1; i <= 5; i++) {
        snprintf(p, sizeof p, "%s/loop%d", dir, i);
        assert_int_equal(symlink(".", p), 0);
    }
    struct gen_image_set s;
    alarm(20);
    assert_int_equal(gen_imagefolder_load(dir, GEN_SPLIT_ALL, 1, 0, &s), GEN_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.n_classes, 1);
    gen_image_set_free(&s);
    put_solid(dir, "sub/b.png", 2, 2, 1, (const uint8_t[]){9});
    snprintf(p, sizeof p, "%s/sub/up", dir);
    assert_int_equal(symlink("..", p), 0);
    snprintf(p, sizeof p, "%s/sub/self", dir);
    assert_int_equal(symlink("../sub", p), 0);
    assert_int_equal(gen_imagefolder_load(dir, GEN_SPLIT_ALL, 1, 0, &s), GEN_OK);
    alarm(0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.n_classes, 2);
    gen_image_set_free(&s);
}

/* Loads a fresh folder that holds one file, `name`, of these bytes. */
static enum gen_status load_one(const char *name, const uint8_t *b, size_t n, int channels,
                                struct gen_image_set *s) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", fresh(name));
    put_bytes(dir, name, b, n);
    return gen_imagefolder_load(dir, GEN_SPLIT_ALL, channels, 0, s);
}

/* Sizes come from the header, checked before decoding: a 100-byte BMP
 * claiming 8000x8000 and a PNG header claiming 65535x65535 are refused
 * with their size; a top-down BMP (negative height) decodes. */
static void test_claimed_sizes(void **state) {
    (void)state;
    struct gen_image_set s;
    uint8_t b[128] = {0};
    size_t n = bmp_header(b, 8000, 8000, 46);
    assert_int_equal(n, 100);
    assert_int_equal(load_one("big.bmp", b, n, 1, &s), GEN_ERR_FORMAT);
    assert_non_null(
        strstr(gen_last_error(), "big.bmp: header says 8000x8000 but a 100-byte file"));
    assert_null(s.pixels);

    static const uint8_t png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                    'I', 'H', 'D', 'R', 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 8, 2};
    assert_int_equal(load_one("huge.png", png, sizeof png, 1, &s), GEN_ERR_FORMAT);
    assert_non_null(
        strstr(gen_last_error(), "huge.png: image of 65535x65535 is larger than the limit"));

    n = bmp_header(b, 2, -2, 16);
    const uint8_t rows[16] = {0, 0, 255, 0, 0, 255, 0, 0, /* top: red (BGR) */
                              0, 255, 0, 0, 255, 0, 0, 0}; /* bottom: green */
    memcpy(b + 54, rows, 16);
    assert_int_equal(load_one("td.bmp", b, n, 3, &s), GEN_OK);
    assert_int_equal(s.h, 2);
    assert_int_equal(s.w, 2);
    const uint8_t want[12] = {255, 255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0}; /* (c, h, w) */
    assert_memory_equal(s.pixels, want, 12);
    gen_image_set_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversion),       cmocka_unit_test(test_crop_and_resize),
        cmocka_unit_test(test_labels_and_order), cmocka_unit_test(test_holdout),
        cmocka_unit_test(test_bad_inputs),       cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_symlink_loops),    cmocka_unit_test(test_claimed_sizes),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
