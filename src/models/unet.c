/* unet.c - the diffusion family's U-Net (see unet.h), built from the core
 * ops: conv2d, groupnorm, SiLU, broadcast add, attention, upsampling and
 * channel concatenation. */
#include <math.h>
#include <stdio.h>

#include "models/unet.h"

enum gen_status unet_check(const struct unet_config *c) {
    if (c->C < 1 || c->C > 4)
        return gen_error(GEN_ERR_FORMAT, "diffusion: images with %lld channels (1 to 4 work)",
                         (long long)c->C);
    if (c->H < 4 || c->W < 4 || c->H % 4 || c->W % 4)
        return gen_error(GEN_ERR_FORMAT,
                         "diffusion: the U-Net needs image sides divisible by 4, got %lldx%lld "
                         "(--image-size N crops and resizes them)",
                         (long long)c->H, (long long)c->W);
    if (c->base < 8 || c->base % UNET_GROUPS)
        return gen_error(GEN_ERR_USAGE, "--base: must be a multiple of %d, got %lld", UNET_GROUPS,
                         (long long)c->base);
    for (int i = 0; i < 3; i++)
        if (c->mult[i] < 1 || c->mult[i] > 64)
            return gen_error(GEN_ERR_USAGE, "--mults: each multiplier must be in 1..64, got %lld",
                             (long long)c->mult[i]);
    return GEN_OK;
}

static int norm_add(struct gen_params *ps, const char *prefix, const char *what, int64_t ch) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    return gen_params_add(ps, name, GEN_PARAM_NODECAY, 0, 1, (int64_t[]){ch});
}

static void sub(char *buf, size_t n, const char *prefix, const char *name) {
    snprintf(buf, n, "%s.%s", prefix, name);
}

static void resblock_declare(struct gen_params *ps, struct unet_resblock *rb, const char *prefix,
                             int64_t cin, int64_t cout, int64_t temb_dim) {
    char name[96];
    rb->cin = cin, rb->cout = cout;
    rb->norm1_w = norm_add(ps, prefix, "norm1.weight", cin);
    rb->norm1_b = norm_add(ps, prefix, "norm1.bias", cin);
    sub(name, sizeof name, prefix, "conv1");
    gen_conv_layer_add(ps, &rb->conv1, name, cin, cout, 3, 1, 1, 1, 0, 0);
    sub(name, sizeof name, prefix, "temb");
    gen_linear_layer_add(ps, &rb->temb, name, temb_dim, cout, 1, 0);
    rb->norm2_w = norm_add(ps, prefix, "norm2.weight", cout);
    rb->norm2_b = norm_add(ps, prefix, "norm2.bias", cout);
    sub(name, sizeof name, prefix, "conv2");
    gen_conv_layer_add(ps, &rb->conv2, name, cout, cout, 3, 1, 1, 1, 0, 0);
    rb->skip.w = rb->skip.b = -1;
    if (cin != cout) {
        sub(name, sizeof name, prefix, "skip");
        gen_conv_layer_add(ps, &rb->skip, name, cin, cout, 1, 1, 0, 1, 0, 0);
    }
}

