/* vae.c - the variational autoencoder family (DESIGN.md section 3).
 *
 * MLP (the reference, Kingma & Welling's MNIST model as in PyTorch's
 * example, with the same parameter names fc1, fc21, fc22, fc3, fc4):
 *   h = relu(fc1 x); mu = fc21 h; logvar = fc22 h
 *   z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)
 *   logits = fc4 relu(fc3 z)
 *   loss per image = BCE-with-logits(logits, x) summed over pixels + KL(q(z|x) || N(0, I))
 * Conv (--arch conv), for C x H x W images with H, W divisible by 4:
 *   enc: conv1 Conv(C,32,4,2,1)-ReLU, conv2 Conv(32,64,4,2,1)-ReLU, flatten,
 *        fc21/fc22 Linear(64 H/4 W/4, D)
 *   dec: fc3 Linear(D, 64 H/4 W/4)-ReLU, reshape, deconv1 ConvT(64,32,4,2,1)-ReLU,
 *        deconv2 ConvT(32,C,4,2,1) -> logits
 * Conditional (--conditional, Sohn et al. 2015's CVAE), for K classes: the
 * one-hot class y (K) is appended to the encoder's input and to the
 * decoder's, q(z|x,y) and p(x|z,y): MLP fc1 takes [x, y] (D + K), conv
 * fc21/fc22 take [flatten(conv2), y]; fc3 takes [z, y] (latent + K) in both.
 * The prior stays N(0, I). Same parameter names; only those widths change.
 * Pixels are scaled to [0, 1]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/detect.h"
#include "gen/family.h"
#include "gen/metrics.h"
#include "models/vae.h"

/* The family's options, by their index in its tables (read with gen_opt_*). */
enum { VAE_T_DATA, VAE_T_EPOCHS, VAE_T_BATCH, VAE_T_LR, VAE_T_LATENT, VAE_T_HIDDEN, VAE_T_ARCH,
    VAE_T_CONDITIONAL, VAE_T_CHANNELS, VAE_T_IMAGE_SIZE, VAE_T_COUNT };
enum { VAE_S_RECONSTRUCT, VAE_S_INTERPOLATE, VAE_S_HEATMAP, VAE_S_COUNT };
enum { VAE_E_IW, VAE_E_PER_SAMPLE, VAE_E_CLASSIFIER, VAE_E_NUM, VAE_E_SAMPLES, VAE_E_COUNT };
static const struct gen_option vae_train_options[VAE_T_COUNT + 1];
static const struct gen_option vae_sample_options[VAE_S_COUNT + 3];
static const struct gen_option vae_eval_options[VAE_E_COUNT + 1];


/* ---- the network ---- */

