/* classifier.c - the classifier family: the feature network of gen eval
 * (see src/models/classifier.h for the model). `gen train classifier`
 * trains it with cross-entropy and Adam on a labelled image set (an IDX
 * directory or an image folder whose subfolders are the classes);
 * `gen eval classifier` reports its test accuracy, or with --samples DIR
 * scores a folder of images from anywhere against the real test images. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "gen/data.h"
#include "gen/metrics.h"
#include "gen/trainer.h"
#include "models/classifier.h"

#define EMBED_BATCH 250

/* ---- the model ---- */

/* Output side of a Conv(k, s, p) on an input side n. */
static int64_t conv_out(int64_t n, int64_t k, int s, int p) { return (n + 2 * p - k) / s + 1; }

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

enum gen_status gen_classifier_init(struct gen_classifier *m, int64_t C, int64_t H, int64_t W,
                                    int64_t K, int64_t F, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (C < 1 || H < 4 || W < 4 || K < 2 || F < 1)
        return gen_error(GEN_ERR_USAGE, "classifier: cannot build for %lldx%lldx%lld images and %lld classes",
                         (long long)C, (long long)H, (long long)W, (long long)K);
    m->C = C, m->H = H, m->W = W, m->K = K, m->F = F;
    int64_t h4 = conv_out(conv_out(H, 4, 2, 1), 4, 2, 1), w4 = conv_out(conv_out(W, 4, 2, 1), 4, 2, 1);
    struct gen_params *ps = &m->ps;
    gen_params_init(ps);
    /* conv l: cin -> cout, kernel k, stride s (padding 1) */
    const int64_t cin[4] = {C, F, F, 2 * F}, cout[4] = {F, F, 2 * F, 2 * F}, k[4] = {3, 4, 3, 4};
    const int stride[4] = {1, 2, 1, 2};
    for (int l = 0; l < 4; l++) {
        char name[32];
        snprintf(name, sizeof name, "conv%d", l + 1);
        gen_conv_layer_add(ps, &m->conv[l], name, cin[l], cout[l], k[l], stride[l], 1, 0, 0, 0);
        snprintf(name, sizeof name, "bn%d.weight", l + 1);
        m->bn[l].w = gen_params_add(ps, name, GEN_PARAM_NODECAY, 0, 1, &cout[l]);
        snprintf(name, sizeof name, "bn%d.bias", l + 1);
        m->bn[l].b = gen_params_add(ps, name, GEN_PARAM_NODECAY, 0, 1, &cout[l]);
        snprintf(name, sizeof name, "bn%d.running_mean", l + 1);
        m->bn[l].mean = gen_params_add(ps, name, GEN_PARAM_BUFFER, 0, 1, &cout[l]);
        snprintf(name, sizeof name, "bn%d.running_var", l + 1);
        m->bn[l].var = gen_params_add(ps, name, GEN_PARAM_BUFFER, 0, 1, &cout[l]);
    }
    gen_linear_layer_add(ps, &m->fc1, "fc1", 2 * F * h4 * w4, GEN_CLASSIFIER_FEATURES, 1, 0);
    gen_linear_layer_add(ps, &m->fc2, "fc2", GEN_CLASSIFIER_FEATURES, K, 1, 0);
    enum gen_status st = gen_params_finalize(ps, 0);
    if (st != GEN_OK) return st;
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    for (int l = 0; l < 4; l++) { /* PyTorch's defaults */
        gen_conv_layer_init(ps, &m->conv[l], &r);
        gen_init_const(gen_params_tensor(ps, m->bn[l].w), 1.0f);
        gen_init_const(gen_params_tensor(ps, m->bn[l].b), 0.0f);
        gen_init_const(gen_params_tensor(ps, m->bn[l].mean), 0.0f);
        gen_init_const(gen_params_tensor(ps, m->bn[l].var), 1.0f);
    }
    gen_linear_layer_init(ps, &m->fc1, &r);
    gen_linear_layer_init(ps, &m->fc2, &r);
    return GEN_OK;
}

void gen_classifier_free(struct gen_classifier *m) { gen_params_free(&m->ps); }

