/* trainer.c - the shared training loop (see trainer.h). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/plot.h"
#include "gen/trainer.h"

/* ---- config <-> JSON ---- */

/* Options that say how to run, not what the model is: left out, so a
 * resumed run writes the same checkpoint bytes as an uninterrupted one. */
static int run_only(const char *name) {
    static const char *const names[] = {"out", "resume", "threads", "json", "quiet",
                                        "sample-every", "ckpt-every", "steps", "epochs"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}

char *gen_config_to_json(const struct gen_config *cfg) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < cfg->n; i++) {
        const struct gen_config_entry *e = &cfg->e[i];
        if (!e->present || run_only(e->name)) continue;
        switch (e->type) {
        case GEN_OPT_INT: cJSON_AddNumberToObject(o, e->name, (double)e->i); break;
        case GEN_OPT_FLOAT: cJSON_AddNumberToObject(o, e->name, e->f); break;
        case GEN_OPT_FLAG: cJSON_AddBoolToObject(o, e->name, e->i != 0); break;
        default: cJSON_AddStringToObject(o, e->name, e->s); break;
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

enum gen_status gen_ckpt_config(const char *path, const char *family, cJSON **config) {
    struct gen_ckpt_meta meta = {0};
    enum gen_status st = gen_ckpt_read_meta(path, &meta);
    if (st != GEN_OK) return st;
    const char *fam = gen_ckpt_meta_get(&meta, "family");
    const char *cfg = gen_ckpt_meta_get(&meta, "config");
    if (!fam || strcmp(fam, family)) {
        st = gen_error(GEN_ERR_FORMAT, "%s: a %s checkpoint, not %s", path, fam ? fam : "?",
                       family);
    } else if (!(*config = cJSON_Parse(cfg)) || !cJSON_IsObject(*config)) {
        cJSON_Delete(*config);
        *config = NULL;
        st = gen_error(GEN_ERR_FORMAT, "%s: the config metadata is not a JSON object", path);
    }
    gen_ckpt_meta_free(&meta);
    return st;
}

double gen_json_num(const cJSON *obj, const char *name, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? 1 : 0;
    return def;
}

const char *gen_json_str(const cJSON *obj, const char *name, const char *def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : def;
}

/* ---- checkpoints ---- */

#define MAX_META 40

struct saver {
    const struct gen_trainer_spec *spec;
    const char *run_dir;
    struct gen_batcher *batcher;
};

static enum gen_status save(const struct saver *sv, int64_t step, int numbered) {
    const struct gen_trainer_spec *s = sv->spec;
    char text[MAX_META][96], keys[MAX_META][24];
    struct gen_kv kv[MAX_META + 8];
    int n = 0;
    int64_t epoch = 0, pos = 0;
    if (sv->batcher) gen_batcher_cursor(sv->batcher, &epoch, &pos);
    snprintf(text[n], sizeof text[n], "%" PRId64, step);
    kv[n] = (struct gen_kv){"step", text[n]}, n++;
    snprintf(text[n], sizeof text[n], "%" PRId64, epoch);
    kv[n] = (struct gen_kv){"epoch", text[n]}, n++;
    snprintf(text[n], sizeof text[n], "%" PRId64, pos);
    kv[n] = (struct gen_kv){"data_cursor", text[n]}, n++;
    for (int i = 0; i < s->n_rngs && n < MAX_META; i++) {
        const uint64_t *w = s->rngs[i].s;
        snprintf(keys[n], sizeof keys[n], "rng.%d", i);
        snprintf(text[n], sizeof text[n], "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                 w[0], w[1], w[2], w[3]);
        kv[n] = (struct gen_kv){keys[n], text[n]}, n++;
    }
    for (int i = 0; i < s->n_extra_meta && n < MAX_META + 8; i++) kv[n++] = s->extra_meta[i];

    char path[4096];
    enum gen_status st = GEN_OK;
    if (numbered) {
        snprintf(path, sizeof path, "%s/checkpoint-%08" PRId64 ".safetensors", sv->run_dir, step);
        st = gen_ckpt_save(path, s->ps, s->family, s->config_json, kv, n);
    }
    if (st == GEN_OK) {
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", sv->run_dir);
        st = gen_ckpt_save(path, s->ps, s->family, s->config_json, kv, n);
    }
    /* The loss plot follows every checkpoint; a failed plot only warns. */
    if (st == GEN_OK && gen_plot_metrics(sv->run_dir) != GEN_OK)
        fprintf(stderr, "gen: warning: %s\n", gen_last_error());
    return st;
}

static int parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0) return 0;
    *out = v;
    return 1;
}

static enum gen_status resume(const struct gen_trainer_spec *s, struct gen_batcher *b,
                              int64_t *step) {
    struct gen_ckpt_meta meta = {0};
    int flags = GEN_CKPT_OPTIM | (s->ps->ema ? GEN_CKPT_EMA : 0);
    enum gen_status st = gen_ckpt_load(s->resume, s->ps, s->family, flags, &meta);
    if (st != GEN_OK) return st;
    int64_t epoch = 0, pos = 0;
    if (!parse_i64(gen_ckpt_meta_get(&meta, "step"), step) ||
        !parse_i64(gen_ckpt_meta_get(&meta, "epoch"), &epoch) ||
        !parse_i64(gen_ckpt_meta_get(&meta, "data_cursor"), &pos)) {
        st = gen_error(GEN_ERR_FORMAT, "%s: missing or bad step/epoch/data_cursor metadata",
                       s->resume);
        goto out;
    }
    if (b && gen_batcher_restore(b, epoch, pos) != GEN_OK) {
        st = gen_error(GEN_ERR_FORMAT, "%s: data cursor (%" PRId64 ", %" PRId64
                       ") does not fit this data set and batch size", s->resume, epoch, pos);
        goto out;
    }
    for (int i = 0; i < s->n_rngs; i++) {
        char key[24];
        snprintf(key, sizeof key, "rng.%d", i);
        const char *v = gen_ckpt_meta_get(&meta, key);
        if (!v || strlen(v) != 64) {
            st = gen_error(GEN_ERR_FORMAT, "%s: missing or bad %s metadata", s->resume, key);
            goto out;
        }
        for (int w = 0; w < 4; w++) {
            char word[17];
            memcpy(word, v + 16 * w, 16);
            word[16] = 0;
            char *end;
            s->rngs[i].s[w] = strtoull(word, &end, 16);
            if (*end) {
                st = gen_error(GEN_ERR_FORMAT, "%s: bad %s metadata", s->resume, key);
                goto out;
            }
        }
    }
out:
    gen_ckpt_meta_free(&meta);
    return st;
}

/* ---- the loop ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void log_fields(struct gen_runlog *lg, int64_t step, const char *const *names,
                       const double *values, int n, const char *extra_name, double extra) {
    struct gen_field f[GEN_TRAINER_MAX_FIELDS + 1];
    int k = 0;
    for (int i = 0; i < n; i++) f[k++] = (struct gen_field){names[i], values[i]};
    if (extra_name) f[k++] = (struct gen_field){extra_name, extra};
    gen_runlog_write(lg, step, f, k);
}

int gen_trainer_run(struct gen_run *run, const struct gen_trainer_spec *s) {
    GEN_ASSERT(s->n_fields >= 1 && s->n_fields <= GEN_TRAINER_MAX_FIELDS);
    int rc = 1;
    struct gen_runlog lg;
    struct gen_batcher batcher = {0}, *b = NULL;
    struct gen_ctx g;
    int32_t *idx = NULL;
    double *step_ms = NULL;
    gen_ctx_init(&g);
    if (gen_runlog_open(&lg, run->out_dir, run->json, run->quiet) != GEN_OK) {
        gen_ctx_free(&g);
        return 1;
    }
    gen_runlog_set_items(&lg, s->items_per_step, s->unit);
    struct saver sv = {s, run->out_dir, NULL};

    int64_t total = s->steps;
    if (s->n_examples > 0) {
        if (gen_batcher_init(&batcher, s->n_examples, s->batch, s->data_seed, 0) != GEN_OK)
            goto done;
        b = sv.batcher = &batcher;
        idx = gen_alloc((size_t)s->batch * sizeof *idx);
        if (!idx) goto done;
        if (total <= 0) total = s->epochs * gen_batcher_batches_per_epoch(b);
    }
    GEN_ASSERT(total > 0);

    int64_t step = 0;
    if (s->resume) {
        if (resume(s, b, &step) != GEN_OK) goto done;
        if (!run->quiet)
            fprintf(stderr, "resumed from %s at step %" PRId64 "\n", s->resume, step);
    }
    if (step >= total) {
        gen_error(GEN_ERR_RUNTIME, "%s: already at step %" PRId64 " of %" PRId64
                  "; ask for more with --steps or --epochs", s->resume ? s->resume : "run", step, total);
        goto done;
    }

    int64_t log_every = s->log_every > 0 ? s->log_every : 50;
    /* Wall time of every step of this invocation, for the median step time
     * reported at the end (benchmarks read it from the JSON log). */
    step_ms = gen_alloc((size_t)(total - step) * sizeof *step_ms);
    int64_t n_timed = 0;
    if (!step_ms) goto done;
    double sums[GEN_TRAINER_MAX_FIELDS] = {0}, fields[GEN_TRAINER_MAX_FIELDS];
    int64_t n_summed = 0;
    int interrupted = 0;
    for (; step < total; step++) {
        int count = b ? gen_batcher_next(b, idx) : 0;
        if (b && count == 0) goto done;
        double t0 = gen_run_now();
        enum gen_status st = s->step(s->model, &g, step, b ? idx : NULL, count, fields);
        step_ms[n_timed++] = 1e3 * (gen_run_now() - t0);
        gen_ctx_reset(&g);
        if (st != GEN_OK) goto done;
        int64_t s1 = step + 1;
        if (gen_run_check_loss(fields[0], s1) != GEN_OK) goto done;
        for (int i = 0; i < s->n_fields; i++) sums[i] += fields[i];
        n_summed++;
        gen_runlog_progress(&lg, s1, total, fields[0]);
        int64_t ep = 0, pos = 0;
        if (b) gen_batcher_cursor(b, &ep, &pos);
        int at_epoch_end = b && pos == 0;
        int last = s1 == total;
        interrupted = gen_run_interrupted();

        if (s1 % log_every == 0 || last || at_epoch_end || interrupted) {
            for (int i = 0; i < s->n_fields; i++) sums[i] /= (double)n_summed;
            log_fields(&lg, s1, s->field_names, sums, s->n_fields, b ? "epoch" : NULL,
                       b ? (double)ep + (double)pos / (double)s->n_examples : 0);
            memset(sums, 0, sizeof sums);
            n_summed = 0;
        }
        if (s->evaluate && !interrupted &&
            ((s->eval_every > 0 && s1 % s->eval_every == 0) ||
             (s->eval_every <= 0 && at_epoch_end) || last)) {
            double ev[GEN_TRAINER_MAX_FIELDS];
            gen_no_grad_begin(&g);
            g.training = 0;
            st = s->evaluate(s->model, &g, ev);
            g.training = 1;
            gen_no_grad_end(&g);
            gen_ctx_reset(&g);
            if (st != GEN_OK) goto done;
            log_fields(&lg, s1, s->eval_names, ev, s->n_eval, NULL, 0);
        }
        if (s->snapshot && !interrupted &&
            ((s->sample_every > 0 && s1 % s->sample_every == 0) ||
             (s->sample_every <= 0 && at_epoch_end) || last)) {
            gen_no_grad_begin(&g);
            st = s->snapshot(s->model, &g, run->out_dir, s1);
            gen_no_grad_end(&g);
            gen_ctx_reset(&g);
            if (st != GEN_OK) goto done;
        }
        if ((s->ckpt_every > 0 && s1 % s->ckpt_every == 0) || last || interrupted) {
            if (save(&sv, s1, !interrupted) != GEN_OK) goto done;
        }
        if (interrupted) {
            step++;
            break;
        }
    }
    if (interrupted) {
        gen_runlog_close(&lg);
        if (!run->quiet)
            fprintf(stderr, "interrupted: checkpoint saved in %s/checkpoint.safetensors\n",
                    run->out_dir);
        rc = 130;
        goto free;
    }
    rc = 0;
    qsort(step_ms, (size_t)n_timed, sizeof *step_ms, cmp_double);
    GEN_RUNLOG(&lg, -1, {"steps_timed", (double)n_timed},
               {"median_step_ms", n_timed ? step_ms[n_timed / 2] : 0.0},
               {"peak_step_mib", (double)g.arena.peak / 1048576.0});
    if (!run->quiet)
        fprintf(stderr, "done: %s/checkpoint.safetensors\n", run->out_dir);
done:
    gen_runlog_close(&lg);
free:
    gen_free(step_ms);
    gen_free(idx);
    gen_batcher_free(&batcher);
    gen_ctx_free(&g);
    return rc;
}
