/* diffusion.c - the DDPM family (DESIGN.md section 3): an epsilon-predicting
 * denoising diffusion model with the small U-Net of unet.c, trained on
 * images scaled to [-1, 1]; sampled with the DDPM or DDIM sampler of
 * ddpm.c, and restoration (inpainting, super-resolution, denoising) as
 * guides and starts of the reverse process.
 *
 * Training loss (batch of x0, all randomness from the noise stream):
 *   t ~ U{0 .. T-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
 *   loss = mean((unet(x_t, t) - eps)^2)
 * With --conditional the U-Net also takes the class y, replaced by the
 * null class K with probability --cond-drop (drawn after eps), so one
 * network learns eps(x_t, t, y) and eps(x_t, t, null); sampling combines
 * them with classifier-free guidance (Ho & Salimans 2022):
 *   eps = eps(x_t, t, null) + w (eps(x_t, t, y) - eps(x_t, t, null))
 * in one forward pass over the doubled batch (w = 0 and w = 1 need one
 * half only).
 * The engine adds Adam with its warm-up, the gradient clip and the EMA of
 * the weights (--ema, default 0.999), which sampling uses. */
#include <math.h>
#include <string.h>

#include "gen/family.h"
#include "gen/metrics.h"
#include "gen/restore.h"
#include "models/ddpm.h"
#include "models/diffusion.h"
#include "models/unet.h"

/* The family's options, by their index in its tables (read with gen_opt_*). */
enum { DIF_T_DATA, DIF_T_STEPS, DIF_T_BATCH, DIF_T_LR, DIF_T_WARMUP, DIF_T_CLIP, DIF_T_EMA,
    DIF_T_BASE, DIF_T_MULTS, DIF_T_TIMESTEPS, DIF_T_BETA_START, DIF_T_BETA_END, DIF_T_NO_ATTN,
    DIF_T_SAMPLE_STEPS, DIF_T_CONDITIONAL, DIF_T_COND_DROP,
    DIF_T_CHANNELS, DIF_T_IMAGE_SIZE, DIF_T_COUNT };
enum { DIF_S_SAMPLER, DIF_S_STEPS, DIF_S_ETA, DIF_S_GUIDANCE, DIF_S_INPAINT, DIF_S_MASK,
    DIF_S_RESAMPLE, DIF_S_SUPERRES, DIF_S_DENOISE, DIF_S_STRENGTH, DIF_S_COUNT };
enum { DIF_E_CLASSIFIER, DIF_E_NUM, DIF_E_SAMPLES, DIF_E_SAMPLER, DIF_E_STEPS, DIF_E_ETA,
    DIF_E_GUIDANCE, DIF_E_PLOT, DIF_E_RESTORE, DIF_E_MASK, DIF_E_RESAMPLE, DIF_E_SUPERRES,
    DIF_E_DENOISE, DIF_E_STRENGTH, DIF_E_COUNT };
static const struct gen_option diffusion_train_options[DIF_T_COUNT + 1];
static const struct gen_option diffusion_sample_options[DIF_S_COUNT + 3];
static const struct gen_option diffusion_eval_options[DIF_E_COUNT + 1];


/* ---- build ---- */

/* The U-Net for images of `shape` (with an EMA block when --ema > 0) and
 * the schedule; weights initialised from `seed`. */
