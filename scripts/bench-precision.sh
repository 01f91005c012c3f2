#!/usr/bin/env bash
# bench-precision.sh - gen's --precision bf16 training step against its own
# fp32 step, the Transformer (batch 32 x 128 tokens) and diffusion (batch
# 64), interleaved over ROUNDS rounds with the same thread count; prints
# each round, the median ratio bf16/fp32 (target <= 0.6), and which bf16
# kernels this CPU got (`gen --version`: amx, the AMX tiles, or
# avx512bf16, vdpbf16ps). Then one more pair of runs with --profile: a
# step's parts and ops in fp32 and bf16 side by side, so the ratio can be
# read op by op (what bf16 speeds up, what it leaves as it was).
#
#   scripts/bench-precision.sh            GEN=build/gen ROUNDS=3 STEPS=20
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${GEN:-./build/gen}
threads=${GEN_BENCH_THREADS:-2}
rounds=${ROUNDS:-3}
steps=${STEPS:-20}
source scripts/bench-lib.sh
"$gen" --version | tail -1
if ! has_bf16 "$gen"; then
    echo "precision: skipped: no bf16 kernels on this CPU/build"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 300000 "${TEXT:-data/moby-dick.txt}" >"$tmp/text.txt"

step_ms() { # step_ms FAMILY DATA PRECISION [options]
    local fam=$1 data=$2 prec=$3
    shift 3
    rm -rf "$tmp/run"
    "$gen" train "$fam" --data "$data" --steps "$steps" --threads "$threads" --out "$tmp/run" \
        --precision "$prec" --json --quiet --ckpt-every 0 --sample-every 0 --eval-every 0 "$@" |
        number median_step_ms
}

# a profile.json's step, parts and ops as "name ms" lines (an op: forward
# plus backward)
profile_lines() {
    awk -F'[":,\t ]+' '
        /"step_ms"/ { print "step", $3 }
        /"(data|forward|backward|update|other)":/ && !op { print $2, $3 }
        /"op":/ { op = $3 }
        /"forward_ms"/ { t = $3 }
        /"backward_ms"/ { print "op:" op, t + $3 }' "$1"
}

profile_pair() { # profile_pair FAMILY DATA [options]
    local fam=$1 data=$2
    shift 2
    for prec in fp32 bf16; do
        rm -rf "$tmp/prof-$prec"
        "$gen" train "$fam" --data "$data" --steps "$steps" --threads "$threads" \
            --out "$tmp/prof-$prec" --precision "$prec" --quiet --ckpt-every 0 --sample-every 0 \
            --eval-every 0 --profile "$@"
        profile_lines "$tmp/prof-$prec/profile.json" >"$tmp/prof-$prec.txt"
    done
    echo "$fam, $threads threads, --profile (ms a step; an op: forward + backward):"
    awk 'NR == FNR { f[$1] = $2; order[++n] = $1; next }
         { b[$1] = $2; if (!($1 in f)) order[++n] = $1 }
         END {
             printf "  %-22s %10s %10s %8s\n", "", "fp32", "bf16", "bf16/fp32"
             for (i = 1; i <= n; i++) {
                 k = order[i]
                 printf "  %-22s %10.3f %10.3f %8.3f\n", k, f[k], b[k], (f[k] > 0 ? b[k] / f[k] : 0)
             }
         }' "$tmp/prof-fp32.txt" "$tmp/prof-bf16.txt"
}

for fam in transformer diffusion; do
    ratios=()
    for r in $(seq "$rounds"); do
        if [ "$fam" = transformer ]; then
            f=$(step_ms transformer "$tmp/text.txt" fp32)
            b=$(step_ms transformer "$tmp/text.txt" bf16)
        else
            f=$(step_ms diffusion "${DATA:-data/fashion-mnist}" fp32 --batch 64 --sample-steps 1)
            b=$(step_ms diffusion "${DATA:-data/fashion-mnist}" bf16 --batch 64 --sample-steps 1)
        fi
        ratio=$(awk -v f="$f" -v b="$b" 'BEGIN { printf "%.3f", b / f }')
        ratios+=("$ratio")
        printf 'round %d: %s step fp32 %.1f ms, bf16 %.1f ms (%s)\n' "$r" "$fam" "$f" "$b" "$ratio"
    done
    echo "$fam, $threads threads: bf16/fp32 step = $(median "${ratios[@]}") (target <= 0.6)"
done
profile_pair transformer "$tmp/text.txt"
profile_pair diffusion "${DATA:-data/fashion-mnist}" --batch 64 --sample-steps 1
