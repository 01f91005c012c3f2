#!/usr/bin/python3
"""make-fixtures.py - PyTorch reference dumps for gen's ops and optimisers.

Writes one small safetensors file per op (or op variant) into
tests/fixtures/; tests/test_fixtures.c loads them with gen's own reader and
compares. Run with an interpreter that has torch (Debian: python3-torch):

    /usr/bin/python3 scripts/make-fixtures.py [OUTDIR]

The files are written by hand (struct + json), not with the safetensors
package, and the same torch version gives the same bytes on every run.

Layout of an op fixture:
  __metadata__  fixture_version "1", op (gen's op name), the op's
                parameters as strings, "nograd" (comma-separated indices
                of inputs that are not differentiated, e.g. targets)
  in0, in1, ... the op's inputs; integer inputs (targets, token ids) are
                stored as float values that the C side casts to int32
  out           the output (a loss or reduction is shape [1])
  dout          a random upstream gradient of out's shape
  grad_inK      d sum(out * dout) / d inK for every differentiated input

Inputs and dout are float32 values; the reference forward and backward run
in float64 on those exact values and are cast to float32 at the end, so the
fixtures carry only float32 rounding, never float32 summation error.

Dropout is random, so it has no fixture (p = 0 is the identity).
"""

import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

VERSION = "1"
F64 = torch.float64


# ---- safetensors writer ---------------------------------------------------

def write_safetensors(path, tensors, meta):
    """tensors: list of (name, tensor); meta: dict of str -> str."""
    header = {"__metadata__": {k: str(v) for k, v in meta.items()}}
    blobs = []
    off = 0
    for name, t in tensors:
        a = t.detach().to(torch.float32).contiguous().cpu()
        shape = list(a.shape) if a.dim() > 0 else [1]
        raw = struct.pack("<%df" % a.numel(), *a.reshape(-1).tolist())
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


# ---- helpers --------------------------------------------------------------

OUTDIR = None
WRITTEN = []


def rand(*shape, lo=-1.0, hi=1.0):
    """float32 values in [lo, hi), returned as float64 (exactly)."""
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).to(F64)


def randn(*shape, std=1.0):
    return (torch.randn(*shape, dtype=torch.float32) * std).to(F64)


def as_f32_exact(t):
    return t.to(torch.float32).to(F64)


def op_fixture(name, op, fn, inputs, nograd=(), params=None, extra=None):
    """fn(*inputs) -> out (float64). Differentiates every input not in nograd."""
    ins = []
    for i, x in enumerate(inputs):
        x = x.detach().clone()
        if i not in nograd:
            x.requires_grad_(True)
        ins.append(x)
    out = fn(*ins)
    if out.dim() == 0:
        out = out.reshape(1)
    dout = rand(*out.shape)
    diff = [x for i, x in enumerate(ins) if i not in nograd]
    grads = torch.autograd.grad(out, diff, grad_outputs=dout, allow_unused=True) if diff else []
    tensors = [("in%d" % i, x) for i, x in enumerate(ins)]
    tensors += [("out", out), ("dout", dout)]
    gi = 0
    for i, x in enumerate(ins):
        if i in nograd:
            continue
        gr = grads[gi]
        gi += 1
        tensors.append(("grad_in%d" % i, gr if gr is not None else torch.zeros_like(x)))
    if extra:
        tensors += list(extra.items()) if isinstance(extra, dict) else extra()
    meta = {"fixture_version": VERSION, "op": op,
            "nograd": ",".join(str(i) for i in nograd)}
    for k, v in (params or {}).items():
        meta[k] = v
    save(name, tensors, meta)


def save(name, tensors, meta):
    path = os.path.join(OUTDIR, name + ".safetensors")
    write_safetensors(path, tensors, meta)
    WRITTEN.append((name, os.path.getsize(path)))


# ---- op fixtures ----------------------------------------------------------

