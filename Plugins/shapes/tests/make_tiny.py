"""Make a tiny, randomly initialised shapes model with a NON-default config, plus its test
vectors, so the C tests check that the engine follows the file's config metadata (nothing
hard-coded): 16x16 images, 3 middle blocks, 1 text block, other widths/heads/groups.

    python3 Plugins/shapes/tests/make_tiny.py   # -> Plugins/shapes/tests/fixtures/tiny*.safetensors

Every parameter is drawn from N(0, 0.1^2) (the zero-initialised adaLN / FiLM / output layers
too, or the output would be trivially zero). Deterministic (seed 0).
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))

import torch  # noqa: E402

import model as M  # noqa: E402

CFG = {"image_size": 16, "in_channels": 3, "patch": 2, "ch0": 16, "ch1": 32, "width": 32, "heads": 2,
       "mlp_ratio": 2, "text_layers": 1, "mid_layers": 3, "cond_dim": 48, "time_freq_dim": 16, "groups": 8,
       "vocab_size": 22, "max_tokens": 8}


def main():
    torch.manual_seed(0)
    m = M.ShapesFlow(CFG)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.1)
    out = os.path.join(HERE, "fixtures")
    os.makedirs(out, exist_ok=True)
    w = os.path.join(out, "tiny.safetensors")
    M.export_safetensors(m, CFG, w, {"steps": 0, "default_steps": 12, "default_guidance": 2.5})
    subprocess.run([sys.executable, os.path.join(HERE, "export_vectors.py"), w,
                    os.path.join(out, "tiny-vectors.safetensors")], check=True)


if __name__ == "__main__":
    main()
