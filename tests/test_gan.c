/* test_gan.c - the DCGAN family: one step against PyTorch, learning on a
 * real subset, the divergence watch, checkpoint round trip, resume ==
 * uninterrupted, RGB image folders, bad input, and the class-conditional
 * GAN (--conditional): its tables, training step, projection and sampling. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/io.h"
#include "models/gan.h"
#include "testutil.h"

extern const struct gen_family gen_family_gan;

/* ---- helpers ---- */

static int run_cli(const char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    return gen_cli_main(argc, (char **)argv);
}

static void put_be32(FILE *f, uint32_t v) {
    const unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                                (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* An MNIST-format split (prefix "train" or "t10k") of n synthetic 28x28
 * images: a bright rectangle at a random place on a dark background. */
static void make_idx_split(const char *dir, const char *prefix, int n, uint64_t seed) {
    char path[600];
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    uint8_t *px = calloc((size_t)n * 784, 1);
    for (int i = 0; i < n; i++) {
        int x0 = (int)gen_rng_below(&r, 14), y0 = (int)gen_rng_below(&r, 14);
        int w = 6 + (int)gen_rng_below(&r, 8), h = 6 + (int)gen_rng_below(&r, 8);
        for (int y = y0; y < y0 + h; y++)
            for (int x = x0; x < x0 + w; x++) px[i * 784 + y * 28 + x] = (uint8_t)(160 + i % 96);
    }
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    put_be32(f, 0x803);
    put_be32(f, (uint32_t)n);
    put_be32(f, 28);
    put_be32(f, 28);
    fwrite(px, 1, (size_t)n * 784, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    f = fopen(path, "wb");
    assert_non_null(f);
    put_be32(f, 0x801);
    put_be32(f, (uint32_t)n);
    for (int i = 0; i < n; i++) fputc(i % 10, f);
    fclose(f);
    free(px);
}

static void make_idx_dir(const char *dir, int n, uint64_t seed) {
    make_idx_split(dir, "train", n, seed);
    make_idx_split(dir, "t10k", n / 2 > 10 ? n / 2 : 10, seed + 1);
}

/* ---- the model as the engine builds and steps it ---- */

/* Options (NULL-terminated) of command c parsed against the GAN's tables;
 * free with gen_config_free and free. */
static struct gen_config *parse(enum gen_command c, const char **args) {
    const struct gen_option *tables[3];
    gen_command_tables(c, &gen_family_gan, tables);
    struct gen_config *cfg = calloc(1, sizeof *cfg);
    assert_non_null(cfg);
    int argc = 0;
    while (args[argc]) argc++;
    assert_int_equal(gen_config_parse(cfg, tables, argc, (char **)args), GEN_OK);
    return cfg;
}

static void config_free(struct gen_config *cfg) {
    gen_config_free(cfg);
    free(cfg);
}

/* Builds the GAN for 1 x S x S images of K classes through its create
 * verb, from training options (NULL-terminated); returns its status. */
static enum gen_status create_k(struct gen_gan *m, struct gen_model_info *info, int S, int K,
                                uint64_t seed, const char **args) {
    struct gen_config *cfg = parse(GEN_CMD_TRAIN, args);
    const struct gen_data_shape shape = {
        .kind = GEN_DATA_IMAGES, .c = 1, .h = S, .w = S, .n_classes = K};
    memset(m, 0, sizeof *m);
    enum gen_status st = gen_family_gan.create(m, cfg, &shape, seed, info);
    config_free(cfg);
    return st;
}

/* The same for 10 classes (as Fashion-MNIST), where it must succeed. */
static void create(struct gen_gan *m, struct gen_model_info *info, int S, uint64_t seed,
                   const char **args) {
    assert_int_equal(create_k(m, info, S, 10, seed, args), GEN_OK);
}

/* Phase p of a training step as the engine runs it (src/cli/trainer.c),
 * up to the gradients: the other groups frozen when the phase says so,
 * zero-grad, loss on images x of classes y (NULL: unconditional) and
 * noise z, backward. */
static void phase_backward(struct gen_ctx *g, struct gen_gan *m, const struct gen_model_info *info,
                           struct gen_tensor *x, const int32_t *y, struct gen_tensor *z, int p,
                           double *fields) {
    struct gen_params *ps = &m->ps;
    const struct gen_phase *ph = &info->phase[p];
    g->training = 1;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].group != ph->group && ps->p[i].kind != GEN_PARAM_BUFFER)
            ps->p[i].t.requires_grad = !ph->freeze_others;
    gen_params_zero_grad(ps);
    gen_backward(g, gen_gan_phase_loss(g, m, x, y, z, p, fields));
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].kind != GEN_PARAM_BUFFER) ps->p[i].t.requires_grad = 1;
}

/* One training step: per phase, phase_backward then the optimiser at
 * learning rate lr[phase]. */
static void step_y(struct gen_ctx *g, struct gen_gan *m, const struct gen_model_info *info,
                   struct gen_tensor *x, const int32_t *y, struct gen_tensor *z, const float *lr,
                   double *fields) {
    for (int p = 0; p < info->n_phases; p++) {
        phase_backward(g, m, info, x, y, z, p, fields);
        gen_optim_step(&info->phase[p].optim, &m->ps, info->phase[p].group, lr[p]);
    }
    gen_ctx_reset(g);
}

static void step(struct gen_ctx *g, struct gen_gan *m, const struct gen_model_info *info,
                 struct gen_tensor *x, struct gen_tensor *z, const float *lr, double *fields) {
    step_y(g, m, info, x, NULL, z, lr, fields);
}

/* ---- one step against PyTorch ---- */

/* scripts/reference/gan.py --fixture: one step (SGD, lr 0.1, so the
 * updates are the gradients) of a small GAN in float64, conditional on K
 * classes (the fixture's y) or not (K 0). Checks the losses, D(x),
 * D(G(z)), every parameter after D's and G's updates and the BN running
 * statistics (G: one forward, D: three). */
