/* cli.c - the gen command line: dispatch of train/sample/eval and of the
 * commands without a family (info, plot, report, export), the common
 * options of each command, their parsing, help and version.
 *
 * Option design: each command has a common table here; a family adds its
 * own table per command, and a family entry with the name of a common one
 * (batch, lr, epochs, steps, data, -n) replaces it, which is how families
 * carry their own defaults. Help shows the merged result. */
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/comm.h"
#include "gen/kernels.h"
#include "gen/run.h"

#ifndef GEN_VERSION
#define GEN_VERSION "unknown"
#endif

enum command {
    CMD_TRAIN = GEN_CMD_TRAIN,
    CMD_SAMPLE = GEN_CMD_SAMPLE,
    CMD_EVAL = GEN_CMD_EVAL,
    CMD_COUNT = GEN_CMD_COUNT
};

static const struct {
    const char *name, *what;
    const struct gen_option *common;
} commands[CMD_COUNT] = {
    [CMD_TRAIN] = {"train", "train a model: checkpoints, sample grids and metrics go to the run directory",
                   gen_train_options},
    [CMD_SAMPLE] = {"sample", "generate samples from a checkpoint (PNG grid, PNG files or text)",
                    gen_sample_options},
    [CMD_EVAL] = {"eval", "evaluate a checkpoint on held-out data", gen_eval_options},
};

static const struct gen_option *family_table(const struct gen_family *f, enum command c) {
    switch (c) {
    case CMD_TRAIN: return f->train_options;
    case CMD_SAMPLE: return f->sample_options;
    default: return f->eval_options;
    }
}

void gen_command_tables(enum gen_command c, const struct gen_family *f,
                        const struct gen_option *tables[3]) {
    tables[0] = commands[c].common;
    tables[1] = f ? family_table(f, (enum command)c) : NULL;
    tables[2] = NULL;
}

const char *gen_command_name(enum gen_command c) { return commands[c].name; }
const char *gen_command_what(enum gen_command c) { return commands[c].what; }

const struct gen_cli_tool *const gen_cli_tools[] = {&gen_info_tool, &gen_plot_tool,
                                                    &gen_report_tool, &gen_export_tool, NULL};

const struct gen_option gen_cli_help_option = {"help", 'h', GEN_OPT_FLAG, NULL, "this help",
                                               0, 0, NULL, 0};

static void family_names(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; gen_families[k] && used < n; k++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", k ? ", " : "",
                                 gen_families[k]->name);
}

/* ---- help ---------------------------------------------------------------- */

static void print_help(FILE *f) {
    fprintf(f,
            "Usage: gen COMMAND FAMILY [options]\n");
    for (int k = 0; gen_cli_tools[k]; k++)
        fprintf(f, "       gen %s %s\n", gen_cli_tools[k]->name, gen_cli_tools[k]->args);
    fprintf(f,
            "\n"
            "Trains and samples generative models on the CPU.\n"
            "\n"
            "Commands:\n");
    for (int c = 0; c < CMD_COUNT; c++) fprintf(f, "  %-8s %s\n", commands[c].name, commands[c].what);
    for (int k = 0; gen_cli_tools[k]; k++)
        fprintf(f, "  %-8s %s\n", gen_cli_tools[k]->name, gen_cli_tools[k]->what);
    fprintf(f, "\nFamilies:\n");
    for (int k = 0; gen_families[k]; k++)
        fprintf(f, "  %-12s %s\n", gen_families[k]->name, gen_families[k]->summary);
    fprintf(f,
            "\n"
            "Examples:\n"
            "  gen train vae --data data/mnist\n"
            "  gen sample diffusion -n 64 -o grid.png\n"
            "  gen sample transformer --prompt \"Call me\" --length 400 --temperature 0.8\n"
            "  gen eval vae --ckpt runs/vae/checkpoint.safetensors\n"
            "  gen info runs/gan/checkpoint.safetensors\n"
            "\n"
            "Exit status: 0 success, 1 runtime or data error, 2 usage error,\n"
            "130 interrupted (training saves its checkpoint first).\n"
            "\n"
            "'gen COMMAND FAMILY --help' lists the options of a command for a family;\n"
            "'gen --manual' prints the man page, 'gen --completion bash|zsh' a completion script.\n"
            "More: man gen, README.md and docs/DESIGN.md.\n");
}

