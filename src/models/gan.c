/* gan.c - the DCGAN family (DESIGN.md section 3), for C x S x S images with
 * S a multiple of 4 (28 x 28 grey, 32 x 32 RGB, ...). With s = S / 4:
 *
 *   G: z (latent) -> fc Linear(latent, 2gw s s, no bias) -> reshape
 *      -> bn0 -> ReLU -> deconv1 ConvT(2gw, gw, 4, 2, 1, no bias) -> bn1 -> ReLU
 *      -> deconv2 ConvT(gw, C, 4, 2, 1) -> tanh            (gw = 64: 128, 64)
 *   D: x -> conv1 Conv(C, dw, 4, 2, 1) -> LeakyReLU(0.2)
 *      -> conv2 Conv(dw, 2dw, 4, 2, 1, no bias) -> bn2 -> LeakyReLU(0.2)
 *      -> fc Linear(2dw s s, 1) -> logit                   (dw = 64: 64, 128)
 *
 * Both networks live in one gen_params: group 0 is G, group 1 is D, each
 * with its own Adam step count. The loss is the non-saturating one:
 *   D: BCE(D(x), 1) + BCE(D(G(z)), 0)      G: BCE(D(G(z)), 1) = -log D(G(z))
 * Pixels are in [-1, 1]. Samples use batch statistics in BatchNorm, as the
 * reference DCGAN does (its generator stays in training mode), in chunks of
 * 64; the running statistics are still kept, and restored around sampling
 * so that sampling never changes a checkpoint. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/kernels.h"
#include "gen/metrics.h"
#include "gen/trainer.h"
#include "models/gan.h"

#define BN_MOMENTUM 0.1f
#define BN_EPS      1e-5f
#define LEAK        0.2f
#define INIT_STD    0.02f
/* The fixed noise of the training grids; `gen sample gan -n 64` with the
 * default --seed 0 draws the same 64 z's, so it redraws the last grid. */
#define SNAPSHOT_SEED 0u
#define SNAPSHOT_N    64
/* Divergence thresholds (see gen_gan_watch_step). */
#define D_LOSS_FLOOR 0.01
#define G_LOSS_RISE  1.0

/* ---- the networks ---- */

static void bn_add(struct gen_params *ps, struct gen_gan_bn *bn, const char *prefix, int64_t C,
                   int group) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight", prefix);
    bn->w = gen_params_add(ps, name, GEN_PARAM_NODECAY, group, 1, &C);
    snprintf(name, sizeof name, "%s.bias", prefix);
    bn->b = gen_params_add(ps, name, GEN_PARAM_NODECAY, group, 1, &C);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    bn->rm = gen_params_add(ps, name, GEN_PARAM_BUFFER, group, 1, &C);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    bn->rv = gen_params_add(ps, name, GEN_PARAM_BUFFER, group, 1, &C);
}

static struct gen_tensor *bn_fwd(struct gen_ctx *g, struct gen_gan *m, const struct gen_gan_bn *bn,
                                 struct gen_tensor *x) {
    struct gen_params *ps = &m->ps;
    return gen_batchnorm(g, x, gen_params_tensor(ps, bn->w), gen_params_tensor(ps, bn->b),
                         gen_params_tensor(ps, bn->rm), gen_params_tensor(ps, bn->rv), BN_MOMENTUM,
                         BN_EPS);
}

static int is_bn_gamma(const struct gen_gan *m, int i) {
    return i == m->g_bn0.w || i == m->g_bn1.w || i == m->d_bn2.w;
}

/* DCGAN's init: every weight N(0, 0.02), BN gamma N(1, 0.02), biases and
 * BN beta 0, running mean 0 and variance 1; in declaration order. */
static void init_params(struct gen_gan *m, struct gen_rng *r) {
    struct gen_params *ps = &m->ps;
    for (int i = 0; i < ps->count; i++) {
        struct gen_param *p = &ps->p[i];
        size_t len = strlen(p->name);
        int is_bias = len > 5 && !strcmp(p->name + len - 5, ".bias");
        if (p->kind == GEN_PARAM_BUFFER)
            gen_init_const(&p->t, strstr(p->name, "running_var") ? 1.0f : 0.0f);
        else if (is_bn_gamma(m, i))
            gen_init_normal(&p->t, 1.0f, INIT_STD, r);
        else if (is_bias)
            gen_init_const(&p->t, 0.0f);
        else
            gen_init_normal(&p->t, 0.0f, INIT_STD, r);
    }
}