static void step_matches(const char *fixture, int K) {
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(tu_source_path(fixture), 0, &f), GEN_OK);
    struct gen_gan m;
    struct gen_model_info info;
    assert_int_equal(create_k(&m, &info, 8, K ? K : 10, 0,
                              (const char *[]){"--latent", "6", "--g-width", "4", "--d-width", "4",
                                               K ? "--conditional" : NULL, NULL}),
                     GEN_OK);
    assert_int_equal(info.n_phases, 2);
    assert_int_equal(info.phase[GEN_GAN_PHASE_D].group, GEN_GAN_D);
    assert_int_equal(info.phase[GEN_GAN_PHASE_G].group, GEN_GAN_G);
    assert_int_equal(info.ema_group, GEN_GAN_G);
    for (int i = 0; i < m.ps.count; i++) {
        char name[128];
        snprintf(name, sizeof name, "before.%s", m.ps.p[i].name);
        const struct gen_st_tensor *t = gen_st_find(f, name);
        assert_non_null(t);
        assert_int_equal(t->numel, gen_numel(&m.ps.p[i].t));
        memcpy(m.ps.p[i].t.data, t->data, (size_t)t->numel * sizeof(float));
    }
    for (int p = 0; p < info.n_phases; p++)
        info.phase[p].optim = (struct gen_optim){.kind = GEN_OPTIM_SGD, .lr = 0.1f};
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x =
        gen_tensor_wrap(&g, (float *)gen_st_find(f, "x")->data, 4, (int64_t[]){5, 1, 8, 8});
    struct gen_tensor *z =
        gen_tensor_wrap(&g, (float *)gen_st_find(f, "z")->data, 2, (int64_t[]){5, 6});
    int32_t y[5];
    for (int i = 0; K && i < 5; i++) y[i] = (int32_t)gen_st_find(f, "y")->data[i];
    double out[GEN_GAN_N_FIELDS];
    step_y(&g, &m, &info, x, K ? y : NULL, z, (const float[]){0.1f, 0.1f}, out);
    const char *names[4] = {"d_loss", "g_loss", "d_x", "d_g_z"};
    for (int i = 0; i < 4; i++) {
        float v = (float)out[i];
        assert_string_equal(info.fields[i], names[i]);
        TU_ASSERT_CLOSE(names[i], &v, gen_st_find(f, names[i])->data, 1, 1e-5, 1e-6);
    }
    for (int i = 0; i < m.ps.count; i++) {
        const struct gen_param *p = &m.ps.p[i];
        char name[128];
        snprintf(name, sizeof name, "after.%s", p->name);
        /* after = before - 0.1 grad: gradients to ~1e-5 relative */
        TU_ASSERT_CLOSE(name, p->t.data, gen_st_find(f, name)->data, gen_numel(&p->t), 1e-5, 1e-6);
    }
    assert_int_equal(m.ps.step[GEN_GAN_G], 1);
    assert_int_equal(m.ps.step[GEN_GAN_D], 1);
    gen_ctx_free(&g);
    gen_gan_free(&m);
    gen_st_close(f);
}

static void test_step_matches_pytorch(void **state) {
    (void)state;
    step_matches("tests/fixtures/gan_step.safetensors", 0);
}

/* gan.py --conditional --fixture: the same with 3 classes, G.label_emb
 * and the projection discriminator's D.embed. */
static void test_conditional_step_matches_pytorch(void **state) {
    (void)state;
    step_matches("tests/fixtures/gan_cond_step.safetensors", 3);
}

/* ---- learning on a real subset ---- */

/* Mean BCE(D(G(z)), 1) = G's loss and mean D(G(z)) on fixed z, without
 * touching the model (batch statistics; running stats restored). */
static void g_against_d(struct gen_ctx *g, struct gen_gan *m, const float *z, int n, double *loss,
                        double *dgz) {
    memcpy(m->bn_saved, m->ps.buffers, (size_t)m->ps.n_buffer * sizeof(float));
    gen_no_grad_begin(g);
    g->training = 1;
    struct gen_tensor *zt = gen_tensor_wrap(g, (float *)z, 2, (int64_t[]){n, m->latent});
    struct gen_tensor *logits =
        gen_gan_discriminator(g, m, gen_gan_generator(g, m, zt, NULL), NULL);
    struct gen_tensor *ones = gen_tensor_2d(g, n, 1);
    for (int i = 0; i < n; i++) ones->data[i] = 1.0f;
    *loss = gen_bce_logits(g, logits, ones, 1)->data[0];
    double s = 0;
    for (int i = 0; i < n; i++) s += 1.0 / (1.0 + exp(-(double)logits->data[i]));
    *dgz = s / n;
    gen_no_grad_end(g);
    gen_ctx_reset(g);
    memcpy(m->ps.buffers, m->bn_saved, (size_t)m->ps.n_buffer * sizeof(float));
}

/* Runs `steps` steps on random batches of the first `n` images of set,
 * with learning rates lr_d (D's phase) and lr_g (G's). */
static void train_steps(struct gen_ctx *g, struct gen_gan *m, const struct gen_model_info *info,
                        const struct gen_image_set *set, float lr_d, float lr_g, int steps,
                        int batch, int n, struct gen_rng *r, double *last) {
    int32_t idx[64];
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < batch; i++) idx[i] = (int32_t)gen_rng_below(r, (uint64_t)n);
        struct gen_tensor *x = gen_tensor_4d(g, batch, 1, 28, 28);
        gen_images_batch(set, idx, batch, x->data, -1, 1);
        struct gen_tensor *z = gen_tensor_2d(g, batch, m->latent);
        gen_rng_fill_normal(r, z->data, gen_numel(z), 0, 1);
        step(g, m, info, x, z, (const float[]){lr_d, lr_g}, last);
    }
}

/* 512 Fashion-MNIST images, narrow networks. D alone learns to tell real
 * from G's output; then against that fixed D, G's loss falls and D(G(z))
 * rises from where D left it. */
