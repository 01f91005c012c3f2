/* test_diffusion.c - the diffusion family: the noise schedule against its
 * closed forms, one step of each sampler and the U-Net's forward and
 * backward, unconditional, of four levels and conditioned on classes,
 * against PyTorch (tests/fixtures/diffusion_*.safetensors, written by
 * scripts/make-fixtures-diffusion.py from the twin's own code), and
 * through the command line: training lowers the loss, --resume continues
 * bit for bit (three and four levels), sampling is reproducible, inpainting keeps the known pixels
 * (test images, or an image file with a mask file), bad input gets a clear
 * error. */
#include <math.h>
#include <stb_image.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "gen/io.h"
#include "gen/kernels.h"
#include "models/ddpm.h"
#include "models/unet.h"
#include "testutil.h"

/* ---- fixtures ---- */

static double meta_num(const struct gen_st_file *f, const char *key) {
    const char *v = gen_st_meta(f, key);
    if (!v) fail_msg("fixture lacks metadata %s", key);
    return strtod(v, NULL);
}

/* ---- schedule ---- */

static void test_schedule_closed_form(void **state) {
    (void)state;
    struct ddpm_schedule s;
    assert_int_equal(ddpm_schedule_init(&s, 1000, 1e-4, 0.02), GEN_OK);
    long double prod = 1.0L;
    double logsum = 0;
    for (int64_t t = 0; t < 1000; t++) {
        const double beta = 1e-4 + (0.02 - 1e-4) * (double)t / 999.0;
        assert_true(fabs(s.beta[t] - beta) <= 1e-15);
        prod *= 1.0L - (long double)beta;
        logsum += log1p(-beta);
        assert_true(fabs(s.alpha_bar[t] / (double)prod - 1.0) <= 1e-12);
        assert_true(fabs(s.alpha_bar[t] / exp(logsum) - 1.0) <= 1e-12);
    }
    assert_true(fabs(s.beta[0] - 1e-4) <= 1e-18 && fabs(s.beta[999] - 0.02) <= 1e-17);
    assert_true(ddpm_abar(&s, -1) == 1.0);
    /* The well-known value: abar_999 of the DDPM schedule is about 4.04e-5. */
    assert_true(fabs(s.alpha_bar[999] - 4.0358e-5) < 1e-8);

    /* q(x_t | x_0): the closed form, and t = -1 is the clean image. */
    const float x0[3] = {0.5f, -1.0f, 0.25f}, eps[3] = {1.0f, 0.5f, -2.0f};
    float xt[3];
    ddpm_q_sample(&s, 400, 3, x0, eps, xt);
    for (int i = 0; i < 3; i++) {
        const double a = s.alpha_bar[400];
        assert_true(fabs(xt[i] - (sqrt(a) * x0[i] + sqrt(1 - a) * eps[i])) < 1e-6);
    }
    ddpm_q_sample(&s, -1, 3, x0, eps, xt);
    assert_memory_equal(xt, x0, sizeof x0);

    /* ... and torch.cumprod of the twin's schedule agrees. */
    struct gen_st_file *f =
        tu_open_fixture("diffusion_samplers", "scripts/make-fixtures-diffusion.py");
    const struct gen_st_tensor *ab = tu_tensor(f, "abar");
    assert_int_equal(ab->numel, 1000);
    for (int64_t t = 0; t < 1000; t++) assert_true(fabs(ab->data[t] / s.alpha_bar[t] - 1) < 1e-6);
    gen_st_close(f);

    /* Rejected schedules. */
    struct ddpm_schedule bad;
    assert_int_equal(ddpm_schedule_init(&bad, 0, 1e-4, 0.02), GEN_ERR_USAGE);
    assert_int_equal(ddpm_schedule_init(&bad, 10, 0.02, 1e-4), GEN_ERR_USAGE);
    assert_int_equal(ddpm_schedule_init(&bad, 10, 0, 0.02), GEN_ERR_USAGE);
    assert_int_equal(ddpm_schedule_init(&bad, 10, 1e-4, 1.0), GEN_ERR_USAGE);
    /* within (0, 1) but alpha_bar reaches 1 (1 - 1e-40 rounds to 1) or 0
     * (underflow): the reverse steps' sums were 0 / 0 and the sampler
     * stopped on an assertion */
    assert_int_equal(ddpm_schedule_init(&bad, 1000, 1e-40, 0.02), GEN_ERR_USAGE);
    assert_int_equal(ddpm_schedule_init(&bad, 1000, 0.5, 0.999999), GEN_ERR_USAGE);
    /* small but held: every DDIM step of it finite */
    assert_int_equal(ddpm_schedule_init(&bad, 1000, 1e-15, 0.02), GEN_OK);
    const float x1[2] = {0.3f, -0.7f}, e1[2] = {0.1f, 0.2f};
    float out[2];
    for (int64_t t = 0; t < 1000; t += 111) {
        ddim_step(&bad, t, t - 1, 0.0, 2, x1, e1, NULL, out);
        assert_true(isfinite(out[0]) && isfinite(out[1]));
    }
    ddpm_schedule_free(&bad);
    ddpm_schedule_free(&s);
}

