/* ddpm.c - the DDPM noise schedule, the DDPM and DDIM steps and the
 * reverse process with its guidance hook and part-way start (see ddpm.h). */
#include <math.h>
#include <string.h>

#include "models/ddpm.h"

/* ---- schedule and steps ---- */

enum gen_status ddpm_schedule_init(struct ddpm_schedule *s, int64_t T, double beta_start,
                                   double beta_end) {
    memset(s, 0, sizeof *s);
    if (T < 1) return gen_error(GEN_ERR_USAGE, "--timesteps: must be >= 1");
    if (!(beta_start > 0 && beta_start <= beta_end && beta_end < 1))
        return gen_error(GEN_ERR_USAGE,
                         "--beta-start/--beta-end: need 0 < start <= end < 1, got %g and %g",
                         beta_start, beta_end);
    s->beta = gen_calloc((size_t)T, sizeof *s->beta);
    s->alpha_bar = gen_calloc((size_t)T, sizeof *s->alpha_bar);
    if (!s->beta || !s->alpha_bar) {
        ddpm_schedule_free(s);
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld timesteps", (long long)T);
    }
    s->T = T;
    double abar = 1.0;
    for (int64_t t = 0; t < T; t++) {
        s->beta[t] =
            T > 1 ? beta_start + (beta_end - beta_start) * (double)t / (double)(T - 1) : beta_start;
        abar *= 1.0 - s->beta[t];
        s->alpha_bar[t] = abar;
    }
    /* Every step divides by sqrt(1 - abar) or sqrt(abar): a first beta
     * that 1 - beta rounds away (below about 1e-16) leaves abar 1, betas
     * near 1 over many steps take it down to 0, and the reverse steps'
     * sums would be 0 / 0. */
    if (!(s->alpha_bar[0] < 1.0 && s->alpha_bar[T - 1] > 0.0)) {
        const double first = s->alpha_bar[0], last = s->alpha_bar[T - 1];
        ddpm_schedule_free(s);
        return gen_error(GEN_ERR_USAGE,
                         "--beta-start/--beta-end: %g to %g over %lld timesteps leaves %s "
                         "(alpha_bar from %g to %g); betas such as 1e-4 to 0.02 keep it inside",
                         beta_start, beta_end, (long long)T,
                         first < 1.0 ? "no signal at the last step" : "no noise at the first step",
                         first, last);
    }
    return GEN_OK;
}

void ddpm_schedule_free(struct ddpm_schedule *s) {
    gen_free(s->beta);
    gen_free(s->alpha_bar);
    memset(s, 0, sizeof *s);
}

double ddpm_abar(const struct ddpm_schedule *s, int64_t t) {
    GEN_ASSERT(t >= -1 && t < s->T);
    return t < 0 ? 1.0 : s->alpha_bar[t];
}

void ddpm_q_sample(const struct ddpm_schedule *s, int64_t t, int64_t n, const float *x0,
                   const float *eps, float *xt) {
    const double abar = ddpm_abar(s, t), a = sqrt(abar), b = sqrt(1.0 - abar);
    for (int64_t i = 0; i < n; i++) xt[i] = (float)(a * x0[i] + b * eps[i]);
}

void ddpm_step(const struct ddpm_schedule *s, int64_t t, int64_t n, const float *xt,
               const float *eps, const float *z, float *out) {
    GEN_ASSERT(t >= 0 && t < s->T && (t == 0 || z));
    const double abar = ddpm_abar(s, t), abar_prev = ddpm_abar(s, t - 1);
    const double beta = s->beta[t], alpha = 1.0 - beta;
    const double c0 = beta * sqrt(abar_prev) / (1.0 - abar);
    const double ct = (1.0 - abar_prev) * sqrt(alpha) / (1.0 - abar);
    const double sigma = t > 0 ? sqrt(beta) : 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double x = xt[i], x0 = ddpm_x0(abar, x, eps[i]);
        out[i] = (float)(c0 * x0 + ct * x + (t > 0 ? sigma * z[i] : 0.0));
    }
}

