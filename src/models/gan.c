/* gan.c - the DCGAN family (DESIGN.md §3). Options only so far; the
 * commands are filled in by the model's author. */
#include "gen/family.h"

static const struct gen_option gan_train_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    GEN_INT_OPT("epochs", "5", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "2e-4", 0, 10, "Adam learning rate (both networks)"),
    GEN_FLOAT_OPT("beta1", "0.5", 0, 0.999999, "Adam beta1"),
    GEN_INT_OPT("latent", "100", 1, 4096, "dimensions of z"),
    GEN_INT_OPT("image-size", "28", 28, 32, "image side in pixels"),
    GEN_INT_OPT("channels", NULL, 1, 3, "image channels, 1 or 3 (default: the data's)"),
    GEN_OPT_END,
};

static const struct gen_option gan_eval_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "test data: IDX directory or image folder"),
    GEN_OPT_END,
};

const struct gen_family gen_family_gan = {
    .name = "gan",
    .summary = "DCGAN: generator and discriminator on 28x28 or 32x32 images",
    .data = GEN_DATA_IMAGES,
    .train_options = gan_train_options,
    .sample_options = NULL,
    .eval_options = gan_eval_options,
};
