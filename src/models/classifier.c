/* classifier.c - the classifier family: the feature network of gen eval
 * (see src/models/classifier.h for the model), trained with cross-entropy
 * and Adam on a labelled image set (an IDX directory or an image folder
 * whose subfolders are the classes), evaluated by its test accuracy.
 * `gen eval classifier --samples DIR` scores a folder of images against
 * the real test images with it (src/models/metrics.c). */
#include <string.h>

#include "gen/family.h"
#include "models/classifier.h"

/* The family's options, by their index in its tables (read with gen_opt_*). */
enum { CLF_T_DATA, CLF_T_EPOCHS, CLF_T_BATCH, CLF_T_LR, CLF_T_SCHEDULE, CLF_T_LR_MIN, CLF_T_EMA,
    CLF_T_FILTERS, CLF_T_CHANNELS, CLF_T_IMAGE_SIZE, CLF_T_COUNT };
enum { CLF_E_SAMPLES, CLF_E_NUM, CLF_E_COUNT };
static const struct gen_option classifier_train_options[CLF_T_COUNT + 1];
static const struct gen_option classifier_eval_options[CLF_E_COUNT + 1];


#define EMBED_BATCH 250

/* ---- the model ---- */

/* Output side of a Conv(k, s, p) on an input side n. */
static int64_t conv_out(int64_t n, int64_t k, int s, int p) {
    return (n + 2 * p - k) / s + 1;
}

enum gen_status gen_classifier_build(struct gen_classifier *m, int64_t C, int64_t H, int64_t W,
                                     int64_t K, int64_t F, int with_ema, uint64_t seed) {
    memset(m, 0, sizeof *m);
    gen_params_init(&m->ps);
    if (C < 1 || H < 4 || W < 4 || K < 2 || F < 1)
        return gen_error(GEN_ERR_USAGE,
                         "classifier: cannot build for %lldx%lldx%lld images and %lld classes",
                         (long long)C, (long long)H, (long long)W, (long long)K);
    m->C = C, m->H = H, m->W = W, m->K = K, m->F = F;
    int64_t h4 = conv_out(conv_out(H, 4, 2, 1), 4, 2, 1),
            w4 = conv_out(conv_out(W, 4, 2, 1), 4, 2, 1);
    struct gen_params *ps = &m->ps;
    /* conv l: cin -> cout, kernel k, stride s (padding 1) */
    const int64_t cin[4] = {C, F, F, 2 * F}, cout[4] = {F, F, 2 * F, 2 * F}, k[4] = {3, 4, 3, 4};
    const int stride[4] = {1, 2, 1, 2};
    for (int l = 0; l < 4; l++) {
        char name[32];
        snprintf(name, sizeof name, "conv%d", l + 1);
        gen_conv_layer_add(ps, &m->conv[l], name, cin[l], cout[l], k[l], stride[l], 1, 0, 0, 0);
        snprintf(name, sizeof name, "bn%d", l + 1);
        gen_batchnorm_layer_add(ps, &m->bn[l], name, cout[l], 0);
    }
    gen_linear_layer_add(ps, &m->fc1, "fc1", 2 * F * h4 * w4, GEN_CLASSIFIER_FEATURES, 1, 0);
    gen_linear_layer_add(ps, &m->fc2, "fc2", GEN_CLASSIFIER_FEATURES, K, 1, 0);
    enum gen_status st = gen_params_finalize(ps, with_ema);
    if (st != GEN_OK) return st;
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    for (int l = 0; l < 4; l++) { /* PyTorch's defaults */
        gen_conv_layer_init(ps, &m->conv[l], &r);
        gen_batchnorm_layer_init(ps, &m->bn[l]);
    }
    gen_linear_layer_init(ps, &m->fc1, &r);
    gen_linear_layer_init(ps, &m->fc2, &r);
    if (with_ema) gen_ema_copy_in(ps);
    return GEN_OK;
}

enum gen_status gen_classifier_init(struct gen_classifier *m, int64_t C, int64_t H, int64_t W,
                                    int64_t K, int64_t F, uint64_t seed) {
    return gen_classifier_build(m, C, H, W, K, F, 0, seed);
}

void gen_classifier_free(struct gen_classifier *m) {
    gen_params_free(&m->ps);
}

