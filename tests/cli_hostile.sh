# cli_hostile.sh - the hostile-input matrix of the command line (issue 13):
# FIFOs where files are read, symlink loops, files whose headers lie about
# their size, broken checkpoints, outputs onto inputs, absurd option values,
# a closed pipe, SIGHUP and stale temporary files. Every case runs gen under
# `timeout 20` and, unless gen is built with AddressSanitizer (which reserves
# terabytes of address space), under `ulimit -v 4000000`; it checks the exit
# code (1 bad file, 2 bad option), that stderr has exactly one line starting
# with "gen: " naming the file or option, that no sanitizer spoke, and that
# the user's files (a checkpoint, the data, an earlier output) are unchanged.
# Everything is generated here, small, in a temporary folder.
# Usage: bash tests/cli_hostile.sh PATH_TO_GEN
# Environment: GEN_HOSTILE_NO_MEMLIMIT=1 skips the memory bound (set it for
# a sanitizer build that the nm/ldd check below does not recognise);
# GEN_HOSTILE_VERBOSE=1 prints each case's exit code and message;
set -u
GEN=${1:?usage: cli_hostile.sh PATH_TO_GEN}
case $GEN in /*) ;; */*) GEN=$PWD/$GEN ;; esac # one case runs from another folder
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
# A case counts once: a failure found after check() takes back its pass.
fail() {
    echo "FAIL: $case_name: $*" >&2
    if [ "$case_failed" = 0 ]; then
        failed=$((failed + 1))
        [ "$case_done" = 1 ] && passed=$((passed - 1))
    fi
    case_failed=1
}

memlimit=1
if [ "${GEN_HOSTILE_NO_MEMLIMIT:-0}" = 1 ] ||
    nm "$GEN" 2>/dev/null | grep -q __asan_init ||
    ldd "$GEN" 2>/dev/null | grep -q libasan; then
    memlimit=0
    echo "cli_hostile: $GEN is built with ASan (or GEN_HOSTILE_NO_MEMLIMIT=1): no memory bound"
fi

