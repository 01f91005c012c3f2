#!/usr/bin/env bash
# bench.sh - speed and memory, measured side by side with PyTorch in one run
# (never asserted in tests: the machines are shared and noisy, so compare
# the ratios printed here, and their medians).
#
#   scripts/bench.sh [ops|vae|gan|transformer|diffusion|precision|scale|shared|all]
#
# Each part lives in scripts/bench-PART.sh. PyTorch comes from Debian's
# python3-torch and runs under /usr/bin/python3 with the same thread count.
# `scale` (the ratios at larger images and contexts: 15 minutes on a
# loaded 2-core machine) is not part of `all`, nor is `shared` (two
# trainings at once against one alone, gen alone: no twin).
set -euo pipefail
cd "$(dirname "$0")/.."
export GEN_BENCH_THREADS=${GEN_BENCH_THREADS:-2}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(all)
if [ "${parts[0]}" = all ]; then parts=(ops vae gan transformer diffusion precision); fi
[ -x build/gen ] || bash scripts/setup.sh
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "bench: PyTorch missing; install Debian's python3-torch (apt-get install python3-torch)" >&2
    exit 1
fi
# the machine and the kernels it got: ratios move with both
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'); $(build/gen --version | tail -1)"
build/gen --version | grep '^idle threads'
for p in "${parts[@]}"; do
    f=scripts/bench-$p.sh
    if [ ! -f "$f" ]; then
        echo "bench: unknown part '$p' (ops, vae, gan, transformer, diffusion, precision, scale," \
            "shared, all)" >&2
        exit 2
    fi
    echo "== bench $p"
    bash "$f"
done
