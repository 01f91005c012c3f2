/* detect.c - `gen eval FAMILY --ood DATA`: anomaly detection, written once
 * for every image family whose verbs score images one by one (its score
 * verb, or the per-example scores of its evaluate verb). The model's test
 * split (the in-distribution set) and DATA's test split, converted to the
 * model's shape, are scored image by image; a score that is -log p(x) in
 * nats also gets its complexity-corrected version, -log p(x) - L(x) with
 * L(x) the image's PNG length in nats (Serra et al. 2020), and L(x) alone
 * is reported as the baseline that needs no model. For each score: AUROC,
 * AUPR and FPR at 95 % TPR with DATA as the positives, as a table on
 * stderr, in the --json result, with both sets' scores in --per-sample
 * and the ROC curves in --roc. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/detect.h"
#include "gen/metrics.h"
#include "gen/plot.h"
#include "io/fs.h"

#define MAX_COLS   9    /* a family's scores (at most 4), L(x), the corrected ones */
#define ROC_POINTS 400  /* per curve in the plot                                    */
#define COMPLEXITY (-1) /* the source of the column L(x)                            */

/* The scores compared: the family's columns, then L(x), then each
 * corrected score (a family column that is -log p(x) minus L(x)). */
struct columns {
    int n;
    char name[MAX_COLS][64];
    int source[MAX_COLS]; /* the family column; COMPLEXITY for L(x)        */
    int corrected[MAX_COLS];
};

/* One scored set: its images and every column's score of each. */
struct scored_set {
    const char *path;
    struct gen_data d;
    struct gen_metrics mt; /* the family's scores and named metrics       */
    double *v;             /* (n, columns)                                */
    int64_t n;
};

static void set_free(struct scored_set *s) {
    gen_data_free(&s->d);
    gen_free(s->mt.scores);
    gen_free(s->v);
}

static void name_columns(const struct gen_metrics *mt, struct columns *c) {
    c->n = 0;
    for (int k = 0; k < mt->n_scores; k++, c->n++) {
        snprintf(c->name[c->n], sizeof c->name[c->n], "%s", mt->score_names[k]);
        c->source[c->n] = k, c->corrected[c->n] = 0;
    }
    snprintf(c->name[c->n], sizeof c->name[c->n], "complexity");
    c->source[c->n] = COMPLEXITY, c->corrected[c->n++] = 0;
    for (int k = 0; k < mt->n_scores; k++) {
        if (!(mt->nll_scores >> k & 1u)) continue;
        snprintf(c->name[c->n], sizeof c->name[c->n], "%s_corrected", mt->score_names[k]);
        c->source[c->n] = k, c->corrected[c->n++] = 1;
    }
}

/* The images of s->path scored by the family, then every column: the
 * test split of a data set, or every image of a folder that is not the
 * model's own data (a folder to rank). */
static enum gen_status score_set(struct gen_model *em, const struct gen_config *opts,
                                 struct scored_set *s, int whole_folder, struct columns *cols) {
    const struct gen_family *fam = em->fam;
    enum gen_status st = gen_data_find(s->path, s->d.where, sizeof s->d.where);
    if (st != GEN_OK) return st;
    if (whole_folder && gen_fs_kind(s->d.where) == GEN_FS_DIR && !gen_mnist_detect(s->d.where)) {
        s->d.kind = GEN_DATA_IMAGES, s->d.path = s->d.where;
        st = gen_images_load(s->d.path, GEN_SPLIT_ALL, em->shape.c,
                             em->shape.h == em->shape.w ? em->shape.h : 0, &s->d.test);
        if (st == GEN_OK && (s->d.test.h != em->shape.h || s->d.test.w != em->shape.w))
            st = gen_error(GEN_ERR_FORMAT, "%s: images are %dx%d, the model wants %dx%d", s->path,
                           s->d.test.w, s->d.test.h, em->shape.w, em->shape.h);
    } else { /* the model's own test split as it is; the anomalies fitted to it */
        st = (whole_folder ? gen_data_load_fitted : gen_data_load_heldout)(&s->d, em, s->path);
    }
    if (st != GEN_OK) return st;
    struct gen_dataset held;
    gen_data_heldout(&s->d, &held);
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    st = (fam->score ? fam->score : fam->evaluate)(em->m, &g, opts, &held, &s->mt);
    gen_ctx_free(&g);
    if (st != GEN_OK) return st;
    const struct gen_image_set *set = &s->d.test;
    if (!s->mt.scores || s->mt.n_scores < 1 || s->mt.n_scores > 4 || s->mt.n_examples != set->n)
        return gen_error(GEN_ERR_USAGE, "--ood: %s models give no per-image scores", fam->name);
    if (cols->n == 0) name_columns(&s->mt, cols);
    s->n = set->n;
    if (!(s->v = gen_calloc((size_t)(s->n * cols->n), sizeof *s->v)))
        return gen_error(GEN_ERR_NOMEM, "%s: out of memory for the scores", s->path);
    const int64_t D = (int64_t)set->c * set->h * set->w;
    for (int64_t i = 0; i < s->n; i++) {
        double L;
        if ((st = gen_complexity_nats(set->pixels + i * D, set->c, set->h, set->w, &L)) != GEN_OK)
            return st;
        for (int k = 0; k < cols->n; k++) {
            const int src = cols->source[k];
            const double f = src >= 0 ? s->mt.scores[i * s->mt.n_scores + src] : 0;
            s->v[i * cols->n + k] = src == COMPLEXITY ? L : cols->corrected[k] ? f - L : f;
        }
    }
    return GEN_OK;
}

