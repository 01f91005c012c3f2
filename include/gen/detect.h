/* detect.h - anomaly detection with numbers: how well per-example scores
 * (higher = more anomalous) tell an out-of-distribution set from the
 * in-distribution one, the input complexity of an image, and the colour
 * map of anomaly heat-maps. Pure functions, used by `gen eval --ood` and
 * `gen sample vae --reconstruct --heatmap`, and by the tests. */
#ifndef GEN_DETECT_H
#define GEN_DETECT_H

#include "gen/core.h"

/* How well scores separate the sets, with the out-of-distribution set as
 * the positives (a score above a threshold says "anomalous"):
 *  - auroc: P(s_ood > s_in) + P(s_ood = s_in) / 2 over all pairs, the area
 *    under the ROC curve with ties drawn as straight segments;
 *  - aupr: average precision, sum over the distinct thresholds t (high to
 *    low) of (recall(t) - recall(t_prev)) * precision(t), scores equal to
 *    t all counted at t (as scikit-learn's average_precision_score);
 *  - fpr95: the false-positive rate at the highest threshold whose true-
 *    positive rate is at least 95 %. */
struct gen_detect {
    double auroc, aupr, fpr95;
};

/* The three numbers for n_in in-distribution scores and n_ood
 * out-of-distribution ones (each n >= 1). GEN_ERR_FORMAT when a score is
 * NaN or infinite; GEN_ERR_NOMEM. */
enum gen_status gen_detect_metrics(const double *in, int64_t n_in, const double *ood, int64_t n_ood,
                                   struct gen_detect *r);

/* The ROC curve of the same scores: *n (<= max_points, max_points >= 4)
 * points (fpr[k], tpr[k]) from (0, 0) to (1, 1), one per distinct
 * threshold from high to low, thinned evenly along the curve when there are
 * more. */
enum gen_status gen_detect_roc(const double *in, int64_t n_in, const double *ood, int64_t n_ood,
                               int max_points, double *fpr, double *tpr, int *n);

/* The input complexity of an 8-bit image (c, h, w) planar, c = 1 or 3
 * (Serra et al. 2020, "Input complexity and out-of-distribution detection
 * with likelihood-based generative models"): the length of its PNG
 * (gen_png_encode) in nats, 8 ln 2 per byte. A likelihood model's
 * -log p(x) minus it is the complexity-corrected score. */
enum gen_status gen_complexity_nats(const uint8_t *pixels, int c, int h, int w, double *nats);

/* The heat-map colour of v in [0, 1] (clamped; NaN is 0): black through
 * purple, red and orange to pale yellow, brightness rising with v. */
void gen_heat_colour(double v, float rgb[3]);

#endif
