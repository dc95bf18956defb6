"""Distil the shapes base model into the few-step turbo student (`shapes-turbo`).

    # 1. teacher trajectories (resumable; run one process per core, --worker i of --workers n)
    OMP_NUM_THREADS=1 python3 tools/shapes/distill.py gen --worker 0 --workers 2 --chunks 8
    # 2. the student (resumable with --resume; reads every chunk present, re-scans as more land)
    OMP_NUM_THREADS=1 python3 tools/shapes/distill.py train --steps 6000 --deadline HH:MM

Method: trajectory distillation onto straight lines (a reflow variant that also covers the
teacher's intermediate states, which is what Co-Fusion hands the student).
The teacher is the committed base model sampled exactly as the daemon samples it: 20 uniform
Euler steps, classifier-free guidance 1.75 against the empty prompt.  For every trajectory we
keep its states x_{t_0} .. x_{t_20} (t_i = 1 - i/20) and its result x0 = x_{t_20}.

A rectified-flow model that is *exact* on straight lines predicts, at any x_t, the velocity
v = (x_t - x0) / t, whose one Euler step to t = 0 lands on x0 and whose Euler steps to any
t' < t stay on the segment from x_t to x0.  So the student is trained, for a teacher state
x_{t_i} and a time t' in (0, t_i], on the point of that segment at t'
    x = (t'/t_i) x_{t_i} + (1 - t'/t_i) x0,     target v = (x_{t_i} - x0) / t_i,
half of the time at t' = t_i itself (the teacher's own state, where a Co-Fusion sketch
starts), otherwise t' = t_i * u, u ~ U(0.05, 1) (the points the student's own 2-4 Euler steps
visit).  Start index i is uniform over 0..19, so i = 0 (pure noise) trains the student as a
stand-alone few-step model too.  --weighting relative divides each sample's loss by
the teacher's own error at its start time (~0.01 + 0.14 t_i^4), so the jumps from pure noise,
whose loss is 15x larger, do not crowd out the precise finishes from mid-trajectory states
that Co-Fusion needs.  Guidance is distilled in: the student runs with guidance 1
(one evaluation per step instead of two), so it has no negative prompt.

The student has the base model's architecture and starts from its weights; the export adds
default_steps 4, default_guidance 1 and schedule_shift 1 to the metadata (the C engine reads
them), plus where it came from (teacher_sha256, teacher_steps, teacher_guidance).
"""

from __future__ import annotations

import argparse
import copy
import csv
import glob
import hashlib
import math
import os
import signal
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import model as M  # noqa: E402
import world  # noqa: E402
from train import deadline_ts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors")
TURBO = os.path.join(REPO, "Plugins/shapes/weights/shapes-turbo.safetensors")
TEACHER_STEPS = 20
TEACHER_GUIDANCE = 1.75
UNCOND_FRACTION = 0.05  # trajectories with the empty prompt


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def teacher_trajectory(model, tokens, x):
    """The teacher's 21 states, as the daemon samples it: -> (B, steps+1, 3, 32, 32)."""
    return torch.stack(M.euler_states(model, x, tokens, 1.0, TEACHER_STEPS, TEACHER_GUIDANCE), 1)


def cmd_gen(args):
    torch.set_num_threads(1)
    out_dir = os.path.join(HERE, "runs", "turbo")
    os.makedirs(out_dir, exist_ok=True)
    teacher, _ = M.load_safetensors(BASE)
    teacher.eval()
    dl = deadline_ts(args.deadline)
    for c in range(args.chunks):
        chunk = args.worker + c * args.workers
        path = os.path.join(out_dir, f"traj-{chunk:04d}.npz")
        if os.path.exists(path):
            continue
        if dl is not None and time.time() >= dl:
            break
        t0 = time.time()
        rng = np.random.default_rng([args.seed, chunk])
        _, tok_np, caps = world.sample_batch(rng, args.chunk_size)
        uncond = rng.random(args.chunk_size) < UNCOND_FRACTION
        tok_np[uncond] = 0
        tok = torch.from_numpy(tok_np)
        x = torch.from_numpy(rng.standard_normal((args.chunk_size, 3, 32, 32)).astype(np.float32))
        traj = torch.cat([teacher_trajectory(teacher, tok[b:b + 64], x[b:b + 64])
                          for b in range(0, args.chunk_size, 64)])
        tmp = path + ".tmp.npz"
        np.savez(tmp, states=traj.clamp(-4, 4).to(torch.float16).numpy(), tokens=tok_np)
        os.replace(tmp, path)
        print(f"chunk {chunk}: {args.chunk_size} trajectories in {time.time() - t0:.0f}s", flush=True)


