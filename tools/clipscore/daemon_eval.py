"""Agreement of shapes-clipscore with the exact checker on REAL model samples, through assayd.

    python3 tools/clipscore/daemon_eval.py --address unix:path=/tmp/clipbus --per-cat 10 --n 8

Submits the first --per-cat benchmark prompts of each category (tools/shapes/benchmark_prompts.txt)
as best-of-n jobs scored by both shapes-clipscore and shapes-checker, waits for each, reads the
manifest and reports, over the candidates the model drew:
  * clip_top_passes: how often shapes-clipscore's top candidate passes the checker (score 1),
  * random_passes:   the mean pass rate (a random pick),
  * oracle_passes:   how often at least one candidate passes (the checker as verifier),
  * agreement:       clip_top_passes / oracle_passes (the pick passes, given that one could).
Needs a running assayd (see tools/clipscore/README.md) with the shapes model loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CATS = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]


def busctl(address, *args):
    out = subprocess.run(["busctl", f"--address={address}", *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default="unix:path=/tmp/clipbus")
    ap.add_argument("--per-cat", type=int, default=10)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", default=None, help="write the per-prompt rows as JSON here")
    args = ap.parse_args()
    rows = []
    with open(os.path.join(REPO, "tools", "shapes", "benchmark_prompts.txt")) as f:
        seen = {}
        for line in f:
            cat, p = line.rstrip("\n").split("\t")
            if seen.get(cat, 0) < args.per_cat:
                seen[cat] = seen.get(cat, 0) + 1
                rows.append((cat, p))
    results = []
    for cat, prompt in rows:
        out = busctl(args.address, "call", "io.assay.Assay1", "/io/assay/Assay1", "io.assay.Manager1", "Submit",
                     "sa{sv}", prompt, "4", "strategy", "s", "best-of-n", "n", "u", str(args.n), "verifiers", "as",
                     "2", "shapes-clipscore", "shapes-checker", "seed", "t", str(1000 + len(results)))
        job = out.split()[1].strip('"')
        for _ in range(600):
            state = busctl(args.address, "get-property", "io.assay.Assay1", job, "io.assay.Job1", "State").split()[1]
            if state.strip('"') in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        path = busctl(args.address, "get-property", "io.assay.Assay1", job, "io.assay.Job1",
                      "ManifestPath").split(None, 1)[1].strip('"')
        with open(path) as f:
            man = json.load(f)
        cands = man["candidates"]
        clip = [c["scores"]["shapes-clipscore"] for c in cands]
        passes = [c["scores"]["shapes-checker"] >= 1.0 for c in cands]
        top = max(range(len(cands)), key=lambda i: clip[i])
        results.append({"category": cat, "prompt": prompt, "clip": clip, "passes": passes, "top": top})
        print(f"{cat:13s} {prompt:42s} passes {sum(passes)}/{len(passes)}  clip top passes: {passes[top]}",
              flush=True)
    print()
    tot = {"clip_top_passes": 0.0, "random_passes": 0.0, "oracle_passes": 0.0}
    per = {}
    for r in results:
        d = per.setdefault(r["category"], [0, 0.0, 0, 0])
        d[0] += r["passes"][r["top"]]
        d[1] += sum(r["passes"]) / len(r["passes"])
        d[2] += any(r["passes"])
        d[3] += 1
    print(f"{'category':13s} clip-top  random  oracle  (n={args.n} samples per prompt)")
    for cat in CATS:
        if cat in per:
            a, b, c, n = per[cat]
            print(f"{cat:13s} {a / n:8.3f} {b / n:7.3f} {c / n:7.3f}")
    n = len(results)
    tot["clip_top_passes"] = sum(r["passes"][r["top"]] for r in results) / n
    tot["random_passes"] = sum(sum(r["passes"]) / len(r["passes"]) for r in results) / n
    tot["oracle_passes"] = sum(any(r["passes"]) for r in results) / n
    tot["agreement"] = tot["clip_top_passes"] / tot["oracle_passes"] if tot["oracle_passes"] else float("nan")
    print(f"{'all':13s} {tot['clip_top_passes']:8.3f} {tot['random_passes']:7.3f} {tot['oracle_passes']:7.3f}"
          f"   agreement (clip pick passes | some candidate passes) {tot['agreement']:.3f}  ({n} prompts)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": tot, "per_prompt": results}, f, indent=1)


if __name__ == "__main__":
    main()
