/* fuzz_text.c - libFuzzer target: text data and vocabularies. The input
 * is loaded as a .txt file (gen_text_load; inputs whose first byte is odd
 * are split over two files of a folder instead), its character vocabulary
 * is built, written as hex, parsed back and used to encode the text; the
 * input itself is also parsed as a vocabulary's hex text and, if it is
 * one, used to encode the text. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "gen/data.h"

static void encode(const struct gen_vocab *voc, const struct gen_text *t) {
    int32_t *ids = malloc((size_t)t->n * sizeof *ids);
    if (!ids) __builtin_trap();
    const int64_t bad = gen_vocab_encode(voc, t->bytes, t->n, ids);
    if (bad >= t->n || bad < -1) __builtin_trap();
    for (int64_t i = 0; i < (bad < 0 ? t->n : bad); i++)
        if (ids[i] < 0 || ids[i] >= voc->V || voc->byte[ids[i]] != t->bytes[i]) __builtin_trap();
    if (bad >= 0) {
        char name[32];
        gen_vocab_byte_name(t->bytes[bad], name, sizeof name);
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

    struct gen_vocab voc, back;
    char hex[513];
    gen_vocab_of_text(&voc, t.bytes, t.n);
    gen_vocab_hex(&voc, hex);
    if (!gen_vocab_parse(&back, hex) || back.V != voc.V || memcmp(back.byte, voc.byte, (size_t)voc.V) ||
        memcmp(back.id, voc.id, sizeof voc.id))
        __builtin_trap();
    encode(&voc, &t);
    gen_vocab_bytes(&voc);
    encode(&voc, &t);

    char text[600];
    const size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    if (gen_vocab_parse(&voc, text)) {
        if (voc.V < 1 || voc.V > 256) __builtin_trap();
        encode(&voc, &t);
    }
    gen_text_free(&t);
    return 0;
}
