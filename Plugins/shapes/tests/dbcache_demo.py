"""DBCache (shared/REFERENCE.md) on the shapes model through the block-level API, to show that
prologue / block / epilogue are enough for a caching sampler, and what it saves.

    python3 Plugins/shapes/tests/dbcache_demo.py [--threshold 0.08] [--fn 1] [--bn 0] [--warmup 4]

Per Euler step (20 steps, CFG 1.75 against ""; both conditions in one batch): run the
prologue and the first Fn middle blocks; R = hidden after Fn - hidden before (the first-Fn
residual); rel = mean|R_prev - R| / mean|R_prev|. If rel < threshold and the step is past the
warm-up, skip the middle blocks (add the cached middle residual) and run the last Bn blocks;
otherwise run them and store both residuals. Every step costs the same NFEs in Assay's budget
(the prologue is the evaluation); the saving is in FLOPs, from the engine's per-part costs.
Prints cached steps, the FLOP ratio and the pixel difference to uncached sampling; writes
build/shapes/dbcache.png (rows: prompts; left: full, right: DBCache).
"""
from __future__ import annotations

import argparse
import ctypes as C
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, HERE)

import bench_engine  # noqa: E402
from sample_grid import PROMPTS, to_uint8, write_png  # noqa: E402


class Cost(C.Structure):
    _fields_ = [("prologue", C.c_double), ("block", C.c_double), ("epilogue", C.c_double)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    ap.add_argument("--lib", default=os.path.join(REPO, "build/shapes/libshapes-engine.so"))
    ap.add_argument("--threshold", type=float, default=0.08)
    ap.add_argument("--fn", type=int, default=1)
    ap.add_argument("--bn", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=1.75)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(REPO, "build/shapes/dbcache.png"))
    a = ap.parse_args()

    tmp = tempfile.mkdtemp()
    wpath = os.path.join(tmp, "w.safetensors")
    shutil.copyfile(a.weights, wpath)
    eng = bench_engine.Engine(bench_engine.ensure_lib(a.lib), wpath)
    eng.threads(1)
    lib, cfg = eng.lib, eng.cfg
    lib.shapes_prologue.argtypes = [C.c_void_p, C.c_uint32] + [C.c_void_p] * 5 + [C.c_char_p, C.c_size_t]
    lib.shapes_block.argtypes = [C.c_void_p, C.c_uint32, C.c_uint32, C.c_void_p, C.c_void_p, C.c_char_p, C.c_size_t]
    lib.shapes_epilogue.argtypes = [C.c_void_p, C.c_uint32, C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p,
                                    C.c_char_p, C.c_size_t]
    lib.shapes_engine_cost.argtypes = [C.c_void_p, C.POINTER(Cost)]
    cost = Cost()
    lib.shapes_engine_cost(eng.e, C.byref(cost))
    nb = cfg.mid_layers
    fn, bn = min(a.fn, nb), min(a.bn, nb - min(a.fn, nb))

    B = len(PROMPTS) * a.seeds
    rows = 2 * B
    ids = np.stack([eng.tokenize(p) for p in PROMPTS for _ in range(a.seeds)])
    cond = eng.encode_text(np.concatenate([ids, np.zeros_like(ids)]))
    noise = np.random.default_rng(5).standard_normal((B, cfg.in_channels, cfg.image_size, cfg.image_size)).astype(
        np.float32)
    hidden = np.zeros((rows, cfg.hidden_size), np.float32)
    context = np.zeros((rows, cfg.context_size), np.float32)
    v = np.zeros((rows,) + noise.shape[1:], np.float32)

    def run(cache):
        x = noise.copy()
        r_fn_prev = r_mid = None
        cached = 0
        flops = 0.0
        for i in range(a.steps):
            t, tn = 1.0 - i / a.steps, 1.0 - (i + 1) / a.steps
            xx = np.ascontiguousarray(np.concatenate([x, x]))
            tt = np.full(rows, t, np.float32)
            lib.shapes_prologue(eng.e, rows, xx.ctypes.data, tt.ctypes.data, cond.ctypes.data, hidden.ctypes.data,
                                context.ctypes.data, None, 0)
            h0 = hidden.copy()
            for k in range(fn):
                lib.shapes_block(eng.e, k, rows, hidden.ctypes.data, context.ctypes.data, None, 0)
            r_fn = hidden - h0
            hit = False
            if cache and r_fn_prev is not None and i >= a.warmup:
                rel = np.abs(r_fn_prev - r_fn).mean() / max(np.abs(r_fn_prev).mean(), 1e-12)
                hit = rel < a.threshold
            if hit:
                np.add(hidden, r_mid, out=hidden)
                cached += 1
            else:
                h1 = hidden.copy()
                for k in range(fn, nb - bn):
                    lib.shapes_block(eng.e, k, rows, hidden.ctypes.data, context.ctypes.data, None, 0)
                r_mid = hidden - h1
                r_fn_prev = r_fn
            for k in range(nb - bn, nb):
                lib.shapes_block(eng.e, k, rows, hidden.ctypes.data, context.ctypes.data, None, 0)
            lib.shapes_epilogue(eng.e, rows, hidden.ctypes.data, context.ctypes.data, v.ctypes.data, None, None, 0)
            blocks_run = nb if not hit else fn + bn
            flops += rows * (cost.prologue + blocks_run * cost.block + cost.epilogue)
            vp, vn = v[:B], v[B:]
            x = x + np.float32(tn - t) * (vn + np.float32(a.guidance) * (vp - vn))
        return np.clip(x, -1, 1), cached, flops

    full, _, f_full = run(False)
    dbc, cached, f_dbc = run(True)
    nfe = a.steps * rows
    d = np.abs(to_uint8(full).astype(int) - to_uint8(dbc).astype(int))
    print(f"{nb} middle blocks, Fn={fn} Bn={bn}, threshold {a.threshold}, warm-up {a.warmup} steps, "
          f"{a.steps} steps, {B} samples x 2 conditions")
    print(f"cached steps: {cached}/{a.steps}; NFEs: {nfe} both ways (Assay budget); FLOPs: DBCache / full = "
          f"{f_dbc / f_full:.3f} (speed-up {f_full / f_dbc:.2f}x in FLOPs)")
    print(f"pixel difference to uncached sampling: mean {d.mean():.2f}, max {d.max()} (of 255); "
          f"pixels off by > 32: {(d > 32).mean() * 100:.2f}%")
    up, sep, S = 3, 2, a.seeds
    cell = cfg.image_size * up
    grid = np.full((len(PROMPTS) * (cell + sep) + sep, 2 * S * (cell + sep) + 3 * sep, 3), 80, np.uint8)
    for r in range(len(PROMPTS)):
        for half, imgs in enumerate((to_uint8(full), to_uint8(dbc))):
            for s in range(S):
                y0, x0 = sep + r * (cell + sep), sep + half * (S * (cell + sep) + sep) + s * (cell + sep)
                grid[y0:y0 + cell, x0:x0 + cell] = imgs[r * S + s].repeat(up, 0).repeat(up, 1)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    write_png(a.out, grid)
    print("wrote", a.out, "(left: full, right: DBCache)")
    eng.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
