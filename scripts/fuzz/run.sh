#!/usr/bin/env bash
# run.sh - builds the loader fuzzer with clang (libFuzzer + ASan + UBSan)
# and runs it for SECONDS (default 60) on a corpus seeded with valid files.
#   scripts/fuzz/run.sh [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECS="${1:-60}"
OUT="$ROOT/build-fuzz"
mkdir -p "$OUT/corpus"
command -v clang >/dev/null || { echo "run.sh: clang not found (Debian package 'clang')" >&2; exit 1; }
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$ROOT/include" -I"$ROOT/src" $(pkg-config --cflags stb libcjson) \
  "$ROOT/scripts/fuzz/fuzz_loaders.c" "$ROOT"/src/data/*.c "$ROOT"/src/io/fs.c \
  "$ROOT"/src/io/png.c "$ROOT"/src/io/safetensors.c "$ROOT"/src/io/checkpoint.c \
  "$ROOT"/src/core/error.c "$ROOT"/src/core/alloc.c "$ROOT"/src/core/rng.c \
  $(pkg-config --libs stb libcjson zlib) -lm -o "$OUT/fuzz_loaders"
# Seeds: a tiny safetensors file, an IDX file, a PNG.
python3 - "$OUT/corpus" <<'PY'
import json, struct, sys, zlib
d = sys.argv[1]
h = json.dumps({"__metadata__": {"family": "vae", "config": "{}"},
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
h += b" " * (-len(h) % 8)
open(f"{d}/st", "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<2f", 1.0, 2.0))
open(f"{d}/idx", "wb").write(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6)))
def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(b"\x00\x10\x20\x00\x30\x40")) + chunk(b"IEND", b"")
open(f"{d}/png", "wb").write(png)
PY
"$OUT/fuzz_loaders" -max_total_time="$SECS" -max_len=4096 -rss_limit_mb=4096 "$OUT/corpus"
