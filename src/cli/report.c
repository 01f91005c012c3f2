/* report.c - `gen report RUN_DIR [RUN_DIR...] [-o report.html]`: one
 * self-contained HTML page about one or more runs, for a person to look
 * at: a summary table, every curve of RUN/metrics.jsonl as an inline SVG
 * plot shared by the runs (one colour per run), the sample snapshots
 * (samples-STEP.png embedded as base64, samples-STEP.txt as text), the
 * results of `gen eval` and the configuration of each checkpoint side by
 * side (rows that differ marked). No network, no script: the page opens
 * anywhere, also from a mail attachment. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "gen/io.h"
#include "gen/plot.h"
#include "gen/run.h"
#include "io/fs.h"
#include "io/strbuf.h"

#define MAX_RUNS            GEN_PLOT_MAX_SERIES
#define MAX_SNAPSHOT_BYTES  (32 << 20) /* a grid larger than this is not embedded */
#define TEXT_SNAPSHOT_BYTES 4000       /* shown of a text snapshot              */
#define PLOT_W              520
#define PLOT_H              320

/* The palette of gen/plot.h, for the run keys of the page. */
static const char *const run_colour[MAX_RUNS] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                 "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

struct snapshot {
    int64_t step;
    char *path; /* gen_alloc'd */
    int text;   /* .txt (a language model's), else .png */
};

struct run {
    const char *dir; /* as given                                  */
    char label[48];  /* the name in legends: dir, shortened from the left */
    struct gen_metrics_log log;
    struct gen_ckpt_meta meta; /* meta.n == 0: no checkpoint.safetensors */
    struct snapshot *snaps;
    int n_snaps;
};

enum { REPORT_OUTPUT, REPORT_SNAPSHOTS, REPORT_QUIET, REPORT_COUNT };
static const struct gen_option report_options[REPORT_COUNT + 1] = {
    [REPORT_OUTPUT] = {"output", 'o', GEN_OPT_STRING, "report.html", "the page to write", 0, 0,
                       NULL, 0},
    [REPORT_SNAPSHOTS] = GEN_INT_OPT("snapshots", "6", 1, 1000,
                                     "sample snapshots shown per run, evenly spread over "
                                     "training, first and last included"),
    [REPORT_QUIET] = {"quiet", 'q', GEN_OPT_FLAG, NULL, "no message on stderr", 0, 0, NULL, 0},
    [REPORT_COUNT] = GEN_OPT_END,
};

static void about(FILE *f) {
    fprintf(f,
            "Writes one self-contained HTML page about training runs (no network, no\n"
            "script; plots are inline SVG, sample grids embedded PNG): a summary, every\n"
            "curve of RUN_DIR/metrics.jsonl with the runs overlaid (one plot per metric),\n"
            "the sample snapshots over training, the results of 'gen eval' (which it\n"
            "appends to the checkpoint's metrics.jsonl) and each checkpoint's\n"
            "configuration side by side. Up to %d runs.\n\n"
            "Example:\n"
            "  gen report runs/vae runs/vae-conv -o vae.html\n",
            MAX_RUNS);
}

/* ---- reading a run ---- */

static int cmp_snapshot(const void *a, const void *b) {
    const int64_t x = ((const struct snapshot *)a)->step, y = ((const struct snapshot *)b)->step;
    return (x > y) - (x < y);
}

/* samples-STEP.png and samples-STEP.txt of the run, by step. */
static enum gen_status find_snapshots(struct run *r) {
    struct gen_fs_list l;
    enum gen_status st = gen_fs_list(r->dir, &l);
    if (st != GEN_OK) return st;
    r->snaps = gen_alloc((size_t)(l.n ? l.n : 1) * sizeof *r->snaps);
    if (!r->snaps) st = gen_fs_error_at(GEN_ERR_NOMEM, r->dir);
    for (int i = 0; i < l.n && st == GEN_OK; i++) {
        const char *name = l.names[i];
        char *end;
        if (strncmp(name, "samples-", 8) || name[8] < '0' || name[8] > '9') continue;
        const long long step = strtoll(name + 8, &end, 10);
        const int text = !strcmp(end, ".txt");
        if (!text && strcmp(end, ".png")) continue;
        char *path = gen_fs_join(r->dir, name);
        if (!path) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, r->dir);
            break;
        }
        r->snaps[r->n_snaps++] = (struct snapshot){step, path, text};
    }
    gen_fs_list_free(&l);
    if (st == GEN_OK) qsort(r->snaps, (size_t)r->n_snaps, sizeof *r->snaps, cmp_snapshot);
    return st;
}

