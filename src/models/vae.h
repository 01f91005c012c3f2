/* vae.h - private: the VAE model, shared by vae.c and its tests. */
#ifndef GEN_MODELS_VAE_H
#define GEN_MODELS_VAE_H

#include "gen/data.h"
#include "gen/nn.h"

enum { GEN_VAE_MLP, GEN_VAE_CONV };
enum { GEN_VAE_RNG_INIT, GEN_VAE_RNG_NOISE, GEN_VAE_N_RNG };

struct gen_vae {
    int arch;
    int64_t C, H, W, D, latent, hidden;
    int64_t classes; /* K: conditioned on one-hot classes (--conditional), or 0 */
    struct gen_params ps;
    struct gen_linear_layer fc1, fc21, fc22, fc3, fc4;
    struct gen_conv_layer conv1, conv2, deconv1, deconv2;
    struct gen_rng rng[GEN_VAE_N_RNG];
};

/* Declares and initialises the parameters (PyTorch's default init from
 * rng stream GEN_VAE_RNG_INIT of `seed`; with_ema: an EMA block equal to
 * them). classes K > 0: a conditional VAE, the encoder's and the decoder's
 * inputs widened by K (the one-hot class); 0: unconditional. Free with
 * gen_params_free(&m->ps).
 *
 * y below: the classes (B) of a conditional model's images, each in
 * [0, K); NULL for an unconditional model. */
enum gen_status gen_vae_build(struct gen_vae *m, int arch, int64_t C, int64_t H, int64_t W,
                              int64_t latent, int64_t hidden, int64_t classes, int with_ema,
                              uint64_t seed);
/* Negative ELBO summed over the batch x (B, C, H, W) in [0, 1] of classes
 * y, with the reparameterisation noise eps (B, latent) given: bce and kl
 * (scalars). */
void gen_vae_neg_elbo(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, const int32_t *y,
                      struct gen_tensor *eps, struct gen_tensor **bce, struct gen_tensor **kl);
/* The training loss per image, (bce + kl) / B, with the noise eps
 * (B, latent); fields: loss, bce, kl per image. */
struct gen_tensor *gen_vae_loss(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x,
                                const int32_t *y, struct gen_tensor *eps, double *fields);
/* Mean negative ELBO per image of a set (of its labels when conditional,
 * each in [0, K)), with a fixed noise seed. */
double gen_vae_test_loss(struct gen_ctx *g, struct gen_vae *m, const struct gen_image_set *set);
/* n images of classes y (n) decoded from z ~ N(0, I), image i's z from
 * the stream keyed (seed, first + i): (n, C, H, W) in [0, 1]. */
struct gen_tensor *gen_vae_generate(struct gen_ctx *g, struct gen_vae *m, int n, const int32_t *y,
                                    uint64_t seed, int64_t first);

#endif