def fixtures_basic():
    torch.manual_seed(1)
    shapes = {
        "same": ((3, 4, 5), (3, 4, 5)),
        "row": ((4, 6), (6,)),
        "row3d": ((2, 3, 6), (6,)),
        "chan": ((2, 3, 4, 5), (2, 3, 1, 1)),
    }
    ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
    for opname, fn in ops.items():
        for vname, (sa, sb) in shapes.items():
            op_fixture("%s_%s" % (opname, vname), opname, fn, [rand(*sa), rand(*sb)])

    op_fixture("scale", "scale", lambda a: a * as_f32_exact(torch.tensor(-1.7, dtype=F64)),
               [rand(3, 7)], params={"s": "-1.7"})
    op_fixture("add_scalar", "add_scalar", lambda a: a + as_f32_exact(torch.tensor(0.3, dtype=F64)),
               [rand(3, 7)], params={"s": "0.3"})
    op_fixture("sum", "sum", lambda a: a.sum(), [rand(2, 3, 4, 5)])
    op_fixture("mean", "mean", lambda a: a.mean(), [rand(2, 3, 4, 5)])

    # matmul: the stored a/b are in their physical layout (transposed when ta/tb).
    for ta in (0, 1):
        for tb in (0, 1):
            M, K, N = 4, 6, 5
            a = rand(*((K, M) if ta else (M, K)))
            b = rand(*((N, K) if tb else (K, N)))
            op_fixture("matmul_2d_ta%d_tb%d" % (ta, tb), "matmul",
                       lambda x, y, ta=ta, tb=tb: (x.t() if ta else x) @ (y.t() if tb else y),
                       [a, b], params={"ta": str(ta), "tb": str(tb)})
            B = 3
            a = rand(*((B, K, M) if ta else (B, M, K)))
            b = rand(*((B, N, K) if tb else (B, K, N)))
            op_fixture("matmul_3d_ta%d_tb%d" % (ta, tb), "matmul",
                       lambda x, y, ta=ta, tb=tb: torch.bmm(x.transpose(1, 2) if ta else x,
                                                            y.transpose(1, 2) if tb else y),
                       [a, b], params={"ta": str(ta), "tb": str(tb)})

    op_fixture("linear_2d_bias", "linear", F.linear, [rand(5, 6), rand(4, 6), rand(4)],
               params={"bias": "1"})
    op_fixture("linear_3d_bias", "linear", F.linear, [rand(2, 3, 6), rand(4, 6), rand(4)],
               params={"bias": "1"})
    op_fixture("linear_3d_nobias", "linear", lambda x, w: F.linear(x, w),
               [rand(2, 3, 6), rand(4, 6)], params={"bias": "0"})

    op_fixture("reshape", "reshape", lambda a: a.reshape(6, 4), [rand(2, 3, 4)],
               params={"shape": "6,4"})
    op_fixture("permute_4d", "permute", lambda a: a.permute(0, 2, 3, 1).contiguous(),
               [rand(2, 3, 4, 5)], params={"perm": "0,2,3,1"})
    op_fixture("permute_3d", "permute", lambda a: a.permute(2, 0, 1).contiguous(),
               [rand(2, 3, 4)], params={"perm": "2,0,1"})
    op_fixture("transpose_4d", "transpose", lambda a: a.transpose(1, 2).contiguous(),
               [rand(2, 3, 4, 5)], params={"d0": "1", "d1": "2"})
    op_fixture("transpose_2d", "transpose", lambda a: a.t().contiguous(),
               [rand(3, 5)], params={"d0": "0", "d1": "1"})
    op_fixture("concat_4d", "concat", lambda a, b: torch.cat([a, b], 1),
               [rand(2, 3, 4, 4), rand(2, 2, 4, 4)])
    op_fixture("concat_3d", "concat", lambda a, b: torch.cat([a, b], 1),
               [rand(2, 3, 5), rand(2, 4, 5)])
    op_fixture("slice_dim1", "slice", lambda a: a[:, 2:5].contiguous(),
               [rand(2, 6, 3, 3)], params={"dim": "1", "start": "2", "len": "3"})
    op_fixture("slice_last", "slice", lambda a: a[:, :, 4:8].contiguous(),
               [rand(2, 3, 12)], params={"dim": "2", "start": "4", "len": "4"})
    op_fixture("slice_dim0", "slice", lambda a: a[1:3].contiguous(),
               [rand(4, 5)], params={"dim": "0", "start": "1", "len": "2"})


