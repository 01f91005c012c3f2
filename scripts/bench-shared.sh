#!/usr/bin/env bash
# bench-shared.sh - two trainings sharing the cores: the median step and
# the whole run's time (`elapsed`: stalls past the median show there) of
# one run alone and of each of two run at the same time, every run on all
# the threads (GEN_BENCH_THREADS, default 2), under gen's own idle-thread
# spin (GOMP_SPINCOUNT=3000, `gen --version`; 1000 until 2026-12-05) and
# under libgomp's default
# (GOMP_SPINCOUNT=300000, what gen ran with before 2026-12-04). Two runs
# that share the cores fairly each take about twice the lone step.
# Then KV-cache sampling (a 20-step Transformer of the default size, 5
# samples of 400 tokens): tokens/s on one thread and on THREADS, alone and
# beside a busy loop pinned to the last core, and THREADS threads all on
# the first CPU (taskset), where every meeting of the threads waits for a
# peer that needs the waiter's CPU: what a thread just woken onto its
# waker's CPU meets until the scheduler moves it (gen_barrier, threads.c).
#
#   scripts/bench.sh shared         # VAE (Fashion-MNIST) and Transformer
#   ROUNDS=3 scripts/bench-shared.sh
#   SPINS="1000 3000" scripts/bench-shared.sh   # other spin counts
#
# Needs data/fashion-mnist and data/moby-dick.txt (scripts/fetch-data.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GEN=${GEN:-build/gen}
THREADS=${GEN_BENCH_THREADS:-2}
ROUNDS=${ROUNDS:-3}
SPINS=${SPINS:-3000 300000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 300000 data/moby-dick.txt >"$tmp/text.txt"

# step SPIN OUT FAMILY ARGS...: the run's median step in ms and its
# elapsed seconds
step() {
    local spin=$1 out=$2
    shift 2
    GOMP_SPINCOUNT=$spin "$GEN" train "$@" --threads "$THREADS" --out "$tmp/$out" --force \
        --log-every 100000 --eval-every 0 --sample-every 0 --ckpt-every 0 --quiet --json |
        sed -n 's/.*"median_step_ms":\([0-9.]*\).*"elapsed":\([0-9.]*\).*/\1 \2/p'
}

for family in vae transformer; do
    case $family in
    vae) args=(vae --data data/fashion-mnist --steps 300) ;;
    transformer) args=(transformer --data "$tmp/text.txt" --steps 20) ;;
    esac
    for spin in $SPINS; do
        alone=() pair=() alone_s=() pair_s=()
        for _ in $(seq "$ROUNDS"); do
            read -r ms sec < <(step "$spin" a "${args[@]}")
            alone+=("$ms") alone_s+=("$sec")
            step "$spin" b "${args[@]}" >"$tmp/b.ms" &
            read -r ms sec < <(step "$spin" c "${args[@]}")
            pair+=("$ms") pair_s+=("$sec")
            wait
            read -r ms sec <"$tmp/b.ms"
            pair+=("$ms") pair_s+=("$sec")
        done
        a=$(median "${alone[@]}") p=$(median "${pair[@]}")
        as=$(median "${alone_s[@]}") ps=$(median "${pair_s[@]}")
        awk -v f="$family" -v s="$spin" -v a="$a" -v p="$p" -v as="$as" -v ps="$ps" \
            -v r="$ROUNDS" 'BEGIN {
            printf "%-11s GOMP_SPINCOUNT=%-6s step: alone %7.2f ms, two at once %7.2f ms each",
                   f, s, a, p
            printf " (%.1fx); run: %6.2f s, %6.2f s (%.1fx); medians of %d rounds\n",
                   p / a, as, ps, ps / as, r }'
    done
done

# sampling beside a busy loop on the last core
"$GEN" train transformer --data "$tmp/text.txt" --steps 20 --threads "$THREADS" --out "$tmp/tf" \
    --force --eval-every 0 --sample-every 0 --quiet
rate() { # rate THREADS [PREFIX...]: tokens/s of one sampling run (PREFIX: taskset -c 0)
    local t=$1
    shift
    "$@" "$GEN" sample transformer --ckpt "$tmp/tf/checkpoint.safetensors" --prompt "Call me" \
        --length 400 --seed 1 -n 5 -o "$tmp/s.txt" --threads "$t" --quiet --json |
        sed -n 's/.*"tokens_per_s":\([0-9.]*\).*/\1/p'
}
last=$(($(nproc) - 1))
for t in 1 "$THREADS"; do
    alone=() busy=()
    for _ in $(seq "$ROUNDS"); do
        alone+=("$(rate "$t")")
        taskset -c "$last" sh -c 'while :; do :; done' &
        hog=$!
        busy+=("$(rate "$t")")
        kill "$hog"
        wait "$hog" 2>/dev/null || true
    done
    awk -v t="$t" -v a="$(median "${alone[@]}")" -v b="$(median "${busy[@]}")" -v c="$last" \
        -v r="$ROUNDS" 'BEGIN {
        printf "sample transformer, %d thread(s): alone %6.0f tokens/s,", t, a
        printf " beside a busy loop on core %d %6.0f", c, b
        printf " (medians of %d rounds)\n", r }'
done
one=()
for _ in $(seq "$ROUNDS"); do one+=("$(rate "$THREADS" taskset -c 0)"); done
awk -v t="$THREADS" -v a="$(median "${one[@]}")" -v r="$ROUNDS" 'BEGIN {
    printf "sample transformer, %d threads on one CPU: %6.0f tokens/s (median of %d rounds)\n",
           t, a, r }'