static void test_ddim_timesteps_and_ema(void **state) {
    (void)state;
    int64_t tau[1000];
    ddim_timesteps(1000, 50, tau);
    assert_int_equal(tau[0], 19);
    assert_int_equal(tau[49], 999);
    for (int i = 1; i < 50; i++) assert_int_equal(tau[i] - tau[i - 1], 20);
    ddim_timesteps(1000, 1000, tau);
    for (int i = 0; i < 1000; i++) assert_int_equal(tau[i], i);
    ddim_timesteps(1000, 1, tau);
    assert_int_equal(tau[0], 999);
    ddim_timesteps(1000, 3, tau);
    assert_true(tau[0] == 332 && tau[1] == 665 && tau[2] == 999);

    /* The engine's EMA warm-up that --ema 0.999 follows. */
    assert_true(gen_ema_warmup_decay(0, 0.999f) == 0.1f);
    assert_true(gen_ema_warmup_decay(10, 0.999f) == 11.0f / 20.0f);
    assert_true(gen_ema_warmup_decay(100000, 0.999f) == 0.999f);
    assert_true(gen_ema_warmup_decay(8000, 0.999f) < 0.999f);
}

/* One step of each sampler against the twin's (float64) step. */
static void test_sampler_steps(void **state) {
    (void)state;
    struct gen_st_file *f =
        tu_open_fixture("diffusion_samplers", "scripts/make-fixtures-diffusion.py");
    struct ddpm_schedule s;
    assert_int_equal(ddpm_schedule_init(&s, (int64_t)meta_num(f, "timesteps"),
                                        meta_num(f, "beta_start"), meta_num(f, "beta_end")),
                     GEN_OK);
    const int cases = (int)meta_num(f, "cases");
    assert_true(cases >= 6);
    int failed = 0, ddpm = 0, ddim = 0;
    for (int k = 0; k < cases; k++) {
        char key[64];
        const struct gen_st_tensor *xt, *eps, *z, *want;
        snprintf(key, sizeof key, "%d.xt", k), xt = tu_tensor(f, key);
        snprintf(key, sizeof key, "%d.eps", k), eps = tu_tensor(f, key);
        snprintf(key, sizeof key, "%d.z", k), z = tu_tensor(f, key);
        snprintf(key, sizeof key, "%d.out", k), want = tu_tensor(f, key);
        snprintf(key, sizeof key, "%d.kind", k);
        const char *kind = gen_st_meta(f, key);
        assert_non_null(kind);
        snprintf(key, sizeof key, "%d.t", k);
        const int64_t t = (int64_t)meta_num(f, key);
        snprintf(key, sizeof key, "%d.prev", k);
        const int64_t prev = (int64_t)meta_num(f, key);
        snprintf(key, sizeof key, "%d.eta", k);
        const double eta = meta_num(f, key);
        float *out = malloc((size_t)xt->numel * sizeof *out);
        assert_non_null(out);
        if (!strcmp(kind, "ddpm")) {
            ddpm_step(&s, t, xt->numel, xt->data, eps->data, z->data, out);
            ddpm++;
        } else {
            ddim_step(&s, t, prev, eta, xt->numel, xt->data, eps->data, z->data, out);
            ddim++;
        }
        snprintf(key, sizeof key, "%s t=%lld prev=%lld eta=%g", kind, (long long)t, (long long)prev,
                 eta);
        /* float32 inputs, double maths on both sides: float32 rounding only. */
        if (tu_close(key, out, want->data, xt->numel, 1e-5, 1e-6) > 1.0) failed++;
        free(out);
    }
    assert_true(ddpm >= 2 && ddim >= 3);
    assert_int_equal(failed, 0);

    /* In-place stepping (out aliasing xt) gives the same numbers. */
    const struct gen_st_tensor *xt = tu_tensor(f, "4.xt"), *eps = tu_tensor(f, "4.eps"),
                               *z = tu_tensor(f, "4.z");
    float *a = malloc((size_t)xt->numel * sizeof *a), *b = malloc((size_t)xt->numel * sizeof *b);
    memcpy(b, xt->data, (size_t)xt->numel * sizeof *b);
    ddim_step(&s, 519, 499, 0.5, xt->numel, xt->data, eps->data, z->data, a);
    ddim_step(&s, 519, 499, 0.5, xt->numel, b, eps->data, z->data, b);
    assert_memory_equal(a, b, (size_t)xt->numel * sizeof *a);
    free(a);
    free(b);
    ddpm_schedule_free(&s);
    gen_st_close(f);
}

