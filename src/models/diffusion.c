/* diffusion.c - the DDPM family (DESIGN.md section 3): an epsilon-predicting
 * denoising diffusion model with the small U-Net of unet.c, trained on
 * images scaled to [-1, 1]; sampled with the DDPM or DDIM sampler of
 * ddpm.c, and inpainting.
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
#include <string.h>

#include "gen/family.h"
#include "gen/metrics.h"
#include "models/ddpm.h"
#include "models/unet.h"

/* The family's options, by their index in its tables (read with gen_opt_*). */
enum { DIF_T_DATA, DIF_T_STEPS, DIF_T_BATCH, DIF_T_LR, DIF_T_WARMUP, DIF_T_CLIP, DIF_T_EMA,
    DIF_T_BASE, DIF_T_MULTS, DIF_T_TIMESTEPS, DIF_T_BETA_START, DIF_T_BETA_END, DIF_T_NO_ATTN,
    DIF_T_SAMPLE_STEPS, DIF_T_CONDITIONAL, DIF_T_COND_DROP, DIF_T_COUNT };
enum { DIF_S_SAMPLER, DIF_S_STEPS, DIF_S_ETA, DIF_S_GUIDANCE, DIF_S_INPAINT, DIF_S_MASK,
    DIF_S_RESAMPLE, DIF_S_COUNT };
enum { DIF_E_CLASSIFIER, DIF_E_NUM, DIF_E_SAMPLES, DIF_E_SAMPLER, DIF_E_STEPS, DIF_E_ETA,
    DIF_E_GUIDANCE, DIF_E_PLOT, DIF_E_COUNT };
static const struct gen_option diffusion_train_options[DIF_T_COUNT + 1];
static const struct gen_option diffusion_sample_options[DIF_S_COUNT + 3];
static const struct gen_option diffusion_eval_options[DIF_E_COUNT + 1];


enum { RNG_INIT, RNG_NOISE, N_RNG };

struct diffusion {
    struct unet_config ucfg;
    struct unet net;
    struct gen_params ps;
    struct ddpm_schedule sched;
    struct gen_rng rng[N_RNG];
    int64_t snapshot_steps; /* DDIM steps of the training snapshots */
    double cond_drop;       /* --cond-drop                          */
};

static int64_t image_numel(const struct diffusion *m) {
    return m->ucfg.C * m->ucfg.H * m->ucfg.W;
}

/* ---- build ---- */

