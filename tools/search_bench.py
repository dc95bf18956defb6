#!/usr/bin/python3
"""Search strategies at matched NFE budgets, run through the daemon over D-Bus.

Every strategy the daemon ships (best-of-n, zero-order, paths, halving, particles; each at
its default options) runs once per benchmark prompt and budget, in two settings:

  oracle   selection by the exact checker `shapes-checker` (Ma et al. 2025, section 3.1)
  learned  selection by the learned verifiers `shapes-clipscore` + `shapes-quality` as an
           ensemble (mean rank)

A job is submitted as {strategy, budget_nfe: B, seed, verifiers} and nothing else: a
strategy whose size option is not given sizes itself to fill the budget (ListStrategies
marks that option `sizes_to_budget`). `single` (one sample, 40 NFE on `shapes`) is the
floor. The job's result (OpenResult) is its strategy's choice under its verifiers; it is
then judged through Manager1.Score by the independent judge `shapes-judge` (--judge, a
learned detector that never selects), and by `shapes-checker`, whose verdict is the
selecting verifier's own claim in the oracle setting (verifier hacking is the gap).

Seeds are paired: prompt i (its line in --prompts) gets seed --seed-base + i for every
strategy, setting and budget, so strategies are compared on the same starting noise.
--replicate runs best-of-n a second time on a second seed set (--replicate-seed-base + i),
which measures the run-to-run noise of best-of-n itself.

Reported per setting: pass rate per category and overall (overall = the mean of the
category accuracies, as GenEval does) under the judge, the checker's claim, mean NFEs
actually used, and mean run time per job. Then, for each adaptive strategy against
best-of-n at the same budget and setting, the paired difference in overall judge pass rate
with a 95% paired bootstrap interval over prompts (prompts resampled within their
category, the category-mean difference recomputed; --bootstrap draws). A strategy "wins"
when the interval's lower bound is above 0, "loses" when its upper bound is below 0, and
otherwise "ties".

Resumable: every finished job is cached in --cache (default docs/search-bench.json, the raw
per-job results) keyed by (setting, strategy, budget, prompt, seed); a rerun only runs what
is missing, and --plot-only re-renders the report and the plot from the cache alone (given
nothing else that shapes the work, with the arguments of the last run that ran jobs).
--extra-budget B --extra-strategies S1,S2 adds budget B for those strategies only.

Writes --out-txt (the tables, the comparison lines, the command and the date), --cache, and
--plot (two panels, oracle and learned: overall judge pass rate against the NFE budget).

Usage: tools/search_bench.py [--assayd PATH] [--plugins DIR] [--budgets 80,160,320]
                             [--limit-per-category K] [--replicate] [--plot-only] ...
Needs Debian's python3-dbus (the script re-runs itself with /usr/bin/python3 when the python3
on PATH lacks it) and python3-matplotlib for the plot.
"""
import argparse
import datetime
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import dbus
except ImportError:  # a python3 earlier on PATH without python3-dbus: run the script again with Debian's
    # (sys.argv[0]: the tool that was started, which may be one importing this module)
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(sys.argv[0])] + sys.argv[1:])
    if "--plot-only" not in sys.argv:
        raise SystemExit("python3-dbus is missing: apt-get install python3-dbus")
    dbus = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATEGORIES = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]
ADAPTIVE = ["zero-order", "paths", "halving", "particles"]
STRATEGIES = ["best-of-n"] + ADAPTIVE
SETTINGS = ["oracle", "learned"]
REPLICATE = "best-of-n#2"  # best-of-n on the second seed set
NFE_MS = 9.5  # one NFE of the shapes model, one core (for the estimate only)


def default_assayd():
    for d in (".build-rel/release", ".build/release", ".build/debug"):
        p = os.path.join(ROOT, d, "assayd")
        if os.path.exists(p):
            return p
    return os.path.join(ROOT, ".build/release/assayd")


