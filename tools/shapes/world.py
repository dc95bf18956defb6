"""The "shapes world": a tiny, procedurally generated, GenEval-like text-to-image domain.

Pure numpy (no torch). Everything the C side must re-implement (tokenizer, prompt
grammar, checker) is specified precisely here.

Scenes
------
* 32x32 RGB, uint8, row-major (H, W, 3), y grows downwards, x grows rightwards.
* Background: BLACK (0, 0, 0), constant.
* Palette (exact RGB, no anti-aliasing, every object pixel has exactly its colour):
    red    = (255,   0,   0)
    green  = (  0, 255,   0)
    blue   = (  0,   0, 255)
    yellow = (255, 255,   0)
* 1-4 objects.  Each object is (shape, colour, x0, y0, s): an integer bounding box of
  side s pixels with top-left pixel (x0, y0).  s in [7, 12] for scenes of <= 2 objects,
  s in [7, 10] for 3-4 objects.  Pixel (x, y) is tested at its centre (px, py) = (x+.5, y+.5):
    square   : the whole s x s box.
    circle   : (px - cx)^2 + (py - cy)^2 <= (s/2)^2 with cx = x0 + s/2, cy = y0 + s/2.
    triangle : upward isosceles, apex (x0 + s/2, y0), base corners (x0, y0+s), (x0+s, y0+s);
               pixel centre inside or on the triangle.
* Objects never overlap: bounding boxes (grown by a 2 pixel gap) are disjoint
  (rejection-sampled placement), so same-coloured objects never touch.

Captions (fixed grammar, fixed vocabulary, at most 8 words)
-----------------------------------------------------------
    caption  := group | group " and " group | group " " relation " " group
    group    := ("a" | "one") [colour] SHAPE | ("two"|"three"|"four") [colour] SHAPES
    relation := "left of" | "right of" | "above" | "below"
    colour   := red | green | blue | yellow ; SHAPE := circle|square|triangle ; SHAPES := plural+"s"
Rules: total object count <= 4; in a two-group caption the groups must be *distinguishable*
(different shapes, or both colours given and different); with a relation both groups must
be "a <...>" (a single object each).  The empty caption "" is the unconditional prompt.

Count semantics: "a X" means AT LEAST one X; an explicit number word ("one".."four") means
EXACTLY that many (GenEval: only the counting category checks exact counts).

Six benchmark categories (GenEval's): single_object ("a circle"), two_object ("a circle and
a square"), counting ("three green triangles" / "two squares"), colors ("a blue square"),
position ("a red circle left of a blue square"), color_attr ("a red square and a blue triangle").

Tokenizer
---------
VOCAB below; token id = index in VOCAB; id 0 is <pad>.  A caption is lower-cased, split on
single spaces, each word mapped to its id, right-padded with 0 to MAX_TOKENS = 8.  The empty
caption is 8 pad tokens.  Unknown words / more than 8 words -> error.

Checker: see `detect` and `check` docstrings.
"""

from __future__ import annotations

import numpy as np

H = W = 32
BG = (0, 0, 0)
COLOURS = ["red", "green", "blue", "yellow"]
PALETTE = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
}
SHAPES = ["circle", "square", "triangle"]
RELATIONS = ["left of", "right of", "above", "below"]
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4}
NUMBER_WORDS = {v: k for k, v in NUMBERS.items()}

VOCAB = [
    "<pad>",
    "a", "one", "two", "three", "four",
    "red", "green", "blue", "yellow",
    "circle", "square", "triangle",
    "circles", "squares", "triangles",
    "and", "left", "right", "of", "above", "below",
]
WORD2ID = {w: i for i, w in enumerate(VOCAB)}
MAX_TOKENS = 8
CATEGORIES = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]

MIN_AREA = 6          # checker: components smaller than this are ignored (noise)
POSITION_THRESHOLD = 0.1  # GenEval's value
GAP = 2               # placement: min empty pixels between object boxes


# ----------------------------------------------------------------------------- tokenizer
def encode(caption: str) -> np.ndarray:
    """caption -> int64[MAX_TOKENS] token ids (right-padded with 0)."""
    ids = np.zeros(MAX_TOKENS, dtype=np.int64)
    words = caption.strip().lower().split()
    if len(words) > MAX_TOKENS:
        raise ValueError(f"caption has {len(words)} words, max is {MAX_TOKENS}: {caption!r}")
    for i, w in enumerate(words):
        if w not in WORD2ID or w == "<pad>":
            raise ValueError(f"unknown word {w!r} in caption {caption!r}; vocabulary: {VOCAB[1:]}")
        ids[i] = WORD2ID[w]
    return ids


