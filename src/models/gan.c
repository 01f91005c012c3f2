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
 * with its own Adam step count. A training step has two phases, D's then
 * G's, with the non-saturating loss:
 *   D: BCE(D(x), 1) + BCE(D(G(z)), 0)      G: BCE(D(G(z)), 1) = -log D(G(z))
 * G's phase reuses the G(z) of D's phase. The EMA follows G only.
 * Pixels are in [-1, 1]. Samples use batch statistics in BatchNorm, as the
 * reference DCGAN does (its generator stays in training mode), in chunks of
 * 64; the running statistics are still kept, and restored around sampling
 * so that sampling never changes a checkpoint.
 *
 * --conditional (K classes y): G takes [z, label_emb[y]] (fc: Linear(latent
 * + K, ...)), and D is a projection discriminator (Miyato & Koyama 2018),
 *   D(x, y) = fc(phi(x)) + <embed[y], phi(x)>,  phi(x) the (2dw s s)
 * features that feed fc. A step's fakes take the real batch's classes, so
 * the class mix follows the data. A conditional G samples with the
 * BatchNorm statistics of a fixed reference batch whose classes take turns
 * (a chunk's own statistics would take a one-class chunk's class away as
 * its batch mean), so an image depends on its own z and class alone. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gen/family.h"
#include "gen/metrics.h"
#include "models/gan.h"

/* The family's options, by their index in its tables (read with gen_opt_*). */
enum { GAN_T_DATA, GAN_T_EPOCHS, GAN_T_BATCH, GAN_T_LR, GAN_T_LR_G, GAN_T_LR_D, GAN_T_BETA1,
    GAN_T_LATENT, GAN_T_G_WIDTH, GAN_T_D_WIDTH, GAN_T_IMAGE_SIZE, GAN_T_CHANNELS, GAN_T_EMA,
    GAN_T_DIVERGENCE_WINDOW, GAN_T_STOP_ON_DIVERGENCE, GAN_T_CONDITIONAL, GAN_T_COUNT };
enum { GAN_S_INTERPOLATE, GAN_S_COUNT };
enum { GAN_E_CLASSIFIER, GAN_E_NUM, GAN_E_SAMPLES, GAN_E_COUNT };
static const struct gen_option gan_train_options[GAN_T_COUNT + 1];
static const struct gen_option gan_sample_options[GAN_S_COUNT + 3]; /* + the class options */
static const struct gen_option gan_eval_options[GAN_E_COUNT + 1];


#define LEAK     0.2f
#define INIT_STD 0.02f
#define BN_MOMENTUM    0.1f /* PyTorch's BatchNorm defaults, as gen_batchnorm_layer_fwd */
#define BN_EPS         1e-5f
#define REFERENCE_SEED 0x5eedba7c4ULL /* a conditional G's reference batch */
/* Divergence thresholds (see gen_gan_watch_step). */
#define D_LOSS_FLOOR 0.01
#define G_LOSS_RISE  1.0

/* ---- the networks ---- */

static int is_bn_gamma(const struct gen_gan *m, int i) {
    return i == m->g_bn0.w || i == m->g_bn1.w || i == m->d_bn2.w;
}

/* DCGAN's init: every weight N(0, 0.02), BN gamma N(1, 0.02), biases and
 * BN beta 0, running mean 0 and variance 1; in declaration order. G's
 * class embedding is N(0, 1) (PyTorch's nn.Embedding), on the scale of z. */
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
        else if (i == m->g_label_emb)
            gen_init_normal(&p->t, 0.0f, 1.0f, r);
        else
            gen_init_normal(&p->t, 0.0f, INIT_STD, r);
    }
}

