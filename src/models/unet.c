/* unet.c - the diffusion family's U-Net (see unet.h), built from the core
 * ops: conv2d, groupnorm, SiLU, broadcast add, attention, upsampling and
 * channel concatenation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/unet.h"

enum gen_status unet_parse_mults(const char *s, struct unet_config *c) {
    const char *p = s ? s : "";
    int n = 0;
    for (;;) {
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p || n == UNET_MAX_LEVELS || (*end != ',' && *end != 0)) break;
        c->mult[n++] = v;
        if (*end == 0) {
            if (n < 3) break;
            c->levels = n;
            return GEN_OK;
        }
        p = end + 1;
    }
    return gen_error(GEN_ERR_USAGE,
                     "--mults: expected three or four channel multipliers like 1,2,2 or 1,2,2,2, "
                     "got '%s'",
                     s ? s : "");
}

enum gen_status unet_check(const struct unet_config *c) {
    GEN_ASSERT(c->levels == 3 || c->levels == UNET_MAX_LEVELS);
    /* the sides halve at every level but the first */
    const int64_t side = (int64_t)1 << (c->levels - 1);
    if (c->C < 1 || c->C > 4)
        return gen_error(GEN_ERR_FORMAT, "diffusion: images with %lld channels (1 to 4 work)",
                         (long long)c->C);
    if (c->H < side || c->W < side || c->H % side || c->W % side)
        return gen_error(GEN_ERR_FORMAT,
                         "diffusion: a U-Net of %d levels needs image sides divisible by %lld, "
                         "got %lldx%lld (--image-size N crops and resizes them)",
                         c->levels, (long long)side, (long long)c->H, (long long)c->W);
    if (c->base < 8 || c->base % UNET_GROUPS)
        return gen_error(GEN_ERR_USAGE, "--base: must be a multiple of %d, got %lld", UNET_GROUPS,
                         (long long)c->base);
    for (int i = 0; i < c->levels; i++)
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

/* "enc" and level i -> "enc{i+1}" */
static const char *level_name(char *buf, size_t n, const char *what, int i) {
    snprintf(buf, n, "%s%d", what, i + 1);
    return buf;
}

/* In the order of the 3-level model's names (enc1, down1, enc2, down2,
 * mid1, attn, mid2, up2, dec2, up1, dec1): the order its checkpoints, the
 * twin and the initialisation's random stream follow. */
