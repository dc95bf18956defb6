"""Export extra test vectors for a C re-implementation of the forward pass (model.py).

    OMP_NUM_THREADS=1 python3 tools/shapes/export_testvectors.py [WEIGHTS] [OUT]

NOTE: the engine's canonical vectors, Plugins/shapes/weights/testvectors.safetensors, are
written by Plugins/shapes/tests/export_vectors.py (Plugins/shapes/tests/refresh_vectors.sh);
do not overwrite that file with this script.  This one (default output
tools/shapes/runs/testvectors-py.safetensors, git-ignored) adds mid1/mid2 and 3 latents x 2 t.

Reads the exported float16 weights, converts them to float32 (exactly what a C engine reading
the file should do) and runs the float32 forward pass.  Writes
(all float32 except token ids int32):

  tokens      int32 [6, 8]        token ids (prompts in metadata "prompts", repeated per t)
  x           f32   [6, 3, 32, 32] latents x_t (3 latents from torch seed 1234, each at 2 t)
  t           f32   [6]           [1.0, 1.0, 1.0, 0.4, 0.4, 0.4]; row r uses latent r%3 and prompt r%3
                                  (metadata "layout" lists prompt/latent/t per row)
  txt         f32   [6, 8, 160]   text encoder output (after final LayerNorm)
  cs          f32   [6, 256]      SiLU(time MLP + text_pool(mean(txt)))
  enc1        f32   [6, 128, 8, 8] output of enc1 ResBlock (= skip s2, middle input before img_in)
  mid_in      f32   [6, 72, 160]  [txt; img_in(tokens) + img_pos] before middle block 0
  mid0, mid1, mid2  f32 [6, 72, 160]  sequence after middle blocks 0, 1, 2
  mid4        f32   [6, 72, 160]  sequence after the last middle block
  mid_out     f32   [6, 128, 8, 8] h + img_out(LN(seq[8:])) (decoder input)
  v           f32   [6, 3, 32, 32] model velocity (no guidance)
  sample_noise  f32 [2, 3, 32, 32] initial noise for a full sampling run
  sample_tokens int32 [2, 8]      prompts for the sampling run (negative prompt = "")
  sample_out  f32   [2, 3, 32, 32] Euler, 8 steps (t_i = 1 - i/8), CFG g = 1.75, clamped to [-1, 1]
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import model as M  # noqa: E402
import world  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    wpath = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "runs", "testvectors-py.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    model, meta = M.load_safetensors(wpath)
    model.eval()
    prompts = ["a red circle left of a blue square", "three green triangles", ""]
    tvals = [1.0, 0.4]
    g = torch.Generator().manual_seed(1234)
    lat = torch.randn(3, 3, 32, 32, generator=g)
    x, t, tok, layout = [], [], [], []
    for ti, tv in enumerate(tvals):
        for i, p in enumerate(prompts):
            x.append(lat[i])
            t.append(tv)
            tok.append(torch.from_numpy(world.encode(p)))
            layout.append({"prompt": p, "latent": i, "t": tv})
    x = torch.stack(x)
    t = torch.tensor(t, dtype=torch.float32)
    tok = torch.stack(tok)
    v, inter = model(x, t, tok, return_intermediates=True)
    nmid = model.cfg["mid_layers"]
    tensors = {
        "tokens": tok.to(torch.int32), "x": x, "t": t, "txt": inter["txt"], "cs": inter["cs"],
        "enc1": inter["enc1"], "mid_in": inter["mid_in"], "mid0": inter["mid0"], "mid1": inter["mid1"],
        "mid2": inter["mid2"], f"mid{nmid - 1}": inter[f"mid{nmid - 1}"], "mid_out": inter["mid_out"], "v": v,
    }
    sp = ["a yellow square above a blue triangle", "two red circles"]
    stok = torch.stack([torch.from_numpy(world.encode(p)) for p in sp])
    sn = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(99))
    sout = M.sample(model, stok, steps=8, guidance=1.75, x=sn.clone())
    tensors.update({"sample_noise": sn, "sample_tokens": stok.to(torch.int32), "sample_out": sout})
    tensors = {k: val.contiguous() for k, val in tensors.items()}
    save_file(tensors, out, metadata={
        "weights": os.path.basename(wpath), "weights_steps": meta.get("steps", "?"),
        "prompts": json.dumps(prompts), "layout": json.dumps(layout),
        "sample_prompts": json.dumps(sp), "sample": "Euler 8 steps t_i=1-i/8, CFG 1.75 vs '', clamp [-1,1]",
        "note": "float32 forward pass of float16 weights converted to float32"})
    print("wrote", out, {k: tuple(val.shape) for k, val in tensors.items()})


if __name__ == "__main__":
    main()
