/* metrics_log.c - a run's metrics.jsonl read back into curves, the results
 * of gen eval and the end-of-session values (see gen/run.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gen/run.h"
#include "io/fs.h"

static struct gen_curve *curve_for(struct gen_metrics_log *log, const char *name) {
    for (int i = 0; i < log->n_curves; i++)
        if (!strcmp(log->curves[i].name, name)) return &log->curves[i];
    if (log->n_curves == GEN_LOG_MAX_CURVES) return NULL;
    struct gen_curve *c = &log->curves[log->n_curves++];
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static enum gen_status add_point(struct gen_curve *c, double x, double y) {
    while (c->n > 0 && c->x[c->n - 1] >= x) c->n--; /* a restart replaces what follows */
    if (c->n == c->cap) {
        const int64_t cap = c->cap ? 2 * c->cap : 256;
        double *nx = gen_alloc((size_t)cap * sizeof *nx), *ny = gen_alloc((size_t)cap * sizeof *ny);
        if (!nx || !ny) {
            gen_free(nx), gen_free(ny);
            return gen_error(GEN_ERR_NOMEM, "out of memory for the metrics");
        }
        if (c->n)
            memcpy(nx, c->x, (size_t)c->n * sizeof *nx),
                memcpy(ny, c->y, (size_t)c->n * sizeof *ny);
        gen_free(c->x), gen_free(c->y);
        c->x = nx, c->y = ny, c->cap = cap;
    }
    c->x[c->n] = x, c->y[c->n] = y, c->n++;
    return GEN_OK;
}

static void set_value(struct gen_values *vals, const char *name, double v) {
    struct gen_value *slot = (struct gen_value *)gen_values_get(vals, name);
    if (!slot && vals->n < GEN_LOG_MAX_VALUES) {
        slot = &vals->v[vals->n++];
        snprintf(slot->name, sizeof slot->name, "%s", name);
    }
    if (slot) slot->value = v;
}

static int is_number(const cJSON *e) {
    return cJSON_IsNumber(e) && isfinite(e->valuedouble);
}

/* One parsed line. */
static enum gen_status take_line(struct gen_metrics_log *log, const cJSON *o) {
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
    const int eval = cJSON_IsString(cmd) && !strcmp(cmd->valuestring, "eval");
    const int has_step = is_number(step);
    if (eval) {
        const int64_t s = has_step ? (int64_t)step->valuedouble : -1;
        if (s < log->eval_step) return GEN_OK; /* an older checkpoint's */
        if (s > log->eval_step) log->eval.n = 0;
        log->eval_step = s;
    }
    for (const cJSON *e = o->child; e; e = e->next) {
        if (!e->string || !strcmp(e->string, "step")) continue;
        if (!strcmp(e->string, "elapsed")) {
            if (!eval && is_number(e) && e->valuedouble > log->elapsed)
                log->elapsed = e->valuedouble;
            continue;
        }
        if (!is_number(e)) continue;
        if (eval) {
            set_value(&log->eval, e->string, e->valuedouble);
        } else if (!has_step) {
            set_value(&log->session, e->string, e->valuedouble);
        } else {
            struct gen_curve *c = curve_for(log, e->string);
            if (c && add_point(c, step->valuedouble, e->valuedouble) != GEN_OK)
                return GEN_ERR_NOMEM;
        }
    }
    return GEN_OK;
}

enum gen_status gen_metrics_log_read(const char *path, enum gen_log_mode mode,
                                     struct gen_metrics_log *log) {
    memset(log, 0, sizeof *log);
    log->eval_step = -1;
    FILE *f = gen_fs_fopen_read(path);
    if (!f) return GEN_ERR_IO;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    enum gen_status st = GEN_OK;
    while (st == GEN_OK && (len = getline(&buf, &cap, f)) >= 0) {
        log->lines++;
        cJSON *o = cJSON_ParseWithLength(buf, (size_t)len);
        if (cJSON_IsObject(o))
            st = take_line(log, o);
        else if (mode == GEN_LOG_STRICT && strspn(buf, " \t\r\n") < (size_t)len &&
                 (buf[len - 1] == '\n' || buf[0] != '{')) /* not a torn last line */
            st = gen_error(GEN_ERR_FORMAT, "%s:%lld: not a JSON object", path,
                           (long long)log->lines);
        cJSON_Delete(o);
    }
    if (st == GEN_OK && ferror(f)) st = gen_error(GEN_ERR_IO, "%s: read error", path);
    if (st == GEN_ERR_NOMEM) gen_fs_error_at(st, path);
    free(buf);
    fclose(f);
    if (st != GEN_OK) gen_metrics_log_free(log);
    return st;
}

void gen_metrics_log_free(struct gen_metrics_log *log) {
    for (int i = 0; i < log->n_curves; i++) gen_free(log->curves[i].x), gen_free(log->curves[i].y);
    log->n_curves = 0;
}

const struct gen_curve *gen_metrics_log_curve(const struct gen_metrics_log *log, const char *name) {
    for (int i = 0; i < log->n_curves; i++)
        if (!strcmp(log->curves[i].name, name)) return &log->curves[i];
    return NULL;
}

const struct gen_value *gen_values_get(const struct gen_values *vals, const char *name) {
    for (int i = 0; i < vals->n; i++)
        if (!strcmp(vals->v[i].name, name)) return &vals->v[i];
    return NULL;
}
