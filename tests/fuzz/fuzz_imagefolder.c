/* fuzz_imagefolder.c - libFuzzer target: an image folder holding the input
 * as its one image. The first byte picks the extension (so the decoder stb
 * is asked for), the channels (1 or 3) and the size (native or 8 x 8, which
 * crops and resizes); the rest is the file. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "gen/data.h"

volatile uint8_t fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const ext[] = {".png", ".bmp", ".jpg", ".gif", ".tga", ".pgm", ".ppm", ".PNG"};
    static char folder[4096];
    if (size < 1) return 0;
    if (!folder[0]) {
        snprintf(folder, sizeof folder, "%s", fuzz_path("images"));
        if (mkdir(folder, 0700) != 0) __builtin_trap();
    }
    const int e = data[0] & 7, channels = (data[0] & 8) ? 1 : 3, side = (data[0] & 16) ? 8 : 0;
    char name[64], path[4200];
    static char last[4200];
    if (last[0]) remove(last);
    snprintf(name, sizeof name, "images/img%s", ext[e]);
    snprintf(path, sizeof path, "%s", fuzz_write(name, data + 1, size - 1));
    snprintf(last, sizeof last, "%s", path);

    struct gen_image_set s = {0};
    if (gen_imagefolder_load(folder, GEN_SPLIT_ALL, channels, side, &s) == GEN_OK) {
        if (s.n != 1 || s.c != channels || (side && (s.h != side || s.w != side))) __builtin_trap();
        fuzz_sink = s.pixels[(int64_t)s.c * s.h * s.w - 1];
    } else {
        /* The message names the image, or the folder when nothing in it is one. */
        fuzz_check_message(folder);
    }
    gen_image_set_free(&s);
    return 0;
}