enum gen_status gen_gan_build(struct gen_gan *m, int64_t C, int64_t S, int64_t latent, int64_t gw,
                              int64_t dw, float ema, uint64_t seed) {
    if (S < 8 || S % 4)
        return gen_error(GEN_ERR_USAGE,
                         "--image-size: must be a multiple of 4 (28, 32, ...), got %lld",
                         (long long)S);
    if (C != 1 && C != 3)
        return gen_error(GEN_ERR_USAGE, "--channels: must be 1 or 3, got %lld", (long long)C);
    m->C = C, m->S = S, m->latent = latent, m->gw = gw, m->dw = dw, m->ema = ema;
    struct gen_params *ps = &m->ps;
    gen_params_init(ps);
    const int64_t s = S / 4;
    gen_linear_layer_add(ps, &m->g_fc, "G.fc", latent, 2 * gw * s * s, 0, GEN_GAN_G);
    bn_add(ps, &m->g_bn0, "G.bn0", 2 * gw, GEN_GAN_G);
    gen_conv_layer_add(ps, &m->g_deconv1, "G.deconv1", 2 * gw, gw, 4, 2, 1, 0, 1, GEN_GAN_G);
    bn_add(ps, &m->g_bn1, "G.bn1", gw, GEN_GAN_G);
    gen_conv_layer_add(ps, &m->g_deconv2, "G.deconv2", gw, C, 4, 2, 1, 1, 1, GEN_GAN_G);
    gen_conv_layer_add(ps, &m->d_conv1, "D.conv1", C, dw, 4, 2, 1, 1, 0, GEN_GAN_D);
    gen_conv_layer_add(ps, &m->d_conv2, "D.conv2", dw, 2 * dw, 4, 2, 1, 0, 0, GEN_GAN_D);
    bn_add(ps, &m->d_bn2, "D.bn2", 2 * dw, GEN_GAN_D);
    gen_linear_layer_add(ps, &m->d_fc, "D.fc", 2 * dw * s * s, 1, 1, GEN_GAN_D);
    enum gen_status st = gen_params_finalize(ps, ema > 0);
    if (st != GEN_OK) return gen_error(st, "out of memory for the GAN's parameters");
    m->bn_saved = gen_alloc((size_t)(ps->n_buffer ? ps->n_buffer : 1) * sizeof(float));
    if (!m->bn_saved) return gen_error(GEN_ERR_NOMEM, "out of memory for the GAN's buffers");
    for (int i = 0; i < GEN_GAN_N_RNG; i++)
        gen_rng_seed(&m->rng[i], seed * GEN_GAN_N_RNG + (uint64_t)i + 1);
    init_params(m, &m->rng[GEN_GAN_RNG_INIT]);
    if (ps->ema) gen_ema_copy_in(ps);
    return GEN_OK;
}

void gen_gan_free(struct gen_gan *m) {
    gen_params_free(&m->ps);
    gen_free(m->bn_saved);
    m->bn_saved = NULL;
    gen_image_set_free(&m->train);
}

struct gen_tensor *gen_gan_generator(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *z) {
    const int64_t B = z->shape[0], s = m->S / 4;
    struct gen_tensor *h = gen_linear_layer_fwd(g, &m->ps, &m->g_fc, z);
    h = gen_reshape(g, h, 4, (int64_t[]){B, 2 * m->gw, s, s});
    h = gen_relu(g, bn_fwd(g, m, &m->g_bn0, h));
    h = gen_conv_layer_fwd(g, &m->ps, &m->g_deconv1, h);
    h = gen_relu(g, bn_fwd(g, m, &m->g_bn1, h));
    return gen_tanh(g, gen_conv_layer_fwd(g, &m->ps, &m->g_deconv2, h));
}

struct gen_tensor *gen_gan_discriminator(struct gen_ctx *g, struct gen_gan *m,
                                         struct gen_tensor *x) {
    const int64_t B = x->shape[0];
    struct gen_tensor *h = gen_leaky_relu(g, gen_conv_layer_fwd(g, &m->ps, &m->d_conv1, x), LEAK);
    h = gen_conv_layer_fwd(g, &m->ps, &m->d_conv2, h);
    h = gen_leaky_relu(g, bn_fwd(g, m, &m->d_bn2, h), LEAK);
    h = gen_reshape(g, h, 2, (int64_t[]){B, gen_numel(h) / B});
    return gen_linear_layer_fwd(g, &m->ps, &m->d_fc, h);
}

/* ---- training ---- */

static double mean_sigmoid(const struct gen_tensor *logits) {
    const int64_t n = gen_numel(logits);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += 1.0 / (1.0 + exp(-(double)logits->data[i]));
    return n ? s / (double)n : 0;
}

/* Turns gradients of a group's parameters off or on: G's step backpropagates
 * through D to G's weights without computing D's weight gradients. */