enum gen_status gen_vae_build(struct gen_vae *m, int arch, int64_t C, int64_t H, int64_t W,
                              int64_t latent, int64_t hidden, int64_t classes, int with_ema,
                              uint64_t seed) {
    const int64_t K = classes;
    m->arch = arch;
    m->C = C, m->H = H, m->W = W, m->D = C * H * W;
    m->latent = latent, m->hidden = hidden, m->classes = K;
    gen_params_init(&m->ps);
    struct gen_params *ps = &m->ps;
    if (arch == GEN_VAE_MLP) {
        gen_linear_layer_add(ps, &m->fc1, "fc1", m->D + K, hidden, 1, 0);
        gen_linear_layer_add(ps, &m->fc21, "fc21", hidden, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc22, "fc22", hidden, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc3, "fc3", latent + K, hidden, 1, 0);
        gen_linear_layer_add(ps, &m->fc4, "fc4", hidden, m->D, 1, 0);
    } else {
        if (H % 4 || W % 4)
            return gen_error(GEN_ERR_FORMAT, "--arch conv needs image sides divisible by 4, got %lldx%lld (--image-size N crops and resizes them)",
                             (long long)H, (long long)W);
        int64_t flat = 64 * (H / 4) * (W / 4);
        gen_conv_layer_add(ps, &m->conv1, "conv1", C, 32, 4, 2, 1, 1, 0, 0);
        gen_conv_layer_add(ps, &m->conv2, "conv2", 32, 64, 4, 2, 1, 1, 0, 0);
        gen_linear_layer_add(ps, &m->fc21, "fc21", flat + K, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc22, "fc22", flat + K, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc3, "fc3", latent + K, flat, 1, 0);
        gen_conv_layer_add(ps, &m->deconv1, "deconv1", 64, 32, 4, 2, 1, 1, 1, 0);
        gen_conv_layer_add(ps, &m->deconv2, "deconv2", 32, C, 4, 2, 1, 1, 1, 0);
    }
    enum gen_status st = gen_params_finalize(ps, with_ema);
    if (st != GEN_OK) return st;
    for (int i = 0; i < GEN_VAE_N_RNG; i++) gen_rng_seed(&m->rng[i], seed * GEN_VAE_N_RNG + (uint64_t)i + 1);
    struct gen_rng *r = &m->rng[GEN_VAE_RNG_INIT];
    if (arch == GEN_VAE_MLP) {
        gen_linear_layer_init(ps, &m->fc1, r);
    } else {
        gen_conv_layer_init(ps, &m->conv1, r);
        gen_conv_layer_init(ps, &m->conv2, r);
        gen_conv_layer_init(ps, &m->deconv1, r);
        gen_conv_layer_init(ps, &m->deconv2, r);
    }
    gen_linear_layer_init(ps, &m->fc21, r);
    gen_linear_layer_init(ps, &m->fc22, r);
    gen_linear_layer_init(ps, &m->fc3, r);
    if (arch == GEN_VAE_MLP) gen_linear_layer_init(ps, &m->fc4, r);
    if (with_ema) gen_ema_copy_in(ps);
    return GEN_OK;
}

/* a (B, F) followed by the one-hot of the classes y (B): (B, F + K); a
 * itself when the model is unconditional. */
static struct gen_tensor *with_class(struct gen_ctx *g, const struct gen_vae *m,
                                     struct gen_tensor *a, const int32_t *y) {
    if (m->classes == 0) return a;
    const int64_t B = a->shape[0], K = m->classes;
    GEN_ASSERT(y != NULL);
    struct gen_tensor *onehot = gen_zeros(g, 2, (int64_t[]){B, K}); /* (B, K) */
    for (int64_t i = 0; i < B; i++) {
        GEN_ASSERT(y[i] >= 0 && y[i] < K);
        onehot->data[i * K + y[i]] = 1.0f;
    }
    return gen_concat(g, a, onehot);
}

/* x (B, C, H, W) of classes y -> mu, logvar (B, latent) */
void vae_encode(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, const int32_t *y,
                   struct gen_tensor **mu, struct gen_tensor **logvar) {
    int64_t B = x->shape[0];
    struct gen_tensor *h;
    if (m->arch == GEN_VAE_MLP) {
        h = with_class(g, m, gen_reshape(g, x, 2, (int64_t[]){B, m->D}), y);
        h = gen_relu(g, gen_linear_layer_fwd(g, &m->ps, &m->fc1, h));
    } else {
        h = gen_relu(g, gen_conv_layer_fwd(g, &m->ps, &m->conv1, x));
        h = gen_relu(g, gen_conv_layer_fwd(g, &m->ps, &m->conv2, h));
        h = with_class(g, m, gen_reshape(g, h, 2, (int64_t[]){B, gen_numel(h) / B}), y);
    }
    *mu = gen_linear_layer_fwd(g, &m->ps, &m->fc21, h);
    *logvar = gen_linear_layer_fwd(g, &m->ps, &m->fc22, h);
}

