/* plot.c - `gen plot RUN_DIR [-o FILE]`: the run's loss curves
 * (RUN_DIR/metrics.jsonl) as a PNG (or SVG), by default RUN_DIR/loss.png. */
#include "cli/cli.h"
#include "gen/plot.h"

enum { PLOT_OUTPUT, PLOT_QUIET, PLOT_COUNT };
static const struct gen_option plot_options[PLOT_COUNT + 1] = {
    [PLOT_OUTPUT] = {"output", 'o', GEN_OPT_STRING, NULL,
                     "the PNG, or .svg, to write (default: RUN_DIR/loss.png)", 0, 0, NULL, 0},
    [PLOT_QUIET] = {"quiet", 'q', GEN_OPT_FLAG, NULL, "no message on stderr", 0, 0, NULL, 0},
    [PLOT_COUNT] = GEN_OPT_END,
};

static void about(FILE *f) {
    fprintf(f,
            "Draws the loss curves of a run (RUN_DIR/metrics.jsonl): loss against step,\n"
            "and every *_loss / validation field (test_loss, val_loss ...) as another\n"
            "series, into RUN_DIR/loss.png (%dx%d). Training redraws it at every\n"
            "checkpoint. 'gen report' puts every curve of several runs in one page.\n",
            GEN_PLOT_WIDTH, GEN_PLOT_HEIGHT);
}

static int run(const struct gen_config *cfg, int argc, char **argv) {
    (void)argc;
    const char *dir = argv[0], *out = gen_opt_str(cfg, &plot_options[PLOT_OUTPUT]);
    char in[4200], png[4200];
    snprintf(in, sizeof in, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    if (!out || !*out) out = png;
    int64_t points = 0;
    if (gen_plot_file(in, out, dir, &points) != GEN_OK) return 1;
    if (!gen_opt_flag(cfg, &plot_options[PLOT_QUIET]))
        fprintf(stderr, "wrote %s (%lld points)\n", out, (long long)points);
    return 0;
}

const struct gen_cli_tool gen_plot_tool = {
    .name = "plot",
    .args = "RUN_DIR [-o FILE.png|FILE.svg]",
    .what = "draw a run's loss curves into RUN_DIR/loss.png",
    .options = plot_options,
    .operand = "RUN_DIR",
    .operand_what = "a run directory with metrics.jsonl",
    .max_operands = 1,
    .about = about,
    .run = run,
};