static void set_trainable(struct gen_gan *m, int group, int on) {
    for (int i = 0; i < m->ps.count; i++) {
        struct gen_param *p = &m->ps.p[i];
        if (p->group == group && p->kind != GEN_PARAM_BUFFER) p->t.requires_grad = on;
    }
}

/* EMA of G's weights only, with the warm-up min(decay, (1 + t) / (10 + t))
 * at G's update t (from 0), so early averages are not the initial weights. */
static void ema_update(struct gen_gan *m) {
    struct gen_params *ps = &m->ps;
    const float t = (float)(ps->step[GEN_GAN_G] - 1);
    float decay = (1.0f + t) / (10.0f + t);
    if (decay > m->ema) decay = m->ema;
    const struct gen_kernels *k = gen_kernels();
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        if (p->group == GEN_GAN_G && p->kind != GEN_PARAM_BUFFER)
            k->ema(gen_numel(&p->t), ps->ema + p->offset, ps->data + p->offset, decay);
    }
}

void gen_gan_train_step(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *x,
                        struct gen_tensor *z, double out[4]) {
    const int64_t B = x->shape[0];
    GEN_ASSERT(z->shape[0] == B);
    g->training = 1;
    struct gen_tensor *fake = gen_gan_generator(g, m, z);
    const int64_t g_only = gen_tape_mark(g); /* the tape holds G's forward only */
    struct gen_tensor *ones = gen_tensor_2d(g, B, 1), *zeros = gen_zeros(g, 2, (int64_t[]){B, 1});
    for (int64_t i = 0; i < B; i++) ones->data[i] = 1.0f;

    /* D: real -> 1, detached fake -> 0. */
    struct gen_tensor *detached = gen_tensor_wrap(g, fake->data, fake->ndim, fake->shape);
    struct gen_tensor *d_real = gen_gan_discriminator(g, m, x);
    struct gen_tensor *d_fake = gen_gan_discriminator(g, m, detached);
    struct gen_tensor *d_loss =
        gen_add(g, gen_bce_logits(g, d_real, ones, 1), gen_bce_logits(g, d_fake, zeros, 1));
    gen_params_zero_grad(&m->ps);
    gen_backward(g, d_loss);
    gen_optim_step(&m->opt, &m->ps, GEN_GAN_D, m->lr_d);

    /* G: -log D(G(z)) against the updated D. D's part of the tape is done
     * with (its nodes hold gradients already): cut the tape back to G's
     * forward, so this backward walks D(G(z)) and G alone. */
    gen_tape_truncate(g, g_only);
    set_trainable(m, GEN_GAN_D, 0);
    struct gen_tensor *d_gen = gen_gan_discriminator(g, m, fake);
    struct gen_tensor *g_loss = gen_bce_logits(g, d_gen, ones, 1);
    gen_params_zero_grad(&m->ps);
    gen_backward(g, g_loss);
    set_trainable(m, GEN_GAN_D, 1);
    gen_optim_step(&m->opt, &m->ps, GEN_GAN_G, m->lr_g);
    if (m->ps.ema) ema_update(m);

    out[0] = d_loss->data[0];
    out[1] = g_loss->data[0];
    out[2] = mean_sigmoid(d_real);
    out[3] = mean_sigmoid(d_fake);
}

void gen_gan_sample(struct gen_ctx *g, struct gen_gan *m, const float *z, int64_t n, int use_ema,
                    float *out) {
    struct gen_params *ps = &m->ps;
    const int swap = use_ema && ps->ema;
    if (swap) gen_ema_swap(ps);
    memcpy(m->bn_saved, ps->buffers, (size_t)ps->n_buffer * sizeof(float));
    const int training = g->training;
    g->training = 1; /* batch statistics */
    gen_no_grad_begin(g);
    const int64_t img = m->C * m->S * m->S;
    for (int64_t i = 0; i < n; i += GEN_GAN_SAMPLE_BATCH) {
        const int64_t b = n - i < GEN_GAN_SAMPLE_BATCH ? n - i : GEN_GAN_SAMPLE_BATCH;
        struct gen_tensor *zt =
            gen_tensor_wrap(g, (float *)z + i * m->latent, 2, (int64_t[]){b, m->latent});
        const float *y = gen_gan_generator(g, m, zt)->data;
        float *o = out + i * img;
        for (int64_t k = 0; k < b * img; k++) o[k] = 0.5f * (y[k] + 1.0f);
        gen_ctx_reset(g);
    }
    gen_no_grad_end(g);
    g->training = training;
    memcpy(ps->buffers, m->bn_saved, (size_t)ps->n_buffer * sizeof(float));
    if (swap) gen_ema_swap(ps);
}

/* ---- divergence watch ---- */

