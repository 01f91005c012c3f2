/* metrics.c - sample-quality metrics of the image families (gen eval):
 * Frechet distance, classifier score and k-NN precision/recall on the
 * features of gen's classifier (src/models/classifier.h), each next to the
 * baseline of real training images against the test images.
 *
 * Frechet distance between N(mu1, S1) and N(mu2, S2):
 *   |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2
 * (S1^1/2 S2 S1^1/2 is symmetric PSD and has the eigenvalues of S1 S2, so
 * both square roots come from symmetric eigen-decompositions, here by
 * LAPACK's dsyevd in double).
 * Classifier score: exp(E_x KL(p(y|x) || p(y))), p(y) the mean of p(y|x).
 * Precision/recall (Kynkaanniemi et al. 2019): each point's k-NN ball in
 * its own set approximates that set's manifold; precision is the share of
 * generated points inside the real manifold, recall the share of real
 * points inside the generated one. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "gen/comm.h"
#include "gen/data.h"
#include "gen/io.h"
#include "gen/kernels.h"
#include "gen/metrics.h"
#include "gen/run.h"
#include "models/classifier.h"

#define PR_K 3
#define PR_BLOCK 256 /* rows of one distance block */
#define MIN_IMAGES 10

/* ---- linear algebra ---- */

/* LAPACK's symmetric eigensolver (divide and conquer), from the OpenBLAS
 * gen links: Debian ships no LAPACKE inside it, so the Fortran entry point,
 * arguments by reference, with the hidden lengths of the two character
 * arguments last (gfortran's ABI). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);

/* Eigen-decomposition of a symmetric n x n matrix a (row-major,
 * overwritten) by LAPACK dsyevd: eigenvalues ascending in lambda; with
 * `vectors`, row k of a then holds the unit eigenvector of lambda[k]
 * (LAPACK's column-major columns are our rows; a symmetric a reads the same
 * either way). `what` names the matrix in the error message. */
static enum gen_status sym_eigen(double *a, int n, int vectors, double *lambda, const char *what) {
    const char jobz = vectors ? 'V' : 'N', uplo = 'U';
    int lwork = -1, liwork = -1, iwork_query = 0, info = 0;
    double work_query = 0;
    dsyevd_(&jobz, &uplo, &n, a, &n, lambda, &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
    if (info != 0)
        return gen_error(GEN_ERR_RUNTIME, "Frechet distance: LAPACK dsyevd workspace query for %s failed (info %d)",
                         what, info);
    lwork = (int)work_query;
    liwork = iwork_query;
    double *work = gen_alloc((size_t)lwork * sizeof *work);
    int *iwork = gen_alloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        gen_free(work);
        gen_free(iwork);
        return GEN_ERR_NOMEM;
    }
    dsyevd_(&jobz, &uplo, &n, a, &n, lambda, work, &lwork, iwork, &liwork, &info, 1, 1);
    gen_free(work);
    gen_free(iwork);
    if (info < 0)
        return gen_error(GEN_ERR_RUNTIME, "Frechet distance: LAPACK dsyevd rejected argument %d for %s (%d x %d)",
                         -info, what, n, n);
    if (info > 0)
        return gen_error(GEN_ERR_RUNTIME,
                         "Frechet distance: the eigen-decomposition of %s (%d x %d) did not converge "
                         "(LAPACK dsyevd info %d)", what, n, n, info);
    return GEN_OK;
}

/* c = a b for n x n matrices. */
static void matmul(const double *a, const double *b, double *c, int n) {
    memset(c, 0, (size_t)n * (size_t)n * sizeof *c);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
}

