#!/usr/bin/python3
"""test-export.py - `gen export` weights in the PyTorch twins: for every
family (and the variants the twins build: the conv and conditional VAE,
the conditional GAN and diffusion model) a tiny model trains for a few
steps, `gen export` writes its weights in F32, F16 and BF16, the twin
built from the export's metadata takes them with load_state_dict(strict=
True), and the twin's outputs equal gen's on fixed inputs:

  vae          `gen sample vae --reconstruct` (decoded means of test images)
  gan          `gen sample gan` (G on gen's latents, batch or reference statistics)
  diffusion    `gen sample diffusion --sampler ddim --eta 0` (from gen's x_T)
  transformer  `gen eval transformer`'s validation loss
  classifier   `gen eval classifier`'s test loss and accuracy

Images are compared as the PNGs gen writes (8 bits; at most 1 level apart,
rounding), numbers to 1e-4. The random inputs gen draws (latents, x_T) are
drawn here by the same generator (xoshiro256** seeded through splitmix64,
Box-Muller in double, src/core/rng.c) and the same streams as gen's
sampling code: a change there shows up here as a failure. F16 and BF16
exports must equal torch's own rounding of the F32 export, bit for bit.

Run by scripts/test-export.sh (needs python3-torch, PIL and data/mnist):
    /usr/bin/python3 scripts/test-export.py PATH_TO_GEN [--keep DIR] [--only NAME...]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
import gen_safetensors  # noqa: E402
from common import load_mnist  # noqa: E402
import classifier as ref_classifier  # noqa: E402
import diffusion as ref_diffusion  # noqa: E402
import gan as ref_gan  # noqa: E402
import transformer as ref_transformer  # noqa: E402
import vae as ref_vae  # noqa: E402

MNIST = os.path.join(ROOT, "data", "mnist")
M64 = (1 << 64) - 1


# ---- gen's random numbers (src/core/rng.c) -----------------------------------

def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class GenRng:
    """gen_rng: xoshiro256** seeded by gen_rng_seed."""

    def __init__(self, seed):
        x, self.s = seed & M64, []
        for _ in range(4):
            x, z = _splitmix64(x)
            self.s.append(z)

    @classmethod
    def keyed(cls, seed, purpose, index):
        """gen_rng_seed_keyed: the stream of item `index` for one purpose."""
        x, h = _splitmix64(seed & M64)
        x, h = _splitmix64(h ^ purpose)
        x, h = _splitmix64(h ^ (index & M64))
        return cls(h)

    def next(self):
        s = self.s
        result = (_rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def normals(self, n):
        """gen_rng_fill_normal(mean 0, std 1): float32."""
        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            u1 = ((self.next() >> 11) + 1.0) * (1.0 / 9007199254740992.0)
            u2 = (self.next() >> 11) * (1.0 / 9007199254740992.0)
            out[i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return out


# ---- running gen -------------------------------------------------------------

class Gen:
    def __init__(self, path, work):
        self.path, self.work = path, work

    def __call__(self, *args, stdout=False):
        r = subprocess.run([self.path, *map(str, args)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"gen {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout if stdout else None

    def json(self, *args):
        lines = [ln for ln in self(*args, "--json", stdout=True).splitlines() if ln.startswith("{")]
        return json.loads(lines[-1])


def read_pngs(folder, n):
    """n PNGs DIR/00000.png ... as uint8 arrays (n, C, H, W)."""
    out = []
    for i in range(n):
        a = np.asarray(Image.open(os.path.join(folder, f"{i:05d}.png")))
        out.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return np.stack(out).astype(np.int32)


def to_u8(x):
    """Images in [0, 1] as gen writes them (clamped, * 255, rounded)."""
    return np.floor(np.clip(x.detach().double().numpy(), 0, 1) * 255 + 0.5).astype(np.int32)


def same_images(what, gen_u8, twin01):
    diff = np.abs(gen_u8 - to_u8(twin01))
    if diff.max() > 1:
        raise AssertionError(f"{what}: the twin's images differ from gen's by up to "
                             f"{diff.max()} levels ({(diff > 1).mean():.1%} of the pixels)")
    return f"{gen_u8.shape[0]} images, max diff {diff.max()} level"


def close(what, a, b, tol=1e-4):
    if not abs(a - b) <= tol * max(1.0, abs(b)):
        raise AssertionError(f"{what}: twin {a!r}, gen {b!r}")
    return f"{what} {b:.6g} (twin {a:.6g})"


# ---- the twins, built from an export's metadata ---------------------------

def build_twin(meta):
    fam, c, s = meta["family"], meta["config"], meta["data_shape"]
    K = s.get("classes", 0) if c.get("conditional") else 0
    if fam == "vae":
        if c.get("arch") == "conv":
            return ref_vae.ConvVAE(s["channels"], s["height"], s["width"], c["latent"], K)
        return ref_vae.VAE(s["channels"] * s["height"] * s["width"], c["hidden"], c["latent"], K)
    if fam == "gan":
        return ref_gan.GAN(c["latent"], s["channels"], s["height"], c["g-width"], c["d-width"], K)
    if fam == "diffusion":
        mults = tuple(int(m) for m in str(c["mults"]).split(","))
        return ref_diffusion.UNet(s["channels"], c["base"], mults, not c.get("no-attn"), K)
    if fam == "transformer":
        return ref_transformer.GPT(s["vocab"], c["context"], c["width"], c["heads"], c["layers"])
    if fam == "classifier":
        return ref_classifier.Classifier(s["channels"], s["height"], s["width"], s["classes"],
                                         c["filters"])
    raise AssertionError(f"no twin for family {fam}")


def as_float32(tensors):
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_twin(path):
    tensors, meta = gen_safetensors.load(path, backend="torch")
    bad = [k for k in tensors if k.startswith(("optim.", "ema."))]
    if bad:
        raise AssertionError(f"{path}: optimiser or EMA tensors in an export: {bad[:3]}")
    model = build_twin(meta)
    model.load_state_dict(as_float32(tensors), strict=True)  # raises on any missing or extra key
    return model.eval(), tensors, meta


def check_dtypes(f32, path, dtype):
    """Every float tensor of the F16/BF16 export is torch's rounding of the
    F32 export's; the others (num_batches_tracked) the same."""
    t16, meta = gen_safetensors.load(path, backend="torch")
    want = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    assert meta["dtype"] == dtype and t16.keys() == f32.keys(), f"{path}: keys or dtype"
    for k, v in f32.items():
        w = t16[k]
        if v.is_floating_point():
            assert w.dtype == want, f"{path}: {k} is {w.dtype}"
            if not torch.equal(v.to(want).view(torch.int16), w.view(torch.int16)):
                raise AssertionError(f"{path}: {k} is not torch's {dtype} rounding of the F32 export")
        else:
            assert w.dtype == v.dtype and torch.equal(w, v), f"{path}: {k}"
    build_twin(meta).load_state_dict(as_float32(t16), strict=True)