static enum gen_status diffusion_create(void *model, const struct gen_config *cfg,
                                        const struct gen_data_shape *shape, uint64_t seed,
                                        struct gen_model_info *info) {
    struct diffusion *m = model;
    struct unet_config *c = &m->ucfg;
    *c = (struct unet_config){.C = shape->c,
                              .H = shape->h,
                              .W = shape->w,
                              .base = gen_opt_int(cfg, &diffusion_train_options[DIF_T_BASE]),
                              .attn = !gen_opt_flag(cfg, &diffusion_train_options[DIF_T_NO_ATTN])};
    enum gen_status st = gen_conditional_classes(
        gen_opt_flag(cfg, &diffusion_train_options[DIF_T_CONDITIONAL]), shape, &c->classes);
    if (st != GEN_OK) return st;
    m->cond_drop = gen_opt_float(cfg, &diffusion_train_options[DIF_T_COND_DROP]);
    const int with_ema = gen_opt_float(cfg, &diffusion_train_options[DIF_T_EMA]) > 0;
    st = unet_parse_mults(gen_opt_str(cfg, &diffusion_train_options[DIF_T_MULTS]), c);
    if (st == GEN_OK) st = unet_check(c);
    if (st == GEN_OK)
        st = ddpm_schedule_init(&m->sched, gen_opt_int(cfg, &diffusion_train_options[DIF_T_TIMESTEPS]),
                                gen_opt_float(cfg, &diffusion_train_options[DIF_T_BETA_START]),
                                gen_opt_float(cfg, &diffusion_train_options[DIF_T_BETA_END]));
    if (st != GEN_OK) return st;
    gen_params_init(&m->ps);
    unet_declare(&m->net, &m->ps, c);
    if ((st = gen_params_finalize(&m->ps, with_ema)) != GEN_OK) return st;
    for (int i = 0; i < DIF_N_RNG; i++) gen_rng_seed(&m->rng[i], seed * DIF_N_RNG + (uint64_t)i + 1);
    unet_init(&m->net, &m->ps, &m->rng[DIF_RNG_INIT]);
    if (with_ema) gen_ema_copy_in(&m->ps);
    m->snapshot_steps = gen_opt_int(cfg, &diffusion_train_options[DIF_T_SAMPLE_STEPS]);
    const struct gen_optim adam = {.kind = GEN_OPTIM_ADAM,
                                   .lr = (float)gen_opt_float(cfg, &diffusion_train_options[DIF_T_LR]),
                                   .beta1 = 0.9f,
                                   .beta2 = 0.999f,
                                   .eps = 1e-8f};
    *info = (struct gen_model_info){.ps = &m->ps,
                                    .rngs = m->rng,
                                    .n_rngs = DIF_N_RNG,
                                    .pixel_lo = -1.0f,
                                    .pixel_hi = 1.0f,
                                    .n_phases = 1,
                                    .phase = {{.group = -1, .optim = adam}},
                                    .ema_group = -1,
                                    .n_fields = 1,
                                    .fields = {"loss"},
                                    .unit = "img",
                                    .classes = (int)c->classes};
    return GEN_OK;
}

static void diffusion_destroy(void *model) {
    struct diffusion *m = model;
    gen_params_free(&m->ps);
    ddpm_schedule_free(&m->sched);
}

/* ---- loss ---- */

static struct gen_tensor *diffusion_loss(void *model, struct gen_ctx *g, const struct gen_batch *b,
                                         int phase, double *fields) {
    (void)phase;
    struct diffusion *m = model;
    struct gen_tensor *x0 = b->x; /* (N, C, H, W) in [-1, 1] */
    const int64_t D = image_numel(m);
    /* image i: its timestep, noise and (conditional) class drop, all from
     * its own stream */
    float *t = gen_arena_alloc(&g->arena, (size_t)b->n * sizeof *t); /* (N) */
    struct gen_tensor *eps = gen_tensor(g, 4, x0->shape);
    struct gen_tensor *xt = gen_tensor(g, 4, x0->shape);
    int32_t *y = NULL; /* (N) classes, some dropped to the null class K */
    if (m->ucfg.classes > 0) y = gen_arena_alloc(&g->arena, (size_t)b->n * sizeof *y);
    for (int i = 0; i < b->n; i++) {
        struct gen_rng r;
        gen_batch_rng(b, DIF_RNG_NOISE, i, &r);
        t[i] = (float)gen_rng_below(&r, (uint64_t)m->sched.T);
        gen_rng_fill_normal(&r, eps->data + i * D, D, 0.0f, 1.0f);
        ddpm_q_sample(&m->sched, (int64_t)t[i], D, x0->data + i * D, eps->data + i * D,
                      xt->data + i * D);
        if (y) y[i] = gen_rng_uniform(&r) < m->cond_drop ? (int32_t)m->ucfg.classes : b->labels[i];
    }
    struct gen_tensor *loss = gen_mse(g, unet_forward(g, &m->net, &m->ps, xt, t, y), eps);
    fields[0] = loss->data[0];
    return loss;
}