static void test_learns_on_real_subset(void **state) {
    (void)state;
    TU_NEED_DATA("data/fashion-mnist");
    struct gen_image_set set = {0};
    assert_int_equal(gen_images_load(tu_source_path("data/fashion-mnist"), 1, 0, 0, &set), GEN_OK);
    struct gen_gan m;
    struct gen_model_info info;
    create(&m, &info, 28, 4,
           (const char *[]){"--latent", "32", "--g-width", "8", "--d-width", "8", NULL});
    assert_int_equal(info.phase[GEN_GAN_PHASE_D].optim.kind, GEN_OPTIM_ADAM);
    assert_true(info.phase[GEN_GAN_PHASE_D].optim.beta1 == 0.5f);
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_rng r;
    gen_rng_seed(&r, 7);
    float z[32 * 32];
    gen_rng_fill_normal(&r, z, 32 * 32, 0, 1);
    double last[GEN_GAN_N_FIELDS], loss0, dgz0, loss1, dgz1, loss2, dgz2;
    g_against_d(&g, &m, z, 32, &loss0, &dgz0);

    train_steps(&g, &m, &info, &set, 2e-3f, 0.0f, 60, 16, 512, &r, last); /* D only */
    g_against_d(&g, &m, z, 32, &loss1, &dgz1);
    fprintf(stderr, "  D alone:  G loss %.3f -> %.3f, D(G(z)) %.3f -> %.3f, D(x) %.3f\n", loss0,
            loss1, dgz0, dgz1, last[GEN_GAN_D_X]);
    assert_true(dgz1 < 0.2 && last[GEN_GAN_D_X] > 0.8);

    const float *dw = m.ps.data + m.ps.p[m.d_conv1.w].offset;
    float d_before = dw[0];
    /* G only, against the fixed D */
    train_steps(&g, &m, &info, &set, 0.0f, 2e-3f, 60, 16, 512, &r, last);
    g_against_d(&g, &m, z, 32, &loss2, &dgz2);
    fprintf(stderr, "  G alone:  G loss %.3f -> %.3f, D(G(z)) %.3f -> %.3f\n", loss1, loss2, dgz1,
            dgz2);
    assert_true(dw[0] == d_before); /* D did not move */
    assert_true(loss2 < 0.5 * loss1);
    assert_true(dgz2 > dgz1 + 0.3);
    gen_ctx_free(&g);
    gen_gan_free(&m);
    gen_image_set_free(&set);
}

/* ---- divergence watch ---- */

static void test_watch(void **state) {
    (void)state;
    char msg[512];
    struct gen_gan_watch w = {.window = 50, .sub = 10};
    int fired = 0;
    /* Healthy, noisy losses: never. */
    struct gen_rng r;
    gen_rng_seed(&r, 3);
    for (int s = 1; s <= 2000; s++)
        fired += gen_gan_watch_step(&w, s, 1.2 + 0.3 * gen_rng_normal(&r),
                                    1.0 + 0.05 * s / 2000.0 + 0.5 * gen_rng_normal(&r), 0.6, 0.4,
                                    msg, sizeof msg);
    assert_int_equal(fired, 0);
    /* D's loss near zero: fires once, after a whole window of it. */
    memset(&w, 0, sizeof w);
    w.window = 50, w.sub = 10;
    int first = 0;
    for (int s = 1; s <= 200; s++)
        if (gen_gan_watch_step(&w, s, 0.002, 8.0, 1.0, 0.0, msg, sizeof msg)) {
            fired++;
            if (!first) first = s;
        }
    assert_int_equal(fired, 1);
    assert_int_equal(first, 50);
    assert_non_null(strstr(msg, "D's loss"));
    assert_non_null(strstr(msg, "--lr-d"));
    /* G's loss climbing for a whole window. */
    memset(&w, 0, sizeof w);
    w.window = 50, w.sub = 10;
    fired = 0;
    for (int s = 1; s <= 60; s++)
        fired += gen_gan_watch_step(&w, s, 0.5, 1.0 + 0.05 * s, 0.9, 0.1, msg, sizeof msg);
    assert_int_equal(fired, 1);
    assert_non_null(strstr(msg, "G's loss has climbed"));
}

/* ---- the class-conditional GAN ---- */

/* A GAN for 1 x 8 x 8 images: G.fc feeds (2 4, 2, 2), D's features are 32. */
#define TINY   "--latent", "6", "--g-width", "4", "--d-width", "4"
#define TINY_K 3

/* The tiny GAN conditioned on TINY_K classes. */
static void create_tiny_conditional(struct gen_gan *m, struct gen_model_info *info, uint64_t seed) {
    assert_int_equal(
        create_k(m, info, 8, TINY_K, seed, (const char *[]){TINY, "--conditional", NULL}), GEN_OK);
}

/* "NAME D0xD1..." of parameter i, group checked against the name's G./D. */
static const char *describe(const struct gen_params *ps, int i) {
    static char buf[128];
    const struct gen_param *p = &ps->p[i];
    assert_int_equal(p->group, p->name[0] == 'G' ? GEN_GAN_G : GEN_GAN_D);
    int n = snprintf(buf, sizeof buf, "%s ", p->name);
    for (int d = 0; d < p->t.ndim; d++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", d ? "x" : "",
                      (long long)p->t.shape[d]);
    return buf;
}

/* The tiny GAN's tensors in checkpoint order, as before --conditional. */
static const char *const tiny_params[] = {"G.fc.weight 32x6",
                                          "G.bn0.weight 8",
                                          "G.bn0.bias 8",
                                          "G.bn0.running_mean 8",
                                          "G.bn0.running_var 8",
                                          "G.deconv1.weight 8x4x4x4",
                                          "G.bn1.weight 4",
                                          "G.bn1.bias 4",
                                          "G.bn1.running_mean 4",
                                          "G.bn1.running_var 4",
                                          "G.deconv2.weight 4x1x4x4",
                                          "G.deconv2.bias 1",
                                          "D.conv1.weight 4x1x4x4",
                                          "D.conv1.bias 4",
                                          "D.conv2.weight 8x4x4x4",
                                          "D.bn2.weight 8",
                                          "D.bn2.bias 8",
                                          "D.bn2.running_mean 8",
                                          "D.bn2.running_var 8",
                                          "D.fc.weight 1x32",
                                          "D.fc.bias 1",
                                          NULL};

