"""Evaluate the exported shapes model on the benchmark prompts with the exact checker.

    OMP_NUM_THREADS=1 python3 tools/shapes/evaluate.py --per-cat 25 --best-of 8 --card tools/shapes/MODEL_CARD.md

For every prompt, --best-of samples are drawn (Euler, --steps steps, CFG --guidance against
the empty prompt, initial noise from torch.Generator seeded with seed*100003 + prompt_index*16
+ k, k = 0..best_of-1).  single = sample k=0 passes; best-of-N = any of the first N samples
passes (checker oracle).  Category accuracy = mean over its prompts; overall = mean of the six
category accuracies (GenEval convention).  --per-cat N takes the first N prompts of each
category (prompts are in generation order, so the subset is deterministic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import model as M  # noqa: E402
import world  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def load_prompts(path, per_cat):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                cat, p = line.split("\t")
                rows.append((cat, p))
    if per_cat:
        seen = {}
        out = []
        for cat, p in rows:
            if seen.get(cat, 0) < per_cat:
                out.append((cat, p))
                seen[cat] = seen.get(cat, 0) + 1
        rows = out
    return rows


@torch.no_grad()
def run_eval(model, prompts, best_of=8, steps=20, guidance=1.75, seed=0, prompt_batch=8, log=True):
    results = []  # (cat, prompt, [pass per sample], [frac per sample])
    samples = {}
    t0 = time.time()
    for b0 in range(0, len(prompts), prompt_batch):
        chunk = prompts[b0:b0 + prompt_batch]
        toks, xs = [], []
        for j, (cat, p) in enumerate(chunk):
            idx = b0 + j
            tk = torch.from_numpy(world.encode(p))
            for k in range(best_of):
                g = torch.Generator().manual_seed(seed * 100003 + idx * 16 + k)
                xs.append(torch.randn(1, 3, 32, 32, generator=g))
                toks.append(tk)
        x = torch.cat(xs)
        tok = torch.stack(toks)
        imgs = M.to_uint8(M.sample(model, tok, steps=steps, guidance=guidance, x=x))
        for j, (cat, p) in enumerate(chunk):
            passes, fracs = [], []
            for k in range(best_of):
                ok, frac, _ = world.check(imgs[j * best_of + k], p)
                passes.append(bool(ok))
                fracs.append(frac)
            results.append((cat, p, passes, fracs))
            samples[b0 + j] = imgs[j * best_of:(j + 1) * best_of]
        if log:
            print(f"  {min(b0 + prompt_batch, len(prompts))}/{len(prompts)} prompts  {time.time() - t0:.0f}s", flush=True)
    return results, samples


def summarize(results, best_of):
    ks = [k for k in (1, 4, 8) if k <= best_of]
    table = {}
    for cat in world.CATEGORIES:
        rs = [r for r in results if r[0] == cat]
        if not rs:
            continue
        row = {"n": len(rs)}
        for k in ks:
            row[f"best{k}"] = float(np.mean([any(r[2][:k]) for r in rs]))
        row["frac1"] = float(np.mean([r[3][0] for r in rs]))
        table[cat] = row
    overall = {f"best{k}": float(np.mean([table[c][f"best{k}"] for c in table])) for k in ks}
    overall["frac1"] = float(np.mean([table[c]["frac1"] for c in table]))
    overall["n"] = sum(table[c]["n"] for c in table)
    return table, overall, ks


def format_table(table, overall, ks):
    hdr = "| category | prompts | " + " | ".join("single sample" if k == 1 else f"best-of-{k}" for k in ks) + " | constraints satisfied (single) |"
    sep = "|" + "---|" * (len(ks) + 3)
    lines = [hdr, sep]
    for cat, row in list(table.items()) + [("**overall** (mean of categories)", overall)]:
        lines.append(f"| {cat} | {row['n']} | " + " | ".join(f"{100 * row[f'best{k}']:.1f}%" for k in ks)
                     + f" | {100 * row['frac1']:.1f}% |")
    return "\n".join(lines)


def save_grid(samples, prompts, path, n=16, best_of=8):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    idx = list(range(0, len(prompts), max(1, len(prompts) // n)))[:n]
    cols = min(best_of, 4)
    fig, axes = plt.subplots(len(idx), cols, figsize=(cols * 1.1 + 3.0, len(idx) * 1.1))
    for r, i in enumerate(idx):
        for c in range(cols):
            ax = axes[r, c] if len(idx) > 1 else axes[c]
            ax.imshow(samples[i][c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == cols - 1:
                ax.text(36, 16, prompts[i][1], fontsize=7, va="center")
    plt.subplots_adjust(left=0.01, right=0.62, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_checker_vectors(samples, prompts, path, per_prompt=2):
    """images uint8 [N,32,32,3]; metadata 'cases' = JSON list of {prompt, passed, fraction,
    failed, detections: [[colour, shape, area, x0, y0, x1, y1], ...]} in image order."""
    from safetensors.numpy import save_file
    imgs, cases = [], []
    for i, (cat, p) in enumerate(prompts):
        for k in range(min(per_prompt, len(samples[i]))):
            img = samples[i][k]
            ok, frac, failed = world.check(img, p)
            dets = [[d["colour"], d["shape"], d["area"], *d["box"]] for d in world.detect(img)]
            imgs.append(img)
            cases.append({"category": cat, "prompt": p, "passed": bool(ok), "fraction": frac,
                          "failed": failed, "detections": dets})
    save_file({"images": np.ascontiguousarray(np.stack(imgs))}, path,
              metadata={"cases": json.dumps(cases), "rules": "tools/shapes/world.py detect/check"})
    print("wrote", path, len(imgs), "images")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    ap.add_argument("--prompts", default=os.path.join(HERE, "benchmark_prompts.txt"))
    ap.add_argument("--per-cat", type=int, default=25)
    ap.add_argument("--best-of", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=1.75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--card", default=None, help="write the model card (markdown) here")
    ap.add_argument("--grid", default=None, help="save a sample grid PNG here")
    ap.add_argument("--json", default=None, help="write raw results JSON here")
    ap.add_argument("--checker-vectors", default=None,
                    help="save generated images + checker verdicts (safetensors) to test a C checker")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, meta = M.load_safetensors(args.weights)
    model.eval()
    prompts = load_prompts(args.prompts, args.per_cat)
    print(f"{len(prompts)} prompts, best-of {args.best_of}, {args.steps} Euler steps, guidance {args.guidance}", flush=True)
    t0 = time.time()
    results, samples = run_eval(model, prompts, args.best_of, args.steps, args.guidance, args.seed)
    secs = time.time() - t0
    table, overall, ks = summarize(results, args.best_of)
    md = format_table(table, overall, ks)
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"table": table, "overall": overall, "meta": meta, "args": vars(args),
                       "results": results}, f, indent=1)
    if args.checker_vectors:
        save_checker_vectors(samples, prompts, args.checker_vectors)
    if args.grid:
        save_grid(samples, prompts, args.grid, best_of=args.best_of)
    if args.card:
        write_card(args, meta, model, md, secs, len(prompts))


def write_card(args, meta, model, md, secs, n_prompts):
    cfg = json.loads(meta["config"])
    steps = int(meta.get("steps", 0))
    tsec = float(meta.get("train_seconds", 0))
    params = M.count_params(model)
    rel = lambda p: os.path.relpath(p, REPO)  # noqa: E731
    text = f"""# Shapes-base: a tiny text-to-image rectified-flow model

