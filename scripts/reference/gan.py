#!/usr/bin/python3
"""PyTorch twin of gen's reference DCGAN (DESIGN.md section 3, src/models/gan.c).

Same networks and parameter names (G.fc, G.bn0, G.deconv1, G.bn1, G.deconv2,
D.conv1, D.conv2, D.bn2, D.fc), same init (weights N(0, 0.02), BN gamma
N(1, 0.02), biases 0), Adam lr 2e-4 betas (0.5, 0.999), non-saturating
BCE-with-logits loss, batch 64, pixels in [-1, 1], and the same step: one
G forward; D on real (1) and G(z) detached (0), D's Adam step; then G's loss
-log D(G(z)) against the updated D, with D's weights frozen (no weight
gradients for D), G's Adam step. Samples use batch statistics (G stays in
training mode) in chunks of 64, as gen does.

  /usr/bin/python3 scripts/reference/gan.py --data data/fashion-mnist --epochs 10 \\
      --out runs/gan-torch                    # grid.png + samples/ (10000 PNGs)
  /usr/bin/python3 scripts/reference/gan.py --bench-steps 50   # median step time, img/s
  /usr/bin/python3 scripts/reference/gan.py --fixture tests/fixtures/gan_step.safetensors

Training prints one JSON object per epoch (mean D/G losses, D(x), D(G(z)),
elapsed seconds). Seeds: torch.manual_seed(--seed) drives init, data order
and noise, as gen's --seed drives its streams (the streams differ)."""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, load_mnist, median, setup_threads  # noqa: E402


class Generator(nn.Module):
    def __init__(self, latent=100, channels=1, size=28, gw=64):
        super().__init__()
        self.s, self.gw = size // 4, gw
        self.fc = nn.Linear(latent, 2 * gw * self.s * self.s, bias=False)
        self.bn0 = nn.BatchNorm2d(2 * gw)
        self.deconv1 = nn.ConvTranspose2d(2 * gw, gw, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(gw)
        self.deconv2 = nn.ConvTranspose2d(gw, channels, 4, 2, 1)

    def forward(self, z):
        h = self.fc(z).view(-1, 2 * self.gw, self.s, self.s)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.deconv1(h)))
        return torch.tanh(self.deconv2(h))


class Discriminator(nn.Module):
    def __init__(self, channels=1, size=28, dw=64):
        super().__init__()
        s = size // 4
        self.conv1 = nn.Conv2d(channels, dw, 4, 2, 1)
        self.conv2 = nn.Conv2d(dw, 2 * dw, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * dw)
        self.fc = nn.Linear(2 * dw * s * s, 1)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)
        return self.fc(h.flatten(1))


class GAN(nn.Module):
    """Holds both networks so state_dict names match gen's checkpoint."""

    def __init__(self, latent=100, channels=1, size=28, gw=64, dw=64):
        super().__init__()
        self.latent = latent
        self.G = Generator(latent, channels, size, gw)
        self.D = Discriminator(channels, size, dw)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)


def make_optims(model, lr, beta1, sgd=False):
    if sgd:  # the fixture: gradients show through plainly
        return (torch.optim.SGD(model.G.parameters(), lr=lr),
                torch.optim.SGD(model.D.parameters(), lr=lr))
    return (torch.optim.Adam(model.G.parameters(), lr=lr, betas=(beta1, 0.999)),
            torch.optim.Adam(model.D.parameters(), lr=lr, betas=(beta1, 0.999)))


def train_step(model, opt_g, opt_d, x, z):
    """gen_gan_train_step: returns d_loss, g_loss, D(x), D(G(z))."""
    G, D = model.G, model.D
    fake = G(z)
    d_real, d_fake = D(x), D(fake.detach())
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) +
              F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad_(False)
    d_gen = D(fake)
    g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad_(True)
    return (d_loss.item(), g_loss.item(), torch.sigmoid(d_real).mean().item(),
            torch.sigmoid(d_fake).mean().item())


@torch.no_grad()
def sample(model, z, chunk=64):
    """Images in [0, 1] from latents z, batch statistics per chunk of 64;
    running statistics restored afterwards (as gen_gan_sample)."""
    G = model.G
    saved = {k: v.clone() for k, v in G.state_dict().items() if "running" in k or "num_batches" in k}
    G.train()
    out = torch.cat([G(z[i:i + chunk]) for i in range(0, len(z), chunk)])
    G.load_state_dict({**G.state_dict(), **saved})
    return (out + 1) / 2


# ---- PNG output, laid out like gen_png_write_grid ------------------------

PAD = 2


def to_u8(x):
    return np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(path, img):  # img (C, H, W) in [0, 1]
    from PIL import Image
    a = to_u8(img.numpy())
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(path)


def save_grid(path, imgs):  # imgs (N, C, H, W) in [0, 1]
    n, c, h, w = imgs.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * (h + PAD) + PAD, cols * (w + PAD) + PAD)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = PAD + r * (h + PAD), PAD + k * (w + PAD)
        grid[:, y:y + h, x:x + w] = imgs[i]
    save_png(path, grid)


# ---- the step fixture for tests/test_gan.c -------------------------------