/* --conditional adds G.label_emb (K, K) and D.embed (K, features) after
 * every other tensor, and widens G.fc to latent + K inputs; without it the
 * tensors are those of before. Data of one class cannot condition. */
static void test_conditional_parameters(void **state) {
    (void)state;
    struct gen_gan m;
    struct gen_model_info info;
    create(&m, &info, 8, 0, (const char *[]){TINY, NULL});
    int n = 0;
    for (; tiny_params[n]; n++) assert_string_equal(describe(&m.ps, n), tiny_params[n]);
    assert_int_equal(m.ps.count, n);
    assert_int_equal(info.classes, 0);
    gen_gan_free(&m);

    create_tiny_conditional(&m, &info, 0);
    assert_int_equal(info.classes, TINY_K);
    assert_int_equal(m.ps.count, n + 2);
    assert_string_equal(describe(&m.ps, 0), "G.fc.weight 32x9");
    for (int i = 1; i < n; i++) assert_string_equal(describe(&m.ps, i), tiny_params[i]);
    assert_int_equal(m.g_label_emb, n);
    assert_int_equal(m.d_embed, n + 1);
    assert_string_equal(describe(&m.ps, n), "G.label_emb.weight 3x3");
    assert_string_equal(describe(&m.ps, n + 1), "D.embed.weight 3x32");
    /* G's table on z's scale, N(0, 1); D's N(0, 0.02) as DCGAN's weights */
    const struct gen_tensor *ge = &m.ps.p[n].t, *de = &m.ps.p[n + 1].t;
    float gmax = 0, dmax = 0;
    for (int64_t i = 0; i < gen_numel(ge); i++) gmax = fmaxf(gmax, fabsf(ge->data[i]));
    for (int64_t i = 0; i < gen_numel(de); i++) dmax = fmaxf(dmax, fabsf(de->data[i]));
    assert_true(gmax > 0.5f && gmax < 5.0f);
    assert_true(dmax > 0.01f && dmax < 0.15f);
    gen_gan_free(&m);

    assert_int_equal(create_k(&m, &info, 8, 1, 0, (const char *[]){TINY, "--conditional", NULL}),
                     GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "--conditional"));
    gen_gan_free(&m);
    assert_int_equal(create_k(&m, &info, 8, 1, 0, (const char *[]){TINY, NULL}), GEN_OK);
    gen_gan_free(&m);
}

/* Sum of squares of rows [k0, k1) of a (K, W) gradient. */
static double rows_sq(const struct gen_tensor *t, int64_t k0, int64_t k1) {
    double s = 0;
    const int64_t W = t->shape[1];
    for (int64_t i = k0 * W; i < k1 * W; i++) s += (double)t->grad[i] * t->grad[i];
    return s;
}

/* A conditional step on a batch of classes 0 and 1 (of 3): D's phase
 * trains D.embed's rows of those classes and leaves G's table alone (the
 * fakes are detached); G's phase trains G.label_emb's, D frozen; class 2's
 * rows get no gradient and stay put under Adam. Then a few steps more:
 * finite losses. */
static void test_conditional_step(void **state) {
    (void)state;
    enum { B = 6 };
    struct gen_gan m;
    struct gen_model_info info;
    create_tiny_conditional(&m, &info, 2);
    struct gen_ctx g;
    gen_ctx_init(&g);
    const int32_t y[B] = {0, 1, 0, 1, 1, 0};
    float xs[B * 64], zs[B * 6], before[2][TINY_K * 32];
    tu_fill_uniform(xs, B * 64, -1, 1, 3);
    struct gen_rng r;
    gen_rng_seed(&r, 4);
    gen_rng_fill_normal(&r, zs, B * 6, 0, 1);
    struct gen_tensor *ge = &m.ps.p[m.g_label_emb].t, *de = &m.ps.p[m.d_embed].t;
    memcpy(before[0], ge->data, sizeof(float) * TINY_K * TINY_K);
    memcpy(before[1], de->data, sizeof(float) * TINY_K * 32);
    const float lr[2] = {1e-3f, 1e-3f};
    double fields[GEN_GAN_N_FIELDS];
    for (int s = 0; s < 5; s++) {
        struct gen_tensor *x = gen_tensor_wrap(&g, xs, 4, (int64_t[]){B, 1, 8, 8});
        struct gen_tensor *z = gen_tensor_wrap(&g, zs, 2, (int64_t[]){B, 6});
        if (s > 0) {
            step_y(&g, &m, &info, x, y, z, lr, fields);
            continue;
        }
        phase_backward(&g, &m, &info, x, y, z, GEN_GAN_PHASE_D, fields);
        assert_true(rows_sq(de, 0, 2) > 0 && rows_sq(de, 2, 3) == 0);
        assert_true(rows_sq(ge, 0, TINY_K) == 0);
        gen_optim_step(&info.phase[0].optim, &m.ps, info.phase[0].group, lr[0]);
        phase_backward(&g, &m, &info, x, y, z, GEN_GAN_PHASE_G, fields);
        assert_true(rows_sq(ge, 0, 2) > 0 && rows_sq(ge, 2, 3) == 0);
        assert_true(rows_sq(de, 0, TINY_K) == 0);
        gen_optim_step(&info.phase[1].optim, &m.ps, info.phase[1].group, lr[1]);
        gen_ctx_reset(&g);
    }
    for (int i = 0; i < GEN_GAN_N_FIELDS; i++) assert_true(isfinite(fields[i]));
    assert_true(fields[GEN_GAN_D_LOSS] > 0 && fields[GEN_GAN_G_LOSS] > 0);
    assert_int_equal(gen_params_first_nonfinite(&m.ps), -1);
    /* rows 0 and 1 moved, row 2 did not */
    assert_true(memcmp(ge->data, before[0], sizeof(float) * 2 * TINY_K) != 0);
    assert_memory_equal(ge->data + 2 * TINY_K, before[0] + 2 * TINY_K, sizeof(float) * TINY_K);
    assert_true(memcmp(de->data, before[1], sizeof(float) * 2 * 32) != 0);
    assert_memory_equal(de->data + 2 * 32, before[1] + 2 * 32, sizeof(float) * 32);
    gen_ctx_free(&g);
    gen_gan_free(&m);
}