# ----------------------------------------------------------------------------- specs
# spec = {"groups": [ {"shape": str, "colour": str|None, "count": int, "exact": bool}, ...],
#         "relation": None | "left of" | "right of" | "above" | "below"}
# With a relation, it relates groups[0] (subject) to groups[1] (reference).


def _group_words(g) -> list[str]:
    n = g["count"]
    if n == 1:
        words = ["one" if g["exact"] else "a"]
    else:
        words = [NUMBER_WORDS[n]]
    if g["colour"]:
        words.append(g["colour"])
    words.append(g["shape"] + ("s" if n > 1 else ""))
    return words


def spec_to_caption(spec) -> str:
    gs = spec["groups"]
    if len(gs) == 1:
        return " ".join(_group_words(gs[0]))
    mid = [spec["relation"]] if spec["relation"] else ["and"]
    return " ".join(_group_words(gs[0]) + mid + _group_words(gs[1]))


def _distinguishable(a, b) -> bool:
    if a["shape"] != b["shape"]:
        return True
    return a["colour"] is not None and b["colour"] is not None and a["colour"] != b["colour"]


def parse(caption: str):
    """caption -> spec.  Raises ValueError with a clear message if outside the grammar."""
    text = caption.strip().lower()
    if text == "":
        return {"groups": [], "relation": None}
    words = text.split()
    for w in words:
        if w not in WORD2ID or w == "<pad>":
            raise ValueError(f"unknown word {w!r}; vocabulary: {VOCAB[1:]}")
    if len(words) > MAX_TOKENS:
        raise ValueError(f"too many words ({len(words)} > {MAX_TOKENS})")

    def parse_group(ws, i):
        if i >= len(ws):
            raise ValueError("expected 'a' or a number word, got end of caption")
        det = ws[i]
        if det == "a":
            n, exact = 1, False
        elif det in NUMBERS:
            n, exact = NUMBERS[det], True
        else:
            raise ValueError(f"expected 'a' or a number word at word {i + 1}, got {det!r}")
        i += 1
        colour = None
        if i < len(ws) and ws[i] in PALETTE:
            colour = ws[i]
            i += 1
        if i >= len(ws):
            raise ValueError("expected a shape, got end of caption")
        sw = ws[i]
        if n == 1:
            if sw not in SHAPES:
                raise ValueError(f"expected singular shape (circle/square/triangle) after {det!r}, got {sw!r}")
            shape = sw
        else:
            if not (sw.endswith("s") and sw[:-1] in SHAPES):
                raise ValueError(f"expected plural shape (circles/squares/triangles) after {det!r}, got {sw!r}")
            shape = sw[:-1]
        return {"shape": shape, "colour": colour, "count": n, "exact": exact}, i + 1

    g0, i = parse_group(words, 0)
    groups, relation = [g0], None
    if i < len(words):
        if words[i] == "and":
            i += 1
        elif words[i] in ("left", "right"):
            if i + 1 >= len(words) or words[i + 1] != "of":
                raise ValueError(f"expected 'of' after {words[i]!r}")
            relation = words[i] + " of"
            i += 2
        elif words[i] in ("above", "below"):
            relation = words[i]
            i += 1
        else:
            raise ValueError(f"expected 'and' or a relation at word {i + 1}, got {words[i]!r}")
        g1, i = parse_group(words, i)
        groups.append(g1)
        if i != len(words):
            raise ValueError(f"unexpected words after the second object: {' '.join(words[i:])!r}")
        if not _distinguishable(g0, g1):
            raise ValueError("the two objects must differ in shape, or both have different colours")
        if relation and (g0["count"] != 1 or g1["count"] != 1 or g0["exact"] or g1["exact"]):
            raise ValueError("a relation needs single objects on both sides ('a ...')")
    if sum(g["count"] for g in groups) > 4:
        raise ValueError("at most 4 objects in total")
    return {"groups": groups, "relation": relation}


# ----------------------------------------------------------------------------- rendering
_YY, _XX = np.mgrid[0:H, 0:W]
_PY = _YY + 0.5
_PX = _XX + 0.5


