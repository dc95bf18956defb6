"""The shapes judge in numpy (no torch): the twin of the C plugin `shapes-judge`.

    net = Net.load()                               Plugins/shapes/weights/shapes-judge.safetensors
    passed, score, details = judge(img, caption)   img uint8 (H, W, 3), any size >= 1x1

Detection is learned (a small CenterNet-style CNN, tools/judge/train.py), nothing of the
checker's pixel classification, components or template fits is used. The caption rules are
the benchmark's (world.parse, GenEval counting, world.relative_position), shared on purpose.

Decoding (the C plugin does exactly this):
  * images that are not 32x32 are resampled to 32x32 by nearest neighbour: source pixel
    floor((d + 0.5) * size / 32) for destination d; boxes are reported in the input's pixels
  * input x = byte / 255 (float32), the network gives 15 maps on a 16x16 grid
  * per cell: m = the highest of the 12 class logits (first on ties), its class
  * a cell is a detection when m > logit(THRESHOLD) and m is a local maximum of the 3x3
    neighbourhood (strictly above the neighbours before it in raster order, at least equal
    to the ones after it)
  * centre = 2 * (cell + offset), side = max(1, 8 * size map), box = centre -/+ side / 2,
    confidence = sigmoid(m); relations are computed on the 32x32 frame
"""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "shapes"))
import world  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
WEIGHTS = os.path.join(ROOT, "Plugins", "shapes", "weights", "shapes-judge.safetensors")
THRESHOLD = 0.35
NATIVE = 32


