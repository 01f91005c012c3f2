# cli_legacy.sh - checkpoints written by gen before the engine (one small
# run of each family, with the samples that gen drew from them, in
# tests/fixtures/legacy/) still load, and sample the same images and text.
# (The VAE's and GAN's sample PNGs were drawn again when each image got
# its own noise stream, keyed by the seed and its index, for sampling
# over MPI: the same weights, new latents.)
# Usage: bash tests/cli_legacy.sh PATH_TO_GEN
set -u
GEN=${1:?usage: cli_legacy.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
FIX=$SRC/tests/fixtures/legacy
. "$(dirname "$0")/testlib.sh"

for f in vae gan diffusion classifier transformer; do
    "$GEN" info "$FIX/$f.safetensors" >"$TMP/info" 2>&1 || fail "$f: gen info: $(cat "$TMP/info")"
done
for f in vae gan; do
    "$GEN" sample $f --ckpt "$FIX/$f.safetensors" -n 4 -o "$TMP/$f.png" --quiet --threads 1 2>"$TMP/err" ||
        fail "$f: sample: $(cat "$TMP/err")"
    cmp -s "$TMP/$f.png" "$FIX/$f-samples.png" || fail "$f: samples differ from the old gen's"
done
"$GEN" sample diffusion --ckpt "$FIX/diffusion.safetensors" -n 4 --steps 5 -o "$TMP/d.png" --quiet \
    --threads 1 2>"$TMP/err" || fail "diffusion: sample: $(cat "$TMP/err")"
cmp -s "$TMP/d.png" "$FIX/diffusion-samples.png" || fail "diffusion: samples differ from the old gen's"
"$GEN" sample transformer --ckpt "$FIX/transformer.safetensors" --prompt "Call" --length 40 \
    --temperature 0 --quiet --threads 1 >"$TMP/t.txt" 2>"$TMP/err" ||
    fail "transformer: sample: $(cat "$TMP/err")"
cmp -s "$TMP/t.txt" "$FIX/transformer-sample.txt" || fail "transformer: text differs from the old gen's"

finish cli_legacy
