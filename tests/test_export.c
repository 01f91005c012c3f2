/* test_export.c - `gen export` and what it stands on: binary16 and
 * bfloat16 rounding (every value and every midpoint: round to nearest,
 * ties to even), F16/BF16/I64 tensors written and read back, and the
 * export of a GAN that keeps an EMA of G: the weights alone (no optimiser
 * or EMA tensors), G's from the EMA and D's trained ones, BatchNorm's
 * num_batches_tracked, the dtype, the metadata, --no-ema, and refusals. */
#include <math.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/nn.h"
#include "testutil.h"

static int is_nan16(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* Every finite binary16 value h reads back as itself, and the float
 * halfway to the next one rounds to the even one of the two (the step
 * from the largest, 65504, leads to infinity); a hair either side of the
 * midpoint rounds to the nearer one. */
static void test_f16_rounding(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        for (uint32_t s = 0; s <= 0x8000; s += 0x8000) {
            const float v = gen_f16_to_f32((uint16_t)(h | s));
            assert_int_equal(gen_f32_to_f16(v), h | s);
            const float next = h + 1 < 0x7c00 ? gen_f16_to_f32((uint16_t)((h + 1) | s))
                                              : (s ? -65536.0f : 65536.0f);
            const float mid = v + (next - v) / 2; /* exact: 11-bit significands */
            const uint32_t even = (h & 1) ? h + 1 : h;
            assert_int_equal(gen_f32_to_f16(mid), even | s);
            assert_int_equal(gen_f32_to_f16(nextafterf(mid, v)), h | s);
            assert_int_equal(gen_f32_to_f16(nextafterf(mid, next)), (h + 1) | s);
        }
    }
    assert_int_equal(gen_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(gen_f32_to_f16(-2.5f), 0xc100);
    assert_int_equal(gen_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(gen_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(gen_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(gen_f32_to_f16(ldexpf(1, -25)), 0);  /* half the smallest: to even 0 */
    assert_int_equal(gen_f32_to_f16(ldexpf(3, -25)), 2);  /* 1.5 units: to even 2 */
    assert_int_equal(gen_f32_to_f16(ldexpf(3, -26)), 1);  /* 0.75 units: up to 1 */
    assert_int_equal(gen_f32_to_f16(1e-30f), 0);
    assert_int_equal(gen_f32_to_f16(-0.0f), 0x8000);
    assert_true(is_nan16(gen_f32_to_f16(NAN)));
    assert_true(isnan(gen_f16_to_f32(gen_f32_to_f16(-NAN))));
}

/* The same for bfloat16 (binary32's top half): every finite value, every
 * midpoint, and NaN stays NaN (the plain rounding would carry a NaN whose
 * payload sits in the low half into infinity). */
static void test_bf16_rounding(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x7f80; h++) {
        for (uint32_t s = 0; s <= 0x8000; s += 0x8000) {
            const uint32_t b = (h | s) << 16;
            float v, mid;
            memcpy(&v, &b, sizeof v);
            assert_int_equal(gen_f32_to_bf16(v), h | s);
            const uint32_t m = b | 0x8000u; /* halfway to the next */
            memcpy(&mid, &m, sizeof mid);
            const uint32_t even = (h & 1) ? h + 1 : h;
            assert_int_equal(gen_f32_to_bf16(mid), even | s);
            const uint32_t below = m - 1, above = m + 1;
            float fb, fa;
            memcpy(&fb, &below, sizeof fb);
            memcpy(&fa, &above, sizeof fa);
            assert_int_equal(gen_f32_to_bf16(fb), h | s);
            assert_int_equal(gen_f32_to_bf16(fa), (h + 1) | s);
            assert_true(gen_bf16_to_f32((uint16_t)(h | s)) == v);
        }
    }
    const uint32_t nan_low = 0x7f800001u; /* payload in the low half only */
    float f;
    memcpy(&f, &nan_low, sizeof f);
    assert_true(isnan(gen_bf16_to_f32(gen_f32_to_bf16(f))));
    assert_int_equal(gen_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(gen_f32_to_bf16(3.4e38f), 0x7f80); /* past the largest bfloat16 */
}

/* Tensors of every dtype written and read back as floats, an F32 one at an
 * offset that is not a multiple of 4 among them. */
static void test_typed_round_trip(void **state) {
    (void)state;
    const char *p = tu_tmp_path("typed.safetensors");
    const float a[3] = {1.0f, 1.0f / 3.0f, -70000.0f}, b[2] = {0.1f, -2.0f}, c[3] = {1, 2, 3};
    const int64_t n3[1] = {3}, n2[1] = {2}, big[1] = {123456789};
    const struct gen_st_entry e[4] = {
        {"half", 1, n3, a, GEN_ST_F16, NULL},
        {"f32_after_half", 1, n3, c, GEN_ST_F32, NULL},
        {"brain", 1, n2, b, GEN_ST_BF16, NULL},
        {"count", 0, NULL, NULL, GEN_ST_I64, big},
    };
    assert_int_equal(gen_st_save(p, e, 4, NULL, 0), GEN_OK);
    size_t len;
    char *raw = tu_read_file(p, &len);
    assert_non_null(strstr(raw + 8, "\"half\":{\"dtype\":\"F16\""));
    assert_non_null(strstr(raw + 8, "\"brain\":{\"dtype\":\"BF16\""));
    assert_non_null(strstr(raw + 8, "\"count\":{\"dtype\":\"I64\",\"shape\":[]"));
    free(raw);
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(p, 0, &f), GEN_OK);
    const struct gen_st_tensor *h = gen_st_find(f, "half"), *x = gen_st_find(f, "f32_after_half"),
                               *bf = gen_st_find(f, "brain"), *k = gen_st_find(f, "count");
    assert_int_equal(h->dtype, GEN_ST_F16);
    assert_int_equal(bf->dtype, GEN_ST_BF16);
    assert_int_equal(k->dtype, GEN_ST_I64);
    for (int i = 0; i < 3; i++) assert_true(h->data[i] == gen_f16_to_f32(gen_f32_to_f16(a[i])));
    assert_true(isinf(h->data[2]) && h->data[2] < 0);
    assert_memory_equal(x->data, c, sizeof c);
    assert_int_equal((uintptr_t)x->data % sizeof(float), 0);
    for (int i = 0; i < 2; i++) assert_true(bf->data[i] == gen_bf16_to_f32(gen_f32_to_bf16(b[i])));
    assert_true(k->data[0] == (float)big[0]);
    gen_st_close(f);
}

/* ---- gen export of a GAN that keeps an EMA of G ---- */

static const char *gan_argv[] = {"--latent", "4", "--g-width", "4", "--d-width", "4",
                                 "--ema",    "0.9", "--steps", "3"};

/* A GAN checkpoint at path whose EMA differs from its weights, with
 * optimiser steps 5 (G) and 7 (D); ema 0: no EMA block. */
static void write_gan(const char *path, int ema) {
    const struct gen_family *fam = gen_family_find("gan");
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    struct gen_config cfg = {0};
    assert_int_equal(gen_config_parse(&cfg, tables, ema ? 10 : 6, (char **)gan_argv), GEN_OK);
    const struct gen_data_shape shape = {GEN_DATA_IMAGES, 1, 8, 8, 10, 0};
    struct gen_model em;
    assert_int_equal(gen_model_create(&em, fam, &cfg, &shape, NULL, 3), GEN_OK);
    struct gen_params *ps = em.info.ps;
    assert_true(!ps->ema == !ema);
    for (int64_t i = 0; ema && i < ps->n_train; i++) ps->ema[i] = 0.5f * ps->data[i] + 0.25f;
    for (int64_t i = 0; i < ps->n_buffer; i++) ps->buffers[i] += 0.125f * (float)(i % 5);
    ps->step[0] = 5, ps->step[1] = 7;
    assert_int_equal(gen_model_save(&em, path, NULL, 0), GEN_OK);
    gen_model_free(&em);
    gen_config_free(&cfg);
}

static int export(const char *ckpt, const char *out, const char *dtype, const char *ema_flag) {
    char *argv[] = {"gen", "export", (char *)ckpt, "-o", (char *)out, "--dtype", (char *)dtype,
                    "-q", (char *)ema_flag, NULL};
    return gen_cli_main(ema_flag ? 9 : 8, argv);
}

static float stored(enum gen_st_dtype dt, float v) {
    return dt == GEN_ST_F16    ? gen_f16_to_f32(gen_f32_to_f16(v))
           : dt == GEN_ST_BF16 ? gen_bf16_to_f32(gen_f32_to_bf16(v))
                               : v;
}

/* The export at out against the checkpoint: every model tensor, from the
 * EMA (G's trainable ones, when ema) or the weights, as dtype; nothing
 * else but the num_batches_tracked of each BatchNorm. */
static void check_export(const char *ckpt, const char *out, enum gen_st_dtype dt, int ema) {
    struct gen_st_file *c, *f;
    assert_int_equal(gen_st_open(ckpt, 0, &c), GEN_OK);
    assert_int_equal(gen_st_open(out, 0, &f), GEN_OK);
    int n_model = 0, n_bn = 0;
    for (int i = 0; i < gen_st_count(c); i++) {
        const struct gen_st_tensor *w = gen_st_at(c, i);
        if (!strncmp(w->name, "optim.", 6) || !strncmp(w->name, "ema.", 4)) continue;
        n_model++;
        char name[160];
        snprintf(name, sizeof name, "ema.%s", w->name);
        const struct gen_st_tensor *src = ema && w->name[0] == 'G' && gen_st_find(c, name)
                                              ? gen_st_find(c, name)
                                              : w;
        const struct gen_st_tensor *t = gen_st_find(f, w->name);
        assert_non_null(t);
        assert_int_equal(t->dtype, dt);
        assert_int_equal(t->numel, w->numel);
        for (int64_t k = 0; k < t->numel; k++)
            if (!(t->data[k] == stored(dt, src->data[k])))
                fail_msg("%s[%lld]: %g, want %g", w->name, (long long)k, t->data[k],
                         stored(dt, src->data[k]));
    }
    const struct {
        const char *name;
        float steps; /* of the BatchNorm's network */
    } bns[] = {{"G.bn0.num_batches_tracked", 5}, {"G.bn1.num_batches_tracked", 5},
               {"D.bn2.num_batches_tracked", 7}};
    for (int i = 0; i < 3; i++, n_bn++) {
        const struct gen_st_tensor *t = gen_st_find(f, bns[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, GEN_ST_I64);
        assert_int_equal(t->ndim, 0);
        assert_true(t->data[0] == bns[i].steps);
    }
    assert_int_equal(gen_st_count(f), n_model + n_bn);
    assert_string_equal(gen_st_meta(f, "format"), "pt");
    assert_string_equal(gen_st_meta(f, "family"), "gan");
    assert_string_equal(gen_st_meta(f, "weights"), ema ? "ema" : "trained");
    assert_non_null(strstr(gen_st_meta(f, "config"), "\"g-width\":4"));
    assert_non_null(strstr(gen_st_meta(f, "data_shape"), "\"height\":8"));
    assert_null(gen_st_meta(f, "optim_step"));
    assert_null(gen_st_meta(f, "rng.0"));
    gen_st_close(f);
    gen_st_close(c);
}

static void test_export_gan(void **state) {
    (void)state;
    const char *ckpt = tu_tmp_path("gan.safetensors");
    write_gan(ckpt, 1);
    const char *out = tu_tmp_path("gan-export.safetensors");
    assert_int_equal(export(ckpt, out, "f32", NULL), 0);
    check_export(ckpt, out, GEN_ST_F32, 1);
    assert_int_equal(export(ckpt, out, "f16", "--ema"), 0);
    check_export(ckpt, out, GEN_ST_F16, 1);
    assert_int_equal(export(ckpt, out, "bf16", "--no-ema"), 0);
    check_export(ckpt, out, GEN_ST_BF16, 0);
    /* an export is no checkpoint: gen refuses to resume or sample from it */
    struct gen_model em;
    assert_int_equal(gen_model_load(&em, NULL, out, 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "not a gen checkpoint"));
    /* refusals: an unknown dtype, the input as output, --ema without one */
    assert_int_equal(export(ckpt, out, "f64", NULL), 2);
    assert_int_equal(export(ckpt, ckpt, "f32", NULL), 2);
    const char *plain = tu_tmp_path("gan-plain.safetensors");
    write_gan(plain, 0);
    assert_int_equal(export(plain, out, "f32", "--ema"), 2);
    assert_non_null(strstr(gen_last_error(), "keeps no EMA"));
    assert_int_equal(export(plain, out, "f32", NULL), 0);
    check_export(plain, out, GEN_ST_F32, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_typed_round_trip),
        cmocka_unit_test(test_export_gan),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
