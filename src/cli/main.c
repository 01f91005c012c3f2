/* main.c - the gen binary: everything else lives in libgen (src/cli/cli.c). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gen/comm.h"
#include "gen/core.h"

/* Under an address-space limit (ulimit -v), OpenBLAS 0.3.21 (Debian 12)
 * reserves a 128 MiB buffer for each of libgomp's threads as it loads and,
 * where the limit refuses one, tries again forever (OpenBLAS issue 5289,
 * fixed upstream since): `gen --version` hung under ulimit -v 300000 on 2
 * cores, and a machine of 32 cores needs 4 GiB before main. So under a
 * limit the libraries load with OMP_NUM_THREADS=1, one buffer;
 * gen_threads_init later sets gen's own threads and keeps OpenBLAS's at
 * one. This runs before every library's constructor (.preinit_array),
 * libgomp's included, and before libc's, which sets the environment back
 * to the array the kernel passed: so the variable goes into that array, in
 * place of the user's OMP_NUM_THREADS or of an entry no library reads as it
 * loads, and main puts the entry back before anything else reads it. An
 * environment with no such entry (env -i) cannot take the variable in
 * place: the program is executed again with it and GEN_LENT_VAR added, and
 * main then takes OMP_NUM_THREADS out and leaves GEN_LENT_VAR empty, an
 * entry the next execution (gen_threads_spin_short's) can borrow. A limit
 * below what this process holds already plus that one buffer would hang
 * all the same (`gen --version` under ulimit -v 100000): it is said on
 * stderr, exit 1. Nothing here may use what libc sets up in its
 * constructor: only system calls, and no stdio. */
static char **lent;    /* the entry holding OMP_NUM_THREADS=1, or NULL */
static char *lent_was; /* what it held */

#define OPENBLAS_BUFFER_KIB (128ull << 10)
#define LOAD_SLACK_KIB      (1ull << 10) /* what loading maps besides (measured: 150 KiB) */
#define MAX_ENV             4096         /* entries copied to execute again with */

/* The KiB of address space this process holds (/proc/self/statm), or 0. */
static unsigned long long held_kib(void) {
    char buf[64];
    const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    const ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    unsigned long long pages = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (unsigned)(buf[i] - '0');
    return pages * (unsigned long long)getpagesize() / 1024;
}

/* Appends v in decimal to buf at *at (buf of 24 bytes more at least). */
static void put_number(char *buf, size_t *at, unsigned long long v) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (n) buf[(*at)++] = digits[--n];
}

static void put_text(char *buf, size_t *at, const char *text) {
    while (*text) buf[(*at)++] = *text++;
}

/* One line on stderr and exit 1 when the limit cannot hold one buffer. */
static void refuse_tight_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return;
    const unsigned long long held = held_kib(), limit = (unsigned long long)r.rlim_cur / 1024;
    const unsigned long long need = held + OPENBLAS_BUFFER_KIB + LOAD_SLACK_KIB;
    if (!held || limit >= need) return;
    char line[256];
    size_t at = 0;
    put_text(line, &at, "gen: the address-space limit (ulimit -v) of ");
    put_number(line, &at, limit);
    put_text(line, &at,
             " KiB is too small to start: OpenBLAS reserves 128 MiB as it loads, "
             "about ");
    put_number(line, &at, need);
    put_text(line, &at, " KiB in all\n");
    const ssize_t w = write(2, line, at);
    (void)w;
    _exit(1);
}

static void load_one_thread(int argc, char **argv, char **envp) {
    (void)argc;
    static char one[] = "OMP_NUM_THREADS=1";
    static const char *const spare[] = {
        "OMP_NUM_THREADS=", "GEN_LENT_VAR=", "_=", "OLDPWD=", "SHLVL=", "PWD="};
    if (!envp || !gen_address_limited()) return;
    refuse_tight_limit();
    for (size_t k = 0; k < sizeof spare / sizeof spare[0]; k++)
        for (char **e = envp; *e; e++)
            if (!strncmp(*e, spare[k], strlen(spare[k]))) {
                lent = e, lent_was = *e, *e = one;
                return;
            }
    static char *with[MAX_ENV + 3];
    static char mark[] = "GEN_LENT_VAR=OMP_NUM_THREADS";
    size_t n = 0;
    while (envp[n] && n < MAX_ENV) with[n] = envp[n], n++;
    if (envp[n]) return; /* too many to copy: as it is */
    with[n] = one, with[n + 1] = mark, with[n + 2] = NULL;
    char self[4096];
    if (gen_self_path(self, sizeof self)) execve(self, argv, with); /* returns only on failure */
}
typedef void (*preinit_fn)(int, char **, char **);
__attribute__((section(".preinit_array"), used)) static const preinit_fn preinit = load_one_thread;

/* A stack limit (ulimit -s) too small for gen's commands crashed them:
 * a command's state holds vocabularies (struct gen_vocab, 32 KiB each),
 * and a training took 200-256 KiB of stack. Below STACK_MIN_KIB the soft
 * limit is raised to 8 MiB (Linux's default) where the hard limit allows,
 * before gen_threads_spin_short's execution, whose threads then get it
 * too; else it is said in one line. */
#define STACK_MIN_KIB 512

static int stack_enough(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_STACK, &r) != 0 || r.rlim_cur == RLIM_INFINITY ||
        r.rlim_cur >= (rlim_t)STACK_MIN_KIB * 1024)
        return 1;
    const rlim_t had = r.rlim_cur;
    rlim_t want = (rlim_t)8 << 20;
    if (r.rlim_max != RLIM_INFINITY && want > r.rlim_max) want = r.rlim_max;
    if (want >= (rlim_t)STACK_MIN_KIB * 1024) {
        r.rlim_cur = want;
        if (setrlimit(RLIMIT_STACK, &r) == 0) return 1;
    }
    fprintf(stderr, "gen: the stack limit (ulimit -s) of %llu KiB is too small: gen needs %d KiB\n",
            (unsigned long long)had / 1024, STACK_MIN_KIB);
    return 0;
}

int main(int argc, char **argv) {
    if (lent) *lent = lent_was;
    const char *var = getenv("GEN_LENT_VAR");
    if (var && !strcmp(var, "OMP_NUM_THREADS")) { /* added by load_one_thread, not the user's */
        unsetenv("OMP_NUM_THREADS");
        setenv("GEN_LENT_VAR", "", 1);
    }
    if (!stack_enough()) return 1;
    gen_threads_spin_short(argv); /* may execute this program again, once */
    const int rc = gen_cli_main(argc, argv);
    gen_comm_finalize(); /* a job of several ranks ends together */
    return rc;
}