/* ---- the U-Net against PyTorch ---- */

static const char *const isas[] = {"scalar", "avx2", "avx512"};

/* One fixture on one ISA: the output, grad.x and every parameter's
 * gradient. A fixture with metadata `classes` (K) is of the conditional
 * U-Net and holds the classes `y` (N, as floats, each in 0 .. K). */
static int unet_pass(struct gen_st_file *f, const char *isa) {
    const char *classes = gen_st_meta(f, "classes");
    struct unet_config c = {.C = (int64_t)meta_num(f, "channels"),
                            .H = (int64_t)meta_num(f, "height"),
                            .W = (int64_t)meta_num(f, "width"),
                            .base = (int64_t)meta_num(f, "base"),
                            .attn = (int)meta_num(f, "attn"),
                            .classes = classes ? strtoll(classes, NULL, 10) : 0};
    assert_int_equal(unet_parse_mults(gen_st_meta(f, "mults"), &c), GEN_OK);
    assert_int_equal(unet_check(&c), GEN_OK);
    struct gen_params ps;
    gen_params_init(&ps);
    struct unet u;
    unet_declare(&u, &ps, &c);
    assert_int_equal(gen_params_finalize(&ps, 0), GEN_OK);
    /* Every parameter is in the fixture with its PyTorch name and shape. */
    for (int i = 0; i < ps.count; i++) {
        const struct gen_st_tensor *w = tu_tensor(f, ps.p[i].name);
        struct gen_tensor *t = gen_params_tensor(&ps, i);
        assert_int_equal(w->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(w->shape[d], t->shape[d]);
        memcpy(t->data, w->data, (size_t)w->numel * sizeof(float));
    }
    const struct gen_st_tensor *x = tu_tensor(f, "x"), *tt = tu_tensor(f, "t"),
                               *want = tu_tensor(f, "out"), *dout = tu_tensor(f, "dout"),
                               *gx = tu_tensor(f, "grad.x");
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *xin = gen_tensor_4d(&g, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
    memcpy(xin->data, x->data, (size_t)x->numel * sizeof(float));
    xin->requires_grad = 1;
    int32_t *y = NULL; /* (N) */
    if (c.classes > 0) {
        const struct gen_st_tensor *yf = tu_tensor(f, "y");
        assert_int_equal(yf->numel, x->shape[0]);
        y = malloc((size_t)yf->numel * sizeof *y);
        assert_non_null(y);
        for (int64_t i = 0; i < yf->numel; i++) {
            y[i] = (int32_t)yf->data[i];
            assert_true(y[i] >= 0 && y[i] <= c.classes);
        }
    }
    struct gen_tensor *out = unet_forward(&g, &u, &ps, xin, tt->data, y);
    assert_int_equal(gen_numel(out), want->numel);
    char what[160];
    int ok = 1;
    snprintf(what, sizeof what, "[%s] unet out", isa);
    /* Output: float32 convs, norms and attention against float64. */
    ok &= tu_close(what, out->data, want->data, want->numel, 1e-4, 1e-5) <= 1.0;
    gen_params_zero_grad(&ps);
    gen_backward_seed(&g, out, dout->data);
    /* Gradients pass back through the whole net: looser. The first
     * layer's weight gradient sums over every position of the batch, and
     * in the four-level fixture its element 25 (0.0212) comes out 0.6e-4
     * to 1.3e-4 from float64 depending on the table and on the order in
     * which the fused ops add (gen_conv2d_sum), hence 2e-4 absolute. */
    snprintf(what, sizeof what, "[%s] unet grad.x", isa);
    ok &= tu_close(what, gen_grad(&g, xin), gx->data, gx->numel, 1e-3, 2e-4) <= 1.0;
    for (int i = 0; i < ps.count; i++) {
        char key[128];
        snprintf(key, sizeof key, "grad.%s", ps.p[i].name);
        const struct gen_st_tensor *gw = tu_tensor(f, key);
        snprintf(what, sizeof what, "[%s] unet %s", isa, key);
        ok &=
            tu_close(what, gen_params_tensor(&ps, i)->grad, gw->data, gw->numel, 1e-3, 2e-4) <= 1.0;
    }
    free(y);
    gen_ctx_free(&g);
    gen_params_free(&ps);
    return ok;
}

/* The fixture `name` under every ISA this machine has. */
static void unet_matches(const char *name) {
    struct gen_st_file *f = tu_open_fixture(name, "scripts/make-fixtures-diffusion.py");
    int ran = 0, failed = 0;
    for (int i = 0; i < 3; i++) {
        if (!gen_kernels_for(isas[i]) || !gen_kernels_select(isas[i])) continue;
        ran++;
        failed += !unet_pass(f, isas[i]);
    }
    gen_kernels_select(NULL);
    gen_st_close(f);
    assert_true(ran > 0);
    assert_int_equal(failed, 0);
}

static void test_unet_matches_pytorch(void **state) {
    (void)state;
    unet_matches("diffusion_unet");
}

/* Four levels (mults 1,1,1,2 on 3x16x16): enc3, down3, up3 and dec3
 * around a middle at 2x2. */
static void test_unet_4_levels_matches_pytorch(void **state) {
    (void)state;
    unet_matches("diffusion_unet_l4");
}

/* The conditional U-Net (K = 3, a batch with the null class and without
 * class 1): class_emb.weight's gradient too. */
static void test_unet_cond_matches_pytorch(void **state) {
    (void)state;
    unet_matches("diffusion_unet_cond");
}

static void test_time_embedding(void **state) {
    (void)state;
    const float t[2] = {0.0f, 917.0f};
    float e[2 * 8];
    unet_time_embedding(t, 2, 8, e);
    for (int k = 0; k < 4; k++) {
        assert_true(e[k] == 0.0f && e[4 + k] == 1.0f); /* t = 0: sin 0, cos 0 */
        const double f = pow(10000.0, -k / 4.0);
        assert_true(fabs(e[8 + k] - sin(917.0 * f)) < 1e-6);
        assert_true(fabs(e[12 + k] - cos(917.0 * f)) < 1e-6);
    }
}

/* ---- the command line ---- */

/* A tiny image set: n 8x8 grey images (a bright bar at a random row or
 * column on a dark ground) as MNIST-format IDX files in dir. */
static void write_idx(const char *dir, const char *name, int rank, const int *dims,
                      const uint8_t *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    const uint8_t magic[4] = {0, 0, 8, (uint8_t)rank};
    fwrite(magic, 1, 4, fp);
    for (int i = 0; i < rank; i++) {
        const uint8_t be[4] = {(uint8_t)(dims[i] >> 24), (uint8_t)(dims[i] >> 16),
                               (uint8_t)(dims[i] >> 8), (uint8_t)dims[i]};
        fwrite(be, 1, 4, fp);
    }
    fwrite(data, 1, n, fp);
    fclose(fp);
}

static void make_bars(const char *dir, int n) {
    uint8_t *px = calloc((size_t)n * 64, 1), *lab = calloc((size_t)n, 1);
    struct gen_rng r;
    gen_rng_seed(&r, 5);
    for (int i = 0; i < n; i++) {
        const int vertical = (int)gen_rng_below(&r, 2), pos = 1 + (int)gen_rng_below(&r, 6);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                px[i * 64 + y * 8 + x] = (vertical ? x == pos : y == pos) ? 230 : 20;
        lab[i] = (uint8_t)vertical;
    }
    const int d3[3] = {n, 8, 8}, d1[1] = {n};
    write_idx(dir, "train-images-idx3-ubyte", 3, d3, px, (size_t)n * 64);
    write_idx(dir, "train-labels-idx1-ubyte", 1, d1, lab, (size_t)n);
    write_idx(dir, "t10k-images-idx3-ubyte", 3, d3, px, (size_t)n * 64);
    write_idx(dir, "t10k-labels-idx1-ubyte", 1, d1, lab, (size_t)n);
    free(px);
    free(lab);
}

struct env {
    char *dir;
    char data[4096];
};

static int setup(void **state) {
    struct env *e = calloc(1, sizeof *e);
    e->dir = tu_mkdtemp();
    if (!e->dir) return -1;
    snprintf(e->data, sizeof e->data, "%s/data", e->dir);
    mkdir(e->data, 0777);
    make_bars(e->data, 96);
    *state = e;
    return 0;
}

static int teardown(void **state) {
    struct env *e = *state;
    tu_rmtree(e->dir);
    free(e->dir);
    free(e);
    return 0;
}

/* Runs `gen ARGS` (a NULL-terminated list) and returns its exit code. */
static int gen_run_args(const char *const *args) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = "gen";
    for (int i = 0; args[i]; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    return gen_cli_main(argc, argv);
}

/* The tiny model every CLI test trains: base 8, T 100, 8x8 images, one
 * thread (OpenMP barriers of two threads crawl on a loaded machine). */
#define TINY "--base", "8", "--timesteps", "100", "--batch", "8", "--threads", "1", "--quiet"

/* Every other command: quiet, one thread. */
#define QUIET1 "--quiet", "--threads", "1"

/* The tiny model with U-Net multipliers `mults` (four of them: four levels). */
static int train_tiny_mults(const struct env *e, const char *out, const char *steps, int resume,
                            const char *mults) {
    const char *args[] = {"train",
                          "diffusion",
                          "--data",
                          e->data,
                          "--out",
                          out,
                          "--steps",
                          steps,
                          "--lr",
                          "2e-3",
                          "--warmup",
                          "10",
                          "--sample-every",
                          "0",
                          "--sample-steps",
                          "5",
                          "--mults",
                          mults,
                          TINY,
                          resume ? "--resume" : NULL,
                          NULL};
    return gen_run_args(args);
}

static int train_tiny(const struct env *e, const char *out, const char *steps, int resume) {
    return train_tiny_mults(e, out, steps, resume, "1,2,2");
}

/* Trains the tiny model for `steps` into TMP/name: the run directory into
 * run (1024 bytes) and its checkpoint into ckpt (4096 bytes). */
static void train_run(const struct env *e, const char *name, const char *steps, char *run,
                      char *ckpt) {
    snprintf(run, 1024, "%s/%s", e->dir, name);
    assert_int_equal(train_tiny(e, run, steps, 0), 0);
    snprintf(ckpt, 4096, "%s/checkpoint.safetensors", run);
}

/* Mean "loss" of the training lines of RUN/metrics.jsonl whose step is in
 * [lo, hi] (lines come every 50 steps and at each epoch's end). */
static double mean_loss(const char *run, int lo, int hi) {
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    size_t n;
    char *text = tu_read_file(path, &n);
    assert_non_null(text);
    double sum = 0;
    int k = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        const char *st = strstr(line, "\"step\":"), *lp = strstr(line, "\"loss\":");
        if (st && lp) {
            const long step = strtol(st + 7, NULL, 10);
            if (step >= lo && step <= hi) sum += strtod(lp + 7, NULL), k++;
        }
        line = next;
    }
    free(text);
    assert_true(k > 0);
    return sum / k;
}

static void test_training_lowers_loss(void **state) {
    struct env *e = *state;
    char run[1024];
    snprintf(run, sizeof run, "%s/loss", e->dir);
    assert_int_equal(train_tiny(e, run, "200", 0), 0);
    const double first = mean_loss(run, 1, 50), last = mean_loss(run, 151, 200);
    fprintf(stderr, "  loss: steps 1-50 %.4f, steps 151-200 %.4f\n", first, last);
    assert_true(last < 0.6 * first);
    /* The run wrote its sample grid and a checkpoint with EMA weights. */
    char path[4096];
    snprintf(path, sizeof path, "%s/samples-00000200.png", run);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run);
    struct gen_st_file *f = NULL;
    assert_int_equal(gen_st_open(path, 0, &f), GEN_OK);
    assert_non_null(gen_st_find(f, "ema.conv_in.weight"));
    assert_non_null(gen_st_find(f, "optim.m.attn.qkv.weight"));
    assert_non_null(gen_st_find(f, "dec1.skip.weight"));
    gen_st_close(f);
}