void ddim_step(const struct ddpm_schedule *s, int64_t t, int64_t prev, double eta, int64_t n,
               const float *xt, const float *eps, const float *z, float *out) {
    GEN_ASSERT(t >= 0 && t < s->T && prev >= -1 && prev < t);
    const double abar = ddpm_abar(s, t), abar_prev = ddpm_abar(s, prev);
    const double sigma =
        eta > 0 ? eta * sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)) : 0.0;
    const double dir2 = 1.0 - abar_prev - sigma * sigma;
    const double dir = dir2 > 0 ? sqrt(dir2) : 0.0;
    const double sa = sqrt(abar), sb = sqrt(1.0 - abar), sp = sqrt(abar_prev);
    GEN_ASSERT(sigma == 0.0 || z);
    for (int64_t i = 0; i < n; i++) {
        const double x = xt[i], x0 = ddpm_x0(abar, x, eps[i]);
        const double e = (x - sa * x0) / sb;
        out[i] = (float)(sp * x0 + dir * e + (sigma > 0 ? sigma * z[i] : 0.0));
    }
}

void ddim_timesteps(int64_t T, int64_t K, int64_t *tau) {
    GEN_ASSERT(K >= 1 && K <= T);
    for (int64_t i = 0; i < K; i++) tau[i] = (i + 1) * T / K - 1;
}

/* ---- the reverse process ---- */

/* Image i of a request draws all its noise from its own stream, so it does
 * not depend on the batch it lands in or on n. */
static void image_rng(struct gen_rng *r, uint64_t seed, int64_t i) {
    gen_rng_seed(r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)i);
}

static void fill_noise(struct gen_rng *rngs, int64_t b, int64_t D, float *z) {
    for (int64_t j = 0; j < b; j++) gen_rng_fill_normal(&rngs[j], z + j * D, D, 0.0f, 1.0f);
}

/* Scratch for one batch. */
struct work {
    float *eps, *z, *zg; /* (B, D) each */
    int64_t *tau;        /* (K + 1): the steps, ascending */
    struct gen_rng rngs[DDPM_SAMPLE_BATCH];
};

struct reverse {
    const struct ddpm_schedule *s;
    const struct ddpm_sampler *smp;
    ddpm_eps_fn eps_fn;
    void *model;
    int64_t D;
    int64_t K;           /* reverse steps of one batch       */
    int64_t done, total; /* reverse steps, over every batch  */
    int64_t first;       /* the batch's first image          */
};

/* The steps of the chain, ascending, into tau; returns their number:
 * all T (DDPM) or the K DDIM steps, cut at init_t (which is added) when
 * the chain starts part-way. */
static int64_t chain_steps(const struct ddpm_schedule *s, const struct ddpm_sampler *smp,
                           int64_t *tau) {
    const int64_t T = s->T, top = smp->init ? smp->init_t : T - 1;
    int64_t K = smp->ddpm ? T : smp->steps;
    if (smp->ddpm)
        for (int64_t i = 0; i < T; i++) tau[i] = i;
    else
        ddim_timesteps(T, K, tau);
    while (K > 0 && tau[K - 1] >= top) K--;
    tau[K++] = top;
    return K;
}

/* x_t from x_prev: q(x_t | x_prev) = N(sqrt(a) x_prev, (1 - a) I),
 * a = abar_t / abar_prev, in place. */
static void renoise_step(const struct reverse *r, struct work *w, int64_t B, int64_t t,
                         int64_t prev, float *x) {
    const int64_t n = B * r->D;
    const double a = ddpm_abar(r->s, t) / ddpm_abar(r->s, prev);
    fill_noise(w->rngs, B, r->D, w->z);
    for (int64_t k = 0; k < n; k++) x[k] = (float)(sqrt(a) * x[k] + sqrt(1.0 - a) * w->z[k]);
}

