/* test_safetensors.c - the safetensors reader and writer (round trip, every
 * truncation, flipped header bytes, crafted bad headers) and checkpoints
 * (round trip, mismatches, failures during save leave the old file). */
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "gen/io.h"
#include "gen/nn.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "testutil.h"

/* Writes header JSON (length as given) followed by `data` zero bytes. */
static void craft(const char *path, const char *json, size_t data) {
    size_t jl = strlen(json);
    uint8_t *b = calloc(1, 8 + jl + data);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    tu_write_file(path, b, 8 + jl + data);
    free(b);
}

static void expect_bad(const char *json, size_t data, const char *phrase) {
    const char *p = tu_tmp_path("crafted.safetensors");
    craft(p, json, data);
    struct gen_st_file *f = NULL;
    enum gen_status st = gen_st_open(p, 0, &f);
    if (st == GEN_OK) fail_msg("accepted: %s", json);
    assert_null(f);
    const char *msg = gen_last_error();
    if (strncmp(msg, p, strlen(p)) != 0 || !strstr(msg, phrase))
        fail_msg("for %s: message '%s' lacks '%s'", json, msg, phrase);
}

static const int64_t shape_a[2] = {2, 3}, shape_c[2] = {0, 5}, shape_d[1] = {4};
static const float va[6] = {1, 2, 3, 4, 5, -6.5f}, vb[1] = {42}, vd[4] = {0.5f, 1e-30f, 3e30f, -0.0f};

static void save_small(const char *path) {
    const struct gen_st_entry e[4] = {
        {"a", 2, shape_a, va, GEN_ST_F32, NULL},
        {"b", 0, NULL, vb, GEN_ST_F32, NULL},
        {"c", 2, shape_c, NULL, GEN_ST_F32, NULL},
        {"d", 1, shape_d, vd, GEN_ST_F32, NULL}};
    const struct gen_kv meta[2] = {{"step", "10"}, {"config", "{\"lr\": 0.001}"}};
    assert_int_equal(gen_st_save(path, e, 4, meta, 2), GEN_OK);
}

static void test_round_trip(void **state) {
    (void)state;
    const char *p = tu_tmp_path("small.safetensors");
    save_small(p);
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(p, 0, &f), GEN_OK);
    assert_int_equal(gen_st_count(f), 4);
    const struct gen_st_tensor *a = gen_st_find(f, "a"), *b = gen_st_find(f, "b"),
                               *c = gen_st_find(f, "c"), *d = gen_st_find(f, "d");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_null(gen_st_find(f, "e"));
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[1], 3);
    assert_memory_equal(a->data, va, sizeof va);
    assert_int_equal(b->ndim, 0);
    assert_int_equal(b->numel, 1);
    assert_float_equal(b->data[0], 42.0f, 0);
    assert_int_equal(c->numel, 0);
    assert_memory_equal(d->data, vd, sizeof vd);
    assert_int_equal((uintptr_t)a->data % 4, 0);
    assert_string_equal(gen_st_meta(f, "step"), "10");
    assert_string_equal(gen_st_meta(f, "config"), "{\"lr\": 0.001}");
    assert_null(gen_st_meta(f, "nope"));
    assert_int_equal(gen_st_data_bytes(f), 4 * (6 + 1 + 4));
    gen_st_close(f);
    /* Header-only open: same names and shapes, no data. */
    assert_int_equal(gen_st_open(p, GEN_ST_HEADER_ONLY, &f), GEN_OK);
    assert_int_equal(gen_st_count(f), 4);
    assert_null(gen_st_find(f, "a")->data);
    gen_st_close(f);
    /* Header length is a multiple of 8; same input, same bytes. */
    size_t n1, n2;
    uint8_t *b1 = (uint8_t *)tu_read_file(p, &n1);
    assert_int_equal(b1[0] % 8, 0);
    assert_int_equal(b1[8], '{');
    save_small(tu_tmp_path("small2.safetensors"));
    uint8_t *b2 = (uint8_t *)tu_read_file(tu_tmp_path("small2.safetensors"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    /* Writer rejects its own bad input. */
    const struct gen_st_entry dup[2] = {{"x", 1, shape_d, vd, GEN_ST_F32, NULL},
                                        {"x", 1, shape_d, vd, GEN_ST_F32, NULL}};
    assert_int_equal(gen_st_save(tu_tmp_path("dup.safetensors"), dup, 2, NULL, 0), GEN_ERR_USAGE);
    assert_non_null(strstr(gen_last_error(), "duplicate tensor name 'x'"));
}

static void test_every_truncation(void **state) {
    (void)state;
    const char *p = tu_tmp_path("t.safetensors");
    save_small(p);
    size_t n;
    uint8_t *b = (uint8_t *)tu_read_file(p, &n);
    const char *q = tu_tmp_path("cut.safetensors");
    for (size_t len = 0; len < n; len++) {
        tu_write_file(q, b, len);
        for (int flags = 0; flags <= GEN_ST_ON_DEMAND; flags++) {
            struct gen_st_file *f = NULL;
            if (gen_st_open(q, flags, &f) == GEN_OK) fail_msg("truncated to %zu accepted", len);
            assert_null(f);
            assert_int_equal(strncmp(gen_last_error(), q, strlen(q)), 0);
        }
    }
    /* One byte too many: not covered by any tensor. */
    uint8_t *longer = calloc(1, n + 1);
    memcpy(longer, b, n);
    tu_write_file(q, longer, n + 1);
    struct gen_st_file *f = NULL;
    assert_int_equal(gen_st_open(q, 0, &f), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "belong to no tensor"));
    free(longer);
    free(b);
}

