#!/usr/bin/python3
"""PyTorch twin of gen's reference diffusion model (DESIGN.md section 3):
an epsilon-predicting DDPM (T = 1000, linear betas 1e-4 .. 0.02) with the
same small U-Net, parameter names, optimiser (Adam 5e-4, 500 warm-up steps,
clip 1.0), EMA (decay min(0.999, (1+t)/(10+t))) and DDIM sampler (trailing
timesteps, x0 clipped to [-1, 1]) as src/models/{diffusion,unet}.c.
With --conditional, gen's class-conditional model: a class embedding
`class_emb` (K + 1, 4 base; row K the learned null class, N(0, 1)) added to
the time embedding, labels replaced by the null class with probability
--cond-drop during training, and classifier-free guidance at sampling,
eps = eps(x, t, null) + W (eps(x, t, y) - eps(x, t, null)), as one forward
pass of the doubled batch [conditional copies; null copies].

  /usr/bin/python3 scripts/reference/diffusion.py --steps 2000 --out runs/diffusion-torch
      trains, then writes OUT/samples.png (64 images, DDIM-50 from the EMA
      weights), OUT/samples/ (--n-samples PNGs for `gen eval diffusion
      --samples`), OUT/model.safetensors and one JSON line per 50 steps
  /usr/bin/python3 scripts/reference/diffusion.py --bench-steps 20
      median training step time at batch 64 and the time of DDIM-50
      sampling of 64 images (--sample-steps 0: none), 2 threads, on random
      1x28x28 images, or --channels C --image-size S ones (with --base and
      --mults, e.g. --channels 3 --image-size 64 --mults 1,2,2,2)
  /usr/bin/python3 scripts/reference/diffusion.py --conditional --steps 2000 \
          --per-class 200 --guidance 2 --out runs/diffusion-cond-torch
      trains the conditional model, then writes OUT/samples/CLASS/NNNNN.png
      (--per-class images of each class, guided by W, the layout of `gen
      sample --per-class`; CLASS: the line of DATA/classes.txt with '/'
      made '-', or the class index), OUT/samples.png (one row of 8 per
      class) and OUT/model.safetensors
  ... --load OUT/model.safetensors
      skips training and samples from weights this script saved (the
      model's options must match: --conditional, --base, --mults, --no-attn)

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
    """mults: three channel multipliers (full, 1/2, 1/4 size levels), or four
    for one more level at 1/8 (enc3, down3, up3, dec3; sides divisible by 8).
    classes = K > 0: conditioned on K classes through `class_emb`, whose
    row K is the null class; forward then takes y (N) in 0 .. K."""

    def __init__(self, C=1, base=32, mults=(1, 2, 2), attn=True, classes=0):
        super().__init__()
        assert len(mults) in (3, 4), "mults: three or four levels"
        b = base
        ch = [b * m for m in mults]
        L = len(ch)
        E = 4 * b
        self.levels = L
        self.sin_dim = b
        self.time_mlp = nn.Sequential(nn.Linear(b, E), nn.SiLU(), nn.Linear(E, E))
        self.conv_in = nn.Conv2d(C, b, 3, padding=1)
        # Registered in unet.c's order (enc1, down1, enc2, down2, ..., up2,
        # dec2, up1, dec1): state_dict and named_parameters follow it.
        for i in range(L - 1):
            setattr(self, f"enc{i + 1}", ResBlock(ch[i - 1] if i else b, ch[i], E))
            setattr(self, f"down{i + 1}", nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1))
        self.mid1 = ResBlock(ch[L - 2], ch[L - 1], E)
        self.attn = Attention(ch[L - 1]) if attn else None
        self.mid2 = ResBlock(ch[L - 1], ch[L - 1], E)
        for i in range(L - 2, -1, -1):
            setattr(self, f"up{i + 1}", nn.Conv2d(ch[i + 1], ch[i + 1], 3, padding=1))
            setattr(self, f"dec{i + 1}", ResBlock(ch[i + 1] + ch[i], ch[i], E))
        self.norm_out = nn.GroupNorm(GROUPS, ch[0], eps=GN_EPS)
        self.conv_out = nn.Conv2d(ch[0], C, 3, padding=1)
        # Last, as in unet.c: its N(0, 1) initialisation comes after the others'.
        self.classes = classes
        self.class_emb = nn.Embedding(classes + 1, E) if classes > 0 else None

    def forward(self, x, t, y=None):
        assert (y is not None) == (self.class_emb is not None), "y: exactly for a conditional model"
        e = time_embedding(t, self.sin_dim).to(x.dtype)
        e = self.time_mlp(e)
        if y is not None:
            e = e + self.class_emb(y)
        e = F.silu(e)
        h, skips = self.conv_in(x), []
        for i in range(1, self.levels):
            skips.append(getattr(self, f"enc{i}")(h, e))
            h = getattr(self, f"down{i}")(skips[-1])
        h = self.mid1(h, e)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, e)
        for i in range(self.levels - 1, 0, -1):
            h = getattr(self, f"up{i}")(F.interpolate(h, scale_factor=2, mode="nearest"))
            h = getattr(self, f"dec{i}")(torch.cat([h, skips.pop()], 1), e)
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


def guided_eps(model, x, t, y=None, w=2.0):
    """eps for x (B, ...) at timestep t (int). A conditional model with
    classes y (B) and w other than 0 and 1 runs [x with y; x with the null
    class] as one doubled batch and returns eps_null + w (eps_y - eps_null);
    w = 0 or y None: the null class only; w = 1: y only."""
    B = x.shape[0]
    if model.class_emb is None:
        return model(x, torch.full((B,), t, dtype=torch.long))
    null = torch.full((B,), model.classes, dtype=torch.long)
    if y is None or w == 0.0:
        return model(x, torch.full((B,), t, dtype=torch.long), null)
    if w == 1.0:
        return model(x, torch.full((B,), t, dtype=torch.long), y)
    e = model(torch.cat([x, x]), torch.full((2 * B,), t, dtype=torch.long), torch.cat([y, null]))
    ec, eu = e[:B], e[B:]
    return eu + w * (ec - eu)


@torch.no_grad()
def sample_ddim(model, s, n, K=50, eta=0.0, shape=(1, 28, 28), gen=None, batch=64,
                labels=None, guidance=2.0):
    """n images; labels (n) classes of a conditional model (None: the null
    class), guided by w = guidance."""
    out = []
    tau = ddim_timesteps(s.T, K)
    for first in range(0, n, batch):
        b = min(batch, n - first)
        y = labels[first:first + b] if labels is not None else None
        x = torch.randn(b, *shape, generator=gen)
        for i in range(K - 1, -1, -1):
            t, prev = tau[i], (tau[i - 1] if i > 0 else -1)
            eps = guided_eps(model, x, t, y, guidance)
            z = torch.randn(x.shape, generator=gen) if eta > 0 else None
            x = ddim_step(s, t, prev, eta, x.double(), eps.double(), z).float()
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


# ---- output ------------------------------------------------------------------

def to_u8(x):
    """(n, c, h, w) in [-1, 1] -> uint8 (n, h, w, c), rounded as gen does."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_grid(path, x, pad=2, cols=None):
    from PIL import Image
    import numpy as np
    n, c, h, w = x.shape
    cols = cols or math.ceil(math.sqrt(n))
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


