# cli_report.sh - `gen report`: two tiny VAE runs (one scored by gen eval)
# make one self-contained HTML page (no http(s) reference, inline SVG
# plots, embedded PNG grids, both runs named, the eval table); bad input
# (missing directory, a file, a directory that is no run, a bad metrics
# line, a corrupt checkpoint, a snapshot that is no PNG) gets one line
# naming the file and exit 1, usage errors exit 2, and nothing is written.
# Usage: bash tests/cli_report.sh PATH_TO_GEN   (needs data/mnist; skips, exit 77, without)
set -u
GEN=${1:?usage: cli_report.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
DATA=$SRC/data/mnist
. "$(dirname "$0")/testlib.sh"

# bad_input WHAT PATTERN ARGS...: exit 1, one stderr line "gen: ..." matching PATTERN, no page
bad_input() {
    local what=$1 pat=$2
    shift 2
    rm -f "$TMP/bad.html"
    expect 1 "$what" "$pat" -- "$GEN" report "$@" -o "$TMP/bad.html"
    [ "$(wc -l <"$TMP/err")" = 1 ] || fail "$what: $(wc -l <"$TMP/err") lines on stderr, want 1"
    grep -q '^gen: ' "$TMP/err" || fail "$what: message is not 'gen: ...': $(cat "$TMP/err")"
    [ ! -e "$TMP/bad.html" ] || fail "$what: a page was written"
}

# Usage errors need no data.
expect 2 "no run directory" "missing RUN_DIR" -- "$GEN" report
expect 2 "unknown option" "unknown option" -- "$GEN" report "$TMP" --bogus
expect 2 "not .html" "ending in .html" -- "$GEN" report "$TMP" -o "$TMP/page.png"
expect 2 "-o without a value" "missing value" -- "$GEN" report "$TMP" -o
expect 2 "bad --snapshots" "snapshots" -- "$GEN" report "$TMP" --snapshots 0
expect 2 "nine runs" "more than 8" -- "$GEN" report a b c d e f g h i
expect 0 "--help" "" -- "$GEN" report --help
grep -q "Usage: gen report" "$TMP/out" || fail "--help: no usage line"
"$GEN" --help | grep -q "report" || fail "gen --help does not list report"

bad_input "missing directory" "$TMP/nowhere: no such directory" "$TMP/nowhere"
touch "$TMP/afile"
bad_input "a file" "$TMP/afile: not a directory" "$TMP/afile"
mkdir "$TMP/empty"
bad_input "not a run" "$TMP/empty: not a run directory (no metrics.jsonl)" "$TMP/empty"

if [ ! -d "$DATA" ]; then
    [ "$failures" = 0 ] || finish cli_report # a failed check is never hidden by the skip
    echo "cli_report: $DATA absent (scripts/fetch-data.sh mnist): report checks skipped"
    exit 77
fi

# Two tiny runs: 40 steps each, snapshots every 20, different learning rates.
tiny=(--data "$DATA" --steps 40 --log-every 10 --eval-every 20 --sample-every 20 --hidden 32
      --latent 4 --batch 32 --threads 1 --quiet)
"$GEN" train vae "${tiny[@]}" --out "$TMP/run-slow" --lr 1e-4 || fail "training run-slow failed"
"$GEN" train vae "${tiny[@]}" --out "$TMP/run-fast" --lr 3e-3 || fail "training run-fast failed"
"$GEN" eval vae --ckpt "$TMP/run-fast/checkpoint.safetensors" --iw 2 --threads 1 --quiet ||
    fail "gen eval failed"
grep -q '"command":"eval"' "$TMP/run-fast/metrics.jsonl" || fail "gen eval did not log to the run"

expect 0 "report of two runs" "" -- "$GEN" report "$TMP/run-slow" "$TMP/run-fast" -o "$TMP/report.html"
page=$TMP/report.html
[ -s "$page" ] || fail "no report written"
grep -Eq 'https?://' "$page" && fail "the page refers to the network: $(grep -Eo 'https?://[^"]*' "$page" | head -3)"
grep -qi '<script' "$page" && fail "the page has a script"
grep -q '<svg' "$page" || fail "no inline SVG plot"
grep -q 'data:image/png;base64,' "$page" || fail "no embedded PNG"
[ "$(grep -c 'data:image/png;base64,' "$page")" = 4 ] ||
    fail "$(grep -c 'data:image/png;base64,' "$page") embedded grids, want 4 (2 snapshots x 2 runs)"
grep -q "run-slow" "$page" && grep -q "run-fast" "$page" || fail "the page does not name both runs"
[ "$(grep -c '<svg' "$page")" = "$(grep -c '</svg>' "$page")" ] || fail "unbalanced <svg> elements"
grep -q '>loss</text>' "$page" || fail "no plot titled loss"
grep -q 'Evaluation (gen eval)' "$page" && grep -q '<td>neg_iw_bound</td>' "$page" ||
    fail "no gen eval table"
grep -q '<td>lr</td>' "$page" || fail "no configuration table"
grep -q '</html>' "$page" || fail "the page is not complete"
# The embedded grid is the snapshot itself.
first=$(grep -o 'data:image/png;base64,[A-Za-z0-9+/=]*' "$page" | head -1 | cut -d, -f2)
printf '%s' "$first" | base64 -d >"$TMP/grid.png" 2>/dev/null || fail "embedded PNG is not base64"
cmp -s "$TMP/grid.png" "$TMP/run-slow/samples-00000020.png" || fail "embedded grid differs from the snapshot"
expect 0 "--snapshots 1" "" -- "$GEN" report "$TMP/run-slow" --snapshots 1 -o "$TMP/one.html" -q
[ "$(grep -c 'data:image/png;base64,' "$TMP/one.html")" = 1 ] || fail "--snapshots 1: not one grid"
grep -q 'step 40' "$TMP/one.html" || fail "--snapshots 1: not the last snapshot"
[ ! -s "$TMP/err" ] || fail "-q: wrote to stderr: $(cat "$TMP/err")"

# Bad runs: one line naming the file, exit 1, no page.
cp -r "$TMP/run-slow" "$TMP/badline"
sed -i '2s/.*/{"step": 20, "loss": oops/' "$TMP/badline/metrics.jsonl"
bad_input "a bad metrics line" "badline/metrics.jsonl:2: not a JSON object" "$TMP/run-fast" "$TMP/badline"
cp -r "$TMP/run-slow" "$TMP/torn"
printf '{"step": 50, "lo' >>"$TMP/torn/metrics.jsonl" # a write under way: skipped
expect 0 "a torn last line" "" -- "$GEN" report "$TMP/torn" -o "$TMP/torn.html" -q
cp -r "$TMP/run-slow" "$TMP/badckpt"
head -c 100 "$TMP/run-slow/checkpoint.safetensors" >"$TMP/badckpt/checkpoint.safetensors"
bad_input "a corrupt checkpoint" "badckpt/checkpoint.safetensors" "$TMP/badckpt"
cp -r "$TMP/run-slow" "$TMP/badgrid"
echo "not a png" >"$TMP/badgrid/samples-00000020.png"
bad_input "a snapshot that is no PNG" "badgrid/samples-00000020.png: not a PNG" "$TMP/badgrid"
binary=$TMP/binary
mkdir "$binary" && head -c 3000 "$TMP/run-slow/checkpoint.safetensors" >"$binary/metrics.jsonl"
bad_input "a binary metrics file" "binary/metrics.jsonl:1" "$binary"

finish cli_report
