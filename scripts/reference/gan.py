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

--conditional (gen train gan --conditional): G.label_emb (K, K) rows are
concatenated to z (G.fc takes latent + K inputs), and D is a projection
discriminator, D(x, y) = fc(phi) + <D.embed[y], phi> with phi the features
that feed D.fc and D.embed (K, 2dw s s); G.label_emb starts N(0, 1),
D.embed N(0, 0.02). The fakes of a step take the real batch's classes.
Samples use the BatchNorm statistics of a fixed reference batch of 64 whose
classes take turns (as gen_gan_sample); the grid and samples/ draw the
classes in turn (image i: class i % K).

  /usr/bin/python3 scripts/reference/gan.py --data data/fashion-mnist --epochs 10 \\
      --out runs/gan-torch                    # grid.png + samples/ (10000 PNGs)
  /usr/bin/python3 scripts/reference/gan.py --bench-steps 50   # median step time, img/s
  /usr/bin/python3 scripts/reference/gan.py --data data/fashion-mnist --conditional \\
      --out runs/cgan-torch
  /usr/bin/python3 scripts/reference/gan.py --fixture tests/fixtures/gan_step.safetensors
  /usr/bin/python3 scripts/reference/gan.py --conditional \\
      --fixture tests/fixtures/gan_cond_step.safetensors

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
    def __init__(self, latent=100, channels=1, size=28, gw=64, classes=0):
        super().__init__()
        self.s, self.gw = size // 4, gw
        self.fc = nn.Linear(latent + classes, 2 * gw * self.s * self.s, bias=False)
        self.bn0 = nn.BatchNorm2d(2 * gw)
        self.deconv1 = nn.ConvTranspose2d(2 * gw, gw, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(gw)
        self.deconv2 = nn.ConvTranspose2d(gw, channels, 4, 2, 1)
        if classes:
            self.label_emb = nn.Embedding(classes, classes)

    def forward(self, z, y=None):
        if y is not None:
            z = torch.cat([z, self.label_emb(y)], 1)
        h = self.fc(z).view(-1, 2 * self.gw, self.s, self.s)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.deconv1(h)))
        return torch.tanh(self.deconv2(h))


class Discriminator(nn.Module):
    def __init__(self, channels=1, size=28, dw=64, classes=0):
        super().__init__()
        s = size // 4
        self.conv1 = nn.Conv2d(channels, dw, 4, 2, 1)
        self.conv2 = nn.Conv2d(dw, 2 * dw, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * dw)
        self.fc = nn.Linear(2 * dw * s * s, 1)
        if classes:
            self.embed = nn.Embedding(classes, 2 * dw * s * s)

    def forward(self, x, y=None):
        h = F.leaky_relu(self.conv1(x), 0.2)
        phi = F.leaky_relu(self.bn2(self.conv2(h)), 0.2).flatten(1)
        out = self.fc(phi)
        if y is not None:  # the projection: + <embed[y], phi>
            out = out + (self.embed(y) * phi).sum(1, keepdim=True)
        return out


class GAN(nn.Module):
    """Holds both networks so state_dict names match gen's checkpoint."""

    def __init__(self, latent=100, channels=1, size=28, gw=64, dw=64, classes=0):
        super().__init__()
        self.latent, self.classes = latent, classes
        self.G = Generator(latent, channels, size, gw, classes)
        self.D = Discriminator(channels, size, dw, classes)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        if classes:  # after the rest, as gen declares them
            nn.init.normal_(self.G.label_emb.weight, 0.0, 1.0)
            nn.init.normal_(self.D.embed.weight, 0.0, 0.02)


def make_optims(model, lr, beta1, sgd=False):
    if sgd:  # the fixture: gradients show through plainly
        return (torch.optim.SGD(model.G.parameters(), lr=lr),
                torch.optim.SGD(model.D.parameters(), lr=lr))
    return (torch.optim.Adam(model.G.parameters(), lr=lr, betas=(beta1, 0.999)),
            torch.optim.Adam(model.D.parameters(), lr=lr, betas=(beta1, 0.999)))


