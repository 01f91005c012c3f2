/* main.c - the gen binary: everything else lives in libgen (src/cli/cli.c). */
#include "cli/cli.h"
#include "gen/comm.h"
#include "gen/core.h"

int main(int argc, char **argv) {
    gen_threads_spin_short(argv); /* may execute this program again, once */
    const int rc = gen_cli_main(argc, argv);
    gen_comm_finalize(); /* a job of several ranks ends together */
    return rc;
}
