/* png.c - PNG output through stb_image_write (implementation from Debian's
 * libstb): single images, sample grids and one file per sample. */
#include <errno.h>
#include <stb_image_write.h>
#include <string.h>
#include <strings.h>

#include "gen/io.h"
#include "io/fs.h"

struct sink {
    FILE *f;
    int failed;
};

static void sink_write(void *ctx, void *data, int size) {
    struct sink *s = ctx;
    if (size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = 1;
}

/* The format of an output path, by its extension (case-insensitive). */
enum format { FMT_PNG, FMT_JPG, FMT_BMP, FMT_UNKNOWN };
static enum format format_of(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return FMT_UNKNOWN;
    if (!strcasecmp(dot, ".png")) return FMT_PNG;
    if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")) return FMT_JPG;
    if (!strcasecmp(dot, ".bmp")) return FMT_BMP;
    return FMT_UNKNOWN;
}

enum gen_status gen_image_path_check(const char *path) {
    if (format_of(path) != FMT_UNKNOWN) return GEN_OK;
    return gen_error(GEN_ERR_USAGE,
                     "%s: unknown image format (the name must end in .png, .jpg, .jpeg or .bmp, "
                     "or in / for a folder of PNG files)",
                     path);
}

static enum gen_status write_as(const char *path, enum format fmt, int w, int h, int comp,
                                const uint8_t *pixels) {
    if (w <= 0 || h <= 0 || comp < 1 || comp > 4 || (int64_t)w * comp > INT32_MAX / 2 ||
        (int64_t)w * h > (1LL << 30))
        return gen_error(GEN_ERR_USAGE, "%s: cannot write a %dx%d image with %d channels", path, w,
                         h, comp);
    /* through PATH.tmp.PID renamed over it: a file of that name is replaced
     * whole or left as it was, never cut short (a full disk, a signal) */
    char tmp[GEN_FS_TMP_MAX];
    FILE *f = gen_fs_tmp_create(path, tmp);
    if (!f) return GEN_ERR_IO;
    struct sink s = {f, 0};
    const int ok = fmt == FMT_JPG ? stbi_write_jpg_to_func(sink_write, &s, w, h, comp, pixels, 95)
                   : fmt == FMT_BMP
                       ? stbi_write_bmp_to_func(sink_write, &s, w, h, comp, pixels)
                       : stbi_write_png_to_func(sink_write, &s, w, h, comp, pixels, w * comp);
    const int io = s.failed || ferror(f) ? (errno ? errno : EIO) : 0;
    const int err = gen_fs_tmp_finish(f, tmp, path, io ? io : ok ? 0 : -1);
    if (err == -1)
        return gen_error(GEN_ERR_IO, "%s: cannot write the image (encoder failed)", path);
    if (err) return gen_error(GEN_ERR_IO, "%s: cannot write the image: %s", path, strerror(err));
    return GEN_OK;
}

enum gen_status gen_png_write(const char *path, int w, int h, int comp, const uint8_t *pixels) {
    return write_as(path, FMT_PNG, w, h, comp, pixels);
}

enum gen_status gen_image_write(const char *path, int w, int h, int comp, const uint8_t *pixels) {
    const enum format fmt = format_of(path);
    if (fmt == FMT_UNKNOWN) return gen_image_path_check(path);
    return write_as(path, fmt, w, h, comp, pixels);
}

void gen_png_grid_size(int n, int h, int w, int *cols, int *rows, int *width, int *height) {
    gen_png_grid_size_cols(n, h, w, 0, cols, rows, width, height);
}

void gen_png_grid_size_cols(int n, int h, int w, int want_cols, int *cols, int *rows, int *width,
                            int *height) {
    int c = 1;
    while (c * c < n) c++;
    if (want_cols > 0) c = want_cols;
    int r = n > 0 ? (n + c - 1) / c : 1;
    *cols = c;
    *rows = r;
    *width = c * (w + GEN_PNG_GRID_PAD) + GEN_PNG_GRID_PAD;
    *height = r * (h + GEN_PNG_GRID_PAD) + GEN_PNG_GRID_PAD;
}

static uint8_t quantise(float v, float lo, float hi) {
    float t = (v - lo) / (hi - lo) * 255.0f;
    if (!(t > 0)) return 0; /* NaN too */
    if (t >= 255) return 255;
    return (uint8_t)(t + 0.5f);
}

static enum gen_status check_images(const char *path, int n, int c, int h, int w, float lo,
                                    float hi) {
    if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || h > GEN_IMAGE_MAX_SIDE ||
        w > GEN_IMAGE_MAX_SIDE || !(hi > lo))
        return gen_error(GEN_ERR_USAGE, "%s: cannot write %d images of %dx%dx%d in [%g, %g]", path,
                         n, c, h, w, (double)lo, (double)hi);
    return GEN_OK;
}