# ----------------------------------------------------------------------------- the daemon
def start_daemon(assayd, plugins, state, concurrent):
    address = subprocess.run(["mktemp", "-u", "/tmp/assay-search-bus.XXXXXX"], capture_output=True, text=True).stdout.strip()
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address=unix:path={address}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(address):
            break
        time.sleep(0.01)
    daemon = subprocess.Popen([assayd, "--address", f"unix:path={address}", "--plugin-dir", plugins, "--state-dir", state,
                               "--log-level", "warning", "--max-concurrent-jobs", str(concurrent),
                               "--max-queued", "4096", "--max-queued-per-client", "4096", "--no-watch"])
    conn = dbus.bus.BusConnection(f"unix:path={address}")
    for _ in range(500):
        if conn.name_has_owner("io.assay.Assay1"):
            return bus, daemon, conn
        if daemon.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit("assayd did not start")


def read_fd(fd_obj):
    with os.fdopen(fd_obj.take(), "rb") as f:
        return f.read()


def plain(v):
    """dbus values -> plain Python."""
    if isinstance(v, (dbus.Boolean,)):
        return bool(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32, dbus.UInt64)):
        return int(v)
    if isinstance(v, dbus.Double):
        return float(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


# ----------------------------------------------------------------------------- the work
def load_prompts(path, per_category):
    """The first per_category prompts of each category, with their line index (the seed offset)."""
    out, per_cat = [], {}
    for i, line in enumerate(open(path)):
        if not line.strip():
            continue
        cat, prompt = line.rstrip("\n").split("\t")
        if per_category and per_cat.get(cat, 0) >= per_category:
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        out.append((i, cat, prompt))
    return out


def key_of(setting, strategy, budget, prompt, seed):
    return f"{setting}|{strategy}|{budget}|{prompt}|{seed}"


def work_list(args, prompts):
    """[(setting, label, strategy, budget, line, category, prompt, seed)], cheap budgets first."""
    budgets = sorted(set(args.budgets))
    plan = {}  # budget -> strategy labels
    for b in budgets:
        plan[b] = list(args.strategies) + ([REPLICATE] if args.replicate and "best-of-n" in args.strategies else [])
    if args.extra_budget:
        extra = [s for s in args.extra_strategies]
        if args.replicate and "best-of-n" in extra:
            extra.append(REPLICATE)
        plan.setdefault(args.extra_budget, [])
        plan[args.extra_budget] += [s for s in extra if s not in plan[args.extra_budget]]
    out = []
    for setting in args.settings:
        for line, cat, prompt in prompts:
            out.append((setting, "single", "single", 40, line, cat, prompt, args.seed_base + line))
    for b in sorted(plan):
        for setting in args.settings:
            for line, cat, prompt in prompts:
                for label in plan[b]:
                    seed = (args.replicate_seed_base if label == REPLICATE else args.seed_base) + line
                    strategy = "best-of-n" if label == REPLICATE else label
                    out.append((setting, label, strategy, b, line, cat, prompt, seed))
    return out


def default_key(j):
    return key_of(j["setting"], j["label"], j["budget"], j["prompt"], j["seed"])


def default_order(j):
    order = {s: i for i, s in enumerate(["single"] + STRATEGIES + [REPLICATE])}
    return (j["setting"], j["budget"], order.get(j["label"], 99), j["label"], j["line"], j["seed"])


class Cache:
    """Finished jobs of a benchmark, one JSON file (resumable runs): `key(job)` names a job,
    `order(job)` sorts the file. Shared by the benchmark tools."""

    def __init__(self, path, key=default_key, order=default_order):
        self.path, self.key, self.order = path, key, order
        self.jobs = {}
        self.meta = {"runs": []}
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
            self.meta = data.get("meta", self.meta)
            for j in data.get("jobs", []):
                self.jobs[key(j)] = j
        self.saved = time.time()

    def add(self, rec):
        self.jobs[self.key(rec)] = rec

    def save(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        jobs = sorted(self.jobs.values(), key=self.order)
        with open(tmp, "w") as f:
            f.write('{"meta": ' + json.dumps(self.meta, indent=1) + ',\n"jobs": [\n')
            f.write(",\n".join(json.dumps(j, sort_keys=True) for j in jobs))
            f.write("\n]}\n")
        os.replace(tmp, self.path)
        self.saved = time.time()


def add_common_args(ap, name, selector="shapes-checker"):
    """The options every benchmark tool takes; `name` names its default outputs
    (docs/NAME-bench.json, docs/NAME-bench.txt, docs/images/NAME.png)."""
    ap.add_argument("--assayd", default=default_assayd())
    ap.add_argument("--plugins", default=os.path.join(ROOT, "build/plugins"))
    ap.add_argument("--prompts", default=os.path.join(ROOT, "tools/shapes/benchmark_prompts.txt"))
    ap.add_argument("--selector", default=selector)
    ap.add_argument("--judge", default="shapes-judge")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--cache", default=os.path.join(ROOT, f"docs/{name}-bench.json"))
    ap.add_argument("--out-txt", default=os.path.join(ROOT, f"docs/{name}-bench.txt"))
    ap.add_argument("--plot", default=os.path.join(ROOT, f"docs/images/{name}.png"))
    ap.add_argument("--plot-only", action="store_true")


def bench_main(args, work, cache, key, run, report, plot, tool):
    """The tail every benchmark tool shares: run what the cache lacks (key(work item)), then
    write the report (args.out_txt) and the plot (args.plot) from the cache."""
    if not args.plot_only:
        todo = [w for w in work if key(w) not in cache.jobs]
        print(f"{len(work)} jobs, {len(todo)} to run", file=sys.stderr)
        if todo:
            cache.meta.setdefault("runs", []).append({"date": datetime.datetime.now().isoformat(timespec="seconds"),
                                                      "assayd": identify(args.assayd), "argv": sys.argv[1:]})
            run(args, todo, cache)
    lines, summary = report(args, work, cache)
    lines += ["", f"command: tools/{tool} " + " ".join(sys.argv[1:]),
              "date: " + datetime.datetime.now().isoformat(timespec="seconds")]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out_txt)), exist_ok=True)
    with open(args.out_txt, "w") as f:
        f.write(text)
    plot(args, summary, args.plot)


