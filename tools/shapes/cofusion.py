"""Measure the Co-Fusion premise: does the turbo student's sketch keep the base model's layout?

    OMP_NUM_THREADS=1 python3 tools/shapes/cofusion.py --per-cat 15 --seeds 4 --out tools/shapes/COFUSION.md

For each benchmark prompt and seed, the base model (20 uniform Euler steps, guidance 1.75,
exactly as the daemon runs it) is sampled from noise and its state x_{t_k} kept at every step
k.  From x_{t_k} we finish the image three ways and compare each with the base model's own
20-step result from the same noise:
  turbo-m   the student, m uniform Euler steps from t_k to 0, guidance 1 (m NFE);
  base-m    the base model itself, m uniform guided steps from t_k to 0 (2m NFE),
            i.e. the same schedule truncated: what you get without a student.
Reported per k and finisher:
  agree     the checker's verdict (pass/fail) on the sketch equals its verdict on the result;
  layout    mean IoU of the sketch's and the result's colour masks (pixels classified to the
            palette as the checker does; background excluded), 1 = same layout;
  |dpx|     mean absolute pixel difference (0..255) over pixels that are foreground in
            either image;
  pass      GenEval-style pass rate of the sketches themselves (k = 0: the finisher alone);
  sel       Co-Fusion early selection: per prompt, pick the seed whose sketch scores best
            with the checker (ties: lower seed); pass rate of the base results of the picks
            (compare: one random seed = the first, and the oracle over the base results).
  NFE       per candidate: k guided base steps (2k) + the finisher's NFEs, vs 40 for the base.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import model as M  # noqa: E402
import world  # noqa: E402
from evaluate import load_prompts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
STEPS, GUIDANCE = 20, 1.75


def layout_iou(la, lb):
    """Mean over palette colours present in either label map of the IoU of their pixel masks."""
    ious = []
    for c in range(1, 5):
        ma, mb = la == c, lb == c
        u = (ma | mb).sum()
        if u:
            ious.append((ma & mb).sum() / u)
    return float(np.mean(ious)) if ious else 1.0


def fg_pixel_distance(a, b, la, lb):
    """Mean |a - b| (0..255) over pixels that are foreground in either label map."""
    fg = (la != 0) | (lb != 0)
    if not fg.any():
        return 0.0
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32))[fg].mean())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    p.add_argument("--turbo", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-turbo.safetensors"))
    p.add_argument("--prompts", default=os.path.join(HERE, "benchmark_prompts.txt"))
    p.add_argument("--per-cat", type=int, default=15)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--ks", default="0,2,4,6,8,10")
    p.add_argument("--sketch-steps", default="1,2,4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the tables as Markdown here")
    args = p.parse_args()
    torch.set_num_threads(1)
    base, _ = M.load_safetensors(args.base)
    turbo, tmeta = M.load_safetensors(args.turbo)
    base.eval()
    turbo.eval()
    prompts = load_prompts(args.prompts, args.per_cat)
    ks = [int(k) for k in args.ks.split(",")]
    ms = [int(m) for m in args.sketch_steps.split(",")]
    finishers = [(f"turbo-{m}", m) for m in ms] + [(f"base-{m}", m) for m in ms if m >= 2]
    # rows[(k, finisher)] -> list of per-sample dicts; also base results per sample
    rows = {}
    base_pass = []  # [prompt][seed]
    sketch_score = {}  # (k, fin) -> [prompt][seed] checker fraction
    sketch_pass = {}  # (k, fin) -> [prompt][seed] checker verdict
    t0 = time.time()
    for pi, (cat, prompt) in enumerate(prompts):
        tok = torch.from_numpy(world.encode(prompt))[None].repeat(args.seeds, 1)
        x = torch.cat([torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(
            args.seed * 100003 + pi * 16 + s)) for s in range(args.seeds)])
        states = M.euler_states(base, x, tok, 1.0, STEPS, GUIDANCE)
        res = M.to_uint8(states[-1].clamp(-1, 1))
        checks = [world.check(res[s], prompt) for s in range(args.seeds)]
        res_labels = [world.classify_pixels(res[s]) for s in range(args.seeds)]
        base_pass.append([bool(c[0]) for c in checks])
        for k in ks:
            tk = 1.0 - k / STEPS
            for name, m in finishers:
                if name.startswith("turbo"):
                    y = M.euler_states(turbo, states[k], tok, tk, m, 1.0)[-1]
                else:
                    y = M.euler_states(base, states[k], tok, tk, m, GUIDANCE)[-1]
                sk = M.to_uint8(y.clamp(-1, 1))
                scores, oks = [], []
                for s in range(args.seeds):
                    ok, frac, _ = world.check(sk[s], prompt)
                    scores.append(frac)
                    oks.append(bool(ok))
                    ls = world.classify_pixels(sk[s])
                    rows.setdefault((k, name), []).append({
                        "cat": cat, "agree": bool(ok) == base_pass[-1][s],
                        "layout": layout_iou(ls, res_labels[s]),
                        "dpx": fg_pixel_distance(sk[s], res[s], ls, res_labels[s])})
                sketch_score.setdefault((k, name), []).append(scores)
                sketch_pass.setdefault((k, name), []).append(oks)
        if (pi + 1) % 10 == 0:
            print(f"  {pi + 1}/{len(prompts)} prompts  {time.time() - t0:.0f}s", flush=True)

    bp = np.array(base_pass)
    cats = sorted({c for c, _ in prompts})
    cat_of = np.array([c for c, _ in prompts])

    def geneval(passes_per_prompt):
        return float(np.mean([passes_per_prompt[cat_of == c].mean() for c in cats]))

    single = geneval(bp[:, 0].astype(float))
    oracle = geneval(bp.any(1).astype(float))
    lines = [f"Base model: {len(prompts)} prompts ({args.per_cat} per category) x {args.seeds} seeds, "
             f"{STEPS} steps, guidance {GUIDANCE}. Student: {os.path.basename(args.turbo)} "
             f"(distill steps {tmeta.get('distill_steps', '?')}, teacher {tmeta.get('teacher_sha256', '?')[:12]}).",
             "",
             f"Base results pass (GenEval-style overall): one seed {single:.3f}; best of {args.seeds} "
             f"with the checker on the full results (oracle, {args.seeds * 2 * STEPS} NFE/prompt) {oracle:.3f}.",
             "",
             "| start k (t_k) | finisher | NFE/candidate | pass | agree | layout IoU | \\|dpx\\| fg | sel from sketches |",
             "|---|---|---|---|---|---|---|---|"]
    for k in ks:
        for name, m in finishers:
            r = rows[(k, name)]
            nfe = 2 * k + (m if name.startswith("turbo") else 2 * m)
            sc = np.array(sketch_score[(k, name)])
            pick = sc.argmax(1)
            sel = geneval(bp[np.arange(len(prompts)), pick].astype(float))
            sp = geneval(np.array(sketch_pass[(k, name)])[:, 0].astype(float))
            lines.append(f"| {k} ({1 - k / STEPS:.2f}) | {name} | {nfe} | {sp:.3f} | {np.mean([x['agree'] for x in r]):.3f} | "
                         f"{np.mean([x['layout'] for x in r]):.3f} | {np.mean([x['dpx'] for x in r]):.1f} | {sel:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
