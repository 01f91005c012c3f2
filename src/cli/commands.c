/* commands.c - `gen train`, `gen sample` and `gen eval`, written once for
 * every family on top of its verbs: options and what a run remembers,
 * the run directory's lock, data, checkpoints, outputs and --json. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/comm.h"
#include "gen/kernels.h"
#include "gen/metrics.h"
#include "gen/plot.h"
#include "io/fs.h"

static int exit_code(enum gen_status st) { return st == GEN_OK ? 0 : st == GEN_ERR_USAGE ? 2 : 1; }

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* ---- the run directory ---- */

/* Locks OUT for this training: OUT/.lock holds the PID of the process
 * that has it, under an flock the kernel drops when that process ends. */
static enum gen_status lock_run(const char *dir, int *fd_out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return gen_error(GEN_ERR_IO, "%s: cannot create the run lock: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        return gen_error(GEN_ERR_RUNTIME,
                         "%s: another training (PID %s) is writing to this run directory", dir,
                         pid[0] ? pid : "?");
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        close(fd);
        return gen_error(GEN_ERR_IO, "%s: cannot write the run lock", path);
    }
    *fd_out = fd;
    return GEN_OK;
}

/* Undoes the run directory a failed training made (`kept` bytes of its
 * path existed before, gen_mkdir_p_made): when it holds nothing but the
 * lock (still held, through fd, so no other training can have taken it),
 * the lock, the directory and the parents made for it, while empty. */
static void unmake_run_dir(const char *dir, size_t kept, int fd) {
    struct gen_fs_list l = {0};
    if (fd < 0 || gen_fs_list(dir, &l) != GEN_OK) return;
    const int alone = l.n == 1 && !strcmp(l.names[0], ".lock");
    gen_fs_list_free(&l);
    char p[4096];
    snprintf(p, sizeof p, "%s/.lock", dir);
    if (alone && unlink(p) == 0) gen_rmdir_made(dir, kept);
}

/* dir/name moved aside to dir/name.prev (nothing to move: done). */
static enum gen_status move_aside(const char *dir, const char *name) {
    char from[4096], to[4200];
    snprintf(from, sizeof from, "%s/%s", dir, name);
    snprintf(to, sizeof to, "%s.prev", from);
    if (rename(from, to) != 0 && errno != ENOENT)
        return gen_error(GEN_ERR_IO, "%s: cannot move aside: %s", from, strerror(errno));
    return GEN_OK;
}

/* --force: a new run's log starts empty; the old one is kept beside it as
 * metrics.jsonl.prev, and the old snapshots as samples-STEP.png.prev (the
 * .prev ones of the run before go), so that the new run's are not mixed
 * with them (in gen report, say); the old checkpoints stay until the new
 * run's replace them (a new run that fails early loses nothing). */
