#!/usr/bin/python3
"""PyTorch twin of gen's reference VAE (DESIGN.md section 3): the classic MLP
VAE, BCE-with-logits summed over pixels + Gaussian KL, Adam 1e-3, batch 128.
The modules VAE (also conditional) and ConvVAE (--arch conv) take the
weights of `gen export` (scripts/test-export.sh); this script trains the
MLP one.

  /usr/bin/python3 scripts/reference/vae.py --data data/mnist --epochs 10
  /usr/bin/python3 scripts/reference/vae.py --bench-steps 50   # median step time

Prints one JSON object per epoch: mean negative ELBO per test image (nats)."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, load_mnist, median, setup_threads  # noqa: E402


def with_class(h, y, classes):
    """h (B, F) followed by the one-hot of the classes y (B): (B, F + K); h
    itself for an unconditional model (classes 0)."""
    return torch.cat([h, F.one_hot(y, classes).to(h.dtype)], 1) if classes else h


class VAE(nn.Module):
    """The MLP VAE; classes = K > 0: gen's conditional VAE (--conditional),
    the one-hot class appended to fc1's and fc3's inputs."""

    def __init__(self, d=784, hidden=400, latent=20, classes=0):
        super().__init__()
        self.classes = classes
        self.fc1 = nn.Linear(d + classes, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent + classes, hidden)
        self.fc4 = nn.Linear(hidden, d)

    def encode(self, x, y=None):
        h = F.relu(self.fc1(with_class(x.flatten(1), y, self.classes)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z, y=None):  # logits (B, d)
        return self.fc4(F.relu(self.fc3(with_class(z, y, self.classes))))

    def forward(self, x, y=None):
        mu, logvar = self.encode(x, y)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode(z, y), mu, logvar


class ConvVAE(nn.Module):
    """gen's --arch conv VAE for C x H x W images (H, W divisible by 4), with
    the same parameter names: encoder conv1, conv2 (4x4, stride 2, ReLU),
    fc21/fc22 from the flattened features; decoder fc3 (ReLU), deconv1
    (ReLU), deconv2 -> logits (B, C, H, W). classes = K > 0: the one-hot
    class appended to fc21/fc22's and fc3's inputs."""

    def __init__(self, channels=1, height=28, width=28, latent=20, classes=0):
        super().__init__()
        self.classes, self.s = classes, (height // 4, width // 4)
        flat = 64 * self.s[0] * self.s[1]
        self.conv1 = nn.Conv2d(channels, 32, 4, 2, 1)
        self.conv2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.fc21 = nn.Linear(flat + classes, latent)
        self.fc22 = nn.Linear(flat + classes, latent)
        self.fc3 = nn.Linear(latent + classes, flat)
        self.deconv1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.deconv2 = nn.ConvTranspose2d(32, channels, 4, 2, 1)

    def encode(self, x, y=None):
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        h = with_class(h.flatten(1), y, self.classes)
        return self.fc21(h), self.fc22(h)

    def decode(self, z, y=None):  # logits (B, C, H, W)
        h = F.relu(self.fc3(with_class(z, y, self.classes))).view(-1, 64, *self.s)
        return self.deconv2(F.relu(self.deconv1(h)))

    forward = VAE.forward


def loss_fn(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench-steps", type=int, default=0,
                    help="time this many training steps on random data and exit")
    a = ap.parse_args()
    setup_threads(a.threads)
    torch.manual_seed(a.seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)

    if a.bench_steps:
        x = torch.rand(a.batch, 784)
        times = []
        for _ in range(a.bench_steps + 5):
            with Timer() as t:
                opt.zero_grad()
                logits, mu, logvar = model(x)
                loss = loss_fn(logits, x, mu, logvar) / a.batch
                loss.backward()
                opt.step()
            times.append(t.dt)
        print(json.dumps({"twin": "vae", "batch": a.batch, "threads": a.threads,
                          "median_step_ms": 1e3 * median(times[5:])}))
        return

    xtr, _ = load_mnist(a.data, "train")
    xte, _ = load_mnist(a.data, "t10k")
    xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
    start = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), a.batch):
            x = xtr[perm[i:i + a.batch]]
            logits, mu, logvar = model(x)
            loss = loss_fn(logits, x, mu, logvar) / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(xte), 1000):
                x = xte[i:i + 1000]
                logits, mu, logvar = model(x)
                total += loss_fn(logits, x, mu, logvar).item()
        print(json.dumps({"epoch": epoch, "test_loss": total / len(xte),
                          "elapsed_s": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
