#!/usr/bin/env bash
# bench-vae.sh - the reference VAE: median training step at batch 128, gen
# against its PyTorch twin, interleaved over ROUNDS rounds on the same data
# and thread count; then (FULL=1) a whole 10-epoch run of both, with peak
# memory of gen.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
threads=${GEN_BENCH_THREADS:-2}
rounds=${ROUNDS:-3}
steps=${STEPS:-300}
data=${DATA:-data/fashion-mnist}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gen_step() {
    ./build/gen train vae --data "$data" --steps "$steps" --threads "$threads" --out "$tmp/run" \
        --json --quiet --ckpt-every 0 | number median_step_ms
    rm -rf "$tmp/run"
}
twin_step() {
    /usr/bin/python3 scripts/reference/vae.py --bench-steps "$steps" --threads "$threads" |
        number median_step_ms
}
ratios=()
for r in $(seq "$rounds"); do
    g=$(gen_step)
    t=$(twin_step)
    ratio=$(awk -v g="$g" -v t="$t" 'BEGIN { printf "%.3f", g / t }')
    ratios+=("$ratio")
    printf 'round %d: gen %.2f ms/step  pytorch %.2f ms/step  gen/pytorch %s\n' "$r" "$g" "$t" "$ratio"
done
median=$(median "${ratios[@]}")
echo "vae train step, batch 128, $threads threads: median gen/pytorch = $median (target <= 0.5)"

if [ "${FULL:-0}" = 1 ]; then
    /usr/bin/time -f '%e s wall, %M KiB max RSS' ./build/gen train vae --data "$data" \
        --threads "$threads" --out "$tmp/full" --quiet 2>&1 | tail -1 | sed 's/^/gen 10 epochs: /'
    start=$(date +%s.%N)
    /usr/bin/python3 scripts/reference/vae.py --data "$data" --threads "$threads" >/dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "pytorch 10 epochs: %.1f s wall\n", b - a }'
fi
