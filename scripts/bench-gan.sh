#!/bin/sh
# bench-gan.sh - gen against its PyTorch twin (scripts/reference/gan.py) on
# the reference DCGAN: median training step time at batch 64, both with the
# same thread count, run back to back in this one invocation (ROUNDS times,
# alternating), and sampling throughput (images/s, generation only).
#
#   scripts/bench-gan.sh                 # GEN=build/gen THREADS=2 STEPS=60 ROUNDS=3
#   GEN=build-gan/gen scripts/bench-gan.sh
#
# Prints one line per measurement and a summary with gen/PyTorch (< 1: gen
# is faster): the median over the rounds of each round's side-by-side ratio. Nothing else should be running.
# On a machine shared with other jobs, OpenMP threads that spin at barriers
# while their partner is descheduled make steps 5-60x slower, and unevenly.
# gen spins briefly by itself (`gen --version`: "idle threads"); PyTorch
# keeps libgomp's long spin unless told otherwise: OMP_WAIT_POLICY=PASSIVE,
# which this script passes through to both, makes such runs comparable.
set -eu
GEN=${GEN:-build/gen}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-2}
STEPS=${STEPS:-60}
ROUNDS=${ROUNDS:-3}
DATA=${DATA:-data/fashion-mnist}
cd "$(dirname "$0")/.."
[ -x "$GEN" ] || { echo "bench-gan: $GEN not built (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. scripts/bench-lib.sh

field() { # field NAME: of the one JSON object on stdin (or of its "metrics")
    "$PY" -c 'import json, sys
d = json.load(sys.stdin)
print(d[sys.argv[1]] if sys.argv[1] in d else d["metrics"][sys.argv[1]])' "$1"
}

gens= torchs=
r=1
while [ "$r" -le "$ROUNDS" ]; do
    rm -rf "$tmp/run"
    g=$("$GEN" train gan --data "$DATA" --steps "$STEPS" --batch 64 --threads "$THREADS" \
        --out "$tmp/run" --sample-every 0 --ckpt-every 0 --quiet --json |
        number median_step_ms)
    t=$("$PY" scripts/reference/gan.py --bench-steps "$STEPS" --threads "$THREADS" |
        field median_step_ms)
    printf 'round %d: gen %.1f ms/step, pytorch %.1f ms/step\n' "$r" "$g" "$t"
    gens="$gens $g" torchs="$torchs $t"
    r=$((r + 1))
done

gs=$("$GEN" sample gan --ckpt "$tmp/run/checkpoint.safetensors" -n 1024 -o "$tmp/s.png" \
     --threads "$THREADS" --quiet --json | field images_per_s)
ts=$("$PY" scripts/reference/gan.py --bench-steps 5 --threads "$THREADS" | field sample_images_per_s)
printf 'sampling (1024 images, batches of 64): gen %.0f img/s, pytorch %.0f img/s\n' "$gs" "$ts"
"$PY" -c "
import statistics, sys
g = [float(x) for x in sys.argv[1].split()]
t = [float(x) for x in sys.argv[2].split()]
r = statistics.median(a / b for a, b in zip(g, t))
print('gan step, batch 64, %s threads: median gen %.1f ms, pytorch %.1f ms, median gen/pytorch %.3f (%d rounds)'
      % (sys.argv[3], statistics.median(g), statistics.median(t), r, len(g)))" "$gens" "$torchs" "$THREADS"