/* GEN_ST_ON_DEMAND reads each tensor as a whole open gives it, in every
 * dtype and at an odd offset (F32 after an odd count of 2-byte values),
 * and a file cut short after it was opened fails the read, naming the
 * file and the tensor. */
static void test_on_demand(void **state) {
    (void)state;
    enum { N = 5000 }; /* more than gen_st_read's chunk of converted values */
    float *v = malloc(N * sizeof *v), *got = malloc(N * sizeof *got);
    int64_t *iv = malloc(N * sizeof *iv);
    for (int i = 0; i < N; i++) {
        v[i] = (float)(i % 97) * 0.25f - 7.0f;
        iv[i] = i - 2500;
    }
    const int64_t n1[1] = {N}, n3[1] = {3};
    const struct gen_st_entry e[5] = {{"f16", 1, n3, v, GEN_ST_F16, NULL},
                                      {"f32", 1, n1, v, GEN_ST_F32, NULL},
                                      {"bf16", 1, n1, v, GEN_ST_BF16, NULL},
                                      {"i64", 1, n1, NULL, GEN_ST_I64, iv},
                                      {"empty", 0, NULL, v, GEN_ST_F32, NULL}};
    const char *p = tu_tmp_path("demand.safetensors");
    assert_int_equal(gen_st_save(p, e, 5, NULL, 0), GEN_OK);
    struct gen_st_file *whole, *lazy;
    assert_int_equal(gen_st_open(p, 0, &whole), GEN_OK);
    assert_int_equal(gen_st_open(p, GEN_ST_ON_DEMAND, &lazy), GEN_OK);
    assert_int_equal(gen_st_count(lazy), 5);
    for (int i = 0; i < gen_st_count(lazy); i++) {
        const struct gen_st_tensor *t = gen_st_at(lazy, i), *w = gen_st_find(whole, t->name);
        assert_non_null(w);
        assert_null(t->data);
        assert_int_equal(t->numel, w->numel);
        memset(got, 0xff, N * sizeof *got);
        assert_int_equal(gen_st_read(p, lazy, t, got), GEN_OK);
        assert_memory_equal(got, w->data, (size_t)t->numel * sizeof *got);
    }
    gen_st_close(whole);
    /* cut short in place after the open: the last tensor's read fails */
    size_t n;
    char *bytes = tu_read_file(p, &n);
    assert_int_equal(truncate(p, (off_t)(n - 4)), 0);
    const struct gen_st_tensor *last = gen_st_at(lazy, gen_st_count(lazy) - 1);
    assert_int_equal(gen_st_read(p, lazy, last, got), GEN_ERR_FORMAT);
    const char *msg = gen_last_error();
    if (strncmp(msg, p, strlen(p)) != 0 || !strstr(msg, "truncated") || !strstr(msg, last->name))
        fail_msg("message '%s'", msg);
    gen_st_close(lazy);
    /* replaced after the open (a new file renamed over it): read as it was */
    tu_write_file(p, bytes, n);
    assert_int_equal(gen_st_open(p, GEN_ST_ON_DEMAND, &lazy), GEN_OK);
    const char *q = tu_tmp_path("demand-new.safetensors");
    assert_int_equal(gen_st_save(q, e + 1, 1, NULL, 0), GEN_OK);
    assert_int_equal(rename(q, p), 0);
    const struct gen_st_tensor *f32 = gen_st_find(lazy, "f32");
    assert_int_equal(gen_st_read(p, lazy, f32, got), GEN_OK);
    assert_memory_equal(got, v, N * sizeof *got);
    gen_st_close(lazy);
    free(bytes);
    free(v);
    free(got);
    free(iv);
}

