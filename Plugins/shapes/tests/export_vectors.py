"""Export reference vectors for the C engine tests (Plugins/shapes/tests/test_engine.c).

    OMP_NUM_THREADS=1 python3 Plugins/shapes/tests/export_vectors.py [WEIGHTS] [OUT]

Defaults: Plugins/shapes/weights/shapes-base.safetensors -> Plugins/shapes/weights/testvectors.safetensors.
Uses tools/shapes/model.py (the reference forward pass) on the float16 weights converted to
float32. Metadata "weights_sha256" records which weights file the vectors belong to: the C
test refuses to compare against vectors from other weights (run refresh_vectors.sh).

Tensors (float32 unless noted; R = 4 rows, row r: prompt r, latent r (seed 1234), t[r]):
  tokens int32 [R,8], x [R,3,32,32], t [R], txt_block0 [R,8,D] (after text block 0),
  txt [R,8,D], cs [R,256], enc1 [R,ch1,8,8], mid_in [R,72,D], mid0 [R,72,D],
  mid_last [R,72,D], mid_out [R,ch1,8,8], v [R,3,32,32],
  sample_noise [2,3,32,32], sample_tokens int32 [2,8], sample_out [2,3,32,32]
  (Euler 8 steps t_i = 1 - i/8, CFG 1.75 against "", clamped to [-1, 1]).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import model as M  # noqa: E402
import world  # noqa: E402

PROMPTS = ["a red circle left of a blue square", "three green triangles", "",
           "a yellow square above a blue triangle"]
TVALS = [1.0, 0.7, 0.4, 0.05]
SAMPLE_PROMPTS = ["two red circles", "a blue square and a yellow circle"]
TOKENIZER_CASES = ["a red circle", "  A  RED\tcircle ", "", "four yellow triangles left of a blue square",
                   "a purple circle", "a red circle and a blue square and a green triangle", "a <pad>"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    wpath = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "Plugins/shapes/weights/testvectors.safetensors")
    digest = sha256(wpath)
    model, meta = M.load_safetensors(wpath)
    if sha256(wpath) != digest:
        sys.exit("weights file changed while exporting (the trainer wrote it); run again")
    model.eval()
    R = len(PROMPTS)
    cfg = model.cfg
    shape = (cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    lat = torch.randn(R, *shape, generator=torch.Generator().manual_seed(1234))
    tok = torch.stack([torch.from_numpy(world.encode(p)) for p in PROMPTS])
    t = torch.tensor(TVALS, dtype=torch.float32)
    v, inter = model(lat, t, tok, return_intermediates=True)
    te = model.text
    h0 = te.blocks[0](te.tok_emb(tok) + te.pos_emb)
    nmid = model.cfg["mid_layers"]
    tensors = {
        "tokens": tok.to(torch.int32), "x": lat, "t": t, "txt_block0": h0, "txt": inter["txt"],
        "cs": inter["cs"], "enc1": inter["enc1"], "mid_in": inter["mid_in"], "mid0": inter["mid0"],
        "mid_last": inter[f"mid{nmid - 1}"], "mid_out": inter["mid_out"], "v": v,
    }
    stok = torch.stack([torch.from_numpy(world.encode(p)) for p in SAMPLE_PROMPTS])
    sn = torch.randn(2, *shape, generator=torch.Generator().manual_seed(99))
    sout = M.sample(model, stok, steps=8, guidance=1.75, x=sn.clone())
    tensors.update({"sample_noise": sn, "sample_tokens": stok.to(torch.int32), "sample_out": sout})
    tensors = {k: val.contiguous() for k, val in tensors.items()}
    cases = []
    for c in TOKENIZER_CASES:
        try:
            cases.append([c, [int(i) for i in world.encode(c)]])
        except ValueError:
            cases.append([c, None])
    save_file(tensors, out, metadata={
        "weights": os.path.basename(wpath), "weights_sha256": digest, "weights_steps": meta.get("steps", "?"),
        "mid_layers": str(nmid), "prompts": json.dumps(PROMPTS), "t": json.dumps(TVALS),
        "sample_prompts": json.dumps(SAMPLE_PROMPTS),
        "sample": "Euler 8 steps t_i=1-i/8, CFG 1.75 vs '', clamp [-1,1]",
        "tokenizer_cases": json.dumps(cases),
        "note": "float32 forward pass (tools/shapes/model.py) of the float16 weights converted to float32"})
    print(f"wrote {out} ({os.path.getsize(out)} bytes) from {wpath} sha256 {digest[:16]}... steps {meta.get('steps')}")


if __name__ == "__main__":
    main()
