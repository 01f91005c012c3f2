/* test_text.c - text files and folders of .txt files, UTF-8 and the
 * vocabularies of text. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen/data.h"
#include "gen/io.h"
#include "testutil.h"

static const char *put(const char *name, const char *text, size_t n) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", tu_tmp, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (n) fwrite(text, 1, n, f);
    fclose(f);
    return p;
}

/* Writes files[i][0] with the text files[i][1], for each i < n. */
static void put_all(const char *const (*files)[2], size_t n) {
    for (size_t i = 0; i < n; i++) put(files[i][0], files[i][1], strlen(files[i][1]));
}

static void test_file(void **state) {
    (void)state;
    struct gen_text t;
    const char *p = put("a.txt", "Call me\0Ishmael", 15);
    assert_int_equal(gen_text_load(p, &t), GEN_OK);
    assert_int_equal(t.n, 15);
    assert_memory_equal(t.bytes, "Call me\0Ishmael", 15);
    assert_int_equal(t.bytes[15], 0);
    gen_text_free(&t);
    p = put("empty.txt", "", 0);
    assert_int_equal(gen_text_load(p, &t), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "empty file"));
    assert_int_equal(strncmp(gen_last_error(), p, strlen(p)), 0);
    assert_null(t.bytes);
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/nope.txt", tu_tmp);
    assert_int_equal(gen_text_load(missing, &t), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "nope.txt"));
}

static void test_folder(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/books", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    put("books/b.txt", "BBB", 3);
    put("books/a.TXT", "AA", 2);
    put("books/c.md", "ignored", 7);
    put("books/.hidden.txt", "ignored", 7);
    put("books/d.txt", "", 0);
    struct gen_text t;
    assert_int_equal(gen_text_load(dir, &t), GEN_OK);
    assert_int_equal(t.n, 5);
    assert_memory_equal(t.bytes, "AABBB", 5);
    gen_text_free(&t);
    snprintf(dir, sizeof dir, "%s/none", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    assert_int_equal(gen_text_load(dir, &t), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "no .txt files"));
    put("none/x.txt", "", 0);
    assert_int_equal(gen_text_load(dir, &t), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "all empty"));
}

/* A FIFO as the text file or inside the folder is refused at once, never
 * read (alarm turns a hang into a failure); symlinks to directories in the
 * folder (loops included) are not .txt files and are skipped. */
static void test_fifo_and_loops(void **state) {
    (void)state;
    char dir[1024], p[1100];
    snprintf(dir, sizeof dir, "%s/hostile", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    put("hostile/a.txt", "abc", 3);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/loop%d.txt", dir, i);
        assert_int_equal(symlink(".", p), 0);
    }
    struct gen_text t;
    assert_int_equal(gen_text_load(dir, &t), GEN_OK);
    assert_int_equal(t.n, 3);
    gen_text_free(&t);
    snprintf(p, sizeof p, "%s/b.txt", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    alarm(10);
    assert_int_equal(gen_text_load(p, &t), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "b.txt: not a regular file"));
    assert_int_equal(gen_text_load(dir, &t), GEN_ERR_IO);
    assert_non_null(strstr(gen_last_error(), "b.txt: not a regular file"));
    assert_int_equal(gen_text_load("/dev/zero", &t), GEN_ERR_IO);
    alarm(0);
    assert_null(t.bytes);
}

/* ---- folders searched recursively ---- */

/* Every .txt file below the folder, in strcmp order of their paths
 * ("a.txt" before "a/x.txt"), hidden files and folders skipped, symlinks
 * to folders (a loop back to the root among them) not followed, a symlink
 * to a file read; the files are counted. */