void unet_declare(struct unet *u, struct gen_params *ps, const struct unet_config *c) {
    const int L = c->levels;
    const int64_t b = c->base;
    int64_t ch[UNET_MAX_LEVELS] = {0}; /* channels of each level */
    for (int i = 0; i < L; i++) ch[i] = b * c->mult[i];
    u->cfg = *c;
    u->sin_dim = b;
    u->temb_dim = 4 * b;
    const int64_t E = u->temb_dim;
    char name[32];
    gen_linear_layer_add(ps, &u->time0, "time_mlp.0", u->sin_dim, E, 1, 0);
    gen_linear_layer_add(ps, &u->time2, "time_mlp.2", E, E, 1, 0);
    gen_conv_layer_add(ps, &u->conv_in, "conv_in", c->C, b, 3, 1, 1, 1, 0, 0);
    for (int i = 0; i < L - 1; i++) {
        resblock_declare(ps, &u->enc[i], level_name(name, sizeof name, "enc", i), i ? ch[i - 1] : b,
                         ch[i], E);
        gen_conv_layer_add(ps, &u->down[i], level_name(name, sizeof name, "down", i), ch[i], ch[i],
                           3, 2, 1, 1, 0, 0);
    }
    const int64_t cm = ch[L - 1]; /* the middle's channels */
    resblock_declare(ps, &u->mid1, "mid1", ch[L - 2], cm, E);
    if (c->attn) {
        u->attn.norm_w = norm_add(ps, "attn", "norm.weight", cm);
        u->attn.norm_b = norm_add(ps, "attn", "norm.bias", cm);
        gen_conv_layer_add(ps, &u->attn.qkv, "attn.qkv", cm, 3 * cm, 1, 1, 0, 1, 0, 0);
        gen_conv_layer_add(ps, &u->attn.proj, "attn.proj", cm, cm, 1, 1, 0, 1, 0, 0);
    }
    resblock_declare(ps, &u->mid2, "mid2", cm, cm, E);
    for (int i = L - 2; i >= 0; i--) {
        gen_conv_layer_add(ps, &u->up[i], level_name(name, sizeof name, "up", i), ch[i + 1],
                           ch[i + 1], 3, 1, 1, 1, 0, 0);
        resblock_declare(ps, &u->dec[i], level_name(name, sizeof name, "dec", i), ch[i + 1] + ch[i],
                         ch[i], E);
    }
    u->norm_out_w = norm_add(ps, "norm_out", "weight", ch[0]);
    u->norm_out_b = norm_add(ps, "norm_out", "bias", ch[0]);
    gen_conv_layer_add(ps, &u->conv_out, "conv_out", ch[0], c->C, 3, 1, 1, 1, 0, 0);
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

/* In unet_declare's order. */
void unet_init(const struct unet *u, struct gen_params *ps, struct gen_rng *r) {
    const int L = u->cfg.levels;
    gen_linear_layer_init(ps, &u->time0, r);
    gen_linear_layer_init(ps, &u->time2, r);
    gen_conv_layer_init(ps, &u->conv_in, r);
    for (int i = 0; i < L - 1; i++) {
        resblock_init(&u->enc[i], ps, r);
        gen_conv_layer_init(ps, &u->down[i], r);
    }
    resblock_init(&u->mid1, ps, r);
    if (u->cfg.attn) {
        norm_init(ps, u->attn.norm_w, u->attn.norm_b);
        gen_conv_layer_init(ps, &u->attn.qkv, r);
        gen_conv_layer_init(ps, &u->attn.proj, r);
    }
    resblock_init(&u->mid2, ps, r);
    for (int i = L - 2; i >= 0; i--) {
        gen_conv_layer_init(ps, &u->up[i], r);
        resblock_init(&u->dec[i], ps, r);
    }
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

/* SiLU(groupnorm(x + shift)) in one op (one pass each way, no stored
 * normed copy; shift (N, C) or NULL), for a convolution to read: each one
 * here is a convolution's input alone (in bf16 where the products are) */
static struct gen_tensor *gn_silu(struct gen_ctx *g, struct gen_params *ps, int w, int b,
                                  struct gen_tensor *x, struct gen_tensor *shift) {
    struct gen_tensor *gm = gen_params_tensor(ps, w), *bt = gen_params_tensor(ps, b);
    return gen_groupnorm_silu_operand(g, x, shift, UNET_GROUPS, gm, bt, UNET_GN_EPS);
}

static struct gen_tensor *conv(struct gen_ctx *g, struct gen_params *ps,
                               const struct gen_conv_layer *l, struct gen_tensor *x) {
    return gen_conv_layer_fwd(g, ps, l, x);
}

/* conv(SiLU(groupnorm(x))); the normed copy goes back at once when no
 * tape keeps it (gen_scope_open) */
static struct gen_tensor *norm_conv(struct gen_ctx *g, struct gen_params *ps, int w, int b,
                                    const struct gen_conv_layer *l, struct gen_tensor *x) {
    const struct gen_scope s = gen_scope_open(g, NULL);
    return gen_scope_close(g, s, conv(g, ps, l, gn_silu(g, ps, w, b, x, NULL)));
}

/* x (N, cin, H, W), e = SiLU(temb) (N, E) -> (N, cout, H, W); the time
 * embedding's projection t is added to conv1's output inside the group
 * norm that reads it (gen_groupnorm_silu_shift: conv1 + t is never
 * stored), and conv2 adds itself onto the skip's output, or onto a copy
 * of x where the skip is the identity (gen_conv_layer_fwd_sum: conv2's
 * own output is never stored) */
static struct gen_tensor *resblock(struct gen_ctx *g, struct gen_params *ps,
                                   const struct unet_resblock *rb, struct gen_tensor *x,
                                   struct gen_tensor *e) {
    const struct gen_scope s = gen_scope_open(g, NULL);
    struct gen_tensor *h = norm_conv(g, ps, rb->norm1_w, rb->norm1_b, &rb->conv1, x);
    struct gen_tensor *t = gen_linear_layer_fwd(g, ps, &rb->temb, e); /* (N, cout) */
    h = gn_silu(g, ps, rb->norm2_w, rb->norm2_b, h, t);
    const int skip = rb->skip.w >= 0;
    h = gen_conv_layer_fwd_sum(g, ps, &rb->conv2, h, skip ? &rb->skip : NULL, x, skip ? NULL : x);
    return gen_scope_close(g, s, h);
}

/* x (N, ch, H, W) -> x + proj(attention(qkv(norm(x)))) */
static struct gen_tensor *attention(struct gen_ctx *g, struct gen_params *ps,
                                    const struct unet_attn *a, struct gen_tensor *x) {
    const int64_t N = x->shape[0], ch = x->shape[1], H = x->shape[2], W = x->shape[3];
    const struct gen_scope s = gen_scope_open(g, NULL);
    struct gen_tensor *qkv = conv(g, ps, &a->qkv, gn(g, ps, a->norm_w, a->norm_b, x));
    qkv = gen_reshape(g, qkv, 3, (int64_t[]){N, 3 * ch, H * W});
    qkv = gen_transpose(g, qkv, 1, 2);                  /* (N, HW, 3 ch) */
    struct gen_tensor *o = gen_attention(g, qkv, 1, 0); /* (N, HW, ch)   */
    o = gen_transpose(g, o, 1, 2);                      /* (N, ch, HW)   */
    o = gen_reshape(g, o, 4, (int64_t[]){N, ch, H, W});
    return gen_scope_close(g, s, gen_conv_layer_fwd_sum(g, ps, &a->proj, o, NULL, NULL, x));
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

    /* Without a tape, each scope gives back the activations its result no
     * longer needs: a level's input once its block has run, a decoder
     * level's upsampled and joined copies. */
    const int L = u->cfg.levels;
    struct gen_tensor *skip[UNET_MAX_LEVELS - 1]; /* (N, ch_i, H / 2^i, W / 2^i) */
    const struct gen_scope all = gen_scope_open(g, NULL);
    struct gen_tensor *h = conv(g, ps, &u->conv_in, x);
    for (int i = 0; i < L - 1; i++) {
        const struct gen_scope s = gen_scope_open(g, h);
        skip[i] = gen_scope_close(g, s, resblock(g, ps, &u->enc[i], h, e));
        h = conv(g, ps, &u->down[i], skip[i]);
    }
    struct gen_scope s = gen_scope_open(g, h);
    h = resblock(g, ps, &u->mid1, h, e);
    if (u->cfg.attn) h = attention(g, ps, &u->attn, h);
    h = gen_scope_close(g, s, resblock(g, ps, &u->mid2, h, e));
    for (int i = L - 2; i >= 0; i--) { /* the up convolution written into the joined copy */
        s = gen_scope_open(g, h);
        h = gen_upsample2x_operand(g, h);
        h = gen_scope_close(g, s, gen_conv_layer_fwd_concat(g, ps, &u->up[i], h, skip[i]));
        s = gen_scope_open(g, h);
        h = gen_scope_close(g, s, resblock(g, ps, &u->dec[i], h, e));
    }
    h = norm_conv(g, ps, u->norm_out_w, u->norm_out_b, &u->conv_out, h);
    return gen_scope_close(g, all, h);
}