/* Column k of a set's scores into out (n). */
static void column(const struct scored_set *s, const struct columns *c, int k, double *out) {
    for (int64_t i = 0; i < s->n; i++) out[i] = s->v[i * c->n + k];
}

/* AUROC, AUPR and FPR@95 of every column; roc: each curve (ROC_POINTS
 * points a column), or NULL. */
static enum gen_status detect_all(const struct scored_set *in, const struct scored_set *ood,
                                  const struct columns *c, struct gen_detect *r, double *roc,
                                  int *roc_n) {
    double *a = gen_calloc((size_t)(in->n + ood->n), sizeof *a);
    if (!a) return gen_error(GEN_ERR_NOMEM, "out of memory for %lld scores", (long long)in->n);
    double *b = a + in->n;
    enum gen_status st = GEN_OK;
    for (int k = 0; k < c->n && st == GEN_OK; k++) {
        column(in, c, k, a), column(ood, c, k, b);
        st = gen_detect_metrics(a, in->n, b, ood->n, &r[k]);
        if (st == GEN_OK && roc)
            st = gen_detect_roc(a, in->n, b, ood->n, ROC_POINTS, roc + 2 * k * ROC_POINTS,
                                roc + (2 * k + 1) * ROC_POINTS, &roc_n[k]);
        if (st != GEN_OK) gen_error(st, "%s: %s", c->name[k], gen_last_error());
    }
    gen_free(a);
    return st;
}

static enum gen_status roc_plot(const char *png, const char *title, const struct columns *c,
                                const struct gen_detect *r, const double *roc, const int *roc_n) {
    struct gen_plot_series s[GEN_PLOT_MAX_SERIES];
    char names[GEN_PLOT_MAX_SERIES][96];
    static const double diag[2] = {0, 1};
    int n = 0;
    for (int k = 0; k < c->n && n < GEN_PLOT_MAX_SERIES - 1; k++, n++) {
        snprintf(names[n], sizeof names[n], "%s (AUROC %.3f)", c->name[k], r[k].auroc);
        s[n] = (struct gen_plot_series){.name = names[n],
                                        .n = roc_n[k],
                                        .plain = 1,
                                        .x = roc + 2 * k * ROC_POINTS,
                                        .y = roc + (2 * k + 1) * ROC_POINTS};
    }
    s[n++] = (struct gen_plot_series){.name = "chance", .n = 2, .x = diag, .y = diag, .plain = 1};
    return gen_plot_xy(png, title, "false-positive rate", "true-positive rate", s, n);
}

/* Both sets' scores, one row an image: set (in or ood), index, label, then
 * every column. */
static enum gen_status write_csv(const char *path, const struct scored_set *sets,
                                 const struct columns *c) {
    FILE *f = fopen(path, "w");
    if (!f) return gen_error(GEN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "set,index,label");
    for (int k = 0; k < c->n; k++) fprintf(f, ",%s", c->name[k]);
    fputc('\n', f);
    for (int j = 0; j < 2; j++)
        for (int64_t i = 0; i < sets[j].n; i++) {
            fprintf(f, "%s,%lld,%d", j ? "ood" : "in", (long long)i, (int)sets[j].d.test.labels[i]);
            for (int k = 0; k < c->n; k++) fprintf(f, ",%.4f", sets[j].v[i * c->n + k]);
            fputc('\n', f);
        }
    if (fclose(f) != 0) return gen_error(GEN_ERR_IO, "%s: write failed", path);
    return GEN_OK;
}