int gen_gan_watch_step(struct gen_gan_watch *w, int64_t step, double d_loss, double g_loss,
                       double d_x, double d_g_z, char *msg, size_t msg_size) {
    enum { SUBS = GEN_GAN_WATCH_SUBS };
    if (w->sub <= 0) return 0;
    w->d_sum += d_loss, w->g_sum += g_loss, w->dx_sum += d_x, w->dgz_sum += d_g_z;
    if (++w->n < w->sub) return 0;
    if (w->filled == SUBS + 1) {
        memmove(w->d, w->d + 1, SUBS * sizeof w->d[0]);
        memmove(w->g, w->g + 1, SUBS * sizeof w->g[0]);
        w->filled--;
    }
    const double n = (double)w->n;
    w->d[w->filled] = w->d_sum / n;
    w->g[w->filled] = w->g_sum / n;
    w->dx = w->dx_sum / n, w->dgz = w->dgz_sum / n;
    w->filled++;
    w->d_sum = w->g_sum = w->dx_sum = w->dgz_sum = 0;
    w->n = 0;

    int fired = 0;
    /* D wins: its loss near zero over the whole window (SUBS sub-windows). */
    int d_low = 0;
    if (w->filled >= SUBS) {
        double mean = 0;
        for (int i = w->filled - SUBS; i < w->filled; i++) mean += w->d[i];
        mean /= SUBS;
        d_low = mean < D_LOSS_FLOOR;
        if (d_low && !w->d_warned) {
            snprintf(msg, msg_size,
                     "step %" PRId64
                     ": training has diverged: D's loss averaged %.4f over the last "
                     "%" PRId64 " steps (D(x) %.3f, D(G(z)) %.3f), so G gets almost no gradient; "
                     "try a lower --lr-d (e.g. half of --lr), a smaller --d-width, or --resume "
                     "from an earlier numbered checkpoint",
                     step, mean, SUBS * w->sub, w->dx, w->dgz);
            fired = 1;
        }
    }
    w->d_warned = d_low;
    /* G's loss climbing through every sub-window of the window, by a lot. */
    int g_up = w->filled == SUBS + 1 && w->g[SUBS] - w->g[0] >= G_LOSS_RISE;
    for (int i = 0; g_up && i < SUBS; i++) g_up = w->g[i + 1] > w->g[i];
    if (g_up && !w->g_warned && !fired) {
        snprintf(msg, msg_size,
                 "step %" PRId64 ": training looks diverged: G's loss has climbed for %" PRId64
                 " steps (%.3f -> %.3f; D(x) %.3f, D(G(z)) %.3f); try a lower --lr, an --lr-d "
                 "below --lr-g, or --resume from an earlier numbered checkpoint",
                 step, SUBS * w->sub, w->g[0], w->g[SUBS], w->dx, w->dgz);
        fired = 1;
    }
    w->g_warned = g_up;
    return fired;
}

/* ---- train command ---- */

/* What the trainer's callbacks see. */
struct gan_train {
    struct gen_gan *m;
    int quiet, stop_on_divergence;
    int64_t stopped_at; /* steps done when a divergence stopped training, or 0 */
    char why[512];
    float *snap_z, *snap_img; /* (64, latent), (64, C, S, S) */
};

static enum gen_status gan_step(void *model, struct gen_ctx *g, int64_t step, const int32_t *idx,
                                int count, double *fields) {
    struct gan_train *t = model;
    struct gen_gan *m = t->m;
    struct gen_tensor *x = gen_tensor_4d(g, count, m->C, m->S, m->S);
    gen_images_batch(&m->train, idx, count, x->data, -1.0f, 1.0f);
    struct gen_tensor *z = gen_tensor_2d(g, count, m->latent);
    gen_rng_fill_normal(&m->rng[GEN_GAN_RNG_NOISE], z->data, gen_numel(z), 0.0f, 1.0f);
    double s[4];
    gen_gan_train_step(g, m, x, z, s);
    for (int i = 0; i < 4; i++) fields[i] = s[i];
    if (!isfinite(s[1])) fields[0] = s[1]; /* the trainer's NaN guard watches field 0 */
    if (gen_gan_watch_step(&m->watch, step + 1, s[0], s[1], s[2], s[3], t->why, sizeof t->why)) {
        if (!t->quiet) fprintf(stderr, "%sgan: warning: %s\n", isatty(2) ? "\r\033[K" : "", t->why);
        if (t->stop_on_divergence) {
            t->stopped_at = step + 1;
            return gen_error(GEN_ERR_RUNTIME, "%s", t->why);
        }
    }
    return GEN_OK;
}

