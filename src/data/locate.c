/* locate.c - where a data set named on the command line is: the path as
 * given, else the data folders gen searches, so that an installed gen
 * finds its data sets without a checkout (see gen_data_find in data.h). */
#include <string.h>
#include <sys/stat.h>

#include "gen/data.h"

/* Fashion-MNIST where Debian's dataset-fashion-mnist installs it. */
#define DEBIAN_FASHION_MNIST "/usr/share/datasets/fashion-mnist"

enum { MAX_PLACES = 4 };

/* The name of a data set inside a data folder: NAME less a leading "./"
 * and "data/" (the checkout's data folder, which the defaults name). */
static const char *key_of(const char *name) {
    while (!strncmp(name, "./", 2)) name += 2;
    if (!strncmp(name, "data/", 5) && name[5]) name += 5;
    return name;
}

/* Adds "DIR/KEY" to the places (a path too long for a buffer is left out). */
static void add_place(char places[][GEN_DATA_PATH_MAX], int *n, const char *dir, const char *sub,
                      const char *key) {
    const int len = snprintf(places[*n], GEN_DATA_PATH_MAX, "%s%s%s", dir, sub, key);
    if (len > 0 && len < GEN_DATA_PATH_MAX) ++*n;
}

/* The places name may be, in the order they are searched. */
static int places_of(const char *name, char places[MAX_PLACES][GEN_DATA_PATH_MAX]) {
    int n = 0;
    add_place(places, &n, "", "", name);
    if (name[0] == '/') return n;
    const char *key = key_of(name);
    const char *env = getenv("GEN_DATA");
    if (env && env[0]) add_place(places, &n, env, "/", key);
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/') /* the XDG spec ignores a relative XDG_DATA_HOME */
        add_place(places, &n, xdg, "/gen/", key);
    else if (home && home[0])
        add_place(places, &n, home, "/.local/share/gen/", key);
    if (!strcmp(key, "fashion-mnist")) add_place(places, &n, DEBIAN_FASHION_MNIST, "", "");
    return n;
}

enum gen_status gen_data_find(const char *name, char *out, size_t size) {
    char places[MAX_PLACES][GEN_DATA_PATH_MAX];
    const int n = places_of(name, places);
    struct stat st;
    for (int k = 0; k < n; k++)
        if (stat(places[k], &st) == 0 && strlen(places[k]) < size) {
            memcpy(out, places[k], strlen(places[k]) + 1);
            return GEN_OK;
        }
    char looked[768];
    size_t used = 0;
    looked[0] = 0;
    for (int k = 0; k < n && used < sizeof looked; k++)
        used += (size_t)snprintf(looked + used, sizeof looked - used, "%s%.200s", k ? ", " : "",
                                 places[k]);
    if (name[0] != '/' && !(getenv("GEN_DATA") && getenv("GEN_DATA")[0]) && used < sizeof looked)
        snprintf(looked + used, sizeof looked - used, "; $GEN_DATA is not set");
    return gen_error(GEN_ERR_IO,
                     "%.200s: no such data set (looked in %s); fetch it with "
                     "scripts/fetch-data.sh (share/gen/fetch-data.sh where gen is installed), "
                     "or give --data PATH",
                     name, looked);
}
