"""Export reference vectors of the corrector for the C engine tests (Plugins/shapes/tests/test_engine.c
runs them like the base model's vectors; Plugins/shapes/tests/refresh_vectors.sh calls this).

    OMP_NUM_THREADS=1 python3 tools/corrector/export_vectors.py [WEIGHTS] [OUT]

Defaults: Plugins/shapes/weights/shapes-corrector.safetensors ->
Plugins/shapes/weights/corrector-testvectors.safetensors.  The reference forward pass is
corrector_model.CorrectorFlow in float32 on the float16 weights converted to float32.  Metadata
"weights_sha256" names the weights the vectors belong to (the C test refuses others).

Tensors (float32 unless noted; R = 4 rows, row r: caption r, reflection r, reference image r,
latent r (seed 1234), t[r]):
  tokens int32 [R,8], ref_tokens int32 [R,24], ref_rgb int32 [R,32,32,3] (the 8-bit reference
  image, HWC), ref_img [R,3,32,32] (data.to_float of it), x [R,3,32,32], t [R],
  txt_block0 [R,8,D] (caption after text block 0), txt [R,8,D], ref_txt [R,24,D] (the
  reflection after the text encoder), cs [R,256], enc1 [R,ch1,8,8], mid_in [R,96,D], mid0,
  mid_last [R,96,D], mid_out [R,ch1,8,8], v [R,3,32,32];
  sample_noise [2,3,32,32], sample_tokens int32 [2,8], sample_ref_tokens int32 [2,24],
  sample_ref_img [2,3,32,32], sample_out [2,3,32,32] (corrector_model.sample: Euler 8 steps,
  CFG 1.75 against empty caption + empty reflection + the same reference, clamped).
Metadata: captions / instructions of the rows ("rows": [[caption, instruction], ...]: the C
test also encodes them through shapes_encode_reference), "tokenizer_cases" (caption tokenizer,
as the base vectors) and "reflection_tokenizer_cases" ([[text, ids], ...], data.encode_reflection).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import corrector_model as CM  # noqa: E402
import data as D  # noqa: E402
import world  # noqa: E402

TVALS = [1.0, 0.7, 0.4, 0.05]
TOKENIZER_CASES = ["a red circle", "  A  RED\tcircle ", "", "a purple circle", "a <pad>"]
REFLECTION_CASES = [
    "", "Make the green triangle blue.", "  ADD one more square.Remove   the extra BLUE circle.",
    "Move the red circle to the left of the blue square. Place the red triangle above the yellow square.",
    "Please make the circle GREEN!  xyzzy <pad> <unk> .", "a..b . .c.", "tab\tnew\nline\x1csep\x1fx\x0bv\x0cf",
    " ".join(["one"] * 30), "Turn the caf\u00e9 square into a circle.", "." * 40,
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def forward_inter(m, x, t, tokens, ref_tokens, ref_img):
    """CorrectorFlow.forward (ref_scale 1, as exported) with the intermediates test_engine.c checks."""
    inter = {}
    txt = m.encode_text(tokens)
    ref = m.encode_reflection(ref_tokens)
    cs = m.cond(t, txt)
    inter.update(txt=txt, ref_txt=ref, cs=cs)
    z = F.pixel_unshuffle(torch.cat([x, ref_img], dim=1), m.cfg["patch"])
    h = m.stem(z)
    s1 = h = m.enc0(h, cs)
    h = m.down(h)
    s2 = h = m.enc1(h, cs)
    inter["enc1"] = h
    B, Ch, Hh, Wh = h.shape
    tok = m.img_in(h.flatten(2).transpose(1, 2)) + m.img_pos
    seq = torch.cat([txt, ref, tok], dim=1)
    inter["mid_in"] = seq
    for i, blk in enumerate(m.mid):
        seq = blk(seq, cs)
        inter[f"mid{i}"] = seq
    L = txt.shape[1] + ref.shape[1]
    o = m.img_out(F.layer_norm(seq[:, L:], (seq.shape[-1],), eps=1e-6))
    h = h + o.transpose(1, 2).reshape(B, Ch, Hh, Wh)
    inter["mid_out"] = h
    h = m.dec1(torch.cat([h, s2], dim=1), cs)
    h = m.up(F.interpolate(h, scale_factor=2, mode="nearest"))
    h = m.dec0(torch.cat([h, s1], dim=1), cs)
    h = m.out_conv(F.silu(m.out_norm(h)))
    v = F.pixel_shuffle(h, m.cfg["patch"])
    ref_v = m(x, t, tokens, ref_tokens, ref_img)
    assert torch.equal(v, ref_v), "forward_inter diverged from CorrectorFlow.forward"
    return v, inter


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    wpath = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "Plugins/shapes/weights/shapes-corrector.safetensors")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "Plugins/shapes/weights/corrector-testvectors.safetensors")
    digest = sha256(wpath)
    model, meta = CM.load(wpath)
    if sha256(wpath) != digest:
        sys.exit("weights file changed while exporting (the trainer wrote it); run again")
    model.eval()
    cfg = model.cfg
    # Rows: two rule-based triplets (caption, the reflector's feedback, the flawed image), the
    # CFG negative of the first (empty texts, same image), and a caption with a free-text
    # instruction (unknown words) and no reference image (zeros).
    rng = np.random.default_rng(777)
    tr = [D.make_triplet(rng, kind=k) for k in ("colour", "position", "shape", "count")]
    rows = [(tr[0]["prompt"], tr[0]["reflection"]), (tr[1]["prompt"], tr[1]["reflection"]), ("", ""),
            ("three green triangles", "Please make them GREEN, frobnicate the square.")]
    rgb = np.stack([tr[0]["flawed"], tr[1]["flawed"], tr[0]["flawed"], np.full((32, 32, 3), 127, np.uint8)])
    img = torch.from_numpy(np.stack([D.to_float(im) for im in rgb]))
    img[3] = 0.0  # row 3: no reference
    R = len(rows)
    shape = (cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    lat = torch.randn(R, *shape, generator=torch.Generator().manual_seed(1234))
    tok = torch.stack([torch.from_numpy(world.encode(c)) for c, _ in rows])
    rtok = torch.stack([torch.from_numpy(D.encode_reflection(r)) for _, r in rows])
    t = torch.tensor(TVALS, dtype=torch.float32)
    v, inter = forward_inter(model, lat, t, tok, rtok, img)
    te = model.text
    h0 = te.blocks[0](te.tok_emb(tok) + te.pos_emb)
    nmid = cfg["mid_layers"]
    tensors = {
        "tokens": tok.to(torch.int32), "ref_tokens": rtok.to(torch.int32),
        "ref_rgb": torch.from_numpy(rgb.astype(np.int32)), "ref_img": img, "x": lat, "t": t,
        "txt_block0": h0, "txt": inter["txt"], "ref_txt": inter["ref_txt"], "cs": inter["cs"],
        "enc1": inter["enc1"], "mid_in": inter["mid_in"], "mid0": inter["mid0"],
        "mid_last": inter[f"mid{nmid - 1}"], "mid_out": inter["mid_out"], "v": v,
    }
    srows = [tr[2], tr[3]]
    stok = torch.stack([torch.from_numpy(world.encode(s["prompt"])) for s in srows])
    srt = torch.stack([torch.from_numpy(D.encode_reflection(s["reflection"])) for s in srows])
    simg = torch.from_numpy(np.stack([D.to_float(s["flawed"]) for s in srows]))
    sn = torch.randn(2, *shape, generator=torch.Generator().manual_seed(99))
    sout = CM.sample(model, sn.clone(), stok, srt, simg, steps=8, guidance=1.75)
    tensors.update({"sample_noise": sn, "sample_tokens": stok.to(torch.int32), "sample_ref_tokens": srt.to(torch.int32),
                    "sample_ref_img": simg, "sample_out": sout})
    tensors = {k: val.contiguous() for k, val in tensors.items()}
    cases = []
    for c in TOKENIZER_CASES:
        try:
            cases.append([c, [int(i) for i in world.encode(c)]])
        except ValueError:
            cases.append([c, None])
    rcases = [[c, [int(i) for i in D.encode_reflection(c, cfg["ref_tokens"])]] for c in REFLECTION_CASES]
    save_file(tensors, out, metadata={
        "weights": os.path.basename(wpath), "weights_sha256": digest, "weights_steps": meta.get("steps", "?"),
        "mid_layers": str(nmid), "rows": json.dumps(rows), "t": json.dumps(TVALS),
        "sample_rows": json.dumps([[s["prompt"], s["reflection"]] for s in srows]),
        "sample": "corrector_model.sample: Euler 8 steps t_i=1-i/8, CFG 1.75 vs (empty caption, empty reflection, "
                  "same reference), clamp [-1,1]",
        "tokenizer_cases": json.dumps(cases), "reflection_tokenizer_cases": json.dumps(rcases),
        "note": "float32 forward pass (tools/corrector/corrector_model.py) of the float16 weights converted to float32"})
    print(f"wrote {out} ({os.path.getsize(out)} bytes) from {wpath} sha256 {digest[:16]}... steps {meta.get('steps')}")


if __name__ == "__main__":
    main()