enum gen_status gen_gan_build(struct gen_gan *m, int64_t C, int64_t S, int64_t latent, int64_t gw,
                              int64_t dw, int64_t classes, int with_ema, uint64_t seed) {
    gen_params_init(&m->ps);
    if (S < 8 || S % 4)
        return gen_error(GEN_ERR_USAGE,
                         "--image-size: must be a multiple of 4 (28, 32, ...), got %lld",
                         (long long)S);
    if (C != 1 && C != 3)
        return gen_error(GEN_ERR_USAGE, "--channels: must be 1 or 3, got %lld", (long long)C);
    m->C = C, m->S = S, m->latent = latent, m->gw = gw, m->dw = dw;
    m->classes = classes, m->g_label_emb = m->d_embed = -1;
    struct gen_params *ps = &m->ps;
    const int64_t s = S / 4, features = 2 * dw * s * s;
    gen_linear_layer_add(ps, &m->g_fc, "G.fc", latent + classes, 2 * gw * s * s, 0, GEN_GAN_G);
    gen_batchnorm_layer_add(ps, &m->g_bn0, "G.bn0", 2 * gw, GEN_GAN_G);
    gen_conv_layer_add(ps, &m->g_deconv1, "G.deconv1", 2 * gw, gw, 4, 2, 1, 0, 1, GEN_GAN_G);
    gen_batchnorm_layer_add(ps, &m->g_bn1, "G.bn1", gw, GEN_GAN_G);
    gen_conv_layer_add(ps, &m->g_deconv2, "G.deconv2", gw, C, 4, 2, 1, 1, 1, GEN_GAN_G);
    gen_conv_layer_add(ps, &m->d_conv1, "D.conv1", C, dw, 4, 2, 1, 1, 0, GEN_GAN_D);
    gen_conv_layer_add(ps, &m->d_conv2, "D.conv2", dw, 2 * dw, 4, 2, 1, 0, 0, GEN_GAN_D);
    gen_batchnorm_layer_add(ps, &m->d_bn2, "D.bn2", 2 * dw, GEN_GAN_D);
    gen_linear_layer_add(ps, &m->d_fc, "D.fc", features, 1, 1, GEN_GAN_D);
    if (classes > 0) { /* after every unconditional tensor: those keep their order */
        m->g_label_emb = gen_params_add(ps, "G.label_emb.weight", GEN_PARAM_NODECAY, GEN_GAN_G, 2,
                                        (int64_t[]){classes, classes});
        m->d_embed = gen_params_add(ps, "D.embed.weight", GEN_PARAM_NODECAY, GEN_GAN_D, 2,
                                    (int64_t[]){classes, features});
    }
    enum gen_status st = gen_params_finalize(ps, with_ema);
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
}

/* Rows y (B) of the class table at index `table` of ps: (B, width). */
static struct gen_tensor *class_rows(struct gen_ctx *g, struct gen_gan *m, int table,
                                     const int32_t *y, int64_t B) {
    struct gen_tensor *w = gen_params_tensor(&m->ps, table);
    return gen_embedding(g, w, y, 2, (int64_t[]){B, w->shape[1]});
}

/* A BatchNorm of G whose running statistics move by `momentum` (1: the
 * batch's statistics replace them). */
static struct gen_tensor *g_batchnorm(struct gen_ctx *g, struct gen_params *ps,
                                      const struct gen_batchnorm_layer *l, struct gen_tensor *x,
                                      float momentum) {
    return gen_batchnorm(g, x, gen_params_tensor(ps, l->w), gen_params_tensor(ps, l->b),
                         gen_params_tensor(ps, l->mean), gen_params_tensor(ps, l->var), momentum,
                         BN_EPS);
}

static struct gen_tensor *generator(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *z,
                                    const int32_t *y, float momentum) {
    const int64_t B = z->shape[0], s = m->S / 4;
    struct gen_params *ps = &m->ps;
    GEN_ASSERT((y != NULL) == (m->classes > 0));
    if (y) z = gen_concat(g, z, class_rows(g, m, m->g_label_emb, y, B)); /* (B, latent + K) */
    struct gen_tensor *h = gen_linear_layer_fwd(g, ps, &m->g_fc, z);
    h = gen_reshape(g, h, 4, (int64_t[]){B, 2 * m->gw, s, s});
    h = gen_relu(g, g_batchnorm(g, ps, &m->g_bn0, h, momentum));
    h = gen_conv_layer_fwd(g, ps, &m->g_deconv1, h);
    h = gen_relu(g, g_batchnorm(g, ps, &m->g_bn1, h, momentum));
    return gen_tanh(g, gen_conv_layer_fwd(g, ps, &m->g_deconv2, h));
}