/* D(x, y) = fc(phi(x)) + <embed[y], phi(x)>, checked through what that
 * implies for L = sum over the batch of D(x, y): L is linear in the
 * table, so L(embed) - L(0) = <embed, dL/dembed>; and the rows of
 * dL/dembed sum to dL/dfc.weight (both are the sum of the phi(x) of the
 * batch, so phi is exactly fc's input). */
static void test_projection_discriminator(void **state) {
    (void)state;
    enum { B = 5, F = 32 };
    struct gen_gan m;
    struct gen_model_info info;
    create_tiny_conditional(&m, &info, 6);
    struct gen_ctx g;
    gen_ctx_init(&g);
    g.training = 0; /* running statistics: L depends on the weights alone */
    const int32_t y[B] = {2, 0, 2, 1, 2};
    float xs[B * 64];
    tu_fill_uniform(xs, B * 64, -1, 1, 8);
    struct gen_tensor *x = gen_tensor_wrap(&g, xs, 4, (int64_t[]){B, 1, 8, 8});
    struct gen_tensor *de = &m.ps.p[m.d_embed].t, *fc = &m.ps.p[m.d_fc.w].t;
    gen_params_zero_grad(&m.ps);
    struct gen_tensor *L = gen_sum(&g, gen_gan_discriminator(&g, &m, x, y));
    const double l_embed = L->data[0];
    gen_backward(&g, L);
    double dot = 0;
    for (int64_t i = 0; i < TINY_K * F; i++) dot += (double)de->data[i] * de->grad[i];
    for (int64_t f = 0; f < F; f++) {
        double s = 0;
        for (int k = 0; k < TINY_K; k++) s += de->grad[k * F + f];
        assert_true(fabs(s - fc->grad[f]) <= 1e-5 * (1 + fabs(s)));
    }
    memset(de->data, 0, sizeof(float) * TINY_K * F);
    gen_no_grad_begin(&g);
    const double l_zero = gen_sum(&g, gen_gan_discriminator(&g, &m, x, y))->data[0];
    gen_no_grad_end(&g);
    assert_true(fabs(dot) > 1e-3);
    assert_true(fabs(l_embed - l_zero - dot) <= 1e-4 * (1 + fabs(dot)));
    gen_ctx_free(&g);
    gen_gan_free(&m);
}

/* The tiny conditional GAN's images for a request through the generate
 * verb (opts: sample options, or NULL); the caller frees out->images. */
static enum gen_status generate(struct gen_gan *m, const struct gen_config *opts, int64_t n,
                                const int32_t *labels, uint64_t seed, struct gen_output *out) {
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    const struct gen_request req = {.n = n, .seed = seed, .labels = labels};
    memset(out, 0, sizeof *out);
    enum gen_status st = gen_family_gan.generate(m, &g, opts, &req, out);
    gen_ctx_free(&g);
    return st;
}

static int same_images(const struct gen_output *a, const struct gen_output *b, int64_t i) {
    return !memcmp(a->images + i * 64, b->images + i * 64, 64 * sizeof(float));
}

/* Generation honours the classes asked for: other classes, other images;
 * the same request, the same bytes; an image depends on its own latent and
 * class only (not on the other images' classes); no labels means classes
 * in turn, and walks keep one class per row. The BN statistics are left as
 * they were, and an unconditional model refuses labels. */
