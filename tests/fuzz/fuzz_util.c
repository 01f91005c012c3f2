/* fuzz_util.c - scratch files and the message check of the fuzz targets. */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/core.h"

static char scratch[4096];
static char path_buf[4096 + 256];

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void remove_scratch(void) {
    if (scratch[0]) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void) {
    if (scratch[0]) return scratch;
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/gen-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        perror(scratch);
        abort();
    }
    atexit(remove_scratch);
    return scratch;
}

const char *fuzz_path(const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", fuzz_dir(), name);
    return path_buf;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

void fuzz_check_message(const char *prefix) {
    const char *msg = gen_last_error();
    if (!msg || !*msg || strchr(msg, '\n') || (prefix && strncmp(msg, prefix, strlen(prefix)))) {
        fprintf(stderr, "fuzz: bad error message (want one line starting with '%s'): '%s'\n",
                prefix ? prefix : "", msg ? msg : "(null)");
        abort();
    }
}
