"""shapes-clipscore: a small CLIP-style image-text model for the shapes world (the CLIPScore
analogue used as a LEARNED, imperfect verifier; seed paper: Ma et al. 2025).

    OMP_NUM_THREADS=1 python3 tools/clipscore/train.py --minutes 13 --seed 0

Trains on world.py scenes + captions generated on the fly (all six benchmark categories plus
"plain" captions naming one object of a cluttered scene), with a symmetric InfoNCE loss and a
learned temperature.  Every pair brings two hard negatives into the batch: the same scene with a
caption that is false for it (colours/shapes swapped, relation flipped, count changed...) and an
image of a perturbed scene that is false for the caption (recoloured/reshaped/removed/added
object, mirrored layout, swapped positions).  Truth is decided symbolically on the object list
(`truth`), which equals world.check on clean renders.

Forward pass (every op is portable to plain C; Plugins/shapes/clipscore/ re-implements it):
  image  uint8 (32,32,3) -> float x = p/127.5 - 1, CHW, plus 2 coordinate planes
         (X[y][x] = (x + 0.5)/16 - 1, Y[y][x] = (y + 0.5)/16 - 1)             -> (5,32,32)
         conv3x3 pad 1 stride 1 5->32  + ReLU  img.conv1.{weight,bias}        -> (32,32,32)
         conv3x3 pad 1 stride 2 32->64 + ReLU  img.conv2                      -> (64,16,16)
         conv3x3 pad 1 stride 2 64->128+ ReLU  img.conv3                      -> (128,8,8)
         mean over the 8x8 positions                                          -> 128
         linear 128->128 + ReLU img.fc1 ; linear 128->64 img.fc2              -> 64
         L2-normalise
  text   token ids t[0..7] (world.encode) -> concat_p txt.emb{p}[t[p]] (8 tables 22x16) -> 128
         linear 128->128 + ReLU txt.fc1 ; linear 128->64 txt.fc2 ; L2-normalise
  cosine = <img, txt>;  verifier score = (cosine + 1) / 2.
  (conv weights are (out, in, 3, 3), stride-2 convs read input pixel (2y+dy-1, 2x+dx-1), dy,dx in
  0..2, zero outside; linear weights are (out, in): y = W x + b.)

Outputs: Plugins/shapes/weights/clipscore.safetensors (float16 weights, metadata: architecture
JSON, vocab JSON, training info), Plugins/shapes/weights/clipscore-vectors.safetensors (float32
reference embeddings for the C test), tools/clipscore/runs/<name>/{loss.csv,eval.json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import world  # noqa: E402

EMBED = 64
TOK_DIM = 16


# ----------------------------------------------------------------------------- model
def coord_planes() -> torch.Tensor:
    c = (torch.arange(32, dtype=torch.float32) + 0.5) / 16.0 - 1.0
    X = c.view(1, 32).expand(32, 32)
    Y = c.view(32, 1).expand(32, 32)
    return torch.stack([X, Y])  # (2, 32, 32)


class ImageEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(5, 32, 3, 1, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 2, 1)
        self.conv3 = nn.Conv2d(64, 128, 3, 2, 1)
        self.fc1 = nn.Linear(128, 128)
        self.fc2 = nn.Linear(128, EMBED)
        self.register_buffer("coords", coord_planes(), persistent=False)

    def forward(self, x):  # x (B, 3, 32, 32) in [-1, 1]
        x = torch.cat([x, self.coords.unsqueeze(0).expand(x.shape[0], -1, -1, -1)], 1)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = x.mean(dim=(2, 3))
        x = self.fc2(F.relu(self.fc1(x)))
        return F.normalize(x, dim=-1)


class TextEncoder(nn.Module):
    def __init__(self, vocab=len(world.VOCAB), max_tokens=world.MAX_TOKENS):
        super().__init__()
        self.emb = nn.ModuleList([nn.Embedding(vocab, TOK_DIM) for _ in range(max_tokens)])
        self.fc1 = nn.Linear(TOK_DIM * max_tokens, 128)
        self.fc2 = nn.Linear(128, EMBED)

    def forward(self, t):  # t (B, 8) int64
        x = torch.cat([e(t[:, p]) for p, e in enumerate(self.emb)], -1)
        x = self.fc2(F.relu(self.fc1(x)))
        return F.normalize(x, dim=-1)


class Clip(nn.Module):
    def __init__(self):
        super().__init__()
        self.img = ImageEncoder()
        self.txt = TextEncoder()
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))


def images_to_tensor(imgs) -> torch.Tensor:
    a = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return torch.from_numpy(a)


def tokens_to_tensor(caps) -> torch.Tensor:
    return torch.from_numpy(np.stack([world.encode(c) for c in caps]))


# ----------------------------------------------------------------------------- data
def matches(o, g):
    return o["shape"] == g["shape"] and (g["colour"] is None or o["colour"] == g["colour"])


def truth(objs, spec) -> bool:
    """Symbolic world.check on an object list (same rules, boxes instead of detections)."""
    for g in spec["groups"]:
        n = sum(1 for o in objs if matches(o, g))
        if (g["exact"] and n != g["count"]) or (not g["exact"] and n < g["count"]):
            return False
    if spec["relation"]:
        g0, g1 = spec["groups"]
        return any(spec["relation"] in world.relative_position(world._obj_box(a), world._obj_box(b))
                   for a in objs if matches(a, g0) for b in objs if matches(b, g1))
    return True


def valid_caption(spec):
    try:
        cap = world.spec_to_caption(spec)
        world.parse(cap)
        return cap
    except (ValueError, KeyError):
        return None


def add_random_object(rng, objs, shape=None, colour=None):
    smax = 12 if len(objs) < 2 else 10
    for _ in range(60):
        s = int(rng.integers(7, smax + 1))
        x0 = int(rng.integers(0, 32 - s + 1))
        y0 = int(rng.integers(0, 32 - s + 1))
        if world._boxes_clear(objs, x0, y0, s):
            return objs + [{"shape": shape or world.SHAPES[rng.integers(3)],
                            "colour": colour or world.COLOURS[rng.integers(4)],
                            "x0": x0, "y0": y0, "s": s}]
    return None


CATS = world.CATEGORIES + ["plain"]
MIX = np.array([0.10, 0.14, 0.16, 0.12, 0.20, 0.16, 0.12])


def sample_pair(rng):
    """-> (objs, spec, category): a scene and a caption true for it."""
    cat = CATS[rng.choice(len(CATS), p=MIX / MIX.sum())]
    if cat == "plain":  # a cluttered scene, a caption naming one of its objects
        spec = world.sample_spec(rng, CATS[rng.integers(6)])
        objs = world.scene_from_spec(rng, spec)
        for _ in range(int(rng.integers(0, 3))):
            if len(objs) < 4:
                objs = add_random_object(rng, objs) or objs
        o = objs[rng.integers(len(objs))]
        g = {"shape": o["shape"], "colour": o["colour"] if rng.random() < 0.6 else None,
             "count": 1, "exact": False}
        spec = {"groups": [g], "relation": None}
    else:
        spec = world.sample_spec(rng, cat)
        objs = world.scene_from_spec(rng, spec)
        if rng.random() < 0.25 and len(objs) < 4:  # distractor, if the caption stays true
            more = add_random_object(rng, objs)
            if more is not None and truth(more, spec):
                objs = more
    if rng.random() < 0.5:
        objs, spec = world.flip_scene(objs, spec, horizontal=True)
    if rng.random() < 0.5:
        objs, spec = world.flip_scene(objs, spec, horizontal=False)
    return objs, spec, cat


def _g(g, **kw):
    g = dict(g)
    g.update(kw)
    return g


def negative_caption(rng, objs, spec):
    """A caption false for objs, close to spec (the hard text negative)."""
    gs, rel = spec["groups"], spec["relation"]
    cands = []
    for i, g in enumerate(gs):
        for c in world.COLOURS:
            if c != g["colour"]:
                cands.append(("colour", i, c))
        for s in world.SHAPES:
            if s != g["shape"]:
                cands.append(("shape", i, s))
        if g["exact"] or g["count"] > 1:
            for n in (g["count"] - 1, g["count"] + 1):
                if 1 <= n <= 4:
                    cands.append(("count", i, n))
    if len(gs) == 2:
        cands += [("swapcol",), ("swapshape",), ("swapcol",), ("swapshape",)]
    if rel:
        for r in world.RELATIONS:
            if r != rel:
                cands += [("rel", r)] * 2
    order = rng.permutation(len(cands))
    for k in order:
        c = cands[k]
        ng = [dict(g) for g in gs]
        nrel = rel
        if c[0] == "colour":
            ng[c[1]]["colour"] = c[2]
        elif c[0] == "shape":
            ng[c[1]]["shape"] = c[2]
        elif c[0] == "count":
            ng[c[1]]["count"] = c[2]
            ng[c[1]]["exact"] = True
        elif c[0] == "swapcol":
            ng[0]["colour"], ng[1]["colour"] = gs[1]["colour"], gs[0]["colour"]
        elif c[0] == "swapshape":
            ng[0]["shape"], ng[1]["shape"] = gs[1]["shape"], gs[0]["shape"]
        elif c[0] == "rel":
            nrel = c[1]
        nspec = {"groups": ng, "relation": nrel}
        cap = valid_caption(nspec)
        if cap is not None and not truth(objs, nspec):
            return cap
    # fallback: any random caption false for the scene
    while True:
        nspec = world.sample_spec(rng, world.CATEGORIES[rng.integers(6)])
        if not truth(objs, nspec):
            return world.spec_to_caption(nspec)


def perturb_scene(rng, objs, spec, tries=30):
    """A scene close to objs that is false for spec (the hard image negative), or None."""
    for _ in range(tries):
        kind = rng.integers(7)
        new = [dict(o) for o in objs]
        i = int(rng.integers(len(new)))
        if kind == 0:
            new[i]["colour"] = world.COLOURS[(world.COLOURS.index(new[i]["colour"]) + 1 + rng.integers(3)) % 4]
        elif kind == 1:
            new[i]["shape"] = world.SHAPES[(world.SHAPES.index(new[i]["shape"]) + 1 + rng.integers(2)) % 3]
        elif kind == 2 and len(new) >= 2:
            j = int(rng.integers(len(new) - 1))
            j = j + 1 if j >= i else j
            new[i]["colour"], new[j]["colour"] = new[j]["colour"], new[i]["colour"]
        elif kind == 3:
            new, _ = world.flip_scene(new, {"groups": [], "relation": None}, horizontal=bool(rng.integers(2)))
        elif kind == 4 and len(new) >= 2:  # swap positions (centres) of two objects
            j = int(rng.integers(len(new) - 1))
            j = j + 1 if j >= i else j
            a, b = new[i], new[j]
            ca = (a["x0"] + a["s"] / 2, a["y0"] + a["s"] / 2)
            cb = (b["x0"] + b["s"] / 2, b["y0"] + b["s"] / 2)
            a["x0"], a["y0"] = int(round(cb[0] - a["s"] / 2)), int(round(cb[1] - a["s"] / 2))
            b["x0"], b["y0"] = int(round(ca[0] - b["s"] / 2)), int(round(ca[1] - b["s"] / 2))
            ok = all(0 <= o["x0"] <= 32 - o["s"] and 0 <= o["y0"] <= 32 - o["s"] for o in new)
            ok = ok and all(world._boxes_clear(new[:k] + new[k + 1:], o["x0"], o["y0"], o["s"])
                            for k, o in enumerate(new))
            if not ok:
                continue
        elif kind == 5 and len(new) >= 2:
            del new[i]
        elif kind == 6 and len(new) < 4:
            g = spec["groups"][rng.integers(len(spec["groups"]))] if spec["groups"] else None
            more = add_random_object(rng, new, shape=g["shape"] if g else None,
                                     colour=g["colour"] if g else None)
            if more is None:
                continue
            new = more
        else:
            continue
        if not truth(new, spec):
            return new
    return None


def negative_image_scene(rng, objs, spec):
    new = perturb_scene(rng, objs, spec)
    while new is None:  # fallback: a scene of another caption
        nspec = world.sample_spec(rng, world.CATEGORIES[rng.integers(6)])
        new = world.scene_from_spec(rng, nspec)
        if truth(new, spec):
            new = None
    return new


def make_batch(rng, B):
    imgs, caps, nimgs, ncaps = [], [], [], []
    for _ in range(B):
        objs, spec, _cat = sample_pair(rng)
        imgs.append(world.render(objs))
        caps.append(world.spec_to_caption(spec))
        ncaps.append(negative_caption(rng, objs, spec))
        nimgs.append(world.render(negative_image_scene(rng, objs, spec)))
    return imgs, caps, nimgs, ncaps


def clip_loss(model, imgs, caps, nimgs, ncaps):
    B = len(imgs)
    I = model.img(images_to_tensor(imgs + nimgs))
    T = model.txt(tokens_to_tensor(caps + ncaps))
    s = model.logit_scale.exp().clamp(max=100.0)
    Ip, In = I[:B], I[B:]
    Tp, Tn = T[:B], T[B:]
    # in-batch duplicates of a caption are not negatives for each other
    same = torch.tensor([[caps[i] == caps[j] and i != j for j in range(B)] for i in range(B)])
    neg_inf = torch.finfo(torch.float32).min
    l_it = s * Ip @ torch.cat([Tp, Tn]).T  # image -> texts (B, 2B)
    l_it[:, :B] = l_it[:, :B].masked_fill(same, neg_inf)
    l_ti = s * Tp @ torch.cat([Ip, In]).T  # text -> images (B, 2B)
    l_ti[:, :B] = l_ti[:, :B].masked_fill(same, neg_inf)
    tgt = torch.arange(B)
    return 0.5 * (F.cross_entropy(l_it, tgt) + F.cross_entropy(l_ti, tgt))


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def embed_images(model, imgs, bs=512):
    return torch.cat([model.img(images_to_tensor(imgs[i:i + bs])) for i in range(0, len(imgs), bs)])


@torch.no_grad()
def embed_texts(model, caps):
    return model.txt(tokens_to_tensor(caps))


@torch.no_grad()
def eval_retrieval(model, seed=12345, n=1000, group=100):
    """Held-out pairs in groups of `group`: top-1 retrieval among the group (exact pair, and
    'checker-correct': the retrieved partner satisfies the caption)."""
    rng = np.random.default_rng(seed)
    hit_i2t = hit_t2i = ok_i2t = ok_t2i = 0
    for g0 in range(0, n, group):
        pairs = [sample_pair(rng) for _ in range(group)]
        imgs = [world.render(o) for o, _, _ in pairs]
        caps = [world.spec_to_caption(s) for _, s, _ in pairs]
        sim = embed_images(model, imgs) @ embed_texts(model, caps).T
        i2t = sim.argmax(1).tolist()
        t2i = sim.argmax(0).tolist()
        for i in range(group):
            hit_i2t += i2t[i] == i
            hit_t2i += t2i[i] == i
            ok_i2t += truth(pairs[i][0], pairs[i2t[i]][1])
            ok_t2i += truth(pairs[t2i[i]][0], pairs[i][1])
    return {"pairs": n, "group": group, "i2t_top1": hit_i2t / n, "t2i_top1": hit_t2i / n,
            "i2t_top1_true": ok_i2t / n, "t2i_top1_true": ok_t2i / n}


def load_benchmark():
    rows = []
    with open(os.path.join(REPO, "tools", "shapes", "benchmark_prompts.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                cat, p = line.split("\t")
                rows.append((cat, p))
    return rows


def noisy(rng, img, sigma):
    if sigma <= 0:
        return img
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def model_like_candidates(rng, spec, k, p_pass=0.35, sigma=12.0):
    """k candidates for a prompt, like a weak generator's: each is, independently, a correct
    render (probability p_pass) or a near miss (perturbed scene), with pixel noise."""
    out = []
    for _ in range(k):
        objs = world.scene_from_spec(rng, spec)
        if rng.random() < 0.2 and len(objs) < 4:
            more = add_random_object(rng, objs)
            if more is not None and truth(more, spec):
                objs = more
        if rng.random() >= p_pass:
            objs = negative_image_scene(rng, objs, spec)
        out.append(noisy(rng, world.render(objs), sigma))
    return out


@torch.no_grad()
def eval_selection(model, k=4, seed=777, sigma=12.0, p_pass=0.35):
    """Best-of-k selection on the 553 benchmark prompts: k model-like candidates per prompt;
    pass = world.check (the exact pixel checker) on the verifier's top pick."""
    rng = np.random.default_rng(seed)
    rows = load_benchmark()
    per = {c: [0, 0, 0, 0] for c in world.CATEGORIES}  # top passes, random passes, any passes, n
    for cat, prompt in rows:
        spec = world.parse(prompt)
        cands = model_like_candidates(rng, spec, k, p_pass=p_pass, sigma=sigma)
        passes = [world.check(c, spec)[0] for c in cands]
        sc = (embed_images(model, cands) @ embed_texts(model, [prompt]).T)[:, 0]
        top = int(sc.argmax())
        st = per[cat]
        st[0] += passes[top]
        st[1] += sum(passes) / k
        st[2] += any(passes)
        st[3] += 1
    tot = np.array(list(per.values()), dtype=np.float64).sum(0)
    res = {"k": k, "sigma": sigma, "p_pass": p_pass, "prompts": int(tot[3]),
           "top_passes": tot[0] / tot[3], "random_passes": tot[1] / tot[3],
           "oracle_passes": tot[2] / tot[3],
           "agreement_when_any_passes": tot[0] / tot[2],
           "per_category_top_passes": {c: v[0] / v[3] for c, v in per.items()},
           "per_category_random": {c: v[1] / v[3] for c, v in per.items()}}
    return res