struct gen_tensor *gen_gan_generator(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *z,
                                     const int32_t *y) {
    return generator(g, m, z, y, BN_MOMENTUM);
}

struct gen_tensor *gen_gan_discriminator(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *x,
                                         const int32_t *y) {
    const int64_t B = x->shape[0];
    struct gen_params *ps = &m->ps;
    GEN_ASSERT((y != NULL) == (m->classes > 0));
    struct gen_tensor *h = gen_leaky_relu(g, gen_conv_layer_fwd(g, ps, &m->d_conv1, x), LEAK);
    h = gen_conv_layer_fwd(g, ps, &m->d_conv2, h);
    h = gen_leaky_relu(g, gen_batchnorm_layer_fwd(g, ps, &m->d_bn2, h), LEAK);
    const int64_t F = gen_numel(h) / B;
    struct gen_tensor *phi = gen_reshape(g, h, 2, (int64_t[]){B, F});
    struct gen_tensor *logit = gen_linear_layer_fwd(g, ps, &m->d_fc, phi);
    if (!y) return logit;
    /* + <embed[y], phi> row by row: the rows of embed[y] * phi (B, F), summed
     * by one product with ones (1, F) */
    struct gen_tensor *ones = gen_tensor_2d(g, 1, F);
    for (int64_t f = 0; f < F; f++) ones->data[f] = 1.0f;
    struct gen_tensor *prod = gen_mul(g, phi, class_rows(g, m, m->d_embed, y, B));
    return gen_add(g, logit, gen_linear(g, prod, ones, NULL));
}

/* ---- training ---- */

static double mean_sigmoid(const struct gen_tensor *logits) {
    const int64_t n = gen_numel(logits);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += 1.0 / (1.0 + exp(-(double)logits->data[i]));
    return n ? s / (double)n : 0;
}

struct gen_tensor *gen_gan_phase_loss(struct gen_ctx *g, struct gen_gan *m, struct gen_tensor *x,
                                      const int32_t *y, struct gen_tensor *z, int phase,
                                      double *fields) {
    if (phase == GEN_GAN_PHASE_G) {
        /* -log D(G(z)) against the updated D. D's part of the tape is done
         * with (its nodes hold gradients already): cut the tape back to G's
         * forward, so this backward walks D(G(z)) and G alone. */
        gen_tape_truncate(g, m->g_only);
        struct gen_tensor *g_loss =
            gen_bce_logits(g, gen_gan_discriminator(g, m, m->fake, y), m->ones, 1);
        fields[GEN_GAN_G_LOSS] = g_loss->data[0];
        return g_loss;
    }
    const int64_t B = x->shape[0];
    GEN_ASSERT(z->shape[0] == B);
    m->fake = gen_gan_generator(g, m, z, y);
    m->g_only = gen_tape_mark(g); /* the tape holds G's forward only */
    m->ones = gen_tensor_2d(g, B, 1);
    for (int64_t i = 0; i < B; i++) m->ones->data[i] = 1.0f;
    struct gen_tensor *zeros = gen_zeros(g, 2, (int64_t[]){B, 1});
    /* D: real -> 1, detached fake -> 0. */
    struct gen_tensor *detached = gen_tensor_wrap(g, m->fake->data, m->fake->ndim, m->fake->shape);
    struct gen_tensor *d_real = gen_gan_discriminator(g, m, x, y);
    struct gen_tensor *d_fake = gen_gan_discriminator(g, m, detached, y);
    struct gen_tensor *d_loss =
        gen_add(g, gen_bce_logits(g, d_real, m->ones, 1), gen_bce_logits(g, d_fake, zeros, 1));
    fields[GEN_GAN_D_LOSS] = d_loss->data[0];
    fields[GEN_GAN_D_X] = mean_sigmoid(d_real);
    fields[GEN_GAN_D_G_Z] = mean_sigmoid(d_fake);
    return d_loss;
}

