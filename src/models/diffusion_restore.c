/* diffusion_restore.c - restoration with the diffusion model: inpainting
 * (RePaint), super-resolution (ILVR) and denoising (SDEdit), each a guide
 * or a part-way start of the one reverse process of ddpm.c. The degrading
 * and the measures are in restore.c. */
#include <math.h>
#include <string.h>

#include "models/diffusion.h"

#define RESTORE_MAX 1024 /* input images at once */

/* What the guides of the reverse process know: image i of the request
 * restores input i / ways, whose degraded form (in [-1, 1]) is `cond`. */
struct guide {
    const struct ddpm_schedule *s;
    int64_t ways;
    int C, H, W, K;
    const float *cond; /* inpaint: (inputs, C, H, W) the known pixels;
                          superres: (inputs, C, H/K, W/K) the input       */
    const float *keep; /* inpaint: (inputs, H, W), 1 = known              */
    float *low;        /* superres: (C, H/K, W/K) scratch                  */
};

/* RePaint (Lugmayr et al. 2022): the known pixels of x_prev are replaced
 * by the known image noised to prev, q(x_prev | x0 = known); at prev = -1
 * by the known pixels themselves. */
static void guide_inpaint(void *arg, int64_t prev, int64_t first, int64_t B, float *x,
                          const float *z) {
    const struct guide *gd = arg;
    const int64_t HW = (int64_t)gd->H * gd->W, D = gd->C * HW;
    const double abar = ddpm_abar(gd->s, prev), a = sqrt(abar), b = sqrt(1.0 - abar);
    for (int64_t j = 0; j < B; j++) {
        const int64_t r = (first + j) / gd->ways;
        const float *known = gd->cond + r * D, *keep = gd->keep + r * HW;
        for (int64_t k = 0; k < D; k++)
            if (keep[k % HW] > 0.5f) x[j * D + k] = (float)(a * known[k] + b * z[j * D + k]);
    }
}

/* ILVR (Choi et al. 2021): x_prev <- x_prev - phi(x_prev) + phi(y_prev),
 * phi = up(down_K(.)), y_prev the input noised to prev (sqrt(abar) y +
 * sqrt(1 - abar) z); at prev = -1 the blocks of x0 are matched to the
 * input itself, staying within [-1, 1]. */
static void guide_superres(void *arg, int64_t prev, int64_t first, int64_t B, float *x,
                           const float *z) {
    const struct guide *gd = arg;
    const int K = gd->K, C = gd->C, H = gd->H, W = gd->W;
    const int64_t D = (int64_t)C * H * W, Dl = D / (K * K);
    const double abar = ddpm_abar(gd->s, prev), a = sqrt(abar), b = sqrt(1.0 - abar);
    for (int64_t j = 0; j < B; j++) {
        const float *y = gd->cond + (first + j) / gd->ways * Dl;
        if (prev < 0) {
            gen_restore_match_blocks(x + j * D, C, H, W, K, y, -1.0f, 1.0f);
            continue;
        }
        gen_restore_downsample(z + j * D, C, H, W, K, gd->low);
        for (int64_t k = 0; k < Dl; k++) gd->low[k] = (float)(a * y[k] + b * gd->low[k]);
        gen_restore_match_blocks(x + j * D, C, H, W, K, gd->low, 0.0f, 0.0f);
    }
}

/* SDEdit (Meng et al. 2022) starts at step S T (--strength S), else where
 * the model's noise matches the input's: x_t / sqrt(abar_t) = x0 +
 * sqrt((1 - abar_t) / abar_t) eps, and noise sigma in [0, 1] is 2 sigma
 * in [-1, 1], so abar_t = 1 / (1 + 4 sigma^2). */
static int64_t denoise_start(const struct ddpm_schedule *s, const struct gen_restore_task *t) {
    const int64_t T = s->T;
    if (t->strength > 0) {
        const int64_t k = llround(t->strength * (double)T) - 1;
        return k < 0 ? 0 : k > T - 1 ? T - 1 : k;
    }
    const double want = 1.0 / (1.0 + 4.0 * t->sigma * t->sigma);
    int64_t best = 0;
    for (int64_t k = 1; k < T; k++)
        if (fabs(s->alpha_bar[k] - want) < fabs(s->alpha_bar[best] - want)) best = k;
    return best;
}