/* ---- sampling ---- */

/* The U-Net's eps (B, D) for x (B, D) at t, classes y (B) or NULL. */
static void unet_eps(const struct eps_model *p, int64_t B, float *x, int64_t t, const int32_t *y,
                     float *eps) {
    struct diffusion *m = p->m;
    struct gen_ctx *g = p->g;
    struct gen_tensor *xt =
        gen_tensor_wrap(g, x, 4, (int64_t[]){B, m->ucfg.C, m->ucfg.H, m->ucfg.W});
    float *tt = gen_arena_alloc(&g->arena, (size_t)B * sizeof *tt);
    for (int64_t i = 0; i < B; i++) tt[i] = (float)t;
    struct gen_tensor *out = unet_forward(g, &m->net, &m->ps, xt, tt, y);
    memcpy(eps, out->data, (size_t)gen_numel(out) * sizeof *eps);
}

/* ddpm_eps_fn: eps (B, D) for images first .. first + B - 1; resets the
 * context. A conditional model with classes and guidance w other than 0
 * and 1 runs the conditional and the null-class copies as one doubled
 * batch. */
void diffusion_predict(void *arg, int64_t first, int64_t B, float *x, int64_t t, float *eps) {
    const struct eps_model *p = arg;
    struct gen_arena *a = &p->g->arena;
    const int64_t K = p->m->ucfg.classes, D = image_numel(p->m);
    const double w = p->labels ? p->guidance : 0.0;
    const int both = K > 0 && w != 0.0 && w != 1.0;
    const int64_t n = both ? 2 * B : B;
    int32_t *y = NULL;
    if (K > 0) {
        y = gen_arena_alloc(a, (size_t)n * sizeof *y);
        for (int64_t i = 0; i < n; i++) y[i] = i < B && w != 0.0 ? p->labels[first + i] : (int32_t)K;
    }
    if (!both) {
        unet_eps(p, B, x, t, y, eps);
    } else {
        float *x2 = gen_arena_alloc(a, (size_t)(n * D) * sizeof *x2);
        float *e2 = gen_arena_alloc(a, (size_t)(n * D) * sizeof *e2);
        memcpy(x2, x, (size_t)(B * D) * sizeof *x2);
        memcpy(x2 + B * D, x, (size_t)(B * D) * sizeof *x2);
        unet_eps(p, n, x2, t, y, e2);
        const float *ec = e2, *eu = e2 + B * D;
        for (int64_t k = 0; k < B * D; k++) eps[k] = (float)(eu[k] + w * ((double)ec[k] - eu[k]));
    }
    gen_ctx_reset(p->g);
}

#define INPAINT (&diffusion_sample_options[DIF_S_INPAINT])

/* An option of opts, or NULL when opts lacks it or leaves it unset. */
static const struct gen_config_entry *opt_given(const struct gen_config *opts,
                                                const struct gen_option *o) {
    const struct gen_config_entry *e = opts ? gen_opt_get(opts, o) : NULL;
    return e && e->present ? e : NULL;
}

static const char *opt_str(const struct gen_config *opts, const struct gen_option *o) {
    const struct gen_config_entry *e = opt_given(opts, o);
    return e ? e->s : NULL;
}

/* The sampler of opts; NULL (the training snapshot): DDIM with
 * --sample-steps (at most T). */
static enum gen_status sampler_of(const struct diffusion *m, const struct gen_config *opts,
                                  struct ddpm_sampler *s) {
    const int64_t T = m->sched.T;
    *s = (struct ddpm_sampler){.steps = m->snapshot_steps < T ? m->snapshot_steps : T,
                               .resample = 1};
    if (!opts) return GEN_OK;
    s->ddpm = !strcmp(gen_opt_str(opts, &diffusion_sample_options[DIF_S_SAMPLER]), "ddpm");
    s->steps = gen_opt_int(opts, &diffusion_train_options[DIF_T_STEPS]);
    s->eta = gen_opt_float(opts, &diffusion_sample_options[DIF_S_ETA]);
    const struct gen_config_entry *r = gen_opt_get(opts, &diffusion_sample_options[DIF_S_RESAMPLE]); /* sample only */
    if (r && r->present) s->resample = (int)r->i;
    if (!s->ddpm && s->steps > T)
        return gen_error(GEN_ERR_USAGE, "--steps: at most T = %lld for this model, got %lld",
                         (long long)T, (long long)s->steps);
    return GEN_OK;
}

