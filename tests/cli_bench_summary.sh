# cli_bench_summary.sh - scripts/bench-summary.sh's reading of a bench's
# output: each target's line found, held where the run met it and MISSED
# where it did not (a ratio over its bound, one sampling length under
# 20 000 tokens/s, one GEMM row under 75 %, one op over PyTorch's time,
# one size over the twin's memory), an op whose median ratio prints as
# 1.00 judged by its median times, and the exit status (0 all held, 1 one
# missed, 2 no target). The lines are bench.sh's own, as its parts print
# them (docs/bench/*.txt).
# Usage: bash tests/cli_bench_summary.sh PATH_TO_GEN   (gen itself is not used)
set -u
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
. "$(dirname "$0")/testlib.sh"
summary() { bash "$SRC/scripts/bench-summary.sh" "$@"; }
# status WANT WHAT FILE: the summary of FILE (in $TMP/out) exits WANT
status() {
    summary "$3" >"$TMP/out"
    local rc=$?
    [ "$rc" = "$1" ] || fail "$2: exit $rc, want $1: $(cat "$TMP/out")"
}

# run FILE: a run that met every target, with these lines swapped in by sed
cat >"$TMP/held.txt" <<'EOF'
== bench ops
gen on the large rows: 79.1% to 86.8% of peak, median 81.0%
== forward+backward per op, 2 threads, median over 3 rounds of median-of-7
op                               gen ms   torch ms    gen/torch
add 64x64x32x32                   0.688     53.225         0.01
conv3x3s2 32->32 28->14           3.067      3.092         0.99
conv4x4s2 64->128 14->7           9.020      9.078         1.00
load average after: 0.77 0.45 0.74
== bench vae
vae train step, batch 128, 2 threads: median gen/pytorch = 0.407 (target <= 0.5)
== bench gan
gan step, batch 64, 2 threads: median gen 45.5 ms, pytorch 183.2 ms, median gen/pytorch 0.261 (3 rounds)
== bench transformer
transformer train, batch 32 x 128 tokens, 2 threads: median gen speed-up over pytorch = 4.791 (target >= 2, a step at most 0.5x)
sample batch 1, fp32, 1 thread(s), length   100:  15673 tokens/s  (63.8 us/token; rounds 15610-16964)
sample batch 1, fp32, 2 thread(s), length   100:  23430 tokens/s  (42.7 us/token; rounds 21965-23663)
sample batch 1, fp32, 2 thread(s), length  4000:  20421 tokens/s  (49.0 us/token; rounds 18655-20451)
sample batch 1, bf16, 2 thread(s), length   100:  16067 tokens/s  (62.2 us/token; rounds 13884-17668)
== bench diffusion
diffusion, 2 threads: train step (batch 64) gen/pytorch = 0.484, DDIM-50 sampling of 64 images gen/pytorch = 0.381 (target <= 0.5)
== bench precision
transformer, 2 threads: bf16/fp32 step = 0.483 (target <= 0.6)
diffusion, 2 threads: bf16/fp32 step = 0.575 (target <= 0.6)
== bench scale
size                                  gen ms  torch ms   time   gen MiB torch MiB memory
diffusion 28x28x1                        133       377   0.35       345      724   0.48
transformer ctx 512 w 384 (b 8)          624      2028   0.31       812     1174   0.69
EOF

status 0 "a run that met every target" "$TMP/held.txt"
grep -q '^11 of 11 held$' "$TMP/out" || fail "all held: $(tail -1 "$TMP/out")"
grep -q MISSED "$TMP/out" && fail "all held: a MISSED line: $(grep MISSED "$TMP/out")"
# the one-thread sampling line is not the run's two threads', bf16's not judged
grep -q '^held    KV sampling, batch 1, fp32, 2 threads: 23430 / 20421 tokens/s' "$TMP/out" ||
    fail "fp32 sampling line: $(grep KV "$TMP/out")"
grep -q '^info    KV sampling, batch 1, bf16, 2 threads: 16067' "$TMP/out" ||
    fail "bf16 sampling line: $(grep bf16 "$TMP/out")"
grep -q 'speed-up 4.791' "$TMP/out" || fail "transformer line: $(grep Transformer "$TMP/out")"
# also on standard input
summary <"$TMP/held.txt" | grep -q '^11 of 11 held$' || fail "standard input not read"

# missed: MISSED_PATTERN SED_EXPRESSION: the run with one line changed
# misses that target alone
missed() {
    sed "$2" "$TMP/held.txt" >"$TMP/run.txt"
    status 1 "missed: $1" "$TMP/run.txt"
    [ "$(grep -c MISSED "$TMP/out")" = 1 ] || fail "missed $1: $(grep MISSED "$TMP/out")"
    grep -q "^MISSED  .*$1" "$TMP/out" || fail "missed $1: not so marked: $(cat "$TMP/out")"
}
missed "VAE step" 's/gen\/pytorch = 0.407/gen\/pytorch = 0.507/'
missed "GAN step" 's/median gen\/pytorch 0.261/median gen\/pytorch 0.501/'
missed "Transformer step" 's/over pytorch = 4.791/over pytorch = 1.990/'
missed "DDIM-50" 's/images gen\/pytorch = 0.381/images gen\/pytorch = 0.52/'
missed "diffusion step gen" 's/(batch 64) gen\/pytorch = 0.484/(batch 64) gen\/pytorch = 0.51/'
missed "KV sampling" 's/  20421 tokens/  19999 tokens/'
missed "Transformer 0.601" 's/bf16\/fp32 step = 0.483/bf16\/fp32 step = 0.601/'
missed "diffusion 1.087" 's/bf16\/fp32 step = 0.575/bf16\/fp32 step = 1.087/'
missed "GEMM on the large rows" 's/rows: 79.1% to/rows: 74.9% to/'
missed "over: conv3x3s2 32->32 28->14 (1.01)" 's/3.092         0.99/3.092         1.01/'
missed "over: conv4x4s2 64->128 14->7 (1.00)" 's/9.020      9.078/9.189      9.178/'
missed "transformer ctx 512 w 384 (b 8) (1.02)" 's/1174   0.69/1174   1.02/'

# parts absent are named; a run of no target exits 2
grep -v '^vae train step\|^sample batch' "$TMP/held.txt" >"$TMP/part.txt"
status 0 "parts absent" "$TMP/part.txt"
grep -q 'parts absent: vae$' "$TMP/out" || fail "absent parts: $(tail -1 "$TMP/out")"
grep -q 'KV sampling' "$TMP/out" && fail "absent sampling judged"
printf '== bench shared\ntwo at once: 1.5x\n' >"$TMP/none.txt"
status 2 "no target" "$TMP/none.txt"

finish cli_bench_summary
