#!/usr/bin/env bash
# bench-ops.sh - the core's kernels and ops, gen against PyTorch in one run
# (called by scripts/bench.sh ops):
#   1. element-wise kernels as a fraction of a stream-copy loop, SIMD vs
#      scalar softmax/layernorm rows (bench_ops kernels);
#   2. U-Net 3x3 conv2d forward+backward GFLOP/s against cblas_sgemm
#      (bench_ops conv), and gen's AVX-512 GEMM against cblas_sgemm on the
#      shapes the models run (bench_gemm);
#   3. forward+backward per op, gen and PyTorch interleaved over ROUNDS
#      rounds (each the median of REPS steps), then gen/PyTorch per op as
#      the median over rounds (< 1: gen is faster).
# Env: GEN_BENCH_THREADS (2), ROUNDS (3), REPS (7), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${GEN_BENCH_THREADS:-2}
rounds=${ROUNDS:-3}
reps=${REPS:-7}
build=${BUILD:-build}
[ -d "$build" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target bench_ops bench_gemm -j2 >/dev/null
bin=$build/bench_ops
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "threads $threads; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
GEN_BENCH_THREADS=$threads "$bin" kernels "$reps"
GEN_BENCH_THREADS=$threads "$bin" conv "$reps"
"$build/bench_gemm" "$threads"

for r in $(seq "$rounds"); do
    GEN_BENCH_THREADS=$threads "$bin" ops "$reps" >"$tmp/gen.$r"
    /usr/bin/python3 scripts/bench_ops.py --threads "$threads" --reps "$reps" >"$tmp/torch.$r"
done

echo
echo "== forward+backward per op, $threads threads, median over $rounds rounds of median-of-$reps"
# Lines "op NAME<TAB>MS"; pair gen and torch by name within each round.
awk -F'\t' -v rounds="$rounds" '
    function med(arr, n,    i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
            t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
        }
        return arr[int((n + 1) / 2)]
    }
    FNR == 1 { b = FILENAME; sub(/.*\//, "", b); split(b, parts, "."); side = parts[1]; round = parts[2] }
    /^op / {
        name = substr($1, 4)
        if (!(name in seen)) { seen[name] = 1; order[++n_names] = name }
        ms[side, round, name] = $2
    }
    END {
        printf "%-28s %10s %10s %12s\n", "op", "gen ms", "torch ms", "gen/torch"
        for (k = 1; k <= n_names; k++) {
            name = order[k]
            for (r = 1; r <= rounds; r++) {
                g[r] = ms["gen", r, name]; t[r] = ms["torch", r, name]
                q[r] = t[r] > 0 ? g[r] / t[r] : 0
            }
            printf "%-28s %10.3f %10.3f %12.2f\n", name, med(g, rounds), med(t, rounds), med(q, rounds)
        }
    }' $(for r in $(seq "$rounds"); do echo "$tmp/gen.$r" "$tmp/torch.$r"; done)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
