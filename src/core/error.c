/* error.c - the one error message buffer and the always-on assert. */
#include <stdarg.h>
#include <string.h>

#include "gen/core.h"

static _Thread_local char last_error[1024];

/* Formats into a scratch buffer first: callers wrap the message in force,
 * gen_error(st, "%s: %s", path, gen_last_error()), and vsnprintf may not
 * read the buffer it writes. Control bytes become '?': a message is one
 * line, and the names it quotes come from files (a tensor name with a
 * newline or a terminal escape in a checkpoint's JSON header). */
enum gen_status gen_error(enum gen_status status, const char *fmt, ...) {
    char text[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (char *c = text; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    memcpy(last_error, text, sizeof text);
    return status;
}

const char *gen_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void gen_clear_error(void) { last_error[0] = 0; }

void gen_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "gen: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
    fflush(stderr);
    abort();
}
