#!/usr/bin/python3
"""ReflectionFlow Fig. 4 analogue on the embedded shapes model, through the daemon over D-Bus:
pass rate against the number of generated images and against NFE, for the three levels of the
`reflect` strategy, judged by the independent `shapes-judge` (which never selects).

Every job is one chain (n = 1, branches = 1, per_branch = 1): an image, then `rounds` rounds
of verify, reflect, correct, so a job makes 1 + rounds images:

  noise                     fresh noise each round, the prompt as it is (best-of-(1 + rounds))
  noise+prompt              fresh noise with the reflector's revised and negative prompts
  noise+prompt+reflection   the flawed image re-noised to t = strength and regenerated with
                            them (the training-free corrector; fewer NFEs an image)
  noise+prompt+reflection/trained
                            the trained corrector (shapes-corrector, the job's `corrector`
                            role) regenerates from fresh noise, conditioned on the flawed
                            image and the reflection's feedback (strategy option
                            corrector=trained; same NFEs an image as noise)

Selection is by the exact checker `shapes-checker`, which the reflector also reads; the judge
is another model, so what a search gains by fooling the checker does not count. Hard prompts:
those whose first image (the job seed's single sample, identical in every level) fails the
judge.

Resumable: finished jobs are cached in --cache (docs/reflect-bench.json); --plot-only
re-renders. Writes --out-txt (docs/reflect-bench.txt) and --plot (docs/images/reflect.png).

Usage: tools/reflect_bench.py [--assayd PATH] [--per-category K] [--images 2,4,8,16]
"""
import argparse
import json
import os
import sys
import tempfile

import search_bench as sb  # runs on Debian's python3 when python3-dbus is missing (see there)

dbus = sb.dbus

ROOT = sb.ROOT
CATEGORIES = sb.CATEGORIES
TRAINED = "noise+prompt+reflection/trained"
LEVELS = ["noise", "noise+prompt", "noise+prompt+reflection", TRAINED]
CORRECTOR = "shapes-corrector"


def job_options(level, images, seed, args):
    so = {"n": dbus.UInt32(1), "rounds": dbus.UInt32(images - 1), "branches": dbus.UInt32(1),
          "per_branch": dbus.UInt32(1), "levels": level.split("/")[0], "strength": dbus.Double(args.strength)}
    if level == TRAINED:
        so["corrector"] = "trained"
    o = {"seed": dbus.UInt64(seed), "model": "shapes", "strategy": "reflect",
         "verifiers": dbus.Array([args.selector], signature="s"),
         "strategy_options": dbus.Dictionary(so, signature="sv")}
    if level != "noise":
        o["reflector"] = "shapes-reflector"
    if level == TRAINED:
        o["models"] = dbus.Dictionary({"corrector": CORRECTOR}, signature="sv")
    return o


def key_of(level, images, line, seed):
    return f"{level}|{images}|{line}|{seed}"


def open_cache(path):
    return sb.Cache(path, key=lambda j: key_of(j["level"], j["images"], j["line"], j["seed"]),
                    order=lambda j: (j["level"], j["images"], j["line"], j["seed"]))


