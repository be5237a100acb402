"""Threaded batched traffic envs of this tree beside another commit's, in whole env steps.

``python scripts/bench_threads.py --base REV`` checks revision ``REV`` out into a temporary git
worktree and, in paired rounds (the base first), times ``gymnasium.make_vec`` of the traffic
bench's single-intersection env (sumo-rl's single intersection, 3,600-s episodes,
``--batch`` replicas, ``threads=--threads``) under random actions, in wall time. Each timing
runs in fresh processes of its tree: ``--processes P`` starts ``P`` of them at once, each with
its own batch, and sums their rates, which shows how the threads of one process share the
machine with another's. It prints each round's ratio (this tree's summed rate over the base's)
and their median::

    python scripts/bench_threads.py --base 69ad9ba --threads 2
    python scripts/bench_threads.py --base 69ad9ba --threads 2 --processes 2

Unlike ``scripts/traffic_core_ab.py``, which times the core step alone, the env steps here
include the Python between decisions (observations, infos, resets), during which threads that
wait for the next decision either sleep or spin.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_env(batch: int, threads: int, seconds: float, ready: str, together: int) -> float:
    """Replica-steps per second of this tree's env.

    Once warm, the process leaves a file in folder ``ready`` and starts timing when
    ``together`` files are there (every process of the timing is warm).
    """
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)
    from scripts.bench_traffic import SPEED_CASES

    case = SPEED_CASES[0]
    venv = gym.make_vec(case.env_id, num_envs=batch, **{**case.kwargs, "threads": threads})
    venv.action_space.seed(0)
    actions = [venv.action_space.sample() for _ in range(64)]
    venv.reset(seed=0)
    for action in actions:  # warm: compiled, threads started
        venv.step(action)
    Path(ready, str(os.getpid())).touch()
    while len(os.listdir(ready)) < together:
        time.sleep(0.01)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions:
            venv.step(action)
        steps += len(actions)
    rate = steps * batch / (time.perf_counter() - start)
    venv.close()
    return rate


def summed_rate(tree: Path, batch: int, threads: int, seconds: float, processes: int) -> float:
    """``processes`` timings of ``tree``'s env started together; their rates summed."""
    with tempfile.TemporaryDirectory() as ready:
        code = (
            "import json; from scripts.bench_threads import time_env; "
            f"print(json.dumps(time_env({batch}, {threads}, {seconds}, {ready!r}, {processes})))"
        )
        env = {**os.environ, "PYTHONPATH": str(tree)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=tree,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(processes)
        ]
        rates = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"timing in {tree} failed (exit {proc.returncode})")
            rates.append(float(json.loads(out.strip().splitlines()[-1])))
    return sum(rates)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--batch", type=int, default=256, help="replicas per env")
    parser.add_argument("--threads", type=int, default=2, help="the env's threads")
    parser.add_argument("--processes", type=int, default=1, help="envs timed at once")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds")
    parser.add_argument("--seconds", type=float, default=4.0, help="wall seconds per timing")
    args = parser.parse_args(argv)
    for name in ("batch", "threads", "processes", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if not args.seconds > 0:
        parser.error(f"--seconds: must be > 0, got {args.seconds}")
    # the bench script itself comes from this tree in both timings
    script = (ROOT / "scripts" / "bench_threads.py").read_text()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            (base / "scripts" / "bench_threads.py").write_text(script)
            for tree in (base, ROOT):  # compiled once, so the timed processes load their caches
                summed_rate(tree, args.batch, args.threads, 0.1, 1)
            ratios = []
            for k in range(args.rounds):
                timed = [
                    summed_rate(tree, args.batch, args.threads, args.seconds, args.processes)
                    for tree in (base, ROOT)
                ]
                ratios.append(timed[1] / timed[0])
                print(
                    f"round {k + 1}: base {timed[0]:,.0f}, this tree {timed[1]:,.0f} "
                    f"replica-steps/s: {ratios[-1]:.3f}",
                    flush=True,
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )
    each = ", ".join(f"{r:.3f}" for r in ratios)
    print(
        f"speed-up over {args.base} at B = {args.batch} on {args.threads} threads, "
        f"{args.processes} process(es) at once: median {statistics.median(ratios):.3f} over "
        f"{args.rounds} paired rounds ({each})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
