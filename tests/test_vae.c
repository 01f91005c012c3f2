/* test_vae.c - the VAE family: one step against PyTorch (unconditional and
 * conditional), learning on real data, the conditional model's layers,
 * learning of classes, sampling modes and evaluation, checkpoint round
 * trip, and resume == uninterrupted. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/family.h"
#include "gen/io.h"
#include "models/vae.h"
#include "testutil.h"

static struct gen_vae model; /* large; one at a time */

/* One training step of the 1x8x8 MLP VAE (hidden 16, latent 4, batch 5,
 * `classes` K) against scripts/make-fixtures-vae.py's PyTorch dump. */
static void check_step(const char *fixture, int64_t classes) {
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(tu_source_path(fixture), 0, &f), GEN_OK);
    memset(&model, 0, sizeof model);
    assert_int_equal(gen_vae_build(&model, GEN_VAE_MLP, 1, 8, 8, 4, 16, classes, 0, 0), GEN_OK);
    for (int i = 0; i < model.ps.count; i++) {
        char name[128];
        snprintf(name, sizeof name, "param.%s", model.ps.p[i].name);
        const struct gen_st_tensor *t = gen_st_find(f, name);
        assert_non_null(t);
        assert_int_equal(t->numel, gen_numel(&model.ps.p[i].t));
        memcpy(model.ps.p[i].t.data, t->data, (size_t)t->numel * sizeof(float));
    }
    const struct gen_st_tensor *x = gen_st_find(f, "x"), *eps = gen_st_find(f, "eps");
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *tx = gen_tensor_wrap(&g, (float *)x->data, 4, (int64_t[]){5, 1, 8, 8});
    struct gen_tensor *te = gen_tensor_wrap(&g, (float *)eps->data, 2, (int64_t[]){5, 4});
    int32_t y[5];
    if (classes) {
        const struct gen_st_tensor *ty = gen_st_find(f, "y");
        assert_non_null(ty);
        assert_int_equal(ty->numel, 5);
        for (int i = 0; i < 5; i++) y[i] = (int32_t)((const float *)ty->data)[i];
    }
    struct gen_tensor *bce, *kl;
    gen_vae_neg_elbo(&g, &model, tx, classes ? y : NULL, te, &bce, &kl);
    struct gen_tensor *loss = gen_scale(&g, gen_add(&g, bce, kl), 1.0f / 5);
    /* Sums of 320 BCE terms in float: 1e-5 relative. */
    TU_ASSERT_CLOSE("bce", bce->data, gen_st_find(f, "bce")->data, 1, 1e-5, 1e-5);
    TU_ASSERT_CLOSE("kl", kl->data, gen_st_find(f, "kl")->data, 1, 1e-5, 1e-5);
    TU_ASSERT_CLOSE("loss", loss->data, gen_st_find(f, "loss")->data, 1, 1e-5, 1e-5);
    gen_params_zero_grad(&model.ps);
    gen_backward(&g, loss);
    const struct gen_optim adam = {.kind = GEN_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f,
                                   .beta2 = 0.999f, .eps = 1e-8f};
    gen_optim_step(&adam, &model.ps, -1, 1e-3f);
    for (int i = 0; i < model.ps.count; i++) {
        const struct gen_param *p = &model.ps.p[i];
        char name[128];
        int64_t n = gen_numel(&p->t);
        snprintf(name, sizeof name, "grad.%s", p->name);
        /* Gradients: GEMM sums in another order than PyTorch's: 1e-4. */
        TU_ASSERT_CLOSE(name, model.ps.grad + p->offset, gen_st_find(f, name)->data, n, 1e-4, 1e-6);
        snprintf(name, sizeof name, "after.%s", p->name);
        /* One Adam step moves each weight by ~lr: 1e-6 absolute. */
        TU_ASSERT_CLOSE(name, p->t.data, gen_st_find(f, name)->data, n, 1e-5, 1e-6);
    }
    gen_ctx_free(&g);
    gen_params_free(&model.ps);
    gen_st_close(f);
}