static enum gen_status gan_snapshot(void *model, struct gen_ctx *g, const char *dir, int64_t step) {
    struct gan_train *t = model;
    struct gen_gan *m = t->m;
    struct gen_rng r;
    gen_rng_seed(&r, SNAPSHOT_SEED);
    gen_rng_fill_normal(&r, t->snap_z, SNAPSHOT_N * m->latent, 0.0f, 1.0f);
    gen_gan_sample(g, m, t->snap_z, SNAPSHOT_N, 1, t->snap_img);
    char path[4096];
    snprintf(path, sizeof path, "%s/samples-%08" PRId64 ".png", dir, step);
    return gen_png_write_grid(path, t->snap_img, SNAPSHOT_N, (int)m->C, (int)m->S, (int)m->S, 0.0f,
                              1.0f);
}

/* The checkpoint the trainer would have written after `steps` steps: the
 * trainer stops without saving when a step fails, which is how
 * --stop-on-divergence stops it, so the model saves itself (same metadata
 * as src/models/trainer.c: step, epoch, data_cursor, rng.I). */
static enum gen_status save_stopped(const struct gen_trainer_spec *spec, const char *dir,
                                    int64_t steps) {
    const int64_t per_epoch = (spec->n_examples + spec->batch - 1) / spec->batch;
    char text[4 + GEN_GAN_N_RNG][80], keys[GEN_GAN_N_RNG][16];
    struct gen_kv kv[3 + GEN_GAN_N_RNG];
    snprintf(text[0], sizeof text[0], "%" PRId64, steps);
    snprintf(text[1], sizeof text[1], "%" PRId64, steps / per_epoch);
    snprintf(text[2], sizeof text[2], "%" PRId64, steps % per_epoch * spec->batch);
    kv[0] = (struct gen_kv){"step", text[0]};
    kv[1] = (struct gen_kv){"epoch", text[1]};
    kv[2] = (struct gen_kv){"data_cursor", text[2]};
    for (int i = 0; i < GEN_GAN_N_RNG; i++) {
        const uint64_t *s = spec->rngs[i].s;
        snprintf(keys[i], sizeof keys[i], "rng.%d", i);
        snprintf(text[3 + i], sizeof text[3 + i],
                 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, s[0], s[1], s[2], s[3]);
        kv[3 + i] = (struct gen_kv){keys[i], text[3 + i]};
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint-%08" PRId64 ".safetensors", dir, steps);
    enum gen_status st =
        gen_ckpt_save(path, spec->ps, spec->family, spec->config_json, kv, 3 + GEN_GAN_N_RNG);
    if (st != GEN_OK) return st;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    return gen_ckpt_save(path, spec->ps, spec->family, spec->config_json, kv, 3 + GEN_GAN_N_RNG);
}

static enum gen_status load_data(struct gen_image_set *set, const char *path, int channels,
                                 int size) {
    if (access(path, F_OK) != 0)
        return gen_error(GEN_ERR_IO,
                         "%s: no such data set (run scripts/fetch-data.sh, or give --data DIR)",
                         path);
    return gen_images_load(path, 1, channels, size, set);
}

static void json_set_num(cJSON *o, const char *name, double v) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    cJSON_AddNumberToObject(o, name, v);
}

/* The model's config: the options plus the image shape it was built for,
 * less the options that only say how to run (as the trainer leaves out
 * --steps or --threads), so a resumed run writes the same bytes whatever
 * watch settings it is given. */
static char *model_config(const struct gen_config *cfg, const struct gen_gan *m) {
    char *s = gen_config_to_json(cfg);
    cJSON *o = cJSON_Parse(s);
    free(s);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "divergence-window");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "stop-on-divergence");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "log-every");
    json_set_num(o, "channels", (double)m->C);
    json_set_num(o, "image-size", (double)m->S);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static float lr_option(const struct gen_config *cfg, const char *name) {
    return (float)gen_config_float(cfg, gen_config_is_set(cfg, name) ? name : "lr");
}

static int64_t count_group(const struct gen_params *ps, int group) {
    int64_t n = 0;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].group == group && ps->p[i].kind != GEN_PARAM_BUFFER)
            n += gen_numel(&ps->p[i].t);
    return n;
}

