#!/usr/bin/env bash
# bench-diffusion.sh - the reference DDPM U-Net, gen against its PyTorch twin
# (scripts/reference/diffusion.py), same thread count, interleaved over ROUNDS
# rounds on this one machine:
#   - median training step time at batch 64 (Fashion-MNIST 28x28);
#   - wall time of DDIM-50 sampling of 64 images (one batch);
#   - the share of the machine's FMA peak each side's median step reaches
#     (scripts/reference/flops.py counts a step's arithmetic, bench_gemm
#     --peak measures the peak on the same threads), which bounds the ratio
#     any implementation can reach against the twin.
# Prints each round and the median ratios gen/PyTorch (< 1: gen is faster).
# A benchmark, never a test: run it when nothing else loads the machine.
#
#   scripts/bench-diffusion.sh            # GEN=build/gen THREADS=2 STEPS=20 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
GEN=${GEN:-build/gen}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-${GEN_BENCH_THREADS:-2}}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-3}
DATA=${DATA:-data/fashion-mnist}
[ -x "$GEN" ] || { echo "bench-diffusion: $GEN not built (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

field() { # field NAME: from the last JSON object on stdin (or its "metrics")
    "$PY" -c 'import json, sys
d = json.loads(sys.stdin.read().strip().splitlines()[-1])
print(d[sys.argv[1]] if sys.argv[1] in d else d["metrics"][sys.argv[1]])' "$1"
}
source scripts/bench-lib.sh

step_ratios=() sample_ratios=() gen_ms=() twin_ms=()
for r in $(seq "$ROUNDS"); do
    rm -rf "$tmp/run"
    # --sample-steps 1: the end-of-run grid costs one U-Net pass, not 50.
    gs=$("$GEN" train diffusion --data "$DATA" --steps "$STEPS" --batch 64 --threads "$THREADS" \
        --out "$tmp/run" --sample-steps 1 --ckpt-every 0 --quiet --json |
        number median_step_ms)
    gd=$("$GEN" sample diffusion --ckpt "$tmp/run/checkpoint.safetensors" -n 64 --steps 50 \
        --threads "$THREADS" -o "$tmp/s.png" --quiet --json | field seconds)
    out=$("$PY" scripts/reference/diffusion.py --bench-steps "$STEPS" --threads "$THREADS")
    ts=$(echo "$out" | field median_step_ms)
    td=$(echo "$out" | field sample64_s)
    sr=$(awk -v g="$gs" -v t="$ts" 'BEGIN { printf "%.3f", g / t }')
    dr=$(awk -v g="$gd" -v t="$td" 'BEGIN { printf "%.3f", g / t }')
    step_ratios+=("$sr") gen_ms+=("$gs") twin_ms+=("$ts")
    sample_ratios+=("$dr")
    printf 'round %d: train step gen %.0f ms, pytorch %.0f ms (%s); DDIM-50 x64 gen %.2f s, pytorch %.2f s (%s)\n' \
        "$r" "$gs" "$ts" "$sr" "$gd" "$td" "$dr"
done
echo "diffusion, $THREADS threads: train step (batch 64) gen/pytorch = $(median "${step_ratios[@]}")," \
     "DDIM-50 sampling of 64 images gen/pytorch = $(median "${sample_ratios[@]}") (target <= 0.5)"
share_of_peak "$("$PY" scripts/reference/flops.py diffusion --batch 64 | field train_gflop)" \
    "$(median "${gen_ms[@]}")" "$(median "${twin_ms[@]}")" "$THREADS"