static void test_step_matches_pytorch(void **state) {
    (void)state;
    check_step("tests/fixtures/vae_step.safetensors", 0);
}

/* The conditional VAE: the one-hot class appended to fc1's and fc3's inputs. */
static void test_cond_step_matches_pytorch(void **state) {
    (void)state;
    check_step("tests/fixtures/vae_cond_step.safetensors", 3);
}

static void test_learns_on_real_subset(void **state) {
    (void)state;
    TU_NEED_DATA("data/fashion-mnist");
    memset(&model, 0, sizeof model);
    const char *data = tu_source_path("data/fashion-mnist");
    struct gen_image_set train, test;
    assert_int_equal(gen_images_load(data, 1, 0, 0, &train), GEN_OK);
    assert_int_equal(gen_images_load(data, 0, 0, 0, &test), GEN_OK);
    assert_int_equal(train.n, 60000);
    test.n = 500; /* a subset keeps the test fast */
    assert_int_equal(gen_vae_build(&model, GEN_VAE_MLP, 1, 28, 28, 20, 200, 0, 0, 3), GEN_OK);
    const struct gen_optim adam = {.kind = GEN_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f,
                                   .beta2 = 0.999f, .eps = 1e-8f};
    struct gen_ctx g;
    gen_ctx_init(&g);
    gen_no_grad_begin(&g);
    double before = gen_vae_test_loss(&g, &model, &test);
    gen_no_grad_end(&g);
    struct gen_rng r;
    gen_rng_seed(&r, 9);
    int32_t idx[64];
    long allocs = 0;
    for (int step = 0; step < 200; step++) {
        /* The step arena and the tape settle after the first steps; from
         * then on a training step allocates nothing. */
        if (step == 3) allocs = gen_alloc_count();
        for (int i = 0; i < 64; i++) idx[i] = (int32_t)gen_rng_below(&r, 5000);
        struct gen_tensor *x = gen_tensor_4d(&g, 64, 1, 28, 28);
        gen_images_batch(&train, idx, 64, x->data, 0, 1);
        double fields[3];
        gen_params_zero_grad(&model.ps);
        struct gen_tensor *eps = gen_tensor_2d(&g, 64, model.latent);
        gen_rng_fill_normal(&r, eps->data, gen_numel(eps), 0.0f, 1.0f);
        gen_backward(&g, gen_vae_loss(&g, &model, x, NULL, eps, fields));
        gen_optim_step(&adam, &model.ps, -1, 1e-3f);
        gen_ctx_reset(&g);
    }
    assert_int_equal(gen_alloc_count(), allocs);
    gen_no_grad_begin(&g);
    double after = gen_vae_test_loss(&g, &model, &test);
    gen_no_grad_end(&g);
    fprintf(stderr, "  test loss %.1f -> %.1f nats after 200 steps\n", before, after);
    /* An untrained decoder scores ~545 nats (784 ln 2); 200 steps reach ~300. */
    assert_true(before > 500);
    assert_true(after < 330);
    gen_ctx_free(&g);
    gen_params_free(&model.ps);
    gen_image_set_free(&train);
    gen_image_set_free(&test);
}

/* ---- the conditional VAE, through the family's verbs ---- */

enum { SYN_K = 3, SYN_N = 30, SYN_S = 8, SYN_D = SYN_S * SYN_S };

/* Class c's pattern on SYN_S x SYN_S: 0 the top half, 1 the left half, 2
 * the centre square bright. */
static int in_pattern(int c, int y, int x) {
    return c == 0 ? y < SYN_S / 2 : c == 1 ? x < SYN_S / 2 : y >= 2 && y < 6 && x >= 2 && x < 6;
}

/* SYN_N 1 x 8 x 8 images, image i of class i % SYN_K: its pattern with
 * noise. */