/* z (B, latent) of classes y -> logits (B, C, H, W) */
struct gen_tensor *vae_decode(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *z,
                                 const int32_t *y) {
    int64_t B = z->shape[0];
    struct gen_tensor *h = gen_linear_layer_fwd(g, &m->ps, &m->fc3, with_class(g, m, z, y));
    h = gen_relu(g, h);
    if (m->arch == GEN_VAE_MLP) {
        h = gen_linear_layer_fwd(g, &m->ps, &m->fc4, h);
    } else {
        h = gen_reshape(g, h, 4, (int64_t[]){B, 64, m->H / 4, m->W / 4});
        h = gen_relu(g, gen_conv_layer_fwd(g, &m->ps, &m->deconv1, h));
        h = gen_conv_layer_fwd(g, &m->ps, &m->deconv2, h);
    }
    return gen_reshape(g, h, 4, (int64_t[]){B, m->C, m->H, m->W});
}

/* z = mu + exp(logvar / 2) * eps */
static struct gen_tensor *reparameterize(struct gen_ctx *g, struct gen_tensor *mu,
                                         struct gen_tensor *logvar, struct gen_tensor *eps) {
    struct gen_tensor *std = gen_exp(g, gen_scale(g, logvar, 0.5f));
    return gen_add(g, mu, gen_mul(g, std, eps));
}

void gen_vae_neg_elbo(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, const int32_t *y,
                      struct gen_tensor *eps, struct gen_tensor **bce, struct gen_tensor **kl) {
    struct gen_tensor *mu, *logvar;
    vae_encode(g, m, x, y, &mu, &logvar);
    struct gen_tensor *logits = vae_decode(g, m, reparameterize(g, mu, logvar, eps), y);
    *bce = gen_bce_logits(g, logits, x, 0);
    *kl = gen_gaussian_kl(g, mu, logvar);
}

/* The same with eps ~ N(0, I) drawn from rng. */
static void neg_elbo(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, const int32_t *y,
                     struct gen_rng *rng, struct gen_tensor **bce, struct gen_tensor **kl) {
    struct gen_tensor *eps = gen_tensor_2d(g, x->shape[0], m->latent);
    gen_rng_fill_normal(rng, eps->data, gen_numel(eps), 0.0f, 1.0f);
    gen_vae_neg_elbo(g, m, x, y, eps, bce, kl);
}

/* Images idx[0..count) of a set as (count, C, H, W) in [0, 1]. */
struct gen_tensor *vae_batch_images(struct gen_ctx *g, struct gen_vae *m,
                                       const struct gen_image_set *set, const int32_t *idx,
                                       int count) {
    struct gen_tensor *x = gen_tensor_4d(g, count, m->C, m->H, m->W);
    gen_images_batch(set, idx, count, x->data, 0.0f, 1.0f);
    return x;
}

/* Images first..first+count-1 of a set. */
struct gen_tensor *vae_batch_range(struct gen_ctx *g, struct gen_vae *m,
                                      const struct gen_image_set *set, int64_t first, int count) {
    int32_t *idx = gen_arena_alloc(&g->arena, (size_t)count * sizeof *idx);
    for (int k = 0; k < count; k++) idx[k] = (int32_t)(first + k);
    return vae_batch_images(g, m, set, idx, count);
}

/* The classes of images first.. of a set for a conditional model; NULL
 * for an unconditional one. */
const int32_t *vae_range_labels(const struct gen_vae *m, const struct gen_image_set *set,
                                   int64_t first) {
    return m->classes ? set->labels + first : NULL;
}

/* Held-out images a conditional model can take: every label in [0, K). */
static enum gen_status check_labels(const struct gen_vae *m, const struct gen_image_set *set) {
    for (int64_t i = 0; m->classes && i < set->n; i++)
        if (set->labels[i] < 0 || set->labels[i] >= m->classes)
            return gen_error(GEN_ERR_FORMAT,
                             "image %lld has class %d; the model knows %lld classes (train "
                             "and test on the same data)",
                             (long long)i, (int)set->labels[i], (long long)m->classes);
    return GEN_OK;
}

