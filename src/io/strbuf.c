/* strbuf.c - a growing text buffer with escaping and base64 (see strbuf.h). */
#include "io/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gen/core.h"

static int reserve(struct gen_strbuf *b, size_t more) {
    if (b->failed) return 0;
    if (b->len + more + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) cap *= 2;
    char *s = gen_alloc(cap);
    if (!s) {
        b->failed = 1;
        return 0;
    }
    if (b->s) memcpy(s, b->s, b->len + 1);
    gen_free(b->s);
    b->s = s, b->cap = cap;
    return 1;
}

void gen_strbuf_put(struct gen_strbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void gen_strbuf_puts(struct gen_strbuf *b, const char *s) {
    gen_strbuf_put(b, s, strlen(s));
}

void gen_strbuf_printf(struct gen_strbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        gen_strbuf_put(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int gen_utf8_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    if (u[0] < 0x80) return 1;
    int len = u[0] >= 0xc2 && u[0] <= 0xdf   ? 2
              : u[0] >= 0xe0 && u[0] <= 0xef ? 3
              : u[0] >= 0xf0 && u[0] <= 0xf4 ? 4
                                             : 0;
    if (len == 0 || (size_t)len > n) return 0;
    for (int k = 1; k < len; k++)
        if ((u[k] & 0xc0) != 0x80) return 0;
    /* no overlong 3- and 4-byte forms, no surrogates, nothing past U+10FFFF */
    if ((u[0] == 0xe0 && u[1] < 0xa0) || (u[0] == 0xed && u[1] >= 0xa0) ||
        (u[0] == 0xf0 && u[1] < 0x90) || (u[0] == 0xf4 && u[1] >= 0x90))
        return 0;
    return len;
}

void gen_strbuf_escape(struct gen_strbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        const char *ent = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '"'  ? "&quot;"
                          : c == '\'' ? "&#39;"
                                      : NULL;
        if (ent) {
            gen_strbuf_put(b, ent, strlen(ent)), i++;
        } else if (c < 0x20 || c == 0x7f) {
            if (c == '\n' || c == '\t') gen_strbuf_put(b, s + i, 1);
            i++;
        } else {
            const int len = gen_utf8_len(s + i, n - i);
            if (len)
                gen_strbuf_put(b, s + i, (size_t)len), i += (size_t)len;
            else
                gen_strbuf_put(b, "\xef\xbf\xbd", 3), i++; /* U+FFFD */
        }
    }
}

void gen_strbuf_base64(struct gen_strbuf *b, const uint8_t *data, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!reserve(b, (n + 2) / 3 * 4)) return;
    char *o = b->s + b->len;
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0) |
                           (i + 2 < n ? data[i + 2] : 0);
        *o++ = digits[v >> 18 & 63];
        *o++ = digits[v >> 12 & 63];
        *o++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? digits[v & 63] : '=';
    }
    *o = 0;
    b->len = (size_t)(o - b->s);
}

void gen_strbuf_free(struct gen_strbuf *b) {
    gen_free(b->s);
    *b = (struct gen_strbuf){0};
}
