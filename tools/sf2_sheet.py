#!/usr/bin/python3
"""A contact sheet of one Co-Fusion job (SF2), from its manifest and saved node images: every
sketch with the verifier's score (the early selection; the selected ones framed), then for
each selected trajectory its layout preview x̂ at t_k, its sketch, the reflector's text (when
the job reflected) and the finished image.

  tools/sf2_sheet.py --manifest STATE/jobs/ID/manifest.json --out sheet.png
      renders a finished job (it must have run with save_candidates, so nodes/NNNN.png exist)
  tools/sf2_sheet.py --run "a red circle above a blue square" --seed 4 --out sheet.png
      starts a private bus and assayd (build/plugins), runs cofusion with the turbo fast path
      and visual reflection (--n, --k, --no-reflect), then renders it; --judge adds the
      independent judge's verdict on the result

Needs python3-matplotlib (make tool-deps); --run also needs python3-dbus (re-runs itself with
Debian's /usr/bin/python3 when the python3 on PATH lacks it).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

if "--run" in sys.argv:
    try:
        import dbus
    except ImportError:
        if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
            os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(__file__)] + sys.argv[1:])
        raise SystemExit("python3-dbus is missing: apt-get install python3-dbus")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_job(args):
    """Runs one cofusion job through the daemon; -> (manifest path, judge verdict or None, state dir)."""
    import search_bench as sb
    state = tempfile.mkdtemp(prefix="assay-sheet-")
    bus, daemon, conn = sb.start_daemon(args.assayd, args.plugins, state, 1)
    try:
        manager = dbus.Interface(conn.get_object("io.assay.Assay1", "/io/assay/Assay1"), "io.assay.Manager1")
        so = {"n": dbus.UInt32(args.n), "k": dbus.UInt32(args.k), "fast": "model",
              "reflect": "off" if args.no_reflect else "on"}
        o = {"strategy": "cofusion", "model": "shapes", "seed": dbus.UInt64(args.seed), "save_candidates": True,
             "verifiers": dbus.Array([args.selector], signature="s"),
             "models": dbus.Dictionary({"draft": "shapes-turbo"}, signature="sv"),
             "strategy_options": dbus.Dictionary(so, signature="sv")}
        if not args.no_reflect:
            o["reflector"] = "shapes-reflector"
        path = manager.Submit(args.run, dbus.Dictionary(o, signature="sv"))
        props = dbus.Interface(conn.get_object("io.assay.Assay1", path), "org.freedesktop.DBus.Properties")
        while props.Get("io.assay.Job1", "State") in ("queued", "running"):
            time.sleep(0.05)
        if props.Get("io.assay.Job1", "State") != "done":
            raise SystemExit(f"the job ended {props.Get('io.assay.Job1', 'State')}: {props.Get('io.assay.Job1', 'Error')}")
        verdict = None
        if args.judge:
            fd = dbus.Interface(conn.get_object("io.assay.Assay1", path), "io.assay.Job1").OpenResult()
            row = manager.Score(args.run, [fd], dbus.Array([args.judge], signature="s"), dbus.Dictionary({}, signature="sv"))[0]
            verdict = bool(json.loads(str(row["details"][args.judge]))["pass"])
        return str(props.Get("io.assay.Job1", "ManifestPath")), verdict, state
    finally:
        daemon.terminate()
        daemon.wait()
        bus.terminate()


def wrap(text, width):
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        out.append(line)
    return "\n".join(out)


def render(manifest_path, out, judge_verdict=None, judge_name=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.image as mpimg

    m = json.load(open(manifest_path))
    job_dir = os.path.dirname(os.path.abspath(manifest_path))
    nodes = {n["id"]: n for n in m.get("nodes", [])}
    selector = (m["plan"].get("verifiers") or ["?"])[0]
    so = m["plan"].get("strategy_options") or {}

    def image(n):
        return mpimg.imread(os.path.join(job_dir, n["image"])) if n.get("image") else None

    def root(i):
        while nodes[i].get("parent") is not None:
            i = nodes[i]["parent"]
        return i

    def score(n):
        s = (n.get("scores") or {}).get(selector)
        return "-" if s is None else f"{s:.2f}"

    sketches = sorted((n for n in nodes.values() if n.get("pool") == "sketch"), key=lambda n: root(n["id"]))
    finals = [n for n in nodes.values() if n.get("pool") == "final"]
    if not sketches or not finals:
        raise SystemExit(f"{manifest_path}: not a cofusion job with sketches and finals (strategy {m['plan'].get('strategy')})")
    if not all(n.get("image") for n in sketches + finals):
        raise SystemExit(f"{manifest_path}: node images missing: run the job with save_candidates")
    chosen_roots = {root(f["id"]) for f in finals}
    result = nodes.get(m.get("result_node"))

    cols = max(len(sketches), 7)
    fig = plt.figure(figsize=(1.45 * cols, 1.9 + 2.6 * len(finals)))
    grid = fig.add_gridspec(1 + len(finals), cols, height_ratios=[1.0] + [1.45] * len(finals), hspace=0.55, wspace=0.15)
    green = "#1fbf4a"
    for i, n in enumerate(sketches):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image(n), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        picked = root(n["id"]) in chosen_roots
        for s in ax.spines.values():
            s.set_color(green if picked else "#888888")
            s.set_linewidth(3.5 if picked else 0.8)
        ax.set_title(f"#{root(n['id'])}  {score(n)}", fontsize=8, color=green if picked else "black")
    k = so.get("k")
    fig.text(0.01, 0.985, f"\u201c{m['prompt']}\u201d  \u2014  cofusion, seed {m['plan'].get('seed')}, "
             f"n={so.get('n')} k={k} m={so.get('m')} reflect={so.get('reflect')}; "
             f"{m.get('nfe_used')} NFEs", fontsize=10, va="top", weight="bold")
    fig.text(0.01, 0.945, f"sketches: {sketches[0].get('model')} from x_t{k} (t = {sketches[0]['t_from']:.2f}), "
             f"{sketches[0].get('nfe')} NFEs each; {selector} scores; the selected framed", fontsize=8, va="top")

    for row, f in enumerate(sorted(finals, key=lambda n: n.get("mean_rank", 0)), start=1):
        r = root(f["id"])
        sketch = next(n for n in sketches if root(n["id"]) == r)
        preview = next((n for n in nodes.values() if n.get("op") == "x0" and root(n["id"]) == r and n.get("image")), None)
        xk = nodes[f["parent"]]
        panels = []
        if preview:
            panels.append((image(preview), f"preview x\u0302 at t={preview['t_from']:.2f}\n(base, {preview['nfe']} NFEs)"))
        panels.append((image(sketch), f"sketch #{r}\n{selector} {score(sketch)}"))
        ax_text = None
        final_title = f"final (base, {f['nfe']} NFEs)\n{selector} {score(f)}"
        if result is not None and f["id"] == result["id"] and judge_verdict is not None:
            final_title += f"\n{judge_name}: {'pass' if judge_verdict else 'fail'}"
        c = 0
        for img, title in panels:
            ax = fig.add_subplot(grid[row, c])
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
            c += 1
        span = max(1, cols - c - 1)
        ax_text = fig.add_subplot(grid[row, c:c + span])
        ax_text.axis("off")
        text = "no reflection (reflect=off)"
        if xk.get("reflection"):
            try:
                refl = json.loads(xk["reflection"])
            except ValueError:
                refl = {"feedback": xk["reflection"]}
            neg = refl.get("negative_prompt")
            lines = ["reflector on preview + sketch:", wrap(refl.get("feedback", ""), 34)]
            if neg:
                lines.append(f"negative prompt y\u2032: \u201c{neg}\u201d")
                lines.append("(confirmed by the preview)" if refl.get("confirmed_by_preview") else "")
            elif refl.get("unconfirmed_negative"):
                lines.append(f"dropped: \u201c{refl['unconfirmed_negative']}\u201d\n(the preview does not show it)")
            else:
                lines.append("no negative prompt")
            text = "\n".join(x for x in lines if x)
        ax_text.text(0.0, 0.5, wrap_lines(text, 44), fontsize=7.5, va="center", family="DejaVu Sans")
        ax = fig.add_subplot(grid[row, cols - 1])
        ax.imshow(image(f), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_color(green if result is not None and f["id"] == result["id"] else "#888888")
            s.set_linewidth(3.5 if result is not None and f["id"] == result["id"] else 0.8)
        ax.set_title(final_title, fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"contact sheet: {out}", file=sys.stderr)


def wrap_lines(text, width):
    return "\n".join(wrap(line, width) if len(line) > width else line for line in text.split("\n"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--no-reflect", action="store_true")
    sheet_main(ap, run_job, render, "cofusion-sheet.png")


def sheet_main(ap, run_job, render, image):
    """The tail every sheet tool shares: --manifest renders a finished job; --run runs one
    through a private daemon (run_job(args) -> manifest, judge verdict, state dir), renders
    it with the judge's verdict and removes the state. --out defaults to docs/images/`image`."""
    ap.add_argument("--manifest")
    ap.add_argument("--run", metavar="PROMPT")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/images", image))
    ap.add_argument("--selector", default="shapes-checker")
    ap.add_argument("--judge", default="shapes-judge")
    ap.add_argument("--assayd")
    ap.add_argument("--plugins", default=os.path.join(ROOT, "build/plugins"))
    args = ap.parse_args()
    if bool(args.manifest) == bool(args.run):
        ap.error("give --manifest or --run")
    if args.manifest:
        render(args.manifest, args.out)
        return
    if not args.assayd:
        import search_bench as sb
        args.assayd = sb.default_assayd()
    manifest, verdict, state = run_job(args)
    try:
        render(manifest, args.out, verdict, args.judge)
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
