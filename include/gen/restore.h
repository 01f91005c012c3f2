/* restore.h - the image maths of restoration with a diffusion model (`gen
 * sample diffusion --inpaint | --superres K | --denoise SIGMA`, `gen eval
 * diffusion --restore MODE`): what a restoration task is, the degradations
 * gen applies to clean images (so the family and `gen eval` degrade test
 * images the same way, with the same noise), the masks, the low-pass
 * projection of super-resolution, and the classical baselines a
 * restoration is measured against (bicubic upsampling, Gaussian blur,
 * mean-fill). Images are float (C, H, W), planar, in [0, 1] unless said. */
#ifndef GEN_RESTORE_H
#define GEN_RESTORE_H

#include "gen/config.h"
#include "gen/core.h"
#include "gen/data.h"

enum gen_restore_mode {
    GEN_RESTORE_NONE,
    GEN_RESTORE_INPAINT,  /* fill the pixels a mask hides                    */
    GEN_RESTORE_SUPERRES, /* an image K times larger whose K x K means are the input's pixels */
    GEN_RESTORE_DENOISE,  /* remove Gaussian noise of a known level           */
};

/* The value of a hidden pixel in a degraded (masked) image: mid grey. */
#define GEN_RESTORE_HOLE 0.5f

struct gen_restore_task {
    enum gen_restore_mode mode;
    int factor;      /* superres: K, 2 or 4                                    */
    double sigma;    /* denoise: noise standard deviation, pixels in [0, 1]     */
    double strength; /* denoise: start the chain at step S T (0: where the
                        model's noise level matches sigma)                     */
    const char *mask; /* inpaint: centre|center|left|right|top|bottom|strokes,
                         or the name of mask_image                              */
    const struct gen_image_set *mask_image; /* inpaint: a mask (1, 1, H, W),
                         light = keep, or NULL                                  */
    int eval;        /* from `gen eval --restore` (else a sampling mode)       */
};

/* The task of a command's options: `--restore MODE` (gen eval; the mode's
 * parameters come from --superres, --denoise, --strength, --mask, which
 * have defaults there), else whichever of --inpaint, --superres K,
 * --denoise SIGMA is given (mode NONE when none is). mask_image: the
 * --mask file when --mask names one, else NULL. GEN_ERR_USAGE for two
 * modes at once, K other than 2 or 4, --strength without --denoise,
 * --inpaint without --mask, --mask without --inpaint. */
enum gen_status gen_restore_task_of(const struct gen_config *opts,
                                    const struct gen_image_set *mask_image,
                                    struct gen_restore_task *t);
/* GEN_ERR_USAGE / GEN_ERR_FORMAT when the task cannot work on clean
 * images of C x H x W: sides not divisible by K, a mask image of another
 * size, an unknown mask name. */
enum gen_status gen_restore_check(const struct gen_restore_task *t, int C, int H, int W);
/* A short name of the task for tables: "inpaint strokes", "superres x4",
 * "denoise sigma 0.3". */
void gen_restore_describe(const struct gen_restore_task *t, char *buf, size_t size);

/* The side of a degraded image: H / K for super-resolution, else H. */
int gen_restore_low_side(const struct gen_restore_task *t, int side);

/* keep (H, W) of image `index` of a request with `seed`: 1 for a known
 * pixel, 0 for one to restore. A region name hides that part (centre: the
 * middle half of each side); strokes: 2 to 4 random brush strokes of a few
 * segments each (free-form masks), drawn from a stream of (seed, index); a
 * mask image keeps its light pixels (>= 128). The task must have passed
 * gen_restore_check. */
void gen_restore_mask(const struct gen_restore_task *t, uint64_t seed, int64_t index, int H, int W,
                      float *keep);