static struct gen_tensor *gan_loss(void *model, struct gen_ctx *g, const struct gen_batch *b,
                                   int phase, double *fields) {
    struct gen_gan *m = model;
    struct gen_tensor *z = NULL;
    if (phase == GEN_GAN_PHASE_D) {
        z = gen_tensor_2d(g, b->n, m->latent); /* (N, latent) */
        gen_batch_fill_normal(b, GEN_GAN_RNG_NOISE, z->data, m->latent);
    }
    return gen_gan_phase_loss(g, m, b->x, m->classes ? b->labels : NULL, z, phase, fields);
}

/* The learning rate of one network: --lr-g / --lr-d, or --lr. */
static float lr_option(const struct gen_config *cfg, const struct gen_option *o) {
    const struct gen_config_entry *e = gen_opt_get(cfg, o);
    return (float)(e && e->present ? e->f : gen_opt_float(cfg, &gan_train_options[GAN_T_LR]));
}

static enum gen_status gan_create(void *model, const struct gen_config *cfg,
                                  const struct gen_data_shape *shape, uint64_t seed,
                                  struct gen_model_info *info) {
    struct gen_gan *m = model;
    const struct gen_config_entry *size = gen_opt_get(cfg, &gan_train_options[GAN_T_IMAGE_SIZE]);
    const int side = shape->h;
    if (!(size && size->present) && (shape->w != side || side < 8 || side > 256 || side % 4))
        return gen_error(GEN_ERR_FORMAT,
                         "images are %dx%d; the GAN takes square images whose side is a multiple "
                         "of 4 from 8 to 256 (28, 32, ...): give --image-size N to crop and resize "
                         "them",
                         shape->w, shape->h);
    if (shape->h != shape->w)
        return gen_error(GEN_ERR_USAGE, "--image-size: the GAN wants square images, got %dx%d",
                         shape->h, shape->w);
    int64_t classes;
    enum gen_status cst =
        gen_conditional_classes(gen_opt_flag(cfg, &gan_train_options[GAN_T_CONDITIONAL]), shape, &classes);
    if (cst != GEN_OK) return cst;
    enum gen_status st =
        gen_gan_build(m, shape->c, shape->h, gen_opt_int(cfg, &gan_train_options[GAN_T_LATENT]),
                      gen_opt_int(cfg, &gan_train_options[GAN_T_G_WIDTH]),
                      gen_opt_int(cfg, &gan_train_options[GAN_T_D_WIDTH]), classes,
                      gen_opt_float(cfg, &gan_train_options[GAN_T_EMA]) > 0, seed);
    if (st != GEN_OK) return st;
    const int64_t window = gen_opt_int(cfg, &gan_train_options[GAN_T_DIVERGENCE_WINDOW]);
    m->watch.window = window;
    m->watch.sub = window > 0 ? (window + GEN_GAN_WATCH_SUBS - 1) / GEN_GAN_WATCH_SUBS : 0;
    const struct gen_optim adam = {.kind = GEN_OPTIM_ADAM,
                                   .beta1 = (float)gen_opt_float(cfg, &gan_train_options[GAN_T_BETA1]),
                                   .beta2 = 0.999f,
                                   .eps = 1e-8f};
    *info = (struct gen_model_info){
        .ps = &m->ps,
        .rngs = m->rng,
        .n_rngs = GEN_GAN_N_RNG,
        .pixel_lo = -1.0f,
        .pixel_hi = 1.0f,
        .n_phases = 2,
        .phase = {[GEN_GAN_PHASE_D] = {.group = GEN_GAN_D, .optim = adam},
                  [GEN_GAN_PHASE_G] = {.group = GEN_GAN_G, .freeze_others = 1, .optim = adam}},
        .ema_group = GEN_GAN_G,
        .n_fields = GEN_GAN_N_FIELDS,
        .fields = {"d_loss", "g_loss", "d_x", "d_g_z"},
        .unit = "img",
        .classes = (int)classes,
    };
    info->phase[GEN_GAN_PHASE_D].optim.lr = lr_option(cfg, &gan_train_options[GAN_T_LR_D]);
    info->phase[GEN_GAN_PHASE_G].optim.lr = lr_option(cfg, &gan_train_options[GAN_T_LR_G]);
    return GEN_OK;
}