/* ---- verbs ---- */

/* The loss per image, (bce + kl) / B; fields: loss, bce, kl per image. */
struct gen_tensor *gen_vae_loss(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x,
                                const int32_t *y, struct gen_tensor *eps, double *fields) {
    int64_t B = x->shape[0];
    struct gen_tensor *bce, *kl;
    gen_vae_neg_elbo(g, m, x, y, eps, &bce, &kl);
    struct gen_tensor *loss = gen_scale(g, gen_add(g, bce, kl), 1.0f / (float)B);
    fields[0] = loss->data[0];
    fields[1] = bce->data[0] / (double)B;
    fields[2] = kl->data[0] / (double)B;
    return loss;
}

static struct gen_tensor *vae_loss(void *model, struct gen_ctx *g, const struct gen_batch *b,
                                   int phase, double *fields) {
    (void)phase;
    const struct gen_vae *m = model;
    struct gen_tensor *eps = gen_tensor_2d(g, b->n, m->latent); /* (N, latent) */
    gen_batch_fill_normal(b, GEN_VAE_RNG_NOISE, eps->data, m->latent);
    return gen_vae_loss(g, model, b->x, m->classes ? b->labels : NULL, eps, fields);
}

static enum gen_status vae_create(void *model, const struct gen_config *cfg,
                                  const struct gen_data_shape *shape, uint64_t seed,
                                  struct gen_model_info *info) {
    struct gen_vae *m = model;
    const char *arch = gen_opt_str(cfg, &vae_train_options[VAE_T_ARCH]);
    int64_t classes;
    enum gen_status st =
        gen_conditional_classes(gen_opt_flag(cfg, &vae_train_options[VAE_T_CONDITIONAL]), shape, &classes);
    if (st != GEN_OK) return st;
    st = gen_vae_build(
        m, arch && !strcmp(arch, "conv") ? GEN_VAE_CONV : GEN_VAE_MLP, shape->c, shape->h, shape->w,
        gen_opt_int(cfg, &vae_train_options[VAE_T_LATENT]),
        gen_opt_int(cfg, &vae_train_options[VAE_T_HIDDEN]), classes,
        gen_opt_float(cfg, &gen_train_options[GEN_TRAIN_EMA]) > 0, seed);
    if (st != GEN_OK) return st;
    *info = (struct gen_model_info){
        .ps = &m->ps,
        .rngs = m->rng,
        .n_rngs = GEN_VAE_N_RNG,
        .pixel_lo = 0.0f,
        .pixel_hi = 1.0f,
        .n_phases = 1,
        .phase = {{.group = -1,
                   .optim = {.kind = GEN_OPTIM_ADAM,
                             .lr = (float)gen_opt_float(cfg, &vae_train_options[VAE_T_LR]),
                             .beta1 = 0.9f,
                             .beta2 = 0.999f,
                             .eps = 1e-8f}}},
        .ema_group = -1,
        .n_fields = 3,
        .fields = {"loss", "bce", "kl"},
        .unit = "img",
        .classes = (int)m->classes,
    };
    return GEN_OK;
}

static void vae_destroy(void *model) { gen_params_free(&((struct gen_vae *)model)->ps); }

#define EVAL_SEED 20240601u
#define EVAL_BATCH 500

/* Mean negative ELBO per test image (nats), with a fixed noise seed so
 * numbers from different epochs and runs are comparable. */
double gen_vae_test_loss(struct gen_ctx *g, struct gen_vae *m, const struct gen_image_set *set) {
    struct gen_rng rng;
    gen_rng_seed(&rng, EVAL_SEED);
    double total = 0;
    for (int64_t i = 0; i < set->n; i += EVAL_BATCH) {
        int count = (int)(set->n - i < EVAL_BATCH ? set->n - i : EVAL_BATCH);
        struct gen_tensor *bce, *kl;
        neg_elbo(g, m, vae_batch_range(g, m, set, i, count), vae_range_labels(m, set, i), &rng, &bce, &kl);
        total += (double)bce->data[0] + (double)kl->data[0];
        gen_ctx_reset(g);
    }
    return total / (double)set->n;
}