/* Eight steps in one run and in two halves give the same checkpoint. */
static void resume_is_exact(const struct env *e, const char *mults) {
    char a[1024], b[1024], pa[4096], pb[4096];
    snprintf(a, sizeof a, "%s/full-%s", e->dir, mults);
    snprintf(b, sizeof b, "%s/halves-%s", e->dir, mults);
    assert_int_equal(train_tiny_mults(e, a, "8", 0, mults), 0);
    assert_int_equal(train_tiny_mults(e, b, "4", 0, mults), 0);
    assert_int_equal(train_tiny_mults(e, b, "8", 1, mults), 0);
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.safetensors", b);
    tu_assert_same_file(pa, pb); /* weights, EMA, Adam moments, rngs, step */
}

static void test_resume_is_exact(void **state) {
    resume_is_exact(*state, "1,2,2");
}

/* A U-Net of four levels (the 8x8 images reach 1x1 in the middle): its
 * checkpoint holds the fourth level's weights, resumes bit for bit, and
 * sampling rebuilds the model from it. */
static void test_four_levels(void **state) {
    struct env *e = *state;
    resume_is_exact(e, "1,1,2,2");
    char ckpt[4096], out[1024];
    snprintf(ckpt, sizeof ckpt, "%s/full-1,1,2,2/checkpoint.safetensors", e->dir);
    struct gen_st_file *f = NULL;
    assert_int_equal(gen_st_open(ckpt, 0, &f), GEN_OK);
    const struct gen_st_tensor *w = gen_st_find(f, "dec3.conv1.weight");
    assert_non_null(w); /* (b m3, b m4 + b m3, 3, 3) */
    assert_int_equal(w->shape[0], 16);
    assert_int_equal(w->shape[1], 32);
    assert_non_null(gen_st_find(f, "ema.down3.weight"));
    assert_non_null(gen_st_find(f, "optim.m.enc3.conv2.weight"));
    gen_st_close(f);
    snprintf(out, sizeof out, "%s/four.png", e->dir);
    const char *args[] = {"sample",  "diffusion", "--ckpt", ckpt, "-n",   "2",
                          "--steps", "3",         "-o",     out,  QUIET1, NULL};
    assert_int_equal(gen_run_args(args), 0);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
}

