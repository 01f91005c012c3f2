/* trainer.c - the one training loop of every family (see engine.h).
 *
 * A step draws a batch (shuffled images through the batcher, or random
 * text windows from the data stream), then runs each phase of the model:
 * zero-grad, the family's loss, the NaN guard, backward, gradient
 * clipping, the optimiser with the scheduled learning rate; then the EMA
 * with its warm-up. Around the steps: log lines, evaluation, sample
 * snapshots, numbered and latest checkpoints, and interruption. Everything
 * random is in the model's streams and the data stream, all saved, so a
 * resumed run continues bit for bit.
 *
 * Over MPI (see comm.h) every rank runs this loop on its contiguous share
 * of each global batch (--batch stays the global batch): its loss is
 * weighted by its share, the gradients are summed over the ranks in one
 * flat allreduce per phase, so every rank takes the optimiser step one
 * process would take. The step's fields and the interrupt flag are summed
 * too, so every rank stops at the same step; rank 0 alone writes the log,
 * checkpoints, snapshots and evaluations. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/engine.h"
#include "gen/comm.h"
#include "gen/plot.h"
#include "io/fs.h"

#define MAX_META 40
#define TIMED_STEPS 4096 /* the median step time is over the last 4096 steps */
#define SNAPSHOT_SEED 20240601u
#define SNAPSHOT_IMAGES 64
#define SNAPSHOT_TOKENS 300

/* --profile: where the profiled steps' time went (seconds, summed): the
 * parts of a step (update: zero-grad, clipping, the optimiser and the EMA;
 * backward includes the allreduce over MPI), and op by op. */
enum step_part { PART_DATA, PART_FORWARD, PART_BACKWARD, PART_UPDATE, N_PARTS };
static const char *const part_names[N_PARTS] = {"data", "forward", "backward", "update"};
struct step_profile {
    struct gen_profile ops;
    double part_s[N_PARTS], step_s; /* step_s: data to the EMA, whole */
    int64_t steps;
    int with_first; /* the run's first step is in (it was the only one) */
};

struct loop {
    const struct gen_train_run *run;
    struct gen_model *em;
    struct gen_data *d;
    struct gen_batcher batcher, *b; /* images                              */
    struct gen_rng data_rng;        /* text: window starts                  */
    struct gen_ctx g;
    struct gen_runlog lg;
    struct gen_schedule sched[GEN_MAX_PHASES];
    double clip, ema;
    int64_t total, per_epoch;
    int root;                       /* rank 0: the one that writes        */
    int64_t grad_lo[GEN_MAX_PHASES], grad_n[GEN_MAX_PHASES]; /* span of each phase's gradients */
    struct step_profile *sp;        /* --profile, or NULL                   */
};

/* ---- checkpoints ---- */

static void rng_text(const struct gen_rng *r, char *buf, size_t n) {
    snprintf(buf, n, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r->s[0], r->s[1],
             r->s[2], r->s[3]);
}

static int rng_parse(const char *v, struct gen_rng *r) {
    if (!v || strlen(v) != 64) return 0;
    for (int w = 0; w < 4; w++) {
        char word[17], *end;
        memcpy(word, v + 16 * w, 16);
        word[16] = 0;
        r->s[w] = strtoull(word, &end, 16);
        if (*end) return 0;
    }
    return 1;
}

static enum gen_status save(struct loop *L, int64_t step, int numbered) {
    const struct gen_model_info *info = &L->em->info;
    char text[MAX_META][80], keys[MAX_META][24];
    struct gen_kv kv[MAX_META];
    int n = 0;
    int64_t epoch = 0, pos = 0;
    if (L->b) gen_batcher_cursor(L->b, &epoch, &pos);
    const int64_t nums[3] = {step, epoch, pos};
    const char *const num_keys[3] = {"step", "epoch", "data_cursor"};
    for (int i = 0; i < 3; i++) {
        snprintf(text[n], sizeof text[n], "%" PRId64, nums[i]);
        kv[n] = (struct gen_kv){num_keys[i], text[n]}, n++;
    }
    for (int i = 0; i < info->n_rngs && n < MAX_META - 1; i++) {
        snprintf(keys[n], sizeof keys[n], "rng.%d", i);
        rng_text(&info->rngs[i], text[n], sizeof text[n]);
        kv[n] = (struct gen_kv){keys[n], text[n]}, n++;
    }
    rng_text(&L->data_rng, text[n], sizeof text[n]);
    kv[n] = (struct gen_kv){"rng.data", text[n]}, n++;

