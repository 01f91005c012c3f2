#!/usr/bin/env python3
"""make-corpus.py - writes the seed corpora of the fuzz targets under
tests/fuzz/corpus/<target>/: small valid files of every format gen reads
and a few near misses, each well under 20 KB. Checkpoints come from tiny
runs of the gen binary given as the argument (on generated 8x8 images and a
few lines of text); everything else is crafted here. Run again only when a
format changes:
    python3 tests/fuzz/make-corpus.py build/gen
"""
import gzip, json, os, shutil, struct, subprocess, sys, tempfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 20000, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: [(name, shape, floats)]"""
    header, blobs, off = {}, b"", 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, shape, values in tensors:
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs += blob
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


def strip_optim(blob):
    """The checkpoint without its optimiser moments (still loads, not resumes)."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    keep = sorted((v["data_offsets"][0], k, v) for k, v in header.items() if not k.startswith("optim."))
    data = 8 + n
    return safetensors([(k, v["shape"], struct.unpack("<%df" % ((v["data_offsets"][1] - v["data_offsets"][0]) // 4),
                                                      blob[data + v["data_offsets"][0]:data + v["data_offsets"][1]]))
                        for _, k, v in keep], meta)


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def png(w, h, color_type, rows, bit_depth=8):
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp(w, h, top_down=False):
    row = bytes((x * 40 + y * 10) % 256 for x in range(w * 3) for y in [0])
    row += b"\x00" * (-len(row) % 4)
    pixels = row * h
    hdr = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(hdr) + len(pixels), 0, 0, 14 + len(hdr)) + hdr + pixels


def tga(w, h):
    return struct.pack("<BBBHHBHHHHBB", 0, 0, 3, 0, 0, 0, 0, 0, w, h, 8, 0) + bytes(range(w * h))


def gif(w, h):
    # One frame, 2-colour palette, LZW min code size 2, all pixels 0.
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x02\x44\x01\x00\x3b")


