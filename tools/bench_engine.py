#!/usr/bin/env python3
"""Speed of the shapes C engine (OpenBLAS) against the PyTorch reference, same weights.

    python3 tools/bench_engine.py [--weights FILE] [--reps 20] [--batches 1,8] [--threads 1,2]

Loads build/shapes/libshapes-engine.so through ctypes (built with
`make -C Plugins shapes-engine-lib` if missing) and tools/shapes/model.py, runs one velocity
forward of a batch of n latents (random x, random t, four different prompts) with both, at
each batch size and thread count, in alternating blocks (C block, PyTorch block, C block...)
after a warm-up, with a pause between blocks so that neither library's spinning worker
threads steal time from the other's measurement. Prints median ms per forward call and the
ratio C / PyTorch (< 1: C faster), and checks the two outputs agree.
"""
from __future__ import annotations

import argparse
import ctypes as C
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "shapes"))


class Config(C.Structure):
    _fields_ = [(n, C.c_int) for n in (
        "image_size", "in_channels", "patch", "ch0", "ch1", "width", "heads", "mlp_ratio", "text_layers",
        "mid_layers", "cond_dim", "time_freq_dim", "groups", "vocab_size", "max_tokens", "latent_size", "n_img",
        "n_seq", "condition_size", "hidden_size", "context_size", "default_steps")] + [
        ("default_guidance", C.c_float), ("schedule_shift", C.c_float), ("train_steps", C.c_longlong)]


class Engine:
    """ctypes wrapper of Plugins/shapes/engine/engine.h."""

    def __init__(self, lib_path, weights):
        self.lib = lib = C.CDLL(lib_path)
        lib.shapes_engine_load.restype = C.c_void_p
        lib.shapes_engine_load.argtypes = [C.c_char_p, C.c_char_p, C.c_size_t]
        lib.shapes_engine_free.argtypes = [C.c_void_p]
        lib.shapes_engine_config.restype = C.POINTER(Config)
        lib.shapes_engine_config.argtypes = [C.c_void_p]
        lib.shapes_engine_set_threads.argtypes = [C.c_int]
        lib.shapes_tokenize.argtypes = [C.c_void_p, C.c_char_p, C.c_void_p, C.c_char_p, C.c_size_t]
        lib.shapes_encode_text.argtypes = [C.c_void_p, C.c_uint32, C.c_void_p, C.c_void_p, C.c_char_p, C.c_size_t]
        lib.shapes_velocity.argtypes = [C.c_void_p, C.c_uint32, C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p,
                                        C.c_char_p, C.c_size_t]
        err = C.create_string_buffer(1024)
        self.e = lib.shapes_engine_load(weights.encode(), err, len(err))
        if not self.e:
            raise RuntimeError(err.value.decode())
        self.cfg = lib.shapes_engine_config(self.e).contents

    def threads(self, n):
        self.lib.shapes_engine_set_threads(n)

    def tokenize(self, caption):
        ids = np.zeros(self.cfg.max_tokens, dtype=np.int32)
        err = C.create_string_buffer(1024)
        if self.lib.shapes_tokenize(self.e, caption.encode(), ids.ctypes.data, err, len(err)) != 0:
            raise ValueError(err.value.decode())
        return ids

    def encode_text(self, ids):
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        n = ids.shape[0]
        cond = np.zeros((n, self.cfg.condition_size), dtype=np.float32)
        err = C.create_string_buffer(1024)
        if self.lib.shapes_encode_text(self.e, n, ids.ctypes.data, cond.ctypes.data, err, len(err)) != 0:
            raise RuntimeError(err.value.decode())
        return cond

    def velocity(self, x, t, cond, out=None):
        n = x.shape[0]
        if out is None:
            out = np.empty_like(x)
        err = C.create_string_buffer(512)
        rc = self.lib.shapes_velocity(self.e, n, x.ctypes.data, t.ctypes.data, cond.ctypes.data, out.ctypes.data,
                                      err, len(err))
        if rc != 0:
            raise RuntimeError(err.value.decode())
        return out

    def close(self):
        if self.e:
            self.lib.shapes_engine_free(self.e)
            self.e = None