def train_step(model, opt_g, opt_d, x, z, y=None):
    """gen_gan_train_step: returns d_loss, g_loss, D(x), D(G(z)). y: the
    classes of x (conditional), which the fakes take too."""
    G, D = model.G, model.D
    fake = G(z, y)
    d_real, d_fake = D(x, y), D(fake.detach(), y)
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) +
              F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad_(False)
    d_gen = D(fake, y)
    g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad_(True)
    return (d_loss.item(), g_loss.item(), torch.sigmoid(d_real).mean().item(),
            torch.sigmoid(d_fake).mean().item())


REFERENCE = 64  # a conditional G's reference batch


@torch.no_grad()
def reference_statistics(model):
    """A conditional G's sampling statistics: its BatchNorm running
    statistics become the batch statistics (biased variance) of REFERENCE
    fixed latents whose classes take turns (gen's latents differ)."""
    G, bns = model.G, [model.G.bn0, model.G.bn1]
    z = torch.randn(REFERENCE, model.latent, generator=torch.Generator().manual_seed(0x5eedba7c4))
    y = torch.arange(REFERENCE) % model.classes
    for bn in bns:
        bn.momentum = 1.0
    G.train()
    G(z.to(G.fc.weight.dtype), y)
    for bn in bns:
        bn.momentum = 0.1
        bn.running_var.mul_((REFERENCE - 1) / REFERENCE)  # it holds the unbiased variance


@torch.no_grad()
def sample(model, z, y=None, chunk=64):
    """Images in [0, 1] from latents z (and classes y of a conditional
    model), in chunks of 64: with each chunk's batch statistics, or a
    conditional G's reference statistics; running statistics restored
    afterwards (as gen_gan_sample)."""
    G = model.G
    saved = {k: v.clone() for k, v in G.state_dict().items() if "running" in k or "num_batches" in k}
    if y is not None:
        reference_statistics(model)
    G.train(y is None)
    out = torch.cat([G(z[i:i + chunk], None if y is None else y[i:i + chunk])
                     for i in range(0, len(z), chunk)])
    G.load_state_dict({**G.state_dict(), **saved})
    G.train()
    return (out + 1) / 2


def classes_in_turn(model, n):
    """Image i of a conditional model's grid and samples/: class i % K."""
    return torch.arange(n) % model.classes if model.classes else None


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


