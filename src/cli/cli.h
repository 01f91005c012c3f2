/* cli.h - the command line, callable from tests: gen_cli_main is the whole
 * program except main(). */
#ifndef GEN_CLI_H
#define GEN_CLI_H

#include "gen/family.h"

/* Runs `gen ARGS...`; argv[0] is the program name. Returns the exit code
 * (0 ok, 1 runtime/data error, 2 usage error, 130 interrupted). */
int gen_cli_main(int argc, char **argv);

/* `gen info CKPT` (argv: the arguments after "info"). */
int gen_cli_info(int argc, char **argv);
/* `gen plot RUN_DIR [-o FILE]` (argv: the arguments after "plot"). */
int gen_cli_plot(int argc, char **argv);
/* `gen report RUN_DIR... [-o FILE.html]` (src/cli/report.c). */
int gen_cli_report(int argc, char **argv);
/* `gen export CKPT -o FILE.safetensors` (src/cli/export.c): the weights
 * alone, named as the PyTorch twin's state_dict; and its option table. */
int gen_cli_export(int argc, char **argv);
extern const struct gen_option gen_export_options[];

/* The commands that take no FAMILY, as gen dispatches them and --help,
 * the man page and the completions list them (src/cli/cli.c). */
struct gen_cli_tool {
    const char *name, *args, *what;
    int (*run)(int argc, char **argv); /* argv: the arguments after the name */
};
extern const struct gen_cli_tool gen_cli_tools[]; /* ends with a NULL name */

/* `gen --manual` (the man page, roff) and `gen --completion bash|zsh`
 * (a completion script), generated from the option tables (src/cli/
 * manual.c); the build installs what they print. */
int gen_cli_manual(int argc, char **argv);
int gen_cli_completion(int argc, char **argv);


/* The commands written once for every family on its verbs (src/cli/
 * commands.c, sample_text.c): options already parsed and resolved. */
int gen_cmd_train(const struct gen_family *fam, struct gen_config *cfg, int json, int quiet);
int gen_cmd_sample(const struct gen_family *fam, struct gen_config *cfg, int json, int quiet);
int gen_cmd_eval(const struct gen_family *fam, struct gen_config *cfg, int json, int quiet);
/* `gen eval FAMILY --ood DATA [--roc FILE.png]` (src/cli/detect.c):
 * anomaly detection of DATA's test images against the model's. */
int gen_cmd_eval_ood(const struct gen_family *fam, struct gen_config *cfg, int json, int quiet);
/* `gen eval FAMILY --restore MODE` (src/cli/restore.c): restoration of
 * test images degraded by gen, against a classical baseline; for eval
 * options that give --restore or one of its parameters (which then says
 * that the parameter needs --restore). */
int gen_eval_restores(const struct gen_config *cfg);
int gen_cmd_eval_restore(const struct gen_family *fam, struct gen_config *cfg, int json, int quiet);
int gen_sample_text(const struct gen_family *fam, const struct gen_config *cfg, int json,
                    int quiet);

#endif
