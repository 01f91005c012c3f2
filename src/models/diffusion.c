/* diffusion.c - the DDPM family (DESIGN.md section 3): an epsilon-predicting
 * denoising diffusion model with the small U-Net of unet.c, trained on
 * images scaled to [-1, 1]; DDPM (ancestral) and DDIM samplers, inpainting.
 *
 * Training step (batch of x0, all randomness from the noise rng):
 *   t ~ U{0 .. T-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
 *   loss = mean((unet(x_t, t) - eps)^2)
 *   Adam with linear warm-up, global grad-norm clip, then EMA of the
 *   weights with decay min(0.999, (1 + t) / (10 + t)) at update t.
 * Samples always come from the EMA weights unless asked otherwise. */
#include <math.h>
#include <stb_image.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/images.h"
#include "gen/data.h"
#include "gen/metrics.h"
#include "gen/trainer.h"
#include "models/diffusion.h"
#include "models/unet.h"

/* ---- schedule and samplers (diffusion.h) ---- */

enum gen_status ddpm_schedule_init(struct ddpm_schedule *s, int64_t T, double beta_start,
                                   double beta_end) {
    memset(s, 0, sizeof *s);
    if (T < 1) return gen_error(GEN_ERR_USAGE, "--timesteps: must be >= 1");
    if (!(beta_start > 0 && beta_start <= beta_end && beta_end < 1))
        return gen_error(GEN_ERR_USAGE,
                         "--beta-start/--beta-end: need 0 < start <= end < 1, got %g and %g",
                         beta_start, beta_end);
    s->beta = gen_calloc((size_t)T, sizeof *s->beta);
    s->alpha_bar = gen_calloc((size_t)T, sizeof *s->alpha_bar);
    if (!s->beta || !s->alpha_bar) {
        ddpm_schedule_free(s);
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld timesteps", (long long)T);
    }
    s->T = T;
    double abar = 1.0;
    for (int64_t t = 0; t < T; t++) {
        s->beta[t] =
            T > 1 ? beta_start + (beta_end - beta_start) * (double)t / (double)(T - 1) : beta_start;
        abar *= 1.0 - s->beta[t];
        s->alpha_bar[t] = abar;
    }
    return GEN_OK;
}

void ddpm_schedule_free(struct ddpm_schedule *s) {
    gen_free(s->beta);
    gen_free(s->alpha_bar);
    memset(s, 0, sizeof *s);
}

double ddpm_abar(const struct ddpm_schedule *s, int64_t t) {
    GEN_ASSERT(t >= -1 && t < s->T);
    return t < 0 ? 1.0 : s->alpha_bar[t];
}

void ddpm_q_sample(const struct ddpm_schedule *s, int64_t t, int64_t n, const float *x0,
                   const float *eps, float *xt) {
    const double abar = ddpm_abar(s, t), a = sqrt(abar), b = sqrt(1.0 - abar);
    for (int64_t i = 0; i < n; i++) xt[i] = (float)(a * x0[i] + b * eps[i]);
}

void ddpm_step(const struct ddpm_schedule *s, int64_t t, int64_t n, const float *xt,
               const float *eps, const float *z, float *out) {
    GEN_ASSERT(t >= 0 && t < s->T && (t == 0 || z));
    const double abar = ddpm_abar(s, t), abar_prev = ddpm_abar(s, t - 1);
    const double beta = s->beta[t], alpha = 1.0 - beta;
    const double c0 = beta * sqrt(abar_prev) / (1.0 - abar);
    const double ct = (1.0 - abar_prev) * sqrt(alpha) / (1.0 - abar);
    const double sigma = t > 0 ? sqrt(beta) : 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double x = xt[i], x0 = ddpm_x0(abar, x, eps[i]);
        out[i] = (float)(c0 * x0 + ct * x + (t > 0 ? sigma * z[i] : 0.0));
    }
}

void ddim_step(const struct ddpm_schedule *s, int64_t t, int64_t prev, double eta, int64_t n,
               const float *xt, const float *eps, const float *z, float *out) {
    GEN_ASSERT(t >= 0 && t < s->T && prev >= -1 && prev < t);
    const double abar = ddpm_abar(s, t), abar_prev = ddpm_abar(s, prev);
    const double sigma = eta * sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev));
    const double dir2 = 1.0 - abar_prev - sigma * sigma;
    const double dir = dir2 > 0 ? sqrt(dir2) : 0.0;
    const double sa = sqrt(abar), sb = sqrt(1.0 - abar), sp = sqrt(abar_prev);
    GEN_ASSERT(sigma == 0.0 || z);
    for (int64_t i = 0; i < n; i++) {
        const double x = xt[i], x0 = ddpm_x0(abar, x, eps[i]);
        const double e = (x - sa * x0) / sb;
        out[i] = (float)(sp * x0 + dir * e + (sigma > 0 ? sigma * z[i] : 0.0));
    }
}

void ddim_timesteps(int64_t T, int64_t K, int64_t *tau) {
    GEN_ASSERT(K >= 1 && K <= T);
    for (int64_t i = 0; i < K; i++) tau[i] = (i + 1) * T / K - 1;
}

double diffusion_ema_decay(int64_t t, double max_decay) {
    const double d = (1.0 + (double)t) / (10.0 + (double)t);
    return d < max_decay ? d : max_decay;
}

/* ---- the model ---- */

enum { RNG_INIT, RNG_NOISE, N_RNG };

struct diffusion {
    struct unet_config ucfg;
    struct unet net;
    struct gen_params ps;
    struct ddpm_schedule sched;
    struct gen_rng rng[N_RNG];
    struct gen_optim opt;
    struct gen_schedule lr;
    double clip, ema_max;
    int64_t snapshot_steps; /* DDIM steps of the training grids */
    struct gen_image_set train, test;
    int quiet;
};