enum gen_status gen_feature_stats(const float *x, int64_t n, int d, double *mean, double *cov) {
    GEN_ASSERT(n >= 2 && d >= 1);
    double *row = gen_alloc((size_t)d * sizeof *row);
    if (!row) return GEN_ERR_NOMEM;
    memset(mean, 0, (size_t)d * sizeof *mean);
    memset(cov, 0, (size_t)d * (size_t)d * sizeof *cov);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mean[j] += x[i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= (double)n;
    for (int64_t i = 0; i < n; i++) { /* upper triangle of sum (x - mean)(x - mean)^T */
        for (int j = 0; j < d; j++) row[j] = x[i * d + j] - mean[j];
        for (int j = 0; j < d; j++) {
            double rj = row[j];
            if (rj == 0) continue; /* ReLU features are often exactly zero */
            double *cj = cov + (int64_t)j * d;
            for (int k = j; k < d; k++) cj[k] += rj * row[k];
        }
    }
    for (int j = 0; j < d; j++)
        for (int k = j; k < d; k++) {
            cov[j * d + k] /= (double)(n - 1);
            cov[k * d + j] = cov[j * d + k];
        }
    gen_free(row);
    return GEN_OK;
}

/* Non-zero if any of the n values is NaN or infinite. */
static int not_finite(const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 1;
    return 0;
}

enum gen_status gen_frechet_distance(const double *mu1, const double *s1, const double *mu2,
                                     const double *s2, int d, double *fd) {
    GEN_ASSERT(d >= 1);
    size_t dd = (size_t)d * (size_t)d;
    /* NaN or inf would come out as FD 0 (or stall LAPACK): refuse it. */
    if (not_finite(mu1, (size_t)d) || not_finite(s1, dd) || not_finite(mu2, (size_t)d) || not_finite(s2, dd))
        return gen_error(GEN_ERR_RUNTIME, "Frechet distance: the feature means or covariances are not finite "
                                          "(NaN or inf features)");
    double *a = gen_alloc(3 * dd * sizeof *a), *lambda = gen_alloc((size_t)d * sizeof *lambda);
    if (!a || !lambda) {
        gen_free(a);
        gen_free(lambda);
        return GEN_ERR_NOMEM;
    }
    double *r = a + dd, *t = a + 2 * dd;
    /* r = S1^1/2 = V diag(sqrt(max(lambda, 0))) V^T, eigenvector k in row k of a */
    memcpy(a, s1, dd * sizeof *a);
    enum gen_status st = sym_eigen(a, d, 1, lambda, "the first covariance");
    if (st != GEN_OK) goto done;
    for (int k = 0; k < d; k++) lambda[k] = sqrt(lambda[k] > 0 ? lambda[k] : 0);
    memset(r, 0, dd * sizeof *r);
    for (int k = 0; k < d; k++) {
        const double *vk = a + (size_t)k * d;
        for (int i = 0; i < d; i++) {
            double c = lambda[k] * vk[i];
            for (int j = 0; j < d; j++) r[i * d + j] += c * vk[j];
        }
    }
    /* a = r S2 r, symmetrised against rounding; tr sqrt(a) from its eigenvalues */
    matmul(r, s2, t, d);
    matmul(t, r, a, d);
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++) a[i * d + j] = a[j * d + i] = 0.5 * (a[i * d + j] + a[j * d + i]);
    st = sym_eigen(a, d, 0, lambda, "S1^1/2 S2 S1^1/2");
    if (st != GEN_OK) goto done;
    double tr_sqrt = 0, tr = 0, dist = 0;
    for (int i = 0; i < d; i++) {
        tr_sqrt += sqrt(lambda[i] > 0 ? lambda[i] : 0);
        tr += s1[i * d + i] + s2[i * d + i];
        dist += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    double value = dist + tr - 2 * tr_sqrt;
    *fd = value > 0 ? value : 0;
done:
    gen_free(a);
    gen_free(lambda);
    return st;
}

double gen_classifier_score(const float *p, int64_t n, int k) {
    GEN_ASSERT(n >= 1 && k >= 1);
    double *py = calloc((size_t)k, sizeof *py);
    GEN_ASSERT(py);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++) py[j] += p[i * k + j];
    for (int j = 0; j < k; j++) py[j] /= (double)n;
    double kl = 0;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            double pij = p[i * k + j];
            if (pij > 0 && py[j] > 0) kl += pij * log(pij / py[j]);
        }
    free(py);
    return exp(kl / (double)n);
}

/* ---- restoration: PSNR and SSIM ---- */

double gen_psnr(const float *a, const float *b, int64_t n) {
    double se = 0;
    for (int64_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se > 0 ? 10 * log10((double)n / se) : INFINITY;
}

/* SSIM (Wang et al. 2004): an 11 x 11 Gaussian window of sigma 1.5 over
 * every position where it fits ("valid"), with
 *   SSIM = (2 mu_a mu_b + C1) (2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1) (s_a^2 + s_b^2 + C2)),
 * C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1, (co)variances weighted by the
 * window (population form); the mean over positions and channels. */
#define SSIM_R 5
double gen_ssim(const float *a, const float *b, int C, int H, int W) {
    GEN_ASSERT(H > 2 * SSIM_R && W > 2 * SSIM_R);
    double g[2 * SSIM_R + 1], sum = 0;
    for (int i = -SSIM_R; i <= SSIM_R; i++) sum += g[i + SSIM_R] = exp(-i * i / (2 * 1.5 * 1.5));
    for (int i = 0; i <= 2 * SSIM_R; i++) g[i] /= sum;
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    double total = 0;
    for (int c = 0; c < C; c++) {
        const float *pa = a + (int64_t)c * H * W, *pb = b + (int64_t)c * H * W;
        for (int y = SSIM_R; y < H - SSIM_R; y++)
            for (int x = SSIM_R; x < W - SSIM_R; x++) {
                double ma = 0, mb = 0, aa = 0, bb = 0, ab = 0;
                for (int dy = -SSIM_R; dy <= SSIM_R; dy++)
                    for (int dx = -SSIM_R; dx <= SSIM_R; dx++) {
                        const double w = g[dy + SSIM_R] * g[dx + SSIM_R];
                        const double u = pa[(y + dy) * W + x + dx], v = pb[(y + dy) * W + x + dx];
                        ma += w * u, mb += w * v, aa += w * u * u, bb += w * v * v, ab += w * u * v;
                    }
                const double va = aa - ma * ma, vb = bb - mb * mb, cov = ab - ma * mb;
                total += (2 * ma * mb + c1) * (2 * cov + c2) /
                         ((ma * ma + mb * mb + c1) * (va + vb + c2));
            }
    }
    return total / ((double)C * (H - 2 * SSIM_R) * (W - 2 * SSIM_R));
}

/* ---- k-NN precision and recall ---- */

/* Squared norms of n rows of x (n, d). */
static void row_norms(const float *x, int64_t n, int d, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        out[i] = (float)s;
    }
}

/* Squared distances of rows a[0..na) to every row of b (nb): dist (na, nb). */
static void sq_dists(const float *a, const float *an, int64_t na, const float *b, const float *bn,
                     int64_t nb, int d, float *dist) {
    const enum gen_precision was = gen_kernels_precision(); /* metrics are fp32's, whatever */
    gen_kernels_set_precision(GEN_PRECISION_FP32);           /* --precision the model runs in */
    gen_gemm(GEN_NOTRANS, GEN_TRANS, na, nb, d, -2.0f, a, b, 0.0f, dist);
    gen_kernels_set_precision(was);
    for (int64_t i = 0; i < na; i++)
        for (int64_t j = 0; j < nb; j++) {
            float v = dist[i * nb + j] + an[i] + bn[j];
            dist[i * nb + j] = v > 0 ? v : 0;
        }
}

