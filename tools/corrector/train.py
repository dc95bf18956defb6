"""Train shapes-corrector from shapes-base on rule-based GenRef-analogue triplets (CPU, one thread).

    OMP_NUM_THREADS=1 nice -n 10 python3 tools/corrector/train.py --name c1 --steps 16000
    # resume exactly (model, EMA, optimizer, numpy + torch RNG states, step):  add --resume
    # new session (runs/ gone): --init-from Plugins/shapes/weights/shapes-corrector.safetensors --warmup 100

Objective: rectified flow on the CORRECTED image x0 (x_t = (1-t) x0 + t noise, target
v = noise - x0, MSE), conditioned on the caption, the reflection (reflector feedback) and the
FLAWED image (corrector_model.py).  t ~ 80% logit-normal + 20% uniform (as shapes-base).
Condition dropout (per sample): 10% caption AND reflection empty (the CFG negative keeps the
reference image), 10% reflection only empty, 5% reference image zeroed.
AdamW (betas 0.9/0.99, no weight decay), warmup, cosine to 10% at --steps, clip 1.0, EMA.

Every --ckpt-min minutes: runs/<name>/ckpt.pt (resumable).  Every --eval-every steps (and at
step 0): the held-out repair metric on the EMA weights, the export
Plugins/shapes/weights/shapes-corrector.safetensors (fp16, metadata: base_sha256, rates, ...; the
C engine's plugin id shapes-corrector loads it), and
copies of the small logs to tools/corrector/{loss,eval}.csv.

Held-out repair metric: data.held_out(24 per flaw kind) (seeds disjoint from training's);
pass rate of the checker (the C checker inside build/plugins/shapes-reflector.so: its "pass")
on the corrector's output, 20 Euler steps, CFG 1.75 (40 NFE), fixed noise; compared with
  base_prompt     shapes-base from the prompt alone, same noise, same NFE,
  sdedit_t<t0>    training-free: the flawed image re-noised to t0, 20 steps to 0 with the
                  reflector's revised prompt and negative prompt (CFG against it), same NFE,
  noref           the corrector with an empty reflection (does it use the text?).
With --model-heldout (a model_based.py npz) the same is measured on a second set: the base
model's own failing samples ("model_corrector", "model_noref").
Baselines are computed once per run and set (runs/<name>/baselines.json).
Model-based training triplets: --model-data a.npz,b.npz --p-model 0.3 (off by default; with it
off the data stream is the rule-based one alone, so resuming a run that never used it is exact).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools/shapes"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import corrector_model as CM  # noqa: E402
import data as D  # noqa: E402
import model as M  # noqa: E402
import world  # noqa: E402

BASE = os.path.join(REPO, "Plugins/shapes/weights/shapes-base.safetensors")
EXPORT = os.path.join(REPO, "Plugins/shapes/weights/shapes-corrector.safetensors")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sample_t(gen, B):
    t = torch.sigmoid(torch.randn(B, generator=gen))
    u = torch.rand(B, generator=gen)
    return torch.where(torch.rand(B, generator=gen) < 0.2, u, t)


# ----------------------------------------------------------------------------- evaluation
def load_model_triplets(path, kind="model"):
    """model_based.py npz -> list of triplet dicts (the fields held_out() gives)."""
    d = np.load(path)
    return [{"prompt": str(d["prompt"][i]), "reflection": str(d["reflection"][i]), "kind": kind,
             "flawed": d["flawed"][i], "corrected": d["corrected"][i],
             "negative_prompt": str(d["negative"][i]), "revised_prompt": str(d["revised"][i])}
            for i in range(len(d["prompt"]))]


class EvalSet:
    """One held-out set: fixed noise, tokens, images."""

    def __init__(self, held, kinds, seed):
        self.held, self.kinds = held, kinds
        self.kind_of = [t["kind"] for t in held]
        g = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(len(held), 3, 32, 32, generator=g)
        self.tok = torch.from_numpy(np.stack([world.encode(t["prompt"]) for t in held]))
        self.rtok = torch.from_numpy(np.stack([D.encode_reflection(t["reflection"]) for t in held]))
        self.flawed = torch.from_numpy(np.stack([D.to_float(t["flawed"]) for t in held]))
        self.target = np.stack([t["corrected"] for t in held]).astype(np.float32)
        self.rev = torch.from_numpy(np.stack([world.encode(t["revised_prompt"]) for t in held]))
        self.neg = torch.from_numpy(np.stack([world.encode(t["negative_prompt"]) for t in held]))


class Evaluator:
    def __init__(self, n_per_kind, steps, guidance, run_dir, base, sdedit_t0s, model_heldout=None):
        from c_reflector import CReflector
        self.checker = CReflector()
        self.steps, self.guidance = steps, guidance
        self.sets = {"rule": EvalSet(D.held_out(n_per_kind), D.KINDS, 4242)}
        if model_heldout:
            self.sets["model"] = EvalSet(load_model_triplets(model_heldout), ["model"], 4343)
        path = os.path.join(run_dir, "baselines.json")
        self.baselines = json.load(open(path)) if os.path.exists(path) else {}
        if "base_prompt" in self.baselines:  # first format: the rule set only
            self.baselines = {"rule": self.baselines}
        changed = False
        for name, es in self.sets.items():
            if name not in self.baselines:
                self.baselines[name] = self._baselines(es, base, sdedit_t0s)
                changed = True
        if changed:
            json.dump(self.baselines, open(path, "w"), indent=1)

    def rates(self, es, imgs):
        ok = np.array([self.checker.reflect(t["prompt"], [im])[0]["pass"] for t, im in zip(es.held, imgs)])
        out = {k: float(ok[[i for i, kk in enumerate(es.kind_of) if kk == k]].mean()) for k in es.kinds}
        out["all"] = float(ok.mean())
        return out

    @staticmethod
    def _chunks(n, fn, bs=48):
        return torch.cat([fn(slice(i, i + bs)) for i in range(0, n, bs)])

    def _baselines(self, es, base, t0s):
        t_start = time.time()
        n = len(es.held)
        res = {"n": n}
        x = self._chunks(n, lambda s: M.sample(base, es.tok[s], steps=self.steps, guidance=self.guidance,
                                               x=es.noise[s].clone()))
        res["base_prompt"] = self.rates(es, M.to_uint8(x))
        for t0 in t0s:
            def f(s, t0=t0):
                xt = (1 - t0) * es.flawed[s] + t0 * es.noise[s]
                return M.euler_states(base, xt, es.rev[s], t0, self.steps, self.guidance, es.neg[s])[-1].clamp(-1, 1)
            res[f"sdedit_t{t0:g}"] = self.rates(es, M.to_uint8(self._chunks(n, f)))
        res["flawed"] = self.rates(es, np.stack([t["flawed"] for t in es.held]))
        res["seconds"] = round(time.time() - t_start, 1)
        return res

    def evaluate(self, model):
        out = {}
        for sname, es in self.sets.items():
            for name, rt in (("corrector", es.rtok), ("noref", torch.zeros_like(es.rtok))):
                x = self._chunks(len(es.held), lambda s: CM.sample(model, es.noise[s].clone(), es.tok[s], rt[s],
                                                                   es.flawed[s], self.steps, self.guidance))
                imgs = M.to_uint8(x)
                key = name if sname == "rule" else f"{sname}_{name}"
                out[key] = self.rates(es, imgs)
                out[key]["l1_to_target"] = float(np.abs(imgs.astype(np.float32) - es.target).mean())
        return out


class ModelPool:
    """Model-based triplets (model_based.py npz files), with flip augmentation (the image
    mirrored, left/right or above/below swapped in the caption and the reflection)."""

    SWAP = {True: {"left": "right", "right": "left"}, False: {"above": "below", "below": "above"}}

    def __init__(self, paths):
        self.items = [t for p in paths for t in load_model_triplets(p)]

    def draw(self, rng):
        t = self.items[int(rng.integers(len(self.items)))]
        fl, co, cap, ref = t["flawed"], t["corrected"], t["prompt"], t["reflection"]
        for horizontal in (True, False):
            if rng.random() < 0.5:
                ax = 1 if horizontal else 0
                fl, co = np.flip(fl, ax), np.flip(co, ax)
                sw = self.SWAP[horizontal]
                cap = " ".join(sw.get(w, w) for w in cap.split())
                ref = " ".join(sw.get(w, w) for w in ref.split())
        return D.to_float(np.ascontiguousarray(fl)), D.to_float(np.ascontiguousarray(co)), world.encode(cap), \
            D.encode_reflection(ref)


# ----------------------------------------------------------------------------- training
def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="c1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=16000, help="cosine schedule length")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--p-uncond", type=float, default=0.1)
    p.add_argument("--p-noref", type=float, default=0.1)
    p.add_argument("--p-noimg", type=float, default=0.05)
    p.add_argument("--p-nocap", type=float, default=0.0,
                   help="caption alone dropped (reflection kept): makes the model read the reflection")
    p.add_argument("--ref-scale", type=float, default=1.0,
                   help="training-only input scale of the reference image (folded into the export)")
    p.add_argument("--ckpt-min", type=float, default=5.0)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--eval-per-kind", type=int, default=24)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=1.75)
    p.add_argument("--sdedit", default="0.5,0.7", help="t0 values of the training-free baseline")
    p.add_argument("--model-data", default="", help="comma-separated model_based.py npz files to mix in")
    p.add_argument("--p-model", type=float, default=0.0, help="fraction of each batch from --model-data")
    p.add_argument("--model-heldout", default="", help="model_based.py npz: a second held-out set (base failures)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--skip-eval0", action="store_true", help="no evaluation at step 0")
    p.add_argument("--init-from", default=None,
                   help="exported corrector safetensors: model + EMA init, fresh optimizer, step from its metadata "
                        "(a new session without runs/)")
    p.add_argument("--export", default=EXPORT)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stop-at", type=int, default=None, help="stop (checkpoint) after this step (tests)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    run_dir = os.path.join(HERE, "runs", args.name)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    loss_path, eval_path = os.path.join(run_dir, "loss.csv"), os.path.join(run_dir, "eval.csv")
    base_sha = sha256_file(BASE)
    base, base_meta = M.load_safetensors(BASE)
    base.eval().requires_grad_(False)
    model, _ = CM.from_base(BASE, seed=args.seed, ref_scale=args.ref_scale)
    cfg = model.cfg
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed_prev, warm_start = 0, 0.0, 0
    resumed = args.resume and os.path.exists(ckpt_path)
    if resumed:
        ck = torch.load(ckpt_path, weights_only=False)
        if ck["base_sha256"] != base_sha:
            sys.exit("train: the checkpoint was trained from other base weights")
        if ck["args"].get("ref_scale", 1.0) != args.ref_scale or ck["args"].get("p_nocap", 0.0) != args.p_nocap:
            sys.exit("train: --ref-scale / --p-nocap must be those the run started with")
        if (ck["args"].get("p_model", 0.0), ck["args"].get("model_data", "")) != (args.p_model, args.model_data):
            print(f"NOTE: the data mixture changes at step {ck['step']}: p_model {ck['args'].get('p_model', 0.0)} -> "
                  f"{args.p_model}, model_data {ck['args'].get('model_data', '')!r} -> {args.model_data!r}", flush=True)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, elapsed_prev = ck["step"], ck["elapsed"]
        warm_start = ck.get("warm_start", 0)
        rng.bit_generator.state = ck["np_rng"]
        gen.set_state(ck["torch_rng"])
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
        for path in (loss_path, eval_path):  # drop rows logged after the checkpoint
            if os.path.exists(path):
                rows = list(csv.reader(open(path)))
                keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= step]
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerows(keep)
    elif args.init_from:
        init, init_meta = CM.load(args.init_from)
        if init_meta.get("base_sha256") != base_sha:
            sys.exit("train: --init-from weights were tuned from other base weights")
        sd = init.state_dict()
        sd["stem.weight"] = sd["stem.weight"].clone()
        sd["stem.weight"][:, cfg["in_channels"] * cfg["patch"] ** 2:] /= model.ref_scale  # unfold
        model.load_state_dict(sd)
        ema.load_state_dict(sd)
        step = warm_start = int(init_meta.get("steps", "0"))
        elapsed_prev = float(init_meta.get("train_seconds", "0"))
        rng = np.random.default_rng([args.seed, step])  # a fresh stream, not a replay
        gen = torch.Generator().manual_seed(args.seed * 1000003 + step)
        print(f"initialised from {args.init_from} at step {step} (fresh optimizer)", flush=True)
    ema.requires_grad_(False)
    ema.eval()
    print(f"corrector {M.count_params(model)} params, base {base_sha[:12]}, args {vars(args)}", flush=True)

    sdedit = [float(v) for v in args.sdedit.split(",") if v]
    t_ev = time.time()
    ev = Evaluator(args.eval_per_kind, args.eval_steps, args.guidance, run_dir, base, sdedit,
                   args.model_heldout or None)
    pool = ModelPool([p for p in args.model_data.split(",") if p]) if args.p_model > 0 else None
    if pool is not None:
        print(f"model-based pool: {len(pool.items)} triplets, p={args.p_model}", flush=True)
    print(f"baselines ({time.time() - t_ev:.0f}s): {json.dumps(ev.baselines)}", flush=True)

    new_loss = not os.path.exists(loss_path)
    loss_f = open(loss_path, "a", newline="")
    lw = csv.writer(loss_f)
    if new_loss:
        lw.writerow(["step", "loss", "lr", "elapsed_s", "unix"])
    new_eval = not os.path.exists(eval_path)
    eval_f = open(eval_path, "a", newline="")
    ew = csv.writer(eval_f)
    eval_cols = ["step", "elapsed_s"] + [f"{m}_{k}" for m in ("corrector", "noref") for k in D.KINDS + ["all"]] + \
                ["corrector_l1", "noref_l1", "model_corrector_all", "model_noref_all", "model_corrector_l1"]
    if new_eval:
        ew.writerow(eval_cols)
    else:
        eval_f.close()
        rows = list(csv.reader(open(eval_path)))
        if rows and rows[0] != eval_cols:  # older header: the model-set columns came later
            rows[0] = eval_cols
            with open(eval_path, "w", newline="") as f:
                csv.writer(f).writerows(rows)
        eval_f = open(eval_path, "a", newline="")
        ew = csv.writer(eval_f)

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    t_start = time.time()
    last_ckpt = t_start
    last = {"eval": None}

    def elapsed():
        return elapsed_prev + time.time() - t_start

    def save_ckpt():
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "step": step, "elapsed": elapsed(), "np_rng": rng.bit_generator.state,
                    "torch_rng": gen.get_state(), "base_sha256": base_sha, "warm_start": warm_start, "args": vars(args)},
                   ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
        print(f"[ckpt] step {step} elapsed {elapsed():.0f}s", flush=True)

    def evaluate_and_export():
        t0 = time.time()
        r = ev.evaluate(ema)
        last["eval"] = r
        row = [step, f"{elapsed():.0f}"] + [f"{r[m][k]:.4f}" for m in ("corrector", "noref") for k in D.KINDS + ["all"]] + \
              [f"{r['corrector']['l1_to_target']:.2f}", f"{r['noref']['l1_to_target']:.2f}"] + \
              ([f"{r['model_corrector']['all']:.4f}", f"{r['model_noref']['all']:.4f}",
                f"{r['model_corrector']['l1_to_target']:.2f}"] if "model_corrector" in r else ["", "", ""])
        ew.writerow(row)
        eval_f.flush()
        loss_f.flush()
        print(f"[eval] step {step} ({time.time() - t0:.0f}s) " +
              " ".join(f"{k} {json.dumps({a: round(b, 3) for a, b in v.items()})}" for k, v in r.items()), flush=True)
        tmp = args.export + ".tmp"
        CM.export(ema, cfg, tmp, {
            "base_sha256": base_sha, "base_steps": base_meta.get("steps", "0"), "steps": str(step),
            "train_seconds": f"{elapsed():.0f}", "default_steps": str(args.eval_steps),
            "default_guidance": str(args.guidance), "schedule_shift": "1",
            "method": "reflection tuning on rule-based shapes-world triplets (tools/corrector/train.py)",
            "heldout_repair": {"n_per_kind": args.eval_per_kind, "nfe": 2 * args.eval_steps,
                               **r, "baselines": ev.baselines},
            "ema_decay": str(args.ema), "batch": str(args.batch), "seed": str(args.seed), "lr": str(args.lr)})
        os.replace(tmp, args.export)
        if os.path.abspath(args.export) != EXPORT:  # a side run: leave this folder's logs alone
            return
        for src, dst in ((loss_path, "loss.csv"), (eval_path, "eval.csv")):
            shutil.copyfile(src, os.path.join(HERE, dst))
        json.dump({"step": step, "nfe": 2 * args.eval_steps, "n_per_kind": args.eval_per_kind,
                   "eval": r, "baselines": ev.baselines}, open(os.path.join(HERE, "eval_latest.json"), "w"), indent=1)

    if not resumed and not args.skip_eval0:
        evaluate_and_export()

    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    losses = []
    model.train()
    while step < args.steps and not stop["flag"] and (args.stop_at is None or step < args.stop_at):
        w = min(1.0, (step - warm_start + 1) / args.warmup)
        lr = args.lr * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        fl, co, tok, rtok, _ = D.sample_batch(rng, args.batch)
        B = args.batch
        if pool is not None:  # (draws nothing from rng when off: runs without it replay exactly)
            for i in np.nonzero(rng.random(B) < args.p_model)[0]:
                fl[i], co[i], tok[i], rtok[i] = pool.draw(rng)
        u = rng.random((3, B))
        tok[u[0] < args.p_uncond] = 0
        rtok[(u[0] < args.p_uncond) | (u[1] < args.p_noref)] = 0
        fl[u[2] < args.p_noimg] = 0.0
        if args.p_nocap > 0:  # (draws nothing when off: older runs replay exactly)
            tok[(rng.random(B) < args.p_nocap) & (u[0] >= args.p_uncond)] = 0
        x0 = torch.from_numpy(co)
        noise = torch.randn(x0.shape, generator=gen)
        t = sample_t(gen, B)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        v = model(xt, t, torch.from_numpy(tok), torch.from_numpy(rtok), torch.from_numpy(fl))
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
            lw.writerow([step, f"{np.mean(losses[-25:]):.5f}", f"{lr:.6f}", f"{elapsed():.0f}", f"{time.time():.0f}"])
        if step % 100 == 0:
            loss_f.flush()
            print(f"step {step} loss {np.mean(losses[-100:]):.4f} lr {lr:.2e} "
                  f"{(time.time() - t_start) / max(1, len(losses)):.2f}s/step", flush=True)
        if step % args.eval_every == 0:
            evaluate_and_export()
        if step % 25 == 0 and time.time() - last_ckpt > args.ckpt_min * 60:
            save_ckpt()
            last_ckpt = time.time()
    loss_f.flush()
    save_ckpt()
    if last["eval"] is None or step % args.eval_every != 0:
        evaluate_and_export()
    print("done", flush=True)


if __name__ == "__main__":
    main()
