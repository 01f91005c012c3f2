#!/usr/bin/env bash
# bench-scale.sh - how gen's cost against its PyTorch twin moves with the
# size of the work: for each size below, gen and the twin back to back with
# the same thread count, the median training step over STEPS steps and the
# peak RSS of each process (/usr/bin/time -f %M), then the ratios
# gen/PyTorch (< 1: gen is faster or smaller), ROUNDS rounds, medians.
#
#   diffusion   28x28x1   base 32, mults 1,2,2     batch 64  (today's default)
#   diffusion   32x32x3   base 32, mults 1,2,2     batch 64
#   diffusion   64x64x3   base 32, mults 1,2,2,2   batch 64  (one more level)
#   transformer ctx 128, width 128, 4 layers, 4 heads, batch 32  (today's)
#   transformer ctx 512, width 384, 4 layers, 4 heads, batch 8   (the same
#               4096 tokens a step: batch 32 would take ~4x as long a step)
#   vae         784-400-20 MLP, batch 128                       (today's)
#   gan         DCGAN 28x28x1, batch 64                          (today's)
#
# The VAE and GAN rows are the families' default sizes, there so that peak
# memory is compared for every family (issue #17); their speed is
# bench-vae.sh's and bench-gan.sh's to measure (more steps, more rounds).
# gen trains on a folder of 1280 Fashion-MNIST images made here: grey for
# 28x28x1, tinted by class into RGB for the others (gen resizes them to 32
# or 64 with --image-size). The pixels do not change the timing, and the
# small set keeps the data out of gen's RSS: the twin's --bench-steps mode
# trains on one random batch, so the memory ratio compares the models and
# their training steps, not the data sets. The twin's time and peak RSS
# come from two runs (twin_rss, below). Both RSS figures include each
# program's start-up (gen: 8 MiB; Python with torch imported: 240 MiB).
# A benchmark, never a test: timings on a loaded machine are noisy.
#
# Run time with the defaults (STEPS=10 ROUNDS=1, 2 threads): 15 minutes
# wall on the project's 2-core VM under a load of 7-8 (2026-12-01), 8 CPU
# minutes, so about 5 minutes on an idle machine; most of it the 64x64
# diffusion and the context-512 transformer. Each round adds as much.
#
#   scripts/bench-scale.sh        # GEN=build/gen GEN_BENCH_THREADS=2 STEPS=10 ROUNDS=1
set -euo pipefail
cd "$(dirname "$0")/.."
GEN=${GEN:-build/gen}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-${GEN_BENCH_THREADS:-2}}
STEPS=${STEPS:-10}
ROUNDS=${ROUNDS:-1}
[ -x "$GEN" ] || { echo "bench-scale: $GEN not built (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Fashion-MNIST's first 1280 training images as PNG files (standard library
# only): DIR/grey/ (1 channel) and DIR/rgb/ (each image tinted with its
# class's colour).
"$PY" - data/fashion-mnist "$tmp" <<'EOF'
import gzip, os, struct, sys, zlib
src, out = sys.argv[1], sys.argv[2]
def idx(name):
    with gzip.open(os.path.join(src, name + ".gz")) as f:
        data = f.read()
    rank = data[3]
    return data[4 + 4 * rank:]
px, labels = idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte")
tints = [(255, 80, 80), (80, 255, 80), (80, 80, 255), (255, 255, 80), (255, 80, 255),
         (80, 255, 255), (255, 160, 40), (160, 40, 255), (40, 160, 255), (255, 255, 255)]
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
def png(path, side, colour, rows):
    head = struct.pack(">IIBBBBB", side, side, 8, colour, 0, 0, 0)
    raw = b"".join(b"\0" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))
for d in ("grey", "rgb"):
    os.makedirs(os.path.join(out, d))