/* "1,2,2" -> three multipliers. */
static enum gen_status parse_mults(const char *s, int64_t *mult) {
    const char *p = s ? s : "";
    for (int i = 0; i < 3; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 64 || (i < 2 ? *end != ',' : *end != 0))
            return gen_error(GEN_ERR_USAGE,
                             "--mults: expected three channel multipliers like 1,2,2, got '%s'",
                             s ? s : "");
        mult[i] = v;
        p = end + 1;
    }
    return GEN_OK;
}

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
    st = parse_mults(gen_opt_str(cfg, &diffusion_train_options[DIF_T_MULTS]), c->mult);
    if (st == GEN_OK) st = unet_check(c);
    if (st == GEN_OK)
        st = ddpm_schedule_init(&m->sched, gen_opt_int(cfg, &diffusion_train_options[DIF_T_TIMESTEPS]),
                                gen_opt_float(cfg, &diffusion_train_options[DIF_T_BETA_START]),
                                gen_opt_float(cfg, &diffusion_train_options[DIF_T_BETA_END]));
    if (st != GEN_OK) return st;
    gen_params_init(&m->ps);
    unet_declare(&m->net, &m->ps, c);
    if ((st = gen_params_finalize(&m->ps, with_ema)) != GEN_OK) return st;
    for (int i = 0; i < N_RNG; i++) gen_rng_seed(&m->rng[i], seed * N_RNG + (uint64_t)i + 1);
    unet_init(&m->net, &m->ps, &m->rng[RNG_INIT]);
    if (with_ema) gen_ema_copy_in(&m->ps);
    m->snapshot_steps = gen_opt_int(cfg, &diffusion_train_options[DIF_T_SAMPLE_STEPS]);
    const struct gen_optim adam = {.kind = GEN_OPTIM_ADAM,
                                   .lr = (float)gen_opt_float(cfg, &diffusion_train_options[DIF_T_LR]),
                                   .beta1 = 0.9f,
                                   .beta2 = 0.999f,
                                   .eps = 1e-8f};
    *info = (struct gen_model_info){.ps = &m->ps,
                                    .rngs = m->rng,
                                    .n_rngs = N_RNG,
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
    const int64_t D = image_numel(m), n = (int64_t)b->n * D;
    struct gen_rng *rng = &m->rng[RNG_NOISE];
    float *t = gen_arena_alloc(&g->arena, (size_t)b->n * sizeof *t); /* (N) */
    for (int i = 0; i < b->n; i++) t[i] = (float)gen_rng_below(rng, (uint64_t)m->sched.T);
    struct gen_tensor *eps = gen_tensor(g, 4, x0->shape);
    gen_rng_fill_normal(rng, eps->data, n, 0.0f, 1.0f);
    struct gen_tensor *xt = gen_tensor(g, 4, x0->shape);
    for (int i = 0; i < b->n; i++)
        ddpm_q_sample(&m->sched, (int64_t)t[i], D, x0->data + i * D, eps->data + i * D,
                      xt->data + i * D);
    int32_t *y = NULL; /* (N) classes, some dropped to the null class K */
    if (m->ucfg.classes > 0) {
        y = gen_arena_alloc(&g->arena, (size_t)b->n * sizeof *y);
        for (int i = 0; i < b->n; i++)
            y[i] = gen_rng_uniform(rng) < m->cond_drop ? (int32_t)m->ucfg.classes : b->labels[i];
    }
    struct gen_tensor *loss = gen_mse(g, unet_forward(g, &m->net, &m->ps, xt, t, y), eps);
    fields[0] = loss->data[0];
    return loss;
}

/* ---- sampling ---- */