# ---- what each family's twin computes against gen -----------------------------

def compare_vae(gen, run, model, meta):
    n = 6
    out = os.path.join(run, "recon") + "/"
    gen("sample", "vae", "--ckpt", os.path.join(run, "checkpoint.safetensors"), "--reconstruct",
        "-n", 2 * n, "-o", out, "--threads", 1, "-q")
    got = read_pngs(out, 2 * n)[1::2]  # pairs: test image, its reconstruction
    x, y = load_mnist(MNIST, "t10k")
    s = meta["data_shape"]
    x = x[:n].reshape(n, s["channels"], s["height"], s["width"])
    yk = y[:n] if model.classes else None
    with torch.no_grad():
        mu, _ = model.encode(x if isinstance(model, ref_vae.ConvVAE) else x.flatten(1), yk)
        img = torch.sigmoid(model.decode(mu, yk)).reshape(x.shape)
    return same_images("reconstructions", got, img)


def compare_gan(gen, run, model, meta):
    n, seed = 12, 5
    out = os.path.join(run, "samples") + "/"
    gen("sample", "gan", "--ckpt", os.path.join(run, "checkpoint.safetensors"), "-n", n,
        "--seed", seed, "-o", out, "--threads", 1, "-q")
    L, K = model.latent, model.classes
    # gan.c: image i's latent is the stream (seed, GEN_GAN_RNG_NOISE = 1, i)
    z = torch.from_numpy(np.stack([GenRng.keyed(seed, 1, i).normals(L) for i in range(n)]))
    G = model.G
    with torch.no_grad():
        if K:  # gen_gan_sample: BatchNorm statistics of the reference batch, classes in turn
            zr = torch.from_numpy(GenRng(0x5EEDBA7C4).normals(64 * L)).reshape(64, L)
            for bn in (G.bn0, G.bn1):
                bn.momentum = 1.0
            G.train()
            G(zr, torch.arange(64) % K)
            for bn in (G.bn0, G.bn1):
                bn.running_var.mul_(63 / 64)
            G.eval()
            img = G(z, torch.arange(n) % K)
        else:  # batch statistics, in chunks of 64
            G.train()
            img = G(z)
    return same_images("samples", read_pngs(out, n), (img + 1) / 2)


