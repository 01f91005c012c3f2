/* test_engine.c - the engine's model loading against hostile checkpoints,
 * and its stored configs: a checkpoint whose config claims a model far
 * larger than its tensors fails before it takes the memory; unknown and
 * renamed options in a stored config; the option tables' resume flags. */
#include <math.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "testutil.h"

/* A VAE checkpoint of two small tensors whose config says --hidden N. */
static void write_forged(const char *path, long hidden) {
    char config[256];
    snprintf(config, sizeof config,
             "{\"data\":\"x\",\"batch\":8,\"lr\":0.001,\"latent\":4,\"hidden\":%ld,\"arch\":\"mlp\"}",
             hidden);
    const int64_t shape[1] = {4};
    const float zeros[4] = {0};
    const struct gen_st_entry t[1] = {{"fc1.bias", 1, shape, zeros, GEN_ST_F32, NULL}};
    const struct gen_kv meta[4] = {
        {"format", "gen"},
        {"family", "vae"},
        {"config", config},
        {"data_shape", "{\"kind\":\"images\",\"channels\":3,\"height\":256,\"width\":256,\"classes\":10}"},
    };
    assert_int_equal(gen_st_save(path, t, 1, meta, 4), GEN_OK);
}

static void test_forged_config_fails_before_allocating(void **state) {
    (void)state;
    const char *path = tu_tmp_path("forged.safetensors");
    write_forged(path, 65536); /* 196608 x 65536 floats: 51 GB per block */
    struct gen_model em;
    gen_clear_error();
    assert_int_equal(gen_model_load(&em, gen_family_find("vae"), path, 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "forged.safetensors"));
    assert_non_null(strstr(gen_last_error(), "larger than the tensors"));
}

static void test_shape_mismatch_names_tensor(void **state) {
    (void)state;
    const char *path = tu_tmp_path("small.safetensors");
    write_forged(path, 4); /* fits the bound; its tensors do not fit the model */
    struct gen_model em;
    assert_int_not_equal(gen_model_load(&em, gen_family_find("vae"), path, 0, NULL), GEN_OK);
    assert_non_null(strstr(gen_last_error(), "small.safetensors"));
}

static void test_config_round_trip(void **state) {
    (void)state;
    const struct gen_family *fam = gen_family_find("vae");
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    struct gen_config cfg = {0};
    char *argv[] = {"--hidden", "32", "--lr", "0.0003", "--out", "somewhere", "--threads", "1"};
    assert_int_equal(gen_config_parse(&cfg, tables, 8, argv), GEN_OK);
    char *json = gen_config_json(&cfg);
    /* what a run is, not how this invocation runs it */
    assert_non_null(strstr(json, "\"hidden\":32"));
    assert_non_null(strstr(json, "\"lr\":0.0003"));
    assert_non_null(strstr(json, "\"data\":\"data/fashion-mnist\""));
    assert_null(strstr(json, "somewhere"));
    assert_null(strstr(json, "threads"));
    free(json);
    gen_config_free(&cfg);
}

static void test_resume_flags(void **state) {
    (void)state;
    /* The learning rate and the run's length may change on resume; the
     * model's shape and its data may not. */
    const struct gen_family *fam = gen_family_find("vae");
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    assert_true(gen_option_find(tables, "lr")->flags & GEN_OPT_RUN_ONLY);
    assert_true(gen_option_find(tables, "steps")->flags & GEN_OPT_RUN_ONLY);
    assert_false(gen_option_find(tables, "hidden")->flags & GEN_OPT_RUN_ONLY);
    assert_false(gen_option_find(tables, "data")->flags & GEN_OPT_RUN_ONLY);
    assert_false(gen_option_find(tables, "batch")->flags & GEN_OPT_RUN_ONLY);
}

/* A checkpoint whose weights hold a NaN is refused at load, naming the
 * tensor (it would sample NaN images without a word). */
/* A conditional VAE of 4 x 4 images, hidden width 8, latent 2, and with
 * an EMA given `ema` (its --ema). */
static const struct gen_family *small_vae(struct gen_model *em, const char *ema, uint64_t seed) {
    const struct gen_family *fam = gen_family_find("vae");
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    struct gen_config cfg = {0};
    char *argv[] = {"--hidden", "8", "--latent", "2", "--ema", (char *)(ema ? ema : "0")};
    assert_int_equal(gen_config_parse(&cfg, tables, 6, argv), GEN_OK);
    const struct gen_data_shape shape = {.kind = GEN_DATA_IMAGES, .c = 1, .h = 4, .w = 4,
                                         .n_classes = 2};
    assert_int_equal(gen_model_create(em, fam, &cfg, &shape, NULL, seed), GEN_OK);
    gen_config_free(&cfg);
    return fam;
}