/* Degrades clean image x (C, H, W) in [0, 1], image `index` of a request
 * with `seed`, into y:
 *   superres: y (C, H/K, W/K), the mean of each K x K block;
 *   denoise:  y (C, H, W) = x + sigma z, z ~ N(0, I) from a stream of
 *             (seed, index); not clipped;
 *   inpaint:  y (C, H, W) = x where keep, GEN_RESTORE_HOLE elsewhere, and
 *             keep (H, W) as gen_restore_mask (keep may be NULL otherwise).
 * The family degrades the test images of `gen sample` with this, and `gen
 * eval --restore` its own for the baselines, so both see the same y. */
void gen_restore_degrade(const struct gen_restore_task *t, uint64_t seed, int64_t index, int C,
                         int H, int W, const float *x, float *y, float *keep);

/* ---- operators ---- */

/* y (C, H/K, W/K): the mean of each K x K block of x (C, H, W). */
void gen_restore_downsample(const float *x, int C, int H, int W, int K, float *y);
/* x (C, H, W): each pixel of y (C, H/K, W/K) repeated over its block. */
void gen_restore_upsample_nearest(const float *y, int C, int H, int W, int K, float *x);
/* The low-pass projection of super-resolution, in place on x (C, H, W):
 * each K x K block is moved so that its mean is the pixel of target
 * (C, H/K, W/K): x <- x - up(down(x)) + up(target) (ILVR, Choi et al.
 * 2021, with box downsampling and nearest upsampling, which make it an
 * orthogonal projection). With lo < hi the result also stays in [lo, hi]:
 * each block becomes clip(x + c, lo, hi) with the c that makes its mean
 * the target (the Euclidean projection onto both constraints; exact to
 * rounding when the target is in [lo, hi]). */
void gen_restore_match_blocks(float *x, int C, int H, int W, int K, const float *target, float lo,
                              float hi);

/* ---- classical baselines ---- */

/* Separable Gaussian blur of x (C, H, W) with standard deviation s pixels
 * (kernel radius ceil(3 s), normalised, edges clamped) into out; s <= 0
 * copies. */
void gen_restore_blur(const float *x, int C, int H, int W, double s, float *out);
/* Bicubic (Catmull-Rom) upsampling of y (C, h, w) by K into out (C, K h,
 * K w) through stb_image_resize, edges clamped. GEN_ERR_NOMEM. */
enum gen_status gen_restore_bicubic(const float *y, int C, int h, int w, int K, float *out);
/* The hidden pixels of y (C, H, W) filled with the mean of the known
 * pixels of their channel (0.5 when none is known), into out. */
void gen_restore_mean_fill(const float *y, const float *keep, int C, int H, int W, float *out);

/* The blur sigmas the denoising baseline chooses from. */
#define GEN_RESTORE_BLUR_GRID {0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0}
/* The blur of the grid with the highest mean PSNR on n clean images x
 * (n, C, H, W) (training images, not the test images it is then used
 * on) noised with the task's sigma from `seed`. GEN_ERR_NOMEM. */
enum gen_status gen_restore_tune_blur(const struct gen_restore_task *t, const float *x, int64_t n,
                                      int C, int H, int W, uint64_t seed, double *best);

/* The classical restoration of degraded y (as gen_restore_degrade writes
 * it, with keep) into out (C, H, W): bicubic, a Gaussian blur of
 * blur_sigma, or mean-fill. GEN_ERR_NOMEM. */
enum gen_status gen_restore_baseline(const struct gen_restore_task *t, const float *y,
                                     const float *keep, int C, int H, int W, double blur_sigma,
                                     float *out);

/* Consistency of a restoration r (C, H, W) with its degraded input y: the
 * squared differences between r degraded without noise (downsampled for
 * super-resolution, its known pixels for inpainting, itself for
 * denoising) and y, added to *sum_sq, their number to *count. */
void gen_restore_residual(const struct gen_restore_task *t, const float *r, const float *y,
                          const float *keep, int C, int H, int W, double *sum_sq, int64_t *count);

#endif