/* radius2[i]: squared distance from x[i] to its k-th nearest other row. */
static void knn_radii(const float *x, const float *xn, int64_t n, int d, int k, float *dist,
                      float *radius2) {
    for (int64_t i0 = 0; i0 < n; i0 += PR_BLOCK) {
        int64_t b = n - i0 < PR_BLOCK ? n - i0 : PR_BLOCK;
        sq_dists(x + i0 * d, xn + i0, b, x, xn, n, d, dist);
        for (int64_t i = 0; i < b; i++) {
            float best[PR_K]; /* the k smallest, ascending */
            for (int m = 0; m < k; m++) best[m] = INFINITY;
            const float *row = dist + i * n;
            for (int64_t j = 0; j < n; j++) {
                if (j == i0 + i || row[j] >= best[k - 1]) continue;
                int m = k - 1;
                while (m > 0 && best[m - 1] > row[j]) best[m] = best[m - 1], m--;
                best[m] = row[j];
            }
            radius2[i0 + i] = best[k - 1];
        }
    }
}

/* Share of rows of q inside some ball (centre p[j], squared radius r2[j]). */
static double coverage(const float *q, const float *qn, int64_t nq, const float *p,
                       const float *pn, const float *r2, int64_t np, int d, float *dist) {
    int64_t inside = 0;
    for (int64_t i0 = 0; i0 < nq; i0 += PR_BLOCK) {
        int64_t b = nq - i0 < PR_BLOCK ? nq - i0 : PR_BLOCK;
        sq_dists(q + i0 * d, qn + i0, b, p, pn, np, d, dist);
        for (int64_t i = 0; i < b; i++) {
            const float *row = dist + i * np;
            for (int64_t j = 0; j < np; j++)
                if (row[j] <= r2[j]) {
                    inside++;
                    break;
                }
        }
    }
    return (double)inside / (double)nq;
}

enum gen_status gen_precision_recall(const float *real, int64_t nr, const float *fake, int64_t ng,
                                     int d, int k, double *precision, double *recall) {
    GEN_ASSERT(k >= 1 && k <= PR_K && nr > k && ng > k);
    int64_t wide = nr > ng ? nr : ng;
    size_t floats = (size_t)(2 * (nr + ng) + PR_BLOCK * wide);
    float *buf = gen_alloc(floats * sizeof *buf);
    if (!buf) return gen_error(GEN_ERR_NOMEM, "precision/recall: out of memory for %lld x %lld points",
                               (long long)nr, (long long)ng);
    float *rn = buf, *gn = rn + nr, *rr = gn + ng, *gr = rr + nr, *dist = gr + ng;
    row_norms(real, nr, d, rn);
    row_norms(fake, ng, d, gn);
    knn_radii(real, rn, nr, d, k, dist, rr);
    knn_radii(fake, gn, ng, d, k, dist, gr);
    *precision = coverage(fake, gn, ng, real, rn, rr, nr, d, dist);
    *recall = coverage(real, rn, nr, fake, gn, gr, ng, d, dist);
    gen_free(buf);
    return GEN_OK;
}

/* ---- gen eval for image families ---- */

/* Feature-space summary of one image set. */
struct feats {
    int64_t n;
    float *f;      /* (n, 128) */
    float *p;      /* (n, K)   */
    double *mean;  /* (128)    */
    double *cov;   /* (128, 128) */
};

static void feats_free(struct feats *s) {
    gen_free(s->f);
    gen_free(s->p);
    gen_free(s->mean);
    gen_free(s->cov);
    memset(s, 0, sizeof *s);
}

/* Embeds images (n, C, H, W) of the classifier's shape. */
static enum gen_status embed(struct gen_classifier *m, const float *images, int64_t n,
                             struct feats *s) {
    const int d = GEN_CLASSIFIER_FEATURES;
    s->n = n;
    s->f = gen_alloc((size_t)(n * d) * sizeof(float));
    s->p = gen_alloc((size_t)(n * m->K) * sizeof(float));
    s->mean = gen_alloc((size_t)d * sizeof(double));
    s->cov = gen_alloc((size_t)d * d * sizeof(double));
    if (!s->f || !s->p || !s->mean || !s->cov) return GEN_ERR_NOMEM;
    const enum gen_precision was = gen_kernels_precision(); /* as sq_dists */
    gen_kernels_set_precision(GEN_PRECISION_FP32);
    gen_classifier_embed(m, images, n, s->f, s->p);
    gen_kernels_set_precision(was);
    return gen_feature_stats(s->f, n, d, s->mean, s->cov);
}

/* Pixels of idx[0..n) of a set (already the classifier's shape) in [0, 1]. */
static float *set_to_float(const struct gen_image_set *set, const int32_t *idx, int64_t n) {
    int64_t D = (int64_t)set->c * set->h * set->w;
    float *x = gen_alloc((size_t)(n * D) * sizeof *x);
    if (!x) return NULL;
    for (int64_t i = 0; i < n; i += 1024) {
        int count = (int)(n - i < 1024 ? n - i : 1024);
        int32_t chunk[1024];
        for (int k = 0; k < count; k++) chunk[k] = idx ? idx[i + k] : (int32_t)(i + k);
        gen_images_batch(set, chunk, count, x + i * D, 0.0f, 1.0f);
    }
    return x;
}

/* Converts images (n, c, h, w) to (n, C, H, W): grey is replicated, RGB
 * becomes luma, sides are resized (gen_resize_f32). */
