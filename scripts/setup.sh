#!/usr/bin/env bash
# setup.sh - installs the Debian packages gen needs (only those missing) and
# builds it in build/ (Release). Safe to run again: it does only what is left.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake gcc pkg-config libopenblas-dev libopenblas-openmp-dev libcmocka-dev libstb-dev libcjson-dev zlib1g-dev
    clang libclang-rt-dev) # clang and its libFuzzer runtime: scripts/fuzz/run.sh
missing=()
for p in "${packages[@]}"; do
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
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=${GEN_JOBS:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
