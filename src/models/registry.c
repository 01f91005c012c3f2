/* registry.c - the list of model families, in the order gen --help shows,
 * and the options every family's train, sample and eval commands share. */
#include <string.h>

#include "gen/family.h"

extern const struct gen_family gen_family_gan, gen_family_vae, gen_family_transformer,
    gen_family_diffusion, gen_family_classifier;

const struct gen_family *const gen_families[] = {
    &gen_family_gan,
    &gen_family_vae,
    &gen_family_transformer,
    &gen_family_diffusion,
    &gen_family_classifier,
    NULL,
};

const struct gen_family *gen_family_find(const char *name) {
    for (int k = 0; gen_families[k]; k++)
        if (!strcmp(gen_families[k]->name, name)) return gen_families[k];
    return NULL;
}

/* ---- the options every family shares ---- */

#define GEN_PRECISION_HELP                                                                        \
    "matrix and convolution products: fp32, or bf16 operands accumulated in fp32 (AVX512-BF16; " \
    "weights, optimiser and sums stay fp32)"

const struct gen_option gen_train_options[GEN_TRAIN_COUNT + 1] = {
    [GEN_TRAIN_DATA] = GEN_STR_OPT("data", NULL, "training data: a directory (IDX files or images) or a text file"),
    [GEN_TRAIN_OUT] = {"out", 0, GEN_OPT_STRING, NULL, "run directory (default: runs/FAMILY)", 0, 0,
                       NULL, GEN_OPT_INVOCATION},
    [GEN_TRAIN_EPOCHS] = GEN_INT_RUN_OPT("epochs", NULL, 1, GEN_OPT_NO_MAX, "passes over the training set"),
    [GEN_TRAIN_STEPS] = GEN_INT_RUN_OPT("steps", NULL, 1, GEN_OPT_NO_MAX, "optimiser steps (instead of --epochs)"),
    [GEN_TRAIN_BATCH] = GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    [GEN_TRAIN_LR] = GEN_FLOAT_RUN_OPT("lr", "1e-3", 0, 10, "learning rate"),
    [GEN_TRAIN_SCHEDULE] = GEN_CHOICE_OPT("schedule", "constant", "constant|cosine",
                   "learning rate after the warm-up: constant, or cosine decay to --lr-min"),
    [GEN_TRAIN_WARMUP] = GEN_INT_RUN_OPT("warmup", "0", 0, GEN_OPT_NO_MAX, "linear learning-rate warm-up steps"),
    [GEN_TRAIN_LR_MIN] = GEN_FLOAT_RUN_OPT("lr-min", "1e-4", 0, 10, "final learning rate of the cosine schedule"),
    [GEN_TRAIN_CLIP] = GEN_FLOAT_RUN_OPT("clip", "0", 0, GEN_OPT_NO_MAX, "clip the global gradient norm to this (0: off)"),
    [GEN_TRAIN_EMA] = GEN_FLOAT_OPT("ema", "0", 0, 0.999999,
                  "keep an EMA of the weights with this decay (warm-up (1+t)/(10+t) below it; "
                  "0: off); sampling uses it"),
    [GEN_TRAIN_SEED] = GEN_INT_OPT("seed", "0", 0, GEN_OPT_NO_MAX, "random seed (init, data order, noise)"),
    [GEN_TRAIN_THREADS] = {"threads", 0, GEN_OPT_INT, "0", "threads (0: $GEN_THREADS or all cores, at most $OMP_NUM_THREADS)", 0,
                           GEN_THREADS_MAX, NULL, GEN_OPT_INVOCATION},
    [GEN_TRAIN_RESUME] = {"resume", 0, GEN_OPT_OPTIONAL_STRING, NULL,
     "continue from a checkpoint or run directory (default: OUT) with its settings", 0, 0,
     NULL, GEN_OPT_INVOCATION},
    [GEN_TRAIN_FORCE] = {"force", 0, GEN_OPT_FLAG, NULL,
                         "start a new run in a directory that holds one (replacing its checkpoints)",
                         0, 0, NULL, GEN_OPT_INVOCATION},
    [GEN_TRAIN_LOG_EVERY] = GEN_INT_RUN_OPT("log-every", "50", 1, GEN_OPT_NO_MAX, "steps between log lines"),
    [GEN_TRAIN_EVAL_EVERY] = GEN_INT_RUN_OPT("eval-every", "0", 0, GEN_OPT_NO_MAX,
                    "evaluate every N steps (0: at each epoch's end, no more often than "
                    "--log-every, and at the end)"),
    [GEN_TRAIN_SAMPLE_EVERY] = GEN_INT_RUN_OPT("sample-every", "0", 0, GEN_OPT_NO_MAX,
                    "write OUT/samples-STEP every N steps (0: at each epoch's end, no more "
                    "often than --log-every, and at the end)"),
    [GEN_TRAIN_CKPT_EVERY] = GEN_INT_RUN_OPT("ckpt-every", "1000", 0, GEN_OPT_NO_MAX,
                    "save a numbered checkpoint every N steps (0: only at the end)"),
    [GEN_TRAIN_JSON] = {"json", 0, GEN_OPT_FLAG, NULL, "one JSON object per line on stdout", 0, 0, NULL,
                        GEN_OPT_INVOCATION},
    [GEN_TRAIN_QUIET] = {"quiet", 'q', GEN_OPT_FLAG, NULL, "no log lines or progress bar on stderr", 0,
                         0, NULL, GEN_OPT_INVOCATION},
    [GEN_TRAIN_SYNC_BN] = GEN_FLAG_RUN_OPT("sync-bn",
                    "over MPI: batch norm statistics of the global batch (as one process), "
                    "not of each rank's share"),
    [GEN_TRAIN_PRECISION] = {"precision", 0, GEN_OPT_CHOICE, "fp32", GEN_PRECISION_HELP, 0, 0,
                             "fp32|bf16", GEN_OPT_RUN_ONLY},
    [GEN_TRAIN_PROFILE] = {"profile", 0, GEN_OPT_FLAG, NULL,
                           "time every op of the steps after the first: a table on stderr at the "
                           "end and OUT/profile.json",
                           0, 0, NULL, GEN_OPT_INVOCATION},
    [GEN_TRAIN_COUNT] = GEN_OPT_END,
};

