#!/usr/bin/python3
"""make-fixtures-diffusion.py - PyTorch reference dumps for the diffusion
family (tests/test_diffusion.c), from the twin's own U-Net and samplers:

    /usr/bin/python3 scripts/make-fixtures-diffusion.py [OUTDIR]

diffusion_unet.safetensors - a small U-Net (base 8, mults 1,2,2, attention,
  1x8x8 images, batch 2): every parameter under its name (float32 values;
  the norms' weights and biases are randomised so their gradients mean
  something), inputs `x` (2,1,8,8) and `t` (2), the output `out`, an
  upstream gradient `dout`, and `grad.NAME` = d sum(out * dout) / d NAME
  for every parameter plus `grad.x`. Forward and backward run in float64
  on the float32 values.
diffusion_unet_l4.safetensors - the same for a U-Net of four levels (base 8,
  mults 1,1,1,2, attention at 1/8 size, 3x16x16 images, batch 2): the
  level gen and the twin add with a fourth multiplier (enc3, down3, up3,
  dec3).
diffusion_unet_cond.safetensors - the same for the class-conditional U-Net
  (metadata classes = K = 3: `class_emb.weight` (K + 1, 32) added to the
  time embedding) on a batch of 4 with classes `y` (4, as floats) that
  include the null class K; `grad.class_emb.weight` holds zeros in the
  rows of classes the batch lacks.
diffusion_samplers.safetensors - the T = 1000 linear schedule's abar (from
  torch.cumprod in float64) and one step of each sampler: for case K,
  `K.xt`, `K.eps`, `K.z` and the reference `K.out`, with metadata
  K.kind (ddpm|ddim), K.t, K.prev, K.eta.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
import diffusion as ref  # noqa: E402
from importlib import util  # noqa: E402

spec = util.spec_from_file_location("mf", os.path.join(HERE, "make-fixtures.py"))
mf = util.module_from_spec(spec)
spec.loader.exec_module(mf)
write_safetensors = mf.write_safetensors

F64 = torch.float64


def f32(t):
    """float32 values, held in float64 exactly."""
    return t.to(torch.float32).to(F64)


def unet_fixture(out_dir, name="diffusion_unet", seed=7, C=1, side=8, mults=(1, 2, 2)):
    torch.manual_seed(seed)
    model = ref.UNet(C=C, base=8, mults=mults, attn=True)
    with torch.no_grad():
        for name_p, p in model.named_parameters():
            if ".norm" in name_p or name_p.startswith("norm_out"):
                p.copy_((1.0 if name_p.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            p.copy_(f32(p))
    model = model.double()
    x = f32(torch.randn(2, C, side, side)).requires_grad_(True)
    t = torch.tensor([3, 917])
    out = model(x, t)
    dout = f32(torch.randn_like(out))
    (out * dout).sum().backward()
    tensors = [(n, p) for n, p in model.named_parameters()]
    tensors += [("x", x), ("t", t.to(F64)), ("out", out), ("dout", dout), ("grad.x", x.grad)]
    tensors += [("grad." + n, p.grad) for n, p in model.named_parameters()]
    meta = {"fixture_version": "1", "base": 8, "mults": ",".join(map(str, mults)), "attn": 1,
            "channels": C, "height": side, "width": side}
    path = os.path.join(out_dir, name + ".safetensors")
    write_safetensors(path, tensors, meta)
    return path


def unet_cond_fixture(out_dir):
    torch.manual_seed(13)
    K = 3
    model = ref.UNet(C=1, base=8, mults=(1, 2, 2), attn=True, classes=K)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm" in name or name.startswith("norm_out"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            p.copy_(f32(p))
    model = model.double()
    x = f32(torch.randn(4, 1, 8, 8)).requires_grad_(True)
    t = torch.tensor([3, 917, 250, 40])
    y = torch.tensor([0, K, 2, 0])  # class 1 absent: its gradient row is zero
    out = model(x, t, y)
    dout = f32(torch.randn_like(out))
    (out * dout).sum().backward()
    tensors = [(n, p) for n, p in model.named_parameters()]
    tensors += [("x", x), ("t", t.to(F64)), ("y", y.to(F64)), ("out", out), ("dout", dout),
                ("grad.x", x.grad)]
    tensors += [("grad." + n, p.grad) for n, p in model.named_parameters()]
    meta = {"fixture_version": "1", "base": 8, "mults": "1,2,2", "attn": 1,
            "channels": 1, "height": 8, "width": 8, "classes": K}
    path = os.path.join(out_dir, "diffusion_unet_cond.safetensors")
    write_safetensors(path, tensors, meta)
    return path


def sampler_fixture(out_dir):
    torch.manual_seed(11)
    s = ref.Schedule(1000, 1e-4, 0.02)
    cases = [("ddpm", 999, 998, 1.0), ("ddpm", 500, 499, 1.0), ("ddpm", 0, -1, 1.0),
             ("ddim", 999, 979, 0.0), ("ddim", 519, 499, 0.5), ("ddim", 19, -1, 0.0),
             ("ddim", 60, 40, 1.0)]
    tensors = [("abar", s.abar)]
    meta = {"fixture_version": "1", "timesteps": 1000, "beta_start": "1e-4", "beta_end": "0.02",
            "cases": len(cases)}
    for k, (kind, t, prev, eta) in enumerate(cases):
        xt = f32(torch.randn(2, 1, 8, 8) * 1.5)
        eps = f32(torch.randn(2, 1, 8, 8))
        z = f32(torch.randn(2, 1, 8, 8))
        if kind == "ddpm":
            out = ref.ddpm_step(s, t, xt, eps, z)
        else:
            out = ref.ddim_step(s, t, prev, eta, xt, eps, z)
        tensors += [(f"{k}.xt", xt), (f"{k}.eps", eps), (f"{k}.z", z), (f"{k}.out", out)]
        meta.update({f"{k}.kind": kind, f"{k}.t": t, f"{k}.prev": prev, f"{k}.eta": eta})
    path = os.path.join(out_dir, "diffusion_samplers.safetensors")
    write_safetensors(path, tensors, meta)
    return path


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    l4 = unet_fixture(out_dir, "diffusion_unet_l4", seed=17, C=3, side=16, mults=(1, 1, 1, 2))
    for p in (unet_fixture(out_dir), l4, unet_cond_fixture(out_dir), sampler_fixture(out_dir)):
        print(f"{p}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
