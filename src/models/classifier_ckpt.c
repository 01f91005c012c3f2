/* classifier_ckpt.c - classifier checkpoints for the feature network of
 * gen eval (src/models/metrics.c) and the tests, read without the engine:
 * those `gen train classifier` writes (image shape and classes in the
 * "data_shape" metadata, filters and EMA in the config), and those gen
 * wrote before the engine (channels, height, width, classes in the
 * config). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "gen/io.h"
#include "models/classifier.h"

enum gen_status gen_classifier_save(const struct gen_classifier *m, const char *path) {
    char config[64], shape[160];
    snprintf(config, sizeof config, "{\"filters\":%lld}", (long long)m->F);
    snprintf(
        shape, sizeof shape,
        "{\"kind\":\"images\",\"channels\":%lld,\"height\":%lld,\"width\":%lld,\"classes\":%lld}",
        (long long)m->C, (long long)m->H, (long long)m->W, (long long)m->K);
    struct gen_params ps = m->ps; /* weights only: no optimiser moments, no EMA */
    ps.m = ps.v = ps.ema = NULL;
    const struct gen_kv meta[] = {{"data_shape", shape}};
    return gen_ckpt_save(path, &ps, "classifier", config, meta, 1);
}

static double num_of(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The model a checkpoint's metadata describes, built (uninitialised weights). */
static enum gen_status build_from(struct gen_classifier *m, const struct gen_ckpt_meta *meta,
                                  const char *path, int *with_ema) {
    const char *family = gen_ckpt_meta_get(meta, "family");
    if (!family || strcmp(family, "classifier"))
        return gen_error(GEN_ERR_FORMAT, "%s: a %s checkpoint, not classifier", path,
                         family ? family : "?");
    const char *config_text = gen_ckpt_meta_get(meta, "config");
    const char *shape_text = gen_ckpt_meta_get(meta, "data_shape");
    cJSON *config = config_text ? cJSON_Parse(config_text) : NULL;
    cJSON *shape = shape_text ? cJSON_Parse(shape_text) : NULL;
    const cJSON *s = shape_text ? shape : config; /* before the engine: the config */
    const double C = num_of(s, "channels"), H = num_of(s, "height"), W = num_of(s, "width"),
                 K = num_of(s, "classes"), F = num_of(config, "filters"),
                 ema = num_of(config, "ema");
    cJSON_Delete(config);
    cJSON_Delete(shape);
    if (!(C >= 1 && C <= 4 && H >= 4 && H <= GEN_IMAGE_MAX_SIDE && W >= 4 &&
          W <= GEN_IMAGE_MAX_SIDE && H * W <= GEN_IMAGE_MAX_PIXELS && K >= 2 && K <= 100000 &&
          F >= 1 && F <= 4096 && ema >= 0 && ema < 1))
        return gen_error(GEN_ERR_FORMAT, "%s: bad model shape in the metadata", path);
    *with_ema = ema > 0;
    enum gen_status st = gen_classifier_build(m, (int64_t)C, (int64_t)H, (int64_t)W, (int64_t)K,
                                              (int64_t)F, *with_ema, 0);
    return st == GEN_ERR_USAGE ? gen_error(GEN_ERR_FORMAT, "%s: %s", path, gen_last_error()) : st;
}

enum gen_status gen_classifier_load(struct gen_classifier *m, const char *path) {
    memset(m, 0, sizeof *m);
    gen_params_init(&m->ps);
    struct gen_ckpt_meta meta = {0};
    enum gen_status st = gen_ckpt_read_meta(path, &meta);
    if (st != GEN_OK) return st;
    int with_ema = 0;
    st = build_from(m, &meta, path, &with_ema);
    gen_ckpt_meta_free(&meta);
    if (st == GEN_OK)
        st = gen_ckpt_load(path, &m->ps, "classifier", with_ema ? GEN_CKPT_EMA : 0, NULL);
    if (st == GEN_OK && with_ema) gen_ema_swap(&m->ps); /* the weights gen eval scores */
    if (st != GEN_OK) gen_classifier_free(m);
    return st;
}
