# testlib.sh - what the shell tests (tests/cli_*.sh) share, sourced by
# each: a scratch folder $TMP removed at exit, fail() that counts a failed
# check, and finish NAME, which prints the closing line ctest's log reads
# ("NAME: 1 passed, 0 failed") and exits 0, or 1 when a check failed.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
finish() {
    if [ "$failures" = 0 ]; then
        echo "$1: 1 passed, 0 failed"
        exit 0
    fi
    echo "$1: 0 passed, 1 failed ($failures checks)"
    exit 1
}
