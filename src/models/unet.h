/* unet.h - the small U-Net of the diffusion family (DESIGN.md section 3),
 * private to src/models (diffusion.c and the tests).
 *
 * For C x H x W images, base width b and channel multipliers (m1, m2, m3)
 * of three levels (reference: b = 32, (1, 2, 2); H, W divisible by 4):
 *
 *   temb  = time_mlp.2(SiLU(time_mlp.0(sinusoidal_b(t))))      (N, 4b)
 *           (+ class_emb(y) for a model conditioned on K classes:
 *           an embedding table (K + 1, 4b) whose row K is the learned
 *           null class of classifier-free guidance)
 *   h     = conv_in(x)                                          (N, b, H, W)
 *   s1    = enc1(h)          ResBlock b -> b m1                 full size
 *   h     = down1(s1)        Conv3x3 stride 2                   H/2
 *   s2    = enc2(h)          ResBlock b m1 -> b m2
 *   h     = down2(s2)        Conv3x3 stride 2                   H/4
 *   h     = mid2(attn(mid1(h)))  ResBlocks b m2 -> b m3 -> b m3, attention
 *   h     = up2(nearest2x(h)); h = dec2(concat(h, s2))          H/2, -> b m2
 *   h     = up1(nearest2x(h)); h = dec1(concat(h, s1))          H,   -> b m1
 *   out   = conv_out(SiLU(norm_out(h)))                         (N, C, H, W)
 *
 * Four multipliers (m1, m2, m3, m4) add one level for larger images (H, W
 * divisible by 8): s3 = enc3(h) (b m2 -> b m3) and down3 to H/8 before the
 * middle, which then runs at H/8 (b m3 -> b m4 -> b m4), and
 * h = up3(nearest2x(h)); h = dec3(concat(h, s3)) (-> b m3) before up2.
 *
 * ResBlock(cin -> cout), given e = SiLU(temb):
 *   h = conv1(SiLU(norm1(x))) + temb(e)[:, :, None, None]
 *   y = conv2(SiLU(norm2(h))) + (skip(x) if cin != cout else x)
 * with GroupNorm(8) norms and 3x3 convs (skip is 1x1).
 * Attention(ch): y = x + proj(attention(qkv(norm(x)))) over the H W
 * positions, single head, qkv and proj 1x1 convs.
 *
 * Parameter names follow the PyTorch twin (scripts/reference/diffusion.py):
 * time_mlp.0.weight, conv_in.weight, enc1.norm1.weight, enc1.temb.bias,
 * attn.qkv.weight, dec1.skip.weight, norm_out.bias, conv_out.weight, ... */
#ifndef GEN_MODELS_UNET_H
#define GEN_MODELS_UNET_H

#include "gen/nn.h"

#define UNET_GROUPS     8
#define UNET_GN_EPS     1e-5f
#define UNET_MAX_LEVELS 4

struct unet_config {
    int64_t C, H, W;               /* image shape; H, W divisible by 2^(levels - 1) */
    int64_t base;                  /* b: a multiple of 8                            */
    int levels;                    /* 3 or 4 resolutions, the full size the first   */
    int64_t mult[UNET_MAX_LEVELS]; /* channel multipliers, one a level              */
    int attn;                      /* attention block in the middle                 */
    int64_t classes;               /* K: conditioned on K classes (0: unconditional) */
};

struct unet_resblock {
    int64_t cin, cout;
    int norm1_w, norm1_b, norm2_w, norm2_b;
    struct gen_conv_layer conv1, conv2, skip; /* skip.w < 0 when cin == cout */
    struct gen_linear_layer temb;
};

struct unet_attn {
    int norm_w, norm_b;
    struct gen_conv_layer qkv, proj;
};

struct unet {
    struct unet_config cfg;
    int64_t temb_dim, sin_dim; /* 4 b and b                              */
    struct gen_linear_layer time0, time2;
    struct gen_conv_layer conv_in, conv_out;
    /* Level i < levels - 1 (enc{i+1}, down{i+1}, up{i+1}, dec{i+1}): enc
     * and down on the way to level i + 1, up and dec on the way back. */
    struct unet_resblock enc[UNET_MAX_LEVELS - 1], dec[UNET_MAX_LEVELS - 1];
    struct gen_conv_layer down[UNET_MAX_LEVELS - 1], up[UNET_MAX_LEVELS - 1];
    struct unet_resblock mid1, mid2; /* at the last level */
    struct unet_attn attn;
    int norm_out_w, norm_out_b;
    int class_emb; /* (K + 1, 4b), or -1 when unconditional            */
};

/* "1,2,2" or "1,2,2,2" (--mults) -> c->levels and c->mult; GEN_ERR_USAGE
 * naming --mults for anything else (unet_check checks the values). */
enum gen_status unet_parse_mults(const char *s, struct unet_config *c);
/* Checks a configuration; GEN_ERR_USAGE with a message naming the fault
 * (sides not divisible by 2^(levels - 1), base not a multiple of 8, ...). */
enum gen_status unet_check(const struct unet_config *c);
/* Declares the parameters of a checked configuration into ps (before
 * gen_params_finalize). */
void unet_declare(struct unet *u, struct gen_params *ps, const struct unet_config *c);
/* PyTorch's default initialisation (after finalize): convs and linears
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), norms weight 1 and bias 0. */
void unet_init(const struct unet *u, struct gen_params *ps, struct gen_rng *r);

/* Sinusoidal embedding of timesteps t (N) into out (N, dim), dim even:
 * f_i = exp(-ln(10000) i / (dim/2)), out = [sin(t f_0..), cos(t f_0..)],
 * computed in double. */
void unet_time_embedding(const float *t, int64_t n, int64_t dim, float *out);

/* eps_hat (N, C, H, W) for noisy images x (N, C, H, W) at timesteps t (N),
 * given as floats (0 .. T-1), and for a conditional model classes y (N),
 * each in 0 .. K (K: the null class); y is NULL for an unconditional one. */
struct gen_tensor *unet_forward(struct gen_ctx *g, const struct unet *u, struct gen_params *ps,
                                struct gen_tensor *x, const float *t, const int32_t *y);

#endif
