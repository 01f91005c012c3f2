/* fuzz_util.h - what every libFuzzer target of gen shares: a scratch
 * directory made once per process (removed at exit), writing an input to a
 * file in it, and the message check every failing loader must pass. */
#ifndef GEN_FUZZ_UTIL_H
#define GEN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The process's scratch directory ("/tmp/gen-fuzz-XXXXXX", or under
 * $TMPDIR), created on first use and removed with everything in it at exit. */
const char *fuzz_dir(void);

/* "SCRATCH/name" in a static buffer (valid until the next call). */
const char *fuzz_path(const char *name);

/* Writes bytes to SCRATCH/name (replacing it) and returns the path. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);

/* Aborts unless gen_last_error() is one non-empty line that starts with
 * `prefix` (a loader's message names its file; NULL: any prefix). */
void fuzz_check_message(const char *prefix);

#endif