def run_queue(todo, jobs, submit, collect, cache, describe):
    """Keeps `jobs` jobs in flight: `submit(work)` -> {"obj": job object, ...}, `collect(that)`
    -> the record added to `cache` once the job's State is final. Saves the cache every 15 s
    with a progress line; returns (seconds, jobs done)."""
    started, done = time.time(), 0
    queue, flying = list(todo), []
    while queue or flying:
        while queue and len(flying) < jobs:
            flying.append(submit(queue.pop(0)))
        time.sleep(0.02)
        still = []
        for j in flying:
            st = dbus.Interface(j["obj"], "org.freedesktop.DBus.Properties").Get("io.assay.Job1", "State")
            if st in ("queued", "running"):
                still.append(j)
                continue
            rec = collect(j)
            cache.add(rec)
            done += 1
            if rec["state"] != "done":
                print(f"  job {describe(rec)}: {rec['state']} {rec.get('error')}", file=sys.stderr)
        flying = still
        if time.time() - cache.saved > 15:
            cache.save()
            el = time.time() - started
            print(f"  {done}/{len(todo)} jobs, {el:.0f} s, about {el / max(1, done) * (len(todo) - done):.0f} s left",
                  file=sys.stderr)
    return time.time() - started, done


def run_jobs(args, todo, cache, verifier_sets):
    state = tempfile.mkdtemp(prefix="assay-search-")
    bus, daemon, conn = start_daemon(args.assayd, args.plugins, state, args.jobs)
    started = time.time()
    done_count = 0
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        loaded = {str(p["id"]) for p in manager.ListPlugins() if p["kind"] == "verifier" and p["state"] == "loaded"}
        for v in sorted({args.judge, "shapes-checker"} | {v for vs in verifier_sets.values() for v in vs}):
            if v not in loaded:
                raise SystemExit(f"verifier {v} is not loaded (loaded: {', '.join(sorted(loaded))}): "
                                 "build the plugins first (make -C Plugins)")
        strategies = {str(s["name"]): plain(s) for s in manager.ListStrategies()}
        for s in {w[2] for w in todo}:
            if s not in strategies:
                raise SystemExit(f"the daemon has no strategy {s} (it has: {', '.join(sorted(strategies))})")
        cache.meta["strategies"] = strategies

        def submit(w):
            setting, label, strategy, budget, line, cat, prompt, seed = w
            options = {"strategy": strategy, "seed": dbus.UInt64(seed), "model": args.model,
                       "verifiers": dbus.Array(verifier_sets[setting], signature="s")}
            if strategy != "single":
                options["budget_nfe"] = dbus.UInt32(budget)
            path = manager.Submit(prompt, dbus.Dictionary(options, signature="sv"))
            return {"w": w, "path": path, "t0": time.time(), "obj": conn.get_object("io.assay.Assay1", path)}

        def collect(j):
            setting, label, strategy, budget, line, cat, prompt, seed = j["w"]
            obj = j["obj"]
            props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
            p = {str(k): plain(v) for k, v in props.GetAll("io.assay.Job1").items()}
            rec = {"setting": setting, "label": label, "strategy": strategy, "budget": budget, "line": line,
                   "category": cat, "prompt": prompt, "seed": seed, "verifiers": verifier_sets[setting],
                   "state": p.get("State"), "stop_reason": p.get("StopReason"), "nfe_used": p.get("NfeUsed"),
                   "nfe_budget": p.get("NfeBudget"), "candidates": p.get("Candidates"),
                   "verifier_calls": p.get("VerifierCalls"), "error": p.get("Error") or None,
                   "wall_ms": round((time.time() - j["t0"]) * 1000, 1)}
            try:
                m = json.loads(read_fd(dbus.Interface(obj, "io.assay.Job1").OpenManifest()))
                rec["strategy_options"] = m["plan"].get("strategy_options")
                rec["run_ms"] = round(m["timings"]["run_ms"], 1)
                rec["model_ms"] = round(m["timings"]["model_ms"], 1)
                rec["verifier_ms"] = round(m["timings"]["verifier_ms"], 1)
                rec["nodes"] = len(m.get("nodes") or [])
            except dbus.DBusException as e:
                rec["manifest_error"] = str(e)
            judged = None
            if rec["state"] == "done":
                try:
                    fd = dbus.Interface(obj, "io.assay.Job1").OpenResult()
                    rows = manager.Score(prompt, [fd], dbus.Array([args.judge, "shapes-checker"], signature="s"),
                                         dbus.Dictionary({}, signature="sv"))
                    judged = plain(rows[0])
                except dbus.DBusException as e:
                    rec["score_error"] = str(e)
            if judged:
                for v, name in ((args.judge, "judge"), ("shapes-checker", "checker")):
                    rec[f"{name}_score"] = judged["scores"][v]
                    rec[f"{name}_pass"] = bool(json.loads(judged["details"][v])["pass"])
            else:  # a failed job (or one whose result could not be judged) passes nothing
                rec["judge_pass"] = rec["checker_pass"] = False
                rec["judge_score"] = rec["checker_score"] = None
            return rec

        def collect_run(j):
            rec = collect(j)
            rec["run"] = len(cache.meta.get("runs", []))  # its entry in meta.runs
            return rec

        elapsed, done_count = run_queue(todo, args.jobs, submit, collect_run, cache,
                                        lambda r: f"{r['label']}@{r['budget']} ({r['setting']}) on {r['prompt']!r}")
    finally:
        cache.save()
        daemon.terminate()
        daemon.wait()
        bus.terminate()
        bus.wait()
        shutil.rmtree(state, ignore_errors=True)
    return time.time() - started, done_count