static double mean_of(const struct scored_set *s, const struct columns *c, int k) {
    double sum = 0;
    for (int64_t i = 0; i < s->n; i++) sum += s->v[i * c->n + k];
    return sum / (double)s->n;
}

/* The --json result: the in-distribution set's metrics and auroc_NAME,
 * aupr_NAME, fpr95_NAME of each score; "ood" says what was compared. */
static void print_json(const char *fam, const char *const *outs, int n_outs,
                       const struct scored_set *sets, const struct columns *c,
                       const struct gen_detect *r) {
    struct gen_field f[GEN_MAX_FIELDS + 3 * MAX_COLS];
    char names[3 * MAX_COLS][80];
    int n = 0;
    for (int i = 0; i < sets[0].mt.n; i++) f[n++] = sets[0].mt.f[i];
    for (int k = 0; k < c->n; k++) {
        const double v[3] = {r[k].auroc, r[k].aupr, r[k].fpr95};
        static const char *what[3] = {"auroc", "aupr", "fpr95"};
        for (int j = 0; j < 3; j++) {
            char *name = names[3 * k + j];
            snprintf(name, sizeof names[0], "%s_%s", what[j], c->name[k]);
            f[n++] = (struct gen_field){name, v[j]};
        }
    }
    cJSON *extra = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(extra, "ood");
    cJSON_AddStringToObject(o, "in_data", sets[0].path);
    cJSON_AddNumberToObject(o, "in_images", (double)sets[0].n);
    cJSON_AddStringToObject(o, "ood_data", sets[1].path);
    cJSON_AddNumberToObject(o, "ood_images", (double)sets[1].n);
    cJSON *scores = cJSON_AddObjectToObject(o, "scores");
    for (int k = 0; k < c->n; k++) {
        cJSON *s = cJSON_AddObjectToObject(scores, c->name[k]);
        cJSON_AddNumberToObject(s, "auroc", r[k].auroc);
        cJSON_AddNumberToObject(s, "aupr", r[k].aupr);
        cJSON_AddNumberToObject(s, "fpr95", r[k].fpr95);
        cJSON_AddNumberToObject(s, "mean_in", mean_of(&sets[0], c, k));
        cJSON_AddNumberToObject(s, "mean_ood", mean_of(&sets[1], c, k));
    }
    gen_print_result("eval", fam, outs, n_outs, f, n, extra);
}

static int exit_code(enum gen_status st) {
    return st == GEN_OK ? 0 : st == GEN_ERR_USAGE ? 2 : 1;
}

/* What --ood cannot work with, before anything is loaded. */
static enum gen_status check_usage(const struct gen_family *fam, const struct gen_config *opts,
                                   const char *ood, const char *roc) {
    if (!ood)
        return gen_error(GEN_ERR_USAGE, "--roc: draws the ROC curves of --ood DATA; give --ood");
    if (!ood[0]) return gen_error(GEN_ERR_USAGE, "--ood: an empty path");
    if (fam->data != GEN_DATA_IMAGES || (!fam->score && !fam->evaluate))
        return gen_error(GEN_ERR_USAGE, "--ood: %s models do not score images one by one",
                         fam->name);
    if (gen_opt_is_set(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_SAMPLES]) ||
        gen_opt_is_set(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_CLASSIFIER]))
        return gen_error(GEN_ERR_USAGE,
                         "--ood: not with --samples or --classifier (sample quality is another "
                         "gen eval)");
    const size_t len = roc ? strlen(roc) : 0;
    if (roc && (len < 5 || strcasecmp(roc + len - 4, ".png")))
        return gen_error(GEN_ERR_USAGE, "--roc: the plot is a PNG file (NAME.png), got '%s'", roc);
    return GEN_OK;
}

