"""The yardstick's validation set: renders of the shapes world, correct and wrong, degraded
the way model outputs are soft, with the truth known from the scene, not from any checker.

A verifier that reports pass rates has to be right on images like the model's, which are
never the crisp palette renders `world.render` draws. This module makes those images and
says, for each, whether the *scene* satisfies its caption (`scene_truth`, the GenEval rules
on the object list itself), so any judge (the checker, the independent judge, a daemon's
`Score`) can be measured against something it did not compute.

    degrade(img, blur, noise, rng)            Gaussian blur of sigma `blur` px per channel,
                                              Gaussian noise of sigma `noise` levels, uint8
    validation_set(blur, per_category, seed)  correct and wrong scenes of all six categories
    table(results)                            recall / false-pass per category

Python 3 + numpy only. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

import world

BLURS = (0.0, 0.6, 0.9, 1.2)
NOISE = 8.0


# ----------------------------------------------------------------------------- degradation
def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (edge padding) of an (H, W, 3) array; float64 out."""
    out = img.astype(np.float64)
    if sigma <= 0:
        return out
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(out, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * pad[i:i + out.shape[0]] for i in range(2 * r + 1))
    pad = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    out = sum(k[i] * pad[:, i:i + out.shape[1]] for i in range(2 * r + 1))
    return out


def degrade(img: np.ndarray, blur: float, noise: float, rng: np.random.Generator,
            colour_shift: bool = False) -> np.ndarray:
    """blur, optional per-channel gain/offset (small colour shifts), noise, round to uint8."""
    x = gaussian_blur(img, blur)
    if colour_shift:
        x = x * rng.uniform(0.8, 1.0, size=3) + rng.uniform(0, 25, size=3)
    x = x + rng.normal(0.0, noise, size=x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- truth
def _matches(o, g):
    return o["shape"] == g["shape"] and (g["colour"] is None or o["colour"] == g["colour"])


def scene_truth(objs, spec) -> bool:
    """world.check's rules applied to the scene's own objects (exact boxes, exact shapes)."""
    for g in spec["groups"]:
        n = sum(1 for o in objs if _matches(o, g))
        if (g["exact"] and n != g["count"]) or (not g["exact"] and n < g["count"]):
            return False
    if spec["relation"]:
        g0, g1 = spec["groups"]
        return any(spec["relation"] in world.relative_position(world._obj_box(a), world._obj_box(b))
                   for a in objs if _matches(a, g0) for b in objs if _matches(b, g1))
    return True


# ----------------------------------------------------------------------------- wrong scenes
def _place(rng, objs, shape, colour, smax=10):
    for _ in range(200):
        s = int(rng.integers(7, smax + 1))
        x0 = int(rng.integers(0, world.W - s + 1))
        y0 = int(rng.integers(0, world.H - s + 1))
        if world._boxes_clear(objs, x0, y0, s):
            return objs + [{"shape": shape, "colour": colour, "x0": x0, "y0": y0, "s": s}]
    return None


def _other(rng, items, current):
    choices = [x for x in items if x != current]
    return choices[int(rng.integers(len(choices)))]


def mutate(rng, objs, spec):
    """One defect a model makes: a wrong count, colour or shape, swapped positions, a missing
    object. -> (kind, objects); the result may still satisfy the caption (check scene_truth)."""
    kinds = ["colour", "shape", "missing"] if len(objs) > 1 else ["colour", "shape"]
    if any(g["exact"] for g in spec["groups"]):
        kinds += ["count", "count"]
    if spec["relation"]:
        kinds += ["swap", "swap"]
    kind = kinds[int(rng.integers(len(kinds)))]
    new = [dict(o) for o in objs]
    if kind == "colour":
        i = int(rng.integers(len(new)))
        new[i]["colour"] = _other(rng, world.COLOURS, new[i]["colour"])
    elif kind == "shape":
        i = int(rng.integers(len(new)))
        new[i]["shape"] = _other(rng, world.SHAPES, new[i]["shape"])
    elif kind == "missing":
        del new[int(rng.integers(len(new)))]
    elif kind == "count":
        g = spec["groups"][0]
        if rng.random() < 0.5 and len(new) < 4:
            grown = _place(rng, new, g["shape"], g["colour"] or world.COLOURS[int(rng.integers(4))])
            new = grown if grown is not None else new[:-1]
        else:
            del new[int(rng.integers(len(new)))]
    else:  # swap: mirror the layout along the relation's axis
        new, _ = world.flip_scene(new, spec, horizontal=spec["relation"] in ("left of", "right of"))
    return kind, new


# ----------------------------------------------------------------------------- the set
def validation_set(blur: float, per_category: int = 100, seed: int = 20261202,
                   noise: float = NOISE, colour_shift: bool = False):
    """-> list of dicts(category, caption, kind ('correct' or the defect), truth, image).
    `per_category` correct and `per_category` wrong scenes of each of the six categories;
    wrong scenes are kept only when scene_truth says they really fail. The scenes depend
    only on the seed (not on blur), so rows of the table at different blurs show the same
    scenes."""
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, int(round(blur * 1000)), int(round(noise * 1000))])
    out = []
    for cat in world.CATEGORIES:
        correct = wrong = 0
        while correct < per_category or wrong < per_category:
            spec = world.sample_spec(rng, cat)
            objs = world.scene_from_spec(rng, spec)
            caption = world.spec_to_caption(spec)
            if correct < per_category:
                out.append({"category": cat, "caption": caption, "kind": "correct",
                            "truth": scene_truth(objs, spec),
                            "image": degrade(world.render(objs), blur, noise, noise_rng, colour_shift)})
                correct += 1
            if wrong < per_category:
                kind, bad = mutate(rng, objs, spec)
                if not scene_truth(bad, spec):
                    out.append({"category": cat, "caption": caption, "kind": kind, "truth": False,
                                "image": degrade(world.render(bad), blur, noise, noise_rng, colour_shift)})
                    wrong += 1
    return out


def table(rows):
    """rows: list of (case dict, verdict bool). -> {category: (recall, false_pass, n_pos, n_neg)}
    plus 'overall' (pooled)."""
    stats = {c: [0, 0, 0, 0] for c in world.CATEGORIES + ["overall"]}
    for case, verdict in rows:
        for key in (case["category"], "overall"):
            s = stats[key]
            if case["truth"]:
                s[0] += bool(verdict)
                s[1] += 1
            else:
                s[2] += bool(verdict)
                s[3] += 1
    return {k: (s[0] / max(s[1], 1), s[2] / max(s[3], 1), s[1], s[3]) for k, s in stats.items()}


def format_table(by_blur, title="judge"):
    """by_blur: {blur: table(...)} -> markdown table text (recall / false pass per category)."""
    cats = world.CATEGORIES + ["overall"]
    lines = [f"| {title}: blur σ (noise σ = {NOISE:g}) | " + " | ".join(cats) + " |",
             "|---|" + "---|" * len(cats)]
    for blur, t in by_blur.items():
        lines.append(f"| {blur:g}: recall | " + " | ".join(f"{t[c][0] * 100:.1f}" for c in cats) + " |")
        lines.append(f"| {blur:g}: false pass | " + " | ".join(f"{t[c][1] * 100:.1f}" for c in cats) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Validate world.check (the Python checker) on degraded renders.")
    ap.add_argument("--per-category", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261202)
    args = ap.parse_args()
    by_blur = {}
    for blur in BLURS:
        cases = validation_set(blur, args.per_category, args.seed)
        by_blur[blur] = table([(c, world.check(c["image"], c["caption"])[0]) for c in cases])
    print(format_table(by_blur, "world.check"))
