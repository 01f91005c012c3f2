/* data.c - the data a family trains and evaluates on, loaded once for
 * every family (see engine.h): image sets with a test split, or a text
 * corpus whose first 90 % trains and last 10 % validates. */
#include <stdio.h>
#include <string.h>

#include "cli/engine.h"

/* The first 90 % of n tokens train, the rest validates. */
static int64_t train_split(int64_t n) { return n / 10 * 9 + n % 10 * 9 / 10; }

static enum gen_status load_text(struct gen_data *d, const struct gen_vocab *vocab,
                                 const char *tokenizer) {
    enum gen_status st = gen_text_load(d->path, &d->text);
    if (st != GEN_OK) return st; /* gen_data_load found it: a bad file */
    if (vocab) {
        d->vocab = *vocab;
    } else if (tokenizer && !strcmp(tokenizer, "char")) {
        if (gen_vocab_of_text(&d->vocab, d->text.bytes, d->text.n) != GEN_OK)
            return gen_error(GEN_ERR_FORMAT, "%s: %s", d->path, gen_last_error());
        d->utf8_fallback = d->text.bad_path != NULL;
    } else {
        gen_vocab_bytes(&d->vocab);
    }
    d->tokens = gen_alloc((size_t)d->text.n * sizeof *d->tokens);
    if (!d->tokens) return gen_error(GEN_ERR_NOMEM, "%s: out of memory for the tokens", d->path);
    int64_t bad = gen_vocab_encode(&d->vocab, d->text.bytes, d->text.n, d->tokens, &d->n_tokens);
    if (bad >= 0) {
        char name[64];
        return gen_error(GEN_ERR_FORMAT,
                         "%s: the %s at byte %lld is not in the model's vocabulary (trained on "
                         "other text?)",
                         d->path,
                         gen_vocab_symbol_name(&d->vocab, d->text.bytes + bad, d->text.n - bad,
                                               name, sizeof name),
                         (long long)bad);
    }
    d->n_train = train_split(d->n_tokens);
    return GEN_OK;
}

/* "1.1 MB": n bytes in decimal units. */
static void human_bytes(int64_t n, char *buf, size_t size) {
    static const char *const unit[] = {"kB", "MB", "GB", "TB"};
    if (n < 1000) {
        snprintf(buf, size, "%lld bytes", (long long)n);
        return;
    }
    double v = (double)n / 1000;
    int u = 0;
    while (v >= 999.95 && u < 3) v /= 1000, u++;
    snprintf(buf, size, "%.1f %s", v, unit[u]);
}

void gen_data_announce(const struct gen_data *d, int quiet) {
    if (d->kind != GEN_DATA_TEXT) return;
    if (!quiet) {
        char size[32];
        human_bytes(d->text.n, size, sizeof size);
        fprintf(stderr, "%s: %lld file%s, %s\n", d->path, (long long)d->text.files,
                d->text.files == 1 ? "" : "s", size);
    }
    if (d->utf8_fallback)
        fprintf(stderr,
                "gen: warning: %s: not valid UTF-8 (byte offset %lld); --tokenizer char keeps "
                "each byte that is not part of a valid character as a symbol of its own\n",
                d->text.bad_path, (long long)d->text.bad_offset);
}

enum gen_status gen_data_load(struct gen_data *d, enum gen_data_kind kind, const char *path,
                              int which, int channels, int size, const struct gen_vocab *vocab,
                              const char *tokenizer) {
    memset(d, 0, sizeof *d);
    d->kind = kind;
    enum gen_status st = gen_data_find(path, d->where, sizeof d->where);
    if (st != GEN_OK) return st;
    d->path = path = d->where;
    if (kind == GEN_DATA_TEXT) return load_text(d, vocab, tokenizer);
    if (which & GEN_DATA_TRAIN) st = gen_images_load(path, GEN_SPLIT_TRAIN, channels, size, &d->train);
    if (st == GEN_OK && (which & GEN_DATA_TEST))
        st = gen_images_load(path, GEN_SPLIT_TEST, channels, size, &d->test);
    if (st == GEN_OK && which == (GEN_DATA_TRAIN | GEN_DATA_TEST) &&
        (d->test.c != d->train.c || d->test.h != d->train.h || d->test.w != d->train.w))
        st = gen_error(GEN_ERR_FORMAT, "%s: test images are %dx%dx%d but training images %dx%dx%d",
                       path, d->test.c, d->test.h, d->test.w, d->train.c, d->train.h, d->train.w);
    return st;
}

