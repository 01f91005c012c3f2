#!/usr/bin/env bash
# setup.sh - installs the Debian packages gen needs (only those missing) and
# builds it in build/ (Release). Safe to run again: it does only what is left.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake gcc pkg-config libopenblas-dev libopenblas-openmp-dev libcmocka-dev libstb-dev libcjson-dev zlib1g-dev
    libcairo2-dev fonts-dejavu-core # plots: cairo draws the text in DejaVu Sans
    libopenmpi-dev openmpi-bin # data-parallel training (mpirun); gen builds without them too
    clang libclang-rt-dev) # clang and its libFuzzer runtime: scripts/fuzz/run.sh
# Wanted, not needed: the default data set, which gen then finds from any
# directory (scripts/fetch-data.sh fetches it otherwise).
optional=(dataset-fashion-mnist)
missing=()
for p in "${packages[@]}" "${optional[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    needed=()
    for p in "${missing[@]}"; do [[ " ${optional[*]} " == *" $p "* ]] || needed+=("$p"); done
    [ ${#needed[@]} -eq 0 ] ||
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${needed[@]}"
    for p in "${optional[@]}"; do
        [[ " ${missing[*]} " == *" $p "* ]] || continue
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$p" ||
            echo "setup: $p not installed (not needed; scripts/fetch-data.sh fetches data sets)" >&2
    done
fi

jobs=${GEN_JOBS:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
