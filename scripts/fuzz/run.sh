#!/usr/bin/env bash
# run.sh - builds the libFuzzer targets of tests/fuzz in build-fuzz/ (clang,
# ASan + UBSan) if needed and runs each for SECONDS on a copy of its
# committed corpus: new inputs go to a scratch corpus, never into
# tests/fuzz/corpus/. Prints the executions and coverage of each target and
# fails if any target finds a crash, a leak, a timeout or runs out of memory
# (the reproducer is kept under the scratch folder; the log names it).
#
# Usage: bash scripts/fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 60); TARGET e.g. idx or fuzz_idx (default: all)
# Environment: GEN_FUZZ_BUILD (build folder, default build-fuzz),
#   GEN_FUZZ_WORK (scratch corpora and logs, default BUILD/fuzz-work),
#   GEN_FUZZ_ARGS (extra libFuzzer flags, e.g. -runs=1000000), GEN_FUZZ_CC (default
#   clang), GEN_JOBS, TMPDIR (the inputs' files; default a fresh folder in /dev/shm).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
build=${GEN_FUZZ_BUILD:-build-fuzz}
work=${GEN_FUZZ_WORK:-$build/fuzz-work}
jobs=${GEN_JOBS:-2}

targets=()
if [ $# -gt 0 ]; then
    for t in "$@"; do targets+=("fuzz_${t#fuzz_}"); done
else
    for src in tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        [ "$name" = fuzz_util ] || targets+=("$name")
    done
fi

if ! grep -q "^GEN_FUZZ:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
    # OpenMP off: one thread per input, results that do not depend on timing.
    cmake -S . -B "$build" -DGEN_FUZZ=ON -DCMAKE_C_COMPILER="${GEN_FUZZ_CC:-clang}" \
        -DGEN_BUILD_TESTS=OFF -DGEN_OPENMP=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
fi
cmake --build "$build" -j"$jobs" --target "${targets[@]}" >/dev/null

# Every input is written to a file, in a folder of this run's own: in
# memory when /dev/shm is there (a target writes thousands of files a
# second), removed at the end.
if [ -z "${TMPDIR:-}" ]; then
    base=$work
    [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
    mkdir -p "$base"
    TMPDIR=$(mktemp -d "$base/gen-fuzz-run.XXXXXX")
    export TMPDIR
    trap 'rm -rf "$TMPDIR"' EXIT
fi

status=0
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    seeds=tests/fuzz/corpus/$name
    mkdir -p "$work/$name/corpus" "$work/$name/crashes"
    log=$work/$name/log
    # Memory per input: 2 GiB resident, 1 GiB in one malloc. Inputs that
    # take more than 20 s are reported as hangs.
    rc=0
    start=$(date +%s)
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        "$build/$t" "$work/$name/corpus" "$seeds" -max_total_time="$secs" \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$work/$name/crashes/" ${GEN_FUZZ_ARGS:-} >"$log" 2>&1 || rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
    if [ "$rc" -ne 0 ]; then
        echo "$t: FAILED (exit $rc) after ${execs:-?} executions in ${took}s; log: $log" >&2
        grep -E "^==[0-9]+==ERROR|SUMMARY|runtime error|Test unit written|fuzz: " "$log" | head -8 >&2 || true
        status=1
    else
        echo "$t: ${execs:-?} executions in ${took}s (${cov:-no coverage line})"
    fi
done
exit "$status"
