#!/usr/bin/python3
"""PyTorch twin of gen's reference diffusion model (DESIGN.md section 3):
an epsilon-predicting DDPM (T = 1000, linear betas 1e-4 .. 0.02) with the
same small U-Net, parameter names, optimiser (Adam 5e-4, 500 warm-up steps,
clip 1.0), EMA (decay min(0.999, (1+t)/(10+t))) and DDIM sampler (trailing
timesteps, x0 clipped to [-1, 1]) as src/models/{diffusion,unet}.c.

  /usr/bin/python3 scripts/reference/diffusion.py --steps 2000 --out runs/diffusion-torch
      trains, then writes OUT/samples.png (64 images, DDIM-50 from the EMA
      weights), OUT/samples/ (--n-samples PNGs for `gen eval diffusion
      --samples`), OUT/model.safetensors and one JSON line per 50 steps
  /usr/bin/python3 scripts/reference/diffusion.py --bench-steps 20
      median training step time at batch 64 and the time of DDIM-50
      sampling of 64 images, 2 threads

The U-Net and the samplers are importable (scripts/make-fixtures-diffusion.py
uses them for the test fixtures)."""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, load_mnist, median, setup_threads  # noqa: E402

GROUPS = 8
GN_EPS = 1e-5


# ---- the U-Net -------------------------------------------------------------

def time_embedding(t, dim):
    """[sin(t f), cos(t f)], f_i = exp(-ln(10000) i / (dim/2)), in float64."""
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    a = t.to(torch.float64)[:, None] * f[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, E):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(E, cout)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=GN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(e)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, ch, eps=GN_EPS)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3 * c, h * w).transpose(1, 2)  # (n, hw, 3c)
        q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(n, c, h, w)
        return x + self.proj(o)


