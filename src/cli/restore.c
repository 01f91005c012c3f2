/* restore.c - `gen eval FAMILY --restore inpaint|superres|denoise`: how
 * well a model restores images, measured on -n test images that gen
 * degrades itself. The family restores them through its sampling mode
 * (generate with the clean test images, one result each: exactly what
 * `gen sample --inpaint|--superres|--denoise --input test:A-B` shows);
 * this file degrades the same images the same way (gen_restore_degrade,
 * same seed and index) for the classical baseline and the consistency
 * error, and scores both against the originals: PSNR, SSIM, the Frechet
 * distance of the restored set to the test set in gen's classifier
 * features (beside that of the originals themselves at this number of
 * images), and the RMS between the restored image degraded again and the
 * degraded input. Table on stderr, numbers in --json and metrics.jsonl. */
#include <math.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/metrics.h"
#include "gen/restore.h"
#include "io/fs.h"

#define PSNR_CAP 100.0 /* dB: an image restored exactly */

/* The images restored, degraded and compared: (n, D) each, y (n, Dy). */
struct restored {
    int64_t n;
    float *x, *y, *keep, *r, *b; /* originals, degraded, masks, restored, baseline */
};

static void restored_free(struct restored *s) {
    gen_free(s->x), gen_free(s->y), gen_free(s->keep), gen_free(s->r), gen_free(s->b);
}

/* Seed of chunk k of an evaluation, so chunks never share noise or masks. */
static uint64_t chunk_seed(uint64_t seed, int64_t k) {
    struct gen_rng r;
    gen_rng_seed(&r, seed ^ (0xa0761d6478bd642full * (uint64_t)(k + 1)));
    return gen_rng_next(&r);
}

/* Restores test images [first, first + b) as one request of the family
 * (seed: the chunk's), keeping the first result of each, and degrades
 * them again here for the baseline. */
static enum gen_status restore_chunk(struct gen_model *em, const struct gen_config *opts,
                                     const struct gen_restore_task *task,
                                     const struct gen_image_set *test,
                                     const struct gen_image_set *mask, int64_t first, int64_t b,
                                     uint64_t seed, struct restored *s) {
    const int C = em->shape.c, H = em->shape.h, W = em->shape.w;
    const int64_t D = (int64_t)C * H * W, HW = (int64_t)H * W,
                  Dy = (int64_t)C * gen_restore_low_side(task, H) * gen_restore_low_side(task, W);
    struct gen_image_set part = *test; /* a view of the chunk's images */
    part.n = b;
    part.pixels = test->pixels + first * D;
    part.labels = test->labels ? test->labels + first : NULL;
    const struct gen_dataset in = {.kind = GEN_DATA_IMAGES, .images = &part, .clean = 1};
    const struct gen_request req = {.n = 1, .seed = seed, .inputs = &in, .mask = mask};
    struct gen_output out = {0};
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    enum gen_status st = em->fam->generate(em->m, &g, opts, &req, &out);
    gen_ctx_free(&g);
    if (st == GEN_OK && (out.n_images != b * out.cols || out.cols < 2))
        st = gen_error(GEN_ERR_RUNTIME, "%s: restored %lld images in rows of %d, not %lld in rows",
                       em->fam->name, (long long)out.n_images, out.cols, (long long)b);
    for (int64_t i = 0; st == GEN_OK && i < b; i++) {
        const int32_t id = (int32_t)(first + i);
        float *x = s->x + id * D, *y = s->y + id * Dy, *keep = s->keep + id * HW;
        gen_images_batch(test, &id, 1, x, 0.0f, 1.0f);
        gen_restore_degrade(task, seed, i, C, H, W, x, y, keep);
        memcpy(s->r + id * D, out.images + (i * out.cols + 1) * D, (size_t)D * sizeof(float));
    }
    gen_free(out.images);
    return st;
}

/* The blur sigma of the denoising baseline, tuned on the first 200
 * training images of path (never on the test images it is scored on). */
static enum gen_status tune_blur(const struct gen_model *em, const char *path,
                                 const struct gen_restore_task *task, uint64_t seed,
                                 double *sigma) {
    struct gen_image_set train = {0};
    enum gen_status st = gen_images_load(path, GEN_SPLIT_TRAIN, em->shape.c,
                                         em->shape.h == em->shape.w ? em->shape.h : 0, &train);
    const int64_t n = st == GEN_OK ? (train.n < 200 ? train.n : 200) : 0;
    const int64_t D = (int64_t)train.c * train.h * train.w;
    float *x = st == GEN_OK ? gen_alloc((size_t)(n * D) * sizeof *x) : NULL;
    if (st == GEN_OK && (train.h != em->shape.h || train.w != em->shape.w))
        st = gen_error(GEN_ERR_FORMAT, "%s: training images are %dx%d, the model wants %dx%d",
                       path, train.w, train.h, em->shape.w, em->shape.h);
    if (st == GEN_OK && !x) st = gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
    for (int64_t i = 0; st == GEN_OK && i < n; i++) {
        const int32_t id = (int32_t)i;
        gen_images_batch(&train, &id, 1, x + i * D, 0.0f, 1.0f);
    }
    if (st == GEN_OK)
        st = gen_restore_tune_blur(task, x, n, em->shape.c, em->shape.h, em->shape.w,
                                   seed ^ 0x7ea1ull, sigma);
    gen_free(x);
    gen_image_set_free(&train);
    return st;
}

