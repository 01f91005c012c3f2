#!/usr/bin/python3
"""make-fixtures-transformer.py - PyTorch reference dumps for gen's GPT.

Writes two safetensors files (by hand, struct + json) that
tests/test_transformer.c compares against:

  tests/fixtures/transformer_block.safetensors
      one pre-LN block (ln_1, causal multi-head attention, c_proj, ln_2,
      MLP 4C with tanh GELU): its parameters under gen's names (h.0.*), the
      input x (B, T, C), the output `out`, an upstream gradient `dout` and
      the gradients grad.NAME of sum(out * dout) for x and every parameter.
  tests/fixtures/transformer_model.safetensors
      a whole tiny model (embeddings, 2 blocks, ln_f, head tied to wte):
      parameters, `tokens` and `targets` (B, T) stored as float values,
      `logits` (B, T, V), `loss` [1] (mean cross-entropy) and grad.NAME of
      the loss for every parameter (wte gets both of its uses).

Shapes are in the metadata. Parameters and inputs are float32 values; the
maths runs in float64 on them, so the dumps carry float32 rounding only.

    /usr/bin/python3 scripts/make-fixtures-transformer.py [OUTDIR]
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from importlib import import_module  # noqa: E402

write_safetensors = import_module("make-fixtures").write_safetensors

F64 = torch.float64


def f32(*shape, std=1.0, mean=0.0):
    """float32 random values held exactly in float64, requiring grad."""
    t = (torch.randn(*shape, dtype=torch.float32) * std + mean).to(F64)
    return t.requires_grad_(True)


def block_params(prefix, C):
    return [
        (prefix + "ln_1.weight", f32(C, std=0.1, mean=1.0)),
        (prefix + "ln_1.bias", f32(C, std=0.1)),
        (prefix + "attn.c_attn.weight", f32(3 * C, C, std=0.3)),
        (prefix + "attn.c_attn.bias", f32(3 * C, std=0.1)),
        (prefix + "attn.c_proj.weight", f32(C, C, std=0.3)),
        (prefix + "attn.c_proj.bias", f32(C, std=0.1)),
        (prefix + "ln_2.weight", f32(C, std=0.1, mean=1.0)),
        (prefix + "ln_2.bias", f32(C, std=0.1)),
        (prefix + "mlp.c_fc.weight", f32(4 * C, C, std=0.3)),
        (prefix + "mlp.c_fc.bias", f32(4 * C, std=0.1)),
        (prefix + "mlp.c_proj.weight", f32(C, 4 * C, std=0.3)),
        (prefix + "mlp.c_proj.bias", f32(C, std=0.1)),
    ]


def block(x, p, prefix, NH):
    B, T, C = x.shape
    hd = C // NH
    h = F.layer_norm(x, (C,), p[prefix + "ln_1.weight"], p[prefix + "ln_1.bias"], 1e-5)
    qkv = F.linear(h, p[prefix + "attn.c_attn.weight"], p[prefix + "attn.c_attn.bias"])
    q, k, v = qkv.split(C, dim=2)
    q, k, v = (z.view(B, T, NH, hd).transpose(1, 2) for z in (q, k, v))
    s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~mask, float("-inf"))
    a = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
    x = x + F.linear(a, p[prefix + "attn.c_proj.weight"], p[prefix + "attn.c_proj.bias"])
    h = F.layer_norm(x, (C,), p[prefix + "ln_2.weight"], p[prefix + "ln_2.bias"], 1e-5)
    h = F.gelu(F.linear(h, p[prefix + "mlp.c_fc.weight"], p[prefix + "mlp.c_fc.bias"]),
               approximate="tanh")
    return x + F.linear(h, p[prefix + "mlp.c_proj.weight"], p[prefix + "mlp.c_proj.bias"])


def make_block(outdir):
    B, T, C, NH = 2, 5, 16, 2
    params = block_params("h.0.", C)
    p = dict(params)
    x = f32(B, T, C)
    out = block(x, p, "h.0.", NH)
    dout = torch.randn(B, T, C, dtype=torch.float32).to(F64)
    (out * dout).sum().backward()
    tensors = [("x", x)] + params + [("out", out), ("dout", dout), ("grad.x", x.grad)]
    tensors += [("grad." + n, t.grad) for n, t in params]
    write_safetensors(os.path.join(outdir, "transformer_block.safetensors"), tensors,
                      {"fixture_version": "1", "B": B, "T": T, "C": C, "NH": NH})


def make_model(outdir):
    B, T, C, NH, L, V = 2, 8, 16, 2, 2, 11
    params = [("wte.weight", f32(V, C, std=0.3)), ("wpe.weight", f32(T, C, std=0.3))]
    for l in range(L):
        params += block_params("h.%d." % l, C)
    params += [("ln_f.weight", f32(C, std=0.1, mean=1.0)), ("ln_f.bias", f32(C, std=0.1))]
    p = dict(params)
    tokens = torch.randint(V, (B, T))
    targets = torch.randint(V, (B, T))
    x = p["wte.weight"][tokens] + p["wpe.weight"][torch.arange(T)]
    for l in range(L):
        x = block(x, p, "h.%d." % l, NH)
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    logits = x @ p["wte.weight"].t()
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    tensors = params + [("tokens", tokens.to(F64)), ("targets", targets.to(F64)),
                        ("logits", logits), ("loss", loss.reshape(1))]
    tensors += [("grad." + n, t.grad) for n, t in params]
    write_safetensors(os.path.join(outdir, "transformer_model.safetensors"), tensors,
                      {"fixture_version": "1", "B": B, "T": T, "C": C, "NH": NH, "L": L, "V": V})


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(6)
    make_block(outdir)
    make_model(outdir)
    print("wrote transformer_block.safetensors and transformer_model.safetensors to", outdir)


if __name__ == "__main__":
    main()