/* Pixels of a grey PNG (caller frees with stbi_image_free). */
static uint8_t *load_png(const char *path, int *w, int *h) {
    int comp;
    uint8_t *px = stbi_load(path, w, h, &comp, 1);
    if (!px) fail_msg("%s: cannot read", path);
    return px;
}

static void test_sampling(void **state) {
    struct env *e = *state;
    char run[1024], ckpt[4096], o1[1024], o2[1024], o3[1024];
    train_run(e, "sample", "20", run, ckpt);
    snprintf(o1, sizeof o1, "%s/s1/", e->dir);
    snprintf(o2, sizeof o2, "%s/s2/", e->dir);
    snprintf(o3, sizeof o3, "%s/s3.png", e->dir);
    /* Same seed, same images; image i does not depend on -n. */
    const char *a1[] = {"sample", "diffusion", "--ckpt", ckpt,     "-n", "3",    "-o",
                        o1,       "--steps",   "10",     "--seed", "4",  QUIET1, NULL};
    const char *a2[] = {"sample", "diffusion", "--ckpt", ckpt,     "-n", "2",    "-o",
                        o2,       "--steps",   "10",     "--seed", "4",  QUIET1, NULL};
    assert_int_equal(gen_run_args(a1), 0);
    assert_int_equal(gen_run_args(a2), 0);
    for (int i = 0; i < 2; i++) {
        char p1[4200], p2[4200];
        snprintf(p1, sizeof p1, "%s%05d.png", o1, i);
        snprintf(p2, sizeof p2, "%s%05d.png", o2, i);
        tu_assert_same_file(p1, p2);
    }
    /* DDPM over all T steps and DDIM with eta write grids of the right size. */
    const char *a3[] = {"sample", "diffusion", "--ckpt",    ckpt,   "-n",   "4",
                        "-o",     o3,          "--sampler", "ddpm", QUIET1, NULL};
    assert_int_equal(gen_run_args(a3), 0);
    int w, h;
    uint8_t *px = load_png(o3, &w, &h);
    assert_true(w == 2 * (8 + 2) + 2 && h == w);
    stbi_image_free(px);
    const char *a4[] = {"sample", "diffusion", "--ckpt", ckpt,      "-n",  "4",    "-o",
                        o3,       "--eta",     "1",      "--steps", "100", QUIET1, NULL};
    assert_int_equal(gen_run_args(a4), 0);
}