static enum gen_status restart_log(const char *dir) {
    struct gen_fs_list l;
    enum gen_status st = gen_fs_list(dir, &l);
    if (st != GEN_OK) return st;
    for (int i = 0; st == GEN_OK && i < l.n; i++) {
        const char *name = l.names[i];
        if (strncmp(name, "samples-", 8)) continue;
        if (gen_fs_has_ext(name, ".prev")) {
            char *path = gen_fs_join(dir, name);
            if (!path) st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            else if (unlink(path) != 0 && errno != ENOENT)
                st = gen_error(GEN_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
            gen_free(path);
        }
    }
    for (int i = 0; st == GEN_OK && i < l.n; i++)
        if (!strncmp(l.names[i], "samples-", 8) &&
            (gen_fs_has_ext(l.names[i], ".png") || gen_fs_has_ext(l.names[i], ".txt")))
            st = move_aside(dir, l.names[i]);
    gen_fs_list_free(&l);
    return st == GEN_OK ? move_aside(dir, "metrics.jsonl") : st;
}

/* ---- what a run remembers ---- */

static int same_value(const struct gen_config_entry *a, const struct gen_config_entry *b) {
    if (a->present != b->present) return 0;
    switch (a->type) {
    case GEN_OPT_INT:
    case GEN_OPT_FLAG: return a->i == b->i;
    case GEN_OPT_FLOAT: return a->f == b->f || fabs(a->f - b->f) <= 1e-7 * fabs(a->f);
    default: return !strcmp(a->s, b->s);
    }
}

/* The resumed run's options: the checkpoint's, with the run-only options
 * the command line gives again (each announced); a new value for any
 * other option is refused. The invocation's own options come from cli. */
static enum gen_status merge_resume(const struct gen_config *cli, struct gen_config *stored,
                                    const struct gen_option *const *tables, const char *ckpt,
                                    int quiet) {
    for (int i = 0; i < cli->n; i++) {
        const struct gen_config_entry *e = &cli->e[i];
        const struct gen_option *opt = gen_option_find(tables, e->name);
        const struct gen_config_entry *s = gen_config_get(stored, e->name);
        const int invocation = (e->flags & GEN_OPT_INVOCATION) != 0;
        char now[GEN_CONFIG_STR], was[GEN_CONFIG_STR] = "(unset)";
        gen_config_value_text(e, now, sizeof now);
        if (s && s->present) gen_config_value_text(s, was, sizeof was);
        if (!invocation && (!e->set || (s && same_value(e, s)))) continue;
        if (!invocation && !(opt && (opt->flags & GEN_OPT_RUN_ONLY)))
            return gen_error(GEN_ERR_USAGE,
                             "--%s %s: %s was trained with --%s %s; a resumed run keeps its model "
                             "and data options (start a new run with another --out, or --force)",
                             e->name, now, ckpt, e->name, was);
        if (!invocation && !quiet)
            fprintf(stderr, "gen: --%s: %s -> %s (from the command line)\n", e->name, was, now);
        if (!e->present) continue;
        if (gen_config_set(stored, tables, e->name, now) != GEN_OK) return GEN_ERR_USAGE;
        const char *steps = gen_train_options[GEN_TRAIN_STEPS].name,
                   *epochs = gen_train_options[GEN_TRAIN_EPOCHS].name;
        if (!strcmp(e->name, steps) || !strcmp(e->name, epochs)) {
            /* the new length replaces the stored one */
            for (int k = 0; k < stored->n; k++)
                if (!strcmp(stored->e[k].name, !strcmp(e->name, steps) ? epochs : steps))
                    stored->e[k].present = 0;
        }
    }
    return GEN_OK;
}

static int same_shape(const struct gen_data_shape *a, const struct gen_data_shape *b) {
    if (a->kind != b->kind) return 0;
    if (a->kind == GEN_DATA_TEXT) return a->vocab == b->vocab;
    return a->c == b->c && a->h == b->h && a->w == b->w;
}

/* Class names of an image set (copied), or NULL. */
static char **copy_names(const struct gen_image_set *s) {
    if (!s->class_names) return NULL;
    char **names = calloc((size_t)s->n_classes, sizeof *names);
    for (int i = 0; names && i < s->n_classes; i++) names[i] = strdup(s->class_names[i]);
    return names;
}

/* ---- precision ---- */

/* --precision of a command's options (for train, the run's: a resumed run
 * keeps its own unless the command line says otherwise): puts the kernel
 * table of that precision in force, or says what bf16 lacks here. */
static enum gen_status set_precision(const struct gen_config *cfg, int quiet) {
    const int bf16 = !strcmp(gen_opt_str(cfg, &gen_train_options[GEN_TRAIN_PRECISION]), "bf16");
    if (gen_kernels_set_precision(bf16 ? GEN_PRECISION_BF16 : GEN_PRECISION_FP32)) {
        if (bf16 && !quiet)
            fprintf(stderr, "precision: bf16 products accumulated in fp32 (%s kernels)\n",
                    gen_kernels()->name);
        return GEN_OK;
    }
    char why[512];
    snprintf(why, sizeof why, "%s", gen_last_error());
    return gen_error(GEN_ERR_RUNTIME, "--precision bf16: %s; use --precision fp32", why);
}

/* ---- train ---- */

int gen_cmd_train(const struct gen_family *fam, struct gen_config *cli, int json, int quiet) {
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    const char *out = gen_opt_str(cli, &gen_train_options[GEN_TRAIN_OUT]);
    const char *resume = gen_opt_flag(cli, &gen_train_options[GEN_TRAIN_RESUME]) ? gen_opt_str(cli, &gen_train_options[GEN_TRAIN_RESUME]) : NULL;
    struct gen_kept_fields ended = {0};
    struct gen_train_run run = {.out_dir = out,
                                .resume = resume,
                                .json = json,
                                .quiet = quiet,
                                .profile = gen_opt_flag(cli, &gen_train_options[GEN_TRAIN_PROFILE]),
                                .ended = &ended};
    struct gen_model em = {0}, stored = {0};
    struct gen_data d = {0};
    struct gen_ckpt_meta meta = {0};
    struct gen_config cfg = {0};
    int lock = -1, rc = 1;
    enum gen_status st;
    char latest[4096];
    snprintf(latest, sizeof latest, "%s/checkpoint.safetensors", out);

    if (!out[0]) {
        gen_error(GEN_ERR_USAGE, "--out: an empty path");
        return 2;
    }
    /* over MPI, rank 0 owns the run directory; the others only read */
    const int root = gen_comm_rank() == 0;
    if (!root) quiet = 1, json = 0, run.quiet = 1, run.json = 0;
    /* a run directory this training makes is taken away again if it fails
     * before writing anything (a mistyped --data leaves no runs/FAMILY
     * holding only its lock) */
    size_t kept = strlen(out);
    if (root &&
        ((st = gen_mkdir_p_made(out, &kept)) != GEN_OK || (st = lock_run(out, &lock)) != GEN_OK))
        return 1;
    const int made = kept < strlen(out);
    if (root && !resume && exists(latest) && !gen_opt_flag(cli, &gen_train_options[GEN_TRAIN_FORCE])) {
        gen_error(GEN_ERR_RUNTIME,
                  "%s: already holds a run (checkpoint.safetensors); continue it with --resume, "
                  "or start over with --force",
                  out);
        goto done;
    }
    if (root && !resume && gen_opt_flag(cli, &gen_train_options[GEN_TRAIN_FORCE]) && restart_log(out) != GEN_OK) goto done;
    if (root) gen_clean_stale_tmp(out);

    /* the run's options: the command line's, or the checkpoint's with its changes */
    if (!resume && gen_config_copy(&cfg, cli) != GEN_OK) goto done;
    if (resume) {
        if (!exists(resume)) {
            gen_error(GEN_ERR_IO, "%s: no checkpoint to resume from", resume);
            goto done;
        }
        if (gen_model_describe(&stored, fam, resume, &meta) != GEN_OK) goto done;
        gen_ckpt_meta_free(&meta);
        if (gen_config_copy(&cfg, &stored.cfg) != GEN_OK) goto done;
        if ((st = merge_resume(cli, &cfg, tables, resume, quiet)) != GEN_OK) {
            rc = exit_code(st);
            goto done;
        }
    }
    if (set_precision(&cfg, quiet) != GEN_OK) goto done;
    const char *tok = gen_opt_get(&cfg, &gen_family_options[GEN_FAM_TOKENIZER]) ? gen_opt_str(&cfg, &gen_family_options[GEN_FAM_TOKENIZER]) : NULL;
    /* channels and size: --channels and --image-size (a resumed run's own),
     * else the data's */
    int channels, size;
    gen_model_data_options(&cfg, &channels, &size);
    if (channels != 0 && channels != 1 && channels != 3) {
        gen_error(GEN_ERR_USAGE, "--channels: must be 1 or 3, got %d", channels);
        rc = 2;
        goto done;
    }
    st = gen_data_load(&d, fam->data, gen_opt_str(&cfg, &gen_train_options[GEN_TRAIN_DATA]), GEN_DATA_TRAIN | GEN_DATA_TEST,
                       channels, size, resume && fam->data == GEN_DATA_TEXT ? &stored.vocab : NULL,
                       tok);
    if (st != GEN_OK) goto done;
    gen_data_announce(&d, quiet);
    struct gen_data_shape shape;
    gen_data_shape_of(&d, &shape);
    if (resume && gen_data_shape_check(&d, &stored.shape, resume) != GEN_OK) goto done;
    if (resume && !same_shape(&shape, &stored.shape)) {
        gen_error(GEN_ERR_FORMAT, "%s: the data's shape differs from what %s was trained on",
                  d.path, resume);
        goto done;
    }
    const uint64_t seed = (uint64_t)gen_opt_int(&cfg, &gen_train_options[GEN_TRAIN_SEED]);
    st = resume ? gen_model_create_checked(&em, fam, &cfg, &shape, &d.vocab, seed, resume)
                : gen_model_create(&em, fam, &cfg, &shape, &d.vocab, seed);
    if (st == GEN_ERR_FORMAT && !resume) /* the data's shape does not suit the model */
        st = gen_error(GEN_ERR_FORMAT, "%s: %s", d.path, gen_last_error());
    if (st != GEN_OK) {
        rc = exit_code(st);
        goto done;
    }
    em.class_names = copy_names(&d.train);
    if (!quiet) {
        fprintf(stderr, "%s: %lld parameters, ", fam->name, (long long)gen_params_count(em.info.ps));
        if (d.kind == GEN_DATA_TEXT)
            fprintf(stderr, "%lld training and %lld validation tokens (vocabulary %d)\n",
                    (long long)d.n_train, (long long)(d.n_tokens - d.n_train), d.vocab.V);
        else
            fprintf(stderr, "%lld training and %lld test images of %dx%dx%d in %s\n",
                    (long long)d.train.n, (long long)d.test.n, d.train.c, d.train.h, d.train.w,
                    d.path);
        if (resume) fprintf(stderr, "resuming %s\n", resume);
    }
    rc = gen_train_loop(&run, &em, &d);
    if (rc == 0 && !quiet) fprintf(stderr, "done: %s\n", latest);
    if (rc == 0 && json) {
        char prof[4096];
        snprintf(prof, sizeof prof, "%s/profile.json", out);
        const char *outs[2] = {latest, prof};
        struct gen_field f[GEN_KEPT_FIELDS]; /* where the run ended: each logged number's last */
        for (int i = 0; i < ended.n; i++)
            f[i] = (struct gen_field){ended.f[i].name, ended.f[i].value};
        gen_print_result("train", fam->name, outs, run.profile ? 2 : 1, f, ended.n, NULL);
    }
done:
    gen_config_free(&cfg);
    gen_model_free(&em);
    gen_model_free(&stored);
    gen_data_free(&d);
    if (made && rc != 0) unmake_run_dir(out, kept, lock);
    if (lock >= 0) close(lock);
    return rc;
}

/* ---- loading a checkpoint and its data for sample and eval ---- */

/* Labels of held-out images as the model's classes, matched by name when
 * both have names (a model trained on an image folder of class names, or
 * on another spelling of them, scored on an IDX test set). */
static enum gen_status relabel(struct gen_image_set *set, const struct gen_model *em,
                               const char *path) {
    if (!em->class_names || !set->class_names || !set->labels) return GEN_OK;
    int32_t map[4096];
    int same = 1;
    if (set->n_classes > 4096) return GEN_OK;
    for (int k = 0; k < set->n_classes; k++) {
        map[k] = gen_class_find(em->class_names, em->shape.n_classes, set->class_names[k]);
        same &= map[k] == k;
    }
    if (same) return GEN_OK;
    for (int k = 0; k < set->n_classes; k++)
        if (map[k] < 0) {
            for (int64_t i = 0; i < set->n; i++)
                if (set->labels[i] == k)
                    return gen_error(GEN_ERR_FORMAT, "%s: class '%s' is not a class of the model",
                                     path, set->class_names[k]);
        }
    for (int64_t i = 0; i < set->n; i++) set->labels[i] = map[set->labels[i]];
    return GEN_OK;
}

/* ---- sample ---- */

static enum gen_status check_image_output(const char *out) {
    return gen_output_is_folder(out) ? GEN_OK : gen_image_path_check(out);
}

/* The model's side when it is square (images are fitted to it), else 0. */
static int square_side(const struct gen_model *em) {
    return em->shape.h == em->shape.w ? em->shape.h : 0;
}

/* --input of a mode that works on images (need: what needs_inputs said):
 * test:K or test:A-B, those images of the model's test split (*clean = 1);
 * or the user's own, a folder of images or one image file, fitted to the
 * model's size (GEN_INPUTS_FIT) or at their own size, which must be the
 * model's divided by K (GEN_INPUTS_NATIVE(K)). */
static enum gen_status load_input(struct gen_data *d, const struct gen_model *em,
                                  const struct gen_config *opts, const char *path, int need,
                                  int *clean) {
    enum gen_status st;
    *clean = !strncmp(path, "test:", 5);
    if (*clean) {
        int64_t a, b;
        if ((st = gen_data_load_heldout(d, em, gen_model_data_path(opts, em))) != GEN_OK ||
            (st = gen_image_range("--input", path, d->test.n, &a, &b)) != GEN_OK)
            return st;
        gen_image_set_slice(&d->test, a, b - a + 1);
        return GEN_OK;
    }
    const int native = need >= GEN_INPUTS_NATIVE(1), K = GEN_INPUTS_FACTOR(need);
    d->kind = GEN_DATA_IMAGES;
    d->path = path;
    if (gen_fs_kind(path) == GEN_FS_FILE)
        st = gen_image_file_load(path, em->shape.c, native ? 0 : square_side(em), &d->test);
    else
        st = gen_images_load(path, GEN_SPLIT_ALL, em->shape.c, native ? 0 : em->shape.h, &d->test);
    if (st != GEN_OK || !native || em->shape.h % K || em->shape.w % K) return st;
    if (d->test.h != em->shape.h / K || d->test.w != em->shape.w / K)
        return gen_error(GEN_ERR_FORMAT, "%s: %s %dx%d; this mode wants %dx%d (the model's %dx%d / %d)",
                         path, d->test.n > 1 ? "images are" : "the image is", d->test.w, d->test.h,
                         em->shape.w / K, em->shape.h / K, em->shape.w, em->shape.h, K);
    return GEN_OK;
}

/* A family's --mask option that names a file: that image, one channel. */
static const char *mask_file(const struct gen_config *opts) {
    const struct gen_config_entry *e = gen_opt_get(opts, &gen_family_options[GEN_FAM_MASK]);
    return e && e->present && e->type == GEN_OPT_STRING && gen_fs_kind(e->s) != GEN_FS_MISSING
               ? e->s
               : NULL;
}

/* The progress bar of a long generation (drawn only on a terminal). */
static void draw_progress(int64_t done, int64_t total, void *arg) {
    gen_runlog_progress(arg, done, total, NAN);
}

/* ---- classes ---- */

/* A family option of opts when opts has it and it is set, else NULL / 0. */
static const char *fam_str(const struct gen_config *opts, enum gen_family_option o) {
    const struct gen_config_entry *e = gen_opt_get(opts, &gen_family_options[o]);
    return e && e->present && e->type == GEN_OPT_STRING ? e->s : NULL;
}

/* "T-shirt/top, Trouser, ..." (or 0..K-1) for a message. */
static void class_list(const struct gen_model *em, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k < em->info.classes && used + 8 < n; k++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", k ? ", " : "",
                                 em->class_names ? em->class_names[k] : "");
    if (!em->class_names) snprintf(buf, n, "0..%d", em->info.classes - 1);
}

