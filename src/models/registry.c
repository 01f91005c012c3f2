/* registry.c - the list of model families, in the order gen --help shows. */
#include <string.h>

#include "gen/family.h"

extern const struct gen_family gen_family_gan, gen_family_vae, gen_family_transformer,
    gen_family_diffusion, gen_family_classifier;

const struct gen_family *const gen_families[] = {
    &gen_family_gan,
    &gen_family_vae,
    &gen_family_transformer,
    &gen_family_diffusion,
    &gen_family_classifier,
    NULL,
};

const struct gen_family *gen_family_find(const char *name) {
    for (int k = 0; gen_families[k]; k++)
        if (!strcmp(gen_families[k]->name, name)) return gen_families[k];
    return NULL;
}