/* Inpainting: the known pixels of every completion are the original's. */
static void test_inpainting(void **state) {
    struct env *e = *state;
    char run[1024], ckpt[4096], out[1024], grid[1024];
    train_run(e, "inpaint", "20", run, ckpt);
    snprintf(out, sizeof out, "%s/inp/", e->dir);
    snprintf(grid, sizeof grid, "%s/inp.png", e->dir);
    const char *a1[] = {"sample",   "diffusion", "--ckpt",     ckpt, "--data", e->data, "--inpaint",
                        "test:2-3", "--mask",    "left",       "-n", "2",      "-o",    out,
                        "--steps",  "10",        "--resample", "2",  QUIET1,   NULL};
    assert_int_equal(gen_run_args(a1), 0);
    struct gen_image_set test = {0};
    assert_int_equal(gen_images_load(e->data, 0, 0, 0, &test), GEN_OK);
    /* The folder holds the grid's images row by row: masked input, the 2
     * completions, the original. */
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%05d.png", out, (i / 2) * 4 + 1 + i % 2);
        int w, h;
        uint8_t *px = load_png(p, &w, &h);
        assert_true(w == 8 && h == 8);
        const uint8_t *orig = test.pixels + (2 + i / 2) * 64;
        for (int y = 0; y < 8; y++)
            for (int x = 4; x < 8; x++) /* the right half is kept */
                assert_true(abs((int)px[y * 8 + x] - (int)orig[y * 8 + x]) <= 1);
        stbi_image_free(px);
    }
    gen_image_set_free(&test);
    /* The grid: one row per image, masked input + 2 completions + original. */
    const char *a2[] = {"sample",    "diffusion", "--ckpt",  ckpt,     "--data", e->data,
                        "--inpaint", "test:0-2",  "--mask",  "centre", "-n",     "2",
                        "-o",        grid,        "--steps", "5",      QUIET1,   NULL};
    assert_int_equal(gen_run_args(a2), 0);
    int w, h;
    uint8_t *px = load_png(grid, &w, &h);
    assert_int_equal(w, 4 * (8 + 2) + 2);
    assert_int_equal(h, 3 * (8 + 2) + 2);
    stbi_image_free(px);
}

