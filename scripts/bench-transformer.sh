#!/usr/bin/env bash
# bench-transformer.sh - the reference GPT (4 layers, 4 heads, width 128,
# context 128, batch 32): training tokens/s of gen against its PyTorch
# twin, interleaved over ROUNDS rounds with the same thread count; then
# gen's sampling speed at batch 1 for growing lengths (the median of 3
# rounds each; the time per token should stay flat: KV cache, sliding
# window) and the rate of its one-token products against the bytes a
# thread streams; then
# (FULL=1) the whole 5000-step run of both with validation losses.
#
#   scripts/bench-transformer.sh            GEN=build-tf/gen ROUNDS=3 STEPS=20
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${GEN:-./build/gen}
threads=${GEN_BENCH_THREADS:-2}
rounds=${ROUNDS:-3}
steps=${STEPS:-20}
data=${DATA:-data/moby-dick.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Step time does not depend on the text's length; a short copy keeps the
# final validation pass of each gen run short.
head -c 300000 "$data" >"$tmp/text.txt"
tokens_per_step=$((32 * 128))

gen_step() {
    rm -rf "$tmp/run"
    "$gen" train transformer --data "$tmp/text.txt" --steps "$steps" --threads "$threads" \
        --out "$tmp/run" --json --quiet --ckpt-every 0 --eval-every 0 --sample-every 0 |
        number median_step_ms
}
twin_step() {
    /usr/bin/python3 scripts/reference/transformer.py --data "$tmp/text.txt" \
        --bench-steps "$steps" --threads "$threads" |
        number median_step_ms
}
source scripts/bench-lib.sh
flops=$(/usr/bin/python3 scripts/reference/flops.py transformer --batch 32 --context 128 |
    sed 's/.*"train_gflop": \([0-9.e+-]*\).*/\1/')
ratios=() gen_ms=() twin_ms=()
for r in $(seq "$rounds"); do
    g=$(gen_step)
    t=$(twin_step)
    ratio=$(awk -v g="$g" -v t="$t" 'BEGIN { printf "%.3f", t / g }')
    ratios+=("$ratio") gen_ms+=("$g") twin_ms+=("$t")
    awk -v r="$r" -v g="$g" -v t="$t" -v n="$tokens_per_step" -v q="$ratio" 'BEGIN {
        printf "round %d: gen %.1f ms/step (%.0f tok/s)  pytorch %.1f ms/step (%.0f tok/s)  speed-up %s\n",
               r, g, n / g * 1e3, t, n / t * 1e3, q }'
done
median=$(median "${ratios[@]}")
echo "transformer train, batch 32 x 128 tokens, $threads threads: median gen speed-up over pytorch = $median (target >= 2, a step at most 0.5x)"
share_of_peak "$flops" "$(median "${gen_ms[@]}")" "$(median "${twin_ms[@]}")" "$threads"

# CPU seconds per training step, one thread each: on a shared machine the
# wall clock mostly measures the neighbours (and OpenMP threads waiting for
# a descheduled peer), CPU time much less. Each side runs a short and a long
# training; the difference over the extra steps leaves out start-up and the
# final validation/checkpoint.
cpu_of() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1 | awk '{ print $1 + $2 }'; }
gen_cpu() {
    rm -rf "$tmp/cpu"
    cpu_of "$gen" train transformer --data "$tmp/text.txt" --steps "$1" --threads 1 --out "$tmp/cpu" \
        --quiet --ckpt-every 0 --eval-every 0 --sample-every 0
}
twin_cpu() {
    cpu_of /usr/bin/python3 scripts/reference/transformer.py --data "$tmp/text.txt" --bench-steps "$1" \
        --threads 1
}
g=$(awk -v a="$(gen_cpu 4)" -v b="$(gen_cpu $((4 + steps)))" -v n="$steps" 'BEGIN { print (b - a) / n }')
t=$(awk -v a="$(twin_cpu 4)" -v b="$(twin_cpu $((4 + steps)))" -v n="$steps" 'BEGIN { print (b - a) / n }')
awk -v g="$g" -v t="$t" -v n="$tokens_per_step" 'BEGIN {
    printf "1 thread, CPU time: gen %.0f ms/step (%.0f tok/cpu-s)  pytorch %.0f ms/step (%.0f tok/cpu-s)  speed-up %.2f\n",
           g * 1e3, n / g, t * 1e3, n / t, t / g }'