def shape_mask(shape, x0, y0, s) -> np.ndarray:
    if shape == "square":
        return (_XX >= x0) & (_XX < x0 + s) & (_YY >= y0) & (_YY < y0 + s)
    if shape == "circle":
        cx, cy, r = x0 + s / 2, y0 + s / 2, s / 2
        return (_PX - cx) ** 2 + (_PY - cy) ** 2 <= r * r
    if shape == "triangle":
        ax, ay = x0 + s / 2, y0
        by = y0 + s
        # inside if below apex row, above base, and within the two slanted edges
        half = (_PY - ay) / s * (s / 2)  # half width at this height
        return (_PY >= ay) & (_PY <= by) & (np.abs(_PX - ax) <= half)
    raise ValueError(shape)


def render(objects) -> np.ndarray:
    """objects: list of dicts(shape, colour, x0, y0, s) -> uint8 (32, 32, 3)."""
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[:] = BG
    for o in objects:
        m = shape_mask(o["shape"], o["x0"], o["y0"], o["s"])
        img[m] = PALETTE[o["colour"]]
    return img


def _boxes_clear(objs, x0, y0, s):
    for o in objs:
        if (x0 < o["x0"] + o["s"] + GAP and o["x0"] < x0 + s + GAP and
                y0 < o["y0"] + o["s"] + GAP and o["y0"] < y0 + s + GAP):
            return False
    return True


def relative_position(a_box, b_box):
    """GenEval's rule.  boxes are (x0, y0, x1, y1) with x1, y1 exclusive.  Returns the set
    of relations that hold for A relative to B:
        centre c = ((x0+x1)/2, (y0+y1)/2), dim = (x1-x0, y1-y0),
        offset = cA - cB,
        revised = max(|offset| - 0.1*(dimA + dimB), 0) * sign(offset)   (per axis)
        if all |revised| < 1e-3: no relation
        (dx, dy) = revised / ||offset||
        dx < -0.5: 'left of'; dx > 0.5: 'right of'; dy < -0.5: 'above'; dy > 0.5: 'below'."""
    ca = np.array([(a_box[0] + a_box[2]) / 2, (a_box[1] + a_box[3]) / 2])
    cb = np.array([(b_box[0] + b_box[2]) / 2, (b_box[1] + b_box[3]) / 2])
    da = np.array([a_box[2] - a_box[0], a_box[3] - a_box[1]], dtype=np.float64)
    db = np.array([b_box[2] - b_box[0], b_box[3] - b_box[1]], dtype=np.float64)
    off = ca - cb
    rev = np.maximum(np.abs(off) - POSITION_THRESHOLD * (da + db), 0) * np.sign(off)
    rel = set()
    if np.all(np.abs(rev) < 1e-3):
        return rel
    dx, dy = rev / np.linalg.norm(off)
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


def _obj_box(o):
    return (o["x0"], o["y0"], o["x0"] + o["s"], o["y0"] + o["s"])


def scene_from_spec(rng: np.random.Generator, spec, max_tries=200):
    """Sample a list of objects satisfying spec (exactly the described objects; unspecified
    colours random).  For relations the sampled layout satisfies the relation under the
    GenEval rule with a safety margin (|dx| or |dy| > 0.7)."""
    groups = spec["groups"]
    n_total = sum(g["count"] for g in groups)
    smax = 12 if n_total <= 2 else 10
    for _ in range(max_tries):
        objs = []
        ok = True
        for g in groups:
            for _k in range(g["count"]):
                colour = g["colour"] or COLOURS[rng.integers(4)]
                placed = False
                for _t in range(50):
                    s = int(rng.integers(7, smax + 1))
                    x0 = int(rng.integers(0, W - s + 1))
                    y0 = int(rng.integers(0, H - s + 1))
                    if _boxes_clear(objs, x0, y0, s):
                        objs.append({"shape": g["shape"], "colour": colour, "x0": x0, "y0": y0, "s": s})
                        placed = True
                        break
                if not placed:
                    ok = False
                    break
            if not ok:
                break
        if not ok:
            continue
        if spec["relation"]:
            a, b = objs[0], objs[1]
            rel = relative_position(_obj_box(a), _obj_box(b))
            if spec["relation"] not in rel:
                continue
            ca = np.array([a["x0"] + a["s"] / 2, a["y0"] + a["s"] / 2])
            cb = np.array([b["x0"] + b["s"] / 2, b["y0"] + b["s"] / 2])
            off = ca - cb
            axis = 0 if spec["relation"] in ("left of", "right of") else 1
            if abs(off[axis]) / np.linalg.norm(off) < 0.8:
                continue
        # shuffle draw order (objects do not overlap, so only list order changes)
        return objs
    raise RuntimeError(f"could not place scene for {spec}")


