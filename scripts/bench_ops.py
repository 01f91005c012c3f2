#!/usr/bin/python3
"""bench_ops.py - the PyTorch side of `scripts/bench.sh ops`.

Times forward + backward (autograd) of the ops bench/bench_ops.c times in
gen, on the same shapes, and prints "op NAME<TAB>MS" lines, MS the median
of REPS steps after one warm-up. Gradients are dropped (set to None) before
every step, as gen's step arena allocates them afresh.

    /usr/bin/python3 scripts/bench_ops.py [--threads N] [--reps R]
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def attention(qkv, nh, causal):
    """The usual PyTorch 1.13 multi-head attention from a packed qkv (B, T, 3C)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, nh, C // nh).transpose(1, 2)
    k = k.view(B, T, nh, C // nh).transpose(1, 2)
    v = v.view(B, T, nh, C // nh).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // nh))
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    return (att @ v).transpose(1, 2).contiguous().view(B, T, C)


# name, input shapes, forward; the same list as op_cases in bench/bench_ops.c.
CASES = [
    ("add 64x64x32x32", [(64, 64, 32, 32)] * 2, lambda a, b: a + b),
    ("mul 64x64x32x32", [(64, 64, 32, 32)] * 2, lambda a, b: a * b),
    ("gelu 64x64x32x32", [(64, 64, 32, 32)], lambda a: F.gelu(a, approximate="tanh")),
    ("silu 64x64x32x32", [(64, 64, 32, 32)], F.silu),
    ("softmax 16384x128", [(16384, 128)], lambda a: F.softmax(a, dim=-1)),
    ("layernorm 4096x256", [(4096, 256), (256,), (256,)],
     lambda x, g, b: F.layer_norm(x, (256,), g, b, 1e-5)),
    ("groupnorm 64x64x14x14 G8", [(64, 64, 14, 14), (64,), (64,)],
     lambda x, g, b: F.group_norm(x, 8, g, b, 1e-5)),
    ("groupnorm_silu 64x64x14x14 G8", [(64, 64, 14, 14), (64,), (64,)],
     lambda x, g, b: F.silu(F.group_norm(x, 8, g, b, 1e-5))),
    ("conv3x3 64x32x28x28", [(64, 32, 28, 28), (32, 32, 3, 3), (32,)],
     lambda x, w, b: F.conv2d(x, w, b, 1, 1)),
    ("conv3x3 64x64x14x14", [(64, 64, 14, 14), (64, 64, 3, 3), (64,)],
     lambda x, w, b: F.conv2d(x, w, b, 1, 1)),
    ("conv3x3s2 32->32 28->14", [(64, 32, 28, 28), (32, 32, 3, 3), (32,)],
     lambda x, w, b: F.conv2d(x, w, b, 2, 1)),
    ("conv3x3s2 64->64 14->7", [(64, 64, 14, 14), (64, 64, 3, 3), (64,)],
     lambda x, w, b: F.conv2d(x, w, b, 2, 1)),
    ("convT4x4s2 128->64 7->14", [(64, 128, 7, 7), (128, 64, 4, 4), (64,)],
     lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1)),
    ("convT4x4s2 64->1 14->28", [(64, 64, 14, 14), (64, 1, 4, 4), (1,)],
     lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1)),
    ("conv4x4s2 1->64 28->14", [(64, 1, 28, 28), (64, 1, 4, 4), (64,)],
     lambda x, w, b: F.conv2d(x, w, b, 2, 1)),
    ("conv4x4s2 64->128 14->7", [(64, 64, 14, 14), (128, 64, 4, 4), (128,)],
     lambda x, w, b: F.conv2d(x, w, b, 2, 1)),
    ("linear 128x784->400", [(128, 784), (400, 784), (400,)], F.linear),
    ("attention B32 T128 C128 H4", [(32, 128, 384)], lambda qkv: attention(qkv, 4, True)),
    ("mlp 4096x128->512->128", [(4096, 128), (512, 128), (512,), (128, 512), (128,)],
     lambda x, w1, b1, w2, b2: F.linear(F.gelu(F.linear(x, w1, b1), approximate="tanh"), w2, b2)),
]


def time_case(shapes, fwd, reps):
    torch.manual_seed(0)
    ins = [(torch.rand(s) * (2.0 if i == 0 else 0.4) - (1.0 if i == 0 else 0.2)).requires_grad_()
           for i, s in enumerate(shapes)]
    with torch.no_grad():
        dout = torch.rand_like(fwd(*ins)) * 2 - 1
    times = []
    for r in range(reps + 1):
        for t in ins:
            t.grad = None
        t0 = time.perf_counter()
        fwd(*ins).backward(dout)
        if r:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("only", nargs="?", default="", help="time only the ops whose name has this")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    for name, shapes, fwd in CASES:
        if a.only not in name:
            continue
        print(f"op {name}\t{1e3 * time_case(shapes, fwd, a.reps):.4f}", flush=True)


if __name__ == "__main__":
    main()
