#!/usr/bin/env bash
# check-report.sh - `gen report` in a real browser: trains two small VAE
# runs on MNIST (a few seconds each, different learning-rate schedules),
# scores both with gen eval, writes the report of both and takes a
# screenshot of it with headless Chromium (Debian's `chromium`, installed
# if missing) into docs/report.png. Look at the screenshot: both loss
# curves and both runs' sample grids should be visible. Not a ctest (it
# needs a browser); tests/cli_report.sh checks the page's content.
# Usage: bash scripts/check-report.sh [PATH_TO_GEN]   (default: build/gen)
#        SHOT=FILE.png to write the screenshot elsewhere, KEEP=1 to keep the runs
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
gen=$(realpath "${1:-build/gen}")
shot=$(realpath -m "${SHOT:-docs/report.png}")
data=$root/data/mnist
[ -x "$gen" ] || { echo "check-report: $gen not built (bash scripts/setup.sh)" >&2; exit 1; }
[ -d "$data" ] || { echo "check-report: $data absent (bash scripts/fetch-data.sh mnist)" >&2; exit 1; }

if ! command -v chromium >/dev/null; then
    echo "check-report: installing chromium (Debian package)" >&2
    sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi

work=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
cd "$work" # short run names in the page: runs/NAME
common=(--data "$data" --steps 300 --log-every 15 --eval-every 60 --sample-every 60 --threads 1 --quiet)
"$gen" train vae "${common[@]}" --out runs/vae-lr1e-3 --lr 1e-3
"$gen" train vae "${common[@]}" --out runs/vae-cosine-3e-3 --lr 3e-3 --schedule cosine --warmup 30
for run in runs/vae-lr1e-3 runs/vae-cosine-3e-3; do
    "$gen" eval vae --ckpt "$run/checkpoint.safetensors" --iw 10 --threads 1 --quiet
done
"$gen" report runs/vae-lr1e-3 runs/vae-cosine-3e-3 --snapshots 5 -o report.html

# The page must not reach out: no http(s) reference, no script.
if grep -Eq 'https?://|<script' report.html; then
    echo "check-report: report.html refers to the network or has a script" >&2
    exit 1
fi
mkdir -p "$(dirname "$shot")"
rm -f "$shot"
timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --force-device-scale-factor=1 --window-size=1400,1400 \
    --screenshot="$shot" "file://$work/report.html" >/dev/null 2>"$work/chromium.log" || {
    echo "check-report: chromium failed:" >&2
    tail -5 "$work/chromium.log" >&2
    exit 1
}
[ -s "$shot" ] || { echo "check-report: no screenshot written" >&2; exit 1; }
echo "check-report: $work/report.html ($(du -k report.html | cut -f1) KiB) -> $shot; look at it:" \
     "both loss curves and both runs' sample grids should be visible" >&2