static void test_flipped_header_bytes(void **state) {
    (void)state;
    const char *p = tu_tmp_path("f.safetensors");
    save_small(p);
    size_t n;
    uint8_t *b = (uint8_t *)tu_read_file(p, &n);
    size_t header = 8 + (size_t)b[0] + ((size_t)b[1] << 8);
    const char *q = tu_tmp_path("flip.safetensors");
    const uint8_t masks[] = {0x01, 0x02, 0x10, 0x20, 0x80, 0xff};
    int ok = 0, bad = 0;
    for (size_t i = 0; i < header; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            b[i] ^= masks[m];
            tu_write_file(q, b, n);
            struct gen_st_file *f = NULL;
            if (gen_st_open(q, 0, &f) == GEN_OK) {
                /* Whatever parsed must be self-consistent. */
                int64_t total = 0;
                for (int t = 0; t < gen_st_count(f); t++) total += gen_st_at(f, t)->numel * 4;
                assert_int_equal(total, gen_st_data_bytes(f));
                gen_st_close(f);
                ok++;
            } else {
                assert_null(f);
                assert_int_equal(strncmp(gen_last_error(), q, strlen(q)), 0);
                bad++;
            }
            b[i] ^= masks[m];
        }
    }
    assert_true(bad > 0);
    print_message("flipped header bytes: %d parsed, %d rejected\n", ok, bad);
    free(b);
}

