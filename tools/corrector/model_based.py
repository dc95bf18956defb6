"""Model-based triplets: the base model's own failing samples (GenRef's "reward-based" source).

    OMP_NUM_THREADS=1 python3 tools/corrector/model_based.py --n 256 --seed 0 \
        --out tools/corrector/runs/model-based-0.npz

For n prompts drawn like the training data (world.TRAIN_MIX), shapes-base samples one image
each (20 Euler steps, CFG 1.75, as the daemon does).  Every image the checker fails becomes a
triplet:
  flawed     the sample itself (soft edges, model artefacts: what the corrector meets in use),
  reflection the reflector's feedback on it (data.reflect on world.detect's detections; the C
             plugin's answer is compared for every image and mismatches are counted),
  corrected  a clean render of the DETECTED layout with the reflection's edits applied
             (data.repair_scene: keep matching objects in place, recolour / reshape in place,
             add missing objects in free places, move the subject for a failed relation);
             kept only if it passes the checker.
The npz (uint8 images, prompts, reflections) is read by train.py --model-data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools/shapes"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data as D  # noqa: E402
import model as M  # noqa: E402
import world  # noqa: E402
from c_reflector import CReflector  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=1.75)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base, _ = M.load_safetensors(os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    base.eval()
    rng = np.random.default_rng([args.seed, 77])
    cats = list(world.TRAIN_MIX)
    pr = np.array([world.TRAIN_MIX[c] for c in cats])
    specs = [world.sample_spec(rng, cats[rng.choice(len(cats), p=pr / pr.sum())]) for _ in range(args.n)]
    prompts = [world.spec_to_caption(s) for s in specs]
    tok = torch.from_numpy(np.stack([world.encode(c) for c in prompts]))
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    imgs = []
    for i in range(0, args.n, 32):
        imgs.append(M.to_uint8(M.sample(base, tok[i:i + 32], steps=args.steps, guidance=args.guidance, generator=g)))
    imgs = np.concatenate(imgs)
    print(f"sampled {args.n} in {time.time() - t0:.0f}s", flush=True)
    cr = CReflector()
    out = {"flawed": [], "corrected": [], "prompt": [], "reflection": [], "negative": [], "revised": []}
    agree = fails = no_repair = 0
    t0 = time.time()
    for img, spec, prompt in zip(imgs, specs, prompts):
        c = cr.reflect(prompt, [img])[0]
        dets = D.image_dets(img)
        py = D.reflect(spec, dets)
        same = all(c.get(k, "") == py.get(k, "") for k in ("feedback", "negative_prompt", "revised_prompt", "pass"))
        agree += same
        if not same and agree < 5:
            print("MISMATCH", prompt, "\n  C :", c, "\n  Py:", py)
        if c["pass"]:
            continue
        fails += 1
        fixed = None
        for _ in range(5):
            objs = D.repair_scene(rng, spec, dets)
            if objs is not None and cr.reflect(prompt, [world.render(objs)])[0]["pass"]:
                fixed = objs
                break
        if fixed is None:
            no_repair += 1
            continue
        out["flawed"].append(img)
        out["corrected"].append(world.render(fixed))
        out["prompt"].append(prompt)
        out["reflection"].append(c["feedback"])
        out["negative"].append(c.get("negative_prompt", ""))
        out["revised"].append(c["revised_prompt"])
    print(f"reflector agreement on base samples (Python on world.detect vs C plugin): {agree}/{args.n}; "
          f"failing samples {fails}, triplets {len(out['prompt'])}, no repair found {no_repair}; "
          f"{time.time() - t0:.0f}s", flush=True)
    np.savez_compressed(args.out, flawed=np.stack(out["flawed"]), corrected=np.stack(out["corrected"]),
                        prompt=np.array(out["prompt"]), reflection=np.array(out["reflection"]),
                        negative=np.array(out["negative"]), revised=np.array(out["revised"]))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
