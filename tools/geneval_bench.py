#!/usr/bin/python3
"""GenEval-style benchmark of Assay's search, run through the daemon over D-Bus.

For every benchmark prompt it submits ONE best-of-16 job with all the verifiers as an
ensemble (so every candidate is scored by every verifier) and reads the manifest through
OpenManifest. Candidate i's seed depends only on the job seed and i, so the first k
candidates of that job are exactly the candidates a best-of-k job with the same seed
samples: best-of-k for k = 1, 2, 4, 8, 16 is read off one run by selecting, among the
first k candidates, the one each verifier scores highest. "single" is k = 1.

A search optimises its verifier and finds that verifier's mistakes, so no row is judged by
the verifier that selected it: pass/fail per category comes from the independent judge
(`shapes-judge`, a learned detector; --judge), which never selects. Each row also shows the
overall pass rate by the checker's verdict (`checker`, the selecting verifier's own claim on
its rows) beside the judge's (`judge`): verifier hacking is the gap between the two.
--fresh N samples N new prompts per category from the world's grammar (seeded by
--fresh-seed), none of them in the repository's prompt list.

NFEs are exact (k x steps x conditions). Wall time per k is the job's measured model +
verifier time scaled by k/16 (one shared run, reported as such).

Prints per-category and overall pass rates (overall = mean of the category accuracies,
as GenEval does) and writes a PNG plot of pass rate against NFEs.

Usage: tools/geneval_bench.py [--assayd PATH] [--plugins DIR] [--model ID] [--limit N]
                              [--fresh N --fresh-seed S] [--judge ID] [--out DIR]
(--model shapes-turbo benchmarks the 4-step student; steps and guidance default to the model's.)
Needs Debian's python3-dbus (the script re-runs itself with /usr/bin/python3 when the python3
on PATH lacks it), python3-numpy for --fresh, python3-matplotlib for the plot.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import dbus
except ImportError:  # a python3 earlier on PATH without python3-dbus: use Debian's
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(__file__)] + sys.argv[1:])
    raise SystemExit("python3-dbus is missing: apt-get install python3-dbus")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KS = [1, 2, 4, 8, 16]
CATEGORIES = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]


def start_daemon(assayd, plugins, state):
    address = subprocess.run(["mktemp", "-u", "/tmp/assay-bench-bus.XXXXXX"], capture_output=True, text=True).stdout.strip()
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address=unix:path={address}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(address):
            break
        time.sleep(0.01)
    daemon = subprocess.Popen([assayd, "--address", f"unix:path={address}", "--plugin-dir", plugins, "--state-dir", state,
                               "--log-level", "warning", "--max-queued", "4096", "--max-queued-per-client", "4096"])
    conn = dbus.bus.BusConnection(f"unix:path={address}")
    for _ in range(500):
        if conn.name_has_owner("io.assay.Assay1"):
            return bus, daemon, conn
        time.sleep(0.02)
    raise SystemExit("assayd did not start")


def repo_prompts(path):
    return {line.rstrip("\n").split("\t")[1] for line in open(path) if line.strip()}


def fresh_prompts(per_category, seed, exclude):
    """per_category new captions of each category from the world's grammar, none in exclude."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "shapes"))
    try:
        import numpy as np
        import world
    except ImportError:
        raise SystemExit("--fresh needs numpy: apt-get install python3-numpy")
    rng = np.random.default_rng(seed)
    out, seen = [], set(exclude)
    for cat in world.CATEGORIES:
        n = tries = 0
        while n < per_category and tries < 100000:
            tries += 1
            caption = world.spec_to_caption(world.sample_spec(rng, cat))
            if caption not in seen:
                seen.add(caption)
                out.append((cat, caption))
                n += 1
    return out


