/* ddpm.h - the noise schedule and samplers of denoising diffusion, private
 * to src/models and the tests: the schedule, the closed-form noising
 * q(x_t | x_0), one denoising step of each sampler (DDPM, DDIM) and the
 * whole reverse process with a guidance hook (inpainting, super-resolution)
 * and a part-way start (denoising), for any model that predicts the noise. The steps are per element, in double, on
 * caller-owned float arrays of n elements.
 *
 * Timesteps are 0-based: t = 0 .. T-1 with beta_t = beta_start +
 * (beta_end - beta_start) t / (T - 1) (one beta_start when T = 1),
 * alpha_t = 1 - beta_t, abar_t = prod_{s <= t} alpha_s, and abar_{-1} = 1
 * (the clean image). */
#ifndef GEN_MODELS_DDPM_H
#define GEN_MODELS_DDPM_H

#include <math.h>

#include "gen/core.h"

struct ddpm_schedule {
    int64_t T;
    double *beta, *alpha_bar; /* (T) each; gen_alloc'd */
};

/* GEN_ERR_USAGE unless T >= 1 and 0 < beta_start <= beta_end < 1. */
enum gen_status ddpm_schedule_init(struct ddpm_schedule *s, int64_t T, double beta_start,
                                   double beta_end);
void ddpm_schedule_free(struct ddpm_schedule *s);
/* abar_t, with abar_{-1} = 1. */
double ddpm_abar(const struct ddpm_schedule *s, int64_t t);

/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (t = -1 gives x0). */
void ddpm_q_sample(const struct ddpm_schedule *s, int64_t t, int64_t n, const float *x0,
                   const float *eps, float *xt);

/* x0 predicted from x_t and eps_hat, clipped to [-1, 1]:
 * clip((x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)). */
static inline double ddpm_x0(double abar, double xt, double eps) {
    double x0 = (xt - sqrt(1.0 - abar) * eps) / sqrt(abar);
    return x0 < -1.0 ? -1.0 : x0 > 1.0 ? 1.0 : x0;
}

/* Ancestral DDPM step t -> t-1 (Ho et al. 2020) with the clipped x0:
 *   mean = beta_t sqrt(abar_{t-1}) / (1 - abar_t) x0
 *        + (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t) x_t
 *   x_{t-1} = mean + sqrt(beta_t) z   (no noise at t = 0; z may be NULL then).
 * out may alias xt. */
void ddpm_step(const struct ddpm_schedule *s, int64_t t, int64_t n, const float *xt,
               const float *eps, const float *z, float *out);

/* DDIM step t -> prev (prev < t; -1 for the last step) with noise eta:
 *   x0 clipped, eps' = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t),
 *   sigma = eta sqrt((1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev)),
 *   x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps' + sigma z.
 * z may be NULL when sigma is 0 (eta 0, or prev = -1). out may alias xt. */
void ddim_step(const struct ddpm_schedule *s, int64_t t, int64_t prev, double eta, int64_t n,
               const float *xt, const float *eps, const float *z, float *out);

/* The K DDIM timesteps, ascending, "trailing" spacing that ends at T - 1:
 * tau_i = (i + 1) T / K - 1 (integer division), i = 0 .. K-1; K = T gives
 * every step. 1 <= K <= T. */
void ddim_timesteps(int64_t T, int64_t K, int64_t *tau);

/* ---- the reverse process ---- */

/* Guidance of the reverse process, one function per restoration mode:
 * after every reverse step t -> prev, guide(arg, prev, first, B, x, z) may
 * change x = x_prev (B, D) of images first .. first + B - 1 of the request;
 * z (B, D) is fresh N(0, I) noise from each image's own stream. prev = -1:
 * x is the final x0 (clipped to [-1, 1] after the guide). */
typedef void (*ddpm_guide_fn)(void *arg, int64_t prev, int64_t first, int64_t B, float *x,
                              const float *z);

/* How to sample. */
struct ddpm_sampler {
    int ddpm;      /* ancestral over all T steps; else DDIM            */
    int64_t steps; /* DDIM steps K (1 <= K <= T)                       */
    double eta;    /* DDIM noise (0: deterministic)                    */
    /* Optional guidance (NULL: none) and its passes per step, >= 1:
     * with R > 1 each guided step is repeated R times, renoising x_prev
     * back to x_t between the passes (Lugmayr et al. 2022, RePaint with
     * jumps of one step). */
    ddpm_guide_fn guide;
    void *guide_arg;
    int resample;
    /* Optional start part-way (SDEdit, Meng et al. 2022): init (n, D)
     * images noised to step init_t, x = sqrt(abar) init + sqrt(max(0,
     * 1 - abar (1 + init_var))) z, where init_var is the variance of the
     * noise init already carries; the chain then runs from init_t with the
     * sampler's spacing (DDIM: init_t, then the K steps below it). NULL:
     * x_{T-1} ~ N(0, I). */
    const float *init;
    int64_t init_t;
    double init_var;
    /* Optional: told after each reverse step (done of total steps over
     * every batch), for a progress bar. */
    void (*progress)(int64_t done, int64_t total, void *arg);
    void *progress_arg;
    /* The stream index of image 0 (image j draws from (seed, index0 + j)):
     * a request generated in parts is the same as in one. */
    int64_t index0;
};

/* The model: eps (B, D) = the predicted noise of x (B, D) at timestep t;
 * the B images are images first .. first + B - 1 of the request. */
typedef void (*ddpm_eps_fn)(void *model, int64_t first, int64_t B, float *x, int64_t t, float *eps);

/* The batch size of ddpm_sample. */
#define DDPM_SAMPLE_BATCH 64

/* Draws n images of D values each into out (n, D), in [-1, 1]: x_T ~
 * N(0, I) (or smp->init noised to its step), then the sampler's steps down
 * to x_0, each followed by smp->guide when there is one, in batches of at
 * most DDPM_SAMPLE_BATCH. Image i draws all its noise from its own stream
 * (seeded from seed and i), so it does not depend on its batch or on n.
 * GEN_ERR_USAGE when the DDIM steps are outside 1..T or init_t outside
 * 0..T-1; GEN_ERR_NOMEM. */
enum gen_status ddpm_sample(const struct ddpm_schedule *s, const struct ddpm_sampler *smp,
                            ddpm_eps_fn eps_fn, void *model, int64_t n, int64_t D, uint64_t seed,
                            float *out);

#endif