def class_names(data, K):
    """Folder names of the K classes: DATA/classes.txt's lines (as gen reads
    them: trailing blanks dropped, empty lines skipped) with '/' made '-',
    or "0" .. "K-1"."""
    p = os.path.join(data, "classes.txt")
    if not os.path.exists(p):
        return [str(k) for k in range(K)]
    with open(p, encoding="utf-8") as f:
        names = [ln.rstrip("\r\n \t") for ln in f]
    names = [n.replace("/", "-") for n in names if n]
    if len(names) < K:
        raise SystemExit(f"{p}: names {len(names)} classes, but the labels go up to {K - 1}")
    return names


def read_safetensors(path):
    """{name: float32 tensor} of a file write_safetensors wrote."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(h["shape"]).clone()
    return out


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
    def __init__(self, model, s, lr, warmup, clip, ema_max, cond_drop=0.1):
        self.model, self.s, self.clip, self.ema_max = model, s, clip, ema_max
        self.cond_drop = cond_drop
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda k: min(1.0, (k + 1) / warmup) if warmup > 0 else 1.0)
        self.ema = [p.detach().clone() for p in model.parameters()]
        self.abar = s.abar.to(torch.float32)
        self.step_no = 0

    def step(self, x0, y=None):
        """y (n) classes of x0 for a conditional model, each replaced by the
        null class with probability cond_drop (drawn after eps, as gen does)."""
        n = x0.shape[0]
        t = torch.randint(0, self.s.T, (n,))
        eps = torch.randn_like(x0)
        ab = self.abar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        if y is not None:
            drop = torch.rand(n) < self.cond_drop
            y = torch.where(drop, torch.full_like(y, self.model.classes), y)
        loss = F.mse_loss(self.model(xt, t) if y is None else self.model(xt, t, y), eps)
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
    ap.add_argument("--mults", default="1,2,2",
                    help="channel multipliers of the full, 1/2 and 1/4 size levels; a fourth adds "
                         "a 1/8 size level (image sides divisible by 8)")
    ap.add_argument("--no-attn", action="store_true")
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--sample-steps", type=int, default=50,
                    help="DDIM steps (--bench-steps: 0 times no sampling)")
    ap.add_argument("--n-samples", type=int, default=2000,
                    help="PNGs written to OUT/samples/ (gen eval diffusion's default -n); "
                         "unconditional model")
    ap.add_argument("--conditional", action="store_true",
                    help="class-conditional: class embedding added to the time embedding, "
                         "classifier-free guidance")
    ap.add_argument("--cond-drop", type=float, default=0.1,
                    help="--conditional: probability of training a label as the null class")
    ap.add_argument("--guidance", type=float, default=None,
                    help="--conditional: guidance W of the samples (default 2; 0: null class "
                         "only, 1: plain conditional)")
    ap.add_argument("--per-class", type=int, default=200,
                    help="--conditional: PNGs of each class written to OUT/samples/CLASS/")
    ap.add_argument("--load", default=None,
                    help="sample from this model.safetensors (written by this script) "
                         "instead of training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench-steps", type=int, default=0,
                    help="time this many training steps and one DDIM batch of 64, then exit")
    ap.add_argument("--channels", type=int, default=1,
                    help="--bench-steps: channels of the random images (training reads 1)")
    ap.add_argument("--image-size", type=int, default=28,
                    help="--bench-steps: side of the random images (training reads 28)")
    a = ap.parse_args()
    mults = tuple(int(m) for m in a.mults.split(","))
    if len(mults) not in (3, 4):
        ap.error("--mults: expected three or four channel multipliers like 1,2,2 or 1,2,2,2")
    shape = (a.channels, a.image_size, a.image_size)
    if not a.bench_steps and shape != (1, 28, 28):
        ap.error("--channels, --image-size: for --bench-steps only (training reads 1x28x28 IDX)")
    if a.image_size % (1 << (len(mults) - 1)):
        ap.error(f"--image-size: a U-Net of {len(mults)} levels needs a side divisible by "
                 f"{1 << (len(mults) - 1)}")
    if not a.conditional and a.guidance is not None:
        ap.error("--guidance: this model is unconditional (add --conditional)")
    guidance = 2.0 if a.guidance is None else a.guidance
    setup_threads(a.threads)
    torch.manual_seed(a.seed)
    K, names, xtr, ytr = 0, [], None, None
    if not a.bench_steps:
        xtr, ytr = load_mnist(a.data, "train")
        xtr = xtr[:, None] * 2 - 1  # (n, 1, 28, 28) in [-1, 1]
    if a.conditional:
        K = 10 if a.bench_steps else int(ytr.max()) + 1
        if not a.bench_steps:
            names = class_names(a.data, K)
            K = len(names)
    s = Schedule(a.timesteps)
    model = UNet(a.channels, a.base, mults, not a.no_attn, classes=K)
    tr = Trainer(model, s, a.lr, a.warmup, a.clip, a.ema_decay, a.cond_drop)

    if a.bench_steps:
        x = torch.rand(a.batch, *shape) * 2 - 1
        y = torch.randint(0, K, (a.batch,)) if K else None
        times = []
        for _ in range(a.bench_steps + 3):
            with Timer() as t:
                tr.step(x, y)
            times.append(t.dt)
        out = {"twin": "diffusion", "batch": a.batch, "threads": a.threads,
               "shape": list(shape), "mults": a.mults, "median_step_ms": 1e3 * median(times[3:])}
        if a.sample_steps:
            model.eval()
            with Timer() as ts:
                sample_ddim(model, s, 64, a.sample_steps, shape=shape,
                            labels=torch.arange(64) % K if K else None, guidance=guidance)
            out.update({"ddim_steps": a.sample_steps, "sample64_s": ts.dt})
        print(json.dumps({**out, **({"conditional": K, "guidance": guidance} if K else {})}))
        return

    os.makedirs(a.out, exist_ok=True)
    train_s = 0.0
    if a.load:
        model.load_state_dict(read_safetensors(a.load))
    else:
        start = time.perf_counter()
        perm, pos, losses = torch.randperm(len(xtr)), 0, []
        for k in range(a.steps):
            if pos + a.batch > len(xtr):
                perm, pos = torch.randperm(len(xtr)), 0
            idx = perm[pos:pos + a.batch]
            loss, norm = tr.step(xtr[idx], ytr[idx] if K else None)
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
    if K:
        m = max(a.per_class, 8)
        x = sample_ddim(model, s, K * m, a.sample_steps, gen=g,
                        labels=torch.arange(K).repeat_interleave(m), guidance=guidance)
        x = x.reshape(K, m, *x.shape[1:])
        write_grid(os.path.join(a.out, "samples.png"), x[:, :8].reshape(-1, *x.shape[2:]), cols=8)
        for c in range(K):
            if a.per_class:
                write_each(os.path.join(a.out, "samples", names[c]), x[c, :a.per_class])
    else:
        x = sample_ddim(model, s, max(a.n_samples, 64), a.sample_steps, gen=g)
        write_grid(os.path.join(a.out, "samples.png"), x[:64])
        if a.n_samples:
            write_each(os.path.join(a.out, "samples"), x[:a.n_samples])
    if not a.load:
        meta = {"format": "pt", **({"classes": K} if K else {})}
        write_safetensors(os.path.join(a.out, "model.safetensors"),
                          [(k, v) for k, v in model.state_dict().items()], meta)
    print(json.dumps({"done": 0 if a.load else a.steps, "train_s": train_s,
                      "sample_s": time.perf_counter() - t0, "out": a.out,
                      **({"classes": K, "per_class": a.per_class, "guidance": guidance} if K else {})}),
          flush=True)


if __name__ == "__main__":
    main()
