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

import os

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


# ----------------------------------------------------------------------------- through the daemon
def write_png(path, img: np.ndarray):
    """A plain RGB8 PNG (zlib, no filter), so the tool needs nothing beyond numpy."""
    import struct
    import zlib
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


class Daemon:
    """assayd on a private dbus-daemon, driven with assayctl (the client a user types)."""

    def __init__(self, assayd, assayctl, plugins):
        import subprocess
        import tempfile
        import time
        self.tmp = tempfile.mkdtemp(prefix="assay-yardstick-")
        self.address = f"unix:path={self.tmp}/bus"
        self.assayctl = assayctl
        self.bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.address}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(f"{self.tmp}/bus"):
                break
            time.sleep(0.01)
        self.daemon = subprocess.Popen([assayd, "--address", self.address, "--plugin-dir", plugins,
                                        "--state-dir", f"{self.tmp}/state", "--log-level", "warning"])
        for _ in range(300):
            if subprocess.run([assayctl, "--address", self.address, "plugins"], capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        self.close()
        raise SystemExit("assayd did not start")

    def score(self, caption, paths, verifiers):
        """-> per path {verifier: pass} via `assayctl score --json`."""
        import json
        import subprocess
        cmd = [self.assayctl, "--address", self.address, "score", "--prompt", caption, "--json"]
        for v in verifiers:
            cmd += ["--verifier", v]
        r = subprocess.run(cmd + list(paths), capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"assayctl score failed: {r.stderr.strip()}")
        return [{v: bool(o["pass"][v]) for v in verifiers} for o in json.loads(r.stdout)]

    def close(self):
        import shutil
        self.daemon.terminate()
        self.daemon.wait()
        self.bus.terminate()
        self.bus.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def daemon_verdicts(daemon, cases, verifiers):
    """Every case scored through the daemon, 16 images a call, grouped by caption."""
    by_caption = {}
    for i, c in enumerate(cases):
        by_caption.setdefault(c["caption"], []).append(i)
    out = [None] * len(cases)
    for caption, idx in by_caption.items():
        for at in range(0, len(idx), 16):
            chunk = idx[at:at + 16]
            paths = []
            for i in chunk:
                paths.append(os.path.join(daemon.tmp, f"case{i}.png"))
                write_png(paths[-1], cases[i]["image"])
            for i, verdict in zip(chunk, daemon.score(caption, paths, verifiers)):
                out[i] = verdict
            for p in paths:
                os.unlink(p)
    return out


if __name__ == "__main__":
    import argparse
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description="The yardstick: recall on degraded correct renders and false "
                                             "passes on degraded wrong ones, per category and blur. Without "
                                             "--daemon it measures world.check (the Python checker); with it, "
                                             "every --verifier through a private assayd and `assayctl score`.")
    ap.add_argument("--per-category", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--daemon", action="store_true")
    ap.add_argument("--verifier", action="append", help="(with --daemon) default: shapes-checker and shapes-judge")
    ap.add_argument("--assayd", default=os.path.join(root, ".build/release/assayd"))
    ap.add_argument("--assayctl", default=os.path.join(root, ".build/release/assayctl"))
    ap.add_argument("--plugins", default=os.path.join(root, "build/plugins"))
    args = ap.parse_args()
    if not args.daemon:
        by_blur = {}
        for blur in BLURS:
            cases = validation_set(blur, args.per_category, args.seed)
            by_blur[blur] = table([(c, world.check(c["image"], c["caption"])[0]) for c in cases])
        print(format_table(by_blur, "world.check"))
    else:
        verifiers = args.verifier or ["shapes-checker", "shapes-judge"]
        d = Daemon(args.assayd, args.assayctl, args.plugins)
        try:
            by_blur = {v: {} for v in verifiers}
            for blur in BLURS:
                cases = validation_set(blur, args.per_category, args.seed)
                verdicts = daemon_verdicts(d, cases, verifiers)
                for v in verifiers:
                    by_blur[v][blur] = table([(c, verdict[v]) for c, verdict in zip(cases, verdicts)])
        finally:
            d.close()
        for v in verifiers:
            print(format_table(by_blur[v], v))
            print()