static void diffusion_free(struct diffusion *m) {
    gen_params_free(&m->ps);
    ddpm_schedule_free(&m->sched);
    gen_image_set_free(&m->train);
    gen_image_set_free(&m->test);
}

static int64_t image_numel(const struct diffusion *m) {
    return m->ucfg.C * m->ucfg.H * m->ucfg.W;
}

/* Declares and allocates the U-Net (with an EMA block) and the schedule;
 * initialises the weights from `seed` (EMA = weights). */
static enum gen_status diffusion_build(struct diffusion *m, const struct unet_config *c, int64_t T,
                                       double beta_start, double beta_end, uint64_t seed) {
    enum gen_status st = unet_check(c);
    if (st == GEN_OK) st = ddpm_schedule_init(&m->sched, T, beta_start, beta_end);
    if (st != GEN_OK) return st;
    m->ucfg = *c;
    gen_params_init(&m->ps);
    unet_declare(&m->net, &m->ps, c);
    st = gen_params_finalize(&m->ps, 1);
    if (st != GEN_OK) return st;
    for (int i = 0; i < N_RNG; i++) gen_rng_seed(&m->rng[i], seed * N_RNG + (uint64_t)i + 1);
    unet_init(&m->net, &m->ps, &m->rng[RNG_INIT]);
    gen_ema_copy_in(&m->ps);
    return GEN_OK;
}

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

/* ---- training ---- */

static enum gen_status diffusion_step(void *model, struct gen_ctx *g, int64_t step,
                                      const int32_t *idx, int count, double *fields) {
    struct diffusion *m = model;
    const double t_start = gen_run_now();
    const int64_t D = image_numel(m), n = (int64_t)count * D;
    struct gen_rng *rng = &m->rng[RNG_NOISE];
    struct gen_tensor *x0 = gen_tensor_4d(g, count, m->ucfg.C, m->ucfg.H, m->ucfg.W);
    gen_images_batch(&m->train, idx, count, x0->data, -1.0f, 1.0f);

    float *t = gen_arena_alloc(&g->arena, (size_t)count * sizeof *t); /* (N) */
    for (int i = 0; i < count; i++) t[i] = (float)gen_rng_below(rng, (uint64_t)m->sched.T);
    struct gen_tensor *eps = gen_tensor(g, 4, x0->shape);
    gen_rng_fill_normal(rng, eps->data, n, 0.0f, 1.0f);
    struct gen_tensor *xt = gen_tensor(g, 4, x0->shape);
    for (int i = 0; i < count; i++)
        ddpm_q_sample(&m->sched, (int64_t)t[i], D, x0->data + i * D, eps->data + i * D,
                      xt->data + i * D);

    struct gen_tensor *loss = gen_mse(g, unet_forward(g, &m->net, &m->ps, xt, t), eps);
    gen_params_zero_grad(&m->ps);
    gen_backward(g, loss);
    const double norm = gen_clip_grad_norm(&m->ps, -1, m->clip);
    const float lr = gen_schedule_lr(&m->lr, step);
    gen_optim_step(&m->opt, &m->ps, -1, lr);
    gen_ema_update(&m->ps, (float)diffusion_ema_decay(step, m->ema_max));
    const double dt = gen_run_now() - t_start;
    fields[0] = loss->data[0];
    fields[1] = lr;
    fields[2] = norm;
    fields[3] = dt > 0 ? count / dt : 0;
    return GEN_OK;
}

/* ---- sampling ---- */

#define SAMPLE_BATCH  64
#define SNAPSHOT_SEED 20240601u

struct sampler {
    int ddpm;      /* ancestral over all T steps; else DDIM     */
    int64_t steps; /* DDIM steps K                              */
    double eta;    /* DDIM noise                                */
    int resample;  /* inpainting: passes per step (RePaint)     */
    int progress;  /* draw a bar on stderr                      */
};

/* A progress bar over model evaluations, on stderr when it is a terminal. */
struct progress {
    int on;
    int64_t done, total;
    double t0, t_draw;
};

static void progress_start(struct progress *p, int on, int64_t total) {
    p->on = on && isatty(2);
    p->done = 0;
    p->total = total;
    p->t0 = p->t_draw = gen_run_now();
}

static void progress_tick(struct progress *p) {
    p->done++;
    if (!p->on) return;
    const double now = gen_run_now();
    if (now - p->t_draw < 0.1 && p->done != p->total) return;
    p->t_draw = now;
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int fill = (int)((double)WIDTH * (double)p->done / (double)p->total);
    for (int k = 0; k < WIDTH; k++) bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
    bar[WIDTH] = 0;
    const double rate = (double)p->done / (now - p->t0 + 1e-9);
    fprintf(stderr, "\r\033[Kdenoising %lld/%lld [%s] %.1f steps/s  ETA %.0fs", (long long)p->done,
            (long long)p->total, bar, rate, (double)(p->total - p->done) / rate);
    fflush(stderr);
}

static void progress_end(struct progress *p) {
    if (p->on && p->done) fputc('\n', stderr);
}

/* Model evaluations per batch (inpainting: the last step, to x0, once). */
static int64_t sampler_calls(const struct diffusion *m, const struct sampler *s, int inpaint) {
    const int64_t k = s->ddpm ? m->sched.T : s->steps;
    return inpaint ? (k - 1) * s->resample + 1 : k;
}

/* Image i of a request draws all its noise from its own stream, so it does
 * not depend on the batch it lands in or on -n. */
static void image_rng(struct gen_rng *r, uint64_t seed, int64_t i) {
    gen_rng_seed(r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)i);
}