void gen_data_free(struct gen_data *d) {
    gen_image_set_free(&d->train);
    gen_image_set_free(&d->test);
    gen_text_free(&d->text);
    gen_free(d->tokens);
    memset(d, 0, sizeof *d);
}

void gen_data_shape_of(const struct gen_data *d, struct gen_data_shape *s) {
    memset(s, 0, sizeof *s);
    s->kind = d->kind;
    if (d->kind == GEN_DATA_TEXT) {
        s->vocab = d->vocab.V;
        return;
    }
    const struct gen_image_set *set = d->train.n ? &d->train : &d->test;
    s->c = set->c, s->h = set->h, s->w = set->w;
    s->n_classes = set->n_classes;
}

void gen_data_heldout(const struct gen_data *d, struct gen_dataset *out) {
    memset(out, 0, sizeof *out);
    out->kind = d->kind;
    if (d->kind == GEN_DATA_TEXT) {
        out->tokens = d->tokens + d->n_train;
        out->n_tokens = d->n_tokens - d->n_train;
    } else {
        out->images = &d->test;
    }
}

const char *gen_model_data_path(const struct gen_config *opts, const struct gen_model *em) {
    const struct gen_config_entry *e = gen_opt_get(opts, &gen_sample_options[GEN_SAMPLE_DATA]);
    if (e && e->set && e->s[0]) return e->s;
    return gen_opt_str(&em->cfg, &gen_train_options[GEN_TRAIN_DATA]);
}

void gen_model_data_options(const struct gen_config *cfg, int *channels, int *size) {
    const struct gen_config_entry *c = gen_opt_get(cfg, &gen_family_options[GEN_FAM_CHANNELS]);
    const struct gen_config_entry *s = gen_opt_get(cfg, &gen_family_options[GEN_FAM_IMAGE_SIZE]);
    *channels = c && c->present ? (int)c->i : 0;
    *size = s && s->present ? (int)s->i : 0;
}

enum gen_status gen_data_shape_check(const struct gen_data *d, const struct gen_data_shape *want,
                                     const char *model) {
    if (d->kind != GEN_DATA_IMAGES) return GEN_OK;
    const struct gen_image_set *set = d->train.n ? &d->train : &d->test;
    if (set->c == want->c && set->h == want->h && set->w == want->w) return GEN_OK;
    return gen_error(GEN_ERR_FORMAT,
                     "%s: images are %dx%dx%d (channels x height x width), but %s was trained on "
                     "%dx%dx%d; data is never resized to fit a model (give data of that shape)",
                     d->path, set->c, set->h, set->w, model, want->c, want->h, want->w);
}

enum gen_status gen_data_load_heldout(struct gen_data *d, const struct gen_model *em,
                                      const char *path) {
    int channels = 0, size = 0;
    if (em->shape.kind == GEN_DATA_IMAGES) gen_model_data_options(&em->cfg, &channels, &size);
    enum gen_status st =
        gen_data_load(d, em->shape.kind, path, GEN_DATA_TEST, channels, size, &em->vocab, NULL);
    return st == GEN_OK ? gen_data_shape_check(d, &em->shape, "the model") : st;
}

enum gen_status gen_data_load_fitted(struct gen_data *d, const struct gen_model *em,
                                     const char *path) {
    enum gen_status st = gen_data_load(d, em->shape.kind, path, GEN_DATA_TEST, em->shape.c,
                                       em->shape.kind == GEN_DATA_IMAGES && em->shape.h == em->shape.w
                                           ? em->shape.h
                                           : 0,
                                       &em->vocab, NULL);
    if (st == GEN_OK && d->kind == GEN_DATA_IMAGES &&
        (d->test.c != em->shape.c || d->test.h != em->shape.h || d->test.w != em->shape.w))
        st = gen_error(GEN_ERR_FORMAT, "%s: images are %dx%dx%d, the model wants %dx%dx%d", path,
                       d->test.c, d->test.h, d->test.w, em->shape.c, em->shape.h, em->shape.w);
    return st;
}