class UNet(nn.Module):
    def __init__(self, C=1, base=32, mults=(1, 2, 2), attn=True):
        super().__init__()
        b = base
        c1, c2, c3 = b * mults[0], b * mults[1], b * mults[2]
        E = 4 * b
        self.sin_dim = b
        self.time_mlp = nn.Sequential(nn.Linear(b, E), nn.SiLU(), nn.Linear(E, E))
        self.conv_in = nn.Conv2d(C, b, 3, padding=1)
        self.enc1 = ResBlock(b, c1, E)
        self.down1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.enc2 = ResBlock(c1, c2, E)
        self.down2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.mid1 = ResBlock(c2, c3, E)
        self.attn = Attention(c3) if attn else None
        self.mid2 = ResBlock(c3, c3, E)
        self.up2 = nn.Conv2d(c3, c3, 3, padding=1)
        self.dec2 = ResBlock(c3 + c2, c2, E)
        self.up1 = nn.Conv2d(c2, c2, 3, padding=1)
        self.dec1 = ResBlock(c2 + c1, c1, E)
        self.norm_out = nn.GroupNorm(GROUPS, c1, eps=GN_EPS)
        self.conv_out = nn.Conv2d(c1, C, 3, padding=1)

    def forward(self, x, t):
        e = time_embedding(t, self.sin_dim).to(x.dtype)
        e = F.silu(self.time_mlp(e))
        s1 = self.enc1(self.conv_in(x), e)
        s2 = self.enc2(self.down1(s1), e)
        h = self.mid1(self.down2(s2), e)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, e)
        h = self.up2(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.dec2(torch.cat([h, s2], 1), e)
        h = self.up1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.dec1(torch.cat([h, s1], 1), e)
        return self.conv_out(F.silu(self.norm_out(h)))


# ---- schedule and samplers --------------------------------------------------

class Schedule:
    """beta_t linear over t = 0 .. T-1; abar in float64; abar(-1) = 1."""

    def __init__(self, T=1000, beta_start=1e-4, beta_end=0.02):
        self.T = T
        if T > 1:
            self.beta = beta_start + (beta_end - beta_start) * torch.arange(T, dtype=torch.float64) / (T - 1)
        else:
            self.beta = torch.full((1,), beta_start, dtype=torch.float64)
        self.abar = torch.cumprod(1.0 - self.beta, 0)

    def ab(self, t):
        return 1.0 if t < 0 else float(self.abar[t])


def x0_of(abar, xt, eps):
    return ((xt - math.sqrt(1.0 - abar) * eps) / math.sqrt(abar)).clamp(-1.0, 1.0)


def ddpm_step(s, t, xt, eps, z):
    """Ancestral step t -> t-1 with the clipped x0 and sigma^2 = beta_t."""
    abar, abar_prev, beta = s.ab(t), s.ab(t - 1), float(s.beta[t])
    x0 = x0_of(abar, xt, eps)
    mean = beta * math.sqrt(abar_prev) / (1 - abar) * x0 + (1 - abar_prev) * math.sqrt(1 - beta) / (1 - abar) * xt
    return mean + math.sqrt(beta) * z if t > 0 else mean


def ddim_step(s, t, prev, eta, xt, eps, z):
    abar, abar_prev = s.ab(t), s.ab(prev)
    x0 = x0_of(abar, xt, eps)
    e = (xt - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
    out = math.sqrt(abar_prev) * x0 + math.sqrt(max(0.0, 1 - abar_prev - sigma * sigma)) * e
    return out + sigma * z if sigma > 0 else out


def ddim_timesteps(T, K):
    return [(i + 1) * T // K - 1 for i in range(K)]


@torch.no_grad()
def sample_ddim(model, s, n, K=50, eta=0.0, shape=(1, 28, 28), gen=None, batch=64):
    out = []
    tau = ddim_timesteps(s.T, K)
    for first in range(0, n, batch):
        b = min(batch, n - first)
        x = torch.randn(b, *shape, generator=gen)
        for i in range(K - 1, -1, -1):
            t, prev = tau[i], (tau[i - 1] if i > 0 else -1)
            eps = model(x, torch.full((b,), t, dtype=torch.long))
            z = torch.randn(x.shape, generator=gen) if eta > 0 else None
            x = ddim_step(s, t, prev, eta, x.double(), eps.double(), z).float()
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


# ---- output ------------------------------------------------------------------

def to_u8(x):
    """(n, c, h, w) in [-1, 1] -> uint8 (n, h, w, c), rounded as gen does."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_grid(path, x, pad=2):
    from PIL import Image
    import numpy as np
    n, c, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    img = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    u = to_u8(x)
    for i in range(n):
        r, q = divmod(i, cols)
        img[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = u[i]
    Image.fromarray(img[..., 0] if c == 1 else img).save(path)


def write_each(d, x):
    from PIL import Image
    os.makedirs(d, exist_ok=True)
    u = to_u8(x)
    for i in range(len(u)):
        Image.fromarray(u[i][..., 0] if u.shape[3] == 1 else u[i]).save(os.path.join(d, "%05d.png" % i))


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": {k: str(v) for k, v in meta.items()}}
    blobs, off = [], 0
    for name, t in tensors:
        a = t.detach().to(torch.float32).contiguous()
        raw = struct.pack("<%df" % a.numel(), *a.reshape(-1).tolist())
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


# ---- training ------------------------------------------------------------------

class Trainer:
    def __init__(self, model, s, lr, warmup, clip, ema_max):
        self.model, self.s, self.clip, self.ema_max = model, s, clip, ema_max
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda k: min(1.0, (k + 1) / warmup) if warmup > 0 else 1.0)
        self.ema = [p.detach().clone() for p in model.parameters()]
        self.abar = s.abar.to(torch.float32)
        self.step_no = 0

    def step(self, x0):
        n = x0.shape[0]
        t = torch.randint(0, self.s.T, (n,))
        eps = torch.randn_like(x0)
        ab = self.abar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        loss = F.mse_loss(self.model(xt, t), eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.sched.step()
        d = min(self.ema_max, (1 + self.step_no) / (10 + self.step_no))
        with torch.no_grad():
            for e, p in zip(self.ema, self.model.parameters()):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        self.step_no += 1
        return loss.item(), float(norm)

    def swap_ema(self):
        with torch.no_grad():
            for e, p in zip(self.ema, self.model.parameters()):
                tmp = p.detach().clone()
                p.copy_(e)
                e.copy_(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--out", default="runs/diffusion-torch")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--base", type=int, default=32)
    ap.add_argument("--no-attn", action="store_true")
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--n-samples", type=int, default=2000,
                    help="PNGs written to OUT/samples/ (gen eval diffusion's default -n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench-steps", type=int, default=0,
                    help="time this many training steps and one DDIM-50 batch of 64, then exit")
    a = ap.parse_args()
    setup_threads(a.threads)
    torch.manual_seed(a.seed)
    s = Schedule(a.timesteps)
    model = UNet(1, a.base, (1, 2, 2), not a.no_attn)
    tr = Trainer(model, s, a.lr, a.warmup, a.clip, a.ema_decay)

    if a.bench_steps:
        x = torch.rand(a.batch, 1, 28, 28) * 2 - 1
        times = []
        for _ in range(a.bench_steps + 3):
            with Timer() as t:
                tr.step(x)
            times.append(t.dt)
        model.eval()
        with Timer() as ts:
            sample_ddim(model, s, 64, a.sample_steps)
        print(json.dumps({"twin": "diffusion", "batch": a.batch, "threads": a.threads,
                          "median_step_ms": 1e3 * median(times[3:]),
                          "ddim_steps": a.sample_steps, "sample64_s": ts.dt}))
        return

    xtr, _ = load_mnist(a.data, "train")
    xtr = xtr[:, None] * 2 - 1  # (n, 1, 28, 28) in [-1, 1]
    os.makedirs(a.out, exist_ok=True)
    start = time.perf_counter()
    perm, pos, losses = torch.randperm(len(xtr)), 0, []
    for k in range(a.steps):
        if pos + a.batch > len(xtr):
            perm, pos = torch.randperm(len(xtr)), 0
        loss, norm = tr.step(xtr[perm[pos:pos + a.batch]])
        pos += a.batch
        losses.append(loss)
        if (k + 1) % 50 == 0 or k + 1 == a.steps:
            print(json.dumps({"step": k + 1, "loss": sum(losses) / len(losses), "grad_norm": norm,
                              "elapsed_s": time.perf_counter() - start}), flush=True)
            losses = []
    train_s = time.perf_counter() - start
    tr.swap_ema()
    model.eval()
    g = torch.Generator().manual_seed(a.seed + 1)
    t0 = time.perf_counter()
    x = sample_ddim(model, s, max(a.n_samples, 64), a.sample_steps, gen=g)
    write_grid(os.path.join(a.out, "samples.png"), x[:64])
    if a.n_samples:
        write_each(os.path.join(a.out, "samples"), x[:a.n_samples])
    write_safetensors(os.path.join(a.out, "model.safetensors"),
                      [(k, v) for k, v in model.state_dict().items()], {"format": "pt"})
    print(json.dumps({"done": a.steps, "train_s": train_s, "sample_s": time.perf_counter() - t0,
                      "out": a.out}), flush=True)


if __name__ == "__main__":
    main()