static enum gen_status load_run(struct run *r) {
    const enum gen_fs_kind kind = gen_fs_kind(r->dir);
    if (kind == GEN_FS_MISSING) return gen_error(GEN_ERR_IO, "%s: no such directory", r->dir);
    if (kind != GEN_FS_DIR) return gen_error(GEN_ERR_IO, "%s: not a directory", r->dir);
    char *metrics = gen_fs_join(r->dir, "metrics.jsonl"),
         *ckpt = gen_fs_join(r->dir, "checkpoint.safetensors");
    enum gen_status st = metrics && ckpt ? GEN_OK : gen_fs_error_at(GEN_ERR_NOMEM, r->dir);
    if (st == GEN_OK && gen_fs_kind(metrics) == GEN_FS_MISSING)
        st = gen_error(GEN_ERR_IO, "%s: not a run directory (no metrics.jsonl)", r->dir);
    if (st == GEN_OK) st = gen_metrics_log_read(metrics, GEN_LOG_STRICT, &r->log);
    if (st == GEN_OK && gen_fs_kind(ckpt) != GEN_FS_MISSING)
        st = gen_ckpt_read_meta(ckpt, &r->meta);
    if (st == GEN_OK) st = find_snapshots(r);
    gen_free(metrics);
    gen_free(ckpt);
    return st;
}

static void free_run(struct run *r) {
    gen_metrics_log_free(&r->log);
    gen_ckpt_meta_free(&r->meta);
    for (int i = 0; i < r->n_snaps; i++) gen_free(r->snaps[i].path);
    gen_free(r->snaps);
}

/* ---- HTML pieces ---- */

static void esc(struct gen_strbuf *b, const char *s) {
    gen_strbuf_escape(b, s, strlen(s));
}

/* A number as a person reads it: integers plainly, the rest to 5 digits. */
static void put_number(struct gen_strbuf *b, double v) {
    if (v == floor(v) && fabs(v) < 1e15)
        gen_strbuf_printf(b, "%.0f", v);
    else
        gen_strbuf_printf(b, "%.5g", v);
}

static void put_key(struct gen_strbuf *b, int i) {
    gen_strbuf_printf(b, "<span class=\"key\" style=\"background:%s\"></span>", run_colour[i]);
}

static void put_run_name(struct gen_strbuf *b, const struct run *r, int i) {
    put_key(b, i);
    esc(b, r->dir);
}