SWAP_H = {"left of": "right of", "right of": "left of"}
SWAP_V = {"above": "below", "below": "above"}


def flip_scene(objects, spec, horizontal: bool):
    """Position augmentation.  Mirrors object positions (x0 -> W - x0 - s, or y for vertical)
    and swaps 'left of'<->'right of' (horizontal) or 'above'<->'below' (vertical) in the spec.
    Shapes are re-rendered upright (triangles keep pointing up), so a vertical flip is
    legal too."""
    new = []
    for o in objects:
        o = dict(o)
        if horizontal:
            o["x0"] = W - o["x0"] - o["s"]
        else:
            o["y0"] = H - o["y0"] - o["s"]
        new.append(o)
    rel = spec["relation"]
    if rel:
        rel = (SWAP_H if horizontal else SWAP_V).get(rel, rel)
    return new, {"groups": spec["groups"], "relation": rel}


# ----------------------------------------------------------------------------- prompts
def _rand_colour(rng):
    return COLOURS[rng.integers(4)]


def _rand_shape(rng):
    return SHAPES[rng.integers(3)]


def sample_spec(rng: np.random.Generator, category: str):
    if category == "single_object":
        return {"groups": [{"shape": _rand_shape(rng), "colour": None, "count": 1, "exact": False}], "relation": None}
    if category == "colors":
        return {"groups": [{"shape": _rand_shape(rng), "colour": _rand_colour(rng), "count": 1, "exact": False}], "relation": None}
    if category == "counting":
        n = int(rng.integers(1, 5))
        colour = _rand_colour(rng) if rng.random() < 0.5 else None
        return {"groups": [{"shape": _rand_shape(rng), "colour": colour, "count": n, "exact": True}], "relation": None}
    if category == "two_object":
        s0, s1 = rng.choice(3, size=2, replace=False)
        return {"groups": [{"shape": SHAPES[s0], "colour": None, "count": 1, "exact": False},
                           {"shape": SHAPES[s1], "colour": None, "count": 1, "exact": False}], "relation": None}
    if category == "color_attr":
        s0, s1 = rng.choice(3, size=2, replace=False)
        c0, c1 = rng.choice(4, size=2, replace=False)
        return {"groups": [{"shape": SHAPES[s0], "colour": COLOURS[c0], "count": 1, "exact": False},
                           {"shape": SHAPES[s1], "colour": COLOURS[c1], "count": 1, "exact": False}], "relation": None}
    if category == "position":
        rel = RELATIONS[rng.integers(4)]
        if rng.random() < 0.5:  # plain, GenEval style: different shapes, no colours
            s0, s1 = rng.choice(3, size=2, replace=False)
            g0 = {"shape": SHAPES[s0], "colour": None, "count": 1, "exact": False}
            g1 = {"shape": SHAPES[s1], "colour": None, "count": 1, "exact": False}
        else:  # coloured: any shapes, distinct colours
            c0, c1 = rng.choice(4, size=2, replace=False)
            g0 = {"shape": _rand_shape(rng), "colour": COLOURS[c0], "count": 1, "exact": False}
            g1 = {"shape": _rand_shape(rng), "colour": COLOURS[c1], "count": 1, "exact": False}
        return {"groups": [g0, g1], "relation": rel}
    raise ValueError(category)


# Training mixture: position and colour attribution over-sampled (weak categories).
TRAIN_MIX = {"single_object": 0.08, "colors": 0.10, "counting": 0.20, "two_object": 0.14,
             "position": 0.28, "color_attr": 0.20}


def sample_training_example(rng: np.random.Generator):
    """-> (uint8 image (32,32,3), caption str).  Includes flip augmentation."""
    cats = list(TRAIN_MIX)
    p = np.array([TRAIN_MIX[c] for c in cats])
    cat = cats[rng.choice(len(cats), p=p / p.sum())]
    spec = sample_spec(rng, cat)
    objs = scene_from_spec(rng, spec)
    if rng.random() < 0.5:
        objs, spec = flip_scene(objs, spec, horizontal=True)
    if rng.random() < 0.5:
        objs, spec = flip_scene(objs, spec, horizontal=False)
    return render(objs), spec_to_caption(spec)


