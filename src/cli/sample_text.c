/* sample_text.c - `gen sample` for a text family: the prompt (--prompt or
 * --prompt-file) in the model's vocabulary, the samples written in order
 * to stdout or -o as the family emits their tokens (as drawn, or a round
 * of samples at a time where the threads take a sample each), or (--json
 * without -o) collected into the result object as valid UTF-8. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "io/fs.h"

/* The longest --prompt-file: the model reads only the last context of a
 * prompt, and all of it is echoed before the sample, so a larger file is
 * a mistake (it had been read whole, up to the 8 GiB of a text data set,
 * with four bytes of ids a byte). */
#define PROMPT_MAX_BYTES ((int64_t)16 << 20)

struct prompt {
    struct gen_text file;
    const uint8_t *bytes;
    int64_t n;
    int32_t *ids; /* (max(n, 1)) */
    int64_t n_ids;
};

/* Reads --prompt or --prompt-file and maps it to token ids; no prompt
 * gives the start token alone (a line break, or the first symbol; not
 * printed). */
static enum gen_status read_prompt(const struct gen_config *cfg, const struct gen_vocab *voc,
                                   struct prompt *p) {
    const char *text = gen_opt_str(cfg, &gen_family_options[GEN_FAM_PROMPT]), *file = gen_opt_str(cfg, &gen_family_options[GEN_FAM_PROMPT_FILE]);
    if (text && file) return gen_error(GEN_ERR_USAGE, "--prompt and --prompt-file cannot be used together");
    if (file) {
        /* an empty file is no prompt, as --prompt "" is */
        enum gen_status st = gen_fs_read(file, PROMPT_MAX_BYTES, &p->file.bytes, &p->file.n);
        if (st != GEN_OK) return st;
        p->bytes = p->file.bytes, p->n = p->file.n;
    } else if (text) {
        p->bytes = (const uint8_t *)text, p->n = (int64_t)strlen(text);
    }
    p->ids = gen_alloc((size_t)(p->n > 0 ? p->n : 1) * sizeof *p->ids);
    if (!p->ids) return gen_error(GEN_ERR_NOMEM, "out of memory for the prompt");
    if (p->n == 0) {
        p->ids[0] = voc->id['\n'] >= 0 ? voc->id['\n'] : 0;
        p->n_ids = 1;
        return GEN_OK;
    }
    const int64_t bad = gen_vocab_encode(voc, p->bytes, p->n, p->ids, &p->n_ids);
    if (bad >= 0) {
        char name[64];
        gen_vocab_symbol_name(voc, p->bytes + bad, p->n - bad, name, sizeof name);
        return gen_error(file ? GEN_ERR_FORMAT : GEN_ERR_USAGE,
                         "%s: the %s at byte offset %lld is not in the model's vocabulary",
                         file ? file : "--prompt", name, (long long)bad);
    }
    return GEN_OK;
}

/* A copy of bytes[0..n) for a JSON string: valid UTF-8 kept, any other
 * byte (and NUL) replaced by U+FFFD. Caller frees; NULL without memory. */