static void test_crafted_headers(void **state) {
    (void)state;
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
               24, "overlaps");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
               20, "4 bytes before tensor 'b' belong to no tensor");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
               "outside the 8-byte data area");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
               "last 4 bytes");
    expect_bad("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
               "dtype F64; gen reads F32, F16, BF16 and I64");
    expect_bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
               "span 8 bytes but the shape needs 4");
    expect_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "no dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
               "span 8 bytes but the shape needs 12");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
               "not a non-negative integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
               "not a non-negative integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
               "5 dimensions");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],"
               "\"data_offsets\":[0,4]}}", 4, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
               "data_offsets is not two");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "outside");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
               "duplicate tensor name 'a'");
    /* cJSON keeps both copies of a repeated key; with the same offsets they
     * would also overlap, but the repeat is what is wrong. */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "duplicate tensor name 'a'");
    expect_bad("{\"__metadata__\":{\"step\":10}}", 0, "not a string");
    expect_bad("{\"__metadata__\":[1]}", 0, "__metadata__ is not an object");
    expect_bad("{\"a\":7}", 0, "'a' is not an object");
    expect_bad("[1, 2, 3]", 0, "start with '{'");
    expect_bad("{\"a\": {\"dtype\": \"F32\"", 0, "not valid JSON");
    expect_bad("{} x", 0, "unexpected bytes after");
    expect_bad("{", 0, "too small");
    /* Valid oddities: empty header object, padding, empty tensors. */
    const char *p = tu_tmp_path("ok.safetensors");
    craft(p, "{}      ", 0);
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(p, 0, &f), GEN_OK);
    assert_int_equal(gen_st_count(f), 0);
    gen_st_close(f);
    craft(p, "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4);
    assert_int_equal(gen_st_open(p, 0, &f), GEN_OK);
    assert_int_equal(gen_st_count(f), 2);
    gen_st_close(f);

    /* Header length fields that lie. */
    uint8_t raw[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    tu_write_file(p, raw, 10);
    assert_int_equal(gen_st_open(p, 0, &f), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "more than the 2 bytes after it"));
    /* 2^63 (found by the fuzzer: overflowed the data size computation). */
    uint8_t top[16] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    tu_write_file(p, top, 16);
    assert_int_equal(gen_st_open(p, 0, &f), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "more than the 8 bytes after it"));
    tu_write_file(p, raw, 5);
    assert_int_equal(gen_st_open(p, 0, &f), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "too short"));
    assert_int_equal(gen_st_open(tu_tmp_path("missing.safetensors"), 0, &f), GEN_ERR_IO);
    assert_int_equal(gen_st_open(tu_tmp, 0, &f), GEN_ERR_IO);
}

/* ---- checkpoints ---- */

struct spec {
    const char *name;
    enum gen_param_kind kind;
    int ndim;
    int64_t shape[2];
};

static void build(struct gen_params *ps, const struct spec *s, int n, float base) {
    gen_params_init(ps);
    for (int i = 0; i < n; i++) gen_params_add(ps, s[i].name, s[i].kind, 0, s[i].ndim, s[i].shape);
    assert_int_equal(gen_params_finalize(ps, 1), GEN_OK);
    for (int64_t i = 0; i < ps->n_train; i++) {
        ps->data[i] = base + (float)i;
        ps->m[i] = base - (float)i;
        ps->v[i] = base * 0.5f + (float)i;
        ps->ema[i] = base + 0.25f * (float)i;
    }
    for (int64_t i = 0; i < ps->n_buffer; i++) ps->buffers[i] = base * 3 + (float)i;
    ps->step[0] = (int64_t)base;
    ps->step[1] = 7;
}