static void test_recursive_folder(void **state) {
    (void)state;
    char dir[1024], p[1100];
    snprintf(dir, sizeof dir, "%s/tree", tu_tmp);
    const char *dirs[] = {"a", "sub", "sub/deeper", ".hidden", "sub/.git"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, dirs[i]);
        assert_int_equal(gen_mkdir_p(p), GEN_OK);
    }
    const char *const files[][2] = {
        {"tree/a.txt", "1"},         {"tree/a/x.txt", "2"},        {"tree/b.txt", "3"},
        {"tree/sub/deeper/c.txt", "4"}, {"tree/sub/d.TXT", "5"},   {"outside.txt", "6"},
        {"tree/.hidden/e.txt", "no"}, {"tree/sub/.git/f.txt", "no"}, {"tree/sub/.g.txt", "no"},
        {"tree/sub/notes.md", "no"},
    };
    put_all(files, sizeof files / sizeof files[0]);
    snprintf(p, sizeof p, "%s/sub/loop", dir);
    assert_int_equal(symlink("..", p), 0);
    snprintf(p, sizeof p, "%s/sub/up.txt", dir);
    assert_int_equal(symlink("../..", p), 0);
    snprintf(p, sizeof p, "%s/z.txt", dir);
    assert_int_equal(symlink("../outside.txt", p), 0);
    struct gen_text t;
    assert_int_equal(gen_text_load(dir, &t), GEN_OK);
    assert_int_equal(t.files, 6);
    assert_int_equal(t.n, 6);
    assert_memory_equal(t.bytes, "123546", 6); /* a.txt a/x.txt b.txt sub/d.TXT sub/deeper/c.txt z.txt */
    assert_null(t.bad_path);
    assert_int_equal(t.bad_offset, -1);
    gen_text_free(&t);
    /* .txt files only in subfolders are found too */
    snprintf(dir, sizeof dir, "%s/tree/sub", tu_tmp);
    assert_int_equal(gen_text_load(dir, &t), GEN_OK);
    assert_int_equal(t.files, 2);
    assert_memory_equal(t.bytes, "54", 2);
    gen_text_free(&t);
}

/* ---- UTF-8 and character vocabularies ---- */

static void test_utf8_decode(void **state) {
    (void)state;
    struct {
        const char *s;
        int len;
        uint32_t cp;
    } const cases[] = {
        {"A", 1, 0x41},
        {"\xc3\xa9", 2, 0xe9},              /* é */
        {"\xe2\x82\xac", 3, 0x20ac},        /* € */
        {"\xf0\x9f\x98\x80", 4, 0x1f600},   /* 😀 */
        {"\xf4\x8f\xbf\xbf", 4, 0x10ffff},  /* the last code point */
        {"\xc0\x80", 0, 0},                 /* overlong NUL */
        {"\xc1\xbf", 0, 0},                 /* overlong */
        {"\xe0\x80\xaf", 0, 0},             /* overlong '/' */
        {"\xf0\x8f\xbf\xbf", 0, 0},         /* overlong U+FFFF */
        {"\xed\xa0\x80", 0, 0},             /* surrogate U+D800 */
        {"\xed\xbf\xbf", 0, 0},             /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 0, 0},         /* U+110000 */
        {"\xf5\x80\x80\x80", 0, 0},
        {"\xff", 0, 0},
        {"\x80", 0, 0},                     /* a stray continuation byte */
        {"\xc3", 0, 0},                     /* truncated */
        {"\xe2\x82", 0, 0},
        {"\xc3\x41", 0, 0},                 /* not a continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t cp = 0;
        const int n = (int)strlen(cases[i].s);
        assert_int_equal(gen_utf8_decode((const uint8_t *)cases[i].s, n, &cp), cases[i].len);
        if (!cases[i].len) continue;
        assert_int_equal(cp, cases[i].cp);
        uint8_t back[4];
        assert_int_equal(gen_utf8_encode(cp, back), n);
        assert_memory_equal(back, cases[i].s, (size_t)n);
    }
    uint32_t cp;
    assert_int_equal(gen_utf8_decode((const uint8_t *)"", 1, &cp), 1); /* NUL is U+0000 */
    assert_int_equal(gen_utf8_check((const uint8_t *)"h\xc3\xa9 \xe2\x82\xac", 7), -1);
    assert_int_equal(gen_utf8_check((const uint8_t *)"h\xc3\xa9 \xe2\x82", 6), 4);
    assert_int_equal(gen_utf8_check((const uint8_t *)"ab\xed\xa0\x80", 5), 2);
}

/* The symbols that ids spell, as bytes; must equal text. */
static void assert_spells(const struct gen_vocab *voc, const int32_t *ids, int64_t n_ids,
                          const char *text, size_t n) {
    uint8_t out[256];
    size_t at = 0;
    for (int64_t i = 0; i < n_ids; i++) {
        assert_in_range(ids[i], 0, voc->V - 1);
        uint8_t sym[4];
        const int k = gen_vocab_symbol(voc, ids[i], sym);
        assert_true(at + (size_t)k <= sizeof out);
        memcpy(out + at, sym, (size_t)k);
        at += (size_t)k;
    }
    assert_int_equal(at, n);
    assert_memory_equal(out, text, n);
}

/* The stored form of voc reads back as the same vocabulary. */
static void assert_stored_round_trip(const struct gen_vocab *voc) {
    char *stored = gen_vocab_text(voc);
    assert_non_null(stored);
    static struct gen_vocab back;
    assert_true(gen_vocab_parse(&back, stored));
    assert_int_equal(back.V, voc->V);
    assert_int_equal(back.chars, voc->chars);
    assert_memory_equal(back.key, voc->key, (size_t)voc->V * sizeof *voc->key);
    assert_memory_equal(back.id, voc->id, sizeof voc->id);
    free(stored);
}

