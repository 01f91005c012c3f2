# cli_export.sh - `gen export` through the command line, on the checkpoints
# of every family in tests/fixtures/legacy: the weights alone (no optimiser
# or EMA tensors, BatchNorm's num_batches_tracked added), the dtype, the
# metadata, --json, and every misuse: one line naming the problem and exit
# 2 for usage, exit 1 for a bad checkpoint, and never a partial file.
# (scripts/test-export.sh loads exports into the PyTorch twins.)
# Usage: bash tests/cli_export.sh PATH_TO_GEN
set -u
GEN=${1:?usage: cli_export.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
FIX=$SRC/tests/fixtures/legacy
. "$(dirname "$0")/testlib.sh"

# header FILE: a safetensors file's JSON header
header() { head -c $((8 + $(od -An -tu8 -N8 "$1"))) "$1" | tail -c +9; }

for fam in vae gan diffusion classifier transformer; do
    out=$TMP/$fam.safetensors
    expect 0 "export $fam" "" -- "$GEN" export "$FIX/$fam.safetensors" -o "$out" --json
    grep -q "^{\"command\":\"export\",\"family\":\"$fam\",\"outputs\":\[\"$out\"\],\"metrics\":{\"tensors\":" "$TMP/out" ||
        fail "export $fam --json: $(cat "$TMP/out")"
    grep -q "^$out: [0-9]* tensors" "$TMP/err" || fail "export $fam: no log line: $(cat "$TMP/err")"
    h=$(header "$out")
    case $h in *'"optim.'* | *'"ema.'* | *'"rng.'* | *'"optim_step"'* | *'"data_cursor"'*)
        fail "export $fam: optimiser, EMA or run state in the export: $h" ;;
    esac
    for key in '"format":"pt"' "\"family\":\"$fam\"" '"config":"{' '"data_shape":"{' '"dtype":"f32"'; do
        case $h in *"$key"*) ;; *) fail "export $fam: metadata lacks $key" ;; esac
    done
    # the same model tensors as the checkpoint, in gen info's table
    "$GEN" info "$FIX/$fam.safetensors" | sed -n '/^tensors:/,$p' | awk 'NR > 2 { print $1 }' | sort >"$TMP/want"
    "$GEN" info "$out" | sed -n '/^tensors:/,$p' | awk 'NR > 2 { print $1 }' | grep -v 'num_batches_tracked$' |
        sort >"$TMP/got"
    cmp -s "$TMP/want" "$TMP/got" || fail "export $fam: tensors differ: $(diff "$TMP/want" "$TMP/got" | head -5)"
done
# BatchNorm: one num_batches_tracked (I64, a scalar) after each running_var
h=$(header "$TMP/gan.safetensors")
for bn in G.bn0 G.bn1 D.bn2; do
    case $h in *"\"$bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"*) ;;
        *) fail "gan: no I64 scalar $bn.num_batches_tracked" ;; esac
done
[ "$(header "$TMP/classifier.safetensors" | grep -o 'num_batches_tracked' | wc -l)" = 4 ] ||
    fail "classifier: want 4 num_batches_tracked"
header "$TMP/transformer.safetensors" | grep -q '"vocab":"' || fail "transformer: no vocab metadata"
header "$TMP/gan.safetensors" | grep -q '"weights":"ema"' || fail "gan: not its EMA weights by default"

# F16 and BF16: half the bytes of F32, dtypes in the header and gen info
for d in f16 bf16; do
    expect 0 "--dtype $d" "" -- "$GEN" export "$FIX/vae.safetensors" -o "$TMP/vae-$d.safetensors" --dtype $d -q
    [ ! -s "$TMP/err" ] || fail "--dtype $d -q: wrote to stderr: $(cat "$TMP/err")"
    D=$(echo $d | tr a-z A-Z)
    [ "$(header "$TMP/vae-$d.safetensors" | grep -o "\"dtype\":\"$D\"" | wc -l)" = 10 ] ||
        fail "--dtype $d: want 10 $D tensors: $(header "$TMP/vae-$d.safetensors")"
    "$GEN" info "$TMP/vae-$d.safetensors" | grep -q "fc1.weight .* $D$" || fail "gen info: no $D dtype"
    h32=$(header "$TMP/vae.safetensors" | wc -c) h16=$(header "$TMP/vae-$d.safetensors" | wc -c)
    data32=$(($(wc -c <"$TMP/vae.safetensors") - h32)) data16=$(($(wc -c <"$TMP/vae-$d.safetensors") - h16))
    [ $((data32 / 2)) -le "$data16" ] && [ "$data16" -le $((data32 / 2 + 8)) ] ||
        fail "--dtype $d: $data16 bytes of data, want half of $data32"