share_of_peak "$flops" "$(awk -v g="$g" 'BEGIN { print g * 1e3 }')" "$(awk -v t="$t" 'BEGIN { print t * 1e3 }')" 1

# Sampling at batch 1 from the model the last gen round left (its weights
# do not change the speed): the rate over 5 samples in one process (the
# first pays for page faults and BLAS buffers), on one thread and on
# $GEN_BENCH_THREADS (one token's products shared by rows, its heads by
# thread), the two alternating over 3 rounds, so that both see the same
# host; the median round and the range. Then the same under --precision
# bf16 where this CPU has it (the one-token products read a bf16 copy of
# the weights). Batch 1: one sample after another, each sample's tokens on
# the threads (--share tokens); the 5 samples decoded a sample a thread
# where that is faster (--share auto) are measured after, as throughput.
sample_rate() { # PRECISION THREADS LENGTH [SHARE]: tokens/s
    "$gen" sample transformer --ckpt "$tmp/run/checkpoint.safetensors" --prompt "Call me" \
        --length "$3" --temperature 0.8 --seed 1 --threads "$2" -n 5 -o "$tmp/sample.txt" --json \
        --quiet --precision "$1" --share "${4:-tokens}" | sed 's/.*"tokens_per_s":\([0-9.e+-]*\).*/\1/'
}
precisions=fp32
if has_bf16 "$gen"; then precisions="fp32 bf16"; fi
counts=$(printf '%s\n' 1 "$threads" | sort -un)
declare -A rates
for prec in $precisions; do
for len in 100 400 1000 4000; do
    rates=()
    for _ in 1 2 3; do
        for th in $counts; do rates[$th]+="$(sample_rate "$prec" "$th" "$len") "; done
    done
    for th in $counts; do
        printf '%s\n' ${rates[$th]} | sort -g | awk -v n="$len" -v th="$th" -v p="$prec" '
            { r[NR] = $1 } END {
            printf "sample batch 1, %s, %d thread(s), length %5d: %6.0f tokens/s  (%.1f us/token; rounds %.0f-%.0f)\n",
                   p, th, n, r[2], 1e6 / r[2], r[1], r[3] }'
    done
done
done
for _ in 1 2 3; do sample_rate fp32 "$threads" 1000 auto; done | sort -g | awk -v th="$threads" '
    { r[NR] = $1 } END {
    printf "samples 5 at a time, fp32, %d thread(s), length  1000, --share auto: %6.0f tokens/s  (rounds %.0f-%.0f)\n",
           th, r[2], r[1], r[3] }'

# What bounds one-token decoding: a thread's products stream its share of
# the weights (fp32: 1.7 MB of the default model's 3.4 on two threads, and
# up to 0.26 MB of KV cache besides) at the rate its caches give for a
# working set of that size.
bench_gemm --gemv "$threads"

if [ "${FULL:-0}" = 1 ]; then
    /usr/bin/time -f '%e s wall, %M KiB max RSS' "$gen" train transformer --data "$data" \
        --threads "$threads" --out "$tmp/full" --json --quiet >"$tmp/gen.jsonl" 2>"$tmp/gen.time"
    echo "gen 5000 steps: $(tail -1 "$tmp/gen.time")"
    grep val_loss "$tmp/gen.jsonl" | sed 's/^/gen /'
    /usr/bin/python3 scripts/reference/transformer.py --data "$data" --threads "$threads" |
        sed 's/^/pytorch /'
fi