struct gen_tensor *gen_vae_generate(struct gen_ctx *g, struct gen_vae *m, int n, const int32_t *y,
                                    uint64_t seed, int64_t first) {
    struct gen_tensor *z = gen_tensor_2d(g, n, m->latent); /* (n, latent) */
    for (int i = 0; i < n; i++) {
        struct gen_rng r;
        gen_rng_seed_keyed(&r, seed, GEN_VAE_RNG_NOISE, first + i);
        gen_rng_fill_normal(&r, z->data + (int64_t)i * m->latent, m->latent, 0.0f, 1.0f);
    }
    return gen_sigmoid(g, vae_decode(g, m, z, y));
}

/* (n) classes: each of y[0..count) repeated n / count times in turn
 * (count divides n): a decoder batch of several rows per image. */
const int32_t *vae_repeat_labels(struct gen_ctx *g, const int32_t *y, int64_t count, int64_t n) {
    if (!y) return NULL;
    int32_t *r = gen_arena_alloc(&g->arena, (size_t)n * sizeof *r);
    for (int64_t i = 0; i < n; i++) r[i] = y[i / (n / count)];
    return r;
}

static int vae_needs_inputs(const struct gen_config *opts) {
    return gen_opt_flag_if(opts, &vae_sample_options[VAE_S_RECONSTRUCT]) ||
           gen_opt_str_if(opts, &vae_sample_options[VAE_S_INTERPOLATE]);
}

/* Reconstructions and walks work on test images; samples are plain. */
static int vae_plain(const struct gen_config *opts) { return !vae_needs_inputs(opts); }

/* The classes (n) of the images req asks for: its labels, or for a
 * conditional model asked for none, the classes in turn (image i: i % K);
 * NULL for an unconditional model. */
static const int32_t *sample_labels(struct gen_ctx *g, const struct gen_vae *m,
                                    const struct gen_request *req) {
    if (req->labels || m->classes == 0) return req->labels;
    int32_t *y = gen_arena_alloc(&g->arena, (size_t)req->n * sizeof *y);
    for (int64_t i = 0; i < req->n; i++) y[i] = (int32_t)((req->first + i) % m->classes);
    return y;
}

static enum gen_status vae_generate(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                    const struct gen_request *req, struct gen_output *out) {
    struct gen_vae *m = model;
    const int n = (int)req->n;
    const struct gen_image_set *set = req->inputs ? req->inputs->images : NULL;
    /* sample's modes (eval and snapshots generate with other configs) */
    const char *walk = gen_opt_str_if(opts, &vae_sample_options[VAE_S_INTERPOLATE]);
    const int inputs_mode = walk || gen_opt_flag_if(opts, &vae_sample_options[VAE_S_RECONSTRUCT]);
    const int heat = gen_opt_flag_if(opts, &vae_sample_options[VAE_S_HEATMAP]);
    struct gen_tensor *images;
    out->cols = 0;
    if (req->labels && m->classes == 0)
        return gen_error(GEN_ERR_USAGE,
                         "--class: this model is unconditional (train with --conditional)");
    if (req->labels && inputs_mode)
        return gen_error(GEN_ERR_USAGE,
                         "--class: not with --reconstruct or --interpolate (they use the classes "
                         "of their input images)");
    if (heat && (walk || !inputs_mode))
        return gen_error(GEN_ERR_USAGE, "--heatmap: draws the error of --reconstruct; give --reconstruct");
    enum gen_status st = inputs_mode ? check_labels(m, set) : GEN_OK;
    if (st != GEN_OK) return st;
    if (inputs_mode) {
        st = vae_sample_inputs(g, m, set, walk, heat, n, &images, &out->cols);
        if (st != GEN_OK) return st;
    } else {
        images = gen_vae_generate(g, m, n, sample_labels(g, m, req), req->seed, req->first);
    }
    const size_t bytes = (size_t)gen_numel(images) * sizeof(float);
    if (!(out->images = gen_alloc(bytes))) return gen_error(GEN_ERR_NOMEM, "out of memory for the images");
    memcpy(out->images, images->data, bytes);
    out->n_images = images->shape[0];
    out->c = (int)images->shape[1], out->h = (int)m->H, out->w = (int)m->W;
    return GEN_OK;
}