class Trajectories:
    """Every chunk on disk, re-scanned on demand (a generator may still be adding chunks)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.loaded = set()
        self.states = []  # (n, 21, 3, 32, 32) float16 each
        self.tokens = []
        self.count = 0

    def refresh(self):
        for path in sorted(glob.glob(os.path.join(self.out_dir, "traj-*.npz"))):
            if path in self.loaded or path.endswith(".tmp.npz"):
                continue
            with np.load(path) as z:
                self.states.append(z["states"])
                self.tokens.append(z["tokens"])
            self.loaded.add(path)
        if self.states and len(self.states) > 1:
            self.states = [np.concatenate(self.states)]
            self.tokens = [np.concatenate(self.tokens)]
        self.count = len(self.states[0]) if self.states else 0
        return self.count

    def batch(self, rng, B, hold_out):
        """-> x (B,3,32,32), t (B,), tokens (B,8), target v (B,3,32,32), start t_i (B,); the first hold_out
        trajectories (of chunk 0, always loaded first) are never used for training."""
        S, T = self.states[0], self.tokens[0]
        j = rng.integers(hold_out, self.count, B)
        i = rng.integers(0, TEACHER_STEPS, B)
        t_i = 1.0 - i / TEACHER_STEPS
        u = np.where(rng.random(B) < 0.5, 1.0, rng.uniform(0.05, 1.0, B))
        t = t_i * u
        xs = S[j, i].astype(np.float32)
        x0 = S[j, TEACHER_STEPS].astype(np.float32)
        v = (xs - x0) / t_i[:, None, None, None]
        x = x0 + t[:, None, None, None] * v  # = (t/t_i) xs + (1 - t/t_i) x0
        return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(t.astype(np.float32)),
                torch.from_numpy(T[j]), torch.from_numpy(v.astype(np.float32)),
                torch.from_numpy(t_i.astype(np.float32)))


@torch.no_grad()
def held_out_error(model, data, hold_out, starts=(0, 8), steps=4):
    """Mean |sketch - teacher result| on the 0..255 scale for held-out trajectories."""
    S, T = data.states[0][:hold_out], torch.from_numpy(data.tokens[0][:hold_out])
    x0 = torch.from_numpy(S[:, TEACHER_STEPS].astype(np.float32)).clamp(-1, 1)
    out = {}
    for k in starts:
        xk = torch.from_numpy(S[:, k].astype(np.float32))
        y = M.euler_states(model, xk, T, 1.0 - k / TEACHER_STEPS, steps, 1.0)[-1].clamp(-1, 1)
        out[k] = float((y - x0).abs().mean() * 127.5)
    return out


def cmd_train(args):
    torch.set_num_threads(args.threads)
    out_dir = os.path.join(HERE, "runs", "turbo")
    run_dir = os.path.join(out_dir, args.name)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    csv_path = os.path.join(run_dir, "loss.csv")
    data = Trajectories(out_dir)
    if data.refresh() <= args.hold_out:
        sys.exit(f"distill: only {data.count} trajectories in {out_dir}; run `distill.py gen` first")
    teacher_sha = sha256_file(BASE)

    model, meta = M.load_safetensors(BASE)
    cfg = model.cfg
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    step, elapsed_prev = 0, 0.0
    rng = np.random.default_rng(args.seed)
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, elapsed_prev = ck["step"], ck["elapsed"]
        rng.bit_generator.state = ck["np_rng"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    ema.requires_grad_(False)
    ema.eval()
    print(f"{data.count} trajectories ({args.hold_out} held out), teacher {teacher_sha[:12]}", flush=True)

    new_csv = not (args.resume and os.path.exists(csv_path))
    csv_f = open(csv_path, "w" if new_csv else "a", newline="")
    wr = csv.writer(csv_f)
    if new_csv:
        wr.writerow(["step", "loss", "lr", "elapsed_s", "trajectories", "err_k0", "err_k8"])
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    t_start = time.time()
    last_ckpt = t_start
    dl = deadline_ts(args.deadline)

    def save(final=False):
        el = elapsed_prev + time.time() - t_start
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "step": step, "elapsed": el, "np_rng": rng.bit_generator.state}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
        tmp = args.export + ".tmp"
        M.export_safetensors(ema, cfg, tmp, {
            "steps": meta.get("steps", "0"), "distill_steps": step, "train_seconds": f"{el:.0f}",
            "default_steps": args.default_steps, "default_guidance": 1, "schedule_shift": 1,
            "teacher_sha256": teacher_sha, "teacher_steps": TEACHER_STEPS,
            "teacher_guidance": TEACHER_GUIDANCE, "trajectories": data.count - args.hold_out,
            "method": "trajectory distillation onto straight lines (tools/shapes/distill.py)",
            "loss_weighting": args.weighting, "ema_decay": args.ema, "batch": args.batch, "seed": args.seed})
        os.replace(tmp, args.export)
        print(f"[{'final' if final else 'ckpt'}] step {step} elapsed {el:.0f}s saved", flush=True)

    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    losses = []
    model.train()
    while step < args.steps and not stop["flag"]:
        if dl is not None and time.time() >= dl:
            print("deadline reached", flush=True)
            break
        w = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, t, tok, v_target, t_from = data.batch(rng, args.batch, args.hold_out)
        per_sample = (model(x, t, tok) - v_target).pow(2).mean(dim=(1, 2, 3))
        if args.weighting == "relative":
            # The teacher's own error on this target falls ~15x from t = 1 to t = 0.4 (the
            # late part of a trajectory is nearly straight already); weighting by its inverse
            # keeps the hard jumps from noise from crowding out the precise late finishes.
            w = 1.0 / (0.01 + 0.14 * t_from.pow(4))
            loss = (w * per_sample).sum() / w.sum()
        else:
            loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, model_params, 1.0 - args.ema)
        step += 1
        losses.append(loss.item())
        if step % 250 == 0:
            errs = held_out_error(ema, data, args.hold_out)
            el = elapsed_prev + time.time() - t_start
            wr.writerow([step, f"{np.mean(losses[-250:]):.5f}", f"{lr:.6f}", f"{el:.0f}", data.count,
                         f"{errs[0]:.2f}", f"{errs[8]:.2f}"])
            csv_f.flush()
            print(f"step {step} loss {np.mean(losses[-250:]):.4f} lr {lr:.2e} "
                  f"{(time.time() - t_start) / max(1, len(losses)):.2f}s/step  held-out |sketch-teacher| "
                  f"from noise {errs[0]:.1f}, from t=0.6 {errs[8]:.1f} (of 255)  "
                  f"{data.count} trajectories", flush=True)
            data.refresh()
        if time.time() - last_ckpt > args.ckpt_min * 60:
            save()
            last_ckpt = time.time()
    save(final=True)
    csv_f.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="teacher trajectories -> tools/shapes/runs/turbo/traj-NNNN.npz")
    g.add_argument("--worker", type=int, default=0)
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--chunks", type=int, default=8, help="chunks for this worker")
    g.add_argument("--chunk-size", type=int, default=256)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--deadline", default=None, help="UTC HH:MM: start no chunk after this")
    t = sub.add_parser("train", help="the student -> Plugins/shapes/weights/shapes-turbo.safetensors")
    t.add_argument("--name", default="student", help="run folder under tools/shapes/runs/turbo/")
    t.add_argument("--steps", type=int, default=6000, help="cosine schedule length")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--ema", type=float, default=0.998)
    t.add_argument("--weighting", choices=["uniform", "relative"], default="uniform",
                   help="per-sample loss weight by start time (see the training loop)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--hold-out", type=int, default=128, help="trajectories kept out of training")
    t.add_argument("--default-steps", type=int, default=4)
    t.add_argument("--ckpt-min", type=float, default=5.0)
    t.add_argument("--deadline", default=None, help="UTC HH:MM: stop, checkpoint and export")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--export", default=TURBO)
    args = p.parse_args()
    {"gen": cmd_gen, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
