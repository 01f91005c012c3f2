/* main.c - the gen binary: everything else lives in libgen (src/cli/cli.c). */
#include <string.h>

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
 * loads, and main puts the entry back before anything else reads it. */
static char **lent;    /* the entry holding OMP_NUM_THREADS=1, or NULL */
static char *lent_was; /* what it held */

static void load_one_thread(int argc, char **argv, char **envp) {
    (void)argc, (void)argv;
    static char one[] = "OMP_NUM_THREADS=1";
    static const char *const spare[] = {"OMP_NUM_THREADS=", "_=", "OLDPWD=", "SHLVL=", "PWD="};
    if (!envp || !gen_address_limited()) return;
    for (size_t k = 0; k < sizeof spare / sizeof spare[0]; k++)
        for (char **e = envp; *e; e++)
            if (!strncmp(*e, spare[k], strlen(spare[k]))) {
                lent = e, lent_was = *e, *e = one;
                return;
            }
}
typedef void (*preinit_fn)(int, char **, char **);
__attribute__((section(".preinit_array"), used)) static const preinit_fn preinit = load_one_thread;

int main(int argc, char **argv) {
    if (lent) *lent = lent_was;
    gen_threads_spin_short(argv); /* may execute this program again, once */
    const int rc = gen_cli_main(argc, argv);
    gen_comm_finalize(); /* a job of several ranks ends together */
    return rc;
}
