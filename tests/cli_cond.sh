# cli_cond.sh - class-conditional models through the command line, on a
# copy of MNIST whose classes.txt gives its own names (one with a '/'): a
# tiny conditional diffusion model trains; --class by name, by index and
# all; --per-class writes a labelled folder a classifier trains on and is
# scored by name against the IDX test set; gen eval measures class accuracy
# at a list of guidance values with a plot; misuse exits 2 with one line.
# Usage: bash tests/cli_cond.sh PATH_TO_GEN   (needs data/mnist; skips, exit 77, without it)
set -u
GEN=${1:?usage: cli_cond.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
. "$(dirname "$0")/testlib.sh"
needs cli_cond "$SRC/data/mnist/t10k-labels-idx1-ubyte"
DATA=$TMP/digits
mkdir -p "$DATA"
cp "$SRC"/data/mnist/*-ubyte "$DATA"/
printf '%s\n' zero one/uno two three four five six seven eight nine >"$DATA/classes.txt"
RUN=$TMP/cdif
CKPT=$RUN/checkpoint.safetensors
tiny=(--batch 8 --base 8 --mults 1,1,1 --no-attn --timesteps 20 --sample-steps 2 --threads 1 --quiet)

expect 0 "train --conditional" "" -- "$GEN" train diffusion --data "$DATA" --conditional --steps 6 --out "$RUN" "${tiny[@]}"
[ -f "$RUN/samples-00000006.png" ] || fail "no snapshot grid of the conditional run"
grep -aq 'one/uno' "$CKPT" || fail "the checkpoint does not keep the class names"

# --class by name (any spelling of its letters and digits), by index, all
expect 0 "--class by name" "" -- "$GEN" sample diffusion --ckpt "$CKPT" --class "One-UNO" -n 3 --steps 2 -o "$TMP/one.png" --json
grep -q '"class":"one/uno"' "$TMP/out" || fail "--class one-uno: JSON lacks the class: $(cat "$TMP/out")"
[ -s "$TMP/one.png" ] || fail "--class: no grid"
expect 0 "--class by index" "" -- "$GEN" sample diffusion --ckpt "$CKPT" --class 9 -n 2 --steps 2 -o "$TMP/nine.png" --json
grep -q '"class":"nine"' "$TMP/out" || fail "--class 9: JSON lacks the class: $(cat "$TMP/out")"
expect 0 "--class all" "" -- "$GEN" sample diffusion --ckpt "$CKPT" --class all -n 2 --steps 2 --guidance 0 -o "$TMP/all.png" --json
grep -q '"images":20' "$TMP/out" && grep -q '"classes":\["zero","one/uno","two",' "$TMP/out" ||
    fail "--class all -n 2: want 20 images in labelled rows: $(cat "$TMP/out")"

# --per-class: DIR/CLASS/NNNNN.png, read back as an image folder by class
expect 0 "--per-class" "" -- "$GEN" sample diffusion --ckpt "$CKPT" --per-class 10 --steps 2 -o "$TMP/synth/" -q
[ "$(ls "$TMP/synth" | wc -l)" = 10 ] && [ -f "$TMP/synth/one-uno/00009.png" ] ||
    fail "--per-class 10: want 10 class folders of 10: $(ls -R "$TMP/synth" | head -20)"
expect 0 "classifier on the synthetic folder" "" -- "$GEN" train classifier --data "$TMP/synth" --steps 2 --batch 8 --filters 2 --out "$TMP/cas" --threads 1 -q
# scored on the IDX test set, its classes matched by name
expect 0 "synthetic classifier on real data" "" -- "$GEN" eval classifier --ckpt "$TMP/cas/checkpoint.safetensors" --data "$DATA" --threads 1 -q --json
grep -q '"test_accuracy"' "$TMP/out" || fail "eval classifier: no accuracy: $(cat "$TMP/out")"

# eval: class accuracy and FID at each guidance value, a plot
expect 0 "feature classifier" "" -- "$GEN" train classifier --data "$DATA" --steps 3 --batch 16 --filters 2 --out "$TMP/clf" --threads 1 -q
expect 0 "eval --guidance 0,2" "" -- "$GEN" eval diffusion --ckpt "$CKPT" --classifier "$TMP/clf/checkpoint.safetensors" -n 20 --steps 2 --guidance 0,2 --threads 1 -q --json
grep -q '"guidance":\[{"guidance":0,' "$TMP/out" && grep -q '{"guidance":2,' "$TMP/out" && grep -q '"name":"one/uno"' "$TMP/out" ||
    fail "eval --guidance 0,2: want one result per value with classes: $(cat "$TMP/out")"
[ -s "$RUN/guidance.png" ] || fail "eval --guidance 0,2: no plot beside the checkpoint"
# the conditional VAE and GAN are scored by class too (and gen eval vae
# --classifier generates through the sample verb with eval's options)
for fam in vae gan; do
    expect 0 "train $fam --conditional" "" -- "$GEN" train $fam --data "$DATA" --conditional --steps 3 --batch 8 --out "$TMP/c$fam" --threads 1 -q
    expect 0 "eval $fam --classifier" "" -- "$GEN" eval $fam --ckpt "$TMP/c$fam/checkpoint.safetensors" --classifier "$TMP/clf/checkpoint.safetensors" -n 20 --threads 1 -q --json
    grep -q '"class_accuracy":' "$TMP/out" || fail "eval $fam: no class accuracy: $(cat "$TMP/out")"
done
# a --samples folder whose subfolders are classes is scored by class
expect 0 "eval --samples by class" "" -- "$GEN" eval diffusion --classifier "$TMP/clf/checkpoint.safetensors" --data "$DATA" --samples "$TMP/synth" -q --json
grep -q '"by_class":\[{' "$TMP/out" || fail "eval --samples DIR/CLASS/: no scores by class: $(cat "$TMP/out")"

# misuse: one line, exit 2 (usage) or 1 (data)
expect 2 "unknown class" "not a class of this model (zero, one/uno" -- "$GEN" sample diffusion --ckpt "$CKPT" --class ten -o "$TMP/x.png"
expect 2 "--per-class to a file" "give -o a folder" -- "$GEN" sample diffusion --ckpt "$CKPT" --per-class 2 -o "$TMP/x.png"
expect 2 "a guidance list when sampling" "one number" -- "$GEN" sample diffusion --ckpt "$CKPT" --guidance 1,2 --steps 2 -o "$TMP/x.png"
expect 2 "a bad guidance list" "--guidance" -- "$GEN" eval diffusion --ckpt "$CKPT" --classifier "$TMP/clf/checkpoint.safetensors" --guidance 1,x
expect 0 "unconditional model" "" -- "$GEN" train diffusion --data "$DATA" --steps 1 --out "$TMP/unc" "${tiny[@]}"
# eval scores the weights sampling uses, the EMA, unless --no-ema (it once
# swapped them in twice, so that both scored the trained weights)
fid_of() { grep -o '"fid":[0-9.e+-]*' "$TMP/out"; }
unc=(eval diffusion --ckpt "$TMP/unc/checkpoint.safetensors" --classifier "$TMP/clf/checkpoint.safetensors" -n 16 --steps 2 --threads 1 -q --json)
expect 0 "eval of the EMA" "" -- "$GEN" "${unc[@]}"
fid_ema=$(fid_of)
expect 0 "eval --no-ema" "" -- "$GEN" "${unc[@]}" --no-ema
fid_raw=$(fid_of)
[ -n "$fid_ema" ] && [ -n "$fid_raw" ] && [ "$fid_ema" != "$fid_raw" ] ||
    fail "eval with and without --no-ema scored the same weights: $fid_ema, $fid_raw"
expect 2 "--class of an unconditional model" "unconditional" -- "$GEN" sample diffusion --ckpt "$TMP/unc/checkpoint.safetensors" --class 1 -o "$TMP/x.png"
expect 2 "--guidance of an unconditional model" "unconditional" -- "$GEN" sample diffusion --ckpt "$TMP/unc/checkpoint.safetensors" --guidance 3 --steps 2 -o "$TMP/x.png"
mkdir -p "$TMP/flat"
cp "$TMP/synth/zero/"*.png "$TMP/flat/"
expect 1 "--conditional on unlabelled images" "1 class" -- "$GEN" train diffusion --data "$TMP/flat" --conditional --steps 1 --out "$TMP/flatrun" "${tiny[@]}"
printf 'a\n\001b\n' >"$DATA/classes.txt"
expect 1 "a bad classes.txt" "classes.txt: line 2" -- "$GEN" train diffusion --data "$DATA" --steps 1 --out "$TMP/bad" "${tiny[@]}"
printf 'a\nb\n' >"$DATA/classes.txt"
expect 1 "a classes.txt short of the labels" "names 2 classes" -- "$GEN" train diffusion --data "$DATA" --steps 1 --out "$TMP/bad" "${tiny[@]}"

finish cli_cond