done
expect 0 "--no-ema" "" -- "$GEN" export "$FIX/gan.safetensors" -o "$TMP/gan-t.safetensors" --no-ema -q
header "$TMP/gan-t.safetensors" | grep -q '"weights":"trained"' || fail "--no-ema: not the trained weights"
cmp -s "$TMP/gan-t.safetensors" "$TMP/gan.safetensors" && fail "--no-ema: the same bytes as the EMA export"
expect 0 "--help" "" -- "$GEN" export --help
grep -q -- "--dtype f32|f16|bf16" "$TMP/out" || fail "export --help lacks --dtype"
"$GEN" --help | grep -q "^  export " || fail "gen --help does not list export"

# usage_error PATTERN ARGS...: exit 2, "gen: ..." naming the problem, a Try line, nothing on stdout
usage_error() {
    local pat=$1
    shift
    expect 2 "export $*" "^gen: .*$pat" -- "$GEN" export "$@"
    [ "$(wc -l <"$TMP/err")" = 2 ] && grep -q "^Try 'gen export --help'" "$TMP/err" ||
        fail "export $*: want 2 lines on stderr: $(cat "$TMP/err")"
    [ ! -s "$TMP/out" ] || fail "export $*: wrote to stdout"
}
CK=$FIX/vae.safetensors
usage_error "missing CKPT"
usage_error "missing CKPT" -o "$TMP/x.safetensors"
usage_error "missing -o" "$CK"
usage_error "an empty path" "$CK" -o ""
usage_error "name it FILE.safetensors" "$CK" -o "$TMP/x.pt"
usage_error "is a folder" "$CK" -o "$TMP"
usage_error "is a folder" "$CK" -o "$TMP/new/"
usage_error "is an input" "$CK" -o "$CK"
ln -f "$CK" "$TMP/link.safetensors" 2>/dev/null && usage_error "is an input" "$CK" -o "$TMP/link.safetensors"
usage_error "--dtype: must be one of f32|f16|bf16, got 'f64'" "$CK" -o "$TMP/x.safetensors" --dtype f64
usage_error "cannot be used together" "$CK" -o "$TMP/x.safetensors" --ema --no-ema
usage_error "keeps no EMA" "$CK" -o "$TMP/x.safetensors" --ema
usage_error "unknown option '--frob'" "$CK" -o "$TMP/x.safetensors" --frob
usage_error "" "$CK" -o "$TMP/x.safetensors" extra
[ ! -e "$TMP/x.safetensors" ] || fail "a refused export wrote its output"

# runtime errors: exit 1, one line naming the file
printf 'not a safetensors file at all' >"$TMP/garbage.safetensors"
head -c 300 "$CK" >"$TMP/cut.safetensors"
for bad in "$TMP/missing.safetensors" "$TMP/garbage.safetensors" "$TMP/cut.safetensors" \
    "$TMP/vae-f16.safetensors"; do
    expect 1 "export $(basename "$bad")" "^gen: $bad: " -- "$GEN" export "$bad" -o "$TMP/x.safetensors"
    [ "$(wc -l <"$TMP/err")" = 1 ] || fail "export $bad: want 1 line: $(cat "$TMP/err")"
done
grep -q "not a gen checkpoint" "$TMP/err" || fail "an export as input: $(cat "$TMP/err")"
expect 1 "export into a missing folder" "^gen: $TMP/no/x.safetensors: " -- \
    "$GEN" export "$CK" -o "$TMP/no/x.safetensors"
[ -z "$(ls "$TMP" | grep '\.tmp\.')" ] || fail "temporary files left: $(ls "$TMP")"

finish cli_export
