# cli_threads.sh - a run's result does not depend on its thread count:
# tiny runs of each family at --threads 1, 2 and 3 write the same
# checkpoint, byte for byte (every product splits its work so that each
# output is the same sequence of operations on any thread: gen's own
# GEMMs, convolutions and kernels). A CPU with neither AVX2 nor AVX-512
# takes its matrix products from OpenBLAS, whose sums depend on its
# threads: there the test skips. ctest runs it again as cli_threads.avx2
# with GEN_ISA=avx2, the AVX2 table on an AVX-512 machine (skipped where
# the build or CPU has no AVX2 table).
# Usage: bash tests/cli_threads.sh PATH_TO_GEN   (needs data/mnist and
# data/moby-dick.txt; skips, exit 77, without them)
set -u
GEN=${1:?usage: cli_threads.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
. "$(dirname "$0")/testlib.sh"
needs cli_threads "$SRC/data/mnist/t10k-labels-idx1-ubyte" "$SRC/data/moby-dick.txt"
if "$GEN" --version | grep -q 'kernels: scalar'; then
    echo "cli_threads: scalar kernels (matrix products by OpenBLAS): skipped"
    exit 77
fi
if [ -n "${GEN_ISA:-}" ] && ! "$GEN" --version 2>/dev/null | grep -q "kernels: $GEN_ISA;"; then
    echo "cli_threads: GEN_ISA=$GEN_ISA: no such table in this build or CPU: skipped"
    exit 77
fi
head -c 60000 "$SRC/data/moby-dick.txt" >"$TMP/text.txt"
common=(--steps 3 --quiet --ckpt-every 0 --sample-every 0)
for family in vae gan transformer diffusion; do
    case $family in
    transformer) args=(--data "$TMP/text.txt" --batch 4) ;;
    diffusion) args=(--data "$SRC/data/mnist" --batch 8 --base 8 --mults 1,1,1 --timesteps 20
                     --sample-steps 2) ;;
    *) args=(--data "$SRC/data/mnist" --batch 16) ;;
    esac
    for t in 1 2 3; do
        expect 0 "$family at $t threads" "" -- "$GEN" train "$family" "${args[@]}" "${common[@]}" \
            --threads "$t" --out "$TMP/$family-$t"
    done
    for t in 2 3; do
        cmp -s "$TMP/$family-1/checkpoint.safetensors" "$TMP/$family-$t/checkpoint.safetensors" ||
            fail "$family: the checkpoint at $t threads differs from the one at 1"
    done
done
finish cli_threads