struct gen_tensor *gen_classifier_forward(struct gen_ctx *g, struct gen_classifier *m,
                                          struct gen_tensor *x, struct gen_tensor **features) {
    int64_t N = x->shape[0];
    struct gen_params *ps = &m->ps;
    struct gen_tensor *h = x;
    for (int l = 0; l < 4; l++) {
        h = gen_conv_layer_fwd(g, ps, &m->conv[l], h);
        h = gen_relu(g, gen_batchnorm_layer_fwd(g, ps, &m->bn[l], h));
    }
    h = gen_reshape(g, h, 2, (int64_t[]){N, gen_numel(h) / N});
    h = gen_relu(g, gen_linear_layer_fwd(g, ps, &m->fc1, h)); /* (N, 128) */
    if (features) *features = h;
    return gen_linear_layer_fwd(g, ps, &m->fc2, h); /* (N, K) */
}

void gen_classifier_embed(struct gen_classifier *m, const float *images, int64_t n, float *features,
                          float *probs) {
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    int64_t D = m->C * m->H * m->W, F = GEN_CLASSIFIER_FEATURES;
    for (int64_t i = 0; i < n; i += EMBED_BATCH) {
        int64_t b = n - i < EMBED_BATCH ? n - i : EMBED_BATCH;
        struct gen_tensor *x =
            gen_tensor_wrap(&g, (float *)images + i * D, 4, (int64_t[]){b, m->C, m->H, m->W});
        struct gen_tensor *feat;
        struct gen_tensor *logits = gen_classifier_forward(&g, m, x, &feat);
        if (features) memcpy(features + i * F, feat->data, (size_t)(b * F) * sizeof(float));
        if (probs) {
            struct gen_tensor *p = gen_softmax(&g, logits);
            memcpy(probs + i * m->K, p->data, (size_t)(b * m->K) * sizeof(float));
        }
        gen_ctx_reset(&g);
    }
    gen_ctx_free(&g);
}

/* Rows of logits (n, K) whose largest entry is the label. */
static int64_t count_correct(const struct gen_tensor *logits, const int32_t *y, int64_t n,
                             int64_t K) {
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits->data + i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (row[k] > row[best]) best = k;
        correct += best == y[i];
    }
    return correct;
}

/* ---- verbs ---- */

/* Cross-entropy of the batch; fields: loss, accuracy. */
static struct gen_tensor *classifier_loss(void *model, struct gen_ctx *g, const struct gen_batch *b,
                                          int phase, double *fields) {
    struct gen_classifier *m = model;
    (void)phase;
    struct gen_tensor *logits = gen_classifier_forward(g, m, b->x, NULL);
    struct gen_tensor *loss = gen_cross_entropy(g, logits, b->labels);
    fields[0] = loss->data[0];
    fields[1] = (double)count_correct(logits, b->labels, b->n, m->K) / b->n;
    return loss;
}

static enum gen_status classifier_create(void *model, const struct gen_config *cfg,
                                         const struct gen_data_shape *shape, uint64_t seed,
                                         struct gen_model_info *info) {
    struct gen_classifier *m = model;
    if (shape->n_classes < 2)
        return gen_error(
            GEN_ERR_FORMAT,
            "classifier: the data has %d class; a classifier needs labels of two or more",
            shape->n_classes);
    enum gen_status st = gen_classifier_build(m, shape->c, shape->h, shape->w, shape->n_classes,
                                              gen_opt_int(cfg, &classifier_train_options[CLF_T_FILTERS]),
                                              gen_opt_float(cfg, &classifier_train_options[CLF_T_EMA]) > 0, seed);
    if (st != GEN_OK) return st;
    const struct gen_phase adam = {.group = -1,
                                   .optim = {.kind = GEN_OPTIM_ADAM,
                                             .lr = (float)gen_opt_float(cfg, &classifier_train_options[CLF_T_LR]),
                                             .beta1 = 0.9f,
                                             .beta2 = 0.999f,
                                             .eps = 1e-8f}};
    *info = (struct gen_model_info){.ps = &m->ps,
                                    .pixel_lo = 0.0f,
                                    .pixel_hi = 1.0f,
                                    .n_phases = 1,
                                    .phase = {adam},
                                    .ema_group = -1,
                                    .n_fields = 2,
                                    .fields = {"loss", "accuracy"},
                                    .unit = "img"};
    return GEN_OK;
}