static char *valid_utf8(const char *bytes, size_t n) {
    const uint8_t *s = (const uint8_t *)bytes;
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const size_t k = s[i] ? (size_t)gen_utf8_decode(s + i, (int64_t)(n - i), &cp) : 0;
        if (k) {
            memcpy(o, s + i, k);
            o += k, i += k;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    *o = 0;
    return out;
}

struct sink {
    const struct gen_vocab *voc;
    const struct prompt *pr;
    FILE *out;    /* stdout or -o's file */
    FILE *f;      /* the sample's text: out, or (collect) a memory stream; NULL: lost */
    int flush;    /* a terminal or pipe sees each token as it comes */
    cJSON *texts; /* collect: the samples' texts, valid UTF-8 */
    char *buf;    /* the memory stream's text */
    size_t buf_size;
    int64_t at; /* the sample being written (-1: none yet) */
    int lost;   /* collect: no memory for a sample's text */
};

/* A token's symbol: a byte, or a whole character. */
static void emit_symbol(int32_t tok, void *arg) {
    const struct sink *s = arg;
    uint8_t sym[4];
    if (!s->f) return;
    fwrite(sym, 1, (size_t)gen_vocab_symbol(s->voc, tok, sym), s->f);
    if (s->flush && fflush(s->f) != 0) gen_stdout_failed(errno, NULL);
}

/* The sample being written is whole: into the JSON texts, or followed by
 * its line break (`last`: one, else a blank line before the next). */
static void end_sample(struct sink *s, int last) {
    if (s->at < 0) return;
    if (!s->texts) {
        fputs(last ? "\n" : "\n\n", s->out);
        if (s->out == stdout && fflush(stdout) != 0) gen_stdout_failed(errno, NULL);
        return;
    }
    if (!s->f) return;
    fclose(s->f);
    s->f = NULL;
    char *text = valid_utf8(s->buf, s->buf_size);
    cJSON_AddItemToArray(s->texts, cJSON_CreateString(text ? text : ""));
    free(text);
    free(s->buf);
    s->buf = NULL;
}

/* Before sample i's tokens (the samples come in order): the one before it
 * ended, and sample i begun with the prompt. */
static void start_sample(int64_t i, void *arg) {
    struct sink *s = arg;
    end_sample(s, 0);
    s->at = i;
    if (s->texts && !(s->f = open_memstream(&s->buf, &s->buf_size))) s->lost = 1;
    if (!s->texts) s->f = s->out;
    if (s->f && s->pr->n) fwrite(s->pr->bytes, 1, (size_t)s->pr->n, s->f);
}

int gen_sample_text(const struct gen_family *fam, const struct gen_config *opts, int json,
                    int quiet) {
    const char *ckpt = gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_CKPT]), *path = gen_opt_str(opts, &gen_sample_options[GEN_SAMPLE_OUTPUT]);
    if (path && !strcmp(path, "-")) path = NULL; /* -o -: standard output, as without -o */
    struct gen_model em = {0};
    struct prompt pr = {0};
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    FILE *out = stdout;
    cJSON *texts = NULL;
    int rc = 1;
    enum gen_status st;
    /* Decoding runs on the threads --threads gives (by default every
     * core, as for the other commands): they share each sample's tokens,
     * or take a sample each (--share), and a timed trial keeps a shared
     * decode on one thread where that is faster (docs/DESIGN.md,
     * "Decoding"). The family calls start and emit on this thread, the
     * samples in order. */
    const char *inputs[2] = {ckpt, gen_opt_str(opts, &gen_family_options[GEN_FAM_PROMPT_FILE])};
    if (path && (st = gen_check_output(path, inputs, 2)) != GEN_OK) {
        rc = 2;
        goto done;
    }
    if (gen_model_load(&em, fam, ckpt, GEN_CKPT_EMA, NULL) != GEN_OK) goto done;
    if ((st = read_prompt(opts, &em.vocab, &pr)) != GEN_OK) {
        rc = st == GEN_ERR_USAGE ? 2 : 1;
        goto done;
    }
    if (path && !(out = fopen(path, "wb"))) {
        gen_error(GEN_ERR_IO, "%s: cannot create", path);
        out = stdout;
        goto done;
    }
    const int64_t n = gen_opt_int(opts, &gen_sample_options[GEN_SAMPLE_NUM]), length = gen_opt_int(opts, &gen_family_options[GEN_FAM_LENGTH]);
    const int collect = json && !path; /* the texts go into the JSON object */
    if (collect) texts = cJSON_CreateArray();
    struct sink sink = {.voc = &em.vocab,
                        .pr = &pr,
                        .out = out,
                        .flush = !collect && out == stdout,
                        .texts = texts,
                        .at = -1};
    /* Sample i has its own stream (seed + i), so -n does not change sample 0. */
    struct gen_request req = {.n = length,
                              .samples = n,
                              .seed =
                                  (uint64_t)gen_opt_int(opts, &gen_sample_options[GEN_SAMPLE_SEED]),
                              .prompt = pr.ids,
                              .n_prompt = pr.n_ids,
                              .emit = emit_symbol,
                              .start = start_sample,
                              .emit_arg = &sink};
    struct gen_output res = {0};
    const double t0 = gen_now();
    const int ema = gen_model_ema_use(&em, opts);
    st = fam->generate(em.m, &g, opts, &req, &res);
    gen_model_ema_restore(&em, ema);
    const double total_s = gen_now() - t0;
    const int64_t tokens = res.n_tokens, at_once = res.at_once > 1 ? res.at_once : 1;
    gen_ctx_reset(&g);
    end_sample(&sink, 1);
    if (sink.lost) {
        gen_error(GEN_ERR_NOMEM, "out of memory for the sample text");
        goto done;
    }
    if (st != GEN_OK) goto done;
    if (out != stdout) { /* the file whole before it is said to be written */
        FILE *f = out;
        out = stdout;
        if (gen_fs_fclose_written(f, path) != GEN_OK) goto done;
    }
    const double rate = total_s > 0 ? (double)tokens / total_s : 0;
    char once[64] = ""; /* the threads took a sample each */
    if (at_once > 1)
        snprintf(once, sizeof once, "; after the first, %lld at a time", (long long)at_once);
    if (!quiet && (path || !ferror(stdout))) /* else gen_stdout_failed has said it */
        fprintf(stderr, "%s: %lld samples, %lld tokens in %.2f s (%.0f tokens/s%s)%s%s\n",
                fam->name, (long long)n, (long long)tokens, total_s, rate, once,
                path ? "; wrote " : "", path ? path : "");
    if (json) {
        const char *outs[1] = {path};
        const struct gen_field f[4] = {{"tokens", (double)tokens},
                                       {"tokens_per_s", rate},
                                       {"threads", (double)gen_threads()},
                                       {"samples_at_once", (double)at_once}};
        cJSON *extra = NULL;
        if (texts) {
            extra = cJSON_CreateObject();
            cJSON_AddItemToObject(extra, "samples", texts);
            texts = NULL;
        }
        gen_print_result("sample", fam->name, outs, path ? 1 : 0, f, 4, extra);
    }
    rc = 0;
done:
    if (out != stdout) fclose(out); /* after a failure, said already */
    cJSON_Delete(texts);
    gen_text_free(&pr.file);
    gen_free(pr.ids);
    gen_ctx_free(&g);
    gen_model_free(&em);
    return rc;
}
