/* ckpt_close.c - a test tool: whether two checkpoints hold the same
 * weights, equal within a relative tolerance.
 *
 *   ckpt_close A B RTOL
 *
 * The weights are every tensor but the optimiser's moments ("optim.*"):
 * parameters, EMA and buffers. Each must be in B with the same size, and
 * together ||a - b|| <= RTOL ||a|| (Euclidean norms over all of them).
 * Norm-wise over the model, because a few weights have gradients that are
 * zero in exact arithmetic (the attention's key bias; a pixel that is
 * always black) and Adam moves them by lr g / (|g| + eps) anyway, turning
 * the rounding of another summation order into a visible difference of
 * those weights alone. Prints the total and the worst tensor; exit 0 when
 * close, 1 when not, 2 on a usage or file error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/io.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: ckpt_close A B RTOL\n");
        return 2;
    }
    const double rtol = atof(argv[3]);
    struct gen_st_file *a = NULL, *b = NULL;
    if (gen_st_open(argv[1], 0, &a) != GEN_OK || gen_st_open(argv[2], 0, &b) != GEN_OK) {
        fprintf(stderr, "ckpt_close: %s\n", gen_last_error());
        return 2;
    }
    int rc = 0, n = 0;
    double diff = 0, scale = 0, worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < gen_st_count(a); i++) {
        const struct gen_st_tensor *ta = gen_st_at(a, i), *tb = gen_st_find(b, ta->name);
        if (!strncmp(ta->name, "optim.", 6)) continue;
        if (!tb || tb->numel != ta->numel) {
            fprintf(stderr, "ckpt_close: %s: in %s only, or of another size in %s\n", ta->name,
                    argv[1], argv[2]);
            rc = 1;
            continue;
        }
        double d = 0, s = 0;
        for (int64_t k = 0; k < ta->numel; k++) {
            const double e = (double)ta->data[k] - (double)tb->data[k];
            d += e * e;
            s += (double)ta->data[k] * (double)ta->data[k];
        }
        diff += d, scale += s, n++;
        const double rel = s > 0 ? sqrt(d / s) : sqrt(d);
        if (!(rel <= worst)) worst = rel, worst_name = ta->name;
    }
    const double total = scale > 0 ? sqrt(diff / scale) : sqrt(diff);
    if (!(total <= rtol) || n == 0) rc = 1;
    printf("%s: %d tensors, relative difference %.3g (worst tensor %s: %.3g)\n",
           rc ? "differ" : "close", n, total, worst_name, worst);
    gen_st_close(a);
    gen_st_close(b);
    return rc;
}