static void test_nan_weights_refused(void **state) {
    (void)state;
    struct gen_model em, back;
    const struct gen_family *fam = small_vae(&em, NULL, 1);
    const char *path = tu_tmp_path("finite.safetensors");
    assert_int_equal(gen_model_save(&em, path, NULL, 0), GEN_OK);
    assert_int_equal(gen_model_load(&back, fam, path, 0, NULL), GEN_OK);
    gen_model_free(&back);
    struct gen_param *p = gen_params_find(em.info.ps, "fc3.bias");
    assert_non_null(p);
    p->t.data[1] = NAN;
    path = tu_tmp_path("nan.safetensors");
    assert_int_equal(gen_model_save(&em, path, NULL, 0), GEN_OK);
    assert_int_equal(gen_model_load(&back, fam, path, 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "nan.safetensors"));
    assert_non_null(strstr(gen_last_error(), "fc3.bias"));
    gen_model_free(&em);
}

/* gen_model_load builds its model without drawing initial values (the
 * file's overwrite every tensor): the model holds what was saved, bit for
 * bit; the initialisers draw again afterwards, after a refused file too;
 * and while skipped they leave a tensor and the rng as they were. The
 * model it builds runs forward only: no gradients, no optimiser moments,
 * no tensor that requires a gradient; models built after it (and after a
 * refused file) have them again. */
static void test_load_skips_init(void **state) {
    (void)state;
    struct gen_model em, back;
    const struct gen_family *fam = small_vae(&em, "0.9", 7);
    const struct gen_params *ps = em.info.ps;
    for (int64_t i = 0; i < ps->n_train; i++) ps->ema[i] = ps->data[i] * 0.5f; /* not the weights */
    const char *path = tu_tmp_path("skip.safetensors");
    assert_int_equal(gen_model_save(&em, path, NULL, 0), GEN_OK);
    assert_int_equal(gen_model_load(&back, fam, path, GEN_CKPT_EMA, NULL), GEN_OK);
    assert_int_equal(gen_init_skip(0), 0);
    const struct gen_params *pb = back.info.ps;
    assert_int_equal(pb->n_train, ps->n_train);
    assert_memory_equal(pb->data, ps->data, (size_t)ps->n_train * sizeof(float));
    assert_memory_equal(pb->ema, ps->ema, (size_t)ps->n_train * sizeof(float));
    assert_null(pb->grad);
    assert_null(pb->m);
    assert_null(pb->v);
    for (int i = 0; i < pb->count; i++) {
        assert_null(pb->p[i].t.grad);
        assert_int_equal(pb->p[i].t.requires_grad, 0);
    }
    gen_model_free(&back);
    gen_model_free(&em);
    assert_int_not_equal(gen_model_load(&back, fam, tu_tmp_path("absent.safetensors"), 0, NULL),
                         GEN_OK);
    assert_int_equal(gen_init_skip(0), 0);
    assert_int_equal(gen_params_forward_only(0), 0);
    small_vae(&em, NULL, 7); /* a model to train: every block */
    assert_non_null(em.info.ps->grad);
    assert_non_null(em.info.ps->m);
    assert_non_null(em.info.ps->v);
    assert_int_equal(gen_params_find(em.info.ps, "fc3.bias")->t.requires_grad, 1);
    gen_model_free(&em);

    float v[4] = {0};
    struct gen_tensor t = {.data = v, .ndim = 1, .shape = {4}};
    struct gen_rng r, r0;
    gen_rng_seed(&r, 3);
    r0 = r;
    assert_int_equal(gen_init_skip(1), 0);
    gen_init_normal(&t, 1.0f, 1.0f, &r);
    gen_init_uniform_fan_in(&t, 2, &r);
    gen_init_const(&t, 5.0f);
    assert_int_equal(gen_init_skip(0), 1);
    for (int i = 0; i < 4; i++) assert_true(v[i] == 0.0f);
    assert_memory_equal(&r, &r0, sizeof r);
    gen_init_normal(&t, 1.0f, 1.0f, &r);
    assert_true(v[0] != 0.0f);
}

/* The commands name some family options through gen_family_options (a
 * family declares its own entry of that name): each must be declared by a
 * family, or the commands would be reading an option nobody has. */
static void test_family_options_exist(void **state) {
    (void)state;
    for (int i = 0; i < GEN_FAM_COUNT; i++) {
        const char *name = gen_family_options[i].name;
        int found = 0;
        for (int k = 0; gen_families[k] && !found; k++) {
            const struct gen_family *f = gen_families[k];
            const struct gen_option *const t[] = {f->train_options, f->sample_options,
                                                  f->eval_options};
            for (int j = 0; j < 3 && !found; j++)
                for (const struct gen_option *o = t[j]; o && o->name && !found; o++)
                    found = !strcmp(o->name, name) && o->type == gen_family_options[i].type;
        }
        if (!found) fprintf(stderr, "no family declares --%s\n", name);
        assert_true(found);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forged_config_fails_before_allocating),
        cmocka_unit_test(test_shape_mismatch_names_tensor),
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_resume_flags),
        cmocka_unit_test(test_nan_weights_refused),
        cmocka_unit_test(test_load_skips_init),
        cmocka_unit_test(test_family_options_exist),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