/* --class SPEC of a conditional model: its index, or -2 for "all". */
static enum gen_status class_of(const struct gen_model *em, const char *spec, int *k) {
    if (!strcmp(spec, "all")) {
        *k = -2;
        return GEN_OK;
    }
    *k = gen_class_find(em->class_names, em->info.classes, spec);
    if (*k >= 0) return GEN_OK;
    char names[1024];
    class_list(em, names, sizeof names);
    return gen_error(GEN_ERR_USAGE, "--class '%s': not a class of this model (%s, or all)", spec,
                     names);
}

/* The classes a sample command asks for (k: -1 none, -2 all, else one):
 * --class, and --per-class N (all classes unless --class names one), which
 * writes a folder. */
static enum gen_status class_of_options(const struct gen_model *em, const char *cls, int64_t per,
                                        const char *out, int *k) {
    *k = -1;
    if (!cls && !per) return GEN_OK;
    if (em->info.classes == 0)
        return gen_error(GEN_ERR_USAGE, "--%s: this model is unconditional (train it with "
                                        "--conditional)", cls ? "class" : "per-class");
    if (per && !gen_output_is_folder(out))
        return gen_error(GEN_ERR_USAGE, "--per-class writes DIR/CLASS/NNNNN.png: give -o a folder "
                                        "ending in '/', got '%s'", out);
    return class_of(em, cls ? cls : "all", k);
}