    const char *dir = L->run->out_dir;
    char path[4096];
    enum gen_status st = GEN_OK;
    if (numbered) {
        snprintf(path, sizeof path, "%s/checkpoint-%08" PRId64 ".safetensors", dir, step);
        st = gen_model_save(L->em, path, kv, n);
    }
    if (st == GEN_OK) {
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
        st = gen_model_save(L->em, path, kv, n);
    }
    /* The loss plot follows every checkpoint; a failed plot only warns. */
    if (st == GEN_OK && gen_plot_metrics(dir) != GEN_OK)
        fprintf(stderr, "gen: warning: %s\n", gen_last_error());
    return st;
}

static int parse_count(const char *s, int64_t *out) {
    int64_t v;
    if (!s || !gen_parse_int(s, &v) || v < 0) return 0;
    *out = v;
    return 1;
}

/* Restores the cursor and random streams of a checkpoint whose tensors
 * are already loaded. */
static enum gen_status restore(struct loop *L, const struct gen_ckpt_meta *meta, int64_t *step) {
    const char *path = L->run->resume;
    const struct gen_model_info *info = &L->em->info;
    int64_t epoch = 0, pos = 0;
    if (!parse_count(gen_ckpt_meta_get(meta, "step"), step) ||
        !parse_count(gen_ckpt_meta_get(meta, "epoch"), &epoch) ||
        !parse_count(gen_ckpt_meta_get(meta, "data_cursor"), &pos))
        return gen_error(GEN_ERR_FORMAT, "%s: missing or bad step/epoch/data_cursor metadata",
                         path);
    if (L->b && gen_batcher_restore(L->b, epoch, pos) != GEN_OK)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: data cursor (%" PRId64 ", %" PRId64
                         ") does not fit this data set and batch size",
                         path, epoch, pos);
    for (int i = 0; i < info->n_rngs; i++) {
        char key[24];
        snprintf(key, sizeof key, "rng.%d", i);
        if (!rng_parse(gen_ckpt_meta_get(meta, key), &info->rngs[i]))
            return gen_error(GEN_ERR_FORMAT, "%s: missing or bad %s metadata", path, key);
    }
    const char *dr = gen_ckpt_meta_get(meta, "rng.data");
    if (dr && !rng_parse(dr, &L->data_rng))
        return gen_error(GEN_ERR_FORMAT, "%s: bad rng.data metadata", path);
    return GEN_OK;
}

/* Seconds the run had trained before `step`: the largest "elapsed" among
 * RUN/metrics.jsonl lines of steps up to it and the end-of-session lines
 * (which carry no step), 0 when there is none. */
static double prior_elapsed(const char *dir, int64_t step) {
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = gen_fs_fopen_read(path);
    if (!f) {
        gen_clear_error();
        return 0;
    }
    double best = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "elapsed");
        if ((!s || (cJSON_IsNumber(s) && s->valuedouble <= (double)step)) && cJSON_IsNumber(e) &&
            e->valuedouble > best)
            best = e->valuedouble;
        cJSON_Delete(o);
    }
    fclose(f);
    return best;
}

/* ---- the step ---- */

/* Turns gradients of the parameters outside `group` off (on = 0) or back on. */
static void set_others_trainable(struct gen_params *ps, int group, int on) {
    for (int i = 0; i < ps->count; i++) {
        struct gen_param *p = &ps->p[i];
        if (p->group != group && p->kind != GEN_PARAM_BUFFER) p->t.requires_grad = on;
    }
}

/* The batch of one step: images from the batcher, or B random windows of
 * T + 1 tokens of the training split. Returns 0 when the batcher is done. */
static int next_batch(struct loop *L, int32_t *idx, struct gen_batch *bt, int64_t step,
                      int *global) {
    const struct gen_model_info *info = &L->em->info;
    const int B = (int)gen_opt_int(&L->em->cfg, &gen_train_options[GEN_TRAIN_BATCH]);
    memset(bt, 0, sizeof *bt);
    bt->step = step;
    bt->seed = (uint64_t)gen_opt_int(&L->em->cfg, &gen_train_options[GEN_TRAIN_SEED]);
    int64_t lo, hi; /* this rank's share of the global batch */
    if (L->d->kind == GEN_DATA_TEXT) {
        const int64_t T = info->context;
        gen_comm_slice(B, &lo, &hi);
        int32_t *tok = gen_arena_alloc(&L->g.arena, (size_t)(hi - lo) * (size_t)(T + 1) * sizeof *tok);
        for (int i = 0; i < B; i++) { /* every rank draws every start: one stream */
            const int64_t s = (int64_t)gen_rng_below(&L->data_rng, (uint64_t)(L->d->n_train - T));
            if (i >= lo && i < hi)
                memcpy(tok + (i - lo) * (T + 1), L->d->tokens + s, (size_t)(T + 1) * sizeof *tok);
        }
        *global = B;
        bt->n = (int)(hi - lo);
        bt->first = step * B + lo;
        bt->tokens = tok;
        return 1;
    }
    int count = gen_batcher_next(L->b, idx);
    if (count == 0) return 0;
    gen_comm_slice(count, &lo, &hi);
    const struct gen_image_set *set = &L->d->train;
    const int n = (int)(hi - lo);
    *global = count;
    bt->n = n;
    bt->first = step * B + lo;
    bt->x = gen_tensor_4d(&L->g, n, set->c, set->h, set->w);
    gen_images_batch(set, idx + lo, n, bt->x->data, info->pixel_lo, info->pixel_hi);
    /* The labels follow the indices in idx (2 batch), not the step arena:
     * there the images are followed directly by the model's activations,
     * as before the engine (a 256-byte shift of every activation made the
     * GAN's step 8 % slower at 2 threads). */
    int32_t *labels = idx + B;
    gen_images_labels(set, idx + lo, n, labels);
    bt->labels = labels;
    return 1;
}

