/* images.h - internal helpers shared by the image loaders (src/data). */
#ifndef GEN_DATA_IMAGES_H
#define GEN_DATA_IMAGES_H

#include "gen/data.h"

/* Converts one 8-bit image with `sc` channels (1 grey, 2 grey+alpha, 3 RGB,
 * 4 RGBA), laid out (h, w, sc) when `interleaved`, else (sc, h, w), to `dc`
 * (1 or 3) channels with alpha composited onto black; if size > 0 it is
 * centre-cropped to a square and resized to size x size, else kept h x w.
 * Writes (dc, oh, ow) to dst. Allocates scratch memory (NOMEM status). */
enum gen_status gen_image_fit(const uint8_t *src, int sc, int h, int w, int interleaved, int dc,
                              int size, uint8_t *dst);

/* The channels (1 or 3; 0: the data's) and side (0: native, at most
 * GEN_IMAGE_MAX_SIDE) a loader is asked for, checked before anything is
 * read: a usage error naming path, or GEN_OK. */
enum gen_status gen_images_check_request(const char *path, int channels, int size);

#endif