static void test_conditional_generate(void **state) {
    (void)state;
    enum { N = 6 };
    struct gen_gan m;
    struct gen_model_info info;
    create_tiny_conditional(&m, &info, 3);
    float buffers[40];
    assert_int_equal(m.ps.n_buffer, 40); /* G: 2 (8 + 4), D: 2 8 */
    memcpy(buffers, m.ps.buffers, (size_t)m.ps.n_buffer * sizeof(float));
    const int32_t zeros[N] = {0}, ones[N] = {1, 1, 1, 1, 1, 1}, mixed[N] = {0, 1, 0, 1, 0, 1},
                  turns[N] = {0, 1, 2, 0, 1, 2};
    struct gen_output a, b, c;
    assert_int_equal(generate(&m, NULL, N, zeros, 7, &a), GEN_OK);
    assert_int_equal(a.n_images, N);
    assert_int_equal(a.h, 8);
    assert_int_equal(generate(&m, NULL, N, ones, 7, &b), GEN_OK);
    for (int i = 0; i < N; i++) assert_false(same_images(&a, &b, i));
    gen_free(b.images);
    assert_int_equal(generate(&m, NULL, N, zeros, 7, &b), GEN_OK);
    assert_memory_equal(a.images, b.images, N * 64 * sizeof(float));
    gen_free(b.images);
    assert_int_equal(generate(&m, NULL, N, mixed, 7, &b), GEN_OK);
    for (int i = 0; i < N; i++) assert_int_equal(same_images(&a, &b, i), i % 2 == 0);
    gen_free(b.images);
    assert_int_equal(generate(&m, NULL, N, NULL, 7, &b), GEN_OK);
    assert_int_equal(generate(&m, NULL, N, turns, 7, &c), GEN_OK);
    assert_memory_equal(b.images, c.images, N * 64 * sizeof(float));
    gen_free(a.images), gen_free(b.images), gen_free(c.images);
    /* --interpolate, 9 images: rows of 3, row r of class r */
    struct gen_config *walk = parse(GEN_CMD_SAMPLE, (const char *[]){"--interpolate", NULL});
    const int32_t rows[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    assert_int_equal(generate(&m, walk, 9, NULL, 5, &a), GEN_OK);
    assert_int_equal(a.cols, 3);
    assert_int_equal(generate(&m, walk, 9, rows, 5, &b), GEN_OK);
    assert_memory_equal(a.images, b.images, 9 * 64 * sizeof(float));
    gen_free(a.images), gen_free(b.images);
    config_free(walk);
    assert_memory_equal(m.ps.buffers, buffers, (size_t)m.ps.n_buffer * sizeof(float));
    gen_gan_free(&m);

    create(&m, &info, 8, 3, (const char *[]){TINY, NULL});
    assert_int_equal(generate(&m, NULL, N, zeros, 7, &a), GEN_ERR_USAGE);
    assert_non_null(strstr(gen_last_error(), "--conditional"));
    gen_free(a.images);
    gen_gan_free(&m);
}

/* ---- through the command line ---- */

struct tmp {
    char *root;
    char data[512], run[512], path[700];
};

static void tmp_open(struct tmp *t, int n_images) {
    t->root = tu_mkdtemp();
    assert_non_null(t->root);
    snprintf(t->data, sizeof t->data, "%s/data", t->root);
    assert_int_equal(gen_mkdir_p(t->data), GEN_OK);
    if (n_images) make_idx_dir(t->data, n_images, 11);
    snprintf(t->run, sizeof t->run, "%s/run", t->root);
}

static void tmp_close(struct tmp *t) {
    tu_rmtree(t->root);
    free(t->root);
}

/* Narrow networks and one thread keep each run to a fraction of a second
 * (OpenMP barriers on an oversubscribed machine cost more than the work). */
#define SMALL                                                                                      \
    "--batch", "16", "--g-width", "8", "--d-width", "8", "--latent", "16", "--threads", "1",       \
        "--quiet"

/* The last training grid (64 images from the engine's snapshot seed,
 * SNAPSHOT_SEED in src/cli/trainer.c) equals `gen sample -n 64 --seed
 * 20240601` from the saved checkpoint: same weights, EMA and noise. */
static void test_checkpoint_round_trip(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 40);
    const char *train[] = {"gen",     "train", "gan",   "--data", t.data, "--out", t.run,
                           "--steps", "5",     "--ema", "0.9",    SMALL,  NULL};
    assert_int_equal(run_cli(train), 0);
    char ckpt[700], grid[700], a[700], b[700], c[700], d[700];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", t.run);
    snprintf(grid, sizeof grid, "%s/samples-00000005.png", t.run);
    snprintf(a, sizeof a, "%s/a.png", t.root);
    snprintf(b, sizeof b, "%s/b.png", t.root);
    snprintf(c, sizeof c, "%s/c.png", t.root);
    snprintf(d, sizeof d, "%s/d.png", t.root);
    const char *s0[] = {"gen", "sample", "gan",    "--ckpt",   ckpt,      "-n", "64",
                        "-o",  a,        "--seed", "20240601", "--quiet", NULL};
    assert_int_equal(run_cli(s0), 0);
    tu_assert_same_file(grid, a);
    const char *s1[] = {"gen", "sample", "gan",    "--ckpt", ckpt,      "-n", "64",
                        "-o",  b,        "--seed", "1",      "--quiet", NULL};
    assert_int_equal(run_cli(s1), 0);
    const char *s2[] = {"gen", "sample", "gan",    "--ckpt", ckpt,      "-n", "64",
                        "-o",  c,        "--seed", "1",      "--quiet", NULL};
    assert_int_equal(run_cli(s2), 0);
    tu_assert_same_file(b, c);
    size_t la, lb;
    char *ca = tu_read_file(a, &la), *cb = tu_read_file(b, &lb);
    assert_true(la != lb || memcmp(ca, cb, la) != 0); /* another seed, other images */
    free(ca);
    free(cb);
    /* The raw weights give other images than the EMA. */
    const char *s3[] = {"gen", "sample", "gan", "--ckpt",   ckpt,      "-n",
                        "64",  "-o",     d,     "--no-ema", "--quiet", NULL};
    assert_int_equal(run_cli(s3), 0);
    ca = tu_read_file(a, &la), cb = tu_read_file(d, &lb);
    assert_true(la != lb || memcmp(ca, cb, la) != 0);
    free(ca);
    free(cb);
    /* --interpolate and a folder of single images. */
    snprintf(t.path, sizeof t.path, "%s/each/", t.root);
    const char *s4[] = {"gen", "sample", "gan",  "--ckpt",        ckpt,      "-n",
                        "12",  "-o",     t.path, "--interpolate", "--quiet", NULL};
    assert_int_equal(run_cli(s4), 0);
    struct gen_image_set set = {0};
    assert_int_equal(gen_images_load(t.path, GEN_SPLIT_ALL, 0, 0, &set), GEN_OK);
    assert_int_equal(set.n, 12);
    assert_int_equal(set.c, 1); /* an image folder keeps its images' channels: grey */
    assert_int_equal(set.h, 28);
    gen_image_set_free(&set);
    tmp_close(&t);
}

/* Train 2N steps == N steps, then resume to 2N: the same checkpoint bytes
 * (weights, both Adam states, EMA, BN statistics, rngs, data cursor),
 * across epoch ends (40 images, batch 16) and with grids written at
 * different steps in the two runs. */
static void test_resume_equals_uninterrupted(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 40);
    char a[600], b[600], pa[700], pb[700];
    snprintf(a, sizeof a, "%s/a", t.root);
    snprintf(b, sizeof b, "%s/b", t.root);
    const char *full[] = {"gen", "train", "gan",  "--data",         t.data, "--out", a,   "--steps",
                          "8",   "--ema", "0.99", "--sample-every", "2",    SMALL,   NULL};
    assert_int_equal(run_cli(full), 0);
    const char *first[] = {"gen", "train",   "gan", "--data", t.data, "--out",
                           b,     "--steps", "3",   "--ema",  "0.99", "--sample-every",
                           "2",   SMALL,     NULL};
    assert_int_equal(run_cli(first), 0);
    const char *rest[] = {"gen", "train",    "gan", "--data", t.data, "--out",
                          b,     "--steps",  "8",   "--ema",  "0.99", "--sample-every",
                          "2",   "--resume", SMALL, NULL};
    assert_int_equal(run_cli(rest), 0);
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", b);
    tu_assert_same_file(pa, pb);
    tmp_close(&t);
}