/* Classifier-free guidance w of opts (the training snapshot: 2). */
static enum gen_status guidance_of(const struct diffusion *m, const struct gen_config *opts,
                                   double *w) {
    const struct gen_config_entry *e = opts ? gen_opt_get(opts, &diffusion_sample_options[DIF_S_GUIDANCE]) : NULL;
    *w = 2.0;
    if (!e || !e->present) return GEN_OK;
    if (e->set && m->ucfg.classes == 0)
        return gen_error(GEN_ERR_USAGE,
                         "--guidance: this model is unconditional (train with --conditional)");
    char *end;
    *w = strtod(e->s, &end);
    if (end == e->s || *end || !(*w >= 0 && *w <= 100))
        return gen_error(GEN_ERR_USAGE,
                         "--guidance: expected one number in 0..100 (a list is for gen eval), "
                         "got '%s'",
                         e->s);
    return GEN_OK;
}

void diffusion_to_unit(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (x[i] + 1.0f) * 0.5f;
}

/* ---- generate ---- */

/* Inputs at the model's size for inpainting (fitted), H/K x W/K for
 * super-resolution and the model's own size for denoising (as they are:
 * resizing would change the noise). */
static int diffusion_needs_inputs(const struct gen_config *opts) {
    struct gen_restore_task t;
    if (gen_restore_task_of(opts, NULL, &t) != GEN_OK) /* generate names the problem */
        return opt_given(opts, INPAINT) || opt_given(opts, &diffusion_sample_options[DIF_S_SUPERRES]) ||
                       opt_given(opts, &diffusion_sample_options[DIF_S_DENOISE])
                   ? GEN_INPUTS_FIT
                   : 0;
    switch (t.mode) {
    case GEN_RESTORE_INPAINT: return GEN_INPUTS_FIT;
    case GEN_RESTORE_SUPERRES: return GEN_INPUTS_NATIVE(t.factor);
    case GEN_RESTORE_DENOISE: return GEN_INPUTS_NATIVE(1);
    default: return 0;
    }
}

/* Restoration works on its inputs; sampling from noise is plain. */
static int diffusion_plain(const struct gen_config *opts) {
    return diffusion_needs_inputs(opts) == 0 && !gen_opt_str_if(opts, &diffusion_sample_options[DIF_S_MASK]);
}

static enum gen_status diffusion_generate(void *model, struct gen_ctx *g,
                                          const struct gen_config *opts,
                                          const struct gen_request *req, struct gen_output *out) {
    struct diffusion *m = model;
    struct ddpm_sampler smp;
    enum gen_status st = sampler_of(m, opts, &smp);
    if (st != GEN_OK) return st;
    smp.progress = req->progress, smp.progress_arg = req->progress_arg;
    out->c = (int)m->ucfg.C, out->h = (int)m->ucfg.H, out->w = (int)m->ucfg.W;
    struct gen_restore_task task;
    if ((st = gen_restore_task_of(opts, req->mask, &task)) != GEN_OK) return st;
    if (task.mode != GEN_RESTORE_NONE)
        return diffusion_restore(m, g, &smp, opts, req, &task, opt_str(opts, INPAINT),
                                 gen_opt_is_set(opts, &diffusion_sample_options[DIF_S_ETA]), out);
    if (req->mask) return gen_error(GEN_ERR_USAGE, "--mask needs --inpaint");
    const int64_t n = req->n, D = image_numel(m);
    struct eps_model em = {m, g, req->labels, 0};
    if ((st = guidance_of(m, opts, &em.guidance)) != GEN_OK) return st;
    if (req->labels && m->ucfg.classes == 0)
        return gen_error(GEN_ERR_USAGE, "--class: this model is unconditional (train with --conditional)");
    float *x = gen_alloc((size_t)(n * D) * sizeof *x);
    if (!x) return gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
    smp.index0 = req->first;
    st = ddpm_sample(&m->sched, &smp, diffusion_predict, (void *)&em, n, D, req->seed, x);
    if (st != GEN_OK) {
        gen_free(x);
        return st;
    }
    diffusion_to_unit(x, n * D);
    out->images = x;
    out->n_images = n;
    out->cols = 0;
    return GEN_OK;
}

