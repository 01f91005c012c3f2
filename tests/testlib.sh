# testlib.sh - what the shell tests (tests/cli_*.sh) share, sourced by
# each: a scratch folder $TMP removed at exit, fail() that counts a failed
# check, expect() that checks a command's exit code and message, needs()
# that skips a test whose data is absent, and finish NAME, which prints
# the closing line ctest's log reads ("NAME: 1 passed, 0 failed") and
# exits 0, or 1 when a check failed.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# usage: expect CODE WHAT PATTERN -- command...: exit CODE and, unless CODE
# is 0, a stderr line matching PATTERN (stdout in $TMP/out, stderr in $TMP/err)
expect() {
    local code=$1 what=$2 pat=$3
    shift 4
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ "$rc" = "$code" ] || { fail "$what: exit $rc, want $code: $(cat "$TMP/err")"; return; }
    [ "$code" = 0 ] && return
    grep -q -- "$pat" "$TMP/err" || fail "$what: message lacks '$pat': $(cat "$TMP/err")"
}
# usage: needs NAME PATH...: each PATH must exist, else NAME says which is
# absent and skips (exit 77, ctest's skip code)
needs() {
    local name=$1 p
    shift
    for p in "$@"; do
        [ -e "$p" ] && continue
        echo "$name: $p absent (scripts/fetch-data.sh): skipped"
        exit 77
    done
}
finish() {
    if [ "$failures" = 0 ]; then
        echo "$1: 1 passed, 0 failed"
        exit 0
    fi
    echo "$1: 0 passed, 1 failed ($failures checks)"
    exit 1
}
