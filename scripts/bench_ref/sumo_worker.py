"""Run sumo-rl 1.4.5 on SUMO: decision rate, controller outcomes, PPO time to quality.

Run by ``scripts.bench`` as ``python sumo_worker.py '<json config>'`` with the interpreter of
``.bench/venvs/sumorl`` (sumo-rl 1.4.5, pettingzoo 1.24.3, eclipse-sumo/libsumo 1.28.0,
stable-baselines3 and torch). It imports nothing from Lepton Gym and prints one JSON object as
the last line of stdout. ``SUMO_HOME`` is taken from the ``eclipse-sumo`` wheel and
``LIBSUMO_AS_TRACI=1`` is set before sumo-rl is imported, so SUMO runs in-process via libsumo
(which runs one simulation per process: environments are built and closed one at a time).

Scenarios are the ones shipped in sumo-rl's wheel: ``single-intersection`` (window
``[0, 3600)`` by default) and the RESCO networks ``grid4x4``, ``arterial4x4``, ``cologne1``,
``cologne3``, ``cologne8``, ``ingolstadt1``, ``ingolstadt7``, ``ingolstadt21`` (window read from
their ``.sumocfg``). The worker finds them through ``importlib`` and reports the folder as
``nets_dir`` in every result. A scenario is a name or a mapping
``{"name", "net_file", "route_file", "begin", "end"}``; keys given override the catalogue.

Config keys shared by every mode: ``mode`` (``speed`` when absent, ``info``, ``fidelity`` or
``ppo_time_to_quality``), ``seed``, and sumo-rl's ``delta_time`` (5), ``yellow_time`` (2),
``min_green`` (5). Every result holds ``nets_dir``, ``sumo_home``, ``versions`` and ``params``
(the timings, the SUMO options sumo-rl passes, and ``max_green_enforced: false``: sumo-rl 1.4.5
ignores ``max_green``). ``info`` adds ``scenarios``, the catalogue with files and windows.

``speed``: ``seconds``, ``repeats``, ``warmup_s``, ``action_pool`` (64: random actions drawn
beforehand and cycled through; the deadline is checked once per pass), ``reset_repeats`` (3:
``reset()`` calls timed apart, median reported as ``reset_s``) and ``cases``, a list of
``{"scenario", "api"}`` where ``api`` is ``single`` (``SumoEnvironment(single_agent=True)``),
``env`` (multi-agent ``SumoEnvironment``, one step is one decision of every signal) or
``parallel`` (sumo-rl's PettingZoo ``parallel_env``). Random valid actions are drawn before the
timed loop and episodes are reset inside it. Environments keep sumo-rl's defaults otherwise
(system and per-agent info on). Without ``cases`` the ``env_id`` of the bench's standard
config names one scenario (``single`` API for ``single-intersection``, else ``env``); with
neither, single-intersection and grid4x4 (``env`` and ``parallel``) are timed. The first case's
rates are also the top-level ``steps_per_s`` and its scenario, window and signal count go into
``params``, as the bench expects of a reference worker.

``fidelity``: ``runs``, a list of ``{"scenario", "controller", "driver", "seeds"}`` (top-level
keys are defaults for every run). ``controller`` is ``fixed_time`` (the network's own programs,
sumo-rl's ``fixed_ts=True``) or ``max_pressure``; ``driver`` is ``sumo_rl`` or ``libsumo``
(plain SUMO without sumo-rl, fixed time only, with the options sumo-rl passes). Each seed is
one simulation of ``[begin, end)`` with SUMO's tripinfo output; per seed and averaged over seeds
the result holds ``arrived``, ``inserted``, ``mean_travel_time``, ``mean_waiting_time``,
``mean_time_loss``, ``mean_depart_delay`` (tripinfo ``duration``, ``waitingTime``, ``timeLoss``,
``departDelay`` of the vehicles that arrived), ``mean_speed`` (sum of vehicle speeds over every
simulated second divided by the vehicle-seconds, m/s) and ``teleports``.

Max pressure, every ``delta_time``: a signal whose minimum green (``yellow_time + min_green``
since its last change, sumo-rl's own gate) has elapsed takes the green phase of sumo-rl's
``green_phases`` of highest pressure, the sum over the phase's distinct green ``(in, out)`` lane
pairs (state ``G`` or ``g``) of vehicles on ``in`` minus vehicles on ``out``; the current phase
is kept on ties, and a signal still in its minimum green keeps its phase.

``ppo_time_to_quality``: SB3 PPO (``MlpPolicy``, ``ppo`` holds its keyword arguments) on a
single-agent scenario with sumo-rl's default observation and ``diff-waiting-time`` reward.
Episodes last ``num_seconds`` (3600); training episode ``k`` runs with SUMO seed
``seed + k``. Every ``eval_every`` timesteps (and before training when ``eval_at_start``) one
deterministic episode with SUMO seed ``eval_seed`` measures the mean travel time of the arrived
vehicles; training stops when it is ``<= threshold`` with at least ``min_arrived_fraction``
(0.9) of the loaded vehicles arrived, or after ``max_wall_s`` seconds (or ``max_timesteps``).
The arrival gate matters: an untrained policy that keeps one approach green lets only that
approach's vehicles arrive, with short trips. The evaluation runs on the training environment's simulator, so the
training episode in progress is abandoned (choose ``eval_every`` as a multiple of the episode
length to avoid it). Wall times include evaluations; ``cpu_s`` is this process's CPU time
(less disturbed by other jobs on a shared machine).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__:  # imported from the project (tests)
    from . import steploop, ttq
else:  # run as a script in its reference venv: the sibling modules are on sys.path
    import steploop
    import ttq

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
"""RESCO networks shipped with sumo-rl (``nets/RESCO/<name>/<name>.sumocfg``)."""
SINGLE = "single-intersection"
SINGLE_WINDOW = (0.0, 3600.0)
"""Default window of ``single-intersection`` (its ``.sumocfg`` runs to 100000 s)."""
SIGNAL_DEFAULTS = {"delta_time": 5, "yellow_time": 2, "min_green": 5}
"""sumo-rl's decision interval, yellow time and minimum green, s."""
SUMORL_SUMO_OPTIONS = {"max_depart_delay": -1, "waiting_time_memory": 1000, "time_to_teleport": -1}
"""Options sumo-rl's ``SumoEnvironment`` passes to SUMO by default (besides ``--seed``)."""
METRICS = (
    "arrived",
    "inserted",
    "loaded",
    "mean_travel_time",
    "mean_waiting_time",
    "mean_time_loss",
    "mean_depart_delay",
    "mean_route_length",
    "mean_speed",
    "vehicle_seconds",
    "teleports",
    "running_at_end",
    "pending_at_end",
)
"""Outcome figures of one fidelity simulation (see :func:`run_fidelity_seed`)."""