def fixtures_act():
    torch.manual_seed(2)
    x = rand(3, 17, lo=-3.0, hi=3.0)
    slope = as_f32_exact(torch.tensor(0.2, dtype=F64)).item()
    acts = [
        ("relu", F.relu, {}),
        ("leaky_relu", lambda a: F.leaky_relu(a, slope), {"slope": "0.2"}),
        ("gelu", lambda a: F.gelu(a, approximate="tanh"), {}),
        ("silu", F.silu, {}),
        ("sigmoid", torch.sigmoid, {}),
        ("tanh", torch.tanh, {}),
        ("exp", torch.exp, {}),
    ]
    for name, fn, params in acts:
        op_fixture(name, name, fn, [x], params=params)
    op_fixture("softmax", "softmax", lambda a: torch.softmax(a, -1), [rand(2, 3, 7, lo=-4, hi=4)])
    op_fixture("log_softmax", "log_softmax", lambda a: torch.log_softmax(a, -1),
               [rand(2, 3, 7, lo=-4, hi=4)])


def fixtures_loss():
    torch.manual_seed(3)
    V = 7
    logits = rand(2, 3, V, lo=-3, hi=3)
    targets = torch.randint(0, V, (2, 3)).to(F64)
    op_fixture("cross_entropy", "cross_entropy",
               lambda x, t: F.cross_entropy(x.reshape(-1, V), t.reshape(-1).long()),
               [logits, targets], nograd=(1,))
    x = rand(4, 6, lo=-4, hi=4)
    t = rand(4, 6, lo=0, hi=1)
    op_fixture("bce_logits_sum", "bce_logits",
               lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="sum"),
               [x, t], nograd=(1,), params={"mean": "0"})
    op_fixture("bce_logits_mean", "bce_logits",
               lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="mean"),
               [x, t], nograd=(1,), params={"mean": "1"})
    op_fixture("mse", "mse", lambda a, b: F.mse_loss(a, b), [rand(4, 6), rand(4, 6)], nograd=(1,))
    op_fixture("gaussian_kl", "gaussian_kl",
               lambda mu, lv: -0.5 * torch.sum(1 + lv - mu * mu - torch.exp(lv)),
               [rand(4, 5), rand(4, 5, lo=-2, hi=1)])
    # Embedding: ids with repeats, so the backward must accumulate.
    w = rand(10, 6)
    ids = torch.tensor([[1, 3, 3, 0], [9, 1, 5, 3]]).to(F64)
    op_fixture("embedding", "embedding", lambda ww, ii: F.embedding(ii.long(), ww),
               [w, ids], nograd=(1,))


def fixtures_norm():
    torch.manual_seed(4)
    eps = 1e-5
    op_fixture("layernorm", "layernorm", lambda x, ga, be: F.layer_norm(x, (8,), ga, be, eps),
               [rand(2, 3, 8, lo=-2, hi=2), rand(8, lo=0.5, hi=1.5), rand(8)],
               params={"eps": "1e-5", "affine": "1"})
    op_fixture("layernorm_noaffine", "layernorm", lambda x: F.layer_norm(x, (8,), None, None, eps),
               [rand(4, 8, lo=-2, hi=2)], params={"eps": "1e-5", "affine": "0"})
    op_fixture("groupnorm", "groupnorm", lambda x, ga, be: F.group_norm(x, 2, ga, be, eps),
               [rand(2, 4, 3, 3, lo=-2, hi=2), rand(4, lo=0.5, hi=1.5), rand(4)],
               params={"G": "2", "eps": "1e-5", "affine": "1"})
    op_fixture("groupnorm_noaffine", "groupnorm", lambda x: F.group_norm(x, 2, None, None, eps),
               [rand(2, 4, 3, 3, lo=-2, hi=2)], params={"G": "2", "eps": "1e-5", "affine": "0"})

    momentum = as_f32_exact(torch.tensor(0.1, dtype=F64)).item()
    for name, xshape in (("batchnorm1d", (6, 4)), ("batchnorm2d", (3, 4, 3, 3))):
        C = xshape[1]
        x = rand(*xshape, lo=-2, hi=2)
        ga, be = rand(C, lo=0.5, hi=1.5), rand(C)
        rm, rv = rand(C, lo=-0.5, hi=0.5), rand(C, lo=0.5, hi=2.0)
        state = {}

        def bn_train(xx, gg, bb, rm=rm, rv=rv, state=state):
            m, v = rm.clone(), rv.clone()
            y = F.batch_norm(xx, m, v, gg, bb, training=True, momentum=momentum, eps=eps)
            state["rm"], state["rv"] = m, v
            return y

        op_fixture(name + "_train", "batchnorm", bn_train, [x, ga, be, rm, rv], nograd=(3, 4),
                   params={"training": "1", "momentum": "0.1", "eps": "1e-5"},
                   extra=lambda state=state: [("running_mean_out", state["rm"]),
                                              ("running_var_out", state["rv"])])
        op_fixture(name + "_eval", "batchnorm",
                   lambda xx, gg, bb, m, v: F.batch_norm(xx, m, v, gg, bb, training=False,
                                                         momentum=momentum, eps=eps),
                   [x, ga, be, rm, rv], nograd=(3, 4),
                   params={"training": "0", "momentum": "0.1", "eps": "1e-5"},
                   extra={"running_mean_out": rm, "running_var_out": rv})


