# cli_data.sh - data as it is: an image family takes the images' size and
# channels unless --image-size / --channels say otherwise, never resizes
# them silently to fit a model (a resumed run, sample --data, eval --data:
# refused naming the data and both shapes); --tokenizer char reads UTF-8
# characters (samples are valid UTF-8; text that is not valid UTF-8 is
# said once); text folders are searched recursively and counted.
# Everything is generated here, small, in a temporary folder.
# Usage: bash tests/cli_data.sh PATH_TO_GEN
set -u
GEN=${1:?usage: cli_data.sh PATH_TO_GEN}
. "$(dirname "$0")/testlib.sh"

le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))"; }
le32() { le16 $(($1 & 65535)); le16 $(($1 >> 16 & 65535)); }
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
# bmp FILE SIDE: a SIDE x SIDE 24-bit RGB BMP of random pixels
bmp() {
    local stride=$((($2 * 3 + 3) / 4 * 4))
    local size=$((stride * $2))
    { printf 'BM'; le32 $((54 + size)); le32 0; le32 54; le32 40; le32 "$2"; le32 "$2"; le16 1
      le16 24; le32 0; le32 "$size"; le32 2835; le32 2835; le32 0; le32 0
      head -c "$size" /dev/urandom; } >"$1"
}
# folder DIR SIDE: 20 such images (18 train, 2 test)
folder() {
    mkdir -p "$1"
    for i in $(seq -w 1 20); do bmp "$1/$i.bmp" "$2"; done
}
# idx DIR: an MNIST-format folder of 20 + 10 grey 28 x 28 images
idx() {
    local p n
    mkdir -p "$1"
    for p in train:20 t10k:10; do
        n=${p#*:} p=${p%:*}
        { printf '\x00\x00\x08\x03'; be32 "$n"; be32 28; be32 28; head -c $((n * 784)) /dev/urandom; } \
            >"$1/$p-images-idx3-ubyte"
        { printf '\x00\x00\x08\x01'; be32 "$n"; for i in $(seq "$n"); do printf "\\x0$((i % 10))"; done; } \
            >"$1/$p-labels-idx1-ubyte"
    done
}
# png_info FILE: "WIDTH HEIGHT COLOUR_TYPE" of a PNG
png_info() { od -An -tu1 -j16 -N10 "$1" | awk '{ print $3 * 256 + $4, $7 * 256 + $8, $10 }'; }
valid_utf8() { iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1; }

folder "$TMP/rgb32" 32
folder "$TMP/rgb28" 28
folder "$TMP/rgb30" 30
idx "$TMP/grey28"
GAN=(--steps 2 --batch 4 --g-width 4 --d-width 4 --latent 4 --threads 1 --quiet)
VAE=(--steps 2 --batch 4 --hidden 8 --latent 2 --threads 1 --quiet)

# ---- images: the data's size and channels --------------------------------

expect 0 "GAN on 32x32 RGB without --image-size" "" -- \
    "$GEN" train gan --data "$TMP/rgb32" --out "$TMP/gan32" "${GAN[@]}"
"$GEN" sample gan --ckpt "$TMP/gan32/checkpoint.safetensors" -n 1 -o "$TMP/g32/" -q ||
    fail "sampling the 32x32 GAN failed"
[ "$(png_info "$TMP"/g32/*.png)" = "32 32 2" ] ||
    fail "the GAN trained on 32x32 RGB samples $(png_info "$TMP"/g32/*.png), want 32 32 2 (RGB)"
expect 1 "GAN on 30x30 without --image-size" "rgb30.*images are 30x30.*--image-size" -- \
    "$GEN" train gan --data "$TMP/rgb30" --out "$TMP/gan30" "${GAN[@]}"
[ -e "$TMP/gan30/checkpoint.safetensors" ] && fail "a refused run wrote a checkpoint"
expect 0 "GAN on 30x30 with --image-size 32" "" -- \
    "$GEN" train gan --data "$TMP/rgb30" --image-size 32 --out "$TMP/gan30" "${GAN[@]}"
expect 0 "GAN on grey 28x28 IDX" "" -- \
    "$GEN" train gan --data "$TMP/grey28" --out "$TMP/gangrey" "${GAN[@]}"
"$GEN" sample gan --ckpt "$TMP/gangrey/checkpoint.safetensors" -n 1 -o "$TMP/g28/" -q &&
    [ "$(png_info "$TMP"/g28/*.png)" = "28 28 0" ] || fail "the grey GAN does not sample 28x28 grey"
expect 0 "VAE on 32x32 RGB" "" -- "$GEN" train vae --data "$TMP/rgb32" --out "$TMP/vae32" "${VAE[@]}"
expect 0 "VAE with --image-size 16 --channels 1" "" -- \
    "$GEN" train vae --data "$TMP/rgb32" --image-size 16 --channels 1 --out "$TMP/vae16" "${VAE[@]}"
"$GEN" sample vae --ckpt "$TMP/vae16/checkpoint.safetensors" -n 1 -o "$TMP/v16/" -q &&
    [ "$(png_info "$TMP"/v16/*.png)" = "16 16 0" ] || fail "--image-size 16 --channels 1: not a 16x16 grey model"
cp -r "$TMP/rgb32" "$TMP/mixed" && bmp "$TMP/mixed/07.bmp" 28
expect 1 "GAN on images of two sizes" \
    "mixed/07.bmp: image is 28x28 but earlier ones are 32x32; give --image-size N" -- \
    "$GEN" train gan --data "$TMP/mixed" --out "$TMP/ganmix" "${GAN[@]}"
expect 1 "diffusion on 30x30" "--image-size" -- \
    "$GEN" train diffusion --data "$TMP/rgb30" --out "$TMP/dif30" --steps 1 --batch 2 --base 8 \
    --mults 1,1,1 --no-attn --threads 1 --quiet

# ---- epochs of a few steps -------------------------------------------------

# 18 training images at batch 4: an epoch every 5 steps. The default cadence
# (an evaluation and a snapshot at each epoch's end) keeps to the epochs that
# hold a multiple of --log-every (50), and the last step
expect 0 "VAE, 120 steps of 5-step epochs" "" -- "$GEN" train vae --data "$TMP/rgb32" \
    --out "$TMP/short" "${VAE[@]}" --steps 120
snaps=$(cd "$TMP/short" && echo samples-*.png)
[ "$snaps" = "samples-00000050.png samples-00000100.png samples-00000120.png" ] ||
    fail "5-step epochs: snapshots $snaps, want those of steps 50, 100 and 120"
[ "$(grep -c '"test_loss"' "$TMP/short/metrics.jsonl")" = 3 ] ||
    fail "5-step epochs: $(grep -c '"test_loss"' "$TMP/short/metrics.jsonl") evaluations, want 3"

# --force: the old run's snapshots move aside with its log, so the new
# run's are not mixed with them (gen report shows what it finds)
"$GEN" train vae --data "$TMP/rgb32" --out "$TMP/short" "${VAE[@]}" --steps 4 --sample-every 1 \
    --force || fail "VAE --force --steps 4"
snaps=$(cd "$TMP/short" && echo samples-*.png | sed 's/samples-0000000//g')
[ "$snaps" = "1.png 2.png 3.png 4.png" ] &&
    [ -f "$TMP/short/samples-00000120.png.prev" ] && [ -f "$TMP/short/metrics.jsonl.prev" ] ||
    fail "--force: snapshots $snaps; aside: $(cd "$TMP/short" && echo *.prev)"
"$GEN" train vae --data "$TMP/rgb32" --out "$TMP/short" "${VAE[@]}" --steps 2 --sample-every 1 \
    --force || fail "VAE --force --steps 2"
aside=$(cd "$TMP/short" && echo samples-*.prev | sed 's/samples-0000000//g')
[ "$aside" = "1.png.prev 2.png.prev 3.png.prev 4.png.prev" ] ||
    fail "a second --force: the snapshots aside are $aside, want the last run's"

# ---- a run directory names its checkpoint --------------------------------

# --ckpt, --resume, --classifier, gen info and gen export take the folder a
# run wrote (its checkpoint.safetensors), and say which file they read
"$GEN" sample vae --ckpt "$TMP/vae16/" -n 2 --seed 3 -o "$TMP/dir.png" -q &&
    "$GEN" sample vae --ckpt "$TMP/vae16/checkpoint.safetensors" -n 2 --seed 3 \
        -o "$TMP/file.png" -q && cmp -s "$TMP/dir.png" "$TMP/file.png" ||
    fail "sample --ckpt RUN_DIR/ differs from its checkpoint"
expect 0 "gen info RUN_DIR" "" -- "$GEN" info "$TMP/vae16"
grep -q "^file: *$TMP/vae16/checkpoint.safetensors$" "$TMP/out" ||
    fail "gen info RUN_DIR: $(head -2 "$TMP/out")"
expect 0 "gen export RUN_DIR" "" -- "$GEN" export "$TMP/vae16" -o "$TMP/v16.safetensors"
grep -q "of $TMP/vae16/checkpoint.safetensors$" "$TMP/err" ||
    fail "gen export RUN_DIR: $(cat "$TMP/err")"
expect 0 "train --resume RUN_DIR" "" -- "$GEN" train vae --data "$TMP/rgb32" --image-size 16 \
    --channels 1 --out "$TMP/vae16b" --resume "$TMP/vae16" "${VAE[@]}" --steps 3
mkdir -p "$TMP/norun"
expect 1 "sample --ckpt of a folder without a checkpoint" \
    "norun/checkpoint.safetensors: cannot open: No such file" -- \
    "$GEN" sample vae --ckpt "$TMP/norun" -n 1 -o "$TMP/none.png"
expect 1 "eval --classifier of a folder without one" "norun/checkpoint.safetensors" -- \
    "$GEN" eval vae --ckpt "$TMP/vae16" --classifier "$TMP/norun" -n 10

# ---- a model's data is never resized to fit it ----------------------------

V32=$TMP/vae32/checkpoint.safetensors
expect 0 "eval on data of the model's shape" "" -- "$GEN" eval vae --ckpt "$V32" --data "$TMP/rgb32" --iw 0 -q
expect 1 "eval --data of another size" "rgb28: images are 3x28x28.*trained on 3x32x32" -- \
    "$GEN" eval vae --ckpt "$V32" --data "$TMP/rgb28" --iw 0
[ "$(grep -c . "$TMP/err")" = 1 ] || fail "eval --data of another size: not one line: $(cat "$TMP/err")"
expect 1 "eval --data of other channels" "grey28: images are 1x28x28.*trained on 3x32x32" -- \
    "$GEN" eval vae --ckpt "$V32" --data "$TMP/grey28" --iw 0
expect 1 "sample --reconstruct --data of another size" "images are 3x28x28.*3x32x32" -- \
    "$GEN" sample vae --ckpt "$V32" --reconstruct --data "$TMP/rgb28" -n 2 -o "$TMP/r.png"
# the model's own conversion applies to --data: 16x16 grey from 32x32 RGB
expect 0 "eval of the --image-size 16 --channels 1 model" "" -- \
    "$GEN" eval vae --ckpt "$TMP/vae16/checkpoint.safetensors" --data "$TMP/rgb28" --iw 0 -q
# a resumed run on data that became another size
cp -r "$TMP/rgb32" "$TMP/moving"
"$GEN" train gan --data "$TMP/moving" --out "$TMP/ganmv" "${GAN[@]}" || fail "GAN on the moving folder"
rm -r "$TMP/moving" && folder "$TMP/moving" 28
expect 1 "resume on data of another size" "moving: images are 3x28x28.*ganmv/checkpoint.safetensors was trained on 3x32x32" -- \
    "$GEN" train gan --out "$TMP/ganmv" --resume --steps 4 --threads 1 --quiet
expect 1 "resume with --resume CKPT on data of another size" "images are 3x28x28" -- \
    "$GEN" train gan --out "$TMP/ganmv" --resume "$TMP/ganmv/checkpoint.safetensors" --steps 4 --threads 1

# ---- text: UTF-8 characters, folders --------------------------------------

mkdir -p "$TMP/books/part/deeper" "$TMP/books/.hidden"
for i in 1 2 3 4 5 6; do
    printf 'Æsop\xe2\x80\x99s fables — «le corbeau et le renard», Ἀθῆναι, 東京, Ж, 😀 %s.\n' "$i"
done >"$TMP/books/a.txt"
cp "$TMP/books/a.txt" "$TMP/books/part/b.txt"
cp "$TMP/books/a.txt" "$TMP/books/part/deeper/c.txt"
printf 'hidden \xff\n' >"$TMP/books/.hidden/x.txt"
bytes=$(cat "$TMP/books/a.txt" "$TMP/books/part/b.txt" "$TMP/books/part/deeper/c.txt" | wc -c)
TF=(--batch 2 --layers 1 --heads 2 --width 16 --context 16 --eval-every 2 --sample-every 2 --threads 1)
expect 0 "char transformer on a UTF-8 folder" "" -- \
    "$GEN" train transformer --data "$TMP/books" --tokenizer char --steps 2 --out "$TMP/tf" "${TF[@]}"
grep -q "books: 3 files, $(awk -v b="$bytes" 'BEGIN { printf "%.1f kB", b / 1000 }')" "$TMP/err" ||
    fail "no file and byte count of the folder: $(cat "$TMP/err")"
grep -q "warning" "$TMP/err" && fail "a warning on valid UTF-8: $(cat "$TMP/err")"
CK=$TMP/tf/checkpoint.safetensors
for f in "$TMP"/tf/samples-*.txt; do valid_utf8 "$f" || fail "snapshot $f is not valid UTF-8"; done
expect 0 "sampling the char model" "" -- \
    "$GEN" sample transformer --ckpt "$CK" --prompt "Æsop" --length 300 --temperature 1.5 -n 3 -o "$TMP/s.txt" -q
valid_utf8 "$TMP/s.txt" || fail "samples of a UTF-8 corpus are not valid UTF-8: $(od -c "$TMP/s.txt" | head)"
[ "$(head -c 5 "$TMP/s.txt")" = "Æsop" ] || fail "the prompt is not echoed"
# --length counts characters, not bytes: the prompt's 4, 300, a line break
"$GEN" sample transformer --ckpt "$CK" --prompt "Æsop" --length 300 -o "$TMP/one.txt" -q
[ "$(iconv -f UTF-8 -t UTF-32LE "$TMP/one.txt" | wc -c)" = $((4 * 305)) ] ||
    fail "want 305 characters: $(iconv -f UTF-8 -t UTF-32LE "$TMP/one.txt" | wc -c) bytes of UTF-32"
# -o -: standard output, as without -o (it had made a file named "-")
(cd "$TMP" && "$GEN" sample transformer --ckpt "$CK" --prompt "Æsop" --length 300 -o - -q) \
    >"$TMP/dash.txt" || fail "sample -o - failed"
cmp -s "$TMP/dash.txt" "$TMP/one.txt" || fail "-o - differs from -o FILE: $(head -c 80 "$TMP/dash.txt")"
[ -e "$TMP/-" ] && fail "-o - made a file named -"
expect 0 "--json samples" "" -- \
    "$GEN" sample transformer --ckpt "$CK" --length 50 --json -q
grep -q '"samples":\["' "$TMP/out" || fail "--json: no samples: $(cat "$TMP/out")"
# the threads share each sample's tokens or take a sample each: the same samples, in order,
# as one at a time with seeds 4, 5, 6 (sample i draws from seed + i), in a file and in --json
for share in tokens samples auto; do
    "$GEN" sample transformer --ckpt "$CK" --prompt "Æsop" --length 40 -n 3 --seed 4 --threads 3 \
        --share $share -o "$TMP/share-$share.txt" -q || fail "sample --share $share failed"
    "$GEN" sample transformer --ckpt "$CK" --prompt "Æsop" --length 40 -n 3 --seed 4 --threads 2 \
        --share $share --json -q >"$TMP/share-$share.json" || fail "sample --share $share --json failed"
done
for seed in 4 5 6; do
    "$GEN" sample transformer --ckpt "$CK" --prompt "Æsop" --length 40 --seed $seed -q
    [ $seed = 6 ] || printf '\n'
done >"$TMP/share-one.txt"
for share in tokens samples auto; do
    cmp -s "$TMP/share-$share.txt" "$TMP/share-one.txt" ||
        fail "--share $share: not the samples of seeds 4, 5, 6: $(head -c 200 "$TMP/share-$share.txt")"
    [ "$(grep -o '"samples":.*' "$TMP/share-$share.json")" = \
        "$(grep -o '"samples":.*' "$TMP/share-tokens.json")" ] ||
        fail "--share $share --json: other samples: $(cat "$TMP/share-$share.json")"
done
[ "$(grep -o '"Æsop' "$TMP/share-samples.json" | wc -l)" = 3 ] ||
    fail "--json: not 3 samples: $(cat "$TMP/share-samples.json")"
# and --json says how many went at once after the first: 2 threads a sample each, or 1
grep -q '"samples_at_once":2[,}]' "$TMP/share-samples.json" ||
    fail "--share samples: not 2 at once: $(cat "$TMP/share-samples.json")"
grep -q '"samples_at_once":1[,}]' "$TMP/share-tokens.json" ||
    fail "--share tokens: not 1 at once: $(cat "$TMP/share-tokens.json")"
# decoding on every core by default, as --threads 0 (it took one thread until 2026-12-06)
env -u GEN_THREADS "$GEN" sample transformer --ckpt "$CK" --length 5 --json -q --threads 0 \
    >"$TMP/out" || fail "sample --threads 0 failed"
all=$(grep -o '"threads":[0-9]*' "$TMP/out") || fail "--threads 0: no thread count: $(cat "$TMP/out")"
env -u GEN_THREADS "$GEN" sample transformer --ckpt "$CK" --length 5 --json -q >"$TMP/out" ||
    fail "sample without GEN_THREADS failed"
grep -q "$all[,}]" "$TMP/out" || fail "sampling: not $all as --threads 0: $(cat "$TMP/out")"
GEN_THREADS=3 "$GEN" sample transformer --ckpt "$CK" --length 5 --json -q >"$TMP/out" ||
    fail "GEN_THREADS=3 sample failed"
grep -q '"threads":3[,}]' "$TMP/out" || fail "GEN_THREADS=3: $(cat "$TMP/out")"
# a context whose sampling cache does not fit is one line naming its size and the context
# (ASan, where the suite runs under it, is told to hand the refused allocation back as NULL)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1 \
    "$GEN" train transformer --data "$TMP/books/a.txt" --context 65536 --steps 1 \
    --out "$TMP/huge" -q 2>"$TMP/err" && fail "--context 65536 trained"
grep -q "out of memory for the sampling cache: .* GiB at a context of 65536 tokens" "$TMP/err" &&
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "--context 65536: '$(cat "$TMP/err")'"
# a GEN_THREADS that is no count (or past --threads' limit) is said and ignored; it had sized
# the sampling cache's rows (100000: "out of memory for the KV cache")
for bad in abc 100000 -2 3x; do
    GEN_THREADS=$bad "$GEN" sample transformer --ckpt "$CK" --length 5 --json -q >"$TMP/out" \
        2>"$TMP/err" || fail "GEN_THREADS=$bad sample failed: $(cat "$TMP/err")"
    grep -q "$all[,}]" "$TMP/out" || fail "GEN_THREADS=$bad: not $all: $(cat "$TMP/out")"
    want="gen: GEN_THREADS=$bad is not a thread count in [0, 4096]; ignoring it"
    [ "$(cat "$TMP/err")" = "$want" ] ||
        fail "GEN_THREADS=$bad: '$(cat "$TMP/err")'"
done
# --threads 0: every core, but at most OMP_NUM_THREADS (GEN_THREADS, gen's own, wins)
OMP_NUM_THREADS=1 "$GEN" sample transformer --ckpt "$CK" --length 5 --json -q --threads 0 \
    >"$TMP/out" || fail "OMP_NUM_THREADS=1 sample failed"
grep -q '"threads":1[,}]' "$TMP/out" || fail "OMP_NUM_THREADS=1: $(cat "$TMP/out")"
OMP_NUM_THREADS=1 GEN_THREADS=3 "$GEN" sample transformer --ckpt "$CK" --length 5 --json -q \
    --threads 0 >"$TMP/out" || fail "OMP_NUM_THREADS=1 GEN_THREADS=3 sample failed"
grep -q '"threads":3[,}]' "$TMP/out" ||
    fail "GEN_THREADS=3 under OMP_NUM_THREADS=1: $(cat "$TMP/out")"
# ... the cores this process may run on
env -u GEN_THREADS -u OMP_NUM_THREADS taskset -c 0 "$GEN" sample transformer --ckpt "$CK" \
    --length 5 --json -q --threads 0 >"$TMP/out" || fail "taskset -c 0 sample failed"
grep -q '"threads":1[,}]' "$TMP/out" || fail "taskset -c 0: $(cat "$TMP/out")"
"$GEN" sample transformer --ckpt "$CK" --length 5 --json -q --threads 2 >"$TMP/out" ||
    fail "--threads 2 sample failed"
grep -q '"threads":2[,}]' "$TMP/out" || fail "--threads 2: $(cat "$TMP/out")"
expect 2 "a prompt character outside the vocabulary" "character 'Ω' (U+03A9) at byte offset 2" -- \
    "$GEN" sample transformer --ckpt "$CK" --prompt "ÆΩ" -o "$TMP/x.txt"
expect 0 "eval of the char model" "" -- "$GEN" eval transformer --ckpt "$CK" -q
# a hostile stored vocabulary: symbols out of order (the same length)
LC_ALL=C sed 's/"utf8:0a20/"utf8:200a/' "$CK" >"$TMP/badvocab.safetensors"
cmp -s "$CK" "$TMP/badvocab.safetensors" && fail "the vocabulary was not rewritten"
expect 1 "a stored vocabulary out of order" "badvocab.safetensors: bad \"vocab\" metadata" -- \
    "$GEN" sample transformer --ckpt "$TMP/badvocab.safetensors" --length 5

# text that is not valid UTF-8: said once, naming the file and offset
printf 'caf\xc3\xa9 ok\n' >"$TMP/books/part/deeper/c.txt"
printf 'ab\xffcd \xfe caf\xc3\xa9\n' >"$TMP/books/part/d.txt"
expect 0 "char transformer on text that is not UTF-8" "" -- \
    "$GEN" train transformer --data "$TMP/books" --tokenizer char --steps 2 --out "$TMP/tfbad" "${TF[@]}"
[ "$(grep -c "warning" "$TMP/err")" = 1 ] || fail "want one warning: $(cat "$TMP/err")"
grep -q "warning: .*books/part/d.txt: not valid UTF-8 (byte offset 2)" "$TMP/err" ||
    fail "the warning does not name the file and offset: $(cat "$TMP/err")"
expect 0 "sampling it" "" -- \
    "$GEN" sample transformer --ckpt "$TMP/tfbad/checkpoint.safetensors" --prompt "café" --length 100 -o "$TMP/b.txt" -q
expect 0 "--tokenizer byte is unchanged" "" -- \
    "$GEN" train transformer --data "$TMP/books" --steps 2 --out "$TMP/tfbyte" "${TF[@]}"
grep -q "vocabulary 256" "$TMP/err" || fail "--tokenizer byte: not 256 symbols: $(cat "$TMP/err")"

finish cli_data