# --- pure helpers (no SUMO needed) ---------------------------------------------------------
def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def summarize_tripinfo(source: str | Path) -> dict[str, Any]:
    """Means of SUMO's tripinfo output over the vehicles that arrived.

    Args:
        source: path of a ``--tripinfo-output`` file.

    Returns:
        ``arrived`` and ``mean_travel_time`` (``duration``), ``mean_waiting_time``
        (``waitingTime``), ``mean_time_loss`` (``timeLoss``), ``mean_depart_delay``
        (``departDelay``) and ``mean_route_length`` (``routeLength``); means are ``None`` when
        no vehicle arrived. Unfinished trips (``arrival="-1"``, written only with
        ``--tripinfo-output.write-unfinished``) are left out.
    """
    fields = {
        "mean_travel_time": "duration",
        "mean_waiting_time": "waitingTime",
        "mean_time_loss": "timeLoss",
        "mean_depart_delay": "departDelay",
        "mean_route_length": "routeLength",
    }
    values: dict[str, list[float]] = {name: [] for name in fields}
    arrived = 0
    for _, elem in ET.iterparse(str(source)):
        if elem.tag != "tripinfo":
            continue
        if float(elem.get("arrival", "0")) < 0:
            elem.clear()
            continue
        arrived += 1
        for name, attr in fields.items():
            values[name].append(float(elem.get(attr, "nan")))
        elem.clear()
    return {"arrived": arrived, **{name: _mean(v) for name, v in values.items()}}


def read_sumocfg(path: str | Path) -> dict[str, Any]:
    """Net file, route files and time window of a SUMO configuration file.

    Returns:
        ``net_file`` and ``route_files`` (resolved against the file's folder), ``begin`` and
        ``end`` (s; SUMO's defaults 0 and ``None`` when absent).
    """
    path = Path(path)
    root = ET.parse(path).getroot()

    def value(tag: str) -> str | None:
        elem = root.find(f".//{tag}")
        return None if elem is None else elem.get("value")

    net = value("net-file")
    routes = [r.strip() for r in (value("route-files") or "").split(",") if r.strip()]
    begin, end = value("begin"), value("end")
    return {
        "net_file": str(path.parent / net) if net else None,
        "route_files": [str(path.parent / r) for r in routes],
        "begin": float(begin) if begin is not None else 0.0,
        "end": float(end) if end is not None else None,
    }


