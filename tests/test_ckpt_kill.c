/* test_ckpt_kill.c - a process killed (SIGKILL) at any moment while saving
 * checkpoints never leaves a torn or missing checkpoint behind: the file at
 * the path is always a complete, valid earlier or later version. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen/io.h"
#include "testutil.h"

#define N_FLOATS (1 << 20) /* 4 MiB of data: a save takes a while */

static void save_forever(const char *path) {
    float *data = malloc(N_FLOATS * sizeof(float));
    for (int version = 1;; version++) {
        for (int i = 0; i < N_FLOATS; i++) data[i] = (float)version;
        char v[32];
        snprintf(v, sizeof v, "%d", version);
        struct gen_st_entry e = {"w", 1, (int64_t[]){N_FLOATS}, data, GEN_ST_F32, NULL};
        struct gen_kv kv = {"version", v};
        if (gen_st_save(path, &e, 1, &kv, 1) != GEN_OK) _exit(3);
    }
}

static void test_kill_during_save(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    /* A first complete version. */
    float one = 0;
    struct gen_st_entry e = {"w", 1, (int64_t[]){1}, &one, GEN_ST_F32, NULL};
    struct gen_kv kv = {"version", "0"};
    assert_int_equal(gen_st_save(path, &e, 1, &kv, 1), GEN_OK);
    struct gen_rng r;
    gen_rng_seed(&r, (uint64_t)time(NULL));
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) save_forever(path);
        usleep((useconds_t)(20000 + gen_rng_below(&r, 60000)));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        struct gen_st_file *f;
        enum gen_status st = gen_st_open(path, 0, &f);
        if (st != GEN_OK) fprintf(stderr, "  round %d: %s\n", round, gen_last_error());
        assert_int_equal(st, GEN_OK);
        const char *v = gen_st_meta(f, "version");
        assert_non_null(v);
        const struct gen_st_tensor *t = gen_st_find(f, "w");
        assert_non_null(t);
        /* Every value of the tensor belongs to the version in the header. */
        float want = (float)atoi(v);
        for (int64_t i = 0; i < t->numel; i++)
            if (t->data[i] != want) fail_msg("torn checkpoint: element %lld", (long long)i);
        gen_st_close(f);
    }
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_during_save)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