static void synthetic_set(struct gen_image_set *s) {
    memset(s, 0, sizeof *s);
    s->n = SYN_N, s->c = 1, s->h = s->w = SYN_S, s->n_classes = SYN_K;
    s->pixels = gen_alloc(SYN_N * SYN_D);
    s->labels = gen_alloc(SYN_N * sizeof *s->labels);
    assert_true(s->pixels && s->labels);
    struct gen_rng r;
    gen_rng_seed(&r, 11);
    for (int i = 0; i < SYN_N; i++) {
        s->labels[i] = i % SYN_K;
        for (int k = 0; k < SYN_D; k++) {
            const int noise = (int)gen_rng_below(&r, 40);
            s->pixels[i * SYN_D + k] =
                (uint8_t)(in_pattern(i % SYN_K, k / SYN_S, k % SYN_S) ? 250 - noise : 5 + noise);
        }
    }
}

/* A config of the VAE's `cmd` tables from argv. */
static void parse(enum gen_command cmd, int argc, char **argv, struct gen_config *cfg) {
    const struct gen_option *tables[3];
    gen_command_tables(cmd, gen_family_find("vae"), tables);
    memset(cfg, 0, sizeof *cfg);
    assert_int_equal(gen_config_parse(cfg, tables, argc, argv), GEN_OK);
}

/* The VAE built by the family for SYN_S x SYN_S images of n_classes from
 * the training options argv. */
static enum gen_status create(struct gen_model *em, int argc, char **argv, int n_classes) {
    struct gen_config cfg;
    parse(GEN_CMD_TRAIN, argc, argv, &cfg);
    const struct gen_data_shape shape = {
        .kind = GEN_DATA_IMAGES, .c = 1, .h = SYN_S, .w = SYN_S, .n_classes = n_classes};
    enum gen_status st = gen_model_create(em, gen_family_find("vae"), &cfg, &shape, NULL, 1);
    gen_config_free(&cfg);
    return st;
}

static void assert_shape(struct gen_model *em, const char *name, int64_t rows, int64_t cols) {
    const struct gen_param *p = gen_params_find(em->info.ps, name);
    assert_non_null(p);
    assert_int_equal(p->t.shape[0], rows);
    assert_int_equal(p->t.shape[1], cols);
}

static void test_cond_builds_widened_layers(void **state) {
    (void)state;
    struct gen_model em, un;
    char *mlp[] = {"--conditional", "--hidden", "16", "--latent", "4"};
    assert_int_equal(create(&em, 5, mlp, SYN_K), GEN_OK);
    assert_int_equal(create(&un, 4, mlp + 1, SYN_K), GEN_OK);
    assert_int_equal(em.info.classes, SYN_K);
    assert_int_equal(un.info.classes, 0);
    assert_shape(&em, "fc1.weight", 16, SYN_D + SYN_K);
    assert_shape(&em, "fc3.weight", 16, 4 + SYN_K);
    assert_shape(&un, "fc1.weight", 16, SYN_D);
    assert_shape(&un, "fc3.weight", 16, 4);
    /* the same tensors, in the same order: only the widths change */
    assert_int_equal(em.info.ps->count, un.info.ps->count);
    for (int i = 0; i < em.info.ps->count; i++)
        assert_string_equal(em.info.ps->p[i].name, un.info.ps->p[i].name);
    gen_model_free(&em);
    gen_model_free(&un);

    char *conv[] = {"--conditional", "--arch", "conv", "--latent", "4"};
    assert_int_equal(create(&em, 5, conv, SYN_K), GEN_OK);
    const int64_t flat = 64 * (SYN_S / 4) * (SYN_S / 4);
    assert_shape(&em, "fc21.weight", 4, flat + SYN_K);
    assert_shape(&em, "fc22.weight", 4, flat + SYN_K);
    assert_shape(&em, "fc3.weight", flat, 4 + SYN_K);
    assert_shape(&em, "conv1.weight", 32, 1);
    gen_model_free(&em);

    /* a data set of one class has nothing to condition on */
    assert_int_equal(create(&em, 5, mlp, 1), GEN_ERR_FORMAT);
    gen_model_free(&em);
}

