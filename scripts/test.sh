#!/usr/bin/env bash
# test.sh - the whole check: setup (packages + Release build in build/),
# the test suite, then the suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan/. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${GEN_JOBS:-2}

bash scripts/setup.sh
# Real data for the tests that train on a small subset; they skip (and say
# so) when it cannot be had.
bash scripts/fetch-data.sh || echo "test.sh: data sets not fetched; tests that need them will skip" >&2

status=0
echo "== tests (Release, build/)" >&2
ctest --test-dir build --output-on-failure -j"$jobs" || status=1

echo "== tests (ASan + UBSan, build-asan/)" >&2
# -O1 keeps the sanitized run fast enough while keeping stacks readable.
cmake -S . -B build-asan -DGEN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g"
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" || status=1

echo "== fuzz (libFuzzer, 10 s per target, build-fuzz/)" >&2
# A probe program tells whether clang can link libFuzzer at all.
probe=$(mktemp -d)
if ! command -v clang >/dev/null; then
    echo "test.sh: fuzzing skipped: clang not found (Debian package 'clang')" >&2
elif ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
    clang -fsanitize=fuzzer -x c - -o "$probe/probe" 2>/dev/null; then
    echo "test.sh: fuzzing skipped: clang cannot link libFuzzer (Debian package 'libclang-rt-dev')" >&2
else
    bash scripts/fuzz/run.sh 10 || status=1
fi
rm -rf "$probe"

if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED" >&2
else
    echo "test.sh: all passed" >&2
fi
exit "$status"