void unet_declare(struct unet *u, struct gen_params *ps, const struct unet_config *c) {
    const int64_t b = c->base, c1 = b * c->mult[0], c2 = b * c->mult[1], c3 = b * c->mult[2];
    u->cfg = *c;
    u->sin_dim = b;
    u->temb_dim = 4 * b;
    const int64_t E = u->temb_dim;
    gen_linear_layer_add(ps, &u->time0, "time_mlp.0", u->sin_dim, E, 1, 0);
    gen_linear_layer_add(ps, &u->time2, "time_mlp.2", E, E, 1, 0);
    gen_conv_layer_add(ps, &u->conv_in, "conv_in", c->C, b, 3, 1, 1, 1, 0, 0);
    resblock_declare(ps, &u->enc1, "enc1", b, c1, E);
    gen_conv_layer_add(ps, &u->down1, "down1", c1, c1, 3, 2, 1, 1, 0, 0);
    resblock_declare(ps, &u->enc2, "enc2", c1, c2, E);
    gen_conv_layer_add(ps, &u->down2, "down2", c2, c2, 3, 2, 1, 1, 0, 0);
    resblock_declare(ps, &u->mid1, "mid1", c2, c3, E);
    if (c->attn) {
        u->attn.norm_w = norm_add(ps, "attn", "norm.weight", c3);
        u->attn.norm_b = norm_add(ps, "attn", "norm.bias", c3);
        gen_conv_layer_add(ps, &u->attn.qkv, "attn.qkv", c3, 3 * c3, 1, 1, 0, 1, 0, 0);
        gen_conv_layer_add(ps, &u->attn.proj, "attn.proj", c3, c3, 1, 1, 0, 1, 0, 0);
    }
    resblock_declare(ps, &u->mid2, "mid2", c3, c3, E);
    gen_conv_layer_add(ps, &u->up2, "up2", c3, c3, 3, 1, 1, 1, 0, 0);
    resblock_declare(ps, &u->dec2, "dec2", c3 + c2, c2, E);
    gen_conv_layer_add(ps, &u->up1, "up1", c2, c2, 3, 1, 1, 1, 0, 0);
    resblock_declare(ps, &u->dec1, "dec1", c2 + c1, c1, E);
    u->norm_out_w = norm_add(ps, "norm_out", "weight", c1);
    u->norm_out_b = norm_add(ps, "norm_out", "bias", c1);
    gen_conv_layer_add(ps, &u->conv_out, "conv_out", c1, c->C, 3, 1, 1, 1, 0, 0);
    u->class_emb = c->classes > 0 ? gen_params_add(ps, "class_emb.weight", GEN_PARAM_NODECAY, 0, 2,
                                                   (int64_t[]){c->classes + 1, E})
                                  : -1;
}

static void norm_init(struct gen_params *ps, int w, int b) {
    gen_init_const(gen_params_tensor(ps, w), 1.0f);
    gen_init_const(gen_params_tensor(ps, b), 0.0f);
}

static void resblock_init(const struct unet_resblock *rb, struct gen_params *ps,
                          struct gen_rng *r) {
    norm_init(ps, rb->norm1_w, rb->norm1_b);
    gen_conv_layer_init(ps, &rb->conv1, r);
    gen_linear_layer_init(ps, &rb->temb, r);
    norm_init(ps, rb->norm2_w, rb->norm2_b);
    gen_conv_layer_init(ps, &rb->conv2, r);
    if (rb->skip.w >= 0) gen_conv_layer_init(ps, &rb->skip, r);
}

void unet_init(const struct unet *u, struct gen_params *ps, struct gen_rng *r) {
    gen_linear_layer_init(ps, &u->time0, r);
    gen_linear_layer_init(ps, &u->time2, r);
    gen_conv_layer_init(ps, &u->conv_in, r);
    resblock_init(&u->enc1, ps, r);
    gen_conv_layer_init(ps, &u->down1, r);
    resblock_init(&u->enc2, ps, r);
    gen_conv_layer_init(ps, &u->down2, r);
    resblock_init(&u->mid1, ps, r);
    if (u->cfg.attn) {
        norm_init(ps, u->attn.norm_w, u->attn.norm_b);
        gen_conv_layer_init(ps, &u->attn.qkv, r);
        gen_conv_layer_init(ps, &u->attn.proj, r);
    }
    resblock_init(&u->mid2, ps, r);
    gen_conv_layer_init(ps, &u->up2, r);
    resblock_init(&u->dec2, ps, r);
    gen_conv_layer_init(ps, &u->up1, r);
    resblock_init(&u->dec1, ps, r);
    norm_init(ps, u->norm_out_w, u->norm_out_b);
    gen_conv_layer_init(ps, &u->conv_out, r);
    if (u->class_emb >= 0) gen_init_normal(gen_params_tensor(ps, u->class_emb), 0.0f, 1.0f, r);
}

void unet_time_embedding(const float *t, int64_t n, int64_t dim, float *out) {
    const int64_t half = dim / 2;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < half; k++) {
            const double f = exp(-log(10000.0) * (double)k / (double)half);
            out[i * dim + k] = (float)sin((double)t[i] * f);
            out[i * dim + half + k] = (float)cos((double)t[i] * f);
        }
    }
}

/* ---- forward ---- */

static struct gen_tensor *gn(struct gen_ctx *g, struct gen_params *ps, int w, int b,
                             struct gen_tensor *x) {
    return gen_groupnorm(g, x, UNET_GROUPS, gen_params_tensor(ps, w), gen_params_tensor(ps, b),
                         UNET_GN_EPS);
}

