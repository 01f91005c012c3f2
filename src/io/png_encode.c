/* png_encode.c - a PNG encoded in memory at zlib's strongest setting, for
 * measuring how far an image compresses (the input complexity of anomaly
 * detection, gen/detect.h). Each row takes the PNG filter with the
 * smallest sum of absolute filtered bytes (libpng's heuristic); the rows
 * are deflated at level 9 into one IDAT chunk. */
#include <string.h>
#include <zlib.h>

#include "gen/io.h"

/* The Paeth predictor of PNG filter 4. */
static uint8_t paeth(int a, int b, int c) {
    const int p = a + b - c, pa = p > a ? p - a : a - p, pb = p > b ? p - b : b - p,
              pc = p > c ? p - c : c - p;
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Row `row` (stride bytes) filtered with filter f (0..4) into out;
 * prev: the row above (NULL for the first). bpp: bytes per pixel. */
static void filter_row(const uint8_t *row, const uint8_t *prev, int stride, int bpp, int f,
                       uint8_t *out) {
    for (int i = 0; i < stride; i++) {
        const int a = i >= bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0,
                  c = prev && i >= bpp ? prev[i - bpp] : 0;
        const int pred = f == 0   ? 0
                         : f == 1 ? a
                         : f == 2 ? b
                         : f == 3 ? (a + b) / 2
                                  : paeth(a, b, c);
        out[i] = (uint8_t)(row[i] - pred);
    }
}

/* libpng's choice: the filter whose bytes, read as signed, sum smallest in
 * absolute value (ties: the lower filter). */
static int best_filter(const uint8_t *row, const uint8_t *prev, int stride, int bpp,
                       uint8_t *scratch) {
    int best = 0;
    uint64_t best_sum = UINT64_MAX;
    for (int f = 0; f < 5; f++) {
        filter_row(row, prev, stride, bpp, f, scratch);
        uint64_t sum = 0;
        for (int i = 0; i < stride; i++)
            sum += (uint64_t)(scratch[i] < 128 ? scratch[i] : 256 - scratch[i]);
        if (sum < best_sum) best_sum = sum, best = f;
    }
    return best;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* Writes a chunk (length, type, data, CRC) at p; returns the bytes written. */
static size_t put_chunk(uint8_t *p, const char *type, const uint8_t *data, uint32_t n) {
    put_u32(p, n);
    memcpy(p + 4, type, 4);
    if (n) memmove(p + 8, data, n);
    put_u32(p + 8 + n, (uint32_t)crc32(crc32(0L, Z_NULL, 0), p + 4, n + 4));
    return 12 + (size_t)n;
}

enum gen_status gen_png_encode(const uint8_t *pixels, int w, int h, int comp, uint8_t **png,
                               size_t *len) {
    *png = NULL, *len = 0;
    if (w <= 0 || h <= 0 || (comp != 1 && comp != 3) || (int64_t)w * h > GEN_IMAGE_MAX_PIXELS)
        return gen_error(GEN_ERR_USAGE, "cannot encode a %dx%d image with %d channels", w, h, comp);
    static const int color_type[4] = {0, 0, 0, 2};
    const int stride = w * comp;
    const size_t raw_n = (size_t)h * (size_t)(stride + 1);
    uint8_t *raw = gen_alloc(raw_n + (size_t)stride);
    const uLong bound = compressBound((uLong)raw_n);
    uint8_t *out = gen_alloc(8 + 25 + 12 + bound + 12);
    if (!raw || !out) {
        gen_free(raw), gen_free(out);
        return gen_error(GEN_ERR_NOMEM, "out of memory for a %dx%d PNG", w, h);
    }
    uint8_t *scratch = raw + raw_n;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = pixels + (size_t)y * stride, *prev = y ? row - stride : NULL;
        uint8_t *dst = raw + (size_t)y * (stride + 1);
        dst[0] = (uint8_t)best_filter(row, prev, stride, comp, scratch);
        filter_row(row, prev, stride, comp, dst[0], dst + 1);
    }
    static const uint8_t signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    memcpy(out, signature, 8);
    uint8_t ihdr[13] = {0};
    put_u32(ihdr, (uint32_t)w), put_u32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8, ihdr[9] = (uint8_t)color_type[comp];
    size_t n = 8 + put_chunk(out + 8, "IHDR", ihdr, 13);
    uLongf zn = bound;
    const int zst = compress2(out + n + 8, &zn, raw, (uLong)raw_n, 9);
    gen_free(raw);
    if (zst != Z_OK) {
        gen_free(out);
        return gen_error(GEN_ERR_RUNTIME, "zlib failed to compress a %dx%d image", w, h);
    }
    n += put_chunk(out + n, "IDAT", out + n + 8, (uint32_t)zn);
    n += put_chunk(out + n, "IEND", NULL, 0);
    *png = out, *len = n;
    return GEN_OK;
}
