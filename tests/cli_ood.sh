# cli_ood.sh - anomaly detection from the command line: a tiny VAE trained
# a few steps on MNIST scores the MNIST and Fashion-MNIST test sets with
# `gen eval vae --ood` (AUROC/AUPR/FPR@95 of every score in --json, both
# sets' scores in --per-sample, the ROC plot in --roc, the same numbers
# again for the same seed), the anomaly map of `gen sample vae
# --reconstruct --heatmap`, and misuse: a missing data set, a shape the
# model cannot take, options that do not go together.
# Usage: bash tests/cli_ood.sh PATH_TO_GEN   (needs data/mnist and data/fashion-mnist)
set -u
GEN=${1:?usage: cli_ood.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
MNIST=$SRC/data/mnist
FMNIST=$SRC/data/fashion-mnist
. "$(dirname "$0")/testlib.sh"
needs cli_ood "$MNIST" "$FMNIST"

# png_info FILE: "WIDTH HEIGHT COLOUR_TYPE" from the PNG header.
png_info() { od -An -tu1 -j16 -N10 "$1" | awk '{ print $3 * 256 + $4, $7 * 256 + $8, $10 }'; }
# json_num FILE KEY: the number after "KEY": in a one-line JSON object.
json_num() { sed -n "s/.*\"$2\":\\([-0-9.eE+]*\\).*/\\1/p" "$1"; }

CKPT=$TMP/m/checkpoint.safetensors
"$GEN" train vae --data "$MNIST" --steps 40 --hidden 64 --latent 8 --out "$TMP/m" --threads 1 -q ||
    fail "training the tiny VAE failed"

# --ood with every output: exit 0, the numbers of every score.
"$GEN" eval vae --ckpt "$CKPT" --ood "$FMNIST" --iw 2 --threads 1 --json -q \
    --per-sample "$TMP/scores.csv" --roc "$TMP/roc.png" >"$TMP/ood.json" 2>"$TMP/err" ||
    fail "eval --ood failed: $(cat "$TMP/err")"
for s in neg_elbo neg_iw_bound neg_elbo_excess complexity neg_elbo_corrected neg_iw_bound_corrected; do
    for m in auroc aupr fpr95; do
        v=$(json_num "$TMP/ood.json" "${m}_$s")
        awk -v v="$v" 'BEGIN { exit !(v != "" && v >= 0 && v <= 1) }' ||
            fail "--json: ${m}_$s is '$v', want a number in [0, 1]"
    done
done
grep -q '"ood":{"in_data":"[^"]*mnist","in_images":10000,"ood_data":"[^"]*fashion-mnist","ood_images":10000' "$TMP/ood.json" ||
    fail "--json: no ood member naming both sets: $(head -c 400 "$TMP/ood.json")"
# Digits against clothes: even a VAE of 40 steps tells them apart by -ELBO.
auroc=$(json_num "$TMP/ood.json" auroc_neg_elbo)
awk -v v="$auroc" 'BEGIN { exit !(v > 0.9) }' || fail "AUROC of -ELBO is $auroc, want > 0.9"
# The CSV: a header, 10000 rows of each set, corrected = score - complexity.
head -1 "$TMP/scores.csv" | grep -qx "set,index,label,neg_elbo,neg_iw_bound,neg_elbo_excess,complexity,neg_elbo_corrected,neg_iw_bound_corrected" ||
    fail "--per-sample header: $(head -1 "$TMP/scores.csv")"
[ "$(grep -c '^in,' "$TMP/scores.csv")" = 10000 ] && [ "$(grep -c '^ood,' "$TMP/scores.csv")" = 10000 ] ||
    fail "--per-sample: want 10000 rows of each set"
awk -F, 'NR > 1 && ($4 - $7 - $8 > 0.01 || $4 - $7 - $8 < -0.01 || $7 <= 0) { bad++ } END { exit bad > 0 }' \
    "$TMP/scores.csv" || fail "--per-sample: neg_elbo_corrected is not neg_elbo - complexity"
[ "$(png_info "$TMP/roc.png")" = "800 500 2" ] || fail "--roc: $(png_info "$TMP/roc.png"), want an 800x500 RGB PNG"
# The same seed gives the same numbers.
"$GEN" eval vae --ckpt "$CKPT" --ood "$FMNIST" --iw 2 --threads 1 --json -q >"$TMP/again.json" ||
    fail "eval --ood again failed"
[ "$(json_num "$TMP/again.json" auroc_neg_iw_bound)" = "$(json_num "$TMP/ood.json" auroc_neg_iw_bound)" ] ||
    fail "eval --ood: another AUROC for the same seed"

# The anomaly map: rows of input | reconstruction | error as RGB.
"$GEN" sample vae --ckpt "$CKPT" --reconstruct --heatmap -n 6 -o "$TMP/heat.png" -q ||
    fail "sample --heatmap failed"
[ "$(png_info "$TMP/heat.png")" = "92 62 2" ] || fail "--heatmap grid: $(png_info "$TMP/heat.png"), want 92 62 2 (3x2 RGB)"

# Misuse.
# a folder of images to rank: every image of it is scored, not a test split
"$GEN" sample vae --ckpt "$CKPT" -n 12 -o "$TMP/folder/" -q || fail "sample into a folder failed"
expect 0 "--ood FOLDER" "" -- "$GEN" eval vae --ckpt "$CKPT" --ood "$TMP/folder" --iw 0 --threads 1 \
    --per-sample "$TMP/folder.csv" -q
[ "$(grep -c ',ood,\|^ood,\|,ood$' "$TMP/folder.csv")" = 12 ] ||
    fail "--ood FOLDER: want all 12 images scored: $(head -3 "$TMP/folder.csv")"

expect 1 "a missing --ood data set" "$TMP/nowhere" -- \
    "$GEN" eval vae --ckpt "$CKPT" --ood "$TMP/nowhere" --iw 0 --threads 1
# A model of 1x32x62 images (trained on a folder of one reconstruction
# pair) cannot take 28x28 digits: they are not converted to a non-square side.
"$GEN" sample vae --ckpt "$CKPT" --reconstruct -n 2 -o "$TMP/pair.png" -q || fail "sample --reconstruct failed"
mkdir -p "$TMP/wide"
for i in 0 1 2 3 4 5 6 7 8 9; do cp "$TMP/pair.png" "$TMP/wide/$i.png"; done
"$GEN" train vae --data "$TMP/wide" --steps 1 --hidden 8 --latent 2 --out "$TMP/w" --threads 1 -q ||
    fail "training on the wide folder failed"
expect 1 "a shape the model cannot take" "the model wants 1x32x62" -- \
    "$GEN" eval vae --ckpt "$TMP/w/checkpoint.safetensors" --ood "$MNIST" --iw 0 --threads 1
expect 2 "--roc without --ood" "--roc" -- "$GEN" eval vae --ckpt "$CKPT" --roc "$TMP/r.png"
expect 2 "--roc not a PNG" "--roc" -- "$GEN" eval vae --ckpt "$CKPT" --ood "$FMNIST" --roc "$TMP/r.jpg"
expect 2 "--ood with --samples" "--samples" -- \
    "$GEN" eval vae --ckpt "$CKPT" --ood "$FMNIST" --samples "$TMP/wide"
expect 2 "--ood of a family without per-image scores" "gan" -- \
    "$GEN" eval gan --ckpt "$CKPT" --ood "$FMNIST"
expect 2 "--per-sample over the checkpoint" "input" -- \
    "$GEN" eval vae --ckpt "$CKPT" --ood "$FMNIST" --iw 0 --per-sample "$CKPT"
expect 2 "--heatmap without --reconstruct" "--heatmap" -- \
    "$GEN" sample vae --ckpt "$CKPT" --heatmap -o "$TMP/h.png"
finish cli_ood