/* Squared distance of an image x (SYN_D) to class c's pattern. */
static double pattern_distance(const float *x, int c) {
    double d = 0;
    for (int k = 0; k < SYN_D; k++) {
        const double t = in_pattern(c, k / SYN_S, k % SYN_S) ? 0.9 : 0.1;
        d += (x[k] - t) * (x[k] - t);
    }
    return d;
}

/* n images of classes y (NULL: none asked) from seed; freed by the caller. */
static float *sample(struct gen_model *em, struct gen_ctx *g, int n, const int32_t *y,
                     uint64_t seed) {
    const struct gen_request req = {.n = n, .seed = seed, .labels = y};
    struct gen_output out = {0};
    assert_int_equal(em->fam->generate(em->m, g, NULL, &req, &out), GEN_OK);
    assert_int_equal(out.n_images, n);
    gen_ctx_reset(g);
    return out.images;
}

/* The metrics of evaluate (with --iw 16) on set. */
static struct gen_metrics evaluate(struct gen_model *em, struct gen_ctx *g,
                                   const struct gen_image_set *set) {
    struct gen_config ev;
    parse(GEN_CMD_EVAL, 2, (char *[]){"--iw", "16"}, &ev);
    const struct gen_dataset data = {.kind = GEN_DATA_IMAGES, .images = set};
    struct gen_metrics mt = {0};
    assert_int_equal(em->fam->evaluate(em->m, g, &ev, &data, &mt), GEN_OK);
    assert_int_equal(mt.n, 2);
    gen_free(mt.scores);
    gen_config_free(&ev);
    return mt;
}

/* Trains a conditional MLP on the labelled synthetic set: the loss stays
 * finite and falls, samples of class c look like c's pattern, and the
 * images score better with their own classes than with others. */
static void test_cond_learns_classes(void **state) {
    (void)state;
    struct gen_model em;
    char *argv[] = {"--conditional", "--hidden", "32", "--latent", "2", "--lr", "1e-2"};
    assert_int_equal(create(&em, 7, argv, SYN_K), GEN_OK);
    struct gen_image_set set;
    synthetic_set(&set);
    int32_t idx[SYN_N];
    for (int i = 0; i < SYN_N; i++) idx[i] = i;
    struct gen_ctx g;
    gen_ctx_init(&g);
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        struct gen_tensor *x = gen_tensor_4d(&g, SYN_N, 1, SYN_S, SYN_S);
        gen_images_batch(&set, idx, SYN_N, x->data, 0, 1);
        const struct gen_batch b = {.n = SYN_N, .step = step, .x = x, .labels = set.labels};
        double fields[3];
        gen_params_zero_grad(em.info.ps);
        struct gen_tensor *loss = em.fam->loss(em.m, &g, &b, 0, fields);
        assert_true(isfinite(fields[0]) && isfinite(fields[1]) && isfinite(fields[2]));
        if (step == 0) first = fields[0];
        last = fields[0];
        gen_backward(&g, loss);
        gen_optim_step(&em.info.phase[0].optim, em.info.ps, -1, em.info.phase[0].optim.lr);
        gen_ctx_reset(&g);
    }
    fprintf(stderr, "  conditional loss %.1f -> %.1f nats per image\n", first, last);
    assert_true(last < 0.8 * first);

    gen_no_grad_begin(&g);
    enum { N = 12 };
    int32_t y[N], other[N];
    for (int i = 0; i < N; i++) y[i] = i % SYN_K, other[i] = (i + 1) % SYN_K;
    float *a = sample(&em, &g, N, y, 5), *b = sample(&em, &g, N, y, 5);
    float *c = sample(&em, &g, N, other, 5), *d = sample(&em, &g, N, NULL, 5);
    const size_t bytes = (size_t)N * SYN_D * sizeof(float);
    assert_memory_equal(a, b, bytes);     /* a seed gives the same images   */
    assert_memory_not_equal(a, c, bytes); /* the class changes them         */
    assert_memory_equal(a, d, bytes);     /* no labels: the classes in turn */
    int right = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < SYN_K; k++)
            if (pattern_distance(a + i * SYN_D, k) < pattern_distance(a + i * SYN_D, best))
                best = k;
        right += best == y[i];
    }
    fprintf(stderr, "  %d of %d samples look like their class\n", right, N);
    assert_int_equal(right, N);
    gen_free(a), gen_free(b), gen_free(c), gen_free(d);

    const struct gen_metrics own = evaluate(&em, &g, &set);
    for (int i = 0; i < SYN_N; i++) set.labels[i] = (set.labels[i] + 1) % SYN_K;
    const struct gen_metrics wrong = evaluate(&em, &g, &set);
    fprintf(stderr, "  -ELBO %.3f, -IW bound %.3f nats; with wrong classes %.1f, %.1f\n",
            own.f[0].value, own.f[1].value, wrong.f[0].value, wrong.f[1].value);
    /* the bound is no looser than the ELBO (up to the noise of its one sample) */
    assert_true(own.f[1].value < 1.01 * own.f[0].value);
    assert_true(own.f[1].value < 0.8 * wrong.f[1].value);
    gen_no_grad_end(&g);
    gen_ctx_free(&g);
    gen_image_set_free(&set);
    gen_model_free(&em);
}

