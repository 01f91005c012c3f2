"""Shared helpers of the PyTorch twins: IDX loading (raw or gzip) and timing.

Run the twins with Debian's system interpreter, /usr/bin/python3, which
has python3-torch. They read the same files gen reads, with no extra
packages."""
import gzip
import os
import struct
import time

import numpy as np
import torch


def read_idx(path):
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not a ubyte IDX file")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    return arr.reshape(dims)


def find_idx(d, split, kind):
    """split: 'train' or 't10k'; kind: 'images' or 'labels'."""
    rank = 3 if kind == "images" else 1
    for sep in ("-", "."):
        base = f"{split}-{kind}{sep}idx{rank}-ubyte"
        for name in (base, base + ".gz"):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return p
    raise SystemExit(f"{d}: no {split} {kind} IDX file")


def load_mnist(d, split):
    x = read_idx(find_idx(d, split, "images"))
    y = read_idx(find_idx(d, split, "labels"))
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def setup_threads(n):
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.dt = time.perf_counter() - self.t