static const char style[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;color:#222;background:#fff;"
    "margin:0 auto;padding:16px 24px;max-width:1500px}"
    "h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:26px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid #ddd}h3{font-size:14px;margin:12px 0 6px}"
    "p.note{color:#666;font-size:13px;margin:4px 0}"
    ".key{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;"
    "vertical-align:-1px}"
    "table{border-collapse:collapse;font-size:13px}th,td{padding:3px 12px;text-align:left;"
    "border-bottom:1px solid #eee;vertical-align:top}th{background:#f6f6f6}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}tr.diff td{background:#fff4d6}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}"
    ".plots svg{width:100%;height:auto;border:1px solid #e6e6e6;border-radius:4px}"
    ".strip{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}"
    "figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center;margin-top:2px}"
    ".strip img{width:200px;border:1px solid #ddd}"
    ".strip pre{width:300px;height:150px;overflow:auto;margin:0;padding:6px;font-size:11px;"
    "white-space:pre-wrap;border:1px solid #ddd;background:#fafafa}";

/* ---- sections ---- */

/* The last value of a curve, or NULL. */
static const double *last_of(const struct run *r, const char *name) {
    const struct gen_curve *c = gen_metrics_log_curve(&r->log, name);
    return c && c->n ? &c->y[c->n - 1] : NULL;
}

static void summary(struct gen_strbuf *b, const struct run *runs, int n) {
    gen_strbuf_printf(b, "<h2>Summary</h2>\n<table><tr><th>run</th><th>family</th><th>step</th>"
                         "<th>epoch</th><th>final loss</th><th>speed</th><th>median step</th>"
                         "<th>training time</th></tr>\n");
    for (int i = 0; i < n; i++) {
        const struct run *r = &runs[i];
        const char *family = gen_ckpt_meta_get(&r->meta, "family");
        const char *step = gen_ckpt_meta_get(&r->meta, "step"),
                   *epoch = gen_ckpt_meta_get(&r->meta, "epoch");
        gen_strbuf_puts(b, "<tr><td>");
        put_run_name(b, r, i);
        gen_strbuf_puts(b, "</td><td>");
        esc(b, family ? family : "-");
        gen_strbuf_puts(b, "</td><td class=\"n\">");
        esc(b, step ? step : "-");
        gen_strbuf_puts(b, "</td><td class=\"n\">");
        const double *ep = last_of(r, "epoch"); /* fractional, where the checkpoint's is whole */
        if (ep)
            gen_strbuf_printf(b, "%.2f", *ep);
        else
            esc(b, epoch ? epoch : "-");
        gen_strbuf_puts(b, "</td><td class=\"n\">");
        const double *loss = last_of(r, "loss");
        if (loss) put_number(b, *loss);
        gen_strbuf_puts(b, "</td><td class=\"n\">");
        for (int k = 0; k < r->log.n_curves; k++) { /* img_per_s, tok_per_s */
            const struct gen_curve *c = &r->log.curves[k];
            const size_t len = strlen(c->name);
            if (len > 6 && !strcmp(c->name + len - 6, "_per_s") && c->n)
                gen_strbuf_printf(b, "%.0f %.*s/s", c->y[c->n - 1], (int)(len - 6), c->name);
        }
        gen_strbuf_puts(b, "</td><td class=\"n\">");
        const struct gen_value *ms = gen_values_get(&r->log.session, "median_step_ms");
        if (ms) gen_strbuf_printf(b, "%.3g ms", ms->value);
        gen_strbuf_printf(b, "</td><td class=\"n\">%.1f s</td></tr>\n", r->log.elapsed);
    }
    gen_strbuf_puts(b, "</table>\n");
}

/* Which curves get a plot, in which order: the loss, the other losses and
 * evaluations, the rest, then the optimiser's (lr, grad_norm); no epoch
 * counter or rate. */
static int curve_rank(const char *name) {
    const size_t len = strlen(name);
    if (!strcmp(name, "epoch") || (len > 6 && !strcmp(name + len - 6, "_per_s"))) return -1;
    if (!strcmp(name, "loss")) return 0;
    if (!strncmp(name, "loss", 4) || (len > 5 && !strcmp(name + len - 5, "_loss")) ||
        strstr(name, "val") || strstr(name, "test"))
        return 1;
    if (!strcmp(name, "lr") || !strcmp(name, "grad_norm")) return 3;
    return 2;
}

/* 1 when a run before run i has a curve of that name (it has its plot). */
static int seen_before(const struct run *runs, int i, const char *name) {
    for (int j = 0; j < i; j++)
        if (gen_metrics_log_curve(&runs[j].log, name)) return 1;
    return 0;
}

static enum gen_status curve_plot(struct gen_strbuf *b, const struct run *runs, int n,
                                  const char *name) {
    struct gen_plot_series s[MAX_RUNS];
    for (int i = 0; i < n; i++) {
        const struct gen_curve *c = gen_metrics_log_curve(&runs[i].log, name);
        s[i] = (struct gen_plot_series){.name = runs[i].label, .plain = 1};
        if (c) s[i].n = c->n, s[i].x = c->x, s[i].y = c->y;
    }
    const struct gen_plot p = {
        .title = name, .ylabel = name, .series = s, .n = n, .width = PLOT_W, .height = PLOT_H};
    char *svg = NULL;
    const enum gen_status st = gen_plot_svg(&p, GEN_SVG_INLINE, &svg);
    if (st == GEN_OK) gen_strbuf_puts(b, svg);
    gen_free(svg);
    return st;
}

static enum gen_status curves(struct gen_strbuf *b, const struct run *runs, int n, int *plots) {
    gen_strbuf_printf(b, "<h2>Curves</h2>\n<div class=\"plots\">\n");
    enum gen_status st = GEN_OK;
    for (int rank = 0; rank <= 3; rank++)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < runs[i].log.n_curves && st == GEN_OK; k++) {
                const char *name = runs[i].log.curves[k].name;
                if (curve_rank(name) != rank || seen_before(runs, i, name)) continue;
                st = curve_plot(b, runs, n, name);
                (*plots)++;
            }
    gen_strbuf_puts(b, "</div>\n");
    if (*plots == 0)
        gen_strbuf_printf(b, "<p class=\"note\">No curves: the runs' metrics.jsonl hold no "
                             "training lines yet.</p>\n");
    return st;
}

