/* test_options.c - the option parser, configs, help lines, the family
 * registry and the common command tables. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#include "cli/cli.h"
#include "gen/family.h"

static const struct gen_option common[] = {
    GEN_STR_OPT("data", NULL, "data"),
    GEN_INT_OPT("batch", "64", 1, 65536, "batch size"),
    GEN_FLOAT_OPT("lr", "1e-3", 0, 10, "learning rate"),
    GEN_INT_OPT("seed", "0", 0, GEN_OPT_NO_MAX, "seed"),
    {"num", 'n', GEN_OPT_INT, "64", "samples", 1, 100000, NULL, 0},
    {"output", 'o', GEN_OPT_STRING, NULL, "output", 0, 0, NULL, 0},
    {"resume", 0, GEN_OPT_OPTIONAL_STRING, NULL, "resume", 0, 0, NULL, 0},
    GEN_FLAG_OPT("json", "json"),
    GEN_INT_OPT("any", NULL, 0, 0, "no range"),
    GEN_FLOAT_OPT("temp", "1", 0, GEN_OPT_NO_MAX, "temperature"),
    GEN_FLOAT_OPT("delta", NULL, GEN_OPT_NO_MIN, 5, "at most 5"),
    GEN_OPT_END,
};

static const struct gen_option family[] = {
    GEN_INT_OPT("batch", "128", 1, 1024, "family batch"),
    GEN_CHOICE_OPT("sampler", "ddim", "ddpm|ddim", "sampler"),
    GEN_FLAG_OPT("no-attn", "no attention"),
    GEN_OPT_END,
};

static const struct gen_option *const tables[] = {common, family, NULL};

static struct gen_config cfg;

/* Parses a space-separated argument string (no quoting). */
static enum gen_status parse(const char *args) {
    static char buf[4096];
    static char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", args);
    for (char *tok = strtok(buf, " "); tok && argc < 64; tok = strtok(NULL, " ")) argv[argc++] = tok;
    gen_clear_error();
    return gen_config_parse(&cfg, tables, argc, argv);
}

static enum gen_status parse_v(int argc, char **argv) {
    gen_clear_error();
    return gen_config_parse(&cfg, tables, argc, argv);
}

/* The usage error for `args` is exactly `msg`. */
static void expect_error(const char *args, const char *msg) {
    enum gen_status st = parse(args);
    if (st != GEN_ERR_USAGE || strcmp(gen_last_error(), msg) != 0)
        fail_msg("'%s': got status %d, '%s'; want '%s'", args, (int)st, gen_last_error(), msg);
}

static void test_defaults(void **state) {
    (void)state;
    assert_int_equal(parse(""), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "batch"), 128); /* family overrides common */
    assert_true(fabs(gen_config_float(&cfg, "lr") - 1e-3) < 1e-15);
    assert_int_equal(gen_config_int(&cfg, "seed"), 0);
    assert_int_equal(gen_config_int(&cfg, "num"), 64);
    assert_string_equal(gen_config_str(&cfg, "sampler"), "ddim");
    assert_null(gen_config_str(&cfg, "data"));
    assert_null(gen_config_str(&cfg, "resume"));
    assert_false(gen_config_flag(&cfg, "resume"));
    assert_false(gen_config_flag(&cfg, "json"));
    assert_false(gen_config_is_set(&cfg, "batch"));
    assert_true(gen_config_get(&cfg, "batch")->present);
    assert_false(gen_config_get(&cfg, "data")->present);
    assert_null(gen_config_get(&cfg, "nonexistent"));
    /* one entry per name, common order first */
    int batches = 0;
    for (int k = 0; k < cfg.n; k++) batches += !strcmp(cfg.e[k].name, "batch");
    assert_int_equal(batches, 1);
    assert_string_equal(cfg.e[0].name, "data");
}

