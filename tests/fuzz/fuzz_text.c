/* fuzz_text.c - libFuzzer target: text data and vocabularies. The input
 * is loaded as a .txt file (gen_text_load; inputs whose first byte is odd
 * are split over two files of a folder instead), its character vocabulary
 * is built, written in its stored form, parsed back and used to encode
 * the text (the symbols of the ids spell the text again); the input itself
 * is also parsed as a stored vocabulary and, if it is one, used to encode
 * the text. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "gen/data.h"

static void encode(const struct gen_vocab *voc, const struct gen_text *t) {
    int32_t *ids = malloc((size_t)t->n * sizeof *ids);
    if (!ids) __builtin_trap();
    int64_t n_ids, at = 0;
    const int64_t bad = gen_vocab_encode(voc, t->bytes, t->n, ids, &n_ids);
    if (bad >= t->n || bad < -1 || n_ids < 0 || n_ids > t->n) __builtin_trap();
    for (int64_t i = 0; i < n_ids; i++) {
        uint8_t sym[4];
        if (ids[i] < 0 || ids[i] >= voc->V) __builtin_trap();
        const int k = gen_vocab_symbol(voc, ids[i], sym);
        if (k < 1 || k > 4 || at + k > t->n || memcmp(sym, t->bytes + at, (size_t)k)) __builtin_trap();
        at += k;
    }
    if (at != (bad < 0 ? t->n : bad)) __builtin_trap();
    if (bad >= 0) {
        char name[64];
        gen_vocab_symbol_name(voc, t->bytes + bad, t->n - bad, name, sizeof name);
    }
    free(ids);
}

static const char *write_input(const uint8_t *data, size_t size) {
    static char folder[4096];
    if (!folder[0]) {
        snprintf(folder, sizeof folder, "%s", fuzz_path("texts"));
        if (mkdir(folder, 0700) != 0) __builtin_trap();
    }
    if (size < 1 || !(data[0] & 1)) return fuzz_write("x.txt", data, size);
    const size_t half = size / 2;
    fuzz_write("texts/a.txt", data, half);
    fuzz_write("texts/b.txt", data + half, size - half);
    return folder;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = write_input(data, size);
    struct gen_text t = {0};
    if (gen_text_load(path, &t) != GEN_OK) {
        fuzz_check_message(path);
        return 0;
    }
    if (t.n != (int64_t)size || memcmp(t.bytes, data, size) || t.bytes[t.n] != 0) __builtin_trap();

    static struct gen_vocab voc, back;
    if (gen_vocab_of_text(&voc, t.bytes, t.n) == GEN_OK) {
        char *stored = gen_vocab_text(&voc);
        if (!stored || !gen_vocab_parse(&back, stored) || back.V != voc.V || !back.chars ||
            memcmp(back.key, voc.key, (size_t)voc.V * sizeof *voc.key) ||
            memcmp(back.id, voc.id, sizeof voc.id))
            __builtin_trap();
        free(stored);
        encode(&voc, &t);
    }
    gen_vocab_bytes(&voc);
    encode(&voc, &t);

    char text[600];
    const size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    if (gen_vocab_parse(&voc, text)) {
        if (voc.V < 1 || voc.V > (voc.chars ? GEN_VOCAB_MAX : 256)) __builtin_trap();
        encode(&voc, &t);
    }
    gen_text_free(&t);
    return 0;
}