/* At most `max` of n snapshots, evenly spread, the first and last among them. */
static int pick(int n, int max, int k) {
    return n <= max ? k : max == 1 ? n - 1 : (int)lround((double)k * (n - 1) / (max - 1));
}

static enum gen_status embed_snapshot(struct gen_strbuf *b, const struct snapshot *s) {
    uint8_t *data = NULL;
    int64_t len = 0;
    enum gen_status st = gen_fs_read(s->path, MAX_SNAPSHOT_BYTES, &data, &len);
    if (st != GEN_OK) return st;
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (s->text) {
        gen_strbuf_puts(b, "<pre>");
        gen_strbuf_escape(b, (const char *)data,
                          (size_t)(len < TEXT_SNAPSHOT_BYTES ? len : TEXT_SNAPSHOT_BYTES));
        gen_strbuf_puts(b, "</pre>");
    } else if (len < 8 || memcmp(data, signature, 8)) {
        st = gen_error(GEN_ERR_FORMAT, "%s: not a PNG file", s->path);
    } else {
        gen_strbuf_printf(
            b, "<img alt=\"samples at step %" PRId64 "\" src=\"data:image/png;base64,", s->step);
        gen_strbuf_base64(b, data, (size_t)len);
        gen_strbuf_puts(b, "\">");
    }
    gen_free(data);
    return st;
}

static enum gen_status samples(struct gen_strbuf *b, const struct run *runs, int n, int max,
                               int *shown) {
    gen_strbuf_printf(b, "<h2>Samples during training</h2>\n");
    enum gen_status st = GEN_OK;
    for (int i = 0; i < n && st == GEN_OK; i++) {
        const struct run *r = &runs[i];
        gen_strbuf_puts(b, "<h3>");
        put_run_name(b, r, i);
        gen_strbuf_puts(b, "</h3>\n");
        if (r->n_snaps == 0) {
            gen_strbuf_printf(b, "<p class=\"note\">No samples-STEP snapshots in this run.</p>\n");
            continue;
        }
        const int count = r->n_snaps < max ? r->n_snaps : max;
        if (count < r->n_snaps)
            gen_strbuf_printf(b, "<p class=\"note\">%d of %d snapshots.</p>\n", count, r->n_snaps);
        gen_strbuf_puts(b, "<div class=\"strip\">\n");
        for (int k = 0, prev = -1; k < count && st == GEN_OK; k++) {
            const int j = pick(r->n_snaps, max, k);
            if (j == prev) continue;
            prev = j;
            gen_strbuf_puts(b, "<figure>");
            st = embed_snapshot(b, &r->snaps[j]);
            gen_strbuf_printf(b, "<figcaption>step %" PRId64 "</figcaption></figure>\n",
                              r->snaps[j].step);
            (*shown)++;
        }
        gen_strbuf_puts(b, "</div>\n");
    }
    return st;
}

/* A table of names against runs: row names in order of first appearance
 * over the runs; value(run, name) writes a cell and returns 0 when the run
 * has none; rows whose cells differ are marked (class diff). */
typedef int (*cell_fn)(struct gen_strbuf *b, const struct run *r, const char *name);

static void head_row(struct gen_strbuf *b, const struct run *runs, int n, const char *corner) {
    gen_strbuf_puts(b, "<table><tr><th>");
    esc(b, corner);
    gen_strbuf_puts(b, "</th>");
    for (int i = 0; i < n; i++) {
        gen_strbuf_puts(b, "<th>");
        put_run_name(b, &runs[i], i);
        gen_strbuf_puts(b, "</th>");
    }
    gen_strbuf_puts(b, "</tr>\n");
}