/* The classes of a result for --json: {"class": NAME} or {"rows": [...]}. */
static cJSON *class_json(const struct gen_model *em, int k, cJSON *o) {
    if (k == -1) return o;
    if (!o) o = cJSON_CreateObject();
    char name[512];
    if (k >= 0) {
        gen_class_dirname(em->class_names, k, name, sizeof name);
        cJSON_AddStringToObject(o, "class", em->class_names ? em->class_names[k] : name);
        return o;
    }
    cJSON *rows = cJSON_AddArrayToObject(o, "classes");
    for (int c = 0; c < em->info.classes; c++) {
        gen_class_dirname(em->class_names, c, name, sizeof name);
        cJSON_AddItemToArray(rows, cJSON_CreateString(em->class_names ? em->class_names[c] : name));
    }
    return o;
}

/* Seed of part `part` of class k's images in a long run of generation. */
static uint64_t part_seed(uint64_t seed, int k, int64_t part) {
    struct gen_rng r;
    gen_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(k + 1)) ^
                         (0xbf58476d1ce4e5b9ull * (uint64_t)(part + 1)));
    return gen_rng_next(&r);
}

/* n images of the model (labels: their classes, or NULL), with the
 * weights sampling uses; the caller frees res->images. */
static enum gen_status generate_images(struct gen_model *em, const struct gen_config *opts,
                                       int64_t n, uint64_t seed, int64_t first,
                                       const int32_t *labels, struct gen_runlog *bar,
                                       struct gen_output *res) {
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    struct gen_request req = {.n = n,
                              .seed = seed,
                              .first = first,
                              .labels = labels,
                              .progress = bar ? draw_progress : NULL,
                              .progress_arg = bar};
    const int ema = gen_model_ema_use(em, opts);
    enum gen_status st = em->fam->generate(em->m, &g, opts, &req, res);
    gen_model_ema_restore(em, ema);
    gen_ctx_free(&g);
    if (st == GEN_OK && res->n_images != n)
        st = gen_error(GEN_ERR_RUNTIME, "%s: generated %lld images, not %lld", em->fam->name,
                       (long long)res->n_images, (long long)n);
    return st;
}

/* Images generated at once for a folder or a large request: a multiple
 * of the GAN's sampling batch, whose statistics then do not depend on
 * where a part starts. */
#define PART 512

/* Whether this rank makes part p of a request (parts go round the ranks). */
static int my_part(int64_t p) { return p % gen_comm_size() == gen_comm_rank(); }

