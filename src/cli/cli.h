/* cli.h - the command line, callable from tests: gen_cli_main is the whole
 * program except main(). */
#ifndef GEN_CLI_H
#define GEN_CLI_H

#include "gen/family.h"

/* Runs `gen ARGS...`; argv[0] is the program name. Returns the exit code
 * (0 ok, 1 runtime/data error, 2 usage error, 130 interrupted). */
int gen_cli_main(int argc, char **argv);

/* The commands that take no FAMILY (`gen info`, `gen plot`, `gen report`,
 * `gen export`), each described in its own file (info.c, plot.c, report.c,
 * export.c). gen_cli_main parses a command's arguments against its option
 * table (options and operands in any order; --help or -h anywhere prints
 * the help), says a usage error as "gen: PROBLEM" and a Try line (exit 2),
 * and runs it; --help, the man page and the completions list the same
 * table, so they cannot drift. */
struct gen_cli_tool {
    const char *name, *args, *what;   /* "plot", its synopsis, its line in the command list */
    const struct gen_option *options; /* its option table (GEN_OPT_END alone: none) */
    /* Its operands: at least one ("NAME: missing OPERAND (OPERAND_WHAT)"
     * without), at most max_operands (0: any number). */
    const char *operand, *operand_what;
    int max_operands;
    void (*about)(FILE *f); /* what --help says between the usage line and the options */
    /* Runs the command: cfg holds its parsed options, argv[0..argc) its
     * operands (1 <= argc <= max_operands). Returns the exit code; on 1 or
     * 2 the message is pending (gen_error) and the caller says it. */
    int (*run)(const struct gen_config *cfg, int argc, char **argv);
};
extern const struct gen_cli_tool gen_info_tool, gen_plot_tool, gen_report_tool, gen_export_tool;
/* The commands above in the order gen --help lists them; ends with NULL. */
extern const struct gen_cli_tool *const gen_cli_tools[];
/* -h, --help, as the help, man page and completions of every command list it. */
extern const struct gen_option gen_cli_help_option;

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
