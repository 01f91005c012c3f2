#!/usr/bin/env bash
# eval-all.sh - the README's evaluation table: every family trained with its
# defaults (the GAN for 10 epochs) on Fashion-MNIST and on MNIST, a feature
# classifier per data set, and the Transformer on data/moby-dick.txt; then
# `gen eval` of each, with the real-data and uniform-noise baselines. Runs
# that already have a checkpoint under OUT are reused, so a second call
# only re-evaluates. Prints a Markdown table and keeps every JSON under OUT.
#
#   scripts/eval-all.sh          GEN=build/gen OUT=runs/eval N=2000 THREADS=0
#
# From scratch on 2 cores this trains for roughly an hour and a half.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${GEN:-./build/gen}
out=${OUT:-runs/eval}
n=${N:-2000}
threads=${THREADS:-0}
[ -x "$gen" ] || { echo "eval-all: $gen not built (cmake --build build)" >&2; exit 1; }
mkdir -p "$out"

train() { # train DIR FAMILY ARGS...: unless DIR already holds a checkpoint
    local dir=$1
    shift
    if [ ! -f "$dir/checkpoint.safetensors" ]; then
        echo "eval-all: gen train $* --out $dir" >&2
        "$gen" train "$@" --out "$dir" --threads "$threads" --quiet
    fi
}
num() { # num FILE KEY: a number from a one-line JSON object
    sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1
}
fmt() { awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }'; }

# A folder of uniform-noise 28x28 grey images (binary PGM).
noise=$out/noise-28x28
if [ ! -d "$noise" ]; then
    mkdir -p "$noise"
    for i in $(seq "$n"); do
        { printf 'P5\n28 28\n255\n'; head -c 784 /dev/urandom; } >"$noise/$i.pgm"
    done
fi

rows=()
for ds in fashion-mnist mnist; do
    data=data/$ds
    clf=$out/classifier-$ds/checkpoint.safetensors
    train "$out/classifier-$ds" classifier --data "$data"
    train "$out/vae-$ds" vae --data "$data"
    train "$out/gan-$ds" gan --data "$data" --epochs 10
    train "$out/diffusion-$ds" diffusion --data "$data"

    "$gen" eval classifier --ckpt "$clf" --data "$data" --threads "$threads" --json --quiet \
        >"$out/$ds-classifier.json"
    acc=$(num "$out/$ds-classifier.json" test_accuracy)
    for fam in vae gan diffusion; do
        "$gen" eval "$fam" --ckpt "$out/$fam-$ds/checkpoint.safetensors" --data "$data" \
            --classifier "$clf" -n "$n" --threads "$threads" --json --quiet >"$out/$ds-$fam.json"
    done
    "$gen" eval classifier --ckpt "$clf" --data "$data" --samples "$noise" -n "$n" \
        --threads "$threads" --json --quiet >"$out/$ds-noise.json"

    f=$out/$ds-vae.json
    rows+=("| $ds | classifier test accuracy | $(fmt "$acc" '%.4f') | | | |")
    rows+=("| $ds | real training images (baseline) | $(fmt "$(num "$f" fid_baseline)" '%.1f') | $(fmt "$(num "$f" classifier_score_baseline)" '%.2f') | $(fmt "$(num "$f" precision_baseline)" '%.2f') | $(fmt "$(num "$f" recall_baseline)" '%.2f') |")
    g=$out/$ds-noise.json
    rows+=("| $ds | uniform noise | $(fmt "$(num "$g" fid)" '%.1f') | $(fmt "$(num "$g" classifier_score)" '%.2f') | $(fmt "$(num "$g" precision)" '%.2f') | $(fmt "$(num "$g" recall)" '%.2f') |")
    for fam in vae gan diffusion; do
        f=$out/$ds-$fam.json
        extra=
        [ "$fam" = vae ] && extra=" (test −ELBO $(fmt "$(num "$f" test_loss)" '%.2f'), −IW-100 bound $(fmt "$(num "$f" neg_iw_bound)" '%.2f') nats)"
        rows+=("| $ds | $fam$extra | $(fmt "$(num "$f" fid)" '%.1f') | $(fmt "$(num "$f" classifier_score)" '%.2f') | $(fmt "$(num "$f" precision)" '%.2f') | $(fmt "$(num "$f" recall)" '%.2f') |")
    done
done

train "$out/transformer" transformer --data data/moby-dick.txt
"$gen" eval transformer --ckpt "$out/transformer/checkpoint.safetensors" --data data/moby-dick.txt \
    --threads "$threads" --json --quiet >"$out/transformer.json"
t=$out/transformer.json

echo
echo "$n generated images per row, against the $(num "$out/fashion-mnist-vae.json" test_images) test images:"
echo
echo "| data | samples | FID | classifier score | precision | recall |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Transformer on data/moby-dick.txt (validation split): $(fmt "$(num "$t" val_loss)" '%.4f') nats/token," \
     "$(fmt "$(num "$t" val_bpb)" '%.4f') bits/byte, perplexity $(fmt "$(num "$t" perplexity)" '%.2f')"