def read_safetensors(path):
    """-> (tensors {name: np.ndarray}, metadata dict). numpy only."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", {})
    dt = {"F32": np.float32, "U8": np.uint8, "I32": np.int32, "I64": np.int64}
    out = {}
    for k, v in hdr.items():
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt[v["dtype"]]).reshape(v["shape"]).copy()
    return out, meta


ARCH = [("c1", 1, 1), ("c2", 2, 1), ("c3", 1, 1), ("c4", 1, 2), ("c5", 1, 2), ("head", 1, 1)]


def conv2d(x, w, b, stride, dil):
    """x (C, H, W) float32, w (O, C, k, k): zero padding dil*(k//2)."""
    c, h, wd = x.shape
    o, _, k, _ = w.shape
    p = dil * (k // 2)
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    ho = (h + 2 * p - dil * (k - 1) - 1) // stride + 1
    wo = (wd + 2 * p - dil * (k - 1) - 1) // stride + 1
    cols = np.empty((c, k, k, ho, wo), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xp[:, i * dil:i * dil + stride * (ho - 1) + 1:stride,
                               j * dil:j * dil + stride * (wo - 1) + 1:stride]
    y = w.reshape(o, -1) @ cols.reshape(c * k * k, -1)
    return (y + b[:, None]).reshape(o, ho, wo).astype(np.float32)


class Net:
    def __init__(self, tensors, threshold=THRESHOLD):
        self.t = tensors
        self.threshold = threshold

    @classmethod
    def load(cls, path=WEIGHTS):
        """The weights and the detection threshold stored in their metadata (as C reads it)."""
        tensors, meta = read_safetensors(path)
        return cls(tensors, float(meta["threshold"]))

    def forward(self, img_u8):
        x = (img_u8.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)
        for idx, (name, st, dil) in enumerate(ARCH):
            x = conv2d(x, self.t[f"{name}.weight"], self.t[f"{name}.bias"], st, dil)
            if idx < len(ARCH) - 1:
                x = np.maximum(x, 0)
        return x


def resize_nearest(img):
    h, w = img.shape[:2]
    if (h, w) == (NATIVE, NATIVE):
        return img
    ys = ((np.arange(NATIVE) * 2 + 1) * h) // (2 * NATIVE)
    xs = ((np.arange(NATIVE) * 2 + 1) * w) // (2 * NATIVE)
    return img[ys][:, xs]


def decode(out, threshold=THRESHOLD):
    cls_logits = out[:12]
    m = cls_logits.max(axis=0)
    k = cls_logits.argmax(axis=0)
    t = np.log(threshold / (1 - threshold))
    g = m.shape[0]
    dets = []
    for i in range(g):
        for j in range(g):
            v = m[i, j]
            if not v > t:
                continue
            peak = True
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    if (di, dj) == (0, 0):
                        continue
                    ii, jj = i + di, j + dj
                    if 0 <= ii < g and 0 <= jj < g:
                        before = (di, dj) < (0, 0)
                        if (before and not v > m[ii, jj]) or (not before and not v >= m[ii, jj]):
                            peak = False
            if not peak:
                continue
            cx = 2.0 * (j + float(out[12, i, j]))
            cy = 2.0 * (i + float(out[13, i, j]))
            s = max(1.0, 8.0 * float(out[14, i, j]))
            c = int(k[i, j])
            dets.append({"shape": world.SHAPES[c % 3], "colour": world.COLOURS[c // 3],
                         "box": (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2),
                         "confidence": float(1.0 / (1.0 + np.exp(-float(v))))})
    return dets


def _matches(d, g):
    return d["shape"] == g["shape"] and (g["colour"] is None or d["colour"] == g["colour"])


def rules(dets, spec):
    """GenEval rules on detections -> (passed, score, failed)."""
    failed, total = [], 0
    for g in spec["groups"]:
        total += 1
        n = sum(1 for d in dets if _matches(d, g))
        desc = " ".join(world._group_words(g))
        if g["exact"] and n != g["count"]:
            failed.append(f"count '{desc}': want exactly {g['count']}, found {n}")
        elif not g["exact"] and n < g["count"]:
            failed.append(f"count '{desc}': want >= {g['count']}, found {n}")
    if spec["relation"]:
        total += 1
        g0, g1 = spec["groups"]
        ok = any(spec["relation"] in world.relative_position(a["box"], b["box"])
                 for a in dets if _matches(a, g0) for b in dets if _matches(b, g1))
        if not ok:
            failed.append(f"relation '{spec['relation']}' not satisfied")
    if total == 0:
        return True, 1.0, []
    return not failed, (total - len(failed)) / total, failed


_NET = None


def judge(img, caption, net=None):
    """-> (passed, score, details dict like the plugin's JSON)."""
    global _NET
    if net is None:
        if _NET is None:
            _NET = Net.load()
        net = _NET
    spec = world.parse(caption) if isinstance(caption, str) else caption
    h, w = img.shape[:2]
    dets = decode(net.forward(resize_nearest(img)), net.threshold)
    passed, score, failed = rules(dets, spec)
    sx, sy = w / NATIVE, h / NATIVE
    shown = [{"shape": d["shape"], "colour": d["colour"],
              "box": [d["box"][0] * sx, d["box"][1] * sy, d["box"][2] * sx, d["box"][3] * sy],
              "confidence": d["confidence"]} for d in dets]
    return passed, score, {"pass": passed, "score": score, "failed": failed, "detected": shown}


if __name__ == "__main__":
    import argparse
    import yardstick
    ap = argparse.ArgumentParser(description="The judge's yardstick table.")
    ap.add_argument("--per-category", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--weights", default=WEIGHTS)
    ap.add_argument("--colour-shift", action="store_true", help="yardstick's per-channel gain/offset too")
    a = ap.parse_args()
    net = Net.load(a.weights)
    by_blur = {}
    for blur in yardstick.BLURS:
        cases = yardstick.validation_set(blur, a.per_category, a.seed, colour_shift=a.colour_shift)
        by_blur[blur] = yardstick.table([(c, judge(c["image"], c["caption"], net)[0]) for c in cases])
        print(f"blur {blur:g} done", file=sys.stderr, flush=True)
    print(yardstick.format_table(by_blur, "shapes-judge" + (" (colour shift)" if a.colour_shift else "")))