def ensure_lib(path):
    if not os.path.exists(path) or os.environ.get("BENCH_REBUILD"):
        subprocess.run(["make", "-s", "-C", os.path.join(REPO, "Plugins"), "shapes-engine-lib"], check=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    ap.add_argument("--lib", default=os.path.join(REPO, "build/shapes/libshapes-engine.so"))
    ap.add_argument("--reps", type=int, default=20, help="timed forwards per library and setting")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--block", type=int, default=5, help="forwards per alternating block")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()

    # Snapshot the weights: the trainer may overwrite the file while we run.
    tmpdir = tempfile.mkdtemp(prefix="bench-engine-")
    weights = os.path.join(tmpdir, "weights.safetensors")
    shutil.copyfile(args.weights, weights)

    import torch
    import model as M
    import world

    eng = Engine(ensure_lib(args.lib), weights)
    tmodel, meta = M.load_safetensors(weights)
    tmodel.eval()
    cfg = eng.cfg
    print(f"weights {args.weights} (step {meta.get('steps', '?')}, mid_layers {cfg.mid_layers}); "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")

    prompts = ["a red circle left of a blue square", "three green triangles", "", "a yellow square and a blue circle"]
    rng = np.random.default_rng(0)
    rows = []
    for n in [int(b) for b in args.batches.split(",")]:
        x = rng.standard_normal((n, cfg.in_channels, cfg.image_size, cfg.image_size)).astype(np.float32)
        t = rng.uniform(0.05, 1.0, n).astype(np.float32)
        toks = np.stack([world.encode(prompts[i % len(prompts)]) for i in range(n)])
        cond = eng.encode_text(toks.astype(np.int32))
        xt, tt, tokt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(toks)
        out = np.empty_like(x)
        with torch.no_grad():
            ref = tmodel(xt, tt, tokt).numpy()
        err = float(np.abs(eng.velocity(x, t, cond, out) - ref).max())
        for th in [int(k) for k in args.threads.split(",")]:
            eng.threads(th)
            torch.set_num_threads(th)

            def run_c():
                eng.velocity(x, t, cond, out)

            def run_t():
                with torch.no_grad():
                    tmodel(xt, tt, tokt)

            for _ in range(args.warmup):
                run_c()
                run_t()
            times = {"c": [], "t": []}
            cpu = {"c": [], "t": []}
            while len(times["c"]) < args.reps:
                for key, fn in (("c", run_c), ("t", run_t)):
                    time.sleep(0.2)  # let the other library's worker threads go idle
                    for _ in range(min(args.block, args.reps - len(times[key]))):
                        c0, t0 = time.process_time(), time.perf_counter()
                        fn()
                        times[key].append((time.perf_counter() - t0) * 1e3)
                        cpu[key].append((time.process_time() - c0) * 1e3)
            mc, mt = float(np.median(times["c"])), float(np.median(times["t"]))
            cc, ct = float(np.median(cpu["c"])), float(np.median(cpu["t"]))
            rows.append((n, th, mc, mt, mc / mt, cc, ct, err))
    eng.threads(1)
    eng.close()
    shutil.rmtree(tmpdir, ignore_errors=True)

    print()
    print("| batch | threads | C ms/forward | PyTorch ms/forward | C / PyTorch | C CPU ms | PyTorch CPU ms "
          "| C / PyTorch (CPU) | C ms/sample | max abs(v_C - v_torch) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, th, mc, mt, r, cc, ct, err in rows:
        print(f"| {n} | {th} | {mc:.2f} | {mt:.2f} | {r:.2f} | {cc:.2f} | {ct:.2f} | {cc / ct:.2f} | {mc / n:.2f} "
              f"| {err:.2e} |")
    print(f"\nmedians of {args.reps} forwards each (alternating blocks of {args.block}, {args.warmup} warm-up); "
          "threads = OpenBLAS threads for C, torch.set_num_threads for PyTorch; ms = wall time, "
          "CPU ms = process CPU time (all threads; on a loaded machine the fairer single-thread measure)")


if __name__ == "__main__":
    main()
