"""The timing loop both the bench and its reference workers use (standard library only).

The reference workers run in their own virtual environments as plain scripts, so they import
this module as a sibling (``from steploop import ...``); the bench imports it as
``scripts.bench_ref.steploop``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def summary(runs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Best, median and all runs of ``(per wall second, per CPU second)`` rates."""
    wall = [w for w, _ in runs]
    cpu = [c for _, c in runs]
    return {
        "best": max(wall),
        "median": statistics.median(wall),
        "runs": wall,
        "cpu_best": max(cpu),
        "cpu_median": statistics.median(cpu),
        "cpu_runs": cpu,
    }


def time_steps(
    step: Callable[[Any], bool],
    reset: Callable[[], Any],
    actions: Sequence[Any],
    seconds: float,
    repeats: int,
    warmup_s: float,
) -> dict[str, Any]:
    """Steps per second of ``step(action) -> done`` cycling through ``actions``.

    Resets when an episode ends; one warm-up run of ``warmup_s``, then ``repeats`` runs of
    ``seconds`` each, summarised by :func:`summary`.
    """
    reset()
    runs = []
    for budget in [warmup_s] + [seconds] * repeats:
        steps = 0
        cpu0, start = time.process_time(), time.perf_counter()
        deadline = start + budget
        while True:
            for action in actions:
                if step(action):
                    reset()
            steps += len(actions)
            now = time.perf_counter()
            if now >= deadline:
                break
        runs.append((steps / (now - start), steps / max(time.process_time() - cpu0, 1e-9)))
    return summary(runs[1:])