static void test_value_forms(void **state) {
    (void)state;
    assert_int_equal(parse("--batch 32 --lr=0.5 -n 9 --data d/x --json --sampler ddpm"), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "batch"), 32);
    assert_true(gen_config_is_set(&cfg, "batch"));
    assert_true(gen_config_float(&cfg, "lr") == 0.5);
    assert_int_equal(gen_config_int(&cfg, "num"), 9);
    assert_string_equal(gen_config_str(&cfg, "data"), "d/x");
    assert_true(gen_config_flag(&cfg, "json"));
    assert_string_equal(gen_config_str(&cfg, "sampler"), "ddpm");

    assert_int_equal(parse("-n7 -oout.png --no-attn"), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "num"), 7);
    assert_string_equal(gen_config_str(&cfg, "output"), "out.png");
    assert_true(gen_config_flag(&cfg, "no-attn"));

    assert_int_equal(parse("--num 5 --data=a=b --output=x"), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "num"), 5);
    assert_string_equal(gen_config_str(&cfg, "data"), "a=b");

    /* Repeated options keep the last value. */
    assert_int_equal(parse("--batch 2 --batch 3"), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "batch"), 3);

    /* Negative numbers are values, not options. */
    assert_int_equal(parse("--delta -4.5 --any -9"), GEN_OK);
    assert_true(gen_config_float(&cfg, "delta") == -4.5);
    assert_int_equal(gen_config_int(&cfg, "any"), -9);

    /* Strings may hold spaces and be empty; a value may start with '-'. */
    char *argv[] = {"--data", "a b", "--output", "", "-o", "-x"};
    assert_int_equal(parse_v(4, argv), GEN_OK);
    assert_string_equal(gen_config_str(&cfg, "data"), "a b");
    assert_string_equal(gen_config_str(&cfg, "output"), "");
    assert_int_equal(parse_v(6, argv), GEN_OK);
    assert_string_equal(gen_config_str(&cfg, "output"), "-x");

    /* Accepted number spellings. */
    assert_int_equal(parse("--lr 2e-4 --temp .5 --seed 18446744073709551 --batch +7"), GEN_OK);
    assert_true(gen_config_float(&cfg, "lr") == 2e-4);
    assert_true(gen_config_float(&cfg, "temp") == 0.5);
    assert_true(gen_config_int(&cfg, "seed") == 18446744073709551LL);
    assert_int_equal(gen_config_int(&cfg, "batch"), 7);
    assert_true(gen_config_float(&cfg, "batch") == 7.0); /* float reads ints */
    assert_int_equal(parse("--lr 0 --batch 1024 --batch 1"), GEN_OK); /* inclusive bounds */
}

static void test_optional_value(void **state) {
    (void)state;
    assert_int_equal(parse("--resume"), GEN_OK);
    assert_true(gen_config_flag(&cfg, "resume"));
    assert_string_equal(gen_config_str(&cfg, "resume"), "");
    assert_int_equal(parse("--resume --json"), GEN_OK);
    assert_string_equal(gen_config_str(&cfg, "resume"), "");
    assert_true(gen_config_flag(&cfg, "json"));
    assert_int_equal(parse("--resume -n 3"), GEN_OK);
    assert_string_equal(gen_config_str(&cfg, "resume"), "");
    assert_int_equal(gen_config_int(&cfg, "num"), 3);
    assert_int_equal(parse("--resume runs/x/c.safetensors"), GEN_OK);
    assert_string_equal(gen_config_str(&cfg, "resume"), "runs/x/c.safetensors");
    assert_int_equal(parse("--resume=c.st --batch 4"), GEN_OK);
    assert_string_equal(gen_config_str(&cfg, "resume"), "c.st");
    assert_true(gen_config_is_set(&cfg, "resume"));
}