static void classifier_destroy(void *model) {
    gen_classifier_free(model);
}

/* Mean cross-entropy and accuracy over the held-out images. */
static enum gen_status classifier_evaluate(void *model, struct gen_ctx *g,
                                           const struct gen_config *opts,
                                           const struct gen_dataset *data,
                                           struct gen_metrics *out) {
    struct gen_classifier *m = model;
    const struct gen_image_set *set = data->images;
    (void)opts;
    if (set->n_classes > m->K)
        return gen_error(GEN_ERR_FORMAT,
                         "the test images have %d classes, the classifier knows %lld",
                         set->n_classes, (long long)m->K);
    int32_t idx[EMBED_BATCH], y[EMBED_BATCH];
    double total = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < set->n; i += EMBED_BATCH) {
        int count = (int)(set->n - i < EMBED_BATCH ? set->n - i : EMBED_BATCH);
        for (int k = 0; k < count; k++) idx[k] = (int32_t)(i + k);
        gen_images_labels(set, idx, count, y);
        struct gen_tensor *x = gen_tensor_4d(g, count, m->C, m->H, m->W);
        gen_images_batch(set, idx, count, x->data, 0.0f, 1.0f);
        struct gen_tensor *logits = gen_classifier_forward(g, m, x, NULL);
        total += (double)gen_cross_entropy(g, logits, y)->data[0] * count;
        correct += count_correct(logits, y, count, m->K);
        gen_ctx_reset(g);
    }
    out->f[out->n++] = (struct gen_field){"test_loss", total / (double)set->n};
    out->f[out->n++] = (struct gen_field){"test_accuracy", (double)correct / (double)set->n};
    return GEN_OK;
}

/* ---- options ---- */

static const struct gen_option classifier_train_options[CLF_T_COUNT + 1] = {
    [CLF_T_DATA] = GEN_STR_OPT("data", "data/fashion-mnist", "labelled images: IDX directory or image folder"),
    [CLF_T_EPOCHS] = GEN_INT_RUN_OPT("epochs", "3", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    [CLF_T_BATCH] = GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    [CLF_T_LR] = GEN_FLOAT_RUN_OPT("lr", "1e-3", 0, 10, "Adam learning rate"),
    [CLF_T_SCHEDULE] = GEN_CHOICE_OPT("schedule", "cosine", "cosine|constant",
                   "learning rate: cosine decay to --lr-min over the run, or constant"),
    [CLF_T_LR_MIN] = GEN_FLOAT_RUN_OPT("lr-min", "1e-5", 0, 10,
                      "final learning rate of the cosine schedule (lr/100 of the default --lr)"),
    [CLF_T_EMA] = GEN_FLOAT_OPT("ema", "0", 0, 0.999999,
                  "keep an EMA of the weights with this decay (0: off); gen eval and the "
                  "feature network of the image metrics use it"),
    [CLF_T_FILTERS] = GEN_INT_OPT("filters", "32", 1, 1024, "filters of the first convolution (doubled later)"),
    [CLF_T_CHANNELS] = GEN_CHANNELS_OPTION,
    [CLF_T_IMAGE_SIZE] = GEN_IMAGE_SIZE_OPTION,
    [CLF_T_COUNT] = GEN_OPT_END,
};

static const struct gen_option classifier_eval_options[CLF_E_COUNT + 1] = {
    [CLF_E_SAMPLES] = GEN_STR_OPT("samples", NULL,
                "score this image folder against --data (FID, precision/recall) instead"),
    [CLF_E_NUM] = {"num", 'n', GEN_OPT_INT, "10000", "with --samples: at most N images", 10, 1000000, NULL, 0},
    [CLF_E_COUNT] = GEN_OPT_END,
};

const struct gen_family gen_family_classifier = {
    .name = "classifier",
    .summary = "CNN image classifier: the feature network of gen eval (FID, precision/recall)",
    .data = GEN_DATA_IMAGES,
    .train_options = classifier_train_options,
    .eval_options = classifier_eval_options,
    .size = sizeof(struct gen_classifier),
    .create = classifier_create,
    .destroy = classifier_destroy,
    .loss = classifier_loss,
    .evaluate = classifier_evaluate,
};