# ----------------------------------------------------------------------------- export
def export(model, path, info):
    from safetensors.torch import save_file
    sd = {}
    for k, v in model.state_dict().items():
        if k == "logit_scale":
            continue
        sd[k] = v.detach().to(torch.float16).contiguous()
    arch = {
        "name": "shapes-clipscore", "embed_dim": EMBED,
        "image": {"input": "rgb/127.5-1 + X,Y coordinate planes ((i+0.5)/16-1)", "in_channels": 5,
                  "convs": [{"name": "img.conv1", "out": 32, "stride": 1},
                            {"name": "img.conv2", "out": 64, "stride": 2},
                            {"name": "img.conv3", "out": 128, "stride": 2}],
                  "pool": "mean", "head": ["img.fc1", "relu", "img.fc2"], "normalize": True},
        "text": {"max_tokens": world.MAX_TOKENS, "tok_dim": TOK_DIM,
                 "embeddings": [f"txt.emb.{p}.weight" for p in range(world.MAX_TOKENS)],
                 "head": ["txt.fc1", "relu", "txt.fc2"], "normalize": True},
        "score": "(cosine + 1) / 2",
    }
    meta = {"architecture": json.dumps(arch), "vocab": json.dumps(world.VOCAB),
            "logit_scale": f"{model.logit_scale.exp().item():.4f}", "format": "shapes-clipscore/1"}
    meta.update({k: str(v) for k, v in info.items()})
    save_file(sd, path, metadata=meta)


