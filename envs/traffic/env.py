"""Gymnasium adapters of the traffic simulator: signal control at one or many intersections."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.core import team as team_mod
from envs.core.env import BatchRunner, BatchStep, LeptonEnv
from envs.core.features import ObservationBuilder, QuantityTerm, RewardTerm
from envs.core.registry import Registry
from envs.core.sim import Columns, StepResult
from envs.core.vector import LeptonVectorEnv
from envs.traffic.scenario import SignalSettings, TrafficScenario
from envs.traffic.sim import (
    L_COUNT,
    L_HALT,
    L_SPEED,
    L_WAIT,
    METRICS,
    QUANTITIES,
    TrafficSim,
    TrafficState,
)

OBSERVATIONS: Registry[type[ObservationBuilder]] = Registry("observation")
REWARDS: Registry[RewardTerm] = Registry("reward term")

REWARDS.register("diff_waiting_time", QuantityTerm("wait_diff"))
REWARDS.register("queue", QuantityTerm("queue", -1.0))
REWARDS.register("pressure", QuantityTerm("pressure", -1.0))
REWARDS.register("average_speed", QuantityTerm("speed"))
REWARDS.register("delay", QuantityTerm("delay", -1.0))
REWARDS.register("throughput", QuantityTerm("arrived"))

SIGNAL_KEYS = ("delta_time", "yellow_time", "all_red_time", "min_green", "max_green", "controlled")
SUMO_KEYS = ("net_file", "route_file", "begin", "end", "vclass")


class SignalLayout:
    """Sizes of the per-signal observation: phase slots, lane slots and their features.

    Args:
        structure: the scenario.
        obs_phases: phase slots (default: the most green phases of a controlled signal).
        obs_lanes: lane slots (default: the most incoming lanes of a controlled signal).
    """

    def __init__(
        self, structure: TrafficScenario, obs_phases: int | None, obs_lanes: int | None
    ) -> None:
        net = structure.network
        self.controlled = structure.controlled_signals
        self.lanes = [net.signal_lanes[s] for s in self.controlled]
        self.out_lanes = [net.signal_out_lanes[s] for s in self.controlled]
        self.greens = [net.signals[s].green_phases for s in self.controlled]
        self.phases = (
            max([len(g) for g in self.greens] or [0]) if obs_phases is None else obs_phases
        )
        self.lane_slots = (
            max([len(x) for x in self.lanes] or [0]) if obs_lanes is None else obs_lanes
        )
        self.num_signals = len(self.controlled)


class SignalObservation(ObservationBuilder):
    """sumo-rl's observation for every controlled signal, concatenated signal by signal.

    Per signal: one-hot of the current green phase (``obs_phases`` slots), a flag that the
    minimum green has elapsed, then for every incoming lane (``obs_lanes`` slots) the density
    (vehicles / (lane length / 7.5 m); sumo-rl uses 2.5 m plus the mean length of the lane's
    vehicles, 7.5 m for SUMO's default car) and then the queue (halting vehicles on the same
    scale), both clipped to 1. Padding slots are zero, so one policy fits signals of any size.
    """

    def __init__(
        self,
        structure: TrafficScenario,
        obs_phases: int | None = None,
        obs_lanes: int | None = None,
    ) -> None:
        super().__init__(structure)
        self.layout = SignalLayout(structure, obs_phases, obs_lanes)
        self.width = self.layout.phases + 1 + 2 * self.layout.lane_slots

    @property
    def space(self) -> spaces.Box:
        n = self.layout.num_signals * self.width
        return spaces.Box(0.0, 1.0, (n,), dtype=np.float32)

    def encode(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        return snapshot.signal_obs.reshape(snapshot.signal_obs.shape[0], -1).copy()


OBSERVATIONS.register("default", SignalObservation)


class LaneFeatureObservation(SignalObservation):
    """Phase one-hot and min-green flag, then chosen per-lane features of every signal.

    Subclasses list their per-lane features in :attr:`FEATURES`; each is scaled to ``[0, 1]``.
    """

    FEATURES: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        structure: TrafficScenario,
        obs_phases: int | None = None,
        obs_lanes: int | None = None,
    ) -> None:
        super().__init__(structure, obs_phases, obs_lanes)
        lay = self.layout
        self.width = lay.phases + 1 + len(self.FEATURES) * lay.lane_slots
        net = structure.network
        self.cap = net.lane_length / 7.5
        self.speed = net.lane_speed

    def lane_features(self, stats: np.ndarray, lanes: np.ndarray, k: int) -> list[np.ndarray]:
        """``[B, len(lanes)]`` arrays, one per feature, for signal ``k``'s ``lanes``."""
        raise NotImplementedError

    def encode(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        lay = self.layout
        b = snapshot.time.shape[0]
        out = np.zeros((b, lay.num_signals, self.width), dtype=np.float32)
        # phase one-hot and min-green flag: the core's, as in the ``default`` observation (a
        # signal running its own program reports the program's green and a set flag)
        out[:, :, : lay.phases + 1] = snapshot.signal_obs[:, :, : lay.phases + 1]
        for k in range(lay.num_signals):
            lanes = np.asarray(lay.lanes[k], dtype=np.int64)
            base = lay.phases + 1
            for f, values in enumerate(self.lane_features(snapshot.lane_stats, lanes, k)):
                lo = base + f * lay.lane_slots
                out[:, k, lo : lo + lanes.size] = np.clip(values, 0.0, 1.0)
        return out.reshape(b, -1)


@OBSERVATIONS.register("queue")
class QueueObservation(LaneFeatureObservation):
    """Phase, min-green flag and the queue of every incoming lane (no densities)."""

    FEATURES = ("queue",)

    def lane_features(self, stats: np.ndarray, lanes: np.ndarray, k: int) -> list[np.ndarray]:
        return [stats[:, lanes, L_HALT] / self.cap[lanes]]


@OBSERVATIONS.register("pressure")
class PressureObservation(LaneFeatureObservation):
    """Phase, min-green flag and, per incoming lane, its density and the signal's pressure.

    The pressure slot of a lane is (vehicles on the lane - mean vehicles on the signal's
    outgoing lanes) over the lane's capacity, shifted to ``[0, 1]`` (0.5 = balanced).
    """

    FEATURES = ("density", "pressure")

    def lane_features(self, stats: np.ndarray, lanes: np.ndarray, k: int) -> list[np.ndarray]:
        outl = np.asarray(self.layout.out_lanes[k], dtype=np.int64)
        out_mean = stats[:, outl, L_COUNT].mean(axis=1, keepdims=True) if outl.size else 0.0
        count = stats[:, lanes, L_COUNT]
        return [count / self.cap[lanes], 0.5 + 0.5 * (count - out_mean) / self.cap[lanes]]


@OBSERVATIONS.register("extended")
class ExtendedObservation(LaneFeatureObservation):
    """Phase, min-green flag and per lane: density, queue, mean speed / limit, waiting time.

    Waiting time is the summed waiting of the lane's vehicles over 10 minutes per vehicle slot.
    """

    FEATURES = ("density", "queue", "speed", "waiting")

    def lane_features(self, stats: np.ndarray, lanes: np.ndarray, k: int) -> list[np.ndarray]:
        count = stats[:, lanes, L_COUNT]
        cap = self.cap[lanes]
        speed = np.where(
            count > 0, stats[:, lanes, L_SPEED] / np.maximum(count, 1.0), self.speed[lanes]
        )
        return [
            count / cap,
            stats[:, lanes, L_HALT] / cap,
            speed / self.speed[lanes],
            stats[:, lanes, L_WAIT] / (600.0 * cap),
        ]


class TrafficSignalEnv(LeptonEnv):
    """Traffic-signal control: pick the next green phase of every controlled signal.

    ## Description
    Vehicles drive routes across a road network (a built intersection, arterial or grid, or an
    imported SUMO network) under SUMO's Krauss car-following model, queue at red lights, spill
    back when downstream lanes are full, and are inserted from their routes' first edges as
    demand arrives. Every ``delta_time`` seconds (5 by default) the agent chooses the next green
    phase of every controlled signal; a change runs through ``yellow_time`` of yellow (and
    ``all_red_time`` of all red) and only happens once ``yellow_time + all_red_time +
    min_green`` seconds have passed since the last one; a green held for ``max_green`` seconds
    moves on to the next green phase. These are sumo-rl's conventions, so results compare with it.

    ## Action Space
    `Discrete(G)` for one signal (``G`` green phases of its program), `MultiDiscrete([G_1,
    ..., G_K])` for ``K`` signals. Phase ``i`` is the ``i``-th green phase in program order.

    ## Observation Space
    `Box(0, 1, (K * F,), float32)`; per signal with the ``default`` builder (sumo-rl's):

    | slots        | feature                                                           |
    |--------------|-------------------------------------------------------------------|
    | `obs_phases` | one-hot of the current green phase (its target during yellow)      |
    | 1            | 1 once yellow + all-red + min_green passed since the last change   |
    | `obs_lanes`  | density of every incoming lane: vehicles / (length / 7.5 m), <= 1   |
    | `obs_lanes`  | queue of every incoming lane: halting vehicles on the same scale    |

    so ``F = obs_phases + 1 + 2 obs_lanes``. Other builders: ``queue``, ``pressure``,
    ``extended`` (density, queue, speed, waiting time per lane); all of them share the phase
    one-hot and the flag (a signal running its own program, as under the ``fixed_time``
    baseline, shows the program's green, or the next one during yellow, with the flag set).
    Padding slots are zero. Incoming lanes are in link order with duplicates dropped, as
    sumo-rl's ``TrafficSignal.lanes``. A lane's capacity is fixed at length / 7.5 m, where
    sumo-rl divides by 2.5 m plus the mean length of the vehicles on the lane in that step:
    the same for SUMO's default car (5 m), different on lanes that buses or bicycles use.

    ## Rewards
    Weighted terms (defaults: ``diff_waiting_time`` 1, others 0), summed over signals:
    ``diff_waiting_time`` (drop since the last decision in the summed waiting time of the
    vehicles on incoming lanes, in 100 s; a vehicle's waiting time counts from when it entered
    its lane: sumo-rl counts SUMO's accumulated waiting time, over its last 1000 s, less what it
    last recorded on other incoming lanes, which differs only by the waiting on a previous lane
    after the last decision there), ``queue`` (minus halting vehicles, speed < 0.1 m/s, on
    incoming lanes), ``pressure`` (vehicles on outgoing minus incoming lanes, sumo-rl's sign),
    ``average_speed`` (mean over the vehicles on incoming lanes of speed over the lane's limit,
    1 when empty; sumo-rl divides by the vehicle's allowed speed, the limit times its speed
    factor, so its values stay at or below 1 while ours can exceed it slightly), ``delay``
    (minus time lost by all vehicles in the step, s) and ``throughput`` (trips finished in the
    step). ``delay`` and ``throughput`` are network-wide, split evenly over the signals for
    per-signal rewards. Every term is in ``info["reward_terms"]``, weighted or not.

    ## Starting State
    An empty network at the scenario's ``begin``; controlled signals start in their first green
    phase, others at their program's position for that time. Random flows draw their departures
    for the whole episode at reset.

    ## Episode End
    - Termination: never.
    - Truncation: at the first decision that ends at or after the scenario's ``end`` (an
      ``end - begin`` that is not a multiple of ``delta_time`` runs up to one decision past it,
      as sumo-rl's episodes do).

    ## Info
    ``time``, ``arrived`` (trips finished in the step), ``arrived_total``, ``inserted_total``,
    ``on_network``, ``waiting_to_insert``, ``mean_travel_time`` (insertion to arrival),
    ``mean_waiting_time`` (time below 0.1 m/s) and ``mean_delay`` (time loss) over finished
    trips, as SUMO's tripinfo ``duration``, ``waitingTime`` and ``timeLoss`` (0 until a trip
    finishes: read them with ``arrived_total``), ``mean_depart_delay`` (from the scheduled
    departure to insertion, which ends the sub-step: a departure at a whole second counts one
    sub-step, where SUMO inserts in the same step and reports 0), ``queue`` (halting vehicles
    on all lanes now), ``mean_speed`` (now, over the vehicles on lanes, not those crossing a
    junction; 0 when there are none), ``episode_mean_speed`` (vehicle-weighted), ``teleports``
    and ``reward_terms`` (every registered term).

    ## Arguments
    - ``scenario``: a :class:`TrafficScenario`, a preset name (see
      ``envs.traffic.builders.PRESETS``; ``resco:<name>`` for a network shipped with sumo-rl), or
      a mapping: ``{preset: ..., **preset options}``, ``{net_file: ..., route_file: ...,
      begin: ..., end: ...}`` (SUMO import) or ``{resco: grid4x4}``; the signal settings
      (``delta_time``, ``yellow_time``, ``all_red_time``, ``min_green``, ``max_green``,
      ``controlled``) may be given in the mapping too. Default: ``preset``.
    - ``preset``: the preset of a mapping that names no ``preset``, ``net_file`` or ``resco``
      (and of ``None``); default ``"sumo_rl_single"``. A registered variant passes its own
      (``lepton/TrafficGrid-v0``: ``grid4x4``, ``lepton/TrafficArterial-v0``: ``arterial4``), so
      a mapping such as ``scenario={"seconds": 600}`` keeps that variant's network.
    - ``observation``, ``reward_weights``, ``render_mode``: as every Lepton env.
    - ``obs_phases``, ``obs_lanes``: padded sizes of the per-signal observation.
    - ``threads``: threads that step the replicas of a batch (a vector env of this env), each a
      contiguous share; results do not depend on it (see :class:`~envs.traffic.sim.TrafficSim`).
    """

    observation_builders = OBSERVATIONS
    reward_terms = REWARDS
    default_reward_weights: ClassVar[Mapping[str, float]] = {"diff_waiting_time": 1.0}
    scenario_type = TrafficScenario
    renderer = "envs.traffic.render:TrafficView"
    baselines = "envs.traffic.baselines:BASELINES"
    reference_baseline = "max_pressure"
    shared_vec_env = "envs.traffic.multi:TrafficSharedVecEnv"
    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 5}  # noqa: RUF012

    def __init__(
        self,
        scenario: Any = None,
        *,
        preset: str = "sumo_rl_single",
        observation: str = "default",
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
        obs_phases: int | None = None,
        obs_lanes: int | None = None,
        threads: int = 1,
    ) -> None:
        self.threads = team_mod.check_threads(threads)
        _check_preset(preset)
        self.preset = preset
        super().__init__(
            scenario,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
        )
        builder = self.observation_builders.get(observation)
        self.observation_builder = builder(self.structure, obs_phases, obs_lanes)  # type: ignore[call-arg]
        self.observation_space = self.observation_builder.space
        layout: SignalLayout = self.observation_builder.layout  # type: ignore[attr-defined]
        self.layout = layout
        if layout.num_signals == 0:
            raise ValueError(
                f"scenario {self.structure.name!r}: no traffic light with two or more green "
                "phases to control (signals.controlled)"
            )
        self._fused = type(self.observation_builder) is SignalObservation
        self.signal_ids = tuple(self.structure.network.signals[s].id for s in layout.controlled)

    # --- hooks -------------------------------------------------------------------------------
    def coerce_scenario(self, obj: Any) -> TrafficScenario:
        return make_scenario(obj, self.preset)

    def make_sim(self, batch_size: int) -> TrafficSim:
        layout = self.layout
        return TrafficSim(
            batch_size,
            self.structure,
            obs_phases=layout.phases,
            obs_lanes=layout.lane_slots,
            threads=self.threads,
        )

    def make_action_space(self) -> spaces.Space:
        greens = [
            len(self.structure.network.signals[s].green_phases)
            for s in self.structure.controlled_signals
        ]
        if len(greens) == 1:
            return spaces.Discrete(greens[0])
        return spaces.MultiDiscrete(greens)

    def actions_to_sim(self, actions: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(actions, dtype=np.int64).reshape(actions.shape[0], -1)

    def fused_batch_step(self, runner: BatchRunner, actions: np.ndarray) -> BatchStep | None:
        """The whole batch step in one compiled call: check, core step, rewards, episode ends.

        Applies to the ``default`` observation with reward terms that are signed quantities
        and integer actions; returns ``None`` (nothing changed) otherwise and for an action out
        of range, which the generic path then reports.
        """
        plan = self._episode_plan()
        if plan is None or runner.obs is None:
            return None
        sim = runner.sim
        b = runner.batch_size
        acts = np.asarray(actions)
        if acts.dtype.kind not in "iu" or acts.size != b * len(plan[1]):
            return None
        acts = np.ascontiguousarray(acts, dtype=np.int64).reshape(b, -1)
        names, nvec, term_q, sign, weight = plan
        rewards = np.empty(b)
        terms = np.empty((b, len(names)))
        flags = np.empty((3, b), dtype=np.bool_)
        max_steps = runner.max_episode_steps
        episode = (
            nvec,
            term_q,
            sign,
            weight,
            runner.episode_steps,
            0 if max_steps is None else int(max_steps),
            rewards,
            terms,
            flags,
        )
        if not sim.advance(acts, episode):  # type: ignore[attr-defined]
            return None
        obs = sim.signal_obs.reshape(b, -1).copy()  # type: ignore[attr-defined]
        done = flags[2]
        final_obs = None
        if runner.autoreset and done.any():
            final_obs = obs
            obs = runner.reset_rows(done, obs.copy())
        runner.obs = obs
        return BatchStep(
            obs=obs,
            rewards=rewards,
            terminated=flags[0],
            truncated=flags[1],
            terms=Columns(names, terms),
            metrics=Columns(METRICS, sim.metrics),  # type: ignore[attr-defined]
            done=done,
            final_obs=final_obs,
        )

    def _episode_plan(
        self,
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Names, action bounds, quantity columns, signs and weights of the fused step."""
        cached = self.__dict__.get("_plan")
        if cached is not None and cached[0] is self.reward:
            return cached[1]
        plan = None
        fns = self.reward.fns
        if self._fused and all(isinstance(fn, QuantityTerm) for fn in fns.values()):
            space = self.action_space
            nvec = np.atleast_1d(
                space.n if isinstance(space, spaces.Discrete) else space.nvec  # type: ignore[attr-defined]
            ).astype(np.int64)
            names = tuple(fns)
            plan = (
                names,
                nvec,
                np.array([QUANTITIES.index(fn.quantity) for fn in fns.values()], dtype=np.int64),  # type: ignore[attr-defined]
                np.array([fn.sign for fn in fns.values()], dtype=np.float64),  # type: ignore[attr-defined]
                np.array([self.reward.weights.get(n, 0.0) for n in names], dtype=np.float64),
            )
        self._plan = (self.reward, plan)
        return plan

    def sim_step(self, sim: Any, actions: np.ndarray) -> tuple[StepResult, np.ndarray]:
        result = sim.step(self.actions_to_sim(actions))
        if self._fused:
            obs = sim.signal_obs.reshape(sim.batch_size, -1).copy()
        else:
            obs = self.encode_obs(sim.snapshot())
        return result, obs


class TrafficVectorEnv(LeptonVectorEnv):
    """Native vector env of :class:`TrafficSignalEnv` (all replicas in one core)."""

    env_cls = TrafficSignalEnv


def _check_options(opts: Mapping[str, Any], allowed: list[str], what: str) -> None:
    """Raise naming the first option of ``opts`` not in ``allowed``."""
    for key in opts:
        if key not in allowed:
            raise ValueError(
                f"scenario.{key}: unknown option of the traffic {what}; allowed: "
                f"{', '.join(allowed)} and the signal settings {', '.join(SIGNAL_KEYS)}"
            )


def _build_preset(builder: Any, opts: dict[str, Any], name: str) -> TrafficScenario:
    """``builder(**opts)``, with an error naming the option for one it does not take."""
    params = inspect.signature(builder).parameters.values()  # through ``__wrapped__``
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    allowed = [p.name for p in params if p.kind in kinds]
    passes_on = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    what = f"preset {name!r}"
    if not passes_on:
        _check_options(opts, allowed, what)
        return builder(**opts)
    try:
        return builder(**opts)
    except TypeError as exc:  # an option the builder passes on, unknown to the one it reaches
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if bad is None:
            raise
        func = getattr(builder, "__wrapped__", builder).__name__
        raise ValueError(
            f"scenario.{bad.group(1)}: unknown option of the traffic {what}; allowed: "
            f"{', '.join(allowed)}, those documented in help(envs.traffic.builders.{func}), and "
            f"the signal settings {', '.join(SIGNAL_KEYS)}"
        ) from exc


def _check_preset(preset: Any) -> None:
    """Raise a ``ValueError`` naming ``preset`` unless it names a traffic preset."""
    from envs.traffic import builders

    if not isinstance(preset, str) or preset not in builders.PRESETS:
        raise ValueError(
            f"preset: unknown traffic preset {preset!r}; allowed values: {sorted(builders.PRESETS)}"
        )


def make_scenario(obj: Any, preset: str = "sumo_rl_single") -> TrafficScenario:
    """Turn ``None``, a preset name, ``resco:<name>`` or a mapping into a scenario.

    Args:
        obj: what to build the scenario from.
        preset: the preset of ``None`` and of a mapping that names no ``preset``, ``net_file``
            or ``resco`` (an env's own preset).

    Raises:
        ValueError: naming the field for an unknown preset or option.
    """
    from envs.traffic import builders

    _check_preset(preset)
    if isinstance(obj, TrafficScenario):
        return obj
    if obj is None:
        obj = preset
    if isinstance(obj, str):
        obj = {"resco": obj[6:]} if obj.startswith("resco:") else {"preset": obj}
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"scenario: expected a TrafficScenario, a preset name or a mapping, got "
            f"{type(obj).__name__}"
        )
    opts = dict(obj)
    signal_opts = {k: opts.pop(k) for k in SIGNAL_KEYS if k in opts}
    if "controlled" in signal_opts and signal_opts["controlled"] is not None:
        signal_opts["controlled"] = tuple(signal_opts["controlled"])
    elif "controlled" in signal_opts:
        signal_opts.pop("controlled")
    if "net_file" in opts:
        from envs.traffic.sumo_import import load_sumo

        unknown = sorted(set(opts) - set(SUMO_KEYS) - {"name", "teleport_time"})
        if unknown:
            raise ValueError(
                f"scenario.{unknown[0]}: unknown option of a SUMO scenario; allowed: "
                f"{', '.join(SUMO_KEYS)}, name, teleport_time and the signal settings "
                f"{', '.join(SIGNAL_KEYS)}"
            )
        net_file = opts.pop("net_file")
        if not net_file:
            raise ValueError("scenario.net_file: give the path of a SUMO .net.xml file")
        sc = load_sumo(
            Path(net_file),
            opts.pop("route_file", None) or None,
            begin=opts.pop("begin", None),
            end=opts.pop("end", None),
            **opts,
        )
    elif "resco" in opts:
        from envs.traffic.nets import resco_scenario

        name = opts.pop("resco")
        _check_options(opts, [*SUMO_KEYS[2:], "name", "teleport_time"], f"network resco:{name}")
        sc = resco_scenario(name, **opts)
    else:
        name = opts.pop("preset", preset)
        if name not in builders.PRESETS:
            allowed = sorted(builders.PRESETS)
            raise ValueError(
                f"scenario.preset: unknown traffic preset {name!r}; allowed values: {allowed} "
                "(or resco:<network>, or a mapping with net_file/route_file)"
            )
        sc = _build_preset(builders.PRESETS[name], opts, name)
    if signal_opts:
        fields = {f: getattr(sc.signals, f) for f in SIGNAL_KEYS}
        fields.update(signal_opts)
        sc = sc.replace(signals=SignalSettings(**fields))
    return sc
