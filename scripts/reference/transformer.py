#!/usr/bin/python3
"""PyTorch twin of gen's reference GPT (DESIGN.md section 3): byte-level (or
char-level) decoder-only transformer, 4 layers, 4 heads, width 128, context
128, pre-LayerNorm, MLP 4x with tanh GELU, learned positions, head tied to
the token embedding, dropout 0; init N(0, 0.02), residual projections
N(0, 0.02/sqrt(2 L)), biases 0; AdamW lr 1e-3, betas (0.9, 0.99), weight
decay 0.1 on 2-D tensors (embeddings included), 100 warm-up steps then
cosine to 1e-4 at the last step (gen_schedule_lr's formula), grad-norm clip
1.0, batch 32 random windows of the first 90 % of the text; validation on
the last 10 % in non-overlapping windows of the context, every target
scored once (gen's val_nats).

  /usr/bin/python3 scripts/reference/transformer.py --steps 5000
  /usr/bin/python3 scripts/reference/transformer.py --bench-steps 20   # step time
  /usr/bin/python3 scripts/reference/transformer.py --bench-steps 10 \
          --context 512 --width 384 --batch 8       # a larger model (bench-scale.sh)

--layers, --heads, --width, --context and --batch are gen train
transformer's options of the same names.

Prints one JSON object per evaluation: step, validation loss (nats/token),
bits per byte, mean training loss since the last one, elapsed seconds."""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, median, setup_threads  # noqa: E402


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln_1 = nn.LayerNorm(C)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C)
        self.attn.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C)
        self.mlp.c_proj = nn.Linear(4 * C, C)

    def attention(self, x):
        B, T, C = x.shape
        hd = C // self.NH
        q, k, v = self.attn.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.NH, hd).transpose(1, 2) for z in (q, k, v))
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        s = s.masked_fill(self.mask[:T, :T], float("-inf"))
        y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        return self.attn.c_proj(y)

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, T, C, NH, L):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, NH) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        mask = ~torch.ones(T, T, dtype=torch.bool).tril()
        for b in self.h:
            b.mask = mask
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            elif name.endswith(".bias") and "ln_" not in name:
                nn.init.zeros_(p)
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()  # (B, T, V), tied head


def lr_at(step, base, min_lr, warmup, total):
    """gen_schedule_lr: linear warm-up, then cosine to min_lr at total-1."""
    if step < warmup:
        return base * (step + 1) / warmup
    span = total - 1 - warmup
    if span <= 0:
        return base
    prog = min(1.0, (step - warmup) / span)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * prog))


@torch.no_grad()
def val_loss(model, val, T, windows=32):
    """Every target of val scored once in windows of T (gen's val_nats)."""
    model.eval()
    targets, done, total = len(val) - 1, 0, 0.0
    while done < targets:
        left = targets - done
        n = min(left, T)
        B = 1 if n < T else min(windows, left // T)
        chunk = val[done:done + B * n + 1]
        x = chunk[:-1].view(B, n)
        y = chunk[1:].view(B, n)
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="sum").item()
        done += B * n
    model.train()
    return total / done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/moby-dick.txt")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--tokenizer", choices=["byte", "char"], default="byte")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench-steps", type=int, default=0,
                    help="time this many training steps on random windows and exit")
    a = ap.parse_args()
    setup_threads(a.threads)
    torch.manual_seed(a.seed)
    B, T = a.batch, a.context

    with open(a.data, "rb") as f:
        raw = f.read()
    if a.tokenizer == "char":
        vocab = sorted(set(raw))
        lut = {b: i for i, b in enumerate(vocab)}
        tokens = torch.tensor([lut[b] for b in raw], dtype=torch.long)
        V = len(vocab)
    else:
        tokens = torch.tensor(list(raw), dtype=torch.long)
        V = 256
    n_train = len(tokens) * 9 // 10
    train, val = tokens[:n_train], tokens[n_train:]

    model = GPT(V, T, a.width, a.heads, a.layers)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99), eps=1e-8)
    offsets = torch.arange(T + 1)

    def step(s):
        for g in opt.param_groups:
            g["lr"] = lr_at(s, a.lr, min(1e-4, a.lr), 100, a.steps)
        starts = torch.randint(n_train - T, (B, 1))
        w = train[starts + offsets]  # (B, T + 1)
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    if a.bench_steps:
        times = []
        for s in range(a.bench_steps + 5):
            with Timer() as t:
                step(s)
            times.append(t.dt)
        ms = 1e3 * median(times[5:])
        print(json.dumps({"twin": "transformer", "batch": B, "context": T, "threads": a.threads,
                          "median_step_ms": round(ms, 2),
                          "tokens_per_s": round(B * T / (ms / 1e3), 1)}))
        return

    start = time.perf_counter()
    losses = []
    for s in range(a.steps):
        losses.append(step(s))
        s1 = s + 1
        if (a.eval_every > 0 and s1 % a.eval_every == 0) or s1 == a.steps:
            vl = val_loss(model, val, T)
            print(json.dumps({"step": s1, "val_loss": round(vl, 5),
                              "val_bpb": round(vl / math.log(2), 5),
                              "train_loss": round(sum(losses) / len(losses), 5),
                              "elapsed_s": round(time.perf_counter() - start, 1)}), flush=True)
            losses = []


if __name__ == "__main__":
    main()
