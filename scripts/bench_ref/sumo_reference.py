"""The sumo-rl 1.4.5 reference of the traffic benchmark: its venv, worker and parameter check.

The bench plugs it in next to the other references (``scripts/bench.py``)::

    from scripts.bench_ref import sumo_reference

    SUMORL = Reference(
        name="sumo-rl 1.4.5 (SUMO 1.28.0, libsumo)",
        env_id="single-intersection",
        venv=sumo_reference.VENV,
        install=sumo_reference.INSTALL,
        worker=sumo_reference.WORKER,
        check_params=sumo_reference.check_sumorl_params,
    )

With the bench's standard config (no ``mode``) the worker times ``env_id`` (a scenario name:
``single-intersection`` or a RESCO network such as ``grid4x4``) and reports ``steps_per_s``
and ``params`` as the other workers do. Its ``fidelity`` and ``ppo_time_to_quality`` modes take
their own configs (:func:`fidelity_config`, :func:`ppo_config`); see ``sumo_worker.py``.

The scenario files stay in sumo-rl's wheel inside the reference venv: every worker result holds
``nets_dir``, and :func:`nets_dir` asks the venv's interpreter for it without running SUMO.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VENV = "sumorl"
WORKER = "sumo_worker.py"
INSTALL: tuple[tuple[str, ...], ...] = (
    (
        "sumo-rl==1.4.5",
        # sumo-rl 1.4.5's PettingZoo wrapper imports ``agent_selector``, renamed in 1.25
        "pettingzoo==1.24.3",
        "eclipse-sumo==1.28.0",
        "libsumo==1.28.0",
        "sumolib==1.28.0",
        "traci==1.28.0",
        "stable-baselines3==2.9.2",
        "torch==2.13.0",
    ),
)
"""``pip install`` argument lists for a fresh venv (sumo-rl pins only ``gymnasium>=0.26``)."""
RESCO = (
    "grid4x4",
    "arterial4x4",
    "cologne1",
    "cologne3",
    "cologne8",
    "ingolstadt1",
    "ingolstadt7",
    "ingolstadt21",
)
"""RESCO networks shipped with sumo-rl; each runs over its ``.sumocfg`` window."""
SIGNAL_TIMINGS = {"delta_time": 5.0, "yellow_time": 2.0, "min_green": 5.0}
"""sumo-rl's decision interval, yellow time and minimum green, s."""


def _scenario(env: Any) -> Any:
    inner = getattr(env, "unwrapped", env)
    for name in ("structure", "scenario"):
        value = getattr(inner, name, None)
        if value is not None:
            return value
    raise AttributeError("env: has neither a structure nor a scenario attribute")


def check_sumorl_params(env: Any, params: Mapping[str, Any]) -> list[str]:
    """Compare our traffic scenario with the settings sumo-rl ran under.

    Args:
        env: our env; its ``structure`` (or ``scenario``) is a ``TrafficScenario``.
        params: the worker's ``params``: ``delta_time``, ``yellow_time``, ``min_green``,
            ``begin``, ``end``, ``signals`` and ``sumo_options``.

    Returns:
        One line per differing setting (empty when both run the same control problem).
        sumo-rl has no all-red time and never ends a green phase on its own
        (``max_green`` is ignored), and by default disables teleporting.
    """
    sc = _scenario(env)
    signals = sc.signals
    out: list[str] = []
    pairs = {
        "delta_time": (params.get("delta_time"), signals.delta_time),
        "yellow_time": (params.get("yellow_time"), signals.yellow_time),
        "min_green": (params.get("min_green"), signals.min_green),
        "begin": (params.get("begin"), sc.begin),
        "end": (params.get("end"), sc.end),
        "signals": (params.get("signals"), len(sc.controlled_signals)),
    }
    for name, (theirs, ours) in pairs.items():
        if theirs is None or float(theirs) != float(ours):
            out.append(f"{name}: reference {theirs!r}, ours {ours!r}")
    if signals.all_red_time:
        out.append(f"all_red_time: reference 0 (none), ours {signals.all_red_time!r}")
    if not params.get("max_green_enforced", False):
        out.append(f"max_green: reference not enforced, ours {signals.max_green!r}")
    teleport = (params.get("sumo_options") or {}).get("time_to_teleport", -1)
    if (teleport <= 0) != (sc.teleport_time <= 0) or (
        teleport > 0 and teleport != sc.teleport_time
    ):
        out.append(f"teleport time: reference {teleport!r}, ours {sc.teleport_time!r}")
    return out


def nets_dir(python: str | Path) -> Path:
    """sumo-rl's ``nets`` folder in the venv of ``python`` (found without importing sumo-rl)."""
    code = (
        "import importlib.util as u; "
        "print(next(iter(u.find_spec('sumo_rl').submodule_search_locations)))"
    )
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return Path(proc.stdout.strip().splitlines()[-1]) / "nets"


def fidelity_config(
    seeds: Sequence[int] = (0, 1, 2), resco: Sequence[str] = RESCO
) -> dict[str, Any]:
    """The config of the reference-figure runs.

    Fixed time and max pressure on single-intersection and grid4x4 (plus plain-libsumo fixed
    time as a check on sumo-rl), fixed time on every RESCO network over its own window.
    """
    runs: list[dict[str, Any]] = []
    for scenario in ("single-intersection", "grid4x4"):
        runs += [
            {"scenario": scenario, "controller": "fixed_time", "driver": "sumo_rl"},
            {"scenario": scenario, "controller": "fixed_time", "driver": "libsumo"},
            {"scenario": scenario, "controller": "max_pressure", "driver": "sumo_rl"},
        ]
    runs += [
        {"scenario": name, "controller": "fixed_time", "driver": "sumo_rl"}
        for name in resco
        if name != "grid4x4"
    ]
    return {"mode": "fidelity", "seeds": list(seeds), "runs": runs}


def ppo_config(
    threshold: float,
    max_wall_s: float = 300.0,
    seed: int = 0,
    eval_every: int = 720,
    **ppo: Any,
) -> dict[str, Any]:
    """A ``ppo_time_to_quality`` config on single-intersection with 3600 s episodes.

    ``eval_every`` defaults to one episode (720 decisions) so that evaluations never cut a
    training episode short; ``ppo`` overrides the PPO keyword arguments.
    """
    return {
        "mode": "ppo_time_to_quality",
        "scenario": "single-intersection",
        "num_seconds": 3600,
        "seed": seed,
        "threshold": threshold,
        "max_wall_s": max_wall_s,
        "eval_every": eval_every,
        "ppo": {"n_steps": 720, "batch_size": 144, "n_epochs": 5, "learning_rate": 1e-3, **ppo},
    }