def green_pairs(state: str, links: Sequence[Sequence[Sequence[str]]]) -> list[tuple[str, str]]:
    """Distinct ``(in lane, out lane)`` pairs of the links green (``G``/``g``) in ``state``.

    Args:
        state: a SUMO signal state, one character per link index.
        links: ``trafficlight.getControlledLinks``: per link index, ``(in, out, via)`` tuples.
    """
    pairs: dict[tuple[str, str], None] = {}
    for index, char in enumerate(state):
        if char in "Gg" and index < len(links):
            for link in links[index]:
                pairs[(link[0], link[1])] = None
    return list(pairs)


def pressure(pairs: Iterable[tuple[str, str]], counts: Mapping[str, int]) -> int:
    """Sum over ``(in, out)`` pairs of vehicles on ``in`` minus vehicles on ``out``."""
    return sum(counts.get(a, 0) - counts.get(b, 0) for a, b in pairs)


def choose_phase(pressures: Sequence[float], current: int) -> int:
    """Index of the highest pressure; ``current`` when it ties for the highest."""
    best = max(pressures)
    if 0 <= current < len(pressures) and pressures[current] >= best:
        return current
    return next(i for i, p in enumerate(pressures) if p >= best)


def max_pressure_action(
    phase_pairs: Sequence[Sequence[tuple[str, str]]],
    counts: Mapping[str, int],
    current: int,
    ready: bool,
) -> int:
    """Max-pressure choice for one signal (``current`` while its minimum green runs)."""
    if not ready or not phase_pairs:
        return current
    return choose_phase([pressure(p, counts) for p in phase_pairs], current)


def meets_quality(
    figures: Mapping[str, Any], threshold: float | None, min_arrived_fraction: float
) -> bool:
    """Whether an evaluation reached the target travel time with enough vehicles through.

    Args:
        figures: ``mean_travel_time``, ``arrived`` and ``loaded`` of one evaluation episode.
        threshold: target mean travel time, s (``None``: never met).
        min_arrived_fraction: smallest ``arrived / loaded`` that counts; a policy that holds
            one approach red forever has short trips for the vehicles that do arrive.
    """
    value = figures.get("mean_travel_time")
    if threshold is None or value is None or value > threshold:
        return False
    loaded = figures.get("loaded") or 0
    return loaded > 0 and figures.get("arrived", 0) / loaded >= min_arrived_fraction


def aggregate(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean and sample standard deviation of every numeric figure over seeds."""
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for key in per_seed[0] if per_seed else ():
        values = [float(r[key]) for r in per_seed if isinstance(r.get(key), int | float)]
        mean[key] = _mean(values)
        std[key] = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": mean, "std": std}


# --- SUMO and sumo-rl -----------------------------------------------------------------------
def nets_dir() -> Path:
    """sumo-rl's ``nets`` folder, found without importing sumo-rl (which needs SUMO_HOME)."""
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sumo_rl is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations))) / "nets"


def prepare_sumo() -> str:
    """Point ``SUMO_HOME`` at the eclipse-sumo wheel and select libsumo; return SUMO_HOME."""
    if "SUMO_HOME" not in os.environ:
        import sumo

        os.environ["SUMO_HOME"] = sumo.SUMO_HOME
    os.environ["LIBSUMO_AS_TRACI"] = "1"
    return os.environ["SUMO_HOME"]


def resolve_scenario(spec: str | Mapping[str, Any], nets: Path) -> dict[str, Any]:
    """Net file, route file and ``[begin, end)`` window of a scenario name or mapping."""
    given = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = given.get("name")
    base: dict[str, Any] = {}
    if name == SINGLE:
        folder = nets / SINGLE
        base = {
            "net_file": str(folder / f"{SINGLE}.net.xml"),
            "route_file": str(folder / f"{SINGLE}.rou.xml"),
            "begin": SINGLE_WINDOW[0],
            "end": SINGLE_WINDOW[1],
        }
    elif name in RESCO:
        cfg = read_sumocfg(nets / "RESCO" / name / f"{name}.sumocfg")
        base = {
            "net_file": cfg["net_file"],
            "route_file": ",".join(cfg["route_files"]),
            "begin": cfg["begin"],
            "end": cfg["end"],
        }
    elif "net_file" not in given:
        known = ", ".join((SINGLE, *RESCO))
        raise ValueError(f"scenario: unknown {name!r}; known: {known} (or give net_file)")
    out = {**base, **given}
    out["begin"], out["end"] = float(out["begin"]), float(out["end"])
    if not out["end"] > out["begin"]:
        raise ValueError(f"scenario {name!r}: end {out['end']} must be > begin {out['begin']}")
    return out