static int gan_train(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_gan m;
    memset(&m, 0, sizeof m);
    struct gan_train t = {.m = &m,
                          .quiet = run->quiet,
                          .stop_on_divergence = gen_config_flag(cfg, "stop-on-divergence")};
    int rc = 1;
    char *config = NULL;
    const char *data = gen_config_str(cfg, "data");
    const int64_t S = gen_config_int(cfg, "image-size");
    const int channels = (int)gen_config_int(cfg, "channels"); /* 0: the data's */
    if (S % 4 || (channels != 0 && channels != 1 && channels != 3)) {
        gen_error(GEN_ERR_USAGE,
                  S % 4 ? "--image-size: must be a multiple of 4, got %lld"
                        : "--channels: must be 1 or 3, got %lld",
                  S % 4 ? (long long)S : (long long)channels);
        return 2;
    }
    if (load_data(&m.train, data, channels, (int)S) != GEN_OK) goto out;
    const uint64_t seed = (uint64_t)gen_config_int(cfg, "seed");
    enum gen_status st = gen_gan_build(
        &m, m.train.c, S, gen_config_int(cfg, "latent"), gen_config_int(cfg, "g-width"),
        gen_config_int(cfg, "d-width"), (float)gen_config_float(cfg, "ema"), seed);
    if (st != GEN_OK) {
        rc = st == GEN_ERR_USAGE ? 2 : 1;
        goto out;
    }
    m.lr_g = lr_option(cfg, "lr-g");
    m.lr_d = lr_option(cfg, "lr-d");
    m.opt = (struct gen_optim){
        GEN_OPTIM_ADAM, m.lr_g, (float)gen_config_float(cfg, "beta1"), 0.999f, 1e-8f, 0.0f, 0.0f};
    const int64_t window = gen_config_int(cfg, "divergence-window");
    m.watch.window = window;
    m.watch.sub = window > 0 ? (window + GEN_GAN_WATCH_SUBS - 1) / GEN_GAN_WATCH_SUBS : 0;
    t.snap_z = gen_alloc((size_t)(SNAPSHOT_N * m.latent) * sizeof(float));
    t.snap_img = gen_alloc((size_t)(SNAPSHOT_N * m.C * S * S) * sizeof(float));
    if (!t.snap_z || !t.snap_img) goto out;
    config = model_config(cfg, &m);
    const int batch = (int)gen_config_int(cfg, "batch");
    struct gen_trainer_spec spec = {
        .family = "gan",
        .model = &t,
        .ps = &m.ps,
        .rngs = m.rng,
        .n_rngs = GEN_GAN_N_RNG,
        .n_examples = m.train.n,
        .batch = batch,
        .data_seed = seed,
        .epochs = gen_config_int(cfg, "epochs"),
        .steps = gen_config_is_set(cfg, "steps") ? gen_config_int(cfg, "steps") : 0,
        .items_per_step = batch,
        .unit = "img",
        .log_every = gen_config_int(cfg, "log-every"),
        .sample_every = gen_config_int(cfg, "sample-every"),
        .ckpt_every = gen_config_int(cfg, "ckpt-every"),
        .resume = gen_config_flag(cfg, "resume") ? gen_config_str(cfg, "resume") : NULL,
        .config_json = config,
        .step = gan_step,
        .field_names = {"d_loss", "g_loss", "d_x", "d_g_z"},
        .n_fields = 4,
        .snapshot = gan_snapshot,
    };
    if (!run->quiet)
        fprintf(stderr, "gan: G %lld + D %lld parameters%s, %lld training images of %dx%dx%d\n",
                (long long)count_group(&m.ps, GEN_GAN_G), (long long)count_group(&m.ps, GEN_GAN_D),
                m.ps.ema ? " (+ EMA of G)" : "", (long long)m.train.n, m.train.c, m.train.h,
                m.train.w);
    rc = gen_trainer_run(run, &spec);
    if (t.stopped_at > 0) {
        if (save_stopped(&spec, run->out_dir, t.stopped_at) == GEN_OK)
            gen_error(GEN_ERR_RUNTIME,
                      "%s; stopped (--stop-on-divergence) after saving %s/checkpoint.safetensors",
                      t.why, run->out_dir);
        rc = 1;
    }
out:
    gen_free(t.snap_z);
    gen_free(t.snap_img);
    free(config);
    gen_gan_free(&m);
    return rc;
}

/* ---- sample and eval ---- */

/* Builds the model a checkpoint describes and loads its weights (and its
 * EMA of G, when it has one). */
static enum gen_status gan_load(struct gen_gan *m, const char *path) {
    cJSON *c = NULL;
    enum gen_status st = gen_ckpt_config(path, "gan", &c);
    if (st != GEN_OK) return st;
    const double C = gen_json_num(c, "channels", 0), S = gen_json_num(c, "image-size", 0),
                 L = gen_json_num(c, "latent", 0), gw = gen_json_num(c, "g-width", 0),
                 dw = gen_json_num(c, "d-width", 0), ema = gen_json_num(c, "ema", 0);
    cJSON_Delete(c);
    if ((C != 1 && C != 3) || !(S >= 8 && S <= 1024) || fmod(S, 4) != 0 || !(L >= 1 && L <= 4096) ||
        !(gw >= 1 && gw <= 4096) || !(dw >= 1 && dw <= 4096) || !(ema >= 0 && ema < 1))
        return gen_error(GEN_ERR_FORMAT, "%s: bad model shape in the config metadata", path);
    st = gen_gan_build(m, (int64_t)C, (int64_t)S, (int64_t)L, (int64_t)gw, (int64_t)dw, (float)ema,
                       0);
    if (st != GEN_OK)
        return st == GEN_ERR_USAGE ? gen_error(GEN_ERR_FORMAT, "%s: %s", path, gen_last_error())
                                   : st;
    return gen_ckpt_load(path, &m->ps, "gan", m->ps.ema ? GEN_CKPT_EMA : 0, NULL);
}

