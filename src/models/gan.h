/* gan.h - private: the DCGAN model, shared by gan.c and its tests. */
#ifndef GEN_MODELS_GAN_H
#define GEN_MODELS_GAN_H

#include "gen/data.h"
#include "gen/nn.h"

enum { GEN_GAN_RNG_INIT, GEN_GAN_RNG_NOISE, GEN_GAN_N_RNG };
enum { GEN_GAN_G = 0, GEN_GAN_D = 1 };             /* optimiser groups of ps */
enum { GEN_GAN_PHASE_D = 0, GEN_GAN_PHASE_G = 1 }; /* the phases of a step   */
enum { GEN_GAN_D_LOSS, GEN_GAN_G_LOSS, GEN_GAN_D_X, GEN_GAN_D_G_Z, GEN_GAN_N_FIELDS };

/* Images are generated in chunks of this many, each chunk normalised by
 * its own batch statistics (the training batch of the reference). */
#define GEN_GAN_SAMPLE_BATCH 64

/* Divergence watch: means of D's and G's losses over sub-windows of
 * `sub` steps, newest last. */
#define GEN_GAN_WATCH_SUBS 5
struct gen_gan_watch {
    int64_t window, sub; /* steps (0: off); sub = window / 5 */
    double d_sum, g_sum, dx_sum, dgz_sum;
    int64_t n; /* steps in the current sub-window */
    double d[GEN_GAN_WATCH_SUBS + 1], g[GEN_GAN_WATCH_SUBS + 1];
    double dx, dgz;         /* D(x), D(G(z)) of the last sub-window */
    int filled;             /* sub-window means held (<= SUBS + 1) */
    int d_warned, g_warned; /* a warning is out; re-armed when it clears */
};

struct gen_gan {
    int64_t C, S, latent, gw, dw; /* channels, side (multiple of 4), z size, widths */
    struct gen_params ps;         /* G (group 0) and D (group 1) */
    /* G: fc (latent -> 2gw S/4 S/4, no bias), bn0, deconv1 (2gw -> gw, no
     * bias), bn1, deconv2 (gw -> C) */
    struct gen_linear_layer g_fc;
    struct gen_batchnorm_layer g_bn0, g_bn1;
    struct gen_conv_layer g_deconv1, g_deconv2;
    /* D: conv1 (C -> dw), conv2 (dw -> 2dw, no bias), bn2, fc (2dw S/4 S/4 -> 1) */
    struct gen_conv_layer d_conv1, d_conv2;
    struct gen_batchnorm_layer d_bn2;
    struct gen_linear_layer d_fc;
    /* --conditional on K classes (0: unconditional, and both indices -1):
     * G's label_emb (K, K) rows concatenated to z (fc then takes latent +
     * K), and D's projection table embed (K, 2dw S/4 S/4). */
    int64_t classes;
    int g_label_emb, d_embed;
    struct gen_rng rng[GEN_GAN_N_RNG];
    float *bn_saved; /* (ps.n_buffer) running stats kept across sampling */
    struct gen_gan_watch watch;
    /* Carried from D's phase of a step to G's: G(z) (B, C, S, S) on the
     * tape up to `g_only`, and the labels 1 (B, 1). */
    struct gen_tensor *fake, *ones;
    int64_t g_only;
};

/* Declares both networks and initialises them from rng stream
 * GEN_GAN_RNG_INIT of `seed`: weights N(0, 0.02), BN gamma N(1, 0.02),
 * biases and BN beta 0, running mean 0 / var 1. classes > 0 makes both
 * networks class-conditional: the class tables are declared and
 * initialised after every other tensor (G.label_emb N(0, 1), D.embed N(0,
 * 0.02)), so an unconditional model (classes 0) is as before. with_ema
 * also allocates the EMA block (a copy of the initial weights). S must be
 * a multiple of 4 and C 1 or 3 (else GEN_ERR_USAGE naming --image-size /
 * --channels). Free with gen_gan_free (also after a failed build). */
enum gen_status gen_gan_build(struct gen_gan *m, int64_t C, int64_t S, int64_t latent, int64_t gw,
                              int64_t dw, int64_t classes, int with_ema, uint64_t seed);
void gen_gan_free(struct gen_gan *m);

/* z (B, latent) and classes y (B) -> images (B, C, S, S) in [-1, 1]. y
 * is NULL exactly when the model is unconditional; it is read until the
 * backward pass. */
struct gen_tensor *gen_gan_generator(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *z,
                                     const int32_t *y);
/* x (B, C, S, S) and classes y (B) (NULL: unconditional) -> logits (B, 1):
 * fc(phi(x)), plus <embed[y], phi(x)> when conditional (the projection
 * discriminator of Miyato & Koyama 2018). */
struct gen_tensor *gen_gan_discriminator(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *x,
                                         const int32_t *y);

/* The loss of one phase of a training step (g in training mode, not reset
 * between the phases). y: the classes (B) of the real images, which the
 * fakes take too (NULL: unconditional), the same in both phases.
 * GEN_GAN_PHASE_D: fake = G(z, y) for noise z (B, latent), then
 * BCE(D(x, y), 1) + BCE(D(fake detached, y), 0) on real images x (B, C, S,
 * S) in [-1, 1]; fields d_loss, D(x), D(G(z)) (mean sigmoids).
 * GEN_GAN_PHASE_G (after D's update, with D's gradients off): the
 * non-saturating -log D(fake, y) of the same fake, whose G forward is
 * reused (the tape is cut back to it; x and z are not read); field g_loss. */
struct gen_tensor *gen_gan_phase_loss(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *x,
                                      const int32_t *y, struct gen_tensor *z, int phase,
                                      double *fields);

/* Images from latent rows z (n, latent) and classes y (n) (NULL exactly
 * when unconditional) into out (n, C, S, S) in [0, 1], in chunks of
 * GEN_GAN_SAMPLE_BATCH. An unconditional G normalises each chunk with its
 * batch statistics (as DCGAN samples); a conditional one with those of a
 * fixed reference batch of GEN_GAN_SAMPLE_BATCH latents whose classes take
 * turns (a chunk of one class would lose its class to its own batch mean),
 * so an image depends on its own latent and class only. The BN running
 * statistics are left as they were. Resets g after each chunk (no caller
 * tensors may live in g). */
void gen_gan_sample(struct gen_ctx *g, struct gen_gan *m, const float *z, const int32_t *y,
                    int64_t n, float *out);

/* Feeds one step's losses to the watch. Returns 1 when a divergence
 * condition has just become true (and writes a one-line description with
 * advice into msg), else 0. */
int gen_gan_watch_step(struct gen_gan_watch *w, int64_t step, double d_loss, double g_loss,
                       double d_x, double d_g_z, char *msg, size_t msg_size);

#endif