static void print_table(const struct gen_family *fam, const char *ckpt,
                        const struct scored_set *sets, const struct columns *c,
                        const struct gen_detect *r) {
    fprintf(stderr, "%s %s: %s (%lld test images, in-distribution) against %s (%lld)\n", fam->name,
            ckpt, sets[0].path, (long long)sets[0].n, sets[1].path, (long long)sets[1].n);
    fprintf(stderr, "  %-26s %8s %8s %8s %12s %12s\n", "score (higher: anomalous)", "AUROC", "AUPR",
            "FPR@95", "mean in", "mean ood");
    for (int k = 0; k < c->n; k++)
        fprintf(stderr, "  %-26s %8.4f %8.4f %8.4f %12.3f %12.3f\n", c->name[k], r[k].auroc,
                r[k].aupr, r[k].fpr95, mean_of(&sets[0], c, k), mean_of(&sets[1], c, k));
    fprintf(stderr, "  (complexity: the PNG length L(x) in nats%s)\n",
            c->n > sets[0].mt.n_scores + 1 ? "; NAME_corrected: NAME - L(x)" : "");
}

int gen_cmd_eval_ood(const struct gen_family *fam, struct gen_config *opts, int json, int quiet) {
    const char *ckpt = gen_opt_str(opts, &gen_eval_options[GEN_EVAL_CKPT]);
    const char *ood = gen_opt_str(opts, &gen_eval_options[GEN_EVAL_OOD]);
    const char *roc = gen_opt_str(opts, &gen_eval_options[GEN_EVAL_ROC]);
    const struct gen_config_entry *ps = gen_opt_get(opts, &gen_family_options[GEN_FAM_PER_SAMPLE]);
    const char *csv = ps && ps->present ? ps->s : NULL;
    struct gen_model em = {0};
    struct scored_set sets[2] = {{0}};
    struct columns cols = {0};
    struct gen_detect r[MAX_COLS];
    double *curves = NULL;
    int roc_n[MAX_COLS] = {0};
    enum gen_status st = check_usage(fam, opts, ood, roc);
    if (st != GEN_OK) return exit_code(st);
    if ((st = gen_model_load(&em, fam, ckpt, GEN_CKPT_EMA, NULL)) != GEN_OK) goto done;
    if (em.info.classes > 0) {
        st = gen_error(GEN_ERR_USAGE,
                       "--ood: %s is a conditional model, whose scores need each "
                       "image's class; detect with an unconditional one",
                       ckpt);
        goto done;
    }
    sets[0].path = gen_model_data_path(opts, &em), sets[1].path = ood;
    const char *inputs[3] = {ckpt, sets[0].path, ood};
    if ((roc && (st = gen_check_output(roc, inputs, 3)) != GEN_OK) ||
        (csv && (st = gen_check_output(csv, inputs, 3)) != GEN_OK))
        goto done;
    const int ema = gen_model_ema_use(&em, opts);
    for (int j = 0; j < 2 && st == GEN_OK; j++) {
        if (!quiet) fprintf(stderr, "scoring the images of %s\n", sets[j].path);
        st = score_set(&em, opts, &sets[j], j == 1, &cols);
    }
    gen_model_ema_restore(&em, ema);
    if (st != GEN_OK) goto done;
    if (roc && !(curves = gen_calloc((size_t)(2 * cols.n * ROC_POINTS), sizeof *curves))) {
        st = gen_error(GEN_ERR_NOMEM, "out of memory for the ROC curves");
        goto done;
    }
    if ((st = detect_all(&sets[0], &sets[1], &cols, r, curves, roc_n)) != GEN_OK) goto done;
    if (!quiet) print_table(fam, ckpt, sets, &cols, r);
    if (csv && (st = write_csv(csv, sets, &cols)) != GEN_OK) goto done;
    char title[512];
    snprintf(title, sizeof title, "ROC: %.200s (in) vs %.200s", sets[0].path, ood);
    if (roc && (st = roc_plot(roc, title, &cols, r, curves, roc_n)) != GEN_OK) goto done;
    if (!quiet && csv) fprintf(stderr, "  per-image scores of both sets in %s\n", csv);
    if (!quiet && roc) fprintf(stderr, "  ROC curves in %s\n", roc);
    if (json) {
        const char *outs[2] = {csv ? csv : roc, csv ? roc : NULL};
        print_json(fam->name, outs, (csv != NULL) + (roc != NULL), sets, &cols, r);
    }
done:
    gen_free(curves);
    set_free(&sets[0]), set_free(&sets[1]);
    gen_model_free(&em);
    return exit_code(st);
}