for i in range(1280):
    img = px[i * 784:(i + 1) * 784]
    rows = [img[y * 28:(y + 1) * 28] for y in range(28)]
    tint = tints[labels[i]]
    rgb = [bytes(v * c // 255 for v in r for c in tint) for r in rows]
    png(os.path.join(out, "grey", "%05d.png" % i), 28, 0, rows)
    png(os.path.join(out, "rgb", "%05d.png" % i), 28, 2, rgb)
EOF
head -c 300000 data/moby-dick.txt >"$tmp/text.txt"

# rss_run FILE CMD...: runs CMD, its stdout to stdout, its peak RSS (KiB) into FILE.
rss_run() { local f=$1; shift; /usr/bin/time -f %M -o "$f" "$@"; }
step_ms() { sed -n 's/.*"median_step_ms": *\([0-9.e+-]*\).*/\1/p' | tail -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# twin_rss ARGS...: the twin's peak RSS (KiB) into $tmp/torch.rss, from a run of
# 3 steps with glibc's malloc as it comes: bench.sh has it keep what is freed
# (GLIBC_TUNABLES), which is the twin's best time but not its smallest
# footprint (64x64 diffusion 1.9 -> 2.8 GB, 2026-12-05).
twin_rss() {
    rss_run "$tmp/torch.rss" env -u GLIBC_TUNABLES "$PY" "$@" --bench-steps 3 >/dev/null
}

# pair GEN_TRAIN_ARGS... -- TWIN_ARGS...: "gen_ms torch_ms gen_kib torch_kib",
# `gen train GEN_TRAIN_ARGS` for STEPS steps and the twin (a script of
# scripts/reference/ and its options) in its --bench-steps mode, each
# with its peak RSS
pair() {
    local gen_args=() twin=()
    while [ "$1" != -- ]; do gen_args+=("$1"); shift; done
    shift
    twin=("$@")
    rm -rf "$tmp/run"
    local g t
    g=$(rss_run "$tmp/gen.rss" "$GEN" train "${gen_args[@]}" --steps "$STEPS" \
        --threads "$THREADS" --out "$tmp/run" --ckpt-every 0 --quiet --json | step_ms)
    t=$("$PY" "${twin[@]}" --bench-steps "$STEPS" | step_ms)
    twin_rss "${twin[@]}"
    echo "$g $t $(cat "$tmp/gen.rss") $(cat "$tmp/torch.rss")"
}

# diffusion_pair C SIDE MULTS
diffusion_pair() {
    local c=$1 side=$2 mults=$3 data=$tmp/grey
    [ "$c" = 1 ] || data=$tmp/rgb
    local shape=(--channels "$c" --image-size "$side" --base 32 --mults "$mults" --batch 64)
    # --sample-steps 1: the end-of-run grid costs one U-Net pass, not 50.
    pair diffusion --data "$data" "${shape[@]}" --sample-steps 1 -- \
        scripts/reference/diffusion.py --sample-steps 0 "${shape[@]}" --threads "$THREADS"
}

# transformer_pair CONTEXT WIDTH BATCH
transformer_pair() {
    local opts=(--data "$tmp/text.txt" --context "$1" --width "$2" --batch "$3" --layers 4
        --heads 4)
    pair transformer "${opts[@]}" --eval-every 0 --sample-every 0 -- \
        scripts/reference/transformer.py "${opts[@]}" --threads "$THREADS"
}

# vae_pair / gan_pair: the default models at their default batches, on
# the 28x28 grey images. The GAN twin's bench mode would then sample 1024
# images, which its RSS must not count.
vae_pair() {
    pair vae --data "$tmp/grey" --batch 128 --eval-every 0 --sample-every 0 -- \
        scripts/reference/vae.py --batch 128 --threads "$THREADS"
}
gan_pair() {
    pair gan --data "$tmp/grey" --batch 64 --eval-every 0 --sample-every 0 -- \
        scripts/reference/gan.py --batch 64 --threads "$THREADS" --bench-sample 0
}

sizes=("diffusion 28x28x1|diffusion_pair 1 28 1,2,2"
       "diffusion 32x32x3|diffusion_pair 3 32 1,2,2"
       "diffusion 64x64x3 (4 levels)|diffusion_pair 3 64 1,2,2,2"
       "transformer ctx 128 w 128 (b 32)|transformer_pair 128 128 32"
       "transformer ctx 512 w 384 (b 8)|transformer_pair 512 384 8"
       "vae 784-400-20 (b 128)|vae_pair"
       "gan dcgan 28x28x1 (b 64)|gan_pair")
echo "bench-scale: $THREADS threads, median of $STEPS steps, $ROUNDS round(s); ratios gen/pytorch"
printf '%-34s %9s %9s %6s  %8s %8s %6s\n' size "gen ms" "torch ms" time "gen MiB" "torch MiB" memory
for s in "${sizes[@]}"; do
    name=${s%%|*}
    tr=() mr=() gl=() tl=() gm=() tm=()
    for _ in $(seq "$ROUNDS"); do
        read -r g t gk tk <<<"$(${s#*|})"
        gl+=("$g") tl+=("$t") gm+=("$gk") tm+=("$tk")
        tr+=("$(awk -v g="$g" -v t="$t" 'BEGIN { printf "%.2f", g / t }')")
        mr+=("$(awk -v g="$gk" -v t="$tk" 'BEGIN { printf "%.2f", g / t }')")
    done
    awk -v n="$name" -v g="$(median "${gl[@]}")" -v t="$(median "${tl[@]}")" \
        -v r="$(median "${tr[@]}")" -v gk="$(median "${gm[@]}")" -v tk="$(median "${tm[@]}")" \
        -v q="$(median "${mr[@]}")" 'BEGIN {
        printf "%-34s %9.0f %9.0f %6s  %8.0f %8.0f %6s\n", n, g, t, r, gk / 1024, tk / 1024, q }'
done
