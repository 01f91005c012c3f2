/* bench_args.h - the benchmarks' positional numbers, read strictly: a
 * number that is not one, or out of range, stops the program with one
 * line naming it (exit 2), where atoi read "--help" as 0 threads. */
#ifndef GEN_BENCH_ARGS_H
#define GEN_BENCH_ARGS_H

#include <stdio.h>
#include <stdlib.h>

#include "gen/config.h"

/* Stops the program (exit 2) with "PROG: WHAT 'ARG'" and the usage line
 * on stderr: an argument it does not take. */
static inline void bench_refuse(const char *prog, const char *usage, const char *what,
                                const char *arg) {
    fprintf(stderr, "%s: %s '%s'\nusage: %s\n", prog, what, arg, usage);
    exit(2);
}

/* s as an integer in [lo, hi], or exit 2 with "PROG: WHAT: ..." and the
 * usage line on stderr. */
static inline long long bench_int(const char *prog, const char *usage, const char *what,
                                  const char *s, long long lo, long long hi) {
    int64_t v;
    if (!gen_parse_int(s, &v) || v < lo || v > hi) {
        fprintf(stderr, "%s: %s: expected an integer in [%lld, %lld], got '%s'\nusage: %s\n", prog,
                what, lo, hi, s, usage);
        exit(2);
    }
    return v;
}

#endif
