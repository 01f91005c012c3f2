/* run.h - what a training loop needs around the model: the run directory,
 * metrics (RUN/metrics.jsonl, human lines on stderr, JSON lines on stdout),
 * a progress bar, interruption by SIGINT/SIGTERM and the NaN check.
 *
 * A loop reads like this:
 *
 *     struct gen_runlog lg;
 *     if (gen_runlog_open(&lg, run->out_dir, run->json, run->quiet)) return 1;
 *     gen_runlog_set_items(&lg, batch, "img");
 *     for (step = first; step < total && !gen_run_interrupted(); step++) {
 *         loss = train_step(...);
 *         if (gen_run_check_loss(loss, step + 1)) { print error; close; return 1; }
 *         gen_runlog_progress(&lg, step + 1, total, loss);
 *         if ((step + 1) % 100 == 0)
 *             GEN_RUNLOG(&lg, step + 1, {"loss", loss}, {"lr", lr});
 *     }
 *     save checkpoint;
 *     gen_runlog_close(&lg);
 *     return gen_run_interrupted() ? 130 : 0;
 *
 * Nothing here knows the CLI or a model. */
#ifndef GEN_RUN_H
#define GEN_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "gen/core.h"

/* One named number of a log line. */
struct gen_field {
    const char *name;
    double value;
};

/* The last value a log's lines gave each of their names ("step" and
 * "elapsed" too), in the order the names first came: what a training
 * ended at, for its --json result. Names past GEN_KEPT_FIELDS, or longer
 * than a kept name holds, are not kept. */
#define GEN_KEPT_FIELDS 40
struct gen_kept_fields {
    int n;
    struct {
        char name[40];
        double value;
    } f[GEN_KEPT_FIELDS];
};

struct gen_runlog {
    int metrics;          /* RUN/metrics.jsonl (O_APPEND), or -1 (or 0
                             in a log never opened: no metrics_path)   */
    int json, quiet, tty; /* --json, --quiet, stderr is a terminal     */
    double t_open;        /* monotonic seconds at open                 */
    double elapsed_base;  /* seconds of earlier sessions of a resumed run */
    double t_bar;         /* last progress bar draw                    */
    int bar_visible;      /* a bar is on the current stderr line       */
    int64_t first_step;   /* first step seen by progress (for rates)   */
    double t_first;       /* time of that step                         */
    int64_t items_per_step; /* images or tokens per step (0: unknown)  */
    const char *unit;     /* "img", "tok"                              */
    int stdout_failed;    /* a JSON line could not be written: no more */
    char *metrics_path;   /* RUN/metrics.jsonl                         */
    int metrics_err;      /* errno of a line that could not be written */
    const char *command;  /* NULL (training), or "eval": written as the
                             line's first key, "command": "eval"       */
    struct gen_kept_fields kept; /* each name's last value             */
};

/* Opens a log for a run. run_dir (created with its parents if needed) gets
 * metrics.jsonl appended to; run_dir NULL: no file (sample, eval). Fails
 * with a message naming the path. */
enum gen_status gen_runlog_open(struct gen_runlog *lg, const char *run_dir, int json, int quiet);
/* Ends the progress bar line and closes metrics.jsonl. */
void gen_runlog_close(struct gen_runlog *lg);
/* GEN_OK, or, after a line of metrics.jsonl could not be written (a full
 * disk), that error with a message naming the file: the line was taken
 * back (the file ends at its last whole line) and no more are written. */
enum gen_status gen_runlog_status(const struct gen_runlog *lg);
/* Items per step and their unit, for rates ("img/s", "tok/s"). */
void gen_runlog_set_items(struct gen_runlog *lg, int64_t items_per_step, const char *unit);

/* Logs one line for `step` (step < 0: no step field, e.g. a final eval):
 * the object {"step": .., fields.., "elapsed": seconds} is appended to
 * metrics.jsonl and, with --json, printed on stdout (after the first
 * failed write to stdout, EPIPE from a closed pipe or a full disk, no more
 * JSON lines are printed; the run goes on, gen_stdout_failed says why
 * unless the reader went away); unless --quiet a human
 * line "step 100  loss 0.1234  lr 0.001  elapsed 3.2s" goes to stderr.
 * Integral values print as integers; NaN/Inf print as null in JSON. */
void gen_runlog_write(struct gen_runlog *lg, int64_t step, const struct gen_field *fields, int n);
#define GEN_RUNLOG(lg, step, ...)                                                   \
    gen_runlog_write((lg), (step), (const struct gen_field[]){__VA_ARGS__},          \
                     (int)(sizeof((const struct gen_field[]){__VA_ARGS__}) /       \
                           sizeof(struct gen_field)))

