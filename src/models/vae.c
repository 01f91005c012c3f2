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
 * Pixels are scaled to [0, 1]. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/metrics.h"
#include "gen/trainer.h"
#include "models/vae.h"

/* ---- the network ---- */

enum gen_status gen_vae_build(struct gen_vae *m, int arch, int64_t C, int64_t H, int64_t W,
                                 int64_t latent, int64_t hidden, uint64_t seed) {
    m->arch = arch;
    m->C = C, m->H = H, m->W = W, m->D = C * H * W;
    m->latent = latent, m->hidden = hidden;
    gen_params_init(&m->ps);
    struct gen_params *ps = &m->ps;
    if (arch == GEN_VAE_MLP) {
        gen_linear_layer_add(ps, &m->fc1, "fc1", m->D, hidden, 1, 0);
        gen_linear_layer_add(ps, &m->fc21, "fc21", hidden, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc22, "fc22", hidden, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc3, "fc3", latent, hidden, 1, 0);
        gen_linear_layer_add(ps, &m->fc4, "fc4", hidden, m->D, 1, 0);
    } else {
        if (H % 4 || W % 4)
            return gen_error(GEN_ERR_USAGE, "--arch conv needs image sides divisible by 4, got %lldx%lld",
                             (long long)H, (long long)W);
        int64_t flat = 64 * (H / 4) * (W / 4);
        gen_conv_layer_add(ps, &m->conv1, "conv1", C, 32, 4, 2, 1, 1, 0, 0);
        gen_conv_layer_add(ps, &m->conv2, "conv2", 32, 64, 4, 2, 1, 1, 0, 0);
        gen_linear_layer_add(ps, &m->fc21, "fc21", flat, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc22, "fc22", flat, latent, 1, 0);
        gen_linear_layer_add(ps, &m->fc3, "fc3", latent, flat, 1, 0);
        gen_conv_layer_add(ps, &m->deconv1, "deconv1", 64, 32, 4, 2, 1, 1, 1, 0);
        gen_conv_layer_add(ps, &m->deconv2, "deconv2", 32, C, 4, 2, 1, 1, 1, 0);
    }
    enum gen_status st = gen_params_finalize(ps, 0);
    if (st != GEN_OK) return st;
    m->lr = 1e-3f;
    m->opt = (struct gen_optim){GEN_OPTIM_ADAM, m->lr, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f};
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
    return GEN_OK;
}

/* x (B, C, H, W) -> mu, logvar (B, latent) */
static void encode(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x,
                   struct gen_tensor **mu, struct gen_tensor **logvar) {
    int64_t B = x->shape[0];
    struct gen_tensor *h;
    if (m->arch == GEN_VAE_MLP) {
        h = gen_reshape(g, x, 2, (int64_t[]){B, m->D});
        h = gen_relu(g, gen_linear_layer_fwd(g, &m->ps, &m->fc1, h));
    } else {
        h = gen_relu(g, gen_conv_layer_fwd(g, &m->ps, &m->conv1, x));
        h = gen_relu(g, gen_conv_layer_fwd(g, &m->ps, &m->conv2, h));
        h = gen_reshape(g, h, 2, (int64_t[]){B, gen_numel(h) / B});
    }
    *mu = gen_linear_layer_fwd(g, &m->ps, &m->fc21, h);
    *logvar = gen_linear_layer_fwd(g, &m->ps, &m->fc22, h);
}