/* n plain images (fam->plain) in parts of PART: part p by rank p % size,
 * image first + i of a part from (seed, first + i). dir: each rank writes
 * its parts as DIR/NNNNN.png; else all (n, C, H, W) gets every part, on
 * every rank. */
static enum gen_status generate_parts(struct gen_model *em, const struct gen_config *opts,
                                      int64_t n, uint64_t seed, const int32_t *labels,
                                      const char *dir, struct gen_runlog *bar, float *all) {
    const struct gen_data_shape *s = &em->shape;
    const int64_t D = (int64_t)s->c * s->h * s->w;
    enum gen_status st = GEN_OK;
    if (all) memset(all, 0, (size_t)(n * D) * sizeof *all);
    for (int64_t first = 0, p = 0; st == GEN_OK && first < n; first += PART, p++) {
        const int64_t b = n - first < PART ? n - first : PART;
        if (!my_part(p)) continue;
        struct gen_output res = {0};
        st = generate_images(em, opts, b, seed, first, labels ? labels + first : NULL, bar, &res);
        if (st == GEN_OK && (res.c != s->c || res.h != s->h || res.w != s->w))
            st = gen_error(GEN_ERR_RUNTIME, "%s: generated images of another shape", em->fam->name);
        if (st == GEN_OK && dir)
            st = gen_png_write_each_from(dir, "", first, res.images, (int)b, s->c, s->h, s->w, 0.0f, 1.0f);
        else if (st == GEN_OK)
            memcpy(all + first * D, res.images, (size_t)(b * D) * sizeof *all);
        gen_free(res.images);
    }
    if (st == GEN_OK && all) gen_comm_allreduce_f32(all, n * D); /* each image from one rank */
    if (st == GEN_OK && dir) gen_comm_barrier();
    return st;
}

/* --per-class N -o DIR/: N images of each class asked for (k, or -2:
 * all) in DIR/CLASS/NNNNN.png, generated PART at a time, the parts going
 * round the ranks. */
static enum gen_status sample_per_class(struct gen_model *em, const struct gen_config *opts,
                                        int k, int64_t per, const char *dir, int quiet,
                                        int64_t *written) {
    const uint64_t seed = (uint64_t)gen_opt_int(opts, &gen_sample_options[GEN_SAMPLE_SEED]);
    int32_t *labels = gen_alloc(PART * sizeof *labels);
    if (!labels) return gen_error(GEN_ERR_NOMEM, "out of memory");
    enum gen_status st = GEN_OK;
    const int K = em->info.classes;
    int64_t turn = 0; /* parts so far, over the classes */
    for (int c = k >= 0 ? k : 0; st == GEN_OK && c < (k >= 0 ? k + 1 : K); c++) {
        char name[512], path[4096];
        gen_class_dirname(em->class_names, c, name, sizeof name);
        snprintf(path, sizeof path, "%s%s/", dir, name);
        for (int64_t i = 0, part = 0; st == GEN_OK && i < per; i += PART, part++) {
            const int64_t b = per - i < PART ? per - i : PART;
            if (!my_part(turn++)) continue;
            for (int64_t j = 0; j < b; j++) labels[j] = c;
            struct gen_output res = {0};
            st = generate_images(em, opts, b, part_seed(seed, c, part), 0, labels, NULL, &res);
            if (st == GEN_OK)
                st = gen_png_write_each_from(path, "", i, res.images, (int)b, res.c, res.h, res.w,
                                             0.0f, 1.0f);
            gen_free(res.images);
            if (st == GEN_OK) *written += b;
            if (st == GEN_OK && !quiet)
                fprintf(stderr, "\r%s: %lld/%lld", path, (long long)(i + b), (long long)per);
        }
        if (st == GEN_OK && !quiet) fputc('\n', stderr);
    }
    gen_free(labels);
    if (st == GEN_OK && gen_comm_size() > 1) { /* every rank's images are written */
        double w = (double)*written;
        gen_comm_allreduce_f64(&w, 1);
        *written = (int64_t)w;
    }
    return st;
}

