/* info.c - `gen info CKPT`: what a checkpoint holds, read from its header
 * alone (family, versions, config, step, parameter count, tensor table). */
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "gen/io.h"

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static void print_shape(char *buf, size_t n, const struct gen_st_tensor *t) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? ", " : "",
                                 (long long)t->shape[d]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

static void print_config(const char *text) {
    cJSON *cfg = cJSON_Parse(text);
    if (!cJSON_IsObject(cfg)) {
        printf("config:      %s\n", text);
        cJSON_Delete(cfg);
        return;
    }
    printf("config:\n");
    const cJSON *item;
    cJSON_ArrayForEach(item, cfg) {
        printf("  %-16s ", item->string);
        if (cJSON_IsString(item))
            printf("%s\n", item->valuestring);
        else if (cJSON_IsBool(item))
            printf("%s\n", cJSON_IsTrue(item) ? "true" : "false");
        else if (cJSON_IsNumber(item))
            printf("%.9g\n", item->valuedouble);
        else if (cJSON_IsNull(item))
            printf("-\n");
        else {
            char *s = cJSON_PrintUnformatted(item);
            printf("%s\n", s ? s : "?");
            cJSON_free(s);
        }
    }
    cJSON_Delete(cfg);
}

static const char *const shown_keys[] = {"format", "format_version", "gen_version", "family",
                                         "config", "step", "epoch", NULL};

static int is_shown(const char *key) {
    for (int k = 0; shown_keys[k]; k++)
        if (!strcmp(key, shown_keys[k])) return 1;
    return 0;
}

static void print_info(const char *path, const struct gen_st_file *f) {
    const char *family = gen_st_meta(f, "family");
    const char *fmt_version = gen_st_meta(f, "format_version");
    const char *gen_version = gen_st_meta(f, "gen_version");
    const char *config = gen_st_meta(f, "config");
    const char *step = gen_st_meta(f, "step"), *epoch = gen_st_meta(f, "epoch");

    printf("file:        %s\n", path);
    if (family)
        printf("family:      %s\n", family);
    else
        printf("family:      - (a safetensors file, but not a gen checkpoint)\n");
    const char *format = gen_st_meta(f, "format");
    if (format && strcmp(format, "gen") != 0 && gen_version)
        printf("format:      %.32s (weights exported by gen %s)\n", format, gen_version);
    else if (format && strcmp(format, "gen") != 0)
        printf("format:      %.32s\n", format);
    else if (fmt_version || gen_version)
        printf("format:      gen checkpoint version %s, written by gen %s\n",
               fmt_version ? fmt_version : "?", gen_version ? gen_version : "?");
    if (step) printf("step:        %s\n", step);
    if (epoch) printf("epoch:       %s\n", epoch);

    int64_t n_params = 0, n_optim = 0, n_ema = 0;
    int t_params = 0, t_optim = 0, t_ema = 0, width = 4;
    for (int i = 0; i < gen_st_count(f); i++) {
        const struct gen_st_tensor *t = gen_st_at(f, i);
        if (has_prefix(t->name, "optim.")) {
            n_optim += t->numel, t_optim++;
        } else if (has_prefix(t->name, "ema.")) {
            n_ema += t->numel, t_ema++;
        } else {
            n_params += t->numel, t_params++;
            int len = (int)strlen(t->name);
            if (len > width) width = len;
        }
    }
    printf("parameters:  %lld in %d tensors\n", (long long)n_params, t_params);
    if (t_optim) printf("optimiser:   %lld values in %d tensors\n", (long long)n_optim, t_optim);
    if (t_ema) printf("ema:         %lld values in %d tensors\n", (long long)n_ema, t_ema);
    if (config) print_config(config);

    int other = 0;
    for (int i = 0; i < gen_st_meta_count(f); i++) {
        const char *key, *value;
        gen_st_meta_at(f, i, &key, &value);
        if (is_shown(key)) continue;
        if (!other++) printf("metadata:\n");
        printf("  %-16s %.60s%s\n", key, value, strlen(value) > 60 ? "..." : "");
    }

    if (width > 60) width = 60;
    printf("tensors:\n  %-*s  %-20s %12s\n", width, "name", "shape", "numel");
    for (int i = 0; i < gen_st_count(f); i++) {
        const struct gen_st_tensor *t = gen_st_at(f, i);
        if (has_prefix(t->name, "optim.") || has_prefix(t->name, "ema.")) continue;
        char shape[128];
        print_shape(shape, sizeof shape, t);
        static const char *const dtypes[] = {"", "  F16", "  BF16", "  I64"}; /* F32: none */
        printf("  %-*s  %-20s %12lld%s\n", width, t->name, shape, (long long)t->numel,
               dtypes[t->dtype]);
    }
}

static const struct gen_option info_options[] = {GEN_OPT_END};

static void about(FILE *f) {
    fprintf(f, "Shows what a checkpoint holds: family, versions, config, step, parameter\n"
               "count and a table of its tensors (name, shape, numel). Reads the header\n"
               "only; exits 1 with a message naming the file if it is damaged.\n");
}

static int run(const struct gen_config *cfg, int argc, char **argv) {
    (void)cfg, (void)argc;
    struct gen_st_file *f = NULL;
    char buf[GEN_CONFIG_STR];
    const char *path = gen_ckpt_path(argv[0], buf, sizeof buf); /* a run directory's */
    if (gen_st_open(path, GEN_ST_HEADER_ONLY, &f) != GEN_OK) return 1;
    print_info(path, f);
    gen_st_close(f);
    return 0;
}

const struct gen_cli_tool gen_info_tool = {
    .name = "info",
    .args = "CKPT",
    .what = "show a checkpoint: family, config, step, tensors",
    .options = info_options,
    .operand = "CKPT",
    .operand_what = "a checkpoint file or run directory",
    .max_operands = 1,
    .about = about,
    .run = run,
};