static void gan_destroy(void *model) {
    gen_gan_free(model);
}

/* ---- sampling ---- */

/* A conditional G's sampling statistics: G's BatchNorm running statistics
 * become the batch statistics (biased variance, as training normalises
 * with) of GEN_GAN_SAMPLE_BATCH fixed latents whose classes take turns. */
static void reference_statistics(struct gen_ctx *g, struct gen_gan *m) {
    enum { R = GEN_GAN_SAMPLE_BATCH };
    struct gen_rng r;
    gen_rng_seed(&r, REFERENCE_SEED);
    struct gen_tensor *z = gen_tensor_2d(g, R, m->latent);
    gen_rng_fill_normal(&r, z->data, gen_numel(z), 0.0f, 1.0f);
    int32_t y[R];
    for (int i = 0; i < R; i++) y[i] = (int32_t)(i % m->classes);
    g->training = 1;
    generator(g, m, z, y, 1.0f);
    const struct gen_batchnorm_layer *bn[] = {&m->g_bn0, &m->g_bn1};
    for (int k = 0; k < 2; k++) { /* running_var holds the unbiased variance */
        struct gen_tensor *var = gen_params_tensor(&m->ps, bn[k]->var);
        for (int64_t c = 0; c < bn[k]->c; c++) var->data[c] *= (float)(R - 1) / R;
    }
    gen_ctx_reset(g);
}

void gen_gan_sample(struct gen_ctx *g, struct gen_gan *m, const float *z, const int32_t *y,
                    int64_t n, float *out) {
    struct gen_params *ps = &m->ps;
    memcpy(m->bn_saved, ps->buffers, (size_t)ps->n_buffer * sizeof(float));
    const int training = g->training;
    gen_no_grad_begin(g);
    if (m->classes) reference_statistics(g, m);
    g->training = m->classes == 0; /* each chunk's own statistics, or the reference's */
    const int64_t img = m->C * m->S * m->S;
    for (int64_t i = 0; i < n; i += GEN_GAN_SAMPLE_BATCH) {
        const int64_t b = n - i < GEN_GAN_SAMPLE_BATCH ? n - i : GEN_GAN_SAMPLE_BATCH;
        struct gen_tensor *zt =
            gen_tensor_wrap(g, (float *)z + i * m->latent, 2, (int64_t[]){b, m->latent});
        const float *x = gen_gan_generator(g, m, zt, y ? y + i : NULL)->data;
        float *o = out + i * img;
        for (int64_t k = 0; k < b * img; k++) o[k] = 0.5f * (x[k] + 1.0f);
        gen_ctx_reset(g);
    }
    gen_no_grad_end(g);
    g->training = training;
    memcpy(ps->buffers, m->bn_saved, (size_t)ps->n_buffer * sizeof(float));
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

/* Rows of `cols` latents each walk from one random point to another;
 * ends (2 d) is scratch. */
static void interpolation_latents(struct gen_rng *r, int64_t n, int64_t d, int cols, float *z,
                                  float *ends) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t col = i % cols;
        if (col == 0) gen_rng_fill_normal(r, ends, 2 * d, 0.0f, 1.0f);
        const float t = cols > 1 ? (float)col / (float)(cols - 1) : 0.0f;
        slerp(ends, ends + d, d, t, z + i * d);
    }
}

