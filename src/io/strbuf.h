/* strbuf.h - a growing text buffer for the writers of generated text (the
 * SVG of a plot, the HTML of a run report): printf-style appends, XML/HTML
 * escaping and base64. An allocation failure sticks (failed = 1) and makes
 * later appends do nothing, so a writer checks once, at the end. */
#ifndef GEN_IO_STRBUF_H
#define GEN_IO_STRBUF_H

#include <stddef.h>
#include <stdint.h>

struct gen_strbuf {
    char *s; /* NUL-terminated text (gen_alloc'd), or NULL while empty */
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
};

void gen_strbuf_put(struct gen_strbuf *b, const char *s, size_t n);
void gen_strbuf_puts(struct gen_strbuf *b, const char *s); /* NUL-terminated s */
void gen_strbuf_printf(struct gen_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s with & < > " ' as character references (safe in text and in quoted
 * attributes), control characters other than tab and newline dropped,
 * and each byte that is not part of valid UTF-8 as U+FFFD. */
void gen_strbuf_escape(struct gen_strbuf *b, const char *s, size_t n);
/* data as base64 (RFC 4648, with padding, no line breaks). */
void gen_strbuf_base64(struct gen_strbuf *b, const uint8_t *data, size_t n);
/* The number of bytes of the valid UTF-8 sequence at s (1..4), or 0 when
 * s[0..n) does not start with one. */
int gen_utf8_len(const char *s, size_t n);
void gen_strbuf_free(struct gen_strbuf *b);

#endif