static void fill_noise(struct gen_rng *rngs, int64_t b, int64_t D, float *z) {
    for (int64_t j = 0; j < b; j++) gen_rng_fill_normal(&rngs[j], z + j * D, D, 0.0f, 1.0f);
}

/* eps (B, D) = unet(x (B, D), t); resets the context. */
static void predict(struct diffusion *m, struct gen_ctx *g, int64_t B, float *x, int64_t t,
                    float *eps) {
    struct gen_tensor *xt =
        gen_tensor_wrap(g, x, 4, (int64_t[]){B, m->ucfg.C, m->ucfg.H, m->ucfg.W});
    float *tt = gen_arena_alloc(&g->arena, (size_t)B * sizeof *tt);
    for (int64_t i = 0; i < B; i++) tt[i] = (float)t;
    struct gen_tensor *out = unet_forward(g, &m->net, &m->ps, xt, tt);
    memcpy(eps, out->data, (size_t)gen_numel(out) * sizeof *eps);
    gen_ctx_reset(g);
}

/* Scratch for one batch of the reverse process. */
struct work {
    float *eps, *z, *zk; /* (B, D) each */
    int64_t *tau;        /* (K)         */
    struct gen_rng rngs[SAMPLE_BATCH];
};

/* The reverse process for B images x (B, D), x_T already drawn. With
 * `known` (B, D) and `keep` (B, D, 1 = known pixel): after every step the
 * known pixels are replaced by their noised versions q(x_prev | x0), and
 * with resample > 1 each step is repeated after renoising x_prev back to
 * x_t (RePaint, jumps of one step). */
static void reverse(struct diffusion *m, struct gen_ctx *g, const struct sampler *s, struct work *w,
                    int64_t B, float *x, const float *known, const float *keep,
                    struct progress *pb) {
    const int64_t D = image_numel(m), n = B * D, T = m->sched.T;
    const int64_t K = s->ddpm ? T : s->steps;
    if (!s->ddpm) ddim_timesteps(T, K, w->tau);
    const int R = known ? s->resample : 1;
    for (int64_t i = K - 1; i >= 0; i--) {
        const int64_t t = s->ddpm ? i : w->tau[i];
        const int64_t prev = s->ddpm ? i - 1 : (i > 0 ? w->tau[i - 1] : -1);
        for (int r = 0; r < R; r++) {
            predict(m, g, B, x, t, w->eps);
            const int noisy = s->ddpm ? t > 0 : (s->eta > 0 && prev >= 0);
            if (noisy) fill_noise(w->rngs, B, D, w->z);
            if (s->ddpm)
                ddpm_step(&m->sched, t, n, x, w->eps, noisy ? w->z : NULL, x);
            else
                ddim_step(&m->sched, t, prev, s->eta, n, x, w->eps, noisy ? w->z : NULL, x);
            if (known) {
                fill_noise(w->rngs, B, D, w->zk);
                ddpm_q_sample(&m->sched, prev, n, known, w->zk, w->zk);
                for (int64_t k = 0; k < n; k++) x[k] = keep[k] > 0.5f ? w->zk[k] : x[k];
                if (r + 1 < R && prev >= 0) { /* back to t: q(x_t | x_prev) */
                    const double a = ddpm_abar(&m->sched, t) / ddpm_abar(&m->sched, prev);
                    fill_noise(w->rngs, B, D, w->z);
                    for (int64_t k = 0; k < n; k++)
                        x[k] = (float)(sqrt(a) * x[k] + sqrt(1.0 - a) * w->z[k]);
                }
            }
            progress_tick(pb);
            if (known && prev < 0) break; /* x is x0: nothing left to harmonise */
        }
    }
    for (int64_t k = 0; k < n; k++) x[k] = x[k] < -1.0f ? -1.0f : x[k] > 1.0f ? 1.0f : x[k];
}

/* n images (n, C, H, W) in [-1, 1] into out, image i from image_rng(seed,
 * i). With known/keep (n, C, H, W each): inpainting. In batches of
 * SAMPLE_BATCH; g must be in no-grad mode. */
static enum gen_status generate(struct diffusion *m, struct gen_ctx *g, const struct sampler *s,
                                int64_t n, uint64_t seed, const float *known, const float *keep,
                                float *out) {
    const int64_t D = image_numel(m);
    const int64_t B = n < SAMPLE_BATCH ? n : SAMPLE_BATCH;
    if (!s->ddpm && (s->steps < 1 || s->steps > m->sched.T))
        return gen_error(GEN_ERR_USAGE, "--steps: DDIM needs 1 to T = %lld steps, got %lld",
                         (long long)m->sched.T, (long long)s->steps);
    struct work *w = gen_calloc(1, sizeof *w);
    if (!w) return GEN_ERR_NOMEM;
    w->eps = gen_alloc((size_t)(B * D) * sizeof(float));
    w->z = gen_alloc((size_t)(B * D) * sizeof(float));
    w->zk = gen_alloc((size_t)(B * D) * sizeof(float));
    w->tau = gen_alloc((size_t)(s->ddpm ? 1 : s->steps) * sizeof(int64_t));
    enum gen_status st = GEN_OK;
    if (!w->eps || !w->z || !w->zk || !w->tau) {
        st = gen_error(GEN_ERR_NOMEM, "out of memory for sampling %lld images", (long long)B);
        goto out;
    }
    struct progress pb;
    progress_start(&pb, s->progress, ((n + B - 1) / B) * sampler_calls(m, s, known != NULL));
    for (int64_t first = 0; first < n; first += B) {
        const int64_t b = n - first < B ? n - first : B;
        float *x = out + first * D;
        for (int64_t j = 0; j < b; j++) {
            image_rng(&w->rngs[j], seed, first + j);
            gen_rng_fill_normal(&w->rngs[j], x + j * D, D, 0.0f, 1.0f);
        }
        reverse(m, g, s, w, b, x, known ? known + first * D : NULL, known ? keep + first * D : NULL,
                &pb);
    }
    progress_end(&pb);
out:
    gen_free(w->eps);
    gen_free(w->z);
    gen_free(w->zk);
    gen_free(w->tau);
    gen_free(w);
    return st;
}

