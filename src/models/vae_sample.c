/* vae_sample.c - the VAE's sampling modes that start from held-out
 * images rather than from the prior: reconstructions (--reconstruct), their
 * anomaly heat maps (--heatmap) and latent walks (--interpolate A,B). The
 * network and the plain samples are in vae.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/detect.h"
#include "models/vae.h"

/* Test images 0..count-1 beside their reconstructions (decoded means), in
 * pairs: (2 count, C, H, W). */
static struct gen_tensor *reconstruct(struct gen_ctx *g, struct gen_vae *m,
                                      const struct gen_image_set *set, int count) {
    struct gen_tensor *x = vae_batch_range(g, m, set, 0, count);
    const int32_t *labels = vae_range_labels(m, set, 0);
    struct gen_tensor *mu, *logvar;
    vae_encode(g, m, x, labels, &mu, &logvar);
    struct gen_tensor *y = gen_sigmoid(g, vae_decode(g, m, mu, labels));
    struct gen_tensor *out = gen_tensor_4d(g, 2 * count, m->C, m->H, m->W);
    int64_t D = m->D;
    for (int i = 0; i < count; i++) {
        memcpy(out->data + (2 * i) * D, x->data + i * D, (size_t)D * sizeof(float));
        memcpy(out->data + (2 * i + 1) * D, y->data + i * D, (size_t)D * sizeof(float));
    }
    return out;
}

/* Test images 0..count-1, their reconstructions and the anomaly map
 * |x - reconstruction| (averaged over channels) as a heat map, in triples
 * of RGB images: (3 count, 3, H, W); grey images fill all three channels. */
static struct gen_tensor *heatmap(struct gen_ctx *g, struct gen_vae *m,
                                  const struct gen_image_set *set, int count) {
    const struct gen_tensor *pairs = reconstruct(g, m, set, count); /* (2 count, C, H, W) */
    const int64_t P = m->H * m->W, C = m->C;
    struct gen_tensor *out = gen_tensor_4d(g, 3 * count, 3, m->H, m->W);
    for (int i = 0; i < count; i++) {
        const float *x = pairs->data + 2 * i * C * P, *y = x + C * P;
        float *o = out->data + 9 * i * P;
        for (int j = 0; j < 2; j++) /* the input, then its reconstruction */
            for (int k = 0; k < 3; k++)
                memcpy(o + (3 * j + k) * P, (j ? y : x) + (C == 3 ? k : 0) * P,
                       (size_t)P * sizeof(float));
        for (int64_t p = 0; p < P; p++) {
            double e = 0;
            for (int64_t c = 0; c < C; c++) e += fabs((double)x[c * P + p] - y[c * P + p]);
            float rgb[3];
            gen_heat_colour(e / (double)C, rgb);
            for (int k = 0; k < 3; k++) o[(6 + k) * P + p] = rgb[k];
        }
    }
    return out;
}

/* n points from mu(A) to mu(B), decoded. A conditional model encodes each
 * end with its own class and decodes the whole walk with A's class: the
 * walk changes the style within one class (A and B of different classes
 * give B's style drawn as A's class). */
static struct gen_tensor *interpolate(struct gen_ctx *g, struct gen_vae *m,
                                      const struct gen_image_set *set, int32_t a, int32_t b,
                                      int n) {
    const int32_t ends[2] = {a, b};
    struct gen_tensor *x = vae_batch_images(g, m, set, ends, 2);
    int32_t y[2];
    gen_images_labels(set, ends, 2, y);
    const int32_t *labels = m->classes ? y : NULL;
    struct gen_tensor *mu, *logvar;
    vae_encode(g, m, x, labels, &mu, &logvar);
    struct gen_tensor *z = gen_tensor_2d(g, n, m->latent);
    for (int i = 0; i < n; i++) {
        float t = n > 1 ? (float)i / (float)(n - 1) : 0.0f;
        for (int64_t j = 0; j < m->latent; j++)
            z->data[i * m->latent + j] = (1 - t) * mu->data[j] + t * mu->data[m->latent + j];
    }
    return gen_sigmoid(g, vae_decode(g, m, z, vae_repeat_labels(g, labels, 1, n)));
}

static int parse_pair(const char *s, int64_t *a, int64_t *b) {
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != ',') return 0;
    const char *t = end + 1;
    long long y = strtoll(t, &end, 10);
    if (end == t || *end || x < 0 || y < 0) return 0;
    *a = x, *b = y;
    return 1;
}

/* A square-ish number of columns that keeps groups of k images (pairs,
 * triples) in whole rows. */
static int group_cols(int64_t count, int k) {
    int c = 1;
    while ((int64_t)c * c < k * count) c++;
    return c + (k - c % k) % k;
}

enum gen_status vae_sample_inputs(struct gen_ctx *g, struct gen_vae *m,
                                  const struct gen_image_set *set, const char *walk, int heat,
                                  int n, struct gen_tensor **images, int *cols) {
    if (walk) {
        int64_t a, b;
        if (!parse_pair(walk, &a, &b))
            return gen_error(GEN_ERR_USAGE,
                             "--interpolate: expected two image indices A,B, got '%s'", walk);
        if (a >= set->n || b >= set->n)
            return gen_error(GEN_ERR_USAGE, "--interpolate: index out of range (%lld images)",
                             (long long)set->n);
        *images = interpolate(g, m, set, (int32_t)a, (int32_t)b, n);
        *cols = n; /* one row */
        return GEN_OK;
    }
    const int k = heat ? 3 : 2; /* images per test image */
    int64_t count = n / k > 0 ? n / k : 1;
    if (count > set->n) count = set->n;
    *images = heat ? heatmap(g, m, set, (int)count) : reconstruct(g, m, set, (int)count);
    *cols = group_cols(count, k);
    return GEN_OK;
}
