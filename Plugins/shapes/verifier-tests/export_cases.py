#!/usr/bin/env python3
"""Export test cases for the C shapes checker (Plugins/shapes/world/) from the Python
reference (tools/shapes/world.py), with the Python checker's verdicts.

    python3 Plugins/shapes/verifier-tests/export_cases.py [--model-samples 48] [--out PATH]

Writes Plugins/shapes/verifier-tests/cases.bin (binary, little-endian):

    magic    8 bytes  b"SHVCASE2"
    count    u32
    per case:
      type   u8      0 = parse case, 1 = check case
      tag    u8 length + bytes (e.g. "truth/position", "wrong-colour", "noisy", "model")
      caption u16 length + bytes (UTF-8)
      parse case:  ok u8; if ok: ngroups u8, per group (shape u8, colour i8 (-1 none),
                   count u8, exact u8), relation i8 (-1 none, 0 left of, 1 right of,
                   2 above, 3 below)
      check case:  pass u8, score f64, nconstraints u8, failed_mask u8 (bit i = constraint i
                   failed; constraints: one per group in order, then the relation),
                   ndets u8, per detection (colour u8, shape i8 (-1 ambiguous),
                   ncandidates u8, candidates 3 x u8 (shape indices, best first, 255 unused),
                   area u16, box 4 x i16 in half pixels (x0, y0, x1, y1 exclusive),
                   fit f64) in world.detect order,
                   image: encoding u8 (0 = palette runs, 1 = raw RGB), width u16, height u16,
                     0: nruns u32, then (length u8 1..255, label u8 0..4) runs over the
                        row-major pixels (label 0 = background, 1.. = world.COLOURS order)
                     1: width * height * 3 bytes RGB
Colour/shape indices follow world.COLOURS / world.SHAPES.

Cases (deterministic, seed 20261121):
  truth/<category>   ground-truth renders of specs of all six categories (must pass)
  wrong-count, wrong-colour, wrong-shape, swapped, missing, extra, empty, cross
                     renders with a known defect (or an unrelated caption)
  noisy              renders blurred (gaussian), shifted in colour and with gaussian noise,
                     the way model samples are noisier than renders
  ties               renders with pixels exactly equidistant to two palette colours
  yard<blur><+|->/<category>
                     the yardstick (tools/shapes/yardstick.py): correct (+) and wrong (-)
                     scenes, blurred by sigma <blur> with noise sigma 8; + / - is the scene's
                     own truth, so the C test measures recall and false passes from them
  model              (optional, --model-samples N, needs torch + the exported weights)
                     samples of the shapes model for benchmark prompts
  parse cases        all benchmark prompts, hand-written captions (valid and not), and
                     random word sequences over the vocabulary (+ unknown words)
Prints Python's own validate_checker() accuracy on ground-truth renders as well.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))

import world  # noqa: E402

REL_INDEX = {r: i for i, r in enumerate(world.RELATIONS)}


# ----------------------------------------------------------------------------- encoding
def enc_str(s: str, width: int) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<B" if width == 1 else "<H", len(b)) + b


def enc_image(img: np.ndarray) -> bytes:
    h, w, _ = img.shape
    lab = np.full((h, w), 255, dtype=np.int64)
    pal = [world.BG] + [world.PALETTE[c] for c in world.COLOURS]
    for i, c in enumerate(pal):
        lab[(img == np.array(c, dtype=np.uint8)).all(-1)] = i
    if (lab != 255).all():
        flat = lab.reshape(-1)
        runs = []
        i = 0
        while i < len(flat):
            j = i
            while j < len(flat) and flat[j] == flat[i] and j - i < 255:
                j += 1
            runs.append((j - i, int(flat[i])))
            i = j
        return struct.pack("<BHHI", 0, w, h, len(runs)) + b"".join(struct.pack("<BB", *r) for r in runs)
    return struct.pack("<BHH", 1, w, h) + np.ascontiguousarray(img, dtype=np.uint8).tobytes()


def failed_mask(spec, failed) -> int:
    mask = 0
    descs = [" ".join(world._group_words(g)) for g in spec["groups"]]
    for f in failed:
        if f.startswith("relation"):
            mask |= 1 << len(spec["groups"])
            continue
        assert f.startswith("count '")
        d = f[len("count '"):f.index("'", len("count '"))]
        mask |= 1 << descs.index(d)
    return mask


class Writer:
    def __init__(self):
        self.cases = []
        self.counts = {}

    def _tag(self, tag):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def check(self, tag, caption, img):
        spec = world.parse(caption)
        ok, frac, failed = world.check(img, caption)
        dets = world.detect(img)
        if len(dets) > 255:
            dets = dets[:255]  # never happens at these noise levels; kept for the format
        n_con = len(spec["groups"]) + (1 if spec["relation"] else 0)
        b = struct.pack("<B", 1) + enc_str(tag, 1) + enc_str(caption, 2)
        b += struct.pack("<BdBBB", int(ok), float(frac), n_con, failed_mask(spec, failed), len(dets))
        for d in dets:
            cands = [world.SHAPES.index(c) for c in d["candidates"]]
            b += struct.pack("<BbB3BH4hd", world.COLOURS.index(d["colour"]),
                             -1 if d["shape"] is None else world.SHAPES.index(d["shape"]),
                             len(cands), *(cands + [255] * (3 - len(cands))), d["area"],
                             *[int(round(2 * v)) for v in d["box"]], d["fit"])
        b += enc_image(img)
        self.cases.append(b)
        self._tag(tag.split("/")[0])
        return ok

    def parse(self, tag, caption):
        b = struct.pack("<B", 0) + enc_str(tag, 1) + enc_str(caption, 2)
        try:
            spec = world.parse(caption)
        except ValueError:
            b += struct.pack("<B", 0)
        else:
            b += struct.pack("<BB", 1, len(spec["groups"]))
            for g in spec["groups"]:
                b += struct.pack("<BbBB", world.SHAPES.index(g["shape"]),
                                 world.COLOURS.index(g["colour"]) if g["colour"] else -1,
                                 g["count"], int(g["exact"]))
            b += struct.pack("<b", REL_INDEX[spec["relation"]] if spec["relation"] else -1)
        self.cases.append(b)
        self._tag("parse")

    def write(self, path):
        with open(path, "wb") as f:
            f.write(b"SHVCASE2" + struct.pack("<I", len(self.cases)))
            for c in self.cases:
                f.write(c)


# ----------------------------------------------------------------------------- scenes
def place(rng, objs, shape, colour, smax=10):
    for _ in range(200):
        s = int(rng.integers(7, smax + 1))
        x0 = int(rng.integers(0, world.W - s + 1))
        y0 = int(rng.integers(0, world.H - s + 1))
        if world._boxes_clear(objs, x0, y0, s):
            return objs + [{"shape": shape, "colour": colour, "x0": x0, "y0": y0, "s": s}]
    return None


def other(rng, items, current):
    choices = [x for x in items if x != current]
    return choices[int(rng.integers(len(choices)))]


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = img.astype(np.float64)
    pad = np.pad(out, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * pad[i:i + out.shape[0]] for i in range(2 * r + 1))
    pad = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    out = sum(k[i] * pad[:, i:i + out.shape[1]] for i in range(2 * r + 1))
    return out


def degrade(rng, img):
    x = img.astype(np.float64)
    if rng.random() < 0.8:
        x = gaussian_blur(x, float(rng.uniform(0.4, 1.2)))
    if rng.random() < 0.6:  # off colours: per-channel gain and offset
        x = x * rng.uniform(0.6, 1.0, size=3) + rng.uniform(0, 50, size=3)
    x = x + rng.normal(0, float(rng.uniform(2, 45)), size=x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "cases.bin"))
    ap.add_argument("--per-category", type=int, default=60)
    ap.add_argument("--noisy", type=int, default=120)
    ap.add_argument("--model-samples", type=int, default=0)
    ap.add_argument("--yardstick", type=int, default=50, help="yardstick scenes per category and truth at blur 0.9 (half at 1.2)")
    ap.add_argument("--weights", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    args = ap.parse_args()
    rng = np.random.default_rng(20261121)
    w = Writer()
    specs = []  # (category, spec, objs)

    # truth
    truth_ok = truth_n = 0
    for cat in world.CATEGORIES:
        for _ in range(args.per_category):
            spec = world.sample_spec(rng, cat)
            objs = world.scene_from_spec(rng, spec)
            specs.append((cat, spec, objs))
            ok = w.check("truth/" + cat, world.spec_to_caption(spec), world.render(objs))
            truth_ok += ok
            truth_n += 1

    # wrong scenes
    for cat, spec, objs in specs:
        cap = world.spec_to_caption(spec)
        kind = rng.random()
        if cat == "counting" or kind < 0.2:
            # wrong count: one more of a group (if placeable) or one fewer
            g = spec["groups"][0]
            idx = [i for i, o in enumerate(objs) if o["shape"] == g["shape"] and (g["colour"] is None or o["colour"] == g["colour"])]
            if rng.random() < 0.5 and len(objs) < 4:
                new = place(rng, objs, g["shape"], g["colour"] or world.COLOURS[int(rng.integers(4))])
                if new is not None:
                    w.check("wrong-count/" + cat, cap, world.render(new))
            elif idx:
                drop = idx[int(rng.integers(len(idx)))]
                w.check("wrong-count/" + cat, cap, world.render([o for i, o in enumerate(objs) if i != drop]))
        if cat in ("colors", "color_attr", "position", "counting", "single_object", "two_object"):
            i = int(rng.integers(len(objs)))
            new = [dict(o) for o in objs]
            new[i]["colour"] = other(rng, world.COLOURS, new[i]["colour"])
            w.check("wrong-colour/" + cat, cap, world.render(new))
            j = int(rng.integers(len(objs)))
            new = [dict(o) for o in objs]
            new[j]["shape"] = other(rng, world.SHAPES, new[j]["shape"])
            w.check("wrong-shape/" + cat, cap, world.render(new))
        if spec["relation"]:
            flipped, _ = world.flip_scene(objs, spec, horizontal=spec["relation"] in ("left of", "right of"))
            w.check("swapped/" + cat, cap, world.render(flipped))
            # both flips: a diagonal layout
            f2, _ = world.flip_scene(flipped, spec, horizontal=spec["relation"] not in ("left of", "right of"))
            w.check("swapped/" + cat, cap, world.render(f2))
        if len(objs) >= 2 and cat != "counting":
            drop = int(rng.integers(len(objs)))
            w.check("missing/" + cat, cap, world.render([o for i, o in enumerate(objs) if i != drop]))
        if len(objs) < 4 and rng.random() < 0.3:
            new = place(rng, objs, world.SHAPES[int(rng.integers(3))], world.COLOURS[int(rng.integers(4))])
            if new is not None:
                w.check("extra/" + cat, cap, world.render(new))
    for cat, spec, objs in specs[:: max(1, len(specs) // 12)]:
        w.check("empty/" + cat, world.spec_to_caption(spec), world.render([]))
    for k in range(120):
        _, spec_a, objs_a = specs[int(rng.integers(len(specs)))]
        _, spec_b, _ = specs[int(rng.integers(len(specs)))]
        w.check("cross", world.spec_to_caption(spec_b), world.render(objs_a))
    w.check("cross", "", world.render(specs[0][2]))
    w.check("cross", "", world.render([]))

    # noisy renders (raw pixels)
    for k in range(args.noisy):
        _, spec, objs = specs[int(rng.integers(len(specs)))]
        cap = world.spec_to_caption(spec)
        if rng.random() < 0.3:
            cap = world.spec_to_caption(specs[int(rng.integers(len(specs)))][1])
        w.check("noisy", cap, degrade(rng, world.render(objs)))

    # exact ties between palette entries (lower label wins)
    tie_values = [(150, 0, 150), (128, 128, 0), (0, 150, 150), (200, 200, 200), (128, 0, 0),
                  (100, 100, 100), (255, 128, 0), (150, 150, 0), (0, 128, 128), (170, 85, 170)]
    for k in range(10):
        _, spec, objs = specs[int(rng.integers(len(specs)))]
        img = world.render(objs)
        mask = rng.random(img.shape[:2]) < 0.25
        vals = np.array(tie_values, dtype=np.uint8)[rng.integers(len(tie_values), size=img.shape[:2])]
        img[mask] = vals[mask]
        w.check("ties", world.spec_to_caption(spec), img)

    # the yardstick: degraded correct and wrong scenes with their truth in the tag
    sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))
    import yardstick
    for blur, per in ((0.9, args.yardstick), (1.2, args.yardstick // 2)):
        for case in yardstick.validation_set(blur, per, seed=20261203):
            w.check(f"yard{blur:g}{'+' if case['truth'] else '-'}/{case['category']}", case["caption"], case["image"])

    # model samples
    if args.model_samples > 0:
        import torch
        import model as M
        torch.set_num_threads(1)
        mdl, meta = M.load_safetensors(args.weights)
        mdl.eval()
        bench = [line.rstrip("\n").split("\t") for line in open(os.path.join(REPO, "tools/shapes/benchmark_prompts.txt")) if line.strip()]
        pick = [bench[i] for i in np.linspace(0, len(bench) - 1, args.model_samples).astype(int)]
        toks = torch.stack([torch.from_numpy(world.encode(p)) for _, p in pick])
        x = torch.randn(len(pick), 3, 32, 32, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            imgs = M.to_uint8(M.sample(mdl, toks, steps=20, guidance=1.75, x=x))
        npass = sum(w.check("model/" + cat, p, imgs[i]) for i, (cat, p) in enumerate(pick))
        print(f"model samples: {len(pick)} (weights step {meta.get('steps', '?')}), {npass} pass")

    # parse cases
    for line in open(os.path.join(REPO, "tools/shapes/benchmark_prompts.txt")):
        if line.strip():
            w.parse("bench", line.rstrip("\n").split("\t")[1])
    hand = [
        "", "   ", "a red circle", "A Red Circle", "  a   red\tcircle  ", "a red disk", "a red hexagon",
        "a purple circle", "the red circle", "a red circle near a blue square", "one circle", "one circles",
        "two circle", "a circles", "four red squares", "five circles", "two red circles and three blue squares",
        "two red circles and two blue squares", "a circle and a circle", "a red circle and a circle",
        "a red circle and a blue circle", "a red circle left of a blue circle", "a red circle left a blue square",
        "a red circle left", "a red circle right of", "a red circle above", "a circle below a square",
        "one circle left of a square", "two circles left of a square", "a circle left of one square",
        "a red circle and a blue square and a green triangle", "a red circle and", "and a red circle",
        "red circle", "a", "a red", "two", "circle", "a red circle left of a blue square", "a circle above a circle",
        "a red circle above a red circle", "a green triangle below a yellow square", "three yellow triangles",
        "a red circle, a blue square", "a red circle.", "<pad>", "a <pad> circle", "a red circle left of a blue square ok",
        "a red circle left of a blue square square", "a of circle", "left of a circle", "a circle left of of a square",
        "two red circles and two red squares", "four circles and a square", "three circles and a square",
        "a circle and four squares", "one red circle and a blue square", "a b c d e f g h i",
        "a a a a a a a a a", "a red circle and a blue square left", "A RED CIRCLE LEFT OF A BLUE SQUARE",
        "a\u00a0red circle", "a\u2003red\u3000circle", "a\x1fred circle", "a red\u200bcircle", "a ríd circle",
        "a circle above a triangle", "a red triangle right of a red square", "one red circle", "one triangle",
        "two yellow triangles and a triangle", "two triangles and a red triangle", "two red triangles and a blue triangle",
        "a square and two squares", "a red square and two blue squares",
    ]
    for cap in hand:
        w.parse("hand", cap)
    words = world.VOCAB[1:] + ["hexagon", "purple", "the", "disk", "near", "circles,"]
    for k in range(600):
        n = int(rng.integers(1, 10))
        seq = [words[int(rng.integers(len(words)))] for _ in range(n)]
        w.parse("random", " ".join(seq))
    # near-valid: mutate valid captions by one word
    for k in range(400):
        _, spec, _ = specs[int(rng.integers(len(specs)))]
        ws = world.spec_to_caption(spec).split()
        op = rng.random()
        i = int(rng.integers(len(ws)))
        vocab = world.VOCAB[1:]
        if op < 0.4:
            ws[i] = vocab[int(rng.integers(len(vocab)))]
        elif op < 0.7:
            ws.insert(i, vocab[int(rng.integers(len(vocab)))])
        else:
            del ws[i]
        w.parse("mutated", " ".join(ws))

    w.write(args.out)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(w.cases)} cases, {size} bytes")
    for tag, n in sorted(w.counts.items()):
        print(f"  {tag:14s} {n}")
    print(f"python checker on the exported ground-truth renders: {truth_ok}/{truth_n}")
    stats, fails = world.validate_checker()
    tot = sum(v[0] for v in stats.values()) / sum(v[1] for v in stats.values())
    print(f"python validate_checker (2000 renders): {tot:.4f}")


if __name__ == "__main__":
    main()