# ----------------------------------------------------------------------------- statistics
def by_category(recs, field="judge_pass"):
    t = {}
    for r in recs:
        t.setdefault(r["category"], []).append(bool(r[field]))
    return t


def overall(table):
    accs = [sum(table[c]) / len(table[c]) for c in CATEGORIES if c in table and table[c]]
    return sum(accs) / len(accs) if accs else float("nan")


def paired_diff(a, b, draws, seed=0):
    """a, b: {line: (category, pass)} on the same prompts. -> (diff, lo, hi) of the category-mean
    pass rate a - b, with a 95% bootstrap interval resampling prompts within each category."""
    lines = sorted(set(a) & set(b))
    cats = {}
    for ln in lines:
        cats.setdefault(a[ln][0], []).append(int(a[ln][1]) - int(b[ln][1]))
    groups = [cats[c] for c in CATEGORIES if c in cats]
    if not groups:
        return float("nan"), float("nan"), float("nan")
    point = sum(sum(g) / len(g) for g in groups) / len(groups)
    rng = random.Random(seed)
    stats = []
    for _ in range(draws):
        s = 0.0
        for g in groups:
            k = len(g)
            s += sum(g[rng.randrange(k)] for _ in range(k)) / k
        stats.append(s / len(groups))
    if not stats:
        return point, float("nan"), float("nan")
    stats.sort()
    lo = stats[int(0.025 * (draws - 1))]
    hi = stats[int(0.975 * (draws - 1) + 0.5)]
    return point, lo, hi