/* Spherical interpolation between Gaussian latents a and b (d), which keeps
 * the points at the norm the generator was trained on. */
static void slerp(const float *a, const float *b, int64_t d, float t, float *out) {
    double dot = 0, na = 0, nb = 0;
    for (int64_t i = 0; i < d; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    double c = na > 0 && nb > 0 ? dot / sqrt(na * nb) : 1.0;
    double omega = acos(c < -1 ? -1 : c > 1 ? 1 : c);
    double wa = 1.0 - t, wb = t;
    if (omega > 1e-4) wa = sin((1.0 - t) * omega) / sin(omega), wb = sin(t * omega) / sin(omega);
    for (int64_t i = 0; i < d; i++) out[i] = (float)(wa * a[i] + wb * b[i]);
}

/* Rows of the grid of n images walk from one random latent point to another. */
static void interpolation_latents(struct gen_rng *r, int64_t n, int64_t d, int cols, float *z,
                                  float *ends) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t col = i % cols;
        if (col == 0) gen_rng_fill_normal(r, ends, 2 * d, 0.0f, 1.0f);
        const float t = cols > 1 ? (float)col / (float)(cols - 1) : 0.0f;
        slerp(ends, ends + d, d, t, z + i * d);
    }
}

static enum gen_status write_images(const char *path, const float *img, int n, int c, int s) {
    size_t len = strlen(path);
    if (len && path[len - 1] == '/') return gen_png_write_each(path, "", img, n, c, s, s, 0, 1);
    return gen_png_write_grid(path, img, n, c, s, s, 0.0f, 1.0f);
}

static float *alloc_floats(int64_t a, int64_t b) {
    size_t bytes;
    if (!gen_mul_size((size_t)a, (size_t)b, &bytes) || !gen_mul_size(bytes, sizeof(float), &bytes))
        return NULL;
    return gen_alloc(bytes);
}

static void print_sample_json(int n, double seconds, double rate, int ema, const char *out) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "family", "gan");
    cJSON_AddNumberToObject(o, "images", n);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    cJSON_AddNumberToObject(o, "images_per_s", rate);
    cJSON_AddBoolToObject(o, "ema", ema);
    cJSON_AddStringToObject(o, "output", out);
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
}

static int gan_sample(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_gan m;
    memset(&m, 0, sizeof m);
    struct gen_ctx g;
    gen_ctx_init(&g);
    float *z = NULL, *img = NULL, *ends = NULL;
    int rc = 1;
    const char *ckpt = gen_config_str(cfg, "ckpt");
    const char *out = gen_config_str(cfg, "output");
    const int n = (int)gen_config_int(cfg, "num");
    if (!out) out = "samples.png";
    if (gan_load(&m, ckpt) != GEN_OK) goto done;
    z = alloc_floats(n, m.latent);
    img = alloc_floats(n, m.C * m.S * m.S);
    ends = alloc_floats(2, m.latent);
    if (!z || !img || !ends) {
        gen_error(GEN_ERR_NOMEM, "out of memory for %d samples", n);
        goto done;
    }
    struct gen_rng rng;
    gen_rng_seed(&rng, (uint64_t)gen_config_int(cfg, "seed"));
    if (gen_config_flag(cfg, "interpolate")) {
        int cols, rows, width, height;
        gen_png_grid_size(n, (int)m.S, (int)m.S, &cols, &rows, &width, &height);
        interpolation_latents(&rng, n, m.latent, cols, z, ends);
    } else {
        gen_rng_fill_normal(&rng, z, n * m.latent, 0.0f, 1.0f);
    }
    const int use_ema = !gen_config_flag(cfg, "no-ema");
    const double t0 = gen_run_now();
    gen_gan_sample(&g, &m, z, n, use_ema, img);
    const double dt = gen_run_now() - t0;
    if (write_images(out, img, n, (int)m.C, (int)m.S) != GEN_OK) goto done;
    const double rate = dt > 0 ? n / dt : 0;
    if (run->json) print_sample_json(n, dt, rate, use_ema && m.ps.ema, out);
    if (!run->quiet)
        fprintf(stderr, "wrote %d images to %s (generated in %.3fs, %.0f img/s%s)\n", n, out, dt,
                rate, use_ema && m.ps.ema ? ", EMA weights" : "");
    rc = 0;
done:
    gen_free(z);
    gen_free(img);
    gen_free(ends);
    gen_ctx_free(&g);
    gen_gan_free(&m);
    return rc;
}