static struct gen_tensor *conv(struct gen_ctx *g, struct gen_params *ps,
                               const struct gen_conv_layer *l, struct gen_tensor *x) {
    return gen_conv_layer_fwd(g, ps, l, x);
}

/* x (N, cin, H, W), e = SiLU(temb) (N, E) -> (N, cout, H, W) */
static struct gen_tensor *resblock(struct gen_ctx *g, struct gen_params *ps,
                                   const struct unet_resblock *rb, struct gen_tensor *x,
                                   struct gen_tensor *e) {
    const int64_t N = x->shape[0];
    struct gen_tensor *h =
        conv(g, ps, &rb->conv1, gen_silu(g, gn(g, ps, rb->norm1_w, rb->norm1_b, x)));
    struct gen_tensor *t = gen_linear_layer_fwd(g, ps, &rb->temb, e); /* (N, cout) */
    h = gen_add(g, h, gen_reshape(g, t, 4, (int64_t[]){N, rb->cout, 1, 1}));
    h = conv(g, ps, &rb->conv2, gen_silu(g, gn(g, ps, rb->norm2_w, rb->norm2_b, h)));
    return gen_add(g, h, rb->skip.w >= 0 ? conv(g, ps, &rb->skip, x) : x);
}

/* x (N, ch, H, W) -> x + proj(attention(qkv(norm(x)))) */
static struct gen_tensor *attention(struct gen_ctx *g, struct gen_params *ps,
                                    const struct unet_attn *a, struct gen_tensor *x) {
    const int64_t N = x->shape[0], ch = x->shape[1], H = x->shape[2], W = x->shape[3];
    struct gen_tensor *qkv = conv(g, ps, &a->qkv, gn(g, ps, a->norm_w, a->norm_b, x));
    qkv = gen_reshape(g, qkv, 3, (int64_t[]){N, 3 * ch, H * W});
    qkv = gen_transpose(g, qkv, 1, 2);                  /* (N, HW, 3 ch) */
    struct gen_tensor *o = gen_attention(g, qkv, 1, 0); /* (N, HW, ch)   */
    o = gen_transpose(g, o, 1, 2);                      /* (N, ch, HW)   */
    o = gen_reshape(g, o, 4, (int64_t[]){N, ch, H, W});
    return gen_add(g, x, conv(g, ps, &a->proj, o));
}

struct gen_tensor *unet_forward(struct gen_ctx *g, const struct unet *u, struct gen_params *ps,
                                struct gen_tensor *x, const float *t, const int32_t *y) {
    const int64_t N = x->shape[0];
    GEN_ASSERT(x->ndim == 4 && x->shape[1] == u->cfg.C && x->shape[2] == u->cfg.H &&
               x->shape[3] == u->cfg.W);
    struct gen_tensor *sin = gen_tensor_2d(g, N, u->sin_dim); /* (N, b), no grad */
    unet_time_embedding(t, N, u->sin_dim, sin->data);
    struct gen_tensor *temb = gen_linear_layer_fwd(g, ps, &u->time0, sin);
    temb = gen_linear_layer_fwd(g, ps, &u->time2, gen_silu(g, temb));
    GEN_ASSERT((y != NULL) == (u->class_emb >= 0));
    if (y)
        temb = gen_add(g, temb, gen_embedding(g, gen_params_tensor(ps, u->class_emb), y, 2,
                                              (int64_t[]){N, u->temb_dim}));
    struct gen_tensor *e = gen_silu(g, temb); /* (N, 4b), shared by every block */

    struct gen_tensor *h = conv(g, ps, &u->conv_in, x);
    struct gen_tensor *s1 = resblock(g, ps, &u->enc1, h, e);
    struct gen_tensor *s2 = resblock(g, ps, &u->enc2, conv(g, ps, &u->down1, s1), e);
    h = resblock(g, ps, &u->mid1, conv(g, ps, &u->down2, s2), e);
    if (u->cfg.attn) h = attention(g, ps, &u->attn, h);
    h = resblock(g, ps, &u->mid2, h, e);
    h = conv(g, ps, &u->up2, gen_upsample2x(g, h));
    h = resblock(g, ps, &u->dec2, gen_concat(g, h, s2), e);
    h = conv(g, ps, &u->up1, gen_upsample2x(g, h));
    h = resblock(g, ps, &u->dec1, gen_concat(g, h, s1), e);
    h = gen_silu(g, gn(g, ps, u->norm_out_w, u->norm_out_b, h));
    return conv(g, ps, &u->conv_out, h);
}