def run_jobs(args, todo, cache):
    state = tempfile.mkdtemp(prefix="assay-reflect-")
    bus, daemon, conn = sb.start_daemon(args.assayd, args.plugins, state, args.jobs)
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        loaded = {str(p["id"]) for p in manager.ListPlugins() if p["state"] == "loaded"}
        need = {args.judge, args.selector, "shapes", "shapes-reflector"}
        if any(w[0] == TRAINED for w in todo):
            need.add(CORRECTOR)
        if need - loaded:
            raise SystemExit(f"not loaded: {', '.join(sorted(need - loaded))} (build the plugins: make -C Plugins)")

        def submit(w):
            level, images, line, cat, prompt, seed = w
            path = manager.Submit(prompt, dbus.Dictionary(job_options(level, images, seed, args), signature="sv"))
            return {"w": w, "obj": conn.get_object("io.assay.Assay1", path)}

        def collect(j):
            level, images, line, cat, prompt, seed = j["w"]
            obj = j["obj"]
            p = {str(a): sb.plain(b) for a, b in dbus.Interface(obj, "org.freedesktop.DBus.Properties").GetAll("io.assay.Job1").items()}
            rec = {"level": level, "images": images, "line": line, "category": cat, "prompt": prompt, "seed": seed,
                   "state": p.get("State"), "stop_reason": p.get("StopReason"), "nfe_used": p.get("NfeUsed"),
                   "reflector_calls": p.get("ReflectorCalls"), "candidates": p.get("Candidates"), "error": p.get("Error") or None}
            m = json.loads(sb.read_fd(dbus.Interface(obj, "io.assay.Job1").OpenManifest()))
            rec["run_ms"] = round(m["timings"]["run_ms"], 1)
            # Which round the result came from (0 = the first image).
            order = [c["node"] for c in sorted(m.get("candidates", []), key=lambda c: c["index"])]
            rec["result_round"] = order.index(m["result_node"]) if m.get("result_node") in order else None
            rec["judge_pass"] = rec["selector_pass"] = rec["first_judge_pass"] = False
            if rec["state"] == "done":
                fd = dbus.Interface(obj, "io.assay.Job1").OpenResult()
                r = sb.plain(manager.Score(prompt, [fd], dbus.Array([args.judge, args.selector], signature="s"),
                                           dbus.Dictionary({}, signature="sv"))[0])
                rec["judge_pass"] = bool(json.loads(r["details"][args.judge])["pass"])
                rec["selector_pass"] = bool(json.loads(r["details"][args.selector])["pass"])
            return rec

        sb.run_queue(todo, args.jobs, submit, collect, cache, lambda r: f"{r['level']} x{r['images']} on {r['prompt']!r}")
        cache.save()
    finally:
        daemon.terminate()
        daemon.wait()
        bus.terminate()


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def report(args, work, cache):
    cells = {}
    for level, images, line, cat, prompt, seed in work:
        r = cache.jobs.get(key_of(level, images, line, seed))
        if r:
            cells.setdefault((level, images), []).append(r)
    # Hard prompts: the first image fails the judge. The first image is the same in every level
    # and image count (one seed): a 1-image noise job is exactly it.
    first = {r["line"]: r["judge_pass"] for r in cells.get(("noise", 1), [])}
    hard = {ln for ln, ok in first.items() if not ok}
    out = [f"ReflectionFlow analogue on the shapes model: {len({w[2] for w in work})} prompts, one chain per job, "
           f"selection by {args.selector} (the reflector reads it too), judged by {args.judge} (never selects); "
           f"training-free reflection level re-noises to t = {args.strength}; /trained = the trained corrector ({CORRECTOR})", "",
           f"hard prompts (the first image fails the judge): {len(hard)}", ""]
    head = ("| level | images | " + " | ".join(CATEGORIES) + " | overall (judge) | claim | hard (judge) | NFE | run ms |"
            " reflector calls | result from a later round | judge − noise [95% CI] |")
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    summary = []
    for images in args.images:
        noise = {r["line"]: (r["category"], r["judge_pass"]) for r in cells.get(("noise", images), [])}
        for level in LEVELS:
            recs = cells.get((level, images), [])
            if not recs:
                continue
            t = sb.by_category(recs)
            ov = sb.overall(t)
            claim = sb.overall(sb.by_category(recs, "selector_pass"))
            hard_recs = [r for r in recs if r["line"] in hard]
            hard_rate = sum(r["judge_pass"] for r in hard_recs) / len(hard_recs) if hard_recs else float("nan")
            later = mean([1.0 if (r.get("result_round") or 0) > 0 else 0.0 for r in recs])
            if level == "noise":
                diff = "—"
            else:
                d, lo, hi = sb.paired_diff({r["line"]: (r["category"], r["judge_pass"]) for r in recs}, noise, args.bootstrap)
                diff = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] {sb.verdict(lo, hi)}"
            nfe = mean([r["nfe_used"] for r in recs])
            out.append(f"| {level} | {images} | " + " | ".join(f"{sum(t[c]) / len(t[c]):.3f}" if c in t else "-" for c in CATEGORIES)
                       + f" | {ov:.3f} | {claim:.3f} | {hard_rate:.3f} | {nfe:.0f} | {mean([r.get('run_ms') for r in recs]):.0f} | "
                       f"{mean([r.get('reflector_calls') for r in recs]):.1f} | {later:.2f} | {diff} |")
            summary.append((level, images, ov, hard_rate, nfe))
    return out, summary


def plot(args, summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
    colours = {"noise": "C0", "noise+prompt": "C1", "noise+prompt+reflection": "C3", TRAINED: "C2"}
    for ax, xkey, xlabel in ((axes[0], 1, "images generated per job"), (axes[1], 4, "mean NFEs per job")):
        for level in LEVELS:
            pts = sorted((p[xkey], p[2], p[3]) for p in summary if p[0] == level)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colours[level], label=f"{level} (all)")
            ax.plot([p[0] for p in pts], [p[2] for p in pts], marker="s", linestyle=":", color=colours[level], label=f"{level} (hard)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"pass rate (judged by {args.judge})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("reflect on the shapes model: noise, prompt and reflection levels (selection by the checker)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sb.add_common_args(ap, "reflect")
    ap.add_argument("--per-category", type=int, default=15)
    ap.add_argument("--images", default="1,2,4,8,16")
    ap.add_argument("--strength", type=float, default=0.7)
    ap.add_argument("--levels", default=",".join(LEVELS), help="which levels to run (the 1-image noise job always runs)")
    ap.add_argument("--seed-base", type=int, default=7000)
    args = ap.parse_args()
    args.images = [int(x) for x in args.images.split(",") if x]
    if 1 not in args.images:
        args.images = [1] + args.images  # the first image alone defines the hard prompts
    prompts = sb.load_prompts(args.prompts, args.per_category)
    work = []
    for images in args.images:
        for line, cat, prompt in prompts:
            for level in ([lv for lv in LEVELS if lv in args.levels.split(",")] if images > 1 else ["noise"]):
                work.append((level, images, line, cat, prompt, args.seed_base + line))
    cache = open_cache(args.cache)
    sb.bench_main(args, work, cache, lambda w: key_of(w[0], w[1], w[2], w[5]), run_jobs, report, plot, "reflect_bench.py")


if __name__ == "__main__":
    main()