def verdict(lo, hi):
    return "wins" if lo > 0 else ("loses" if hi < 0 else "ties")


# ----------------------------------------------------------------------------- the report
def report(args, work, cache, verifier_sets):
    cells = {}  # (setting, label, budget) -> [records]
    missing = 0
    for w in work:
        setting, label, strategy, budget, line, cat, prompt, seed = w
        r = cache.jobs.get(key_of(setting, label, budget, prompt, seed))
        if r is None:
            missing += 1
            continue
        cells.setdefault((setting, label, budget), []).append(r)
    expected = {}
    for w in work:
        expected[(w[0], w[1], w[3])] = expected.get((w[0], w[1], w[3]), 0) + 1
    order = ["single"] + STRATEGIES + [REPLICATE]
    sizes = {name: [o["name"] for o in s.get("options", []) if o.get("sizes_to_budget")]
             for name, s in cache.meta.get("strategies", {}).items()}

    def size_of(recs):
        """The size the strategy chose for the budget (the option marked sizes_to_budget), e.g. n=8."""
        names = sizes.get(recs[0]["strategy"], [])
        seen = sorted({f"{n}={recs_o[n]:g}" for r in recs for recs_o in [r.get("strategy_options") or {}]
                       for n in names if n in recs_o})
        return ",".join(seen) if seen else "-"
    lines = []
    n_prompts = len({w[4] for w in work})
    for setting in args.settings:
        sel = " + ".join(verifier_sets[setting]) + (" (ensemble, mean rank)" if len(verifier_sets[setting]) > 1 else "")
        lines.append(f"== {setting}: selection by {sel}; judged by {args.judge}")
        header = (f"{'strategy':<13}{'budget':>7}{'size':>16}{'cand':>6}{'NFE':>7}{'ms':>7}  " + "".join(f"{c[:10]:>11}" for c in CATEGORIES)
                  + f"{'judge':>8}{'checker':>9}{'gap':>7}{'fail':>6}")
        lines.append(header)
        lines.append("-" * len(header))
        keys = sorted((k for k in cells if k[0] == setting), key=lambda k: (k[2], order.index(k[1]) if k[1] in order else 99))
        for k in keys:
            recs = cells[k]
            table, claims = by_category(recs), by_category(recs, "checker_pass")
            nfe = sum(r["nfe_used"] or 0 for r in recs) / len(recs)
            cand = sum(r["candidates"] or 0 for r in recs) / len(recs)
            ms = sum(r.get("run_ms") or r["wall_ms"] for r in recs) / len(recs)
            failed = sum(r["state"] != "done" for r in recs)
            row = "".join(f"{sum(table[c]) / len(table[c]):>11.3f}" if c in table else f"{'-':>11}" for c in CATEGORIES)
            judged, claimed = overall(table), overall(claims)
            note = "" if len(recs) == expected[k] else f"  ({len(recs)}/{expected[k]} jobs)"
            lines.append(f"{k[1]:<13}{k[2]:>7}{size_of(recs):>16}{cand:>6.1f}{nfe:>7.1f}{ms:>7.0f}  {row}{judged:>8.3f}{claimed:>9.3f}"
                         f"{claimed - judged:>+7.3f}{failed:>6}{note}")
        lines.append("")

    lines.append(f"== paired differences in overall {args.judge} pass rate against best-of-n at the same budget "
                 f"(95% bootstrap over prompts within categories, {args.bootstrap} draws)")

    noise = []  # |seed set 2 - seed set 1| of best-of-n, every setting and budget

    def paired(setting, label, budget):
        return {r["line"]: (r["category"], r["judge_pass"]) for r in cells.get((setting, label, budget), [])}
    for setting in args.settings:
        budgets = sorted({k[2] for k in cells if k[0] == setting and k[1] == "best-of-n"})
        for b in budgets:
            base = paired(setting, "best-of-n", b)
            for label in ADAPTIVE + [REPLICATE]:
                other = paired(setting, label, b)
                if not other:
                    continue
                d, lo, hi = paired_diff(other, base, args.bootstrap, seed=b)
                if label == REPLICATE:
                    noise.append(abs(d))
                    lines.append(f"{setting:<8} {b:>4} NFE  best-of-n, seed set 2 - seed set 1 (run-to-run noise): "
                                 f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                else:
                    lines.append(f"{setting:<8} {b:>4} NFE  {label:<11} - best-of-n: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]  "
                                 f"{verdict(lo, hi)}")
        lines.append("")
    closeness = []
    for label in ADAPTIVE:
        ds = [paired_diff(paired(st, label, b), paired(st, "best-of-n", b), 0)[0]
              for st in args.settings for b in sorted(set(args.budgets)) if paired(st, label, b) and paired(st, "best-of-n", b)]
        if ds:
            closeness.append((sum(ds) / len(ds), label, len(ds)))
    if closeness:
        lines.append(f"mean paired difference against best-of-n over the budgets {','.join(map(str, sorted(set(args.budgets))))} "
                     "and both settings: " + ", ".join(f"{l} {d:+.3f}" for d, l, _ in sorted(closeness, reverse=True)))
    if noise:
        lines.append(f"The intervals resample prompts with their seeds fixed, so they leave out seed noise: best-of-n against "
                     f"itself on a second seed set differs by up to {max(noise):.3f} (mean |difference| "
                     f"{sum(noise) / len(noise):.3f}). A win or loss smaller than that is within run-to-run noise.")
        lines.append("")

    over = [r for recs in cells.values() for r in recs
            if r["strategy"] != "single" and r["nfe_used"] is not None and r["nfe_used"] > r["budget"]]
    failed = [r for recs in cells.values() for r in recs if r["state"] != "done"]
    lines.append(f"{n_prompts} prompts (the first {args.limit_per_category} per category of "
                 f"{os.path.relpath(args.prompts, ROOT)}), seeds {args.seed_base} + line"
                 + (f", replicate seeds {args.replicate_seed_base} + line" if args.replicate else "")
                 + f"; model {args.model}; every strategy at its default options, sized by budget_nfe.")
    lines.append(f"categories and 'judge': pass rate of the job's result under {args.judge} (independent, never selects); "
                 "'checker': under shapes-checker (in the oracle setting the selecting verifier's own claim); "
                 "gap = checker - judge; overall = mean of the category accuracies.")
    lines.append("size: the size option the strategy chose to fill budget_nfe (the one ListStrategies marks sizes_to_budget); "
                 "cand: mean finished candidates per job; NFE: mean NFEs the jobs actually used; ms: mean run time per job (the daemon's run_ms, "
                 f"{args.jobs} jobs at a time); fail: jobs that did not finish 'done' (counted as not passing).")
    lines.append(f"jobs over their budget: {len(over)}; failed jobs: {len(failed)}"
                 + (f"; jobs missing from the cache: {missing}" if missing else ""))
    if args.extra_budget:
        lines.append(f"budget {args.extra_budget} was run for {', '.join(args.extra_strategies)} only"
                     + (f" ({args.extra_note})" if args.extra_note else "") + ".")
    lines.append("")
    in_report = {}
    for recs in cells.values():
        for r in recs:
            in_report[r.get("run")] = in_report.get(r.get("run"), 0) + 1
    for i, run in enumerate(cache.meta.get("runs", [])):
        kept = in_report.get(i, 0)
        kept = "" if kept == run["jobs"] else f" ({kept} of them in this report, the others run again later)"
        at = f" (source {run['commit']}, assayd {run['assayd_sha256']})" if run.get("commit") else ""
        lines.append(f"run {run['date']}{at}: {run['jobs']} jobs in {run['wall_s']:.0f} s wall{kept}: {run['command']}")
    lines.append(f"this report, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}: {args.command}")
    return "\n".join(lines), cells


def plot(args, cells, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, len(args.settings), figsize=(6.2 * len(args.settings), 4.7), sharey=True, squeeze=False)
    names = {"oracle": "oracle: selection by shapes-checker", "learned": "learned: shapes-clipscore + shapes-quality"}
    markers = {"best-of-n": "o", "zero-order": "v", "paths": "^", "halving": "D", "particles": "P"}
    colors = {"best-of-n": "C0", "zero-order": "C1", "paths": "C2", "halving": "C3", "particles": "C4", REPLICATE: "C0"}
    for ax, setting in zip(axes[0], args.settings):
        for label in STRATEGIES + [REPLICATE]:
            pts = sorted((k[2], overall(by_category(v))) for k, v in cells.items() if k[0] == setting and k[1] == label)
            if not pts:
                continue
            style = dict(linestyle=":", marker=".", alpha=0.6, label="best-of-n (seed set 2)") if label == REPLICATE \
                else dict(linestyle="-", marker=markers[label], label=label)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colors[label], **style)
        single = cells.get((setting, "single", 40))
        if single:
            y = overall(by_category(single))
            ax.axhline(y, color="gray", linestyle="--", linewidth=1)
            ax.plot([40], [y], marker="s", color="gray", linestyle="none", label="single (40 NFE)")
        ax.set_xscale("log", base=2)
        ticks = sorted({40} | {k[2] for k in cells if k[0] == setting})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("NFE budget per prompt (log2 scale)")
        ax.set_title(names.get(setting, setting), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"overall pass rate (judged by {args.judge})")
    n_prompts = len({r["line"] for v in cells.values() for r in v})
    fig.suptitle(f"Assay search strategies at matched NFE on the {args.model} model ({n_prompts} prompts); "
                 f"pass rate under the independent judge {args.judge}", fontsize=10)
    handles, labels = {}, {}
    for ax in axes[0]:  # one legend for both panels, below them
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}", file=sys.stderr)