struct eps_model {
    struct diffusion *m;
    struct gen_ctx *g;
    const int32_t *labels; /* (n) classes of the request, or NULL: the null class */
    double guidance;       /* w                                                   */
};

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
static void predict(void *arg, int64_t first, int64_t B, float *x, int64_t t, float *eps) {
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
#define MASK (&diffusion_sample_options[DIF_S_MASK])

/* An option of opts, or NULL when opts lacks it or leaves it unset. */
static const char *opt_str(const struct gen_config *opts, const struct gen_option *o) {
    const struct gen_config_entry *e = opts ? gen_opt_get(opts, o) : NULL;
    return e && e->present ? e->s : NULL;
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

/* Images (n, D) in [-1, 1] to [0, 1] in place ((x + 1) / 2 exactly). */
static void to_unit(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (x[i] + 1.0f) * 0.5f;
}

/* ---- inpainting ---- */

#define INPAINT_MAX 1024

/* The inputs --inpaint selects: [test:]K or [test:]A-B, or "" (no value)
 * for all of them. */
static enum gen_status inpaint_range(const char *spec, int64_t n_inputs, int64_t *a, int64_t *b) {
    const char *p = strncmp(spec, "test:", 5) ? spec : spec + 5;
    char *end = (char *)p;
    *a = 0, *b = n_inputs - 1;
    if (*spec) {
        *a = *b = strtoll(p, &end, 10);
        if (end != p && *end == '-') *b = strtoll(end + 1, &end, 10);
    }
    if ((*spec && (end == p || *end)) || *a < 0 || *b < *a)
        return gen_error(GEN_ERR_USAGE,
                         "--inpaint: expected test:K or test:A-B, got '%s' (an image file goes "
                         "in --input FILE)",
                         spec);
    if (*b >= n_inputs)
        return gen_error(GEN_ERR_USAGE, "--inpaint: index %lld out of range (%lld input images)",
                         (long long)*b, (long long)n_inputs);
    if (*b - *a >= INPAINT_MAX)
        return gen_error(GEN_ERR_USAGE, "--inpaint: at most %d images at once, got %lld",
                         INPAINT_MAX, (long long)(*b - *a + 1));
    return GEN_OK;
}

/* keep (H, W): 1 where the pixel is kept. A region name is the part that
 * is regenerated; a mask image (1, 1, H, W) keeps its light pixels. */
static enum gen_status make_keep(const char *name, const struct gen_image_set *img, int64_t H,
                                 int64_t W, float *keep) {
    static const char *const names[] = {"centre", "center", "left", "right", "top", "bottom"};
    int kind = -1;
    for (int k = 0; k < 6 && !img; k++)
        if (!strcmp(name, names[k])) kind = k;
    if (!img && kind < 0)
        return gen_error(GEN_ERR_USAGE,
                         "--mask: '%s' is neither an image file nor one of "
                         "centre|left|right|top|bottom",
                         name);
    if (img && (img->n != 1 || img->h != H || img->w != W))
        return gen_error(GEN_ERR_FORMAT, "--mask %s: the mask is %dx%d, the model wants %lldx%lld",
                         name, img->w, img->h, (long long)W, (long long)H);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int hole;
            switch (kind) {
            case 0:
            case 1:
                hole = y >= H / 4 && y < H - H / 4 && x >= W / 4 && x < W - W / 4;
                break;
            case 2:
                hole = x < W / 2;
                break;
            case 3:
                hole = x >= W / 2;
                break;
            case 4:
                hole = y < H / 2;
                break;
            case 5:
                hole = y >= H / 2;
                break;
            default:
                hole = img->pixels[y * W + x] < 128;
                break;
            }
            keep[y * W + x] = hole ? 0.0f : 1.0f;
        }
    return GEN_OK;
}

/* Completes the masked part of the selected inputs, n ways each. Output:
 * one row per input image, [masked input | n completions | original], in
 * [0, 1]. Completion j of input r is image r n + j of the request. */
static enum gen_status inpaint(struct diffusion *m, struct gen_ctx *g,
                               const struct ddpm_sampler *smp, const struct gen_config *opts,
                               const struct gen_request *req, struct gen_output *out) {
    const char *spec = opt_str(opts, INPAINT), *mask = opt_str(opts, MASK);
    const struct gen_image_set *set = req->inputs ? req->inputs->images : NULL;
    const int64_t C = m->ucfg.C, H = m->ucfg.H, W = m->ucfg.W, D = image_numel(m), HW = H * W;
    if (!mask)
        return gen_error(GEN_ERR_USAGE, "--inpaint needs --mask (an image, white = keep, or "
                                        "centre|left|right|top|bottom: the part to regenerate)");
    if (!set) return gen_error(GEN_ERR_USAGE, "--inpaint: no input images");
    if (set->c != C || set->h != H || set->w != W)
        return gen_error(GEN_ERR_FORMAT,
                         "--inpaint: images are %dx%dx%d, the model wants %lldx%lldx%lld", set->c,
                         set->h, set->w, (long long)C, (long long)H, (long long)W);
    int64_t a, b;
    enum gen_status st = inpaint_range(spec, set->n, &a, &b);
    const int64_t count = b - a + 1, n = gen_opt_is_set(opts, &diffusion_eval_options[DIF_E_NUM]) ? req->n : 4;
    const int64_t total = count * n, cols = n + 2;
    float *keep1 = gen_alloc((size_t)HW * sizeof(float));
    float *known = gen_alloc((size_t)(total * D) * sizeof(float));
    float *keep = gen_alloc((size_t)(total * D) * sizeof(float));
    float *res = gen_alloc((size_t)(total * D) * sizeof(float));
    float *grid = gen_alloc((size_t)(count * cols * D) * sizeof(float));
    if (st == GEN_OK && (!keep1 || !known || !keep || !res || !grid))
        st = gen_error(GEN_ERR_NOMEM, "out of memory for %lld inpainted images", (long long)total);
    if (st == GEN_OK) st = make_keep(mask, req->mask, H, W, keep1);
    for (int64_t i = 0; st == GEN_OK && i < total; i++) {
        const int32_t id = (int32_t)(a + i / n);
        gen_images_batch(set, &id, 1, known + i * D, -1.0f, 1.0f);
        for (int64_t k = 0; k < D; k++) keep[i * D + k] = keep1[k % HW];
    }
    const struct eps_model em = {m, g, NULL, 0};
    if (st == GEN_OK)
        st = ddpm_sample(&m->sched, smp, predict, (void *)&em, total, D, req->seed, known, keep,
                         res);
    for (int64_t r = 0; st == GEN_OK && r < count; r++) {
        float *row = grid + r * cols * D;
        const float *orig = known + r * n * D;
        for (int64_t k = 0; k < D; k++) row[k] = keep1[k % HW] > 0.5f ? orig[k] : 0.0f;
        memcpy(row + D, res + r * n * D, (size_t)(n * D) * sizeof(float));
        memcpy(row + (n + 1) * D, orig, (size_t)D * sizeof(float));
    }
    gen_free(keep1), gen_free(known), gen_free(keep), gen_free(res);
    if (st != GEN_OK) {
        gen_free(grid);
        return st;
    }
    to_unit(grid, count * cols * D);
    out->images = grid;
    out->n_images = count * cols;
    out->cols = (int)cols;
    return GEN_OK;
}

/* ---- generate ---- */

static int diffusion_needs_inputs(const struct gen_config *opts) {
    return opt_str(opts, INPAINT) != NULL;
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
    if (opt_str(opts, INPAINT)) return inpaint(m, g, &smp, opts, req, out);
    if (opt_str(opts, MASK) || req->mask)
        return gen_error(GEN_ERR_USAGE, "--mask needs --inpaint");
    const int64_t n = req->n, D = image_numel(m);
    struct eps_model em = {m, g, req->labels, 0};
    if ((st = guidance_of(m, opts, &em.guidance)) != GEN_OK) return st;
    if (req->labels && m->ucfg.classes == 0)
        return gen_error(GEN_ERR_USAGE, "--class: this model is unconditional (train with --conditional)");
    float *x = gen_alloc((size_t)(n * D) * sizeof *x);
    if (!x) return gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
    st = ddpm_sample(&m->sched, &smp, predict, (void *)&em, n, D, req->seed, NULL, NULL, x);
    if (st != GEN_OK) {
        gen_free(x);
        return st;
    }
    to_unit(x, n * D);
    out->images = x;
    out->n_images = n;
    out->cols = 0;
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
    [DIF_T_MULTS] = GEN_STR_OPT("mults", "1,2,2", "channel multipliers of the full, 1/2 and 1/4 size levels"),
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
    [DIF_T_COUNT] = GEN_OPT_END,
};

/* The sampler, for sample and eval. */
#define SAMPLER_OPTIONS                                                                            \
    GEN_CHOICE_OPT("sampler", "ddim", "ddpm|ddim", "ddpm (ancestral, all T steps) or ddim"),       \
        GEN_INT_OPT("steps", "50", 1, 100000, "DDIM steps (at most T)"),                           \
        GEN_FLOAT_OPT("eta", "0", 0, 1, "DDIM noise (0: deterministic, 1: DDPM-like)")

static const struct gen_option diffusion_sample_options[DIF_S_COUNT + 3] = {
    [DIF_S_SAMPLER] = SAMPLER_OPTIONS,
    [DIF_S_GUIDANCE] = GEN_STR_OPT("guidance", "2",
                    "conditional models: classifier-free guidance w, eps = eps_null + w (eps_class "
                    "- eps_null) (0: unconditional, 1: plain conditional)"),
    [DIF_S_INPAINT] = {"inpaint", 0, GEN_OPT_OPTIONAL_STRING, NULL,
     "inpaint images: test:K or test:A-B of the test split of --data, or of --input's images "
     "(no value: all of them); -n completions each (default 4); needs --mask",
     0, 0, NULL, 0},
    [DIF_S_MASK] = GEN_STR_OPT("mask", NULL,
                "mask image (white = keep, black = regenerate) or the region to regenerate: "
                "centre|left|right|top|bottom"),
    [DIF_S_RESAMPLE] = GEN_INT_OPT("resample", "5", 1, 100, "inpainting: passes per denoising step (RePaint)"),
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
    [DIF_E_COUNT] = GEN_OPT_END,
};

const struct gen_family gen_family_diffusion = {
    .name = "diffusion",
    .summary = "DDPM with a small U-Net; DDPM or DDIM sampling, inpainting, class-conditional with guidance",
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
};
