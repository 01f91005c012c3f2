# bench-lib.sh - sourced by the family benches (bash).

# has_bf16 GEN: true where GEN has --precision bf16 kernels on this CPU/build
# (`gen --version`: "--precision bf16: amx" or "avx512bf16").
has_bf16() { "$1" --version | grep -q 'bf16: a'; }

# number NAME: NAME's value on the last line of stdin that has it (gen's
# --json lines write "NAME":v, the twins' json.dumps "NAME": v; gen's
# result line repeats the last log line's median_step_ms).
number() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p" | tail -1; }

# median X...: the middle value (the upper one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# bench_gemm ARGS...: the bench_gemm beside GEN (built first where missing).
bench_gemm() {
    local build
    build=${BUILD:-$(dirname "${GEN:-build/gen}")}
    [ -x "$build/bench_gemm" ] || cmake --build "$build" --target bench_gemm >/dev/null
    "$build/bench_gemm" "$@"
}

# share_of_peak GFLOP GEN_MS TWIN_MS THREADS: each side's arithmetic rate on
# a step of GFLOP (scripts/reference/flops.py) against the FMA peak that
# bench_gemm --peak measures now on THREADS threads; a gen/PyTorch ratio R
# needs gen at (twin's share) / R of the peak, so ratios that would need
# more than 100 % cannot be had in fp32 on this machine.
share_of_peak() {
    local peak
    peak=$(bench_gemm --peak "$4")
    awk -v f="$1" -v g="$2" -v t="$3" -v p="$peak" -v n="$4" 'BEGIN {
        gr = f / g * 1e3; tr = f / t * 1e3
        printf "arithmetic: %.1f GFLOP a step; FMA peak %.0f GFLOP/s on %d threads; gen %.0f GFLOP/s (%.0f%% of peak), pytorch %.0f GFLOP/s (%.0f%%); gen/pytorch 0.5 would need %.0f%% of peak\n",
               f, p, n, gr, 100 * gr / p, tr, 100 * tr / p, 200 * tr / p }'
}