/* Help for `gen CMD` (family NULL: common options and the family list). */
static void print_command_help(FILE *f, enum command c, const struct gen_family *fam) {
    const struct gen_option *extra = fam ? family_table(fam, c) : NULL;
    const struct gen_option *const tables[] = {commands[c].common, extra, NULL};
    fprintf(f, "Usage: gen %s %s [options]\n\n", commands[c].name, fam ? fam->name : "FAMILY");
    if (fam) fprintf(f, "%s: %s\n", fam->name, fam->summary);
    fprintf(f, "%c%s.\n\nOptions:\n", toupper((unsigned char)commands[c].what[0]),
            commands[c].what + 1);
    for (const struct gen_option *o = commands[c].common; o->name; o++)
        gen_option_help_line(f, gen_option_find(tables, o->name));
    gen_option_help_line(f, &gen_cli_help_option);
    if (extra) {
        int header = 0;
        for (const struct gen_option *o = extra; o->name; o++) {
            if (gen_option_find((const struct gen_option *const[]){commands[c].common, NULL},
                                o->name))
                continue; /* shown above with the family's default */
            if (!header) fprintf(f, "\n%s options:\n", fam->name), header = 1;
            gen_option_help_line(f, o);
        }
    }
    if (!fam) {
        fprintf(f, "\nFamilies (see 'gen %s FAMILY --help' for their options):\n", commands[c].name);
        for (int k = 0; gen_families[k]; k++)
            fprintf(f, "  %-12s %s\n", gen_families[k]->name, gen_families[k]->summary);
    }
}

static int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* Prints the pending message as a usage error and returns 2. */
static int usage_error(const char *try_what) {
    fprintf(stderr, "gen: %s\nTry 'gen %s--help'.\n", gen_last_error(), try_what);
    return 2;
}

/* Paths a command cannot take empty: "" is a usage error, not the default. */
static enum gen_status check_paths(const struct gen_config *cfg) {
    const struct gen_option *const paths[] = {
        &gen_train_options[GEN_TRAIN_OUT],    &gen_sample_options[GEN_SAMPLE_CKPT],
        &gen_train_options[GEN_TRAIN_DATA],   &gen_train_options[GEN_TRAIN_RESUME],
        &gen_sample_options[GEN_SAMPLE_OUTPUT], &gen_sample_options[GEN_SAMPLE_INPUT]};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const struct gen_config_entry *e = gen_opt_get(cfg, paths[i]);
        if (e && e->set && e->type != GEN_OPT_OPTIONAL_STRING && !e->s[0])
            return gen_error(GEN_ERR_USAGE, "--%s: an empty path", paths[i]->name);
    }
    return GEN_OK;
}

/* A checkpoint the user named by its run directory (--ckpt runs/vae,
 * --resume runs/vae, --classifier runs/classifier) is the
 * checkpoint.safetensors in it, from here on: in messages and in the
 * paths made from it. */
static enum gen_status ckpt_dirs(struct gen_config *cfg, const struct gen_option *const *tables) {
    static const char *const names[] = {"ckpt", "resume", "classifier"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const struct gen_config_entry *e = gen_config_get(cfg, names[i]);
        if (!e || !e->set || !e->present || !e->s || !e->s[0]) continue;
        char buf[GEN_CONFIG_STR];
        const char *path = gen_ckpt_path(e->s, buf, sizeof buf);
        if (path == buf && gen_config_set(cfg, tables, names[i], path) != GEN_OK)
            return GEN_ERR_USAGE;
    }
    return GEN_OK;
}

/* --epochs and --steps: whichever the user gives replaces the family's
 * default for the other; both at once is a usage error. */
static enum gen_status resolve_length(struct gen_config *cfg) {
    int epochs = gen_opt_is_set(cfg, &gen_train_options[GEN_TRAIN_EPOCHS]), steps = gen_opt_is_set(cfg, &gen_train_options[GEN_TRAIN_STEPS]);
    if (epochs && steps)
        return gen_error(GEN_ERR_USAGE, "--epochs and --steps cannot be used together");
    for (int k = 0; k < cfg->n; k++) {
        if ((steps && !strcmp(cfg->e[k].name, gen_train_options[GEN_TRAIN_EPOCHS].name)) ||
            (epochs && !strcmp(cfg->e[k].name, gen_train_options[GEN_TRAIN_STEPS].name)))
            cfg->e[k].present = 0;
    }
    return GEN_OK;
}