def compare_diffusion(gen, run, model, meta):
    n, seed, steps = 3, 11, 4
    c, s = meta["config"], meta["data_shape"]
    out = os.path.join(run, "samples") + "/"
    extra = ["--class", 1, "--guidance", 2] if model.classes else []
    gen("sample", "diffusion", "--ckpt", os.path.join(run, "checkpoint.safetensors"), "-n", n,
        "--seed", seed, "--sampler", "ddim", "--steps", steps, "--eta", 0, "-o", out,
        "--threads", 1, "-q", *extra)
    sched = ref_diffusion.Schedule(c["timesteps"], c["beta-start"], c["beta-end"])
    D = s["channels"] * s["height"] * s["width"]
    # ddpm.c: image i's x_T is the first draws of stream seed * golden + i
    x = torch.from_numpy(np.stack([GenRng((seed * 0x9E3779B97F4A7C15 + i) & M64).normals(D)
                                   for i in range(n)])).reshape(n, s["channels"], s["height"],
                                                                s["width"])
    tau = ref_diffusion.ddim_timesteps(sched.T, steps)
    y = torch.full((n,), 1, dtype=torch.long) if model.classes else None
    with torch.no_grad():
        for i in range(steps - 1, -1, -1):
            t, prev = tau[i], (tau[i - 1] if i > 0 else -1)
            eps = ref_diffusion.guided_eps(model, x, t, y, 2.0)
            x = ref_diffusion.ddim_step(sched, t, prev, 0.0, x.double(), eps.double(), None).float()
    return same_images("DDIM samples", read_pngs(out, n), (x.clamp(-1, 1) + 1) / 2)


def compare_transformer(gen, run, model, meta):
    r = gen.json("eval", "transformer", "--ckpt", os.path.join(run, "checkpoint.safetensors"),
                 "--threads", 1, "-q")
    with open(meta["config"]["data"], "rb") as f:
        tokens = torch.tensor(list(f.read()), dtype=torch.long)
    val = tokens[len(tokens) * 9 // 10:]
    twin = ref_transformer.val_loss(model, val, meta["config"]["context"])
    return close("val_loss", twin, r["metrics"]["val_loss"])


def compare_classifier(gen, run, model, meta):
    r = gen.json("eval", "classifier", "--ckpt", os.path.join(run, "checkpoint.safetensors"),
                 "--threads", 1, "-q")
    x, y = load_mnist(MNIST, "t10k")
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000, None]) for i in range(0, len(x), 1000)])
    loss = F.cross_entropy(logits, y, reduction="sum").item() / len(y)
    acc = (logits.argmax(1) == y).double().mean().item()
    return (close("test_loss", loss, r["metrics"]["test_loss"]) + ", " +
            close("test_accuracy", acc, r["metrics"]["test_accuracy"], tol=1.5e-4))


