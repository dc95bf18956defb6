"""Shapes text-to-image rectified-flow model.  SINGLE SOURCE OF TRUTH for the forward pass.

Every op is simple to re-implement in C: conv3x3 (pad 1), conv1x1, GroupNorm (32 groups,
eps 1e-5, affine), SiLU, Linear (y = x W^T + b, W stored [out, in]), LayerNorm (eps 1e-6,
with or without affine), softmax attention, GELU (tanh approximation), nearest 2x upsample,
pixel-unshuffle / pixel-shuffle by 2.  Tensors are NCHW (conv) or [tokens, width]; conv
weights are [out, in, kh, kw]; all weights stored float16 in the safetensors export (compute
in float32).

Rectified flow convention (fixed):
    x_t = (1 - t) * x0 + t * noise,   t in [0, 1],  t = 1 pure noise, t = 0 data,
    model predicts v = noise - x0,    Euler from t = 1 down to 0: x <- x + (t_next - t) * v.
    Data in [-1, 1], image (3, 32, 32), RGB.
CFG: v = v_neg + g * (v_pos - v_neg); v_neg uses the negative prompt, or "" (8 pad tokens).

Forward pass  forward(x[B,3,32,32], t[B], tokens[B,8] int) -> v[B,3,32,32]
----------------------------------------------------------------------------------------
Text encoder (`text.*`, width D = 160, L = 8 tokens, no attention mask; pads are real tokens):
    h = text.tok_emb.weight[tokens] + text.pos_emb            # [L, D]   (pos_emb: [1, 8, 160])
    for i in 0..text_layers-1:  h = TextBlock text.blocks.i (h)
    txt = LayerNorm(h; text.norm.weight, text.norm.bias)       # [L, D]
    pooled = mean over the L tokens of txt                     # [D]

Time / condition vector (width C = 256):
    freqs[k] = exp(-ln(10000) * k / 64),  k = 0..63
    arg = (t * 1000) * freqs                                    # [64]
    temb_in = concat(cos(arg), sin(arg))                        # [128]  (cos first)
    c = t_mlp.2( SiLU( t_mlp.0(temb_in) ) )                     # Linear 128->256, Linear 256->256
    c = c + text_pool(pooled)                                   # Linear 160->256
    cs = SiLU(c)                                                # [256]  used by every FiLM/adaLN

Image path (H = 32 input):
    z = pixel_unshuffle(x, 2)   # [12,16,16]; z[c*4 + i*2 + j, y, x] = x[c, 2y+i, 2x+j]
    h = stem(z)                 # conv3x3 12->64                          [64,16,16]
    h = enc0(h, cs)             # ResBlock 64->64                         [64,16,16]  skip s1 = h
    h = down(h)                 # conv3x3 stride 2, pad 1, 64->128        [128,8,8]
    h = enc1(h, cs)             # ResBlock 128->128                       [128,8,8]   skip s2 = h
    # ---- transformer middle (N_mid = mid_layers blocks, width D = 160) ----
    tok = img_in(h flattened to [64, 128], row-major y*8+x) + img_pos    # Linear 128->160; img_pos [1,64,160]
    seq = concat(txt, tok)      # [8 + 64, 160]   text tokens FIRST
    for i in 0..N_mid-1:  seq = MidBlock mid.i (seq, cs)
    o = img_out(LayerNorm_noaffine(seq[8:]))                 # Linear 160->128 -> [64,128] -> [128,8,8]
    h = h + o                   # residual around the whole middle stack
    # ---- decoder ----
    h = dec1(concat(h, s2), cs) # ResBlock 256->128 (channel concat: h first, then skip) [128,8,8]
    h = up(upsample_nearest2x(h))  # conv3x3 128->64                      [64,16,16]
    h = dec0(concat(h, s1), cs) # ResBlock 128->64                        [64,16,16]
    h = out_conv(SiLU(GroupNorm out_norm (h)))   # conv3x3 64->12 (zero-initialised)  [12,16,16]
    v = pixel_shuffle(h, 2)     # inverse of pixel_unshuffle                [3,32,32]

ResBlock(prefix, cin, cout)  (GroupNorm 32 groups, eps 1e-5):
    a = conv1(SiLU(GroupNorm norm1 (x)))                 # conv3x3 cin->cout
    a = GroupNorm norm2 (a)
    scale, shift = split(film(cs), 2)                    # Linear 256 -> 2*cout; scale first
    a = a * (1 + scale[:,None,None]) + shift[:,None,None]
    a = conv2(SiLU(a))                                   # conv3x3 cout->cout
    out = (skip(x) if cin != cout else x) + a            # skip = conv1x1 cin->cout (with bias)

TextBlock (pre-LN, LayerNorm with affine, eps 1e-6; H = 4 heads of 40):
    h = h + attn.proj(Attention(attn.qkv(LN norm1 (h))))
    h = h + mlp.fc2(GELU_tanh(mlp.fc1(LN norm2 (h))))          # 160 -> 640 -> 160

MidBlock (adaLN-Zero, LayerNorm WITHOUT affine, eps 1e-6):
    m = ada(cs)                                                # Linear 256 -> 6*160 (zero-init)
    shift1, scale1, gate1, shift2, scale2, gate2 = split(m, 6) # in this order
    seq = seq + gate1 * attn.proj(Attention(attn.qkv(LN(seq) * (1 + scale1) + shift1)))
    seq = seq + gate2 * mlp.fc2(GELU_tanh(mlp.fc1(LN(seq) * (1 + scale2) + shift2)))

Attention(qkv [N, 3D]):  q, k, v = split(qkv, 3) (q first); heads: column block h*40..h*40+39;
    per head: softmax(q k^T / sqrt(40)) v ;  heads concatenated back in order -> [N, D].

Weights (safetensors names = state_dict names; default config; Linear W is [out, in]):
    text.tok_emb.weight [22,160]   text.pos_emb [1,8,160]
    text.blocks.{0,1}.norm1.{weight,bias} [160]   .attn.qkv.weight [480,160] .attn.qkv.bias [480]
        .attn.proj.weight [160,160] .attn.proj.bias [160]   .norm2.{weight,bias} [160]
        .mlp.fc1.weight [640,160] .mlp.fc1.bias [640] .mlp.fc2.weight [160,640] .mlp.fc2.bias [160]
    text.norm.{weight,bias} [160]   text_pool.weight [256,160] .bias [256]
    t_mlp.0.weight [256,128] .bias [256]   t_mlp.2.weight [256,256] .bias [256]
    stem.weight [64,12,3,3] .bias [64]     down.weight [128,64,3,3] .bias [128]
    up.weight [64,128,3,3] .bias [64]      out_norm.{weight,bias} [64]   out_conv.weight [12,64,3,3] .bias [12]
    ResBlocks enc0 (64->64), enc1 (128->128), dec1 (256->128), dec0 (128->64):
        norm1.{weight,bias} [cin]  conv1.weight [cout,cin,3,3] .bias [cout]  norm2.{weight,bias} [cout]
        film.weight [2*cout,256] .bias [2*cout]  conv2.weight [cout,cout,3,3] .bias [cout]
        skip.weight [cout,cin,1,1] .bias [cout]   (dec1, dec0 only)
    img_in.weight [160,128] .bias [160]   img_pos [1,64,160]   img_out.weight [128,160] .bias [128]
    mid.{0..4}.attn.qkv / attn.proj / mlp.fc1 / mlp.fc2 (as text blocks), mid.i.ada.weight [960,256] .bias [960]
    (MidBlocks have no LayerNorm parameters.)
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_CONFIG = {
    "image_size": 32,
    "in_channels": 3,
    "patch": 2,               # pixel-unshuffle factor
    "ch0": 64,                # channels at 16x16
    "ch1": 128,               # channels at 8x8
    "width": 160,             # transformer width (text and middle)
    "heads": 4,
    "mlp_ratio": 4,
    "text_layers": 2,
    "mid_layers": 5,
    "cond_dim": 256,
    "time_freq_dim": 128,
    "groups": 32,
    "vocab_size": 22,
    "max_tokens": 8,
}


def timestep_embedding(t: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """t [B] in [0,1] -> [B, dim] = concat(cos(1000 t f_k), sin(1000 t f_k)), f_k = 10000^(-k/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    arg = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        hd = D // self.heads
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd]
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        att = att.softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(o)


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TextBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, dim * mlp_ratio)

    def forward(self, h):
        h = h + self.attn(self.norm1(h))
        h = h + self.mlp(self.norm2(h))
        return h


class TextEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg["width"]
        self.tok_emb = nn.Embedding(cfg["vocab_size"], D)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg["max_tokens"], D))
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb, std=0.02)
        self.blocks = nn.ModuleList([TextBlock(D, cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["text_layers"])])
        self.norm = nn.LayerNorm(D, eps=1e-6)

    def forward(self, tokens):
        h = self.tok_emb(tokens) + self.pos_emb
        for b in self.blocks:
            h = b(h)
        return self.norm(h)


class MidBlock(nn.Module):
    """Joint-attention transformer block over [text; image] tokens with adaLN-Zero."""

    def __init__(self, dim, heads, mlp_ratio, cond_dim):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.mlp = MLP(dim, dim * mlp_ratio)
        self.ada = nn.Linear(cond_dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        self.dim = dim

    def forward(self, seq, cs):
        m = self.ada(cs)[:, None, :]  # [B,1,6D]
        sh1, sc1, g1, sh2, sc2, g2 = m.chunk(6, dim=-1)
        x = F.layer_norm(seq, (self.dim,), eps=1e-6)
        seq = seq + g1 * self.attn(x * (1 + sc1) + sh1)
        x = F.layer_norm(seq, (self.dim,), eps=1e-6)
        seq = seq + g2 * self.mlp(x * (1 + sc2) + sh2)
        return seq


class ResBlock(nn.Module):
    def __init__(self, cin, cout, cond_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.film = nn.Linear(cond_dim, 2 * cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, cs):
        a = self.conv1(F.silu(self.norm1(x)))
        a = self.norm2(a)
        scale, shift = self.film(cs).chunk(2, dim=-1)
        a = a * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        a = self.conv2(F.silu(a))
        return (self.skip(x) if self.skip is not None else x) + a


class ShapesFlow(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = dict(DEFAULT_CONFIG, **(cfg or {}))
        self.cfg = cfg
        C, D, c0, c1, G = cfg["cond_dim"], cfg["width"], cfg["ch0"], cfg["ch1"], cfg["groups"]
        p2c = cfg["in_channels"] * cfg["patch"] ** 2
        self.text = TextEncoder(cfg)
        self.text_pool = nn.Linear(D, C)
        self.t_mlp = nn.Sequential(nn.Linear(cfg["time_freq_dim"], C), nn.SiLU(), nn.Linear(C, C))
        self.stem = nn.Conv2d(p2c, c0, 3, padding=1)
        self.enc0 = ResBlock(c0, c0, C, G)
        self.down = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.enc1 = ResBlock(c1, c1, C, G)
        self.img_in = nn.Linear(c1, D)
        n_img = (cfg["image_size"] // cfg["patch"] // 2) ** 2
        self.img_pos = nn.Parameter(torch.randn(1, n_img, D) * 0.02)
        self.mid = nn.ModuleList([MidBlock(D, cfg["heads"], cfg["mlp_ratio"], C) for _ in range(cfg["mid_layers"])])
        self.img_out = nn.Linear(D, c1)
        self.dec1 = ResBlock(2 * c1, c1, C, G)
        self.up = nn.Conv2d(c1, c0, 3, padding=1)
        self.dec0 = ResBlock(2 * c0, c0, C, G)
        self.out_norm = nn.GroupNorm(G, c0, eps=1e-5)
        self.out_conv = nn.Conv2d(c0, p2c, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    # --- pieces exposed for test vectors / caching samplers ---
    def encode_text(self, tokens):
        return self.text(tokens)

    def cond(self, t, txt):
        c = self.t_mlp(timestep_embedding(t, self.cfg["time_freq_dim"]))
        c = c + self.text_pool(txt.mean(dim=1))
        return F.silu(c)

    def forward(self, x, t, tokens, return_intermediates=False):
        inter = {}
        txt = self.encode_text(tokens)
        cs = self.cond(t, txt)
        inter["txt"], inter["cs"] = txt, cs
        z = F.pixel_unshuffle(x, self.cfg["patch"])
        h = self.stem(z)
        s1 = h = self.enc0(h, cs)
        h = self.down(h)
        s2 = h = self.enc1(h, cs)
        inter["enc1"] = h
        B, Ch, Hh, Wh = h.shape
        tok = self.img_in(h.flatten(2).transpose(1, 2)) + self.img_pos
        seq = torch.cat([txt, tok], dim=1)
        inter["mid_in"] = seq
        for i, blk in enumerate(self.mid):
            seq = blk(seq, cs)
            inter[f"mid{i}"] = seq
        L = txt.shape[1]
        o = self.img_out(F.layer_norm(seq[:, L:], (seq.shape[-1],), eps=1e-6))
        h = h + o.transpose(1, 2).reshape(B, Ch, Hh, Wh)
        inter["mid_out"] = h
        h = self.dec1(torch.cat([h, s2], dim=1), cs)
        h = self.up(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.dec0(torch.cat([h, s1], dim=1), cs)
        h = self.out_conv(F.silu(self.out_norm(h)))
        v = F.pixel_shuffle(h, self.cfg["patch"])
        if return_intermediates:
            return v, inter
        return v


# ----------------------------------------------------------------------------- sampling
@torch.no_grad()
def sample(model, tokens, neg_tokens=None, steps=20, guidance=1.75, generator=None, x=None):
    """Euler sampler from t=1 to t=0 with uniform t grid t_i = 1 - i/steps, CFG against
    neg_tokens (default: empty prompt = all pad).  Returns images in [-1, 1]."""
    if x is None:
        x = torch.randn(tokens.shape[0], 3, 32, 32, generator=generator)
    return euler_states(model, x, tokens, 1.0, steps, guidance, neg_tokens)[-1].clamp(-1, 1)


@torch.no_grad()
def euler_states(model, x, tokens, t0=1.0, steps=20, guidance=1.75, neg_tokens=None):
    """Every state of the Euler sampler on a uniform grid from t0 (1 = noise) to 0:
    [x at t0, ..., x at 0] (steps + 1 tensors, no clamping).  guidance 1 = one evaluation
    a step; otherwise CFG against neg_tokens (default: the empty prompt), as the daemon does."""
    B = x.shape[0]
    neg = torch.zeros_like(tokens) if neg_tokens is None else neg_tokens
    ts = torch.linspace(t0, 0.0, steps + 1)
    states = [x]
    for i in range(steps):
        t, tn = ts[i].item(), ts[i + 1].item()
        tt = torch.full((B,), t)
        if guidance == 1.0:
            v = model(x, tt, tokens)
        else:
            vv = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([tokens, neg]))
            v = vv[B:] + guidance * (vv[:B] - vv[B:])
        x = x + (tn - t) * v
        states.append(x)
    return states


def to_uint8(x):
    """[-1,1] (B,3,32,32) -> uint8 numpy (B,32,32,3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------- export / import
def export_safetensors(model_or_state, cfg, path, metadata_extra=None):
    from safetensors.torch import save_file
    import world
    sd = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}
    meta = {
        "format": "assay-shapes-flow-v1",
        "config": json.dumps(cfg),
        "vocab": json.dumps(world.VOCAB),
        "max_tokens": str(world.MAX_TOKENS),
        "convention": "x_t=(1-t)*x0+t*noise; v=noise-x0; t=1 noise, t=0 data; data in [-1,1]",
        "time_embedding": "concat(cos(1000*t*f),sin(1000*t*f)), f_k=10000^(-k/64), k<64",
        "palette": json.dumps({"background": world.BG, **world.PALETTE}),
    }
    for k, v in (metadata_extra or {}).items():
        meta[k] = str(v)
    save_file(tensors, path, metadata=meta)


def load_safetensors(path):
    """-> (model float32, metadata dict)."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    cfg = json.loads(meta["config"])
    model = ShapesFlow(cfg)
    model.load_state_dict(sd)
    return model, meta


def count_params(model):
    return sum(p.numel() for p in model.parameters())