int gen_cmd_sample(const struct gen_family *fam, struct gen_config *opts, int json, int quiet) {
    const char *ckpt = gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_CKPT]);
    const char *out = gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_OUTPUT]);
    struct gen_model em = {0};
    struct gen_data d = {0};
    struct gen_ctx g;
    struct gen_output res = {0};
    struct gen_image_set mask = {0};
    int32_t *labels = NULL;
    enum gen_status st;
    int rc = 1;
    gen_ctx_init_eval(&g);
    if (set_precision(opts, quiet) != GEN_OK) return 1;
    if (!fam->generate) {
        gen_error(GEN_ERR_USAGE, "sample: %s models do not generate", fam->name);
        return 2;
    }
    /* Over MPI the ranks share plain sampling (rank 0 reports); anything
     * else (text, restoration, walks) is rank 0's alone. */
    const int plain = fam->plain && fam->plain(opts), root = gen_comm_rank() == 0;
    if (!root && (fam->data == GEN_DATA_TEXT || !plain)) return 0;
    if (!root) quiet = 1, json = 0;
    if (fam->data == GEN_DATA_TEXT) return gen_sample_text(fam, opts, json, quiet);
    if (!out) out = "samples.png";
    const char *inputs[4] = {ckpt, gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_INPUT]), mask_file(opts), NULL};
    if ((st = check_image_output(out)) != GEN_OK ||
        (st = gen_check_output(out, inputs, 3)) != GEN_OK) {
        rc = exit_code(st);
        goto done;
    }
    /* images of an earlier run killed mid-write (SIGKILL, the OOM killer): rank 0
     * removes them, at least a minute old, before this run writes its own */
    if (root && gen_output_is_folder(out) && gen_fs_kind(out) == GEN_FS_DIR)
        (void)gen_clean_stale_tmp_of(out, ".png", 60.0);
    if (gen_model_load(&em, fam, ckpt, GEN_CKPT_EMA, NULL) != GEN_OK) goto done;
    /* conditional models: --class NAME|INDEX|all, --per-class N */
    const char *cls = fam_str(opts, GEN_FAM_CLASS);
    const struct gen_config_entry *pce = gen_opt_get(opts, &gen_family_options[GEN_FAM_PER_CLASS]);
    const int64_t per = pce && pce->present ? pce->i : 0;
    int k = -1;
    if ((st = class_of_options(&em, cls, per, out, &k)) != GEN_OK) {
        rc = exit_code(st);
        goto done;
    }
    struct gen_dataset in = {0};
    const int need = fam->needs_inputs ? fam->needs_inputs(opts) : 0;
    if (need && k != -1) {
        gen_error(GEN_ERR_USAGE, "--class and --per-class draw new images; this mode works on input images");
        rc = 2;
        goto done;
    }
    if (need) {
        const char *input = gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_INPUT]);
        int clean = 1;
        const char *path = input && strncmp(input, "test:", 5) ? input : gen_model_data_path(opts, &em);
        inputs[3] = path;
        if ((st = gen_check_output(out, inputs, 4)) != GEN_OK) {
            rc = exit_code(st);
            goto done;
        }
        st = input ? load_input(&d, &em, opts, input, need, &clean) : gen_data_load_heldout(&d, &em, path);
        if (st != GEN_OK) {
            rc = exit_code(st);
            goto done;
        }
        gen_data_heldout(&d, &in);
        in.clean = clean;
    }
    if (inputs[2] && gen_image_file_load(inputs[2], 1, square_side(&em), &mask) != GEN_OK) goto done;
    const double t0 = gen_now();
    if (per) {
        int64_t written = 0;
        if ((st = sample_per_class(&em, opts, k, per, out, quiet, &written)) != GEN_OK) {
            rc = exit_code(st);
            goto done;
        }
        const double dt = gen_now() - t0;
        if (!quiet) fprintf(stderr, "wrote %lld images to %s (%.2f s)\n", (long long)written, out, dt);
        if (json) {
            const char *outs[1] = {out};
            const struct gen_field f[3] = {{"images", (double)written}, {"seconds", dt}, {"per_class", (double)per}};
            gen_print_result("sample", fam->name, outs, 1, f, 3, class_json(&em, k, NULL));
        }
        rc = 0;
        goto done;
    }
    /* --class K: n images of K; all: one row of n (default 8) per class */
    int64_t n = gen_opt_int(opts, &gen_sample_options[GEN_SAMPLE_NUM]), row = n;
    if (k == -2) {
        row = gen_opt_is_set(opts, &gen_sample_options[GEN_SAMPLE_NUM]) ? n : 8;
        n = row * em.info.classes;
    }
    if (k != -1 && !(labels = gen_alloc((size_t)n * sizeof *labels))) {
        gen_error(GEN_ERR_NOMEM, "out of memory for %lld labels", (long long)n);
        goto done;
    }
    for (int64_t i = 0; labels && i < n; i++) labels[i] = k >= 0 ? k : (int32_t)(i / row);
    struct gen_runlog bar;
    gen_runlog_open(&bar, NULL, 0, quiet);
    gen_runlog_set_items(&bar, 0, "step");
    struct gen_request req = {.n = n,
                              .seed = (uint64_t)gen_opt_int(opts, &gen_sample_options[GEN_SAMPLE_SEED]),
                              .labels = labels,
                              .inputs = need ? &in : NULL,
                              .mask = inputs[2] ? &mask : NULL,
                              .progress = draw_progress,
                              .progress_arg = &bar};
    const int to_dir = gen_output_is_folder(out);
    if (plain) { /* in parts, over the ranks: DIR/ written by each, a grid gathered */
        const int64_t D = (int64_t)em.shape.c * em.shape.h * em.shape.w;
        res = (struct gen_output){.n_images = n, .c = em.shape.c, .h = em.shape.h, .w = em.shape.w};
        if (!to_dir && !(res.images = gen_alloc((size_t)(n * D) * sizeof *res.images)))
            st = gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
        else
            st = generate_parts(&em, opts, n, req.seed, labels, to_dir ? out : NULL, &bar, res.images);
    } else {
        const int ema = gen_model_ema_use(&em, opts);
        st = fam->generate(em.m, &g, opts, &req, &res);
        gen_model_ema_restore(&em, ema);
    }
    gen_runlog_close(&bar);
    const double dt = gen_now() - t0;
    if (k == -2) res.cols = (int)row;
    if (st == GEN_OK && root && !(plain && to_dir))
        st = gen_write_images(out, res.images, res.n_images, res.c, res.h, res.w, res.cols);
    if (st != GEN_OK) {
        rc = exit_code(st);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "wrote %lld images to %s (%.2f s)\n", (long long)res.n_images, out, dt);
    if (json) {
        const char *outs[1] = {out};
        const struct gen_field f[3] = {{"images", (double)res.n_images},
                                       {"seconds", dt},
                                       {"images_per_s", dt > 0 ? (double)res.n_images / dt : 0}};
        gen_print_result("sample", fam->name, outs, 1, f, 3, class_json(&em, k, NULL));
    }
    rc = 0;
done:
    gen_free(labels);
    gen_free(res.images);
    gen_image_set_free(&mask);
    gen_ctx_free(&g);
    gen_data_free(&d);
    gen_model_free(&em);
    return rc;
}

/* ---- eval ---- */


/* What gen_eval_images samples: a model and the eval options (sampler,
 * guidance, --no-ema) its generate verb reads. */
struct eval_source {
    struct gen_model *em;
    const struct gen_config *opts;
};

static enum gen_status eval_generate(void *arg, int64_t n, uint64_t seed, const int32_t *labels,
                                     float *out) {
    const struct eval_source *src = arg;
    struct gen_output res = {0};
    enum gen_status st = generate_images(src->em, src->opts, n, seed, 0, labels, NULL, &res);
    if (st == GEN_OK) memcpy(out, res.images, (size_t)(n * res.c * res.h * res.w) * sizeof(float));
    gen_free(res.images);
    return st;
}

