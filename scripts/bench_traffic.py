"""Traffic benchmarks against sumo-rl 1.4.5 on SUMO 1.28 (libsumo): speed, time to quality, fidelity.

Two commands of ``lepton-bench`` (``python -m scripts.bench <command>`` dispatches here):

``traffic``
    * **decision rate** on sumo-rl's ``single-intersection`` (ours: ``lepton/TrafficSignal-v0``,
      preset ``sumo_rl_single`` over 3600 s) and RESCO ``grid4x4`` over its 3600 s window
      (ours: ``lepton/TrafficGrid-v0`` with scenario ``resco:grid4x4``; sumo-rl's multi-agent
      ``SumoEnvironment``, one step is one decision of all 16 signals). Ours: the single env
      (``gymnasium.make``, random actions from a pool drawn beforehand, timed by the loop the
      worker uses, :func:`scripts.bench_ref.steploop.time_steps`) and the native vector env at
      B = 16 and 256 (replica-steps/s, :func:`scripts.bench.measure_vector`); sumo-rl through
      its worker's ``speed`` mode, run right after our single env. ``ratio_single``,
      ``ratio_b16`` and ``ratio_b256`` divide ours by sumo-rl's single-env rate, per wall
      second and per CPU second of each process (``cpu_time_basis``, steadier on a shared
      machine).
    * **PPO time to quality** (skip with ``--no-ttq``): wall seconds until SB3 PPO with
      :func:`scripts.bench_ref.sumo_reference.ppo_config`'s hyperparameters beats max pressure's
      mean travel time on single-intersection, ours against sumo-rl (worker mode
      ``ppo_time_to_quality``). Both sides run the same protocol code,
      :func:`scripts.bench_ref.ttq.time_to_quality` (ours through :func:`ours_time_to_quality`):
      one ``DummyVecEnv`` over one env (the same 720-decision rollout per update; the native
      batched env is not used), training episode ``k`` on seed ``seed + k``, one deterministic
      3600 s evaluation episode on seed ``eval_seed`` every ``eval_every`` steps and before
      training, and the worker's gate (:func:`scripts.bench_ref.sumo_worker.meets_quality`: mean
      travel time at most the threshold with at least ``min_arrived_fraction`` of the loaded
      vehicles arrived). By default each side's threshold is max pressure's mean travel time on
      its own simulator (seeds 0-2 of the scenario it trains on: SUMO's from the worker's
      ``fidelity`` mode, ours from our ``max_pressure`` baseline); ``--ttq-threshold sumo`` uses
      SUMO's for both.

``traffic-fidelity``
    Every run of :func:`scripts.bench_ref.sumo_reference.fidelity_config` on both simulators:
    SUMO through the worker's ``fidelity`` mode, ours on the very files the worker used
    (imported with :func:`envs.traffic.sumo_import.load_sumo`, same window) with our
    ``fixed_time`` (program mode) or ``max_pressure`` baseline, seeds 0-2. The table puts the
    seed means side by side (mean travel, waiting and time-loss times of arrived vehicles,
    arrived vehicles, vehicle-weighted mean speed) with their ratios and the targets
    (:data:`FIDELITY_TARGETS`).

Like for like, both commands run our scenarios as sumo-rl runs SUMO: teleporting disabled
(``--time-to-teleport -1``; ours ``teleport_time=-1``), every vehicle inserted eventually
(``--max-depart-delay -1``; ours never drops a vehicle), delta_time 5 s, yellow 2 s, min green
5 s, no all-red, and no maximum green (sumo-rl ignores ``max_green``; ours gets
:data:`UNENFORCED_MAX_GREEN`). The JSON records these settings and the command line.

Every target is listed, as in :mod:`scripts.bench`: ``met``, ``MISSED`` or ``not checked`` with
the reason (sumo-rl did not run, or ran on other parameters than ours), then a count of them.

Examples:
    ``python -m scripts.bench traffic --out docs/results/bench_traffic.json``,
    ``python -m scripts.bench traffic --no-ttq --seconds 1``,
    ``python -m scripts.bench traffic --no-speed --ttq-threshold sumo``,
    ``python -m scripts.bench traffic-fidelity --quick``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecMonitor

from envs.core.sb3 import make_sb3_vec_env
from scripts import bench
from scripts.bench_ref import steploop, sumo_reference, sumo_worker, ttq

COMMANDS = ("traffic", "traffic-fidelity")
UNENFORCED_MAX_GREEN = 1e9
"""Our ``max_green`` (s) in every comparison: longer than any window, as sumo-rl enforces none."""
LIKE_SUMO_RL: Mapping[str, Any] = {
    "delta_time": 5.0,
    "yellow_time": 2.0,
    "all_red_time": 0.0,
    "min_green": 5.0,
    "max_green": UNENFORCED_MAX_GREEN,
}
"""Our signal settings in every comparison (sumo-rl's control conventions)."""
TELEPORT_TIME = -1.0
"""Our ``teleport_time`` in every comparison (sumo-rl passes ``--time-to-teleport -1``)."""
SUMO_RL_NAME = "sumo-rl 1.4.5 (SUMO 1.28.0, libsumo)"


def _reference(env_id: str) -> bench.Reference:
    return bench.Reference(
        name=SUMO_RL_NAME,
        env_id=env_id,
        venv=sumo_reference.VENV,
        install=sumo_reference.INSTALL,
        worker=sumo_reference.WORKER,
        check_params=sumo_reference.check_sumorl_params,
    )


@dataclasses.dataclass(frozen=True)
class SpeedCase:
    """One scenario of the speed table.

    Attributes:
        name: row label and sumo-rl's scenario name (the worker's ``env_id``).
        env_id: our registered id.
        kwargs: our constructor arguments.
        targets: lower bounds on ratios (``ratio_single``, ``ratio_b256``) for this scenario.
    """

    name: str
    env_id: str
    kwargs: Mapping[str, Any]
    targets: Mapping[str, float]


SPEED_CASES = (
    SpeedCase(
        "single-intersection",
        "lepton/TrafficSignal-v0",
        {"scenario": {"preset": "sumo_rl_single", "seconds": 3600.0, **LIKE_SUMO_RL}},
        {"ratio_single": 20.0, "ratio_b256": 500.0},
    ),
    SpeedCase(
        "grid4x4",
        "lepton/TrafficGrid-v0",
        {"scenario": {"resco": "grid4x4", "teleport_time": TELEPORT_TIME, **LIKE_SUMO_RL}},
        {"ratio_single": 10.0},
    ),
)
"""The two scenarios of ``traffic``: sumo-rl's single intersection and RESCO grid4x4."""
TTQ_TARGET = 5.0
"""Lower bound on sumo-rl's wall time to quality over ours."""
TTQ_ENV_ID = "lepton/TrafficSignal-v0"
TTQ_KWARGS: Mapping[str, Any] = SPEED_CASES[0].kwargs
"""Our PPO env: single-intersection with 3600 s episodes (the worker's ``num_seconds``)."""

FIDELITY_TARGETS: Mapping[tuple[str, str], Mapping[str, float]] = {
    ("single-intersection", "fixed_time"): {"mean_travel_time": 0.10, "arrived": 0.03},
    ("grid4x4", "fixed_time"): {"mean_travel_time": 0.10, "arrived": 0.03},
    ("single-intersection", "max_pressure"): {"mean_travel_time": 0.15},
    ("grid4x4", "max_pressure"): {"mean_travel_time": 0.15},
}
"""Largest relative difference ``|ours / SUMO - 1|`` allowed per (scenario, controller, metric)."""
FIDELITY_METRICS = (
    ("mean_travel_time", "travel time, s"),
    ("mean_waiting_time", "waiting time, s"),
    ("arrived", "arrived"),
    ("mean_speed", "mean speed, m/s"),
    ("mean_time_loss", "time loss, s"),
)
"""Table columns: worker figure name and label (our info keys in :data:`OUR_FIGURES`)."""
OUR_FIGURES = {
    "mean_travel_time": "mean_travel_time",
    "mean_waiting_time": "mean_waiting_time",
    "arrived": "arrived_total",
    "mean_speed": "episode_mean_speed",
    "mean_time_loss": "mean_delay",
    "mean_depart_delay": "mean_depart_delay",
    "inserted": "inserted_total",
    "teleports": "teleports",
    "running_at_end": "on_network",
    "pending_at_end": "waiting_to_insert",
}
"""Worker figure name -> our final-step info key."""


# --- pure helpers ----------------------------------------------------------------------------
def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or ``None`` when either is missing or ``theirs`` is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return float(ours) / float(theirs)


def within(value: float | None, tolerance: float) -> bool | None:
    """Whether a ratio lies within ``1 ± tolerance`` (``None`` when the ratio is missing)."""
    if value is None or not math.isfinite(value):
        return None
    return abs(value - 1.0) <= tolerance + 1e-12


def speed_ratios(
    ours: Mapping[str, float], reference: float | None, batch_sizes: Sequence[int]
) -> dict[str, float | None]:
    """``ratio_single`` / ``ratio_b<B>``: our rate at every B over the reference's single env."""
    return {bench.ratio_key(b): ratio(ours.get(str(b)), reference) for b in batch_sizes}


def targets_met(
    values: Mapping[str, float | None],
    bounds: Mapping[str, float],
    incomparable: str | None = None,
) -> dict[str, Any]:
    """``{key: True/False/None}``: whether ``values[key] >= bound`` (``None``: not checked).

    A ratio to sumo-rl is not checked when ``incomparable`` says why it is not comparable
    (:func:`scripts.bench.reference_problem`); any figure is not checked when not measured.
    """
    checks = bench.check_targets(bounds, values, incomparable=incomparable)
    return {key: c["target_met"] for key, c in checks.items()}


def our_figures(info: Mapping[str, Any]) -> dict[str, Any]:
    """The worker's outcome figures from our final-step ``info`` (see :data:`OUR_FIGURES`).

    ``loaded`` (vehicles whose departure time has come) is ``inserted + pending``, the count
    SUMO's ``getLoadedNumber`` sums to when nothing is dropped (``--max-depart-delay -1``).
    """
    out: dict[str, Any] = {}
    for name, key in OUR_FIGURES.items():
        value = info.get(key)
        out[name] = None if value is None else float(value)
    for name in ("arrived", "inserted", "teleports", "running_at_end", "pending_at_end"):
        if out.get(name) is not None:
            out[name] = int(round(out[name]))
    if out.get("inserted") is not None and out.get("pending_at_end") is not None:
        out["loaded"] = out["inserted"] + out["pending_at_end"]
    if not out.get("arrived"):
        for name in ("mean_travel_time", "mean_waiting_time", "mean_time_loss"):
            out[name] = None
    return out


def fidelity_row(
    scenario: str,
    controller: str,
    ours: Mapping[str, Any],
    sumo: Mapping[str, Any],
    targets: Mapping[tuple[str, str], Mapping[str, float]] = FIDELITY_TARGETS,
) -> dict[str, Any]:
    """Side-by-side seed means of one run: per metric ours, SUMO, ratio and the target check.

    Returns:
        ``scenario``, ``controller``, ``metrics`` (per metric ``ours``, ``sumo``, ``ratio``,
        ``tolerance`` and ``pass``; the last two ``None`` without a target) and ``pass``
        (all targets met; ``None`` when the run has none).
    """
    bounds = targets.get((scenario, controller), {})
    metrics: dict[str, dict[str, Any]] = {}
    for name in (*(m for m, _ in FIDELITY_METRICS), "teleports", "inserted"):
        r = ratio(ours.get(name), sumo.get(name))
        tol = bounds.get(name)
        metrics[name] = {
            "ours": ours.get(name),
            "sumo": sumo.get(name),
            "ratio": r,
            "tolerance": tol,
            "pass": None if tol is None else bool(within(r, tol)),
        }
    checks = [m["pass"] for m in metrics.values() if m["tolerance"] is not None]
    return {
        "scenario": scenario,
        "controller": controller,
        "metrics": metrics,
        "pass": all(checks) if checks else None,
    }


def ttq_ratio(ours: Mapping[str, Any] | None, sumo: Mapping[str, Any] | None) -> dict[str, Any]:
    """sumo-rl's wall time to quality over ours.

    When only ours reached the threshold, sumo-rl's whole run bounds the ratio from below
    (``bound: "lower"``); when only sumo-rl did, ours bounds it from above.
    ``per_timestep_ratio`` compares wall seconds per PPO timestep over the whole runs
    (evaluations included), which does not depend on how many updates each side needed.
    """
    out: dict[str, Any] = {"ratio": None, "cpu_ratio": None, "bound": None}
    if not ours or not sumo:
        out["per_timestep_ratio"] = None
        return out
    per_step = [r["wall_s"] / r["timesteps"] if r.get("timesteps") else None for r in (sumo, ours)]
    out["per_timestep_ratio"] = ratio(*per_step)
    ours_hit, sumo_hit = ours.get("reached"), sumo.get("reached")
    if ours_hit and sumo_hit:
        out["ratio"] = ratio(sumo["wall_s_to_threshold"], ours["wall_s_to_threshold"])
        out["cpu_ratio"] = ratio(sumo["cpu_s_to_threshold"], ours["cpu_s_to_threshold"])
        out["bound"] = "exact"
    elif ours_hit:
        out["ratio"] = ratio(sumo["wall_s"], ours["wall_s_to_threshold"])
        out["cpu_ratio"] = ratio(sumo["cpu_s"], ours["cpu_s_to_threshold"])
        out["bound"] = "lower"
    elif sumo_hit:
        out["ratio"] = ratio(sumo["wall_s_to_threshold"], ours["wall_s"])
        out["cpu_ratio"] = ratio(sumo["cpu_s_to_threshold"], ours["cpu_s"])
        out["bound"] = "upper"
    return out


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


# --- running the sumo-rl worker --------------------------------------------------------------
def run_worker(
    config: Mapping[str, Any],
    settings: bench.Settings,
    timeout: float,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the sumo-rl worker with ``config`` (any mode) in its venv.

    Returns:
        The worker's JSON plus ``available: True``, or ``available: False`` and a ``reason``.
    """
    ref = _reference(str(config.get("scenario", "")))
    base = {"name": SUMO_RL_NAME, "config": dict(config)}
    try:
        python = bench.reference_python(ref, settings, log)
    except bench.ReferenceUnavailable as exc:
        return {**base, "available": False, "reason": str(exc)}
    return {**base, **bench.call_worker(python, ref.worker, config, timeout)}


# --- speed -----------------------------------------------------------------------------------
def measure_single(env_id: str, kwargs: Mapping[str, Any], settings: bench.Settings) -> dict:
    """Steps/s of ``gymnasium.make(env_id)`` timed by the worker's own loop (``time_steps``).

    Random valid actions are drawn before the timed loop and cycled through; episodes that end
    are reset inside it.
    """
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(settings.seed)
    actions = [env.action_space.sample() for _ in range(bench.ACTION_POOL_SINGLE)]

    def step(action: Any) -> bool:
        _, _, terminated, truncated, _ = env.step(action)
        return bool(terminated or truncated)

    first = [True]

    def reset() -> None:
        env.reset(seed=settings.seed if first[0] else None)
        first[0] = False

    out = steploop.time_steps(
        step, reset, actions, settings.seconds, settings.repeats, settings.warmup_s
    )
    out["adapter"] = type(env.unwrapped).__name__
    env.close()
    return out


def measure_ours(
    env_id: str,
    kwargs: Mapping[str, Any],
    num_envs: int,
    settings: bench.Settings,
    threads: int = 1,
) -> dict[str, Any]:
    """:func:`measure_single` for one env, else :func:`bench.measure_vector` on ``threads``.

    ``threads`` is the batched env's own argument: the threads that step its replicas.
    """
    if num_envs == 1:
        return measure_single(env_id, kwargs, settings)
    return bench.measure_vector(env_id, {**kwargs, "threads": threads}, num_envs, settings)


def speed_case(
    case: SpeedCase,
    settings: bench.Settings,
    log: Callable[[str], None] = print,
    threads: int = 1,
) -> dict[str, Any]:
    """Ours at every B and sumo-rl's single env on one scenario, with ratios and targets.

    ``threads`` steps our batched envs (B > 1) on that many threads; the CPU-time basis then
    counts the CPU seconds of all of them, so it stays a per-core comparison.
    """
    kwargs = dict(case.kwargs)
    detail: dict[str, dict[str, Any]] = {}
    reference: dict[str, Any] | None = None
    for b in settings.batch_sizes:
        log(f"[traffic {case.name}] ours: steps/s at B={b}")
        detail[str(b)] = measure_ours(case.env_id, kwargs, b, settings, threads)
        if b == 1 and settings.reference:
            # sumo-rl runs right after our single env, between our measurements
            log(f"[traffic {case.name}] sumo-rl: steps/s (worker speed mode)")
            reference = bench.run_reference(_reference(case.name), settings, log)
    if reference is None and settings.reference:
        reference = bench.run_reference(_reference(case.name), settings, log)
    ref_rate = ref_cpu = None
    if reference is not None and reference.get("available"):
        ref_rate = float(reference["steps_per_s"]["best"])
        ref_cpu = float(reference["steps_per_s"]["cpu_best"])
        env = gym.make(case.env_id, **kwargs)
        mismatches = sumo_reference.check_sumorl_params(env, reference.get("params", {}))
        sc = env.unwrapped.structure  # type: ignore[attr-defined]
        env.close()
        # sumo-rl enforces no maximum green; ours is set beyond the window, so none applies
        if sc.signals.max_green >= sc.end - sc.begin:
            mismatches = [m for m in mismatches if not m.startswith("max_green:")]
        reference["params_match"] = not mismatches
        reference["param_mismatches"] = mismatches
    ours = {b: d["best"] for b, d in detail.items()}
    cpu_ours = {b: d["cpu_best"] for b, d in detail.items()}
    result: dict[str, Any] = {
        "env_id": case.env_id,
        "kwargs": kwargs,
        "threads": threads,
        "ours_steps_per_s": ours,
        "ours_detail": detail,
        "reference_steps_per_s": ref_rate,
        **speed_ratios(ours, ref_rate, settings.batch_sizes),
    }
    result["cpu_time_basis"] = {
        "ours_steps_per_s": cpu_ours,
        "reference_steps_per_s": ref_cpu,
        **speed_ratios(cpu_ours, ref_cpu, settings.batch_sizes),
    }
    result["reference"] = reference
    result["rounds"] = []
    if ref_rate and settings.rounds > 0:
        result["rounds"] = bench.paired_rounds(
            case.name,
            _reference(case.name),
            settings,
            lambda b, one: measure_ours(case.env_id, kwargs, b, one, threads)["best"],
            log,
        )
    result["paired"] = bench.paired_medians(result["rounds"])
    result["targets"] = dict(case.targets)
    # a paired median, where there is one, is what its target is checked against; no ratio is
    # checked when sumo-rl did not run or ran on other parameters
    problem = bench.reference_problem(reference)
    checks = bench.check_targets(case.targets, result, result["paired"], problem)
    cpu_checks = bench.check_targets(case.targets, result["cpu_time_basis"], None, problem)
    for key, check in checks.items():
        check["cpu_time_basis"] = cpu_checks[key]
    result["target_checks"] = checks
    result["targets_met"] = {key: c["target_met"] for key, c in checks.items()}
    result["targets_met_cpu"] = {key: c["target_met"] for key, c in cpu_checks.items()}
    return result


# --- PPO time to quality ---------------------------------------------------------------------
def our_episode(env: Any, act: Callable[[Any], Any], seed: int) -> dict[str, Any]:
    """Run one episode of ``env`` from ``reset(seed=seed)``; figures of its last step."""
    obs, info = env.reset(seed=seed)
    while True:
        obs, _, terminated, truncated, info = env.step(act(obs))
        if terminated or truncated:
            return our_figures(info)


def our_baseline_runs(
    env_id: str, kwargs: Mapping[str, Any], controller: str, seeds: Sequence[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our ``controller`` baseline on ``seeds``, one episode each.

    Returns:
        ``controller``, ``seeds`` and ``per_seed`` figures; their ``mean`` and ``std``.
    """
    from envs.traffic.baselines import BASELINES

    env = gym.make(env_id, **kwargs)
    policy = BASELINES.get(controller)(env)
    per_seed = []
    for s in seeds:
        t0 = time.perf_counter()
        figures = our_episode(env, lambda obs: policy.predict(obs)[0], int(s))
        per_seed.append({**figures, "seed": int(s), "wall_s": time.perf_counter() - t0})
    env.close()
    numeric = [{k: v for k, v in r.items() if k != "seed"} for r in per_seed]
    runs = {"controller": controller, "seeds": list(seeds), "per_seed": per_seed}
    return runs, sumo_worker.aggregate(numeric)


def ours_time_to_quality(cfg: Mapping[str, Any], env_id: str, kwargs: Mapping[str, Any]) -> dict:
    """PPO on our env until an evaluation meets the worker's quality gate, by the worker's code.

    Runs :func:`scripts.bench_ref.ttq.time_to_quality`, the protocol of
    ``sumo_worker.ppo_time_to_quality``, with :func:`our_episode` as the evaluation (on the
    training env, which the next training chunk resets) and the worker's ``meets_quality``.
    """
    env = gym.make(env_id, **kwargs)
    sc = env.unwrapped.structure  # type: ignore[attr-defined]
    if "num_seconds" in cfg and float(cfg["num_seconds"]) != sc.end - sc.begin:
        raise ValueError(
            f"{env_id}: episodes last {sc.end - sc.begin} s, the config asks {cfg['num_seconds']}"
        )

    def evaluate(model: Any, seed: int) -> dict[str, Any]:
        return our_episode(env, lambda obs: model.predict(obs, deterministic=True)[0], seed)

    replicas = int(cfg.get("replicas", 1))
    if replicas > 1:
        rollout = (
            f"rollouts from our native SB3 VecEnv of {replicas} replicas, n_steps / {replicas} "
            "per replica (the same transitions per update); one env evaluates"
        )

        def make_vec(seed: int) -> Any:
            return VecMonitor(make_sb3_vec_env(env_id, replicas, seed=seed, **kwargs))

        result = ttq.time_to_quality(
            env, evaluate, sumo_worker.meets_quality, cfg, rollout, make_vec
        )
    else:
        rollout = "one env in a DummyVecEnv (n_envs=1), as the worker"
        result = ttq.time_to_quality(env, evaluate, sumo_worker.meets_quality, cfg, rollout)
    env.close()
    return {"env_id": env_id, "kwargs": dict(kwargs), **result}


def time_to_quality(
    settings: bench.Settings,
    max_wall_s: float,
    threshold_mode: str,
    seeds: Sequence[int] = (0, 1, 2),
    log: Callable[[str], None] = print,
    ppo_overrides: Mapping[str, Any] | None = None,
    max_timesteps: int | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    """Thresholds from max pressure on each simulator, then PPO to quality on both sides.

    ``replicas`` > 1 collects our side's rollouts from our batched env (the same transitions
    per PPO update; see :func:`scripts.bench_ref.ttq.time_to_quality`); sumo-rl runs one env.

    ``ppo_overrides`` (``eval_every`` or PPO keyword arguments of
    :func:`sumo_reference.ppo_config`) and ``max_timesteps`` apply to both sides alike.
    """
    log("[traffic ttq] ours: max-pressure mean travel time (threshold)")
    mp_ours, mp_ours_mean = our_baseline_runs(TTQ_ENV_ID, TTQ_KWARGS, "max_pressure", seeds)
    ours_mp = mp_ours_mean["mean"]["mean_travel_time"]
    sumo_mp = None
    mp_sumo: dict[str, Any] | None = None
    if settings.reference:
        log("[traffic ttq] sumo-rl: max-pressure mean travel time (threshold)")
        cfg = sumo_reference.fidelity_config(seeds, resco=())
        cfg["runs"] = [
            r
            for r in cfg["runs"]
            if r["scenario"] == "single-intersection" and r["controller"] == "max_pressure"
        ]
        mp_sumo = run_worker(cfg, settings, timeout=1800, log=log)
        if mp_sumo.get("available"):
            sumo_mp = mp_sumo["runs"][0]["mean"]["mean_travel_time"]
    thresholds = {"ours": ours_mp, "sumo": sumo_mp}
    if threshold_mode == "sumo":
        thresholds = {"ours": sumo_mp, "sumo": sumo_mp}
    overrides = dict(ppo_overrides or {})
    cfg_ours = sumo_reference.ppo_config(
        thresholds["ours"], max_wall_s=max_wall_s, seed=settings.seed, **overrides
    )
    if max_timesteps is not None:
        cfg_ours["max_timesteps"] = int(max_timesteps)
    result: dict[str, Any] = {
        "threshold_mode": threshold_mode,
        "thresholds": thresholds,
        "max_pressure": {
            "ours": {**mp_ours, **mp_ours_mean},
            "sumo": (mp_sumo or {}).get("runs", [None])[0] if mp_sumo else None,
        },
        "max_wall_s": max_wall_s,
        "target": TTQ_TARGET,
    }
    log(f"[traffic ttq] ours: PPO until mean travel time <= {_num(thresholds['ours'], '.2f')} s")
    result["ours"] = (
        ours_time_to_quality({**cfg_ours, "replicas": replicas}, TTQ_ENV_ID, TTQ_KWARGS)
        if thresholds["ours"] is not None
        else None
    )
    result["sumo"] = None
    if settings.reference and thresholds["sumo"] is not None:
        log(f"[traffic ttq] sumo-rl: PPO until mean travel time <= {thresholds['sumo']:.2f} s")
        cfg_sumo = sumo_reference.ppo_config(
            thresholds["sumo"], max_wall_s=max_wall_s, seed=settings.seed, **overrides
        )
        if max_timesteps is not None:
            cfg_sumo["max_timesteps"] = int(max_timesteps)
        run = run_worker(cfg_sumo, settings, timeout=max_wall_s + 900, log=log)
        result["sumo"] = run.get("ppo_time_to_quality") if run.get("available") else None
        result["sumo_worker"] = {k: v for k, v in run.items() if k != "ppo_time_to_quality"}
    result.update(ttq_ratio(result["ours"], result["sumo"]))
    result["target_met"] = ttq_target_met(result)
    result["reason"] = ttq_unchecked_reason(result, settings.reference)
    return result


def ttq_target_met(result: Mapping[str, Any]) -> bool | None:
    """Whether the time-to-quality ratio of ``result`` meets :data:`TTQ_TARGET`.

    A lower bound (only ours reached the threshold) that meets it does; an upper bound (only
    sumo-rl reached it, ours ran out of time) never does, whatever its value.
    """
    if result["ratio"] is None:
        return None
    return result["bound"] != "upper" and bool(result["ratio"] >= TTQ_TARGET)


def ttq_unchecked_reason(result: Mapping[str, Any], reference: bool) -> str | None:
    """Why the time-to-quality target of ``result`` is not checked (``None``: it is).

    Args:
        result: :func:`time_to_quality`'s result (``ratio``, ``ours``, ``sumo``).
        reference: whether sumo-rl was asked to run (no ``--no-reference``).
    """
    if result.get("ratio") is not None:
        return None
    if not reference:
        return "reference unavailable: --no-reference"
    ours, sumo = result.get("ours"), result.get("sumo")
    if not ours or not sumo:
        return "reference unavailable"
    if not ours.get("reached") and not sumo.get("reached"):
        return "neither side reached the threshold within the wall cap"
    return "not measured"


# --- fidelity --------------------------------------------------------------------------------
def our_scenario(spec: Mapping[str, Any]) -> Any:
    """Our import of the worker's scenario files and window, set up like sumo-rl's SUMO."""
    from envs.traffic.scenario import SignalSettings
    from envs.traffic.sumo_import import load_sumo

    return load_sumo(
        spec["net_file"],
        [p for p in str(spec["route_file"]).split(",") if p],
        begin=float(spec["begin"]),
        end=float(spec["end"]),
        signals=SignalSettings(**LIKE_SUMO_RL),
        name=str(spec["name"]),
        teleport_time=TELEPORT_TIME,
    )


def our_fidelity_run(spec: Mapping[str, Any], controller: str, seeds: Sequence[int]) -> dict:
    """Our ``controller`` on the worker's scenario ``spec`` for ``seeds``: figures and means."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sc = our_scenario(spec)
    load_s = time.perf_counter() - t0
    env_id = "lepton/TrafficSignal-v0"
    runs, agg = our_baseline_runs(env_id, {"scenario": sc}, controller, seeds)
    return {
        **runs,
        **agg,
        "signals": len(sc.controlled_signals),
        "window": [sc.begin, sc.end],
        "teleport_time": sc.teleport_time,
        "signal_settings": dataclasses.asdict(sc.signals),
        "import_s": load_s,
        "import_warnings": sorted({str(w.message) for w in caught}),
    }


def fidelity(
    settings: bench.Settings,
    seeds: Sequence[int],
    resco: Sequence[str],
    log: Callable[[str], None] = print,
    reference_json: Path | None = None,
) -> dict[str, Any]:
    """Run the SUMO side (worker ``fidelity`` mode) and ours on every run; build the rows."""
    config = sumo_reference.fidelity_config(seeds, resco)
    if reference_json is not None:
        log(f"[traffic-fidelity] SUMO side read from {reference_json}")
        worker = json.loads(Path(reference_json).read_text())
        worker.setdefault("available", True)
        worker["read_from"] = str(reference_json)
    else:
        log(f"[traffic-fidelity] SUMO side: {len(config['runs'])} runs x {len(seeds)} seeds")
        worker = run_worker(config, settings, timeout=7200, log=log)
    out: dict[str, Any] = {"config": config, "seeds": list(seeds), "rows": [], "sumo_checks": []}
    if not worker.get("available"):
        out["sumo_worker"] = worker
        out["target_checks"] = fidelity_checks(config, [], unavailable="reference unavailable")
        out["all_targets_met"] = None
        return out
    runs = worker["runs"]
    out["sumo_worker"] = {k: v for k, v in worker.items() if k != "runs"}
    fixed = {
        (r["scenario"]["name"], r["driver"]): r for r in runs if r["controller"] == "fixed_time"
    }
    for r in runs:
        name = r["scenario"]["name"]
        if r["driver"] != "sumo_rl":
            # plain libsumo against sumo-rl's fixed time: both SUMO, a check on sumo-rl itself
            other = fixed.get((name, "sumo_rl"))
            if other is not None:
                out["sumo_checks"].append(
                    {
                        "scenario": name,
                        "libsumo": r["mean"],
                        "sumo_rl": other["mean"],
                        "travel_time_ratio": ratio(
                            r["mean"]["mean_travel_time"], other["mean"]["mean_travel_time"]
                        ),
                        "arrived_ratio": ratio(r["mean"]["arrived"], other["mean"]["arrived"]),
                    }
                )
            continue
        log(f"[traffic-fidelity] ours: {name} {r['controller']}")
        ours = our_fidelity_run(r["scenario"], r["controller"], r["seeds"])
        row = fidelity_row(name, r["controller"], ours["mean"], r["mean"])
        row.update(
            window=[r["scenario"]["begin"], r["scenario"]["end"]],
            signals={"ours": ours["signals"], "sumo": r["signals"]},
            teleport_time={
                "ours": ours["teleport_time"],
                "sumo": r["per_seed"][0]["sumo_options"].get("time_to_teleport"),
            },
            ours=ours,
            sumo={k: r[k] for k in ("mean", "std", "per_seed", "timing")},
        )
        out["rows"].append(row)
    checks = [row["pass"] for row in out["rows"] if row["pass"] is not None]
    out["all_targets_met"] = all(checks) if checks else None
    out["target_checks"] = fidelity_checks(config, out["rows"])
    return out


def fidelity_checks(
    config: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    targets: Mapping[tuple[str, str], Mapping[str, float]] = FIDELITY_TARGETS,
    unavailable: str = "not run",
) -> list[dict[str, Any]]:
    """One entry per fidelity target of a sumo-rl run of ``config``, checked on its row.

    Returns:
        ``scenario``, ``controller``, ``metric``, ``tolerance``, ``ratio``, ``target_met``
        (the row's ``pass``; ``None``: not checked) and ``reason`` (``unavailable`` for a run
        without a row; ``None`` when checked).
    """
    planned = {(r["scenario"], r["controller"]) for r in config["runs"] if r["driver"] == "sumo_rl"}
    by_run = {(r["scenario"], r["controller"]): r for r in rows}
    out = []
    for (scenario, controller), bounds in targets.items():
        if (scenario, controller) not in planned:
            continue
        row = by_run.get((scenario, controller))
        for metric, tolerance in bounds.items():
            m = row["metrics"][metric] if row is not None else None
            out.append(
                {
                    "scenario": scenario,
                    "controller": controller,
                    "metric": metric,
                    "tolerance": tolerance,
                    "ratio": None if m is None else m["ratio"],
                    "target_met": None if m is None else m["pass"],
                    "reason": unavailable if m is None else None,
                }
            )
    return out


def format_fidelity(result: Mapping[str, Any]) -> str:
    """Markdown table of the fidelity rows (``ours / SUMO (ratio)`` per metric) and checks."""
    rows = result.get("rows", [])
    if not rows:
        worker = result.get("sumo_worker", {})
        lines = [f"fidelity: SUMO side unavailable: {worker.get('reason', 'no runs')}"]
        for c in result.get("target_checks", []):
            lines.append(
                f"target {c['scenario']} {c['controller']} {c['metric']} ours / SUMO within "
                f"1 ± {c['tolerance']:g}: {_num(c['ratio'], '.3f')} "
                f"({bench.target_status(c)})"
            )
        return "\n".join(lines)
    head = ["scenario", "controller", *(label for _, label in FIDELITY_METRICS)]
    head += ["teleports", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [row["scenario"], row["controller"]]
        for name, _ in FIDELITY_METRICS:
            m = row["metrics"][name]
            fmt = ",.0f" if name == "arrived" else ".2f"
            mark = "" if m["pass"] is None else (" ✓" if m["pass"] else " ✗")
            cells.append(
                f"{_num(m['ours'], fmt)} / {_num(m['sumo'], fmt)} ({_num(m['ratio'], '.3f')}){mark}"
            )
        t = row["metrics"]["teleports"]
        cells.append(f"{_num(t['ours'], '.0f')} / {_num(t['sumo'], '.0f')}")
        cells.append("—" if row["pass"] is None else ("pass" if row["pass"] else "FAIL"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: ours / SUMO (ours / SUMO), seed means; ✓/✗ where a target applies. Targets: "
        + "; ".join(
            f"{s} {c}: "
            + ", ".join(f"{m.replace('mean_', '')} within {t:.0%}" for m, t in b.items())
            for (s, c), b in FIDELITY_TARGETS.items()
        ),
        f"Both sides: teleporting disabled (ours teleport_time={TELEPORT_TIME:g}, SUMO "
        "--time-to-teleport -1), --max-depart-delay -1, delta_time 5 s, yellow 2 s, min green "
        f"5 s, no max green (ours {UNENFORCED_MAX_GREEN:g} s); seeds {result.get('seeds')}.",
    ]
    for check in result.get("sumo_checks", []):
        lines.append(
            f"SUMO check {check['scenario']} fixed time, plain libsumo / sumo-rl: travel time "
            f"{_num(check['travel_time_ratio'], '.3f')}, arrived {_num(check['arrived_ratio'], '.3f')}"
        )
    failed = [
        f"{r['scenario']} {r['controller']} {name} ratio {_num(m['ratio'], '.3f')}"
        for r in rows
        for name, m in r["metrics"].items()
        if m["pass"] is False
    ]
    if failed:
        lines.append("MISSED: " + "; ".join(failed))
    return "\n".join(lines)


# --- report ----------------------------------------------------------------------------------
def format_speed(speed: Mapping[str, Any], sizes: Sequence[int]) -> str:
    """Markdown table of the speed cases (wall-clock and CPU-time rates) and target lines."""
    head = ["scenario", "basis", *(f"ours B={b}" for b in sizes), "sumo-rl"]
    head += [bench.ratio_key(b) for b in sizes]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, w in speed.items():
        for basis, src in (("wall", w), ("CPU", w["cpu_time_basis"])):
            cells = [name, basis, *(_num(src["ours_steps_per_s"][str(b)], ",.0f") for b in sizes)]
            cells.append(_num(src["reference_steps_per_s"], ",.1f"))
            cells += [_num(src[bench.ratio_key(b)], ",.1f") for b in sizes]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for name, w in speed.items():
        if w.get("threads", 1) > 1:
            lines.append(f"{name}: our batched envs stepped on {w['threads']} threads")
    for name, w in speed.items():
        ref = w.get("reference")
        if ref is None:
            continue
        if ref.get("available"):
            same = "yes" if ref.get("params_match") else "NO: " + "; ".join(ref["param_mismatches"])
            lines.append(f"{name}: sumo-rl params same as ours: {same}")
        else:
            lines.append(f"{name}: sumo-rl unavailable: {ref.get('reason')}")
    for name, w in speed.items():
        rounds, paired = w.get("rounds", []), w.get("paired", {})
        for key in paired:
            each = ", ".join(format(r["ratios"][key], ".1f") for r in rounds)
            lines.append(
                f"{name} {key} over {len(rounds)} paired rounds: median {paired[key]:,.1f} ({each})"
            )
        for key, check in w["target_checks"].items():
            basis = " (paired median)" if check["basis"] == "paired median" else ""
            line = (
                f"target {name} {key} >= {check['bound']:g}: {_num(check['value'], ',.1f')}"
                f"{basis} ({bench.target_status(check)})"
            )
            cpu = check["cpu_time_basis"]
            if cpu["target_met"] is not None:
                line += f"; per CPU second {cpu['value']:,.1f} ({bench.target_status(cpu)})"
            elif cpu["value"] is not None:
                line += f"; per CPU second {cpu['value']:,.1f}"
            lines.append(line)
    return "\n".join(lines)


def format_ttq(ttq: Mapping[str, Any]) -> str:
    """Lines of the time-to-quality comparison."""
    lines = [
        f"PPO time to quality on single-intersection (threshold: max pressure's mean travel time, "
        f"{ttq['threshold_mode']} simulator; ours {_num(ttq['thresholds']['ours'], '.2f')} s, "
        f"SUMO {_num(ttq['thresholds']['sumo'], '.2f')} s; cap {ttq['max_wall_s']:g} s per side)",
        "",
        "| side | reached | wall s to quality | CPU s to quality | timesteps | evaluations "
        "| last eval travel time / arrived |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in ("ours", "sumo"):
        r = ttq.get(side)
        if not r:
            lines.append(f"| {side} | — | — | — | — | — | — |")
            continue
        last = r["evals"][-1] if r["evals"] else {}
        lines.append(
            f"| {side} | {'yes' if r['reached'] else 'no'} | "
            f"{_num(r['wall_s_to_threshold'], '.1f')} (run {r['wall_s']:.1f}) | "
            f"{_num(r['cpu_s_to_threshold'], '.1f')} | {r['timesteps']} | {len(r['evals'])} | "
            f"{_num(last.get('mean_travel_time'), '.2f')} / {_num(last.get('arrived'), '.0f')} "
            f"of {_num(last.get('loaded'), '.0f')} |"
        )
    bound = {"lower": ">= ", "upper": "<= ", "exact": ""}.get(ttq.get("bound") or "", "")
    status = bench.target_status({"target_met": None, "reason": "not measured", **ttq})
    lines.append(
        f"\ntarget ttq ratio (sumo-rl wall / ours) >= {ttq['target']:g}: "
        f"{bound}{_num(ttq.get('ratio'), '.2f')} ({status}); per CPU second "
        f"{bound}{_num(ttq.get('cpu_ratio'), '.2f')}; wall per PPO timestep over the whole "
        f"runs {_num(ttq.get('per_timestep_ratio'), '.2f')}"
    )
    return "\n".join(lines)


def format_report(report: Mapping[str, Any]) -> str:
    """The text report of either command."""
    parts = []
    meta = report["metadata"]
    if report.get("speed"):
        parts.append(format_speed(report["speed"], report["settings"]["batch_sizes"]))
        parts.append(
            f"steps/s: best of {meta['repeats']} x {meta['seconds_per_measurement']} s; "
            f"{meta['cpus_usable']} usable CPUs; load {meta.get('load_average_start')} -> "
            f"{meta.get('load_average_end')}; git {meta['git']}"
        )
    if report.get("ttq"):
        parts.append(format_ttq(report["ttq"]))
    if report.get("fidelity"):
        parts.append(format_fidelity(report["fidelity"]))
    parts.append(bench.format_targets_summary(bench.targets_summary(target_checks(report))))
    return "\n\n".join(parts)


def target_checks(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every target of a report: the speed ratios (wall-clock basis), time to quality, fidelity."""
    out: list[Mapping[str, Any]] = [
        c for w in (report.get("speed") or {}).values() for c in w["target_checks"].values()
    ]
    if report.get("ttq"):
        out.append(report["ttq"])
    out += (report.get("fidelity") or {}).get("target_checks", [])
    return out


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Run ``args.command`` and return its report."""
    quick = args.quick
    settings = bench.Settings(
        seconds=0.3 if quick and args.seconds is None else (args.seconds or 2.0),
        repeats=1 if quick and args.repeats is None else (args.repeats or 3),
        warmup_s=0.2 if quick and args.warmup is None else (args.warmup or 0.5),
        seed=args.seed,
        reference=not args.no_reference,
        reference_python=args.reference_python,
        ppo=None,
        rounds=args.rounds,
    )
    report: dict[str, Any] = {
        "family": args.command,
        "metadata": bench.metadata(settings),
        "settings": dataclasses.asdict(settings),
        "like_sumo_rl": {
            "signals": dict(LIKE_SUMO_RL),
            "teleport_time": TELEPORT_TIME,
            "sumo_options": sumo_worker.SUMORL_SUMO_OPTIONS,
        },
    }
    if args.command == "traffic":
        report["speed"] = {}
        cases = [c for c in SPEED_CASES if not args.scenario or c.name in args.scenario]
        for case in [] if args.no_speed else cases:
            report["speed"][case.name] = speed_case(case, settings, log, args.threads)
        if not args.no_ttq:
            cap = args.ttq_max_wall if args.ttq_max_wall else (20.0 if quick else 300.0)
            report["ttq"] = time_to_quality(
                settings,
                cap,
                args.ttq_threshold,
                seeds=(0,) if quick else (0, 1, 2),
                log=log,
                replicas=args.ttq_replicas,
            )
    else:
        seeds = (0,) if quick else tuple(args.seeds)
        resco: tuple[str, ...] = ("grid4x4",) if quick else sumo_reference.RESCO
        if args.scenario:
            resco = tuple(n for n in resco if n in args.scenario)
        report["fidelity"] = fidelity(settings, seeds, resco, log, args.reference_json)
    if hasattr(os, "getloadavg"):
        report["metadata"]["load_average_end"] = list(os.getloadavg())
    report["targets_summary"] = bench.targets_summary(target_checks(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``lepton-bench traffic`` / ``lepton-bench traffic-fidelity``."""
    parser = argparse.ArgumentParser(
        prog="lepton-bench",
        description="Traffic against sumo-rl 1.4.5 on SUMO: decision rate and PPO time to "
        "quality (traffic), controller outcomes side by side (traffic-fidelity).",
    )
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument(
        "--out", type=Path, help="JSON report (default: .bench/<command>__<git>__<time>.json)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny budgets: 1 x 0.3 s timing, 20 s PPO cap, seed 0, fidelity on "
        "single-intersection and grid4x4 only",
    )
    parser.add_argument("--seconds", type=float, help="wall budget per timed run, s (default 2)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 3)")
    parser.add_argument("--warmup", type=float, help="untimed warm-up run, s (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="traffic: paired rounds of ours at every B and sumo-rl, one window each; the "
        "median ratio over the rounds is what a target is checked against (default 0: none)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="traffic: threads that step our batched envs (the env's threads; default 1, "
        "one core like sumo-rl)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        help="only this scenario (repeatable): traffic: single-intersection, grid4x4; "
        "traffic-fidelity: RESCO networks besides single-intersection and grid4x4",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip sumo-rl (ours only)")
    parser.add_argument("--reference-python", help="interpreter with sumo-rl installed")
    parser.add_argument("--no-speed", action="store_true", help="traffic: skip the speed table")
    parser.add_argument("--no-ttq", action="store_true", help="traffic: skip PPO time to quality")
    parser.add_argument(
        "--ttq-max-wall", type=float, help="traffic: PPO wall cap per side, s (default 300)"
    )
    parser.add_argument(
        "--ttq-replicas",
        type=int,
        default=8,
        help="traffic: our side's rollout replicas (1: one env like sumo-rl; default 8)",
    )
    parser.add_argument(
        "--ttq-threshold",
        choices=("own", "sumo"),
        default="own",
        help="traffic: each side beats max pressure on its own simulator (own) or SUMO's (sumo)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="traffic-fidelity: seeds"
    )
    parser.add_argument(
        "--reference-json",
        type=Path,
        help="traffic-fidelity: reuse a saved worker fidelity result instead of running SUMO",
    )
    args = parser.parse_args(argv)
    for dest in ("seconds", "repeats", "warmup", "seed", "rounds"):
        value = getattr(args, dest)
        option, allowed, text = bench.LIMITS[dest]
        if value is not None and not (math.isfinite(value) and allowed(value)):
            parser.error(f"{option}: must be {text}, got {value:g}")
    if args.threads < 1:
        parser.error(f"--threads: must be >= 1, got {args.threads}")
    if args.out is not None:
        try:  # before the long run, not after it
            bench.writable_out(args.out)
        except ValueError as exc:
            parser.error(str(exc))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run(args, log)
    out = args.out
    if out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        git = report["metadata"].get("git") or "nogit"
        out = bench.ROOT / ".bench" / f"{args.command}__{git}__{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    print(format_report(report))
    print(f"\nJSON: {out}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
