#!/usr/bin/env python3
"""read_safetensors.py - reads a safetensors file (e.g. a gen checkpoint)
using only the format's specification: struct + json + array, no
safetensors library. Prints the metadata and every tensor's name, shape and
summary, and checks what gen's reader checks (header length, F32 dtype,
offsets tiling the data area, finite values). If torch is importable, also
loads every tensor into torch and compares.

    scripts/read_safetensors.py FILE [--values N] [--quiet]

Exit status: 0 valid, 1 invalid (with a message naming the fault).
"""
import argparse
import array
import json
import math
import struct
import sys


def fail(path, msg):
    print(f"{path}: {msg}", file=sys.stderr)
    sys.exit(1)


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(path, f"{len(blob)} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n < 2 or n > len(blob) - 8:
        fail(path, f"header length {n} does not fit the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(path, f"header is not valid JSON: {e}")
    if not isinstance(header, dict):
        fail(path, "header is not a JSON object")
    data = blob[8 + n :]
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        fail(path, "__metadata__ must map strings to strings")
    tensors = []
    for name, t in header.items():
        if not isinstance(t, dict):
            fail(path, f"entry {name!r} is not an object")
        if t.get("dtype") != "F32":
            fail(path, f"tensor {name!r} has dtype {t.get('dtype')}; expected F32")
        shape, offs = t.get("shape"), t.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            fail(path, f"tensor {name!r}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offs) or offs[0] > offs[1]
                or offs[1] > len(data)):
            fail(path, f"tensor {name!r}: bad data_offsets {offs!r}")
        numel = math.prod(shape)
        if offs[1] - offs[0] != 4 * numel:
            fail(path, f"tensor {name!r}: offsets span {offs[1] - offs[0]} bytes, shape needs {4 * numel}")
        tensors.append((offs[0], offs[1], name, shape))
    tensors.sort()
    cursor = 0
    for begin, end, name, _ in tensors:
        if begin != cursor:
            fail(path, f"tensor {name!r} starts at {begin}, expected {cursor} (gap or overlap)")
        cursor = end
    if cursor != len(data):
        fail(path, f"{len(data) - cursor} bytes at the end belong to no tensor")
    out = {}
    for begin, end, name, shape in tensors:
        values = array.array("f")
        values.frombytes(data[begin:end])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = (shape, values)
    return meta, out, data, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--values", type=int, default=0, help="print the first N values of each tensor")
    ap.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = ap.parse_args()
    meta, tensors, data, spans = read(args.file)
    bad = [name for name, (_, v) in tensors.items() if any(not math.isfinite(x) for x in v)]
    if not args.quiet:
        for k, v in meta.items():
            shown = v if len(v) <= 200 else v[:200] + "..."
            print(f"meta {k} = {shown}")
        for name, (shape, v) in tensors.items():
            line = f"{name:40s} {str(shape):20s}"
            if len(v):
                line += f" min {min(v):+.4g} max {max(v):+.4g} mean {sum(v) / len(v):+.4g}"
            if args.values:
                line += " [" + ", ".join(f"{x:.6g}" for x in v[: args.values]) + "]"
            print(line)
    total = sum(len(v) for _, v in tensors.values())
    print(f"{args.file}: ok, {len(tensors)} tensors, {total} floats, {len(meta)} metadata keys")
    if bad:
        fail(args.file, f"non-finite values in {', '.join(bad[:5])}")
    try:
        import torch
    except ImportError:
        return
    for name, (shape, v) in tensors.items():
        t = torch.frombuffer(bytearray(v.tobytes()), dtype=torch.float32).reshape(shape) \
            if len(v) else torch.zeros(shape, dtype=torch.float32)
        if list(t.shape) != list(shape) or (len(v) and t.flatten()[0].item() != v[0]):
            fail(args.file, f"torch disagrees on tensor {name!r}")
    print(f"{args.file}: torch {torch.__version__} loaded all {len(tensors)} tensors")


if __name__ == "__main__":
    main()