/* With a profile (sp), adds the time since *t to a part and restarts *t. */
static void lap(struct step_profile *sp, enum step_part part, double *t) {
    if (!sp) return;
    const double now = gen_now();
    sp->part_s[part] += now - *t;
    *t = now;
}

/* Runs every phase of one step on this rank's share of a global batch of
 * `global` examples; fields gets the family's fields (summed over the
 * ranks), then lr and (with clipping) the gradient norm. sp: a profile of
 * this step, or NULL. */
static enum gen_status step_body(struct loop *L, const struct gen_batch *bt, int global,
                                 double *fields, struct step_profile *sp) {
    struct gen_model_info *info = &L->em->info;
    struct gen_params *ps = info->ps;
    const int ranks = gen_comm_size();
    /* this rank's part of the mean over the global batch */
    const float weight = (float)bt->n / (float)global;
    double norm = 0, t = sp ? gen_now() : 0;
    for (int p = 0; p < info->n_phases; p++) {
        const struct gen_phase *ph = &info->phase[p];
        if (ph->freeze_others) set_others_trainable(ps, ph->group, 0);
        gen_params_zero_grad(ps);
        lap(sp, PART_UPDATE, &t);
        gen_profile_mark(&L->g);
        struct gen_tensor *loss = L->em->fam->loss(L->em->m, &L->g, bt, p, fields);
        lap(sp, PART_FORWARD, &t);
        double value = loss->data[0];
        enum gen_status st = GEN_OK;
        if (ranks == 1) {
            st = gen_run_check_loss(value, bt->step + 1);
            if (st == GEN_OK) gen_backward(&L->g, loss);
        } else { /* the loss every rank checks is the global one */
            gen_backward_seed(&L->g, loss, &weight);
            value *= weight;
            gen_comm_allreduce_f64(&value, 1);
            st = gen_run_check_loss(value, bt->step + 1);
            if (st == GEN_OK) {
                gen_params_grad_ready(ps, ph->group); /* the block is read whole */
                gen_comm_allreduce_f32(ps->grad + L->grad_lo[p], L->grad_n[p]);
            }
        }
        if (ph->freeze_others) set_others_trainable(ps, ph->group, 1);
        lap(sp, PART_BACKWARD, &t);
        if (st != GEN_OK) return st;
        if (L->clip > 0) norm = gen_clip_grad_norm(ps, ph->group, L->clip);
        gen_optim_step(&ph->optim, ps, ph->group, gen_schedule_lr(&L->sched[p], bt->step));
    }
    if (ps->ema && L->ema > 0)
        gen_ema_update_group(ps, info->ema_group, gen_ema_warmup_decay(bt->step, (float)L->ema));
    lap(sp, PART_UPDATE, &t);
    int k = info->n_fields;
    if (ranks > 1) {
        for (int i = 0; i < k; i++) fields[i] *= weight;
        gen_comm_allreduce_f64(fields, k);
    }
    fields[k++] = gen_schedule_lr(&L->sched[0], bt->step);
    if (L->clip > 0) fields[k++] = norm;
    return GEN_OK;
}

/* ---- evaluation and snapshots ---- */

static enum gen_status evaluate(struct loop *L, int64_t step) {
    struct gen_model *em = L->em;
    if (!em->fam->evaluate) return GEN_OK;
    struct gen_dataset held;
    gen_data_heldout(L->d, &held);
    struct gen_metrics mt = {0};
    gen_no_grad_begin(&L->g);
    L->g.training = 0;
    const int sync = L->g.sync_bn; /* rank 0 alone evaluates: no collective calls */
    L->g.sync_bn = 0;
    enum gen_status st = em->fam->evaluate(em->m, &L->g, NULL, &held, &mt);
    L->g.sync_bn = sync;
    L->g.training = 1;
    gen_no_grad_end(&L->g);
    gen_ctx_reset(&L->g);
    gen_free(mt.scores);
    if (st == GEN_OK) gen_runlog_write(&L->lg, step, mt.f, mt.n);
    return st;
}

