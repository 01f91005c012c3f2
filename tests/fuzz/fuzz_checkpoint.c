/* fuzz_checkpoint.c - libFuzzer target: the input is a checkpoint. Its
 * metadata is read (gen_ckpt_read_meta), then the engine loads it
 * (gen_model_load: family, config, data shape, vocabulary, the model built
 * from them under the loader's memory bound, then the weights). Odd-sized
 * inputs also load the optimiser moments, as --resume does. */
#include "cli/engine.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("ckpt.safetensors", data, size);
    struct gen_ckpt_meta meta = {0};
    if (gen_ckpt_read_meta(path, &meta) != GEN_OK) {
        fuzz_check_message(path);
        return 0;
    }
    for (int i = 0; i < meta.n; i++)
        if (gen_ckpt_meta_get(&meta, meta.keys[i]) == NULL) __builtin_trap();
    gen_ckpt_meta_free(&meta);

    struct gen_model em;
    const int flags = (size & 1) ? GEN_CKPT_OPTIM | GEN_CKPT_EMA : 0;
    if (gen_model_load(&em, NULL, path, flags, NULL) == GEN_OK) {
        char *config = gen_config_json(&em.cfg);
        free(config);
        gen_model_free(&em);
    } else {
        fuzz_check_message(path);
    }
    return 0;
}