static enum gen_status convert_images(const float *in, int64_t n, int c, int h, int w, float *out,
                                      int C, int H, int W) {
    float *tmp = gen_alloc((size_t)C * (size_t)h * (size_t)w * sizeof *tmp);
    if (!tmp) return GEN_ERR_NOMEM;
    int64_t hw = (int64_t)h * w, in_per = c * hw, out_per = (int64_t)C * H * W;
    enum gen_status st = GEN_OK;
    for (int64_t i = 0; i < n && st == GEN_OK; i++) {
        const float *src = in + i * in_per;
        for (int ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < hw; k++) {
                float v;
                if (c == C) v = src[ch * hw + k];
                else if (c == 1) v = src[k];
                else if (C == 1 && c >= 3) v = 0.299f * src[k] + 0.587f * src[hw + k] + 0.114f * src[2 * hw + k];
                else v = src[(ch < c ? ch : 0) * hw + k];
                tmp[ch * hw + k] = v;
            }
        st = gen_resize_f32(tmp, C, h, w, out + i * out_per, H, W);
    }
    gen_free(tmp);
    return st;
}

/* Derived per-chunk seed: chunks of one evaluation never share noise. */
static uint64_t chunk_seed(uint64_t seed, int64_t chunk) {
    struct gen_rng r;
    gen_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(chunk + 1)));
    return gen_rng_next(&r);
}

/* map[k]: the class of the test set named as names[k] (K classes; names
 * NULL: the same index), or -1 when the test set has no such class. */
static void map_classes(char *const *names, int K, const struct gen_image_set *test, int32_t *map) {
    for (int k = 0; k < K; k++) {
        if (names && test->class_names)
            map[k] = gen_class_find(test->class_names, test->n_classes, names[k]);
        else
            map[k] = k < test->n_classes ? k : -1;
    }
}

/* The generated or --samples images, as (n, C, H, W) for the classifier,
 * and their classes as classes of the test set (*labels; NULL when they
 * have none). */
static enum gen_status fake_images(const struct gen_config *cfg, struct gen_classifier *m,
                                   const struct gen_eval_source *src,
                                   const struct gen_image_set *test, const char *data, int quiet,
                                   float **out, int64_t *n_out, int32_t **labels) {
    int C = (int)m->C, H = (int)m->H, W = (int)m->W;
    int64_t n = gen_opt_int(cfg, &gen_eval_image_options[GEN_EVAL_IMAGE_NUM]);
    const char *dir = gen_opt_str(cfg, &gen_eval_image_options[GEN_EVAL_IMAGE_SAMPLES]);
    enum gen_status st;
    *out = NULL;
    if (dir) {
        struct gen_image_set set = {0};
        st = gen_png_load_folder(dir, C, 0, &set);
        if (st != GEN_OK) return st;
        if (set.n < MIN_IMAGES) {
            gen_image_set_free(&set);
            return gen_error(GEN_ERR_FORMAT, "%s: %lld image%s; the metrics need at least %d", dir,
                             (long long)set.n, set.n == 1 ? "" : "s", MIN_IMAGES);
        }
        if (set.h != H || set.w != W) {
            if (H != W) {
                gen_image_set_free(&set);
                return gen_error(GEN_ERR_FORMAT, "%s: images are %dx%d, the classifier wants %dx%d",
                                 dir, set.h, set.w, H, W);
            }
            if (!quiet)
                fprintf(stderr, "note: %s holds %dx%d images; resized to the classifier's %dx%d\n",
                        dir, set.h, set.w, H, W);
            st = gen_image_set_convert(&set, C, H);
            if (st != GEN_OK) {
                gen_image_set_free(&set);
                return st;
            }
        }
        /* subfolders named as the data's classes make a labelled set */
        int32_t *map = gen_alloc((size_t)set.n_classes * sizeof *map);
        int mapped = map != NULL && set.class_names && (set.n_classes > 1 || strcmp(set.class_names[0], "."));
        if (mapped) map_classes(set.class_names, set.n_classes, test, map);
        for (int k = 0; mapped && k < set.n_classes; k++) mapped = map[k] >= 0;
        if (!mapped && set.n_classes > 1 && !quiet)
            fprintf(stderr, "note: the subfolders of %s are not classes of %s: no scores by class\n",
                    dir, data);
        int32_t *idx = NULL;
        if (n < set.n) { /* a seeded choice, not the first n (folders may be sorted by class) */
            idx = gen_alloc((size_t)set.n * sizeof *idx);
            if (!idx) {
                gen_image_set_free(&set);
                return GEN_ERR_NOMEM;
            }
            for (int64_t i = 0; i < set.n; i++) idx[i] = (int32_t)i;
            struct gen_rng rng;
            gen_rng_seed(&rng, (uint64_t)gen_opt_int(cfg, &gen_eval_options[GEN_EVAL_SEED]) + 0x5a3);
            gen_rng_shuffle(&rng, idx, set.n);
        } else {
            n = set.n;
        }
        *out = set_to_float(&set, idx, n);
        if (mapped && (*labels = gen_alloc((size_t)n * sizeof **labels)))
            for (int64_t i = 0; i < n; i++) (*labels)[i] = map[set.labels[idx ? idx[i] : i]];
        gen_free(map);
        gen_free(idx);
        gen_image_set_free(&set);
        if (!*out || (mapped && !*labels)) return GEN_ERR_NOMEM;
        *n_out = n;
        return GEN_OK;
    }
    if (!src) return gen_error(GEN_ERR_USAGE, "this family evaluates --samples DIR only");
    const int c = src->c, h = src->h, w = src->w, K = src->classes;
    GEN_ASSERT(c >= 1 && h >= 1 && w >= 1);
    int32_t *map = NULL, *asked = NULL;
    if (K > 0) { /* image i is of class i % K; scored as the test set's class of that name */
        map = gen_alloc((size_t)K * sizeof *map);
        asked = gen_alloc(GEN_EVAL_CHUNK * sizeof *asked);
        *labels = gen_alloc((size_t)n * sizeof **labels);
        if (!map || !asked || !*labels) {
            gen_free(map), gen_free(asked);
            return gen_error(GEN_ERR_NOMEM, "out of memory for %lld labels", (long long)n);
        }
        map_classes(src->class_names, K, test, map);
        for (int k = 0; k < K; k++)
            if (map[k] < 0) {
                gen_free(map), gen_free(asked);
                return gen_error(GEN_ERR_FORMAT, "%s: has no class '%s' (the model's class %d)",
                                 data, src->class_names ? src->class_names[k] : "?", k);
            }
        for (int64_t i = 0; i < n; i++) (*labels)[i] = map[i % K];
    }
    int64_t per = (int64_t)c * h * w, out_per = (int64_t)C * H * W;
    float *raw = gen_alloc((size_t)(GEN_EVAL_CHUNK * per) * sizeof *raw);
    float *x = gen_alloc((size_t)(n * out_per) * sizeof *x);
    if (!raw || !x) {
        gen_free(raw), gen_free(x), gen_free(map), gen_free(asked);
        return gen_error(GEN_ERR_NOMEM, "out of memory for %lld generated images", (long long)n);
    }
    uint64_t seed = (uint64_t)gen_opt_int(cfg, &gen_eval_options[GEN_EVAL_SEED]);
    double t0 = gen_now();
    /* chunk c on rank c % size (comm.h); every rank then holds them all */
    if (gen_comm_size() > 1) memset(x, 0, (size_t)(n * out_per) * sizeof *x);
    for (int64_t i = 0, chunk = 0; i < n; i += GEN_EVAL_CHUNK, chunk++) {
        int64_t b = n - i < GEN_EVAL_CHUNK ? n - i : GEN_EVAL_CHUNK;
        if (chunk % gen_comm_size() != gen_comm_rank()) continue;
        for (int64_t j = 0; asked && j < b; j++) asked[j] = (int32_t)((i + j) % K);
        st = src->generate(src->model, b, chunk_seed(seed, chunk), asked, raw);
        if (st == GEN_OK) {
            for (int64_t k = 0; k < b * per; k++)
                if (!isfinite(raw[k])) {
                    st = gen_error(GEN_ERR_RUNTIME, "the model generated NaN or Inf pixels");
                    break;
                }
        }
        if (st == GEN_OK) st = convert_images(raw, b, c, h, w, x + i * out_per, C, H, W);
        if (st != GEN_OK) {
            gen_free(raw), gen_free(x), gen_free(map), gen_free(asked);
            return st;
        }
        if (!quiet && gen_now() - t0 > 2 && i + b < n)
            fprintf(stderr, "\rgenerated %lld/%lld images", (long long)(i + b), (long long)n);
    }
    gen_comm_allreduce_f32(x, n * out_per); /* each chunk from one rank, zeros elsewhere */
    if (!quiet && gen_now() - t0 > 2) fprintf(stderr, "\rgenerated %lld images in %.1fs\n",
                                                  (long long)n, gen_now() - t0);
    gen_free(raw), gen_free(map), gen_free(asked);
    *out = x;
    *n_out = n;
    return GEN_OK;
}

