#!/usr/bin/env bash
# bench.sh - speed and memory, measured side by side with PyTorch in one run
# (never asserted in tests: the machines are shared and noisy, so compare
# the ratios printed here, and their medians).
#
#   scripts/bench.sh [ops|vae|gan|transformer|diffusion|precision|scale|shared|all]
#
# Each part lives in scripts/bench-PART.sh. PyTorch comes from Debian's
# python3-torch and runs under /usr/bin/python3 with the same thread count.
# The run ends with the targets it measured, each held or MISSED
# (scripts/bench-summary.sh, which reads a saved run as well).
# `scale` (the ratios at larger images and contexts: 15 minutes on a
# loaded 2-core machine) is not part of `all`, nor is `shared` (two
# trainings at once against one alone, gen alone: no twin).
#
# GEN_BENCH_ISA=avx2 gives an AVX2 machine's ratios on an AVX-512 one:
# gen's AVX2 table (GEN_ISA=avx2) against twins whose oneDNN convolutions
# and ATen kernels are held to AVX2 (ONEDNN_MAX_CPU_ISA,
# ATEN_CPU_CAPABILITY; their BLAS, OpenBLAS, picks its own kernels).
set -euo pipefail
cd "$(dirname "$0")/.."
export GEN_BENCH_THREADS=${GEN_BENCH_THREADS:-2}
case "${GEN_BENCH_ISA:-}" in
    "") ;;
    avx2) export GEN_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ;;
    *)
        echo "bench: GEN_BENCH_ISA must be avx2 or unset, not '$GEN_BENCH_ISA'" >&2
        exit 2
        ;;
esac
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(all)
if [ "${parts[0]}" = all ]; then parts=(ops vae gan transformer diffusion precision); fi
[ -x build/gen ] || bash scripts/setup.sh
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "bench: PyTorch missing; install Debian's python3-torch (apt-get install python3-torch)" >&2
    exit 1
fi
# PyTorch's twins allocate every step's tensors afresh, and glibc's malloc
# hands freed blocks back to the kernel (those past its mmap threshold, the
# heap's top past its trim threshold), so each step faults them in again.
# On the Zen 5 VM, whose page faults are costly, that doubled the twins'
# steps (2026-12-05, medians: VAE 14.1 -> 7.1 ms, GAN 302 -> 147 ms,
# diffusion 648 -> 297 ms; the Transformer 675 -> 641 ms). So the bench runs
# with malloc told to keep what is freed, as PyTorch users get with jemalloc
# or tcmalloc: the twins at their best. gen, whose steps reuse one arena,
# measured the same either way.
keep=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}$keep"
echo "GLIBC_TUNABLES=$GLIBC_TUNABLES"
# the machine and the kernels it got: ratios move with both
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'); $(build/gen --version | tail -1)"
[ -z "${GEN_BENCH_ISA:-}" ] ||
    echo "GEN_BENCH_ISA=$GEN_BENCH_ISA: GEN_ISA=$GEN_ISA, twins with" \
        "ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY"
build/gen --version | grep '^idle threads'
for p in "${parts[@]}"; do
    if [ ! -f "scripts/bench-$p.sh" ]; then
        echo "bench: unknown part '$p' (ops, vae, gan, transformer, diffusion, precision, scale," \
            "shared, all)" >&2
        exit 2
    fi
done
log=$(mktemp)
trap 'rm -f "$log" "$log.sum"' EXIT
for p in "${parts[@]}"; do
    echo "== bench $p"
    bash "scripts/bench-$p.sh"
done | tee "$log"
# the targets this run measured, each held or missed (none for `shared`)
rc=0
bash scripts/bench-summary.sh "$log" >"$log.sum" || rc=$?
[ "$rc" = 2 ] || cat "$log.sum"
