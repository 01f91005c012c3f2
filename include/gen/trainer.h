/* trainer.h - the training loop every family shares: steps over epochs of
 * a batcher (or plain steps), logging, evaluation, sample grids, numbered
 * and latest checkpoints, --resume that continues bit for bit, SIGINT/
 * SIGTERM (finish the step, save, exit 130) and the NaN guard (stop, keep
 * the last good checkpoint).
 *
 * A family fills a gen_trainer_spec with its model and three callbacks and
 * calls gen_trainer_run. Everything random in a step must come from the
 * spec's rngs (saved in the checkpoint); evaluation and snapshots must use
 * their own fixed seeds so they never disturb the training stream. */
#ifndef GEN_TRAINER_H
#define GEN_TRAINER_H

#include <cjson/cJSON.h>

#include "gen/family.h"
#include "gen/io.h"
#include "gen/nn.h"
#include "gen/run.h"

#define GEN_TRAINER_MAX_FIELDS 8

struct gen_trainer_spec {
    const char *family;
    void *model;
    struct gen_params *ps;
    struct gen_rng *rngs; /* the model's random streams (init, noise, ...) */
    int n_rngs;

    int64_t n_examples;   /* > 0: a shuffling batcher over this many       */
    int batch;
    uint64_t data_seed;
    int64_t epochs;       /* used when steps == 0                           */
    int64_t steps;        /* total optimiser steps (> 0 overrides epochs)  */
    int64_t items_per_step; const char *unit; /* for rates: 128 "img"     */
    int64_t log_every;    /* steps between log lines (0: 50)               */
    int64_t eval_every;   /* steps between evaluations (0: each epoch end) */
    int64_t sample_every; /* steps between sample grids (0: end only)      */
    int64_t ckpt_every;   /* steps between numbered checkpoints (0: end)   */
    const char *resume;   /* checkpoint to resume from, or NULL            */
    const char *config_json; /* the model's config, stored in checkpoints */

    /* One optimisation step on idx[0..count) (idx NULL without a batcher):
     * writes fields[0..n_fields), fields[0] being the loss that is checked
     * for NaN. The context is reset by the trainer after each step. */
    enum gen_status (*step)(void *model, struct gen_ctx *g, int64_t step, const int32_t *idx,
                            int count, double *fields);
    const char *field_names[GEN_TRAINER_MAX_FIELDS];
    int n_fields;
    /* Optional: evaluation (e.g. test loss), fields named eval_names. */
    enum gen_status (*evaluate)(void *model, struct gen_ctx *g, double *fields);
    const char *eval_names[GEN_TRAINER_MAX_FIELDS];
    int n_eval;
    /* Optional: writes sample images for `step` into the run directory
     * (e.g. RUN/samples-STEP.png). */
    enum gen_status (*snapshot)(void *model, struct gen_ctx *g, const char *run_dir, int64_t step);
    /* Optional: extra metadata pairs to store (e.g. a vocabulary). */
    const struct gen_kv *extra_meta;
    int n_extra_meta;
};

/* Runs training; returns the exit code (0, 1 with gen_last_error set, 130). */
int gen_trainer_run(struct gen_run *run, const struct gen_trainer_spec *spec);

/* The config entries of a run as a JSON object text (caller frees with
 * free()); numbers stay numbers. */
char *gen_config_to_json(const struct gen_config *cfg);

/* Reads a checkpoint's "config" metadata into a cJSON object (free with
 * cJSON_Delete), checking the family. Errors name the file. */
enum gen_status gen_ckpt_config(const char *path, const char *family, cJSON **config);
/* Number / string of a config object, or a default when absent. */
double gen_json_num(const cJSON *obj, const char *name, double def);
const char *gen_json_str(const cJSON *obj, const char *name, const char *def);

#endif