def fp16_model(model):
    m = Clip()
    sd = {k: (v.to(torch.float16).to(torch.float32) if k != "logit_scale" else v)
          for k, v in model.state_dict().items()}
    m.load_state_dict(sd)
    m.eval()
    return m


VECTOR_CAPTIONS = ["a red circle left of a blue square", "a circle", "three green triangles",
                   "a yellow square and a blue triangle", "two squares", "a blue triangle above a red circle",
                   "a circle and a triangle", "", "four red squares", "a green square below a yellow circle"]


@torch.no_grad()
def export_vectors(model, path):
    """float32 reference: 10 images (pixel values 0..255 stored as float32), their token ids, image/text embeddings and the cosine
    matrix, computed with the float16-rounded weights in float32."""
    from safetensors.torch import save_file
    m = fp16_model(model)
    rng = np.random.default_rng(4242)
    imgs = []
    for cap in VECTOR_CAPTIONS:
        spec = world.parse(cap)
        objs = world.scene_from_spec(rng, spec) if spec["groups"] else []
        imgs.append(world.render(objs))
    imgs[-1] = noisy(rng, imgs[-1], 30.0)  # one noisy image
    ie = m.img(images_to_tensor(imgs))
    te = m.txt(tokens_to_tensor(VECTOR_CAPTIONS))
    save_file({"images": torch.from_numpy(np.stack(imgs).astype(np.float32)).contiguous(),
               "tokens": tokens_to_tensor(VECTOR_CAPTIONS).to(torch.int32).contiguous(),
               "image_embeds": ie.contiguous(), "text_embeds": te.contiguous(),
               "cosine": (ie @ te.T).contiguous()},
              path, metadata={"captions": json.dumps(VECTOR_CAPTIONS),
                              "note": "images: pixel values 0..255 as float32 (N,32,32,3); cosine[i][j] = <image i, caption j>"})


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--minutes", type=float, default=13.0, help="training time budget (wall clock)")
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--out", default=os.path.join(REPO, "Plugins", "shapes", "weights", "clipscore.safetensors"))
    ap.add_argument("--vectors", default=os.path.join(REPO, "Plugins", "shapes", "weights",
                                                      "clipscore-vectors.safetensors"))
    ap.add_argument("--eval-only", action="store_true", help="load --out and evaluate it")
    ap.add_argument("--vectors-only", action="store_true", help="load --out, re-export --vectors, stop")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    run = os.path.join(HERE, "runs", args.name)
    os.makedirs(run, exist_ok=True)
    model = Clip()

    if args.eval_only or args.vectors_only:
        from safetensors.torch import load_file
        sd = {k: v.float() for k, v in load_file(args.out).items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert missing == ["logit_scale"] and not unexpected, (missing, unexpected)
        model.eval()
        if args.vectors_only:
            export_vectors(model, args.vectors)
            print("wrote", args.vectors)
            return
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        budget = args.minutes * 60.0
        t0 = time.time()
        step = 0
        logf = open(os.path.join(run, "loss.csv"), "w")
        logf.write("step,seconds,loss,temperature,lr\n")
        ema = None
        while step < args.max_steps:
            el = time.time() - t0
            if el > budget:
                break
            frac = el / budget
            lr = args.lr * min(1.0, (step + 1) / 100) * (0.5 * (1 + np.cos(np.pi * frac)) * 0.95 + 0.05)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = make_batch(rng, args.batch)
            loss = clip_loss(model, *batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100.0))
            step += 1
            ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
            logf.write(f"{step},{time.time() - t0:.1f},{loss.item():.4f},{1 / model.logit_scale.exp().item():.4f},{lr:.6f}\n")
            if step % 25 == 0:
                logf.flush()
                print(f"step {step:5d}  {time.time() - t0:6.0f}s  loss {loss.item():.4f} (ema {ema:.4f})  "
                      f"T {1 / model.logit_scale.exp().item():.4f}  lr {lr:.2e}", flush=True)
        train_s = time.time() - t0
        logf.close()
        model.eval()
        info = {"steps": step, "train_seconds": f"{train_s:.0f}",
                "batch": args.batch, "seed": args.seed,
                "final_loss_ema": f"{ema:.4f}"}
        export(model, args.out, info)
        export_vectors(model, args.vectors)
        print(f"trained {step} steps in {train_s:.0f}s; wrote {args.out} ({os.path.getsize(args.out)} bytes) "
              f"and {args.vectors}", flush=True)
        model = fp16_model(model)

    t1 = time.time()
    res = {"retrieval": eval_retrieval(model),
           "selection_k4": eval_selection(model, k=4),
           "selection_k8": eval_selection(model, k=8, seed=778),
           "selection_k4_clean": eval_selection(model, k=4, seed=779, sigma=0.0)}
    print(json.dumps(res, indent=1))
    print(f"eval {time.time() - t1:.0f}s")
    with open(os.path.join(run, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