def sample_batch(rng: np.random.Generator, batch: int):
    """-> images float32 (B, 3, 32, 32) in [-1, 1], tokens int64 (B, 8), captions list."""
    imgs = np.empty((batch, 3, H, W), dtype=np.float32)
    toks = np.empty((batch, MAX_TOKENS), dtype=np.int64)
    caps = []
    for i in range(batch):
        img, cap = sample_training_example(rng)
        imgs[i] = img.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        toks[i] = encode(cap)
        caps.append(cap)
    return imgs, toks, caps


# ----------------------------------------------------------------------------- checker
_PAL_NAMES = ["background"] + COLOURS
_PAL = np.array([BG] + [PALETTE[c] for c in COLOURS], dtype=np.float32)  # (5, 3)


def classify_pixels(img: np.ndarray) -> np.ndarray:
    """uint8 (32,32,3) -> int (32,32) label: 0 background, 1 red, 2 green, 3 blue, 4 yellow.
    Rule: nearest palette entry (background included) in squared RGB distance (0..255 scale);
    ties go to the lower label."""
    d = ((img.astype(np.float32)[:, :, None, :] - _PAL[None, None]) ** 2).sum(-1)
    return np.argmin(d, axis=-1)


def _components(mask: np.ndarray):
    """4-connected components of a boolean mask, scanned in row-major order.
    Returns list of (area, x0, y0, x1, y1, pixels) with x1, y1 exclusive and pixels a list
    of (y, x)."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    comps = []
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                stack = [(y, x)]
                seen[y, x] = True
                pixels = []
                xmin, ymin, xmax, ymax = x, y, x, y
                while stack:
                    cy, cx = stack.pop()
                    pixels.append((cy, cx))
                    xmin, xmax = min(xmin, cx), max(xmax, cx)
                    ymin, ymax = min(ymin, cy), max(ymax, cy)
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
                comps.append((len(pixels), xmin, ymin, xmax + 1, ymax + 1, pixels))
    return comps


# ----------------------------------------------------------------------------- shape fitting
# Shape is decided by fitting rendered templates to the object's "ink", not by a threshold
# on one statistic: a soft edge moves pixels across any threshold, but it moves the image
# and a blurred template together. Everything below is integer arithmetic (and IEEE double
# on exactly representable integers), so the C checker (Plugins/shapes/world/fit.c)
# reproduces every number bit for bit.
#
#   ink      per pixel, for the object's colour: max(0, min(on channels) - max(off channels)),
#            0..255 (red: r - max(g, b); yellow: min(r, g) - b). Pixels labelled with another
#            colour, or belonging to another component of the same colour, are left out.
#   window   the component's box grown by FIT_PAD pixels, clipped to the image.
#   template a shape with box side S half-pixels and top-left (X0, Y0) in half-pixels,
#            4x4-supersampled coverage (0..16 per pixel, exact integer inside tests), blurred
#            by a binomial kernel of FIT_TAPS[b] taps (sigma 0, 0.71, 1, 1.22, 1.41 px), then
#            scaled to 0..255 with rounding.
#   fit      the squared correlation of ink and template over the window's pixels (gain and
#            offset free, so colour shifts do not matter): r2 = cov|cov| / (varT varO).
#   search   per shape: S from 2L - 6 to 2L + 6 half-pixels (L = the component box's longer
#            side, S >= 8), (X0, Y0) within one half-pixel of the position whose template
#            centroid is the ink centroid, every blur. The first best candidate wins.
#   verdict  the shape whose best fit is highest. The detection is *ambiguous* when that fit
#            is below FIT_MIN (no shape explains the blob: merged or broken objects), or when
#            the runner-up's unexplained variance is less than FIT_MARGIN times the best's.
FIT_PAD = 5
FIT_TAPS = (1, 3, 5, 7, 9)
FIT_SIZE_RANGE = 6
FIT_SHIFT = 1
FIT_MIN = 0.80
FIT_MARGIN = 1.25
_ON = {1: (0,), 2: (1,), 3: (2,), 4: (0, 1)}
_OFF = {1: (1, 2), 2: (0, 2), 3: (0, 1), 4: (2,)}
_SUB = (np.arange(4) * 2 + 1)  # subsample centres within a pixel, in 1/8 pixel units


def _binomial(taps):
    k = np.array([1], dtype=np.int64)
    for _ in range(taps - 1):
        k = np.convolve(k, [1, 1])
    return k


def _coverage(shape, S, phx, phy):
    """Coverage 0..16 of a template with side S half-pixels whose box starts phx, phy (0 or 1)
    half-pixels into pixel (0, 0) of its grid; the grid is G x G pixels,
    G = (max(phx, phy) + S + 1) // 2."""
    G = (max(phx, phy) + S + 1) // 2
    u = (np.arange(G)[:, None] * 8 + _SUB[None, :]).reshape(-1)  # 1/8 px, odd
    x0, x1 = 4 * phx, 4 * (phx + S)
    y0, y1 = 4 * phy, 4 * (phy + S)
    U = u[None, :]
    V = u[:, None]
    if shape == "square":
        inside = (U > x0) & (U < x1) & (V > y0) & (V < y1)
    elif shape == "circle":
        cx, cy = x0 + 2 * S, y0 + 2 * S
        inside = (U - cx) ** 2 + (V - cy) ** 2 <= (2 * S) ** 2
    else:  # triangle, apex up
        ax = x0 + 2 * S
        inside = (V > y0) & (V < y1) & (2 * np.abs(U - ax) <= V - y0)
    return inside.reshape(G, 4, G, 4).sum(axis=(1, 3)).astype(np.int64)


