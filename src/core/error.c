/* error.c - the one error message buffer and the always-on assert. */
#include <stdarg.h>

#include "gen/core.h"

static _Thread_local char last_error[1024];

enum gen_status gen_error(enum gen_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *gen_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void gen_clear_error(void) { last_error[0] = 0; }

void gen_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "gen: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
    fflush(stderr);
    abort();
}