def read_fd(obj, member):
    fd = obj.get_dbus_method(member, "io.assay.Job1")().take()
    with os.fdopen(fd, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assayd", default=os.path.join(ROOT, ".build/release/assayd"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, "build/plugins"))
    ap.add_argument("--prompts", default=os.path.join(ROOT, "tools/shapes/benchmark_prompts.txt"))
    ap.add_argument("--limit", type=int, default=0, help="prompts per category (0 = all)")
    ap.add_argument("--model", default="shapes")
    ap.add_argument("--steps", type=int, default=0, help="0 = the model's default")
    ap.add_argument("--guidance", type=float, default=0)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--fresh", type=int, default=0, help="N new prompts per category instead of --prompts")
    ap.add_argument("--fresh-seed", type=int, default=20261202)
    ap.add_argument("--judge", default="shapes-judge", help="the independent judge (never selects)")
    ap.add_argument("--out", default="geneval-output")
    args = ap.parse_args()

    prompts = []
    per_cat = {}
    for line in open(args.prompts):
        cat, prompt = line.rstrip("\n").split("\t")
        if args.limit and per_cat.get(cat, 0) >= args.limit:
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        prompts.append((cat, prompt))
    if args.fresh:
        prompts = fresh_prompts(args.fresh, args.fresh_seed, {p for _, p in prompts} | repo_prompts(args.prompts))

    os.makedirs(args.out, exist_ok=True)
    state = tempfile.mkdtemp(prefix="assay-geneval-")
    bus, daemon, conn = start_daemon(args.assayd, args.plugins, state)
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        plugins = [dict(p) for p in manager.ListPlugins()]
        verifiers = sorted(str(p["id"]) for p in plugins if p["kind"] == "verifier" and p["state"] == "loaded"
                           and str(p["id"]).startswith(("shapes-", "clipscore")))
        if "shapes-checker" not in verifiers:
            raise SystemExit("shapes-checker is not loaded: build the plugins first (make -C Plugins)")
        if args.judge not in verifiers:
            raise SystemExit(f"the judge {args.judge} is not loaded: build the plugins first (make -C Plugins)")
        verifiers = ["shapes-checker"] + [v for v in verifiers if v not in ("shapes-checker", args.judge)]
        print(f"{len(prompts)} prompts, selecting verifiers: {', '.join(verifiers)}; judge: {args.judge}", file=sys.stderr)

        jobs = []
        start = time.time()
        for i, (cat, prompt) in enumerate(prompts):
            options = {"strategy": "best-of-n", "n": dbus.UInt32(16), "seed": dbus.UInt64(args.seed + i),
                       "model": args.model, "verifiers": dbus.Array(verifiers + [args.judge], signature="s")}
            if args.steps:
                options["steps"] = dbus.UInt32(args.steps)
            if args.guidance:
                options["guidance"] = dbus.Double(args.guidance)
            jobs.append((cat, prompt, manager.Submit(prompt, dbus.Dictionary(options, signature="sv"))))
        records = []
        for n, (cat, prompt, path) in enumerate(jobs):
            obj = conn.get_object("io.assay.Assay1", path)
            props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
            while props.Get("io.assay.Job1", "State") in ("queued", "running"):
                time.sleep(0.05)
            manifest = json.loads(read_fd(obj, "OpenManifest"))
            records.append((cat, prompt, manifest))
            if (n + 1) % 25 == 0:
                print(f"  {n + 1}/{len(jobs)} jobs, {time.time() - start:.0f} s", file=sys.stderr)
        wall = time.time() - start
    finally:
        daemon.terminate()
        daemon.wait()
        bus.terminate()
        shutil.rmtree(state, ignore_errors=True)

    def passed(candidate, by):
        return json.loads(candidate["details"][by])["pass"]

    selectors = verifiers + (["ensemble"] if len(verifiers) > 1 else [])
    results = {}  # (selector, k) -> {category: [judge's pass...]}
    claims = {}  # (selector, k) -> {category: [checker's pass...]}
    nfe_per_candidate = {}
    time_per_candidate = []
    for cat, prompt, m in records:
        cands = sorted(m["candidates"], key=lambda c: c["index"])
        plan = m["plan"]
        nfe_per_candidate = m["nfe_used"] // max(1, len(cands))
        time_per_candidate.append((m["timings"]["model_ms"] + m["timings"]["verifier_ms"]) / max(1, len(cands)))
        for sel in selectors:
            for k in KS:
                first = cands[:k]
                if sel == "ensemble":
                    def rank(v):
                        order = sorted(range(k), key=lambda i: -first[i]["scores"][v])
                        r = [0] * k
                        for pos, i in enumerate(order):
                            r[i] = pos + 1
                        return r
                    ranks = [rank(v) for v in verifiers]
                    best = min(range(k), key=lambda i: (sum(r[i] for r in ranks), i))
                else:
                    best = max(range(k), key=lambda i: (first[i]["scores"][sel], -i))
                results.setdefault((sel, k), {}).setdefault(cat, []).append(passed(first[best], args.judge))
                claims.setdefault((sel, k), {}).setdefault(cat, []).append(passed(first[best], "shapes-checker"))
        # The oracle: does any of the first k pass the judge? (the ceiling a perfect verifier reaches)
        for k in KS:
            results.setdefault(("oracle", k), {}).setdefault(cat, []).append(any(passed(c, args.judge) for c in cands[:k]))
            claims.setdefault(("oracle", k), {}).setdefault(cat, []).append(any(passed(c, "shapes-checker") for c in cands[:k]))
    selectors.append("oracle")

    def overall(table):
        accs = [sum(table[c]) / len(table[c]) for c in CATEGORIES if c in table]
        return sum(accs) / len(accs)

    lines = []
    header = (f"{'selector':<16}{'k':>3}{'NFE':>7}{'ms':>8}  " + "".join(f"{c[:10]:>11}" for c in CATEGORIES)
              + f"{'judge':>8}{'checker':>9}{'gap':>7}")
    lines.append(header)
    lines.append("-" * len(header))
    for sel in selectors:
        for k in KS:
            table = results[(sel, k)]
            name = "single" if k == 1 and sel == "shapes-checker" else sel
            ms = k * sum(time_per_candidate) / len(time_per_candidate)
            cells = "".join(f"{sum(table[c]) / len(table[c]):>11.3f}" if c in table else f"{'-':>11}" for c in CATEGORIES)
            judged, claimed = overall(table), overall(claims[(sel, k)])
            lines.append(f"{name:<16}{k:>3}{k * nfe_per_candidate:>7}{ms:>8.0f}  {cells}{judged:>8.3f}{claimed:>9.3f}"
                         f"{claimed - judged:>+7.3f}")
    summary = "\n".join(lines + ["", f"categories and 'judge': pass rate under {args.judge} (independent, never selects); "
                                      "'checker': under shapes-checker (the selecting verifier's own claim on its rows); "
                                      "gap = checker - judge"])
    print(summary)
    print(f"\n{len(records)} prompts, {wall:.0f} s wall for all jobs; NFE and ms are per prompt "
          f"(ms: model + verifier time, scaled from one n=16 run)")
    with open(os.path.join(args.out, "geneval.txt"), "w") as f:
        f.write(summary + "\n")
    with open(os.path.join(args.out, "geneval.json"), "w") as f:
        json.dump({f"{s}@{k}": {c: sum(v) / len(v) for c, v in t.items()}
                   | {"overall": overall(t), "checker_overall": overall(claims[(s, k)])}
                   for (s, k), t in results.items()}, f, indent=1)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for sel in selectors:
        xs = [k * nfe_per_candidate for k in KS]
        ys = [overall(results[(sel, k)]) for k in KS]
        ax.plot(xs, ys, marker="o", linestyle="--" if sel == "oracle" else "-", label=sel)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("NFEs per prompt (best-of-k, k = 1..16)")
    ax.set_ylabel(f"overall pass rate (judged by {args.judge})")
    ax.set_title(f"Assay best-of-N on the {args.model} model ({len(records)} prompts)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "geneval.png"), dpi=120)
    print(f"plot: {os.path.join(args.out, 'geneval.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