def images(n, side, seed):
    return bytes((i * 7 + seed * 13 + (i // side) * 3) % 256 for i in range(n * side * side))


def make_st():
    put("safetensors", "two", safetensors([("a", [2], [1.0, 2.0]), ("b", [1, 2], [3.0, 4.0])],
                                          {"format": "gen", "note": "x"}))
    put("safetensors", "scalar", safetensors([("s", [], [0.5])]))
    put("safetensors", "empty_tensor", safetensors([("e", [0, 3], [])]))
    put("safetensors", "empty", safetensors([]))
    put("safetensors", "meta_only", safetensors([], {"k": "v"}))
    put("safetensors", "rank4", safetensors([("t", [1, 2, 1, 2], [1, 2, 3, 4])]))
    for fx in ("scale", "mse", "transpose_2d"):
        with open(os.path.join(ROOT, "tests", "fixtures", fx + ".safetensors"), "rb") as f:
            put("safetensors", "fixture_" + fx, f.read())


def make_idx():
    imgs, labels = idx([3, 4, 4], images(3, 4, 1)), idx([3], bytes([0, 1, 2]))
    for name, data in (("images", imgs), ("labels", labels), ("rank4", idx([1, 2, 2, 2], bytes(8))),
                       ("truncated", imgs[:-5]), ("trailing", labels + b"\x00")):
        put("idx", "raw_" + name, b"\x00" + data)
        put("idx", "gz_" + name, b"\x01" + data)
    put("idx", "gz_file", b"\x00" + gzip.compress(imgs, mtime=0))
    put("idx", "gz_cut", b"\x02" + imgs)
    put("idx", "gz_trailing", b"\x03" + labels)


def make_images(jpeg):
    # First byte: extension (bits 0-2: png bmp jpg gif tga pgm ppm PNG),
    # bit 3: one channel, bit 4: resize to 8x8.
    grey = [bytes((x * 30 + y * 5) % 256 for x in range(6)) for y in range(5)]
    rgb = [bytes((x * 11 + y * 50 + c * 80) % 256 for x in range(6) for c in range(3)) for y in range(5)]
    rgba = [bytes((x * 11 + c * 60) % 256 for x in range(4) for c in range(4)) for y in range(4)]
    put("imagefolder", "png_grey", bytes([0x00]) + png(6, 5, 0, grey))
    put("imagefolder", "png_rgb", bytes([0x18]) + png(6, 5, 2, rgb))
    put("imagefolder", "png_rgba", bytes([0x07]) + png(4, 4, 6, rgba))
    put("imagefolder", "png_1bit", bytes([0x10]) + png(16, 2, 0, [b"\xa5\x5a"] * 2, bit_depth=1))
    put("imagefolder", "bmp", bytes([0x01]) + bmp(5, 3))
    put("imagefolder", "bmp_topdown", bytes([0x19]) + bmp(5, 3, top_down=True))
    put("imagefolder", "gif", bytes([0x03]) + gif(2, 2))
    put("imagefolder", "tga", bytes([0x0c]) + tga(4, 3))
    put("imagefolder", "pgm", bytes([0x05]) + b"P5 4 3 255\n" + bytes(range(0, 240, 20)))
    put("imagefolder", "ppm", bytes([0x16]) + b"P6\n2 2\n255\n" + bytes(range(12)))
    if jpeg:
        put("imagefolder", "jpg", bytes([0x02]) + jpeg)


def make_text():
    put("text", "file", b"\x00hello, world\nthe quick brown fox\n")
    put("text", "folder", b"\x01first file\nsecond file\n")
    put("text", "binary", bytes([0]) + bytes(range(256)))
    put("text", "vocab_hex", b"0a202c2e6162636465")
    put("text", "vocab_all", bytes([0x30]) + "".join("%02x" % b for b in range(256)).encode())
    put("text", "utf8", "\x00naïve café – ✓\n".encode())


def make_options():
    # First byte: bits 0-4 family (gen_families[] order: gan vae transformer
    # diffusion classifier), bits 5-7 command (0 train, 1 sample, 2 eval).
    cases = [
        (0x01, ["--data", "data/x", "--steps", "10", "--batch", "8", "--hidden", "16", "--lr=1e-3"]),
        (0x01, ["--epochs", "3", "--resume", "--json", "-q", "--arch", "conv"]),
        (0x21, ["-n", "64", "-o", "grid.png", "--seed", "3", "--ckpt", "r/c.safetensors"]),
        (0x41, ["--iw", "100", "--per-sample", "s.csv"]),
        (0x00, ["--latent", "8", "--g-width", "4", "--image-size", "32", "--lr-g", "2e-4"]),
        (0x02, ["--tokenizer", "char", "--context", "64", "--heads", "2", "--width", "32", "--dropout", "0.1"]),
        (0x22, ["--prompt", "--x", "--temperature", "0.8"]),
        (0x03, ["--mults", "1,2,2", "--base", "8", "--no-attn", "--timesteps", "10"]),
        (0x04, ["--filters", "8", "--steps", "2305843009213693952"]),
        (0x01, ["--batch", "0", "--lr", "nan", "--steps", "1", "--epochs", "1"]),
    ]
    for i, (b, argv) in enumerate(cases):
        put("options", "argv%02d" % i, bytes([b]) + "\n".join(argv).encode())


def make_checkpoints(gen):
    tmp = tempfile.mkdtemp()
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        for split, n in (("train", 24), ("t10k", 8)):
            with open(os.path.join(data, split + "-images-idx3-ubyte"), "wb") as f:
                f.write(idx([n, 8, 8], images(n, 8, 2)))
            with open(os.path.join(data, split + "-labels-idx1-ubyte"), "wb") as f:
                f.write(idx([n], bytes(i % 3 for i in range(n))))
        with open(os.path.join(tmp, "text.txt"), "w") as f:
            f.write("the cat sat on the mat; the dog sat on the log.\n" * 4)
        runs = [
            ("vae", ["--data", data, "--hidden", "8", "--latent", "2", "--batch", "8"]),
            ("gan", ["--data", data, "--latent", "4", "--g-width", "2", "--d-width", "2",
                     "--image-size", "8", "--batch", "8"]),
            ("transformer", ["--data", os.path.join(tmp, "text.txt"), "--tokenizer", "char",
                             "--layers", "1", "--heads", "1", "--width", "8", "--context", "8",
                             "--batch", "2"]),
            ("diffusion", ["--data", data, "--base", "8", "--mults", "1,1,1", "--no-attn",
                           "--timesteps", "10", "--batch", "8"]),
            ("classifier", ["--data", data, "--filters", "1", "--batch", "8"]),
        ]
        jpeg = None
        for fam, args in runs:
            out = os.path.join(tmp, fam)
            r = subprocess.run([gen, "train", fam, "--steps", "1", "--out", out, "--quiet",
                                "--threads", "1"] + args, capture_output=True, text=True)
            ckpt = os.path.join(out, "checkpoint.safetensors")
            if r.returncode != 0 or not os.path.exists(ckpt):
                print("make-corpus: %s checkpoint skipped: %s" % (fam, r.stderr.strip()), file=sys.stderr)
                continue
            with open(ckpt, "rb") as f:
                blob = f.read()
            if len(blob) < 20000:
                # One more space in the header: an odd size, so the target
                # also loads the optimiser moments.
                n = struct.unpack("<Q", blob[:8])[0]
                put("checkpoint", fam + "_odd", struct.pack("<Q", n + 1) + blob[8:8 + n] + b" " + blob[8 + n:])
            else:
                blob = strip_optim(blob)
            if len(blob) >= 20000:
                print("make-corpus: %s checkpoint is %d bytes, skipped" % (fam, len(blob)), file=sys.stderr)
                continue
            put("checkpoint", fam, blob)
            if fam == "vae" and jpeg is None:
                jpg = os.path.join(tmp, "s.jpg")
                if subprocess.run([gen, "sample", "vae", "--ckpt", ckpt, "-n", "1", "-o", jpg],
                                  capture_output=True).returncode == 0:
                    with open(jpg, "rb") as f:
                        jpeg = f.read()
        put("checkpoint", "not_gen", safetensors([("a", [1], [1.0])], {"format": "gen"}))
        put("checkpoint", "bad_config", safetensors([], {"family": "vae", "config": "{\"hidden\":65536}",
                                                          "data_shape": "{\"channels\":1,\"height\":8,\"width\":8}"}))
        # A diffusion checkpoint of this size is 126 KB: its config alone, no
        # tensors, so the target builds the model and then finds none.
        put("checkpoint", "diffusion_hollow", safetensors([], {
            "format": "gen", "format_version": "1", "family": "diffusion",
            "config": json.dumps({"base": 8, "mults": "1,1,1", "no-attn": True, "timesteps": 10}),
            "data_shape": json.dumps({"channels": 1, "height": 8, "width": 8, "classes": 3})}))
        return jpeg
    finally:
        shutil.rmtree(tmp)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-corpus.py PATH_TO_GEN")
    shutil.rmtree(OUT, ignore_errors=True)
    jpeg = make_checkpoints(sys.argv[1])
    make_st()
    make_idx()
    make_images(jpeg)
    make_text()
    make_options()


if __name__ == "__main__":
    main()