struct text_sink {
    const struct gen_vocab *vocab;
    FILE *f;
};

static void emit_to_file(int32_t tok, void *arg) {
    const struct text_sink *s = arg;
    uint8_t sym[4];
    fwrite(sym, 1, (size_t)gen_vocab_symbol(s->vocab, tok, sym), s->f);
}

/* RUN/samples-STEP.png (64 images; a conditional model: a row of 8 per
 * class) or .txt (300 tokens after a line
 * break), from a fixed seed so the snapshots of a run compare. */
static enum gen_status snapshot(struct loop *L, int64_t step) {
    struct gen_model *em = L->em;
    if (!em->fam->generate) return GEN_OK;
    const int text = em->shape.kind == GEN_DATA_TEXT;
    char path[4096];
    snprintf(path, sizeof path, "%s/samples-%08" PRId64 ".%s", L->run->out_dir, step,
             text ? "txt" : "png");
    struct gen_request req = {.n = text ? SNAPSHOT_TOKENS : SNAPSHOT_IMAGES,
                              .seed = SNAPSHOT_SEED};
    /* a conditional model: one row of 8 per class (the first 16 classes) */
    const int rows = em->info.classes < 16 ? em->info.classes : 16;
    int32_t labels[16 * 8];
    for (int i = 0; i < rows * 8; i++) labels[i] = i / 8;
    if (rows > 0) req.n = rows * 8, req.labels = labels;
    struct gen_output out = {0};
    struct text_sink sink = {&em->vocab, NULL};
    int32_t start = em->vocab.id['\n'] >= 0 ? em->vocab.id['\n'] : 0;
    if (text) {
        if (!(sink.f = fopen(path, "wb"))) return gen_error(GEN_ERR_IO, "%s: cannot create", path);
        req.prompt = &start, req.n_prompt = 1;
        req.emit = emit_to_file, req.emit_arg = &sink;
    }
    gen_no_grad_begin(&L->g);
    L->g.training = 0;
    const int ema = gen_model_ema_use(em, NULL), sync = L->g.sync_bn;
    L->g.sync_bn = 0; /* rank 0 alone draws the snapshot (GAN batch statistics) */
    enum gen_status st = em->fam->generate(em->m, &L->g, NULL, &req, &out);
    L->g.sync_bn = sync;
    gen_model_ema_restore(em, ema);
    L->g.training = 1;
    gen_no_grad_end(&L->g);
    gen_ctx_reset(&L->g);
    if (text) {
        fputc('\n', sink.f);
        if (fclose(sink.f) != 0 && st == GEN_OK) st = gen_error(GEN_ERR_IO, "%s: write failed", path);
    } else if (st == GEN_OK) {
        st = gen_write_images(path, out.images, out.n_images, out.c, out.h, out.w,
                              rows > 0 ? 8 : out.cols);
    }
    gen_free(out.images);
    return st;
}

/* ---- setup ---- */

