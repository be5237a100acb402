"""Compare training arms of the traffic robustness study on the held-out real windows.

    python docs/results/robustness_traffic/compare.py runs/robust_traffic/arm_a_real0 \
        runs/robust_traffic/arm_b_gan [more arms] [--policy ppo]

Each arm is a sweep folder of ``lepton-train -m ... seed=...`` (one job per seed). Per arm it
prints the agent's mean evaluation return and mean travel time over the seeds with 95 %
bootstrap intervals (``agents.stats``), and for every later arm the paired difference to the
first arm: the arms' jobs of one seed are evaluated on the same episodes (same held-out
windows, same arrivals), so the per-seed difference removes the episodes' share of the spread. ``--json PATH`` also
writes these figures (``forest.py`` draws them for several networks).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from agents.stats import mean, stratified_bootstrap
from agents.sweep_report import collect

METRICS = ("return", "mean_travel_time")


def per_seed(arm: Path, policy: str) -> dict[int, dict[str, float]]:
    """The policy's mean of every metric per seed, from the sweep's finished jobs."""
    return {
        run.seed: {"return": run.score, "mean_travel_time": run.metrics["mean_travel_time"]}
        for run in collect(arm)
        if run.policy == policy
    }


def bounds(values: np.ndarray) -> list[float]:
    """``[mean, low, high]`` of ``values`` with a 95 % bootstrap interval."""
    return [float(v) for v in stratified_bootstrap([values], mean, seed=0)]


def interval(values: np.ndarray) -> str:
    """``mean [low, high]`` of ``values`` with a 95 % bootstrap interval."""
    point, low, high = bounds(values)
    return f"{point:.4g} [{low:.4g}, {high:.4g}]"


def main() -> None:
    """Print the arms' table and the paired differences to the first arm."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("arms", nargs="+", type=Path)
    parser.add_argument("--policy", default="ppo")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    scores = {arm: per_seed(arm, args.policy) for arm in args.arms}
    out: dict = {"policy": args.policy, "arms": {}, "paired": {}}
    print("| arm | seeds | return [95 % CI] | mean travel time, s [95 % CI] |")
    print("|---|---:|---|---|")
    for arm, seeds in scores.items():
        cells = [interval(np.array([s[m] for s in seeds.values()])) for m in METRICS]
        print(f"| {arm.name} | {len(seeds)} | {cells[0]} | {cells[1]} |")
        out["arms"][arm.name] = {"seeds": len(seeds)} | {
            m: bounds(np.array([s[m] for s in seeds.values()])) for m in METRICS
        }
    first = args.arms[0]
    for arm in args.arms[1:]:
        common = sorted(set(scores[first]) & set(scores[arm]))
        print(f"\npaired by seed, {arm.name} - {first.name} ({len(common)} seeds):")
        paired: dict = {"against": first.name, "seeds": len(common)}
        for m in METRICS:
            diff = np.array([scores[arm][s][m] - scores[first][s][m] for s in common])
            wins = int((diff > 0).sum() if m == "return" else (diff < 0).sum())
            print(f"  {m}: {interval(diff)}; {arm.name} better on {wins} of {len(common)} seeds")
            paired[m] = {"difference": bounds(diff), "better_on": wins}
        out["paired"][arm.name] = paired
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