const struct gen_option gen_sample_options[GEN_SAMPLE_COUNT + 1] = {
    [GEN_SAMPLE_CKPT] = GEN_STR_OPT("ckpt", NULL,
                "checkpoint, or a run directory for its checkpoint.safetensors "
                "(default: runs/FAMILY)"),
    [GEN_SAMPLE_NUM] = {"num", 'n', GEN_OPT_INT, "64", "number of samples", 1, 100000, NULL, 0},
    [GEN_SAMPLE_OUTPUT] = {"output", 'o', GEN_OPT_STRING, NULL,
     "output: FILE.png (a grid), DIR/ (one PNG each) or a text file (text: - or none: stdout)", 0,
     0, NULL, 0},
    [GEN_SAMPLE_SEED] = GEN_INT_OPT("seed", "0", 0, GEN_OPT_NO_MAX, "random seed"),
    [GEN_SAMPLE_DATA] = GEN_STR_OPT("data", NULL, "data set of modes that take test images (default: the model's)"),
    [GEN_SAMPLE_INPUT] = GEN_STR_OPT("input", NULL,
                "a folder of images, one image file, or test:K / test:A-B (those test images of "
                "--data), for modes that take images (default: the test split of --data)"),
    [GEN_SAMPLE_NO_EMA] = GEN_FLAG_OPT("no-ema", "use the trained weights even when the model keeps an EMA of them"),
    [GEN_SAMPLE_THREADS] = GEN_INT_OPT("threads", "0", 0, GEN_THREADS_MAX, "threads (0: $GEN_THREADS or all cores, at most $OMP_NUM_THREADS)"),
    [GEN_SAMPLE_JSON] = GEN_FLAG_OPT("json", "the result as one JSON object on stdout"),
    [GEN_SAMPLE_QUIET] = {"quiet", 'q', GEN_OPT_FLAG, NULL, "no log lines on stderr", 0, 0, NULL, 0},
    [GEN_SAMPLE_PRECISION] = GEN_CHOICE_OPT("precision", "fp32", "fp32|bf16", GEN_PRECISION_HELP),
    [GEN_SAMPLE_COUNT] = GEN_OPT_END,
};