/* Reconstruction, interpolation and evaluation take the input images'
 * classes; classes out of the model's range and --class on an
 * unconditional model are refused. */
static void test_cond_sample_modes_and_evaluate(void **state) {
    (void)state;
    struct gen_model em;
    char *argv[] = {"--conditional", "--hidden", "16", "--latent", "3"};
    assert_int_equal(create(&em, 5, argv, SYN_K), GEN_OK);
    struct gen_image_set set;
    synthetic_set(&set);
    const struct gen_dataset data = {.kind = GEN_DATA_IMAGES, .images = &set};
    struct gen_ctx g;
    gen_ctx_init(&g);
    gen_no_grad_begin(&g);

    struct gen_config rec, walk, ev;
    parse(GEN_CMD_SAMPLE, 1, (char *[]){"--reconstruct"}, &rec);
    parse(GEN_CMD_SAMPLE, 2, (char *[]){"--interpolate", "0,4"}, &walk);
    parse(GEN_CMD_EVAL, 2, (char *[]){"--iw", "8"}, &ev);
    struct gen_request req = {.n = 8, .seed = 3, .inputs = &data};
    struct gen_output out = {0};
    assert_int_equal(em.fam->generate(em.m, &g, &rec, &req, &out), GEN_OK);
    assert_int_equal(out.n_images, 8); /* 4 pairs */
    gen_free(out.images);
    assert_int_equal(em.fam->generate(em.m, &g, &walk, &req, &out), GEN_OK);
    assert_int_equal(out.n_images, 8);
    assert_int_equal(out.cols, 8);
    gen_free(out.images);

    struct gen_metrics mt = {0};
    assert_int_equal(em.fam->evaluate(em.m, &g, &ev, &data, &mt), GEN_OK);
    assert_int_equal(mt.n, 2);
    assert_int_equal(mt.n_examples, SYN_N);
    assert_int_equal(mt.n_scores, 2);
    assert_true(isfinite(mt.f[0].value) && isfinite(mt.f[1].value));
    /* an untrained decoder scores about D ln 2 nats */
    assert_true(mt.f[0].value > 0.5 * SYN_D * log(2.0));
    for (int64_t i = 0; i < SYN_N * 2; i++) assert_true(isfinite(mt.scores[i]));
    gen_free(mt.scores);
    struct gen_metrics quick = {0};
    assert_int_equal(em.fam->evaluate(em.m, &g, NULL, &data, &quick), GEN_OK);
    assert_true(isfinite(quick.f[0].value));

    /* classes the model does not know */
    set.labels[7] = SYN_K;
    assert_int_equal(em.fam->evaluate(em.m, &g, &ev, &data, &mt), GEN_ERR_FORMAT);
    assert_int_equal(em.fam->generate(em.m, &g, &rec, &req, &out), GEN_ERR_FORMAT);
    set.labels[7] = 0;
    /* --class for an unconditional model, or for a mode that takes its inputs' classes */
    const int32_t y[8] = {0};
    const struct gen_request with = {.n = 8, .seed = 3, .labels = y, .inputs = &data};
    struct gen_model un;
    assert_int_equal(create(&un, 4, argv + 1, SYN_K), GEN_OK);
    assert_int_equal(un.fam->generate(un.m, &g, NULL, &with, &out), GEN_ERR_USAGE);
    assert_non_null(strstr(gen_last_error(), "unconditional"));
    assert_int_equal(em.fam->generate(em.m, &g, &rec, &with, &out), GEN_ERR_USAGE);

    gen_config_free(&rec), gen_config_free(&walk), gen_config_free(&ev);
    gen_no_grad_end(&g);
    gen_ctx_free(&g);
    gen_image_set_free(&set);
    gen_model_free(&em);
    gen_model_free(&un);
}

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    memset(&model, 0, sizeof model);
    assert_int_equal(gen_vae_build(&model, GEN_VAE_CONV, 1, 8, 8, 3, 16, 0, 0, 1), GEN_OK);
    struct gen_ctx g;
    gen_ctx_init(&g);
    gen_no_grad_begin(&g);
    struct gen_tensor *a = gen_vae_generate(&g, &model, 6, NULL, 5, 0);
    assert_int_equal(gen_ckpt_save(path, &model.ps, "vae", "{}", NULL, 0), GEN_OK);
    static struct gen_vae other;
    memset(&other, 0, sizeof other);
    assert_int_equal(gen_vae_build(&other, GEN_VAE_CONV, 1, 8, 8, 3, 16, 0, 0, 2), GEN_OK);
    struct gen_tensor *b = gen_vae_generate(&g, &other, 6, NULL, 5, 0);
    assert_true(memcmp(a->data, b->data, (size_t)gen_numel(a) * sizeof(float)) != 0);
    assert_int_equal(gen_ckpt_load(path, &other.ps, "vae", 0, NULL), GEN_OK);
    b = gen_vae_generate(&g, &other, 6, NULL, 5, 0);
    assert_memory_equal(a->data, b->data, (size_t)gen_numel(a) * sizeof(float));
    gen_ctx_free(&g);
    gen_params_free(&model.ps);
    gen_params_free(&other.ps);
    tu_rmtree(dir);
    free(dir);
}

