#!/usr/bin/python3
"""Writes tests/fixtures/vae_step.safetensors: one training step of the
reference MLP VAE in PyTorch (small sizes: 1x8x8 images, hidden 16, latent 4,
batch 5): the parameters, the input, the noise eps, the loss, every
gradient, and the parameters after one Adam step (lr 1e-3). And
vae_cond_step.safetensors: the same for the conditional VAE with 3 classes
(the one-hot class y appended to fc1's and fc3's inputs), with the classes
"y" (stored as floats).

    /usr/bin/python3 scripts/make-fixtures-vae.py [OUTDIR]
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from importlib import import_module  # noqa: E402

mf = import_module("make-fixtures")


def step_fixture(out, filename, seed, K):
    """K classes (0: the unconditional VAE)."""
    torch.manual_seed(seed)
    D, H, L, B = 64, 16, 4, 5
    shapes = {"fc1": (H, D + K), "fc21": (L, H), "fc22": (L, H), "fc3": (H, L + K), "fc4": (D, H)}
    params = {}
    for name, (o, i) in shapes.items():
        bound = 1.0 / i ** 0.5
        params[f"{name}.weight"] = (torch.rand(o, i) * 2 - 1) * bound
        params[f"{name}.bias"] = (torch.rand(o) * 2 - 1) * bound
    x = torch.rand(B, D)
    eps = torch.randn(B, L)
    y = torch.randint(0, K, (B,)) if K else None
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}

    def lin(h, n):
        return F.linear(h, p[f"{n}.weight"], p[f"{n}.bias"])

    def cond(h):
        return torch.cat([h, F.one_hot(y, K).to(h.dtype)], 1) if K else h

    h = F.relu(lin(cond(x), "fc1"))
    mu, logvar = lin(h, "fc21"), lin(h, "fc22")
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = lin(F.relu(lin(cond(z), "fc3")), "fc4")
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss = (bce + kl) / B
    loss.backward()
    opt = torch.optim.Adam(list(p.values()), lr=1e-3)
    grads = {k: v.grad.clone() for k, v in p.items()}
    opt.step()

    tensors = {"x": x, "eps": eps, "loss": loss.detach().reshape(1),
               "bce": bce.detach().reshape(1), "kl": kl.detach().reshape(1)}
    meta = {"fixture_version": "1", "model": "vae-mlp",
            "D": str(D), "hidden": str(H), "latent": str(L), "batch": str(B)}
    if K:
        tensors["y"] = y
        meta["classes"] = str(K)
    for k in params:
        tensors[f"param.{k}"] = params[k]
        tensors[f"grad.{k}"] = grads[k]
        tensors[f"after.{k}"] = p[k].detach()
    os.makedirs(out, exist_ok=True)
    mf.write_safetensors(os.path.join(out, filename), list(tensors.items()), meta)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
    step_fixture(out, "vae_step.safetensors", 7, 0)
    step_fixture(out, "vae_cond_step.safetensors", 9, 3)


if __name__ == "__main__":
    main()