static const struct spec model[3] = {
    {"enc.weight", GEN_PARAM_WEIGHT, 2, {3, 2}},
    {"enc.bias", GEN_PARAM_NODECAY, 1, {3, 0}},
    {"bn.running_mean", GEN_PARAM_BUFFER, 1, {3, 0}},
};

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    const char *p = tu_tmp_path("ckpt.safetensors");
    struct gen_params a, b;
    build(&a, model, 3, 100);
    const struct gen_kv meta[2] = {{"step", "123"}, {"rng.data", "1,2,3,4"}};
    assert_int_equal(gen_ckpt_save(p, &a, "vae", "{\"latent\":16}", meta, 2), GEN_OK);
    build(&b, model, 3, 0);
    struct gen_ckpt_meta m;
    assert_int_equal(gen_ckpt_load(p, &b, "vae", GEN_CKPT_OPTIM | GEN_CKPT_EMA, &m), GEN_OK);
    assert_memory_equal(a.data, b.data, (size_t)a.n_train * 4);
    assert_memory_equal(a.m, b.m, (size_t)a.n_train * 4);
    assert_memory_equal(a.v, b.v, (size_t)a.n_train * 4);
    assert_memory_equal(a.ema, b.ema, (size_t)a.n_train * 4);
    assert_memory_equal(a.buffers, b.buffers, (size_t)a.n_buffer * 4);
    assert_int_equal(b.step[0], 100);
    assert_int_equal(b.step[1], 7);
    assert_string_equal(gen_ckpt_meta_get(&m, "step"), "123");
    assert_string_equal(gen_ckpt_meta_get(&m, "rng.data"), "1,2,3,4");
    assert_string_equal(gen_ckpt_meta_get(&m, "family"), "vae");
    assert_string_equal(gen_ckpt_meta_get(&m, "format_version"), GEN_CKPT_FORMAT_VERSION);
    gen_ckpt_meta_free(&m);
    /* Weights only (sampling): optimiser state untouched. */
    gen_params_free(&b);
    build(&b, model, 3, 0);
    assert_int_equal(gen_ckpt_load(p, &b, "vae", 0, NULL), GEN_OK);
    assert_memory_equal(a.data, b.data, (size_t)a.n_train * 4);
    assert_float_equal(b.m[1], -1.0f, 0);
    /* The tensors are there under PyTorch-style names. */
    struct gen_st_file *f;
    assert_int_equal(gen_st_open(p, 0, &f), GEN_OK);
    assert_int_equal(gen_st_count(f), 3 + 2 * 2 + 2);
    assert_non_null(gen_st_find(f, "optim.m.enc.weight"));
    assert_non_null(gen_st_find(f, "ema.enc.bias"));
    assert_null(gen_st_find(f, "ema.bn.running_mean"));
    gen_st_close(f);
    /* Metadata before the model exists. */
    assert_int_equal(gen_ckpt_read_meta(p, &m), GEN_OK);
    assert_string_equal(gen_ckpt_meta_get(&m, "config"), "{\"latent\":16}");
    assert_string_equal(gen_ckpt_meta_get(&m, "gen_version"), GEN_VERSION);
    gen_ckpt_meta_free(&m);
    /* Reserved metadata keys. */
    const struct gen_kv bad[1] = {{"family", "x"}};
    assert_int_equal(gen_ckpt_save(p, &a, "vae", "{}", bad, 1), GEN_ERR_USAGE);
    gen_params_free(&a);
    gen_params_free(&b);
}

static void test_checkpoint_mismatch(void **state) {
    (void)state;
    const char *p = tu_tmp_path("ckpt2.safetensors");
    struct gen_params a, b;
    build(&a, model, 3, 1);
    assert_int_equal(gen_ckpt_save(p, &a, "vae", "{}", NULL, 0), GEN_OK);
    build(&b, model, 3, 0);
    assert_int_equal(gen_ckpt_load(p, &b, "gan", 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "for family 'vae', not 'gan'"));
    gen_params_free(&b);
    struct spec other[3] = {model[0], model[1], model[2]};
    other[0].shape[0] = 2;
    other[0].shape[1] = 3;
    build(&b, other, 3, 0);
    assert_int_equal(gen_ckpt_load(p, &b, "vae", 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(
        strstr(gen_last_error(), "'enc.weight' has shape [3, 2] in the file but [2, 3] in the model"));
    gen_params_free(&b);
    const struct spec more[4] = {model[0], model[1], model[2],
                                 {"dec.weight", GEN_PARAM_WEIGHT, 2, {2, 2}}};
    build(&b, more, 4, 0);
    assert_int_equal(gen_ckpt_load(p, &b, "vae", 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "'dec.weight' is missing"));
    gen_params_free(&b);
    build(&b, model, 2, 0);
    assert_int_equal(gen_ckpt_load(p, &b, "vae", 0, NULL), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "'bn.running_mean' is not part of this model"));
    gen_params_free(&b);
    /* A safetensors file that is not a gen checkpoint. */
    save_small(tu_tmp_path("plain.safetensors"));
    struct gen_ckpt_meta m;
    assert_int_equal(gen_ckpt_read_meta(tu_tmp_path("plain.safetensors"), &m), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "not a gen checkpoint"));
    gen_params_free(&a);
}

