/* sample_text.c - `gen sample` for a text family: the prompt (--prompt or
 * --prompt-file) in the model's vocabulary, each sample streamed to
 * stdout or -o as it is drawn, or (--json without -o) collected into the
 * result object as valid UTF-8. */
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
    FILE *f;
    int flush; /* a terminal or pipe sees each token as it comes */
};

/* A token's symbol: a byte, or a whole character. */
static void emit_symbol(int32_t tok, void *arg) {
    const struct sink *s = arg;
    uint8_t sym[4];
    fwrite(sym, 1, (size_t)gen_vocab_symbol(s->voc, tok, sym), s->f);
    if (s->flush && fflush(s->f) != 0) gen_stdout_failed(errno, NULL);
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
    char *buf = NULL;
    size_t buf_size = 0;
    cJSON *texts = NULL;
    int rc = 1;
    enum gen_status st;
    /* Decoding runs on the threads --threads gives (by default every
     * core, as for the other commands): the threads meet about 16 times a
     * token, and where a peer is descheduled (a busy host) or one core
     * alone is as fast (the Zen 5 VM), gen_parallel_tuned's timed trial
     * keeps the decode on one thread (docs/DESIGN.md). Until 2026-12-06
     * sampling took one thread unless asked for more, from before that
     * trial: on the Sapphire Rapids VM a third of two threads' rate. */
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
    double total_s = 0;
    int64_t tokens = 0;
    for (int64_t i = 0; i < n; i++) {
        FILE *f = out;
        if (collect && !(f = open_memstream(&buf, &buf_size))) {
            gen_error(GEN_ERR_NOMEM, "out of memory for the sample text");
            goto done;
        }
        struct sink sink = {&em.vocab, f, f == stdout};
        if (pr.n) fwrite(pr.bytes, 1, (size_t)pr.n, f);
        /* Sample i has its own stream, so -n does not change sample 0. */
        struct gen_request req = {.n = length,
                                  .seed = (uint64_t)gen_opt_int(opts, &gen_sample_options[GEN_SAMPLE_SEED]) + (uint64_t)i,
                                  .prompt = pr.ids,
                                  .n_prompt = pr.n_ids,
                                  .emit = emit_symbol,
                                  .emit_arg = &sink};
        struct gen_output res = {0};
        const double t0 = gen_now();
        const int ema = gen_model_ema_use(&em, opts);
        st = fam->generate(em.m, &g, opts, &req, &res);
        gen_model_ema_restore(&em, ema);
        total_s += gen_now() - t0;
        tokens += res.n_tokens;
        gen_ctx_reset(&g);
        if (collect) {
            fclose(f);
            char *text = valid_utf8(buf, buf_size);
            cJSON_AddItemToArray(texts, cJSON_CreateString(text ? text : ""));
            free(text);
            free(buf);
            buf = NULL;
        } else {
            fputs(i + 1 < n ? "\n\n" : "\n", out);
            if (out == stdout && fflush(out) != 0) gen_stdout_failed(errno, NULL);
        }
        if (st != GEN_OK) goto done;
    }
    if (out != stdout) { /* the file whole before it is said to be written */
        FILE *f = out;
        out = stdout;
        if (gen_fs_fclose_written(f, path) != GEN_OK) goto done;
    }
    const double rate = total_s > 0 ? (double)tokens / total_s : 0;
    if (!quiet && (path || !ferror(stdout))) /* else gen_stdout_failed has said it */
        fprintf(stderr, "%s: %lld samples, %lld tokens in %.2f s (%.0f tokens/s)%s%s\n", fam->name,
                (long long)n, (long long)tokens, total_s, rate, path ? "; wrote " : "",
                path ? path : "");
    if (json) {
        const char *outs[1] = {path};
        const struct gen_field f[3] = {{"tokens", (double)tokens},
                                       {"tokens_per_s", rate},
                                       {"threads", (double)gen_threads()}};
        cJSON *extra = NULL;
        if (texts) {
            extra = cJSON_CreateObject();
            cJSON_AddItemToObject(extra, "samples", texts);
            texts = NULL;
        }
        gen_print_result("sample", fam->name, outs, path ? 1 : 0, f, 3, extra);
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