/* a b elements of `size` bytes, or NULL (out of memory or overflow). */
static void *alloc_array(int64_t a, int64_t b, size_t size) {
    size_t bytes;
    if (!gen_mul_size((size_t)a, (size_t)b, &bytes) || !gen_mul_size(bytes, size, &bytes))
        return NULL;
    return gen_alloc(bytes);
}

/* The class of each of n images of a conditional model: those of the
 * request, else the classes in turn, image i (of a walk: row i / cols)
 * taking class i % K, so that each interpolation row walks within one class
 * (cols 0: plain samples). NULL for an unconditional model. */
static enum gen_status request_classes(const struct gen_gan *m, const struct gen_request *req,
                                       int cols, int32_t **out) {
    *out = NULL;
    if (m->classes == 0)
        return req->labels ? gen_error(GEN_ERR_USAGE, "--class: this model is unconditional "
                                                      "(train with --conditional)")
                           : GEN_OK;
    int32_t *y = alloc_array(req->n, 1, sizeof *y);
    if (!y) return gen_error(GEN_ERR_NOMEM, "out of memory for %lld classes", (long long)req->n);
    for (int64_t i = 0; i < req->n; i++) {
        y[i] = req->labels ? req->labels[i] : (int32_t)((cols ? i / cols : req->first + i) % m->classes);
        if (y[i] < 0 || y[i] >= m->classes) {
            gen_free(y);
            return gen_error(GEN_ERR_USAGE, "--class: class %d is not in 0..%lld", (int)y[i],
                             (long long)m->classes - 1);
        }
    }
    *out = y;
    return GEN_OK;
}

/* Walks (--interpolate) are whole rows; plain samples are not. */
static int gan_plain(const struct gen_config *opts) {
    return !gen_opt_flag_if(opts, &gan_sample_options[GAN_S_INTERPOLATE]);
}

