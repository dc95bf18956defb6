"""Train the shapes rectified-flow model (CPU, one thread).

    OMP_NUM_THREADS=1 python3 tools/shapes/train.py --steps 8000 --deadline 19:45
    # resume from the run folder (same session):       add --resume
    # resume from the committed weights (new session): --resume-from Plugins/shapes/weights/shapes-base.safetensors

Training objective (rectified flow, see model.py): x_t = (1-t) x0 + t*noise, target v = noise - x0,
loss = mean squared error.  t ~ 80% logit-normal (sigmoid of N(0,1)), 20% uniform(0,1).
Caption dropout: 10% of captions replaced by "" (all pad tokens) for classifier-free guidance.
AdamW(lr, betas (0.9, 0.99), wd 0.01), linear warmup then cosine to 5% of lr at --steps,
grad-norm clip 1.0, EMA of weights (decay --ema) every step.
Every --ckpt-min minutes: resumable checkpoint runs/<name>/ckpt.pt and EMA export (float16
safetensors) to --export.  Loss log: runs/<name>/loss.csv (step, loss (mean of last 25),
lr, elapsed seconds, unix time).
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import json
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="base")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=8000, help="cosine schedule length (total steps)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--cfg-drop", type=float, default=0.1)
    p.add_argument("--ckpt-min", type=float, default=5.0)
    p.add_argument("--deadline", default=None, help="UTC HH:MM: stop, checkpoint and export at this time")
    p.add_argument("--resume", action="store_true", help="resume from runs/<name>/ckpt.pt")
    p.add_argument("--resume-from", default=None, help="exported safetensors: model+EMA init, fresh optimizer")
    p.add_argument("--export", default=os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors"))
    p.add_argument("--config", default=None, help="JSON overrides of model config")
    return p.parse_args()


def deadline_ts(s):
    if not s:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    hh, mm = map(int, s.split(":"))
    d = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if d < now - dt.timedelta(hours=1):
        d += dt.timedelta(days=1)
    return d.timestamp()


def lr_at(step, args, warm_start):
    w = min(1.0, (step - warm_start + 1) / max(1, args.warmup))
    prog = min(1.0, step / max(1, args.steps))
    cos = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * prog))
    return args.lr * w * cos


def sample_t(gen, B):
    ln = torch.sigmoid(torch.randn(B, generator=gen))
    un = torch.rand(B, generator=gen)
    pick = torch.rand(B, generator=gen) < 0.8
    return torch.where(pick, ln, un)


def main():
    args = parse_args()
    torch.set_num_threads(1)
    run_dir = os.path.join(HERE, "runs", args.name)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    csv_path = os.path.join(run_dir, "loss.csv")

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    cfg = dict(M.DEFAULT_CONFIG, **(json.loads(args.config) if args.config else {}))
    model = M.ShapesFlow(cfg)
    step, warm_start, elapsed_prev = 0, 0, 0.0
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)

    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False)
        cfg = ck["cfg"]
        model = M.ShapesFlow(cfg)
        model.load_state_dict(ck["model"])
        ema = M.ShapesFlow(cfg)
        ema.load_state_dict(ck["ema"])
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
        opt.load_state_dict(ck["opt"])
        step, warm_start, elapsed_prev = ck["step"], ck.get("warm_start", 0), ck.get("elapsed", 0.0)
        rng.bit_generator.state = ck["np_rng"]
        gen.set_state(ck["torch_gen"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif args.resume_from:
        model, meta = M.load_safetensors(args.resume_from)
        cfg = model.cfg
        ema = copy.deepcopy(model)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
        step = int(meta.get("steps", 0))
        warm_start = step
        elapsed_prev = float(meta.get("train_seconds", 0.0))
        rng = np.random.default_rng([args.seed, step])
        gen = torch.Generator().manual_seed(args.seed * 1000003 + step)
        print(f"resumed weights from {args.resume_from} at step {step} (fresh optimizer, warmup {args.warmup})", flush=True)
    ema.requires_grad_(False)
    ema.eval()
    print(f"params {M.count_params(model)}  cfg {json.dumps(cfg)}", flush=True)

    t_start = time.time()
    last_ckpt = t_start
    dl = deadline_ts(args.deadline)
    losses = []
    new_csv = not os.path.exists(csv_path) or not args.resume
    csv_f = open(csv_path, "w" if new_csv else "a", newline="")
    wr = csv.writer(csv_f)
    if new_csv:
        wr.writerow(["step", "loss", "lr", "elapsed_s", "unix_time"])

    stop = {"flag": False}

    def on_sig(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_sig)
    signal.signal(signal.SIGINT, on_sig)

    def save(final=False):
        el = elapsed_prev + time.time() - t_start
        ck = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
              "warm_start": warm_start, "elapsed": el, "cfg": cfg, "np_rng": rng.bit_generator.state,
              "torch_gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "args": vars(args)}
        torch.save(ck, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
        if args.export:
            tmp = args.export + ".tmp"
            M.export_safetensors(ema, cfg, tmp, {"steps": step, "train_seconds": f"{el:.0f}", "ema_decay": args.ema,
                                                 "batch": args.batch, "seed": args.seed})
            os.replace(tmp, args.export)
        print(f"[{'final' if final else 'ckpt'}] step {step} elapsed {el:.0f}s saved", flush=True)

    ema_params = list(ema.parameters())
    model_params = list(model.parameters())
    model.train()
    while step < args.steps and not stop["flag"]:
        if dl is not None and time.time() >= dl:
            print("deadline reached", flush=True)
            break
        lr = lr_at(step, args, warm_start)
        for g in opt.param_groups:
            g["lr"] = lr
        x0_np, tok_np, _ = world.sample_batch(rng, args.batch)
        x0 = torch.from_numpy(x0_np)
        tok = torch.from_numpy(tok_np)
        drop = torch.rand(args.batch, generator=gen) < args.cfg_drop
        tok[drop] = 0
        noise = torch.randn(x0.shape, generator=gen)
        t = sample_t(gen, args.batch)
        tb = t[:, None, None, None]
        xt = (1 - tb) * x0 + tb * noise
        v = model(xt, t, tok)
        loss = (v - (noise - x0)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, model_params, 1.0 - args.ema)
        step += 1
        losses.append(loss.item())
        if step % 25 == 0:
            el = elapsed_prev + time.time() - t_start
            wr.writerow([step, f"{np.mean(losses[-25:]):.5f}", f"{lr:.6f}", f"{el:.1f}", f"{time.time():.0f}"])
            csv_f.flush()
            if step % 100 == 0:
                print(f"step {step} loss {np.mean(losses[-100:]):.4f} lr {lr:.2e} "
                      f"{(time.time() - t_start) / max(1, len(losses)):.3f}s/step", flush=True)
        if time.time() - last_ckpt > args.ckpt_min * 60:
            save()
            last_ckpt = time.time()
    save(final=True)
    csv_f.close()


if __name__ == "__main__":
    main()
