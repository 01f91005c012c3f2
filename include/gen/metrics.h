/* metrics.h - sample-quality metrics for the image families (`gen eval`).
 *
 * The features are those of gen's own classifier family (a small CNN
 * trained with `gen train classifier`): its 128-d penultimate activations
 * for the Frechet distance and for precision/recall, its class
 * probabilities p(y|x) for the classifier score. Every number is printed
 * next to its baseline: the same metric between N training images and the
 * test images, which is what a perfect generator would score. */
#ifndef GEN_METRICS_H
#define GEN_METRICS_H

#include "gen/core.h"
#include "gen/family.h"
#include "gen/run.h"

/* Generates n images (n, c, h, w) with values in [0, 1] into out, using seed.
 * gen_eval_images calls it in chunks of at most GEN_EVAL_CHUNK images, each
 * chunk with its own seed derived from --seed, so a generator never has to
 * hold more than a chunk's activations. */
#define GEN_EVAL_CHUNK 500
/* labels: the class of each image (a conditional model), or NULL. */
typedef enum gen_status (*gen_generate_fn)(void *model, int64_t n, uint64_t seed,
                                           const int32_t *labels, float *out);

/* What gen_eval_images scores: a generator of images of shape (c, h, w).
 * A conditional model (classes K > 0) is asked for the classes in turn
 * (image i of the evaluation has class i % K) and scored by class too. */
struct gen_eval_source {
    gen_generate_fn generate;
    void *model;
    int c, h, w;
    int classes;              /* K, or 0: unconditional                  */
    char *const *class_names; /* (K) or NULL: the data's class indices    */
};

/* Scores by class: the classifier's accuracy at telling each image's
 * class (the class it was generated as, or its subfolder of --samples),
 * and the Frechet distance of each class's images to the test images of
 * that class. */
struct gen_class_scores {
    int K;                  /* classes (0: no scores by class)             */
    double accuracy;        /* over every image                             */
    char **names;           /* (K) the data's class names; gen_alloc'd      */
    int64_t *count;         /* (K) images of each class                     */
    double *acc, *fid;      /* (K) each; fid NaN under 2 images             */
};
void gen_class_scores_free(struct gen_class_scores *s);

/* The sample-quality part of `gen eval` for an image family (family: its
 * name, for the table). Options it reads from cfg:
 * --classifier CKPT (default runs/classifier/checkpoint.safetensors),
 * --data DIR (real images; the test split, and the training split for the
 * baseline; default: the data the classifier was trained on), -n/--num N
 * generated images, --samples DIR (evaluate a folder of images instead of
 * generating, e.g. a PyTorch twin's samples; then generate may be NULL),
 * --seed, --ckpt.
 * Prints a table on stderr unless quiet (FID, classifier score, precision,
 * recall, each with the train-vs-test baseline next to it), adds the
 * numbers to out->f (the command prints them with --json), and appends
 * them to metrics.jsonl of the checkpoint's directory (not with --samples;
 * a failure there is only a warning).
 * A family without a --classifier option (the classifier family itself:
 * `gen eval classifier --samples DIR`) uses --ckpt as the classifier.
 * src: the generator (NULL with --samples); its images are converted to
 * the classifier's channels and size when they differ.
 * by_class (may be NULL) receives scores by class when the images have
 * classes: a conditional model's, or a --samples folder whose subfolders
 * are named as classes of the data ("T-shirt-top" for "T-shirt/top", as
 * `gen sample --per-class` writes them); free with gen_class_scores_free. Images in --samples must share one
 * size; another size than the classifier's is resized (with a note).
 * The model must be ready to generate (evaluation mode). Returns an exit
 * code (0, 1 with gen_last_error set, 2 usage). */
int gen_eval_images(const struct gen_config *cfg, const char *family, int quiet,
                    const struct gen_eval_source *src, struct gen_metrics *out,
                    struct gen_class_scores *by_class);

/* The same entries as a table of their own, so gen_eval_images reads them
 * by enumerator (gen_opt_str(cfg, &gen_eval_image_options[GEN_EVAL_IMAGE_SAMPLES])). */