Generated by `tools/shapes/evaluate.py` (numbers below are measured, not estimated).

## Model
- Weights: `Plugins/shapes/weights/shapes-base.safetensors` (EMA weights, float16; metadata
  `config`, `vocab`, `steps`, `train_seconds`, `convention`, `time_embedding`, `palette`).
- Architecture (exact forward pass: docstring of `tools/shapes/model.py`): 2x2 pixel-unshuffle
  32x32x3 -> 16x16x12, conv U-Net (ResBlocks with GroupNorm/SiLU/FiLM) down to 8x8x{cfg['ch1']},
  {cfg['mid_layers']} joint-attention adaLN-Zero transformer blocks (width {cfg['width']}, {cfg['heads']} heads) over
  [{cfg['max_tokens']} text tokens; 64 image tokens], decoder with skips; text encoder = token + position
  embeddings and {cfg['text_layers']} pre-LN transformer blocks, trained jointly.
- Parameters: {params:,} ({params / 1e6:.2f} M).
- Config: `{json.dumps(cfg)}`
- Rectified flow: x_t = (1-t) x0 + t noise, v = noise - x0, t=1 noise, t=0 data, data in [-1,1].

## Data
Procedural "shapes world" (`tools/shapes/world.py`): 32x32 RGB, black background, 1-4
non-overlapping objects (circle / square / triangle; red (255,0,0), green (0,255,0),
blue (0,0,255), yellow (255,255,0); box side 7-12 px), no anti-aliasing. Captions from a fixed
grammar (22-word vocabulary, max 8 tokens) over GenEval's six categories; training mixture
{json.dumps(world.TRAIN_MIX)} (position and colour attribution over-sampled), horizontal and
vertical flip augmentation with left/right and above/below swapped, 10% caption dropout to "".
Data are generated on the fly (effectively infinite, never repeated).

## Training
- {steps} steps, batch 32, AdamW lr 1e-3 (warmup, cosine to 5%), EMA decay {meta.get('ema_decay', '0.995')},
  t ~ 80% logit-normal(0,1) + 20% uniform, MSE on velocity.
- Wall time: {tsec / 60:.0f} min on ONE CPU core (torch, 1 thread), ~{tsec / max(1, steps):.2f} s/step.
- Loss curve: `Plugins/shapes/weights/loss.png` (raw log: `Plugins/shapes/weights/loss.csv`).

## Quality (exact checker, `world.check`)
{n_prompts} benchmark prompts (first {args.per_cat} of each category of `tools/shapes/benchmark_prompts.txt`),
{args.best_of} samples per prompt, Euler {args.steps} steps, CFG guidance {args.guidance} against "" ;
evaluation took {secs / 60:.1f} min on one core.  Best-of-N uses the checker as oracle.

{md}

Checker accuracy on ground-truth renders: 100% (2000 scenes, `python3 tools/shapes/world.py`).

## Notes
- Guidance 1.5-2.0 is the useful range; much higher guidance tends to blank colourless prompts.
- Intended use: test model for Assay's inference-time search (best-of-N, verifier-guided search);
  the exact checker is the verifier.
- The 4-step student distilled from these weights (`shapes-turbo`): `tools/shapes/TURBO_CARD.md`.
"""
    with open(args.card, "w") as f:
        f.write(text)
    print("wrote", args.card)


if __name__ == "__main__":
    main()