/* ---- anomaly score (gen eval --ood) ---- */

/* Per-image anomaly score: the denoising error summed over four fixed
 * timesteps in the middle of the chain, t_k = f_k T (f = 0.3 .. 0.6), with
 * noise drawn from the eval --seed and the image's index alone (a score
 * does not depend on its batch):
 *   score(x0) = sum_k mean_i (eps_hat(x_t, t_k) - eps_k)_i^2,
 *   x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps_k, x0 in [-1, 1].
 * An image the model denoises badly is unlike its training data. Early
 * steps are left out: there the error follows the image's texture (a
 * simple image denoises well under any model); near T nothing of the
 * image is left. A conditional model scores through its null class. */
static enum gen_status diffusion_score(void *model, struct gen_ctx *g,
                                       const struct gen_config *opts,
                                       const struct gen_dataset *data, struct gen_metrics *out) {
    enum { K = 4, BATCH = 50 };
    static const double frac[K] = {0.3, 0.4, 0.5, 0.6};
    struct diffusion *m = model;
    const struct gen_image_set *set = data->images;
    const int64_t D = image_numel(m), n = set->n;
    const uint64_t seed = opts ? (uint64_t)gen_opt_int(opts, &gen_eval_options[GEN_EVAL_SEED]) : 0;
    double *score = gen_calloc((size_t)n, sizeof *score);
    float *x0 = gen_alloc((size_t)(BATCH * D * (3 + K)) * sizeof *x0); /* x0, x_t, eps, eps_hat */
    int32_t *y = gen_alloc(BATCH * sizeof *y), idx[BATCH];
    if (!score || !x0 || !y) {
        gen_free(score), gen_free(x0), gen_free(y);
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld scores", (long long)n);
    }
    float *xt = x0 + BATCH * D, *eps = xt + BATCH * D; /* eps: (B, K, D) */
    float *eps_hat = eps + (int64_t)BATCH * K * D;
    for (int i = 0; i < BATCH; i++) y[i] = (int32_t)m->ucfg.classes; /* the null class */
    const struct eps_model net = {.m = m, .g = g};
    double total = 0;
    for (int64_t first = 0; first < n; first += BATCH) {
        const int B = (int)(n - first < BATCH ? n - first : BATCH);
        for (int i = 0; i < B; i++) {
            idx[i] = (int32_t)(first + i);
            struct gen_rng r;
            gen_rng_seed(&r, seed * 0x9e3779b97f4a7c15ull + (uint64_t)(first + i) + 1);
            gen_rng_fill_normal(&r, eps + (int64_t)i * K * D, K * D, 0.0f, 1.0f);
        }
        gen_images_batch(set, idx, B, x0, -1.0f, 1.0f);
        for (int k = 0; k < K; k++) {
            const int64_t t = (int64_t)(frac[k] * (double)m->sched.T);
            for (int i = 0; i < B; i++)
                ddpm_q_sample(&m->sched, t, D, x0 + i * D, eps + ((int64_t)i * K + k) * D, xt + i * D);
            unet_eps(&net, B, xt, t, m->ucfg.classes > 0 ? y : NULL, eps_hat);
            gen_ctx_reset(g);
            for (int i = 0; i < B; i++) {
                const float *e = eps + ((int64_t)i * K + k) * D, *h = eps_hat + i * D;
                double sq = 0;
                for (int64_t j = 0; j < D; j++) sq += ((double)h[j] - e[j]) * ((double)h[j] - e[j]);
                score[first + i] += sq / (double)D;
            }
        }
    }
    for (int64_t i = 0; i < n; i++) total += score[i];
    gen_free(x0), gen_free(y);
    out->f[out->n++] = (struct gen_field){"denoise_error", total / (double)n};
    out->scores = score;
    out->n_scores = 1;
    out->score_names[0] = "denoise_error";
    out->n_examples = n;
    return GEN_OK;
}