/* A folder of RGB PNGs (40x40, cropped/resized to 32) trains at 32x32x3
 * and samples 32x32 RGB images. */
static void test_rgb_image_folder(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 0);
    struct gen_rng r;
    gen_rng_seed(&r, 5);
    uint8_t px[40 * 40 * 3];
    for (int i = 0; i < 24; i++) {
        uint8_t col[3] = {(uint8_t)gen_rng_below(&r, 256), (uint8_t)gen_rng_below(&r, 256),
                          (uint8_t)gen_rng_below(&r, 256)};
        int x0 = (int)gen_rng_below(&r, 20), y0 = (int)gen_rng_below(&r, 20);
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++)
                for (int k = 0; k < 3; k++) {
                    int in = x >= x0 && x < x0 + 16 && y >= y0 && y < y0 + 16;
                    px[(y * 40 + x) * 3 + k] = in ? col[k] : (uint8_t)(20 * k);
                }
        snprintf(t.path, sizeof t.path, "%s/img%02d.png", t.data, i);
        assert_int_equal(gen_png_write(t.path, 40, 40, 3, px), GEN_OK);
    }
    const char *train[] = {"gen",   "train",      "gan",     "--data", t.data,
                           "--out", t.run,        "--steps", "4",      "--image-size",
                           "32",    "--channels", "3",       SMALL,    NULL};
    assert_int_equal(run_cli(train), 0);
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", t.run);
    snprintf(t.path, sizeof t.path, "%s/out/", t.root);
    const char *sample[] = {"gen", "sample", "gan",  "--ckpt",  ckpt, "-n",
                            "5",   "-o",     t.path, "--quiet", NULL};
    assert_int_equal(run_cli(sample), 0);
    struct gen_image_set set = {0};
    assert_int_equal(gen_images_load(t.path, GEN_SPLIT_ALL, 3, 0, &set), GEN_OK);
    assert_int_equal(set.n, 5);
    assert_int_equal(set.h, 32);
    assert_int_equal(set.w, 32);
    gen_image_set_free(&set);
    tmp_close(&t);
}

/* D alone against a frozen G wins within a few dozen steps: the watch
 * fires, training stops after saving, and resuming from there (watch off)
 * gives what an uninterrupted run gives. */
static void test_stop_on_divergence(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 40);
    char a[600], pa[700], pb[700];
    snprintf(a, sizeof a, "%s/a", t.root);
    const char *train[] = {"gen",  "train",
                           "gan",  "--data",
                           t.data, "--out",
                           t.run,  "--steps",
                           "400",  "--lr-g",
                           "0",    "--lr-d",
                           "5e-3", "--divergence-window",
                           "20",   "--stop-on-divergence",
                           SMALL,  NULL};
    assert_int_equal(run_cli(train), 1);
    assert_non_null(strstr(gen_last_error(), "diverged"));
    assert_non_null(strstr(gen_last_error(), "checkpoint.safetensors"));
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", t.run);
    struct gen_ckpt_meta meta = {0};
    assert_int_equal(gen_ckpt_read_meta(pb, &meta), GEN_OK);
    long step = strtol(gen_ckpt_meta_get(&meta, "step"), NULL, 10);
    gen_ckpt_meta_free(&meta);
    fprintf(stderr, "  stopped at step %ld\n", step);
    assert_true(step >= 20 && step < 400 && step % 4 == 0);
    char steps[32];
    snprintf(steps, sizeof steps, "%ld", step + 3);
    const char *rest[] = {"gen",   "train",  "gan",     "--data",   t.data,
                          "--out", t.run,    "--steps", steps,      "--lr-g",
                          "0",     "--lr-d", "5e-3",    "--resume", "--divergence-window",
                          "0",     SMALL,    NULL};
    assert_int_equal(run_cli(rest), 0);
    /* Uninterrupted, with the options the resumed run ended with (the
     * checkpoint stores them): no watch, so no stop. */
    const char *full[] = {"gen",  "train",
                          "gan",  "--data",
                          t.data, "--out",
                          a,      "--steps",
                          steps,  "--lr-g",
                          "0",    "--lr-d",
                          "5e-3", "--divergence-window",
                          "0",    "--stop-on-divergence",
                          SMALL,  NULL};
    assert_int_equal(run_cli(full), 0);
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a);
    tu_assert_same_file(pa, pb);
    tmp_close(&t);
}

/* gen eval gan: generated images and a folder of PNGs, scored with a
 * (tiny, briefly trained) classifier. */
static void test_eval(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 40);
    char clf[600], clf_ckpt[700], ckpt[700];
    snprintf(clf, sizeof clf, "%s/clf", t.root);
    snprintf(clf_ckpt, sizeof clf_ckpt, "%s/checkpoint.safetensors", clf);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", t.run);
    const char *train_clf[] = {"gen", "train",     "classifier", "--data",  t.data, "--out",
                               clf,   "--steps",   "2",          "--batch", "16",   "--filters",
                               "4",   "--threads", "1",          "--quiet", NULL};
    assert_int_equal(run_cli(train_clf), 0);
    const char *train[] = {"gen", "train",   "gan", "--data", t.data, "--out",
                           t.run, "--steps", "2",   SMALL,    NULL};
    assert_int_equal(run_cli(train), 0);
    const char *eval[] = {"gen",          "eval",      "gan",    "--ckpt",  ckpt,
                          "--classifier", clf_ckpt,    "--data", t.data,    "-n",
                          "20",           "--threads", "1",      "--quiet", NULL};
    assert_int_equal(run_cli(eval), 0);
    snprintf(t.path, sizeof t.path, "%s/samples/", t.root);
    const char *sample[] = {"gen", "sample", "gan",  "--ckpt",  ckpt, "-n",
                            "20",  "-o",     t.path, "--quiet", NULL};
    assert_int_equal(run_cli(sample), 0);
    const char *eval_dir[] = {"gen",    "eval",   "gan",  "--samples", t.path, "--classifier",
                              clf_ckpt, "--data", t.data, "--threads", "1",    "--quiet",
                              NULL};
    assert_int_equal(run_cli(eval_dir), 0);
    tmp_close(&t);
}

