/* vocab.c - token vocabularies of the text data: bytes, or the characters
 * (distinct bytes) of a corpus. */
#include <stdio.h>
#include <string.h>

#include "gen/data.h"

void gen_vocab_bytes(struct gen_vocab *voc) {
    voc->V = 256;
    for (int b = 0; b < 256; b++) voc->byte[b] = (uint8_t)b, voc->id[b] = (int16_t)b;
}

static void vocab_index(struct gen_vocab *voc) {
    for (int b = 0; b < 256; b++) voc->id[b] = -1;
    for (int i = 0; i < voc->V; i++) voc->id[voc->byte[i]] = (int16_t)i;
}

void gen_vocab_of_text(struct gen_vocab *voc, const uint8_t *text, int64_t n) {
    char seen[256] = {0};
    for (int64_t i = 0; i < n; i++) seen[text[i]] = 1;
    voc->V = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) voc->byte[voc->V++] = (uint8_t)b;
    vocab_index(voc);
}

void gen_vocab_hex(const struct gen_vocab *voc, char *buf) {
    for (int i = 0; i < voc->V; i++) snprintf(buf + 2 * i, 3, "%02x", voc->byte[i]);
    buf[2 * voc->V] = 0;
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

int gen_vocab_parse(struct gen_vocab *voc, const char *hex) {
    size_t n = strlen(hex);
    if (n == 0 || n % 2 || n > 512) return 0;
    voc->V = (int)(n / 2);
    for (int i = 0; i < voc->V; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        voc->byte[i] = (uint8_t)(16 * hi + lo);
        if (i > 0 && voc->byte[i] <= voc->byte[i - 1]) return 0;
    }
    vocab_index(voc);
    return 1;
}

int64_t gen_vocab_encode(const struct gen_vocab *voc, const uint8_t *bytes, int64_t n,
                         int32_t *ids) {
    for (int64_t i = 0; i < n; i++) {
        int id = voc->id[bytes[i]];
        if (id < 0) return i;
        ids[i] = id;
    }
    return -1;
}

const char *gen_vocab_byte_name(uint8_t b, char *buf, size_t size) {
    if (b >= 0x20 && b < 0x7f && b != '\'')
        snprintf(buf, size, "0x%02x ('%c')", b, b);
    else
        snprintf(buf, size, "0x%02x", b);
    return buf;
}