# gen "$@" under the bounds; stdout to $TMP/out, stderr to $TMP/err, exit code in $rc.
bounded() {
    (
        [ "$memlimit" = 1 ] && ulimit -v 4000000
        exec timeout 20 "$GEN" "$@"
    ) >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

# ---- the user's files ----------------------------------------------------

. "$(dirname "$0")/idxlib.sh" # be32, mnist DIR PREFIX N
le64() {
    local i
    for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(($1 >> (8 * i) & 255)))"; done
}
# A safetensors file: header JSON (padded to 8 bytes) then DATA_BYTES zeros.
safetensors() {
    local path=$1 json=$2 data=${3:-0}
    while [ $((${#json} % 8)) != 0 ]; do json="$json "; done
    { le64 "${#json}"; printf '%s' "$json"; head -c "$data" /dev/zero; } >"$path"
}

DATA=$TMP/data
mnist "$DATA" train 40
mnist "$DATA" t10k 20
VAE_LOG=(--hidden 16 --batch 8 --threads 1)
VAE=("${VAE_LOG[@]}" --quiet)
"$GEN" train vae --data "$DATA" --steps 3 --out "$TMP/run" "${VAE[@]}" 2>"$TMP/err" || {
    echo "cli_hostile: cannot train the base checkpoint: $(cat "$TMP/err")" >&2
    echo "cli_hostile: 0 passed, 1 failed"
    exit 1
}
CKPT=$TMP/run/checkpoint.safetensors
"$GEN" sample vae --ckpt "$CKPT" -n 1 -o "$TMP/one.png" 2>/dev/null || echo "cli_hostile: sample failed" >&2
cp "$CKPT" "$TMP/ckpt.png" # a checkpoint under an image's name
(cd "$TMP" && sha256sum data/* run/checkpoint.safetensors one.png ckpt.png >"$TMP/user.sums")

# check NAME "RC..." PATTERN: the last bounded run exited with one of RC,
# printed exactly one "gen: " line holding PATTERN (when it exits 1 or 2),
# no sanitizer report, and left the user's files alone.
check() {
    case_name=$1
    local want=$2 pattern=$3 lines
    case_failed=0
    case_done=0
    case " $want " in *" $rc "*) ;; *) fail "exit $rc, want $want; stderr: $(head -3 "$TMP/err")" ;; esac
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Assertion|assertion" "$TMP/err"; then
        fail "sanitizer or assertion: $(grep -m1 -E "Sanitizer|runtime error|ssertion" "$TMP/err")"
    fi
    lines=$(grep -c '^gen: ' "$TMP/err")
    if [ "$rc" = 1 ] || [ "$rc" = 2 ]; then
        [ "$lines" = 1 ] || fail "$lines lines start with 'gen: ', want 1: $(head -3 "$TMP/err")"
        grep '^gen: ' "$TMP/err" | grep -qF -- "$pattern" ||
            fail "message does not name '$pattern': $(grep -m1 '^gen: ' "$TMP/err")"
    fi
    (cd "$TMP" && sha256sum --quiet -c user.sums >/dev/null 2>&1) || fail "the user's files changed"
    [ "$case_failed" = 0 ] && passed=$((passed + 1))
    case_done=1
    [ "${GEN_HOSTILE_VERBOSE:-0}" = 1 ] && echo "$case_name: exit $rc $(grep -m1 '^gen: ' "$TMP/err")"
}
skip() { echo "cli_hostile: SKIP $1: $2"; }

# ---- FIFOs where files are read -----------------------------------------

mkdir -p "$TMP/fifo-idx" "$TMP/fifo-img"
cp "$DATA"/t10k-* "$DATA/train-labels-idx1-ubyte" "$TMP/fifo-idx/"
mkfifo "$TMP/fifo-idx/train-images-idx3-ubyte" "$TMP/fifo-img/a.png" "$TMP/fifo.txt" "$TMP/fifo.ckpt"
bounded train vae --data "$TMP/fifo-idx" --steps 1 --out "$TMP/r-fifo1" "${VAE[@]}"
check fifo_idx 1 "fifo-idx/train-images-idx3-ubyte"
bounded train vae --data "$TMP/fifo-img" --steps 1 --out "$TMP/r-fifo2" "${VAE[@]}"
check fifo_image 1 "fifo-img/a.png"
bounded train transformer --data "$TMP/fifo.txt" --steps 1 --out "$TMP/r-fifo3" --threads 1 --quiet
check fifo_txt 1 "fifo.txt"
bounded sample vae --ckpt "$TMP/fifo.ckpt" -n 1 -o "$TMP/fifo-out.png"
check fifo_ckpt 1 "fifo.ckpt"
bounded train vae --data "$DATA" --steps 5 --out "$TMP/r-fifo4" --resume "$TMP/fifo.ckpt" "${VAE[@]}"
check fifo_resume 1 "fifo.ckpt"
bounded info "$TMP/fifo.ckpt"
check fifo_info 1 "fifo.ckpt"
# a run's log a FIFO: refused, not written into (nor waited on)
mkdir -p "$TMP/r-fifo5" && mkfifo "$TMP/r-fifo5/metrics.jsonl"
bounded train vae --data "$DATA" --steps 2 --out "$TMP/r-fifo5" "${VAE[@]}"
check fifo_metrics 1 "r-fifo5/metrics.jsonl: not a regular file"
# gen eval keeps its result and warns (and, under the sanitizers, leaks nothing)
cp -r "$TMP/run" "$TMP/r-fifo6" && rm "$TMP/r-fifo6/metrics.jsonl" &&
    mkfifo "$TMP/r-fifo6/metrics.jsonl"
bounded eval vae --ckpt "$TMP/r-fifo6/checkpoint.safetensors" --iw 0 -q
check fifo_metrics_eval 0 ""
grep -q "warning: .*r-fifo6/metrics.jsonl: not a regular file" "$TMP/err" ||
    fail "gen eval with a FIFO for its log: $(cat "$TMP/err")"

# ---- text ----------------------------------------------------------------

for i in $(seq 40); do echo "the cat sat on the mat"; done >"$TMP/text.txt"
"$GEN" train transformer --data "$TMP/text.txt" --layers 1 --width 8 --heads 1 --context 8 \
    --batch 2 --steps 2 --out "$TMP/r-text" --threads 1 --quiet 2>"$TMP/err" ||
    echo "cli_hostile: cannot train the text checkpoint: $(cat "$TMP/err")" >&2
mkfifo "$TMP/prompt.fifo"
bounded sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" --prompt-file "$TMP/prompt.fifo" --length 5
check fifo_prompt_file 1 "prompt.fifo"
# A prompt file past 16 MiB is refused before it is read (it had been read
# whole, up to a data set's 8 GiB); an empty one is no prompt, as --prompt "".
truncate -s 17M "$TMP/prompt.big"
bounded sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" --prompt-file "$TMP/prompt.big" --length 5
check prompt_file_too_big 1 "prompt.big"
: >"$TMP/prompt.empty"
bounded sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" --prompt-file "$TMP/prompt.empty" --length 5
check prompt_file_empty 0 ""
# No --prompt: sampling starts from nothing (UBSan once saw fwrite(NULL, ...)).
bounded sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" --length 5 -n 2
check sample_text_without_prompt 0 ""
: >"$TMP/empty.txt"
bounded train transformer --data "$TMP/empty.txt" --steps 1 --out "$TMP/r-empty" --threads 1 --quiet
check text_empty 1 "empty.txt"

# ---- image folders --------------------------------------------------------

# Five symlink loops beside the images: each real image is loaded once.
mkdir -p "$TMP/loops1" "$TMP/loops10"
cp "$TMP/one.png" "$TMP/loops1/"
for i in 0 1 2 3 4 5 6 7 8 9; do cp "$TMP/one.png" "$TMP/loops10/img$i.png"; done
for i in 1 2 3 4 5; do ln -s . "$TMP/loops1/loop$i"; ln -s . "$TMP/loops10/loop$i"; done
bounded train vae --data "$TMP/loops10" --steps 1 --out "$TMP/r-loops10" "${VAE_LOG[@]}"
check symlink_loops_10_images 0 ""
grep -q "9 training and 1 test images" "$TMP/err" ||
    fail "not 9 + 1 images: $(grep -m1 images "$TMP/err")"
# One image: the test split (every 10th) is empty, which says one was loaded.
bounded train vae --data "$TMP/loops1" --steps 1 --out "$TMP/r-loops1" "${VAE[@]}"
check symlink_loops_1_image 1 "test split is empty"

# A 100-byte BMP claiming 8000x8000 (24-bit, bottom-up).
bmp() { # PATH WIDTH HEIGHT(negative: top-down) PIXEL_BYTES
    { printf 'BM'; le32 $((54 + $4)); printf '\0\0\0\0\x36\0\0\0\x28\0\0\0'; le32 "$2"; le32 "$3"
      printf '\x01\0\x18\0\0\0\0\0'; le32 "$4"; printf '\x13\x0b\0\0\x13\x0b\0\0\0\0\0\0\0\0\0\0'
      head -c "$4" /dev/urandom; } >"$1"
}
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
mkdir -p "$TMP/bigbmp" "$TMP/bigpng" "$TMP/topdown"
bmp "$TMP/bigbmp/big.bmp" 8000 8000 46
bounded train vae --data "$TMP/bigbmp" --steps 1 --out "$TMP/r-bigbmp" "${VAE[@]}"
check bmp_claims_8000x8000 1 "big.bmp"
# A 65535x65535 PNG header (no pixel data).
{ printf '\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\xff\xff\0\0\xff\xff\x08\0\0\0\0\0\0\0\0'
  printf '\0\0\0\0IEND\xae\x42\x60\x82'; } >"$TMP/bigpng/huge.png"
bounded train vae --data "$TMP/bigpng" --steps 1 --out "$TMP/r-bigpng" "${VAE[@]}"
check png_65535x65535 1 "huge.png"
grep -q "larger than the limit" "$TMP/err" || fail "not 'larger than the limit': $(cat "$TMP/err")"
# A top-down BMP (negative height) decodes: ten of them train.
for i in 0 1 2 3 4 5 6 7 8 9; do bmp "$TMP/topdown/t$i.bmp" 8 -8 192; done
bounded train vae --data "$TMP/topdown" --steps 1 --out "$TMP/r-topdown" "${VAE[@]}"
check bmp_top_down 0 ""
# Images of a shape the model cannot take (30x30 for the conv VAE and the
# U-Net, which halve the sides twice): a data error naming the data (1).
mkdir -p "$TMP/side30"
for i in 0 1 2 3 4 5 6 7 8 9; do bmp "$TMP/side30/s$i.bmp" 30 30 2760; done
bounded train vae --data "$TMP/side30" --arch conv --steps 1 --out "$TMP/r-side30" "${VAE[@]}"
check data_shape_conv_vae 1 "side30"
bounded train diffusion --data "$TMP/side30" --steps 1 --base 8 --batch 4 --threads 1 --quiet \
    --out "$TMP/r-side30d"
check data_shape_diffusion 1 "side30"

# ---- IDX files ----------------------------------------------------------

# gzip IDX whose header claims 2.7 M images but holds 100: refused, small.
mkdir -p "$TMP/gzbig" "$TMP/t10k-only" "$TMP/gzbad"
{ printf '\x00\x00\x08\x03'; be32 2700000; be32 28; be32 28; head -c 78400 /dev/urandom; } |
    gzip -c >"$TMP/gzbig/train-images-idx3-ubyte.gz"
cp "$DATA/train-labels-idx1-ubyte" "$DATA"/t10k-* "$TMP/gzbig/"
bounded train vae --data "$TMP/gzbig" --steps 1 --out "$TMP/r-gzbig" "${VAE[@]}"
check gzip_claims_2700000_images 1 "train-images-idx3-ubyte.gz"
# Truncated and corrupt gzip.
cp "$DATA/train-labels-idx1-ubyte" "$DATA"/t10k-* "$TMP/gzbad/"
gzip -c "$DATA/train-images-idx3-ubyte" | head -c 500 >"$TMP/gzbad/train-images-idx3-ubyte.gz"
bounded train vae --data "$TMP/gzbad" --steps 1 --out "$TMP/r-gzbad" "${VAE[@]}"
check gzip_truncated 1 "train-images-idx3-ubyte.gz"
{ printf '\x1f\x8b\x08\x00\0\0\0\0\0\x03'; head -c 300 /dev/urandom; } >"$TMP/gzbad/train-images-idx3-ubyte.gz"
bounded train vae --data "$TMP/gzbad" --steps 1 --out "$TMP/r-gzbad2" "${VAE[@]}"
check gzip_corrupt 1 "train-images-idx3-ubyte.gz"
# Only the test split: the train split names its missing file.
cp "$DATA"/t10k-* "$TMP/t10k-only/"
bounded train vae --data "$TMP/t10k-only" --steps 1 --out "$TMP/r-t10k" "${VAE[@]}"
check only_t10k_files 1 "train-images"

# ---- checkpoints ----------------------------------------------------------

size=$(stat -c %s "$CKPT")
for at in 0 4 8 64 $((size / 2)) $((size - 4)); do
    head -c "$at" "$CKPT" >"$TMP/cut$at.safetensors"
    bounded sample vae --ckpt "$TMP/cut$at.safetensors" -n 1 -o "$TMP/cut.png"
    check "ckpt_truncated_at_$at" 1 "cut$at.safetensors"
done
bounded info "$TMP/cut$((size / 2)).safetensors"
check ckpt_truncated_info 1 "cut$((size / 2)).safetensors"
# Wrong header length (the format's only magic): huge, too small, past the end.
for len in -1 1 $((size)); do
    { le64 "$len"; tail -c +9 "$CKPT"; } >"$TMP/hlen.safetensors"
    bounded sample vae --ckpt "$TMP/hlen.safetensors" -n 1 -o "$TMP/hlen.png"
    check "ckpt_header_length_$len" 1 "hlen.safetensors"
done
{ head -c 8 "$CKPT"; printf 'X'; tail -c +10 "$CKPT"; } >"$TMP/magic.safetensors"
bounded sample vae --ckpt "$TMP/magic.safetensors" -n 1 -o "$TMP/magic.png"
check ckpt_header_not_json 1 "magic.safetensors"
META='"__metadata__":{"format":"gen","format_version":"1","family":"vae","config":"{\"hidden\":16}","data_shape":"{\"channels\":1,\"height\":28,\"width\":28}"}'
safetensors "$TMP/dup.safetensors" "{$META,\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}" 8
bounded sample vae --ckpt "$TMP/dup.safetensors" -n 1 -o "$TMP/dup.png"
check ckpt_duplicate_keys 1 "dup.safetensors"
grep -q "duplicate" "$TMP/err" || fail "not 'duplicate': $(cat "$TMP/err")"
# A config claiming --hidden 65536 (a 400 MB model) in a 200-byte file:
# refused before the model is built, within the memory bound, at once.
META65='"__metadata__":{"format":"gen","format_version":"1","family":"vae","config":"{\"hidden\":65536,\"latent\":20,\"batch\":8,\"data\":\"'$DATA'\"}","data_shape":"{\"channels\":1,\"height\":28,\"width\":28}"}'
safetensors "$TMP/h65536.safetensors" "{$META65,\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}" 4
start=$(date +%s)
bounded sample vae --ckpt "$TMP/h65536.safetensors" -n 1 -o "$TMP/h65536.png"
check ckpt_config_hidden_65536 1 "h65536.safetensors"
[ $(($(date +%s) - start)) -le 5 ] || fail "took $(($(date +%s) - start)) s"
# The same file given to --resume: the model is built under the same bound.
bounded train vae --data "$DATA" --steps 5 --out "$TMP/r-h65536" \
    --resume "$TMP/h65536.safetensors" --batch 8 --threads 1 --quiet
check resume_config_hidden_65536 1 "h65536.safetensors"
grep -q "larger than the tensors" "$TMP/err" || fail "built the model: $(cat "$TMP/err")"

# A checkpoint whose first weight is NaN: refused at load, naming the file
# and the tensor, instead of sampling NaN images with exit 0.
cp "$CKPT" "$TMP/nan.safetensors"
hlen=$(od -An -tu8 -N8 "$TMP/nan.safetensors" | tr -d ' ')
printf '\x00\x00\xc0\x7f' | dd of="$TMP/nan.safetensors" bs=1 seek=$((8 + hlen)) conv=notrunc 2>/dev/null
bounded sample vae --ckpt "$TMP/nan.safetensors" -n 1 -o "$TMP/nan.png"
check ckpt_nan_weights 1 "nan.safetensors"
grep -q "NaN" "$TMP/err" || fail "does not say NaN: $(cat "$TMP/err")"
[ -e "$TMP/nan.png" ] && fail "nan.png was written"

# ---- outputs --------------------------------------------------------------

bounded sample vae --ckpt "$CKPT" -n 1 -o "$CKPT"
check output_onto_checkpoint 2 "$CKPT"
bounded sample vae --ckpt "$TMP/ckpt.png" -n 1 -o "$TMP/ckpt.png"
check output_onto_checkpoint_named_png 2 "ckpt.png"
bounded sample vae --ckpt "$TMP/ckpt.png" -n 1 -o "$TMP/./run/../ckpt.png"
check output_onto_checkpoint_other_spelling 2 "ckpt.png"
bounded sample vae --ckpt "$CKPT" -n 1 -o "$TMP/out.txt"
check output_txt 2 "out.txt"
[ -e "$TMP/out.txt" ] && fail "out.txt was written"

# ---- option values --------------------------------------------------------

bounded train vae --data "$DATA" --steps 2305843009213693952 --out "$TMP/r-steps" "${VAE[@]}"
check steps_2305843009213693952 "1 2" "--steps"
bounded train vae --data "$DATA" --epochs 9223372036854775807 --out "$TMP/r-epochs" "${VAE[@]}"
check epochs_9223372036854775807 "1 2" "--epochs"
bounded train vae --data "$DATA" --steps 99999999999999999999 --out "$TMP/r-steps2" "${VAE[@]}"
check steps_past_int64 2 "--steps"
# --out "" is a usage error, not the default run directory (run from the
# temporary folder, where runs/vae would land).
(cd "$TMP" && bounded train vae --data "$DATA" --steps 1 --out "" "${VAE[@]}"
 echo "$rc" >"$TMP/rc")
rc=$(cat "$TMP/rc")
check out_empty 2 "--out"
[ -e "$TMP/runs" ] && fail "--out \"\" trained into runs/"
bounded train vae --data "$DATA" --steps 1 --batch 0 --out "$TMP/r-batch" "${VAE[@]}"
check batch_0 2 "--batch"
for lr in nan inf -inf; do
    bounded train vae --data "$DATA" --steps 1 --lr "$lr" --out "$TMP/r-lr" "${VAE[@]}"
    check "lr_$lr" 2 "--lr"
done
# betas inside (0, 1) whose schedule is not: alpha_bar 1 (1 - 1e-40 rounds
# to 1) or 0 (underflow) had the sampler stop on an assertion
bounded train diffusion --data "$DATA" --steps 1 --beta-start 1e-40 --out "$TMP/r-beta" --threads 1
check beta_start_1e-40 2 "--beta-start"
bounded train diffusion --data "$DATA" --steps 1 --beta-start 0.5 --beta-end 0.999999 \
    --out "$TMP/r-beta" --threads 1
check beta_end_near_1 2 "--beta-end"
bounded train vae --data "$DATA" --steps 1 --no-such-option 3 --out "$TMP/r-unknown" "${VAE[@]}"
check unknown_option 2 "--no-such-option"
bounded sample vae --ckpt "$CKPT" -n 0 -o "$TMP/zero.png"
check sample_n_0 2 "-n"

# A snapshot that cannot be written (its name taken by a folder) ends the
# run with exit 1, after the steps are saved: the checkpoint had been
# written after the snapshot, so the run lost them.
mkdir -p "$TMP/r-snap/samples-00000002.png"
bounded train vae --data "$DATA" --steps 2 --sample-every 2 --out "$TMP/r-snap" "${VAE[@]}"
check snapshot_unwritable 1 "samples-00000002.png"
[ -f "$TMP/r-snap/checkpoint.safetensors" ] || fail "no checkpoint after the failed snapshot"

# ---- a closed pipe, SIGHUP, stale temporary files -------------------------

# `| head -1`: gen keeps training (SIGPIPE ignored) and saves its checkpoint.
case_name=json_into_closed_pipe
(
    [ "$memlimit" = 1 ] && ulimit -v 4000000
    timeout 20 "$GEN" train vae --data "$DATA" --steps 100 --log-every 1 --json --out "$TMP/r-pipe" \
        --hidden 16 --batch 8 --threads 1 2>"$TMP/err" | head -1 >"$TMP/out"
    echo "${PIPESTATUS[0]}" >"$TMP/rc"
)
rc=$(cat "$TMP/rc")
case "$rc" in 0 | 130) rc=0 ;; esac
check json_into_closed_pipe 0 ""
[ -s "$TMP/out" ] || fail "no JSON line before the pipe closed"
[ -f "$TMP/r-pipe/checkpoint.safetensors" ] || fail "no checkpoint written"

# A full disk under stdout (/dev/full): sampled text, a --json result and a
# training's JSON lines each end in one line naming standard output and
# exit 1; the training goes on and keeps its checkpoint. Text -o on a full
# disk is not said to be written.
if [ -w /dev/full ]; then
    to_full() {
        (
            [ "$memlimit" = 1 ] && ulimit -v 4000000
            exec timeout 20 "$GEN" "$@"
        ) >/dev/full 2>"$TMP/err"
        rc=$?
    }
    to_full sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" --length 5
    check stdout_full_text 1 "standard output: No space left on device"
    to_full eval vae --ckpt "$CKPT" --iw 0 --json --quiet
    check stdout_full_json 1 "standard output: No space left on device"
    to_full train vae --data "$DATA" --steps 2 --json --out "$TMP/r-full" "${VAE[@]}"
    check stdout_full_train 1 "standard output: No space left on device; no more JSON lines"
    [ -f "$TMP/r-full/checkpoint.safetensors" ] || fail "no checkpoint after stdout filled"
    bounded sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" --length 5 -o /dev/full
    check text_output_full 1 "/dev/full: write failed: No space left on device"
    grep -q "wrote" "$TMP/err" && fail "said it wrote /dev/full: $(cat "$TMP/err")"
else
    skip stdout_full "no writable /dev/full"
fi

# A metrics.jsonl that cannot grow (a full disk; here a file-size limit,
# ulimit -f, with SIGXFSZ ignored so that the write fails with EFBIG): a
# line is written whole or not at all. The resumed training ends with one
# line naming the file, after saving its step; gen eval keeps its result
# and warns. The file is padded to 20 bytes short of the limit.
# pad_to FILE KB: a line of padding that leaves FILE 20 bytes short of KB KiB
pad_to() {
    local n=$(($2 * 1024 - $(stat -c %s "$1") - 20 - 11))
    printf '{"pad":"%s"}\n' "$(head -c "$n" /dev/zero | tr '\0' x)" >>"$1"
}
# limited KB ARGS: gen ARGS with files limited to KB KiB
limited() {
    (
        ulimit -f "$1"
        trap '' XFSZ
        shift
        exec timeout 20 "$GEN" "$@"
    ) >"$TMP/out" 2>"$TMP/err"
    rc=$?
}
cp -r "$TMP/run" "$TMP/r-fsize"
pad_to "$TMP/r-fsize/metrics.jsonl" 1024
size=$(stat -c %s "$TMP/r-fsize/metrics.jsonl")
limited 1024 train vae --resume --steps 6 --log-every 1 --out "$TMP/r-fsize" "${VAE[@]}"
check metrics_full_train 1 \
    "r-fsize/metrics.jsonl: cannot write: File too large (step 4's checkpoint saved)"
[ "$(stat -c %s "$TMP/r-fsize/metrics.jsonl")" = "$size" ] ||
    fail "metrics.jsonl: $size bytes before, $(stat -c %s "$TMP/r-fsize/metrics.jsonl") after"
"$GEN" info "$TMP/r-fsize/checkpoint.safetensors" | grep -q "^step: *4$" ||
    fail "step 4's checkpoint not saved"
limited 1024 eval vae --ckpt "$TMP/r-fsize/checkpoint.safetensors" --iw 0 -q
check metrics_full_eval 0 ""
grep -q "warning: .*r-fsize/metrics.jsonl: cannot write: File too large" "$TMP/err" ||
    fail "gen eval into a full metrics.jsonl: $(cat "$TMP/err")"
[ "$(stat -c %s "$TMP/r-fsize/metrics.jsonl")" = "$size" ] ||
    fail "gen eval left part of a line in metrics.jsonl"

# A metrics.jsonl that ends in half a line (an older gen cut short): the
# next line starts on its own.
cp -r "$TMP/run" "$TMP/r-half"
printf '{"step":9,"lo' >>"$TMP/r-half/metrics.jsonl"
bounded eval vae --ckpt "$TMP/r-half/checkpoint.safetensors" --iw 0 -q
check metrics_half_line 0 ""
tail -1 "$TMP/r-half/metrics.jsonl" | grep -q '^{"command":"eval",' ||
    fail "the eval line after half a line: $(tail -c 200 "$TMP/r-half/metrics.jsonl")"

# An address-space limit too small for a 128 MiB buffer per thread: Debian's
# OpenBLAS (0.3.21) reserves one for each OpenMP thread as it loads and, refused
# one, tried again forever (gen --version hung under ulimit -v 300000 on 2 cores,
# and the limit above would hang every case on 32 cores); training on two threads
# then asked OpenBLAS for two.
# An environment with no entry to lend OMP_NUM_THREADS=1 in (env -i) has gen
# executed again with it; a limit below one buffer is said, exit 1.
if [ "$memlimit" = 1 ]; then
    tight_in() { # KIB COMMAND...: the command under ulimit -v KIB
        local kib=$1
        shift
        (
            ulimit -v "$kib"
            exec timeout 20 "$@"
        ) >"$TMP/out" 2>"$TMP/err"
        rc=$?
    }
    tight() { tight_in 300000 "$GEN" "$@"; }
    tight --version
    check address_limit_version 0 ""
    grep -q "^gen [0-9]" "$TMP/out" || fail "no version under ulimit -v 300000: $(cat "$TMP/out")"
    tight train vae --data "$DATA" --steps 2 --out "$TMP/tight" --hidden 16 --batch 8 --threads 2 -q
    check address_limit_train 0 ""
    [ -f "$TMP/tight/checkpoint.safetensors" ] || fail "no checkpoint under ulimit -v 300000"
    tight_in 300000 env -i "$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/tight-env" \
        --hidden 16 --batch 8 --threads 2 -q
    check address_limit_empty_env 0 ""
    [ -f "$TMP/tight-env/checkpoint.safetensors" ] || fail "no checkpoint under env -i, ulimit -v"
    tight_in 100000 "$GEN" --version
    check address_limit_tiny 1 "the address-space limit (ulimit -v) of 100000 KiB is too small"
    tight_in 100000 env -i "$GEN" --version
    check address_limit_tiny_empty_env 1 "of 100000 KiB is too small"
fi

# A stack limit too small for a command (a training took 200-256 KiB, and
# crashed under ulimit -s 128): refused in one line where the hard limit is
# that small too (ulimit -s sets both), raised where only the soft one is.
(
    ulimit -s 128
    exec timeout 20 "$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/stack" "${VAE[@]}"
) >"$TMP/out" 2>"$TMP/err"
rc=$?
check stack_limit 1 "the stack limit (ulimit -s) of 128 KiB is too small"
(
    ulimit -S -s 128
    exec timeout 20 "$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/stack-soft" "${VAE[@]}"
) >"$TMP/out" 2>"$TMP/err"
rc=$?
check stack_limit_soft 0 ""
[ -f "$TMP/stack-soft/checkpoint.safetensors" ] || fail "no checkpoint under ulimit -S -s 128"

# SIGHUP mid-run: the step finishes, the checkpoint is saved, exit 130.
case_name=sighup
(
    [ "$memlimit" = 1 ] && ulimit -v 4000000
    exec "$GEN" train vae --data "$DATA" --steps 100000000 --log-every 1 --out "$TMP/r-hup" \
        --hidden 16 --batch 8 --threads 1 --quiet
) 2>"$TMP/err-hup" &
pid=$!
for _ in $(seq 200); do
    grep -q '"step"' "$TMP/r-hup/metrics.jsonl" 2>/dev/null && break
    sleep 0.1
done
# A second training into the same run directory is refused while it runs.
bounded train vae --data "$DATA" --steps 3 --out "$TMP/r-hup" --force "${VAE[@]}"
check second_training_same_out 1 "r-hup"
case_name=sighup
kill -HUP "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait_ok=1
kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; wait_ok=0; }
wait "$pid"
rc=$?
cp "$TMP/err-hup" "$TMP/err"
check sighup 130 ""
[ "$wait_ok" = 1 ] || fail "still running 20 s after SIGHUP (killed)"
"$GEN" info "$TMP/r-hup/checkpoint.safetensors" >/dev/null 2>&1 || fail "no loadable checkpoint after SIGHUP"

# A stale NAME.tmp.PID of a dead process is removed when training starts;
# one of a live process (this shell) is kept.
mkdir -p "$TMP/r-stale"
echo junk >"$TMP/r-stale/checkpoint.safetensors.tmp.99999999"
echo junk >"$TMP/r-stale/checkpoint.safetensors.tmp.$$"
bounded train vae --data "$DATA" --steps 1 --out "$TMP/r-stale" "${VAE[@]}"
check stale_tmp_removed 0 ""
[ -e "$TMP/r-stale/checkpoint.safetensors.tmp.99999999" ] && fail "stale temporary file left"
[ -e "$TMP/r-stale/checkpoint.safetensors.tmp.$$" ] || fail "a live process's temporary file was removed"
# ... and from a sample folder by `gen sample -o DIR/`, where no lock keeps
# other writers out: an image's, of a dead process, over a minute old
mkdir -p "$TMP/s-stale"
for f in 00007.png.tmp.999999999 00008.png.tmp.999999998 notes.txt.tmp.999999997; do
    echo junk >"$TMP/s-stale/$f"
done
touch -d '-2 min' "$TMP/s-stale/00007.png.tmp.999999999" "$TMP/s-stale/notes.txt.tmp.999999997"
bounded sample vae --ckpt "$CKPT" -n 2 -o "$TMP/s-stale/" --threads 1
check sample_stale_tmp_removed 0 ""
[ -e "$TMP/s-stale/00007.png.tmp.999999999" ] && fail "a stale image's temporary file was left"
[ -e "$TMP/s-stale/00008.png.tmp.999999998" ] || fail "a fresh temporary file was removed"
[ -e "$TMP/s-stale/notes.txt.tmp.999999997" ] || fail "another kind of temporary file was removed"

# A signal ends any other command at once: one line, exit 130, the files
# already written kept whole, no temporary file left (it had died without
# a word, possibly in the middle of writing NAME.tmp.PID). GEN WAIT_FOR
# SIGNAL ARGS...: started, signalled once WAIT_FOR exists, given 20 s.
interrupt() {
    local wait_for=$1 sig=$2 pid
    shift 2
    (
        [ "$memlimit" = 1 ] && ulimit -v 4000000
        exec "$GEN" "$@"
    ) 2>"$TMP/err" &
    pid=$!
    for _ in $(seq 200); do [ -e "$wait_for" ] && break; sleep 0.1; done
    sleep 0.3
    kill "-$sig" "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid"
    rc=$?
}
interrupted_line() {
    [ "$(grep -c '^gen: ' "$TMP/err")" = 1 ] && grep -q '^gen: interrupted' "$TMP/err" ||
        fail "no one 'gen: interrupted' line: $(head -3 "$TMP/err")"
}
mkdir -p "$TMP/int"
interrupt "$TMP/int/00000.png" INT sample vae --ckpt "$CKPT" -n 100000 -o "$TMP/int/" --threads 1
check sample_sigint 130 ""
interrupted_line
ls "$TMP/int" | grep -q '\.tmp\.' && fail "a temporary file left: $(ls "$TMP/int" | grep '\.tmp\.')"
[ -z "$(grep -L IEND "$TMP"/int/*.png)" ] || fail "a PNG cut short: $(grep -L IEND "$TMP"/int/*.png | head -1)"
interrupt "$TMP/int.txt" TERM sample transformer --ckpt "$TMP/r-text/checkpoint.safetensors" \
    --length 100000000 -o "$TMP/int.txt" --threads 1
check sample_text_sigterm 130 ""
interrupted_line
[ -s "$TMP/int.txt" ] || fail "the tokens drawn before SIGTERM were not kept"

echo "cli_hostile: $passed passed, $failed failed"
[ "$failed" = 0 ]