struct gen_tensor *gen_classifier_forward(struct gen_ctx *g, struct gen_classifier *m,
                                          struct gen_tensor *x, struct gen_tensor **features) {
    int64_t N = x->shape[0];
    struct gen_params *ps = &m->ps;
    struct gen_tensor *h = x;
    for (int l = 0; l < 4; l++) {
        h = gen_conv_layer_fwd(g, ps, &m->conv[l], h);
        h = gen_batchnorm(g, h, gen_params_tensor(ps, m->bn[l].w), gen_params_tensor(ps, m->bn[l].b),
                          gen_params_tensor(ps, m->bn[l].mean), gen_params_tensor(ps, m->bn[l].var),
                          BN_MOMENTUM, BN_EPS);
        h = gen_relu(g, h);
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
        struct gen_tensor *x = gen_tensor_wrap(&g, (float *)images + i * D, 4,
                                               (int64_t[]){b, m->C, m->H, m->W});
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

/* The config stored in checkpoints: the options plus the model's shape. */
static char *model_config(const char *options_json, const struct gen_classifier *m) {
    cJSON *o = options_json ? cJSON_Parse(options_json) : NULL;
    if (!o) o = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(o, "filters");
    cJSON_AddNumberToObject(o, "channels", (double)m->C);
    cJSON_AddNumberToObject(o, "height", (double)m->H);
    cJSON_AddNumberToObject(o, "width", (double)m->W);
    cJSON_AddNumberToObject(o, "classes", (double)m->K);
    cJSON_AddNumberToObject(o, "filters", (double)m->F);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

enum gen_status gen_classifier_save(const struct gen_classifier *m, const char *path) {
    char *config = model_config(NULL, m);
    struct gen_params ps = m->ps; /* weights only: no optimiser moments */
    ps.m = ps.v = ps.ema = NULL;
    enum gen_status st = gen_ckpt_save(path, &ps, "classifier", config, NULL, 0);
    free(config);
    return st;
}

enum gen_status gen_classifier_load(struct gen_classifier *m, const char *path) {
    memset(m, 0, sizeof *m);
    cJSON *c = NULL;
    enum gen_status st = gen_ckpt_config(path, "classifier", &c);
    if (st != GEN_OK) return st;
    double C = gen_json_num(c, "channels", 0), H = gen_json_num(c, "height", 0),
           W = gen_json_num(c, "width", 0), K = gen_json_num(c, "classes", 0),
           F = gen_json_num(c, "filters", 0);
    cJSON_Delete(c);
    if (!(C >= 1 && C <= 4 && H >= 4 && H <= 4096 && W >= 4 && W <= 4096 && K >= 2 &&
          K <= 100000 && F >= 1 && F <= 4096))
        return gen_error(GEN_ERR_FORMAT, "%s: bad model shape in the config metadata", path);
    st = gen_classifier_init(m, (int64_t)C, (int64_t)H, (int64_t)W, (int64_t)K, (int64_t)F, 0);
    if (st == GEN_OK) st = gen_ckpt_load(path, &m->ps, "classifier", 0, NULL);
    if (st != GEN_OK) gen_classifier_free(m);
    return st == GEN_ERR_USAGE ? GEN_ERR_FORMAT : st;
}

/* ---- training ---- */

enum { RNG_INIT, N_RNG };

struct trainer_model {
    struct gen_classifier net;
    struct gen_rng rng[N_RNG];
    struct gen_optim opt;
    struct gen_schedule sched;
    struct gen_image_set train, test;
};

static struct gen_tensor *batch_images(struct gen_ctx *g, const struct gen_classifier *m,
                                       const struct gen_image_set *set, const int32_t *idx,
                                       int count) {
    struct gen_tensor *x = gen_tensor_4d(g, count, m->C, m->H, m->W);
    gen_images_batch(set, idx, count, x->data, 0.0f, 1.0f);
    return x;
}

static enum gen_status classifier_step(void *model, struct gen_ctx *g, int64_t step,
                                       const int32_t *idx, int count, double *fields) {
    struct trainer_model *t = model;
    struct gen_tensor *x = batch_images(g, &t->net, &t->train, idx, count);
    int32_t *y = gen_arena_alloc(&g->arena, (size_t)count * sizeof *y);
    gen_images_labels(&t->train, idx, count, y);
    struct gen_tensor *logits = gen_classifier_forward(g, &t->net, x, NULL);
    struct gen_tensor *loss = gen_cross_entropy(g, logits, y);
    gen_params_zero_grad(&t->net.ps);
    gen_backward(g, loss);
    float lr = gen_schedule_lr(&t->sched, step);
    gen_optim_step(&t->opt, &t->net.ps, -1, lr);
    int correct = 0;
    for (int i = 0; i < count; i++) {
        const float *row = logits->data + (int64_t)i * t->net.K;
        int best = 0;
        for (int k = 1; k < t->net.K; k++)
            if (row[k] > row[best]) best = k;
        correct += best == y[i];
    }
    fields[0] = loss->data[0];
    fields[1] = (double)correct / count;
    fields[2] = lr;
    return GEN_OK;
}

/* Mean cross-entropy and accuracy over a whole set. */
static void score_set(struct gen_ctx *g, struct gen_classifier *m, const struct gen_image_set *set,
                      double *loss, double *accuracy) {
    int32_t idx[EMBED_BATCH], y[EMBED_BATCH];
    double total = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < set->n; i += EMBED_BATCH) {
        int count = (int)(set->n - i < EMBED_BATCH ? set->n - i : EMBED_BATCH);
        for (int k = 0; k < count; k++) idx[k] = (int32_t)(i + k);
        gen_images_labels(set, idx, count, y);
        struct gen_tensor *logits =
            gen_classifier_forward(g, m, batch_images(g, m, set, idx, count), NULL);
        total += (double)gen_cross_entropy(g, logits, y)->data[0] * count;
        for (int r = 0; r < count; r++) {
            const float *row = logits->data + (int64_t)r * m->K;
            int best = 0;
            for (int k = 1; k < m->K; k++)
                if (row[k] > row[best]) best = k;
            correct += best == y[r];
        }
        gen_ctx_reset(g);
    }
    *loss = total / (double)set->n;
    *accuracy = (double)correct / (double)set->n;
}

static enum gen_status classifier_evaluate(void *model, struct gen_ctx *g, double *fields) {
    struct trainer_model *t = model;
    score_set(g, &t->net, &t->test, &fields[0], &fields[1]);
    return GEN_OK;
}

/* ---- commands ---- */

static enum gen_status load_data(struct gen_image_set *set, const char *path, int train,
                                 int channels, int size) {
    enum gen_status st = gen_images_load(path, train, channels, size, set);
    if (st != GEN_OK && access(path, F_OK) != 0)
        return gen_error(GEN_ERR_IO,
                         "%s: no such data set (run scripts/fetch-data.sh, or give --data DIR)", path);
    if (st == GEN_OK && set->n_classes < 2)
        return gen_error(GEN_ERR_FORMAT, "%s: %s split has %d class; a classifier needs labels of two or more",
                         path, train ? "the training" : "the test", set->n_classes);
    return st;
}

static int classifier_train(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct trainer_model t;
    memset(&t, 0, sizeof t);
    int rc = 1;
    char *options = NULL, *config = NULL;
    const char *data = gen_config_str(cfg, "data");
    if (load_data(&t.train, data, 1, 0, 0) != GEN_OK ||
        load_data(&t.test, data, 0, t.train.c, 0) != GEN_OK)
        goto out;
    if (t.test.c != t.train.c || t.test.h != t.train.h || t.test.w != t.train.w) {
        gen_error(GEN_ERR_FORMAT, "%s: test images are %dx%dx%d but training images %dx%dx%d", data,
                  t.test.c, t.test.h, t.test.w, t.train.c, t.train.h, t.train.w);
        goto out;
    }
    int K = t.train.n_classes > t.test.n_classes ? t.train.n_classes : t.test.n_classes;
    uint64_t seed = (uint64_t)gen_config_int(cfg, "seed");
    enum gen_status st = gen_classifier_init(&t.net, t.train.c, t.train.h, t.train.w, K,
                                             gen_config_int(cfg, "filters"), seed);
    if (st != GEN_OK) {
        rc = st == GEN_ERR_USAGE ? 2 : 1;
        goto out;
    }
    float lr = (float)gen_config_float(cfg, "lr");
    t.opt = (struct gen_optim){GEN_OPTIM_ADAM, lr, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f};
    options = gen_config_to_json(cfg);
    config = model_config(options, &t.net);
    int batch = (int)gen_config_int(cfg, "batch");
    int64_t steps = gen_config_is_set(cfg, "steps") ? gen_config_int(cfg, "steps") : 0;
    int64_t total = steps ? steps : gen_config_int(cfg, "epochs") * ((t.train.n + batch - 1) / batch);
    int cosine = !strcmp(gen_config_str(cfg, "schedule"), "cosine");
    t.sched = (struct gen_schedule){cosine ? GEN_SCHED_WARMUP_COSINE : GEN_SCHED_CONSTANT, lr,
                                    lr / 100, 0, total};
    struct gen_trainer_spec spec = {
        .family = "classifier",
        .model = &t,
        .ps = &t.net.ps,
        .rngs = t.rng,
        .n_rngs = N_RNG,
        .n_examples = t.train.n,
        .batch = batch,
        .data_seed = seed,
        .epochs = gen_config_int(cfg, "epochs"),
        .steps = steps,
        .items_per_step = batch,
        .unit = "img",
        .ckpt_every = gen_config_int(cfg, "ckpt-every"),
        .resume = gen_config_flag(cfg, "resume") ? gen_config_str(cfg, "resume") : NULL,
        .config_json = config,
        .step = classifier_step,
        .field_names = {"loss", "accuracy", "lr"},
        .n_fields = 3,
        .evaluate = classifier_evaluate,
        .eval_names = {"test_loss", "test_accuracy"},
        .n_eval = 2,
    };
    gen_rng_seed(&t.rng[RNG_INIT], seed);
    if (!run->quiet)
        fprintf(stderr, "classifier: %lld parameters, %d classes, %lld training and %lld test images of %dx%dx%d\n",
                (long long)gen_params_count(&t.net.ps), K, (long long)t.train.n,
                (long long)t.test.n, t.train.c, t.train.h, t.train.w);
    rc = gen_trainer_run(run, &spec);
out:
    free(options);
    free(config);
    gen_classifier_free(&t.net);
    gen_image_set_free(&t.train);
    gen_image_set_free(&t.test);
    return rc;
}

static int classifier_eval(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    if (gen_config_str(cfg, "samples")) return gen_eval_images(run, NULL, NULL, 0, 0, 0, NULL);
    static struct gen_classifier m;
    struct gen_image_set test = {0};
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    int rc = 1;
    const char *ckpt = gen_config_str(cfg, "ckpt"), *data = gen_config_str(cfg, "data");
    if (gen_classifier_load(&m, ckpt) != GEN_OK) goto done;
    if (load_data(&test, data, 0, (int)m.C, 0) != GEN_OK) goto free_model;
    if (test.c != m.C || test.h != m.H || test.w != m.W) {
        gen_error(GEN_ERR_FORMAT, "%s: images are %dx%dx%d, the classifier wants %lldx%lldx%lld",
                  data, test.c, test.h, test.w, (long long)m.C, (long long)m.H, (long long)m.W);
        goto free_model;
    }
    if (test.n_classes > m.K) {
        gen_error(GEN_ERR_FORMAT, "%s: %d classes, the classifier knows %lld", data,
                  test.n_classes, (long long)m.K);
        goto free_model;
    }
    double t0 = gen_run_now(), loss, acc;
    score_set(&g, &m, &test, &loss, &acc);
    if (run->json)
        printf("{\"family\":\"classifier\",\"test_images\":%lld,\"test_loss\":%.6f,"
               "\"test_accuracy\":%.6f}\n",
               (long long)test.n, loss, acc);
    if (!run->quiet)
        fprintf(stderr,
                "classifier %s on %s (%lld test images, %.1fs)\n"
                "  test accuracy  %.2f %%\n  test loss      %.4f nats\n",
                ckpt, data, (long long)test.n, gen_run_now() - t0, 100 * acc, loss);
    if (gen_eval_log(ckpt, (const struct gen_field[]){{"test_loss", loss}, {"test_accuracy", acc}},
                     2) != GEN_OK)
        fprintf(stderr, "gen: warning: %s\n", gen_last_error());
    rc = 0;
free_model:
    gen_classifier_free(&m);
done:
    gen_image_set_free(&test);
    gen_ctx_free(&g);
    return rc;
}

static int classifier_sample(struct gen_run *run) {
    (void)run;
    gen_error(GEN_ERR_USAGE, "sample classifier: the classifier generates nothing; it is the "
                             "feature network of 'gen eval' (try 'gen eval classifier')");
    return 2;
}

/* ---- options ---- */

static const struct gen_option classifier_train_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "labelled images: IDX directory or image folder"),
    GEN_INT_OPT("epochs", "3", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "1e-3", 0, 10, "Adam learning rate"),
    GEN_CHOICE_OPT("schedule", "cosine", "cosine|constant",
                   "learning rate: cosine decay to lr/100 over the run, or constant"),
    GEN_INT_OPT("filters", "32", 1, 1024, "filters of the first convolution (doubled later)"),
    GEN_OPT_END,
};

static const struct gen_option classifier_eval_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "labelled test data: IDX directory or image folder"),
    GEN_STR_OPT("samples", NULL,
                "score this image folder against --data (FID, precision/recall) instead"),
    {"num", 'n', GEN_OPT_INT, "10000", "with --samples: at most N images", 10, 1000000, NULL, 0},
    GEN_OPT_END,
};

const struct gen_family gen_family_classifier = {
    .name = "classifier",
    .summary = "CNN image classifier: the feature network of gen eval (FID, precision/recall)",
    .data = GEN_DATA_IMAGES,
    .train_options = classifier_train_options,
    .sample_options = NULL,
    .eval_options = classifier_eval_options,
    .train = classifier_train,
    .sample = classifier_sample,
    .eval = classifier_eval,
};