static int count_tmp_files(void) {
    DIR *d = opendir(tu_tmp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void test_failed_save_keeps_old(void **state) {
    (void)state;
    const char *p = tu_tmp_path("keep.safetensors");
    struct gen_params a, b;
    build(&a, model, 3, 1);
    build(&b, model, 3, 2);
    assert_int_equal(gen_ckpt_save(p, &a, "vae", "{}", NULL, 0), GEN_OK);
    size_t n0;
    uint8_t *old = (uint8_t *)tu_read_file(p, &n0);
    /* Disk full at every point of the new file. */
    for (int64_t at = 0; at < (int64_t)n0 + 64; at += 13) {
        gen_st_fail_write_after(at);
        enum gen_status st = gen_ckpt_save(p, &b, "vae", "{}", NULL, 0);
        gen_st_fail_write_after(-1);
        size_t n1;
        uint8_t *now = (uint8_t *)tu_read_file(p, &n1);
        if (st == GEN_OK) { /* the whole file fit before the failure point */
            free(now);
            assert_int_equal(gen_ckpt_save(p, &a, "vae", "{}", NULL, 0), GEN_OK);
            continue;
        }
        assert_int_equal(st, GEN_ERR_IO);
        assert_non_null(strstr(gen_last_error(), "unchanged"));
        assert_int_equal(n1, n0);
        assert_memory_equal(now, old, n0);
        free(now);
        assert_int_equal(count_tmp_files(), 0);
    }
    /* Out of memory at every allocation. */
    for (long k = 1; k < 100; k++) {
        gen_alloc_fail_after(k);
        enum gen_status st = gen_ckpt_save(p, &b, "vae", "{}", NULL, 0);
        gen_alloc_fail_after(0);
        if (st == GEN_OK) break;
        size_t n1;
        uint8_t *now = (uint8_t *)tu_read_file(p, &n1);
        assert_int_equal(n1, n0);
        assert_memory_equal(now, old, n0);
        free(now);
    }
    /* Out of memory while loading: clean errors. */
    for (long k = 1; k < 100; k++) {
        struct gen_ckpt_meta m;
        gen_alloc_fail_after(k);
        enum gen_status st = gen_ckpt_load(p, &a, "vae", GEN_CKPT_OPTIM, &m);
        gen_alloc_fail_after(0);
        if (st == GEN_OK) {
            gen_ckpt_meta_free(&m);
            break;
        }
        assert_int_equal(st, GEN_ERR_NOMEM);
    }
    /* The temporary file cannot be created. */
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", tu_tmp);
    assert_int_equal(gen_ckpt_save(bad, &a, "vae", "{}", NULL, 0), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "cannot create temporary file"));
    free(old);
    gen_params_free(&a);
    gen_params_free(&b);
}

/* The Python reader (spec only, no safetensors library) agrees, when a
 * python3 is on the machine; the C suite itself needs no Python. */
static void test_python_reader(void **state) {
    (void)state;
    TU_NEED(system("command -v python3 > /dev/null 2>&1") == 0, "no python3");
    const char *p = tu_tmp_path("py.safetensors");
    struct gen_params a;
    build(&a, model, 3, 5);
    const struct gen_kv meta[1] = {{"step", "9"}};
    assert_int_equal(gen_ckpt_save(p, &a, "diffusion", "{\"ch\":32}", meta, 1), GEN_OK);
    gen_params_free(&a);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' --quiet > /dev/null",
             tu_source_path("scripts/read_safetensors.py"), p);
    assert_int_equal(system(cmd), 0);
    /* ... and rejects a truncated file. */
    snprintf(cmd, sizeof cmd, "head -c 100 '%s' > '%s.cut' && python3 '%s' '%s.cut' 2> /dev/null",
             p, p, tu_source_path("scripts/read_safetensors.py"), p);
    assert_int_not_equal(system(cmd), 0);
}