static void table_row(struct gen_strbuf *b, const struct run *runs, int n, const char *name,
                      cell_fn cell) {
    struct gen_strbuf cells[MAX_RUNS] = {{0}};
    int differ = 0;
    for (int i = 0; i < n; i++) {
        if (!cell(&cells[i], &runs[i], name)) gen_strbuf_puts(&cells[i], "-");
        differ |= i > 0 && strcmp(cells[i].s ? cells[i].s : "", cells[0].s ? cells[0].s : "");
    }
    gen_strbuf_printf(b, "<tr%s><td>", differ ? " class=\"diff\"" : "");
    esc(b, name);
    gen_strbuf_puts(b, "</td>");
    for (int i = 0; i < n; i++) {
        gen_strbuf_printf(b, "<td class=\"n\">%s</td>", cells[i].s ? cells[i].s : "");
        gen_strbuf_free(&cells[i]);
    }
    gen_strbuf_puts(b, "</tr>\n");
}

static int eval_cell(struct gen_strbuf *b, const struct run *r, const char *name) {
    const struct gen_value *v = gen_values_get(&r->log.eval, name);
    if (v) put_number(b, v->value);
    return v != NULL;
}

static void evaluation(struct gen_strbuf *b, const struct run *runs, int n) {
    gen_strbuf_printf(b, "<h2>Evaluation (gen eval)</h2>\n");
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].log.eval.n > 0;
    if (!any) {
        gen_strbuf_printf(b, "<p class=\"note\">No results yet: <code>gen eval FAMILY --ckpt "
                             "RUN_DIR/checkpoint.safetensors</code> adds them to the run.</p>\n");
        return;
    }
    head_row(b, runs, n, "metric");
    gen_strbuf_puts(b, "<tr><td>checkpoint step</td>");
    for (int i = 0; i < n; i++) {
        gen_strbuf_puts(b, "<td class=\"n\">");
        if (runs[i].log.eval.n && runs[i].log.eval_step >= 0)
            gen_strbuf_printf(b, "%" PRId64, runs[i].log.eval_step);
        else
            gen_strbuf_puts(b, "-");
        gen_strbuf_puts(b, "</td>");
    }
    gen_strbuf_puts(b, "</tr>\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < runs[i].log.eval.n; k++) {
            const char *name = runs[i].log.eval.v[k].name;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++)
                seen = gen_values_get(&runs[j].log.eval, name) != NULL;
            if (!seen) table_row(b, runs, n, name, eval_cell);
        }
    gen_strbuf_puts(b, "</table>\n");
}

/* A config value as `gen info` prints it. */
static void put_json_value(struct gen_strbuf *b, const cJSON *v) {
    if (cJSON_IsString(v)) {
        esc(b, v->valuestring);
    } else if (cJSON_IsBool(v)) {
        gen_strbuf_printf(b, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        gen_strbuf_printf(b, "%.9g", v->valuedouble);
    } else if (cJSON_IsNull(v)) {
        gen_strbuf_puts(b, "-");
    } else {
        char *s = cJSON_PrintUnformatted(v);
        esc(b, s ? s : "?");
        cJSON_free(s);
    }
}

static const char *const meta_rows[] = {"family", "gen_version", "format_version",
                                        "step",   "epoch",       NULL};

static int config_cell(struct gen_strbuf *b, const struct run *r, const char *name) {
    for (int k = 0; meta_rows[k]; k++)
        if (!strcmp(name, meta_rows[k])) {
            const char *v = gen_ckpt_meta_get(&r->meta, name);
            if (v) esc(b, v);
            return v != NULL;
        }
    const char *text = gen_ckpt_meta_get(&r->meta, "config");
    cJSON *cfg = text ? cJSON_Parse(text) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, name);
    if (v) put_json_value(b, v);
    cJSON_Delete(cfg);
    return v != NULL;
}

static void configuration(struct gen_strbuf *b, const struct run *runs, int n) {
    gen_strbuf_printf(b, "<h2>Configuration</h2>\n");
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].meta.n > 0;
    if (!any) {
        gen_strbuf_printf(b, "<p class=\"note\">No checkpoint.safetensors in these runs.</p>\n");
        return;
    }
    if (n > 1)
        gen_strbuf_printf(b, "<p class=\"note\">Rows where the runs differ are marked.</p>\n");
    head_row(b, runs, n, "option");
    for (int k = 0; meta_rows[k]; k++) table_row(b, runs, n, meta_rows[k], config_cell);
    /* the options, in the order of the first run that has each */
    for (int i = 0; i < n; i++) {
        const char *text = gen_ckpt_meta_get(&runs[i].meta, "config");
        cJSON *cfg = text ? cJSON_Parse(text) : NULL;
        const cJSON *item;
        cJSON_ArrayForEach(item, cfg) {
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) {
                const char *t = gen_ckpt_meta_get(&runs[j].meta, "config");
                cJSON *other = t ? cJSON_Parse(t) : NULL;
                seen = cJSON_GetObjectItemCaseSensitive(other, item->string) != NULL;
                cJSON_Delete(other);
            }
            if (!seen && item->string) table_row(b, runs, n, item->string, config_cell);
        }
        cJSON_Delete(cfg);
    }
    gen_strbuf_puts(b, "</table>\n");
}

