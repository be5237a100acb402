"""The traffic core of this tree beside the one of another commit: same trajectories, and speed.

``python scripts/traffic_core_ab.py --base REV`` loads ``envs/traffic/sim.py`` as it is at git
revision ``REV`` next to the working tree's and

1. runs both on the same scenarios, seeds and random actions (``--replicas`` replicas,
   ``--decisions`` decisions, resetting replicas whose episode ends) and compares every state
   array after every decision, bit for bit (the per-vehicle fields both cores have, when one
   appends more); it prints ``identical`` or the first difference;
2. with ``--rounds N``, times both at ``--batch`` replicas on sumo-rl's single intersection in
   ``N`` paired rounds (``--seconds`` of CPU time each, the base first) and prints each round's
   ratio and their median: the machine's speed drifts between runs, so only ratios taken
   seconds apart compare two cores. ``--threads N`` steps the batch on ``N`` threads and
   times wall-clock seconds instead.

Exit status 1 when some scenario differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMPARED = (
    "vi",
    "vf",
    "acc",
    "metrics",
    "signal_obs",
    "lane_stats",
    "quantities",
    "per_signal",
    "sig_int",
    "sig_float",
    "rng_state",
    "link_state",
    "n_alive",
)
"""State arrays compared after every decision (besides each replica's vehicle order)."""


def _scenarios() -> dict[str, Callable[[], Any]]:
    from envs.traffic.builders import build, sumo_rl_single_intersection
    from envs.traffic.nets import resco_scenario

    return {
        "single": lambda: sumo_rl_single_intersection(seconds=2000.0),
        "single4": lambda: build("single4"),
        "grid4x4": lambda: build("grid4x4"),
        "grid4x4-jam": lambda: build("grid4x4", inflow=700.0),
        "cologne3": lambda: resco_scenario("cologne3"),
        "ingolstadt21": lambda: resco_scenario("ingolstadt21"),
    }


def load_core(rev: str, folder: Path) -> ModuleType:
    """``envs/traffic/sim.py`` at git revision ``rev``, imported as a module of its own."""
    try:
        text = subprocess.run(
            ["git", "show", f"{rev}:envs/traffic/sim.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        message = f"--base: git cannot show envs/traffic/sim.py at {rev!r}: {exc.stderr.strip()}"
        raise SystemExit(message) from None
    return import_core(text, folder, "traffic_core_base")


def import_core(text: str, folder: Path, name: str) -> ModuleType:
    """The source ``text`` of a traffic core, written to ``folder`` and imported as ``name``."""
    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _reset(sims: Sequence[Any], mask: np.ndarray, seeds: Sequence[Any]) -> None:
    for sim in sims:
        sim.reset(mask, [np.random.default_rng(s) for s in seeds], [None] * len(seeds))


def _common_fields(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b``, cut to the fields they share when one core has more per-vehicle fields.

    Fields are the last axis and keep their places (new ones are appended), so an array of
    the same leading shape compares on its first ``min`` fields; any other difference in
    shape is left for the comparison to report.
    """
    if a.ndim == b.ndim and a.ndim > 0 and a.shape[:-1] == b.shape[:-1]:
        width = min(a.shape[-1], b.shape[-1])
        return a[..., :width], b[..., :width]
    return a, b


def compare(
    base: ModuleType, ours: ModuleType, scenario: Any, replicas: int, decisions: int
) -> str | None:
    """Run both cores side by side; ``None`` when identical, else where they first differ.

    Each core gets its own copy of ``scenario``: a core keeps what it compiles from a scenario
    on the scenario object, and the other core's arrays may have another layout.
    """
    sims = [
        base.TrafficSim(replicas, dataclasses.replace(scenario)),
        ours.TrafficSim(replicas, dataclasses.replace(scenario)),
    ]
    _reset(sims, np.ones(replicas, dtype=bool), [[7, i] for i in range(replicas)])
    rng = np.random.default_rng(1)
    nvec = sims[0].num_greens
    for step in range(decisions):
        actions = np.stack([rng.integers(0, np.maximum(nvec, 1)) for _ in range(replicas)])
        for sim in sims:
            sim.advance(actions.astype(np.int64).reshape(replicas, -1))
        a, b = sims
        for i in range(replicas):
            n = int(a.n_alive[i])
            if not np.array_equal(a.order[i, :n], b.order[i, :n]):
                return f"decision {step}: replica {i}'s vehicle order"
        for name in COMPARED:
            if not (hasattr(a, name) and hasattr(b, name)):
                return f"decision {step}: {name} (a state array of one core only)"
            if not np.array_equal(*_common_fields(getattr(a, name), getattr(b, name))):
                return f"decision {step}: {name}"
        ended = a.time >= scenario.end - 1e-9
        if ended.any():
            _reset(sims, ended, [[8, step, i] for i in range(replicas)])
    return None


def paired_rounds(
    base: ModuleType,
    ours: ModuleType,
    batch: int,
    rounds: int,
    seconds: float,
    threads: int = 1,
) -> list[float]:
    """Per round, base's time per replica-decision over ours (> 1: ours is faster).

    Both run sumo-rl's single intersection, filled first, with the same random actions
    (:func:`scripts.bench_floor.filled_sim`). One thread is timed in CPU time; several
    (``TrafficSim(threads=...)``) in wall time, since their CPU time adds up.
    """
    from scripts.bench_floor import cpu_seconds_per_call, filled_sim

    steps = [
        filled_sim(functools.partial(module.TrafficSim, threads=threads), batch)[1]
        for module in (base, ours)
    ]

    def once(step: Callable[[int], object]) -> float:
        if threads == 1:
            return cpu_seconds_per_call(step, seconds, 1)[0]
        calls = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            step(calls)
            calls += 1
        return (time.perf_counter() - start) / calls

    return [once(steps[0]) / once(steps[1]) for _ in range(rounds)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision of the other core")
    names = list(_scenarios())
    parser.add_argument(
        "--scenario",
        action="append",
        choices=names,
        help=f"compare on this scenario (repeatable; default: all of {', '.join(names)})",
    )
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=0, help="paired timing rounds (0: none)")
    parser.add_argument("--batch", type=int, default=256, help="replicas in the timing rounds")
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per timing run")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads stepping the batch (>1: wall time)"
    )
    args = parser.parse_args(argv)
    for name in ("replicas", "decisions", "batch", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if args.rounds < 0:
        parser.error(f"--rounds: must be >= 0, got {args.rounds}")
    if not args.seconds > 0:
        parser.error(f"--seconds: must be > 0, got {args.seconds}")
    from envs.traffic import sim as ours

    builders = _scenarios()
    differ = False
    with tempfile.TemporaryDirectory() as folder:
        base = load_core(args.base, Path(folder))
        for name in args.scenario or names:
            where = compare(base, ours, builders[name](), args.replicas, args.decisions)
            differ |= where is not None
            verdict = "identical" if where is None else f"DIFFERENT from {where}"
            print(f"{name}: {verdict} ({args.replicas} replicas x {args.decisions} decisions)")
        if args.rounds:
            ratios = paired_rounds(base, ours, args.batch, args.rounds, args.seconds, args.threads)
            each = ", ".join(f"{r:.3f}" for r in ratios)
            threads = f" on {args.threads} threads (wall time)" if args.threads > 1 else ""
            print(
                f"speed-up over {args.base} at B = {args.batch}{threads}: median "
                f"{statistics.median(ratios):.3f} over {args.rounds} paired rounds ({each})"
            )
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
