"""Measure an exported corrector on the held-out triplets (the trainer's metric, standalone).

    OMP_NUM_THREADS=1 python3 tools/corrector/evaluate.py [--weights Plugins/shapes/weights/shapes-corrector.safetensors]
        [--model-heldout tools/corrector/runs/model-heldout.npz] [--floor 0.5]

Prints pass rates per flaw kind for the corrector, the corrector without its reflection,
shapes-base from the prompt alone and the SDEdit-style training-free path (same NFE), and
exits 1 when the corrector's overall rule-based repair rate is below --floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import corrector_model as CM  # noqa: E402
import model as M  # noqa: E402
import importlib.util  # noqa: E402

# tools/shapes/train.py is on sys.path too: load this folder's train.py by path
_spec = importlib.util.spec_from_file_location("corrector_train", os.path.join(HERE, "train.py"))
T = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(T)
BASE, Evaluator, sha256_file = T.BASE, T.Evaluator, T.sha256_file


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=T.EXPORT)
    p.add_argument("--model-heldout", default="")
    p.add_argument("--per-kind", type=int, default=24)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=1.75)
    p.add_argument("--sdedit", default="0.5,0.7")
    p.add_argument("--floor", type=float, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, meta = CM.load(args.weights)
    model.eval()
    if meta.get("base_sha256") != sha256_file(BASE):
        print("warning: the corrector was tuned from other base weights than the committed shapes-base")
    base, _ = M.load_safetensors(BASE)
    base.eval()
    with tempfile.TemporaryDirectory() as d:
        ev = Evaluator(args.per_kind, args.steps, args.guidance, d, base,
                       [float(v) for v in args.sdedit.split(",") if v], args.model_heldout or None)
        r = ev.evaluate(model)
    print(f"weights {args.weights} (step {meta.get('steps')}), NFE {2 * args.steps}")
    for sname in ev.sets:
        b = ev.baselines[sname]
        rows = {"corrector": r["corrector" if sname == "rule" else f"{sname}_corrector"],
                "corrector, no reflection": r["noref" if sname == "rule" else f"{sname}_noref"],
                **{k: v for k, v in b.items() if isinstance(v, dict)}}
        kinds = ev.sets[sname].kinds + ["all"]
        print(f"\n{sname} held-out set ({b['n']} triplets)\n| | " + " | ".join(kinds) + " |")
        print("|---|" + "---|" * len(kinds))
        for name, v in rows.items():
            print(f"| {name} | " + " | ".join(f"{100 * v[k]:.0f}%" for k in kinds) + " |")
    print(json.dumps(r))
    if args.floor is not None and r["corrector"]["all"] < args.floor:
        print(f"FAIL: repair rate {r['corrector']['all']:.3f} < floor {args.floor}")
        sys.exit(1)


if __name__ == "__main__":
    main()
