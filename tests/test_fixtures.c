/* test_fixtures.c - gen's ops and optimisers against PyTorch reference dumps.
 *
 * Each tests/fixtures/NAME.safetensors is written by scripts/make-fixtures.py
 * (see there for the layout): inputs in0.., the output `out`, an upstream
 * gradient `dout` and the reference gradients grad_inK of sum(out * dout),
 * computed by torch in float64 on the same float32 inputs. Every case runs
 * under each kernel table this build and CPU have (scalar, avx2, avx512). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/io.h"
#include "gen/kernels.h"
#include "gen/nn.h"
#include "gen/tensor.h"
#include "testutil.h"

#define MAX_IN 8

static const char *const isas[] = {"scalar", "avx2", "avx512"};
#define N_ISA ((int)(sizeof isas / sizeof isas[0]))

/* One fixture and the tolerances it is held to: |got - want| <= atol + rtol |want|. */
struct fixture {
    const char *file;
    double rtol, atol;
};

/* Exact: pure data movement, the float32 reference is the value itself. */
#define T_EXACT 0.0, 1e-30
/* Element-wise maths and short sums. */
#define T_EW 1e-5, 1e-6
/* Reductions and losses over a few dozen elements. */
#define T_RED 1e-5, 1e-5
/* Longer float32 dot products in another order: GEMM, conv, norms, attention. */
#define T_ACC 1e-4, 1e-5

static const struct fixture fixtures[] = {
    {"add_same", T_EW}, {"add_row", T_EW}, {"add_row3d", T_EW}, {"add_chan", T_EW},
    {"sub_same", T_EW}, {"sub_row", T_EW}, {"sub_row3d", T_EW}, {"sub_chan", T_EW},
    {"mul_same", T_EW}, {"mul_row", T_EW}, {"mul_row3d", T_EW}, {"mul_chan", T_EW},
    {"scale", T_EW}, {"add_scalar", T_EW}, {"sum", T_RED}, {"mean", T_RED},
    {"matmul_2d_ta0_tb0", T_ACC}, {"matmul_2d_ta0_tb1", T_ACC},
    {"matmul_2d_ta1_tb0", T_ACC}, {"matmul_2d_ta1_tb1", T_ACC},
    {"matmul_3d_ta0_tb0", T_ACC}, {"matmul_3d_ta0_tb1", T_ACC},
    {"matmul_3d_ta1_tb0", T_ACC}, {"matmul_3d_ta1_tb1", T_ACC},
    {"linear_2d_bias", T_ACC}, {"linear_3d_bias", T_ACC}, {"linear_3d_nobias", T_ACC},
    {"reshape", T_EXACT}, {"permute_4d", T_EXACT}, {"permute_3d", T_EXACT},
    {"transpose_4d", T_EXACT}, {"transpose_2d", T_EXACT},
    {"concat_4d", T_EXACT}, {"concat_3d", T_EXACT},
    {"slice_dim1", T_EXACT}, {"slice_last", T_EXACT}, {"slice_dim0", T_EXACT},
    {"relu", T_EW}, {"leaky_relu", T_EW}, {"gelu", T_EW}, {"silu", T_EW},
    {"sigmoid", T_EW}, {"tanh", T_EW}, {"exp", T_EW},
    {"softmax", T_RED}, {"log_softmax", T_RED},
    {"cross_entropy", T_RED}, {"bce_logits_sum", T_RED}, {"bce_logits_mean", T_RED},
    {"mse", T_RED}, {"gaussian_kl", T_RED}, {"embedding", T_EW},
    {"layernorm", T_ACC}, {"layernorm_noaffine", T_ACC},
    {"groupnorm", T_ACC}, {"groupnorm_noaffine", T_ACC},
    {"batchnorm1d_train", T_ACC}, {"batchnorm1d_eval", T_ACC},
    {"batchnorm2d_train", T_ACC}, {"batchnorm2d_eval", T_ACC},
    {"conv2d_1x1_bias", T_ACC}, {"conv2d_1x1_nobias", T_ACC},
    {"conv2d_3x3_p1_bias", T_ACC}, {"conv2d_3x3_p1_nobias", T_ACC},
    {"conv2d_3x3_s2_p1_bias", T_ACC}, {"conv2d_3x3_s2_p1_nobias", T_ACC},
    {"conv2d_4x4_s2_p1_bias", T_ACC}, {"conv2d_4x4_s2_p1_nobias", T_ACC},
    {"conv_transpose2d_4x4_s2_p1_bias", T_ACC}, {"conv_transpose2d_4x4_s2_p1_nobias", T_ACC},
    {"upsample2x", T_EW},
    {"attention_causal_nh1", T_ACC}, {"attention_causal_nh2", T_ACC},
    {"attention_full_nh1", T_ACC}, {"attention_full_nh2", T_ACC},
    /* optimisers: parameters after each of 10 steps */
    {"optim_adam", 1e-5, 1e-6}, {"optim_adamw", 1e-5, 1e-6}, {"optim_sgd", 1e-5, 1e-6},
    {"clip_grad_norm", 1e-5, 1e-7}, {"clip_grad_norm_noop", 1e-5, 1e-7},
    {"schedule_warmup_cosine", 1e-5, 1e-10},
};
#define N_FIXTURES ((int)(sizeof fixtures / sizeof fixtures[0]))

