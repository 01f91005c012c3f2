/* vae.h - private: the VAE model, shared by vae.c, vae_sample.c and its
 * tests. */
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

/* The network's halves: x (B, C, H, W) of classes y -> mu, logvar
 * (B, latent); z (B, latent) of classes y -> logits (B, C, H, W). */
void vae_encode(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, const int32_t *y,
                struct gen_tensor **mu, struct gen_tensor **logvar);
struct gen_tensor *vae_decode(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *z,
                              const int32_t *y);
/* Images idx[0..count) of a set as (count, C, H, W) in [0, 1]; images
 * first..first+count-1; the classes of images first.. (NULL for an
 * unconditional model); each of y[0..count) repeated n / count times
 * (NULL when y is). */
struct gen_tensor *vae_batch_images(struct gen_ctx *g, struct gen_vae *m,
                                    const struct gen_image_set *set, const int32_t *idx, int count);
struct gen_tensor *vae_batch_range(struct gen_ctx *g, struct gen_vae *m,
                                   const struct gen_image_set *set, int64_t first, int count);
const int32_t *vae_range_labels(const struct gen_vae *m, const struct gen_image_set *set,
                                int64_t first);
const int32_t *vae_repeat_labels(struct gen_ctx *g, const int32_t *y, int64_t count, int64_t n);
/* sample's modes on the held-out images of set: the walk --interpolate
 * walk ("A,B": n images, one row), or n / 2 reconstruction pairs (heat:
 * n / 3 triples with the error map), grouped into *cols columns.
 * Returns a status (a bad walk is a usage error). */
enum gen_status vae_sample_inputs(struct gen_ctx *g, struct gen_vae *m,
                                  const struct gen_image_set *set, const char *walk, int heat,
                                  int n, struct gen_tensor **images, int *cols);

#endif