static int run_cli(int argc, const char **argv) {
    return gen_cli_main(argc, (char **)argv);
}

static void test_resume_equals_uninterrupted(void **state) {
    (void)state;
    TU_NEED_DATA("data/fashion-mnist");
    char *dir = tu_mkdtemp();
    char a[512], b[512], data[1024];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(data, sizeof data, "%s", tu_source_path("data/fashion-mnist"));
    const char *common[] = {"--data", data, "--batch", "32", "--hidden", "64", "--quiet",
                            "--threads", "2"};
    const char *full[] = {"gen", "train", "vae", "--steps", "12", "--out", a, common[0], common[1],
                          common[2], common[3], common[4], common[5], common[6], common[7],
                          common[8]};
    assert_int_equal(run_cli(16, full), 0);
    const char *first[] = {"gen", "train", "vae", "--steps", "5", "--out", b, common[0], common[1],
                           common[2], common[3], common[4], common[5], common[6], common[7],
                           common[8]};
    assert_int_equal(run_cli(16, first), 0);
    const char *rest[] = {"gen", "train", "vae", "--steps", "12", "--out", b, "--resume",
                          common[0], common[1], common[2], common[3], common[4], common[5],
                          common[6], common[7], common[8]};
    assert_int_equal(run_cli(17, rest), 0);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", b);
    tu_assert_same_file(pa, pb);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_matches_pytorch),
        cmocka_unit_test(test_cond_step_matches_pytorch),
        cmocka_unit_test(test_cond_builds_widened_layers),
        cmocka_unit_test(test_cond_learns_classes),
        cmocka_unit_test(test_cond_sample_modes_and_evaluate),
        cmocka_unit_test(test_learns_on_real_subset),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_resume_equals_uninterrupted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
