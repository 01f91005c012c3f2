/* run.c - run directory, metrics lines, progress bar, signals, NaN check
 * (see run.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gen/comm.h"
#include "gen/io.h"
#include "gen/run.h"
#include "io/fs.h"

static void append_line(struct gen_runlog *lg, const char *text);

enum gen_status gen_runlog_open(struct gen_runlog *lg, const char *run_dir, int json, int quiet) {
    memset(lg, 0, sizeof *lg);
    lg->metrics = -1;
    lg->json = json;
    lg->quiet = quiet;
    lg->tty = isatty(STDERR_FILENO);
    lg->t_open = gen_now();
    lg->first_step = -1;
    lg->unit = "it";
    if (!run_dir) return GEN_OK;
    enum gen_status st = gen_mkdir_p(run_dir);
    if (st != GEN_OK) return st;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir) >= (int)sizeof path)
        return gen_error(GEN_ERR_IO, "%s: path too long", run_dir);
    if (!(lg->metrics_path = gen_fs_strdup(path)))
        return gen_error(GEN_ERR_NOMEM, "%s: out of memory", path);
    /* O_NONBLOCK: a FIFO in its place neither hangs the open nor takes the
     * lines (it is refused below); a regular file ignores the flag */
    lg->metrics = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    struct stat sb;
    if (lg->metrics < 0 || fstat(lg->metrics, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        const int err = lg->metrics < 0 ? errno : 0;
        gen_runlog_close(lg); /* a failed open leaves nothing to close */
        return err ? gen_error(GEN_ERR_IO, "%s: cannot open for appending: %s", path, strerror(err))
                   : gen_error(GEN_ERR_IO, "%s: not a regular file", path);
    }
    /* a file that ends in half a line (cut short by an older gen, or
     * another program): the next line starts on a line of its own */
    char last = '\n';
    if (sb.st_size > 0 && pread(lg->metrics, &last, 1, sb.st_size - 1) == 1 && last != '\n')
        append_line(lg, "");
    return GEN_OK;
}

/* Appends one line (text and a newline) to metrics.jsonl whole or not at
 * all: a write cut short (a full disk) is truncated away again, so the
 * next reader never meets half a line, and the log stops there. */
static void append_line(struct gen_runlog *lg, const char *text) {
    if (!lg->metrics_path || lg->metrics < 0 || lg->metrics_err) return;
    struct stat sb;
    if (fstat(lg->metrics, &sb) != 0) {
        lg->metrics_err = errno;
        return;
    }
    const size_t len = strlen(text);
    char *line = gen_alloc(len + 1);
    if (!line) {
        lg->metrics_err = ENOMEM;
        return;
    }
    memcpy(line, text, len);
    line[len] = '\n';
    size_t done = 0;
    while (done <= len) {
        const ssize_t w = write(lg->metrics, line + done, len + 1 - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            lg->metrics_err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    gen_free(line);
    if (lg->metrics_err && done > 0 && ftruncate(lg->metrics, sb.st_size) != 0) {
        /* the part written cannot be taken back: end its line, at least */
        const ssize_t w = write(lg->metrics, "\n", 1);
        (void)w;
    }
}

enum gen_status gen_runlog_status(const struct gen_runlog *lg) {
    if (!lg->metrics_err) return GEN_OK;
    return gen_error(GEN_ERR_IO, "%s: cannot write: %s", lg->metrics_path,
                     strerror(lg->metrics_err));
}

static void clear_bar(struct gen_runlog *lg) {
    if (!lg->bar_visible) return;
    fputs("\r\033[K", stderr);
    lg->bar_visible = 0;
}

void gen_runlog_close(struct gen_runlog *lg) {
    if (lg->bar_visible) {
        fputc('\n', stderr);
        lg->bar_visible = 0;
    }
    /* a log never opened (zeroed, metrics 0) has no path: stdin stays */
    if (lg->metrics_path && lg->metrics >= 0) close(lg->metrics);
    lg->metrics = -1;
    gen_free(lg->metrics_path);
    lg->metrics_path = NULL;
}

void gen_runlog_set_items(struct gen_runlog *lg, int64_t items_per_step, const char *unit) {
    lg->items_per_step = items_per_step;
    lg->unit = unit ? unit : "it";
}

/* A number as a person reads it: integers plainly, the rest with 5
 * significant digits. */
static void human_number(char *buf, size_t n, double v) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.5g", v);
}

/* name's value in kept: its last one. */
static void keep(struct gen_kept_fields *kept, const char *name, double value) {
    int i = 0;
    while (i < kept->n && strcmp(kept->f[i].name, name) != 0) i++;
    if (i == kept->n) {
        if (i == GEN_KEPT_FIELDS || strlen(name) >= sizeof kept->f[i].name) return;
        strcpy(kept->f[i].name, name);
        kept->n++;
    }
    kept->f[i].value = value;
}

void gen_runlog_write(struct gen_runlog *lg, int64_t step, const struct gen_field *fields, int n) {
    double elapsed = lg->elapsed_base + gen_now() - lg->t_open;
    if (step >= 0) keep(&lg->kept, "step", (double)step);
    for (int k = 0; k < n; k++) keep(&lg->kept, fields[k].name, fields[k].value);
    keep(&lg->kept, "elapsed", round(elapsed * 1000) / 1000);
    cJSON *obj = cJSON_CreateObject();
    if (lg->command) cJSON_AddStringToObject(obj, "command", lg->command);
    if (step >= 0) cJSON_AddNumberToObject(obj, "step", (double)step);
    for (int k = 0; k < n; k++) {
        if (isfinite(fields[k].value))
            cJSON_AddNumberToObject(obj, fields[k].name, fields[k].value);
        else
            cJSON_AddNullToObject(obj, fields[k].name);
    }
    cJSON_AddNumberToObject(obj, "elapsed", round(elapsed * 1000) / 1000);
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (text) {
        append_line(lg, text);
        if (lg->json && !lg->stdout_failed && (printf("%s\n", text) < 0 || fflush(stdout) != 0)) {
            /* The reader went away (EPIPE, SIGPIPE being ignored) or the
             * disk is full: stop the JSON lines, let the training go on. */
            const int err = errno;
            clear_bar(lg);
            gen_stdout_failed(err, "no more JSON lines (the training goes on, then exits 1)");
            lg->stdout_failed = 1;
            clearerr(stdout);
        }
        cJSON_free(text);
    }
    if (lg->quiet) return;
    clear_bar(lg);
    if (step >= 0) fprintf(stderr, "step %lld", (long long)step);
    for (int k = 0; k < n; k++) {
        char num[64];
        const char *name = fields[k].name, *sep = (k || step >= 0) ? "  " : "";
        const size_t len = strlen(name);
        /* Rates as "512 img/s", not "img_per_s 511.873". */
        if (len > 6 && !strcmp(name + len - 6, "_per_s") && isfinite(fields[k].value)) {
            fprintf(stderr, "%s%.0f %.*s/s", sep, fields[k].value, (int)(len - 6), name);
            continue;
        }
        human_number(num, sizeof num, fields[k].value);
        fprintf(stderr, "%s%s %s", sep, name, num);
    }
    fprintf(stderr, "  elapsed %.1fs\n", elapsed);
    fflush(stderr);
}

static int stdout_lost, stdout_gone; /* a write to stdout failed (and it was said); EPIPE */

void gen_stdout_failed(int err, const char *note) {
    stdout_gone |= err == EPIPE;
    if (err == EPIPE || stdout_lost) return;
    stdout_lost = 1;
    fprintf(stderr, "gen: standard output: %s%s%s\n", err ? strerror(err) : "write failed",
            note ? "; " : "", note ? note : "");
    fflush(stderr);
}

int gen_stdout_close(int rc) {
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && !stdout_gone) gen_stdout_failed(errno, NULL);
    return stdout_lost && rc == 0 ? 1 : rc;
}

