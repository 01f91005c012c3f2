/* test_text.c - text files and folders of .txt files. */
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

static void test_moby_dick(void **state) {
    (void)state;
    const char *p = tu_source_path("data/moby-dick.txt");
    FILE *f = fopen(p, "rb");
    if (!f) {
        print_message("skipping: %s not present (scripts/fetch-data.sh)\n", p);
        skip();
    }
    fclose(f);
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
    };
    return cmocka_run_group_tests(tests, tu_tmp_setup, tu_tmp_teardown);
}