def fixture(path, classes=0):
    """One training step of a small GAN in float64 from float32 values, with
    SGD (lr 0.1): parameters before and after, inputs, losses (and the
    classes y of the batch when conditional)."""
    torch.manual_seed(1234)
    C, S, L, gw, dw, B, lr = 1, 8, 6, 4, 4, 5, 0.1
    model = GAN(L, C, S, gw, dw, classes)
    with torch.no_grad():
        for p in model.parameters():  # less uniform than the init, for a sharper test
            p.add_(0.05 * torch.randn_like(p))
    model = model.double()
    x = (torch.rand(B, C, S, S) * 2 - 1).double()
    z = torch.randn(B, L).double()
    y = torch.tensor([2, 0, 2, 1, 0]) if classes else None  # classes, a repeated one
    before = [("before." + k, v.clone()) for k, v in model.state_dict().items()
              if "num_batches" not in k]
    opt_g, opt_d = make_optims(model, lr, 0.5, sgd=True)
    model.train()
    d_loss, g_loss, d_x, d_gz = train_step(model, opt_g, opt_d, x, z, y)
    after = [("after." + k, v.clone()) for k, v in model.state_dict().items()
             if "num_batches" not in k]
    scalars = [(k, torch.tensor([v])) for k, v in
               (("d_loss", d_loss), ("g_loss", g_loss), ("d_x", d_x), ("d_g_z", d_gz))]
    labels = [("y", y.float())] if classes else []  # as floats: the file holds F32 only
    meta = {"fixture_version": "1", "C": C, "S": S, "latent": L, "g_width": gw, "d_width": dw,
            "batch": B, "lr": lr, "torch": torch.__version__}
    if classes:
        meta["classes"] = classes
    write_safetensors(path, before + after + [("x", x), ("z", z)] + labels + scalars, meta)
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
    ap.add_argument("--conditional", action="store_true",
                    help="class-conditional (label_emb into G, projection D), on the data's classes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-samples", type=int, default=10000,
                    help="PNGs written to OUT/samples/ after training (for gen eval --samples)")
    ap.add_argument("--bench-steps", type=int, default=0,
                    help="time this many training steps on random data and exit")
    ap.add_argument("--bench-sample", type=int, default=1024,
                    help="--bench-steps: then time sampling this many images (0: none)")
    ap.add_argument("--fixture", help="write the one-step test fixture to this path and exit")
    a = ap.parse_args()
    if a.fixture:
        fixture(a.fixture, 3 if a.conditional else 0)
        return
    setup_threads(a.threads)
    torch.manual_seed(a.seed)
    if not a.bench_steps:
        xtr, ytr = load_mnist(a.data, "train")
        xtr = (xtr * 2 - 1).unsqueeze(1)  # (N, 1, 28, 28) in [-1, 1]
    classes = (10 if a.bench_steps else int(ytr.max()) + 1) if a.conditional else 0
    model = GAN(a.latent, classes=classes)
    opt_g, opt_d = make_optims(model, a.lr, a.beta1)
    model.train()

    if a.bench_steps:
        xtr, ytr = torch.rand(a.batch, 1, 28, 28) * 2 - 1, torch.arange(a.batch) % 10
        times = []
        for _ in range(a.bench_steps + 5):
            z = torch.randn(a.batch, a.latent)
            with Timer() as t:
                train_step(model, opt_g, opt_d, xtr, z, ytr if classes else None)
            times.append(t.dt)
        out = {"twin": "gan", "batch": a.batch, "threads": a.threads,
               "median_step_ms": 1e3 * median(times[5:])}
        if a.bench_sample > 0:
            z = torch.randn(a.bench_sample, a.latent)
            sample(model, z[:64], classes_in_turn(model, 64))  # warm-up
            with Timer() as t:
                sample(model, z, classes_in_turn(model, len(z)))
            out["sample_images_per_s"] = len(z) / t.dt
        print(json.dumps(out))
        return

    os.makedirs(a.out, exist_ok=True)
    fixed_z, fixed_y = torch.randn(64, a.latent), classes_in_turn(model, 64)
    start = time.perf_counter()
    step_times = []
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(xtr))
        sums, n = [0.0] * 4, 0
        for i in range(0, len(xtr), a.batch):
            x, y = xtr[perm[i:i + a.batch]], ytr[perm[i:i + a.batch]] if classes else None
            z = torch.randn(len(x), a.latent)
            t0 = time.perf_counter()
            r = train_step(model, opt_g, opt_d, x, z, y)
            step_times.append(time.perf_counter() - t0)
            sums = [s + v for s, v in zip(sums, r)]
            n += 1
        print(json.dumps({"epoch": epoch, "d_loss": sums[0] / n, "g_loss": sums[1] / n,
                          "d_x": sums[2] / n, "d_g_z": sums[3] / n,
                          "median_step_ms": 1e3 * median(step_times),
                          "elapsed_s": time.perf_counter() - start}), flush=True)
        save_grid(os.path.join(a.out, f"samples-epoch{epoch:03d}.png"),
                  sample(model, fixed_z, fixed_y))
    save_grid(os.path.join(a.out, "grid.png"), sample(model, fixed_z, fixed_y))
    torch.save(model.state_dict(), os.path.join(a.out, "model.pt"))
    if a.num_samples:
        d = os.path.join(a.out, "samples")
        os.makedirs(d, exist_ok=True)
        imgs = sample(model, torch.randn(a.num_samples, a.latent),
                      classes_in_turn(model, a.num_samples))
        for i, img in enumerate(imgs):
            save_png(os.path.join(d, f"{i:05d}.png"), img)
        print(json.dumps({"samples": d, "images": a.num_samples}), flush=True)


if __name__ == "__main__":
    main()