static enum gen_status plan(struct loop *L) {
    const struct gen_config *cfg = &L->em->cfg;
    const struct gen_model_info *info = &L->em->info;
    const int64_t batch = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_BATCH]);
    L->clip = gen_opt_float(cfg, &gen_train_options[GEN_TRAIN_CLIP]);
    L->ema = gen_opt_float(cfg, &gen_train_options[GEN_TRAIN_EMA]);
    if (L->d->kind == GEN_DATA_TEXT) {
        if (L->d->n_train <= info->context)
            return gen_error(GEN_ERR_FORMAT,
                             "%s: the training split has %lld tokens; a window needs more than "
                             "the context (%lld)",
                             L->d->path, (long long)L->d->n_train, (long long)info->context);
        if (L->d->n_tokens - L->d->n_train < 2) /* one target needs two tokens */
            return gen_error(GEN_ERR_FORMAT,
                             "%s: the validation split (the last 10%%) has %lld tokens; it needs "
                             "at least 2",
                             L->d->path, (long long)(L->d->n_tokens - L->d->n_train));
        L->per_epoch = L->d->n_train / (batch * info->context);
        if (L->per_epoch < 1) L->per_epoch = 1;
    } else {
        if (gen_batcher_init(&L->batcher, L->d->train.n, (int)batch,
                             (uint64_t)gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_SEED]), 0) != GEN_OK)
            return gen_error(GEN_ERR_NOMEM, "out of memory for the batcher");
        L->b = &L->batcher;
        L->per_epoch = gen_batcher_batches_per_epoch(L->b);
    }
    const int ranks = gen_comm_size();
    if (ranks > 1 && batch < ranks)
        return gen_error(GEN_ERR_USAGE, "--batch %lld: fewer examples than the %d processes",
                         (long long)batch, ranks);
    if (ranks > 1 && L->b && L->d->train.n % batch && L->d->train.n % batch < ranks)
        return gen_error(GEN_ERR_USAGE,
                         "--batch %lld: the last batch of an epoch of %lld images has %lld, fewer "
                         "than the %d processes; choose another batch size",
                         (long long)batch, (long long)L->d->train.n,
                         (long long)(L->d->train.n % batch), ranks);
    /* The run's length, bounded before it sizes or counts anything. */
    const int64_t max_steps = INT64_C(1) << 40;
    if (gen_opt_get(cfg, &gen_train_options[GEN_TRAIN_STEPS]) && gen_opt_get(cfg, &gen_train_options[GEN_TRAIN_STEPS])->present) {
        L->total = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_STEPS]);
    } else {
        const int64_t epochs = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_EPOCHS]);
        if (epochs > max_steps / L->per_epoch)
            return gen_error(GEN_ERR_USAGE, "--epochs %lld: %lld steps each is more than %lld steps",
                             (long long)epochs, (long long)L->per_epoch, (long long)max_steps);
        L->total = epochs * L->per_epoch;
    }
    if (L->total > max_steps)
        return gen_error(GEN_ERR_USAGE, "--steps %lld: at most %lld", (long long)L->total,
                         (long long)max_steps);
    const char *kind = gen_opt_str(cfg, &gen_train_options[GEN_TRAIN_SCHEDULE]);
    const int cosine = kind && !strcmp(kind, "cosine");
    const int64_t warmup = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_WARMUP]);
    for (int p = 0; p < info->n_phases; p++) {
        const float base = info->phase[p].optim.lr;
        L->sched[p] = (struct gen_schedule){
            .kind = cosine ? GEN_SCHED_WARMUP_COSINE
                           : (warmup > 0 ? GEN_SCHED_WARMUP : GEN_SCHED_CONSTANT),
            .base_lr = base,
            .min_lr = fminf((float)gen_opt_float(cfg, &gen_train_options[GEN_TRAIN_LR_MIN]), base), /* never rises */
            .warmup = warmup,
            .total = L->total,
        };
    }
    gen_rng_seed(&L->data_rng, (uint64_t)gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_SEED]) * 7919u + 17u);
    return GEN_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int every(int64_t n, int64_t s1) { return n > 0 && s1 % n == 0; }

/* Whether flag is set on any rank (one small allreduce). */
static int any_rank(int flag) {
    if (gen_comm_size() == 1) return flag;
    double v = flag ? 1.0 : 0.0;
    gen_comm_allreduce_f64(&v, 1);
    return v > 0;
}

/* The span of the flat gradient block that phase p's group covers (all of
 * it for group -1): the part its allreduce sends. */
static void grad_span(const struct gen_params *ps, int group, int64_t *lo, int64_t *n) {
    int64_t a = ps->n_train, b = 0;
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        if (p->kind == GEN_PARAM_BUFFER || (group >= 0 && p->group != group)) continue;
        const int64_t end = p->offset + gen_numel(&p->t);
        if (p->offset < a) a = p->offset;
        if (end > b) b = end;
    }
    *lo = a < b ? a : 0;
    *n = a < b ? b - a : 0;
}

/* Every rank starts from rank 0's weights, moments, EMA and buffers (the
 * same seed gives the same ones; this makes sure). */
static void share_weights(struct gen_params *ps) {
    const size_t nt = (size_t)ps->n_train * sizeof(float);
    gen_comm_bcast(ps->data, nt, 0);
    gen_comm_bcast(ps->m, nt, 0);
    gen_comm_bcast(ps->v, nt, 0);
    if (ps->ema) gen_comm_bcast(ps->ema, nt, 0);
    if (ps->n_buffer) gen_comm_bcast(ps->buffers, (size_t)ps->n_buffer * sizeof(float), 0);
    gen_comm_bcast(ps->step, sizeof ps->step, 0);
}

/* ---- --profile ---- */

struct op_row {
    const char *name;
    double fwd_ms, bwd_ms, calls; /* a step's */
};

static int cmp_row(const void *a, const void *b) {
    const struct op_row *x = a, *y = b;
    const double tx = x->fwd_ms + x->bwd_ms, ty = y->fwd_ms + y->bwd_ms;
    return tx < ty ? 1 : tx > ty ? -1 : strcmp(x->name, y->name);
}

/* The profile as OUT/profile.json and (unless quiet) a table on stderr:
 * the parts of a step, then its ops by time, each a step's mean. */
