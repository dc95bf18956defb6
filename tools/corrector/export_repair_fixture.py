"""Write the held-out repair fixture of the C repair test (Plugins/shapes/tests/test_repair.c).

    OMP_NUM_THREADS=1 python3 tools/corrector/export_repair_fixture.py [--per-kind 24] [OUT]

Default OUT: Plugins/shapes/tests/fixtures/repair-heldout.safetensors.  The triplets are
data.held_out(per_kind): the trainer's held-out stream (seed 1_000_003, disjoint from the
training stream), per_kind rule-based triplets for each flaw kind (count, colour, shape,
position), in that order.  Tensors: flawed F16 [N,32,32,3] (the flawed render, 8-bit values
0..255, exact in float16), kind I32 [N] (index into metadata "kinds").  Metadata: prompts,
reflections (the reflector's feedback on the flawed image), kinds (JSON), source.
No torch needed (numpy + safetensors).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

import data as D  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--per-kind", type=int, default=24)
    p.add_argument("out", nargs="?", default=os.path.join(REPO, "Plugins/shapes/tests/fixtures/repair-heldout.safetensors"))
    args = p.parse_args()
    held = D.held_out(args.per_kind)
    flawed = np.stack([t["flawed"] for t in held]).astype(np.float16)
    assert np.array_equal(flawed.astype(np.uint8), np.stack([t["flawed"] for t in held]))
    kind = np.array([D.KINDS.index(t["kind"]) for t in held], dtype=np.int32)
    save_file({"flawed": flawed, "kind": kind}, args.out, metadata={
        "prompts": json.dumps([t["prompt"] for t in held]),
        "reflections": json.dumps([t["reflection"] for t in held]),
        "kinds": json.dumps(D.KINDS),
        "source": f"tools/corrector/data.py held_out({args.per_kind}) (seed 1000003), "
                  "tools/corrector/export_repair_fixture.py"})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): {len(held)} triplets")


if __name__ == "__main__":
    main()