/* A FIFO where a checkpoint should be is refused at once by every reader
 * (alarm turns a hang into a failure). */
static void test_fifo(void **state) {
    (void)state;
    const char *p = tu_tmp_path("fifo.safetensors");
    assert_int_equal(mkfifo(p, 0600), 0);
    struct gen_st_file *f = NULL;
    struct gen_ckpt_meta m;
    alarm(10);
    assert_int_equal(gen_st_open(p, 0, &f), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "fifo.safetensors: not a regular file"));
    assert_int_equal(gen_st_open(p, GEN_ST_HEADER_ONLY, &f), GEN_ERR_IO);
    assert_int_equal(gen_ckpt_read_meta(p, &m), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "not a regular file"));
    alarm(0);
    assert_null(f);
    remove(p);
}

/* Leftovers of killed saves (NAME.tmp.PID of a dead process) go; those of
 * live processes, and names that only look similar, stay. */
struct tmp_case {
    long pid;
    const char *fmt;
    int stays;
};

static const char *tmp_case_path(const char *dir, const struct tmp_case *c) {
    static char path[1400];
    char base[128];
    snprintf(base, sizeof base, c->fmt, c->pid);
    snprintf(path, sizeof path, "%s/%s", dir, base);
    return path;
}

/* One round of test_clean_stale_tmp in dir, with `dead` a PID whose
 * process has exited: 0 when every case came out as it should, 1 when
 * the dead PID's file stayed because the PID had been handed to a new
 * process meanwhile (some kernels reuse the lowest free PID at once) and
 * that process still runs. */
static int clean_stale_round(const char *dir, pid_t dead) {
    const struct tmp_case cases[] = {
        {(long)dead, "checkpoint.safetensors.tmp.%ld", 0},
        {999999999L, "checkpoint-00100.safetensors.tmp.%ld", 0},
        {(long)getpid(), "checkpoint.safetensors.tmp.%ld", 1},
        {(long)getppid(), "loss.png.tmp.%ld", 1},
        {(long)dead, "notes.tmp.%ldx", 1},
        {(long)dead, ".tmp.%ld", 1},
        {0, "data.tmp.%ld", 1},
        {(long)dead, "keep.txt%ld", 1},
    };
    const int n = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < n; i++) tu_write_file(tmp_case_path(dir, &cases[i]), "x", 1);
    const struct tmp_case sub = {(long)dead, "sub.tmp.%ld", 1}; /* a directory stays */
    assert_int_equal(mkdir(tmp_case_path(dir, &sub), 0700), 0);
    assert_int_equal(gen_clean_stale_tmp(dir), GEN_OK);
    struct stat sb;
    if (stat(tmp_case_path(dir, &cases[0]), &sb) == 0) {
        if (kill(dead, 0) == 0) return 1;
        /* the PID was someone's for a moment during the cleaning (a short
         * process of a parallel test: CI failed so at 4842faa), gone
         * since: a second cleaning must remove the file */
        assert_int_equal(gen_clean_stale_tmp(dir), GEN_OK);
    }
    for (int i = 0; i < n; i++)
        if ((stat(tmp_case_path(dir, &cases[i]), &sb) == 0) != cases[i].stays)
            fail_msg("%s should %s", tmp_case_path(dir, &cases[i]),
                     cases[i].stays ? "stay" : "be removed");
    assert_int_equal(stat(tmp_case_path(dir, &sub), &sb), 0);
    return 0;
}