const struct gen_option gen_eval_options[GEN_EVAL_COUNT + 1] = {
    [GEN_EVAL_CKPT] = GEN_STR_OPT("ckpt", NULL,
                "checkpoint, or a run directory for its checkpoint.safetensors "
                "(default: runs/FAMILY)"),
    [GEN_EVAL_DATA] = GEN_STR_OPT("data", NULL, "evaluation data: its test split (default: the model's data)"),
    [GEN_EVAL_NO_EMA] = GEN_FLAG_OPT("no-ema", "use the trained weights even when the model keeps an EMA of them"),
    [GEN_EVAL_SEED] = GEN_INT_OPT("seed", "0", 0, GEN_OPT_NO_MAX, "random seed"),
    [GEN_EVAL_THREADS] = GEN_INT_OPT("threads", "0", 0, GEN_THREADS_MAX, "threads (0: $GEN_THREADS or all cores, at most $OMP_NUM_THREADS)"),
    [GEN_EVAL_JSON] = GEN_FLAG_OPT("json", "the result as one JSON object on stdout"),
    [GEN_EVAL_QUIET] = {"quiet", 'q', GEN_OPT_FLAG, NULL, "no log lines on stderr", 0, 0, NULL, 0},
    [GEN_EVAL_OOD] = GEN_STR_OPT("ood", NULL,
                  "anomaly detection: score the test split of this data set against the model's "
                  "(AUROC, AUPR, FPR at 95 % TPR of each per-image score; families that score images)"),
    [GEN_EVAL_ROC] = GEN_STR_OPT("roc", NULL, "with --ood: draw the ROC curves into this PNG file"),
    [GEN_EVAL_PRECISION] = GEN_CHOICE_OPT("precision", "fp32", "fp32|bf16", GEN_PRECISION_HELP),
    [GEN_EVAL_COUNT] = GEN_OPT_END,
};

const struct gen_option gen_family_options[GEN_FAM_COUNT + 1] = {
    [GEN_FAM_CHANNELS] = GEN_INT_OPT("channels", NULL, 1, 3, "image channels"),
    [GEN_FAM_IMAGE_SIZE] = GEN_INT_OPT("image-size", NULL, 1, 16384, "image side"),
    [GEN_FAM_TOKENIZER] = GEN_CHOICE_OPT("tokenizer", NULL, "byte|char", "tokenizer"),
    [GEN_FAM_STOP_ON_DIVERGENCE] = GEN_FLAG_OPT("stop-on-divergence", "stop when training diverges"),
    [GEN_FAM_PROMPT] = GEN_STR_OPT("prompt", NULL, "prompt"),
    [GEN_FAM_PROMPT_FILE] = GEN_STR_OPT("prompt-file", NULL, "prompt file"),
    [GEN_FAM_LENGTH] = GEN_INT_OPT("length", NULL, 1, 100000000, "tokens to generate"),
    [GEN_FAM_PER_SAMPLE] = GEN_STR_OPT("per-sample", NULL, "per-example scores CSV"),
    [GEN_FAM_MASK] = GEN_STR_OPT("mask", NULL, "mask image"),
    [GEN_FAM_CLASS] = GEN_STR_OPT("class", NULL, "class to draw"),
    [GEN_FAM_PER_CLASS] = GEN_INT_OPT("per-class", NULL, 1, 1000000, "images per class"),
    [GEN_FAM_GUIDANCE] = GEN_STR_OPT("guidance", NULL, "guidance scales"),
    [GEN_FAM_PLOT] = GEN_STR_OPT("plot", NULL, "plot file"),
    [GEN_FAM_INPAINT] = {"inpaint", 0, GEN_OPT_OPTIONAL_STRING, NULL, "inpainting", 0, 0, NULL, 0},
    [GEN_FAM_SUPERRES] = GEN_INT_OPT("superres", NULL, 2, 4, "super-resolution factor"),
    [GEN_FAM_DENOISE] = GEN_FLOAT_OPT("denoise", NULL, 0, 1, "noise level to remove"),
    [GEN_FAM_STRENGTH] = GEN_FLOAT_OPT("strength", NULL, 0, 1, "denoising start"),
    [GEN_FAM_RESTORE] = GEN_CHOICE_OPT("restore", NULL, "inpaint|superres|denoise", "restoration to measure"),
    [GEN_FAM_COUNT] = GEN_OPT_END,
};

enum gen_status gen_conditional_classes(int asked, const struct gen_data_shape *shape,
                                        int64_t *classes) {
    *classes = 0;
    if (!asked) return GEN_OK;
    if (shape->n_classes < 2)
        return gen_error(GEN_ERR_FORMAT,
                         "--conditional: the data has %d class (labels: IDX label files, or one "
                         "subfolder per class)",
                         shape->n_classes);
    *classes = shape->n_classes;
    return GEN_OK;
}

void gen_batch_fill_normal(const struct gen_batch *b, uint64_t purpose, float *x, int64_t per) {
    for (int i = 0; i < b->n; i++) {
        struct gen_rng r;
        gen_batch_rng(b, purpose, i, &r);
        gen_rng_fill_normal(&r, x + (int64_t)i * per, per, 0.0f, 1.0f);
    }
}
