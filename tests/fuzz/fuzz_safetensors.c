/* fuzz_safetensors.c - libFuzzer target: the input is a safetensors file,
 * opened whole (gen_st_open), header-only and on demand; every tensor's
 * data (on demand, through gen_st_read) and every metadata pair is read
 * back. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gen/io.h"

static float touch(const char *path, const struct gen_st_file *f, int flags) {
    float sum = 0;
    for (int i = 0; i < gen_st_count(f); i++) {
        const struct gen_st_tensor *t = gen_st_at(f, i);
        if (gen_st_find(f, t->name) != t) __builtin_trap();
        for (int64_t k = 0; t->data && k < t->numel; k++) sum += t->data[k];
        if (flags == GEN_ST_ON_DEMAND && t->numel > 0) { /* numel * size <= the input */
            float *v = malloc((size_t)t->numel * sizeof *v);
            if (!v || gen_st_read(path, f, t, v) != GEN_OK) __builtin_trap();
            for (int64_t k = 0; k < t->numel; k++) sum += v[k];
            free(v);
        }
    }
    for (int i = 0; i < gen_st_meta_count(f); i++) {
        const char *key, *value;
        gen_st_meta_at(f, i, &key, &value);
        sum += (float)(strlen(key) + strlen(value));
    }
    return sum;
}

volatile float fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("x.safetensors", data, size);
    for (int flags = 0; flags <= GEN_ST_ON_DEMAND; flags++) {
        struct gen_st_file *f = NULL;
        if (gen_st_open(path, flags, &f) == GEN_OK) {
            fuzz_sink = touch(path, f, flags);
            gen_st_close(f);
        } else {
            fuzz_check_message(path);
        }
    }
    return 0;
}