static void test_usage_errors(void **state) {
    (void)state;
    expect_error("--bogus", "unknown option '--bogus'");
    expect_error("--bogus=3", "unknown option '--bogus'");
    expect_error("-x", "unknown option '-x'");
    expect_error("--batch", "--batch: missing value");
    expect_error("--lr", "--lr: missing value");
    expect_error("--lr --batch 3", "--lr: missing value");
    expect_error("-n", "-n: missing value");
    expect_error("--batch 0", "--batch: must be an integer in [1, 1024], got '0'");
    expect_error("--batch=0", "--batch: must be an integer in [1, 1024], got '0'");
    expect_error("--batch 1025", "--batch: must be an integer in [1, 1024], got '1025'");
    expect_error("--lr abc", "--lr: not a number: 'abc'");
    expect_error("--lr 1e-3x", "--lr: not a number: '1e-3x'");
    expect_error("--lr nan", "--lr: not a number: 'nan'");
    expect_error("--lr inf", "--lr: not a number: 'inf'");
    expect_error("--lr 1e999", "--lr: not a number: '1e999'");
    expect_error("--lr -1", "--lr: must be in [0, 10], got '-1'");
    expect_error("--lr 11", "--lr: must be in [0, 10], got '11'");
    expect_error("--temp -0.1", "--temp: must be >= 0, got '-0.1'");
    expect_error("--delta 6", "--delta: must be <= 5, got '6'");
    expect_error("--seed -1", "--seed: must be an integer >= 0, got '-1'");
    expect_error("-n 0", "-n: must be an integer in [1, 100000], got '0'");
    expect_error("-n0", "-n: must be an integer in [1, 100000], got '0'");
    expect_error("--num 0", "--num: must be an integer in [1, 100000], got '0'");
    expect_error("--batch abc", "--batch: must be an integer in [1, 1024], got 'abc'");
    expect_error("--batch 1.5", "--batch: must be an integer in [1, 1024], got '1.5'");
    expect_error("--batch 12abc", "--batch: must be an integer in [1, 1024], got '12abc'");
    expect_error("--batch 0x10", "--batch: must be an integer in [1, 1024], got '0x10'");
    expect_error("--any 99999999999999999999",
                 "--any: must be an integer, got '99999999999999999999'");
    expect_error("--sampler foo", "--sampler: must be one of ddpm|ddim, got 'foo'");
    expect_error("--sampler dd", "--sampler: must be one of ddpm|ddim, got 'dd'");
    expect_error("--json=1", "--json: takes no value");
    expect_error("stray", "unexpected argument 'stray'");
    expect_error("--batch 3 stray", "unexpected argument 'stray'");
    expect_error("--", "unexpected argument '--'");
    expect_error("-", "unexpected argument '-'");

    char *empty_num[] = {"--batch", ""};
    assert_int_equal(parse_v(2, empty_num), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "--batch: must be an integer in [1, 1024], got ''");
    char *space_num[] = {"--lr", " 1"};
    assert_int_equal(parse_v(2, space_num), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "--lr: not a number: ' 1'");

    static char long_value[GEN_CONFIG_STR + 10];
    memset(long_value, 'a', sizeof long_value - 1);
    char *too_long[] = {"--data", long_value};
    assert_int_equal(parse_v(2, too_long), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "--data: value too long (at most 1023 bytes)");
}

/* Operands (gen_config_parse_args): kept in order among the options, "-"
 * among them; an option's value is not one; errors are the parser's. */
static void test_operands(void **state) {
    (void)state;
    char *argv[] = {"a", "--batch", "3", "-", "-o", "b", "c", "--json"};
    char *ops[8];
    int n = -1;
    gen_clear_error();
    assert_int_equal(gen_config_parse_args(&cfg, tables, 8, argv, ops, &n), GEN_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ops[0], "a");
    assert_string_equal(ops[1], "-");
    assert_string_equal(ops[2], "c");
    assert_int_equal(gen_config_int(&cfg, "batch"), 3);
    assert_string_equal(gen_config_str(&cfg, "output"), "b");
    assert_true(gen_config_flag(&cfg, "json"));
    assert_int_equal(gen_config_parse_args(&cfg, tables, 0, argv, ops, &n), GEN_OK);
    assert_int_equal(n, 0);

    char *bad[] = {"a", "--bogus"};
    assert_int_equal(gen_config_parse_args(&cfg, tables, 2, bad, ops, &n), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "unknown option '--bogus'");
    char *missing[] = {"a", "-o"};
    assert_int_equal(gen_config_parse_args(&cfg, tables, 2, missing, ops, &n), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "-o: missing value");
}

/* The commands without a family: each has a table whose defaults are
 * valid (gen_config_init checks them) and whose names are its own, and
 * leaves -h, --help to the dispatcher. */
