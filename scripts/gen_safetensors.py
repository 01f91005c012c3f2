#!/usr/bin/env python3
"""gen_safetensors.py - reads safetensors files (`gen export` weights, gen
checkpoints, any other) with the standard library alone: no `safetensors`
package needed.

    import gen_safetensors
    tensors, config = gen_safetensors.load("weights.safetensors")
    model.load_state_dict(tensors, strict=True)         # with torch

load(path, backend=None) returns (tensors, config):
  tensors  {name: tensor} in the file's order. The type depends on what is
           importable (or on backend="torch" | "numpy" | "list"): torch
           tensors when torch is importable (F32 -> float32, F16 -> float16,
           BF16 -> bfloat16, I64 -> int64, as stored), else numpy arrays
           (BF16, which numpy lacks, widened to float32), else flat Python
           lists of floats and ints (row-major) with their shapes in
           config["__shapes__"].
  config   the __metadata__ strings, with the values that hold JSON
           ("config", "data_shape", ...) decoded into dicts and lists; a
           text model's "vocab" is also decoded into
           config["vocab_symbols"], the text of each token id.

Dtypes read: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL. Every
length and offset is checked against the file (a fault raises ValueError
naming the file).

    python3 scripts/gen_safetensors.py FILE      # names, dtypes, shapes, metadata
"""
import json
import math
import struct
import sys

# dtype -> (struct code, bytes)
_DTYPES = {
    "F64": ("d", 8), "F32": ("f", 4), "F16": ("e", 2), "BF16": ("H", 2),
    "I64": ("q", 8), "I32": ("i", 4), "I16": ("h", 2), "I8": ("b", 1),
    "U8": ("B", 1), "BOOL": ("?", 1),
}
_TORCH = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
          "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
          "BOOL": "bool"}
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_header(path):
    """(header dict without __metadata__, metadata dict, data bytes) of a
    file, checked: the header length fits, every tensor's offsets lie in
    the data area and match its shape and dtype, and the tensors tile the
    data area."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n < 2 or n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} does not fit the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    data = memoryview(blob)[8 + n:]
    spans = []
    for name, t in header.items():
        dtype, shape, offs = (t.get(k) if isinstance(t, dict) else None
                              for k in ("dtype", "shape", "data_offsets"))
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype!r}; "
                             f"this reader knows {', '.join(_DTYPES)}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offs)
                or not offs[0] <= offs[1] <= len(data)):
            raise ValueError(f"{path}: tensor {name!r}: bad data_offsets {offs!r}")
        if offs[1] - offs[0] != math.prod(shape) * _DTYPES[dtype][1]:
            raise ValueError(f"{path}: tensor {name!r}: {offs[1] - offs[0]} bytes for shape "
                             f"{shape} of {dtype}")
        spans.append((offs[0], offs[1], name))
    cursor = 0
    for begin, end, name in sorted(spans):
        if begin != cursor:
            raise ValueError(f"{path}: tensor {name!r} starts at byte {begin}, not {cursor} "
                             "(a gap or an overlap)")
        cursor = end
    if cursor != len(data):
        raise ValueError(f"{path}: {len(data) - cursor} bytes at the end belong to no tensor")
    return header, meta, data


def _bf16_to_float(h):
    return struct.unpack("<f", struct.pack("<I", h << 16))[0]


def _as_list(raw, dtype):
    code, size = _DTYPES[dtype]
    values = list(struct.unpack(f"<{len(raw) // size}{code}", raw))
    return [_bf16_to_float(v) for v in values] if dtype == "BF16" else values


def _backend(backend):
    if backend is None:
        for name in ("torch", "numpy"):
            try:
                __import__(name)
                return name
            except ImportError:
                pass
        return "list"
    if backend not in ("torch", "numpy", "list"):
        raise ValueError(f"backend {backend!r}: one of torch, numpy, list")
    return backend


def _tensor(raw, dtype, shape, backend):
    if backend == "torch":
        import torch
        t = getattr(torch, _TORCH[dtype])
        if not raw:
            return torch.zeros(shape, dtype=t)
        return torch.frombuffer(bytearray(raw), dtype=t).reshape(shape)
    if backend == "numpy":
        import numpy as np
        if dtype == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=_NUMPY[dtype]).copy()
        return a.reshape(shape)
    return _as_list(raw, dtype)


def vocab_symbols(text):
    """The text of each token id of a stored vocabulary ("vocab" metadata):
    bytes as hex ("0a2061..."; each byte a token, decoded as Latin-1 so
    every byte is one character), or "utf8:" and the hex of the tokens'
    UTF-8 (each whole character a token; a byte that starts no valid
    sequence a token of its own, given as that byte decoded as Latin-1)."""
    if text.startswith("utf8:"):
        raw, out, i = bytes.fromhex(text[5:]), [], 0
        while i < len(raw):
            for n in (1, 2, 3, 4):
                try:
                    out.append(raw[i:i + n].decode("utf-8"))
                    i += n
                    break
                except UnicodeDecodeError:
                    continue
            else:
                out.append(raw[i:i + 1].decode("latin-1"))
                i += 1
        return out
    return [chr(b) for b in bytes.fromhex(text)]


def load(path, backend=None):
    """(tensors, config) of a safetensors file; see the module's help."""
    backend = _backend(backend)
    header, meta, data = read_header(path)
    tensors, shapes = {}, {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        tensors[name] = _tensor(bytes(data[begin:end]), t["dtype"], t["shape"], backend)
        shapes[name] = t["shape"]
    config = {}
    for key, value in meta.items():
        try:
            config[key] = json.loads(value) if value[:1] in ("{", "[") else value
        except json.JSONDecodeError:
            config[key] = value
    if isinstance(config.get("vocab"), str):
        try:
            config["vocab_symbols"] = vocab_symbols(config["vocab"])
        except (ValueError, UnicodeDecodeError):
            pass
    if backend == "list":
        config["__shapes__"] = shapes
    return tensors, config


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    try:
        header, meta, _ = read_header(sys.argv[1])
    except (OSError, ValueError) as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    for key, value in meta.items():
        print(f"meta {key} = {value if len(value) <= 120 else value[:120] + '...'}")
    for name, t in header.items():
        print(f"{name:40s} {t['dtype']:5s} {t['shape']}")


if __name__ == "__main__":
    main()