/* ---- the guidance trade-off ---- */

#define MAX_GUIDANCE 16

/* --guidance "0,1,2,4": the values (1..MAX_GUIDANCE of them). */
static enum gen_status guidance_list(const char *spec, double *w, int *n) {
    const char *p = spec;
    *n = 0;
    for (;;) {
        char *end;
        const double v = strtod(p, &end);
        if (end == p || !(v >= 0 && v <= 100) || (*end && *end != ',') || *n == MAX_GUIDANCE)
            return gen_error(GEN_ERR_USAGE,
                             "--guidance: expected up to %d numbers in 0..100 separated by commas, "
                             "got '%s'",
                             MAX_GUIDANCE, spec);
        w[(*n)++] = v;
        if (!*end) return GEN_OK;
        p = end + 1;
    }
}

/* The result of one guidance value. */
struct guided {
    double w, fid, accuracy;
    struct gen_class_scores cs;
};

static cJSON *guided_json(const struct guided *r, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "guidance", r[i].w);
        cJSON_AddNumberToObject(o, "fid", r[i].fid);
        cJSON_AddNumberToObject(o, "class_accuracy", r[i].accuracy);
        cJSON *cls = cJSON_AddArrayToObject(o, "classes");
        for (int k = 0; k < r[i].cs.K; k++) {
            if (!r[i].cs.count[k]) continue;
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "name", r[i].cs.names[k]);
            cJSON_AddNumberToObject(c, "images", (double)r[i].cs.count[k]);
            cJSON_AddNumberToObject(c, "accuracy", r[i].cs.acc[k]);
            cJSON_AddNumberToObject(c, "fid", r[i].cs.fid[k]); /* NaN: null */
            cJSON_AddItemToArray(cls, c);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* FID against class accuracy, one labelled point per guidance value. */
static enum gen_status guidance_plot(const char *png, const struct guided *r, int n,
                                     const char *title) {
    double x[MAX_GUIDANCE], y[MAX_GUIDANCE];
    char text[MAX_GUIDANCE][32];
    const char *labels[MAX_GUIDANCE];
    for (int i = 0; i < n; i++) {
        x[i] = 100 * r[i].accuracy, y[i] = r[i].fid;
        snprintf(text[i], sizeof text[i], "w=%g", r[i].w);
        labels[i] = text[i];
    }
    const struct gen_plot_series s = {.name = "guidance w", .n = n, .x = x, .y = y, .labels = labels};
    return gen_plot_xy(png, title, "class accuracy %", "FID", &s, 1);
}

/* Sample quality of a model that generates images; a conditional model
 * once per --guidance value (when its family has that option), with the
 * trade-off table and plot. Returns an exit code; *extra gets the JSON of
 * the guidance runs. */
static int eval_samples(struct gen_model *em, struct gen_config *opts, const char *ckpt,
                        int quiet, struct gen_metrics *mt, cJSON **extra) {
    struct eval_source es = {em, opts};
    const struct gen_eval_source src = {eval_generate, &es, em->shape.c, em->shape.h, em->shape.w,
                                        em->info.classes, em->class_names};
    const char *spec = em->info.classes ? fam_str(opts, GEN_FAM_GUIDANCE) : NULL;
    double w[MAX_GUIDANCE];
    int n = 0;
    if (!spec) {
        struct gen_class_scores cs = {0};
        int rc = gen_eval_images(opts, em->fam->name, quiet, &src, mt, &cs);
        gen_class_scores_free(&cs);
        return rc;
    }
    enum gen_status st = guidance_list(spec, w, &n);
    if (st != GEN_OK) return 2;
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_EVAL, em->fam, tables);
    struct guided r[MAX_GUIDANCE] = {{0}};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char v[32];
        snprintf(v, sizeof v, "%g", w[i]);
        if (gen_config_set(opts, tables, gen_family_options[GEN_FAM_GUIDANCE].name, v) != GEN_OK)
            return 2;
        if (!quiet) fprintf(stderr, "guidance %s\n", v);
        struct gen_metrics one = {0};
        rc = gen_eval_images(opts, em->fam->name, quiet, &src, i == 0 ? mt : &one, &r[i].cs);
        const struct gen_metrics *got = i == 0 ? mt : &one;
        r[i].w = w[i];
        for (int k = 0; k < got->n; k++) {
            if (!strcmp(got->f[k].name, "fid")) r[i].fid = got->f[k].value;
            if (!strcmp(got->f[k].name, "class_accuracy")) r[i].accuracy = got->f[k].value;
        }
    }
    if (rc == 0 && mt->n < GEN_MAX_FIELDS) mt->f[mt->n++] = (struct gen_field){"guidance", w[0]};
    if (rc == 0 && n > 1 && gen_comm_rank() == 0) {
        if (!quiet) {
            fprintf(stderr, "guidance trade-off (%s):\n  %8s %10s %10s\n", ckpt, "w",
                    "accuracy", "FID");
            for (int i = 0; i < n; i++)
                fprintf(stderr, "  %8g %10.3f %10.3f\n", r[i].w, r[i].accuracy, r[i].fid);
        }
        char png[4200];
        const char *plot = fam_str(opts, GEN_FAM_PLOT);
        if (!plot) {
            const char *slash = strrchr(ckpt, '/');
            snprintf(png, sizeof png, "%.*sguidance.png", slash ? (int)(slash - ckpt + 1) : 0, ckpt);
            plot = png;
        }
        if (guidance_plot(plot, r, n, ckpt) != GEN_OK) rc = 1;
        else if (!quiet) fprintf(stderr, "plot: %s\n", plot);
    }
    if (rc == 0) {
        *extra = cJSON_CreateObject();
        cJSON_AddItemToObject(*extra, "guidance", guided_json(r, n));
    }
    for (int i = 0; i < n; i++) gen_class_scores_free(&r[i].cs);
    return rc;
}

