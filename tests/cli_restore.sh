# cli_restore.sh - restoration with one diffusion model through the command
# line, on a tiny model trained for two steps on Fashion-MNIST: each
# sampling mode (--superres, --denoise, --inpaint with random strokes) on
# test images and on the user's own files, the grids they write, `gen eval
# --restore MODE` with its numbers (super-resolution consistent to well
# under 2/255, inpainting keeping the known pixels), and misuse: an input
# of the wrong size exits 1 naming the file, a bad factor or two modes at
# once exit 2.
# Usage: bash tests/cli_restore.sh PATH_TO_GEN   (needs data/fashion-mnist; skips, exit 77, without it)
set -u
GEN=${1:?usage: cli_restore.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
. "$(dirname "$0")/testlib.sh"
DATA=$SRC/data/fashion-mnist
if ! ls "$DATA"/t10k-images* >/dev/null 2>&1; then
    echo "cli_restore: $DATA absent (scripts/fetch-data.sh): skipped"
    exit 77
fi
CKPT=$TMP/dif/checkpoint.safetensors
CLF=$TMP/clf/checkpoint.safetensors
S=(--ckpt "$CKPT" --data "$DATA" --steps 3 --threads 1 --quiet)

# usage: png_size FILE: "W H" of a PNG
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ print $3 * 256 + $4, $7 * 256 + $8 }'; }
# usage: pgm FILE SIDE: a grey SIDE x SIDE PGM of random pixels
pgm() { { printf 'P5\n%d %d\n255\n' "$2" "$2"; head -c $(($2 * $2)) /dev/urandom; } >"$1"; }
# usage: metric NAME: a number of the JSON result in $TMP/out
metric() { grep -o "\"$1\":[-0-9.e]*" "$TMP/out" | head -1 | cut -d: -f2; }

expect 0 "train" "" -- "$GEN" train diffusion --data "$DATA" --steps 2 --batch 8 --base 8 --mults 1,1,1 \
    --no-attn --timesteps 20 --sample-steps 2 --out "$TMP/dif" --threads 1 --quiet
expect 0 "feature classifier" "" -- "$GEN" train classifier --data "$DATA" --steps 3 --batch 16 --filters 2 \
    --out "$TMP/clf" --threads 1 --quiet

# test images, degraded by gen: rows [input | n results | original]
expect 0 "--superres 4 test:0-2" "" -- "$GEN" sample diffusion "${S[@]}" --superres 4 --input test:0-2 -n 2 -o "$TMP/sr.png"
[ "$(png_size "$TMP/sr.png")" = "122 92" ] || fail "--superres grid: $(png_size "$TMP/sr.png"), want 4 x 3 tiles (122 92)"
expect 0 "--denoise 0.3 test:4" "" -- "$GEN" sample diffusion "${S[@]}" --denoise 0.3 --input test:4 -n 1 -o "$TMP/dn/"
[ "$(ls "$TMP/dn" | wc -l)" = 3 ] || fail "--denoise -o DIR/: want 3 images (noisy, restored, original): $(ls "$TMP/dn")"
expect 0 "--inpaint strokes" "" -- "$GEN" sample diffusion "${S[@]}" --inpaint --mask strokes --input test:0-1 -n 2 --resample 2 -o "$TMP/in.png"
[ "$(png_size "$TMP/in.png")" = "122 62" ] || fail "--inpaint grid: $(png_size "$TMP/in.png")"
expect 0 "--inpaint test:K (as before)" "" -- "$GEN" sample diffusion "${S[@]}" --inpaint test:3 --mask centre -n 1 -o "$TMP/in1.png"

# the user's own files: rows [input | n results], taken at their own size
pgm "$TMP/low.pgm" 7
pgm "$TMP/big.pgm" 28
expect 0 "--superres 4 of a 7x7 file" "" -- "$GEN" sample diffusion "${S[@]}" --superres 4 --input "$TMP/low.pgm" -n 1 -o "$TMP/up/"
[ "$(ls "$TMP/up" | wc -l)" = 2 ] && [ "$(png_size "$TMP/up/00001.png")" = "28 28" ] ||
    fail "--superres of a file: want the input and one 28x28 result: $(ls "$TMP/up")"
expect 0 "--denoise of a 28x28 file" "" -- "$GEN" sample diffusion "${S[@]}" --denoise 0.2 --strength 0.3 --input "$TMP/big.pgm" -n 1 -o "$TMP/d.png"
expect 1 "--superres of a 28x28 file" "big.pgm: the image is 28x28; this mode wants 7x7" -- \
    "$GEN" sample diffusion "${S[@]}" --superres 4 --input "$TMP/big.pgm" -o "$TMP/x.png"
expect 1 "--denoise of a 7x7 file" "low.pgm" -- "$GEN" sample diffusion "${S[@]}" --denoise 0.2 --input "$TMP/low.pgm" -o "$TMP/x.png"

# misuse
expect 2 "--superres 3" "2 or 4" -- "$GEN" sample diffusion "${S[@]}" --superres 3 --input test:0 -o "$TMP/x.png"
expect 2 "--superres 8" "--superres" -- "$GEN" sample diffusion "${S[@]}" --superres 8 --input test:0 -o "$TMP/x.png"
expect 2 "two modes" "one restoration at a time" -- "$GEN" sample diffusion "${S[@]}" --superres 2 --denoise 0.1 --input test:0 -o "$TMP/x.png"
expect 2 "--strength alone" "--strength needs --denoise" -- "$GEN" sample diffusion "${S[@]}" --strength 0.5 -o "$TMP/x.png"
expect 2 "a bad test range" "--input: expected test:K" -- "$GEN" sample diffusion "${S[@]}" --denoise 0.1 --input test:x -o "$TMP/x.png"
expect 2 "eval --superres without --restore" "--restore" -- "$GEN" eval diffusion "${S[@]}" --superres 2 --classifier "$CLF"

# gen eval --restore: numbers beside the baseline
E=("${S[@]}" --classifier "$CLF" -n 12 --json)
expect 0 "eval --restore superres" "" -- "$GEN" eval diffusion "${E[@]}" --restore superres
for k in psnr psnr_baseline ssim fid fid_baseline fid_originals consistency_rms; do
    [ -n "$(metric $k)" ] || fail "eval --restore superres: no $k: $(cat "$TMP/out")"
done
grep -q '"baseline":"bicubic"' "$TMP/out" || fail "eval --restore superres: not against bicubic"
awk -v r="$(metric consistency_rms)" 'BEGIN { exit !(r < 0.1 / 255) }' ||
    fail "superres consistency $(metric consistency_rms), want < 0.1/255"
expect 0 "eval --restore denoise" "" -- "$GEN" eval diffusion "${E[@]}" --restore denoise --denoise 0.3
grep -q '"baseline":"blur [0-9.]*"' "$TMP/out" && [ -n "$(metric psnr_baseline)" ] || fail "eval --restore denoise: $(cat "$TMP/out")"
expect 0 "eval --restore inpaint" "" -- "$GEN" eval diffusion "${E[@]}" --restore inpaint --resample 1
[ "$(metric consistency_rms)" = 0 ] || fail "inpainting changed known pixels: consistency $(metric consistency_rms)"
[ -s "$TMP/dif/metrics.jsonl" ] && grep -q '"consistency_rms"' "$TMP/dif/metrics.jsonl" ||
    fail "eval --restore did not log beside the checkpoint"
finish cli_restore