/* The real images of one split of the data set `data` (gen_data_find),
 * converted to the classifier's shape (channels; sides when square). */
static enum gen_status real_images(const char *data, int train, const struct gen_classifier *m,
                                   struct gen_image_set *set) {
    char where[GEN_DATA_PATH_MAX];
    enum gen_status st = gen_data_find(data, where, sizeof where);
    if (st == GEN_OK)
        st = gen_images_load(where, train, (int)m->C, m->H == m->W ? (int)m->H : 0, set);
    if (st != GEN_OK) return st;
    if (set->h != m->H || set->w != m->W)
        return gen_error(GEN_ERR_FORMAT, "%s: images are %dx%d, the classifier wants %lldx%lld",
                         data, set->h, set->w, (long long)m->H, (long long)m->W);
    if (set->n < MIN_IMAGES)
        return gen_error(GEN_ERR_FORMAT, "%s: %lld %s images; the metrics need at least %d", data,
                         (long long)set->n, train ? "training" : "test", MIN_IMAGES);
    return GEN_OK;
}

struct result {
    double fid, cs, precision, recall;
};

static enum gen_status score(const struct feats *real, const struct feats *fake, int K,
                             struct result *r) {
    enum gen_status st = gen_frechet_distance(fake->mean, fake->cov, real->mean, real->cov,
                                              GEN_CLASSIFIER_FEATURES, &r->fid);
    if (st != GEN_OK) return st;
    r->cs = gen_classifier_score(fake->p, fake->n, K);
    return gen_precision_recall(real->f, real->n, fake->f, fake->n, GEN_CLASSIFIER_FEATURES, PR_K,
                                &r->precision, &r->recall);
}

/* The class the classifier picks for image i of s (K classes). */
static int64_t predicted(const struct feats *s, int64_t i, int64_t K) {
    const float *row = s->p + i * K;
    int64_t best = 0;
    for (int64_t k = 1; k < K; k++)
        if (row[k] > row[best]) best = k;
    return best;
}