static enum gen_status gan_generate(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                    const struct gen_request *req, struct gen_output *out) {
    struct gen_gan *m = model;
    const int64_t n = req->n;
    const struct gen_config_entry *walk =
        opts ? gen_opt_get(opts, &gan_sample_options[GAN_S_INTERPOLATE]) : NULL;
    int cols = 0; /* walks: the square grid's rows, each a walk */
    if (walk && walk->i)
        for (cols = 1; (int64_t)cols * cols < n;) cols++;
    int32_t *y; /* (n) classes, or NULL */
    enum gen_status st = request_classes(m, req, cols, &y);
    if (st != GEN_OK) return st;
    float *z = alloc_array(n, m->latent, sizeof(float)),
          *ends = alloc_array(2, m->latent, sizeof(float));
    out->images = alloc_array(n, m->C * m->S * m->S, sizeof(float));
    if (!z || !ends || !out->images) {
        gen_free(z), gen_free(ends), gen_free(y);
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld samples", (long long)n);
    }
    struct gen_rng rng;
    gen_rng_seed(&rng, req->seed);
    if (cols)
        interpolation_latents(&rng, n, m->latent, cols, z, ends);
    else /* image i: its own stream, the same in any part of a request */
        for (int64_t i = 0; i < n; i++) {
            gen_rng_seed_keyed(&rng, req->seed, GEN_GAN_RNG_NOISE, req->first + i);
            gen_rng_fill_normal(&rng, z + i * m->latent, m->latent, 0.0f, 1.0f);
        }
    out->cols = cols;
    gen_gan_sample(g, m, z, y, n, out->images);
    out->n_images = n;
    out->c = (int)m->C, out->h = (int)m->S, out->w = (int)m->S;
    gen_free(z), gen_free(ends), gen_free(y);
    return GEN_OK;
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

static int gan_watch(void *model, int64_t step, const double *fields, char *msg, size_t size) {
    struct gen_gan *m = model;
    return gen_gan_watch_step(&m->watch, step, fields[GEN_GAN_D_LOSS], fields[GEN_GAN_G_LOSS],
                              fields[GEN_GAN_D_X], fields[GEN_GAN_D_G_Z], msg, size);
}

/* ---- options ---- */

static const struct gen_option gan_train_options[GAN_T_COUNT + 1] = {
    [GAN_T_DATA] = GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    [GAN_T_EPOCHS] = GEN_INT_RUN_OPT("epochs", "5", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    [GAN_T_BATCH] = GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    [GAN_T_LR] = GEN_FLOAT_RUN_OPT("lr", "2e-4", 0, 10, "Adam learning rate (both networks)"),
    [GAN_T_LR_G] = GEN_FLOAT_RUN_OPT("lr-g", NULL, 0, 10, "G's learning rate (default: --lr)"),
    [GAN_T_LR_D] = GEN_FLOAT_RUN_OPT("lr-d", NULL, 0, 10, "D's learning rate (default: --lr)"),
    [GAN_T_BETA1] = GEN_FLOAT_OPT("beta1", "0.5", 0, 0.999999, "Adam beta1 (beta2 is 0.999)"),
    [GAN_T_LATENT] = GEN_INT_OPT("latent", "100", 1, 4096, "dimensions of z"),
    [GAN_T_G_WIDTH] = GEN_INT_OPT("g-width", "64", 1, 4096, "G's widths are 2N and N channels"),
    [GAN_T_D_WIDTH] = GEN_INT_OPT("d-width", "64", 1, 4096, "D's widths are N and 2N channels"),
    [GAN_T_IMAGE_SIZE] = GEN_INT_OPT("image-size", NULL, 8, 256, "image side in pixels, a multiple of 4 (28, 32, ...); images are cropped square and resized to it (default: the data's own side)"),
    [GAN_T_CHANNELS] = GEN_CHANNELS_OPTION,
    [GAN_T_EMA] = GEN_FLOAT_OPT("ema", "0", 0, 0.999999,
                  "keep an EMA of G's weights with this decay (warm-up (1+t)/(10+t) below it; "
                  "0: off); sampling uses it"),
    [GAN_T_DIVERGENCE_WINDOW] = GEN_INT_RUN_OPT("divergence-window", "500", 0, GEN_OPT_NO_MAX,
                    "warn when D's loss stays near 0 or G's climbs for N steps (0: never)"),
    [GAN_T_STOP_ON_DIVERGENCE] = GEN_FLAG_RUN_OPT("stop-on-divergence",
                     "stop (after saving a checkpoint) when training diverges"),
    [GAN_T_CONDITIONAL] = GEN_FLAG_OPT("conditional",
                     "class-conditional: a class embedding joins z at G's input, and D is a "
                     "projection discriminator"),
    [GAN_T_COUNT] = GEN_OPT_END,
};

static const struct gen_option gan_sample_options[GAN_S_COUNT + 3] = {
    [GAN_S_INTERPOLATE] = GEN_FLAG_OPT("interpolate", "each grid row walks between two random latent points"),
    [GAN_S_COUNT] = GEN_SAMPLE_CLASS_OPTIONS,
    [GAN_S_COUNT + 2] = GEN_OPT_END,
};

static const struct gen_option gan_eval_options[GAN_E_COUNT + 1] = {
    [GAN_E_CLASSIFIER] = GEN_EVAL_IMAGE_OPTIONS,
    [GAN_E_COUNT] = GEN_OPT_END,
};

const struct gen_family gen_family_gan = {
    .name = "gan",
    .summary = "DCGAN on 28x28 or 32x32 images; class-conditional with a projection discriminator",
    .data = GEN_DATA_IMAGES,
    .train_options = gan_train_options,
    .sample_options = gan_sample_options,
    .eval_options = gan_eval_options,
    .size = sizeof(struct gen_gan),
    .create = gan_create,
    .destroy = gan_destroy,
    .loss = gan_loss,
    .generate = gan_generate,
    .plain = gan_plain,
    .watch = gan_watch,
};