static enum gen_status write_scores(const char *path, const struct gen_metrics *mt,
                                    const struct gen_data *d) {
    FILE *f = fopen(path, "w");
    if (!f) return gen_error(GEN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "index%s", d->kind == GEN_DATA_IMAGES ? ",label" : "");
    for (int k = 0; k < mt->n_scores; k++) fprintf(f, ",%s", mt->score_names[k]);
    fputc('\n', f);
    for (int64_t i = 0; i < mt->n_examples; i++) {
        fprintf(f, "%lld", (long long)i);
        if (d->kind == GEN_DATA_IMAGES) fprintf(f, ",%d", (int)d->test.labels[i]);
        for (int k = 0; k < mt->n_scores; k++) fprintf(f, ",%.4f", mt->scores[i * mt->n_scores + k]);
        fputc('\n', f);
    }
    return gen_fs_fclose_written(f, path);
}

int gen_cmd_eval(const struct gen_family *fam, struct gen_config *opts, int json, int quiet) {
    /* Over MPI the ranks share the generation of sample-quality scores
     * (gen_eval_images); everything else is rank 0's alone. */
    const int root = gen_comm_rank() == 0;
    if (set_precision(opts, quiet || !root) != GEN_OK) return 1;
    const int samples_only = gen_opt_get(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_SAMPLES]) && gen_opt_str(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_SAMPLES]);
    if (!root && (samples_only || gen_opt_str(opts, &gen_eval_options[GEN_EVAL_OOD]) ||
                  gen_opt_str(opts, &gen_eval_options[GEN_EVAL_ROC]) || gen_eval_restores(opts)))
        return 0;
    if (!root) quiet = 1, json = 0;
    if (gen_opt_str(opts, &gen_eval_options[GEN_EVAL_OOD]) || gen_opt_str(opts, &gen_eval_options[GEN_EVAL_ROC]))
        return gen_cmd_eval_ood(fam, opts, json, quiet); /* anomaly detection: src/cli/detect.c */
    if (gen_eval_restores(opts))
        return gen_cmd_eval_restore(fam, opts, json, quiet); /* restoration: src/cli/restore.c */
    const char *ckpt = gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_CKPT]);
    const char *per_sample = gen_opt_get(opts, &gen_family_options[GEN_FAM_PER_SAMPLE]) ? gen_opt_str(opts, &gen_family_options[GEN_FAM_PER_SAMPLE]) : NULL;
    struct gen_model em = {0};
    struct gen_data d = {0};
    struct gen_metrics mt = {0};
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    cJSON *extra = NULL;
    int rc = 1;
    if (samples_only) {
        /* A folder of images scored against real data; no model needed. */
        struct gen_class_scores cs = {0};
        rc = gen_eval_images(opts, fam->name, quiet, NULL, &mt, &cs);
        if (rc == 0 && cs.K) {
            struct guided one = {.fid = NAN, .accuracy = cs.accuracy, .cs = cs};
            for (int k = 0; k < mt.n; k++)
                if (!strcmp(mt.f[k].name, "fid")) one.fid = mt.f[k].value;
            extra = cJSON_CreateObject();
            cJSON_AddItemToObject(extra, "by_class", guided_json(&one, 1));
        }
        gen_class_scores_free(&cs);
        goto report;
    }
    if (gen_model_load(&em, fam, ckpt, GEN_CKPT_EMA, NULL) != GEN_OK) goto done;
    const char *path = gen_model_data_path(opts, &em);
    /* Scores are of the weights sampling uses: the EMA when there is one. */
    const int ema = gen_model_ema_use(&em, opts);
    if (fam->evaluate && root) {
        if (gen_data_load_heldout(&d, &em, path) != GEN_OK || relabel(&d.test, &em, path) != GEN_OK)
            goto done;
        struct gen_dataset held;
        gen_data_heldout(&d, &held);
        if (fam->evaluate(em.m, &g, opts, &held, &mt) != GEN_OK) goto done;
        if (per_sample && mt.scores && write_scores(per_sample, &mt, &d) != GEN_OK) goto done;
        if (gen_eval_log(ckpt, mt.f, mt.n) != GEN_OK)
            fprintf(stderr, "gen: warning: %s\n", gen_last_error());
        if (!quiet) {
            fprintf(stderr, "%s %s on %s\n", fam->name, ckpt, d.path);
            for (int i = 0; i < mt.n; i++) fprintf(stderr, "  %-24s %12.4f\n", mt.f[i].name, mt.f[i].value);
            if (per_sample && mt.scores) fprintf(stderr, "  per-example scores in %s\n", per_sample);
        }
    }
    /* Sample quality in the classifier's feature space, when asked for. */
    const struct gen_config_entry *clf = gen_opt_get(opts, &gen_eval_image_options[GEN_EVAL_IMAGE_CLASSIFIER]);
    if (fam->generate && em.shape.kind == GEN_DATA_IMAGES && clf && (clf->set || !fam->evaluate)) {
        gen_config_default_str(opts, gen_eval_options[GEN_EVAL_DATA].name, path); /* real images: the model's data */
        rc = eval_samples(&em, opts, ckpt, quiet, &mt, &extra);
        if (rc != 0) goto done;
    }
    gen_model_ema_restore(&em, ema);
report:
    if (rc != 0 && samples_only) goto done;
    if (json) {
        const char *outs[1] = {per_sample};
        gen_print_result("eval", fam->name, outs, per_sample ? 1 : 0, mt.f, mt.n, extra);
        extra = NULL;
    }
    rc = 0;
done:
    cJSON_Delete(extra);
    gen_free(mt.scores);
    gen_ctx_free(&g);
    gen_data_free(&d);
    gen_model_free(&em);
    return rc;
}