static double accuracy(const struct feats *s, const struct gen_image_set *set, int64_t K) {
    int64_t correct = 0;
    for (int64_t i = 0; i < s->n; i++) correct += predicted(s, i, K) == set->labels[i];
    return (double)correct / (double)s->n;
}

void gen_class_scores_free(struct gen_class_scores *s) {
    for (int k = 0; s->names && k < s->K; k++) gen_free(s->names[k]);
    gen_free(s->names), gen_free(s->count), gen_free(s->acc), gen_free(s->fid);
    memset(s, 0, sizeof *s);
}

/* The Frechet distance between the rows of a (na, d) whose label is k and
 * those of b (nb, d) whose label is k; NaN when either has under 2. */
static enum gen_status class_fid(const float *a, const int32_t *la, int64_t na, const float *b,
                                 const int32_t *lb, int64_t nb, int32_t k, double *fid) {
    const int d = GEN_CLASSIFIER_FEATURES;
    const float *src[2] = {a, b};
    const int32_t *lab[2] = {la, lb};
    const int64_t n[2] = {na, nb};
    double *mean[2] = {NULL, NULL}, *cov[2] = {NULL, NULL};
    enum gen_status st = GEN_OK;
    *fid = NAN;
    for (int s = 0; s < 2 && st == GEN_OK; s++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n[s]; i++) m += lab[s][i] == k;
        if (m < 2) break;
        float *rows = gen_alloc((size_t)(m * d) * sizeof *rows);
        mean[s] = gen_alloc((size_t)d * sizeof(double));
        cov[s] = gen_alloc((size_t)d * d * sizeof(double));
        if (!rows || !mean[s] || !cov[s]) st = GEN_ERR_NOMEM;
        for (int64_t i = 0, j = 0; st == GEN_OK && i < n[s]; i++)
            if (lab[s][i] == k) memcpy(rows + j++ * d, src[s] + i * d, (size_t)d * sizeof *rows);
        if (st == GEN_OK) st = gen_feature_stats(rows, m, d, mean[s], cov[s]);
        gen_free(rows);
    }
    if (st == GEN_OK && cov[1]) st = gen_frechet_distance(mean[0], cov[0], mean[1], cov[1], d, fid);
    for (int s = 0; s < 2; s++) gen_free(mean[s]), gen_free(cov[s]);
    return st;
}

/* Scores by class of generated features fg whose classes are labels (test
 * classes), against the test features ft. */
static enum gen_status by_class_scores(const struct feats *fg, const int32_t *labels,
                                       const struct feats *ft, const struct gen_image_set *test,
                                       int64_t K, struct gen_class_scores *out) {
    const int k_test = test->n_classes;
    out->K = k_test;
    out->names = gen_calloc((size_t)k_test, sizeof *out->names);
    out->count = gen_calloc((size_t)k_test, sizeof *out->count);
    out->acc = gen_calloc((size_t)k_test, sizeof *out->acc);
    out->fid = gen_calloc((size_t)k_test, sizeof *out->fid);
    if (!out->names || !out->count || !out->acc || !out->fid) return GEN_ERR_NOMEM;
    int64_t correct = 0;
    for (int64_t i = 0; i < fg->n; i++) {
        out->count[labels[i]]++;
        if (predicted(fg, i, K) == labels[i]) out->acc[labels[i]] += 1, correct++;
    }
    out->accuracy = fg->n ? (double)correct / (double)fg->n : 0;
    for (int k = 0; k < k_test; k++) {
        char name[64];
        snprintf(name, sizeof name, "%d", k);
        const char *nm = test->class_names ? test->class_names[k] : name;
        if (!(out->names[k] = gen_alloc(strlen(nm) + 1))) return GEN_ERR_NOMEM;
        strcpy(out->names[k], nm);
        out->acc[k] = out->count[k] ? out->acc[k] / (double)out->count[k] : NAN;
        enum gen_status st = class_fid(fg->f, labels, fg->n, ft->f, test->labels, ft->n, k, &out->fid[k]);
        if (st != GEN_OK) return st;
    }
    return GEN_OK;
}

/* What images are scored against: gen's classifier and the features of the
 * test images of a data set. */
struct reference {
    struct gen_classifier *m;
    const char *clf_path, *data;
    char clf_data[GEN_CONFIG_STR]; /* the data the classifier was trained on, or "" */
    struct gen_image_set test;
    struct feats ft;
};

static void reference_free(struct reference *r) {
    gen_image_set_free(&r->test);
    feats_free(&r->ft);
    if (r->m) gen_classifier_free(r->m);
    gen_free(r->m);
    memset(r, 0, sizeof *r);
}

/* Loads the classifier at clf_path and embeds the test images of data
 * (NULL: the data set the classifier was trained on, its config's "data"). */
static enum gen_status reference_open(struct reference *r, const char *clf_path, const char *data) {
    memset(r, 0, sizeof *r);
    r->clf_path = clf_path;
    if (access(clf_path, F_OK) != 0)
        return gen_error(GEN_ERR_IO, "%s: no classifier checkpoint (train the feature network first: "
                         "'gen train classifier --data DIR' writes runs/classifier/checkpoint.safetensors)",
                         clf_path);
    if (!(r->m = gen_calloc(1, sizeof *r->m))) return gen_error(GEN_ERR_NOMEM, "out of memory");
    enum gen_status st = gen_classifier_load(r->m, clf_path);
    if (st != GEN_OK) {
        gen_free(r->m);
        r->m = NULL;
        return st;
    }
    struct gen_ckpt_meta meta = {0};
    if (gen_ckpt_read_meta(clf_path, &meta) == GEN_OK) {
        cJSON *cj = cJSON_Parse(gen_ckpt_meta_get(&meta, "config"));
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(cj, "data");
        if (cJSON_IsString(d)) snprintf(r->clf_data, sizeof r->clf_data, "%s", d->valuestring);
        cJSON_Delete(cj);
    }
    gen_ckpt_meta_free(&meta);
    r->data = data ? data : r->clf_data[0] ? r->clf_data : "data/fashion-mnist";
    if ((st = real_images(r->data, GEN_SPLIT_TEST, r->m, &r->test)) != GEN_OK) return st;
    if (r->test.n_classes > r->m->K)
        return gen_error(GEN_ERR_FORMAT, "%s: %d classes, the classifier %s knows %lld", r->data,
                         r->test.n_classes, clf_path, (long long)r->m->K);
    float *x = set_to_float(&r->test, NULL, r->test.n);
    st = x ? embed(r->m, x, r->test.n, &r->ft) : GEN_ERR_NOMEM;
    gen_free(x);
    return st;
}