/* Mean PSNR (capped) and SSIM of a (n, C, H, W) against the originals,
 * and the RMS consistency of a with the degraded inputs. */
static void measure(const struct restored *s, const float *a, const struct gen_restore_task *task,
                    int C, int H, int W, double *psnr, double *ssim, double *rms) {
    const int64_t D = (int64_t)C * H * W, HW = (int64_t)H * W,
                  Dy = (int64_t)C * gen_restore_low_side(task, H) * gen_restore_low_side(task, W);
    double sp = 0, ss = 0, sq = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const double p = gen_psnr(a + i * D, s->x + i * D, D);
        sp += p < PSNR_CAP ? p : PSNR_CAP;
        ss += gen_ssim(a + i * D, s->x + i * D, C, H, W);
        gen_restore_residual(task, a + i * D, s->y + i * Dy, s->keep + i * HW, C, H, W, &sq,
                             &count);
    }
    *psnr = sp / (double)s->n, *ssim = ss / (double)s->n;
    *rms = count ? sqrt(sq / (double)count) : 0;
}

static const char *baseline_name(const struct gen_restore_task *t) {
    return t->mode == GEN_RESTORE_SUPERRES ? "bicubic"
           : t->mode == GEN_RESTORE_DENOISE ? "blur"
                                            : "mean-fill";
}

int gen_eval_restores(const struct gen_config *opts) {
    static const enum gen_family_option asks[] = {GEN_FAM_RESTORE, GEN_FAM_SUPERRES,
                                                  GEN_FAM_DENOISE, GEN_FAM_STRENGTH, GEN_FAM_MASK};
    if (!gen_opt_get(opts, &gen_family_options[GEN_FAM_RESTORE])) return 0; /* no such option */
    for (size_t k = 0; k < sizeof asks / sizeof asks[0]; k++) {
        const struct gen_config_entry *e = gen_opt_get(opts, &gen_family_options[asks[k]]);
        if (e && e->present) return 1;
    }
    return 0;
}

