/* vocab.c - UTF-8 decoding and the token vocabularies of the text data:
 * bytes, or the characters (Unicode code points) of a corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/data.h"

/* ---- UTF-8 ---- */

int gen_utf8_decode(const uint8_t *s, int64_t n, uint32_t *cp) {
    if (n < 1) return 0;
    int len;
    uint32_t c;
    if (s[0] < 0x80) len = 1, c = s[0];
    else if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, c = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, c = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, c = s[0] & 0x07u;
    else return 0; /* a continuation byte, an overlong lead (c0, c1) or f5..ff */
    if (len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
        (len == 4 && (c < 0x10000 || c > 0x10ffff)))
        return 0; /* overlong, a surrogate, or beyond U+10FFFF */
    *cp = c;
    return len;
}

int64_t gen_utf8_check(const uint8_t *s, int64_t n) {
    uint32_t cp;
    for (int64_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        const int k = gen_utf8_decode(s + i, n - i, &cp);
        if (!k) return i;
        i += k;
    }
    return -1;
}

int gen_utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6), out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12), out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18), out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- vocabularies ---- */

/* The key of the symbol at s[0..n) (n >= 1) as voc reads text, and its
 * length in bytes: a byte; or a character's code point, or GEN_VOCAB_RAW +
 * b for a byte b that starts no valid UTF-8 sequence. */
static int key_at(int chars, const uint8_t *s, int64_t n, uint32_t *key) {
    if (!chars || s[0] < 0x80) {
        *key = s[0];
        return 1;
    }
    const int k = gen_utf8_decode(s, n, key);
    if (k) return k;
    *key = GEN_VOCAB_RAW + s[0];
    return 1;
}

static void vocab_index(struct gen_vocab *voc) {
    for (int b = 0; b < 256; b++) voc->id[b] = -1;
    for (int i = 0; i < voc->V && voc->key[i] < 256; i++) voc->id[voc->key[i]] = (int16_t)i;
}

static int find(const struct gen_vocab *voc, uint32_t key) {
    if (key < 256) return voc->id[key];
    int lo = 0, hi = voc->V - 1;
    while (lo <= hi) {
        const int mid = lo + (hi - lo) / 2;
        if (voc->key[mid] == key) return mid;
        if (voc->key[mid] < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

void gen_vocab_bytes(struct gen_vocab *voc) {
    voc->V = 256;
    voc->chars = 0;
    for (int b = 0; b < 256; b++) voc->key[b] = (uint32_t)b;
    vocab_index(voc);
}

#define N_KEYS (GEN_VOCAB_RAW + 256)

enum gen_status gen_vocab_of_text(struct gen_vocab *voc, const uint8_t *text, int64_t n) {
    uint8_t *seen = gen_calloc(N_KEYS / 8, 1); /* one bit per key */
    if (!seen) return gen_error(GEN_ERR_NOMEM, "out of memory for the character vocabulary");
    uint32_t key;
    for (int64_t i = 0; i < n;) {
        i += key_at(1, text + i, n - i, &key);
        seen[key >> 3] |= (uint8_t)(1u << (key & 7));
    }
    int V = 0;
    for (uint32_t k = 0; k < N_KEYS; k++) {
        if (!seen[k >> 3]) {
            k |= 7; /* none of these 8 */
            continue;
        }
        if (!(seen[k >> 3] >> (k & 7) & 1)) continue;
        if (V == GEN_VOCAB_MAX) {
            gen_free(seen);
            return gen_error(GEN_ERR_FORMAT,
                             "more than %d distinct characters, the most a character vocabulary "
                             "holds (use --tokenizer byte)",
                             GEN_VOCAB_MAX);
        }
        voc->key[V++] = k;
    }
    gen_free(seen);
    voc->V = V;
    voc->chars = 1;
    vocab_index(voc);
    return GEN_OK;
}

int gen_vocab_symbol(const struct gen_vocab *voc, int32_t id, uint8_t out[4]) {
    const uint32_t key = voc->key[id];
    if (!voc->chars || key < 0x80) {
        out[0] = (uint8_t)key;
        return 1;
    }
    if (key >= GEN_VOCAB_RAW) {
        out[0] = (uint8_t)(key - GEN_VOCAB_RAW);
        return 1;
    }
    return gen_utf8_encode(key, out);
}

#define CHARS_PREFIX "utf8:"

char *gen_vocab_text(const struct gen_vocab *voc) {
    const size_t pre = voc->chars ? strlen(CHARS_PREFIX) : 0;
    char *t = malloc(pre + 8 * (size_t)voc->V + 1), *o = t + pre;
    if (!t) return NULL;
    memcpy(t, CHARS_PREFIX, pre);
    for (int i = 0; i < voc->V; i++) {
        uint8_t b[4];
        const int k = gen_vocab_symbol(voc, i, b);
        for (int j = 0; j < k; j++, o += 2) snprintf(o, 3, "%02x", b[j]);
    }
    *o = 0;
    return t;
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

int gen_vocab_parse(struct gen_vocab *voc, const char *text) {
    const int chars = !strncmp(text, CHARS_PREFIX, strlen(CHARS_PREFIX));
    const char *hex = chars ? text + strlen(CHARS_PREFIX) : text;
    const size_t n = strlen(hex);
    /* at most 4 bytes a symbol: bounds the text before anything is decoded */
    if (n == 0 || n % 2 || n > (chars ? 8 * (size_t)GEN_VOCAB_MAX : 512)) return 0;
    uint8_t bytes[4 * GEN_VOCAB_MAX];
    const int64_t nb = (int64_t)n / 2;
    for (int64_t i = 0; i < nb; i++) {
        const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        bytes[i] = (uint8_t)(16 * hi + lo);
    }
    /* symbols in strictly increasing order: no duplicates, one reading */
    voc->V = 0;
    voc->chars = chars;
    for (int64_t i = 0; i < nb;) {
        uint32_t key;
        i += key_at(chars, bytes + i, nb - i, &key);
        if (voc->V == GEN_VOCAB_MAX || (voc->V > 0 && key <= voc->key[voc->V - 1])) return 0;
        voc->key[voc->V++] = key;
    }
    vocab_index(voc);
    return 1;
}

int64_t gen_vocab_encode(const struct gen_vocab *voc, const uint8_t *bytes, int64_t n,
                         int32_t *ids, int64_t *n_ids) {
    int64_t k = 0;
    for (int64_t i = 0; i < n;) {
        uint32_t key;
        const int len = key_at(voc->chars, bytes + i, n - i, &key);
        const int id = find(voc, key);
        if (id < 0) {
            *n_ids = k;
            return i;
        }
        ids[k++] = id;
        i += len;
    }
    *n_ids = k;
    return -1;
}

const char *gen_vocab_symbol_name(const struct gen_vocab *voc, const uint8_t *s, int64_t n,
                                  char *buf, size_t size) {
    uint32_t key;
    const int len = key_at(voc->chars, s, n, &key);
    if (!voc->chars || key >= GEN_VOCAB_RAW) {
        if (s[0] >= 0x20 && s[0] < 0x7f && s[0] != '\'')
            snprintf(buf, size, "byte 0x%02x ('%c')", s[0], s[0]);
        else
            snprintf(buf, size, "byte 0x%02x%s", s[0], voc->chars ? " (not valid UTF-8)" : "");
    } else if ((key >= 0x20 && key < 0x7f && key != '\'') || key >= 0xa0) {
        snprintf(buf, size, "character '%.*s' (U+%04X)", len, (const char *)s, (unsigned)key);
    } else {
        snprintf(buf, size, "character U+%04X", (unsigned)key);
    }
    return buf;
}