def write_safetensors(path, tensors, meta):
    header = {"__metadata__": {k: str(v) for k, v in meta.items()}}
    blobs, off = [], 0
    for name, t in tensors:
        a = t.detach().to(torch.float32).contiguous()
        raw = struct.pack("<%df" % a.numel(), *a.reshape(-1).tolist())
        header[name] = {"dtype": "F32", "shape": list(a.shape) or [1],
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def fixture(path):
    """One training step of a small GAN in float64 from float32 values, with
    SGD (lr 0.1): parameters before and after, inputs, losses."""
    torch.manual_seed(1234)
    C, S, L, gw, dw, B, lr = 1, 8, 6, 4, 4, 5, 0.1
    model = GAN(L, C, S, gw, dw)
    with torch.no_grad():
        for p in model.parameters():  # less uniform than the init, for a sharper test
            p.add_(0.05 * torch.randn_like(p))
    model = model.double()
    x = (torch.rand(B, C, S, S) * 2 - 1).double()
    z = torch.randn(B, L).double()
    before = [("before." + k, v.clone()) for k, v in model.state_dict().items()
              if "num_batches" not in k]
    opt_g, opt_d = make_optims(model, lr, 0.5, sgd=True)
    model.train()
    d_loss, g_loss, d_x, d_gz = train_step(model, opt_g, opt_d, x, z)
    after = [("after." + k, v.clone()) for k, v in model.state_dict().items()
             if "num_batches" not in k]
    scalars = [(k, torch.tensor([v])) for k, v in
               (("d_loss", d_loss), ("g_loss", g_loss), ("d_x", d_x), ("d_g_z", d_gz))]
    write_safetensors(path, before + after + [("x", x), ("z", z)] + scalars,
                      {"fixture_version": "1", "C": C, "S": S, "latent": L, "g_width": gw,
                       "d_width": dw, "batch": B, "lr": lr, "torch": torch.__version__})
    print(f"wrote {path}: d_loss {d_loss:.6f} g_loss {g_loss:.6f}")


# ---- main -----------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--out", default="runs/gan-torch")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--beta1", type=float, default=0.5)
    ap.add_argument("--latent", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-samples", type=int, default=10000,
                    help="PNGs written to OUT/samples/ after training (for gen eval --samples)")
    ap.add_argument("--bench-steps", type=int, default=0,
                    help="time this many training steps on random data and exit")
    ap.add_argument("--fixture", help="write the one-step test fixture to this path and exit")
    a = ap.parse_args()
    if a.fixture:
        fixture(a.fixture)
        return
    setup_threads(a.threads)
    torch.manual_seed(a.seed)
    model = GAN(a.latent)
    opt_g, opt_d = make_optims(model, a.lr, a.beta1)
    model.train()

    if a.bench_steps:
        x = torch.rand(a.batch, 1, 28, 28) * 2 - 1
        times = []
        for _ in range(a.bench_steps + 5):
            z = torch.randn(a.batch, a.latent)
            with Timer() as t:
                train_step(model, opt_g, opt_d, x, z)
            times.append(t.dt)
        z = torch.randn(1024, a.latent)
        sample(model, z[:64])  # warm-up
        with Timer() as t:
            sample(model, z)
        print(json.dumps({"twin": "gan", "batch": a.batch, "threads": a.threads,
                          "median_step_ms": 1e3 * median(times[5:]),
                          "sample_images_per_s": len(z) / t.dt}))
        return

    xtr, _ = load_mnist(a.data, "train")
    xtr = (xtr * 2 - 1).unsqueeze(1)  # (N, 1, 28, 28) in [-1, 1]
    os.makedirs(a.out, exist_ok=True)
    fixed_z = torch.randn(64, a.latent)
    start = time.perf_counter()
    step_times = []
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(xtr))
        sums, n = [0.0] * 4, 0
        for i in range(0, len(xtr), a.batch):
            x = xtr[perm[i:i + a.batch]]
            z = torch.randn(len(x), a.latent)
            t0 = time.perf_counter()
            r = train_step(model, opt_g, opt_d, x, z)
            step_times.append(time.perf_counter() - t0)
            sums = [s + v for s, v in zip(sums, r)]
            n += 1
        print(json.dumps({"epoch": epoch, "d_loss": sums[0] / n, "g_loss": sums[1] / n,
                          "d_x": sums[2] / n, "d_g_z": sums[3] / n,
                          "median_step_ms": 1e3 * median(step_times),
                          "elapsed_s": time.perf_counter() - start}), flush=True)
        save_grid(os.path.join(a.out, f"samples-epoch{epoch:03d}.png"), sample(model, fixed_z))
    save_grid(os.path.join(a.out, "grid.png"), sample(model, fixed_z))
    torch.save(model.state_dict(), os.path.join(a.out, "model.pt"))
    if a.num_samples:
        d = os.path.join(a.out, "samples")
        os.makedirs(d, exist_ok=True)
        imgs = sample(model, torch.randn(a.num_samples, a.latent))
        for i, img in enumerate(imgs):
            save_png(os.path.join(d, f"{i:05d}.png"), img)
        print(json.dumps({"samples": d, "images": a.num_samples}), flush=True)


if __name__ == "__main__":
    main()
