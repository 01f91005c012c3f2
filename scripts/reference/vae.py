#!/usr/bin/python3
"""PyTorch twin of gen's reference VAE (DESIGN.md section 3): the classic MLP
VAE, BCE-with-logits summed over pixels + Gaussian KL, Adam 1e-3, batch 128.

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


class VAE(nn.Module):
    def __init__(self, d=784, hidden=400, latent=20):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, d)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


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
