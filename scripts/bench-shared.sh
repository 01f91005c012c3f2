#!/usr/bin/env bash
# bench-shared.sh - two trainings sharing the cores: the median step of
# one run alone and of each of two run at the same time, every run on all
# the threads (GEN_BENCH_THREADS, default 2), under gen's own idle-thread
# spin (GOMP_SPINCOUNT=1000, `gen --version`) and under libgomp's default
# (GOMP_SPINCOUNT=300000, what gen ran with before 2026-12-04). Two runs
# that share the cores fairly each take about twice the lone step.
#
#   scripts/bench.sh shared         # VAE (Fashion-MNIST) and Transformer
#   ROUNDS=3 scripts/bench-shared.sh
#
# Needs data/fashion-mnist and data/moby-dick.txt (scripts/fetch-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GEN=${GEN:-build/gen}
THREADS=${GEN_BENCH_THREADS:-2}
ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 300000 data/moby-dick.txt >"$tmp/text.txt"

# step SPIN OUT FAMILY ARGS...: the run's median step in ms
step() {
    local spin=$1 out=$2
    shift 2
    GOMP_SPINCOUNT=$spin "$GEN" train "$@" --threads "$THREADS" --out "$tmp/$out" --force \
        --log-every 100000 --eval-every 0 --sample-every 0 --ckpt-every 0 --quiet --json |
        sed -n 's/.*"median_step_ms":\([0-9.]*\).*/\1/p'
}

for family in vae transformer; do
    case $family in
    vae) args=(vae --data data/fashion-mnist --steps 300) ;;
    transformer) args=(transformer --data "$tmp/text.txt" --steps 20) ;;
    esac
    for spin in 1000 300000; do
        alone=() pair=()
        for _ in $(seq "$ROUNDS"); do
            alone+=("$(step "$spin" a "${args[@]}")")
            step "$spin" b "${args[@]}" >"$tmp/b.ms" &
            pair+=("$(step "$spin" c "${args[@]}")")
            wait
            pair+=("$(cat "$tmp/b.ms")")
        done
        a=$(median "${alone[@]}") p=$(median "${pair[@]}")
        awk -v f="$family" -v s="$spin" -v a="$a" -v p="$p" -v r="$ROUNDS" 'BEGIN {
            printf "%-11s GOMP_SPINCOUNT=%-6s alone %8.2f ms  two at once %8.2f ms each", f, s, a, p
            printf "  (%.1fx the lone step; medians of %d rounds)\n", p / a, r }'
    done
done
