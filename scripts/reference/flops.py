#!/usr/bin/python3
"""The arithmetic of one training step of a twin model, in GFLOP, so that a
step time can be read against the machine's FMA peak (bench_gemm --peak).

  /usr/bin/python3 scripts/reference/flops.py diffusion [--channels 1 --size 28 --base 32 --mults 1,2,2 --batch 64]
  /usr/bin/python3 scripts/reference/flops.py transformer [--vocab 256 --context 128 --width 128 --heads 4 --layers 4 --batch 32]

The forward pass is counted by torch.profiler (with_flops: the matrix
products and convolutions, two FLOPs a multiply-add, which is where all but
a few percent of the arithmetic is); a training step is three times that
(the forward product, the input gradient and the weight gradient are each
one product of the same size), less nothing: the first layer's input
gradient, which neither gen nor PyTorch computes, is under 1 % here. gen
runs the same shapes, so one count serves both. Prints one JSON object."""
import argparse
import json
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MATRIX_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::conv2d")


def forward_flops(model, *inputs):
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], with_flops=True) as p:
        model(*inputs)
    return sum(e.flops for e in p.key_averages() if e.key in MATRIX_OPS and e.flops)


def diffusion(a):
    import diffusion as twin
    mults = tuple(int(m) for m in a.mults.split(","))
    model = twin.UNet(C=a.channels, base=a.base, mults=mults)
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    t = torch.randint(0, 1000, (a.batch,))
    return forward_flops(model, x, t)


def transformer(a):
    import transformer as twin
    model = twin.GPT(a.vocab, a.context, a.width, a.heads, a.layers)
    idx = torch.randint(0, a.vocab, (a.batch, a.context))
    return forward_flops(model, idx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="family", required=True)
    d = sub.add_parser("diffusion")
    d.add_argument("--channels", type=int, default=1)
    d.add_argument("--size", type=int, default=28)
    d.add_argument("--base", type=int, default=32)
    d.add_argument("--mults", default="1,2,2")
    d.add_argument("--batch", type=int, default=64)
    t = sub.add_parser("transformer")
    t.add_argument("--vocab", type=int, default=256)
    t.add_argument("--context", type=int, default=128)
    t.add_argument("--width", type=int, default=128)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(1)
    fwd = (diffusion if a.family == "diffusion" else transformer)(a)
    print(json.dumps({"family": a.family, "forward_gflop": round(fwd / 1e9, 3),
                      "train_gflop": round(3 * fwd / 1e9, 3)}))


if __name__ == "__main__":
    main()