COMPARE = {"vae": compare_vae, "gan": compare_gan, "diffusion": compare_diffusion,
           "transformer": compare_transformer, "classifier": compare_classifier}

IMAGES = ["--data", MNIST, "--batch", 8]
CASES = [  # name, family, training options
    ("vae", "vae", IMAGES + ["--hidden", 16, "--latent", 3]),
    ("vae-conv", "vae", IMAGES + ["--arch", "conv", "--latent", 3]),
    ("vae-cond", "vae", IMAGES + ["--hidden", 16, "--latent", 3, "--conditional"]),
    ("vae-conv-cond", "vae", IMAGES + ["--arch", "conv", "--latent", 3, "--conditional"]),
    ("gan", "gan", IMAGES + ["--g-width", 4, "--d-width", 4, "--latent", 6, "--ema", 0.9]),
    ("gan-cond", "gan", IMAGES + ["--g-width", 4, "--d-width", 4, "--latent", 6, "--conditional"]),
    ("diffusion", "diffusion", IMAGES[:2] + ["--batch", 4, "--base", 8, "--mults", "1,2,2",
                                             "--timesteps", 20, "--warmup", 2]),
    ("diffusion-cond", "diffusion", IMAGES[:2] + ["--batch", 4, "--base", 8, "--mults", "1,1,1",
                                                  "--no-attn", "--timesteps", 20, "--warmup", 2,
                                                  "--conditional"]),
    ("transformer", "transformer", ["--batch", 2, "--layers", 2, "--heads", 2, "--width", 16,
                                    "--context", 16, "--tokenizer", "byte"]),
    ("classifier", "classifier", IMAGES + ["--filters", 2, "--ema", 0.9]),
]


def run_case(gen, work, name, family, options):
    run = os.path.join(work, name)
    if family == "transformer":
        text = os.path.join(work, "text.txt")
        with open(os.path.join(ROOT, "README.md"), "rb") as f:
            open(text, "wb").write(f.read()[:6000])
        options = ["--data", text] + options
    gen("train", family, *options, "--steps", 4, "--seed", 7, "--out", run, "--threads", 1,
        "--sample-every", 0, "-q")
    ckpt = os.path.join(run, "checkpoint.safetensors")
    paths = {d: os.path.join(run, f"weights-{d}.safetensors") for d in ("f32", "f16", "bf16")}
    for d, p in paths.items():
        r = gen.json("export", ckpt, "-o", p, "--dtype", d, "-q")
        assert r["command"] == "export" and r["family"] == family and r["outputs"] == [p], r
    model, tensors, meta = load_twin(paths["f32"])
    for d in ("f16", "bf16"):
        check_dtypes(tensors, paths[d], d)
    return COMPARE[family](gen, run, model, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gen", help="the gen binary")
    ap.add_argument("--keep", help="work in this folder and keep it")
    ap.add_argument("--only", nargs="*", help="run only these cases")
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = a.keep or tempfile.mkdtemp(prefix="gen-export-")
    os.makedirs(work, exist_ok=True)
    gen, failed = Gen(os.path.abspath(a.gen), work), 0
    try:
        for name, family, options in CASES:
            if a.only and name not in a.only:
                continue
            try:
                print(f"{name:15s} ok: strict load, f16/bf16, {run_case(gen, work, name, family, options)}",
                      flush=True)
            except (AssertionError, RuntimeError, SystemExit) as e:
                failed += 1
                print(f"{name:15s} FAILED: {e}", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"test-export: {'all passed' if not failed else f'{failed} failed'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