static void test_clean_stale_tmp(void **state) {
    (void)state;
    char dir[1100];
    int reused = 1;
    for (int round = 0; round < 5 && reused; round++) { /* a fresh folder and PID each */
        snprintf(dir, sizeof dir, "%s/stale%d", tu_tmp, round);
        assert_int_equal(gen_mkdir_p(dir), GEN_OK);
        pid_t dead = fork();
        assert_true(dead >= 0);
        if (dead == 0) _exit(0);
        assert_int_equal(waitpid(dead, NULL, 0), dead);
        reused = clean_stale_round(dir, dead);
    }
    if (reused) fail_msg("every exited child's PID was taken again before the cleaning");
    snprintf(dir, sizeof dir, "%s/missing", tu_tmp);
    assert_int_equal(gen_clean_stale_tmp(dir), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "missing"));
}

/* A sample folder's cleaning: only NAMEs of the given kind, and only files
 * at least min_age_s old (a writer on another machine may be at work). */
static void test_clean_stale_tmp_of(void **state) {
    (void)state;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/stale-of", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    const struct tmp_case cases[] = {
        {999999999L, "00003.png.tmp.%ld", 0},  /* old, dead, an image: removed */
        {999999998L, "00004.png.tmp.%ld", 1},  /* dead but fresh: kept */
        {999999997L, "notes.txt.tmp.%ld", 1},  /* old, dead, not an image: kept */
        {(long)getpid(), "00005.png.tmp.%ld", 1}, /* old, alive: kept */
        {999999996L, "png.tmp.%ld", 1},        /* no NAME before the kind */
    };
    const int n = (int)(sizeof cases / sizeof *cases);
    const time_t old = time(NULL) - 120;
    for (int i = 0; i < n; i++) {
        const char *p = tmp_case_path(dir, &cases[i]);
        tu_write_file(p, "x", 1);
        if (i != 1) {
            const struct utimbuf t = {old, old};
            assert_int_equal(utime(p, &t), 0);
        }
    }
    assert_int_equal(gen_clean_stale_tmp_of(dir, ".png", 60.0), GEN_OK);
    struct stat sb;
    for (int i = 0; i < n; i++)
        if ((stat(tmp_case_path(dir, &cases[i]), &sb) == 0) != cases[i].stays)
            fail_msg("%s should %s", tmp_case_path(dir, &cases[i]),
                     cases[i].stays ? "stay" : "be removed");
}

/* The temporary file a writer has open is what a signal handler removes
 * (gen_fs_tmp_remove): only while it is open, and never the file it
 * would replace, which then stays as it was. */
static void test_tmp_removed_on_signal(void **state) {
    (void)state;
    char path[4300], tmp[GEN_FS_TMP_MAX];
    snprintf(path, sizeof path, "%s/out.png", tu_tmp);
    tu_write_file(path, "old", 3);
    struct stat sb;
    FILE *f = gen_fs_tmp_create(path, tmp);
    assert_non_null(f);
    assert_int_equal(fwrite("half", 1, 4, f), 4);
    assert_int_equal(stat(tmp, &sb), 0);
    gen_fs_tmp_remove(); /* the handler's part */
    assert_int_not_equal(stat(tmp, &sb), 0);
    assert_int_not_equal(gen_fs_tmp_finish(f, tmp, path, 0), 0); /* nothing left to rename */
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 3);
    /* after a write is finished there is nothing to remove: a whole write
     * stays, and a later temporary file of that name is not touched */
    const uint8_t px[4] = {0, 64, 128, 255};
    assert_int_equal(gen_png_write(path, 2, 2, 1, px), GEN_OK);
    tu_write_file(tmp, "half", 4);
    gen_fs_tmp_remove();
    assert_int_equal(stat(tmp, &sb), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 3); /* the PNG, not the old 3 bytes */
    remove(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_on_demand),
        cmocka_unit_test(test_flipped_header_bytes),
        cmocka_unit_test(test_crafted_headers),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_checkpoint_mismatch),
        cmocka_unit_test(test_failed_save_keeps_old),
        cmocka_unit_test(test_python_reader),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_clean_stale_tmp),
        cmocka_unit_test(test_clean_stale_tmp_of),
        cmocka_unit_test(test_tmp_removed_on_signal),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
