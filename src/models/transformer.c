/* transformer.c - the autoregressive GPT family over bytes or characters
 * (DESIGN.md §3). Options only so far; the commands are filled in by the
 * model's author. */
#include "gen/family.h"

static const struct gen_option transformer_train_options[] = {
    GEN_STR_OPT("data", "data/moby-dick.txt", "training text: a .txt file or a folder of them"),
    GEN_INT_OPT("steps", "5000", 1, GEN_OPT_NO_MAX, "optimiser steps (--epochs counts passes instead)"),
    GEN_INT_OPT("batch", "32", 1, 65536, "windows per batch"),
    GEN_FLOAT_OPT("lr", "1e-3", 0, 10, "AdamW peak learning rate"),
    GEN_INT_OPT("layers", "4", 1, 256, "transformer blocks"),
    GEN_INT_OPT("heads", "4", 1, 256, "attention heads (must divide --width)"),
    GEN_INT_OPT("width", "128", 1, 65536, "embedding width"),
    GEN_INT_OPT("context", "128", 1, 65536, "context length in tokens"),
    GEN_FLOAT_OPT("dropout", "0", 0, 0.95, "dropout probability"),
    GEN_CHOICE_OPT("tokenizer", "byte", "byte|char", "byte (256 symbols) or char (the corpus's characters)"),
    GEN_INT_OPT("eval-every", "500", 0, GEN_OPT_NO_MAX, "validation loss every N steps (0: only at the end)"),
    GEN_OPT_END,
};

static const struct gen_option transformer_sample_options[] = {
    {"num", 'n', GEN_OPT_INT, "1", "number of samples", 1, 100000, NULL},
    GEN_STR_OPT("prompt", NULL, "text the samples continue"),
    GEN_STR_OPT("prompt-file", NULL, "read the prompt from a file"),
    GEN_INT_OPT("length", "400", 1, 100000000, "tokens to generate"),
    GEN_FLOAT_OPT("temperature", "1.0", 0, 100, "softmax temperature (0: greedy)"),
    GEN_INT_OPT("top-k", "0", 0, GEN_OPT_NO_MAX, "sample from the k likeliest tokens (0: all)"),
    GEN_FLOAT_OPT("top-p", "1.0", 0, 1, "nucleus sampling mass (1: off)"),
    GEN_OPT_END,
};

static const struct gen_option transformer_eval_options[] = {
    GEN_STR_OPT("data", "data/moby-dick.txt", "text; the last 10% is the validation split"),
    GEN_OPT_END,
};

const struct gen_family gen_family_transformer = {
    .name = "transformer",
    .summary = "GPT-style autoregressive transformer over bytes or characters",
    .data = GEN_DATA_TEXT,
    .train_options = transformer_train_options,
    .sample_options = transformer_sample_options,
    .eval_options = transformer_eval_options,
};
