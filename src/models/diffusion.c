/* diffusion.c - the DDPM family with a small U-Net (DESIGN.md §3). Options
 * only so far; the commands are filled in by the model's author. */
#include "gen/family.h"

static const struct gen_option diffusion_train_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "training data: IDX directory or image folder"),
    GEN_INT_OPT("epochs", "10", 1, GEN_OPT_NO_MAX, "passes over the training set"),
    GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "5e-4", 0, 10, "Adam learning rate (after 500 warm-up steps)"),
    GEN_INT_OPT("base", "32", 8, 1024, "U-Net base channels (a multiple of 8)"),
    GEN_INT_OPT("timesteps", "1000", 1, 100000, "diffusion steps T"),
    GEN_FLOAT_OPT("beta-start", "1e-4", 0, 1, "first beta of the linear schedule"),
    GEN_FLOAT_OPT("beta-end", "0.02", 0, 1, "last beta of the linear schedule"),
    GEN_FLAG_OPT("no-attn", "leave out the attention block"),
    GEN_OPT_END,
};

static const struct gen_option diffusion_sample_options[] = {
    GEN_CHOICE_OPT("sampler", "ddim", "ddpm|ddim", "ddpm (ancestral, T steps) or ddim"),
    GEN_INT_OPT("steps", "50", 1, 100000, "DDIM steps"),
    GEN_FLOAT_OPT("eta", "0", 0, 1, "DDIM noise (0: deterministic, 1: like DDPM)"),
    GEN_STR_OPT("inpaint", NULL, "PNG to inpaint (needs --mask)"),
    GEN_STR_OPT("mask", NULL, "PNG mask: white pixels are kept, black regenerated"),
    GEN_OPT_END,
};

static const struct gen_option diffusion_eval_options[] = {
    GEN_STR_OPT("data", "data/fashion-mnist", "test data: IDX directory or image folder"),
    GEN_OPT_END,
};

const struct gen_family gen_family_diffusion = {
    .name = "diffusion",
    .summary = "DDPM with a small U-Net; DDPM or DDIM sampling, inpainting",
    .data = GEN_DATA_IMAGES,
    .train_options = diffusion_train_options,
    .sample_options = diffusion_sample_options,
    .eval_options = diffusion_eval_options,
};
