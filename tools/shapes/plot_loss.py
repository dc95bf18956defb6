"""Plot the training loss curve.

    python3 tools/shapes/plot_loss.py [loss.csv ...] [-o Plugins/shapes/weights/loss.png]

Default input: Plugins/shapes/weights/loss.csv (committed copy of tools/shapes/runs/<name>/loss.csv;
several CSVs from resumed sessions are concatenated in the order given).
"""

import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="*", default=[os.path.join(REPO, "Plugins/shapes/weights/loss.csv")])
    ap.add_argument("-o", default=os.path.join(REPO, "Plugins/shapes/weights/loss.png"))
    a = ap.parse_args()
    steps, loss, lr = [], [], []
    for p in a.csv:
        with open(p) as f:
            for r in csv.DictReader(f):
                steps.append(int(r["step"]))
                loss.append(float(r["loss"]))
                lr.append(float(r["lr"]))
    steps, loss = np.array(steps), np.array(loss)
    k = 8
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid") if len(loss) > k else loss
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, color="0.75", lw=0.8, label="loss (mean of 25 steps)")
    ax.plot(steps[len(steps) - len(smooth):], smooth, color="C0", lw=1.5, label=f"smoothed ({k * 25} steps)")
    ax.set_xlabel("step (batch 32)")
    ax.set_ylabel("velocity MSE")
    ax.set_ylim(0, min(1.0, float(np.max(loss[len(loss) // 10:])) * 1.2) if len(loss) > 10 else None)
    ax2 = ax.twinx()
    ax2.plot(steps, lr, color="C1", lw=0.8, alpha=0.6)
    ax2.set_ylabel("learning rate", color="C1")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("shapes-base training loss")
    fig.tight_layout()
    fig.savefig(a.o, dpi=100)
    print("wrote", a.o)


if __name__ == "__main__":
    main()