def _whole(x: float) -> int:
    if x != int(x):
        raise ValueError(f"sumo-rl needs whole seconds, got {x}")
    return int(x)


def make_sumo_env(scenario: Mapping[str, Any], cfg: Mapping[str, Any], **overrides: Any) -> Any:
    """sumo-rl's ``SumoEnvironment`` on ``scenario`` with the config's signal timings."""
    from sumo_rl import SumoEnvironment

    kwargs = {
        "net_file": scenario["net_file"],
        "route_file": scenario["route_file"],
        "begin_time": _whole(scenario["begin"]),
        "num_seconds": _whole(scenario["end"] - scenario["begin"]),
        "use_gui": False,
        "sumo_warnings": False,
        **{k: int(cfg.get(k, v)) for k, v in SIGNAL_DEFAULTS.items()},
        **overrides,
    }
    return SumoEnvironment(**kwargs)


class Probe:
    """Per-second figures of a running simulation (sampled after every simulation step)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.speed_sum = 0.0
        self.vehicle_seconds = 0
        self.inserted = 0
        self.loaded = 0
        self.arrived = 0
        self.teleports = 0
        self.seconds = 0

    def sample(self) -> None:
        """Add the state after the latest simulation step."""
        sim = self.sim
        ids = sim.vehicle.getIDList()
        self.speed_sum += math.fsum(map(sim.vehicle.getSpeed, ids))
        self.vehicle_seconds += len(ids)
        self.inserted += sim.simulation.getDepartedNumber()
        self.loaded += sim.simulation.getLoadedNumber()
        self.arrived += sim.simulation.getArrivedNumber()
        self.teleports += sim.simulation.getStartingTeleportNumber()
        self.seconds += 1

    def figures(self) -> dict[str, Any]:
        """Totals so far and the vehicle-count-weighted mean speed, m/s."""
        sim = self.sim
        return {
            "inserted": self.inserted,
            "loaded": self.loaded,
            "arrived_counter": self.arrived,
            "teleports": self.teleports,
            "vehicle_seconds": self.vehicle_seconds,
            "mean_speed": self.speed_sum / self.vehicle_seconds if self.vehicle_seconds else None,
            "simulated_seconds": self.seconds,
            "running_at_end": sim.vehicle.getIDCount(),
            "pending_at_end": len(sim.simulation.getPendingVehicles()),
        }


def _sumo_rl_signals(env: Any) -> dict[str, Any]:
    return {ts: env.traffic_signals[ts] for ts in env.ts_ids}


def phase_pairs_of(signal: Any, sim: Any) -> list[list[tuple[str, str]]]:
    """Green ``(in, out)`` lane pairs of each of sumo-rl's green phases of ``signal``."""
    links = sim.trafficlight.getControlledLinks(signal.id)
    return [green_pairs(p.state, links) for p in signal.green_phases]