/* ---- reading a fixture ---------------------------------------------------- */

static const char *meta_str(const struct gen_st_file *f, const char *key) {
    const char *v = gen_st_meta(f, key);
    if (!v) fail_msg("fixture lacks metadata %s", key);
    return v;
}
static long meta_int(const struct gen_st_file *f, const char *key) {
    return strtol(meta_str(f, key), NULL, 10);
}
static float meta_float(const struct gen_st_file *f, const char *key) {
    return strtof(meta_str(f, key), NULL);
}
/* Comma-separated integers; returns the count. */
static int meta_ints(const struct gen_st_file *f, const char *key, int64_t *out, int max) {
    const char *s = meta_str(f, key);
    int n = 0;
    while (*s && n < max) {
        char *end;
        out[n++] = strtoll(s, &end, 10);
        if (end == s) fail_msg("bad list in metadata %s", key);
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static float *copy_floats(const struct gen_st_tensor *t) {
    float *p = malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof(float));
    assert_non_null(p);
    if (t->numel) memcpy(p, t->data, (size_t)t->numel * sizeof(float));
    return p;
}

/* Compares n floats (NULL got: all zeros, e.g. a gradient never touched). */
static int close_to(const char *what, const char *isa, const float *got,
                    const struct gen_st_tensor *want, int64_t n, double rtol, double atol) {
    if (n != want->numel) {
        fprintf(stderr, "  [%s] %s: %lld elements, want %lld\n", isa, what, (long long)n,
                (long long)want->numel);
        return 0;
    }
    float *zeros = NULL;
    if (!got) got = zeros = calloc((size_t)n + 1, sizeof(float));
    char label[160];
    snprintf(label, sizeof label, "[%s] %s", isa, what);
    int ok = tu_close(label, got, want->data, n, rtol, atol) <= 1.0;
    free(zeros);
    return ok;
}

static int same_shape(const char *what, const char *isa, const struct gen_tensor *t,
                      const struct gen_st_tensor *want) {
    /* The fixtures store a scalar as [1]; so does gen. */
    int ok = t->ndim == want->ndim;
    for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == want->shape[d];
    if (!ok) fprintf(stderr, "  [%s] %s: shape differs from the fixture's\n", isa, what);
    return ok;
}

/* ---- op fixtures ---------------------------------------------------------- */

struct op_case {
    struct gen_st_file *f;
    const char *op;
    int n_in;
    int nograd[MAX_IN];
    struct gen_tensor *in[MAX_IN];
    float *buf[MAX_IN];
    int32_t *ids; /* in1 as int32 for cross_entropy / embedding */
};

static int32_t *as_ids(const struct gen_st_tensor *t) {
    int32_t *p = malloc((size_t)t->numel * sizeof(int32_t));
    assert_non_null(p);
    for (int64_t i = 0; i < t->numel; i++) p[i] = (int32_t)t->data[i];
    return p;
}

static struct gen_tensor *run_op(struct gen_ctx *g, struct op_case *c) {
    struct gen_st_file *f = c->f;
    struct gen_tensor **in = c->in;
    const char *op = c->op;
    if (!strcmp(op, "add")) return gen_add(g, in[0], in[1]);
    if (!strcmp(op, "sub")) return gen_sub(g, in[0], in[1]);
    if (!strcmp(op, "mul")) return gen_mul(g, in[0], in[1]);
    if (!strcmp(op, "scale")) return gen_scale(g, in[0], meta_float(f, "s"));
    if (!strcmp(op, "add_scalar")) return gen_add_scalar(g, in[0], meta_float(f, "s"));
    if (!strcmp(op, "sum")) return gen_sum(g, in[0]);
    if (!strcmp(op, "mean")) return gen_mean(g, in[0]);
    if (!strcmp(op, "matmul"))
        return gen_matmul(g, in[0], in[1], meta_int(f, "ta") ? GEN_TRANS : GEN_NOTRANS,
                          meta_int(f, "tb") ? GEN_TRANS : GEN_NOTRANS);
    if (!strcmp(op, "linear"))
        return gen_linear(g, in[0], in[1], meta_int(f, "bias") ? in[2] : NULL);
    if (!strcmp(op, "reshape")) {
        int64_t shape[4];
        int n = meta_ints(f, "shape", shape, 4);
        return gen_reshape(g, in[0], n, shape);
    }
    if (!strcmp(op, "permute")) {
        int64_t p64[4];
        int n = meta_ints(f, "perm", p64, 4), perm[4];
        assert_int_equal(n, in[0]->ndim);
        for (int i = 0; i < n; i++) perm[i] = (int)p64[i];
        return gen_permute(g, in[0], perm);
    }
    if (!strcmp(op, "transpose"))
        return gen_transpose(g, in[0], (int)meta_int(f, "d0"), (int)meta_int(f, "d1"));
    if (!strcmp(op, "concat")) return gen_concat(g, in[0], in[1]);
    if (!strcmp(op, "slice"))
        return gen_slice(g, in[0], (int)meta_int(f, "dim"), meta_int(f, "start"),
                         meta_int(f, "len"));
    if (!strcmp(op, "relu")) return gen_relu(g, in[0]);
    if (!strcmp(op, "leaky_relu")) return gen_leaky_relu(g, in[0], meta_float(f, "slope"));
    if (!strcmp(op, "gelu")) return gen_gelu(g, in[0]);
    if (!strcmp(op, "silu")) return gen_silu(g, in[0]);
    if (!strcmp(op, "sigmoid")) return gen_sigmoid(g, in[0]);
    if (!strcmp(op, "tanh")) return gen_tanh(g, in[0]);
    if (!strcmp(op, "exp")) return gen_exp(g, in[0]);
    if (!strcmp(op, "softmax")) return gen_softmax(g, in[0]);
    if (!strcmp(op, "log_softmax")) return gen_log_softmax(g, in[0]);
    if (!strcmp(op, "cross_entropy")) {
        c->ids = as_ids(tu_tensor(f, "in1"));
        return gen_cross_entropy(g, in[0], c->ids);
    }
    if (!strcmp(op, "bce_logits")) return gen_bce_logits(g, in[0], in[1], (int)meta_int(f, "mean"));
    if (!strcmp(op, "mse")) return gen_mse(g, in[0], in[1]);
    if (!strcmp(op, "gaussian_kl")) return gen_gaussian_kl(g, in[0], in[1]);
    if (!strcmp(op, "embedding")) {
        const struct gen_st_tensor *o = tu_tensor(f, "out");
        c->ids = as_ids(tu_tensor(f, "in1"));
        return gen_embedding(g, in[0], c->ids, o->ndim, o->shape);
    }
    if (!strcmp(op, "layernorm")) {
        int aff = (int)meta_int(f, "affine");
        return gen_layernorm(g, in[0], aff ? in[1] : NULL, aff ? in[2] : NULL,
                             meta_float(f, "eps"));
    }
    if (!strcmp(op, "groupnorm")) {
        int aff = (int)meta_int(f, "affine");
        return gen_groupnorm(g, in[0], meta_int(f, "G"), aff ? in[1] : NULL, aff ? in[2] : NULL,
                             meta_float(f, "eps"));
    }
    if (!strcmp(op, "batchnorm")) {
        g->training = (int)meta_int(f, "training");
        return gen_batchnorm(g, in[0], in[1], in[2], in[3], in[4], meta_float(f, "momentum"),
                             meta_float(f, "eps"));
    }
    if (!strcmp(op, "conv2d"))
        return gen_conv2d(g, in[0], in[1], meta_int(f, "bias") ? in[2] : NULL,
                          (int)meta_int(f, "stride"), (int)meta_int(f, "pad"));
    if (!strcmp(op, "conv_transpose2d"))
        return gen_conv_transpose2d(g, in[0], in[1], meta_int(f, "bias") ? in[2] : NULL,
                                    (int)meta_int(f, "stride"), (int)meta_int(f, "pad"));
    if (!strcmp(op, "upsample2x")) return gen_upsample2x(g, in[0]);
    if (!strcmp(op, "attention"))
        return gen_attention(g, in[0], meta_int(f, "NH"), (int)meta_int(f, "causal"));
    fail_msg("fixture names an unknown op %s", op);
    return NULL;
}

/* One pass of an op fixture under the kernel table in force: returns 1 if
 * the output, every input gradient and (batchnorm) the running statistics
 * match. */
static int op_pass(struct gen_st_file *f, const char *isa, double rtol, double atol) {
    struct op_case c;
    memset(&c, 0, sizeof c);
    c.f = f;
    c.op = meta_str(f, "op");
    int64_t ng[MAX_IN];
    int n_ng = meta_ints(f, "nograd", ng, MAX_IN);
    for (int i = 0; i < n_ng; i++) c.nograd[ng[i]] = 1;

    struct gen_ctx g;
    gen_ctx_init(&g);
    g.training = 1;
    for (c.n_in = 0; c.n_in < MAX_IN; c.n_in++) {
        char key[16];
        snprintf(key, sizeof key, "in%d", c.n_in);
        const struct gen_st_tensor *t = gen_st_find(f, key);
        if (!t) break;
        c.buf[c.n_in] = copy_floats(t);
        c.in[c.n_in] = gen_tensor_wrap(&g, c.buf[c.n_in], t->ndim, t->shape);
        c.in[c.n_in]->requires_grad = !c.nograd[c.n_in];
    }

    int ok = 1;
    struct gen_tensor *out = run_op(&g, &c);
    const struct gen_st_tensor *want = tu_tensor(f, "out");
    ok &= same_shape("out", isa, out, want);
    ok &= close_to("out", isa, out->data, want, gen_numel(out), rtol, atol);

    const struct gen_st_tensor *dout = tu_tensor(f, "dout");
    assert_int_equal(dout->numel, gen_numel(out));
    gen_backward_seed(&g, out, dout->data);
    for (int k = 0; k < c.n_in; k++) {
        if (c.nograd[k]) continue;
        char key[32];
        snprintf(key, sizeof key, "grad_in%d", k);
        ok &= close_to(key, isa, c.in[k]->grad, tu_tensor(f, key), gen_numel(c.in[k]), rtol, atol);
    }
    if (!strcmp(c.op, "batchnorm")) {
        ok &= close_to("running_mean", isa, c.buf[3], tu_tensor(f, "running_mean_out"),
                       gen_numel(c.in[3]), rtol, atol);
        ok &= close_to("running_var", isa, c.buf[4], tu_tensor(f, "running_var_out"),
                       gen_numel(c.in[4]), rtol, atol);
    }

    gen_ctx_free(&g);
    for (int k = 0; k < c.n_in; k++) free(c.buf[k]);
    free(c.ids);
    return ok;
}

/* ---- optimiser fixtures --------------------------------------------------- */

/* w (4, 5) is a weight (decayed), b (5) a bias (never decayed), one group. */
static void params_wb(struct gen_params *ps, const struct gen_st_tensor *w,
                      const struct gen_st_tensor *b) {
    gen_params_init(ps);
    gen_params_add(ps, "w", GEN_PARAM_WEIGHT, 0, w->ndim, w->shape);
    gen_params_add(ps, "b", GEN_PARAM_NODECAY, 0, b->ndim, b->shape);
    assert_int_equal(gen_params_finalize(ps, 0), GEN_OK);
}

static void set_floats(float *dst, const struct gen_st_tensor *src) {
    memcpy(dst, src->data, (size_t)src->numel * sizeof(float));
}

static int optim_pass(struct gen_st_file *f, const char *isa, double rtol, double atol) {
    const char *kind = meta_str(f, "kind");
    struct gen_optim opt;
    memset(&opt, 0, sizeof opt);
    opt.lr = meta_float(f, "lr");
    opt.weight_decay = meta_float(f, "weight_decay");
    if (!strcmp(kind, "sgd")) {
        opt.kind = GEN_OPTIM_SGD;
        opt.momentum = meta_float(f, "momentum");
    } else {
        opt.kind = !strcmp(kind, "adamw") ? GEN_OPTIM_ADAMW : GEN_OPTIM_ADAM;
        opt.beta1 = meta_float(f, "beta1");
        opt.beta2 = meta_float(f, "beta2");
        opt.eps = meta_float(f, "eps");
    }
    struct gen_params ps;
    params_wb(&ps, tu_tensor(f, "w"), tu_tensor(f, "b"));
    struct gen_tensor *w = gen_params_tensor(&ps, 0), *b = gen_params_tensor(&ps, 1);
    set_floats(w->data, tu_tensor(f, "w"));
    set_floats(b->data, tu_tensor(f, "b"));

    int ok = 1;
    long steps = meta_int(f, "steps");
    for (long t = 0; t < steps && ok; t++) {
        char key[32], what[64];
        snprintf(key, sizeof key, "g%ld.w", t);
        set_floats(w->grad, tu_tensor(f, key));
        snprintf(key, sizeof key, "g%ld.b", t);
        set_floats(b->grad, tu_tensor(f, key));
        gen_optim_step(&opt, &ps, -1, opt.lr);
        snprintf(key, sizeof key, "p%ld.w", t);
        snprintf(what, sizeof what, "%s step %ld w", kind, t);
        ok &= close_to(what, isa, w->data, tu_tensor(f, key), gen_numel(w), rtol, atol);
        snprintf(key, sizeof key, "p%ld.b", t);
        snprintf(what, sizeof what, "%s step %ld b", kind, t);
        ok &= close_to(what, isa, b->data, tu_tensor(f, key), gen_numel(b), rtol, atol);
    }
    gen_params_free(&ps);
    return ok;
}

static int clip_pass(struct gen_st_file *f, const char *isa, double rtol, double atol) {
    const struct gen_st_tensor *gw = tu_tensor(f, "gw"), *gb = tu_tensor(f, "gb");
    struct gen_params ps;
    params_wb(&ps, gw, gb);
    struct gen_tensor *w = gen_params_tensor(&ps, 0), *b = gen_params_tensor(&ps, 1);
    set_floats(w->grad, gw);
    set_floats(b->grad, gb);
    float norm = (float)gen_clip_grad_norm(&ps, -1, strtod(meta_str(f, "max_norm"), NULL));
    int ok = close_to("norm", isa, &norm, tu_tensor(f, "norm"), 1, rtol, atol);
    ok &= close_to("gw_out", isa, w->grad, tu_tensor(f, "gw_out"), gen_numel(w), rtol, atol);
    ok &= close_to("gb_out", isa, b->grad, tu_tensor(f, "gb_out"), gen_numel(b), rtol, atol);
    gen_params_free(&ps);
    return ok;
}

static int schedule_pass(struct gen_st_file *f, const char *isa, double rtol, double atol) {
    struct gen_schedule s = {
        .kind = GEN_SCHED_WARMUP_COSINE,
        .base_lr = meta_float(f, "base_lr"),
        .min_lr = meta_float(f, "min_lr"),
        .warmup = meta_int(f, "warmup"),
        .total = meta_int(f, "total"),
    };
    assert_string_equal(meta_str(f, "kind"), "warmup_cosine");
    const struct gen_st_tensor *steps = tu_tensor(f, "steps");
    float *lr = malloc((size_t)steps->numel * sizeof(float));
    assert_non_null(lr);
    for (int64_t i = 0; i < steps->numel; i++)
        lr[i] = gen_schedule_lr(&s, (int64_t)steps->data[i]);
    int ok = close_to("lr", isa, lr, tu_tensor(f, "lr"), steps->numel, rtol, atol);
    free(lr);
    return ok;
}

/* ---- the cmocka cases ----------------------------------------------------- */

static void test_fixture(void **state) {
    const struct fixture *fx = *state;
    struct gen_st_file *f = tu_open_fixture(fx->file, "scripts/make-fixtures.py");
    const char *op = meta_str(f, "op");
    int failed = 0, ran = 0;
    for (int i = 0; i < N_ISA; i++) {
        if (!gen_kernels_for(isas[i]) || !gen_kernels_select(isas[i])) continue;
        ran++;
        int ok;
        if (!strcmp(op, "optim"))
            ok = optim_pass(f, isas[i], fx->rtol, fx->atol);
        else if (!strcmp(op, "clip_grad_norm"))
            ok = clip_pass(f, isas[i], fx->rtol, fx->atol);
        else if (!strcmp(op, "schedule"))
            ok = schedule_pass(f, isas[i], fx->rtol, fx->atol);
        else
            ok = op_pass(f, isas[i], fx->rtol, fx->atol);
        if (!ok) {
            fprintf(stderr, "  %s: mismatch under %s\n", fx->file, isas[i]);
            failed++;
        }
    }
    gen_kernels_select(NULL);
    gen_st_close(f);
    assert_true(ran > 0);
    assert_int_equal(failed, 0);
}

/* Every file in tests/fixtures/ is in the table above (a fixture that the
 * script writes but no test reads would silently test nothing). */
/* Whole-model fixtures belong to each family's own test (test_vae.c, ...). */
static int is_model_fixture(const char *name) {
    static const char *const prefixes[] = {"vae_", "gan_", "transformer_", "diffusion_",
                                           "classifier_"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
}

static void test_all_listed(void **state) {
    (void)state;
    DIR *d = opendir(tu_source_path("tests/fixtures"));
    assert_non_null(d);
    int unlisted = 0, seen = 0;
    const char *ext = ".safetensors";
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name), ne = strlen(ext);
        if (n <= ne || strcmp(e->d_name + n - ne, ext)) continue;
        if (is_model_fixture(e->d_name)) continue;
        seen++;
        int found = 0;
        for (int i = 0; i < N_FIXTURES && !found; i++)
            found = strlen(fixtures[i].file) == n - ne && !strncmp(fixtures[i].file, e->d_name, n - ne);
        if (!found) {
            fprintf(stderr, "  tests/fixtures/%s is not in test_fixtures.c's table\n", e->d_name);
            unlisted++;
        }
    }
    closedir(d);
    assert_int_equal(seen, N_FIXTURES);
    assert_int_equal(unlisted, 0);
}

/* The ISAs this run covers, once, so a log shows what was (not) tested. */
static int report_isas(void **state) {
    (void)state;
    fprintf(stderr, "test_fixtures: kernel tables:");
    for (int i = 0; i < N_ISA; i++)
        fprintf(stderr, " %s%s", isas[i], gen_kernels_for(isas[i]) ? "" : " (skipped: not available)");
    fprintf(stderr, "\n");
    return 0;
}

int main(void) {
    gen_threads_init(0);
    struct CMUnitTest tests[N_FIXTURES + 1];
    tests[0] = (struct CMUnitTest){"all_listed", test_all_listed, NULL, NULL, NULL};
    for (int i = 0; i < N_FIXTURES; i++) {
        tests[i + 1] = (struct CMUnitTest){fixtures[i].file, test_fixture, NULL, NULL,
                                           (void *)&fixtures[i]};
    }
    return _cmocka_run_group_tests("fixtures", tests, N_FIXTURES + 1, report_isas, NULL);
}
