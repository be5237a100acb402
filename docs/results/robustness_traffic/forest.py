"""Draw the paired differences of the traffic robustness study, one row per network and arm.

    python docs/results/robustness_traffic/forest.py out.png ingolstadt1=ingolstadt1.json ...

Each ``NAME=PATH`` is a ``compare.py --json`` file. Per network and later arm it draws the
per-seed paired difference to the first arm with its 95 % bootstrap interval, as a percentage
of the first arm's mean: travel time (below zero favours the later arm) and return (above zero
favours it; divided by the magnitude of the first arm's mean return).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARM_LABELS = {"arm_b_gan": "WGAN samples", "arm_c_train": "all real training windows"}
COLOURS = {"arm_b_gan": "tab:blue", "arm_c_train": "tab:grey"}


def arm_kind(name: str) -> str:
    """``arm_b_gan`` or ``arm_c_train`` from a sweep folder name such as ``x_arm_b_gan_300k``."""
    for kind in ARM_LABELS:
        if kind in name:
            return kind
    raise ValueError(f"arm {name!r}: expected a name containing one of {sorted(ARM_LABELS)}")


def main() -> None:
    """Write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("networks", nargs="+", help="NAME=compare.json")
    args = parser.parse_args()
    rows = []  # (label, kind, travel [pt, lo, hi] %, return [pt, lo, hi] %, wins text)
    for item in args.networks:
        name, _, path = item.partition("=")
        data = json.loads(Path(path).read_text())
        for arm, paired in data["paired"].items():
            base = data["arms"][paired["against"]]
            travel = [
                100.0 * v / base["mean_travel_time"][0]
                for v in paired["mean_travel_time"]["difference"]
            ]
            ret = [100.0 * v / abs(base["return"][0]) for v in paired["return"]["difference"]]
            wins = f"{paired['mean_travel_time']['better_on']}/{paired['seeds']}"
            rows.append((name, arm_kind(arm), travel, ret, wins))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(rows) + 1.6), sharey=True)
    ys = list(range(len(rows)))[::-1]
    for ax, col, title in (
        (axes[0], 2, "mean travel time, % of arm (a) (< 0: better)"),
        (axes[1], 3, "return, % of |arm (a)| (> 0: better)"),
    ):
        for y, row in zip(ys, rows, strict=True):
            pt, lo, hi = row[col]
            ax.errorbar(
                pt, y, xerr=[[pt - lo], [hi - pt]], fmt="o", color=COLOURS[row[1]], capsize=3
            )
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_xlabel(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(
        [f"{r[0]}: {ARM_LABELS[r[1]]} ({r[4]} seeds faster)" for r in rows], fontsize=8
    )
    fig.suptitle("Paired difference to (a), one real window: 95 % bootstrap intervals", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
