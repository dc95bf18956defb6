#!/usr/bin/python3
"""How early can a search tell good candidates from bad? (the evidence behind halving's defaults)

For each prompt, one `halving` job through the daemon with keep = 1 (nobody is dropped) and
several checkpoints: every candidate's x0-prediction is scored at each checkpoint, and every
candidate finishes and is scored, by the checker, the learned verifiers and the judge. From
the manifest's search tree (version 2) it then asks, per checkpoint: if a search had kept
only the top k of the n candidates by their probe scores (the checker: "oracle"; the
learned verifiers' mean rank: "learned") and then picked the best finished one among them,
how often would the independent judge (`shapes-judge`, which never selects) pass the pick?
Printed beside best-of-k and best-of-n by the same verifier on the finished images.

Usage: tools/probe_study.py [--assayd PATH] [--plugins DIR] [--per-category K] [--n 8]
                            [--rounds 5] [--first 0.15] [--seed S] [--out docs/probe-study.txt]
Needs Debian's python3-dbus (re-executes itself with /usr/bin/python3 when missing).
"""
import argparse
import json
import os
import shutil
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
sys.path.insert(0, os.path.join(ROOT, "tools"))
from geneval_bench import CATEGORIES, read_fd, start_daemon  # noqa: E402

JUDGE, CHECKER, LEARNED = "shapes-judge", "shapes-checker", ["shapes-clipscore", "shapes-quality"]


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: -v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j + 2) / 2
        i = j + 1
    return r


def best(rows, verifiers):
    """Index (into rows) of the best by mean rank over verifiers, ties by the first, then order."""
    rk = [ranks([r[v] for r in rows]) for v in verifiers]
    mean = [sum(x[i] for x in rk) / len(rk) for i in range(len(rows))]
    return min(range(len(rows)), key=lambda i: (mean[i], -rows[i][verifiers[0]], i))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assayd", default=os.path.join(ROOT, ".build-rel/release/assayd"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, "build/plugins"))
    ap.add_argument("--prompts", default=os.path.join(ROOT, "tools/shapes/benchmark_prompts.txt"))
    ap.add_argument("--per-category", type=int, default=6)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--first", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/probe-study.txt"))
    args = ap.parse_args()

    seen, prompts = set(), []
    for line in open(args.prompts):
        if not line.strip():
            continue
        cat, prompt = line.rstrip("\n").split("\t")
        if prompt not in seen and sum(c == cat for c, _ in prompts) < args.per_category:
            seen.add(prompt)
            prompts.append((cat, prompt))
    state = tempfile.mkdtemp(prefix="assay-probe-")
    bus, daemon, conn = start_daemon(args.assayd, args.plugins, state)
    studies = []
    start = time.time()
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        verifiers = [CHECKER] + LEARNED + [JUDGE]
        jobs = []
        for i, (cat, prompt) in enumerate(prompts):
            opts = {"strategy": "halving", "seed": dbus.UInt64(args.seed + i),
                    "verifiers": dbus.Array(verifiers, signature="s"),
                    "strategy_options": dbus.Dictionary({"n": dbus.UInt32(args.n), "rounds": dbus.UInt32(args.rounds),
                                                         "first": dbus.Double(args.first), "keep": dbus.Double(1.0)},
                                                        signature="sv")}
            jobs.append((cat, prompt, manager.Submit(prompt, dbus.Dictionary(opts, signature="sv"))))
        for cat, prompt, path in jobs:
            obj = conn.get_object("io.assay.Assay1", path)
            props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
            while props.Get("io.assay.Job1", "State") in ("queued", "running"):
                time.sleep(0.05)
            m = json.loads(read_fd(obj, "OpenManifest"))
            nodes = m["nodes"]

            def root(i):
                while nodes[i].get("parent") is not None:
                    i = nodes[i]["parent"]
                return i
            finals = {root(c["node"]): c for c in m["candidates"]}
            pools = sorted({n["pool"] for n in nodes if (n.get("pool") or "").startswith("checkpoint-")},
                           key=lambda p: int(p.split("-")[1]))
            cands = sorted(finals)
            probe = {p: {root(n["id"]): n["scores"] for n in nodes if n.get("pool") == p} for p in pools}
            t_at = {p: next(n["t_from"] for n in nodes if n.get("pool") == p) for p in pools}
            final = [dict(finals[r]["scores"], judge=json.loads(finals[r]["details"][JUDGE])["pass"]) for r in cands]
            studies.append((cat, [[probe[p][r] for r in cands] for p in pools], final, [t_at[p] for p in pools]))
    finally:
        daemon.terminate()
        daemon.wait()
        bus.terminate()
        shutil.rmtree(state, ignore_errors=True)

    n = args.n
    lines = [f"probe study: {len(studies)} prompts ({args.per_category} per category), {n} candidates each, "
             f"shapes at its defaults; judge: {JUDGE}; {time.time() - start:.0f} s",
             f"command: tools/probe_study.py --per-category {args.per_category} --n {n} --rounds {args.rounds} "
             f"--first {args.first} --seed {args.seed}", ""]
    for setting, sel in [("oracle (checker selects)", [CHECKER]), ("learned (clipscore + quality select)", LEARNED)]:
        lines.append(setting)
        for k in sorted({1, 2, n // 4, n // 2, n} - {0}):
            rate = sum(f[best(f[:k], sel)]["judge"] for _, _, f, _ in studies) / len(studies)
            lines.append(f"  best-of-{k:<2} finished                 judge pass {rate:.3f}")
        for ci, t in enumerate(studies[0][3]):
            for keep in sorted({1, 2, n // 4, n // 2} - {0}):
                hits = 0
                for _, probes, final, _ in studies:
                    p = probes[ci]
                    order = sorted(range(n), key=lambda i: (sum(ranks([x[v] for x in p])[i] for v in sel), -p[i][sel[0]], i))
                    kept = [final[i] for i in order[:keep]]
                    hits += kept[best(kept, sel)]["judge"]
                lines.append(f"  probe at t={t:.2f}, keep {keep} of {n}, best finished   judge pass {hits / len(studies):.3f}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
