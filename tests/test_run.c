/* test_run.c - run infrastructure: metrics lines, the NaN check, signals. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "testutil.h"

#include "gen/run.h"

static void test_metrics_file(void **state) {
    (void)state;
    char *tmp = tu_mkdtemp();
    assert_non_null(tmp);
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/runs/vae", tmp); /* parents are created */
    struct gen_runlog lg;
    assert_int_equal(gen_runlog_open(&lg, dir, 0, 1), GEN_OK);
    GEN_RUNLOG(&lg, 10, {"loss", 0.5}, {"lr", 1e-3});
    GEN_RUNLOG(&lg, 20, {"loss", NAN});
    GEN_RUNLOG(&lg, -1, {"test_nelbo", 101.25});
    gen_runlog_close(&lg);

    /* Appends across opens (a resumed run). */
    assert_int_equal(gen_runlog_open(&lg, dir, 0, 1), GEN_OK);
    GEN_RUNLOG(&lg, 30, {"loss", 0.25});
    gen_runlog_close(&lg);

    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    size_t n;
    char *text = tu_read_file(path, &n);
    assert_non_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        assert_non_null(cJSON_GetObjectItem(o, "elapsed"));
        const cJSON *step = cJSON_GetObjectItem(o, "step");
        if (lines == 0) {
            assert_int_equal((int)step->valuedouble, 10);
            assert_true(cJSON_GetObjectItem(o, "loss")->valuedouble == 0.5);
            assert_true(cJSON_GetObjectItem(o, "lr")->valuedouble == 1e-3);
        } else if (lines == 1) {
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "loss")));
        } else if (lines == 2) {
            assert_null(step);
            assert_true(cJSON_GetObjectItem(o, "test_nelbo")->valuedouble == 101.25);
        } else {
            assert_int_equal((int)step->valuedouble, 30);
        }
        cJSON_Delete(o);
    }
    assert_int_equal(lines, 4);
    free(text);

    /* No run directory: nothing written, still fine. */
    assert_int_equal(gen_runlog_open(&lg, NULL, 0, 1), GEN_OK);
    gen_runlog_set_items(&lg, 64, "img");
    gen_runlog_progress(&lg, 1, 10, 0.5);
    GEN_RUNLOG(&lg, 1, {"loss", 1.0});
    gen_runlog_close(&lg);

    /* A run directory that is a file: an error naming it. */
    snprintf(path, sizeof path, "%s/file", tmp);
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_not_equal(gen_runlog_open(&lg, path, 0, 1), GEN_OK);
    assert_non_null(strstr(gen_last_error(), path));
    tu_rmtree(tmp);
    free(tmp);
}

static void test_check_loss(void **state) {
    (void)state;
    assert_int_equal(gen_run_check_loss(1.5, 3), GEN_OK);
    assert_int_equal(gen_run_check_loss(0.0, 3), GEN_OK);
    assert_int_equal(gen_run_check_loss(NAN, 120), GEN_ERR_RUNTIME);
    assert_non_null(strstr(gen_last_error(), "step 120: loss is NaN"));
    assert_non_null(strstr(gen_last_error(), "training stopped"));
    assert_int_equal(gen_run_check_loss(-INFINITY, 7), GEN_ERR_RUNTIME);
    assert_non_null(strstr(gen_last_error(), "step 7: loss is Inf"));
}

static void test_signals(void **state) {
    (void)state;
    gen_run_interrupt_clear();
    assert_false(gen_run_interrupted());
    gen_run_signals_install();
    raise(SIGINT);
    assert_true(gen_run_interrupted());
    gen_run_interrupt_clear();
    gen_run_signals_install(); /* handlers reset themselves after one signal */
    raise(SIGTERM);
    assert_true(gen_run_interrupted());
    gen_run_interrupt_clear();
    /* A closed terminal saves and stops like SIGTERM; a closed pipe is
     * ignored (gen_runlog_write sees EPIPE instead). */
    raise(SIGHUP);
    assert_true(gen_run_interrupted());
    gen_run_interrupt_clear();
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
}

/* `gen train --json | head -1`: stdout is a pipe whose reader is gone. In
 * a child (stdout is replaced): the JSON lines stop after the first failed
 * write, the process lives, metrics.jsonl gets every line. */
static void test_closed_stdout(void **state) {
    (void)state;
    char *tmp = tu_mkdtemp();
    assert_non_null(tmp);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fds[2];
        if (pipe(fds) != 0 || dup2(fds[1], STDOUT_FILENO) < 0) _exit(2);
        close(fds[0]);
        close(fds[1]);
        gen_run_signals_install();
        struct gen_runlog lg;
        if (gen_runlog_open(&lg, tmp, 1, 1) != GEN_OK) _exit(3);
        for (int step = 1; step <= 3; step++) GEN_RUNLOG(&lg, step, {"loss", 0.5});
        int failed = lg.stdout_failed;
        gen_runlog_close(&lg);
        _exit(failed ? 0 : 4);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (!WIFEXITED(ws)) fail_msg("child killed by signal %d", WTERMSIG(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", tmp);
    size_t n;
    char *text = tu_read_file(path, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    assert_int_equal(lines, 3);
    free(text);
    tu_rmtree(tmp);
    free(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_file),
        cmocka_unit_test(test_check_loss),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_closed_stdout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