/* Per-image scores of x (B, C, H, W): the negative ELBO with one noise
 * sample, and (K > 0) the negative importance-weighted bound with K samples
 * (Burda et al. 2016): -log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)), z_k ~ q.
 * It is never above the ELBO's value and tightens towards -log p(x) as K grows.
 * A conditional model scores x given its classes (B): bounds on
 * -log p(x|y), with p(x|z,y) and q(z|x,y) in the sum and the same prior. */
static void score_batch(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x,
                        const int32_t *labels, int K, struct gen_rng *rng, double *elbo,
                        double *iw) {
    const int64_t B = x->shape[0], L = m->latent, D = m->D;
    const double log2pi = log(2.0 * M_PI);
    struct gen_tensor *mu, *logvar;
    vae_encode(g, m, x, labels, &mu, &logvar);
    int S = 1 + (K > 0 ? K : 0); /* sample 0 scores the ELBO */
    /* z (B S, L): for image b, sample s at row b S + s; eps kept for log q. */
    struct gen_tensor *eps = gen_tensor_2d(g, B * S, L), *z = gen_tensor_2d(g, B * S, L);
    gen_rng_fill_normal(rng, eps->data, gen_numel(eps), 0.0f, 1.0f);
    for (int64_t b = 0; b < B; b++)
        for (int s = 0; s < S; s++)
            for (int64_t j = 0; j < L; j++) {
                int64_t r = (b * S + s) * L + j;
                float sd = expf(0.5f * logvar->data[b * L + j]);
                z->data[r] = mu->data[b * L + j] + sd * eps->data[r];
            }
    /* (B S, C, H, W) */
    struct gen_tensor *logits = vae_decode(g, m, z, vae_repeat_labels(g, labels, B, B * S));
    for (int64_t b = 0; b < B; b++) {
        const float *t = x->data + b * D;
        double kl = 0, lw_max = -INFINITY;
        double *lw = gen_arena_alloc(&g->arena, (size_t)S * sizeof *lw);
        for (int64_t j = 0; j < L; j++) {
            double mj = mu->data[b * L + j], lv = logvar->data[b * L + j];
            kl += -0.5 * (1 + lv - mj * mj - exp(lv));
        }
        for (int s = 0; s < S; s++) {
            const float *y = logits->data + (b * S + s) * D;
            double bce = 0; /* -log p(x | z) for Bernoulli pixels with soft targets */
            for (int64_t i = 0; i < D; i++) {
                double v = y[i];
                bce += (v > 0 ? v : 0) - v * t[i] + log1p(exp(-fabs(v)));
            }
            if (s == 0) {
                elbo[b] = bce + kl;
                continue;
            }
            double log_pz = 0, log_qz = 0;
            for (int64_t j = 0; j < L; j++) {
                double zj = z->data[(b * S + s) * L + j], e = eps->data[(b * S + s) * L + j];
                log_pz += -0.5 * (zj * zj + log2pi);
                log_qz += -0.5 * (e * e + log2pi) - 0.5 * logvar->data[b * L + j];
            }
            lw[s] = -bce + log_pz - log_qz;
            if (lw[s] > lw_max) lw_max = lw[s];
        }
        if (K > 0) {
            double sum = 0;
            for (int s = 1; s < S; s++) sum += exp(lw[s] - lw_max);
            iw[b] = -(lw_max + log(sum / K));
        }
    }
}