enum gen_status gen_frechet_sets(const char *clf_path, const char *data, const float *const *sets,
                                 int n_sets, int64_t n, int c, int h, int w, double *fid) {
    struct reference ref;
    enum gen_status st = reference_open(&ref, clf_path, data);
    const int64_t D = st == GEN_OK ? ref.m->C * ref.m->H * ref.m->W : 0;
    float *x = st == GEN_OK ? gen_alloc((size_t)(n * D) * sizeof *x) : NULL;
    if (st == GEN_OK && n < MIN_IMAGES)
        st = gen_error(GEN_ERR_USAGE, "%lld images; the Frechet distance needs at least %d",
                       (long long)n, MIN_IMAGES);
    if (st == GEN_OK && !x) st = gen_error(GEN_ERR_NOMEM, "out of memory for %lld images", (long long)n);
    for (int k = 0; st == GEN_OK && k < n_sets; k++) {
        struct feats f = {0};
        st = convert_images(sets[k], n, c, h, w, x, (int)ref.m->C, (int)ref.m->H, (int)ref.m->W);
        if (st == GEN_OK) st = embed(ref.m, x, n, &f);
        if (st == GEN_OK)
            st = gen_frechet_distance(f.mean, f.cov, ref.ft.mean, ref.ft.cov,
                                      GEN_CLASSIFIER_FEATURES, &fid[k]);
        feats_free(&f);
    }
    if (st == GEN_ERR_NOMEM && !gen_last_error()[0]) gen_error(st, "out of memory embedding images");
    gen_free(x);
    reference_free(&ref);
    return st;
}

enum gen_status gen_eval_log(const char *ckpt, const struct gen_field *fields, int n) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", ckpt);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int64_t step = -1;
    struct gen_ckpt_meta meta = {0};
    if (gen_ckpt_read_meta(ckpt, &meta) == GEN_OK) {
        const char *s = gen_ckpt_meta_get(&meta, "step");
        if (s) step = strtoll(s, NULL, 10);
    }
    gen_ckpt_meta_free(&meta);
    gen_clear_error();
    struct gen_runlog lg;
    enum gen_status st = gen_runlog_open(&lg, dir, 0, 1);
    if (st != GEN_OK) return st;
    lg.command = "eval"; /* apart from training's evaluations (gen report's eval table) */
    gen_runlog_write(&lg, step, fields, n);
    st = gen_runlog_status(&lg); /* a line that could not be written whole is not there */
    gen_runlog_close(&lg);
    return st;
}

static enum gen_status append_metrics(const char *ckpt, int64_t n, const struct result *r,
                                      const struct result *b, const struct gen_class_scores *cs) {
    const struct gen_field f[] = {
        {"class_accuracy", cs ? cs->accuracy : 0},
        {"eval_images", (double)n},       {"fid", r->fid},
        {"fid_baseline", b->fid},         {"classifier_score", r->cs},
        {"classifier_score_baseline", b->cs}, {"precision", r->precision},
        {"precision_baseline", b->precision}, {"recall", r->recall},
        {"recall_baseline", b->recall},
    };
    return cs ? gen_eval_log(ckpt, f, (int)(sizeof f / sizeof f[0]))
              : gen_eval_log(ckpt, f + 1, (int)(sizeof f / sizeof f[0]) - 1);
}

const struct gen_option gen_eval_image_options[GEN_EVAL_IMAGE_COUNT + 1] = {
    [GEN_EVAL_IMAGE_CLASSIFIER] = GEN_EVAL_IMAGE_OPTIONS,
    [GEN_EVAL_IMAGE_COUNT] = GEN_OPT_END,
};