static enum gen_status profile_report(struct loop *L) {
    const struct step_profile *sp = L->sp;
    if (sp->steps == 0) return GEN_OK; /* stopped before a step was profiled */
    const double per = 1e3 / (double)sp->steps, step_ms = sp->step_s * per;
    struct op_row rows[GEN_OP_COUNT];
    int n = 0;
    for (int i = 0; i < GEN_OP_COUNT; i++) {
        const struct gen_op_time *o = &sp->ops.op[i];
        if (o->fwd_n || o->bwd_n)
            rows[n++] = (struct op_row){gen_op_table[i].name, o->fwd_s * per, o->bwd_s * per,
                                        (double)o->fwd_n / (double)sp->steps};
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    double other = step_ms;
    cJSON *o = cJSON_CreateObject(), *parts = cJSON_CreateObject(), *ops = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "steps", (double)sp->steps);
    cJSON_AddNumberToObject(o, "threads", gen_threads());
    cJSON_AddStringToObject(o, "precision",
                            gen_opt_str(&L->em->cfg, &gen_train_options[GEN_TRAIN_PRECISION]));
    cJSON_AddNumberToObject(o, "step_ms", step_ms);
    for (int k = 0; k < N_PARTS; k++) {
        cJSON_AddNumberToObject(parts, part_names[k], sp->part_s[k] * per);
        other -= sp->part_s[k] * per;
    }
    cJSON_AddNumberToObject(parts, "other", other);
    cJSON_AddItemToObject(o, "parts_ms", parts);
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "op", rows[i].name);
        cJSON_AddNumberToObject(r, "calls", rows[i].calls);
        cJSON_AddNumberToObject(r, "forward_ms", rows[i].fwd_ms);
        cJSON_AddNumberToObject(r, "backward_ms", rows[i].bwd_ms);
        cJSON_AddItemToArray(ops, r);
    }
    cJSON_AddItemToObject(o, "ops", ops);
    char *text = cJSON_Print(o), path[4096];
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/profile.json", L->run->out_dir);
    enum gen_status st = text ? gen_fs_write_atomic(path, text, strlen(text))
                              : gen_error(GEN_ERR_NOMEM, "%s: out of memory", path);
    cJSON_free(text);
    if (st != GEN_OK || L->run->quiet) return st;
    fprintf(stderr, "profile of %" PRId64 " step%s%s: %.2f ms a step\n", sp->steps,
            sp->steps == 1 ? "" : "s", sp->with_first ? "" : " (the first left out)", step_ms);
    for (int k = 0; k < N_PARTS; k++)
        fprintf(stderr, "  %-9s %10.3f ms %6.1f %%\n", part_names[k], sp->part_s[k] * per,
                100 * sp->part_s[k] * per / step_ms);
    fprintf(stderr, "  %-9s %10.3f ms %6.1f %%\n", "other", other, 100 * other / step_ms);
    fprintf(stderr, "  %-16s %6s %12s %12s %8s\n", "op", "calls", "forward ms", "backward ms",
            "share");
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  %-16s %6.1f %12.3f %12.3f %6.1f %%\n", rows[i].name, rows[i].calls,
                rows[i].fwd_ms, rows[i].bwd_ms, 100 * (rows[i].fwd_ms + rows[i].bwd_ms) / step_ms);
    return GEN_OK;
}

/* ---- the loop ---- */

/* Whether the end of the epoch at step s1 is marked (a log line, and the
 * evaluation and snapshot of --eval-every / --sample-every 0): every end,
 * unless epochs are shorter than --log-every steps; then the ends of the
 * epochs that hold a multiple of it, so that a run on a few dozen images
 * (an epoch a step) does not evaluate, snapshot and log at every step. On
 * the step alone, so a resumed run marks the same ends. */
static int epoch_marked(const struct loop *L, int64_t s1, int64_t log_every) {
    return L->per_epoch >= log_every || s1 % log_every < L->per_epoch;
}