def run_sumo_rl(
    scenario: Mapping[str, Any], controller: str, seed: int, cfg: Mapping[str, Any], trip: Path
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """One episode through sumo-rl's ``SumoEnvironment``.

    Returns:
        The SUMO options sumo-rl used, the :class:`Probe` figures and the number of signals.
    """
    fixed = controller == "fixed_time"
    if controller not in ("fixed_time", "max_pressure"):
        raise ValueError(f"controller: unknown {controller!r}; allowed: fixed_time, max_pressure")
    env = make_sumo_env(
        scenario,
        cfg,
        fixed_ts=fixed,
        single_agent=False,
        sumo_seed=seed,
        add_system_info=False,
        add_per_agent_info=False,
        additional_sumo_cmd=f"--tripinfo-output {trip}",
    )
    env.reset()
    probe = Probe(env.sumo)
    inner_step = env._sumo_step

    def step_and_sample() -> None:
        inner_step()
        probe.sample()

    env._sumo_step = step_and_sample
    signals = _sumo_rl_signals(env)
    pairs = {} if fixed else {ts: phase_pairs_of(s, env.sumo) for ts, s in signals.items()}
    lanes = sorted({lane for ps in pairs.values() for p in ps for pair in p for lane in pair})
    done = False
    while not done:
        actions: dict[str, int] = {}
        if not fixed:
            counts = {lane: env.sumo.lane.getLastStepVehicleNumber(lane) for lane in lanes}
            for ts, s in signals.items():
                if s.time_to_act:
                    ready = s.time_since_last_phase_change >= s.yellow_time + s.min_green
                    actions[ts] = max_pressure_action(pairs[ts], counts, s.green_phase, ready)
        _, _, dones, _ = env.step(actions)
        done = dones["__all__"]
    options = {
        "max_depart_delay": env.max_depart_delay,
        "waiting_time_memory": env.waiting_time_memory,
        "time_to_teleport": env.time_to_teleport,
        "seed": seed,
        "begin": env.begin_time,
        "fixed_ts": fixed,
    }
    figures = probe.figures()
    env.close()
    return options, figures, len(signals)


def run_libsumo(
    scenario: Mapping[str, Any], seed: int, cfg: Mapping[str, Any], trip: Path
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """One fixed-time simulation on plain libsumo with the options sumo-rl would pass.

    Returns:
        The SUMO options, the :class:`Probe` figures and the number of signals.
    """
    import libsumo
    import sumolib

    opts = {**SUMORL_SUMO_OPTIONS, **cfg.get("sumo_options", {})}
    command = [
        sumolib.checkBinary("sumo"),
        "-n",
        scenario["net_file"],
        "-r",
        scenario["route_file"],
    ]
    command += ["--max-depart-delay", str(opts["max_depart_delay"])]
    command += ["--waiting-time-memory", str(opts["waiting_time_memory"])]
    command += ["--time-to-teleport", str(opts["time_to_teleport"])]
    command += ["-b", str(_whole(scenario["begin"])), "--seed", str(seed), "--no-warnings"]
    command += ["--tripinfo-output", str(trip)]
    libsumo.start(command)
    probe = Probe(libsumo)
    end = float(scenario["end"])
    while libsumo.simulation.getTime() < end:
        libsumo.simulationStep()
        probe.sample()
    signals = len(libsumo.trafficlight.getIDList())
    figures = probe.figures()
    libsumo.close()
    return {**opts, "seed": seed, "begin": scenario["begin"]}, figures, signals


def run_fidelity_seed(
    scenario: Mapping[str, Any], controller: str, driver: str, seed: int, cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """Outcome figures (:data:`METRICS`) of one seeded simulation of ``scenario``."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sumo_trip_") as tmp:
        trip = Path(tmp) / "tripinfo.xml"
        if driver == "sumo_rl":
            options, figures, signals = run_sumo_rl(scenario, controller, seed, cfg, trip)
        elif driver == "libsumo":
            if controller != "fixed_time":
                raise ValueError("driver libsumo runs fixed_time only")
            options, figures, signals = run_libsumo(scenario, seed, cfg, trip)
        else:
            raise ValueError(f"driver: unknown {driver!r}; allowed: sumo_rl, libsumo")
        figures.update(summarize_tripinfo(trip))
    out = {k: figures.get(k) for k in METRICS}
    out.update(signals=signals, wall_s=time.perf_counter() - start, sumo_options=options)
    return out


def fidelity(cfg: Mapping[str, Any], nets: Path) -> list[dict[str, Any]]:
    """Every run of ``cfg["runs"]``: per-seed figures and their mean and spread."""
    shared = {k: v for k, v in cfg.items() if k not in ("runs", "mode")}
    results = []
    for run in cfg.get("runs", []):
        merged = {**shared, **run}
        scenario = resolve_scenario(merged.get("scenario", SINGLE), nets)
        if "begin" in merged or "end" in merged:
            scenario = resolve_scenario(
                {**scenario, **{k: merged[k] for k in ("begin", "end") if k in merged}}, nets
            )
        controller = merged.get("controller", "fixed_time")
        driver = merged.get("driver", "sumo_rl")
        seeds = [int(s) for s in merged.get("seeds", [merged.get("seed", 0)])]
        per_seed = [run_fidelity_seed(scenario, controller, driver, s, merged) for s in seeds]
        numeric = [{k: r[k] for k in (*METRICS, "wall_s")} for r in per_seed]
        results.append(
            {
                "scenario": scenario,
                "controller": controller,
                "driver": driver,
                "seeds": seeds,
                "signals": per_seed[0]["signals"] if per_seed else None,
                "timing": {k: int(merged.get(k, v)) for k, v in SIGNAL_DEFAULTS.items()},
                "per_seed": per_seed,
                **aggregate(numeric),
            }
        )
    return results


# --- speed ------------------------------------------------------------------------------------
def speed_case(case: Mapping[str, Any], cfg: Mapping[str, Any], nets: Path) -> dict[str, Any]:
    """Decisions per second of one scenario through one sumo-rl API, random actions."""
    import numpy as np

    scenario = resolve_scenario(case.get("scenario", SINGLE), nets)
    api = case.get("api", "single")
    seed = int(cfg.get("seed", 0))
    rng = np.random.default_rng(seed)
    seconds = float(cfg.get("seconds", 2.0))
    repeats = int(cfg.get("repeats", 3))
    warmup_s = float(cfg.get("warmup_s", 0.5))
    pool = int(cfg.get("action_pool", 64))
    step: Callable[[Any], bool]
    if api in ("single", "env"):
        env = make_sumo_env(scenario, cfg, single_agent=api == "single", sumo_seed=seed)
        sizes = {ts: int(env.traffic_signals[ts].action_space.n) for ts in env.ts_ids}
        if api == "single":
            n = sizes[env.ts_ids[0]]
            actions: list[Any] = [int(a) for a in rng.integers(n, size=pool)]

            def step(action: Any) -> bool:
                _, _, terminated, truncated, _ = env.step(action)
                return bool(terminated or truncated)

        else:
            actions = [{ts: int(rng.integers(n)) for ts, n in sizes.items()} for _ in range(pool)]

            def step(action: Any) -> bool:
                return bool(env.step(action)[2]["__all__"])

        reset: Callable[[], Any] = env.reset
    elif api == "parallel":
        import sumo_rl

        env = sumo_rl.parallel_env(
            net_file=scenario["net_file"],
            route_file=scenario["route_file"],
            begin_time=_whole(scenario["begin"]),
            num_seconds=_whole(scenario["end"] - scenario["begin"]),
            sumo_seed=seed,
            sumo_warnings=False,
            **{k: int(cfg.get(k, v)) for k, v in SIGNAL_DEFAULTS.items()},
        )
        sizes = {a: int(env.action_space(a).n) for a in env.possible_agents}
        actions = [{a: int(rng.integers(n)) for a, n in sizes.items()} for _ in range(pool)]

        def step(action: Any) -> bool:
            _, _, terminations, truncations, _ = env.step(action)
            return not env.agents or all(terminations[a] or truncations[a] for a in terminations)

        reset = env.reset
    else:
        raise ValueError(f"api: unknown {api!r}; allowed: single, env, parallel")
    rates = steploop.time_steps(step, reset, actions, seconds, repeats, warmup_s)
    resets = []
    for _ in range(int(cfg.get("reset_repeats", 3))):
        t0 = time.perf_counter()
        reset()
        resets.append(time.perf_counter() - t0)
    env.close()
    return {
        "scenario": scenario["name"],
        "api": api,
        "signals": len(sizes),
        "actions_per_signal": sorted(set(sizes.values())),
        "window": [scenario["begin"], scenario["end"]],
        "sim_seconds_per_step": int(cfg.get("delta_time", SIGNAL_DEFAULTS["delta_time"])),
        "steps_per_s": rates,
        "reset_s": statistics.median(resets) if resets else None,
    }


# --- PPO time to quality ----------------------------------------------------------------------
def evaluate_travel_time(model: Any, env: Any, seed: int, trip: Path) -> dict[str, Any]:
    """Tripinfo and :class:`Probe` figures of one deterministic episode of ``model``.

    Runs on ``env`` (the training simulator) with SUMO seed ``seed`` and tripinfo output
    switched on for the episode; the simulation is closed afterwards so the next training reset
    starts afresh.
    """
    saved = env.additional_sumo_cmd
    env.additional_sumo_cmd = " ".join(filter(None, [saved, f"--tripinfo-output {trip}"]))
    inner_step = env._sumo_step
    try:
        obs, _ = env.reset(seed=seed)
        probe = Probe(env.sumo)

        def step_and_sample() -> None:
            inner_step()
            probe.sample()

        env._sumo_step = step_and_sample
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action)
            done = bool(terminated or truncated)
        figures = probe.figures()
        env.close()
    finally:
        env.additional_sumo_cmd = saved
        env._sumo_step = inner_step
    figures.update(summarize_tripinfo(trip))
    return {k: figures.get(k) for k in METRICS}


def ppo_time_to_quality(cfg: Mapping[str, Any], nets: Path) -> dict[str, Any]:
    """Train PPO until an evaluation meets :func:`meets_quality` or the budget ends.

    The protocol is :func:`ttq.time_to_quality`; an evaluation is
    :func:`evaluate_travel_time` on the training environment.
    """
    scenario = dict(resolve_scenario(cfg.get("scenario", SINGLE), nets))
    if "num_seconds" in cfg:
        scenario["end"] = scenario["begin"] + float(cfg["num_seconds"])
    env = make_sumo_env(scenario, cfg, single_agent=True, sumo_seed=int(cfg.get("seed", 0)))
    with tempfile.TemporaryDirectory(prefix="sumo_ppo_") as tmp:
        trip = Path(tmp) / "tripinfo.xml"

        def evaluate(model: Any, seed: int) -> dict[str, Any]:
            return evaluate_travel_time(model, env, seed, trip)

        result = ttq.time_to_quality(env, evaluate, meets_quality, cfg)
    env.close()
    return {"scenario": scenario, **result}


# --- entry point -----------------------------------------------------------------------------
def versions() -> dict[str, Any]:
    """Versions of the reference stack."""
    from importlib.metadata import version

    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in (
        "sumo-rl",
        "pettingzoo",
        "gymnasium",
        "eclipse-sumo",
        "libsumo",
        "sumolib",
        "traci",
        "stable-baselines3",
        "torch",
        "numpy",
    ):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing distribution is reported, not fatal
            out[dist] = None
    return out


def default_speed_cases(env_id: str | None) -> list[dict[str, str]]:
    """Speed cases of an ``env_id`` (a scenario name), or of both benchmark scenarios."""
    if env_id:
        return [{"scenario": env_id, "api": "single" if env_id == SINGLE else "env"}]
    return [
        {"scenario": SINGLE, "api": "single"},
        {"scenario": "grid4x4", "api": "env"},
        {"scenario": "grid4x4", "api": "parallel"},
    ]


def catalogue(nets: Path) -> dict[str, Any]:
    """Every shipped scenario with its files and window."""
    return {name: resolve_scenario(name, nets) for name in (SINGLE, *RESCO)}


def main(argv: list[str]) -> int:
    """Run the worker with the JSON config in ``argv[1]`` and print the JSON result."""
    cfg = json.loads(argv[1]) if len(argv) > 1 else {}
    warnings.simplefilter("ignore")
    sumo_home = prepare_sumo()
    nets = nets_dir()
    mode = cfg.get("mode", "speed")
    result: dict[str, Any] = {
        "mode": mode,
        "nets_dir": str(nets),
        "sumo_home": sumo_home,
        "versions": versions(),
        "params": {
            **{k: int(cfg.get(k, v)) for k, v in SIGNAL_DEFAULTS.items()},
            "sumo_options": SUMORL_SUMO_OPTIONS,
            "max_green_enforced": False,
        },
    }
    start = time.perf_counter()
    if mode == "info":
        result["scenarios"] = catalogue(nets)
    elif mode == "speed":
        cases = cfg.get("cases") or default_speed_cases(cfg.get("env_id"))
        result["cases"] = [speed_case(c, cfg, nets) for c in cases]
        first = result["cases"][0]
        result["steps_per_s"] = first["steps_per_s"]
        result["params"].update(
            scenario=first["scenario"],
            begin=first["window"][0],
            end=first["window"][1],
            signals=first["signals"],
            actions_per_signal=first["actions_per_signal"],
        )
        result.update(policies=[], exact=[])
    elif mode == "fidelity":
        result["runs"] = fidelity(cfg, nets)
    elif mode == "ppo_time_to_quality":
        result["ppo_time_to_quality"] = ppo_time_to_quality(cfg, nets)
    else:
        raise ValueError(
            f"mode: unknown {mode!r}; allowed: info, speed, fidelity, ppo_time_to_quality"
        )
    result["wall_s"] = time.perf_counter() - start
    sys.stdout.flush()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