/* Writes images (n, C, H, W) in [-1, 1]: a grid, or one PNG each into a
 * path ending in '/'. */
static enum gen_status write_images(const char *path, const char *prefix, const float *x, int64_t n,
                                    const struct unet_config *c) {
    size_t len = strlen(path);
    if (len && path[len - 1] == '/')
        return gen_png_write_each(path, prefix, x, (int)n, (int)c->C, (int)c->H, (int)c->W, -1, 1);
    return gen_png_write_grid(path, x, (int)n, (int)c->C, (int)c->H, (int)c->W, -1.0f, 1.0f);
}

static enum gen_status diffusion_snapshot(void *model, struct gen_ctx *g, const char *dir,
                                          int64_t step) {
    struct diffusion *m = model;
    const int64_t n = 64, D = image_numel(m);
    float *x = gen_alloc((size_t)(n * D) * sizeof *x);
    if (!x) return GEN_ERR_NOMEM;
    const int64_t K = m->snapshot_steps < m->sched.T ? m->snapshot_steps : m->sched.T;
    const struct sampler s = {.steps = K, .resample = 1};
    gen_ema_swap(&m->ps);
    enum gen_status st = generate(m, g, &s, n, SNAPSHOT_SEED, NULL, NULL, x);
    gen_ema_swap(&m->ps);
    if (st == GEN_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/samples-%08lld.png", dir, (long long)step);
        st = write_images(path, "", x, n, &m->ucfg);
    }
    gen_free(x);
    return st;
}

/* ---- commands ---- */

static enum gen_status load_data(struct gen_image_set *set, const char *path, int train) {
    enum gen_status st = gen_images_load(path, train, 0, 0, set);
    if (st != GEN_OK && access(path, F_OK) != 0)
        return gen_error(GEN_ERR_IO,
                         "%s: no such data set (run scripts/fetch-data.sh, or give --data DIR)",
                         path);
    return st;
}