/* Scratch of a restoration; all (count or total, ...) arrays. */
struct restoring {
    float *orig;  /* (count, D) in [0, 1]: the originals, when known    */
    float *y;     /* (count, Dy) in [0, 1]: the degraded inputs          */
    float *keep;  /* inpaint: (count, H W)                              */
    float *cond;  /* (count, Dy) the degraded inputs in [-1, 1]          */
    float *init;  /* denoise: (total, D) the inputs in [-1, 1], per way  */
    float *res;   /* (total, D) the results                              */
    float *low;   /* superres: (Dy) scratch                              */
};

static void restoring_free(struct restoring *w) {
    gen_free(w->orig), gen_free(w->y), gen_free(w->keep), gen_free(w->cond);
    gen_free(w->init), gen_free(w->res), gen_free(w->low);
}

/* The reverse process of a task: its guide or start, then ddpm_sample of
 * total = count ways images into w->res (in [-1, 1]). */
static enum gen_status restore_chain(struct diffusion *m, struct gen_ctx *g,
                                     struct ddpm_sampler *smp, int eta_set,
                                     const struct gen_restore_task *task,
                                     int64_t ways, int64_t total, uint64_t seed,
                                     struct restoring *w) {
    const int C = (int)m->ucfg.C, H = (int)m->ucfg.H, W = (int)m->ucfg.W;
    struct guide gd = {.s = &m->sched, .ways = ways, .C = C, .H = H, .W = W, .K = task->factor,
                       .cond = w->cond, .keep = w->keep, .low = w->low};
    const int64_t D = image_numel(m);
    switch (task->mode) {
    case GEN_RESTORE_INPAINT: smp->guide = guide_inpaint; break;
    case GEN_RESTORE_SUPERRES:
        /* ILVR adds fresh noise to the guide at every step, which the
         * deterministic DDIM (eta 0) turns into speckle: eta 1 unless set */
        smp->guide = guide_superres, smp->resample = 1;
        if (!smp->ddpm && !eta_set) smp->eta = 1;
        break;
    default:
        for (int64_t i = 0; i < total; i++)
            memcpy(w->init + i * D, w->cond + i / ways * D, (size_t)D * sizeof(float));
        smp->init = w->init;
        smp->init_t = denoise_start(&m->sched, task);
        smp->init_var = 4.0 * task->sigma * task->sigma;
        break;
    }
    smp->guide_arg = &gd;
    const struct eps_model em = {m, g, NULL, 0};
    return ddpm_sample(&m->sched, smp, diffusion_predict, (void *)&em, total, D, seed, w->res);
}

/* Restores the selected inputs, `ways` results each. A clean input (the
 * test split) is degraded first (gen_restore_degrade), as is any input to
 * inpaint (the mask hides part of it); the user's own low-resolution or
 * noisy images are restored as they are. Output: one row per input,
 * [degraded input (upsampled by repeating pixels) | ways results |
 * original, when known], in [0, 1]; result j of input r is image
 * r ways + j of the request. Inpainted results keep the known pixels of
 * the original exactly. */