/* gen_generate_fn for the metrics: n images from seed, [0, 1]. */
struct gan_gen {
    struct gen_gan *m;
    struct gen_ctx g;
    int use_ema;
};

static enum gen_status gan_generate(void *model, int64_t n, uint64_t seed, float *out) {
    struct gan_gen *q = model;
    float *z = alloc_floats(n, q->m->latent);
    if (!z) return gen_error(GEN_ERR_NOMEM, "out of memory for %lld latents", (long long)n);
    struct gen_rng rng;
    gen_rng_seed(&rng, seed);
    gen_rng_fill_normal(&rng, z, n * q->m->latent, 0.0f, 1.0f);
    gen_gan_sample(&q->g, q->m, z, n, q->use_ema, out);
    gen_free(z);
    return GEN_OK;
}

static int gan_eval(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_gan m;
    memset(&m, 0, sizeof m);
    struct gan_gen q = {.m = &m, .use_ema = !gen_config_flag(cfg, "no-ema")};
    gen_ctx_init(&q.g);
    int rc = 1;
    /* --samples DIR: the metrics read the folder at the classifier's shape
     * and need no model. */
    const char *samples = gen_config_str(cfg, "samples");
    if (samples) {
        rc = gen_eval_images(run, NULL, NULL, 1, 1, 1, NULL);
        goto done;
    }
    if (gan_load(&m, gen_config_str(cfg, "ckpt")) != GEN_OK) goto done;
    rc = gen_eval_images(run, gan_generate, &q, (int)m.C, (int)m.S, (int)m.S, NULL);
done:
    gen_ctx_free(&q.g);
    gen_gan_free(&m);
    return rc;
}

/* ---- options ---- */

static const struct gen_option gan_train_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    GEN_INT_OPT("epochs", "5", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "2e-4", 0, 10, "Adam learning rate (both networks)"),
    GEN_FLOAT_OPT("lr-g", NULL, 0, 10, "G's learning rate (default: --lr)"),
    GEN_FLOAT_OPT("lr-d", NULL, 0, 10, "D's learning rate (default: --lr)"),
    GEN_FLOAT_OPT("beta1", "0.5", 0, 0.999999, "Adam beta1 (beta2 is 0.999)"),
    GEN_INT_OPT("latent", "100", 1, 4096, "dimensions of z"),
    GEN_INT_OPT("g-width", "64", 1, 4096, "G's widths are 2N and N channels"),
    GEN_INT_OPT("d-width", "64", 1, 4096, "D's widths are N and 2N channels"),
    GEN_INT_OPT("image-size", "28", 8, 256, "image side in pixels, a multiple of 4 (28, 32)"),
    GEN_INT_OPT("channels", NULL, 1, 3, "image channels, 1 or 3 (default: the data's)"),
    GEN_FLOAT_OPT("ema", "0", 0, 0.999999,
                  "keep an EMA of G's weights with this decay (0: off); "
                  "sampling uses it"),
    GEN_INT_OPT("divergence-window", "500", 0, GEN_OPT_NO_MAX,
                "warn when D's loss stays near 0 or G's climbs for N steps (0: never)"),
    GEN_FLAG_OPT("stop-on-divergence", "stop (after saving a checkpoint) when training diverges"),
    GEN_INT_OPT("log-every", "50", 1, GEN_OPT_NO_MAX, "steps between log lines"),
    GEN_OPT_END,
};

static const struct gen_option gan_sample_options[] = {
    GEN_FLAG_OPT("interpolate", "each grid row walks between two random latent points"),
    GEN_FLAG_OPT("no-ema", "sample from G's raw weights even if the checkpoint has an EMA"),
    GEN_OPT_END,
};

static const struct gen_option gan_eval_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "real images: IDX directory or image folder"),
    GEN_EVAL_IMAGE_OPTIONS,
    GEN_FLAG_OPT("no-ema", "generate from G's raw weights even if the checkpoint has an EMA"),
    GEN_OPT_END,
};

const struct gen_family gen_family_gan = {
    .name = "gan",
    .summary = "DCGAN: generator and discriminator on 28x28 or 32x32 images",
    .data = GEN_DATA_IMAGES,
    .train_options = gan_train_options,
    .sample_options = gan_sample_options,
    .eval_options = gan_eval_options,
    .train = gan_train,
    .sample = gan_sample,
    .eval = gan_eval,
};
