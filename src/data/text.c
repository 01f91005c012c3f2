/* text.c - a text file, or a folder of .txt files, as one byte string. */
#include <string.h>

#include "gen/data.h"
#include "io/fs.h"

void gen_text_free(struct gen_text *t) {
    gen_free(t->bytes);
    memset(t, 0, sizeof *t);
}

static enum gen_status load_folder(const char *dir, struct gen_text *out) {
    struct gen_fs_list l;
    enum gen_status st = gen_fs_list(dir, &l);
    if (st != GEN_OK) return st;
    int64_t total = 0;
    int files = 0;
    uint8_t *buf = NULL;
    /* Read each file and append it; the buffer grows geometrically. */
    int64_t cap = 0;
    for (int i = 0; st == GEN_OK && i < l.n; i++) {
        if (l.names[i][0] == '.' || !gen_fs_has_ext(l.names[i], ".txt")) continue;
        char *p = gen_fs_join(dir, l.names[i]);
        if (!p) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            break;
        }
        if (gen_fs_kind(p) != GEN_FS_FILE) {
            gen_free(p);
            continue;
        }
        uint8_t *data;
        int64_t n;
        st = gen_fs_read(p, GEN_TEXT_MAX_BYTES - total, &data, &n);
        if (st == GEN_OK && total + n + 1 > cap) {
            int64_t ncap = cap ? cap : 1 << 16;
            while (ncap < total + n + 1) ncap *= 2;
            if (ncap > GEN_TEXT_MAX_BYTES + 1) ncap = GEN_TEXT_MAX_BYTES + 1;
            uint8_t *nb = gen_alloc((size_t)ncap);
            if (!nb) {
                st = gen_fs_error_at(GEN_ERR_NOMEM, p);
            } else {
                if (total) memcpy(nb, buf, (size_t)total);
                gen_free(buf);
                buf = nb;
                cap = ncap;
            }
        }
        if (st == GEN_OK) {
            memcpy(buf + total, data, (size_t)n);
            total += n;
            files++;
        }
        gen_free(data);
        gen_free(p);
    }
    gen_fs_list_free(&l);
    if (st == GEN_OK && files == 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: no .txt files in the folder", dir);
    else if (st == GEN_OK && total == 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: the .txt files in the folder are all empty", dir);
    if (st != GEN_OK) {
        gen_free(buf);
        return st;
    }
    buf[total] = 0;
    out->bytes = buf;
    out->n = total;
    return GEN_OK;
}

enum gen_status gen_text_load(const char *path, struct gen_text *out) {
    memset(out, 0, sizeof *out);
    enum gen_fs_kind k = gen_fs_kind(path);
    if (k == GEN_FS_MISSING) return gen_error(GEN_ERR_IO, "%s: no such file or directory", path);
    if (k == GEN_FS_DIR) return load_folder(path, out);
    enum gen_status st = gen_fs_read(path, GEN_TEXT_MAX_BYTES, &out->bytes, &out->n);
    if (st == GEN_OK && out->n == 0) {
        gen_text_free(out);
        st = gen_error(GEN_ERR_FORMAT, "%s: empty file; the text data needs at least one byte",
                       path);
    }
    return st;
}