/* A failure on one rank of several ends the whole job (its other ranks
 * may be waiting for this one in a collective call). Rank 0 speaks first;
 * the others wait a moment, so that a failure every rank meets (a bad
 * option, a missing file) is said once before rank 0's abort ends them. */
static void fail_job(int rc) {
    if (gen_comm_size() == 1) return;
    if (gen_comm_rank() != 0) sleep(1);
    fprintf(stderr, "gen: rank %d of %d: %s\n", gen_comm_rank(), gen_comm_size(), gen_last_error());
    gen_comm_abort(rc);
}

static int run_command(enum command c, int argc, char **argv) {
    const char *cname = commands[c].name;
    char try_what[64];
    snprintf(try_what, sizeof try_what, "%s ", cname);
    if (argc < 1 || argv[0][0] == '-') {
        if (argc >= 1 && wants_help(1, argv)) {
            print_command_help(stdout, c, NULL);
            return 0;
        }
        char names[256];
        family_names(names, sizeof names);
        gen_error(GEN_ERR_USAGE, "%s: missing FAMILY (one of %s)", cname, names);
        return usage_error(try_what);
    }
    const struct gen_family *fam = gen_family_find(argv[0]);
    if (!fam) {
        char names[256];
        family_names(names, sizeof names);
        gen_error(GEN_ERR_USAGE, "%s: unknown family '%.64s' (one of %s)", cname, argv[0], names);
        return usage_error(try_what);
    }
    if (wants_help(argc - 1, argv + 1)) {
        print_command_help(stdout, c, fam);
        return 0;
    }
    snprintf(try_what, sizeof try_what, "%s %s ", cname, fam->name);

    struct gen_config cfg = {0};
    const struct gen_option *const tables[] = {commands[c].common, family_table(fam, c), NULL};
    if (gen_config_parse(&cfg, tables, argc - 1, argv + 1) != GEN_OK ||
        check_paths(&cfg) != GEN_OK || ckpt_dirs(&cfg, tables) != GEN_OK) {
        gen_config_free(&cfg);
        return usage_error(try_what);
    }
    char path[GEN_CONFIG_STR];
    if (c == CMD_TRAIN) {
        if (resolve_length(&cfg) != GEN_OK) {
            gen_config_free(&cfg);
            return usage_error(try_what);
        }
        snprintf(path, sizeof path, "runs/%s", fam->name);
        gen_config_default_str(&cfg, gen_train_options[GEN_TRAIN_OUT].name, path);
        if (gen_opt_flag(&cfg, &gen_train_options[GEN_TRAIN_RESUME])) {
            snprintf(path, sizeof path, "%.900s/checkpoint.safetensors", gen_opt_str(&cfg, &gen_train_options[GEN_TRAIN_OUT]));
            gen_config_default_str(&cfg, gen_train_options[GEN_TRAIN_RESUME].name, path);
        }
    } else {
        snprintf(path, sizeof path, "runs/%s/checkpoint.safetensors", fam->name);
        gen_config_default_str(&cfg, gen_sample_options[GEN_SAMPLE_CKPT].name, path);
    }
    /* sample or eval before any training: say what to do, not ENOENT (eval
     * --samples scores given images and needs no model of its own) */
    const struct gen_config_entry *samples = gen_config_get(&cfg, "samples");
    const int untrained =
        c != CMD_TRAIN && !gen_opt_is_set(&cfg, &gen_sample_options[GEN_SAMPLE_CKPT]) &&
        !(samples && samples->present && samples->s && samples->s[0]) && access(path, F_OK) != 0;
    const int json = gen_opt_flag(&cfg, &gen_train_options[GEN_TRAIN_JSON]), quiet = gen_opt_flag(&cfg, &gen_train_options[GEN_TRAIN_QUIET]);

    gen_clear_error();
    gen_threads_init((int)gen_opt_int(&cfg, &gen_train_options[GEN_TRAIN_THREADS]));
    if (c == CMD_TRAIN) gen_run_signals_install();
    int rc = 1;
    if (untrained)
        gen_error(GEN_ERR_IO,
                  "%s: no checkpoint (train one with 'gen train %s', or name one with "
                  "--ckpt)",
                  path, fam->name);
    else
        rc = c == CMD_TRAIN    ? gen_cmd_train(fam, &cfg, json, quiet)
             : c == CMD_SAMPLE ? gen_cmd_sample(fam, &cfg, json, quiet)
                               : gen_cmd_eval(fam, &cfg, json, quiet);
    gen_config_free(&cfg);
    if (rc == 1 || rc == 2) fail_job(rc);
    if (rc == 1 || rc == 2) fprintf(stderr, "gen: %s\n", gen_last_error());
    if (rc == 2) fprintf(stderr, "Try 'gen %s--help'.\n", try_what);
    return rc;
}