/* Standard output, where --json results, JSON lines and sampled text go.
 * A write to it that failed (a full disk, an I/O error) is said once on
 * stderr, "gen: standard output: REASON" (and the note, when given), and
 * makes a command that succeeded exit 1 (gen_stdout_close); a reader that
 * went away (EPIPE: `gen train --json | head -1`) is no failure. err: the
 * errno of the write, 0 where it is not known. */
void gen_stdout_failed(int err, const char *note);
/* Flushes standard output at a command's end and returns its exit code:
 * rc, or 1 where rc is 0 and a write to it failed. */
int gen_stdout_close(int rc);

/* One line on stderr ("gen: msg"), clearing the progress bar; nothing
 * with --quiet. For warnings and notices during a run. */
void gen_runlog_note(struct gen_runlog *lg, const char *msg);

/* Draws "step/total [=====>   ] loss 0.1234  512 img/s  ETA 1m02s" on
 * stderr (no loss part when loss is NaN: a sampler's progress), only when stderr is a terminal and not --quiet, at most 10
 * times a second (and always for step == total). */
void gen_runlog_progress(struct gen_runlog *lg, int64_t step, int64_t total, double loss);

/* Installs SIGINT/SIGTERM/SIGHUP handlers that only set a flag; a second
 * signal kills the process as usual (the handlers reset themselves).
 * SIGPIPE is ignored, so a closed stdout is a write error. The training
 * loop polls gen_run_interrupted(), finishes its step, saves a checkpoint
 * and returns 130. The CLI installs them before `train`. */
void gen_run_signals_install(void);
/* For every command but `train`: SIGINT/SIGTERM/SIGHUP remove the
 * temporary file being written (if any), print one line on stderr and
 * exit 130 at once. The CLI installs them before any other command. */
void gen_run_quit_signals_install(void);
int gen_run_interrupted(void);
void gen_run_interrupt_clear(void); /* for tests */

/* GEN_OK for a finite loss; otherwise GEN_ERR_RUNTIME with the standard
 * message: "step 120: loss is NaN; training stopped (try a lower --lr)"
 * (the trainer adds what the run directory holds). */
enum gen_status gen_run_check_loss(double loss, int64_t step);

/* ---- reading a metrics.jsonl back (gen plot, gen report) ---------------- */

#define GEN_LOG_MAX_CURVES 64 /* fields beyond are not read  */
#define GEN_LOG_MAX_VALUES 64

/* One numeric field of the training lines against their step. When the
 * step goes back (a resume from an older checkpoint appended to the same
 * file), the points from that step on are replaced by the new ones. */
struct gen_curve {
    char name[64];
    int64_t n, cap;
    double *x, *y; /* (n) steps and values; gen_alloc'd */
};

/* Named numbers, the last value seen of each name. */
struct gen_values {
    int n;
    struct gen_value {
        char name[64];
        double value;
    } v[GEN_LOG_MAX_VALUES];
};

/* What a metrics.jsonl says: every numeric field of the lines with a step
 * as a curve (not "step" or "elapsed"; null values skipped), the results
 * of `gen eval` (lines with "command": "eval", kept apart from the curves:
 * the values of the largest step they score), and the lines without a
 * step (a training session's end: median_step_ms ...). */
struct gen_metrics_log {
    struct gen_curve curves[GEN_LOG_MAX_CURVES]; /* in order of appearance */
    int n_curves;
    struct gen_values eval;
    int64_t eval_step; /* step of the checkpoint gen eval scored; -1: none or unknown */
    struct gen_values session;
    double elapsed;    /* the largest "elapsed" of the training lines */
    int64_t lines;     /* lines read */
};

/* LENIENT skips lines that are not JSON objects (gen plot, run by the
 * trainer while it writes); STRICT refuses them with "PATH:LINE: not a
 * JSON object", except blank lines and an unterminated last line that
 * starts like one (a write under way). */
enum gen_log_mode { GEN_LOG_LENIENT, GEN_LOG_STRICT };
enum gen_status gen_metrics_log_read(const char *path, enum gen_log_mode mode,
                                     struct gen_metrics_log *log);
void gen_metrics_log_free(struct gen_metrics_log *log);
/* The curve named `name`, or NULL. */
const struct gen_curve *gen_metrics_log_curve(const struct gen_metrics_log *log, const char *name);
/* The value named `name` in vals, or NULL. */
const struct gen_value *gen_values_get(const struct gen_values *vals, const char *name);

#endif
