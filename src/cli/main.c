/* main.c - the gen binary: everything else lives in libgen (src/cli/cli.c). */
#include "cli/cli.h"
#include "gen/comm.h"

int main(int argc, char **argv) {
    const int rc = gen_cli_main(argc, argv);
    gen_comm_finalize(); /* a job of several ranks ends together */
    return rc;
}