static void test_tools(void **state) {
    (void)state;
    int count = 0;
    for (int k = 0; gen_cli_tools[k]; k++, count++) {
        const struct gen_cli_tool *t = gen_cli_tools[k];
        assert_non_null(t->options);
        assert_non_null(t->run);
        assert_non_null(t->about);
        assert_non_null(t->operand);
        assert_non_null(t->operand_what);
        const struct gen_option *const ts[] = {t->options, NULL};
        gen_config_init(&cfg, ts);
        for (const struct gen_option *o = t->options; o->name; o++) {
            assert_ptr_equal(gen_option_find(ts, o->name), o);
            assert_true(o->short_name != 'h');
        }
        assert_null(gen_option_find(ts, "help"));
    }
    assert_int_equal(count, 4);
}

static void test_set_and_text(void **state) {
    (void)state;
    char buf[64];
    gen_config_init(&cfg, tables);
    assert_int_equal(gen_config_set(&cfg, tables, "batch", "17"), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "batch"), 17);
    assert_true(gen_config_is_set(&cfg, "batch"));
    assert_int_equal(gen_config_set(&cfg, tables, "batch", "0"), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "--batch: must be an integer in [1, 1024], got '0'");
    assert_int_equal(gen_config_int(&cfg, "batch"), 17); /* untouched */
    assert_int_equal(gen_config_set(&cfg, tables, "nope", "1"), GEN_ERR_USAGE);
    assert_string_equal(gen_last_error(), "unknown option '--nope'");
    assert_int_equal(gen_config_set(&cfg, tables, "json", "true"), GEN_OK);
    assert_true(gen_config_flag(&cfg, "json"));
    assert_int_equal(gen_config_set(&cfg, tables, "json", "0"), GEN_OK);
    assert_false(gen_config_flag(&cfg, "json"));
    assert_int_equal(gen_config_set(&cfg, tables, "json", "maybe"), GEN_ERR_USAGE);

    /* An empty config gains entries on set. */
    struct gen_config *small = calloc(1, sizeof *small);
    assert_int_equal(gen_config_set(small, tables, "lr", "0.25"), GEN_OK);
    assert_int_equal(small->n, 1);
    assert_true(gen_config_float(small, "lr") == 0.25);
    gen_config_free(small);
    free(small);

    assert_int_equal(parse("--lr 2e-4 --json --data x"), GEN_OK);
    gen_config_value_text(gen_config_get(&cfg, "batch"), buf, sizeof buf);
    assert_string_equal(buf, "128");
    gen_config_value_text(gen_config_get(&cfg, "lr"), buf, sizeof buf);
    assert_string_equal(buf, "0.0002");
    gen_config_value_text(gen_config_get(&cfg, "json"), buf, sizeof buf);
    assert_string_equal(buf, "true");
    gen_config_value_text(gen_config_get(&cfg, "data"), buf, sizeof buf);
    assert_string_equal(buf, "x");
    gen_config_value_text(gen_config_get(&cfg, "resume"), buf, sizeof buf);
    assert_string_equal(buf, "");
    /* Text round-trips exactly. */
    assert_int_equal(parse("--lr 0.1234567891234"), GEN_OK);
    gen_config_value_text(gen_config_get(&cfg, "lr"), buf, sizeof buf);
    double lr = gen_config_float(&cfg, "lr");
    assert_int_equal(gen_config_set(&cfg, tables, "lr", buf), GEN_OK);
    assert_true((float)gen_config_float(&cfg, "lr") == (float)lr);
}