static enum gen_status vae_evaluate(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                    const struct gen_dataset *data, struct gen_metrics *out) {
    struct gen_vae *m = model;
    const struct gen_image_set *set = data->images;
    enum gen_status st = check_labels(m, set);
    if (st != GEN_OK) return st;
    if (!opts) {
        out->f[out->n++] = (struct gen_field){"test_loss", gen_vae_test_loss(g, m, set)};
        return GEN_OK;
    }
    const int K = (int)gen_opt_int(opts, &vae_eval_options[VAE_E_IW]);
    const int64_t n = set->n;
    double *scores = gen_calloc((size_t)n * 2, sizeof *scores);
    double *elbo = gen_calloc((size_t)n, sizeof *elbo), *iw = gen_calloc((size_t)n, sizeof *iw);
    if (!scores || !elbo || !iw) {
        gen_free(scores), gen_free(elbo), gen_free(iw);
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld scores", (long long)n);
    }
    struct gen_rng rng;
    gen_rng_seed(&rng, (uint64_t)gen_opt_int(opts, &gen_train_options[GEN_TRAIN_SEED]));
    const int chunk = K > 0 ? 50 : 500;
    double sum_elbo = 0, sum_iw = 0;
    for (int64_t i = 0; i < n; i += chunk) {
        int count = (int)(n - i < chunk ? n - i : chunk);
        score_batch(g, m, vae_batch_range(g, m, set, i, count), vae_range_labels(m, set, i), K, &rng,
                    elbo + i, iw + i);
        gen_ctx_reset(g);
    }
    for (int64_t i = 0; i < n; i++) {
        sum_elbo += elbo[i], sum_iw += iw[i];
        scores[2 * i] = elbo[i], scores[2 * i + 1] = iw[i];
    }
    gen_free(elbo), gen_free(iw);
    out->f[out->n++] = (struct gen_field){"test_loss", sum_elbo / (double)n};
    if (K > 0) out->f[out->n++] = (struct gen_field){"neg_iw_bound", sum_iw / (double)n};
    out->scores = scores;
    out->n_scores = K > 0 ? 2 : 1;
    out->score_names[0] = "neg_elbo";
    out->score_names[1] = "neg_iw_bound";
    out->n_examples = n;
    out->nll_scores = K > 0 ? 3u : 1u; /* both bound -log p(x) in nats */
    if (K == 0)
        for (int64_t i = 0; i < n; i++) scores[i] = scores[2 * i];
    return GEN_OK;
}

/* The Bernoulli likelihood's own floor for image x (D pixels in [0, 1]):
 * sum_i H(x_i), the binary entropy of each pixel value, the least
 * -log p(x|z) any decoder reaches (at logits = logit(x_i)). Grey pixels
 * raise it, so it is the image's complexity in the model's own units. */
static double bernoulli_floor(const uint8_t *px, int64_t D) {
    double h = 0;
    for (int64_t i = 0; i < D; i++) {
        const double x = px[i] / 255.0;
        if (x > 0 && x < 1) h -= x * log(x) + (1 - x) * log1p(-x);
    }
    return h;
}

/* The scores of gen eval --ood: those of evaluate, and neg_elbo_excess,
 * the negative ELBO minus the Bernoulli floor (the KL terms of the
 * reconstruction and of the latent code: how far the model is from
 * explaining the image, whatever its complexity). */
