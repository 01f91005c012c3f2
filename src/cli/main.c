/* main.c - the gen binary: everything else lives in libgen (src/cli/cli.c). */
#include "cli/cli.h"

int main(int argc, char **argv) { return gen_cli_main(argc, argv); }