/* Inpainting an image file (--input FILE) with a mask file: the pixels
 * the mask keeps (white) are the image's in every completion. */
static void test_inpaint_files(void **state) {
    struct env *e = *state;
    char run[1024], ckpt[4096], img[1024], mask[1024], out[1024];
    train_run(e, "inpaint-files", "2", run, ckpt);
    snprintf(img, sizeof img, "%s/photo.png", e->dir);
    snprintf(mask, sizeof mask, "%s/mask.png", e->dir);
    snprintf(out, sizeof out, "%s/inpf/", e->dir);
    uint8_t px[64], mk[64];
    for (int k = 0; k < 64; k++) {
        px[k] = (uint8_t)(4 * k);
        mk[k] = (k / 8 + k % 8) % 3 ? 255 : 0; /* diagonal stripes to regenerate */
    }
    assert_int_equal(gen_png_write(img, 8, 8, 1, px), GEN_OK);
    assert_int_equal(gen_png_write(mask, 8, 8, 1, mk), GEN_OK);
    const char *a1[] = {"sample", "diffusion", "--ckpt", ckpt, "--input", img,    "--inpaint",
                        "--mask", mask,        "-n",     "3",  "-o",      out,    "--steps",
                        "5",      "--resample", "2",     QUIET1, NULL};
    assert_int_equal(gen_run_args(a1), 0);
    int kept = 0;
    for (int i = 0; i < 5; i++) { /* masked, 3 completions, original */
        char p[4200];
        snprintf(p, sizeof p, "%s%05d.png", out, i);
        int w, h;
        uint8_t *got = load_png(p, &w, &h);
        assert_true(w == 8 && h == 8);
        for (int k = 0; k < 64; k++) {
            if (mk[k]) assert_true(abs((int)got[k] - (int)px[k]) <= 1), kept += i == 1;
            else if (i == 0) assert_int_equal(got[k], 128); /* the hole, mid grey */
        }
        stbi_image_free(got);
    }
    assert_true(kept > 30);
    char p[4200];
    snprintf(p, sizeof p, "%s%05d.png", out, 5);
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0); /* one row of 5 */
}

