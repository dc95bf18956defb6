"""Choose the judge's detection threshold on scenes the validation never sees (seed 7, not
yardstick's 20261202): recall and false passes at each threshold, blur 0, 0.6, 0.9, 1.2 and
1.2 with colour shifts, pooled over the six categories.

    python3 tools/judge/tune.py [--per-category 40] [--weights PATH]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import judge  # noqa: E402
import world  # noqa: E402
import yardstick  # noqa: E402

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-category", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--weights", default=judge.WEIGHTS)
    a = ap.parse_args()
    net = judge.Net.load(a.weights)
    print("| set | " + " | ".join(f"t={t:g} R / FP" for t in THRESHOLDS) + " |")
    print("|---|" + "---|" * len(THRESHOLDS))
    for blur, shift in ((0.0, False), (0.6, False), (0.9, False), (1.2, False), (1.2, True)):
        cases = yardstick.validation_set(blur, a.per_category, a.seed, colour_shift=shift)
        outs = [net.forward(c["image"]) for c in cases]
        cells = []
        for t in THRESHOLDS:
            rows = [(c, judge.rules(judge.decode(o, t), world.parse(c["caption"]))[0])
                    for c, o in zip(cases, outs)]
            r = yardstick.table(rows)["overall"]
            cells.append(f"{r[0] * 100:.1f} / {r[1] * 100:.1f}")
        print(f"| blur {blur:g}{' + colour shift' if shift else ''} | " + " | ".join(cells) + " |", flush=True)