/* Characters of 1 to 4 bytes are one symbol each; ids spell the text back;
 * the stored form reads back; a character outside the vocabulary is
 * named. */
static void test_char_vocab(void **state) {
    (void)state;
    const char text[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\xf0\x9f\x98\x80\n\xe6\x97\xa5";
    const int64_t n = (int64_t)strlen(text);
    static struct gen_vocab voc;
    assert_int_equal(gen_vocab_of_text(&voc, (const uint8_t *)text, n), GEN_OK);
    assert_int_equal(voc.chars, 1);
    /* \n ' ' d h l o r w é ö € 日 😀 */
    assert_int_equal(voc.V, 13);
    const uint32_t keys[] = {'\n', ' ', 'd', 'h', 'l', 'o', 'r', 'w', 0xe9, 0xf6, 0x20ac, 0x65e5, 0x1f600};
    assert_memory_equal(voc.key, keys, sizeof keys);
    assert_int_equal(voc.id['h'], 3);
    assert_int_equal(voc.id[0xe9], 8);
    int32_t ids[64];
    int64_t n_ids;
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)text, n, ids, &n_ids), -1);
    assert_int_equal(n_ids, 16); /* characters, not bytes */
    assert_spells(&voc, ids, n_ids, text, (size_t)n);
    assert_stored_round_trip(&voc);
    char *stored = gen_vocab_text(&voc);
    assert_int_equal(strncmp(stored, "utf8:0a2064686c6f7277c3a9c3b6e282ace697a5f09f9880", 200), 0);
    free(stored);
    /* outside the vocabulary: the offset of its first byte, named */
    const char other[] = "hold \xc3\xa0!";
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)other, 8, ids, &n_ids), 5);
    assert_int_equal(n_ids, 5);
    char name[64];
    gen_vocab_symbol_name(&voc, (const uint8_t *)other + 5, 3, name, sizeof name);
    assert_string_equal(name, "character '\xc3\xa0' (U+00E0)");
    gen_vocab_symbol_name(&voc, (const uint8_t *)"\t", 1, name, sizeof name);
    assert_string_equal(name, "character U+0009");
    /* bytes: the same text is 256 symbols, one a byte */
    gen_vocab_bytes(&voc);
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)text, n, ids, &n_ids), -1);
    assert_int_equal(n_ids, n);
    assert_spells(&voc, ids, n_ids, text, (size_t)n);
    assert_stored_round_trip(&voc);
    gen_vocab_symbol_name(&voc, (const uint8_t *)"z", 1, name, sizeof name);
    assert_string_equal(name, "byte 0x7a ('z')");
}

/* Text that is not valid UTF-8: valid characters stay symbols, each bad
 * byte is a symbol of its own (after every character); the loader names
 * the first bad file and offset. */
static void test_char_vocab_invalid(void **state) {
    (void)state;
    const char text[] = "a\xc3\xa9" "b\xff" "c\xc3" "d\xed\xa0\x80";
    const int64_t n = (int64_t)strlen(text);
    static struct gen_vocab voc;
    assert_int_equal(gen_vocab_of_text(&voc, (const uint8_t *)text, n), GEN_OK);
    /* the surrogate's three bytes are three bad bytes */
    const uint32_t keys[] = {'a', 'b', 'c', 'd', 0xe9, GEN_VOCAB_RAW + 0x80, GEN_VOCAB_RAW + 0xa0,
                             GEN_VOCAB_RAW + 0xc3, GEN_VOCAB_RAW + 0xed, GEN_VOCAB_RAW + 0xff};
    assert_int_equal(voc.V, 10);
    assert_memory_equal(voc.key, keys, sizeof keys);
    int32_t ids[64];
    int64_t n_ids;
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)text, n, ids, &n_ids), -1);
    assert_int_equal(n_ids, 10);
    assert_spells(&voc, ids, n_ids, text, (size_t)n);
    assert_stored_round_trip(&voc);
    char name[64];
    gen_vocab_symbol_name(&voc, (const uint8_t *)"\xff", 1, name, sizeof name);
    assert_string_equal(name, "byte 0xff (not valid UTF-8)");

    struct gen_text t;
    const char *p = put("bad.txt", text, (size_t)n);
    assert_int_equal(gen_text_load(p, &t), GEN_OK);
    assert_string_equal(t.bad_path, p);
    assert_int_equal(t.bad_offset, 4);
    gen_text_free(&t);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mixed", tu_tmp);
    assert_int_equal(gen_mkdir_p(dir), GEN_OK);
    const char *const files[][2] = {
        {"mixed/1.txt", "fine \xc3\xa9"}, {"mixed/2.txt", "ok\xc3("}, {"mixed/3.txt", "\xff"}};
    put_all(files, 3);
    assert_int_equal(gen_text_load(dir, &t), GEN_OK);
    assert_non_null(t.bad_path);
    assert_non_null(strstr(t.bad_path, "mixed/2.txt"));
    assert_int_equal(t.bad_offset, 2);
    gen_text_free(&t);
}

