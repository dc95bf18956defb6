"""Training data for the shapes judge: world scenes rendered with the kinds of damage model
outputs show, with the ground truth taken from the scene's own object list.

numpy only. Every draw comes from the generator passed in (seeded by train.py).

    sample_objects(rng)          0-4 objects: a caption's scene (world.sample_spec +
                                 world.scene_from_spec) or free random objects, sizes 5..14
    render_soft(objs, rng)       float (32, 32, 3) image: jittered shape geometry, per-object
                                 colour gain / low contrast, jagged edges
    degrade(img, rng)            blur sigma 0..1.6, channel gain 0.75..1 and offset 0..30,
                                 noise sigma 0..20, uint8
    sample_batch(rng, n)         images float32 (n, 3, 32, 32) in [0, 1] + object lists
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shapes"))
import world  # noqa: E402
import yardstick  # noqa: E402

H = W = 32
SHAPES = world.SHAPES
COLOURS = world.COLOURS
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]   # class k = colour * 3 + shape
_YY, _XX = np.mgrid[0:H, 0:W]
_PY = _YY + 0.5
_PX = _XX + 0.5


def _free_objects(rng):
    n = int(rng.choice(5, p=[0.06, 0.24, 0.26, 0.22, 0.22]))
    objs = []
    gap = int(rng.integers(1, 3))
    for _ in range(n):
        smax = 14 if n <= 2 else 11
        for _t in range(60):
            s = int(rng.integers(5, smax + 1))
            x0 = int(rng.integers(-1, W - s + 2))
            y0 = int(rng.integers(-1, H - s + 2))
            clear = all(not (x0 < o["x0"] + o["s"] + gap and o["x0"] < x0 + s + gap and
                             y0 < o["y0"] + o["s"] + gap and o["y0"] < y0 + s + gap) for o in objs)
            if clear:
                objs.append({"shape": SHAPES[int(rng.integers(3))],
                             "colour": COLOURS[int(rng.integers(4))], "x0": x0, "y0": y0, "s": s})
                break
    return objs


def sample_objects(rng):
    if rng.random() < 0.55:
        cat = world.CATEGORIES[int(rng.integers(len(world.CATEGORIES)))]
        spec = world.sample_spec(rng, cat)
        objs = world.scene_from_spec(rng, spec)
        if rng.random() < 0.4:  # a defect like the yardstick's wrong scenes
            _, objs = yardstick.mutate(rng, objs, spec)
        return objs
    return _free_objects(rng)


def _mask(shape, x0, y0, s, rng):
    """Soft-jittered geometry: the box side and centre move by a fraction of a pixel, the
    circle may become a slight ellipse, the triangle's apex may lean."""
    j = rng.random() < 0.6
    sx = s + (rng.uniform(-0.6, 0.6) if j else 0.0)
    sy = s + (rng.uniform(-0.6, 0.6) if j else 0.0)
    cx = x0 + s / 2 + (rng.uniform(-0.4, 0.4) if j else 0.0)
    cy = y0 + s / 2 + (rng.uniform(-0.4, 0.4) if j else 0.0)
    if shape == "square":
        return (np.abs(_PX - cx) <= sx / 2) & (np.abs(_PY - cy) <= sy / 2)
    if shape == "circle":
        return ((_PX - cx) / (sx / 2)) ** 2 + ((_PY - cy) / (sy / 2)) ** 2 <= 1.0
    lean = rng.uniform(-0.8, 0.8) if j else 0.0
    ay, by = cy - sy / 2, cy + sy / 2
    t = (_PY - ay) / sy
    axc = cx + lean * (1 - t)
    return (_PY >= ay) & (_PY <= by) & (np.abs(_PX - axc) <= t * sx / 2)


def _jag(m, rng, p):
    """Flip a fraction p of the mask's boundary pixels (inside or outside)."""
    if p <= 0:
        return m
    pad = np.pad(m, 1)
    nb = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
    na = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    boundary = (m & ~na) | (~m & nb)
    flip = boundary & (rng.random(m.shape) < p)
    return m ^ flip


def render_soft(objs, rng):
    img = np.zeros((H, W, 3), dtype=np.float64)
    p_jag = rng.choice([0.0, 0.0, 0.08, 0.18])
    for o in objs:
        m = _mask(o["shape"], o["x0"], o["y0"], o["s"], rng)
        m = _jag(m, rng, p_jag)
        col = np.array(world.PALETTE[o["colour"]], dtype=np.float64)
        if rng.random() < 0.12:  # low contrast object
            col = col * rng.uniform(0.45, 0.7)
        else:
            col = col * rng.uniform(0.85, 1.0)
        img[m] = col
    return img


def degrade(img, rng):
    r = rng.random()
    blur = 0.0 if r < 0.12 else float(rng.uniform(0.0, 1.6))
    x = yardstick.gaussian_blur(img, blur)
    if rng.random() < 0.6:
        x = x * rng.uniform(0.75, 1.0, size=3) + rng.uniform(0, 30, size=3)
    noise = float(rng.uniform(0, 20)) if rng.random() < 0.85 else 0.0
    x = x + rng.normal(0.0, noise, size=x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def box_of(o):
    return (o["x0"], o["y0"], o["x0"] + o["s"], o["y0"] + o["s"])


def sample_batch(rng, n):
    imgs = np.empty((n, 3, H, W), dtype=np.float32)
    objs_list = []
    for i in range(n):
        objs = sample_objects(rng)
        u8 = degrade(render_soft(objs, rng), rng)
        imgs[i] = u8.transpose(2, 0, 1).astype(np.float32) / 255.0
        objs_list.append(objs)
    return imgs, objs_list