static void expect_error(const char *const *args, int rc, const char *needle) {
    fflush(stderr);
    gen_clear_error();
    assert_int_equal(gen_run_args(args), rc);
    if (!strstr(gen_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", gen_last_error(), needle);
}

static void test_bad_input(void **state) {
    struct env *e = *state;
    char run[1024], ckpt[4096], junk[1024], out[1024];
    train_run(e, "bad", "2", run, ckpt);
    snprintf(out, sizeof out, "%s/x.png", e->dir);
    snprintf(junk, sizeof junk, "%s/junk.safetensors", e->dir);
    FILE *fp = fopen(junk, "wb");
    fputs("not a checkpoint at all", fp);
    fclose(fp);
    const char *a1[] = {"sample", "diffusion", "--ckpt", junk, "-o", out, QUIET1, NULL};
    expect_error(a1, 1, junk);
    const char *a2[] = {"sample",    "diffusion", "--ckpt", ckpt, "--data", e->data,
                        "--inpaint", "test:0",    "-o",     out,  QUIET1,   NULL};
    expect_error(a2, 2, "--mask");
    const char *a3[] = {"sample", "diffusion", "--ckpt", ckpt,     "--data",
                        e->data,  "--inpaint", "test:0", "--mask", "/nonexistent/m.png",
                        "-o",     out,         QUIET1,   NULL};
    expect_error(a3, 2, "--mask");
    const char *a4[] = {"sample",    "diffusion", "--ckpt", ckpt, "--data", e->data, "--inpaint",
                        "test:5000", "--mask",    "top",    "-o", out,      QUIET1,  NULL};
    expect_error(a4, 2, "out of range");
    const char *a5[] = {"sample", "diffusion", "--ckpt", ckpt,   "--steps",
                        "101",    "-o",        out,      QUIET1, NULL};
    expect_error(a5, 2, "--steps");
    const char *a6[] = {"sample", "diffusion", "--ckpt", ckpt, "--input", junk, "--inpaint",
                        "--mask", "top",       "-o",     out,  "--quiet", NULL};
    expect_error(a6, 1, junk);
    /* An image file given to --inpaint itself is pointed to --input. */
    const char *a12[] = {"sample", "diffusion", "--ckpt", ckpt, "--data", e->data, "--inpaint",
                         junk,     "--mask",    "top",    "-o", out,      QUIET1,  NULL};
    expect_error(a12, 2, "--input");
    const char *a13[] = {"sample", "diffusion", "--ckpt", ckpt, "--mask", "top", "-o", out,
                         QUIET1,   NULL};
    expect_error(a13, 2, "--inpaint");
    char fresh[1100];
    snprintf(fresh, sizeof fresh, "%s/fresh", e->dir);
    const char *a7[] = {"train", "diffusion", "--data", e->data, "--out",
                        fresh,   "--mults",   "1,2",    TINY,    NULL};
    expect_error(a7, 2, "--mults");
    const char *a14[] = {"train", "diffusion", "--data",    e->data, "--out",
                         fresh,   "--mults",   "1,2,2,2,2", TINY,    NULL};
    expect_error(a14, 2, "--mults");
    /* Four levels need sides divisible by 8. */
    const char *a15[] = {"train",   "diffusion", "--data",       e->data, "--out", fresh,
                         "--mults", "1,2,2,2",   "--image-size", "12",    TINY,    NULL};
    expect_error(a15, 1, "divisible by 8");
    const char *a8[] = {"train", "diffusion", "--data", e->data, "--out",
                        fresh,   TINY,        "--base", "12",    NULL};
    expect_error(a8, 2, "--base");
    /* --resume with another schedule is refused, naming the option. */
    const char *a11[] = {"train", "diffusion", "--data", e->data,       "--out", run, "--steps",
                         "4",     "--resume",  TINY,     "--timesteps", "50",    NULL};
    expect_error(a11, 2, "--timesteps");
    /* eval needs the feature network; its absence is named. */
    const char *a10[] = {"eval",         "diffusion",           "--ckpt", ckpt,
                         "--classifier", "/nonexistent/clf.st", QUIET1,   NULL};
    expect_error(a10, 1, "/nonexistent/clf.st");
    /* A checkpoint of another family is refused by name. */
    const char *a9[] = {"sample", "vae", "--ckpt", ckpt, "-o", out, QUIET1, NULL};
    expect_error(a9, 1, "diffusion");
}

int main(void) {
    gen_threads_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_closed_form),
        cmocka_unit_test(test_ddim_timesteps_and_ema),
        cmocka_unit_test(test_sampler_steps),
        cmocka_unit_test(test_time_embedding),
        cmocka_unit_test(test_unet_matches_pytorch),
        cmocka_unit_test(test_unet_4_levels_matches_pytorch),
        cmocka_unit_test(test_unet_cond_matches_pytorch),
        cmocka_unit_test(test_training_lowers_loss),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_four_levels),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_inpainting),
        cmocka_unit_test(test_inpaint_files),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