int gen_cmd_eval_restore(const struct gen_family *fam, struct gen_config *opts, int json,
                         int quiet) {
    const char *ckpt = gen_opt_str(opts, &gen_eval_options[GEN_EVAL_CKPT]);
    const struct gen_config_entry *mask_opt = gen_opt_get(opts, &gen_family_options[GEN_FAM_MASK]);
    const char *mask_path = mask_opt && mask_opt->present && gen_fs_kind(mask_opt->s) != GEN_FS_MISSING
                                ? mask_opt->s
                                : NULL;
    struct gen_model em = {0};
    struct gen_data d = {0};
    struct gen_image_set mask = {0};
    struct restored s = {0};
    struct gen_restore_task task;
    enum gen_status st;
    int rc = 1, ema = 0;
    const double t0 = gen_now();
    if (gen_model_load(&em, fam, ckpt, GEN_CKPT_EMA, NULL) != GEN_OK) goto done;
    const int C = em.shape.c, H = em.shape.h, W = em.shape.w;
    if (mask_path && gen_image_file_load(mask_path, 1, H == W ? H : 0, &mask) != GEN_OK) goto done;
    if ((st = gen_restore_task_of(opts, mask_path ? &mask : NULL, &task)) != GEN_OK ||
        (st = gen_restore_check(&task, C, H, W)) != GEN_OK) {
        rc = st == GEN_ERR_USAGE ? 2 : 1;
        goto done;
    }
    const char *path = gen_model_data_path(opts, &em);
    if (gen_data_load_heldout(&d, &em, path) != GEN_OK) goto done;
    const int64_t num = gen_opt_int(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_NUM]);
    const int64_t n = num < d.test.n ? num : d.test.n;
    const int64_t D = (int64_t)C * H * W, HW = (int64_t)H * W,
                  Dy = (int64_t)C * gen_restore_low_side(&task, H) * gen_restore_low_side(&task, W);
    s.n = n;
    s.x = gen_alloc((size_t)(n * D) * sizeof(float));
    s.y = gen_alloc((size_t)(n * Dy) * sizeof(float));
    s.keep = gen_alloc((size_t)(n * HW) * sizeof(float));
    s.r = gen_alloc((size_t)(n * D) * sizeof(float));
    s.b = gen_alloc((size_t)(n * D) * sizeof(float));
    if (!s.x || !s.y || !s.keep || !s.r || !s.b) {
        gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
        goto done;
    }
    const uint64_t seed = (uint64_t)gen_opt_int(opts, &gen_eval_options[GEN_EVAL_SEED]);
    ema = gen_model_ema_use(&em, opts);
    for (int64_t first = 0, k = 0; first < n; first += GEN_EVAL_CHUNK, k++) {
        const int64_t b = n - first < GEN_EVAL_CHUNK ? n - first : GEN_EVAL_CHUNK;
        if ((st = restore_chunk(&em, opts, &task, &d.test, mask_path ? &mask : NULL, first, b,
                                chunk_seed(seed, k), &s)) != GEN_OK) {
            rc = st == GEN_ERR_USAGE ? 2 : 1;
            goto done;
        }
        if (!quiet) fprintf(stderr, "\rrestored %lld/%lld images", (long long)(first + b), (long long)n);
    }
    if (!quiet) fputc('\n', stderr);
    /* the classical baseline */
    double blur = 0;
    if (task.mode == GEN_RESTORE_DENOISE && tune_blur(&em, d.path, &task, seed, &blur) != GEN_OK)
        goto done;
    for (int64_t i = 0; i < n; i++)
        if (gen_restore_baseline(&task, s.y + i * Dy, s.keep + i * HW, C, H, W, blur,
                                 s.b + i * D) != GEN_OK)
            goto done;
    double psnr[2], ssim[2], rms[2], fid[3];
    measure(&s, s.r, &task, C, H, W, &psnr[0], &ssim[0], &rms[0]);
    measure(&s, s.b, &task, C, H, W, &psnr[1], &ssim[1], &rms[1]);
    const char *clf = gen_opt_str(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_CLASSIFIER]);
    const float *const sets[3] = {s.r, s.b, s.x};
    if (gen_frechet_sets(clf, path, sets, 3, n, C, H, W, fid) != GEN_OK) goto done;
    const double dt = gen_now() - t0;
    char what[64], base[64];
    gen_restore_describe(&task, what, sizeof what);
    if (task.mode == GEN_RESTORE_DENOISE) snprintf(base, sizeof base, "blur %.2f", blur);
    else snprintf(base, sizeof base, "%s", baseline_name(&task));
    if (!quiet) {
        fprintf(stderr,
                "%s %s, %s: %lld test images of %s (%.1fs)\n"
                "  %-18s %12s %12s\n"
                "  %-18s %12.3f %12.3f   higher is better\n"
                "  %-18s %12.4f %12.4f   higher is better\n"
                "  %-18s %12.3f %12.3f   lower is better (the originals: %.3f)\n"
                "  %-18s %12.5f %12.5f   (x 255: %.3f, %.3f) %s\n",
                fam->name, ckpt, what, (long long)n, path, dt, "metric", "restored", base,
                "PSNR dB", psnr[0], psnr[1], "SSIM", ssim[0], ssim[1], "FID", fid[0], fid[1],
                fid[2], "consistency RMS", rms[0], rms[1], 255 * rms[0], 255 * rms[1],
                task.mode == GEN_RESTORE_DENOISE ? "(noise sigma: near it)" : "lower is better");
    }
    const struct gen_field f[] = {
        {"restore_images", (double)n}, {"psnr", psnr[0]},        {"psnr_baseline", psnr[1]},
        {"ssim", ssim[0]},             {"ssim_baseline", ssim[1]}, {"fid", fid[0]},
        {"fid_baseline", fid[1]},      {"fid_originals", fid[2]}, {"consistency_rms", rms[0]},
        {"consistency_rms_baseline", rms[1]}, {"seconds", dt},
    };
    const int nf = (int)(sizeof f / sizeof f[0]);
    if (gen_eval_log(ckpt, f, nf) != GEN_OK) fprintf(stderr, "gen: warning: %s\n", gen_last_error());
    if (json) {
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "restore", what);
        cJSON_AddStringToObject(extra, "baseline", base);
        if (task.mode == GEN_RESTORE_SUPERRES) cJSON_AddNumberToObject(extra, "factor", task.factor);
        if (task.mode == GEN_RESTORE_DENOISE) {
            cJSON_AddNumberToObject(extra, "sigma", task.sigma);
            cJSON_AddNumberToObject(extra, "blur_sigma", blur);
        }
        gen_print_result("eval", fam->name, NULL, 0, f, nf, extra);
    }
    rc = 0;
done:
    gen_model_ema_restore(&em, ema);
    restored_free(&s);
    gen_image_set_free(&mask);
    gen_data_free(&d);
    gen_model_free(&em);
    return rc;
}