enum { GEN_EVAL_IMAGE_CLASSIFIER, GEN_EVAL_IMAGE_NUM, GEN_EVAL_IMAGE_SAMPLES, GEN_EVAL_IMAGE_COUNT };
extern const struct gen_option gen_eval_image_options[GEN_EVAL_IMAGE_COUNT + 1];

/* Option-table entries every image family puts in its eval_options table
 * (before GEN_OPT_END). GEN_EVAL_IMAGE_OPTIONS_NUM("2000") gives -n another
 * default (for slow samplers). */
#define GEN_EVAL_IMAGE_OPTIONS GEN_EVAL_IMAGE_OPTIONS_NUM("10000")
#define GEN_EVAL_IMAGE_OPTIONS_NUM(def_num)                                                      \
    GEN_STR_OPT("classifier", "runs/classifier/checkpoint.safetensors",                          \
                "feature network checkpoint (gen train classifier)"),                            \
        {"num", 'n', GEN_OPT_INT, def_num, "generated images to evaluate (--samples: at most N)", \
         10, 1000000, NULL, 0},                                                                     \
        GEN_STR_OPT("samples", NULL, "evaluate this folder of PNG images instead of generating")

/* Appends one line of evaluation fields to metrics.jsonl in the directory
 * of the checkpoint `ckpt` (created if needed), with "command": "eval" and
 * "step" = the checkpoint's step (none if it has no step metadata), so
 * `gen report` and scripts find the evaluations of a run beside its
 * training. For every family's eval. */
enum gen_status gen_eval_log(const char *ckpt, const struct gen_field *fields, int n);

/* ---- the metrics themselves (also used by the tests) ------------------- */

/* Mean (d) and covariance (d x d, row-major, unbiased: divides by n - 1) of
 * n feature rows x (n, d), accumulated in double. n >= 2. */
enum gen_status gen_feature_stats(const float *x, int64_t n, int d, double *mean, double *cov);

/* Frechet distance between N(mu1, s1) and N(mu2, s2) (d x d symmetric PSD):
 * |mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1^1/2 s2 s1^1/2)^1/2), through symmetric
 * eigen-decompositions. Stores it in *fd (>= 0). */
enum gen_status gen_frechet_distance(const double *mu1, const double *s1, const double *mu2,
                                     const double *s2, int d, double *fd);

/* Classifier (inception-style) score exp(E_x KL(p(y|x) || p(y))) of n rows
 * of class probabilities p (n, k). 1 <= score <= k. */
double gen_classifier_score(const float *p, int64_t n, int k);

/* k-NN precision and recall (Kynkaanniemi et al. 2019) between real
 * features (nr, d) and generated features (ng, d): precision is the share
 * of generated points inside some real point's k-NN ball, recall the share
 * of real points inside some generated point's k-NN ball. */
enum gen_status gen_precision_recall(const float *real, int64_t nr, const float *fake, int64_t ng,
                                     int d, int k, double *precision, double *recall);

/* ---- restoration (gen eval --restore) ---- */

/* Peak signal-to-noise ratio of a against b (n values in [0, 1]):
 * 10 log10(1 / MSE) dB; INFINITY when they are equal. */
double gen_psnr(const float *a, const float *b, int64_t n);
/* Structural similarity (Wang et al. 2004) of images a and b (C, H, W) in
 * [0, 1]: the standard 11 x 11 Gaussian window (sigma 1.5), C1 = 0.01^2,
 * C2 = 0.03^2, averaged over the positions where the window fits and over
 * channels. H, W >= 11. 1 for equal images. */
double gen_ssim(const float *a, const float *b, int C, int H, int W);
/* The Frechet distance of each of n_sets sets of n images (n, c, h, w) in
 * [0, 1] against the test split of data, in the features of the
 * classifier at clf_path (data NULL: the data set it was trained on), as
 * gen_eval_images measures generated images (converted to the
 * classifier's channels and size). fid (n_sets). n >= 10. */
enum gen_status gen_frechet_sets(const char *clf_path, const char *data, const float *const *sets,
                                 int n_sets, int64_t n, int c, int h, int w, double *fid);

#endif