/* ---- the page ---- */

static enum gen_status write_page(const char *out, const struct run *runs, int n, int max_snaps,
                                  int *plots, int *shown) {
    struct gen_strbuf b = {0};
    gen_strbuf_printf(&b,
                      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                      "<meta name=\"generator\" content=\"gen %s\">\n<title>gen report: ",
                      GEN_VERSION);
    for (int i = 0; i < n; i++) gen_strbuf_puts(&b, i ? ", " : ""), esc(&b, runs[i].dir);
    gen_strbuf_printf(&b, "</title>\n<style>%s</style>\n</head><body>\n<h1>gen report</h1>\n",
                      style);
    gen_strbuf_printf(&b,
                      "<p class=\"note\">%d run%s, one colour each in every plot and table.</p>\n",
                      n, n > 1 ? "s" : "");
    summary(&b, runs, n);
    enum gen_status st = curves(&b, runs, n, plots);
    if (st == GEN_OK) st = samples(&b, runs, n, max_snaps, shown);
    if (st == GEN_OK) evaluation(&b, runs, n), configuration(&b, runs, n);
    gen_strbuf_puts(&b, "</body></html>\n");
    if (st == GEN_OK && b.failed)
        st = gen_error(GEN_ERR_NOMEM, "%s: out of memory for the page", out);
    if (st == GEN_OK) st = gen_fs_write_atomic(out, b.s, b.len);
    gen_strbuf_free(&b);
    return st;
}

/* ---- the command ---- */

static int run(const struct gen_config *cfg, int n, char **dirs) {
    const char *out = gen_opt_str(cfg, &report_options[REPORT_OUTPUT]);
    const int max_snaps = (int)gen_opt_int(cfg, &report_options[REPORT_SNAPSHOTS]);
    enum gen_status st = GEN_OK;
    if (n > MAX_RUNS)
        st = gen_error(GEN_ERR_USAGE, "more than %d run directories", MAX_RUNS);
    else if (!out[0])
        st = gen_error(GEN_ERR_USAGE, "--output: an empty path");
    else if (!gen_fs_has_ext(out, ".html") && !gen_fs_has_ext(out, ".htm"))
        st = gen_error(GEN_ERR_USAGE, "%s: the report is HTML: give a name ending in .html", out);
    if (st != GEN_OK) return 2;
    struct run runs[MAX_RUNS];
    memset(runs, 0, sizeof runs);
    int loaded = 0;
    for (; loaded < n && st == GEN_OK; loaded++) {
        struct run *r = &runs[loaded];
        r->dir = dirs[loaded];
        const size_t len = strlen(r->dir), room = sizeof r->label - 1;
        snprintf(r->label, sizeof r->label, "%s%s", len > room ? "..." : "",
                 r->dir + (len > room ? len - room + 3 : 0));
        st = load_run(r);
    }
    int plots = 0, shown = 0;
    if (st == GEN_OK) st = write_page(out, runs, n, max_snaps, &plots, &shown);
    for (int i = 0; i < loaded; i++) free_run(&runs[i]);
    if (st != GEN_OK) return 1;
    if (!gen_opt_flag(cfg, &report_options[REPORT_QUIET]))
        fprintf(stderr, "wrote %s (%d run%s, %d plots, %d snapshots)\n", out, n, n > 1 ? "s" : "",
                plots, shown);
    return 0;
}

const struct gen_cli_tool gen_report_tool = {
    .name = "report",
    .args = "RUN_DIR [RUN_DIR...] [-o FILE.html]",
    .what = "one HTML page of runs: curves, samples, eval, config",
    .options = report_options,
    .operand = "RUN_DIR",
    .operand_what = "a run directory with metrics.jsonl",
    .about = about,
    .run = run,
};