/* ---- options ---- */

static const struct gen_option diffusion_train_options[DIF_T_COUNT + 1] = {
    [DIF_T_DATA] = GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    [DIF_T_STEPS] = GEN_INT_RUN_OPT("steps", "2000", 1, GEN_OPT_NO_MAX, "optimiser steps (instead of --epochs)"),
    [DIF_T_BATCH] = GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    [DIF_T_LR] = GEN_FLOAT_RUN_OPT("lr", "5e-4", 0, 10, "Adam learning rate (after the warm-up)"),
    [DIF_T_WARMUP] = GEN_INT_RUN_OPT("warmup", "500", 0, GEN_OPT_NO_MAX, "linear learning-rate warm-up steps"),
    [DIF_T_CLIP] = GEN_FLOAT_RUN_OPT("clip", "1", 0, GEN_OPT_NO_MAX,
                      "clip the global gradient norm to this (0: off)"),
    [DIF_T_EMA] = GEN_FLOAT_OPT("ema", "0.999", 0, 0.999999,
                  "EMA of the weights with this decay (warm-up (1+t)/(10+t) below it; 0: off); "
                  "sampling uses it"),
    [DIF_T_BASE] = GEN_INT_OPT("base", "32", 8, 1024, "U-Net base channels (a multiple of 8)"),
    [DIF_T_MULTS] = GEN_STR_OPT("mults", "1,2,2",
                    "channel multipliers of the full, 1/2 and 1/4 size levels; a fourth adds a 1/8 "
                    "size level (image sides divisible by 8)"),
    [DIF_T_TIMESTEPS] = GEN_INT_OPT("timesteps", "1000", 1, 100000, "diffusion steps T"),
    [DIF_T_BETA_START] = GEN_FLOAT_OPT("beta-start", "1e-4", 0, 1, "first beta of the linear schedule"),
    [DIF_T_BETA_END] = GEN_FLOAT_OPT("beta-end", "0.02", 0, 1, "last beta of the linear schedule"),
    [DIF_T_NO_ATTN] = GEN_FLAG_OPT("no-attn", "leave out the attention block"),
    [DIF_T_SAMPLE_STEPS] = GEN_INT_RUN_OPT("sample-steps", "50", 1, 100000,
                    "DDIM steps of the sample grids (64 images from the EMA weights)"),
    [DIF_T_CONDITIONAL] = GEN_FLAG_OPT("conditional",
                     "class-conditional: a class embedding added to the time embedding, trained "
                     "with classifier-free guidance (sample --class, --guidance)"),
    [DIF_T_COND_DROP] = GEN_FLOAT_OPT("cond-drop", "0.1", 0, 1,
                   "--conditional: probability of training a label as the null class"),
    [DIF_T_CHANNELS] = GEN_CHANNELS_OPTION,
    [DIF_T_IMAGE_SIZE] = GEN_IMAGE_SIZE_OPTION,
    [DIF_T_COUNT] = GEN_OPT_END,
};

/* The sampler, for sample and eval. */
#define SAMPLER_OPTIONS                                                                            \
    GEN_CHOICE_OPT("sampler", "ddim", "ddpm|ddim", "ddpm (ancestral, all T steps) or ddim"),       \
        GEN_INT_OPT("steps", "50", 1, 100000, "DDIM steps (at most T)"),                           \
        GEN_FLOAT_OPT("eta", "0", 0, 1, "DDIM noise (0: deterministic, 1: DDPM-like)")

/* The parameters of the restoring modes, for sample and eval (where
 * --restore MODE picks the mode and these have defaults). */
