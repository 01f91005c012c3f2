# cli_train.sh - end-to-end training behaviour of the command line with the
# VAE: SIGINT saves and exits 130, the checkpoint then resumes; a NaN loss
# stops with exit 1 and keeps the last good checkpoint; missing data names
# the path and the fetch command; sampling writes a grid of the right size.
# Usage: bash tests/cli_train.sh PATH_TO_GEN   (needs data/fashion-mnist; skips, exit 77, without it)
set -u
GEN=${1:?usage: cli_train.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
DATA=$SRC/data/fashion-mnist
. "$(dirname "$0")/testlib.sh"

# Missing data: exit 1, one line naming the path and the fetch script.
"$GEN" train vae --data "$TMP/nowhere" --out "$TMP/x" 2>"$TMP/err"
rc=$?
[ "$rc" = 1 ] || fail "missing data: exit $rc, want 1"
grep -q "$TMP/nowhere" "$TMP/err" && grep -q fetch-data "$TMP/err" ||
    fail "missing data: message does not name the path and the fetch script: $(cat "$TMP/err")"
# ... and the run directory it made (with its parents) is gone; one that was there stays
[ -e "$TMP/x" ] && fail "missing data: the failed run left $(ls -A "$TMP/x")"
"$GEN" train vae --data "$TMP/nowhere" --out "$TMP/made/a/b/" 2>/dev/null
[ -e "$TMP/made" ] && fail "missing data: the failed run left its parents: $(find "$TMP/made")"
# (relative, where no parent exists and no mkdir before it failed)
mkdir "$TMP/rel"
(cd "$TMP/rel" && "$GEN" train vae --data "$TMP/nowhere" --out x/y/z 2>"$TMP/err")
grep -q "nowhere: no such data set" "$TMP/err" && [ -z "$(ls -A "$TMP/rel")" ] ||
    fail "missing data, --out x/y/z: $(cat "$TMP/err"); left $(ls -A "$TMP/rel")"
mkdir "$TMP/there"
"$GEN" train vae --data "$TMP/nowhere" --out "$TMP/there/run" 2>/dev/null
[ -d "$TMP/there" ] && [ ! -e "$TMP/there/run" ] ||
    fail "missing data: the folder given before the run was touched: $(find "$TMP/there")"

if [ ! -d "$DATA" ]; then
    echo "cli_train: $DATA absent (scripts/fetch-data.sh): training checks skipped"
    [ "$failures" = 0 ] && exit 77
    exit 1
fi

# SIGINT mid-run: the step finishes, the checkpoint is written, exit 130.
"$GEN" train vae --data "$DATA" --steps 1000000 --out "$TMP/int" --quiet --threads 1 &
pid=$!
for _ in $(seq 100); do
    [ -f "$TMP/int/metrics.jsonl" ] && grep -q '"step"' "$TMP/int/metrics.jsonl" && break
    sleep 0.2
done
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" = 130 ] || fail "SIGINT: exit $rc, want 130"
[ -f "$TMP/int/checkpoint.safetensors" ] || fail "SIGINT: no checkpoint saved"
"$GEN" info "$TMP/int/checkpoint.safetensors" >"$TMP/info" 2>&1 || fail "SIGINT: gen info failed: $(cat "$TMP/info")"
step=$(sed -n 's/^step[: ]*\([0-9][0-9]*\).*/\1/p' "$TMP/info" | head -1)
[ -n "$step" ] && [ "$step" -gt 0 ] || fail "SIGINT: checkpoint step not found in: $(head -5 "$TMP/info")"
# ... and the run resumes from it.
"$GEN" train vae --data "$DATA" --steps $((step + 3)) --out "$TMP/int" --resume --quiet ||
    fail "resume after SIGINT failed"

# NaN: a huge learning rate blows the loss up; exit 1, message, the
# checkpoint of an earlier good run is untouched.
"$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/nan" --quiet || fail "short run failed"
sum=$(sha256sum "$TMP/nan/checkpoint.safetensors")
"$GEN" train vae --data "$DATA" --steps 400 --lr 10 --out "$TMP/nan" --force --quiet 2>"$TMP/err"
rc=$?
[ "$rc" = 1 ] || fail "NaN: exit $rc, want 1"
grep -q "NaN\|Inf\|inf" "$TMP/err" || fail "NaN: no message: $(cat "$TMP/err")"
grep -q "nan/checkpoint.safetensors is left as it was" "$TMP/err" ||
    fail "NaN: the message does not name the checkpoint kept: $(cat "$TMP/err")"
[ "$(sha256sum "$TMP/nan/checkpoint.safetensors")" = "$sum" ] || fail "NaN: checkpoint changed"
# and where no checkpoint had been saved, says so
"$GEN" train vae --data "$DATA" --steps 400 --lr 10 --out "$TMP/nan-new" --quiet 2>"$TMP/err"
grep -q "no checkpoint was saved" "$TMP/err" ||
    fail "NaN in a new run: the message does not say no checkpoint was saved: $(cat "$TMP/err")"

# Sampling: an 8x8 grid of 28x28 images with a 2-pixel border is 242x242.
"$GEN" sample vae --ckpt "$TMP/nan/checkpoint.safetensors" -n 64 -o "$TMP/grid.png" 2>/dev/null ||
    fail "sample failed"
size=$(od -An -tu1 -j16 -N8 "$TMP/grid.png" | awk '{ print $3 * 256 + $4, $7 * 256 + $8 }')
[ "$size" = "242 242" ] || fail "sample grid is '$size', want '242 242'"
"$GEN" sample vae --ckpt "$TMP/nan/checkpoint.safetensors" -n 3 -o "$TMP/each/" 2>/dev/null ||
    fail "sample to a folder failed"
[ "$(ls "$TMP/each" | wc -l)" = 3 ] || fail "sample to a folder: $(ls "$TMP/each" | wc -l) files, want 3"
# Evaluation: the importance-weighted bound is at least as tight as the
# ELBO, and --per-sample writes one row per test image.
"$GEN" eval vae --ckpt "$TMP/nan/checkpoint.safetensors" --data "$DATA" --iw 5 --json \
    --per-sample "$TMP/scores.csv" >"$TMP/eval.json" 2>/dev/null || fail "eval failed"
awk -F'[:,}]' '{ for (i = 1; i < NF; i++) { if ($i ~ /test_loss/) e = $(i + 1); if ($i ~ /neg_iw_bound/) w = $(i + 1) } }
     END { exit !(e > 0 && w > 0 && w <= e) }' "$TMP/eval.json" ||
    fail "eval: IW bound not <= ELBO: $(cat "$TMP/eval.json")"
[ "$(wc -l <"$TMP/scores.csv")" = 10001 ] || fail "eval: per-sample CSV has $(wc -l <"$TMP/scores.csv") lines"

# A run directory that holds a run: training into it again without
# --resume or --force exits 1 and leaves the checkpoint as it was.
sum=$(sha256sum "$TMP/nan/checkpoint.safetensors")
"$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/nan" --quiet 2>"$TMP/err"
rc=$?
[ "$rc" = 1 ] && grep -q -- "--resume" "$TMP/err" || fail "train into a run: exit $rc: $(cat "$TMP/err")"
[ "$(sha256sum "$TMP/nan/checkpoint.safetensors")" = "$sum" ] || fail "train into a run: checkpoint changed"

# A resumed run keeps its data set and schedule: trained on a data set
# other than the default (Fashion-MNIST under another name), resumed
# without --data, it goes on with that one (the stored config says so).
MNIST=$TMP/other-set
ln -s "$DATA" "$MNIST"
{
    "$GEN" train vae --data "$MNIST" --steps 3 --batch 16 --hidden 32 --out "$TMP/mn" --quiet ||
        fail "train on mnist failed"
    "$GEN" train vae --resume --steps 5 --out "$TMP/mn" --quiet || fail "resume without --data failed"
    "$GEN" info "$TMP/mn/checkpoint.safetensors" >"$TMP/info" 2>&1
    grep -q "other-set" "$TMP/info" && grep -q '"batch":16\|batch *16' "$TMP/info" ||
        fail "resume forgot the data set or batch: $(cat "$TMP/info")"
    # A conflicting model option is refused (usage, 2) and changes nothing.
    sum=$(sha256sum "$TMP/mn/checkpoint.safetensors")
    "$GEN" train vae --resume --steps 8 --hidden 64 --out "$TMP/mn" --quiet 2>"$TMP/err"
    rc=$?
    [ "$rc" = 2 ] && grep -q -- "--hidden" "$TMP/err" || fail "conflicting --hidden on resume: exit $rc: $(cat "$TMP/err")"
    "$GEN" train vae --resume --steps 8 --data "$DATA" --out "$TMP/mn" --quiet 2>"$TMP/err"
    rc=$?
    [ "$rc" = 2 ] && grep -q -- "--data" "$TMP/err" || fail "conflicting --data on resume: exit $rc: $(cat "$TMP/err")"
    [ "$(sha256sum "$TMP/mn/checkpoint.safetensors")" = "$sum" ] || fail "refused resume changed the checkpoint"
    # eval and sample --reconstruct default to the model's data set.
    "$GEN" eval vae --ckpt "$TMP/mn/checkpoint.safetensors" --iw 0 2>"$TMP/err" >/dev/null ||
        fail "eval on the model's data failed: $(cat "$TMP/err")"
    grep -q "other-set" "$TMP/err" || fail "eval did not use the model's data set: $(cat "$TMP/err")"
}

# Two trainings into one directory: the second fails at once, naming the
# holder's PID.
"$GEN" train vae --data "$DATA" --steps 1000000 --out "$TMP/lock" --quiet --threads 1 &
pid=$!
for _ in $(seq 100); do [ -s "$TMP/lock/.lock" ] && break; sleep 0.1; done
"$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/lock" --force --quiet 2>"$TMP/err"
rc=$?
kill -INT "$pid"
wait "$pid"
[ "$rc" = 1 ] && grep -q "PID $pid" "$TMP/err" || fail "second training into a locked run: exit $rc: $(cat "$TMP/err")"

# --json: one object per command with the core keys (command, family,
# outputs, metrics) as its last line on stdout.
check_json() {
    tail -n 1 "$1" | grep -q '^{"command":"'"$2"'","family":"vae","outputs":\[.*\],"metrics":{.*}' ||
        fail "--json of $2: $(tail -n 1 "$1")"
}
"$GEN" train vae --data "$DATA" --steps 2 --out "$TMP/js" --json --quiet >"$TMP/j1" || fail "train --json failed"
check_json "$TMP/j1" train
# train's metrics: where the run ended, the last value of each logged number
tail -n 1 "$TMP/j1" | grep -q '"metrics":{"step":2,"loss":[^}]*"test_loss":[^}]*"median_step_ms":' ||
    fail "train --json metrics: $(tail -n 1 "$TMP/j1")"
"$GEN" sample vae --ckpt "$TMP/js/checkpoint.safetensors" -n 4 -o "$TMP/js.png" --json --quiet >"$TMP/j2" || fail "sample --json failed"
check_json "$TMP/j2" sample
[ "$(wc -l <"$TMP/j2")" = 1 ] || fail "sample --json printed $(wc -l <"$TMP/j2") lines"
"$GEN" eval vae --ckpt "$TMP/js/checkpoint.safetensors" --data "$DATA" --iw 0 --json --quiet >"$TMP/j3" || fail "eval --json failed"
check_json "$TMP/j3" eval
[ "$(wc -l <"$TMP/j3")" = 1 ] || fail "eval --json printed $(wc -l <"$TMP/j3") lines"

# --profile: OUT/profile.json (the steps after the first, each op with its
# calls a step), named in --json's outputs, and a table on stderr; a
# one-step run profiles its only step.
"$GEN" train vae --data "$DATA" --steps 3 --out "$TMP/prof" --profile --json --threads 1 \
    >"$TMP/p1" 2>"$TMP/p1.err" || fail "train --profile failed: $(cat "$TMP/p1.err")"
tr -d ' \t\n' <"$TMP/prof/profile.json" >"$TMP/p1.flat"
grep -q '"steps":2,' "$TMP/p1.flat" || fail "--profile: not 2 steps: $(head -c 300 "$TMP/p1.flat")"
grep -q '"op":"linear","calls":5,' "$TMP/p1.flat" ||
    fail "--profile: no linear op with 5 calls a step: $(head -c 600 "$TMP/p1.flat")"
grep -q '"outputs":\[[^]]*profile.json' "$TMP/p1" || fail "--profile --json: $(tail -n 1 "$TMP/p1")"
grep -q '^profile of 2 steps' "$TMP/p1.err" && grep -q '^  linear ' "$TMP/p1.err" ||
    fail "--profile: no table on stderr: $(cat "$TMP/p1.err")"
"$GEN" train vae --data "$DATA" --steps 1 --out "$TMP/prof1" --profile --quiet --threads 1 ||
    fail "train --profile --steps 1 failed"
tr -d ' \t\n' <"$TMP/prof1/profile.json" | grep -q '"steps":1,' ||
    fail "--profile --steps 1: $(cat "$TMP/prof1/profile.json")"

# -o never destroys an input, and names an image format gen writes.
sum=$(sha256sum "$TMP/js/checkpoint.safetensors")
"$GEN" sample vae --ckpt "$TMP/js/checkpoint.safetensors" -o "$TMP/js/checkpoint.safetensors" 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] || fail "-o onto the checkpoint: exit $rc"
[ "$(sha256sum "$TMP/js/checkpoint.safetensors")" = "$sum" ] || fail "-o onto the checkpoint destroyed it"
"$GEN" sample vae --ckpt "$TMP/js/checkpoint.safetensors" -o "$TMP/out.txt" 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && [ ! -e "$TMP/out.txt" ] || fail "-o out.txt: exit $rc"
"$GEN" sample vae --ckpt "$TMP/js/checkpoint.safetensors" -n 4 -o "$TMP/g.jpg" --quiet || fail "-o g.jpg failed"
[ "$(od -An -tx1 -N2 "$TMP/g.jpg" | tr -d ' ')" = ffd8 ] || fail "-o g.jpg is not a JPEG"

# A corrupt checkpoint: exit 1, message names the file.
head -c 100 "$TMP/nan/checkpoint.safetensors" >"$TMP/bad.safetensors"
"$GEN" sample vae --ckpt "$TMP/bad.safetensors" -o "$TMP/g2.png" 2>"$TMP/err"
rc=$?
[ "$rc" = 1 ] && grep -q bad.safetensors "$TMP/err" || fail "corrupt checkpoint: exit $rc: $(cat "$TMP/err")"

finish cli_train
