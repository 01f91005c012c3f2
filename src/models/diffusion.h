/* diffusion.h - what the diffusion family's files share (diffusion.c: the
 * model, its loss and sampling; diffusion_restore.c: restoration as guides
 * and starts of its reverse process). Internal to src/models. */
#ifndef GEN_MODELS_DIFFUSION_H
#define GEN_MODELS_DIFFUSION_H

#include "gen/family.h"
#include "gen/restore.h"
#include "models/ddpm.h"
#include "models/unet.h"

/* The model's random streams (the noise of a training example is keyed by
 * DIF_RNG_NOISE, see gen_batch_rng). */
enum { DIF_RNG_INIT, DIF_RNG_NOISE, DIF_N_RNG };

struct diffusion {
    struct unet_config ucfg;
    struct unet net;
    struct gen_params ps;
    struct ddpm_schedule sched;
    struct gen_rng rng[DIF_N_RNG];
    int64_t snapshot_steps; /* DDIM steps of the training snapshots */
    double cond_drop;       /* --cond-drop                          */
};

static inline int64_t image_numel(const struct diffusion *m) {
    return m->ucfg.C * m->ucfg.H * m->ucfg.W;
}

/* The reverse process's view of the model (a ddpm_eps_fn argument). */
struct eps_model {
    struct diffusion *m;
    struct gen_ctx *g;
    const int32_t *labels; /* (n) classes of the request, or NULL: the null class */
    double guidance;       /* w                                                   */
};

/* ddpm_eps_fn: eps (B, D) for images first .. first + B - 1 of x at step
 * t; resets the context. A conditional model with classes and guidance w
 * other than 0 and 1 runs the conditional and the null-class copies as
 * one doubled batch. */
void diffusion_predict(void *arg, int64_t first, int64_t B, float *x, int64_t t, float *eps);

/* Images (n, D) in [-1, 1] to [0, 1] in place ((x + 1) / 2 exactly). */
void diffusion_to_unit(float *x, int64_t n);

/* Restores req's inputs by task (gen_restore_task_of): inpaint_spec is
 * --inpaint's value (test:A-B of the inputs, or NULL: all), eta_set
 * whether --eta was given. Output: one row per input, [degraded input |
 * the results | original, when known]. */
enum gen_status diffusion_restore(struct diffusion *m, struct gen_ctx *g, struct ddpm_sampler *smp,
                                  const struct gen_config *opts, const struct gen_request *req,
                                  const struct gen_restore_task *task, const char *inpaint_spec,
                                  int eta_set, struct gen_output *out);

#endif
