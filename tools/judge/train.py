"""Train the shapes judge: a small CenterNet-style detector for the shapes world.

    python3 tools/judge/train.py [--steps N] [--seed S] [--name NAME]     (resumes)
    python3 tools/judge/train.py --export                                 (weights + vectors)

One CPU thread (torch.set_num_threads(1)). Checkpoints every --ckpt-every steps to
tools/judge/runs/NAME/ckpt.pt (gitignored); a rerun with the same NAME resumes from the
last checkpoint, with the data generator's state saved beside the weights, so a run cut
short and resumed draws the same batches as one that was not.

Architecture (ARCH below, all 3x3 convolutions, zero padding, ReLU):
    c1  3 -> 24            32x32
    c2 24 -> 32  stride 2  16x16
    c3 32 -> 48            16x16
    c4 48 -> 48  dil 2     16x16
    c5 48 -> 48  dil 2     16x16
    head 1x1 48 -> 15      16x16: 12 class heatmap logits (colour*3 + shape), offset x, y
                           (of the centre within the cell, 0..1), box side / 8
Input: the image as float in [0, 1], channels RGB. Receptive field 25 px.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
WEIGHTS = os.path.join(ROOT, "Plugins", "shapes", "weights", "shapes-judge.safetensors")
VECTORS = os.path.join(ROOT, "Plugins", "shapes", "weights", "shapes-judge-vectors.safetensors")

# (name, in, out, stride, dilation, kernel)
ARCH = [("c1", 3, 24, 1, 1, 3), ("c2", 24, 32, 2, 1, 3), ("c3", 32, 48, 1, 1, 3),
        ("c4", 48, 48, 1, 2, 3), ("c5", 48, 48, 1, 2, 3), ("head", 48, 15, 1, 1, 1)]
G = 16          # output grid
STRIDE = 2
SIZE_SCALE = 8.0


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList()
        for _, cin, cout, st, dil, k in ARCH:
            self.convs.append(nn.Conv2d(cin, cout, k, stride=st, padding=dil * (k // 2), dilation=dil))
        with torch.no_grad():
            self.convs[-1].bias[:12].fill_(-4.0)

    def forward(self, x):
        for c in self.convs[:-1]:
            x = F.relu(c(x))
        return self.convs[-1](x)


def targets(objs_list):
    n = len(objs_list)
    heat = np.zeros((n, 12, G, G), dtype=np.float32)
    reg = np.zeros((n, 3, G, G), dtype=np.float32)
    mask = np.zeros((n, 1, G, G), dtype=np.float32)
    gy, gx = np.mgrid[0:G, 0:G]
    for b, objs in enumerate(objs_list):
        for o in objs:
            k = data.COLOURS.index(o["colour"]) * 3 + data.SHAPES.index(o["shape"])
            cx = (o["x0"] + o["s"] / 2) / STRIDE
            cy = (o["y0"] + o["s"] / 2) / STRIDE
            ix, iy = min(max(int(np.floor(cx)), 0), G - 1), min(max(int(np.floor(cy)), 0), G - 1)
            sig = max(0.6, o["s"] / 12.0)
            g = np.exp(-((gx - ix) ** 2 + (gy - iy) ** 2) / (2 * sig * sig))
            heat[b, k] = np.maximum(heat[b, k], g)
            heat[b, k, iy, ix] = 1.0
            reg[b, :, iy, ix] = (cx - ix, cy - iy, o["s"] / SIZE_SCALE)
            mask[b, 0, iy, ix] = 1.0
    return torch.from_numpy(heat), torch.from_numpy(reg), torch.from_numpy(mask)


def loss_fn(out, heat, reg, mask):
    logit = out[:, :12]
    p = torch.sigmoid(logit).clamp(1e-5, 1 - 1e-5)
    pos = (heat == 1.0).float()
    npos = pos.sum().clamp(min=1.0)
    lpos = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    lneg = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - pos)).sum()
    focal = (lpos + lneg) / npos
    l1 = (torch.abs(out[:, 12:] - reg) * mask).sum() / npos
    return focal + l1, focal.item(), l1.item()


def state_dict_np(model):
    out = {}
    for (name, *_), c in zip(ARCH, model.convs):
        out[f"{name}.weight"] = c.weight.detach().numpy().astype(np.float32).copy()
        out[f"{name}.bias"] = c.bias.detach().numpy().astype(np.float32).copy()
    return out


def quick_eval(model, seed=7, per_category=15, blur=0.9):
    """Verdict accuracy on a small yardstick-style set (own seed, never the validation's)."""
    import judge
    import yardstick
    net = judge.Net(state_dict_np(model))
    cases = yardstick.validation_set(blur, per_category, seed)
    t = yardstick.table([(c, judge.judge(c["image"], c["caption"], net=net)[0]) for c in cases])
    return t["overall"]


def train(args):
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    run = os.path.join(HERE, "runs", args.name)
    os.makedirs(run, exist_ok=True)
    ck = os.path.join(run, "ckpt.pt")
    model = Judge()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    step, elapsed = 0, 0.0
    if os.path.exists(ck):
        st = torch.load(ck, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        rng.bit_generator.state = st["rng"]
        step, elapsed = st["step"], st["elapsed"]
        print(f"resumed at step {step} ({elapsed:.0f} s)", flush=True)
    log = open(os.path.join(run, "log.csv"), "a")
    nparam = sum(p.numel() for p in model.parameters())
    print(f"params {nparam}", flush=True)
    t0 = time.time() - elapsed
    while step < args.steps:
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        imgs, objs = data.sample_batch(rng, args.batch)
        heat, reg, mask = targets(objs)
        out = model(torch.from_numpy(imgs))
        loss, lf, lr1 = loss_fn(out, heat, reg, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            el = time.time() - t0
            log.write(f"{step},{el:.1f},{loss.item():.5f},{lf:.5f},{lr1:.5f}\n")
            log.flush()
            print(f"step {step} {el:.0f}s loss {loss.item():.4f} focal {lf:.4f} reg {lr1:.4f}", flush=True)
        if step % args.ckpt_every == 0 or step == args.steps:
            el = time.time() - t0
            tmp = ck + ".tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "rng": rng.bit_generator.state, "step": step, "elapsed": el,
                        "args": vars(args)}, tmp)
            os.replace(tmp, ck)
            if step % (args.ckpt_every * 4) == 0 or step == args.steps:
                rec, fp, _, _ = quick_eval(model)
                print(f"eval step {step}: recall {rec:.3f} false-pass {fp:.3f}", flush=True)
    print("done", flush=True)


def export(args):
    from safetensors.numpy import save_file
    torch.set_num_threads(1)
    import judge
    ck = os.path.join(HERE, "runs", args.name, "ckpt.pt")
    st = torch.load(ck, weights_only=False)
    model = Judge()
    model.load_state_dict(st["model"])
    sd = state_dict_np(model)
    meta = {"arch": json.dumps([list(a) for a in ARCH]),
            "format": "shapes-judge/1",
            "input": "RGB float in [0,1], (3,32,32); output grid 16x16, stride 2",
            "head": "0..11 heat logits class=colour*3+shape (colours red,green,blue,yellow; shapes circle,square,triangle); 12,13 centre offset in cell; 14 box side/8",
            "threshold": str(judge.THRESHOLD),
            "steps": str(st["step"]), "seed": str(st["args"]["seed"]),
            "train_seconds": f"{st['elapsed']:.0f}",
            "data": "tools/judge/data.py: world scenes (sample_spec/scene_from_spec, yardstick.mutate defects) and free random 0-4 objects sizes 5..14; jittered geometry, jagged edges, low-contrast objects, blur 0..1.6, gain 0.75..1, offset 0..30, noise 0..20"}
    tmp = WEIGHTS + ".tmp"
    save_file(sd, tmp, metadata=meta)
    os.replace(tmp, WEIGHTS)
    print("wrote", WEIGHTS, os.path.getsize(WEIGHTS), "bytes")
    # test vectors: a few degraded renders, torch's raw head output for each
    rng = np.random.default_rng(99)
    imgs, _ = data.sample_batch(rng, 6)
    u8 = np.rint(imgs * 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()
    with torch.no_grad():
        outs = model(torch.from_numpy(u8.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)).numpy()
    tmp = VECTORS + ".tmp"
    save_file({"images": u8.astype(np.int32), "outputs": np.ascontiguousarray(outs, dtype=np.float32)}, tmp,
              metadata={"what": "images (n,32,32,3) bytes as I32 and the PyTorch head output (n,15,16,16)"})
    os.replace(tmp, VECTORS)
    net = judge.Net(sd)
    d = np.abs(net.forward(u8[0]) - outs[0]).max()
    print("numpy vs torch max abs diff", d)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--name", default="judge")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--export", action="store_true")
    a = ap.parse_args()
    export(a) if a.export else train(a)
