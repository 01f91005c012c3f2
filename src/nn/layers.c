/* layers.c - Linear and Conv2d/ConvTranspose2d layers over a gen_params:
 * declaration with PyTorch's names and shapes, default init, forward. */
#include <stdio.h>

#include "gen/nn.h"

void gen_linear_layer_add(struct gen_params *ps, struct gen_linear_layer *l, const char *prefix,
                          int64_t in, int64_t out, int bias, int group) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->in = in;
    l->out = out;
    l->w = gen_params_add(ps, name, GEN_PARAM_WEIGHT, group, 2, (int64_t[]){out, in});
    l->b = -1;
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        l->b = gen_params_add(ps, name, GEN_PARAM_NODECAY, group, 1, (int64_t[]){out});
    }
}

struct gen_tensor *gen_linear_layer_fwd(struct gen_ctx *g, struct gen_params *ps,
                                        const struct gen_linear_layer *l, struct gen_tensor *x) {
    return gen_linear(g, x, gen_params_tensor(ps, l->w),
                      l->b >= 0 ? gen_params_tensor(ps, l->b) : NULL);
}

void gen_linear_layer_init(struct gen_params *ps, const struct gen_linear_layer *l,
                           struct gen_rng *r) {
    gen_init_uniform_fan_in(gen_params_tensor(ps, l->w), l->in, r);
    if (l->b >= 0) gen_init_uniform_fan_in(gen_params_tensor(ps, l->b), l->in, r);
}

void gen_conv_layer_add(struct gen_params *ps, struct gen_conv_layer *l, const char *prefix,
                        int64_t cin, int64_t cout, int64_t k, int stride, int pad, int bias,
                        int transposed, int group) {
    char name[96];
    *l = (struct gen_conv_layer){-1, -1, cin, cout, k, stride, pad, transposed};
    snprintf(name, sizeof name, "%s.weight", prefix);
    int64_t shape[4] = {transposed ? cin : cout, transposed ? cout : cin, k, k};
    l->w = gen_params_add(ps, name, GEN_PARAM_WEIGHT, group, 4, shape);
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        l->b = gen_params_add(ps, name, GEN_PARAM_NODECAY, group, 1, (int64_t[]){cout});
    }
}

struct gen_tensor *gen_conv_layer_fwd(struct gen_ctx *g, struct gen_params *ps,
                                      const struct gen_conv_layer *l, struct gen_tensor *x) {
    struct gen_tensor *w = gen_params_tensor(ps, l->w);
    struct gen_tensor *b = l->b >= 0 ? gen_params_tensor(ps, l->b) : NULL;
    return l->transposed ? gen_conv_transpose2d(g, x, w, b, l->stride, l->pad)
                         : gen_conv2d(g, x, w, b, l->stride, l->pad);
}

struct gen_tensor *gen_conv_layer_fwd_concat(struct gen_ctx *g, struct gen_params *ps,
                                             const struct gen_conv_layer *l, struct gen_tensor *x,
                                             struct gen_tensor *s) {
    GEN_ASSERT(!l->transposed);
    struct gen_tensor *b = l->b >= 0 ? gen_params_tensor(ps, l->b) : NULL;
    return gen_conv2d_concat(g, x, gen_params_tensor(ps, l->w), b, l->stride, l->pad, s);
}

struct gen_tensor *gen_conv_layer_fwd_sum(struct gen_ctx *g, struct gen_params *ps,
                                          const struct gen_conv_layer *l, struct gen_tensor *x,
                                          const struct gen_conv_layer *l2, struct gen_tensor *x2,
                                          struct gen_tensor *r) {
    GEN_ASSERT(!l->transposed && (!l2 || !l2->transposed) && (l2 != NULL) != (r != NULL));
    struct gen_tensor *w = gen_params_tensor(ps, l->w);
    struct gen_tensor *b = l->b >= 0 ? gen_params_tensor(ps, l->b) : NULL;
    if (!l2) return gen_conv2d_add(g, x, w, b, l->stride, l->pad, r);
    struct gen_tensor *w2 = gen_params_tensor(ps, l2->w);
    struct gen_tensor *b2 = l2->b >= 0 ? gen_params_tensor(ps, l2->b) : NULL;
    return gen_conv2d_sum(g, x, w, b, l->stride, l->pad, x2, w2, b2, l2->stride, l2->pad);
}

void gen_conv_layer_init(struct gen_params *ps, const struct gen_conv_layer *l, struct gen_rng *r) {
    struct gen_tensor *w = gen_params_tensor(ps, l->w);
    int64_t fan_in = w->shape[1] * l->k * l->k;
    gen_init_uniform_fan_in(w, fan_in, r);
    if (l->b >= 0) gen_init_uniform_fan_in(gen_params_tensor(ps, l->b), fan_in, r);
}

/* ---- BatchNorm (PyTorch's defaults) ---- */

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

void gen_batchnorm_layer_add(struct gen_params *ps, struct gen_batchnorm_layer *l,
                             const char *prefix, int64_t c, int group) {
    char name[96];
    l->c = c;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->w = gen_params_add(ps, name, GEN_PARAM_NODECAY, group, 1, &c);
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = gen_params_add(ps, name, GEN_PARAM_NODECAY, group, 1, &c);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    l->mean = gen_params_add(ps, name, GEN_PARAM_BUFFER, group, 1, &c);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    l->var = gen_params_add(ps, name, GEN_PARAM_BUFFER, group, 1, &c);
}

struct gen_tensor *gen_batchnorm_layer_fwd(struct gen_ctx *g, struct gen_params *ps,
                                           const struct gen_batchnorm_layer *l,
                                           struct gen_tensor *x) {
    return gen_batchnorm(g, x, gen_params_tensor(ps, l->w), gen_params_tensor(ps, l->b),
                         gen_params_tensor(ps, l->mean), gen_params_tensor(ps, l->var),
                         BN_MOMENTUM, BN_EPS);
}

void gen_batchnorm_layer_init(struct gen_params *ps, const struct gen_batchnorm_layer *l) {
    gen_init_const(gen_params_tensor(ps, l->w), 1.0f);
    gen_init_const(gen_params_tensor(ps, l->b), 0.0f);
    gen_init_const(gen_params_tensor(ps, l->mean), 0.0f);
    gen_init_const(gen_params_tensor(ps, l->var), 1.0f);
}