/* A stored vocabulary from a hostile checkpoint: only well-formed text is
 * taken (lowercase hex, bounded, symbols strictly increasing, so no
 * duplicates); checkpoints of gen before code points (bytes) still read. */
static void test_stored_vocab(void **state) {
    (void)state;
    static struct gen_vocab voc;
    const char *bad[] = {
        "", "0", "0a0a", "0b0a", "0A", "zz", "0a 20", "utf8:", "utf8:0", "utf8:c3a9c3a9",
        "utf8:c3a941", "utf8:ffc3", "utf8:eda080", "UTF8:41", "utf8:4g",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (gen_vocab_parse(&voc, bad[i])) fail_msg("parsed '%s'", bad[i]);
    }
    /* bytes of gen before code points: é is two symbols */
    assert_true(gen_vocab_parse(&voc, "0a20a9c3"));
    assert_int_equal(voc.chars, 0);
    assert_int_equal(voc.V, 4);
    int32_t ids[8];
    int64_t n_ids;
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)" \xc3\xa9\n", 4, ids, &n_ids), -1);
    assert_int_equal(n_ids, 4);
    assert_true(gen_vocab_parse(&voc, "utf8:0a20c3a9"));
    assert_int_equal(voc.chars, 1);
    assert_int_equal(voc.V, 3);
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)" \xc3\xa9\n", 4, ids, &n_ids), -1);
    assert_int_equal(n_ids, 3);
    assert_true(gen_vocab_parse(&voc, "utf8:41c3ff")); /* A, raw c3, raw ff */
    assert_int_equal(voc.V, 3);
    /* sizes: 256 bytes, GEN_VOCAB_MAX characters at most */
    char *big = malloc(8 * GEN_VOCAB_MAX + 64), *o = big;
    for (int b = 0; b < 256; b++, o += 2) snprintf(o, 3, "%02x", b);
    assert_true(gen_vocab_parse(&voc, big));
    assert_int_equal(voc.V, 256);
    strcpy(o, "ff");
    assert_false(gen_vocab_parse(&voc, big));
    o = big + sprintf(big, "utf8:");
    for (uint32_t cp = 0x4e00; cp < 0x4e00 + GEN_VOCAB_MAX; cp++) {
        uint8_t u[4];
        const int k = gen_utf8_encode(cp, u);
        for (int j = 0; j < k; j++, o += 2) snprintf(o, 3, "%02x", u[j]);
    }
    assert_true(gen_vocab_parse(&voc, big));
    assert_int_equal(voc.V, GEN_VOCAB_MAX);
    strcpy(o, "e9bfbf"); /* one more */
    assert_false(gen_vocab_parse(&voc, big));
    free(big);
    /* a corpus of more distinct characters than that is refused */
    const int64_t n = 3 * (GEN_VOCAB_MAX + 1);
    uint8_t *text = malloc((size_t)n);
    for (int64_t i = 0; i < GEN_VOCAB_MAX + 1; i++) gen_utf8_encode(0x4e00 + (uint32_t)i, text + 3 * i);
    assert_int_equal(gen_vocab_of_text(&voc, text, n), GEN_ERR_FORMAT);
    assert_non_null(strstr(gen_last_error(), "--tokenizer byte"));
    assert_int_equal(gen_vocab_of_text(&voc, text, n - 3), GEN_OK);
    assert_int_equal(voc.V, GEN_VOCAB_MAX);
    free(text);
}

static void test_moby_dick(void **state) {
    (void)state;
    TU_NEED_DATA("data/moby-dick.txt");
    const char *p = tu_source_path("data/moby-dick.txt");
    struct gen_text t;
    assert_int_equal(gen_text_load(p, &t), GEN_OK);
    assert_int_equal(t.n, 1204997);
    assert_non_null(strstr((const char *)t.bytes, "Call me Ishmael"));
    gen_text_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_moby_dick),
        cmocka_unit_test(test_fifo_and_loops),
        cmocka_unit_test(test_recursive_folder),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_char_vocab),
        cmocka_unit_test(test_char_vocab_invalid),
        cmocka_unit_test(test_stored_vocab),
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
