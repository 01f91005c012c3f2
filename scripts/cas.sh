#!/usr/bin/env bash
# cas.sh - the classification accuracy score of a conditional model
# (Ravuri & Vinyals 2019): train gen's classifier on the model's samples
# only, test it on the real test set, and print it beside the same
# classifier trained on the real training set.
#
#   scripts/cas.sh CKPT [PER_CLASS] [OUT]
#
#   CKPT       a conditional model (gen train FAMILY --conditional)
#   PER_CLASS  samples per class (default 6000, the size of a
#              Fashion-MNIST class)
#   OUT        work folder (default runs/cas): OUT/synth/CLASS/NNNNN.png,
#              OUT/clf-synth (classifier on samples), OUT/clf-real
#              (classifier on real data; reused when present)
#
# The real data is the model's own training set (gen info CKPT). Extra
# sampling options go in SAMPLE_OPTS (e.g. SAMPLE_OPTS="--guidance 2");
# GEN names the binary (default build/gen).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GEN=${GEN:-$ROOT/build/gen}
CKPT=${1:?usage: scripts/cas.sh CKPT [PER_CLASS] [OUT]}
PER=${2:-6000}
OUT=${3:-runs/cas}
die() { echo "cas: $*" >&2; exit 1; }
[[ -x "$GEN" ]] || die "$GEN: no gen binary (bash scripts/setup.sh builds one)"
[[ -f "$CKPT" ]] || die "$CKPT: no such checkpoint"
family=$("$GEN" info "$CKPT" | sed -n 's/^family: *//p')
data=$("$GEN" info "$CKPT" | sed -n 's/^ *data  *\([^ ].*\)$/\1/p' | head -1)
[[ -n "$family" && -n "$data" ]] || die "$CKPT: cannot read its family and data set (gen info)"

# accuracy CLF: the test accuracy of a classifier on the real test set
accuracy() {
  "$GEN" eval classifier --ckpt "$1" --data "$data" --json -q |
    sed -n 's/.*"test_accuracy":\([0-9.eE+-]*\).*/\1/p'
}

mkdir -p "$OUT"
echo "cas: $PER samples per class from $CKPT ($family) into $OUT/synth/" >&2
rm -rf "$OUT/synth"
# shellcheck disable=SC2086
"$GEN" sample "$family" --ckpt "$CKPT" --per-class "$PER" -o "$OUT/synth/" -q ${SAMPLE_OPTS:-}
echo "cas: training the classifier on the samples" >&2
"$GEN" train classifier --data "$OUT/synth" --out "$OUT/clf-synth" --force -q
if [[ ! -f "$OUT/clf-real/checkpoint.safetensors" ]]; then
  echo "cas: training the classifier on $data" >&2
  "$GEN" train classifier --data "$data" --out "$OUT/clf-real" -q
fi
synth=$(accuracy "$OUT/clf-synth/checkpoint.safetensors")
real=$(accuracy "$OUT/clf-real/checkpoint.safetensors")
[[ -n "$synth" && -n "$real" ]] || die "no test accuracy from gen eval classifier"
printf '| classifier trained on | test accuracy on %s |\n|---|---|\n' "$data"
awk -v d="$data" -v r="$real" -v p="$PER" -v c="$CKPT" -v s="$synth" 'BEGIN {
  printf "| %s real training images | %.2f %% |\n", d, 100 * r
  printf "| %d samples per class of %s | %.2f %% |\n", p, c, 100 * s }'