static int loop_run(struct loop *L, int64_t step) {
    const struct gen_train_run *run = L->run;
    struct gen_model *em = L->em;
    const struct gen_model_info *info = &em->info;
    const struct gen_config *cfg = &em->cfg;
    if (step >= L->total) {
        gen_error(GEN_ERR_RUNTIME,
                  "%s: already at step %" PRId64 " of %" PRId64
                  "; ask for more with --steps or --epochs",
                  run->resume ? run->resume : "run", step, L->total);
        return 1;
    }
    const int64_t log_every = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_LOG_EVERY]);
    const int64_t eval_every = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_EVAL_EVERY]);
    const int64_t sample_every = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_SAMPLE_EVERY]);
    const int64_t ckpt_every = gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_CKPT_EVERY]);
    const int batch = (int)gen_opt_int(cfg, &gen_train_options[GEN_TRAIN_BATCH]);
    const int64_t items = info->unit && !strcmp(info->unit, "tok") ? batch * info->context : batch;
    char rate_name[32];
    snprintf(rate_name, sizeof rate_name, "%s_per_s", info->unit ? info->unit : "it");
    gen_runlog_set_items(&L->lg, items, info->unit);

    int32_t idx_fixed[1];
    int32_t *idx = L->b ? gen_alloc((size_t)2 * (size_t)batch * sizeof *idx) : idx_fixed;
    double *step_ms = gen_alloc(2 * TIMED_STEPS * sizeof *step_ms);
    if (!idx || !step_ms) {
        if (L->b) gen_free(idx);
        gen_free(step_ms);
        return 1;
    }
    double *comm_ms = step_ms + TIMED_STEPS; /* of each timed step: communication */
    const char *names[GEN_MAX_FIELDS + 4];
    int n_names = info->n_fields;
    for (int i = 0; i < n_names; i++) names[i] = info->fields[i];
    names[n_names++] = "lr";
    if (L->clip > 0) names[n_names++] = "grad_norm";
    double sums[GEN_MAX_FIELDS + 4] = {0}, fields[GEN_MAX_FIELDS + 4];
    int64_t n_summed = 0, n_timed = 0;
    double t_window = gen_now();
    int rc = 1, interrupted = 0, stop = 0;
    const int stop_on_watch = gen_opt_get(cfg, &gen_family_options[GEN_FAM_STOP_ON_DIVERGENCE]) &&
                              gen_opt_flag(cfg, &gen_family_options[GEN_FAM_STOP_ON_DIVERGENCE]);
    char why[512];
    for (; step < L->total; step++) {
        struct gen_batch bt;
        int global = 0;
        /* the first step (the tape and the pool growing) is not profiled,
         * unless it is the only one */
        struct step_profile *sp = L->sp && (n_timed > 0 || step + 1 == L->total) ? L->sp : NULL;
        const double t_start = sp ? gen_now() : 0;
        double t = t_start;
        if (!next_batch(L, idx, &bt, step, &global)) goto done;
        lap(sp, PART_DATA, &t);
        const double t0 = gen_now(), c0 = gen_comm_seconds();
        L->g.prof = sp ? &sp->ops : NULL;
        enum gen_status st = step_body(L, &bt, global, fields, sp);
        L->g.prof = NULL;
        if (sp) sp->step_s += gen_now() - t_start, sp->steps++, sp->with_first |= n_timed == 0;
        step_ms[n_timed % TIMED_STEPS] = 1e3 * (gen_now() - t0);
        comm_ms[n_timed++ % TIMED_STEPS] = 1e3 * (gen_comm_seconds() - c0);
        gen_ctx_reset(&L->g);
        if (st != GEN_OK) { /* what the run directory still holds */
            char path[4096];
            snprintf(path, sizeof path, "%s/checkpoint.safetensors", run->out_dir);
            if (L->root && gen_fs_kind(path) == GEN_FS_FILE)
                gen_error(st, "%s; %s is left as it was", gen_last_error(), path);
            else if (L->root)
                gen_error(st, "%s; no checkpoint was saved", gen_last_error());
            goto done;
        }
        const int64_t s1 = step + 1;
        for (int i = 0; i < n_names; i++) sums[i] += fields[i];
        n_summed++;
        gen_runlog_progress(&L->lg, s1, L->total, fields[0]);
        int64_t ep = 0, pos = 0;
        if (L->b) gen_batcher_cursor(L->b, &ep, &pos);
        const int at_epoch_end = L->b && pos == 0 && epoch_marked(L, s1, log_every);
        const int last = s1 == L->total;
        interrupted = any_rank(gen_run_interrupted());
        if (em->fam->watch && em->fam->watch(em->m, s1, fields, why, sizeof why)) {
            gen_runlog_note(&L->lg, why);
            stop = stop_on_watch;
        }
        if (every(log_every, s1) || last || at_epoch_end || interrupted || stop) {
            struct gen_field f[GEN_MAX_FIELDS + 6];
            int k = 0;
            for (int i = 0; i < n_names; i++)
                f[k++] = (struct gen_field){names[i], sums[i] / (double)n_summed};
            const double now = gen_now();
            f[k++] = (struct gen_field){rate_name, (double)(items * n_summed) / (now - t_window)};
            if (L->b) f[k++] = (struct gen_field){"epoch", (double)ep + (double)pos / (double)L->d->train.n};
            gen_runlog_write(&L->lg, s1, f, k);
            memset(sums, 0, sizeof sums);
            n_summed = 0;
            t_window = now;
        }
        enum gen_status derived = GEN_OK; /* an evaluation or a snapshot that failed */
        if (L->root && !interrupted && !stop &&
            (every(eval_every, s1) || (eval_every <= 0 && at_epoch_end) || last))
            derived = evaluate(L, s1);
        if (derived == GEN_OK && L->root && !interrupted && !stop &&
            (every(sample_every, s1) || (sample_every <= 0 && at_epoch_end) || last))
            derived = snapshot(L, s1);
        /* the log lines of the step, whole (a full disk stops them) */
        if (derived == GEN_OK) derived = gen_runlog_status(&L->lg);
        /* a failed one ends the run, its steps saved first */
        char why_derived[512] = "";
        if (derived != GEN_OK) snprintf(why_derived, sizeof why_derived, "%s", gen_last_error());
        if (L->root && (every(ckpt_every, s1) || last || interrupted || stop || derived != GEN_OK) &&
            save(L, s1, !interrupted) != GEN_OK)
            goto done;
        if (derived != GEN_OK) {
            gen_error(derived, "%s (step %lld's checkpoint saved)", why_derived, (long long)s1);
            goto done;
        }
        if (interrupted || stop) break;
    }
    if (L->sp && L->root && profile_report(L) != GEN_OK) goto done;
    if (stop) {
        gen_error(GEN_ERR_RUNTIME, "%s; stopped (--stop-on-divergence) after saving %s/checkpoint.safetensors",
                  why, run->out_dir);
        goto done;
    }
    if (interrupted) {
        if (!run->quiet)
            gen_runlog_note(&L->lg, "interrupted: checkpoint saved");
        rc = 130;
        goto done;
    }
    const int64_t kept = n_timed < TIMED_STEPS ? n_timed : TIMED_STEPS;
    double total_ms = 0, total_comm = 0;
    for (int64_t i = 0; i < kept; i++) total_ms += step_ms[i], total_comm += comm_ms[i];
    qsort(step_ms, (size_t)kept, sizeof *step_ms, cmp_double);
    qsort(comm_ms, (size_t)kept, sizeof *comm_ms, cmp_double);
    if (gen_comm_size() > 1) /* rank 0's time in (and waiting for) the allreduces */
        GEN_RUNLOG(&L->lg, -1, {"ranks", (double)gen_comm_size()},
                   {"median_comm_ms", kept ? comm_ms[kept / 2] : 0.0},
                   {"comm_share", total_ms > 0 ? total_comm / total_ms : 0.0});
    GEN_RUNLOG(&L->lg, -1, {"steps_timed", (double)kept},
               {"median_step_ms", kept ? step_ms[kept / 2] : 0.0},
               {"peak_step_mib", (double)L->g.arena.peak / 1048576.0});
    rc = gen_runlog_status(&L->lg) == GEN_OK ? 0 : 1; /* the run's last lines, written whole */