_TEMPLATES = {}


def _template(shape, S, phx, phy, b):
    """The blurred template (0..255) on a grid padded by r = FIT_TAPS[b] // 2: element [i, j]
    is pixel (j - r, i - r) of the coverage grid."""
    key = (shape, S, phx, phy, b)
    t = _TEMPLATES.get(key)
    if t is None:
        cov = _coverage(shape, S, phx, phy)
        k = _binomial(FIT_TAPS[b])
        r = FIT_TAPS[b] // 2
        raw = np.pad(cov, r)
        if r:
            raw = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, raw)
            raw = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, raw)
        d = 16 * int(k.sum()) ** 2
        t = (raw * 255 + d // 2) // d
        _TEMPLATES[key] = t
    return t


def _ink(img: np.ndarray, label: int) -> np.ndarray:
    v = img.astype(np.int64)
    on = v[:, :, list(_ON[label])].min(axis=-1)
    off = v[:, :, list(_OFF[label])].max(axis=-1)
    return np.maximum(on - off, 0)


def _centroid_start(num, den, size_term):
    """round(num / den - size_term) with num, den, size_term = (p, q) integers as fractions."""
    p, q = size_term  # size_term = p / q
    return (2 * (num * q - p * den) + den * q) // (2 * den * q)


def fit_shape(img, lab, comp_id, cid, label, box):
    """-> (shape or None, candidates [(shape, r2, S, X0, Y0, taps)] best per shape)."""
    h, w = lab.shape
    bx0, by0, bx1, by1 = box
    wx0, wy0 = max(bx0 - FIT_PAD, 0), max(by0 - FIT_PAD, 0)
    wx1, wy1 = min(bx1 + FIT_PAD, w), min(by1 + FIT_PAD, h)
    ink = _ink(img[wy0:wy1, wx0:wx1], label)
    l = lab[wy0:wy1, wx0:wx1]
    c = comp_id[wy0:wy1, wx0:wx1]
    valid = (l == 0) | (c == cid)
    o = np.where(valid, ink, 0)
    n = int(valid.sum())
    so = int(o.sum())
    soo = int((o * o).sum())
    var_o = n * soo - so * so
    ys, xs = np.mgrid[wy0:wy1, wx0:wx1]
    ax = int(((2 * xs + 1) * o).sum())  # centroid in half-pixels = ax / so
    ay = int(((2 * ys + 1) * o).sum())
    L = max(bx1 - bx0, by1 - by0)
    best = []
    for shape in SHAPES:
        top = None
        for S in range(max(8, 2 * L - FIT_SIZE_RANGE), 2 * L + FIT_SIZE_RANGE + 1):
            if so <= 0 or var_o <= 0:
                break
            cx0 = _centroid_start(ax, so, (S, 2))
            cy0 = _centroid_start(ay, so, (2 * S, 3) if shape == "triangle" else (S, 2))
            for b in range(len(FIT_TAPS)):
                r = FIT_TAPS[b] // 2
                for Y0 in range(cy0 - FIT_SHIFT, cy0 + FIT_SHIFT + 1):
                    for X0 in range(cx0 - FIT_SHIFT, cx0 + FIT_SHIFT + 1):
                        t = _template(shape, S, X0 & 1, Y0 & 1, b)
                        # template element [i, j] sits at image pixel (X0 >> 1) - r + j, ...
                        tx, ty = (X0 >> 1) - r, (Y0 >> 1) - r
                        gx0, gy0 = max(tx, wx0), max(ty, wy0)
                        gx1, gy1 = min(tx + t.shape[1], wx1), min(ty + t.shape[0], wy1)
                        if gx0 >= gx1 or gy0 >= gy1:
                            continue
                        tt = t[gy0 - ty:gy1 - ty, gx0 - tx:gx1 - tx]
                        vv = valid[gy0 - wy0:gy1 - wy0, gx0 - wx0:gx1 - wx0]
                        oo = o[gy0 - wy0:gy1 - wy0, gx0 - wx0:gx1 - wx0]
                        tt = np.where(vv, tt, 0)
                        st = int(tt.sum())
                        stt = int((tt * tt).sum())
                        sot = int((tt * oo).sum())
                        var_t = n * stt - st * st
                        if var_t <= 0:
                            continue
                        cov = n * sot - so * st
                        score = float(cov) * abs(float(cov)) / float(var_t)
                        if top is None or score > top[0]:
                            top = (score, S, X0, Y0, FIT_TAPS[b])
        if top is None:
            best.append((shape, -1.0, 0, 0, 0, 0))
        else:
            best.append((shape, top[0] / float(var_o), top[1], top[2], top[3], top[4]))
    order = sorted(range(len(best)), key=lambda i: (-best[i][1], i))
    first, second = best[order[0]], best[order[1]]
    ambiguous = first[1] < FIT_MIN or (1.0 - second[1]) < FIT_MARGIN * (1.0 - first[1])
    return (None if ambiguous else first[0]), best, first


def detect(img: np.ndarray):
    """Detect objects in a uint8 (H, W, 3) image.  Rules (exact, no learning):
      1. classify every pixel to the nearest palette colour (`classify_pixels`);
      2. for each colour (red, green, blue, yellow), 4-connected components of its pixels;
      3. drop components with area < MIN_AREA (6 pixels);
      4. shape by template fitting (`fit_shape`): the shape whose blurred template explains
         the component's ink best, or None (ambiguous) when none does clearly;
      5. the box is the fitted template's box (half-pixel units), the counted pixels' box
         when the detection is ambiguous.
    Returns list of dicts(colour, shape (None = ambiguous), candidates (shapes within the
    margin, best first), fit (r2 of the best template), area, box=(x0, y0, x1, y1) exclusive,
    floats)."""
    lab = classify_pixels(img)
    h, w = lab.shape
    comp_id = np.full((h, w), -1, dtype=np.int64)
    comps = []
    for ci, cname in enumerate(COLOURS, start=1):
        for area, x0, y0, x1, y1, pixels in _components(lab == ci):
            cid = len(comps)
            for (py, px) in pixels:
                comp_id[py, px] = cid
            comps.append((ci, cname, area, (x0, y0, x1, y1)))
    dets = []
    for cid, (ci, cname, area, box) in enumerate(comps):
        if area < MIN_AREA:
            continue
        shape, per_shape, first = fit_shape(img, lab, comp_id, cid, ci, box)
        ranked = sorted(per_shape, key=lambda c: -c[1])
        if shape is None:
            cands = [c[0] for c in ranked if (1.0 - c[1]) < FIT_MARGIN * (1.0 - first[1])] or [ranked[0][0]]
            fbox = tuple(float(v) for v in box)
        else:
            cands = [shape]
            S, X0, Y0 = first[2], first[3], first[4]
            fbox = (X0 / 2, Y0 / 2, (X0 + S) / 2, (Y0 + S) / 2)
        dets.append({"colour": cname, "shape": shape, "candidates": cands, "fit": first[1],
                     "area": area, "box": fbox})
    return dets


def classify_shape(area, x0, y0, x1, y1) -> str:
    """The old fill-ratio rule (kept for comparison in tools; the checker fits templates)."""
    fill = area / float((x1 - x0) * (y1 - y0))
    if fill >= 0.88:
        return "square"
    if fill >= 0.62:
        return "circle"
    return "triangle"


def _matches(det, g):
    """A definite match: the detection is that shape (and colour, if the group names one)."""
    return det["shape"] == g["shape"] and (g["colour"] is None or det["colour"] == g["colour"])


def _may_match(det, g):
    """A definite match, or an ambiguous detection that may be that shape."""
    if g["colour"] is not None and det["colour"] != g["colour"]:
        return False
    return det["shape"] == g["shape"] or (det["shape"] is None and g["shape"] in det["candidates"])


def check(img: np.ndarray, spec_or_caption):
    """The checker.  -> (passed: bool, fraction of constraints satisfied, failed list[str]).
    Constraints, in order:
      * for each group g: n = detections that surely match g (shape equal, and colour equal
        if g gives one), m = n + ambiguous detections that may match it.  If g['exact']
        (number word): n == count == m (true under every reading of the ambiguous blobs),
        else n >= count.
      * if a relation is given: there exist sure matches a of groups[0] and b of groups[1]
        with relation in relative_position(a.box, b.box) (GenEval rule).
    passed = all constraints satisfied.  Extra, unrelated objects are not penalised.
    An ambiguous blob never makes an image pass; it can make it fail an exact count.
    (Groups of a two-group caption are distinguishable, so they never match the same detection.)"""
    spec = parse(spec_or_caption) if isinstance(spec_or_caption, str) else spec_or_caption
    dets = detect(img)
    failed, total = [], 0
    for g in spec["groups"]:
        total += 1
        n = sum(1 for d in dets if _matches(d, g))
        m = sum(1 for d in dets if _may_match(d, g))
        desc = " ".join(_group_words(g))
        if g["exact"] and (n != g["count"] or m != g["count"]):
            more = f" (and {m - n} ambiguous)" if m != n else ""
            failed.append(f"count '{desc}': want exactly {g['count']}, found {n}{more}")
        elif not g["exact"] and n < g["count"]:
            failed.append(f"count '{desc}': want >= {g['count']}, found {n}")
    if spec["relation"]:
        total += 1
        g0, g1 = spec["groups"]
        ok = any(spec["relation"] in relative_position(a["box"], b["box"])
                 for a in dets if _matches(a, g0) for b in dets if _matches(b, g1))
        if not ok:
            failed.append(f"relation '{spec['relation']}' not satisfied")
    if total == 0:
        return True, 1.0, []
    return len(failed) == 0, (total - len(failed)) / total, failed


# ----------------------------------------------------------------------------- benchmark
BENCH_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94,
                "position": 100, "color_attr": 100}  # 553, like GenEval


