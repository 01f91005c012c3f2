# cli_mpi.sh - data-parallel training over MPI: `mpirun -np 2` runs each
# family to the same weights as one process with the same global batch
# (norm-wise within 1e-5; the GAN and the classifier with --sync-bn),
# resumes across process counts, ends the job when one rank fails, saves
# once when a rank is interrupted, and says once that sampling was.
# Usage: bash tests/cli_mpi.sh PATH_TO_GEN   (skips, exit 77, without
# mpirun, without an MPI build of gen, or without data/mnist)
set -u
GEN=${1:?usage: cli_mpi.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
DATA=$SRC/data/mnist
CLOSE=${GEN_CKPT_CLOSE:-$(dirname "$GEN")/ckpt_close}
. "$(dirname "$0")/testlib.sh"
skip() { echo "cli_mpi: $*: skipped"; exit 77; }
command -v mpirun >/dev/null || skip "no mpirun (Debian package openmpi-bin)"
[ -d "$DATA" ] || skip "$DATA absent (scripts/fetch-data.sh)"
[ -x "$CLOSE" ] || skip "$CLOSE: no ckpt_close tool"
# root in CI containers; one core is enough; Open MPI's own allocations
# are not gen's leaks
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
MPI=(mpirun -np 2)
if ! "${MPI[@]}" "$GEN" --version >"$TMP/v" 2>&1; then
    grep -q "without MPI" "$TMP/v" && skip "gen was built without MPI"
    fail "mpirun -np 2 gen --version: $(cat "$TMP/v")"
    finish cli_mpi
fi
head -c 20000 "$SRC/README.md" >"$TMP/text.txt"

# same TAG FAMILY OPTIONS...: 4 steps by 1 process and by 2, weights close
same() {
    local tag=$1 fam=$2
    shift 2
    local common=(--steps 4 --threads 1 --quiet --seed 5 "$@")
    "$GEN" train "$fam" "${common[@]}" --out "$TMP/$tag-1" || { fail "$tag: one process"; return; }
    "${MPI[@]}" "$GEN" train "$fam" "${common[@]}" --out "$TMP/$tag-2" >"$TMP/log" 2>&1 ||
        { fail "$tag: two ranks: $(cat "$TMP/log")"; return; }
    "$CLOSE" "$TMP/$tag-1/checkpoint.safetensors" "$TMP/$tag-2/checkpoint.safetensors" 1e-5 >"$TMP/close" ||
        fail "$tag: 2 ranks differ from 1 process: $(cat "$TMP/close")"
}
same vae vae --data "$DATA" --batch 16 --hidden 32 --latent 4
same cond-vae vae --data "$DATA" --batch 16 --hidden 32 --latent 4 --conditional
same gan gan --data "$DATA" --batch 16 --g-width 8 --d-width 8 --latent 8 --sync-bn
same transformer transformer --data "$TMP/text.txt" --batch 8 --layers 1 --width 32 --heads 2 --context 32 --dropout 0.1
same diffusion diffusion --data "$DATA" --batch 8 --base 8
same classifier classifier --data "$DATA" --batch 16 --sync-bn
# a batch split 3 + 2 weighs each rank by its share
same odd-vae vae --data "$DATA" --batch 5 --hidden 32 --latent 4

# without --sync-bn each rank normalises its own share (as PyTorch DDP): not one process's numbers
"$CLOSE" "$TMP/gan-1/checkpoint.safetensors" "$TMP/gan-1/checkpoint.safetensors" 1e-5 >/dev/null || fail "ckpt_close: a checkpoint differs from itself"
"${MPI[@]}" "$GEN" train gan --data "$DATA" --batch 16 --g-width 8 --d-width 8 --latent 8 --steps 4 \
    --threads 1 --quiet --seed 5 --out "$TMP/gan-local" || fail "gan without --sync-bn"
"$CLOSE" "$TMP/gan-1/checkpoint.safetensors" "$TMP/gan-local/checkpoint.safetensors" 1e-5 >/dev/null &&
    fail "gan: per-rank batch norm matched one process; the test cannot tell them apart"

# rank 0 alone writes: the run directory holds what one process's does
( cd "$TMP/vae-1" && ls ) >"$TMP/ls1"
( cd "$TMP/vae-2" && ls ) >"$TMP/ls2"
cmp -s "$TMP/ls1" "$TMP/ls2" || fail "2 ranks wrote other files: $(diff "$TMP/ls1" "$TMP/ls2")"
[ "$(grep -c '"step":4,"loss"' "$TMP/vae-2/metrics.jsonl")" = 1 ] ||
    fail "metrics.jsonl of 2 ranks has other than one line of step 4: $(cat "$TMP/vae-2/metrics.jsonl")"

# resume across process counts: 2 ranks then 1, and 1 then 2, as 8 steps at once
small=(--data "$DATA" --batch 16 --hidden 32 --latent 4 --threads 1 --quiet --seed 5)
"$GEN" train vae "${small[@]}" --steps 8 --out "$TMP/r8" || fail "8 steps"
"${MPI[@]}" "$GEN" train vae "${small[@]}" --steps 4 --out "$TMP/r21" || fail "2 ranks, 4 steps"
"$GEN" train vae --steps 8 --resume --out "$TMP/r21" --threads 1 --quiet || fail "resume by 1 process"
"$CLOSE" "$TMP/r8/checkpoint.safetensors" "$TMP/r21/checkpoint.safetensors" 1e-5 >"$TMP/close" ||
    fail "2 ranks then 1: $(cat "$TMP/close")"
"$GEN" train vae "${small[@]}" --steps 4 --out "$TMP/r12" || fail "1 process, 4 steps"
"${MPI[@]}" "$GEN" train vae --steps 8 --resume --out "$TMP/r12" --threads 1 --quiet || fail "resume by 2 ranks"
"$CLOSE" "$TMP/r8/checkpoint.safetensors" "$TMP/r12/checkpoint.safetensors" 1e-5 >"$TMP/close" ||
    fail "1 process then 2 ranks: $(cat "$TMP/close")"
# a one-process sample reads what 2 ranks wrote
"$GEN" sample vae --ckpt "$TMP/r21/checkpoint.safetensors" -n 4 -o "$TMP/s.png" --quiet ||
    fail "sample of a checkpoint of 2 ranks"

# sampling and evaluation over the ranks: the same files as one process
"$GEN" train diffusion --data "$DATA" --steps 2 --batch 8 --base 8 --conditional --threads 1 --quiet \
    --out "$TMP/dif" || fail "diffusion for sampling"
"$GEN" train classifier --data "$DATA" --steps 2 --batch 16 --threads 1 --quiet --out "$TMP/clf" ||
    fail "classifier for eval"
dif=(--ckpt "$TMP/dif/checkpoint.safetensors" --steps 2 --threads 1 --quiet)
for out in grid.png dir/; do
    "$GEN" sample diffusion "${dif[@]}" -n 530 -o "$TMP/one-$out" || fail "sample -o $out"
    "${MPI[@]}" "$GEN" sample diffusion "${dif[@]}" -n 530 -o "$TMP/two-$out" ||
        fail "2 ranks: sample -o $out"
    diff -r "$TMP/one-$out" "$TMP/two-$out" >/dev/null || fail "sample -o $out: 2 ranks differ from 1 process"
done
[ "$(ls "$TMP/two-dir/" | wc -l)" = 530 ] || fail "2 ranks wrote $(ls "$TMP/two-dir/" | wc -l) files, not 530"
"$GEN" sample vae --ckpt "$TMP/vae-1/checkpoint.safetensors" -n 600 -o "$TMP/vae-one.png" --quiet &&
    "${MPI[@]}" "$GEN" sample vae --ckpt "$TMP/vae-1/checkpoint.safetensors" -n 600 -o "$TMP/vae-two.png" --quiet &&
    cmp -s "$TMP/vae-one.png" "$TMP/vae-two.png" || fail "vae sample -n 600: 2 ranks differ from 1 process"
"$GEN" sample diffusion "${dif[@]}" --per-class 3 -o "$TMP/pc-one/" || fail "--per-class"
"${MPI[@]}" "$GEN" sample diffusion "${dif[@]}" --per-class 3 -o "$TMP/pc-two/" || fail "2 ranks: --per-class"
diff -r "$TMP/pc-one" "$TMP/pc-two" >/dev/null || fail "--per-class: 2 ranks differ from 1 process"
ev=(eval diffusion "${dif[@]}" --classifier "$TMP/clf/checkpoint.safetensors" -n 520 --json)
"$GEN" "${ev[@]}" >"$TMP/ev1" || fail "eval"
"${MPI[@]}" "$GEN" "${ev[@]}" >"$TMP/ev2" || fail "2 ranks: eval"
[ "$(wc -l <"$TMP/ev2")" = 1 ] || fail "2 ranks: eval printed $(wc -l <"$TMP/ev2") JSON lines, not 1"
cmp -s "$TMP/ev1" "$TMP/ev2" || fail "eval: 2 ranks differ from 1 process: $(cat "$TMP/ev1" "$TMP/ev2")"

# one failing rank ends the job, with its message
expect 1 "one rank on missing data" "rank 1 of 2: .*nothing-here" -- "${MPI[@]}" sh -c \
    'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then d=$0/nothing-here; else d=$1; fi;
     exec "$2" train vae --data "$d" --steps 100000 --batch 16 --hidden 32 --latent 4 --threads 1 -q --out "$0/fail"' \
    "$TMP" "$DATA" "$GEN"
expect 2 "batch below the ranks" "fewer examples than the 2 processes" -- \
    "${MPI[@]}" "$GEN" train vae "${small[@]}" --batch 1 --steps 2 --out "$TMP/b1"

# SIGTERM to one rank: every rank stops at the same step, rank 0 saves, exit 130
"${MPI[@]}" "$GEN" train vae --data "$DATA" --batch 16 --hidden 32 --latent 4 --threads 1 --seed 5 \
    --steps 1000000 --out "$TMP/sig" >"$TMP/sig.log" 2>&1 &
job=$!
for _ in $(seq 100); do [ -s "$TMP/sig/metrics.jsonl" ] && break; sleep 0.1; done
pkill -TERM -f "train vae.*--out $TMP/sig\$" -n
wait $job
rc=$?
[ "$rc" = 130 ] || fail "interrupted job: exit $rc, want 130: $(tail -5 "$TMP/sig.log")"
[ -f "$TMP/sig/checkpoint.safetensors" ] || fail "interrupted job saved no checkpoint"
[ "$(grep -c 'interrupted: checkpoint saved' "$TMP/sig.log")" = 1 ] ||
    fail "interrupted job: want one 'checkpoint saved' note: $(cat "$TMP/sig.log")"

# SIGINT to a sampling job: one line (rank 0's), exit 130, no temporary file left
"${MPI[@]}" "$GEN" sample vae --ckpt "$TMP/vae-1/checkpoint.safetensors" -n 100000 --threads 1 \
    -o "$TMP/many/" >"$TMP/int.log" 2>&1 &
job=$!
for _ in $(seq 100); do [ "$(ls "$TMP/many" 2>/dev/null | wc -l)" -gt 50 ] && break; sleep 0.1; done
pkill -INT -f "sample vae.*-o $TMP/many/\$"
wait $job
rc=$?
[ "$rc" != 0 ] || fail "interrupted sampling job: exit 0"
[ "$(grep -c 'gen: interrupted' "$TMP/int.log")" = 1 ] ||
    fail "interrupted sampling job: want one 'interrupted' line: $(head -c 600 "$TMP/int.log")"
ls "$TMP/many" | grep -q '\.tmp\.' &&
    fail "interrupted sampling job left $(ls "$TMP/many" | grep '\.tmp\.')"

finish cli_mpi