def identify(assayd):
    """The source commit (and whether the tree had changes) and the daemon binary's hash, for the record."""
    import hashlib
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "Sources"):
        commit += "+changes"
    with open(assayd, "rb") as f:
        return {"commit": commit, "sha256": hashlib.sha256(f.read()).hexdigest()[:16]}


def without(argv, flags):
    """argv less the given flags (and the values of those that take one)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=")[0] in flags:
            skip = "=" not in a and a != "--plot-only"
        else:
            out.append(a)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assayd", default=default_assayd())
    ap.add_argument("--plugins", default=os.path.join(ROOT, "build/plugins"))
    ap.add_argument("--prompts", default=os.path.join(ROOT, "tools/shapes/benchmark_prompts.txt"))
    ap.add_argument("--limit-per-category", type=int, default=5, help="the first K prompts of each category (0 = all)")
    ap.add_argument("--budgets", default="80,160,320", help="NFE budgets, comma-separated")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--learned-verifiers", default="shapes-clipscore,shapes-quality")
    ap.add_argument("--model", default="shapes")
    ap.add_argument("--seed-base", type=int, default=1000)
    ap.add_argument("--replicate", action="store_true", help="best-of-n again on a second seed set")
    ap.add_argument("--replicate-seed-base", type=int, default=500000)
    ap.add_argument("--extra-budget", type=int, default=0, help="one more budget, for --extra-strategies only")
    ap.add_argument("--extra-strategies", default="")
    ap.add_argument("--extra-note", default="", help="why those (printed with the report)")
    ap.add_argument("--judge", default="shapes-judge", help="the independent judge (never selects)")
    ap.add_argument("--jobs", type=int, default=2, help="jobs at a time, in the daemon and in flight from here")
    ap.add_argument("--bootstrap", type=int, default=10000)
    ap.add_argument("--cache", default=os.path.join(ROOT, "docs/search-bench.json"))
    ap.add_argument("--out-txt", default=os.path.join(ROOT, "docs/search-bench.txt"))
    ap.add_argument("--plot", default=os.path.join(ROOT, "docs/images/search.png"))
    ap.add_argument("--plot-only", action="store_true", help="no jobs: the report and the plot from the cache")
    ap.add_argument("--rerun", default="", help="strategies (labels) whose cached jobs are run again, e.g. after their code changed")
    ap.add_argument("--dry-run", action="store_true", help="print the work and its estimated cost, run nothing")
    args = ap.parse_args()
    restored = False
    if args.plot_only:
        # With nothing that shapes the work given, re-render what the last run asked for.
        argv = sys.argv[1:]
        plain_flags = {"--plot-only", "--assayd", "--plugins", "--cache", "--out-txt", "--plot"}
        shaping = without(argv, plain_flags)
        stored = Cache(args.cache).meta.get("argv") if os.path.exists(args.cache) else None
        restored = not shaping and bool(stored)
        if restored:
            args = ap.parse_args(stored + argv)
    args.command = "tools/search_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.plot_only and restored:
        args.command += " (with the last run's arguments, from the cache)"
    args.budgets = [int(b) for b in args.budgets.split(",") if b]
    args.strategies = [s for s in args.strategies.split(",") if s]
    args.settings = [s for s in args.settings.split(",") if s]
    args.extra_strategies = [s for s in args.extra_strategies.split(",") if s]
    verifier_sets = {"oracle": ["shapes-checker"], "learned": [v for v in args.learned_verifiers.split(",") if v]}
    for s in args.settings:
        if s not in verifier_sets:
            raise SystemExit(f"unknown setting {s}: oracle, learned")

    prompts = load_prompts(args.prompts, args.limit_per_category)
    work = work_list(args, prompts)
    cache = Cache(args.cache)
    rerun = {s for s in args.rerun.split(",") if s}
    if rerun and not args.plot_only and not args.dry_run:
        for k in [k for k, j in cache.jobs.items() if j["label"] in rerun]:
            del cache.jobs[k]
    todo = [w for w in work if key_of(w[0], w[1], w[3], w[6], w[7]) not in cache.jobs
            or (args.dry_run and w[1] in rerun)]
    nfe = sum(w[3] for w in todo)
    print(f"{len(prompts)} prompts, {len(work)} jobs ({len(work) - len(todo)} cached); to run: {len(todo)} jobs, "
          f"<= {nfe} NFE, about {nfe * NFE_MS / 1000 / 60:.1f} core-minutes of model time, "
          f"~{nfe * NFE_MS / 1000 / 60 / max(1, args.jobs):.1f} min wall at {args.jobs} jobs", file=sys.stderr)
    if args.dry_run:
        return
    if todo and not args.plot_only:
        if dbus is None:
            raise SystemExit("python3-dbus is missing: apt-get install python3-dbus")
        if not os.path.exists(args.assayd):
            raise SystemExit(f"no assayd at {args.assayd}: build it (swift build -c release) or pass --assayd")
        cmd = args.command
        date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        build = identify(args.assayd)
        try:
            wall, count = run_jobs(args, todo, cache, verifier_sets)
        except KeyboardInterrupt:
            print("interrupted: finished jobs are cached; run the same command again to continue", file=sys.stderr)
            raise SystemExit(130)
        cache.meta.setdefault("runs", []).append({"command": cmd, "date": date, "wall_s": round(wall, 1), "jobs": count,
                                                  "commit": build["commit"], "assayd_sha256": build["sha256"]})
        cache.meta["argv"] = without(sys.argv[1:], ("--assayd", "--plugins", "--cache", "--out-txt", "--plot", "--rerun"))
        cache.meta["judge"] = args.judge
        cache.meta["verifier_sets"] = verifier_sets
        cache.save()
    text, cells = report(args, work, cache, verifier_sets)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out_txt)), exist_ok=True)
    with open(args.out_txt, "w") as f:
        f.write(text + "\n")
    plot(args, cells, args.plot)


if __name__ == "__main__":
    main()
