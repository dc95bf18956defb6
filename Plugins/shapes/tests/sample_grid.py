"""Sample prompts with the C engine and with PyTorch from the same noise; write a PNG grid.

    python3 Plugins/shapes/tests/sample_grid.py [--out build/shapes/samples.png] [--weights W]

Euler, 20 steps (t_i = 1 - i/20), guidance 1.75 against "" (the Assay/model.py convention).
Grid: one row per prompt; left half the C engine's images for 4 seeds, right half PyTorch's
for the same noise (4x nearest-neighbour upscaled, 2 px separators). Prints the max pixel
difference between the two. Needs build/shapes/libshapes-engine.so (make -C Plugins
shapes-engine-lib).
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))

PROMPTS = ["a red circle", "a blue square", "a yellow triangle", "three green circles",
           "a red circle left of a blue square", "a yellow square above a green triangle",
           "two blue triangles", "a green square and a red triangle"]


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def to_uint8(x):
    """[-1,1] (B,3,H,W) -> uint8 (B,H,W,3), round half to even like torch.round."""
    return np.rint((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    ap.add_argument("--lib", default=os.path.join(REPO, "build/shapes/libshapes-engine.so"))
    ap.add_argument("--out", default=os.path.join(REPO, "build/shapes/samples.png"))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=1.75)
    args = ap.parse_args()

    import shutil
    import tempfile

    import torch
    import bench_engine
    import model as M
    import world

    tmp = tempfile.mkdtemp()
    weights = os.path.join(tmp, "w.safetensors")
    shutil.copyfile(args.weights, weights)  # the trainer may overwrite the file meanwhile
    eng = bench_engine.Engine(bench_engine.ensure_lib(args.lib), weights)
    eng.threads(1)
    tmodel, meta = M.load_safetensors(weights)
    tmodel.eval()
    torch.set_num_threads(1)

    P, S = len(PROMPTS), args.seeds
    B = P * S
    ids = np.stack([eng.tokenize(p) for p in PROMPTS for _ in range(S)])
    empty = np.zeros_like(ids)
    cond = eng.encode_text(np.concatenate([ids, empty]))
    noise = torch.randn(B, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    x = noise.numpy().copy()
    ts = torch.linspace(1.0, 0.0, args.steps + 1).numpy()
    for i in range(args.steps):
        t, tn = float(ts[i]), float(ts[i + 1])
        tt = np.full(2 * B, t, dtype=np.float32)
        v = eng.velocity(np.ascontiguousarray(np.concatenate([x, x])), tt, cond)
        vp, vn = v[:B], v[B:]
        x = x + np.float32(tn - t) * (vn + np.float32(args.guidance) * (vp - vn))
    img_c = to_uint8(x)
    tok = torch.from_numpy(np.stack([world.encode(p) for p in PROMPTS for _ in range(S)]))
    xt = M.sample(tmodel, tok, steps=args.steps, guidance=args.guidance, x=noise.clone())
    img_t = to_uint8(xt.numpy())
    diff = np.abs(img_c.astype(int) - img_t.astype(int))
    print(f"weights step {meta.get('steps')}: {B} samples, max pixel difference C vs PyTorch {diff.max()} "
          f"(pixels differing: {(diff > 0).mean() * 100:.3f}%), max latent difference "
          f"{np.abs(np.clip(x, -1, 1) - xt.numpy()).max():.2e}")

    up, sep = 4, 2
    cell = 32 * up
    Wd = 2 * S * (cell + sep) + 3 * sep
    Hd = P * (cell + sep) + sep
    grid = np.full((Hd, Wd, 3), 80, dtype=np.uint8)
    for r in range(P):
        for half, imgs in enumerate((img_c, img_t)):
            for s in range(S):
                im = imgs[r * S + s].repeat(up, 0).repeat(up, 1)
                y0 = sep + r * (cell + sep)
                x0 = sep + half * (S * (cell + sep) + sep) + s * (cell + sep)
                grid[y0:y0 + cell, x0:x0 + cell] = im
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_png(args.out, grid)
    print("rows:", "; ".join(PROMPTS))
    print("wrote", args.out, "(left: C engine, right: PyTorch)")
    eng.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