def fixtures_conv():
    torch.manual_seed(5)
    cases = [
        # name, x shape, Cout, k, stride, pad
        ("conv2d_1x1", (2, 3, 5, 5), 4, 1, 1, 0),
        ("conv2d_3x3_p1", (2, 3, 5, 5), 4, 3, 1, 1),
        ("conv2d_3x3_s2_p1", (2, 3, 5, 5), 4, 3, 2, 1),
        ("conv2d_4x4_s2_p1", (2, 3, 6, 6), 4, 4, 2, 1),
    ]
    for name, xs, cout, k, s, p in cases:
        x = rand(*xs)
        w = rand(cout, xs[1], k, k)
        b = rand(cout)
        op_fixture(name + "_bias", "conv2d", lambda xx, ww, bb, s=s, p=p: F.conv2d(xx, ww, bb, s, p),
                   [x, w, b], params={"stride": str(s), "pad": str(p), "bias": "1"})
        op_fixture(name + "_nobias", "conv2d", lambda xx, ww, s=s, p=p: F.conv2d(xx, ww, None, s, p),
                   [x, w], params={"stride": str(s), "pad": str(p), "bias": "0"})
    x = rand(2, 4, 3, 3)
    w = rand(4, 3, 4, 4)
    b = rand(3)
    op_fixture("conv_transpose2d_4x4_s2_p1_bias", "conv_transpose2d",
               lambda xx, ww, bb: F.conv_transpose2d(xx, ww, bb, 2, 1),
               [x, w, b], params={"stride": "2", "pad": "1", "bias": "1"})
    op_fixture("conv_transpose2d_4x4_s2_p1_nobias", "conv_transpose2d",
               lambda xx, ww: F.conv_transpose2d(xx, ww, None, 2, 1),
               [x, w], params={"stride": "2", "pad": "1", "bias": "0"})
    op_fixture("upsample2x", "upsample2x",
               lambda xx: F.interpolate(xx, scale_factor=2, mode="nearest"), [rand(2, 3, 3, 4)])


def attention_ref(qkv, NH, causal):
    B, T, C3 = qkv.shape
    C = C3 // 3
    hd = C // NH
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, NH, hd).transpose(1, 2)
    k = k.view(B, T, NH, hd).transpose(1, 2)
    v = v.view(B, T, NH, hd).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
    if causal:
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    y = att @ v
    return y.transpose(1, 2).contiguous().view(B, T, C)


def fixtures_attn():
    torch.manual_seed(6)
    for causal in (1, 0):
        for NH in (1, 2):
            op_fixture("attention_%s_nh%d" % ("causal" if causal else "full", NH), "attention",
                       lambda x, NH=NH, causal=causal: attention_ref(x, NH, causal),
                       [rand(2, 5, 3 * 8, lo=-2, hi=2)],
                       params={"NH": str(NH), "causal": str(causal)})


# ---- optimiser fixtures ---------------------------------------------------

