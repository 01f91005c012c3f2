/* fuzz_idx.c - libFuzzer target: IDX files, raw and gzip. The first byte
 * picks how the rest is written: 0 as it is (a raw IDX file, or a corrupt
 * gzip one), 1 gzip-compressed (so the IDX parser behind the inflater sees
 * structured input), 2 gzip-compressed and cut in half, 3 compressed with
 * the rest appended again after the gzip stream. */
#include <string.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "gen/data.h"

/* gzip of data into a malloc'd buffer; returns its length. */
static size_t gzip(const uint8_t *data, size_t size, uint8_t **out) {
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
    const uLong cap = deflateBound(&z, (uLong)size);
    *out = malloc(cap);
    if (!*out) __builtin_trap();
    z.next_in = (Bytef *)data, z.avail_in = (uInt)size;
    z.next_out = *out, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) __builtin_trap();
    const size_t n = z.total_out;
    deflateEnd(&z);
    return n;
}

volatile uint8_t fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int mode = data[0] & 3;
    data++, size--;
    const char *path;
    if (mode == 0) {
        path = fuzz_write("x-idx3-ubyte", data, size);
    } else {
        uint8_t *z;
        size_t n = gzip(data, size, &z);
        if (mode == 2) n /= 2;
        if (mode == 3) {
            z = realloc(z, n + size + 1);
            if (!z) __builtin_trap();
            memcpy(z + n, data, size);
            n += size;
        }
        path = fuzz_write("x-idx3-ubyte.gz", z, n);
        free(z);
    }
    struct gen_idx idx = {0};
    if (gen_idx_read(path, &idx) == GEN_OK) {
        int64_t total = 1;
        for (int i = 0; i < idx.rank; i++) total *= idx.dims[i];
        if (total != idx.size || idx.size < 1) __builtin_trap();
        fuzz_sink = idx.data[0], fuzz_sink = idx.data[idx.size - 1];
    } else {
        fuzz_check_message(path);
    }
    gen_idx_free(&idx);
    return 0;
}
