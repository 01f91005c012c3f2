# cli_bench.sh - the benches' reading of gen's --json lines: scripts/bench-lib.sh's
# number() gives one number for a training's median step (gen's last log
# line and its result line both carry it, and the two had broken the
# benches' reading) and for a sampling's rate, as bench-vae.sh,
# bench-transformer.sh and bench-precision.sh read them. The benches
# themselves need PyTorch and minutes, so ctest runs only this part.
# Usage: bash tests/cli_bench.sh PATH_TO_GEN   (needs data/mnist; skips, exit 77, without it)
set -u
GEN=${1:?usage: cli_bench.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
DATA=$SRC/data/mnist
. "$(dirname "$0")/testlib.sh"
needs cli_bench "$DATA"
. "$SRC/scripts/bench-lib.sh"
head -c 4000 "$SRC/README.md" >"$TMP/text.txt"

# one_number WHAT VALUE: VALUE is one positive number
one_number() {
    case $2 in
    '' | *[!0-9.e+-]* | *$'\n'*) fail "$1: not one number: '$2'" ;;
    *) awk -v v="$2" 'BEGIN { exit !(v > 0) }' || fail "$1: not positive: '$2'" ;;
    esac
}

v=$("$GEN" train vae --data "$DATA" --steps 3 --batch 8 --hidden 8 --latent 2 --threads 1 \
    --out "$TMP/vae" --json --quiet --ckpt-every 0 | number median_step_ms)
one_number "vae median_step_ms" "$v"
t=$("$GEN" train transformer --data "$TMP/text.txt" --steps 3 --batch 2 --layers 1 --heads 2 \
    --width 16 --context 16 --threads 1 --out "$TMP/tf" --json --quiet --ckpt-every 0 \
    --eval-every 0 --sample-every 0 | number median_step_ms)
one_number "transformer median_step_ms" "$t"
s=$("$GEN" sample transformer --ckpt "$TMP/tf" --length 20 --threads 1 -n 2 -o "$TMP/s.txt" \
    --json --quiet | number tokens_per_s)
one_number "sample tokens_per_s" "$s"
# the twins' json.dumps writes a space after the colon
one_number "a twin's line" "$(echo '{"median_step_ms": 12.5, "x": 1}' | number median_step_ms)"
# a field that is not there is nothing, not a number
[ -z "$(echo '{"steps": 3}' | number median_step_ms)" ] || fail "number: a missing field gave a value"

finish cli_bench
