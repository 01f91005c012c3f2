/* test_vae.c - the VAE family: one step against PyTorch, learning on real
 * data, checkpoint round trip, and resume == uninterrupted. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gen/io.h"
#include "models/vae.h"
#include "testutil.h"

static struct gen_vae model; /* large; one at a time */

static void test_step_matches_pytorch(void **state) {
    (void)state;
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(tu_source_path("tests/fixtures/vae_step.safetensors"), 0, &f),
                     GEN_OK);
    memset(&model, 0, sizeof model);
    assert_int_equal(gen_vae_build(&model, GEN_VAE_MLP, 1, 8, 8, 4, 16, 0, 0), GEN_OK);
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
    struct gen_tensor *bce, *kl;
    gen_vae_neg_elbo(&g, &model, tx, te, &bce, &kl);
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

static int have_data(void) {
    return access(tu_source_path("data/fashion-mnist"), F_OK) == 0;
}

static void test_learns_on_real_subset(void **state) {
    (void)state;
    if (!have_data()) {
        fprintf(stderr, "  data/fashion-mnist absent (scripts/fetch-data.sh): skipped\n");
        skip();
    }
    memset(&model, 0, sizeof model);
    const char *data = tu_source_path("data/fashion-mnist");
    struct gen_image_set train, test;
    assert_int_equal(gen_images_load(data, 1, 0, 0, &train), GEN_OK);
    assert_int_equal(gen_images_load(data, 0, 0, 0, &test), GEN_OK);
    assert_int_equal(train.n, 60000);
    test.n = 500; /* a subset keeps the test fast */
    assert_int_equal(gen_vae_build(&model, GEN_VAE_MLP, 1, 28, 28, 20, 200, 0, 3), GEN_OK);
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
        gen_backward(&g, gen_vae_loss(&g, &model, x, fields));
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

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    memset(&model, 0, sizeof model);
    assert_int_equal(gen_vae_build(&model, GEN_VAE_CONV, 1, 8, 8, 3, 16, 0, 1), GEN_OK);
    struct gen_ctx g;
    gen_ctx_init(&g);
    gen_no_grad_begin(&g);
    struct gen_rng r;
    gen_rng_seed(&r, 5);
    struct gen_tensor *a = gen_vae_generate(&g, &model, 6, &r);
    assert_int_equal(gen_ckpt_save(path, &model.ps, "vae", "{}", NULL, 0), GEN_OK);
    static struct gen_vae other;
    memset(&other, 0, sizeof other);
    assert_int_equal(gen_vae_build(&other, GEN_VAE_CONV, 1, 8, 8, 3, 16, 0, 2), GEN_OK);
    gen_rng_seed(&r, 5);
    struct gen_tensor *b = gen_vae_generate(&g, &other, 6, &r);
    assert_true(memcmp(a->data, b->data, (size_t)gen_numel(a) * sizeof(float)) != 0);
    assert_int_equal(gen_ckpt_load(path, &other.ps, "vae", 0, NULL), GEN_OK);
    gen_rng_seed(&r, 5);
    b = gen_vae_generate(&g, &other, 6, &r);
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
    if (!have_data()) skip();
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
        cmocka_unit_test(test_learns_on_real_subset),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_resume_equals_uninterrupted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