#define RESTORE_OPTIONS                                                                            \
    GEN_STR_OPT("mask", NULL,                                                                      \
                "inpainting: mask image (white = keep, black = regenerate) or the region to "      \
                "regenerate: centre|left|right|top|bottom|strokes (random brush strokes, seeded; " \
                "eval default)"),                                                                  \
        GEN_INT_OPT("resample", "5", 1, 100, "inpainting: passes per denoising step (RePaint)"),   \
        GEN_INT_OPT("superres", NULL, 2, 4,                                                        \
                    "super-resolution by K = 2 or 4 (ILVR; DDIM with --eta 1 unless given) of "    \
                    "--input images of H/K x W/K, or of test images gen downsamples; -n results "  \
                    "each (default 4) (eval default 4)"),                                          \
        GEN_FLOAT_OPT("denoise", NULL, 0, 1,                                                       \
                      "remove Gaussian noise of this standard deviation (pixels in [0, 1]; "       \
                      "SDEdit) from --input images as they are, or from test images gen noises; "  \
                      "-n results each (default 1) (eval default 0.3)"),                           \
        GEN_FLOAT_OPT("strength", NULL, 0, 1,                                                      \
                      "denoising: start the reverse chain at step S T (default: where the "        \
                      "model's noise level matches --denoise)")

static const struct gen_option diffusion_sample_options[DIF_S_COUNT + 3] = {
    [DIF_S_SAMPLER] = SAMPLER_OPTIONS,
    [DIF_S_GUIDANCE] = GEN_STR_OPT("guidance", "2",
                    "conditional models: classifier-free guidance w, eps = eps_null + w (eps_class "
                    "- eps_null) (0: unconditional, 1: plain conditional)"),
    [DIF_S_INPAINT] = {"inpaint", 0, GEN_OPT_OPTIONAL_STRING, NULL,
     "inpaint images: test:K or test:A-B of the test split of --data, or of --input's images "
     "(no value: all of them); -n completions each (default 4); needs --mask",
     0, 0, NULL, 0},
    [DIF_S_MASK] = RESTORE_OPTIONS,
    [DIF_S_COUNT] = GEN_SAMPLE_CLASS_OPTIONS,
    [DIF_S_COUNT + 2] = GEN_OPT_END,
};

static const struct gen_option diffusion_eval_options[DIF_E_COUNT + 1] = {
    [DIF_E_CLASSIFIER] = GEN_EVAL_IMAGE_OPTIONS_NUM("2000"),
    [DIF_E_SAMPLER] = SAMPLER_OPTIONS,
    [DIF_E_GUIDANCE] = GEN_STR_OPT("guidance", "2",
                    "conditional models: the guidance scale, or a list (0,1,2,4) to measure "
                    "class accuracy and FID at each"),
    [DIF_E_PLOT] = GEN_STR_OPT("plot", NULL,
                "conditional models, several --guidance values: FID against class accuracy "
                "(PNG; default: guidance.png beside the checkpoint)"),
    [DIF_E_RESTORE] = GEN_CHOICE_OPT("restore", NULL, "inpaint|superres|denoise",
                   "measure a restoration on -n test images degraded by gen: PSNR, SSIM, FID "
                   "and consistency beside a classical baseline (mean-fill, bicubic, the best "
                   "Gaussian blur)"),
    [DIF_E_MASK] = RESTORE_OPTIONS,
    [DIF_E_COUNT] = GEN_OPT_END,
};

const struct gen_family gen_family_diffusion = {
    .name = "diffusion",
    .summary = "DDPM with a small U-Net; DDPM or DDIM sampling, inpainting, super-resolution, denoising, class-conditional with guidance",
    .data = GEN_DATA_IMAGES,
    .train_options = diffusion_train_options,
    .sample_options = diffusion_sample_options,
    .eval_options = diffusion_eval_options,
    .size = sizeof(struct diffusion),
    .create = diffusion_create,
    .destroy = diffusion_destroy,
    .loss = diffusion_loss,
    .generate = diffusion_generate,
    .needs_inputs = diffusion_needs_inputs,
    .plain = diffusion_plain,
    .score = diffusion_score,
};