static char *help_text(const struct gen_option *table) {
    static char buf[8192];
    FILE *f = tmpfile();
    assert_non_null(f);
    gen_options_help(f, table);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_help(void **state) {
    (void)state;
    const char *h = help_text(common);
    assert_non_null(strstr(h, "      --batch N"));
    assert_non_null(strstr(h, "batch size (default: 64)"));
    assert_non_null(strstr(h, "  -n, --num N"));
    assert_non_null(strstr(h, "--resume [TEXT]"));
    assert_non_null(strstr(h, "--lr X"));
    assert_null(strstr(h, "--json (default"));
    h = help_text(family);
    assert_non_null(strstr(h, "--sampler ddpm|ddim"));
    assert_non_null(strstr(h, "(default: ddim)"));
    for (const char *p = h; *p; p++) assert_true(*p != '\t');
}

static void test_registry(void **state) {
    (void)state;
    /* The four generative families, then the evaluation classifier. */
    const char *want[] = {"gan", "vae", "transformer", "diffusion", "classifier"};
    int k = 0;
    for (; gen_families[k]; k++) {
        assert_true(k < 5);
        assert_string_equal(gen_families[k]->name, want[k]);
        assert_non_null(gen_families[k]->summary);
        assert_true(strlen(gen_families[k]->summary) > 10);
        assert_null(strchr(gen_families[k]->summary, '\n'));
        assert_ptr_equal(gen_family_find(want[k]), gen_families[k]);
    }
    assert_int_equal(k, 5);
    assert_null(gen_family_find("nope"));
    assert_null(gen_family_find(""));
    assert_int_equal(gen_family_find("transformer")->data, GEN_DATA_TEXT);
    assert_int_equal(gen_family_find("vae")->data, GEN_DATA_IMAGES);
}

/* Every family's tables merge with the common ones (defaults valid, which
 * gen_config_init asserts) and give the reference defaults of DESIGN §3. */
static void test_family_defaults(void **state) {
    (void)state;
    const struct gen_option *common_of[] = {gen_train_options, gen_sample_options,
                                            gen_eval_options};
    for (int k = 0; gen_families[k]; k++) {
        const struct gen_family *f = gen_families[k];
        const struct gen_option *fam_of[] = {f->train_options, f->sample_options, f->eval_options};
        for (int c = 0; c < 3; c++) {
            const struct gen_option *const t[] = {common_of[c], fam_of[c], NULL};
            gen_config_init(&cfg, t);
            assert_true(cfg.n > 3);
            assert_non_null(gen_config_get(&cfg, "threads"));
            for (const struct gen_option *o = fam_of[c]; o && o->name; o++) {
                assert_non_null(o->help);
                assert_true(o->type != GEN_OPT_CHOICE || o->choices);
            }
        }
    }
    struct {
        const char *family, *name;
        double value;
    } want[] = {
        {"vae", "batch", 128}, {"vae", "lr", 1e-3},   {"vae", "epochs", 10},
        {"vae", "latent", 20}, {"vae", "hidden", 400}, {"gan", "batch", 64},
        {"gan", "lr", 2e-4},   {"gan", "beta1", 0.5}, {"gan", "latent", 100},
        {"transformer", "batch", 32}, {"transformer", "lr", 1e-3},
        {"transformer", "steps", 5000}, {"transformer", "layers", 4},
        {"transformer", "heads", 4}, {"transformer", "width", 128},
        {"transformer", "context", 128}, {"diffusion", "batch", 64},
        {"diffusion", "lr", 5e-4}, {"diffusion", "timesteps", 1000},
        {"diffusion", "beta-start", 1e-4}, {"diffusion", "beta-end", 0.02},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct gen_family *f = gen_family_find(want[i].family);
        const struct gen_option *const t[] = {gen_train_options, f->train_options, NULL};
        gen_config_init(&cfg, t);
        double got = gen_config_float(&cfg, want[i].name);
        if (fabs(got - want[i].value) > 1e-12)
            fail_msg("%s --%s: default %g, want %g", want[i].family, want[i].name, got,
                     want[i].value);
    }
    /* The arch and sampler choices. */
    const struct gen_option *const tv[] = {gen_train_options,
                                           gen_family_find("vae")->train_options, NULL};
    gen_config_init(&cfg, tv);
    assert_string_equal(gen_config_str(&cfg, "arch"), "mlp");
    const struct gen_option *const ts[] = {gen_sample_options,
                                           gen_family_find("transformer")->sample_options, NULL};
    gen_config_init(&cfg, ts);
    assert_int_equal(gen_config_int(&cfg, "num"), 1); /* -n overridden */
    char *argv[] = {"-n", "3", "--top-k", "40"};
    assert_int_equal(gen_config_parse(&cfg, ts, 4, argv), GEN_OK);
    assert_int_equal(gen_config_int(&cfg, "num"), 3);
    assert_int_equal(gen_config_int(&cfg, "top-k"), 40);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_optional_value),  cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_set_and_text),    cmocka_unit_test(test_help),
        cmocka_unit_test(test_registry),        cmocka_unit_test(test_family_defaults),
        cmocka_unit_test(test_operands),        cmocka_unit_test(test_tools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
