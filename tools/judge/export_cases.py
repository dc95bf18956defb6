"""Writes Plugins/shapes/judge/cases.bin: degraded renders of the yardstick (blur 0.9,
noise 8, its validation seed) with their truth and the numpy judge's verdict, for the C test
(verdicts must agree with judge.py; recall and false passes must stay within floors).

    python3 tools/judge/export_cases.py [--per-category 16]

Format (little-endian): "SJCASES1", u32 n, then per case: u8 category (world.CATEGORIES
index), u8 truth, u8 numpy pass, u8 caption length, caption bytes, f32 numpy score,
32*32*3 image bytes (row-major RGB). numpy only.
"""

import argparse
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import judge  # noqa: E402
import world  # noqa: E402  (judge put tools/shapes on the path)
import yardstick  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "Plugins", "shapes", "judge", "cases.bin")

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-category", type=int, default=16)
    ap.add_argument("--blur", type=float, default=0.9)
    a = ap.parse_args()
    cases = yardstick.validation_set(a.blur, a.per_category)
    net = judge.Net.load()
    blob = bytearray(b"SJCASES1" + struct.pack("<I", len(cases)))
    rows = []
    for c in cases:
        ok, score, _ = judge.judge(c["image"], c["caption"], net)
        rows.append((c, ok))
        cap = c["caption"].encode()
        blob += struct.pack("<BBBB", world.CATEGORIES.index(c["category"]), int(c["truth"]), int(ok), len(cap))
        blob += cap + struct.pack("<f", score) + c["image"].astype(np.uint8).tobytes()
    tmp = OUT + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, OUT)
    t = yardstick.table(rows)["overall"]
    print(f"wrote {OUT}: {len(cases)} cases, recall {t[0]:.4f} ({t[2]}), false pass {t[1]:.4f} ({t[3]})")
