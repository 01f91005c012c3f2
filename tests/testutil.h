/* testutil.h - helpers shared by the cmocka tests: random data, closeness,
 * fixture files, temporary directories and the finite-difference checker. */
#ifndef GEN_TESTUTIL_H
#define GEN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gen/core.h"
#include "gen/tensor.h"

/* Tests that vary the thread count build without OpenMP too (-DGEN_OPENMP=OFF):
 * there each such check runs on the one thread it has. */
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_max_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
#endif

/* Max |a-b| / (atol + rtol |b|) over n elements; <= 1 means close. Prints
 * the worst element when it is not. */
double tu_close(const char *what, const float *a, const float *b, int64_t n, double rtol,
                double atol);
#define TU_ASSERT_CLOSE(what, a, b, n, rtol, atol) \
    assert_true(tu_close((what), (a), (b), (n), (rtol), (atol)) <= 1.0)

void tu_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed);
/* x rounded to bf16 as vcvtne2ps2bf16 does (nearest, ties to even;
 * denormals in are zero; NaN stays NaN), kept as a float. */
float tu_bf16(float x);

struct gen_kernels;
/* A table's gemm_bias (if it has one) gives, on 1, 2 and 3 threads and
 * inside a parallel region, the bits of its gemm with alpha = beta = 1 on
 * a C whose rows hold the bias: transposed or not, K in one slice or
 * several, N across column blocks, the product split by rows and by
 * columns. */
void tu_check_gemm_bias(const struct gen_kernels *k);
/* A table's gemm_bpacked (if it has one) on slices of an operand bpack
 * packed once, rows [k0, k0 + K) (k0 even; K even or to the end) and the
 * first N columns, gives the bits of its gemm on the same slice read in
 * place: A transposed or not, B stored either way, K in one slice or
 * several, N past a panel or inside one, beta 0 and 1. */
void tu_check_gemm_bpacked(const struct gen_kernels *k);

/* A fresh directory under /tmp (removed by tu_rmdir); returns a static-lifetime
 * string owned by the caller (free with free()). */
char *tu_mkdtemp(void);
void tu_rmtree(const char *dir);
/* "<GEN_SOURCE_DIR>/<rel>" in a static buffer. */
const char *tu_source_path(const char *rel);

struct gen_st_file;
struct gen_st_tensor;
/* tests/fixtures/NAME.safetensors, opened (close with gen_st_close), its
 * fixture_version checked; the test fails, naming script (what writes the
 * fixture), where it cannot be opened. */
struct gen_st_file *tu_open_fixture(const char *name, const char *script);
/* The fixture's tensor of that name; the test fails where it has none. */
const struct gen_st_tensor *tu_tensor(const struct gen_st_file *f, const char *name);

/* First line of a test case that cannot run everywhere: TU_NEED(have,
 * what) with what the machine lacks when have is 0 ("no AVX2 table"), or
 * TU_NEED_DATA("data/mnist") for a real data set, which
 * scripts/fetch-data.sh puts in the source tree. Such a case is listed in
 * GEN_OWN_CASES of CMakeLists.txt and runs as a ctest entry of its own
 * (GEN_TEST_ONLY=CASE), which exits 77 (ctest: skipped, in its summary)
 * when it cannot run; the entry of its file skips it. Run by hand, the
 * case is skipped (cmocka) when it cannot run. A data case never falls
 * back to other data. */
#define TU_NEED(have, what) tu_need(__func__, (have), (what))
#define TU_NEED_DATA(rel) tu_need_data(__func__, (rel))
void tu_need(const char *test, int have, const char *what);
void tu_need_data(const char *test, const char *rel);

/* A scratch directory for a group of tests: pass tu_tmp_setup and
 * tu_tmp_teardown to cmocka_run_group_tests; tu_tmp is the directory and
 * tu_tmp_path(name) is "<tu_tmp>/<name>" in one of 8 rotating buffers (so
 * a few paths can be live at once). */
extern char *tu_tmp;
int tu_tmp_setup(void **state);
int tu_tmp_teardown(void **state);
const char *tu_tmp_path(const char *name);

/* The whole file, NUL-terminated, in a malloc'd buffer, its length in *n.
 * A file that cannot be opened or read in full fails the test. */
char *tu_read_file(const char *path, size_t *n);
/* Writes n bytes to path; any error fails the test. */
void tu_write_file(const char *path, const void *bytes, size_t n);
/* Fails the test unless both files exist and are byte-identical. */
void tu_assert_same_file(const char *a, const char *b);

/* ---- gradient check ---- */

/* One input of an op under test: shape, value range, whether to check it. */
struct tu_input {
    int ndim;
    int64_t shape[4];
    float lo, hi;
    int no_grad; /* an input that is not differentiated (targets, stats) */
};

/* Builds the op's output from inputs in[0..n_in). */
typedef struct gen_tensor *(*tu_fn)(struct gen_ctx *g, struct gen_tensor **in, void *arg);

/* Central finite differences of L = sum(out * r) for a fixed random r,
 * accumulated in double, against gen_backward_seed into stale gradients
 * (each op's first write overwrites: gen_grad_dst); and the gradients of
 * f(in) + f(in), where each input's second use adds, must be exactly
 * twice those. Checks up to
 * `max_checks` elements per input (all when 0). An element passes when
 * |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
 * Returns the number of failures (0 = pass), printing the first few. */
int tu_gradcheck(const char *name, tu_fn f, void *arg, int n_in, const struct tu_input *in,
                 float eps, double rtol, double atol, int max_checks, uint64_t seed);

#endif