/* The model's config: the options plus the image shape it was built for. */
static char *model_config(const struct gen_config *cfg, const struct unet_config *c) {
    char *s = gen_config_to_json(cfg);
    cJSON *o = cJSON_Parse(s);
    free(s);
    cJSON_AddNumberToObject(o, "channels", (double)c->C);
    cJSON_AddNumberToObject(o, "height", (double)c->H);
    cJSON_AddNumberToObject(o, "width", (double)c->W);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int status_rc(enum gen_status st) {
    return st == GEN_ERR_USAGE ? 2 : 1;
}

/* --resume with another model or schedule would load the weights and go on
 * quietly with the wrong maths: the options that define them must match
 * the checkpoint's. */
static enum gen_status check_resume(const char *path, const struct gen_config *cfg) {
    static const char *const keys[] = {"base",       "mults",    "timesteps",
                                       "beta-start", "beta-end", "no-attn"};
    cJSON *saved = NULL;
    enum gen_status st = gen_ckpt_config(path, "diffusion", &saved);
    if (st != GEN_OK) return st;
    char *text = gen_config_to_json(cfg);
    cJSON *now = cJSON_Parse(text);
    free(text);
    for (size_t k = 0; st == GEN_OK && k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(saved, keys[k]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(now, keys[k]);
        if (a && b && !cJSON_Compare(a, b, 1)) {
            char *va = cJSON_PrintUnformatted(a), *vb = cJSON_PrintUnformatted(b);
            st = gen_error(GEN_ERR_USAGE, "--%s: %s differs from the %s of %s", keys[k], vb, va,
                           path);
            free(va);
            free(vb);
        }
    }
    cJSON_Delete(now);
    cJSON_Delete(saved);
    return st;
}

static int diffusion_train(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct diffusion m;
    memset(&m, 0, sizeof m);
    int rc = 1;
    char *config = NULL;
    const char *data = gen_config_str(cfg, "data");
    struct unet_config uc = {.base = gen_config_int(cfg, "base"),
                             .attn = !gen_config_flag(cfg, "no-attn")};
    enum gen_status st = parse_mults(gen_config_str(cfg, "mults"), uc.mult);
    if (st != GEN_OK) {
        rc = 2;
        goto out;
    }
    const char *resume = gen_config_flag(cfg, "resume") ? gen_config_str(cfg, "resume") : NULL;
    if (resume && (st = check_resume(resume, cfg)) != GEN_OK) {
        rc = status_rc(st);
        goto out;
    }
    if (load_data(&m.train, data, 1) != GEN_OK) goto out;
    uc.C = m.train.c, uc.H = m.train.h, uc.W = m.train.w;
    const uint64_t seed = (uint64_t)gen_config_int(cfg, "seed");
    st = diffusion_build(&m, &uc, gen_config_int(cfg, "timesteps"),
                         gen_config_float(cfg, "beta-start"), gen_config_float(cfg, "beta-end"),
                         seed);
    if (st != GEN_OK) {
        rc = status_rc(st);
        goto out;
    }
    const float lr = (float)gen_config_float(cfg, "lr");
    m.opt = (struct gen_optim){GEN_OPTIM_ADAM, lr, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f};
    m.lr = (struct gen_schedule){GEN_SCHED_WARMUP, lr, lr, gen_config_int(cfg, "warmup"), 0};
    if (m.lr.warmup < 1) m.lr.kind = GEN_SCHED_CONSTANT;
    m.clip = gen_config_float(cfg, "clip");
    m.ema_max = gen_config_float(cfg, "ema-decay");
    m.snapshot_steps = gen_config_int(cfg, "sample-steps");
    config = model_config(cfg, &uc);
    const int batch = (int)gen_config_int(cfg, "batch");
    const struct gen_config_entry *steps = gen_config_get(cfg, "steps"),
                                  *epochs = gen_config_get(cfg, "epochs");
    struct gen_trainer_spec spec = {
        .family = "diffusion",
        .model = &m,
        .ps = &m.ps,
        .rngs = m.rng,
        .n_rngs = N_RNG,
        .n_examples = m.train.n,
        .batch = batch,
        .data_seed = seed,
        .epochs = epochs && epochs->present ? epochs->i : 0,
        .steps = steps && steps->present ? steps->i : 0,
        .items_per_step = batch,
        .unit = "img",
        .log_every = 50,
        .sample_every = gen_config_int(cfg, "sample-every"),
        .ckpt_every = gen_config_int(cfg, "ckpt-every"),
        .resume = resume,
        .config_json = config,
        .step = diffusion_step,
        .field_names = {"loss", "lr", "grad_norm", "img_per_s"},
        .n_fields = 4,
        .snapshot = diffusion_snapshot,
    };
    if (spec.steps <= 0 && spec.epochs <= 0) spec.steps = 1;
    if (!run->quiet)
        fprintf(
            stderr,
            "diffusion: U-Net of %lld parameters (base %lld, mults %lld,%lld,%lld%s), T = %lld, "
            "%lld training images of %lldx%lldx%lld\n",
            (long long)gen_params_count(&m.ps), (long long)uc.base, (long long)uc.mult[0],
            (long long)uc.mult[1], (long long)uc.mult[2], uc.attn ? ", attention" : "",
            (long long)m.sched.T, (long long)m.train.n, (long long)uc.C, (long long)uc.H,
            (long long)uc.W);
    rc = gen_trainer_run(run, &spec);
out:
    free(config);
    diffusion_free(&m);
    return rc;
}

/* Builds the model a checkpoint describes and loads its weights: the EMA
 * weights (`ema`) or the trained ones. */
static enum gen_status diffusion_load(struct diffusion *m, const char *path, int ema) {
    cJSON *c = NULL;
    enum gen_status st = gen_ckpt_config(path, "diffusion", &c);
    if (st != GEN_OK) return st;
    struct unet_config uc = {
        .C = (int64_t)gen_json_num(c, "channels", 0),
        .H = (int64_t)gen_json_num(c, "height", 0),
        .W = (int64_t)gen_json_num(c, "width", 0),
        .base = (int64_t)gen_json_num(c, "base", 0),
        .attn = !gen_json_num(c, "no-attn", 0),
    };
    const double T = gen_json_num(c, "timesteps", 0), b0 = gen_json_num(c, "beta-start", 0),
                 b1 = gen_json_num(c, "beta-end", 0);
    st = parse_mults(gen_json_str(c, "mults", "1,2,2"), uc.mult);
    cJSON_Delete(c);
    if (st != GEN_OK || uc.H > 4096 || uc.W > 4096 || uc.base > 1024 || T < 1 || T > 100000 ||
        unet_check(&uc) != GEN_OK)
        return gen_error(GEN_ERR_FORMAT, "%s: bad model shape in the config metadata", path);
    st = diffusion_build(m, &uc, (int64_t)T, b0, b1, 0);
    if (st != GEN_OK)
        return gen_error(GEN_ERR_FORMAT, "%s: bad config metadata (%s)", path, gen_last_error());
    st = gen_ckpt_load(path, &m->ps, "diffusion", ema ? GEN_CKPT_EMA : 0, NULL);
    if (st == GEN_OK && ema) gen_ema_swap(&m->ps);
    return st;
}

static void sampler_of(const struct gen_config *cfg, struct sampler *s, int quiet) {
    memset(s, 0, sizeof *s);
    const char *name = gen_config_str(cfg, "sampler");
    s->ddpm = name && !strcmp(name, "ddpm");
    s->steps = gen_config_int(cfg, "steps");
    s->eta = gen_config_float(cfg, "eta");
    const struct gen_config_entry *r = gen_config_get(cfg, "resample"); /* sample only */
    s->resample = r && r->present ? (int)r->i : 1;
    s->progress = !quiet;
}

/* ---- inpainting inputs ---- */

/* Reads a PNG (or any stb_image format) as c x h x w bytes: an image of
 * exactly that size, or, for a square model, any image centre-cropped to a
 * square and resized. */
static enum gen_status read_image(const char *path, const char *what, int c, int h, int w,
                                  uint8_t *dst) {
    int iw, ih, comp;
    if (!stbi_info(path, &iw, &ih, &comp))
        return gen_error(access(path, F_OK) ? GEN_ERR_IO : GEN_ERR_FORMAT,
                         "%s: cannot read the %s (%s)", path, what,
                         access(path, F_OK)      ? "no such file"
                         : stbi_failure_reason() ? stbi_failure_reason()
                                                 : "unknown format");
    int size = 0;
    if (ih != h || iw != w) {
        if (h != w || iw > GEN_IMAGE_MAX_SIDE || ih > GEN_IMAGE_MAX_SIDE)
            return gen_error(GEN_ERR_FORMAT, "%s: the %s is %dx%d, the model wants %dx%d", path,
                             what, iw, ih, w, h);
        size = h;
    }
    uint8_t *px = stbi_load(path, &iw, &ih, &comp, 0);
    if (!px)
        return gen_error(GEN_ERR_FORMAT, "%s: cannot decode the %s (%s)", path, what,
                         stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
    enum gen_status st = gen_image_fit(px, comp, ih, iw, 1, c, size, dst);
    stbi_image_free(px);
    return st;
}

/* keep (C, H, W): 1 where the pixel is kept; a built-in region name is the
 * part that is regenerated. */
static enum gen_status make_mask(const char *spec, const struct unet_config *c, float *keep) {
    const int64_t C = c->C, H = c->H, W = c->W;
    static const char *const names[] = {"centre", "center", "left", "right", "top", "bottom"};
    int kind = -1;
    for (int k = 0; k < 6; k++)
        if (!strcmp(spec, names[k])) kind = k;
    uint8_t *px = NULL;
    if (kind < 0) {
        px = gen_alloc((size_t)(H * W));
        if (!px) return GEN_ERR_NOMEM;
        enum gen_status st = read_image(spec, "mask", 1, (int)H, (int)W, px);
        if (st != GEN_OK) {
            gen_free(px);
            if (st == GEN_ERR_IO)
                return gen_error(GEN_ERR_USAGE,
                                 "--mask: '%s' is neither a PNG file nor one of "
                                 "centre|left|right|top|bottom",
                                 spec);
            return st;
        }
    }
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
                hole = px[y * W + x] < 128;
                break;
            }
            for (int64_t ch = 0; ch < C; ch++) keep[(ch * H + y) * W + x] = hole ? 0.0f : 1.0f;
        }
    gen_free(px);
    return GEN_OK;
}

#define INPAINT_MAX 1024

/* --inpaint SPEC: "test:K", "test:A-B" (from --data's test split) or an
 * image file. Fills *known with (count, C, H, W) in [-1, 1]. */
static enum gen_status inpaint_images(const struct gen_config *cfg, struct diffusion *m,
                                      const char *spec, float **known, int64_t *count) {
    const struct unet_config *c = &m->ucfg;
    const int64_t D = image_numel(m);
    if (!strncmp(spec, "test:", 5)) {
        char *end;
        long long a = strtoll(spec + 5, &end, 10), b = a;
        if (end != spec + 5 && *end == '-') b = strtoll(end + 1, &end, 10);
        if (end == spec + 5 || *end || a < 0 || b < a || b - a >= INPAINT_MAX)
            return gen_error(GEN_ERR_USAGE,
                             "--inpaint: expected test:K or test:A-B (at most %d images), got '%s'",
                             INPAINT_MAX, spec);
        const char *data = gen_config_str(cfg, "data");
        enum gen_status st = load_data(&m->test, data, 0);
        if (st != GEN_OK) return st;
        if (m->test.c != c->C || m->test.h != c->H || m->test.w != c->W)
            return gen_error(
                GEN_ERR_FORMAT, "%s: images are %dx%dx%d, the model wants %lldx%lldx%lld", data,
                m->test.c, m->test.h, m->test.w, (long long)c->C, (long long)c->H, (long long)c->W);
        if (b >= m->test.n)
            return gen_error(GEN_ERR_USAGE,
                             "--inpaint: index %lld out of range (%s has %lld test images)", b,
                             data, (long long)m->test.n);
        *count = b - a + 1;
        *known = gen_alloc((size_t)(*count * D) * sizeof(float));
        if (!*known) return GEN_ERR_NOMEM;
        for (int64_t i = 0; i < *count; i++) {
            const int32_t id = (int32_t)(a + i);
            gen_images_batch(&m->test, &id, 1, *known + i * D, -1.0f, 1.0f);
        }
        return GEN_OK;
    }
    if (c->C != 1 && c->C != 3)
        return gen_error(GEN_ERR_USAGE, "--inpaint: image files work for 1 or 3 channels only");
    uint8_t *px = gen_alloc((size_t)D);
    *known = gen_alloc((size_t)D * sizeof(float));
    if (!px || !*known) {
        gen_free(px);
        return GEN_ERR_NOMEM;
    }
    enum gen_status st = read_image(spec, "image", (int)c->C, (int)c->H, (int)c->W, px);
    for (int64_t i = 0; st == GEN_OK && i < D; i++) (*known)[i] = px[i] / 127.5f - 1.0f;
    gen_free(px);
    *count = 1;
    return st;
}

/* One row per input image: masked input, the n completions, the original;
 * written as a PNG with the same layout rules as gen_png_write_grid. */
static enum gen_status write_inpaint_grid(const char *path, const struct unet_config *c,
                                          int64_t count, int64_t n, const float *known,
                                          const float *keep, const float *res) {
    const int64_t C = c->C, H = c->H, W = c->W, D = C * H * W, P = GEN_PNG_GRID_PAD;
    const int64_t cols = n + 2, width = cols * (W + P) + P, height = count * (H + P) + P;
    const int comp = C == 1 ? 1 : 3;
    if (width > GEN_IMAGE_MAX_SIDE || height > GEN_IMAGE_MAX_SIDE)
        return gen_error(GEN_ERR_USAGE, "%s: a grid of %lldx%lld pixels is too large", path,
                         (long long)width, (long long)height);
    uint8_t *img = gen_calloc((size_t)(width * height * comp), 1);
    if (!img) return GEN_ERR_NOMEM;
    for (int64_t r = 0; r < count; r++)
        for (int64_t col = 0; col < cols; col++) {
            const float *src =
                col == 0 || col == cols - 1 ? known + r * D : res + (r * n + col - 1) * D;
            for (int64_t ch = 0; ch < comp; ch++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t x = 0; x < W; x++) {
                        const int64_t k = ((ch < C ? ch : 0) * H + y) * W + x;
                        float v = src[k];
                        if (col == 0 && keep[k] < 0.5f) v = 0.0f; /* hole: mid grey */
                        v = v < -1 ? -1 : v > 1 ? 1 : v;
                        const int64_t oy = P + r * (H + P) + y, ox = P + col * (W + P) + x;
                        img[(oy * width + ox) * comp + ch] = (uint8_t)lrintf((v + 1.0f) * 127.5f);
                    }
        }
    enum gen_status st = gen_png_write(path, (int)width, (int)height, comp, img);
    gen_free(img);
    return st;
}

static int sample_inpaint(struct gen_run *run, struct diffusion *m, struct gen_ctx *g,
                          const struct sampler *s, const char *out, double *seconds,
                          int64_t *n_images) {
    const struct gen_config *cfg = &run->cfg;
    const char *spec = gen_config_str(cfg, "inpaint"), *mask = gen_config_str(cfg, "mask");
    if (!mask) {
        gen_error(GEN_ERR_USAGE, "--inpaint needs --mask (a PNG, white = keep, or "
                                 "centre|left|right|top|bottom: the part to regenerate)");
        return 2;
    }
    const int64_t D = image_numel(m);
    const int64_t n = gen_config_is_set(cfg, "num") ? gen_config_int(cfg, "num") : 4;
    float *known = NULL, *keep1 = gen_alloc((size_t)D * sizeof(float));
    float *kn = NULL, *kp = NULL, *res = NULL;
    int64_t count = 0;
    int rc = 1;
    enum gen_status st = keep1 ? make_mask(mask, &m->ucfg, keep1) : GEN_ERR_NOMEM;
    if (st == GEN_OK) st = inpaint_images(cfg, m, spec, &known, &count);
    if (st != GEN_OK) {
        rc = status_rc(st);
        goto out;
    }
    /* Every completion j of image r is image r n + j of the request. */
    const int64_t total = count * n;
    kn = gen_alloc((size_t)(total * D) * sizeof(float));
    kp = gen_alloc((size_t)(total * D) * sizeof(float));
    res = gen_alloc((size_t)(total * D) * sizeof(float));
    if (!kn || !kp || !res) {
        gen_error(GEN_ERR_NOMEM, "out of memory for %lld inpainted images", (long long)total);
        goto out;
    }
    for (int64_t i = 0; i < total; i++) {
        memcpy(kn + i * D, known + (i / n) * D, (size_t)D * sizeof(float));
        memcpy(kp + i * D, keep1, (size_t)D * sizeof(float));
    }
    const double t0 = gen_run_now();
    st = generate(m, g, s, total, (uint64_t)gen_config_int(cfg, "seed"), kn, kp, res);
    *seconds = gen_run_now() - t0;
    if (st != GEN_OK) {
        rc = status_rc(st);
        goto out;
    }
    size_t len = strlen(out);
    if (len && out[len - 1] == '/') {
        for (int64_t r = 0; r < count; r++)
            for (int64_t k = 0; k < D; k++)
                known[r * D + k] = keep1[k] > 0.5f ? known[r * D + k] : 0.0f;
        st = write_images(out, "", res, total, &m->ucfg);
        if (st == GEN_OK) st = write_images(out, "masked-", known, count, &m->ucfg);
    } else {
        st = write_inpaint_grid(out, &m->ucfg, count, n, known, kp, res);
    }
    if (st != GEN_OK) goto out;
    *n_images = total;
    rc = 0;
out:
    gen_free(known);
    gen_free(keep1);
    gen_free(kn);
    gen_free(kp);
    gen_free(res);
    return rc;
}

static int diffusion_sample(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct diffusion m;
    memset(&m, 0, sizeof m);
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    int rc = 1;
    float *x = NULL;
    const char *ckpt = gen_config_str(cfg, "ckpt");
    const char *out = gen_config_str(cfg, "output");
    if (!out) out = "samples.png";
    struct sampler s;
    sampler_of(cfg, &s, run->quiet);
    enum gen_status st = diffusion_load(&m, ckpt, !gen_config_flag(cfg, "no-ema"));
    if (st != GEN_OK) goto done;
    if (!s.ddpm && s.steps > m.sched.T) {
        gen_error(GEN_ERR_USAGE, "--steps: at most T = %lld for this model, got %lld",
                  (long long)m.sched.T, (long long)s.steps);
        rc = 2;
        goto done;
    }
    double seconds = 0;
    int64_t n = gen_config_int(cfg, "num");
    if (gen_config_str(cfg, "inpaint")) {
        rc = sample_inpaint(run, &m, &g, &s, out, &seconds, &n);
        if (rc) goto done;
    } else {
        if (gen_config_str(cfg, "mask")) {
            gen_error(GEN_ERR_USAGE, "--mask needs --inpaint IMAGE");
            rc = 2;
            goto done;
        }
        const int64_t D = image_numel(&m);
        x = gen_alloc((size_t)(n * D) * sizeof *x);
        if (!x) {
            gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
            goto done;
        }
        const double t0 = gen_run_now();
        st = generate(&m, &g, &s, n, (uint64_t)gen_config_int(cfg, "seed"), NULL, NULL, x);
        seconds = gen_run_now() - t0;
        if (st != GEN_OK) {
            rc = status_rc(st);
            goto done;
        }
        if (write_images(out, "", x, n, &m.ucfg) != GEN_OK) goto done;
    }
    const char *sname = s.ddpm ? "ddpm" : "ddim";
    const int64_t steps = s.ddpm ? m.sched.T : s.steps;
    if (run->json)
        printf("{\"family\":\"diffusion\",\"images\":%lld,\"sampler\":\"%s\",\"steps\":%lld,"
               "\"eta\":%g,\"seconds\":%.3f,\"images_per_s\":%.3f}\n",
               (long long)n, sname, (long long)steps, s.ddpm ? 1.0 : s.eta, seconds,
               seconds > 0 ? (double)n / seconds : 0.0);
    if (!run->quiet)
        fprintf(stderr, "wrote %lld images to %s (%s, %lld steps, %.1f s)\n", (long long)n, out,
                sname, (long long)steps, seconds);
    rc = 0;
done:
    gen_free(x);
    gen_ctx_free(&g);
    diffusion_free(&m);
    return rc;
}

/* ---- evaluation ---- */

struct eval_model {
    struct diffusion *m;
    struct gen_ctx g;
    struct sampler s;
};

/* gen_generate_fn: n images in [0, 1] from the sampler of `gen eval`. */
static enum gen_status eval_generate(void *model, int64_t n, uint64_t seed, float *out) {
    struct eval_model *q = model;
    enum gen_status st = generate(q->m, &q->g, &q->s, n, seed, NULL, NULL, out);
    for (int64_t i = 0, k = n * image_numel(q->m); st == GEN_OK && i < k; i++)
        out[i] = 0.5f * (out[i] + 1.0f);
    return st;
}

static int diffusion_eval(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    /* --samples DIR: the metrics read the folder and need no model. */
    if (gen_config_str(cfg, "samples")) return gen_eval_images(run, NULL, NULL, 1, 1, 1, NULL);
    static struct diffusion m;
    memset(&m, 0, sizeof m);
    struct eval_model q = {.m = &m};
    gen_ctx_init_eval(&q.g);
    sampler_of(cfg, &q.s, 1);
    int rc = 1;
    if (diffusion_load(&m, gen_config_str(cfg, "ckpt"), !gen_config_flag(cfg, "no-ema")) != GEN_OK)
        goto done;
    if (!q.s.ddpm && q.s.steps > m.sched.T) {
        gen_error(GEN_ERR_USAGE, "--steps: at most T = %lld for this model, got %lld",
                  (long long)m.sched.T, (long long)q.s.steps);
        rc = 2;
        goto done;
    }
    rc = gen_eval_images(run, eval_generate, &q, (int)m.ucfg.C, (int)m.ucfg.H, (int)m.ucfg.W, NULL);
done:
    gen_ctx_free(&q.g);
    diffusion_free(&m);
    return rc;
}

/* ---- options ---- */

static const struct gen_option diffusion_train_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    GEN_INT_OPT("steps", "2000", 1, GEN_OPT_NO_MAX, "optimiser steps (instead of --epochs)"),
    GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "5e-4", 0, 10, "Adam learning rate (after the warm-up)"),
    GEN_INT_OPT("warmup", "500", 0, GEN_OPT_NO_MAX, "linear learning-rate warm-up steps"),
    GEN_FLOAT_OPT("clip", "1", 0, GEN_OPT_NO_MAX, "global gradient-norm clip"),
    GEN_FLOAT_OPT("ema-decay", "0.999", 0, 1, "largest EMA decay (warm-up (1+t)/(10+t) below it)"),
    GEN_INT_OPT("base", "32", 8, 1024, "U-Net base channels (a multiple of 8)"),
    GEN_STR_OPT("mults", "1,2,2", "channel multipliers of the full, 1/2 and 1/4 size levels"),
    GEN_INT_OPT("timesteps", "1000", 1, 100000, "diffusion steps T"),
    GEN_FLOAT_OPT("beta-start", "1e-4", 0, 1, "first beta of the linear schedule"),
    GEN_FLOAT_OPT("beta-end", "0.02", 0, 1, "last beta of the linear schedule"),
    GEN_FLAG_OPT("no-attn", "leave out the attention block"),
    GEN_INT_OPT("sample-steps", "50", 1, 100000,
                "DDIM steps of the sample grids (64 images from the EMA weights)"),
    GEN_OPT_END,
};