void gen_runlog_note(struct gen_runlog *lg, const char *msg) {
    if (lg->quiet) return;
    clear_bar(lg);
    fprintf(stderr, "gen: %s\n", msg);
    fflush(stderr);
}

static void format_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

void gen_runlog_progress(struct gen_runlog *lg, int64_t step, int64_t total, double loss) {
    if (!lg->tty || lg->quiet) return;
    double now = gen_now();
    if (lg->first_step < 0) {
        lg->first_step = step;
        lg->t_first = now;
    }
    if (now - lg->t_bar < 0.1 && step != total) return;
    lg->t_bar = now;

    double dt = now - lg->t_first;
    double steps_per_s = dt > 0 ? (double)(step - lg->first_step) / dt : 0;
    char rate[48] = "", eta[32] = "?";
    if (steps_per_s > 0) {
        if (lg->items_per_step > 0)
            snprintf(rate, sizeof rate, "  %.0f %s/s", steps_per_s * (double)lg->items_per_step,
                     lg->unit);
        else
            snprintf(rate, sizeof rate, "  %.2f %s/s", steps_per_s, lg->unit);
        format_duration(eta, sizeof eta, (double)(total - step) / steps_per_s);
    }
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int fill = total > 0 ? (int)((double)WIDTH * (double)step / (double)total) : 0;
    if (fill > WIDTH) fill = WIDTH;
    for (int k = 0; k < WIDTH; k++) bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
    bar[WIDTH] = 0;
    char loss_text[32] = "";
    if (!isnan(loss)) snprintf(loss_text, sizeof loss_text, " loss %.4f", loss);
    fprintf(stderr, "\r\033[K%lld/%lld [%s]%s%s  ETA %s", (long long)step, (long long)total,
            bar, loss_text, rate, eta);
    fflush(stderr);
    lg->bar_visible = 1;
}

/* ---- signals ------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

void gen_run_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = (int)SA_RESETHAND; /* a second Ctrl-C kills at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* the terminal closed: save like SIGTERM */
    /* A closed stdout (gen train --json | head -1) is an EPIPE from write,
     * handled by gen_runlog_write, not a death. */
    signal(SIGPIPE, SIG_IGN);
}

/* Everything but training: there is no step to finish and nothing to
 * save, so the process ends here, its temporary file (an image, a report,
 * an export half written) removed; what it had renamed into place stays.
 * write and _exit are async-signal-safe, as gen_fs_tmp_remove is. In a
 * job of several ranks (the same signal comes to each) rank 0 says so,
 * once: the rank is set before any work starts and only read here. */
static void on_quit_signal(int sig) {
    (void)sig;
    gen_fs_tmp_remove();
    static const char msg[] = "gen: interrupted; the files written before it are kept\n";
    if (gen_comm_rank() == 0) {
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
    }
    _exit(130);
}

void gen_run_quit_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_quit_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int gen_run_interrupted(void) { return interrupted != 0; }

void gen_run_interrupt_clear(void) { interrupted = 0; }

enum gen_status gen_run_check_loss(double loss, int64_t step) {
    if (isfinite(loss)) return GEN_OK;
    return gen_error(GEN_ERR_RUNTIME,
                     "step %lld: loss is %s; training stopped (try a lower --lr)",
                     (long long)step, isnan(loss) ? "NaN" : "Inf");
}