done:
    if (L->b) gen_free(idx);
    gen_free(step_ms);
    return rc;
}

int gen_train_loop(const struct gen_train_run *run, struct gen_model *em, struct gen_data *d) {
    struct loop L = {.run = run, .em = em, .d = d, .root = gen_comm_rank() == 0};
    gen_ctx_init(&L.g);
    int rc = 1;
    if (run->profile && !(L.sp = gen_calloc(1, sizeof *L.sp))) goto out;
    struct gen_ckpt_meta meta = {0};
    int64_t step = 0;
    if (gen_runlog_open(&L.lg, L.root ? run->out_dir : NULL, run->json && L.root,
                        run->quiet || !L.root) != GEN_OK)
        goto out;
    enum gen_status st = plan(&L);
    if (st != GEN_OK) {
        rc = st == GEN_ERR_USAGE ? 2 : 1;
        goto out;
    }
    if (run->resume) {
        int flags = GEN_CKPT_OPTIM | (em->info.ps->ema ? GEN_CKPT_EMA : 0);
        if (gen_ckpt_load(run->resume, em->info.ps, em->fam->name, flags, &meta) != GEN_OK ||
            restore(&L, &meta, &step) != GEN_OK)
            goto out;
        L.lg.elapsed_base = prior_elapsed(run->out_dir, step);
    }
    if (gen_comm_size() > 1) {
        share_weights(em->info.ps);
        for (int p = 0; p < em->info.n_phases; p++)
            grad_span(em->info.ps, em->info.phase[p].group, &L.grad_lo[p], &L.grad_n[p]);
        L.g.sync_bn = gen_opt_flag(&em->cfg, &gen_train_options[GEN_TRAIN_SYNC_BN]);
    }
    rc = loop_run(&L, step);
out:
    if (run->ended) *run->ended = L.lg.kept;
    gen_runlog_close(&L.lg);
    gen_ckpt_meta_free(&meta);
    gen_batcher_free(&L.batcher);
    gen_ctx_free(&L.g);
    gen_free(L.sp);
    return rc;
}