enum gen_status diffusion_restore(struct diffusion *m, struct gen_ctx *g, struct ddpm_sampler *smp,
                                  const struct gen_config *opts, const struct gen_request *req,
                                  const struct gen_restore_task *task, const char *inpaint_spec,
                                  int eta_set, struct gen_output *out) {
    const struct gen_image_set *set = req->inputs ? req->inputs->images : NULL;
    const int C = (int)m->ucfg.C, H = (int)m->ucfg.H, W = (int)m->ucfg.W;
    const int degrade = (req->inputs && req->inputs->clean) || task->mode == GEN_RESTORE_INPAINT;
    const int lh = degrade ? H : gen_restore_low_side(task, H),
              lw = degrade ? W : gen_restore_low_side(task, W);
    const int64_t D = image_numel(m), HW = (int64_t)H * W,
                  Dy = (int64_t)C * gen_restore_low_side(task, H) * gen_restore_low_side(task, W);
    char what[64];
    gen_restore_describe(task, what, sizeof what);
    enum gen_status st = gen_restore_check(task, C, H, W);
    if (st != GEN_OK) return st;
    if (!set || set->n < 1) return gen_error(GEN_ERR_USAGE, "%s: no input images", what);
    if (set->c != C || set->h != lh || set->w != lw)
        return gen_error(GEN_ERR_FORMAT, "%s: images are %dx%dx%d, the model wants %dx%dx%d", what,
                         set->c, set->h, set->w, C, lh, lw);
    int64_t a = 0, b = set->n - 1;
    const char *spec = task->mode == GEN_RESTORE_INPAINT ? inpaint_spec : NULL;
    if (spec && (st = gen_image_range("--inpaint", spec, set->n, &a, &b)) != GEN_OK) return st;
    const int64_t count = b - a + 1;
    if (count > RESTORE_MAX)
        return gen_error(GEN_ERR_USAGE,
                         "%s: at most %d images at once, got %lld (choose with --input test:A-B)",
                         what, RESTORE_MAX, (long long)count);
    /* results per input: -n, else 4 (1 for denoising, which DDIM makes
     * deterministic) */
    const int64_t ways = task->eval || gen_opt_is_set(opts, &gen_sample_options[GEN_SAMPLE_NUM])
                             ? req->n
                             : task->mode == GEN_RESTORE_DENOISE ? 1 : 4;
    const int64_t total = count * ways, cols = ways + 1 + degrade;
    struct restoring w = {
        .orig = gen_alloc((size_t)(count * D) * sizeof(float)),
        .y = gen_alloc((size_t)(count * D) * sizeof(float)),
        .keep = gen_alloc((size_t)(count * HW) * sizeof(float)),
        .cond = gen_alloc((size_t)(count * D) * sizeof(float)),
        .init = task->mode == GEN_RESTORE_DENOISE ? gen_alloc((size_t)(total * D) * sizeof(float)) : NULL,
        .res = gen_alloc((size_t)(total * D) * sizeof(float)),
        .low = gen_alloc((size_t)Dy * sizeof(float))};
    float *grid = gen_alloc((size_t)(count * cols * D) * sizeof(float));
    if (!w.orig || !w.y || !w.keep || !w.cond || !w.res || !w.low || !grid ||
        (task->mode == GEN_RESTORE_DENOISE && !w.init))
        st = gen_error(GEN_ERR_NOMEM, "out of memory for %lld restored images", (long long)total);
    for (int64_t r = 0; st == GEN_OK && r < count; r++) {
        const int32_t id = (int32_t)(a + r);
        gen_images_batch(set, &id, 1, degrade ? w.orig + r * D : w.y + r * Dy, 0.0f, 1.0f);
        if (degrade)
            gen_restore_degrade(task, req->seed, r, C, H, W, w.orig + r * D, w.y + r * Dy,
                                w.keep + r * HW);
        for (int64_t k = 0; k < Dy; k++) w.cond[r * Dy + k] = 2.0f * w.y[r * Dy + k] - 1.0f;
    }
    if (st == GEN_OK) st = restore_chain(m, g, smp, eta_set, task, ways, total, req->seed, &w);
    if (st == GEN_OK) diffusion_to_unit(w.res, total * D);
    for (int64_t r = 0; st == GEN_OK && r < count; r++) {
        float *row = grid + r * cols * D;
        const float *y = w.y + r * Dy, *orig = w.orig + r * D, *keep = w.keep + r * HW;
        if (task->mode == GEN_RESTORE_SUPERRES)
            gen_restore_upsample_nearest(y, C, H, W, task->factor, row);
        else
            memcpy(row, y, (size_t)D * sizeof(float));
        for (int64_t j = 0; j < ways; j++) {
            float *res = row + (1 + j) * D;
            memcpy(res, w.res + (r * ways + j) * D, (size_t)D * sizeof(float));
            for (int64_t k = 0; task->mode == GEN_RESTORE_INPAINT && k < D; k++)
                if (keep[k % HW] > 0.5f) res[k] = orig[k];
        }
        if (degrade) memcpy(row + (ways + 1) * D, orig, (size_t)D * sizeof(float));
    }
    restoring_free(&w);
    if (st != GEN_OK) {
        gen_free(grid);
        return st;
    }
    out->images = grid;
    out->n_images = count * cols;
    out->cols = (int)cols;
    return GEN_OK;
}

