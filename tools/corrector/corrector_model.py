"""shapes-corrector: shapes-base (tools/shapes/model.py) plus two conditions.  The base
docstring stays the truth for every op; only these differences:

forward(x[B,3,32,32], t[B], tokens[B,8], ref_tokens[B,R=24], ref_img[B,3,32,32]) -> v[B,3,32,32]

1. Reference image (the flawed image, data range [-1,1]; all zeros = "no reference"):
       z = pixel_unshuffle(concat(x, ref_img) over channels, 2)   # [24,16,16]
         = concat(pixel_unshuffle(x), pixel_unshuffle(ref_img))   # same thing
       h = stem(z)                                                # conv3x3 24->64
   `stem.weight` is [64, 24, 3, 3]; input channels 12..23 start at ZERO, so at initialisation
   the model is exactly shapes-base whatever the reference.
2. Reflection text: its own token ids (data.REFLECTION_VOCAB, metadata `ref_vocab`, ids 0..21 =
   the caption vocabulary) and position embedding, through the SAME text encoder blocks and
   final LayerNorm as the caption:
       r = text.blocks(ref.tok_emb.weight[ref_tokens] + ref.pos_emb) -> text.norm   # [R, D]
   The caption's encoding and the pooled vector (mean over the 8 CAPTION tokens only, into
   text_pool) are unchanged.  The middle stack runs over
       seq = concat(txt [8], r [R], tok [64])       # text first, then reflection, then image
   and the image tokens are seq[8 + R:].
   New tensors: ref.tok_emb.weight [47, 160], ref.pos_emb [1, 24, 160]; stem.weight widened.
   (Adding R tokens to the joint attention is the only change that is not exactly zero at
   initialisation: the image tokens can attend to them from step 0.)
Config keys added: cond_channels (3), ref_tokens (24), ref_vocab_size (47).
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools/shapes"))
sys.path.insert(0, HERE)

import model as M  # noqa: E402
import world  # noqa: E402
import data as D  # noqa: E402


class CorrectorFlow(M.ShapesFlow):
    def __init__(self, cfg=None):
        cfg = dict(M.DEFAULT_CONFIG, **(cfg or {}))
        cfg.setdefault("cond_channels", 3)
        cfg.setdefault("ref_tokens", D.REFLECTION_TOKENS)
        cfg.setdefault("ref_vocab_size", len(D.REFLECTION_VOCAB))
        super().__init__(cfg)
        p2 = cfg["patch"] ** 2
        self.stem = nn.Conv2d((cfg["in_channels"] + cfg["cond_channels"]) * p2, cfg["ch0"], 3, padding=1)
        self.ref = nn.Module()
        self.ref.tok_emb = nn.Embedding(cfg["ref_vocab_size"], cfg["width"])
        self.ref.pos_emb = nn.Parameter(torch.zeros(1, cfg["ref_tokens"], cfg["width"]))
        # Training-only reparametrisation: the reference enters the stem multiplied by
        # ref_scale, which makes Adam's steps on the zero-initialised reference weights
        # ref_scale times larger (a zero-initialised input layer is otherwise slow to wake
        # up). export() folds it into stem.weight, so the exported model has ref_scale 1.
        self.ref_scale = float(cfg.get("ref_scale", 1.0))

    def encode_reflection(self, ref_tokens):
        h = self.ref.tok_emb(ref_tokens) + self.ref.pos_emb
        for b in self.text.blocks:
            h = b(h)
        return self.text.norm(h)

    def forward(self, x, t, tokens, ref_tokens, ref_img):
        txt = self.encode_text(tokens)
        ref = self.encode_reflection(ref_tokens)
        cs = self.cond(t, txt)
        r = ref_img if self.ref_scale == 1.0 else ref_img * self.ref_scale
        z = F.pixel_unshuffle(torch.cat([x, r], dim=1), self.cfg["patch"])
        h = self.stem(z)
        s1 = h = self.enc0(h, cs)
        h = self.down(h)
        s2 = h = self.enc1(h, cs)
        B, Ch, Hh, Wh = h.shape
        tok = self.img_in(h.flatten(2).transpose(1, 2)) + self.img_pos
        seq = torch.cat([txt, ref, tok], dim=1)
        for blk in self.mid:
            seq = blk(seq, cs)
        L = txt.shape[1] + ref.shape[1]
        o = self.img_out(F.layer_norm(seq[:, L:], (seq.shape[-1],), eps=1e-6))
        h = h + o.transpose(1, 2).reshape(B, Ch, Hh, Wh)
        h = self.dec1(torch.cat([h, s2], dim=1), cs)
        h = self.up(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.dec0(torch.cat([h, s1], dim=1), cs)
        h = self.out_conv(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(h, self.cfg["patch"])


def from_base(base_path, seed=0, ref_scale=1.0):
    """CorrectorFlow initialised from shapes-base weights (exactly base on the image path)."""
    base, meta = M.load_safetensors(base_path)
    g = torch.Generator().manual_seed(seed)
    m = CorrectorFlow(dict(base.cfg, **({"ref_scale": ref_scale} if ref_scale != 1.0 else {})))
    sd = base.state_dict()
    own = m.state_dict()
    for k, v in sd.items():
        if k == "stem.weight":
            w = torch.zeros_like(own[k])
            w[:, : v.shape[1]] = v
            own[k] = w
        else:
            own[k] = v.clone()
    te = sd["text.tok_emb.weight"]
    V0 = te.shape[0]
    emb = torch.randn(own["ref.tok_emb.weight"].shape, generator=g) * te[1:].std()
    emb[:V0] = te
    own["ref.tok_emb.weight"] = emb
    pe = sd["text.pos_emb"]
    R = own["ref.pos_emb"].shape[1]
    pos = pe[:, torch.arange(R) % pe.shape[1]].clone()
    pos[:, pe.shape[1]:] += torch.randn(1, R - pe.shape[1], pe.shape[2], generator=g) * pe.std()
    own["ref.pos_emb"] = pos
    m.load_state_dict(own)
    return m, meta


@torch.no_grad()
def sample(model, x, tokens, ref_tokens, ref_img, steps=20, guidance=1.75, t0=1.0):
    """Euler, uniform grid t0 -> 0, CFG against (empty caption, empty reflection, SAME
    reference image).  -> images in [-1, 1]."""
    B = x.shape[0]
    neg_t, neg_r = torch.zeros_like(tokens), torch.zeros_like(ref_tokens)
    ts = torch.linspace(t0, 0.0, steps + 1)
    for i in range(steps):
        t, tn = ts[i].item(), ts[i + 1].item()
        tt = torch.full((B,), t)
        if guidance == 1.0:
            v = model(x, tt, tokens, ref_tokens, ref_img)
        else:
            vv = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([tokens, neg_t]),
                       torch.cat([ref_tokens, neg_r]), torch.cat([ref_img, ref_img]))
            v = vv[B:] + guidance * (vv[:B] - vv[B:])
        x = x + (tn - t) * v
    return x.clamp(-1, 1)


def export(model_or_state, cfg, path, extra):
    from safetensors.torch import save_file
    sd = dict(model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state)
    scale = float(cfg.get("ref_scale", 1.0))
    if scale != 1.0:  # fold the training-only input scale into the weights
        w = sd["stem.weight"].clone()
        n_x = cfg["in_channels"] * cfg["patch"] ** 2
        w[:, n_x:] *= scale
        sd["stem.weight"] = w
        cfg = {k: v for k, v in cfg.items() if k != "ref_scale"}
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}
    meta = {
        "format": "assay-shapes-corrector-v1",
        "config": json.dumps(cfg),
        "vocab": json.dumps(world.VOCAB),
        "max_tokens": str(world.MAX_TOKENS),
        "ref_vocab": json.dumps(D.REFLECTION_VOCAB),
        "ref_tokenizer": "lower-case; '.' is a token; split on whitespace; unknown -> <unk>; "
                         "right-pad with 0, truncate to ref_tokens",
        "conditioning": "stem input = pixel_unshuffle(concat(x, ref_img)); seq = [caption 8; "
                        "reflection ref_tokens; image 64]; CFG negative = empty caption + empty "
                        "reflection + same ref_img",
        "convention": "x_t=(1-t)*x0+t*noise; v=noise-x0; t=1 noise, t=0 data; data in [-1,1]",
        "time_embedding": "concat(cos(1000*t*f),sin(1000*t*f)), f_k=10000^(-k/64), k<64",
        "palette": json.dumps({"background": world.BG, **world.PALETTE}),
    }
    for k, v in extra.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    save_file(tensors, path, metadata=meta)


def load(path):
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    m = CorrectorFlow(json.loads(meta["config"]))
    m.load_state_dict(sd)
    return m, meta
