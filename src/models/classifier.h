/* classifier.h - the classifier family's model, for gen eval and the tests:
 * a small CNN whose 128-d penultimate activations are the feature space of
 * the image metrics (src/models/metrics.c).
 *
 *   x (N, C, H, W) in [0, 1]
 *   conv1 Conv(C, F, 3, 1, 1)   - bn1 - ReLU      (H, W)
 *   conv2 Conv(F, F, 4, 2, 1)   - bn2 - ReLU      (H/2, W/2)
 *   conv3 Conv(F, 2F, 3, 1, 1)  - bn3 - ReLU
 *   conv4 Conv(2F, 2F, 4, 2, 1) - bn4 - ReLU      (H/4, W/4)
 *   flatten, fc1 Linear(2F H/4 W/4, 128) - ReLU   -> features (N, 128)
 *   fc2 Linear(128, K)                            -> logits (N, K)
 * Convolutions have no bias (the BatchNorm after each has one). Stride-2
 * convolutions stand in for max-pooling. BatchNorm uses batch statistics
 * when g->training and the running ones otherwise (features, evaluation). */
#ifndef GEN_MODELS_CLASSIFIER_H
#define GEN_MODELS_CLASSIFIER_H

#include "gen/nn.h"

#define GEN_CLASSIFIER_FEATURES 128

struct gen_classifier {
    int64_t C, H, W, K, F; /* image shape, classes, filters of conv1 */
    struct gen_params ps;
    struct gen_conv_layer conv[4];
    struct gen_batchnorm_layer bn[4];
    struct gen_linear_layer fc1, fc2;
};

/* Builds a classifier for C x H x W images (H, W >= 4) and K >= 2 classes
 * with F filters, initialised (PyTorch's default) from seed; with_ema also
 * allocates the EMA block (a copy of the initial weights). Free with
 * gen_classifier_free (also after a failed build). */
enum gen_status gen_classifier_build(struct gen_classifier *m, int64_t C, int64_t H, int64_t W,
                                     int64_t K, int64_t F, int with_ema, uint64_t seed);
/* The same without an EMA block. */
enum gen_status gen_classifier_init(struct gen_classifier *m, int64_t C, int64_t H, int64_t W,
                                    int64_t K, int64_t F, uint64_t seed);
void gen_classifier_free(struct gen_classifier *m);

/* The forward pass: x (N, C, H, W) -> logits (N, K); *features (if not
 * NULL) receives the (N, 128) penultimate activations. */
struct gen_tensor *gen_classifier_forward(struct gen_ctx *g, struct gen_classifier *m,
                                          struct gen_tensor *x, struct gen_tensor **features);

/* Features (n, 128) and class probabilities (n, K) of images (n, C, H, W)
 * in [0, 1], in batches, without grad; either output may be NULL. */
void gen_classifier_embed(struct gen_classifier *m, const float *images, int64_t n, float *features,
                          float *probs);

/* ---- checkpoints (src/models/classifier_ckpt.c) ---- */

/* Saves the weights (no optimiser state) as a classifier checkpoint in the
 * form `gen train classifier` writes: the data shape in the "data_shape"
 * metadata, the filters in the config. */
enum gen_status gen_classifier_save(const struct gen_classifier *m, const char *path);
/* Loads a classifier checkpoint: one `gen train classifier` wrote (shape
 * in "data_shape"), one written before the engine (shape in the config),
 * or one of gen_classifier_save. The weights are the EMA when the run kept
 * one (the weights `gen eval classifier` scores). Errors name the file. */
enum gen_status gen_classifier_load(struct gen_classifier *m, const char *path);

#endif
