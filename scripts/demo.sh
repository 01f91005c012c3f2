#!/usr/bin/env bash
# The README's first command: set up, fetch the data set it trains on,
# train the reference VAE briefly on it (Fashion-MNIST, the default), then
# sample a grid.
#   bash scripts/demo.sh            # EPOCHS=3 by default; EPOCHS=10 for the full run
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/fetch-data.sh fashion-mnist # only the set it trains on

epochs=${EPOCHS:-3}
out=runs/demo-vae
echo "== gen train vae --epochs $epochs --out $out --force"
./build/gen train vae --epochs "$epochs" --out "$out" --force # a demo starts afresh each time
echo "== gen sample vae -n 64 -o $out/grid.png"
./build/gen sample vae --ckpt "$out/checkpoint.safetensors" -n 64 -o "$out/grid.png"
echo "Samples written to $out/grid.png (training log: $out/metrics.jsonl)"