static const struct gen_option diffusion_sample_options[] = {
    GEN_CHOICE_OPT("sampler", "ddim", "ddpm|ddim", "ddpm (ancestral, all T steps) or ddim"),
    GEN_INT_OPT("steps", "50", 1, 100000, "DDIM steps (at most T)"),
    GEN_FLOAT_OPT("eta", "0", 0, 1, "DDIM noise (0: deterministic, 1: DDPM-like)"),
    GEN_FLAG_OPT("no-ema", "sample from the trained weights instead of their EMA"),
    GEN_STR_OPT("inpaint", NULL,
                "inpaint an image: a PNG, or test:K / test:A-B from --data; -n completions "
                "each (default 4); needs --mask"),
    GEN_STR_OPT("mask", NULL,
                "PNG mask (white = keep, black = regenerate) or the region to regenerate: "
                "centre|left|right|top|bottom"),
    GEN_INT_OPT("resample", "5", 1, 100, "inpainting: passes per denoising step (RePaint)"),
    GEN_STR_OPT("data", "data/fashion-mnist", "images for --inpaint test:K"),
    GEN_OPT_END,
};

static const struct gen_option diffusion_eval_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "real images: IDX directory or image folder"),
    GEN_EVAL_IMAGE_OPTIONS_NUM("2000"),
    GEN_CHOICE_OPT("sampler", "ddim", "ddpm|ddim", "ddpm (ancestral, all T steps) or ddim"),
    GEN_INT_OPT("steps", "50", 1, 100000, "DDIM steps (at most T)"),
    GEN_FLOAT_OPT("eta", "0", 0, 1, "DDIM noise (0: deterministic, 1: DDPM-like)"),
    GEN_FLAG_OPT("no-ema", "generate from the trained weights instead of their EMA"),
    GEN_OPT_END,
};

const struct gen_family gen_family_diffusion = {
    .name = "diffusion",
    .summary = "DDPM with a small U-Net; DDPM or DDIM sampling, inpainting",
    .data = GEN_DATA_IMAGES,
    .train_options = diffusion_train_options,
    .sample_options = diffusion_sample_options,
    .eval_options = diffusion_eval_options,
    .train = diffusion_train,
    .sample = diffusion_sample,
    .eval = diffusion_eval,
};