/* Image i (c, h, w) into an interleaved RGB/grey canvas at (x0, y0). */
static void blit(const float *img, int c, int h, int w, float lo, float hi, uint8_t *canvas,
                 int cw, int x0, int y0) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                canvas[((size_t)(y0 + y) * (size_t)cw + (size_t)(x0 + x)) * (size_t)c + (size_t)k] =
                    quantise(img[((size_t)k * (size_t)h + (size_t)y) * (size_t)w + (size_t)x], lo, hi);
}

enum gen_status gen_png_write_grid(const char *path, const float *images, int n, int c, int h,
                                   int w, float lo, float hi) {
    return gen_png_write_grid_cols(path, images, n, c, h, w, 0, lo, hi);
}

enum gen_status gen_png_write_grid_cols(const char *path, const float *images, int n, int c, int h,
                                        int w, int want_cols, float lo, float hi) {
    enum gen_status st = check_images(path, n, c, h, w, lo, hi);
    if (st != GEN_OK) return st;
    int cols, rows, gw, gh;
    gen_png_grid_size_cols(n, h, w, want_cols, &cols, &rows, &gw, &gh);
    if ((int64_t)gw * gh > (1LL << 30))
        return gen_error(GEN_ERR_USAGE, "%s: a %dx%d grid is too large", path, gw, gh);
    uint8_t *canvas = gen_calloc((size_t)gw * (size_t)gh, (size_t)c);
    if (!canvas) return gen_fs_error_at(GEN_ERR_NOMEM, path);
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++)
        blit(images + (size_t)i * per, c, h, w, lo, hi, canvas, gw,
             GEN_PNG_GRID_PAD + (i % cols) * (w + GEN_PNG_GRID_PAD),
             GEN_PNG_GRID_PAD + (i / cols) * (h + GEN_PNG_GRID_PAD));
    st = gen_image_write(path, gw, gh, c, canvas);
    gen_free(canvas);
    return st;
}

enum gen_status gen_png_write_each(const char *dir, const char *prefix, const float *images,
                                   int n, int c, int h, int w, float lo, float hi) {
    return gen_png_write_each_from(dir, prefix, 0, images, n, c, h, w, lo, hi);
}

enum gen_status gen_png_write_each_from(const char *dir, const char *prefix, int64_t first,
                                        const float *images, int n, int c, int h, int w, float lo,
                                        float hi) {
    enum gen_status st = check_images(dir, n, c, h, w, lo, hi);
    if (st == GEN_OK) st = gen_mkdir_p(dir);
    if (st != GEN_OK) return st;
    uint8_t *buf = gen_alloc((size_t)c * (size_t)h * (size_t)w);
    if (!buf) return gen_fs_error_at(GEN_ERR_NOMEM, dir);
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    char name[4096];
    size_t dl = strlen(dir);
    const char *sep = dl > 0 && dir[dl - 1] == '/' ? "" : "/";
    for (int i = 0; st == GEN_OK && i < n; i++) {
        if ((size_t)snprintf(name, sizeof name, "%s%s%s%05lld.png", dir, sep, prefix ? prefix : "",
                             (long long)(first + i)) >= sizeof name) {
            st = gen_error(GEN_ERR_IO, "%s: path too long", dir);
            break;
        }
        blit(images + (size_t)i * per, c, h, w, lo, hi, buf, w, 0, 0);
        st = gen_png_write(name, w, h, c, buf);
    }
    gen_free(buf);
    return st;
}

enum gen_status gen_png_load_folder(const char *dir, int channels, int size,
                                    struct gen_image_set *out) {
    return gen_imagefolder_load(dir, GEN_SPLIT_ALL, channels, size, out);
}
