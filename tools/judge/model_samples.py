"""The judge against the checker on real samples of the shapes model (not renders): where do
the two disagree? Samples benchmark prompts with shapes-base (PyTorch, one thread, offline),
judges each sample with the numpy judge and world.check, and prints the agreement table; with
--sheet writes a contact sheet of the disagreements.

    python3 tools/judge/model_samples.py [--prompts 60] [--per-prompt 4] [--sheet PATH]
"""

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import judge  # noqa: E402  (puts tools/shapes on the path)
import world  # noqa: E402
import model as flow  # noqa: E402

BASE = os.path.join(HERE, "..", "..", "Plugins", "shapes", "weights", "shapes-base.safetensors")

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=60)
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--sheet", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    m, _ = flow.load_safetensors(BASE)
    m.eval()
    bench = world.make_benchmark()
    rng = np.random.default_rng(a.seed)
    pick = rng.choice(len(bench), size=a.prompts, replace=False)
    gen = torch.Generator().manual_seed(a.seed)
    net = judge.Net.load()
    counts = {}
    bad = []
    for idx in pick:
        cat, cap = bench[idx]
        tok = torch.from_numpy(np.stack([world.encode(cap)] * a.per_prompt))
        imgs = flow.to_uint8(flow.sample(m, tok, steps=a.steps, generator=gen))
        for im in imgs:
            j = judge.judge(im, cap, net)[0]
            c = world.check(im, cap)[0]
            key = (cat, j, c)
            counts[key] = counts.get(key, 0) + 1
            if j != c:
                bad.append((cap, j, c, im))
    print("| category | both pass | both fail | judge only | checker only | agreement |")
    print("|---|---|---|---|---|---|")
    tot = [0, 0, 0, 0]
    for cat in world.CATEGORIES + ["overall"]:
        if cat == "overall":
            v = tot
        else:
            v = [counts.get((cat, True, True), 0), counts.get((cat, False, False), 0),
                 counts.get((cat, True, False), 0), counts.get((cat, False, True), 0)]
            tot = [x + y for x, y in zip(tot, v)]
        n = sum(v)
        if n:
            print(f"| {cat} | {v[0]} | {v[1]} | {v[2]} | {v[3]} | {100 * (v[0] + v[1]) / n:.1f}% |")
    for cap, j, c, _ in bad[:20]:
        print(f"disagree: {cap!r}: judge {'pass' if j else 'fail'}, checker {'pass' if c else 'fail'}")
    if a.sheet and bad:
        k = min(len(bad), 32)
        sheet = np.zeros((((k + 7) // 8) * 34, 8 * 34, 3), np.uint8)
        for i, (_, _, _, im) in enumerate(bad[:k]):
            y, x = (i // 8) * 34 + 1, (i % 8) * 34 + 1
            sheet[y:y + 32, x:x + 32] = im
        big = sheet.repeat(4, 0).repeat(4, 1)
        import zlib
        import struct
        raw = b"".join(b"\x00" + big[r].tobytes() for r in range(big.shape[0]))
        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", big.shape[1], big.shape[0], 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        with open(a.sheet, "wb") as f:
            f.write(png)
        print("wrote", a.sheet)
