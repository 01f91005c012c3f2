#!/usr/bin/env bash
# test-export.sh - `gen export` against the PyTorch twins (not part of
# ctest: it needs Python): every family trains a tiny model, is exported in
# F32, F16 and BF16, loads into its twin with load_state_dict(strict=True),
# and the twin's outputs equal gen's on fixed inputs (scripts/
# test-export.py says which). Takes a minute or two on 2 cores.
#
#   scripts/test-export.sh [--keep DIR] [--only CASE...]     GEN=build/gen
#
# Needs python3-torch and python3-pil (/usr/bin/python3) and data/mnist
# (scripts/fetch-data.sh). Exit 0 all passed, 1 a case failed, 77 skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${GEN:-./build/gen}
py=/usr/bin/python3
[ -x "$gen" ] || { echo "test-export: $gen not built (cmake --build build, or GEN=...)" >&2; exit 1; }
if ! "$py" -c 'import torch, numpy, PIL' 2>/dev/null; then
    echo "test-export: needs python3-torch, python3-numpy and python3-pil (apt-get install -y" \
         "python3-torch python3-pil): skipped" >&2
    exit 77
fi
if [ ! -f data/mnist/t10k-labels-idx1-ubyte ] && [ ! -f data/mnist/t10k-labels-idx1-ubyte.gz ]; then
    echo "test-export: data/mnist absent (scripts/fetch-data.sh): skipped" >&2
    exit 77
fi
exec "$py" scripts/test-export.py "$gen" "$@"