int gen_eval_images(const struct gen_config *cfg, const char *family, int quiet,
                    const struct gen_eval_source *src, struct gen_metrics *out,
                    struct gen_class_scores *by_class) {
    const struct gen_config_entry *ce = gen_opt_get(cfg, &gen_eval_image_options[GEN_EVAL_IMAGE_CLASSIFIER]);
    const char *samples = gen_opt_str(cfg, &gen_eval_image_options[GEN_EVAL_IMAGE_SAMPLES]);
    const char *ckpt = gen_opt_str(cfg, &gen_eval_options[GEN_EVAL_CKPT]);
    /* without a --classifier option (gen eval classifier --samples), --ckpt is the classifier */
    const char *clf_path = ce && ce->present && ce->s[0] ? ce->s : ckpt;
    if (!clf_path) clf_path = "runs/classifier/checkpoint.safetensors";
    if (!ce) ckpt = NULL;
    struct reference ref;
    struct gen_image_set train = {0};
    struct feats ftr = {0}, fg = {0};
    float *x = NULL;
    int32_t *idx = NULL, *labels = NULL;
    struct gen_class_scores cs = {0};
    int rc = 1;
    double t0 = gen_now();

    if (reference_open(&ref, clf_path, gen_opt_str(cfg, &gen_eval_options[GEN_EVAL_DATA])) != GEN_OK)
        goto done;
    struct gen_classifier *m = ref.m;
    const char *data = ref.data;
    const struct gen_image_set test = ref.test;
    const struct feats ft = ref.ft;
    if (real_images(data, GEN_SPLIT_TRAIN, m, &train) != GEN_OK) goto done;
    if (train.n_classes > m->K) {
        gen_error(GEN_ERR_FORMAT, "%s: %d classes, the classifier %s knows %lld", data,
                  train.n_classes, clf_path, (long long)m->K);
        goto done;
    }
    if (!quiet && ref.clf_data[0] && strcmp(ref.clf_data, data))
        fprintf(stderr, "note: the classifier was trained on %s; the real images come from %s\n",
                ref.clf_data, data);

    /* generated (or given) images */
    int64_t n = 0;
    if (fake_images(cfg, m, src, &test, data, quiet, &x, &n, &labels) != GEN_OK) goto done;
    if (gen_comm_rank() != 0) { /* over MPI the others only generate; rank 0 scores */
        rc = 0;
        goto done;
    }
    if (embed(m, x, n, &fg) != GEN_OK) goto done;
    gen_free(x);
    x = NULL;
    /* the baseline: n training images (a seeded choice) */
    int64_t nb = n < train.n ? n : train.n;
    idx = gen_alloc((size_t)train.n * sizeof *idx);
    if (!idx) goto done;
    for (int64_t i = 0; i < train.n; i++) idx[i] = (int32_t)i;
    struct gen_rng rng;
    gen_rng_seed(&rng, (uint64_t)gen_opt_int(cfg, &gen_eval_options[GEN_EVAL_SEED]) + 0x5eed);
    gen_rng_shuffle(&rng, idx, train.n);
    if (!(x = set_to_float(&train, idx, nb)) || embed(m, x, nb, &ftr) != GEN_OK) goto done;

    struct result r, b;
    if (score(&ft, &fg, (int)m->K, &r) != GEN_OK || score(&ft, &ftr, (int)m->K, &b) != GEN_OK)
        goto done;
    double acc = accuracy(&ft, &test, m->K);
    if (labels && by_class_scores(&fg, labels, &ft, &test, m->K, &cs) != GEN_OK) goto done;
    const char *source = samples ? samples : ckpt;
    if (!quiet) {
        fprintf(stderr,
                "%s %s: %lld %s images against %lld test images of %s (%.1fs)\n"
                "features: %s (test accuracy %.2f %%)\n"
                "  %-18s %10s %12s\n",
                family, source, (long long)n,
                samples ? "given" : "generated", (long long)test.n, data, gen_now() - t0,
                clf_path, 100 * acc, "metric", "model", "train/test");
        fprintf(stderr, "  %-18s %10.3f %12.3f   lower is better\n", "FID", r.fid, b.fid);
        fprintf(stderr, "  %-18s %10.3f %12.3f   higher is better (max %lld)\n",
                "classifier score", r.cs, b.cs, (long long)m->K);
        fprintf(stderr, "  %-18s %10.3f %12.3f   fidelity\n", "precision", r.precision,
                b.precision);
        fprintf(stderr, "  %-18s %10.3f %12.3f   diversity\n", "recall", r.recall, b.recall);
        fprintf(stderr, "  (train/test: %lld real training images scored the same way)\n",
                (long long)nb);
        if (cs.K) {
            fprintf(stderr, "  %-18s %10s %10s %10s\n", "by class", "images", "accuracy", "FID");
            for (int k = 0; k < cs.K; k++)
                if (cs.count[k])
                    fprintf(stderr, "  %-18.18s %10lld %10.3f %10.3f\n", cs.names[k],
                            (long long)cs.count[k], cs.acc[k], cs.fid[k]);
            fprintf(stderr, "  %-18s %10lld %10.3f %10.3f   (accuracy: the classifier "
                    "finds the class asked for)\n", "all", (long long)n, cs.accuracy, r.fid);
        }
    }
    {
        const struct gen_field f[] = {
            {"fid", r.fid},
            {"fid_baseline", b.fid},
            {"classifier_score", r.cs},
            {"classifier_score_baseline", b.cs},
            {"precision", r.precision},
            {"precision_baseline", b.precision},
            {"recall", r.recall},
            {"recall_baseline", b.recall},
            {"classifier_accuracy", acc},
            {"eval_images", (double)n},
            {"class_accuracy", cs.accuracy},
        };
        const size_t nf = sizeof f / sizeof f[0] - (cs.K ? 0 : 1);
        for (size_t i = 0; i < nf && out->n < GEN_MAX_FIELDS; i++) out->f[out->n++] = f[i];
    }
    if (!samples && ckpt && append_metrics(ckpt, n, &r, &b, cs.K ? &cs : NULL) != GEN_OK)
        fprintf(stderr, "gen: warning: %s\n", gen_last_error()); /* the result stands */
    if (by_class) *by_class = cs, memset(&cs, 0, sizeof cs);
    rc = 0;
done:
    if (rc != 0 && !gen_last_error()[0]) gen_error(GEN_ERR_NOMEM, "gen eval: out of memory");
    gen_class_scores_free(&cs);
    gen_free(x);
    gen_free(labels);
    gen_free(idx);
    feats_free(&ftr);
    feats_free(&fg);
    gen_image_set_free(&train);
    reference_free(&ref);
    return rc;
}