/* ---- the commands without a family ------------------------------------------ */

static void print_tool_help(FILE *f, const struct gen_cli_tool *t) {
    fprintf(f, "Usage: gen %s %s\n\n", t->name, t->args);
    t->about(f);
    fprintf(f, "\nOptions:\n");
    gen_options_help(f, t->options);
    gen_option_help_line(f, &gen_cli_help_option);
}

/* Parses the options and operands of `gen NAME ARGS...` into cfg and
 * operands (room for argc); the message is pending on a usage error. */
static enum gen_status tool_args(const struct gen_cli_tool *t, struct gen_config *cfg, int argc,
                                 char **argv, char **operands, int *n) {
    const struct gen_option *const tables[] = {t->options, NULL};
    if (gen_config_parse_args(cfg, tables, argc, argv, operands, n) != GEN_OK) return GEN_ERR_USAGE;
    if (*n == 0)
        return gen_error(GEN_ERR_USAGE, "%s: missing %s (%s)", t->name, t->operand,
                         t->operand_what);
    if (t->max_operands && *n > t->max_operands)
        return gen_error(GEN_ERR_USAGE, "unexpected argument '%.100s'", operands[t->max_operands]);
    return GEN_OK;
}

static int run_tool(const struct gen_cli_tool *t, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_tool_help(stdout, t);
        return 0;
    }
    char **operands = gen_alloc((size_t)(argc + 1) * sizeof *operands);
    struct gen_config cfg = {0};
    int n = 0, rc = 2;
    if (!operands) {
        rc = 1;
        gen_error(GEN_ERR_NOMEM, "out of memory");
    } else if (tool_args(t, &cfg, argc, argv, operands, &n) == GEN_OK) {
        gen_clear_error();
        rc = t->run(&cfg, n, operands);
    }
    gen_config_free(&cfg);
    gen_free(operands);
    if (rc == 1 || rc == 2) fprintf(stderr, "gen: %s\n", gen_last_error());
    if (rc == 2) fprintf(stderr, "Try 'gen %s --help'.\n", t->name);
    return rc;
}

static int cli_main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (gen_comm_init() != GEN_OK) {
        fprintf(stderr, "gen: %s\n", gen_last_error());
        return 1;
    }
    gen_run_quit_signals_install(); /* `train` puts its own in their place */
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        print_help(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        /* and the kernels this CPU gets: what a speed report needs to name
         * (bf16 runs only beside the AVX-512 table: not where GEN_ISA forces
         * another, which --precision bf16 then refuses) */
        const struct gen_kernels *bf = gen_kernels_bf16();
        printf("gen %s\nthreads: %d by default\nidle threads: %s\nkernels: %s; --precision bf16: "
               "%s\n",
               GEN_VERSION, gen_threads_default(), gen_threads_idle(), gen_kernels()->name,
               !bf                         ? "not on this CPU/build"
               : gen_kernels_bf16_beside() ? bf->name
                                           : "not with these kernels");
        return 0;
    }
    for (int c = 0; c < CMD_COUNT; c++)
        if (!strcmp(cmd, commands[c].name)) return run_command((enum command)c, argc - 2, argv + 2);
    for (int k = 0; gen_cli_tools[k]; k++)
        if (!strcmp(cmd, gen_cli_tools[k]->name))
            return run_tool(gen_cli_tools[k], argc - 2, argv + 2);
    if (!strcmp(cmd, "--manual")) return gen_cli_manual(argc - 2, argv + 2);
    if (!strcmp(cmd, "--completion")) return gen_cli_completion(argc - 2, argv + 2);
    if (cmd[0] == '-')
        gen_error(GEN_ERR_USAGE, "unknown option '%.64s'", cmd);
    else
        gen_error(GEN_ERR_USAGE, "unknown command '%.64s'", cmd);
    return usage_error("");
}

int gen_cli_main(int argc, char **argv) {
    return gen_stdout_close(cli_main(argc, argv)); /* a full disk under stdout is a failure */
}
