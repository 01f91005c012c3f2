/* plot.c - `gen plot RUN_DIR [-o FILE]`: the run's loss curves
 * (RUN_DIR/metrics.jsonl) as a PNG (or SVG), by default RUN_DIR/loss.png. */
#include <string.h>

#include "cli/cli.h"
#include "gen/plot.h"

static int plot_usage(const char *problem) {
    fprintf(stderr, "gen: %s\nTry 'gen plot --help'.\n", problem);
    return 2;
}

int gen_cli_plot(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("Usage: gen plot RUN_DIR [-o FILE.png|FILE.svg]\n\n"
                   "Draws the loss curves of a run (RUN_DIR/metrics.jsonl): loss against step,\n"
                   "and every *_loss / validation field (test_loss, val_loss ...) as another\n"
                   "series, into RUN_DIR/loss.png (%dx%d). Training redraws it at every\n"
                   "checkpoint. 'gen report' puts every curve of several runs in one page.\n\n"
                   "Options:\n"
                   "  -o, --output FILE           the PNG, or .svg, to write (default: RUN_DIR/loss.png)\n"
                   "  -q, --quiet                 no message on stderr\n"
                   "  -h, --help                  this help\n",
                   GEN_PLOT_WIDTH, GEN_PLOT_HEIGHT);
            return 0;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
                return gen_error(GEN_ERR_USAGE, "%s: missing value", a), plot_usage(gen_last_error());
            out = argv[++i];
        } else if (!strncmp(a, "--output=", 9)) {
            out = a + 9;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            gen_error(GEN_ERR_USAGE, "unknown option '%.64s'", a);
            return plot_usage(gen_last_error());
        } else if (dir) {
            gen_error(GEN_ERR_USAGE, "unexpected argument '%.100s'", a);
            return plot_usage(gen_last_error());
        } else {
            dir = a;
        }
    }
    if (!dir) return plot_usage("plot: missing RUN_DIR (a run directory with metrics.jsonl)");
    char in[4200], png[4200];
    snprintf(in, sizeof in, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    if (!out || !*out) out = png;
    int64_t points = 0;
    gen_clear_error();
    if (gen_plot_file(in, out, dir, &points) != GEN_OK) {
        fprintf(stderr, "gen: %s\n", gen_last_error());
        return 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s (%lld points)\n", out, (long long)points);
    return 0;
}