def make_benchmark(seed: int = 1234):
    rng = np.random.default_rng(seed)
    out = []
    for cat, n in BENCH_COUNTS.items():
        for _ in range(n):
            out.append((cat, spec_to_caption(sample_spec(rng, cat))))
    return out


def validate_checker(n=2000, seed=0):
    """Checker accuracy on ground-truth renders of benchmark-distribution specs."""
    rng = np.random.default_rng(seed)
    stats = {c: [0, 0] for c in CATEGORIES}
    fails = []
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        spec = sample_spec(rng, cat)
        objs = scene_from_spec(rng, spec)
        ok, _, f = check(render(objs), spec)
        stats[cat][0] += ok
        stats[cat][1] += 1
        if not ok and len(fails) < 5:
            fails.append((spec_to_caption(spec), f, objs))
    return stats, fails


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "benchmark":
        path = sys.argv[2] if len(sys.argv) > 2 else "tools/shapes/benchmark_prompts.txt"
        with open(path, "w") as f:
            for cat, p in make_benchmark():
                f.write(f"{cat}\t{p}\n")
        print("wrote", path)
    else:
        stats, fails = validate_checker()
        tot = sum(v[0] for v in stats.values()) / sum(v[1] for v in stats.values())
        for c, (a, b) in stats.items():
            print(f"{c:14s} {a}/{b} = {a / b:.4f}")
        print(f"overall {tot:.4f}")
        for f in fails:
            print("FAIL", f)