/* The reverse process for B images x (B, D), x at its first step already. */
static void reverse(struct reverse *r, struct work *w, int64_t B, float *x) {
    const struct ddpm_sampler *smp = r->smp;
    const int64_t n = B * r->D;
    const int R = smp->guide ? smp->resample : 1;
    for (int64_t i = r->K - 1; i >= 0; i--) {
        const int64_t t = w->tau[i], prev = i > 0 ? w->tau[i - 1] : -1;
        for (int pass = 0; pass < R; pass++) {
            r->eps_fn(r->model, r->first, B, x, t, w->eps);
            const int noisy = smp->ddpm ? t > 0 : (smp->eta > 0 && prev >= 0);
            if (noisy) fill_noise(w->rngs, B, r->D, w->z);
            if (smp->ddpm)
                ddpm_step(r->s, t, n, x, w->eps, noisy ? w->z : NULL, x);
            else
                ddim_step(r->s, t, prev, smp->eta, n, x, w->eps, noisy ? w->z : NULL, x);
            if (!smp->guide) continue;
            fill_noise(w->rngs, B, r->D, w->zg);
            smp->guide(smp->guide_arg, prev, r->first, B, x, w->zg);
            if (prev < 0) break; /* x is x0: nothing left to harmonise */
            if (pass + 1 < R) renoise_step(r, w, B, t, prev, x);
        }
        if (smp->progress) smp->progress(++r->done, r->total, smp->progress_arg);
    }
    for (int64_t k = 0; k < n; k++) x[k] = x[k] < -1.0f ? -1.0f : x[k] > 1.0f ? 1.0f : x[k];
}

/* The first x of image j of a batch: its stream's first draw z, or the
 * init image noised to init_t with it. */
static void start_image(const struct ddpm_schedule *s, const struct ddpm_sampler *smp,
                        struct gen_rng *rng, int64_t D, const float *init, float *x) {
    gen_rng_fill_normal(rng, x, D, 0.0f, 1.0f);
    if (!init) return;
    const double abar = ddpm_abar(s, smp->init_t), extra = 1.0 - abar * (1.0 + smp->init_var);
    const double a = sqrt(abar), b = extra > 0 ? sqrt(extra) : 0.0;
    for (int64_t k = 0; k < D; k++) x[k] = (float)(a * init[k] + b * x[k]);
}

enum gen_status ddpm_sample(const struct ddpm_schedule *s, const struct ddpm_sampler *smp,
                            ddpm_eps_fn eps_fn, void *model, int64_t n, int64_t D, uint64_t seed,
                            float *out) {
    const int64_t B = n < DDPM_SAMPLE_BATCH ? n : DDPM_SAMPLE_BATCH;
    if (!smp->ddpm && (smp->steps < 1 || smp->steps > s->T))
        return gen_error(GEN_ERR_USAGE, "DDIM needs 1 to T = %lld steps, got %lld", (long long)s->T,
                         (long long)smp->steps);
    if (smp->init && (smp->init_t < 0 || smp->init_t >= s->T))
        return gen_error(GEN_ERR_USAGE, "the chain cannot start at step %lld of T = %lld",
                         (long long)smp->init_t, (long long)s->T);
    struct work *w = gen_calloc(1, sizeof *w);
    if (!w) return gen_error(GEN_ERR_NOMEM, "out of memory for sampling");
    w->eps = gen_alloc((size_t)(B * D) * sizeof(float));
    w->z = gen_alloc((size_t)(B * D) * sizeof(float));
    w->zg = gen_alloc((size_t)(B * D) * sizeof(float));
    w->tau = gen_alloc((size_t)(smp->ddpm ? s->T + 1 : smp->steps + 1) * sizeof(int64_t));
    enum gen_status st = GEN_OK;
    if (!w->eps || !w->z || !w->zg || !w->tau)
        st = gen_error(GEN_ERR_NOMEM, "out of memory for sampling %lld images", (long long)B);
    struct reverse r = {.s = s, .smp = smp, .eps_fn = eps_fn, .model = model, .D = D};
    if (st == GEN_OK) r.K = chain_steps(s, smp, w->tau);
    r.total = (n + B - 1) / B * r.K;
    for (int64_t first = 0; st == GEN_OK && first < n; first += B) {
        const int64_t b = n - first < B ? n - first : B;
        float *x = out + first * D;
        r.first = first;
        for (int64_t j = 0; j < b; j++) {
            image_rng(&w->rngs[j], seed, smp->index0 + first + j);
            start_image(s, smp, &w->rngs[j], D, smp->init ? smp->init + (first + j) * D : NULL,
                        x + j * D);
        }
        reverse(&r, w, b, x);
    }
    gen_free(w->eps);
    gen_free(w->z);
    gen_free(w->zg);
    gen_free(w->tau);
    gen_free(w);
    return st;
}