/* The image folder dir holds n images of k classes (one subfolder each). */
static void assert_labelled_folder(const char *dir, int n, int k) {
    struct gen_image_set set = {0};
    assert_int_equal(gen_images_load(dir, GEN_SPLIT_ALL, 1, 0, &set), GEN_OK);
    assert_int_equal(set.n, n);
    assert_int_equal(set.n_classes, k);
    gen_image_set_free(&set);
}

/* --conditional through the command line on data of 10 classes: training
 * resumes bit-exactly (the classes come with the data cursor), sampling
 * by class and a labelled folder work, and an unconditional model refuses
 * --class (exit 2). */
static void test_conditional_cli(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 40);
    char a[600], b[600], pa[700], pb[700], grid[700];
    snprintf(a, sizeof a, "%s/a", t.root);
    snprintf(b, sizeof b, "%s/b", t.root);
    const char *full[] = {"gen",     "train", "gan",   "--data", t.data,          "--out", a,
                          "--steps", "6",     "--ema", "0.9",    "--conditional", SMALL,   NULL};
    assert_int_equal(run_cli(full), 0);
    const char *first[] = {"gen",     "train", "gan",   "--data", t.data,          "--out", b,
                           "--steps", "3",     "--ema", "0.9",    "--conditional", SMALL,   NULL};
    assert_int_equal(run_cli(first), 0);
    const char *rest[] = {"gen",      "train",   "gan", "--data", t.data, "--out",
                          b,          "--steps", "6",   "--ema",  "0.9",  "--conditional",
                          "--resume", SMALL,     NULL};
    assert_int_equal(run_cli(rest), 0);
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", b);
    tu_assert_same_file(pa, pb);
    snprintf(grid, sizeof grid, "%s/all.png", t.root);
    const char *all[] = {"gen", "sample", "gan", "--ckpt", pa,        "--class", "all",
                         "-n",  "2",      "-o",  grid,     "--quiet", NULL};
    assert_int_equal(run_cli(all), 0);
    snprintf(t.path, sizeof t.path, "%s/synth/", t.root);
    const char *per[] = {"gen", "sample", "gan",  "--ckpt",  pa,  "--per-class",
                         "2",   "-o",     t.path, "--quiet", NULL};
    assert_int_equal(run_cli(per), 0);
    assert_labelled_folder(t.path, 20, 10);
    const char *plain[] = {"gen", "train",   "gan", "--data", t.data, "--out",
                           t.run, "--steps", "1",   SMALL,    NULL};
    assert_int_equal(run_cli(plain), 0);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", t.run);
    const char *refused[] = {"gen", "sample", "gan", "--ckpt",  pb,  "--class",
                             "1",   "-o",     grid,  "--quiet", NULL};
    assert_int_equal(run_cli(refused), 2);
    assert_non_null(strstr(gen_last_error(), "unconditional"));
    tmp_close(&t);
}

static void test_bad_input(void **state) {
    (void)state;
    struct tmp t;
    tmp_open(&t, 20);
    const char *size[] = {"gen",     "train", "gan",          "--data", t.data, "--out", t.run,
                          "--steps", "1",     "--image-size", "30",     SMALL,  NULL};
    assert_int_equal(run_cli(size), 2);
    assert_non_null(strstr(gen_last_error(), "--image-size"));
    const char *chan[] = {"gen",     "train", "gan",        "--data", t.data, "--out", t.run,
                          "--steps", "1",     "--channels", "2",      SMALL,  NULL};
    assert_int_equal(run_cli(chan), 2);
    assert_non_null(strstr(gen_last_error(), "--channels"));
    snprintf(t.path, sizeof t.path, "%s/nowhere", t.root);
    const char *nodata[] = {"gen", "train",   "gan", "--data", t.path, "--out",
                            t.run, "--steps", "1",   SMALL,    NULL};
    assert_int_equal(run_cli(nodata), 1);
    assert_non_null(strstr(gen_last_error(), t.path));
    const char *nockpt[] = {"gen", "sample", "gan", "--ckpt", t.path, "--quiet", NULL};
    assert_int_equal(run_cli(nockpt), 1);
    assert_non_null(strstr(gen_last_error(), t.path));
    snprintf(t.path, sizeof t.path, "%s/junk.safetensors", t.root);
    FILE *f = fopen(t.path, "wb");
    fputs("not a checkpoint at all", f);
    fclose(f);
    const char *junk[] = {"gen", "sample", "gan", "--ckpt", t.path, "--quiet", NULL};
    assert_int_equal(run_cli(junk), 1);
    assert_non_null(strstr(gen_last_error(), t.path));
    const char *resume[] = {"gen",     "train", "gan",      "--data", t.data, "--out", t.run,
                            "--steps", "1",     "--resume", t.path,   SMALL,  NULL};
    assert_int_equal(run_cli(resume), 1);
    assert_non_null(strstr(gen_last_error(), t.path));
    tmp_close(&t);
}

int main(void) {
    gen_threads_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_matches_pytorch),
        cmocka_unit_test(test_learns_on_real_subset),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_conditional_parameters),
        cmocka_unit_test(test_conditional_step_matches_pytorch),
        cmocka_unit_test(test_conditional_step),
        cmocka_unit_test(test_projection_discriminator),
        cmocka_unit_test(test_conditional_generate),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_resume_equals_uninterrupted),
        cmocka_unit_test(test_rgb_image_folder),
        cmocka_unit_test(test_stop_on_divergence),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_conditional_cli),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
