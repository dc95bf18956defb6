#!/usr/bin/python3
"""A lineage sheet of one `reflect` job (ReflectionFlow), from its manifest and saved node
images: one row per round of one lineage — the image the round reflected on, the reflector's
feedback (and the lineage's earlier reflections it was shown), the corrected images it made
(the best of them framed: it moves the lineage on) — and the job's result.

  tools/reflect_sheet.py --manifest STATE/jobs/ID/manifest.json --out sheet.png
      renders a finished job (it must have run with save_candidates, so nodes/NNNN.png exist)
  tools/reflect_sheet.py --run "a red circle left of a blue square" --seed 7 --out sheet.png
      starts a private bus and assayd (build/plugins), runs reflect with the trained corrector
      (--training-free for the SDEdit path; --rounds, --per-branch), then renders it; the
      independent judge's verdict on the result is shown (--judge)

Needs python3-matplotlib (make tool-deps); --run also needs python3-dbus (re-runs itself with
Debian's /usr/bin/python3 when the python3 on PATH lacks it).
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if "--run" in sys.argv:
    # First: re-runs this tool with Debian's python3 when python3-dbus is missing.
    import search_bench as sb  # noqa: E402
    dbus = sb.dbus

from sf2_sheet import sheet_main, wrap_lines  # noqa: E402  (same folder)


def run_job(args):
    """Runs one reflect job through the daemon; -> (manifest path, judge verdict, state dir)."""
    state = tempfile.mkdtemp(prefix="assay-sheet-")
    bus, daemon, conn = sb.start_daemon(args.assayd, args.plugins, state, 1)
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        so = {"n": dbus.UInt32(args.n), "rounds": dbus.UInt32(args.rounds), "branches": dbus.UInt32(1),
              "per_branch": dbus.UInt32(args.per_branch), "levels": "noise+prompt+reflection",
              "corrector": "training-free" if args.training_free else "trained"}
        o = {"strategy": "reflect", "model": "shapes", "seed": dbus.UInt64(args.seed), "save_candidates": True,
             "verifiers": dbus.Array([args.selector], signature="s"), "reflector": "shapes-reflector",
             "strategy_options": dbus.Dictionary(so, signature="sv")}
        if not args.training_free:
            o["models"] = dbus.Dictionary({"corrector": "shapes-corrector"}, signature="sv")
        path = manager.Submit(args.run, dbus.Dictionary(o, signature="sv"))
        props = dbus.Interface(conn.get_object("io.assay.Assay1", path), "org.freedesktop.DBus.Properties")
        while props.Get("io.assay.Job1", "State") in ("queued", "running"):
            time.sleep(0.05)
        if props.Get("io.assay.Job1", "State") != "done":
            raise SystemExit(f"the job ended {props.Get('io.assay.Job1', 'State')}: {props.Get('io.assay.Job1', 'Error')}")
        fd = dbus.Interface(conn.get_object("io.assay.Assay1", path), "io.assay.Job1").OpenResult()
        row = manager.Score(args.run, [fd], dbus.Array([args.judge], signature="s"), dbus.Dictionary({}, signature="sv"))[0]
        verdict = bool(json.loads(str(row["details"][args.judge]))["pass"])
        return str(props.Get("io.assay.Job1", "ManifestPath")), verdict, state
    finally:
        daemon.terminate()
        daemon.wait()
        bus.terminate()


def render(manifest_path, out, judge_verdict=None, judge_name=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.image as mpimg

    m = json.load(open(manifest_path))
    if m["plan"].get("strategy") != "reflect":
        raise SystemExit(f"{manifest_path}: not a reflect job (strategy {m['plan'].get('strategy')})")
    job_dir = os.path.dirname(os.path.abspath(manifest_path))
    nodes = {n["id"]: n for n in m.get("nodes", [])}
    conditions = m.get("conditions") or []
    selector = (m["plan"].get("verifiers") or ["?"])[0]
    so = m["plan"].get("strategy_options") or {}
    finals = [n for n in nodes.values() if n.get("pool") == "final"]
    if not all(n.get("image") for n in finals):
        raise SystemExit(f"{manifest_path}: node images missing: run the job with save_candidates")
    result = m.get("result_node")

    def image(n):
        return mpimg.imread(os.path.join(job_dir, n["image"]))

    def score(n):
        s = (n.get("scores") or {}).get(selector)
        return "-" if s is None else f"{s:.2f}"

    def made_from(n):
        """The reflected image a candidate was made from: its reference image (trained
        corrector), or the nearest ancestor that is a finished image (training-free path,
        prompt level), or None for a first-round image."""
        c = conditions[n["condition"]] if n["condition"] < len(conditions) else {}
        if c.get("reference_node") is not None:
            return c["reference_node"]
        p = n.get("parent")
        while p is not None:
            if nodes[p].get("pool") == "final":
                return p
            p = nodes[p].get("parent")
        return None

    children = {}
    for f in finals:
        src = made_from(f)
        if src is not None:
            children.setdefault(src, []).append(f)
    # Follow one lineage: from the result back to its first-round image.
    chain = []
    i = result
    while i is not None:
        chain.append(i)
        i = made_from(nodes[i])
    chain.reverse()
    # Extend past the result while the lineage went on (later rounds did not beat it).
    while chain[-1] in children:
        kids = children[chain[-1]]
        best = min(kids, key=lambda n: n.get("mean_rank", 0))
        chain.append(best["id"])
    rounds = [(chain[k], children.get(chain[k], [])) for k in range(len(chain)) if children.get(chain[k])]
    if not rounds:
        raise SystemExit(f"{manifest_path}: no round of reflection in this job")

    per = max(len(k) for _, k in rounds)
    cols = 1 + 2 + per
    fig = plt.figure(figsize=(1.5 * cols, 1.0 + 1.75 * len(rounds)))
    grid = fig.add_gridspec(len(rounds), cols, hspace=0.75, wspace=0.15)
    green = "#1fbf4a"
    corrector = "trained corrector" if so.get("corrector") == "trained" else f"training-free (t = {so.get('strength')})"
    fig.text(0.01, 1.0, f"\u201c{m['prompt']}\u201d  \u2014  reflect, seed {m['plan'].get('seed')}, "
             f"{so.get('rounds')} rounds \u00d7 {so.get('per_branch')} per round, {corrector}; {m.get('nfe_used')} NFEs, "
             f"{m.get('reflector_calls')} reflector calls", fontsize=10, va="bottom", weight="bold")
    for row, (src, kids) in enumerate(rounds):
        n = nodes[src]
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(image(n), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"round {row}: #{src}\n{selector} {score(n)}", fontsize=8)
        ax_text = fig.add_subplot(grid[row, 1:3])
        ax_text.axis("off")
        try:
            refl = json.loads(n.get("reflection") or "{}")
        except ValueError:
            refl = {"feedback": n.get("reflection")}
        lines = [f"reflection {row + 1} (after {row} earlier):", refl.get("feedback") or "(nothing to fix)"]
        if so.get("corrector") != "trained" and refl.get("revised_prompt"):
            lines.append(f"revised prompt: \u201c{refl['revised_prompt']}\u201d")
        ax_text.text(0.0, 0.5, wrap_lines("\n".join(lines), 40), fontsize=7.5, va="center")
        moved = min(kids, key=lambda k: k.get("mean_rank", 0))["id"]
        for c, k in enumerate(sorted(kids, key=lambda k: k["id"])):
            ax = fig.add_subplot(grid[row, 3 + c])
            ax.imshow(image(k), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = f"#{k['id']} {k.get('model')}\n{selector} {score(k)}"
            if k["id"] == result and judge_verdict is not None:
                title += f"\nresult; {judge_name}: {'pass' if judge_verdict else 'fail'}"
            elif k["id"] == result:
                title += "\nresult"
            ax.set_title(title, fontsize=7.5)
            for s in ax.spines.values():
                s.set_color(green if k["id"] == moved else "#888888")
                s.set_linewidth(3.0 if k["id"] == moved else 0.8)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"lineage sheet: {out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-branch", type=int, default=3)
    ap.add_argument("--training-free", action="store_true")
    sheet_main(ap, run_job, render, "reflect-lineage.png")


if __name__ == "__main__":
    main()
