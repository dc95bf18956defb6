#!/usr/bin/python3
"""SF2 (Sketch-First, Scale-Fast) Table 1/2 analogue on the embedded shapes model, through the
daemon over D-Bus: best-of-n against `cofusion` at n = 4, 8, 16.

Configurations (each a job per prompt and n; selection by --selector, default the exact
checker `shapes-checker`; every result judged by the independent `shapes-judge`, which never
selects, beside the selector's own claim):

  best-of-n          n full base-model samples (20 steps, guidance 1.75: 40 NFE each)
  cofusion-turbo     cofusion, fast path the 4-step student shapes-turbo
  cofusion-turbo+vr  the same with visual reflection (reflector shapes-reflector)
  cofusion-dbcache   cofusion, fast path the dbcache sampler plugin on the base model
  cofusion-dbcache+vr
  at equal NFE       cofusion-turbo and cofusion-turbo+vr given best-of-n's NFEs at each n as
                     budget_nfe and no n: the strategy sizes n to the budget (Ma et al.'s axis)
  k sweep            cofusion-turbo at n = 8 with k = 4, 6, 8, 10 (--k-sweep), to choose k

and DBCache alone (--dbcache-seeds seeds per prompt): `single` with the dbcache sampler
against `single` with the built-in Euler integrator from the same noise, at the same 20
steps: pass rate under the judge, the job's FlopRatio (model FLOPs run / uncached, measured
by the host from the blocks it ran) and the wall-time ratio.

Reported: pass rate per category and overall (mean of categories, as GenEval), the selector's
claim, mean NFEs, mean run time, each one's ratio to best-of-n at the same n, and the paired
difference to best-of-n at the same n with a 95% bootstrap interval over prompts (resampled
within categories). Wall times come from the manifests' run_ms; jobs run --jobs at a time
(default 1, so they do not share cores).

Resumable: finished jobs are cached in --cache (default docs/sf2-bench.json); --plot-only
re-renders from it. Writes --out-txt (docs/sf2-bench.txt) and --plot (docs/images/sf2.png:
pass rate against mean wall time per job).

Usage: tools/sf2_bench.py [--assayd PATH] [--plugins DIR] [--per-category K] [--ns 4,8,16]
Needs Debian's python3-dbus (re-runs itself with /usr/bin/python3 when the python3 on PATH
lacks it) and python3-matplotlib for the plot.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import search_bench as sb  # runs on Debian's python3 when python3-dbus is missing (see there)

dbus = sb.dbus

ROOT = sb.ROOT
CATEGORIES = sb.CATEGORIES
CONFIGS = ["best-of-n", "cofusion-turbo", "cofusion-turbo+vr", "cofusion-dbcache", "cofusion-dbcache+vr"]
# Sized by the strategy to best-of-n's NFEs at the same n (config name + EQUAL).
EQUAL = "@nfe"
EQUAL_CONFIGS = ["cofusion-turbo" + EQUAL, "cofusion-turbo+vr" + EQUAL]
BASE_NFE = 40  # one best-of-n candidate: 20 guided steps


def job_options(config, n, k, seed, selector):
    o = {"seed": dbus.UInt64(seed), "model": "shapes", "verifiers": dbus.Array([selector], signature="s")}
    if config in ("euler", "dbcache"):
        o["strategy"] = "single"
        if config == "dbcache":
            o["sampler"] = "dbcache"
        return o
    if config == "best-of-n":
        o["strategy"] = "best-of-n"
        o["strategy_options"] = dbus.Dictionary({"n": dbus.UInt32(n)}, signature="sv")
        return o
    if config.endswith(EQUAL):
        config = config[:-len(EQUAL)]
        o["budget_nfe"] = dbus.UInt32(BASE_NFE * n)
        so = {}
    else:
        so = {"n": dbus.UInt32(n)}
    if k is not None:
        so["k"] = dbus.UInt32(k)
    o["strategy"] = "cofusion"
    if "turbo" in config:
        so["fast"] = "model"
        o["models"] = dbus.Dictionary({"draft": "shapes-turbo"}, signature="sv")
    else:
        so["fast"] = "sampler"
        o["sampler"] = "dbcache"
    if config.endswith("+vr"):
        so["reflect"] = "on"
        o["reflector"] = "shapes-reflector"
    o["strategy_options"] = dbus.Dictionary(so, signature="sv")
    return o


def key_of(config, n, k, line, seed):
    return f"{config}|{n}|{k}|{line}|{seed}"


def work_list(args, prompts):
    out = []
    for line, cat, prompt in prompts:
        for s in range(args.dbcache_seeds):
            seed = args.seed_base + 1000 * s + line
            for config in ("euler", "dbcache"):
                out.append((config, 1, None, line, cat, prompt, seed))
    for n in args.ns:
        for line, cat, prompt in prompts:
            for config in CONFIGS + EQUAL_CONFIGS:
                out.append((config, n, None, line, cat, prompt, args.seed_base + line))
    for k in args.k_sweep:
        for line, cat, prompt in prompts:
            out.append(("cofusion-turbo", 8, k, line, cat, prompt, args.seed_base + line))
    return out


def open_cache(path):
    return sb.Cache(path, key=lambda j: key_of(j["config"], j["n"], j["k"], j["line"], j["seed"]),
                    order=lambda j: (j["config"], j["n"], j["k"] or 0, j["line"], j["seed"]))


def run_jobs(args, todo, cache):
    state = tempfile.mkdtemp(prefix="assay-sf2-")
    bus, daemon, conn = sb.start_daemon(args.assayd, args.plugins, state, args.jobs)
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        loaded = {str(p["id"]) for p in manager.ListPlugins() if p["state"] == "loaded"}
        need = {args.judge, args.selector, "shapes", "shapes-turbo", "dbcache", "shapes-reflector"}
        if need - loaded:
            raise SystemExit(f"not loaded: {', '.join(sorted(need - loaded))} (build the plugins: make -C Plugins)")
        cache.meta["cofusion"] = sb.plain([s for s in manager.ListStrategies() if s["name"] == "cofusion"][0])

        def submit(w):
            config, n, k, line, cat, prompt, seed = w
            path = manager.Submit(prompt, dbus.Dictionary(job_options(config, n, k, seed, args.selector), signature="sv"))
            return {"w": w, "obj": conn.get_object("io.assay.Assay1", path)}

        def collect(j):
            config, n, k, line, cat, prompt, seed = j["w"]
            obj = j["obj"]
            p = {str(a): sb.plain(b) for a, b in dbus.Interface(obj, "org.freedesktop.DBus.Properties").GetAll("io.assay.Job1").items()}
            rec = {"config": config, "n": n, "k": k, "line": line, "category": cat, "prompt": prompt, "seed": seed,
                   "state": p.get("State"), "stop_reason": p.get("StopReason"), "nfe_used": p.get("NfeUsed"),
                   "flop_ratio": p.get("FlopRatio"), "reflector_calls": p.get("ReflectorCalls"),
                   "error": p.get("Error") or None}
            try:
                m = json.loads(sb.read_fd(dbus.Interface(obj, "io.assay.Job1").OpenManifest()))
                rec["run_ms"] = round(m["timings"]["run_ms"], 1)
                rec["strategy_options"] = m["plan"].get("strategy_options")
                rec["notes"] = m.get("notes")
                rec["middle_flop_ratio"] = m.get("middle_flop_ratio")
                rec["negative_prompts"] = sorted({c.get("negative_prompt") for c in (m.get("conditions") or [])
                                                  if c.get("negative_prompt")})
            except dbus.DBusException as e:
                rec["manifest_error"] = str(e)
            rec["judge_pass"] = rec["selector_pass"] = False
            if rec["state"] == "done":
                fd = dbus.Interface(obj, "io.assay.Job1").OpenResult()
                rows = manager.Score(prompt, [fd], dbus.Array([args.judge, args.selector], signature="s"),
                                     dbus.Dictionary({}, signature="sv"))
                r = sb.plain(rows[0])
                rec["judge_pass"] = bool(json.loads(r["details"][args.judge])["pass"])
                rec["selector_pass"] = bool(json.loads(r["details"][args.selector])["pass"])
            return rec

        sb.run_queue(todo, args.jobs, submit, collect, cache, lambda r: f"{r['config']} n={r['n']} on {r['prompt']!r}")
        cache.save()
    finally:
        cache.save()
        daemon.terminate()
        daemon.wait()
        bus.terminate()
        bus.wait()
        shutil.rmtree(state, ignore_errors=True)


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def report(args, work, cache):
    cells = {}
    for w in work:
        config, n, k, line, cat, prompt, seed = w
        r = cache.jobs.get(key_of(config, n, k, line, seed))
        if r:
            cells.setdefault((config, n, k), []).append(r)
    out = []
    n_prompts = len({w[3] for w in work})
    out.append(f"SF2 analogue on the shapes model: {n_prompts} prompts, selection by {args.selector}, "
               f"judged by {args.judge} (which never selects)")
    out.append("")
    head = "| config | n | k | " + " | ".join(CATEGORIES) + " | overall (judge) | claim (" + args.selector + \
        ") | NFE | run ms | NFE ratio | time ratio | judge − best-of-n [95% CI] |"
    out.append(head)
    out.append("|" + "---|" * (head.count("|") - 1))
    summary = []
    for n in args.ns:
        base = cells.get(("best-of-n", n, None), [])
        bnfe, btime = mean([r["nfe_used"] for r in base]), mean([r.get("run_ms") for r in base])
        bpass = {r["line"]: (r["category"], r["judge_pass"]) for r in base}
        for config in CONFIGS:
            recs = cells.get((config, n, None), [])
            if not recs:
                continue
            t = sb.by_category(recs)
            ov = sb.overall(t)
            claim = sb.overall(sb.by_category(recs, "selector_pass"))
            nfe, ms = mean([r["nfe_used"] for r in recs]), mean([r.get("run_ms") for r in recs])
            cats = " | ".join(f"{sum(t[c]) / len(t[c]):.3f}" if c in t else "-" for c in CATEGORIES)
            if config == "best-of-n":
                diff = "—"
            else:
                d, lo, hi = sb.paired_diff({r["line"]: (r["category"], r["judge_pass"]) for r in recs}, bpass, args.bootstrap)
                diff = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] {sb.verdict(lo, hi)}"
            out.append(f"| {config} | {n} | {recs[0]['strategy_options'].get('k', '-') if recs[0].get('strategy_options') else '-'} | "
                       f"{cats} | {ov:.3f} | {claim:.3f} | {nfe:.0f} | {ms:.0f} | {nfe / bnfe:.2f} | {ms / btime:.2f} | {diff} |")
            summary.append((config, n, ov, ms, nfe))
    eq = [(n, c) for n in args.ns for c in EQUAL_CONFIGS if cells.get((c, n, None))]
    if eq:
        out.append("")
        out.append(f"At equal NFE: cofusion given best-of-n's NFEs ({BASE_NFE} × n) as budget_nfe sizes its own n")
        out.append("")
        out.append("| config | budget NFE | sized n | " + " | ".join(CATEGORIES) +
                   " | overall (judge) | claim | NFE | run ms | time ratio | judge − best-of-n [95% CI] |")
        out.append("|" + "---|" * (len(CATEGORIES) + 10))
        for n, config in eq:
            recs = cells[(config, n, None)]
            base = cells.get(("best-of-n", n, None), [])
            btime = mean([r.get("run_ms") for r in base])
            bpass = {r["line"]: (r["category"], r["judge_pass"]) for r in base}
            t = sb.by_category(recs)
            sizes = sorted({(r.get("strategy_options") or {}).get("n") for r in recs} - {None})
            ms = mean([r.get("run_ms") for r in recs])
            d, lo, hi = sb.paired_diff({r["line"]: (r["category"], r["judge_pass"]) for r in recs}, bpass, args.bootstrap)
            out.append(f"| {config} | {BASE_NFE * n} | {'/'.join(str(x) for x in sizes) or '-'} | "
                       + " | ".join(f"{sum(t[c]) / len(t[c]):.3f}" if c in t else "-" for c in CATEGORIES)
                       + f" | {sb.overall(t):.3f} | {sb.overall(sb.by_category(recs, 'selector_pass')):.3f} | "
                       f"{mean([r['nfe_used'] for r in recs]):.0f} | {ms:.0f} | {ms / btime:.2f} | "
                       f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] {sb.verdict(lo, hi)} |")
            if config == "cofusion-turbo" + EQUAL and sizes:
                summary.append((config, sizes[-1], sb.overall(t), ms, mean([r['nfe_used'] for r in recs])))
    if args.k_sweep:
        out.append("")
        out.append("k sweep: cofusion-turbo at n = 8 (the base model's steps before the sketches, of 20)")
        out.append("")
        out.append("| k | overall (judge) | claim | NFE | run ms |")
        out.append("|---|---|---|---|---|")
        for k in args.k_sweep:
            recs = cells.get(("cofusion-turbo", 8, k), [])
            if recs:
                out.append(f"| {k} | {sb.overall(sb.by_category(recs)):.3f} | "
                           f"{sb.overall(sb.by_category(recs, 'selector_pass')):.3f} | "
                           f"{mean([r['nfe_used'] for r in recs]):.0f} | {mean([r.get('run_ms') for r in recs]):.0f} |")
    eu, dc = cells.get(("euler", 1, None), []), cells.get(("dbcache", 1, None), [])
    if eu and dc:
        out.append("")
        out.append(f"DBCache alone: single sample, 20 steps, guidance 1.75, same noise ({len(eu)} jobs each)")
        out.append("")
        out.append("| sampler | overall (judge) | FLOP ratio (run/uncached) | FLOPs saved × | middle-block FLOPs saved × | run ms | time ratio |")
        out.append("|---|---|---|---|---|---|---|")
        et = mean([r.get("run_ms") for r in eu])
        for name, recs in (("euler (built-in)", eu), ("dbcache", dc)):
            fr = mean([r.get("flop_ratio") for r in recs])
            ms = mean([r.get("run_ms") for r in recs])
            mid = mean([r.get("middle_flop_ratio") for r in recs])
            mid_text = "-" if mid != mid else f"{1 / mid:.2f}"  # nan: not recorded (the built-in integrator runs no blocks)
            out.append(f"| {name} | {sb.overall(sb.by_category(recs)):.3f} | {fr:.3f} | {1 / fr:.2f} | {mid_text} | {ms:.0f} | {ms / et:.2f} |")
        pe = {(r["line"], r["seed"]): (r["category"], r["judge_pass"]) for r in eu}
        pd = {(r["line"], r["seed"]): (r["category"], r["judge_pass"]) for r in dc}
        d, lo, hi = sb.paired_diff(pd, pe, args.bootstrap)
        out.append("")
        out.append(f"dbcache − euler (judge pass rate, paired): {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return out, summary


def plot(args, summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    style = {"best-of-n": ("C0", "o", "-"), "cofusion-turbo": ("C3", "D", "-"), "cofusion-turbo+vr": ("C3", "D", ":"),
             "cofusion-dbcache": ("C2", "^", "-"), "cofusion-dbcache+vr": ("C2", "^", ":"),
             "cofusion-turbo" + EQUAL: ("C3", "s", "--")}
    labels = {"cofusion-turbo" + EQUAL: "cofusion-turbo sized to best-of-n's NFEs"}
    for config in CONFIGS + ["cofusion-turbo" + EQUAL]:
        pts = sorted((ms, ov, n) for c, n, ov, ms, nfe in summary if c == config)
        if not pts:
            continue
        col, mk, ls = style[config]
        ax.plot([p[0] / 1000 for p in pts], [p[1] for p in pts], color=col, marker=mk, linestyle=ls, label=labels.get(config, config))
        for ms, ov, n in pts:
            if not config.endswith("+vr"):  # the +vr points sit on top of their twins
                ax.annotate(f"n={n}", (ms / 1000, ov), textcoords="offset points", xytext=(4, -10), fontsize=7, color=col)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("mean run time per job, seconds (log2; one CPU core)")
    ax.set_ylabel(f"overall pass rate (judged by {args.judge})")
    ax.set_title(f"Co-Fusion against best-of-n on the shapes model; selection by {args.selector}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sb.add_common_args(ap, "sf2")
    ap.add_argument("--per-category", type=int, default=15)
    ap.add_argument("--ns", default="4,8,16")
    ap.add_argument("--k-sweep", default="4,6,8,10")
    ap.add_argument("--dbcache-seeds", type=int, default=2)
    ap.add_argument("--seed-base", type=int, default=5000)
    args = ap.parse_args()
    args.ns = [int(x) for x in args.ns.split(",") if x]
    args.k_sweep = [int(x) for x in args.k_sweep.split(",") if x]
    prompts = sb.load_prompts(args.prompts, args.per_category)
    work = work_list(args, prompts)
    cache = open_cache(args.cache)
    sb.bench_main(args, work, cache, lambda w: key_of(w[0], w[1], w[2], w[3], w[6]), run_jobs, report, plot, "sf2_bench.py")


if __name__ == "__main__":
    main()
