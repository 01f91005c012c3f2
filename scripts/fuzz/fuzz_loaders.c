/* fuzz_loaders.c - libFuzzer harness for the file loaders: the input bytes
 * become a file that is read as safetensors (full and header-only), as a
 * checkpoint's metadata, as an IDX file and as an image. Built and run by
 * scripts/fuzz/run.sh. Any crash or sanitizer report is a bug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/data.h"
#include "gen/io.h"

static char path[64], dir[64];

static void put(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        snprintf(dir, sizeof dir, "/tmp/gen-fuzz-%ld", (long)getpid());
        gen_mkdir_p(dir);
        snprintf(path, sizeof path, "%s/in.png", dir);
    }
    put(data, size);
    for (int flags = 0; flags <= GEN_ST_HEADER_ONLY; flags++) {
        struct gen_st_file *f;
        if (gen_st_open(path, flags, &f) == GEN_OK) {
            for (int i = 0; i < gen_st_count(f); i++) {
                const struct gen_st_tensor *t = gen_st_at(f, i);
                volatile float sink = 0;
                if (t->data)
                    for (int64_t k = 0; k < t->numel; k++) sink += t->data[k];
                if (gen_st_find(f, t->name) == NULL) abort();
            }
            gen_st_close(f);
        }
    }
    struct gen_ckpt_meta m;
    if (gen_ckpt_read_meta(path, &m) == GEN_OK) gen_ckpt_meta_free(&m);
    struct gen_idx x;
    if (gen_idx_read(path, &x) == GEN_OK) {
        volatile uint8_t sink = 0;
        for (int64_t k = 0; k < x.size; k++) sink ^= x.data[k];
        gen_idx_free(&x);
    }
    struct gen_image_set s;
    if (size < 4096 && gen_imagefolder_load(dir, GEN_SPLIT_ALL, 1, 8, &s) == GEN_OK)
        gen_image_set_free(&s);
    return 0;
}
