#!/usr/bin/env bash
# bench-mpi.sh - data-parallel training on this machine, per family: one
# process with 2 threads against `mpirun -np 2` with 1 thread each, over
# shared memory (Open MPI's default) and over TCP loopback (--mca btl
# tcp,self); ROUNDS rounds interleaved, medians of the median step time
# and of rank 0's share of step time spent in (and waiting at) the
# allreduces. Then, on paper, each family's bytes allreduced per step and
# the scaling efficiency a ring allreduce predicts for N = 2..64 ranks at
# 10 and 100 Gbit/s against the measured one-process step time (weak
# scaling: every rank takes a batch of the family's default size), and
# the per-rank batch that keeps the efficiency above 80 % at N = 64.
#
#   scripts/bench-mpi.sh [FAMILY...]      ROUNDS=3 STEPS=200 GEN=build/gen
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${GEN:-build/gen}
rounds=${ROUNDS:-3}
steps=${STEPS:-200}
families=("$@")
[ ${#families[@]} -gt 0 ] || families=(vae gan transformer diffusion)
command -v mpirun >/dev/null || { echo "bench-mpi: no mpirun (Debian package openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

data_of() { case $1 in transformer) echo data/moby-dick.txt ;; *) echo data/fashion-mnist ;; esac; }
# field NAME FILE: the value of NAME in the last metrics line that has it
field() { { grep "\"$1\"" "$2" || true; } | tail -1 | sed "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# run KIND FAMILY: one timed run; prints "step_ms comm_share"
run() {
    local kind=$1 fam=$2 out=$tmp/run
    rm -rf "$out"
    local args=(train "$fam" --data "$(data_of "$fam")" --steps "$steps" --out "$out" --quiet
        --ckpt-every 0 --eval-every 0 --sample-every 0 --log-every 1000000)
    case $kind in
    one) "$gen" "${args[@]}" --threads 2 ;;
    shm) mpirun -np 2 "$gen" "${args[@]}" --threads 1 ;;
    tcp) mpirun -np 2 --mca btl tcp,self "$gen" "${args[@]}" --threads 1 ;;
    esac
    local share
    share=$(field comm_share "$out/metrics.jsonl")
    echo "$(field median_step_ms "$out/metrics.jsonl") ${share:-0}"
}

printf '%-12s %10s %10s %10s %11s %11s %9s\n' family "1x2 ms" "2x1 shm" "2x1 tcp" "shm comm %" "tcp comm %" "MB/step"
for fam in "${families[@]}"; do
    declare -a one=() shm=() tcp=() cs=() ct=()
    for _ in $(seq "$rounds"); do
        read -r a _ < <(run one "$fam")
        read -r b sb < <(run shm "$fam")
        read -r c sc < <(run tcp "$fam")
        one+=("$a") shm+=("$b") tcp+=("$c") cs+=("$sb") ct+=("$sc")
    done
    "$gen" info "$tmp/run/checkpoint.safetensors" >"$tmp/info"
    params=$(sed -n 's/^parameters: *\([0-9]*\).*/\1/p' "$tmp/info")
    batch=$(sed -n 's/^  batch  *\([0-9]*\)$/\1/p' "$tmp/info")
    m1=$(printf '%s\n' "${one[@]}" | median)
    printf '%-12s %10.2f %10.2f %10.2f %11.1f %11.1f %9.2f\n' "$fam" "$m1" \
        "$(printf '%s\n' "${shm[@]}" | median)" "$(printf '%s\n' "${tcp[@]}" | median)" \
        "$(printf '%s\n' "${cs[@]}" | median | awk '{ print 100 * $1 }')" \
        "$(printf '%s\n' "${ct[@]}" | median | awk '{ print 100 * $1 }')" \
        "$(awk -v p="$params" 'BEGIN { print 4 * p / 1e6 }')"
    echo "$fam $m1 $params $batch" >>"$tmp/paper"
done

echo
echo "predicted weak-scaling efficiency, ring allreduce (2 (N-1)/N bytes / bandwidth, no overlap),"
echo "against the one-process step above; last column: per-rank batch for >= 80 % at N = 64"
awk '
{ fam[NR] = $1; ms[NR] = $2; bytes[NR] = 4 * $3; b[NR] = $4 }
END {
    n = split("2 4 8 16 32 64", N, " ")
    split("10 100", G, " ")
    for (g = 1; g <= 2; g++) {
        printf "\n%s Gbit/s\n%-12s", G[g], "family"
        for (k = 1; k <= n; k++) printf " %6s", "N=" N[k]
        printf " %12s\n", "batch @80%"
        for (i = 1; i <= NR; i++) {
            printf "%-12s", fam[i]
            for (k = 1; k <= n; k++) {
                c = 2 * (N[k] - 1) / N[k] * bytes[i] * 8 / (G[g] * 1e9) * 1e3 # ms
                printf " %5.0f%%", 100 * ms[i] / (ms[i] + c)
            }
            c = 2 * 63 / 64 * bytes[i] * 8 / (G[g] * 1e9) * 1e3
            need = 4 * c / ms[i] * b[i] # compute grows with the batch
            printf " %12d\n", need < b[i] ? b[i] : int(need + 0.999)
        }
    }
}' "$tmp/paper"