def fixtures_optim():
    """10 steps on two tensors, w (4, 5) (a weight: decayed) and b (5) (a
    bias: never decayed), with given gradients g0..g9. Stored: w, b (initial),
    g{t}.w, g{t}.b (the gradient fed at step t), p{t}.w, p{t}.b (after step t)."""
    steps = 10
    configs = [
        ("optim_adam", "adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8), 0.0),
        ("optim_adamw", "adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8), 0.1),
        ("optim_sgd", "sgd", dict(lr=5e-2, momentum=0.9), 0.0),
    ]
    for i, (name, kind, kw, wd) in enumerate(configs):
        torch.manual_seed(10 + i)
        w0, b0 = randn(4, 5), randn(5)
        grads = [(randn(4, 5), randn(5)) for _ in range(steps)]
        w = w0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        groups = [{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}]
        if kind == "adam":
            opt = torch.optim.Adam(groups, **kw)
        elif kind == "adamw":
            opt = torch.optim.AdamW(groups, **kw)
        else:
            opt = torch.optim.SGD(groups, **kw)
        tensors = [("w", w0), ("b", b0)]
        for t, (gw, gb) in enumerate(grads):
            w.grad, b.grad = gw.clone(), gb.clone()
            opt.step()
            tensors += [("g%d.w" % t, gw), ("g%d.b" % t, gb),
                        ("p%d.w" % t, w.detach().clone()), ("p%d.b" % t, b.detach().clone())]
        meta = {"fixture_version": VERSION, "op": "optim", "kind": kind, "steps": str(steps),
                "lr": str(kw["lr"]), "weight_decay": str(wd)}
        if "betas" in kw:
            meta.update(beta1=str(kw["betas"][0]), beta2=str(kw["betas"][1]), eps=str(kw["eps"]))
        if "momentum" in kw:
            meta["momentum"] = str(kw["momentum"])
        save(name, tensors, meta)

    # clip_grad_norm_ (max_norm 1): one case that clips, one that does not.
    torch.manual_seed(20)
    for name, scale in (("clip_grad_norm", 1.0), ("clip_grad_norm_noop", 0.05)):
        gw, gb = randn(4, 5, std=scale), randn(5, std=scale)
        w = torch.zeros(4, 5, dtype=F64, requires_grad=True)
        b = torch.zeros(5, dtype=F64, requires_grad=True)
        w.grad, b.grad = gw.clone(), gb.clone()
        norm = torch.nn.utils.clip_grad_norm_([w, b], max_norm=1.0)
        save(name, [("gw", gw), ("gb", gb), ("norm", norm.reshape(1)),
                    ("gw_out", w.grad), ("gb_out", b.grad)],
             {"fixture_version": VERSION, "op": "clip_grad_norm", "max_norm": "1.0"})

    # Warm-up + cosine schedule, from gen_schedule_lr's contract (nn.h):
    # step < warmup: base (step + 1) / warmup; then
    # min + (base - min) 0.5 (1 + cos(pi min(1, (step - warmup) / (total - 1 - warmup)))).
    base, lo, warmup, total = 1e-3, 1e-4, 100, 5000
    steps_at = [0, 1, 49, 98, 99, 100, 101, 250, 1000, 2549, 2550, 4000, 4998, 4999, 5000, 7000]

    def lr_at(s):
        if s < warmup:
            return base * (s + 1) / warmup
        p = min(1.0, (s - warmup) / (total - 1 - warmup))
        return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * p))

    save("schedule_warmup_cosine",
         [("steps", torch.tensor(steps_at, dtype=F64)),
          ("lr", torch.tensor([lr_at(s) for s in steps_at], dtype=F64))],
         {"fixture_version": VERSION, "op": "schedule", "kind": "warmup_cosine",
          "base_lr": "0.001", "min_lr": "0.0001", "warmup": str(warmup), "total": str(total)})


def main():
    global OUTDIR
    here = os.path.dirname(os.path.abspath(__file__))
    OUTDIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures")
    os.makedirs(OUTDIR, exist_ok=True)
    torch.set_num_threads(1)
    fixtures_basic()
    fixtures_act()
    fixtures_loss()
    fixtures_norm()
    fixtures_conv()
    fixtures_attn()
    fixtures_optim()
    total = sum(sz for _, sz in WRITTEN)
    print("wrote %d fixtures, %d bytes, to %s" % (len(WRITTEN), total, os.path.normpath(OUTDIR)))


if __name__ == "__main__":
    main()
