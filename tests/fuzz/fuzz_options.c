/* fuzz_options.c - libFuzzer target: option parsing against the real
 * tables. The first byte picks the family (of gen_families[]) and the
 * command (train, sample, eval); the rest, split at NUL and newline bytes,
 * is argv. A parsed config must write every value as text that sets it
 * back to the same text, and must store as JSON. */
#include <string.h>

#include "cli/engine.h"
#include "fuzz_util.h"

#define MAX_ARGS 64

static void round_trip(struct gen_config *cfg, const struct gen_option *const *tables) {
    char text[GEN_CONFIG_STR + 64], again[GEN_CONFIG_STR + 64];
    for (int k = 0; k < cfg->n; k++) {
        const struct gen_config_entry *e = &cfg->e[k];
        if (!e->present || e->type == GEN_OPT_FLAG) continue;
        gen_config_value_text(e, text, sizeof text);
        const char *name = e->name;
        if (gen_config_set(cfg, tables, name, text) != GEN_OK) {
            fprintf(stderr, "fuzz: --%s '%s' does not set back: %s\n", name, text,
                    gen_last_error());
            abort();
        }
        gen_config_value_text(gen_config_get(cfg, name), again, sizeof again);
        if (strcmp(text, again)) {
            fprintf(stderr, "fuzz: --%s '%s' reads back as '%s'\n", name, text, again);
            abort();
        }
    }
    free(gen_config_json(cfg));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int n_fam;
    static struct gen_config cfg;
    if (!n_fam)
        while (gen_families[n_fam]) n_fam++;
    if (size < 1) return 0;
    const struct gen_family *fam = gen_families[(data[0] & 0x1f) % n_fam];
    const enum gen_command cmd = (enum gen_command)((data[0] >> 5) % GEN_CMD_COUNT);

    char *text = malloc(size);
    if (!text) __builtin_trap();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (char *p = text; argc < MAX_ARGS && p < text + size - 1;) {
        argv[argc++] = p;
        while (*p && *p != '\n') p++;
        *p++ = 0;
    }
    argv[argc] = NULL;

    const struct gen_option *tables[3];
    gen_command_tables(cmd, fam, tables);
    if (gen_config_parse(&cfg, tables, argc, argv) == GEN_OK)
        round_trip(&cfg, tables);
    else
        fuzz_check_message(NULL);
    free(text);
    return 0;
}