/* z (B, latent) -> logits (B, C, H, W) */
static struct gen_tensor *decode(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *z) {
    int64_t B = z->shape[0];
    struct gen_tensor *h = gen_relu(g, gen_linear_layer_fwd(g, &m->ps, &m->fc3, z));
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

void gen_vae_neg_elbo(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x,
                      struct gen_tensor *eps, struct gen_tensor **bce, struct gen_tensor **kl) {
    struct gen_tensor *mu, *logvar;
    encode(g, m, x, &mu, &logvar);
    struct gen_tensor *logits = decode(g, m, reparameterize(g, mu, logvar, eps));
    *bce = gen_bce_logits(g, logits, x, 0);
    *kl = gen_gaussian_kl(g, mu, logvar);
}

/* The same with eps ~ N(0, I) drawn from rng. */
static void neg_elbo(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, struct gen_rng *rng,
                     struct gen_tensor **bce, struct gen_tensor **kl) {
    struct gen_tensor *eps = gen_tensor_2d(g, x->shape[0], m->latent);
    gen_rng_fill_normal(rng, eps->data, gen_numel(eps), 0.0f, 1.0f);
    gen_vae_neg_elbo(g, m, x, eps, bce, kl);
}

static struct gen_tensor *batch_images(struct gen_ctx *g, struct gen_vae *m,
                                       const struct gen_image_set *set, const int32_t *idx,
                                       int count) {
    struct gen_tensor *x = gen_tensor_4d(g, count, m->C, m->H, m->W);
    gen_images_batch(set, idx, count, x->data, 0.0f, 1.0f);
    return x;
}

/* ---- training ---- */

/* One Adam step; fields: loss, bce, kl per image. */
static void train_step(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, double *fields) {
    int64_t B = x->shape[0];
    struct gen_tensor *bce, *kl;
    neg_elbo(g, m, x, &m->rng[GEN_VAE_RNG_NOISE], &bce, &kl);
    struct gen_tensor *loss = gen_scale(g, gen_add(g, bce, kl), 1.0f / (float)B);
    gen_params_zero_grad(&m->ps);
    gen_backward(g, loss);
    gen_optim_step(&m->opt, &m->ps, -1, m->lr);
    fields[0] = loss->data[0];
    fields[1] = bce->data[0] / (double)B;
    fields[2] = kl->data[0] / (double)B;
}

double gen_vae_train_step(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x) {
    double fields[3];
    train_step(g, m, x, fields);
    return fields[0];
}

static enum gen_status vae_step(void *model, struct gen_ctx *g, int64_t step, const int32_t *idx,
                                int count, double *fields) {
    (void)step;
    struct gen_vae *m = model;
    train_step(g, m, batch_images(g, m, &m->train, idx, count), fields);
    return GEN_OK;
}

#define EVAL_SEED 20240601u
#define EVAL_BATCH 500

/* Mean negative ELBO per test image (nats), with a fixed noise seed so
 * numbers from different epochs and runs are comparable. */
double gen_vae_test_loss(struct gen_ctx *g, struct gen_vae *m, const struct gen_image_set *set) {
    struct gen_rng rng;
    gen_rng_seed(&rng, EVAL_SEED);
    int32_t idx[EVAL_BATCH];
    double total = 0;
    for (int64_t i = 0; i < set->n; i += EVAL_BATCH) {
        int count = (int)(set->n - i < EVAL_BATCH ? set->n - i : EVAL_BATCH);
        for (int k = 0; k < count; k++) idx[k] = (int32_t)(i + k);
        struct gen_tensor *bce, *kl;
        neg_elbo(g, m, batch_images(g, m, set, idx, count), &rng, &bce, &kl);
        total += (double)bce->data[0] + (double)kl->data[0];
        gen_ctx_reset(g);
    }
    return total / (double)set->n;
}

static enum gen_status vae_evaluate(void *model, struct gen_ctx *g, double *fields) {
    struct gen_vae *m = model;
    fields[0] = gen_vae_test_loss(g, m, &m->test);
    return GEN_OK;
}

struct gen_tensor *gen_vae_generate(struct gen_ctx *g, struct gen_vae *m, int n, struct gen_rng *rng) {
    struct gen_tensor *z = gen_tensor_2d(g, n, m->latent);
    gen_rng_fill_normal(rng, z->data, gen_numel(z), 0.0f, 1.0f);
    return gen_sigmoid(g, decode(g, m, z));
}

/* count test images idx[] and their reconstructions (decoded means), in
 * pairs: out (2 count, C, H, W). */
static struct gen_tensor *reconstruct(struct gen_ctx *g, struct gen_vae *m, const int32_t *idx,
                                      int count) {
    struct gen_tensor *x = batch_images(g, m, &m->test, idx, count);
    struct gen_tensor *mu, *logvar;
    encode(g, m, x, &mu, &logvar);
    struct gen_tensor *y = gen_sigmoid(g, decode(g, m, mu));
    struct gen_tensor *out = gen_tensor_4d(g, 2 * count, m->C, m->H, m->W);
    int64_t D = m->D;
    for (int i = 0; i < count; i++) {
        memcpy(out->data + (2 * i) * D, x->data + i * D, (size_t)D * sizeof(float));
        memcpy(out->data + (2 * i + 1) * D, y->data + i * D, (size_t)D * sizeof(float));
    }
    return out;
}

static enum gen_status write_images(const char *path, const struct gen_tensor *t) {
    int n = (int)t->shape[0], c = (int)t->shape[1], h = (int)t->shape[2], w = (int)t->shape[3];
    size_t len = strlen(path);
    if (len && path[len - 1] == '/') return gen_png_write_each(path, "", t->data, n, c, h, w, 0, 1);
    return gen_png_write_grid(path, t->data, n, c, h, w, 0.0f, 1.0f);
}

static enum gen_status vae_snapshot(void *model, struct gen_ctx *g, const char *dir, int64_t step) {
    struct gen_vae *m = model;
    char path[4096];
    struct gen_rng rng;
    gen_rng_seed(&rng, EVAL_SEED);
    g->training = 0;
    snprintf(path, sizeof path, "%s/samples-%08lld.png", dir, (long long)step);
    enum gen_status st = write_images(path, gen_vae_generate(g, m, 64, &rng));
    if (st == GEN_OK) {
        int32_t idx[32];
        int count = m->test.n < 32 ? (int)m->test.n : 32;
        for (int i = 0; i < count; i++) idx[i] = i;
        snprintf(path, sizeof path, "%s/recon-%08lld.png", dir, (long long)step);
        st = write_images(path, reconstruct(g, m, idx, count));
    }
    g->training = 1;
    return st;
}

/* ---- commands ---- */

static enum gen_status load_data(struct gen_image_set *set, const char *path, int train) {
    enum gen_status st = gen_images_load(path, train, 0, 0, set);
    if (st != GEN_OK && access(path, F_OK) != 0)
        return gen_error(GEN_ERR_IO, "%s: no such data set (run scripts/fetch-data.sh, or give --data DIR)",
                         path);
    return st;
}

void gen_vae_free(struct gen_vae *m) {
    gen_params_free(&m->ps);
    gen_image_set_free(&m->train);
    gen_image_set_free(&m->test);
}

/* The model's config: the options plus the image shape it was built for. */
static char *model_config(const struct gen_config *cfg, const struct gen_vae *m) {
    char *s = gen_config_to_json(cfg);
    cJSON *o = cJSON_Parse(s);
    free(s);
    cJSON_AddNumberToObject(o, "channels", (double)m->C);
    cJSON_AddNumberToObject(o, "height", (double)m->H);
    cJSON_AddNumberToObject(o, "width", (double)m->W);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int arch_of(const char *s) { return s && !strcmp(s, "conv") ? GEN_VAE_CONV : GEN_VAE_MLP; }

static int vae_train(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_vae m;
    memset(&m, 0, sizeof m);
    int rc = 1;
    char *config = NULL;
    const char *data = gen_config_str(cfg, "data");
    if (load_data(&m.train, data, 1) != GEN_OK || load_data(&m.test, data, 0) != GEN_OK) goto out;
    if (m.test.c != m.train.c || m.test.h != m.train.h || m.test.w != m.train.w) {
        gen_error(GEN_ERR_FORMAT, "%s: test images are %dx%dx%d but training images %dx%dx%d", data,
                  m.test.c, m.test.h, m.test.w, m.train.c, m.train.h, m.train.w);
        goto out;
    }
    uint64_t seed = (uint64_t)gen_config_int(cfg, "seed");
    enum gen_status st = gen_vae_build(&m, arch_of(gen_config_str(cfg, "arch")), m.train.c, m.train.h,
                                   m.train.w, gen_config_int(cfg, "latent"),
                                   gen_config_int(cfg, "hidden"), seed);
    if (st != GEN_OK) {
        rc = st == GEN_ERR_USAGE ? 2 : 1;
        goto out;
    }
    m.opt.lr = m.lr = (float)gen_config_float(cfg, "lr");
    config = model_config(cfg, &m);
    int batch = (int)gen_config_int(cfg, "batch");
    struct gen_trainer_spec spec = {
        .family = "vae",
        .model = &m,
        .ps = &m.ps,
        .rngs = m.rng,
        .n_rngs = GEN_VAE_N_RNG,
        .n_examples = m.train.n,
        .batch = batch,
        .data_seed = seed,
        .epochs = gen_config_int(cfg, "epochs"),
        .steps = gen_config_is_set(cfg, "steps") ? gen_config_int(cfg, "steps") : 0,
        .items_per_step = batch,
        .unit = "img",
        .sample_every = gen_config_is_set(cfg, "sample-every") ? gen_config_int(cfg, "sample-every") : 0,
        .ckpt_every = gen_config_int(cfg, "ckpt-every"),
        .resume = gen_config_flag(cfg, "resume") ? gen_config_str(cfg, "resume") : NULL,
        .config_json = config,
        .step = vae_step,
        .field_names = {"loss", "bce", "kl"},
        .n_fields = 3,
        .evaluate = vae_evaluate,
        .eval_names = {"test_loss"},
        .n_eval = 1,
        .snapshot = vae_snapshot,
    };
    if (!run->quiet)
        fprintf(stderr, "vae (%s): %lld parameters, %lld training and %lld test images of %dx%dx%d\n",
                m.arch == GEN_VAE_MLP ? "mlp" : "conv", (long long)gen_params_count(&m.ps),
                (long long)m.train.n, (long long)m.test.n, m.train.c, m.train.h, m.train.w);
    rc = gen_trainer_run(run, &spec);
out:
    free(config);
    gen_vae_free(&m);
    return rc;
}

/* Builds the model a checkpoint describes and loads its weights. */
static enum gen_status vae_load(struct gen_vae *m, const char *path) {
    cJSON *c = NULL;
    enum gen_status st = gen_ckpt_config(path, "vae", &c);
    if (st != GEN_OK) return st;
    int64_t C = (int64_t)gen_json_num(c, "channels", 0), H = (int64_t)gen_json_num(c, "height", 0),
            W = (int64_t)gen_json_num(c, "width", 0), L = (int64_t)gen_json_num(c, "latent", 0),
            Hd = (int64_t)gen_json_num(c, "hidden", 0);
    int arch = arch_of(gen_json_str(c, "arch", "mlp"));
    cJSON_Delete(c);
    if (C < 1 || C > 4 || H < 1 || H > 4096 || W < 1 || W > 4096 || L < 1 || L > 65536 || Hd < 1 ||
        Hd > 1 << 20)
        return gen_error(GEN_ERR_FORMAT, "%s: bad model shape in the config metadata", path);
    st = gen_vae_build(m, arch, C, H, W, L, Hd, 0);
    if (st != GEN_OK) return st == GEN_ERR_USAGE ? GEN_ERR_FORMAT : st;
    return gen_ckpt_load(path, &m->ps, "vae", 0, NULL);
}

static int parse_pair(const char *s, int64_t *a, int64_t *b) {
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != ',') return 0;
    const char *t = end + 1;
    long long y = strtoll(t, &end, 10);
    if (end == t || *end || x < 0 || y < 0) return 0;
    *a = x, *b = y;
    return 1;
}

static int vae_sample(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_vae m;
    memset(&m, 0, sizeof m);
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    int rc = 1;
    const char *ckpt = gen_config_str(cfg, "ckpt");
    const char *out = gen_config_str(cfg, "output");
    int n = (int)gen_config_int(cfg, "num");
    if (!out) out = "samples.png";
    if (vae_load(&m, ckpt) != GEN_OK) goto done;
    struct gen_tensor *images;
    const char *interp = gen_config_str(cfg, "interpolate");
    if (gen_config_flag(cfg, "reconstruct") || interp) {
        const char *data = gen_config_str(cfg, "data");
        if (load_data(&m.test, data, 0) != GEN_OK) goto done;
        if (m.test.c != m.C || m.test.h != m.H || m.test.w != m.W) {
            gen_error(GEN_ERR_FORMAT, "%s: images are %dx%dx%d, the model wants %lldx%lldx%lld", data,
                      m.test.c, m.test.h, m.test.w, (long long)m.C, (long long)m.H, (long long)m.W);
            goto done;
        }
    }
    if (interp) {
        int64_t a, b;
        if (!parse_pair(interp, &a, &b)) {
            gen_error(GEN_ERR_USAGE, "--interpolate: expected two test image indices A,B, got '%s'",
                      interp);
            rc = 2;
            goto done;
        }
        if (a >= m.test.n || b >= m.test.n) {
            gen_error(GEN_ERR_USAGE, "--interpolate: index out of range (the test set has %lld images)",
                      (long long)m.test.n);
            rc = 2;
            goto done;
        }
        /* n steps from mu(A) to mu(B), decoded. */
        struct gen_tensor *x = batch_images(&g, &m, &m.test, (int32_t[]){(int32_t)a, (int32_t)b}, 2);
        struct gen_tensor *mu, *logvar;
        encode(&g, &m, x, &mu, &logvar);
        struct gen_tensor *z = gen_tensor_2d(&g, n, m.latent);
        for (int i = 0; i < n; i++) {
            float t = n > 1 ? (float)i / (float)(n - 1) : 0.0f;
            for (int64_t j = 0; j < m.latent; j++)
                z->data[i * m.latent + j] = (1 - t) * mu->data[j] + t * mu->data[m.latent + j];
        }
        images = gen_sigmoid(&g, decode(&g, &m, z));
    } else if (gen_config_flag(cfg, "reconstruct")) {
        int count = n / 2 > 0 ? n / 2 : 1;
        if (count > m.test.n) count = (int)m.test.n;
        int32_t *idx = gen_arena_alloc(&g.arena, (size_t)count * sizeof *idx);
        for (int i = 0; i < count; i++) idx[i] = i;
        images = reconstruct(&g, &m, idx, count);
    } else {
        struct gen_rng rng;
        gen_rng_seed(&rng, (uint64_t)gen_config_int(cfg, "seed"));
        images = gen_vae_generate(&g, &m, n, &rng);
    }
    if (write_images(out, images) != GEN_OK) goto done;
    if (!run->quiet) fprintf(stderr, "wrote %lld images to %s\n", (long long)images->shape[0], out);
    rc = 0;
done:
    gen_ctx_free(&g);
    gen_vae_free(&m);
    return rc;
}

/* Per-image scores of x (B, C, H, W): the negative ELBO with one noise
 * sample, and (K > 0) the negative importance-weighted bound with K samples
 * (Burda et al. 2016): -log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)), z_k ~ q.
 * It is never above the ELBO's value and tightens towards -log p(x) as K grows. */
static void score_batch(struct gen_ctx *g, struct gen_vae *m, struct gen_tensor *x, int K,
                        struct gen_rng *rng, double *elbo, double *iw) {
    const int64_t B = x->shape[0], L = m->latent, D = m->D;
    const double log2pi = log(2.0 * M_PI);
    struct gen_tensor *mu, *logvar;
    encode(g, m, x, &mu, &logvar);
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
    struct gen_tensor *logits = decode(g, m, z); /* (B S, C, H, W) */
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

/* gen_generate_fn for the image metrics: n samples in [0, 1]. */
static enum gen_status vae_generate(void *model, int64_t n, uint64_t seed, float *out) {
    struct gen_vae *m = model;
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    struct gen_rng rng;
    gen_rng_seed(&rng, seed);
    struct gen_tensor *x = gen_vae_generate(&g, m, (int)n, &rng);
    memcpy(out, x->data, (size_t)gen_numel(x) * sizeof(float));
    gen_ctx_free(&g);
    return GEN_OK;
}

static int vae_eval(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_vae m;
    memset(&m, 0, sizeof m);
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    int rc = 1;
    FILE *csv = NULL;
    double *elbo = NULL, *iw = NULL;
    const char *ckpt = gen_config_str(cfg, "ckpt");
    const char *data = gen_config_str(cfg, "data");
    const char *per_sample = gen_config_str(cfg, "per-sample");
    int K = (int)gen_config_int(cfg, "iw");
    if (vae_load(&m, ckpt) != GEN_OK || load_data(&m.test, data, 0) != GEN_OK) goto done;
    if (m.test.c != m.C || m.test.h != m.H || m.test.w != m.W) {
        gen_error(GEN_ERR_FORMAT, "%s: images are %dx%dx%d, the model wants %lldx%lldx%lld", data,
                  m.test.c, m.test.h, m.test.w, (long long)m.C, (long long)m.H, (long long)m.W);
        goto done;
    }
    if (per_sample && !(csv = fopen(per_sample, "w"))) {
        gen_error(GEN_ERR_IO, "%s: cannot write: %s", per_sample, strerror(errno));
        goto done;
    }
    int64_t n = m.test.n;
    elbo = gen_calloc((size_t)n, sizeof *elbo);
    iw = gen_calloc((size_t)n, sizeof *iw);
    if (!elbo || !iw) goto done;
    struct gen_rng rng;
    gen_rng_seed(&rng, (uint64_t)gen_config_int(cfg, "seed"));
    const int chunk = K > 0 ? 50 : 500;
    int32_t idx[500];
    double sum_elbo = 0, sum_iw = 0;
    for (int64_t i = 0; i < n; i += chunk) {
        int count = (int)(n - i < chunk ? n - i : chunk);
        for (int k = 0; k < count; k++) idx[k] = (int32_t)(i + k);
        score_batch(&g, &m, batch_images(&g, &m, &m.test, idx, count), K, &rng, elbo + i, iw + i);
        gen_ctx_reset(&g);
        for (int k = 0; k < count; k++) sum_elbo += elbo[i + k], sum_iw += iw[i + k];
    }
    double mean_elbo = sum_elbo / (double)n, mean_iw = sum_iw / (double)n;
    if (csv) {
        fprintf(csv, "index,label,neg_elbo%s\n", K > 0 ? ",neg_iw_bound" : "");
        for (int64_t i = 0; i < n; i++) {
            fprintf(csv, "%lld,%d,%.4f", (long long)i, (int)m.test.labels[i], elbo[i]);
            if (K > 0) fprintf(csv, ",%.4f", iw[i]);
            fputc('\n', csv);
        }
        if (fclose(csv) != 0) {
            csv = NULL;
            gen_error(GEN_ERR_IO, "%s: write failed", per_sample);
            goto done;
        }
        csv = NULL;
    }
    if (run->json) {
        printf("{\"family\":\"vae\",\"test_images\":%lld,\"neg_elbo\":%.6f", (long long)n,
               mean_elbo);
        if (K > 0) printf(",\"iw_samples\":%d,\"neg_iw_bound\":%.6f", K, mean_iw);
        printf("}\n");
    }
    if (!run->quiet) {
        fprintf(stderr, "vae %s on %s (%lld test images)\n", ckpt, data, (long long)n);
        fprintf(stderr, "  mean negative ELBO            %10.4f nats/image\n", mean_elbo);
        if (K > 0)
            fprintf(stderr, "  negative IW bound (K = %3d)   %10.4f nats/image (estimate of -log p(x))\n",
                    K, mean_iw);
        if (per_sample) fprintf(stderr, "  per-image scores in %s\n", per_sample);
    }
    struct gen_field logged[2] = {{"test_loss", mean_elbo}, {"neg_iw_bound", mean_iw}};
    gen_eval_log(ckpt, logged, K > 0 ? 2 : 1);
    rc = 0;
    /* Sample quality in the classifier's feature space, when asked for. */
    if (gen_config_is_set(cfg, "classifier") || gen_config_str(cfg, "samples"))
        rc = gen_eval_images(run, vae_generate, &m, (int)m.C, (int)m.H, (int)m.W);
done:
    if (csv) fclose(csv);
    gen_free(elbo);
    gen_free(iw);
    gen_ctx_free(&g);
    gen_vae_free(&m);
    return rc;
}

/* ---- options ---- */

static const struct gen_option vae_train_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    GEN_INT_OPT("epochs", "10", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    GEN_INT_OPT("batch", "128", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "1e-3", 0, 10, "Adam learning rate"),
    GEN_INT_OPT("latent", "20", 1, 4096, "latent dimensions"),
    GEN_INT_OPT("hidden", "400", 1, 65536, "hidden units of the MLP"),
    GEN_CHOICE_OPT("arch", "mlp", "mlp|conv", "encoder/decoder architecture"),
    GEN_OPT_END,
};

static const struct gen_option vae_sample_options[] = {
    GEN_FLAG_OPT("reconstruct", "test images beside their reconstructions"),
    GEN_STR_OPT("interpolate", NULL, "A,B: walk the latent space from test image A to B in -n steps"),
    GEN_STR_OPT("data", "data/fashion-mnist", "test images for --reconstruct/--interpolate"),
    GEN_OPT_END,
};

static const struct gen_option vae_eval_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "test data: IDX directory or image folder"),
    GEN_INT_OPT("iw", "100", 0, 100000, "samples of the importance-weighted bound (0: ELBO only)"),
    GEN_STR_OPT("per-sample", NULL, "write each test image's scores to this CSV file"),
    GEN_EVAL_IMAGE_OPTIONS,
    GEN_OPT_END,
};

const struct gen_family gen_family_vae = {
    .name = "vae",
    .summary = "variational autoencoder (MLP or conv), ELBO on images",
    .data = GEN_DATA_IMAGES,
    .train_options = vae_train_options,
    .sample_options = vae_sample_options,
    .eval_options = vae_eval_options,
    .train = vae_train,
    .sample = vae_sample,
    .eval = vae_eval,
};