static enum gen_status vae_score(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                 const struct gen_dataset *data, struct gen_metrics *out) {
    const struct gen_vae *m = model;
    enum gen_status st = vae_evaluate(model, g, opts, data, out);
    if (st != GEN_OK || !out->scores) return st;
    const int k = out->n_scores, k1 = k + 1;
    const int64_t n = out->n_examples;
    double *s = gen_calloc((size_t)(n * k1), sizeof *s);
    if (!s) return gen_error(GEN_ERR_NOMEM, "out of memory for %lld scores", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        memcpy(s + i * k1, out->scores + i * k, (size_t)k * sizeof *s);
        s[i * k1 + k] = out->scores[i * k] - bernoulli_floor(data->images->pixels + i * m->D, m->D);
    }
    gen_free(out->scores);
    out->scores = s;
    out->score_names[k] = "neg_elbo_excess";
    out->n_scores = k1;
    return GEN_OK;
}

/* ---- options ---- */

static const struct gen_option vae_train_options[VAE_T_COUNT + 1] = {
    [VAE_T_DATA] = GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    [VAE_T_EPOCHS] = GEN_INT_RUN_OPT("epochs", "10", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    [VAE_T_BATCH] = GEN_INT_OPT("batch", "128", 1, 65536, "batch size"),
    [VAE_T_LR] = GEN_FLOAT_RUN_OPT("lr", "1e-3", 0, 10, "Adam learning rate"),
    [VAE_T_LATENT] = GEN_INT_OPT("latent", "20", 1, 4096, "latent dimensions"),
    [VAE_T_HIDDEN] = GEN_INT_OPT("hidden", "400", 1, 65536, "hidden units of the MLP"),
    [VAE_T_ARCH] = GEN_CHOICE_OPT("arch", "mlp", "mlp|conv", "encoder/decoder architecture"),
    [VAE_T_CONDITIONAL] = GEN_FLAG_OPT("conditional",
                     "class-conditional VAE: the one-hot class into the encoder and the decoder "
                     "(sample --class)"),
    [VAE_T_CHANNELS] = GEN_CHANNELS_OPTION,
    [VAE_T_IMAGE_SIZE] = GEN_IMAGE_SIZE_OPTION,
    [VAE_T_COUNT] = GEN_OPT_END,
};

static const struct gen_option vae_sample_options[VAE_S_COUNT + 3] = {
    [VAE_S_RECONSTRUCT] = GEN_FLAG_OPT("reconstruct", "test images beside their reconstructions"),
    [VAE_S_INTERPOLATE] = GEN_STR_OPT("interpolate", NULL, "A,B: walk the latent space from test image A to B in -n steps"),
    [VAE_S_HEATMAP] = GEN_FLAG_OPT("heatmap",
                 "with --reconstruct: rows of input | reconstruction | |input - reconstruction| "
                 "as a heat map (the anomaly map; dark 0 to bright 1)"),
    [VAE_S_COUNT] = GEN_SAMPLE_CLASS_OPTIONS,
    [VAE_S_COUNT + 2] = GEN_OPT_END,
};

static const struct gen_option vae_eval_options[VAE_E_COUNT + 1] = {
    [VAE_E_IW] = GEN_INT_OPT("iw", "100", 0, 100000, "samples of the importance-weighted bound (0: ELBO only)"),
    [VAE_E_PER_SAMPLE] = GEN_STR_OPT("per-sample", NULL, "write each test image's scores to this CSV file"),
    [VAE_E_CLASSIFIER] = GEN_EVAL_IMAGE_OPTIONS,
    [VAE_E_COUNT] = GEN_OPT_END,
};

const struct gen_family gen_family_vae = {
    .name = "vae",
    .summary = "variational autoencoder (MLP or conv), ELBO on images; class-conditional",
    .data = GEN_DATA_IMAGES,
    .train_options = vae_train_options,
    .sample_options = vae_sample_options,
    .eval_options = vae_eval_options,
    .size = sizeof(struct gen_vae),
    .create = vae_create,
    .destroy = vae_destroy,
    .loss = vae_loss,
    .generate = vae_generate,
    .needs_inputs = vae_needs_inputs,
    .plain = vae_plain,
    .evaluate = vae_evaluate,
    .score = vae_score,
};
